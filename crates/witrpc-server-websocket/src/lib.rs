#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! WebSocket transport for the witrpc server, modelled on .NET's
//! `OutWit.Communication.Server.WebSocket`.
//!
//! The server listens on an `http://host:port/path` URL; clients connect to
//! `ws://host:port/path`. A hyper HTTP/1.1 accept loop upgrades requests at that
//! path (with or without a trailing slash) to WebSockets with tokio-tungstenite:
//! - other paths get **404**, or the answer of [`WebSocketOptions::with_http_handler`]
//!   (static files of a dashboard on the same origin); a plain request at the path gets
//!   **400**;
//! - when `max_clients` connections are open, the next request gets **503 before
//!   the upgrade**; the slot frees when a connection ends (authorized or not);
//! - no subprotocol; each WitRPC message is one binary WebSocket message (text
//!   messages are accepted as bytes, empty ones skipped, fragments reassembled);
//! - message and frame sizes are capped *while reading*, at the server's
//!   `max_handshake_message_size` until the connection authorizes and at
//!   `max_message_size` after it (close 1009); invalid UTF-8 in a text message closes
//!   with 1007;
//! - what waits to be written to a connection is capped (64 KiB before authorization):
//!   a peer that sends but never reads (a Ping flood) is no longer read, not buffered;
//! - before the upgrade: request heads are capped in bytes and headers (**431**), must
//!   arrive within a deadline (**408**), and connections that have not upgraded, those
//!   not yet authorized, and (optionally) those per client address are capped
//!   (**503**, **429**); see [`WebSocketLimits`] and the table in `SECURITY.md`;
//!   [`WebSocketTransport::stats`] shows what peers make the transport hold;
//! - a browser request whose `Origin` is neither the server's host nor allowed
//!   ([`WebSocketOptions::with_allowed_origins`]) gets **403** (cross-site WebSocket
//!   hijacking); native clients send no `Origin` and pass;
//! - `https://` URLs serve `wss://` with rustls ([`WebSocketOptions::with_tls_pem`]);
//! - per-connection buffers start small (2 KiB read buffer, a write buffer that grows
//!   only while frames are queued, up to 16 KiB per write), so an
//!   idle connection costs a few KB rather than tungstenite's 128 KiB defaults.
//!
//! Part of an independent, WitRPC-compatible implementation (not the official WitRPC).
//!
//! # Mounted in an app
//!
//! With the `tower` feature, [`WebSocketEndpoint`] serves the same upgrade on a route of
//! an existing axum, hyper or tower app instead of a port of its own: the app keeps its
//! TLS and middleware, and what its layers put on the request reaches the access-token
//! validator and handlers through [`HttpContextExt`]. See its docs for what applies
//! there and how shutdown is tied to the app's.
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `tower` | [`WebSocketEndpoint`] (a tower `Service` and the server's transport), [`HttpContextExt`] |
//! | `axum` | `tower`, plus the peer address from axum's `ConnectInfo<SocketAddr>` |
//! | `console` | `WebSocketOptions::with_console`: the server's live console page at a path (module `console`) |
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

mod accept;
#[cfg(feature = "console")]
pub mod console;
mod driver;
mod endpoint;
pub mod limits;
mod listener;
mod origin;
mod per_ip;
mod router;
mod stats;
mod tls;
#[cfg(feature = "tower")]
mod tower;
mod upgrade;

use std::path::PathBuf;
use std::sync::Arc;

/// Re-exported for [`WebSocketEndpoint`]'s response body.
#[cfg(feature = "tower")]
pub use http_body_util::Full;
/// Re-exported for [`WebSocketOptions::with_http_handler`].
pub use hyper::http;
pub use limits::{ConnectRate, WebSocketLimits};
pub use listener::WebSocketTransport;
/// Re-exported for [`WebSocketOptions::with_tls_config`].
pub use rustls;
pub use stats::WebSocketStats;
#[cfg(feature = "tower")]
pub use tower::{HttpContextExt, WebSocketEndpoint};

use witrpc_server::WitServerBuilder;

/// A server builder whose transport is WebSocket: what
/// [`WebSocketServerExt::with_websocket`] returns, with the settings of
/// [`WebSocketOptions`].
pub type WebSocketServerBuilder = WitServerBuilder<WebSocketTransport>;

/// Adds `with_websocket` to [`WitServerBuilder`].
pub trait WebSocketServerExt {
    /// Listens on `url` (`http://host:port/path`, or `https://` with TLS material; port
    /// 0 picks a free port) and accepts at most `max_clients` connections at once.
    /// Errors in the URL (e.g. `ws://`) are reported by `build()`. The WebSocket
    /// settings ([`WebSocketOptions`]) exist from here on, so giving one before the
    /// transport does not compile:
    ///
    /// ```compile_fail
    /// use witrpc_server::WitServerBuilder;
    /// use witrpc_server_websocket::{WebSocketOptions, WebSocketServerExt};
    /// let builder = WitServerBuilder::new()
    ///     .with_tls_pem("cert.pem", "key.pem") // no transport yet: no such method
    ///     .with_websocket("https://127.0.0.1:5443/ws", 100);
    /// ```
    fn with_websocket(self, url: impl Into<String>, max_clients: usize) -> WebSocketServerBuilder;
}

impl<T> WebSocketServerExt for WitServerBuilder<T> {
    fn with_websocket(self, url: impl Into<String>, max_clients: usize) -> WebSocketServerBuilder {
        self.with_transport(WebSocketTransport::new(url, max_clients))
    }
}

/// The WebSocket transport's settings, on a builder that has it
/// ([`WebSocketServerExt::with_websocket`]).
pub trait WebSocketOptions: Sized {
    /// Serves `wss://` with a PEM certificate chain (leaf first) and private key; needs
    /// an `https://` URL. Unreadable files are reported by `start_waiting_for_connection`.
    fn with_tls_pem(self, cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self;

    /// Serves `wss://` with a ready rustls configuration (full control).
    fn with_tls_config(self, config: Arc<rustls::ServerConfig>) -> Self;

    /// Lets browser pages from these origins connect (`https://dashboard.example.com`).
    /// By default only pages served from the server's own host may connect; requests
    /// without an `Origin` header (native clients) always pass.
    fn with_allowed_origins<I, S>(self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>;

    /// Lets browser pages from **any** origin connect. Only for public endpoints whose
    /// access token is not a browser credential.
    fn allow_any_origin(self) -> Self;

    /// Answers plain HTTP requests to every path other than the WebSocket endpoint with
    /// `handler` (for example the static files of a browser dashboard, so page and
    /// endpoint share one origin); `None` answers 404. Without a handler those paths
    /// get 404. The handler runs on the accept path: keep it quick (no blocking I/O).
    ///
    /// ```no_run
    /// use witrpc_server::WitServerBuilder;
    /// use witrpc_server_websocket::{WebSocketOptions, WebSocketServerExt};
    /// use witrpc_server_websocket::http::{Response, header};
    /// # fn demo(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
    /// let server = WitServerBuilder::new()
    ///     .with_service(service)
    ///     .with_websocket("http://127.0.0.1:5000/ws", 100)
    ///     .with_http_handler(|request| match request.uri.path() {
    ///         "/" => Response::builder()
    ///             .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
    ///             .body(bytes::Bytes::from_static(b"<h1>hello</h1>"))
    ///             .ok(),
    ///         _ => None,
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    fn with_http_handler<F>(self, handler: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<http::Response<bytes::Bytes>> + Send + Sync + 'static;

    /// Replaces the WebSocket transport's admission and buffer limits (header caps and
    /// deadline, connections before the upgrade and before authorization, per-address
    /// quotas, trusted proxies); each field of [`WebSocketLimits`] states its default.
    /// Invalid values are reported by `build()`.
    ///
    /// ```
    /// use witrpc_server::WitServerBuilder;
    /// use witrpc_server_websocket::{ConnectRate, WebSocketLimits, WebSocketOptions, WebSocketServerExt};
    /// # fn demo(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
    /// let server = WitServerBuilder::new()
    ///     .with_service(service)
    ///     .with_websocket("http://127.0.0.1:0/ws", 100)
    ///     .with_websocket_limits(
    ///         WebSocketLimits::default()
    ///             .with_max_connections_per_ip(Some(16))
    ///             .with_new_connections_per_ip(Some(ConnectRate::new(5.0, 20))),
    ///     )
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    fn with_websocket_limits(self, limits: WebSocketLimits) -> Self;

    /// Mounts the live console of this server at `path` (feature `console`): a page at
    /// `path/` charting the server's own figures, read from `path/figures` with the
    /// console's own token. Requests under `path` are answered before the handler of
    /// [`WebSocketOptions::with_http_handler`]; see [`console`] for what is served and
    /// what each figure means.
    ///
    /// ```no_run
    /// use witrpc_server::WitServerBuilder;
    /// use witrpc_server_websocket::console::ConsoleOptions;
    /// use witrpc_server_websocket::{WebSocketOptions, WebSocketServerExt};
    /// # fn demo(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
    /// let server = WitServerBuilder::new()
    ///     .with_service(service)
    ///     .with_websocket("http://127.0.0.1:5000/ws", 100)
    ///     .with_console("/console", ConsoleOptions::new("console-secret"))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "console")]
    fn with_console(self, path: &str, options: console::ConsoleOptions) -> Self;
}

impl WebSocketOptions for WebSocketServerBuilder {
    fn with_tls_pem(mut self, cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.transport_mut().tls_pem(cert_chain.into(), key.into());
        self
    }

    fn with_tls_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.transport_mut().tls_config(config);
        self
    }

    fn with_allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.transport_mut().allow_origins(origins.into_iter().map(Into::into));
        self
    }

    fn allow_any_origin(mut self) -> Self {
        self.transport_mut().allow_any_origin();
        self
    }

    fn with_http_handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<http::Response<bytes::Bytes>> + Send + Sync + 'static,
    {
        self.transport_mut().http_handler(handler);
        self
    }

    fn with_websocket_limits(mut self, limits: WebSocketLimits) -> Self {
        self.transport_mut().set_limits(limits);
        self
    }

    #[cfg(feature = "console")]
    fn with_console(mut self, path: &str, options: console::ConsoleOptions) -> Self {
        let stats = self.stats();
        let transport_stats = self.transport_mut().stats();
        let console = console::Console::new(path, options, stats, transport_stats);
        self.transport_mut().mount_console(console::handler(Arc::new(console)));
        self
    }
}
