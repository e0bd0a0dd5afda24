//! Events: raising them on the server (`emit.rs`), receiving them on the client
//! (`subscribe.rs`).
//!
//! Server side, a service raises events through an [`EventEmitter`]; the server
//! attaches an [`EventSink`] to it while it runs, which encodes each event once and
//! queues it to every authorized connection. Client side, the connection publishes
//! each received event to the matching [`EventSubscription`]s, which typed
//! [`EventStream`]s decode. The halves share nothing.

mod emit;
mod subscribe;

pub use emit::*;
pub use subscribe::*;
