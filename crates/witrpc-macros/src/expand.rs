//! `#[service]`: parse the attribute and the trait, then render each generated item.

use proc_macro2::TokenStream;
use syn::ItemTrait;
use syn::parse::Parser;

use crate::attrs::ServiceArgsBuilder;
use crate::{parse, render_client, render_descriptor, render_events, render_server, render_trait};

/// Expands `#[service(attr)] item`; errors become `compile_error!`s.
pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut builder = ServiceArgsBuilder::default();
    let args = syn::meta::parser(|meta| builder.parse(meta)).parse2(attr).and_then(|()| builder.finish());
    let item = match syn::parse2::<ItemTrait>(item) {
        Ok(item) => item,
        Err(mut e) => {
            if let Err(args_error) = args {
                e.combine(args_error);
            }
            return e.into_compile_error();
        }
    };
    let def = match parse::parse(args, item) {
        Ok(def) => def,
        Err(e) => return e.into_compile_error(),
    };
    let mut out = render_trait::render(&def);
    out.extend(render_descriptor::render(&def));
    out.extend(render_server::render(&def));
    out.extend(render_client::render(&def));
    out.extend(render_events::render(&def));
    out
}
