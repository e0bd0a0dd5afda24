//! The server role: the protocol-3 handshake, request intake, responses and events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use uuid::Uuid;

use crate::crypto::{CryptoError, Opener, ServerEncryptor};
use crate::extensions::Features;
use crate::session::close::{CloseCode, CloseReason};
use crate::session::queue::Queued;
use crate::session::rate::{Limiter, RateLimit, Verdict};
use crate::session::{Common, Keepalive};
use crate::v2::{self, ProtocolVersion};
use crate::{
    CommunicationStatus, MessageType, PROTOCOL_VERSION, WitMessage, WitRequest, WitRequestAuthorization,
    WitRequestInitialization, WitResponse, WitResponseAuthorization, WitResponseInitialization,
};

/// .NET's answer texts, kept identical so .NET clients and logs read the same.
pub mod text {
    /// A request without a readable body (400).
    pub const REQUEST_EMPTY: &str = "Request is empty";
    /// The request's token was rejected (561).
    pub const TOKEN_INVALID: &str = "Token is not valid";
    /// A request before authorization (561).
    pub const NOT_AUTHORIZED: &str = "Connection is not authorized";
    /// No such method (400); the method name follows.
    pub const METHOD_NOT_FOUND: &str = "Method not found on service, method name: ";
    /// The method failed (500).
    pub const FAILED: &str = "Failed to process request";
    /// Unreadable arguments (400).
    pub const INVALID_ARGUMENT: &str = "Invalid argument";
    /// The Initialization payload is not protocol 3.
    pub const CANNOT_READ_INIT: &str = "Cannot read the initialization request; the server speaks protocol 3";
}

/// Settings of a server session.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Pings and the idle timeout.
    pub keepalive: Keepalive,
    /// Time to finish Initialization + Authorization.
    pub handshake_timeout: Duration,
    /// Largest message accepted before authorization.
    pub max_handshake_message_size: usize,
    /// Inbound rate limits; `None` (the default) for none.
    pub rate_limit: Option<RateLimit>,
    /// How long past its token's expiry a connection stays open (time for a refresh
    /// in flight to land). Default [`DEFAULT_TOKEN_EXPIRY_GRACE`] (2 s).
    pub token_expiry_grace: Duration,
    /// Whether the `resume` feature is accepted (the server keeps event history).
    /// Default `false`.
    pub resume: bool,
}

/// The default [`ServerConfig::token_expiry_grace`]: 2 s, enough for a refresh sent
/// just before the expiry to reach the server across a slow link.
pub const DEFAULT_TOKEN_EXPIRY_GRACE: Duration = Duration::from_secs(2);

/// When a connection's access token expires, as the validator said: the wire value
/// (for the client) and the same instant on the session's clock (for the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry {
    /// Milliseconds since the Unix epoch (`ExpiresAtUnixMs`); must be above 0.
    pub unix_ms: i64,
    /// The same moment on the clock the session is driven with.
    pub at: Instant,
}

impl ServerConfig {
    /// A configuration with these values and no rate limit.
    pub fn new(keepalive: Keepalive, handshake_timeout: Duration, max_handshake_message_size: usize) -> Self {
        Self {
            keepalive,
            handshake_timeout,
            max_handshake_message_size,
            rate_limit: None,
            token_expiry_grace: DEFAULT_TOKEN_EXPIRY_GRACE,
            resume: false,
        }
    }

    /// Accepts the `resume` feature from clients that announce it (a server that
    /// keeps event history).
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Keeps a connection open `grace` past its token's expiry before closing it.
    pub fn with_token_expiry_grace(mut self, grace: Duration) -> Self {
        self.token_expiry_grace = grace;
        self
    }

    /// Holds each connection to `limit`.
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }
}

/// The protocol versions a server accepts, each with its key exchange.
///
/// Protocol 3 (.NET WitRPC 3.x) and protocol 2 (.NET 2.x) share one endpoint: the
/// version is told apart from the Initialization message alone
/// ([`v2::detect_payload`]), and a connection keeps it for its life.
#[derive(Debug, Clone)]
pub struct Protocols {
    v3: Arc<dyn ServerEncryptor>,
    allow_v3: bool,
    v2: Option<Arc<dyn ServerEncryptor>>,
}

