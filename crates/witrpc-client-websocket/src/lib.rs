#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! WebSocket transport for the witrpc client (tokio-tungstenite; `wss://` with rustls,
//! trusting the platform roots or a given CA).
//!
//! Part of an independent, WitRPC-compatible implementation (not the official
//! WitRPC). Each WitRPC message is one binary WebSocket message; text messages are
//! accepted as bytes, empty ones skipped, pings answered. An HTTP error during the
//! upgrade becomes [`TransportError::Rejected`](witrpc_client::TransportError::Rejected) (503 = the server is full).
//!
//! ```no_run
//! use std::time::Duration;
//! use witrpc_client::WitClientBuilder;
//! use witrpc_client_websocket::WebSocketClientExt;
//!
//! # async fn run() -> Result<(), witrpc_client::ClientError> {
//! let client = WitClientBuilder::new().with_websocket("ws://127.0.0.1:5000/ws").connect(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use witrpc_client::WitClientBuilder;

mod transport;

/// Re-exported for [`WebSocketClientOptions::with_tls_client_config`].
pub use rustls;
pub use transport::WebSocketTransport;

/// A client builder whose transport is WebSocket, with the settings of
/// [`WebSocketClientOptions`].
pub type WebSocketClientBuilder = WitClientBuilder<WebSocketTransport>;

/// Adds `with_websocket` to [`WitClientBuilder`].
pub trait WebSocketClientExt {
    /// Connects to `url` (`ws://host:port/path`, or `wss://` over TLS) over WebSocket.
    /// The TLS settings ([`WebSocketClientOptions`]) exist from here on.
    fn with_websocket(self, url: impl Into<String>) -> WebSocketClientBuilder;
}

impl<T> WebSocketClientExt for WitClientBuilder<T> {
    fn with_websocket(self, url: impl Into<String>) -> WebSocketClientBuilder {
        self.with_transport(WebSocketTransport::new(url))
    }
}

/// The WebSocket transport's settings, on a builder that has it.
pub trait WebSocketClientOptions: Sized {
    /// For `wss://`: trusts only the CA certificate(s) in this PEM file instead of the
    /// platform's roots (for private CAs and self-signed servers).
    fn with_tls_root_ca_pem(self, path: impl Into<PathBuf>) -> Self;

    /// For `wss://`: uses this rustls configuration (full control).
    fn with_tls_client_config(self, config: Arc<ClientConfig>) -> Self;
}

impl WebSocketClientOptions for WebSocketClientBuilder {
    fn with_tls_root_ca_pem(mut self, path: impl Into<PathBuf>) -> Self {
        self.transport_mut().trust_ca_pem(path.into());
        self
    }

    fn with_tls_client_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.transport_mut().tls_client_config(config);
        self
    }
}
