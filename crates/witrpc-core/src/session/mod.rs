//! The protocol engine of one connection, for both roles, without I/O.
//!
//! A session is a deterministic state machine in the style of `quinn-proto` and
//! rustls' `ConnectionCommon`: it takes inbound messages and the time, and hands back
//! events to act on and frames to write. It owns the handshake state, the connection's
//! `Sealer` and `Opener` (see [`crate::crypto`]), the
//! envelope encoding (into one reused buffer, payload sealed in place) and the
//! keepalive, idle and handshake deadlines. It never reads a clock, a socket or a
//! runtime: the runtime code around it (a tokio task per connection in `witrpc-server`
//! and `witrpc-client`) selects over the socket, the timer and call completions, feeds
//! the session, and writes what [`ServerSession::poll_transmit`] returns.
//!
//! - [`ServerSession`]: Initialization → Authorization → requests; answers what it can
//!   itself (handshake replies, 400/561 for unreadable or unauthorized requests) and
//!   returns [`ServerEvent`]s for the rest (check a token, dispatch a request).
//! - [`ClientSession`]: sends Initialization and Authorization, then requests; returns
//!   [`ClientEvent`]s (connected, a response, an event) and typed [`SessionError`]s.
//! - [`OutQueue`]: the ordered, bounded queue other tasks fill for a connection, with
//!   the slow-consumer rules.
//!
//! Time: `poll_timeout()` says when the session next needs the clock,
//! `handle_timeout(now)` runs what is due (a ping, an idle close, the handshake
//! deadline). Tests drive whole conversations with made-up instants.

mod client;
mod close;
mod frame;
#[cfg(test)]
mod pipeline_tests;
mod queue;
mod rate;
#[cfg(test)]
mod resume_tests;
mod server;
#[cfg(test)]
mod tests;
mod timers;
#[cfg(test)]
mod token_tests;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

pub use client::{ClientEvent, ClientSession, ClientState, ReplayedEvents, SessionError};
pub use close::{CloseCode, CloseReason};
pub use queue::{EventPushed, EventTag, OutQueue, QueueLimits, Queued, SlowConsumer, SlowConsumerPolicy};
pub use rate::RateLimit;
pub use server::{
    DEFAULT_TOKEN_EXPIRY_GRACE, Protocols, ServerConfig, ServerEvent, ServerSession, ServerState, TokenExpiry, text,
};
pub use timers::Keepalive;

pub use crate::extensions::Features;

use crate::crypto::Sealer;
use crate::{MessageType, WitMessage};
use frame::FrameWriter;
use timers::{Due, Timers};

/// What the runtime writes to the connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// One whole message (an encoded envelope).
    Message(Bytes),
    /// A keepalive probe the peer answers at the transport level (WebSocket Ping).
    Ping,
    /// Close the connection with this reason; nothing follows it.
    Close(CloseReason),
}

/// The close reason of a connection whose access token expired (past its grace).
pub const TOKEN_EXPIRED: &str = "access token expired";

/// Pings are not queued behind more than this many unwritten frames: with that much
/// waiting, the peer is not reading and a ping proves nothing.
const MAX_PENDING_FOR_PING: usize = 64;

/// Which side of the connection a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// What both roles share: timers, the outbound cipher, framing and the transmit queue.
#[derive(Debug)]
struct Common {
    role: Role,
    timers: Timers,
    sealer: Option<Box<dyn Sealer>>,
    frames: FrameWriter,
    transmits: VecDeque<Transmit>,
    close_reason: Option<CloseReason>,
}

impl Common {
    fn new(role: Role, now: Instant, keepalive: Keepalive, handshake_timeout: Option<std::time::Duration>) -> Self {
        Self {
            role,
            timers: Timers::new(now, keepalive, handshake_timeout),
            sealer: None,
            frames: FrameWriter::default(),
            transmits: VecDeque::new(),
            close_reason: None,
        }
    }

    fn is_closing(&self) -> bool {
        self.close_reason.is_some()
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_closing()).then(|| self.timers.next_deadline())
    }

    fn handle_timeout(&mut self, now: Instant, handshake_text: impl FnOnce() -> String) {
        if self.is_closing() {
            return;
        }
        match self.timers.due(now) {
            Due::Nothing => {}
            Due::Ping => {
                if self.transmits.len() < MAX_PENDING_FOR_PING {
                    self.transmits.push_back(Transmit::Ping);
                }
            }
            Due::Handshake => {
                tracing::warn!("handshake timeout");
                self.close_now(CloseReason::new(CloseCode::Policy, handshake_text()));
            }
            Due::TokenExpired => {
                tracing::info!("access token expired and was not refreshed; closing");
                self.close_now(CloseReason::new(CloseCode::Policy, TOKEN_EXPIRED));
            }
            Due::Idle => {
                let idle = self.timers.keepalive().idle_timeout;
                tracing::info!(?idle, "peer silent; closing");
                let text = match self.role {
                    Role::Server => format!("no traffic for {idle:?} (idle timeout)"),
                    Role::Client => format!("no traffic from the server for {idle:?} (idle timeout)"),
                };
                self.close_now(CloseReason::new(CloseCode::Away, text));
            }
        }
    }

    /// Queues a close after what is queued; the first close wins.
    fn close(&mut self, reason: CloseReason) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason.clone());
            self.transmits.push_back(Transmit::Close(reason));
        }
    }

    /// Drops what is not yet written and closes.
    fn close_now(&mut self, reason: CloseReason) {
        self.transmits.retain(|t| matches!(t, Transmit::Close(_)));
        self.close(reason);
    }

    fn push(&mut self, frame: Bytes) {
        if !self.is_closing() {
            self.transmits.push_back(Transmit::Message(frame));
        }
    }

    fn send_null(&mut self, id: Uuid, kind: MessageType) {
        let frame = self.frames.null(id, kind);
        self.push(frame);
    }

    fn send_raw(&mut self, id: Uuid, kind: MessageType, data: &[u8]) {
        match self.frames.frame(id, kind, None, data.len(), |b| b.put_slice(data)) {
            Ok(frame) => self.push(frame),
            Err(e) => tracing::error!(error = %e, "cannot frame a message"),
        }
    }

    /// `frame`, a complete envelope encoded once for many connections: sent as it is
    /// when this connection's cipher leaves payloads as they are, else its `Data` is
    /// sealed into a frame of this connection's own.
    fn send_shared(&mut self, frame: &Bytes) {
        if self.sealer.as_ref().is_none_or(|s| s.leaves_plaintext()) {
            return self.push(frame.clone());
        }
        match WitMessage::decode(frame.clone()) {
            Ok(message) => {
                let data = message.data.unwrap_or_default();
                self.send_sealed(message.id, message.kind, data.len(), |b| b.put_slice(&data));
            }
            Err(e) => tracing::error!(error = %e, "a shared frame is not an envelope; dropped"),
        }
    }

    /// A message sealed with the connection's cipher (plain before Initialization).
    fn send_sealed(&mut self, id: Uuid, kind: MessageType, size_hint: usize, payload: impl FnOnce(&mut BytesMut)) {
        if self.is_closing() {
            return;
        }
        match self.frames.frame(id, kind, self.sealer.as_deref_mut(), size_hint, payload) {
            Ok(frame) => self.push(frame),
            Err(e) => {
                tracing::error!(error = %e, "cannot seal outbound message");
                self.close_now(CloseReason::new(CloseCode::Internal, "encryption failure"));
            }
        }
    }
}
