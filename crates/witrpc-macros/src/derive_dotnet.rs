//! `#[derive(DotNetType)]`: names a user's struct or enum as a .NET type.
//!
//! The name comes from `witrpc_contract::dotnet::dto_attr`, the rule gen-ts applies too, so
//! the TypeScript client computes the same method ids.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Path};
use witrpc_contract::DEFAULT_ROOT;
use witrpc_contract::dotnet::dto_attr;

/// Expands the derive; errors become `compile_error!`s.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(e) => e.into_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new_spanned(
            u.union_token,
            "`DotNetType` cannot be derived for a union: a union has no serde representation to send; use a \
             struct or an enum",
        ));
    }
    let attr = dto_attr(&input.attrs, &input.ident, &input.generics)?;
    let root = match attr.root {
        Some(root) => root,
        None => syn::parse_str::<Path>(DEFAULT_ROOT)?,
    };
    let ident = &input.ident;
    let (type_name, assembly) = (&attr.name.type_name, &attr.name.assembly);
    let value_type = attr.name.value_type.then(|| {
        quote! {
            fn is_value_type() -> bool {
                true
            }
        }
    });
    Ok(quote! {
        impl #root::DotNetType for #ident {
            fn stable_name() -> ::std::string::String {
                ::std::string::String::from(#type_name)
            }
            fn assembly() -> ::std::string::String {
                ::std::string::String::from(#assembly)
            }
            #value_type
        }
    })
}
