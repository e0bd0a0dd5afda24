//! The seam between the client and a transport (WebSocket today).

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::Sink;
use witrpc_core::BoxFuture;

/// Why a transport could not connect, or failed later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL is not usable.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and what to write instead.
        reason: &'static str,
    },
    /// The server answered the upgrade with an HTTP error status (503 = full).
    #[error("the server refused the connection with HTTP status {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The connection was closed, by the peer (with its code and reason) or locally.
    #[error("connection closed{}", match (.code, .reason.is_empty()) {
        (Some(code), false) => format!(" by the server ({code}: {reason})"),
        (Some(code), true) => format!(" by the server ({code})"),
        (None, _) => String::new(),
    })]
    Closed {
        /// The close code, when the peer sent one.
        code: Option<u16>,
        /// The close reason, when the peer sent one.
        reason: String,
    },
    /// A message exceeded the configured size limit.
    #[error("message exceeds max_message_size ({limit} bytes); raise it with `with_max_message_size`")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// TLS setup or the TLS handshake failed (e.g. an untrusted server certificate).
    #[error("TLS failed: {what}; for a private CA use `with_tls_root_ca_pem`")]
    Tls {
        /// What failed.
        what: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Network failure.
    #[error("network error")]
    Io(#[source] std::io::Error),
    /// The peer broke the transport protocol.
    #[error("transport protocol error")]
    Protocol(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a transport reads.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// One whole message.
    Message(Bytes),
    /// Transport-level traffic with no message (WebSocket Ping/Pong): proof of life.
    Heartbeat,
}

/// What the client writes.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One whole message.
    Message(Bytes),
    /// A keepalive probe the server answers at the transport level.
    Ping,
}

/// Inbound traffic; a close from the peer arrives as [`TransportError::Closed`].
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Inbound, TransportError>> + Send>>;
/// Outbound traffic; closing the sink closes the connection.
pub type FrameSink = Pin<Box<dyn Sink<Outbound, Error = TransportError> + Send>>;

/// A way to reach a server. A builder holds its transport by type
/// (`WitClientBuilder<T>`), so transport crates add their settings to
/// `WitClientBuilder<TheirTransport>` through [`crate::WitClientBuilder::transport_mut`].
pub trait ClientTransport: Send + Sync + fmt::Debug + 'static {
    /// Opens a connection; inbound messages larger than `max_message_size` fail it.
    ///
    /// # Errors
    /// [`TransportError`] when the server cannot be reached or refuses.
    fn connect(&self, max_message_size: usize) -> BoxFuture<'_, Result<(FrameSink, FrameStream), TransportError>>;
}

/// A transport chosen at run time (`WitClientBuilder<Box<dyn ClientTransport>>`).
impl ClientTransport for Box<dyn ClientTransport> {
    fn connect(&self, max_message_size: usize) -> BoxFuture<'_, Result<(FrameSink, FrameStream), TransportError>> {
        (**self).connect(max_message_size)
    }
}
