//! `XServer<T>`: implements `Service` by decoding arguments, calling `T` and encoding the result.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use witrpc_contract::{MethodDef, Output, ServiceDef};

use crate::codec;

/// `MethodError::Failed` details for an index the descriptor does not have.
const UNKNOWN_METHOD: &str = "unknown method index";

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    let root = &def.root;
    let vis = &def.vis;
    let trait_ident = &def.ident;
    let server = def.server_ident();
    let desc = def.descriptor_ident();
    let has_events = !def.events.is_empty();

    let doc = format!(
        " Serves a [`{trait_ident}`] implementation: hand it to the server (`with_service`).\n\n \
         Calls run concurrently on the shared `T`; each one decodes its arguments with the server's \
         parameter serializer, awaits the method and encodes the result."
    );
    let events_field = has_events.then(|| quote!(events: ::core::option::Option<#root::EventEmitter>,));
    let events_init = has_events.then(|| quote!(events: ::core::option::Option::None,));
    let events_clone = has_events.then(|| quote!(events: ::core::clone::Clone::clone(&self.events),));
    let events_debug = has_events.then(|| quote!(.field("events", &self.events)));
    let with_events = has_events.then(|| {
        let events = def.events_ident();
        let doc = format!(
            " Delivers the events raised through `events` to this server's clients.\n\n \
             Without it, events raised through a [`{events}`] reach no client."
        );
        quote! {
            #[doc = #doc]
            #[must_use]
            #vis fn with_events(mut self, events: &#events) -> Self {
                self.events = ::core::option::Option::Some(::core::clone::Clone::clone(events.emitter()));
                self
            }
        }
    });
    let event_emitter = has_events.then(|| {
        quote! {
            fn event_emitter(&self) -> ::core::option::Option<&#root::EventEmitter> {
                self.events.as_ref()
            }
        }
    });
    let call = render_call(def);
    let server_name = server.to_string();

    quote! {
        #[doc = #doc]
        #[allow(dead_code, reason = "not every program uses every generated type")]
        #vis struct #server<T> {
            service: ::std::sync::Arc<T>,
            #events_field
        }

        impl<T> ::core::clone::Clone for #server<T> {
            fn clone(&self) -> Self {
                Self { service: ::std::sync::Arc::clone(&self.service), #events_clone }
            }
        }

        impl<T> ::core::fmt::Debug for #server<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#server_name)
                    .field("contract", &#desc.contract)
                    #events_debug
                    .finish_non_exhaustive()
            }
        }

        #[allow(dead_code, reason = "not every program uses every generated method")]
        impl<T: #trait_ident> #server<T> {
            /// Serves `service`.
            #vis fn new(service: T) -> Self {
                Self::from_arc(::std::sync::Arc::new(service))
            }

            /// Serves a `service` that is shared with other code.
            #vis fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                Self { service, #events_init }
            }

            #with_events

            /// The contract: its .NET name, methods and events.
            #vis fn descriptor() -> &'static #root::ServiceDescriptor {
                &#desc
            }
        }

        impl<T: #trait_ident> #root::Service for #server<T> {
            fn descriptor(&self) -> &'static #root::ServiceDescriptor {
                &#desc
            }

            #call

            #event_emitter
        }
    }
}

/// `Service::call`: one match arm per method, each a boxed `'static` future.
fn render_call(def: &ServiceDef) -> TokenStream {
    let root = &def.root;
    let result_ty = quote! {
        ::core::result::Result<::core::option::Option<::std::vec::Vec<u8>>, #root::MethodError>
    };
    let unknown = quote! {
        ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(#root::MethodError::Failed {
            details: ::std::string::String::from(#UNKNOWN_METHOD),
        })))
    };
    if def.methods.is_empty() {
        return quote! {
            fn call(&self, _: usize, _: #root::MethodCall) -> #root::BoxFuture<'static, #result_ty> {
                #unknown
            }
        };
    }
    let arms = def.methods.iter().enumerate().map(|(index, m)| {
        let body = render_arm(def, m);
        quote!(#index => #body,)
    });
    quote! {
        fn call(
            &self,
            __witrpc_method: usize,
            __witrpc_call: #root::MethodCall,
        ) -> #root::BoxFuture<'static, #result_ty> {
            match __witrpc_method {
                #(#arms)*
                _ => #unknown,
            }
        }
    }
}

fn render_arm(def: &ServiceDef, m: &MethodDef) -> TokenStream {
    let root = &def.root;
    let trait_ident = &def.ident;
    let method = &m.sig.ident;
    let serializer = quote!(__witrpc_serializer);
    let blobs = quote!(__witrpc_parameters);
    let next = codec::next_blob(&blobs);
    let decode_args = m.params.iter().map(|p| {
        let ident = &p.ident;
        let name = p.name();
        let decode = codec::decode(root, &p.value, &serializer, &next);
        quote! {
            let #ident = #decode.map_err(|__witrpc_e| {
                #root::MethodError::InvalidArgument(__witrpc_e.for_value(#name))
            })?;
        }
    });
    let iter = (!m.params.is_empty()).then(|| quote!(let mut #blobs = __witrpc_call.parameters.iter();));
    let args = m.params.iter().map(|p| &p.ident);
    let invoke = quote!(<T as #trait_ident>::#method(&__witrpc_service, #(#args),*).await);
    let ok = |value: TokenStream| quote!(::core::result::Result::<::core::option::Option<::std::vec::Vec<u8>>, #root::MethodError>::Ok(#value));
    let encode = |value: &witrpc_contract::Value| {
        let place = quote!(__witrpc_value);
        let encode = codec::encode(root, value, &serializer, &place);
        let done = ok(quote!(if __witrpc_bytes.is_empty() {
            ::core::option::Option::None
        } else {
            ::core::option::Option::Some(__witrpc_bytes)
        }));
        quote! {
            let __witrpc_bytes = #encode.map_err(|__witrpc_e| {
                #root::MethodError::EncodeResult(__witrpc_e.for_value("result"))
            })?;
            #done
        }
    };
    let failed = |err: &syn::Type| {
        // Spanned on the error type, so a missing `Display` impl is reported on it.
        quote_spanned! {err.span()=>
            .map_err(|__witrpc_e| #root::MethodError::Failed {
                details: ::std::string::ToString::to_string(&__witrpc_e),
            })?
        }
    };
    let finish = match &m.output {
        Output::Unit => {
            let none = ok(quote!(::core::option::Option::None));
            quote! { #invoke; #none }
        }
        Output::Value(value) => {
            let encode = encode(value);
            quote! { let __witrpc_value = #invoke; #encode }
        }
        Output::Result { ok: None, err } => {
            let failed = failed(err);
            let none = ok(quote!(::core::option::Option::None));
            quote! { #invoke #failed; #none }
        }
        Output::Result { ok: Some(value), err } => {
            let failed = failed(err);
            let encode = encode(value);
            quote! { let __witrpc_value = #invoke #failed; #encode }
        }
    };
    let serializer_binding = (!m.params.is_empty()
        || matches!(m.output, Output::Value(_) | Output::Result { ok: Some(_), .. }))
    .then(|| quote!(let #serializer: &dyn #root::ParameterSerializer = &*__witrpc_call.serializer;));
    let keep_call = serializer_binding.is_none().then(|| quote!(let _ = __witrpc_call;));
    let service = format_ident!("__witrpc_service");
    quote! {{
        #keep_call
        let #service = ::std::sync::Arc::clone(&self.service);
        ::std::boxed::Box::pin(async move {
            #serializer_binding
            #iter
            #(#decode_args)*
            #finish
        })
    }}
}
