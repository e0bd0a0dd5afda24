//! The seam between the server and a transport (WebSocket today).
//!
//! A transport accepts connections, enforces its own admission limits (e.g. max
//! clients, before any WitRPC byte is read), and hands each accepted connection to the
//! server as a [`Connection`]: a stream of whole inbound messages and a sink of whole
//! outbound messages. Nothing above this module knows about HTTP.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::Sink;

use crate::error::ServerError;
use witrpc_core::BoxFuture;

pub use witrpc_core::session::{CloseCode, CloseReason};

/// What the server writes to a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One whole message (an encoded envelope).
    Message(Bytes),
    /// A keepalive probe the peer answers at the transport level (WebSocket Ping).
    Ping,
    /// Close the connection with this reason; nothing is written after it.
    Close(CloseReason),
}

/// A failure reading or writing a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer sent a message larger than the limit.
    #[error(
        "message of at least {size} bytes exceeds max_message_size ({limit} bytes); raise it with `with_max_message_size`"
    )]
    TooLarge {
        /// Bytes seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer broke the transport protocol.
    #[error("transport protocol error")]
    Protocol(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed.
    #[error("connection i/o error")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection is already closed.
    #[error("connection closed")]
    Closed,
}

impl FrameError {
    /// The close code a connection that failed with this error is closed with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::TooBig,
            FrameError::Closed => CloseCode::Normal,
            FrameError::Protocol(_) | FrameError::Io(_) => CloseCode::Protocol,
        }
    }
}

/// What a transport reads from a connection.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// One whole message.
    Message(Bytes),
    /// Transport-level traffic with no message (WebSocket Ping/Pong): proof of life for
    /// the idle timeout.
    Heartbeat,
}

/// Inbound traffic of one connection; ends when the peer closes.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Inbound, FrameError>> + Send>>;
/// Outbound messages of one connection.
pub type FrameSink = Pin<Box<dyn Sink<Outbound, Error = FrameError> + Send>>;

/// One accepted connection, ready for the WitRPC handshake.
pub struct Connection {
    /// Remote address.
    pub peer: Option<SocketAddr>,
    /// Transport name for logs (`"websocket"`).
    pub transport: &'static str,
    /// Inbound messages.
    pub inbound: FrameStream,
    /// Outbound messages.
    pub outbound: FrameSink,
    /// Held for the life of the connection and dropped when it ends (e.g. a max-clients
    /// slot).
    pub slot: Option<Box<dyn Send + Sync>>,
    /// The upgrade request's headers named in [`TransportOptions::forwarded_headers`]
    /// (lower-case names), for [`witrpc_core::CallContext::headers`].
    pub headers: Vec<(String, String)>,
    /// What the transport kept of the request that opened the connection, for
    /// [`witrpc_core::CallContext::request`] (e.g. the HTTP request's parts when the
    /// WebSocket endpoint is mounted in an app); `None` keeps nothing.
    pub request: Option<witrpc_core::ConnectionRequest>,
    /// Called by the server once, synchronously, when the connection is authorized and
    /// before it reads the next message. The transport uses it to lift its
    /// pre-authorization read limits (`max_handshake_message_size`) to
    /// `max_message_size` and to free its pre-authorization admission slot. Dropping it
    /// uncalled (the connection ends unauthorized) frees the slot too.
    pub on_authorized: Option<OnAuthorized>,
}

/// See [`Connection::on_authorized`].
pub type OnAuthorized = Box<dyn FnOnce() + Send + Sync>;

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// What the server asks of the transport: limits to enforce while reading, and which
/// request headers to pass on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportOptions {
    /// Largest inbound message, in bytes.
    pub max_message_size: usize,
    /// Largest inbound message before the connection is authorized, in bytes; the
    /// transport enforces it while reading until [`Connection::on_authorized`] is called.
    pub max_handshake_message_size: usize,
    /// Lower-case names of the upgrade-request headers to keep for the call context.
    pub forwarded_headers: std::sync::Arc<[String]>,
}

/// Receives accepted connections; implemented by the server.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Takes ownership of `connection` and serves it (spawning as needed; must not block).
    fn handle(&self, connection: Connection);
}

/// A running transport.
pub trait TransportHandle: Send + Sync + fmt::Debug + 'static {
    /// The bound socket address.
    fn local_addr(&self) -> SocketAddr;
    /// The URL clients connect to (e.g. `ws://127.0.0.1:5000/ws`).
    fn client_url(&self) -> String;
    /// Stops accepting and frees the listening socket. Live connections are not touched.
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// A way to accept connections (WebSocket, ...). A builder holds its transport by type
/// (`WitServerBuilder<T>`), so transport crates add their settings to
/// `WitServerBuilder<TheirTransport>` through [`crate::WitServerBuilder::transport_mut`].
pub trait ServerTransport: Send + Sync + fmt::Debug + 'static {
    /// Checks the configuration; called by `build()` so mistakes surface early.
    ///
    /// # Errors
    /// A [`ServerError`] that says what to change.
    fn validate(&self) -> Result<(), ServerError>;

    /// Binds and starts accepting; each connection goes to `handler`.
    ///
    /// # Errors
    /// Bind and resolve failures, returned (never swallowed).
    fn start(
        &self,
        handler: Arc<dyn ConnectionHandler>,
        options: TransportOptions,
    ) -> BoxFuture<'_, Result<Box<dyn TransportHandle>, ServerError>>;
}
