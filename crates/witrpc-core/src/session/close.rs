//! Why a connection ends, as the peer sees it.

use std::fmt;

/// Why a connection is closed, as the peer will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// Normal closure (WebSocket 1000).
    Normal,
    /// The server is going away (1001).
    Away,
    /// The peer broke the protocol (1002).
    Protocol,
    /// The peer sent data that cannot be accepted (1003).
    Unsupported,
    /// The peer sent data inconsistent with the message type, e.g. invalid UTF-8 in a
    /// WebSocket text message (1007).
    InvalidPayload,
    /// A policy was violated: not authorized, handshake timeout, slow consumer (1008).
    Policy,
    /// A message was too big (1009).
    TooBig,
    /// The server hit an internal error (1011).
    Internal,
}

impl CloseCode {
    /// The WebSocket close code.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::Away => 1001,
            Self::Protocol => 1002,
            Self::Unsupported => 1003,
            Self::InvalidPayload => 1007,
            Self::Policy => 1008,
            Self::TooBig => 1009,
            Self::Internal => 1011,
        }
    }
}

/// A close code plus a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The code.
    pub code: CloseCode,
    /// The reason text (WebSocket allows at most 123 bytes; transports truncate).
    pub reason: String,
}

impl CloseReason {
    /// A reason with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.reason)
    }
}
