//! `XClient<C>`: one async method per contract method, one event stream per event.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use witrpc_contract::{EventDef, MethodDef, Output, ServiceDef, Value};

use crate::codec::{self, docs};

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    let root = &def.root;
    let vis = &def.vis;
    let trait_ident = &def.ident;
    let client = def.client_ident();
    let desc = def.descriptor_ident();
    let client_name = client.to_string();
    let doc = format!(
        " Calls a remote [`{trait_ident}`] through a connection `C` (such as the witrpc client).\n\n \
         Cheap to clone when `C` is; clones share the connection, and calls may run concurrently."
    );
    let methods = def.methods.iter().enumerate().map(|(index, m)| render_method(def, index, m));
    let events = def.events.iter().enumerate().map(|(index, e)| render_event(def, index, e));
    quote! {
        #[doc = #doc]
        #[derive(Clone)]
        #[allow(dead_code, reason = "not every program uses every generated type")]
        #vis struct #client<C: #root::ClientChannel> {
            channel: C,
        }

        impl<C: #root::ClientChannel> ::core::fmt::Debug for #client<C> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#client_name).field("contract", &#desc.contract).finish_non_exhaustive()
            }
        }

        #[allow(dead_code, reason = "not every program uses every generated method")]
        impl<C: #root::ClientChannel> #client<C> {
            /// Calls the contract through `channel`.
            #vis fn new(channel: C) -> Self {
                Self { channel }
            }

            /// The connection this client calls through.
            #vis fn channel(&self) -> &C {
                &self.channel
            }

            /// The contract: its .NET name, methods and events.
            #vis fn descriptor() -> &'static #root::ServiceDescriptor {
                &#desc
            }

            #(#methods)*

            #(#events)*
        }
    }
}

fn render_method(def: &ServiceDef, index: usize, m: &MethodDef) -> TokenStream {
    let root = &def.root;
    let vis = &def.vis;
    let desc = def.descriptor_ident();
    let ident = &m.sig.ident;
    let user_docs = docs(&m.attrs);
    let separator = (!user_docs.is_empty()).then(|| quote!(#[doc = ""]));
    let error_docs = match &m.output {
        Output::Result { .. } => {
            " When an argument cannot be encoded, the call fails on the connection, the result \
                                   cannot be decoded, or the remote method returns `Err` (its message arrives in \
                                   the connection's error)."
        }
        _ => {
            " When an argument cannot be encoded, the call fails on the connection, or the result cannot be \
               decoded."
        }
    };
    let summary = format!(" Calls the remote method `{}` and waits for its result.", m.wire_name);
    let serializer = quote!(__witrpc_serializer);
    let params = m.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.value.ty);
        quote!(#ident: #ty)
    });
    let encoded = m.params.iter().map(|p| {
        let place = &p.ident;
        let encode = codec::encode(root, &p.value, &serializer, &quote!(#place));
        let name = p.name();
        quote! {
            #root::bytes::Bytes::from(#encode.map_err(|__witrpc_e| __witrpc_e.for_value(#name))?)
        }
    });
    let parameters = if m.params.is_empty() {
        quote!(::std::vec::Vec::new())
    } else {
        quote! {{
            let #serializer: &dyn #root::ParameterSerializer = &**self.channel.serializer();
            ::std::vec![#(#encoded),*]
        }}
    };
    let returned: Option<&Value> = match &m.output {
        Output::Unit | Output::Result { ok: None, .. } => None,
        Output::Value(value) | Output::Result { ok: Some(value), .. } => Some(value),
    };
    let ret_ty = returned.map_or_else(|| quote!(()), |v| v.ty.to_token_stream());
    let invoke = quote! {
        self.channel.invoke(#root::OutgoingCall {
            contract: &#desc,
            method: #index,
            parameters: __witrpc_parameters,
        }).await?
    };
    let finish = match returned {
        None => quote! {
            #invoke;
            ::core::result::Result::Ok(())
        },
        Some(value) => {
            let bytes = quote!(__witrpc_data.as_deref().unwrap_or_default());
            let decode = codec::decode(root, value, &serializer, &bytes);
            quote! {
                let __witrpc_data = #invoke;
                let #serializer: &dyn #root::ParameterSerializer = &**self.channel.serializer();
                #decode.map_err(|__witrpc_e| {
                    <<C as #root::ClientChannel>::Error as ::core::convert::From<#root::ParameterError>>::from(
                        __witrpc_e.for_value("result"),
                    )
                })
            }
        }
    };
    quote! {
        #user_docs
        #separator
        #[doc = #summary]
        ///
        /// # Errors
        #[doc = #error_docs]
        ///
        /// # Cancel safety
        /// Dropping the future abandons the wait, not the call: once sent, the server still runs it.
        #vis async fn #ident(&self, #(#params),*)
            -> ::core::result::Result<#ret_ty, <C as #root::ClientChannel>::Error>
        {
            let __witrpc_parameters = #parameters;
            #finish
        }
    }
}

