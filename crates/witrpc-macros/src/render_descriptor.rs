//! The hidden `static` `ServiceDescriptor`: wire names and .NET type names of the contract.
//!
//! Type names are looked up through `DotNetType` at first use (ids are computed lazily by
//! `ServiceDescriptor::resolved`), unless an argument names its .NET type in the attribute.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use witrpc_contract::{Param, ServiceDef};

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    let root = &def.root;
    let name = def.descriptor_ident();
    let contract = &def.contract;
    let methods = def.methods.iter().map(|m| {
        let wire = &m.wire_name;
        let names = m.params.iter().map(Param::name);
        let types = type_list(def, &m.params);
        let by_name = by_name_list(def, &m.params);
        quote! {
            #root::MethodDescriptor {
                name: #wire,
                parameter_names: &[#(#names),*],
                parameter_types: #types,
                parameter_types_by_name: #by_name,
            }
        }
    });
    let events = def.events.iter().map(|e| {
        let wire = &e.wire_name;
        let by_name = by_name_list(def, &e.params);
        quote! {
            #root::EventDescriptor {
                name: #wire,
                parameter_types_by_name: #by_name,
            }
        }
    });
    quote! {
        #[allow(dead_code, reason = "used by whichever generated types the program uses")]
        static #name: #root::ServiceDescriptor = #root::ServiceDescriptor {
            contract: #contract,
            methods: &[#(#methods),*],
            events: &[#(#events),*],
            resolved: ::std::sync::OnceLock::new(),
        };
    }
}

/// `fn() -> Vec<String>`: the stable names that go into the `MethodId`.
fn type_list(def: &ServiceDef, params: &[Param]) -> TokenStream {
    let root = &def.root;
    let items = params.iter().map(|p| match &p.dotnet {
        Some(dotnet) => {
            let name = &dotnet.type_name;
            quote!(::std::string::String::from(#name))
        }
        None => {
            let ty = &p.value.ty;
            quote_spanned!(ty.span()=> <#ty as #root::DotNetType>::stable_name())
        }
    });
    list(items.collect())
}

/// `fn() -> Vec<ParameterType>`: full names and assemblies.
fn by_name_list(def: &ServiceDef, params: &[Param]) -> TokenStream {
    let root = &def.root;
    let items = params.iter().map(|p| {
        let (type_name, assembly) = match &p.dotnet {
            Some(dotnet) => {
                let (name, assembly) = (&dotnet.type_name, &dotnet.assembly);
                (quote!(::std::string::String::from(#name)), quote!(::std::string::String::from(#assembly)))
            }
            None => {
                let ty = &p.value.ty;
                (
                    quote_spanned!(ty.span()=> <#ty as #root::DotNetType>::full_name()),
                    quote_spanned!(ty.span()=> <#ty as #root::DotNetType>::assembly()),
                )
            }
        };
        quote! {
            #root::ParameterType {
                type_name: ::core::option::Option::Some(#type_name),
                assembly: ::core::option::Option::Some(#assembly),
            }
        }
    });
    list(items.collect())
}

fn list(items: Vec<TokenStream>) -> TokenStream {
    if items.is_empty() { quote!(::std::vec::Vec::new) } else { quote!(|| ::std::vec![#(#items),*]) }
}
