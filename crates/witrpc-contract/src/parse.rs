//! Reads a `#[service]` trait into a [`ServiceDef`], the description every consumer works from.
//!
//! All checks happen here, so the renderers can assume a well-formed contract. Errors are
//! collected per method and argument and reported together, each on the offending tokens.

use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{Attribute, FnArg, ItemTrait, Pat, ReturnType, Signature, TraitItem, TraitItemFn};

use crate::attrs::{self, EventAttr, MethodAttr, ParamAttr, ServiceArgs, ServiceArgsBuilder};
use crate::model::{DotNetName, EventDef, MethodDef, Output, Param, ServiceDef};
use crate::naming;
use crate::types::{check_type, is_unit, result_args, value};

/// Collects several errors into one `syn::Error`, so a user sees them all in one build.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }
}

/// Generated inherent method names a Rust method or event must not reuse.
const CLIENT_RESERVED: &[&str] = &["new", "channel", "descriptor"];
const EVENTS_RESERVED: &[&str] = &[
    "new",
    "channel",
    "descriptor",
    "emitter",
    "to",
    "to_all",
    "to_connection",
    "to_user",
    "to_group",
    "except",
    "except_caller",
    "audience",
];

/// Reads the arguments of `#[service(..)]` (the tokens inside the parentheses).
///
/// # Errors
/// An unknown or repeated key, a `crate` that is not a path, or a missing `contract`;
/// each error points at the offending tokens.
pub fn parse_args(tokens: TokenStream) -> syn::Result<ServiceArgs> {
    let mut builder = ServiceArgsBuilder::default();
    syn::meta::parser(|meta| builder.parse(meta)).parse2(tokens)?;
    builder.finish()
}

/// Checks `item` against the rules of a WitRPC contract and describes it.
///
/// The trait is checked even when the attribute's arguments (`args`) are invalid, so every
/// problem is reported at once.
///
/// # Errors
/// Every rule the trait breaks, combined into one `syn::Error` (iterate it for each).
pub fn parse(args: syn::Result<ServiceArgs>, item: ItemTrait) -> syn::Result<ServiceDef> {
    let mut errors = Errors::default();
    let errors = &mut errors;
    let args = args.map_err(|e| errors.push(e)).ok();
    check_trait_header(&item, errors);
    let mut methods = Vec::new();
    let mut events = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => match parse_fn(f, errors) {
                Some(Parsed::Method(m)) => methods.push(*m),
                Some(Parsed::Event(e)) => events.push(e),
                None => {}
            },
            TraitItem::Type(t) => errors.push(syn::Error::new_spanned(
                t,
                "associated types are not supported in a service trait: a WitRPC contract is a list of methods \
                 and events; use a concrete type in the signatures",
            )),
            TraitItem::Const(c) => errors.push(syn::Error::new_spanned(
                c,
                "associated constants are not supported in a service trait: a WitRPC contract is a list of \
                 methods and events; move the constant out of the trait",
            )),
            other => errors.push(syn::Error::new_spanned(
                other,
                "only `async fn` methods and `#[event] fn` events are allowed in a service trait",
            )),
        }
    }
    check_names(&methods, &events, errors);
    if let Some(all) = errors.all.take() {
        return Err(all);
    }
    let Some(args) = args else {
        // Unreachable: an argument error was pushed above; report something rather than panic.
        return Err(syn::Error::new(proc_macro2::Span::call_site(), "invalid `#[service]` arguments"));
    };
    Ok(ServiceDef {
        root: args.root,
        contract: args.contract,
        attrs: item.attrs,
        vis: item.vis,
        unsafety: item.unsafety,
        ident: item.ident,
        supertraits: item.supertraits,
        methods,
        events,
    })
}

fn check_trait_header(item: &ItemTrait, errors: &mut Errors) {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "a service trait cannot be generic: a .NET client finds the contract by name and fixed types",
        ));
    }
    if let Some(auto) = &item.auto_token {
        errors.push(syn::Error::new_spanned(auto, "a service trait cannot be an auto trait"));
    }
}

enum Parsed {
    Method(Box<MethodDef>),
    Event(EventDef),
}

