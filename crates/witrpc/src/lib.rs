#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! **witrpc**: typed RPC services with async methods and server-pushed events, over
//! WebSocket, wire-compatible with .NET WitRPC 3.x (protocol 3).
//!
//! This is an independent, WitRPC-compatible implementation in Rust — not the
//! official WitRPC. A .NET WitRPC 3.x client can call a witrpc server, and the other
//! way round; browsers and Rust clients work the same way.
//!
//! ```no_run
//! use std::time::Duration;
//! use witrpc::prelude::*;
//!
//! #[witrpc::service(contract = "MyCompany.Contracts.ICalculator")]
//! pub trait Calculator {
//!     async fn add(&self, a: i32, b: i32) -> i32;
//!     #[event]
//!     fn progress_changed(&self, percent: f64);
//! }
//!
//! struct Calc;
//! impl Calculator for Calc {
//!     async fn add(&self, a: i32, b: i32) -> i32 { a + b }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = WitServerBuilder::new()
//!     .with_service(CalculatorServer::new(Calc))
//!     .with_websocket("http://127.0.0.1:5000/ws", 100)
//!     .with_json()
//!     .with_access_token("AuthToken123")
//!     .build()?;
//! server.start_waiting_for_connection().await?;
//!
//! let client = WitClientBuilder::new()
//!     .with_websocket("ws://127.0.0.1:5000/ws")
//!     .with_json()
//!     .with_access_token("AuthToken123")
//!     .connect(Duration::from_secs(5))
//!     .await?;
//! let calc = CalculatorClient::new(client);
//! assert_eq!(calc.add(2, 3).await?, 5);
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature   | enables |
//! |-----------|---------|
//! | `full` (default) | all of the below |
//! | `server`  | [`WitServerBuilder`], [`WitServer`] and the WebSocket server transport |
//! | `client`  | [`WitClientBuilder`], [`WitClient`] and the WebSocket client transport |
//! | `json`    | JSON parameters, `with_json()` (the default serializer) |
//! | `msgpack` | MessagePack parameters, `with_msgpack()` |
//! | `macros`  | `#[witrpc::service]`, `#[derive(witrpc::DotNetType)]` |
//! | `console` | `with_console(..)`: the server's live console page (`witrpc::server::console`) |
//! | `tower` (not in `full`) | `witrpc::server::WebSocketEndpoint`: mount the server as a route of a hyper/tower app |
//! | `axum` (not in `full`) | `tower`, plus the peer address from axum's `ConnectInfo` |
//!
//! Crate map: see `ARCHITECTURE.md` in the repository.

#[cfg(feature = "macros")]
pub use witrpc_macros::{DotNetType, service};

pub use witrpc_core::{
    Audience, ByteArray, CallContext, CodecError, DotNetType, EventEmitter, EventError, EventStream, GroupError,
    Identity, Member, ParameterError, ParameterSerializer, Service, ServiceDescriptor, StreamPosition, Target,
};

/// Protocol-3 wire types, ids and plug-in traits (the `witrpc-core` crate).
pub mod protocol {
    pub use witrpc_core::*;
}

/// Message encryption: the traits and plain mode (`witrpc_core::crypto`), and with the
/// `encryption` feature the protocol-3 ciphers (the `witrpc-crypto` crate).
pub mod crypto {
    pub use witrpc_core::crypto::*;
    #[cfg(feature = "encryption")]
    pub use witrpc_crypto::{aead, encrypted};
}

/// The server (`witrpc-server`) and its WebSocket transport (`witrpc-server-websocket`).
#[cfg(feature = "server")]
pub mod server {
    pub use witrpc_server::*;
    /// The live console: `with_console(path, ConsoleOptions::new(token))`.
    #[cfg(feature = "console")]
    pub use witrpc_server_websocket::console;
    pub use witrpc_server_websocket::{
        ConnectRate, WebSocketLimits, WebSocketOptions, WebSocketServerBuilder, WebSocketServerExt, WebSocketStats,
        WebSocketTransport, http, limits as websocket_limits,
    };
    /// Mounting in an app: `Router::new().route_service("/ws", endpoint)`.
    #[cfg(feature = "tower")]
    pub use witrpc_server_websocket::{Full, HttpContextExt, WebSocketEndpoint};
}

#[cfg(feature = "server")]
pub use witrpc_server::{AccessTokenValidator, Authorization, ServerConfig, ServerError, WitServer, WitServerBuilder};

/// The client (`witrpc-client`) and its WebSocket transport (`witrpc-client-websocket`).
#[cfg(feature = "client")]
pub mod client {
    pub use witrpc_client::*;
    pub use witrpc_client_websocket::*;
}

#[cfg(feature = "client")]
pub use witrpc_client::{ClientError, ReconnectPolicy, WitClient, WitClientBuilder};

/// JSON parameters.
#[cfg(feature = "json")]
pub use witrpc_serializer_json::JsonSerializer;

/// MessagePack parameters.
#[cfg(feature = "msgpack")]
pub use witrpc_serializer_msgpack::MessagePackSerializer;

/// `use witrpc::prelude::*;` brings the builders and their `with_websocket`
/// extensions into scope.
pub mod prelude {
    #[cfg(feature = "client")]
    pub use witrpc_client::{ClientError, WitClient, WitClientBuilder};
    #[cfg(feature = "client")]
    pub use witrpc_client_websocket::{WebSocketClientBuilder, WebSocketClientExt, WebSocketClientOptions};
    #[cfg(feature = "server")]
    pub use witrpc_server::{ServerError, WitServer, WitServerBuilder};
    #[cfg(feature = "server")]
    pub use witrpc_server_websocket::{WebSocketOptions, WebSocketServerBuilder, WebSocketServerExt};
}

#[doc(hidden)]
pub mod __private {
    pub use witrpc_core::*;
}

/// The README's examples, compiled as doctests so they keep working.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
