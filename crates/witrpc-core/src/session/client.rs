//! The client role: the protocol-3 handshake, requests out, responses and events in.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes};
use uuid::Uuid;

use crate::crypto::{Ciphers, ClientEncryptor, CryptoError, Opener};
use crate::extensions::Features;
use crate::session::close::CloseReason;
use crate::session::{Common, Keepalive, Role};
use crate::v2::{self, ProtocolVersion};
use crate::{
    CodecError, MessageType, PROTOCOL_VERSION, WitMessage, WitRequest, WitRequestAuthorization,
    WitRequestInitialization, WitResponse, WitResponseAuthorization, WitResponseInitialization,
};

/// Why a client session cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server refused the Initialization with this message.
    #[error("the server refused the connection: {message}")]
    Refused {
        /// The server's text.
        message: String,
    },
    /// The server speaks another protocol version.
    #[error("protocol mismatch: {message}")]
    ProtocolMismatch {
        /// The server's text.
        message: String,
    },
    /// The server rejected the access token.
    #[error("the server rejected the access token")]
    Unauthorized,
    /// The server refused a refreshed access token (it closes the connection).
    #[error("the server refused the refreshed access token; the connection is closed")]
    RefreshRefused,
    /// The key exchange or a frame's cipher failed.
    #[error("cannot open an encrypted frame: {0}")]
    Crypto(#[source] CryptoError),
    /// The server sent something that is not a protocol-3 message.
    #[error("the server sent an invalid message: {0}")]
    Codec(#[source] CodecError),
}

/// Where a client session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Initialization sent, waiting for its reply.
    Initializing,
    /// Authorization sent, waiting for its reply.
    Authorizing,
    /// Calls may be sent.
    Connected,
}

/// What a client session delivers.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The handshake completed.
    Connected,
    /// The response to request `id`.
    Response {
        /// The request's envelope id.
        id: Uuid,
        /// The response, or why it is unreadable (`None`: it had no data).
        response: Result<WitResponse, Option<CodecError>>,
    },
    /// A server-pushed event (a callback `WitRequest`).
    Callback(WitRequest),
    /// A server-pushed event with its place in its stream (`resume` negotiated, an
    /// event the server keeps history of).
    PositionedCallback {
        /// The callback.
        event: WitRequest,
        /// Its `StreamPosition`: `<stream>\t<epoch>\t<offset>`.
        position: Arc<str>,
    },
    /// Events a resume replayed, packed in one message (`replay-batch` negotiated),
    /// in the order they were sent; each is handled as a
    /// [`ClientEvent::PositionedCallback`].
    Replayed {
        /// Each callback with its `StreamPosition`, decoded as it is taken. An entry
        /// that does not decode, or has no position, is an error: end the connection
        /// (a reconnect resumes from the last event taken).
        events: ReplayedEvents,
    },
    /// The server accepted the token sent with [`ClientSession::refresh_token`]:
    /// requests are stamped with it from now on.
    TokenRefreshed {
        /// When the new token expires (ms since the Unix epoch); `None`: never.
        expires_at_unix_ms: Option<i64>,
    },
}

/// The events of one replay batch ([`ClientEvent::Replayed`]), decoded one at a time.
#[derive(Debug, Clone)]
pub struct ReplayedEvents(crate::batch::Entries);

