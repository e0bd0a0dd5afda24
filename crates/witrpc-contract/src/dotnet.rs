//! The one table of .NET type names, and the rule that names a user's DTO.
//!
//! A `MethodId` is a hash over the contract name, the method name and the .NET names of its
//! parameter types, so both ends must name each type the same way. Three places need these
//! names: `witrpc-core`'s `DotNetType` impls (at run time), `#[derive(DotNetType)]` and
//! `cargo xtask gen-ts` (from source). They all read this module; `witrpc-core`'s tests check
//! its impls against [`PRIMITIVES`] and the generic forms below.
//!
//! ```
//! use witrpc_contract::dotnet;
//! let ty: syn::Type = syn::parse_quote!(Vec<Option<i32>>);
//! assert_eq!(
//!     dotnet::stable_name(&ty, &|_| None).as_deref(),
//!     Some("System.Collections.Generic.List<System.Nullable<System.Int32>>"),
//! );
//! ```

use syn::{Attribute, Generics, Ident, LitStr, Path, Type};

use crate::naming;
use crate::types::{generic_args, strip};

/// Simple name of the assembly that holds the .NET base types.
pub const CORE_LIB: &str = "System.Private.CoreLib";

/// The .NET name of `byte[]`, which `Vec<u8>` maps to (not `List<Byte>`).
pub const BYTE_ARRAY: &str = "System.Byte[]";

/// A Rust type with a fixed .NET counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Primitive {
    /// The Rust type's last path segment (`i32`, `String`, `Uuid`).
    pub rust: &'static str,
    /// The .NET type's namespace-qualified name (`System.Int32`).
    pub dotnet: &'static str,
    /// Whether the .NET type is a value type (then `Option<T>` is `Nullable<T>`).
    pub value_type: bool,
}

const fn value(rust: &'static str, dotnet: &'static str) -> Primitive {
    Primitive { rust, dotnet, value_type: true }
}

/// Every Rust type with a built-in .NET name. `u8` alone is `System.Byte`; `Vec<u8>` is
/// [`BYTE_ARRAY`].
pub const PRIMITIVES: &[Primitive] = &[
    value("i8", "System.SByte"),
    value("u8", "System.Byte"),
    value("i16", "System.Int16"),
    value("u16", "System.UInt16"),
    value("i32", "System.Int32"),
    value("u32", "System.UInt32"),
    value("i64", "System.Int64"),
    value("u64", "System.UInt64"),
    value("f32", "System.Single"),
    value("f64", "System.Double"),
    value("bool", "System.Boolean"),
    value("char", "System.Char"),
    value("Uuid", "System.Guid"),
    Primitive { rust: "String", dotnet: "System.String", value_type: false },
    Primitive { rust: "str", dotnet: "System.String", value_type: false },
];

/// The entry of [`PRIMITIVES`] for a Rust type name.
pub fn primitive(rust: &str) -> Option<&'static Primitive> {
    PRIMITIVES.iter().find(|p| p.rust == rust)
}

/// `List<T>`'s stable name, what `Vec<T>` maps to.
pub fn list(element: &str) -> String {
    format!("System.Collections.Generic.List<{element}>")
}

/// `List<T>`'s `Type.FullName` (assembly-qualified argument).
pub fn list_full(element_full: &str, element_assembly: &str) -> String {
    format!("System.Collections.Generic.List`1[[{element_full}, {element_assembly}]]")
}

/// `Nullable<T>`'s stable name, what `Option<T>` maps to when `T` is a value type.
pub fn nullable(inner: &str) -> String {
    format!("System.Nullable<{inner}>")
}

/// `Nullable<T>`'s `Type.FullName`.
pub fn nullable_full(inner_full: &str, inner_assembly: &str) -> String {
    format!("System.Nullable`1[[{inner_full}, {inner_assembly}]]")
}

/// `Dictionary<K,V>`'s stable name, what `HashMap<K, V>` maps to.
pub fn dictionary(key: &str, value: &str) -> String {
    format!("System.Collections.Generic.Dictionary<{key},{value}>")
}

/// `Dictionary<K,V>`'s `Type.FullName`.
pub fn dictionary_full(key: (&str, &str), value: (&str, &str)) -> String {
    format!("System.Collections.Generic.Dictionary`2[[{}, {}],[{}, {}]]", key.0, key.1, value.0, value.1)
}

/// The .NET identity of a user's type, as `#[dotnet(..)]` on it gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtoName {
    /// The namespace-qualified .NET name.
    pub type_name: String,
    /// The simple assembly name.
    pub assembly: String,
    /// Whether the .NET type is a struct or enum (then `Option<T>` is `Nullable<T>`).
    pub value_type: bool,
}

/// What `#[dotnet(..)]` on a type says, read by [`dto_attr`].
#[derive(Debug)]
pub struct DtoAttr {
    /// The .NET name (explicit or by the default rule).
    pub name: DtoName,
    /// `crate = ".."`: where the generated impl finds `DotNetType`.
    pub root: Option<Path>,
}