impl Protocols {
    /// Protocol 3 only, with `encryptor`.
    pub fn v3(encryptor: Arc<dyn ServerEncryptor>) -> Self {
        Self { v3: encryptor, allow_v3: true, v2: None }
    }

    /// Also accepts protocol 2, with `encryptor` (a protocol-2 key exchange).
    pub fn with_v2(mut self, encryptor: Arc<dyn ServerEncryptor>) -> Self {
        self.v2 = Some(encryptor);
        self
    }

    /// Refuses protocol-3 clients (they are told why, in a reply they can read).
    /// `encryptor` still wraps that refusal for encrypting clients.
    pub fn without_v3(mut self) -> Self {
        self.allow_v3 = false;
        self
    }

    /// Whether `version` is accepted.
    pub fn allows(&self, version: ProtocolVersion) -> bool {
        match version {
            ProtocolVersion::V3 => self.allow_v3,
            ProtocolVersion::V2 => self.v2.is_some(),
        }
    }
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerState {
    /// Waiting for Initialization.
    AwaitingInitialization,
    /// Waiting for Authorization.
    AwaitingAuthorization,
    /// The token is being checked ([`ServerEvent::Authorize`] was returned).
    Authorizing,
    /// Requests are served and events delivered.
    Authorized,
}

/// What the server's runtime must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Check this token, then call [`ServerSession::authorization_decided`] (before
    /// feeding the next message).
    Authorize {
        /// The access token the client sent.
        token: String,
    },
    /// An authorized request to dispatch; answer it with
    /// [`ServerSession::send_response`] (or through the connection's queue).
    Request {
        /// The envelope id the response must carry.
        id: Uuid,
        /// The request, decoded for dispatch (type lists skipped).
        request: WitRequest,
    },
    /// A negotiated client (`token-refresh`) sent a fresh token on an authorized
    /// connection. Check it, then call [`ServerSession::refresh_decided`] (before
    /// feeding the next message). Requests keep being served meanwhile.
    RefreshToken {
        /// The new access token.
        token: String,
    },
    /// An authorized protocol-2 request: resolve it by name and .NET parameter types
    /// ([`v2::MethodTable`]), answer with [`ServerSession::send_response`].
    RequestV2 {
        /// The envelope id the response must carry.
        id: Uuid,
        /// The request, with its type lists.
        request: v2::WitRequest,
    },
}

/// One server connection, without I/O: feed it inbound messages and the time, send
/// what [`ServerSession::poll_transmit`] returns.
///
/// ```
/// use std::time::{Duration, Instant};
/// use std::sync::Arc;
/// use witrpc_core::session::{Keepalive, ServerConfig, ServerSession, Transmit};
/// use witrpc_core::crypto::plain::PlainServerEncryptor;
/// use witrpc_core::{MessageType, WitMessage, WitRequestInitialization};
///
/// let now = Instant::now();
/// let config = ServerConfig::new(Keepalive::default(), Duration::from_secs(10), 64 * 1024);
/// let protocols = witrpc_core::session::Protocols::v3(Arc::new(PlainServerEncryptor));
/// let mut session = ServerSession::new(now, config, protocols);
/// let init = WitMessage::new(witrpc_core::Uuid::new_v4(), MessageType::Initialization,
///     Some(WitRequestInitialization::plain().encode().into()));
/// assert!(session.handle_message(now, init.encode().into()).is_none());
/// let Some(Transmit::Message(reply)) = session.poll_transmit() else { panic!() };
/// assert_eq!(WitMessage::decode(reply).unwrap().id, init.id);
/// ```
#[derive(Debug)]
pub struct ServerSession {
    common: Common,
    state: ServerState,
    opener: Option<Box<dyn Opener>>,
    protocols: Protocols,
    /// The connection's protocol, once its Initialization was accepted.
    version: Option<ProtocolVersion>,
    config: ServerConfig,
    /// The Authorization message's id, for the deferred reply.
    authorization_id: Uuid,
    limiter: Option<Limiter>,
    /// Our wire extensions the client negotiated at Initialization.
    features: Features,
    /// The id of a token refresh being checked.
    refresh_id: Option<Uuid>,
    /// A `resume` client's `Resume` member, until taken.
    resume_request: Option<String>,
}

