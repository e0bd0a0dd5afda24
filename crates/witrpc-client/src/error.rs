//! The client's error type.

use witrpc_core::crypto::CryptoError;
use witrpc_core::{CodecError, ParameterError};

use crate::transport::TransportError;

/// What went wrong with a connection or a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No transport was configured.
    #[error("no transport configured; call `with_websocket(\"ws://host:port/path\")` before `connect`")]
    NoTransport,
    /// A transport setting was given without that transport.
    #[error("`{setting}` configures the WebSocket transport; call `with_websocket(...)` before it")]
    TransportNotConfigured {
        /// The builder call.
        setting: &'static str,
    },
    /// No parameter serializer is available.
    #[error("no parameter serializer: enable the `json` feature of witrpc-client or call `with_parameter_serializer`")]
    NoSerializer,
    /// The server is at its client limit (HTTP 503 before the upgrade).
    #[error("the server is full (HTTP 503); try again later or raise its max_clients")]
    ServerFull,
    /// The server refused the upgrade with another HTTP status.
    #[error("the server refused the connection with HTTP status {status}; check the URL and path")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The server speaks another protocol version.
    #[error("protocol mismatch: {message}")]
    ProtocolMismatch {
        /// The server's explanation.
        message: String,
    },
    /// The server refused the Initialization handshake.
    #[error("the server refused the handshake: {message}")]
    HandshakeRefused {
        /// The server's explanation.
        message: String,
    },
    /// Key exchange or an encrypted frame failed.
    #[error("encryption failed; both ends must use `with_encryption`, or neither")]
    Encryption(#[source] CryptoError),
    /// The access token was rejected during authorization.
    #[error("unauthorized: the server rejected the access token; check `with_access_token`")]
    Unauthorized,
    /// A request's token was rejected (status 561).
    #[error("the server rejected the request's access token (status 561); check `with_access_token`")]
    RequestUnauthorized {
        /// The server's message.
        message: Option<String>,
    },
    /// The server has no such method (status 400, "Method not found").
    #[error("method `{method}` not found on the server; is the client's contract newer than the server's?")]
    MethodNotFound {
        /// The method's wire name.
        method: String,
        /// The server's message.
        message: String,
    },
    /// The call failed on the server (status 500 and others).
    #[error("remote error (status {status}): {}{}", .message.as_deref().unwrap_or("no message"), .details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Remote {
        /// The `CommunicationStatus` value.
        status: i32,
        /// The server's error message (e.g. "Failed to process request").
        message: Option<String>,
        /// Details (for a failing method: its error message).
        details: Option<String>,
    },
    /// The connection is closed; the call was not answered.
    #[error("connection closed: {reason}; connect again to make more calls")]
    ConnectionClosed {
        /// Why, as far as the client knows (the server's close reason when it sent one).
        reason: String,
    },
    /// No answer within the timeout.
    #[error("timed out after {after:?}; raise it with `with_request_timeout` or `connect(timeout)`")]
    Timeout {
        /// The timeout that expired.
        after: std::time::Duration,
    },
    /// The transport failed.
    #[error("the connection to the server failed")]
    Transport(#[source] TransportError),
    /// An argument or result could not be (de)serialized.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// The server sent bytes that are not protocol 3.
    #[error("the server sent an invalid message; is it a WitRPC protocol-3 server?")]
    Protocol(#[source] CodecError),
}

impl From<TransportError> for ClientError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Rejected { status: 503 } => Self::ServerFull,
            TransportError::Rejected { status } => Self::Rejected { status },
            TransportError::Closed { .. } => Self::ConnectionClosed { reason: e.to_string() },
            e => Self::Transport(e),
        }
    }
}
