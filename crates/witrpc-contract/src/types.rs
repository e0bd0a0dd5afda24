//! Which types may cross the wire, and which need an adapter to look like .NET's.
//!
//! Everything here is syntactic: the macro sees tokens, not resolved types, so a type
//! alias of `Vec<u8>` is not recognised as bytes, and `Result` means any path ending in
//! `Result` with two type arguments.

use syn::{GenericArgument, PathArguments, Type};

use crate::model::{Value, WireKind};
use crate::parse::Errors;

/// Rejects types that cannot cross the wire as themselves; returns whether `ty` is fine.
pub(crate) fn check_type(ty: &Type, errors: &mut Errors) -> bool {
    let problem = match ty {
        Type::ImplTrait(_) => Some(
            "`impl Trait` is not supported in a service trait: the server must decode one concrete type; \
             name it",
        ),
        Type::Reference(_) => Some(
            "borrowed types are not supported in a service trait: values are decoded from the wire into owned \
             values; use an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
        ),
        Type::TraitObject(_) => {
            Some("`dyn Trait` is not supported in a service trait: the wire needs one concrete type; name it")
        }
        Type::Infer(_) => Some("write the type out: `_` is not allowed in a service trait"),
        Type::Ptr(_) | Type::BareFn(_) | Type::Never(_) => {
            Some("this type cannot be sent over the wire; use a serializable data type")
        }
        Type::Path(p) if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") => {
            Some("`Self` is not supported in a service trait: the contract's types must not depend on the implementor")
        }
        _ => None,
    };
    if let Some(message) = problem {
        errors.push(syn::Error::new_spanned(ty, message));
        return false;
    }
    match ty {
        Type::Path(p) => {
            let mut ok = p.qself.as_ref().is_none_or(|q| check_type(&q.ty, errors));
            for segment in &p.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(t) = arg {
                            ok &= check_type(t, errors);
                        }
                    }
                }
            }
            ok
        }
        Type::Tuple(t) => {
            // Not `all`: every element is checked, so every bad type is reported.
            let mut ok = true;
            for elem in &t.elems {
                ok &= check_type(elem, errors);
            }
            ok
        }
        Type::Array(a) => check_type(&a.elem, errors),
        Type::Slice(s) => check_type(&s.elem, errors),
        Type::Paren(p) => check_type(&p.elem, errors),
        Type::Group(g) => check_type(&g.elem, errors),
        _ => true,
    }
}

pub(crate) fn value(ty: &Type) -> Value {
    let kind = if is_vec_u8(ty) {
        WireKind::Bytes
    } else if generic_arg(ty, "Option").is_some_and(is_vec_u8) {
        WireKind::OptionalBytes
    } else {
        WireKind::Plain
    };
    Value { ty: ty.clone(), kind }
}

pub(crate) fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => strip(&p.elem),
        Type::Group(g) => strip(&g.elem),
        other => other,
    }
}

pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(strip(ty), Type::Tuple(t) if t.elems.is_empty())
}

fn is_vec_u8(ty: &Type) -> bool {
    generic_arg(ty, "Vec")
        .is_some_and(|inner| matches!(strip(inner), Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8")))
}

/// The generic type arguments of `ty` when its last path segment is `name`.
pub(crate) fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(p) = strip(ty) else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    args.args.iter().map(|a| if let GenericArgument::Type(t) = a { Some(t) } else { None }).collect()
}

fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    match generic_args(ty, name)?.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// `Ok` and `Err` types of a return type written `Result<T, E>` (any path ending in `Result`).
pub(crate) fn result_args(ty: &Type) -> Option<(&Type, &Type)> {
    match generic_args(ty, "Result")?.as_slice() {
        [ok, err] => Some((ok, err)),
        _ => None,
    }
}
