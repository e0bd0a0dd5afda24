#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! WebSocket transport for the witrpc server, modelled on .NET's
//! `OutWit.Communication.Server.WebSocket`.
//!
//! The server listens on an `http://host:port/path` URL; clients connect to
//! `ws://host:port/path`. A hyper HTTP/1.1 accept loop upgrades requests at that
//! path (with or without a trailing slash) to WebSockets with tokio-tungstenite:
//! - other paths get **404**; a plain request at the path gets **400**;
//! - when `max_clients` connections are open, the next request gets **503 before
//!   the upgrade**; the slot frees when a connection ends (authorized or not);
//! - no subprotocol; each WitRPC message is one binary WebSocket message (text
//!   messages are accepted as bytes, empty ones skipped, fragments reassembled);
//! - the message size limit is enforced while reading, with close code 1009;
//! - per-connection buffers start small (4 KiB read buffer, no write buffer), so an
//!   idle connection costs a few KB rather than tungstenite's 128 KiB defaults.
//!
//! Part of an independent, WitRPC-compatible implementation (not the official WitRPC).
//!
//! ```no_run
//! use witrpc_server::WitServerBuilder;
//! use witrpc_server_websocket::WebSocketServerExt;
//! # fn demo(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
//! let server = WitServerBuilder::new()
//!     .with_service(service)
//!     .with_websocket("http://127.0.0.1:5000/ws", 100)
//!     .build()?;
//! # Ok(()) }
//! ```

mod endpoint;
mod listener;

pub use listener::WebSocketTransport;

use witrpc_server::WitServerBuilder;

/// Adds `with_websocket` to [`WitServerBuilder`].
pub trait WebSocketServerExt {
    /// Listens on `url` (`http://host:port/path`; port 0 picks a free port) and accepts
    /// at most `max_clients` connections at once. Errors in the URL (e.g. `ws://`) are
    /// reported by `build()`.
    fn with_websocket(self, url: impl Into<String>, max_clients: usize) -> WitServerBuilder;
}

impl WebSocketServerExt for WitServerBuilder {
    fn with_websocket(self, url: impl Into<String>, max_clients: usize) -> WitServerBuilder {
        self.with_transport(WebSocketTransport::new(url, max_clients))
    }
}