/// The attribute a DTO names its .NET type with.
pub const DTO_ATTRIBUTE: &str = "dotnet";

/// Reads `#[dotnet(..)]` from the attributes of the type `ident`.
///
/// Keys: `assembly = "Asm"` (required), then either `name = "Ns.Type"` or
/// `namespace = "Ns"`, and the flag `value_type`. Without `name`, the .NET name is the
/// namespace, a dot and the Rust name; the namespace defaults to the assembly's name (as a
/// .NET project's root namespace does), so `#[dotnet(assembly = "MyCompany.Contracts")]` on
/// `struct Point` names `MyCompany.Contracts.Point`.
///
/// ```
/// use witrpc_contract::dotnet::dto_attr;
/// let item: syn::ItemStruct = syn::parse_quote! {
///     #[dotnet(assembly = "MyCompany.Contracts")]
///     struct Point { x: i32 }
/// };
/// let attr = dto_attr(&item.attrs, &item.ident, &item.generics).unwrap();
/// assert_eq!(attr.name.type_name, "MyCompany.Contracts.Point");
/// ```
///
/// # Errors
/// A missing `assembly`, `name` together with `namespace`, an unknown or repeated key, an
/// empty value, or a generic type; each error points at the offending tokens.
pub fn dto_attr(attrs: &[Attribute], ident: &Ident, generics: &Generics) -> syn::Result<DtoAttr> {
    if !generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            generics,
            "`DotNetType` cannot be derived for a generic type: its .NET name depends on the type arguments; \
             implement `DotNetType` by hand for each instantiation you send",
        ));
    }
    let mut name: Option<LitStr> = None;
    let mut namespace: Option<LitStr> = None;
    let mut assembly: Option<LitStr> = None;
    let mut root: Option<Path> = None;
    let mut value_type = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident(DTO_ATTRIBUTE)) {
        attr.parse_nested_meta(|meta| {
            let key = if meta.path.is_ident("name") {
                "name"
            } else if meta.path.is_ident("namespace") {
                "namespace"
            } else if meta.path.is_ident("assembly") {
                "assembly"
            } else if meta.path.is_ident("crate") {
                "crate"
            } else if meta.path.is_ident("value_type") {
                if value_type {
                    return Err(meta.error("`value_type` is given twice"));
                }
                value_type = true;
                return Ok(());
            } else {
                return Err(meta.error(
                    "unknown `dotnet` key; expected `assembly = \"Assembly\"`, `name = \"Namespace.Type\"`, \
                     `namespace = \"Namespace\"` or `value_type`",
                ));
            };
            let value: LitStr = meta.value()?.parse()?;
            if value.value().trim().is_empty() {
                return Err(syn::Error::new_spanned(&value, format!("`{key}` must not be empty")));
            }
            let slot = match key {
                "name" => &mut name,
                "namespace" => &mut namespace,
                "assembly" => &mut assembly,
                _ => {
                    let path = value.parse::<Path>().map_err(|e| {
                        syn::Error::new_spanned(&value, format!("`crate` must be a path such as \"witrpc_core\": {e}"))
                    })?;
                    if root.replace(path).is_some() {
                        return Err(meta.error("`crate` is given twice"));
                    }
                    return Ok(());
                }
            };
            if slot.replace(value).is_some() {
                return Err(meta.error(format!("`{key}` is given twice")));
            }
            Ok(())
        })?;
    }
    let Some(assembly) = assembly else {
        return Err(syn::Error::new_spanned(
            ident,
            format!(
                "`#[derive(DotNetType)]` needs the .NET assembly of `{ident}`: add \
                 #[dotnet(assembly = \"MyAssembly\")] (the name then defaults to `MyAssembly.{ident}`; \
                 set it with `name = \"Namespace.{ident}\"`)"
            ),
        ));
    };
    let type_name = match (name, namespace) {
        (Some(name), Some(namespace)) => {
            let mut error = syn::Error::new_spanned(
                &namespace,
                "give either `name` (the full .NET name) or `namespace` (prefixed to the Rust name), not both",
            );
            error.combine(syn::Error::new_spanned(&name, "`name` given here"));
            return Err(error);
        }
        (Some(name), None) => name.value(),
        (None, Some(namespace)) => naming::qualify(&namespace.value(), &ident.to_string()),
        (None, None) => naming::qualify(&assembly.value(), &ident.to_string()),
    };
    Ok(DtoAttr { name: DtoName { type_name, assembly: assembly.value(), value_type }, root })
}

/// The stable .NET name of `ty` as `DotNetType` computes it, when the source alone tells it.
///
/// `dtos` names the user's types (by their Rust name); `None` for a type it does not know
/// and that is not in the table.
pub fn stable_name(ty: &Type, dtos: &dyn Fn(&str) -> Option<DtoName>) -> Option<String> {
    Some(describe(ty, dtos)?.0)
}

