#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! The `#[service]` attribute of witrpc: one trait becomes a served contract, a typed
//! client and an event emitter. Use it through the facade, as `#[witrpc::service]`; its
//! companion `#[derive(DotNetType)]` names your own parameter types as .NET types.
//!
//! This crate is part of an independent, WitRPC-compatible Rust implementation (not the
//! official .NET WitRPC). See `ARCHITECTURE.md` at the repository root for where it sits:
//! the generated code targets only the traits and types of `witrpc-core`, and the contract
//! rules (checks, wire names, the .NET type table) come from `witrpc-contract`, which
//! `cargo xtask gen-ts` reads contracts with too.
//!
//! The example is plain text, not a doctest, because it needs the `witrpc` facade crate, which
//! depends on this one; `tests/ui/pass/` and `tests/generated.rs` compile and run the same
//! shapes against `witrpc-core` directly.
//!
//! ```text
//! #[witrpc::service(contract = "MyCompany.Contracts.ICalculator")]
//! pub trait Calculator {
//!     /// `a + b`.
//!     async fn add(&self, a: i32, b: i32) -> i32;
//!     /// `Err` becomes the caller's error (status 500, details = the message).
//!     async fn divide(&self, a: f64, b: f64) -> Result<f64, String>;
//!     /// Wire name `Sum` instead of `Total`.
//!     #[witrpc(name = "Sum")]
//!     async fn total(&self, values: Vec<i32>) -> i64;
//!     /// Raised while a job runs.
//!     #[event]
//!     fn progress_changed(&self, percent: f64);
//! }
//!
//! struct Calc { events: CalculatorEvents }
//!
//! impl Calculator for Calc {
//!     async fn add(&self, a: i32, b: i32) -> i32 { a + b }
//!     async fn divide(&self, a: f64, b: f64) -> Result<f64, String> {
//!         if b == 0.0 { Err("division by zero".into()) } else { Ok(a / b) }
//!     }
//!     async fn total(&self, values: Vec<i32>) -> i64 {
//!         let _ = self.events.progress_changed(100.0);
//!         values.iter().map(|&v| i64::from(v)).sum()
//!     }
//! }
//!
//! // Server side: `Service` for the server's `with_service`.
//! let events = CalculatorEvents::new();
//! let service = CalculatorServer::new(Calc { events: events.clone() }).with_events(&events);
//!
//! // Client side, over any `ClientChannel` (e.g. a connected `WitClient`):
//! let calc = CalculatorClient::new(client);
//! assert_eq!(calc.add(2, 3).await?, 5);
//! let mut progress = calc.progress_changed(); // Stream<Item = Result<f64, EventError>>
//! ```
//!
//! # The attribute
//!
//! - `#[service(contract = "Namespace.IName")]` on a trait. `contract` is required: it is the
//!   .NET interface name that ids are computed from. `crate = "path"` sets where the
//!   runtime items are found (default `::witrpc::__private`; `"witrpc_core"` when depending
//!   on `witrpc-core` directly).
//! - `async fn name(&self, arg: Type, ..) -> R;` is a method. Its wire name is the
//!   PascalCase of its Rust name (`echo_bytes` is `EchoBytes`); `#[witrpc(name = "..")]`
//!   overrides it. A return type written `Result<T, E>` (with `E: Display`) makes `Err`
//!   the remote error. Arguments and results are serde types.
//! - `#[event] fn name(&self, arg: Type, ..);` is an event (`#[event(name = "..")]` sets its
//!   wire name). Events are removed from the trait: implementors do not write them.
//! - Each argument's .NET type comes from `witrpc_core::DotNetType` (derive it for your own
//!   types, see below); `#[witrpc(dotnet = "Ns.Type", assembly = "Assembly")]` on an
//!   argument names it instead.
//! - `Vec<u8>` and `Option<Vec<u8>>` are sent like .NET `byte[]` (base64 in JSON). A
//!   `Vec<u8>` nested in another type (a struct field, `Vec<Vec<u8>>`) is not: annotate
//!   such fields with `#[serde(with = "witrpc::protocol::dotnet::byte_array")]`.
//!
//! # What it generates, for a trait `X`
//!
//! Each item has the trait's visibility.
//!
//! - The trait itself, with `Send + Sync + 'static` supertraits and each `async fn`
//!   declared as `fn .. -> impl Future<Output = R> + Send` (implement it with `async fn`).
//! - `XServer<T: X>`: implements `Service`. `new(service)`, `from_arc(arc)`,
//!   `with_events(&XEvents)` (when `X` has events), `descriptor()`.
//! - `XClient<C: ClientChannel>`: `new(channel)`, `channel()`, `descriptor()`, one
//!   `async fn name(&self, args..) -> Result<R, C::Error>` per method (`Result<T, E>`
//!   methods return `Result<T, C::Error>`) and one `fn name(&self) -> EventStream<Args>`
//!   per event (`Args` is the argument, `()` or a tuple).
//! - `XEvents` (when `X` has events): `new()`, `emitter()`, `descriptor()` and one
//!   `fn name(&self, args..) -> Result<(), ParameterError>` per event.

mod codec;
mod derive_dotnet;
mod expand;
mod render_client;
mod render_descriptor;
mod render_events;
mod render_server;
mod render_trait;

/// Turns a trait into a WitRPC contract; see the [crate documentation](crate).
#[proc_macro_attribute]
pub fn service(attr: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand::service(attr.into(), item.into()).into()
}

/// Implements `DotNetType` for a struct or enum, so it can be a service parameter.
///
/// ```text
/// #[derive(Serialize, Deserialize, witrpc::DotNetType)]
/// #[dotnet(assembly = "MyCompany.Contracts")]          // .NET name: MyCompany.Contracts.Point
/// pub struct Point { pub x: i32, pub y: i32 }
///
/// #[derive(Serialize, Deserialize, witrpc::DotNetType)]
/// #[dotnet(name = "Geometry.Shapes.Size", assembly = "Geometry", value_type)]
/// pub struct Size { pub width: i32, pub height: i32 }
/// ```
///
/// Keys of `#[dotnet(..)]`:
///
/// - `assembly = "Asm"` (required): the simple name of the .NET assembly that declares the
///   type; events send it in `ParameterTypesByName`.
/// - `name = "Ns.Type"`: the namespace-qualified .NET name. Without it the name is the
///   namespace, a dot and the Rust type's name; the namespace is `namespace = "Ns"` when
///   given, else the assembly's name (a .NET project's root namespace is its assembly name
///   unless changed), so `Point` in assembly `MyCompany.Contracts` is
///   `MyCompany.Contracts.Point`.
/// - `value_type`: the .NET type is a `struct` or `enum`; then `Option<T>` is sent as
///   `Nullable<T>` in method ids, as .NET does.
/// - `crate = "path"`: where `DotNetType` is found (default `::witrpc::__private`;
///   `"witrpc_core"` when depending on `witrpc-core` directly).
///
/// `cargo xtask gen-ts` reads the same attribute, so the TypeScript client computes the
/// same method ids. Generic types and unions are rejected: implement `DotNetType` by hand
/// for each instantiation of a generic type.
#[proc_macro_derive(DotNetType, attributes(dotnet))]
pub fn derive_dotnet_type(item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive_dotnet::derive(item.into()).into()
}