impl ServerSession {
    /// A session for a connection accepted at `now`.
    pub fn new(now: Instant, config: ServerConfig, protocols: Protocols) -> Self {
        Self {
            common: Common::new(super::Role::Server, now, config.keepalive, Some(config.handshake_timeout)),
            state: ServerState::AwaitingInitialization,
            opener: None,
            protocols,
            version: None,
            config,
            authorization_id: Uuid::nil(),
            limiter: config.rate_limit.map(|l| Limiter::new(l, now)),
            features: Features::NONE,
            refresh_id: None,
            resume_request: None,
        }
    }

    /// The `Resume` member of the Authorization of a client that negotiated
    /// `resume` (its previous connection and positions), once: call it on
    /// [`ServerEvent::Authorize`]. `None` for every other client.
    pub fn take_resume_request(&mut self) -> Option<String> {
        self.resume_request.take()
    }

    /// The wire extensions this connection negotiated (none for .NET clients and
    /// protocol 2).
    pub fn features(&self) -> Features {
        self.features
    }

    /// When the connection closes for want of a fresh token (its token's expiry plus
    /// the grace), if its token expires.
    pub fn token_deadline(&self) -> Option<Instant> {
        self.common.timers.token_deadline()
    }

    /// When the handshake must be complete, until it is.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        self.common.timers.handshake_deadline()
    }

    /// When the peer's silence closes the connection (moves with every message).
    pub fn idle_deadline(&self) -> Instant {
        self.common.timers.idle_deadline()
    }

    /// The connection's protocol version, once its Initialization was accepted.
    pub fn protocol(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Where the handshake stands.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// Whether the handshake completed.
    pub fn is_authorized(&self) -> bool {
        self.state == ServerState::Authorized
    }

    /// Whether a close was queued: nothing more is read or sent after it.
    pub fn is_closing(&self) -> bool {
        self.common.is_closing()
    }

    /// The next frame to write, in order; after [`super::Transmit::Close`] nothing follows.
    pub fn poll_transmit(&mut self) -> Option<super::Transmit> {
        self.common.poll_transmit()
    }

    /// Frames waiting to be written.
    pub fn pending_transmits(&self) -> usize {
        self.common.pending_transmits()
    }

    /// The earliest instant [`ServerSession::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.common.poll_timeout()
    }

    /// Until when the runtime must not read this peer (it is over its rate limit).
    pub fn read_held_until(&self, now: Instant) -> Option<Instant> {
        self.limiter.as_ref().and_then(|l| l.held_until(now))
    }

    /// Runs the timers: pings, the idle timeout, the handshake deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.config.handshake_timeout;
        self.common.handle_timeout(now, || format!("handshake not completed within {timeout:?}"));
    }

    /// The peer sent transport-level traffic (a ping or pong) at `now`.
    pub fn handle_heartbeat(&mut self, now: Instant) {
        self.common.timers.heard(now);
    }

    /// Closes after what is already queued.
    pub fn close(&mut self, reason: CloseReason) {
        self.common.close(reason);
    }

    /// Closes now, dropping what is not yet written.
    pub fn close_now(&mut self, reason: CloseReason) {
        self.common.close_now(reason);
    }

    /// Feeds one inbound message received at `now`.
    pub fn handle_message(&mut self, now: Instant, bytes: Bytes) -> Option<ServerEvent> {
        self.common.timers.heard(now);
        if self.common.is_closing() {
            return None;
        }
        if let Some(limiter) = self.limiter.as_mut() {
            if limiter.consume(now, bytes.len()) == Verdict::Close {
                let limit = limiter.limit();
                let reason = format!(
                    "over the rate limit ({} messages/s, {} bytes/s) for {:?}",
                    limit.messages_per_second, limit.bytes_per_second, limit.max_hold
                );
                tracing::warn!(%reason, "closing a flooding peer");
                self.common.close_now(CloseReason::new(CloseCode::Policy, reason));
                return None;
            }
        }
        if bytes.is_empty() {
            return None; // .NET skips empty messages
        }
        let limit = self.config.max_handshake_message_size;
        if self.state != ServerState::Authorized && bytes.len() > limit {
            tracing::warn!(len = bytes.len(), limit, "oversized message before authorization");
            self.common.close_now(CloseReason::new(
                CloseCode::TooBig,
                format!("message before authorization exceeds {limit} bytes"),
            ));
            return None;
        }
        let message = match WitMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "invalid envelope; closing");
                self.common.close_now(CloseReason::new(CloseCode::Unsupported, "invalid WitRPC message"));
                return None;
            }
        };
        match message.kind {
            MessageType::Initialization => {
                self.on_initialization(message);
                None
            }
            MessageType::Authorization => self.on_authorization(message),
            MessageType::Request => self.on_request(message),
            other => {
                // Client-sent callbacks and unknown types are ignored, but a sealed
                // payload still consumes the inbound counter, as in .NET.
                tracing::debug!(kind = ?other, "ignoring message");
                if let (Some(data), Some(opener)) = (message.data, self.opener.as_mut()) {
                    if let Err(e) = opener.open(data) {
                        self.reject_frame(&e);
                    }
                }
                None
            }
        }
    }

    fn reject_frame(&mut self, error: &CryptoError) {
        tracing::warn!(%error, "inbound frame rejected; closing");
        self.common.close_now(CloseReason::new(CloseCode::Policy, "encrypted frame rejected"));
    }

    fn on_initialization(&mut self, message: WitMessage) {
        if self.state != ServerState::AwaitingInitialization {
            tracing::warn!("out-of-order initialization");
            return self.common.close(CloseReason::new(CloseCode::Protocol, "out-of-order initialization"));
        }
        if v2::detect_payload(message.data.as_deref()) == Ok(ProtocolVersion::V2) {
            return self.on_initialization_v2(message);
        }
        if !self.protocols.allow_v3 {
            tracing::warn!("protocol 3 refused by configuration");
            let public_key = message.data.clone().and_then(|d| WitRequestInitialization::decode(d).ok()?.public_key);
            let refusal = self
                .protocols
                .v3
                .refusal(public_key.as_deref(), v2::protocol_3_refusal_payload(v2::texts::PROTOCOL_3_REFUSED));
            self.common.send_raw(message.id, message.kind, &refusal);
            return self.common.close(CloseReason::new(CloseCode::Policy, "protocol 3 is not accepted"));
        }
        let Some(data) = message.data else {
            return self.common.send_null(message.id, message.kind);
        };
        let (request, extensions) = match WitRequestInitialization::decode_with_extensions(data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable initialization (a protocol 2.x client?)");
                let refusal = WitResponseInitialization::refusal(text::CANNOT_READ_INIT).encode();
                self.common.send_raw(message.id, message.kind, &refusal);
                return self.common.close(CloseReason::new(CloseCode::Protocol, text::CANNOT_READ_INIT));
            }
        };
        if request.protocol_version != PROTOCOL_VERSION {
            let text = format!("Protocol mismatch: client {}, server {PROTOCOL_VERSION}", request.protocol_version);
            tracing::warn!(client_version = request.protocol_version, "protocol mismatch");
            let refusal = self
                .protocols
                .v3
                .refusal(request.public_key.as_deref(), WitResponseInitialization::refusal(&text).encode());
            self.common.send_raw(message.id, message.kind, &refusal);
            return self.common.close(CloseReason::new(CloseCode::Protocol, text));
        }
        let Some(key) = request.public_key.as_deref() else {
            return self.common.send_null(message.id, message.kind);
        };
        // Member 2 present and ours: answer with what we accept; anything else is a
        // plain 3.x client, served (byte for byte) as before.
        let offered = extensions.as_deref().and_then(Features::parse);
        let supported = if self.config.resume {
            Features::SUPPORTED
        } else {
            Features::SUPPORTED.without(Features::RESUME.union(Features::REPLAY_BATCH))
        };
        // Batches only carry a resume's replay: without `resume` they mean nothing.
        let accepted_features = offered
            .map(|f| f.intersect(supported))
            .map(|f| if f.resume() { f } else { f.without(Features::REPLAY_BATCH) });
        let encryptor = self.protocols.v3.clone();
        let answer = accepted_features.map(Features::to_wire);
        match encryptor.accept_with_extensions(Some(key), answer.as_deref()) {
            Ok(accepted) => {
                self.features = accepted_features.unwrap_or(Features::NONE);
                self.common.send_raw(message.id, message.kind, &accepted.reply);
                self.common.sealer = Some(accepted.sealer);
                self.opener = Some(accepted.opener);
                self.state = ServerState::AwaitingAuthorization;
                self.version = Some(ProtocolVersion::V3);
                tracing::debug!(encrypted = encryptor.is_encrypting(), protocol = 3, "initialized");
            }
            Err(e) => {
                tracing::warn!(error = %e, "initialization refused");
                let text = e.to_string();
                let refusal = encryptor.refusal(Some(key), WitResponseInitialization::refusal(&text).encode());
                self.common.send_raw(message.id, message.kind, &refusal);
                self.common.close(CloseReason::new(CloseCode::Policy, "initialization refused"));
            }
        }
    }

    /// A protocol-2 Initialization. Every refusal is the one reply all 2.x clients
    /// read without an exception: same id, null `Data`, in clear; then a close.
    fn on_initialization_v2(&mut self, message: WitMessage) {
        let refuse = |session: &mut Self, why: &str| {
            tracing::warn!(reason = why, "protocol-2 initialization refused");
            session.common.send_null(message.id, message.kind);
            session.common.close(CloseReason::new(CloseCode::Policy, format!("protocol 2: {why}")));
        };
        let Some(encryptor) = self.protocols.v2.clone() else {
            return refuse(self, "this server accepts protocol 3 only");
        };
        let request = match message.data.clone().map(v2::WitRequestInitialization::decode) {
            Some(Ok(r)) => r,
            _ => return refuse(self, "unreadable initialization"),
        };
        match encryptor.accept(request.public_key.as_deref()) {
            Ok(accepted) => {
                self.common.send_raw(message.id, message.kind, &accepted.reply);
                self.common.sealer = Some(accepted.sealer);
                self.opener = Some(accepted.opener);
                self.state = ServerState::AwaitingAuthorization;
                self.version = Some(ProtocolVersion::V2);
                tracing::debug!(encrypted = encryptor.is_encrypting(), protocol = 2, "initialized");
            }
            Err(e) => refuse(self, &e.to_string()),
        }
    }

    fn on_authorization(&mut self, message: WitMessage) -> Option<ServerEvent> {
        if self.state == ServerState::Authorized && self.features.token_refresh() {
            return self.on_refresh(message);
        }
        let opener = match (self.state, self.opener.as_mut()) {
            (ServerState::AwaitingAuthorization, Some(opener)) => opener,
            _ => {
                tracing::warn!("out-of-order authorization");
                self.common.close(CloseReason::new(CloseCode::Protocol, "out-of-order authorization"));
                return None;
            }
        };
        let Some(data) = message.data else {
            self.common.send_null(message.id, message.kind);
            self.common.close(CloseReason::new(CloseCode::Protocol, "empty authorization"));
            return None;
        };
        let plain = match opener.open(data) {
            Ok(p) => p,
            Err(e) => {
                self.reject_frame(&e);
                return None;
            }
        };
        let token = match self.version {
            Some(ProtocolVersion::V2) => v2::WitRequestAuthorization::decode(plain).ok().and_then(|a| a.token),
            _ if self.features.resume() => match WitRequestAuthorization::decode_with_resume(plain) {
                Ok((a, resume)) => {
                    self.resume_request = resume;
                    a.token
                }
                Err(_) => None,
            },
            _ => WitRequestAuthorization::decode(plain).ok().and_then(|a| a.token),
        };
        match token {
            Some(token) => {
                self.state = ServerState::Authorizing;
                self.authorization_id = message.id;
                Some(ServerEvent::Authorize { token })
            }
            _ => {
                tracing::warn!("unreadable authorization");
                self.common.send_null(message.id, message.kind);
                self.common.close(CloseReason::new(CloseCode::Protocol, "unreadable authorization"));
                None
            }
        }
    }

    /// A second Authorization on a negotiated connection: a token refresh.
    fn on_refresh(&mut self, message: WitMessage) -> Option<ServerEvent> {
        if self.refresh_id.is_some() {
            tracing::warn!("token refresh while another is being checked");
            self.common.close(CloseReason::new(CloseCode::Protocol, "token refresh while another is being checked"));
            return None;
        }
        let plain = match (message.data, self.opener.as_mut()) {
            (Some(data), Some(opener)) => match opener.open(data) {
                Ok(p) => p,
                Err(e) => {
                    self.reject_frame(&e);
                    return None;
                }
            },
            _ => {
                tracing::warn!("empty token refresh");
                self.common.close(CloseReason::new(CloseCode::Protocol, "empty token refresh"));
                return None;
            }
        };
        match WitRequestAuthorization::decode(plain).ok().and_then(|a| a.token) {
            Some(token) => {
                self.refresh_id = Some(message.id);
                Some(ServerEvent::RefreshToken { token })
            }
            None => {
                tracing::warn!("unreadable token refresh");
                self.common.close(CloseReason::new(CloseCode::Protocol, "unreadable token refresh"));
                None
            }
        }
    }

    /// Answers the pending token refresh ([`ServerEvent::RefreshToken`]): accepted,
    /// the token's deadline becomes `expiry`'s (`None`: the new token does not
    /// expire); refused, the client is told (`IsAuthorized = false`) and the connection
    /// closed with 1008 and `reason`.
    pub fn refresh_decided(&mut self, accepted: bool, expiry: Option<TokenExpiry>, reason: &str) {
        let Some(id) = self.refresh_id.take() else { return };
        let reply = WitResponseAuthorization::new(accepted).encode_with_expiry(Some(expiry.map_or(0, |e| e.unix_ms)));
        self.common.send_sealed(id, MessageType::Authorization, reply.len(), |b| b.put_slice(&reply));
        if accepted {
            self.set_token_expiry(expiry);
            tracing::debug!(expires = expiry.is_some(), "token refreshed");
        } else {
            tracing::warn!(reason, "token refresh refused");
            self.common.close(CloseReason::new(CloseCode::Policy, reason));
        }
    }

    fn set_token_expiry(&mut self, expiry: Option<TokenExpiry>) {
        let grace = self.config.token_expiry_grace;
        self.common.timers.set_token_deadline(expiry.map(|e| e.at + grace));
    }

    /// Answers the pending Authorization: `true` authorizes the connection (events
    /// may be delivered from now on), `false` refuses and closes it.
    pub fn authorization_decided(&mut self, authorized: bool) {
        self.authorization_decided_until(authorized, None);
    }

    /// As [`ServerSession::authorization_decided`], for a token that expires: past
    /// `expiry.at` plus the grace the connection is closed (1008, "access token
    /// expired") unless a refresh moved the deadline. A client that negotiated
    /// `token-refresh` is told the expiry in the answer.
    pub fn authorization_decided_until(&mut self, authorized: bool, expiry: Option<TokenExpiry>) {
        self.authorization_decided_resumed(authorized, expiry, None);
    }

    /// As [`ServerSession::authorization_decided_until`], with the answer to a resume
    /// request (`Resumed`, member 3: `<stream>\t<epoch>\t<offset>\t<0|1>` lines),
    /// written only to a client that negotiated `resume`. Queue the replayed events
    /// after this call: they go out after the answer.
    pub fn authorization_decided_resumed(
        &mut self,
        authorized: bool,
        expiry: Option<TokenExpiry>,
        resumed: Option<&str>,
    ) {
        if self.state != ServerState::Authorizing {
            return;
        }
        let expires = expiry.filter(|_| authorized).map_or(0, |e| e.unix_ms);
        let resumed = resumed.filter(|_| authorized && self.features.resume());
        let reply = match self.version {
            Some(ProtocolVersion::V2) => v2::WitResponseAuthorization::new(authorized).encode(),
            _ if resumed.is_some() => {
                WitResponseAuthorization::new(authorized).encode_with_resumed(Some(expires), resumed)
            }
            _ if self.features.token_refresh() => {
                WitResponseAuthorization::new(authorized).encode_with_expiry(Some(expires))
            }
            _ => WitResponseAuthorization::new(authorized).encode(),
        };
        self.common.send_sealed(self.authorization_id, MessageType::Authorization, reply.len(), |b| {
            b.put_slice(&reply);
        });
        if authorized {
            self.state = ServerState::Authorized;
            self.common.timers.handshake_done();
            self.set_token_expiry(expiry);
        } else {
            tracing::warn!("authorization refused");
            self.common.close(CloseReason::new(CloseCode::Policy, "unauthorized: the access token was rejected"));
        }
    }

    fn on_request(&mut self, message: WitMessage) -> Option<ServerEvent> {
        if self.version == Some(ProtocolVersion::V2) {
            return self.on_request_v2(message);
        }
        let id = message.id;
        let plain = match (message.data, self.opener.as_mut()) {
            (Some(data), Some(opener)) => match opener.open(data) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.reject_frame(&e);
                    return None;
                }
            },
            (data, None) => data,
            (None, Some(_)) => None,
        };
        if self.state != ServerState::Authorized {
            tracing::warn!("request before authorization");
            let response = WitResponse::error(CommunicationStatus::Unauthorized, text::NOT_AUTHORIZED, None);
            self.send_response(id, &response);
            return None;
        }
        match plain.map(WitRequest::decode_for_dispatch) {
            Some(Ok(request)) => Some(ServerEvent::Request { id, request }),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "unreadable request");
                let response =
                    WitResponse::error(CommunicationStatus::BadRequest, text::REQUEST_EMPTY, Some(e.to_string()));
                self.send_response(id, &response);
                None
            }
            None => {
                self.send_response(id, &WitResponse::error(CommunicationStatus::BadRequest, text::REQUEST_EMPTY, None));
                None
            }
        }
    }

    /// A protocol-2 request. A frame that does not open or decode gets the reply a
    /// .NET 2.x client expects (its pending call would hang on a bare close), then
    /// the connection is closed.
    fn on_request_v2(&mut self, message: WitMessage) -> Option<ServerEvent> {
        let id = message.id;
        let plain = match (message.data, self.opener.as_mut()) {
            (Some(data), Some(opener)) => opener.open(data).ok(),
            (data, None) => data,
            (None, Some(_)) => None,
        };
        let Some(request) = plain.and_then(|p| v2::WitRequest::decode(p).ok()) else {
            tracing::warn!("unreadable protocol-2 request; answering, then closing");
            self.send_response(id, &v2::WitResponse::request_empty().into());
            self.common.close(CloseReason::new(CloseCode::Policy, "unreadable request"));
            return None;
        };
        if self.state != ServerState::Authorized {
            tracing::warn!("request before authorization");
            let response = WitResponse::error(CommunicationStatus::Unauthorized, text::NOT_AUTHORIZED, None);
            self.send_response(id, &response);
            return None;
        }
        Some(ServerEvent::RequestV2 { id, request })
    }

    /// Queues the response to request `id`, encoded straight into its frame (in the
    /// connection's protocol).
    pub fn send_response(&mut self, id: Uuid, response: &WitResponse) {
        if self.version == Some(ProtocolVersion::V2) {
            let encoded = v2::WitResponse::from(response.clone()).encode();
            return self.common.send_sealed(id, MessageType::Request, encoded.len(), |b| b.put_slice(&encoded));
        }
        self.common.send_sealed(id, MessageType::Request, response.encoded_len(), |b| response.encode_into(b));
    }

    /// Queues an event (an encoded protocol-3 `WitRequest`, sealed for this
    /// connection; a protocol-2 connection gets it re-encoded with the runtime type
    /// names a .NET 2.x client resolves).
    pub fn send_event(&mut self, id: Uuid, payload: &Bytes) {
        if self.version == Some(ProtocolVersion::V2) {
            let Ok(event) = WitRequest::decode(payload.clone()) else {
                return tracing::error!("cannot re-encode an event for protocol 2");
            };
            let encoded =
                v2::event_request(&event.method_name, event.parameters, &event.parameter_types_by_name).encode();
            return self.common.send_sealed(id, MessageType::Callback, encoded.len(), |b| b.put_slice(&encoded));
        }
        self.common.send_sealed(id, MessageType::Callback, payload.len(), |b| b.put_slice(payload));
    }

    /// Queues a replay batch: `frame` is its whole envelope ([`crate::batch::frame`]),
    /// sent as it is on a plain connection and sealed anew on an encrypted one. Only
    /// for a connection that negotiated `replay-batch`; any other gets nothing (and an
    /// error in the log), since it could not read it.
    pub fn send_replay_batch(&mut self, frame: &Bytes) {
        if !self.features.replay_batch() {
            return tracing::error!("a replay batch for a connection that did not negotiate replay-batch; dropped");
        }
        self.common.send_shared(frame);
    }

    /// Moves an item of the connection's queue into the session.
    pub fn send_queued(&mut self, item: Queued) {
        match item {
            Queued::Response { id, response } => self.send_response(id, &response),
            Queued::Event { id, payload, .. } => self.send_event(id, &payload),
            Queued::ReplayBatch { frame } => self.send_replay_batch(&frame),
            Queued::Close(reason) => self.close(reason),
        }
    }
}