fn parse_fn(f: &TraitItemFn, errors: &mut Errors) -> Option<Parsed> {
    let before = errors.count;
    let mut event: Option<EventAttr> = None;
    let mut method_attr = MethodAttr::default();
    let mut method_attr_tokens: Option<&Attribute> = None;
    for attr in &f.attrs {
        if attr.path().is_ident(attrs::EVENT) {
            if event.is_some() {
                errors.push(syn::Error::new_spanned(attr, "`#[event]` is given twice"));
                continue;
            }
            let mut parsed = EventAttr::default();
            match attrs::parse_event(attr, &mut parsed) {
                Ok(()) => event = Some(parsed),
                Err(e) => {
                    errors.push(e);
                    event = Some(EventAttr::default());
                }
            }
        } else if attr.path().is_ident(attrs::WITRPC) {
            method_attr_tokens = Some(attr);
            if let Err(e) = attrs::parse_method(attr, &mut method_attr) {
                errors.push(e);
            }
        }
    }
    if let Some(cfg) = f.attrs.iter().find(|a| a.path().is_ident("cfg")) {
        errors.push(syn::Error::new_spanned(
            cfg,
            "`#[cfg]` is not supported on a service method or event: the contract, and the order the generated \
             code numbers methods and events in, must be the same in every build configuration",
        ));
    }
    let sig = &f.sig;
    check_signature(sig, errors);
    if let Some(body) = &f.default {
        let what = if event.is_some() { "an event" } else { "a service method" };
        errors.push(syn::Error::new_spanned(
            body,
            format!(
                "{what} cannot have a default body: the trait only declares the contract; implement methods in an \
                 `impl` block"
            ),
        ));
    }
    let params = parse_params(sig, errors);
    let rust_name = sig.ident.unraw().to_string();

    if let Some(event) = event {
        if let Some(attr) = method_attr_tokens {
            errors.push(syn::Error::new_spanned(
                attr,
                "set an event's wire name with `#[event(name = \"WireName\")]`, not `#[witrpc(..)]`",
            ));
        }
        if let Some(async_token) = &sig.asyncness {
            errors.push(syn::Error::new_spanned(
                async_token,
                "an event is not async: declare it as `#[event] fn name(&self, args..);` and raise it through the \
                 generated `...Events` type",
            ));
        }
        if let ReturnType::Type(_, ty) = &sig.output {
            errors.push(syn::Error::new_spanned(
                ty,
                "an event has no return type: clients receive its arguments and answer nothing",
            ));
        }
        if EVENTS_RESERVED.contains(&rust_name.as_str()) {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                format!(
                    "an event cannot be named `{rust_name}`: it would clash with the generated method of the same \
                     name; rename it and keep the wire name with `#[event(name = \"{}\")]`",
                    naming::wire_name(&rust_name)
                ),
            ));
        }
        if errors.count > before {
            return None;
        }
        let wire_name = event.name.map_or_else(|| naming::wire_name(&rust_name), |n| n.value());
        let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect();
        return params.map(|params| Parsed::Event(EventDef { docs, ident: sig.ident.clone(), wire_name, params }));
    }

    if sig.asyncness.is_none() {
        let fn_token = &sig.fn_token;
        let ident = &sig.ident;
        errors.push(syn::Error::new_spanned(
            quote!(#fn_token #ident),
            "service methods must be `async fn`; to declare an event, mark the method with `#[event]`",
        ));
    }
    if CLIENT_RESERVED.contains(&rust_name.as_str()) {
        errors.push(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "a service method cannot be named `{rust_name}`: it would clash with the generated client's \
                 method of the same name; rename it and keep the wire name with `#[witrpc(name = \"{}\")]`",
                naming::wire_name(&rust_name)
            ),
        ));
    }
    let output = parse_output(&sig.output, errors);
    if errors.count > before {
        return None;
    }
    let (params, output) = (params?, output?);
    let wire_name = method_attr.name.map_or_else(|| naming::wire_name(&rust_name), |n| n.value());
    let mut clean_sig = sig.clone();
    for input in &mut clean_sig.inputs {
        if let FnArg::Typed(arg) = input {
            arg.attrs.retain(|a| !attrs::is_ours(a));
        }
    }
    let kept_attrs = f.attrs.iter().filter(|a| !attrs::is_ours(a)).cloned().collect();
    Some(Parsed::Method(Box::new(MethodDef { attrs: kept_attrs, sig: clean_sig, wire_name, params, output })))
}

