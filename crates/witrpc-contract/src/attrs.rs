//! The macro's own attributes: `#[service(..)]`, `#[event(..)]` and `#[witrpc(..)]`.
//!
//! Each parser reads one attribute into a small struct and rejects unknown keys with an
//! error on the key itself, so a typo points at the typo.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Meta, Path};

/// The path the generated code reaches the runtime through unless `crate = ".."` says otherwise.
pub const DEFAULT_ROOT: &str = "::witrpc::__private";

/// The attribute that marks an event: `#[event]`.
pub const EVENT: &str = "event";
/// The attribute that tunes a method or argument: `#[witrpc(..)]`.
pub const WITRPC: &str = "witrpc";

/// `#[service(contract = "..", crate = "..")]`.
#[derive(Debug)]
pub struct ServiceArgs {
    /// The .NET interface name.
    pub contract: LitStr,
    /// Where the generated code finds the runtime items.
    pub root: Path,
}

/// Collects the `#[service(..)]` arguments as they are parsed.
#[derive(Default)]
pub(crate) struct ServiceArgsBuilder {
    contract: Option<LitStr>,
    root: Option<Path>,
}

impl ServiceArgsBuilder {
    /// Reads one `key = value` of `#[service(..)]`.
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("contract") {
            let value: LitStr = meta.value()?.parse()?;
            if value.value().trim().is_empty() {
                return Err(syn::Error::new_spanned(
                    &value,
                    "`contract` must name the .NET interface, e.g. \"MyCompany.Contracts.ICalculator\"",
                ));
            }
            set_once(&mut self.contract, value, &meta, "contract")
        } else if meta.path.is_ident("crate") {
            let value: LitStr = meta.value()?.parse()?;
            let path = value.parse::<Path>().map_err(|e| {
                syn::Error::new_spanned(&value, format!("`crate` must be a path such as \"::witrpc::__private\": {e}"))
            })?;
            set_once(&mut self.root, path, &meta, "crate")
        } else {
            Err(meta.error(format!(
                "unknown `service` argument `{}`; expected `contract = \"Namespace.IName\"` or `crate = \"path\"`",
                path_text(&meta.path)
            )))
        }
    }

    /// Checks that `contract` was given; the error points at the attribute.
    pub(crate) fn finish(self) -> syn::Result<ServiceArgs> {
        let contract = self.contract.ok_or_else(|| {
            syn::Error::new(
                Span::call_site(),
                "missing `contract`: name the .NET interface this trait implements, \
                 e.g. #[service(contract = \"MyCompany.Contracts.ICalculator\")]",
            )
        })?;
        let root = match self.root {
            Some(root) => root,
            None => syn::parse_str(DEFAULT_ROOT)?,
        };
        Ok(ServiceArgs { contract, root })
    }
}

/// `#[event]` / `#[event(name = "..")]` on a trait method.
#[derive(Default)]
pub(crate) struct EventAttr {
    pub(crate) name: Option<LitStr>,
}

/// `#[witrpc(name = "..")]` on a method.
#[derive(Default)]
pub(crate) struct MethodAttr {
    pub(crate) name: Option<LitStr>,
}

/// `#[witrpc(dotnet = "..", assembly = "..")]` on an argument.
#[derive(Default)]
pub(crate) struct ParamAttr {
    pub(crate) dotnet: Option<LitStr>,
    pub(crate) assembly: Option<LitStr>,
}

/// Whether `attr` is one of the macro's own, removed from the rewritten trait (`#[event]`, `#[witrpc]`).
pub fn is_ours(attr: &Attribute) -> bool {
    attr.path().is_ident(EVENT) || attr.path().is_ident(WITRPC)
}

/// Parses `#[event]` or `#[event(name = "..")]`.
pub(crate) fn parse_event(attr: &Attribute, out: &mut EventAttr) -> syn::Result<()> {
    match &attr.meta {
        Meta::Path(_) => Ok(()),
        Meta::List(_) => attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value = wire_name(&meta)?;
                set_once(&mut out.name, value, &meta, "name")
            } else {
                Err(meta.error(format!(
                    "unknown `event` argument `{}`; expected `name = \"WireName\"`",
                    path_text(&meta.path)
                )))
            }
        }),
        Meta::NameValue(_) => Err(syn::Error::new_spanned(attr, "write `#[event]` or `#[event(name = \"WireName\")]`")),
    }
}

/// Parses `#[witrpc(..)]` on a method.
pub(crate) fn parse_method(attr: &Attribute, out: &mut MethodAttr) -> syn::Result<()> {
    require_list(attr)?;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            let value = wire_name(&meta)?;
            set_once(&mut out.name, value, &meta, "name")
        } else {
            Err(meta.error(format!(
                "unknown `witrpc` argument `{}` on a method; expected `name = \"WireName\"`",
                path_text(&meta.path)
            )))
        }
    })
}

/// Parses `#[witrpc(..)]` on an argument.
pub(crate) fn parse_param(attr: &Attribute, out: &mut ParamAttr) -> syn::Result<()> {
    require_list(attr)?;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("dotnet") {
            let value = non_empty(&meta, "dotnet", "the .NET type's full name, e.g. \"MyNamespace.MyDto\"")?;
            set_once(&mut out.dotnet, value, &meta, "dotnet")
        } else if meta.path.is_ident("assembly") {
            let value = non_empty(&meta, "assembly", "the simple name of the .NET assembly, e.g. \"MyAssembly\"")?;
            set_once(&mut out.assembly, value, &meta, "assembly")
        } else {
            Err(meta.error(format!(
                "unknown `witrpc` argument `{}` on an argument; expected `dotnet = \"Namespace.Type\"` \
                 and `assembly = \"AssemblyName\"`",
                path_text(&meta.path)
            )))
        }
    })
}

fn require_list(attr: &Attribute) -> syn::Result<()> {
    match &attr.meta {
        Meta::List(_) => Ok(()),
        _ => Err(syn::Error::new_spanned(attr, "write `#[witrpc(key = \"value\", ..)]`")),
    }
}

fn wire_name(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    non_empty(meta, "name", "the name .NET declares, e.g. \"GetValue\"")
}

fn non_empty(meta: &ParseNestedMeta<'_>, key: &str, what: &str) -> syn::Result<LitStr> {
    let value: LitStr = meta.value()?.parse()?;
    if value.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(&value, format!("`{key}` must not be empty: give {what}")));
    }
    Ok(value)
}

fn set_once<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("`{key}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn path_text(path: &Path) -> String {
    path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::")
}
