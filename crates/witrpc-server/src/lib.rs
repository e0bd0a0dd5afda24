#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! The WitRPC server, independent of any transport.
//!
//! Part of an independent, WitRPC-compatible Rust implementation (not the official
//! .NET WitRPC). It runs the protocol-3 handshake (Initialization, Authorization),
//! checks the token on every request, dispatches calls to [`witrpc_core::Service`]s
//! by `MethodId` then by name, and pushes events to authorized connections. A
//! transport (`witrpc-server-websocket`) brings the connections; see
//! `ARCHITECTURE.md` at the repository root for the data path.
//!
//! What differs from the .NET server, on purpose:
//! - requests on one connection run concurrently (bounded by
//!   [`WitServerBuilder::with_max_in_flight_requests`]); responses carry the request's
//!   id, so .NET clients match them as usual;
//! - no lock is shared between connections on the request path;
//! - undecodable arguments get status 400 naming the parameter (.NET passes null);
//! - safer defaults: 16 MiB messages, 10 s handshake, 64 KiB before authorization;
//! - a slow client whose queue overflows is disconnected with a reason, never fed gaps.
//!
//! Most users depend on the `witrpc` facade, whose `with_websocket` extension wires a
//! transport into [`WitServerBuilder`].
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `json` (default) | JSON parameters: `with_json()`, the default serializer |
//! | `msgpack` | MessagePack parameters: `with_msgpack()` |

mod auth;
pub mod broker;
mod builder;
mod config;
mod connection;
mod error;
mod events;
mod history;
pub mod limits;
pub mod metrics;
mod outbox;
mod registry;
mod server;
mod shared;
pub mod stats;
pub mod transport;

pub use auth::{AccessTokenValidator, Authorization, NoAccessToken, StaticAccessToken, constant_time_eq};
pub use builder::{NoTransport, WitServerBuilder};
pub use config::ServerConfig;
pub use error::ServerError;
pub use history::{HistoryLimits, MAX_EVENTS_PER_STREAM, MAX_HISTORY_AGE, MAX_STREAMS, MAX_TOTAL_EVENTS};
pub use server::{Revoker, WitServer};
pub use witrpc_core::session::{RateLimit, SlowConsumerPolicy};
pub use witrpc_core::v2::ProtocolVersion;
pub use witrpc_core::{Audience, CallContext, GroupError, Identity, Member, StreamPosition, Target};

/// Re-exported for implementors of [`AccessTokenValidator`].
pub use async_trait::async_trait;
/// Re-exported for implementors of [`transport::ServerTransport`]: the traits of its
/// frame stream and sink.
pub use futures_core::Stream;
pub use futures_util::Sink;
/// Re-exported for implementors of [`transport::ServerTransport`].
pub use witrpc_core::BoxFuture;
