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
         connected.\n\n \
         To raise an event to fewer clients, pick them first: `events.to_group(\"room\")`, \
         `events.to_user(\"ann\")`, `events.to_connection(id)`, each optionally `.except(id)` or \
         `.except_caller()`, returns a handle whose events reach only those (on every node of a \
         cluster); `events.to_all()` is everyone again. Delivery is exact: a targeted event never \
         reaches another connection."
    );
    let raisers = def.events.iter().enumerate().map(|(index, e)| render_raise(def, index, e));
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug, Default)]
        #[allow(dead_code, reason = "not every program uses every generated type")]
        #vis struct #events {
            emitter: #root::EventEmitter,
            audience: #root::Audience,
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

            /// Raises this handle's events to every authorized connection.
            #[must_use]
            #vis fn to_all(&self) -> Self {
                self.to(#root::Audience::all())
            }

            /// Raises this handle's events to connection `id` only
            /// ([`CallContext::connection_id`](#root::CallContext)).
            #[must_use]
            #vis fn to_connection(&self, id: #root::Uuid) -> Self {
                self.to(#root::Audience::connection(id))
            }

            /// Raises this handle's events to every connection of user `name` only (the
            /// identity an access-token validator gave them).
            #[must_use]
            #vis fn to_user(&self, name: impl ::core::convert::Into<::std::sync::Arc<str>>) -> Self {
                self.to(#root::Audience::user(name))
            }

            /// Raises this handle's events to the connections in group `name` only.
            #[must_use]
            #vis fn to_group(&self, name: impl ::core::convert::Into<::std::sync::Arc<str>>) -> Self {
                self.to(#root::Audience::group(name))
            }

            /// Leaves connection `id` out of this handle's receivers.
            #[must_use]
            #vis fn except(&self, id: #root::Uuid) -> Self {
                self.to(self.audience.clone().except(id))
            }

            /// Leaves the connection of the call being served out (no change outside a call).
            #[must_use]
            #vis fn except_caller(&self) -> Self {
                match #root::CallContext::current() {
                    ::core::option::Option::Some(caller) => self.except(caller.connection_id),
                    ::core::option::Option::None => self.clone(),
                }
            }

            /// Raises this handle's events to `audience`.
            #[must_use]
            #vis fn to(&self, audience: #root::Audience) -> Self {
                Self { emitter: self.emitter.clone(), audience }
            }

            /// Who this handle's events go to.
            #vis fn audience(&self) -> &#root::Audience {
                &self.audience
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
    let summary = format!(
        " Raises the `{}` event to this handle's audience on every attached server; does not wait for delivery.",
        e.wire_name
    );
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
            self.emitter.emit_to(&self.audience, &#desc, #index, &[#(#args),*])
        }
    }
}