impl Iterator for ReplayedEvents {
    type Item = Result<(WitRequest, Arc<str>), CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.0.next()?;
        Some(WitRequest::decode_event(entry).and_then(|(event, position)| match position {
            Some(position) => Ok((event, position)),
            None => Err(CodecError::Null { what: "replayed event's position" }),
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// One client connection, without I/O.
///
/// [`ClientSession::new`] queues the Initialization; feed it the server's messages;
/// after [`ClientEvent::Connected`], [`ClientSession::send_request`] sends calls.
#[derive(Debug)]
pub struct ClientSession {
    common: Common,
    state: ClientState,
    encryptor: Box<dyn ClientEncryptor>,
    opener: Option<Box<dyn Opener>>,
    token: String,
    /// Id of the handshake message whose reply is awaited.
    awaiting: Uuid,
    protocol: ProtocolVersion,
    /// What the Initialization announced, and what the server accepted of it.
    announced: Features,
    negotiated: Features,
    expires_at_unix_ms: Option<i64>,
    /// A token refresh waiting for its answer: its id and the token.
    refreshing: Option<(Uuid, String)>,
    /// The `Resume` member to send if the server accepts `resume`.
    resume_request: Option<String>,
    /// The server's `Resumed` answer, once authorized.
    resumed: Option<String>,
    /// The id of an Authorization sent before the Initialization reply
    /// ([`ClientSession::with_pipelined_authorization`]).
    pipelined: Option<Uuid>,
}

impl ClientSession {
    /// Starts a session at `now` speaking `protocol` (3 for .NET WitRPC 3.x servers and
    /// witrpc, 2 for .NET 2.x servers; `encryptor` must be of that protocol's kind):
    /// the Initialization is queued at once.
    pub fn new(
        now: Instant,
        keepalive: Keepalive,
        encryptor: Box<dyn ClientEncryptor>,
        token: String,
        protocol: ProtocolVersion,
    ) -> Self {
        Self::with_features(now, keepalive, encryptor, token, protocol, Features::NONE)
    }

    /// As [`ClientSession::new`], announcing our wire extensions `features` in the
    /// Initialization (protocol 3 only; [`Features::NONE`] announces nothing, the
    /// bytes of [`ClientSession::new`]). A server that does not answer the
    /// announcement (.NET) is spoken to as a plain 3.x server.
    pub fn with_features(
        now: Instant,
        keepalive: Keepalive,
        encryptor: Box<dyn ClientEncryptor>,
        token: String,
        protocol: ProtocolVersion,
        features: Features,
    ) -> Self {
        let mut common = Common::new(Role::Client, now, keepalive, None);
        let public_key = Some(encryptor.public_key());
        let announced = if protocol == ProtocolVersion::V3 { features } else { Features::NONE };
        let announcement = (announced != Features::NONE).then(|| announced.to_wire());
        let init = match protocol {
            ProtocolVersion::V2 => v2::WitRequestInitialization { public_key }.encode(),
            ProtocolVersion::V3 => WitRequestInitialization { public_key, protocol_version: PROTOCOL_VERSION }
                .encode_with_extensions(announcement.as_deref()),
        };
        let awaiting = Uuid::new_v4();
        common.send_raw(awaiting, MessageType::Initialization, &init);
        Self {
            common,
            state: ClientState::Initializing,
            encryptor,
            opener: None,
            token,
            awaiting,
            protocol,
            announced,
            negotiated: Features::NONE,
            expires_at_unix_ms: None,
            refreshing: None,
            resume_request: None,
            resumed: None,
            pipelined: None,
        }
    }

    /// Sends `request` as the Authorization's `Resume` member (the previous
    /// connection id, then `<stream>\t<epoch>\t<offset>` lines) if the server accepts
    /// `resume`; ignored otherwise. Call before the Initialization reply is fed.
    pub fn with_resume_request(mut self, request: Option<String>) -> Self {
        self.resume_request = request;
        self
    }

    /// Queues the Authorization right behind the Initialization instead of after its
    /// reply: the handshake then takes one round trip, not two. Call it last, after
    /// [`ClientSession::with_resume_request`]: the `Resume` member goes with it
    /// whenever `resume` is announced (a server that does not accept `resume` skips
    /// the trailing member, as it skips the announcement).
    ///
    /// Only for a server known to read a connection's messages in order (every witrpc
    /// and .NET 3.x server does), for example one that negotiated our extensions on
    /// the previous connection. The Authorization cannot be sealed before the reply's
    /// keys, so this does nothing with an encrypting `encryptor`, and nothing for
    /// protocol 2. Whether it took effect: [`ClientSession::is_pipelined`].
    pub fn with_pipelined_authorization(mut self) -> Self {
        // Plain mode is the public key `[0x00]` on the wire: nothing to wait for.
        let plain = self.encryptor.public_key().as_ref() == crate::crypto::plain::PLAIN_KEY;
        if self.protocol == ProtocolVersion::V3 && self.state == ClientState::Initializing && plain {
            self.pipelined = Some(self.send_authorization(self.announced.resume()));
        }
        self
    }

    /// Queues the Authorization (with the `Resume` member when `resume`), sealed once
    /// the keys are in place; returns its id.
    fn send_authorization(&mut self, resume: bool) -> Uuid {
        let token = Some(self.token.clone());
        let auth = match self.protocol {
            ProtocolVersion::V2 => v2::WitRequestAuthorization { token }.encode(),
            ProtocolVersion::V3 => {
                WitRequestAuthorization { token }.encode_with_resume(self.resume_request.as_deref().filter(|_| resume))
            }
        };
        let id = Uuid::new_v4();
        self.common.send_sealed(id, MessageType::Authorization, auth.len(), |b| b.put_slice(&auth));
        id
    }

    /// Whether the Authorization went out before the Initialization reply
    /// ([`ClientSession::with_pipelined_authorization`] took effect).
    pub fn is_pipelined(&self) -> bool {
        self.pipelined.is_some()
    }

    /// The server's `Resumed` answer (`resume` negotiated): this connection's id, then
    /// `<stream>\t<epoch>\t<offset>\t<0|1>` lines. `None` before authorization or
    /// without `resume`.
    pub fn resumed(&self) -> Option<&str> {
        self.resumed.as_deref()
    }

    /// The wire extensions the server accepted (none until the Initialization reply,
    /// and none from a .NET server).
    pub fn features(&self) -> Features {
        self.negotiated
    }

    /// When the connection's current token expires (ms since the Unix epoch), as the
    /// server said; `None` when it does not, or the server did not say.
    pub fn token_expires_at_unix_ms(&self) -> Option<i64> {
        self.expires_at_unix_ms
    }

    /// The access token requests are stamped with: the one authorized, or the last
    /// refreshed one once the server accepted it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a token refresh is waiting for its answer.
    pub fn is_refreshing(&self) -> bool {
        self.refreshing.is_some()
    }

    /// Sends `token` to replace the connection's token, in-band (a second
    /// Authorization). The answer arrives as [`ClientEvent::TokenRefreshed`] or as
    /// [`SessionError::RefreshRefused`]. Returns `false` (and sends nothing) unless the
    /// session is connected, negotiated `token-refresh` and has no refresh pending.
    pub fn refresh_token(&mut self, token: String) -> bool {
        if self.state != ClientState::Connected || !self.negotiated.token_refresh() || self.refreshing.is_some() {
            return false;
        }
        let auth = WitRequestAuthorization { token: Some(token.clone()) }.encode();
        let id = Uuid::new_v4();
        self.common.send_sealed(id, MessageType::Authorization, auth.len(), |b| b.put_slice(&auth));
        self.refreshing = Some((id, token));
        true
    }

    /// The protocol this session speaks.
    pub fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// Where the session stands.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The next frame to write, in order.
    pub fn poll_transmit(&mut self) -> Option<super::Transmit> {
        self.common.poll_transmit()
    }

    /// The earliest instant [`ClientSession::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.common.poll_timeout()
    }

    /// Runs the timers; an idle close shows as [`ClientSession::close_reason`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.common.handle_timeout(now, String::new);
    }

    /// Why the session closed, once it did.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.common.close_reason.as_ref()
    }

    /// The server sent transport-level traffic at `now`.
    pub fn handle_heartbeat(&mut self, now: Instant) {
        self.common.timers.heard(now);
    }

    /// Queues a request, encoded in the session's protocol and sealed in order.
    pub fn send_request(&mut self, id: Uuid, request: &WitRequest) {
        let encoded = match self.protocol {
            ProtocolVersion::V2 => v2::WitRequest::from(request.clone()).encode(),
            ProtocolVersion::V3 => request.encode(),
        };
        self.common.send_sealed(id, MessageType::Request, encoded.len(), |b| b.put_slice(&encoded));
    }

    /// Feeds one inbound message received at `now`.
    ///
    /// # Errors
    /// A [`SessionError`] ends the session: the handshake was refused, or the server
    /// sent something unreadable.
    pub fn handle_message(&mut self, now: Instant, bytes: Bytes) -> Result<Option<ClientEvent>, SessionError> {
        self.common.timers.heard(now);
        if bytes.is_empty() {
            return Ok(None);
        }
        let message = WitMessage::decode(bytes).map_err(SessionError::Codec)?;
        match self.state {
            ClientState::Initializing | ClientState::Authorizing if message.id != self.awaiting => {
                tracing::debug!(kind = ?message.kind, "ignoring message during the handshake");
                Ok(None)
            }
            ClientState::Initializing if message.kind == MessageType::Initialization => {
                self.on_initialized(message.data).map(|()| None)
            }
            ClientState::Authorizing if message.kind == MessageType::Authorization => {
                self.on_authorized(message.data).map(|()| Some(ClientEvent::Connected))
            }
            ClientState::Initializing | ClientState::Authorizing => Ok(None),
            ClientState::Connected => self.on_message(message),
        }
    }

    fn on_initialized(&mut self, data: Option<Bytes>) -> Result<(), SessionError> {
        let Some(data) = data else {
            // A null reply is every .NET 2.x server's answer to a protocol-3 client, and
            // a refusal of a protocol-2 client.
            return Err(match self.protocol {
                ProtocolVersion::V3 => {
                    SessionError::ProtocolMismatch { message: v2::texts::SERVER_SPEAKS_PROTOCOL_2.to_owned() }
                }
                ProtocolVersion::V2 => {
                    SessionError::Refused { message: "the server refused the protocol-2 connection".to_owned() }
                }
            });
        };
        let plain = self.encryptor.unwrap_reply(data).map_err(SessionError::Crypto)?;
        let (symmetric_key, vector) = match (self.protocol, v2::detect_reply(&plain)) {
            (ProtocolVersion::V2, Some(ProtocolVersion::V3)) => {
                let text =
                    WitResponseInitialization::decode(plain).ok().and_then(|r| r.error_message).unwrap_or_default();
                return Err(SessionError::ProtocolMismatch {
                    message: format!("{}: {text}", v2::texts::SERVER_SPEAKS_PROTOCOL_3),
                });
            }
            (ProtocolVersion::V2, _) => {
                let response = v2::WitResponseInitialization::decode(plain).map_err(SessionError::Codec)?;
                (response.symmetric_key, response.vector)
            }
            (ProtocolVersion::V3, _) => {
                let (response, extensions) =
                    WitResponseInitialization::decode_with_extensions(plain).map_err(SessionError::Codec)?;
                // A server may accept only what was announced.
                self.negotiated = extensions
                    .as_deref()
                    .and_then(Features::parse)
                    .map_or(Features::NONE, |f| f.intersect(self.announced));
                if let Some(message) = response.error_message {
                    return Err(
                        if message.starts_with("Protocol mismatch") || response.protocol_version != PROTOCOL_VERSION {
                            SessionError::ProtocolMismatch { message }
                        } else {
                            SessionError::Refused { message }
                        },
                    );
                }
                (response.symmetric_key, response.vector)
            }
        };
        let Ciphers { sealer, opener } =
            self.encryptor.complete(symmetric_key.as_deref(), vector.as_deref()).map_err(SessionError::Crypto)?;
        self.common.sealer = Some(sealer);
        self.opener = Some(opener);
        self.state = ClientState::Authorizing;
        // A pipelined Authorization is sent already; the server answers it after this reply.
        self.awaiting = match self.pipelined {
            Some(id) => id,
            None => self.send_authorization(self.negotiated.resume()),
        };
        Ok(())
    }

    fn on_authorized(&mut self, data: Option<Bytes>) -> Result<(), SessionError> {
        let data = data.ok_or(SessionError::Unauthorized)?;
        let plain = self.open(data)?;
        let authorized = match self.protocol {
            ProtocolVersion::V2 => {
                v2::WitResponseAuthorization::decode(plain).map_err(SessionError::Codec)?.is_authorized
            }
            ProtocolVersion::V3 => {
                let (response, expires_at, resumed) =
                    WitResponseAuthorization::decode_with_resumed(plain).map_err(SessionError::Codec)?;
                if self.negotiated.token_refresh() {
                    self.expires_at_unix_ms = expires_at.filter(|&at| at > 0);
                }
                if self.negotiated.resume() {
                    self.resumed = resumed;
                }
                response.is_authorized
            }
        };
        if !authorized {
            return Err(SessionError::Unauthorized);
        }
        self.state = ClientState::Connected;
        Ok(())
    }

    /// The answer to a token refresh.
    fn on_refreshed(&mut self, id: Uuid, data: Option<Bytes>) -> Result<Option<ClientEvent>, SessionError> {
        if self.refreshing.as_ref().is_none_or(|(pending, _)| *pending != id) {
            tracing::debug!("ignoring an unexpected authorization answer");
            return Ok(None);
        }
        let Some((_, token)) = self.refreshing.take() else { return Ok(None) };
        let data = data.ok_or(SessionError::RefreshRefused)?;
        let (response, expires_at) = WitResponseAuthorization::decode_with_expiry(data).map_err(SessionError::Codec)?;
        if !response.is_authorized {
            return Err(SessionError::RefreshRefused);
        }
        self.token = token;
        self.expires_at_unix_ms = expires_at.filter(|&at| at > 0);
        Ok(Some(ClientEvent::TokenRefreshed { expires_at_unix_ms: self.expires_at_unix_ms }))
    }

    fn open(&mut self, data: Bytes) -> Result<Bytes, SessionError> {
        match self.opener.as_mut() {
            Some(opener) => opener.open(data).map_err(SessionError::Crypto),
            None => Ok(data),
        }
    }

    fn on_message(&mut self, message: WitMessage) -> Result<Option<ClientEvent>, SessionError> {
        let data = message.data.map(|d| self.open(d)).transpose()?;
        if message.kind == MessageType::Authorization {
            return self.on_refreshed(message.id, data);
        }
        let v2 = self.protocol == ProtocolVersion::V2;
        if message.kind == MessageType::REPLAY_BATCH && self.negotiated.replay_batch() {
            // Our own extension: anything unreadable is a fault, never skipped, so the
            // connection ends and a reconnect resumes instead of leaving a hole.
            let batch = data.ok_or(SessionError::Codec(CodecError::Null { what: "replay batch" }))?;
            let entries = crate::batch::entries(batch).map_err(SessionError::Codec)?;
            return Ok(Some(ClientEvent::Replayed { events: ReplayedEvents(entries) }));
        }
        if message.kind == MessageType::Callback && self.negotiated.resume() {
            return Ok(match data.map(WitRequest::decode_event) {
                Some(Ok((event, Some(position)))) => Some(ClientEvent::PositionedCallback { event, position }),
                Some(Ok((event, None))) => Some(ClientEvent::Callback(event)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "undecodable event ignored");
                    None
                }
                None => None,
            });
        }
        Ok(match message.kind {
            MessageType::Request => Some(ClientEvent::Response {
                id: message.id,
                response: match data
                    .map(|d| if v2 { v2::WitResponse::decode(d).map(Into::into) } else { WitResponse::decode(d) })
                {
                    Some(Ok(r)) => Ok(r),
                    Some(Err(e)) => Err(Some(e)),
                    None => Err(None),
                },
            }),
            MessageType::Callback => {
                let decoded = data.map(|d| {
                    if v2 {
                        v2::WitRequest::decode(d).map(Into::into)
                    } else {
                        WitRequest::decode_event(d).map(|(e, _)| e)
                    }
                });
                match decoded {
                    Some(Ok(event)) => Some(ClientEvent::Callback(event)),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "undecodable event ignored");
                        None
                    }
                    None => {
                        tracing::debug!("empty event ignored");
                        None
                    }
                }
            }
            other => {
                tracing::debug!(kind = ?other, "ignoring message");
                None
            }
        })
    }
}
