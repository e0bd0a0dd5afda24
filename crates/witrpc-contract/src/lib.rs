#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! The contract rules of witrpc, in one place.
//!
//! A WitRPC contract is a .NET interface: its methods and events have wire names, and each
//! method's id is a hash over the .NET names of its parameter types. Three tools must agree
//! on those rules: the `#[service]` macro and `#[derive(DotNetType)]` (in `witrpc-macros`),
//! and the TypeScript generator (`cargo xtask gen-ts`). They all read a contract through
//! this crate, so they cannot drift apart; `witrpc-core`'s tests check its run-time
//! `DotNetType` impls against the same [`dotnet`] table.
//!
//! - [`parse()`] checks a `#[service]` trait and describes it as a [`ServiceDef`] (methods,
//!   events, wire names, parameter types, return shapes); [`parse_args`] reads the
//!   attribute's arguments.
//! - [`dotnet`]: the Rust → .NET type table, the generic forms (`List<T>`, `Nullable<T>`,
//!   `Dictionary<K,V>`), and the rule that names a user's DTO (`#[dotnet(..)]`).
//! - [`naming`]: wire names (PascalCase), case-insensitive collisions, generated constants.
//!
//! It is a build-time crate: it depends on `syn`, `proc-macro2`, `quote` and `heck` only,
//! and nothing at run time depends on it. See `ARCHITECTURE.md` at the repository root for
//! where it sits.
//!
//! ```
//! let item: syn::ItemTrait = syn::parse_quote! {
//!     pub trait Calculator {
//!         async fn add(&self, a: i32, b: i32) -> i32;
//!         #[event]
//!         fn progress_changed(&self, percent: f64);
//!     }
//! };
//! let args = witrpc_contract::parse_args(quote::quote!(contract = "MyCompany.ICalculator"));
//! let def = witrpc_contract::parse(args, item).expect("a valid contract");
//! assert_eq!(def.methods[0].wire_name, "Add");
//! assert_eq!(def.events[0].wire_name, "ProgressChanged");
//! assert_eq!(def.namespace(), "MyCompany");
//! ```

mod attrs;
pub mod dotnet;
mod model;
pub mod naming;
mod parse;
mod types;

pub use attrs::{DEFAULT_ROOT, EVENT, ServiceArgs, WITRPC, is_ours};
pub use model::{DotNetName, EventDef, MethodDef, Output, Param, ServiceDef, Value, WireKind};
pub use parse::{parse, parse_args};

/// Re-exported: the model is made of `syn` syntax trees.
pub use proc_macro2;
/// Re-exported: the model is made of `syn` syntax trees.
pub use syn;
