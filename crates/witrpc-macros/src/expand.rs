//! `#[service]`: parse the attribute and the trait, then render each generated item.

use proc_macro2::TokenStream;
use syn::ItemTrait;

use crate::{render_client, render_descriptor, render_events, render_server, render_trait};

/// Expands `#[service(attr)] item`; errors become `compile_error!`s.
pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = witrpc_contract::parse_args(attr);
    let item = match syn::parse2::<ItemTrait>(item) {
        Ok(item) => item,
        Err(mut e) => {
            if let Err(args_error) = args {
                e.combine(args_error);
            }
            return e.into_compile_error();
        }
    };
    let def = match witrpc_contract::parse(args, item) {
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