/// The stable name and whether it is a value type.
fn describe(ty: &Type, dtos: &dyn Fn(&str) -> Option<DtoName>) -> Option<(String, bool)> {
    let ty = strip(ty);
    if let Type::Reference(r) = ty {
        return describe(&r.elem, dtos);
    }
    if let Some([inner]) = generic_args(ty, "Vec").as_deref() {
        if matches!(strip(inner), Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8")) {
            return Some((BYTE_ARRAY.to_owned(), false));
        }
        return Some((list(&describe(inner, dtos)?.0), false));
    }
    if let Some([inner]) = generic_args(ty, "Option").as_deref() {
        let (name, value_type) = describe(inner, dtos)?;
        return Some((if value_type { nullable(&name) } else { name }, false));
    }
    if let Some([key, value]) = generic_args(ty, "HashMap").as_deref() {
        return Some((dictionary(&describe(key, dtos)?.0, &describe(value, dtos)?.0), false));
    }
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || !last.arguments.is_none() {
        return None;
    }
    let rust = last.ident.to_string();
    if let Some(primitive) = primitive(&rust) {
        return Some((primitive.dotnet.to_owned(), primitive.value_type));
    }
    dtos(&rust).map(|dto| (dto.type_name, dto.value_type))
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn name(ty: Type) -> Option<String> {
        let point = |n: &str| {
            (n == "Point").then(|| DtoName { type_name: "My.Point".into(), assembly: "My".into(), value_type: true })
        };
        stable_name(&ty, &point)
    }

    #[test]
    fn table_and_generic_forms() {
        assert_eq!(name(parse_quote!(i32)).as_deref(), Some("System.Int32"));
        assert_eq!(name(parse_quote!(&str)).as_deref(), Some("System.String"));
        assert_eq!(name(parse_quote!(Vec<u8>)).as_deref(), Some(BYTE_ARRAY));
        assert_eq!(name(parse_quote!(Option<Vec<u8>>)).as_deref(), Some(BYTE_ARRAY));
        assert_eq!(name(parse_quote!(Option<String>)).as_deref(), Some("System.String"));
        assert_eq!(name(parse_quote!(Option<uuid::Uuid>)).as_deref(), Some("System.Nullable<System.Guid>"));
        assert_eq!(
            name(parse_quote!(HashMap<String, Vec<i64>>)).as_deref(),
            Some("System.Collections.Generic.Dictionary<System.String,System.Collections.Generic.List<System.Int64>>")
        );
    }

    #[test]
    fn user_types_come_from_the_lookup() {
        assert_eq!(name(parse_quote!(Vec<Point>)).as_deref(), Some("System.Collections.Generic.List<My.Point>"));
        assert_eq!(name(parse_quote!(Option<Point>)).as_deref(), Some("System.Nullable<My.Point>"));
        assert_eq!(name(parse_quote!(Unknown)), None);
        assert_eq!(name(parse_quote!(Vec<Unknown>)), None);
        assert_eq!(name(parse_quote!(std::collections::BTreeMap<i32, i32>)), None);
    }

    fn dto(item: syn::ItemStruct) -> syn::Result<DtoAttr> {
        dto_attr(&item.attrs, &item.ident, &item.generics)
    }

    #[test]
    fn dto_names_default_to_the_assembly_namespace() {
        let a = dto(parse_quote!(
            #[dotnet(assembly = "My.Contracts")]
            struct Point;
        ))
        .unwrap();
        assert_eq!(
            a.name,
            DtoName { type_name: "My.Contracts.Point".into(), assembly: "My.Contracts".into(), value_type: false }
        );
        let a = dto(parse_quote!(
            #[dotnet(namespace = "Other", assembly = "A", value_type)]
            struct Point;
        ))
        .unwrap();
        assert_eq!(a.name, DtoName { type_name: "Other.Point".into(), assembly: "A".into(), value_type: true });
        let a = dto(parse_quote!(
            #[dotnet(name = "X.Y.Z", assembly = "A")]
            struct Point;
        ))
        .unwrap();
        assert_eq!(a.name.type_name, "X.Y.Z");
    }

    #[test]
    fn dto_attribute_mistakes_are_errors() {
        let message = |item| dto(item).unwrap_err().to_string();
        assert!(
            message(parse_quote!(
                struct Point;
            ))
            .contains("needs the .NET assembly of `Point`")
        );
        assert!(
            message(parse_quote!(
                #[dotnet(name = "A.B", namespace = "A", assembly = "A")]
                struct P;
            ))
            .contains("not both")
        );
        assert!(
            message(parse_quote!(
                #[dotnet(assembly = "A", nmae = "A.B")]
                struct P;
            ))
            .contains("unknown `dotnet` key")
        );
        assert!(
            message(parse_quote!(
                #[dotnet(assembly = "")]
                struct P;
            ))
            .contains("must not be empty")
        );
        assert!(
            message(parse_quote!(
                #[dotnet(assembly = "A", assembly = "B")]
                struct P;
            ))
            .contains("given twice")
        );
        assert!(
            message(parse_quote!(
                #[dotnet(assembly = "A")]
                struct P<T>(T);
            ))
            .contains("generic")
        );
    }
}
