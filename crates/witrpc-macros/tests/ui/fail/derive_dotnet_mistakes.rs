//! Each `#[derive(DotNetType)]` mistake, reported on the offending tokens.

#[derive(witrpc_macros::DotNetType)]
struct NoAssembly;

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "A", nmae = "A.Typo")]
struct UnknownKey;

#[derive(witrpc_macros::DotNetType)]
#[dotnet(name = "A.Both", namespace = "A", assembly = "A")]
struct NameAndNamespace;

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "")]
struct EmptyAssembly;

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "A", assembly = "B")]
struct TwiceGiven;

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "A")]
struct Generic<T>(T);

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "A")]
union NotSendable {
    a: u32,
}

#[derive(witrpc_macros::DotNetType)]
#[dotnet(assembly = "A", crate = "not a path")]
struct BadCrate;

fn main() {}