fn render_event(def: &ServiceDef, index: usize, e: &EventDef) -> TokenStream {
    let root = &def.root;
    let vis = &def.vis;
    let desc = def.descriptor_ident();
    let ident = &e.ident;
    let user_docs = docs(&e.docs);
    let separator = (!user_docs.is_empty()).then(|| quote!(#[doc = ""]));
    let summary = format!(
        " Subscribes to the `{}` event: a stream of its arguments, from now until the connection closes.",
        e.wire_name
    );
    let item = match e.params.as_slice() {
        [] => " Each item is `()`.".to_owned(),
        [one] => format!(" Each item is the event's `{}`.", one.name()),
        many => {
            format!(" Each item is the tuple `({})`.", many.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "))
        }
    };
    let (args_ty, decoder) = render_decoder(def, e);
    quote! {
        #user_docs
        #separator
        #[doc = #summary]
        #[doc = #item]
        /// A subscriber that falls behind gets an `EventError::Lagged` item where events were
        /// dropped; arguments that cannot be decoded give an `EventError::Decode` item.
        #vis fn #ident(&self) -> #root::EventStream<#args_ty> {
            #decoder
            #root::EventStream::new(
                self.channel.subscribe(&#desc, #index),
                ::std::sync::Arc::clone(self.channel.serializer()),
                __witrpc_decode,
            )
        }
    }
}

/// The item type of an event's stream and the `fn __witrpc_decode` producing it.
fn render_decoder(def: &ServiceDef, e: &EventDef) -> (TokenStream, TokenStream) {
    let root = &def.root;
    let types = e.params.iter().map(|p| &p.value.ty);
    let idents: Vec<_> = e.params.iter().map(|p| &p.ident).collect();
    let (args_ty, value) = match e.params.as_slice() {
        [] => (quote!(()), quote!(())),
        [one] => {
            let (ty, ident) = (&one.value.ty, &one.ident);
            (quote!(#ty), quote!(#ident))
        }
        _ => (quote!((#(#types),*)), quote!((#(#idents),*))),
    };
    if e.params.is_empty() {
        let decoder = quote! {
            fn __witrpc_decode(
                _: &dyn #root::ParameterSerializer,
                _: &[#root::bytes::Bytes],
            ) -> ::core::result::Result<(), #root::ParameterError> {
                ::core::result::Result::Ok(())
            }
        };
        return (args_ty, decoder);
    }
    let serializer = quote!(__witrpc_serializer);
    let blobs = quote!(__witrpc_blobs);
    let next = codec::next_blob(&blobs);
    let decode_args = e.params.iter().map(|p| {
        let ident = &p.ident;
        let name = p.name();
        let decode = codec::decode(root, &p.value, &serializer, &next);
        quote! {
            let #ident = #decode.map_err(|__witrpc_e| __witrpc_e.for_value(#name))?;
        }
    });
    let decoder = quote! {
        fn __witrpc_decode(
            #serializer: &dyn #root::ParameterSerializer,
            __witrpc_args: &[#root::bytes::Bytes],
        ) -> ::core::result::Result<#args_ty, #root::ParameterError> {
            let mut #blobs = __witrpc_args.iter();
            #(#decode_args)*
            ::core::result::Result::Ok(#value)
        }
    };
    (args_ty, decoder)
}