/// Checks what methods and events share: the receiver, no generics, no qualifiers.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(t) = &sig.constness {
        errors.push(syn::Error::new_spanned(t, "a service method cannot be `const`"));
    }
    if let Some(t) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(t, "a service method cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, "a service method cannot declare an ABI"));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(v, "a service method cannot be variadic"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let generics = &sig.generics;
        let where_clause = &generics.where_clause;
        errors.push(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            "a service method cannot be generic: every argument must have one concrete type that both ends agree on",
        ));
    }
    match sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(r) => errors.push(syn::Error::new_spanned(
            r,
            "the receiver must be `&self`: calls run concurrently on a shared service (use interior mutability \
             for state)",
        )),
        None => {
            let ident = &sig.ident;
            let inputs = &sig.inputs;
            let paren = if inputs.is_empty() { quote!(#ident) } else { quote!(#ident #inputs) };
            errors.push(syn::Error::new_spanned(
                paren,
                "a service method takes `&self` as its first argument, e.g. `async fn name(&self, ..)`",
            ));
        }
    }
}

fn parse_params(sig: &Signature, errors: &mut Errors) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    let mut ok = true;
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        let mut attr = ParamAttr::default();
        for a in arg.attrs.iter().filter(|a| a.path().is_ident(attrs::WITRPC)) {
            if let Err(e) = attrs::parse_param(a, &mut attr) {
                errors.push(e);
                ok = false;
            }
        }
        if let Some(a) = arg.attrs.iter().find(|a| a.path().is_ident(attrs::EVENT)) {
            errors.push(syn::Error::new_spanned(a, "`#[event]` belongs on a trait method, not on an argument"));
            ok = false;
        }
        let dotnet = match (attr.dotnet, attr.assembly) {
            (Some(type_name), Some(assembly)) => Some(DotNetName { type_name, assembly }),
            (None, None) => None,
            (Some(type_name), None) => {
                errors.push(syn::Error::new_spanned(
                    &type_name,
                    "`dotnet` needs `assembly` too: .NET clients resolve the type by name and assembly, e.g. \
                     #[witrpc(dotnet = \"MyNamespace.MyDto\", assembly = \"MyAssembly\")]",
                ));
                ok = false;
                None
            }
            (None, Some(assembly)) => {
                errors.push(syn::Error::new_spanned(
                    &assembly,
                    "`assembly` needs `dotnet` too: name the .NET type, e.g. \
                     #[witrpc(dotnet = \"MyNamespace.MyDto\", assembly = \"MyAssembly\")]",
                ));
                ok = false;
                None
            }
        };
        let ident = match &*arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    "arguments of a service trait must be plain names such as `value: Type`: the name identifies \
                     the argument in errors",
                ));
                ok = false;
                continue;
            }
        };
        if !check_type(&arg.ty, errors) {
            ok = false;
            continue;
        }
        params.push(Param { ident, value: value(&arg.ty), dotnet });
    }
    ok.then_some(params)
}

fn parse_output(output: &ReturnType, errors: &mut Errors) -> Option<Output> {
    let ty = match output {
        ReturnType::Default => return Some(Output::Unit),
        ReturnType::Type(_, ty) => &**ty,
    };
    if let Some((ok, err)) = result_args(ty) {
        // Only `Ok` crosses the wire as a value; `Err` travels as its `Display` text, so
        // any error type works (`Box<dyn Error + Send + Sync>` included).
        if !check_type(ok, errors) {
            return None;
        }
        let ok = (!is_unit(ok)).then(|| value(ok));
        return Some(Output::Result { ok, err: Box::new(err.clone()) });
    }
    if !check_type(ty, errors) {
        return None;
    }
    if is_unit(ty) {
        return Some(Output::Unit);
    }
    Some(Output::Value(value(ty)))
}

/// Wire names must be unique (.NET matches method names case-insensitively).
fn check_names(methods: &[MethodDef], events: &[EventDef], errors: &mut Errors) {
    let mut seen: Vec<(String, &Ident)> = Vec::new();
    for m in methods {
        check_unique(&mut seen, &m.wire_name, &m.sig.ident, "method", errors);
    }
    let mut seen = Vec::new();
    for e in events {
        check_unique(&mut seen, &e.wire_name, &e.ident, "event", errors);
    }
}

fn check_unique<'a>(
    seen: &mut Vec<(String, &'a Ident)>,
    wire: &str,
    ident: &'a Ident,
    what: &str,
    errors: &mut Errors,
) {
    let key = naming::collision_key(wire);
    if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
        errors.push(syn::Error::new_spanned(
            ident,
            format!(
                "the {what} wire name `{wire}` is already used by `{first}` (names are compared case-insensitively); \
                 rename one of them or set its wire name with an attribute"
            ),
        ));
    } else {
        seen.push((key, ident));
    }
}
