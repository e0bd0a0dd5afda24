//! `XEvents`: the handle a service raises its events through (only for traits with events).

use proc_macro2::TokenStream;
use quote::quote;

use witrpc_contract::{EventDef, ServiceDef};

use crate::codec::{self, docs};

pub(crate) fn render(def: &ServiceDef) -> TokenStream {
    if def.events.is_empty() {
        return TokenStream::new();
    }
    let root = &def.root;
    let vis = &def.vis;
    let trait_ident = &def.ident;
    let events = def.events_ident();
    let server = def.server_ident();
    let desc = def.descriptor_ident();
    let doc = format!(
        " Raises the events of [`{trait_ident}`]; cheap to clone, clones raise through the same emitter.\n\n \
         Give one to your service and the same to [`{server}::with_events`]; while a server runs, every \
         event reaches each authorized client. Before that it reaches nobody, which is correct: nobody is \
         connected."
    );
    let raisers = def.events.iter().enumerate().map(|(index, e)| render_raise(def, index, e));
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug, Default)]
        #[allow(dead_code, reason = "not every program uses every generated type")]
        #vis struct #events {
            emitter: #root::EventEmitter,
        }

        #[allow(dead_code, reason = "not every program uses every generated method")]
        impl #events {
            /// A new emitter, attached to no server yet.
            #vis fn new() -> Self {
                Self::default()
            }

            /// The underlying emitter, which a server attaches to.
            #vis fn emitter(&self) -> &#root::EventEmitter {
                &self.emitter
            }

            /// The contract: its .NET name, methods and events.
            #vis fn descriptor() -> &'static #root::ServiceDescriptor {
                &#desc
            }

            #(#raisers)*
        }
    }
}

fn render_raise(def: &ServiceDef, index: usize, e: &EventDef) -> TokenStream {
    let root = &def.root;
    let vis = &def.vis;
    let desc = def.descriptor_ident();
    let ident = &e.ident;
    let user_docs = docs(&e.docs);
    let separator = (!user_docs.is_empty()).then(|| quote!(#[doc = ""]));
    let summary = format!(" Raises the `{}` event on every attached server; does not wait for delivery.", e.wire_name);
    let params = e.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.value.ty);
        quote!(#ident: #ty)
    });
    let args = e.params.iter().map(|p| {
        let ident = &p.ident;
        codec::serializable(root, &p.value, &quote!(#ident))
    });
    quote! {
        #user_docs
        #separator
        #[doc = #summary]
        ///
        /// # Errors
        /// When an argument cannot be encoded; the event is then sent to nobody.
        #vis fn #ident(&self, #(#params),*) -> ::core::result::Result<(), #root::ParameterError> {
            self.emitter.emit(&#desc, #index, &[#(#args),*])
        }
    }
}
