//! The expressions that turn one value into bytes and back, shared by the renderers.
//!
//! `Vec<u8>` goes through `ByteArray` / `ByteArrayRef` so JSON carries base64, as .NET
//! writes `byte[]`; every other type goes through its own serde impls.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Path};

use witrpc_contract::{Value, WireKind};

/// `Result<T, ParameterError>` decoding `value` from `bytes` (a `&[u8]`, empty = null).
pub(crate) fn decode(root: &Path, value: &Value, serializer: &TokenStream, bytes: &TokenStream) -> TokenStream {
    let ty = &value.ty;
    match value.kind {
        // Spanned on the type, so a missing `Deserialize` impl is reported on it.
        WireKind::Plain => quote_spanned!(ty.span()=> #root::decode_value::<#ty>(#serializer, #bytes)),
        WireKind::Bytes => quote! {
            #root::decode_value::<#root::ByteArray>(#serializer, #bytes).map(|__witrpc_v| __witrpc_v.0)
        },
        WireKind::OptionalBytes => quote! {
            #root::decode_value::<::core::option::Option<#root::ByteArray>>(#serializer, #bytes)
                .map(|__witrpc_v| __witrpc_v.map(|__witrpc_b| __witrpc_b.0))
        },
    }
}

/// A reference to something serializable that encodes `expr` (a place of `value`'s type)
/// the way .NET expects.
pub(crate) fn serializable(root: &Path, value: &Value, expr: &TokenStream) -> TokenStream {
    match value.kind {
        WireKind::Plain => quote_spanned!(value.ty.span()=> &#expr),
        WireKind::Bytes => quote!(&#root::ByteArrayRef(&#expr)),
        WireKind::OptionalBytes => quote!(&#expr.as_deref().map(#root::ByteArrayRef)),
    }
}

/// `Result<Vec<u8>, ParameterError>` encoding `expr` (a place of `value`'s type).
pub(crate) fn encode(root: &Path, value: &Value, serializer: &TokenStream, expr: &TokenStream) -> TokenStream {
    let arg = serializable(root, value, expr);
    quote_spanned!(value.ty.span()=> #root::encode_value(#serializer, #arg))
}

/// The next argument blob of the iterator `iter` over `Bytes`, empty (= null) when missing.
pub(crate) fn next_blob(iter: &TokenStream) -> TokenStream {
    quote!(#iter.next().map_or(&[][..], |__witrpc_b| &__witrpc_b[..]))
}

/// The doc attributes of `attrs`, repeated on generated items.
pub(crate) fn docs(attrs: &[Attribute]) -> TokenStream {
    let docs = attrs.iter().filter(|a| a.path().is_ident("doc"));
    quote!(#(#docs)*)
}
