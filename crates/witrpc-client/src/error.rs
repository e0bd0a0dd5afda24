//! The client's error type, and the one mapping from a response's status to it.
//!
//! The mapping follows the table in `docs/client-errors.md`, which the TypeScript client
//! follows too; the tests below read that table.

use bytes::Bytes;
use witrpc_core::crypto::CryptoError;
use witrpc_core::{CodecError, CommunicationStatus, ParameterError, WitResponse};

use crate::transport::TransportError;

/// The start of the `ErrorMessage` a server answers an unknown method with (status 400).
///
/// The protocol has no field for "method not found", so this is the one rule that reads a
/// message; .NET WitRPC and witrpc servers both send it.
const METHOD_NOT_FOUND: &str = "Method not found";

/// What went wrong with a connection or a call.
///
/// A failed response becomes [`MethodNotFound`](Self::MethodNotFound),
/// [`BadRequest`](Self::BadRequest), [`RequestUnauthorized`](Self::RequestUnauthorized) or
/// [`Remote`](Self::Remote) by its status, as the table in `docs/client-errors.md` says
/// (the TypeScript client maps statuses to the same kinds); [`status`](Self::status) gives
/// the status of any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
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
    /// The server could not read the call: wrong argument types, or a serializer other
    /// than the server's (status 400, not "Method not found").
    #[error("the server could not read the call (status 400): {}{}; check the argument types and that both ends use the same parameter serializer", .message.as_deref().unwrap_or("no message"), .details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    BadRequest {
        /// The server's error message (e.g. "Invalid argument ...").
        message: Option<String>,
        /// The server's error details.
        details: Option<String>,
    },
    /// The call failed on the server (status 500, or any status other than 200, 400, 561).
    #[error("remote error (status {}): {}{}", .status.to_i32(), .message.as_deref().unwrap_or("no message"), .details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Remote {
        /// The response's status, e.g. [`CommunicationStatus::InternalServerError`] for a
        /// method that returned `Err` or threw.
        status: CommunicationStatus,
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
    /// The server answered a call with a frame that carries no response at all.
    #[error("the server answered with an empty response frame; is it a WitRPC protocol-3 server?")]
    EmptyResponse,
    /// The token provider (`with_token_provider`) failed to give a token.
    #[error("the token provider failed; check the provider passed to `with_token_provider`")]
    TokenProvider(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server refused a refreshed access token and closed the connection.
    #[error(
        "the server refused the refreshed access token and closed the connection; the token provider must return tokens of the same identity"
    )]
    TokenRefreshRefused,
}

impl ClientError {
    /// The status of the server's answer, for the errors that come from one
    /// ([`MethodNotFound`](Self::MethodNotFound) from the server, [`BadRequest`](Self::BadRequest),
    /// [`RequestUnauthorized`](Self::RequestUnauthorized), [`Remote`](Self::Remote)).
    ///
    /// `None` for everything else, including a `MethodNotFound` the client raised itself
    /// because its own descriptor has no such method (its `method` starts with `#`).
    ///
    /// ```
    /// use witrpc_client::ClientError;
    /// use witrpc_core::CommunicationStatus;
    /// let e = ClientError::Remote { status: CommunicationStatus::InternalServerError, message: None, details: None };
    /// assert_eq!(e.status(), Some(CommunicationStatus::InternalServerError));
    /// assert_eq!(ClientError::EmptyResponse.status(), None);
    /// ```
    pub fn status(&self) -> Option<CommunicationStatus> {
        match self {
            Self::MethodNotFound { method, .. } if !method.starts_with('#') => Some(CommunicationStatus::BadRequest),
            Self::BadRequest { .. } => Some(CommunicationStatus::BadRequest),
            Self::RequestUnauthorized { .. } => Some(CommunicationStatus::Unauthorized),
            Self::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A call's result from its response: the data for status 200, else the error the table
/// in `docs/client-errors.md` names. `method` is the call's wire name.
pub(crate) fn response_result(method: &str, response: WitResponse) -> Result<Option<Bytes>, ClientError> {
    let WitResponse { status, data, error_message: message, error_details: details } = response;
    match status {
        CommunicationStatus::Ok => Ok(data.filter(|d| !d.is_empty())),
        CommunicationStatus::BadRequest if message.as_deref().is_some_and(|m| m.starts_with(METHOD_NOT_FOUND)) => {
            Err(ClientError::MethodNotFound { method: method.to_owned(), message: message.unwrap_or_default() })
        }
        CommunicationStatus::BadRequest => Err(ClientError::BadRequest { message, details }),
        CommunicationStatus::Unauthorized => Err(ClientError::RequestUnauthorized { message }),
        status => Err(ClientError::Remote { status, message, details }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the status table in `docs/client-errors.md`: status, message rule,
    /// Rust variant.
    fn table() -> Vec<(i32, String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/client-errors.md");
        let text = std::fs::read_to_string(path).expect("docs/client-errors.md is readable");
        let rows: Vec<_> = text
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').map(str::trim).collect();
                let status = cells.first()?.parse::<i32>().ok()?;
                Some((status, cells.get(2)?.to_string(), cells.get(3)?.trim_matches('`').to_owned()))
            })
            .collect();
        assert!(rows.len() >= 5, "the status table in {path} has no rows");
        rows
    }

    fn variant(e: &ClientError) -> &'static str {
        match e {
            ClientError::MethodNotFound { .. } => "MethodNotFound",
            ClientError::BadRequest { .. } => "BadRequest",
            ClientError::RequestUnauthorized { .. } => "RequestUnauthorized",
            ClientError::Remote { .. } => "Remote",
            _ => "another variant",
        }
    }

    #[test]
    fn statuses_map_to_the_documented_errors() {
        for (status, rule, expected) in table() {
            let message = if rule.contains("Method not found") {
                "Method not found on service, method name: Multiply".to_owned()
            } else {
                "Failed to process request".to_owned()
            };
            let response = WitResponse::error(CommunicationStatus::from_i32(status), message.clone(), Some("d".into()));
            let error = response_result("Multiply", response).expect_err("an error status");
            assert_eq!(variant(&error), expected, "status {status} ({rule})");
            assert_eq!(error.status(), Some(CommunicationStatus::from_i32(status)), "status {status} kept");
            if let ClientError::Remote { message: m, details, .. } | ClientError::BadRequest { message: m, details } =
                &error
            {
                assert_eq!((m.as_deref(), details.as_deref()), (Some(message.as_str()), Some("d")));
            }
        }
    }

    #[test]
    fn ok_is_the_data_and_other_statuses_keep_their_value() {
        let ok = WitResponse::ok(Some(Bytes::from_static(b"5")));
        assert_eq!(response_result("Add", ok).expect("status 200"), Some(Bytes::from_static(b"5")));
        let remote = response_result("Add", WitResponse::error(CommunicationStatus::Other(418), "teapot", None));
        match remote {
            Err(ClientError::Remote { status: CommunicationStatus::Other(418), .. }) => {}
            other => panic!("status 418 must stay 418, got {other:?}"),
        }
        // A 400 that is not "Method not found" is not reported as one.
        let bad = response_result("Add", WitResponse::error(CommunicationStatus::BadRequest, "Invalid argument", None));
        assert!(matches!(bad, Err(ClientError::BadRequest { .. })), "{bad:?}");
    }

    #[test]
    fn messages_show_the_status_number() {
        let e = ClientError::Remote {
            status: CommunicationStatus::InternalServerError,
            message: Some("Failed to process request".into()),
            details: Some("boom".into()),
        };
        assert_eq!(e.to_string(), "remote error (status 500): Failed to process request: boom");
    }
}
