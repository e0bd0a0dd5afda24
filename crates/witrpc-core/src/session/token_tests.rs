//! Token lifetime and the `witrpc/1` negotiation, as whole conversations in memory with
//! made-up time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::crypto::plain::{PlainClientEncryptor, PlainServerEncryptor};
use crate::extensions::Features;
use crate::v2::ProtocolVersion;
use crate::{MessageType, WitMessage, WitRequestInitialization, WitResponseAuthorization, WitResponseInitialization};

const SECOND: Duration = Duration::from_secs(1);
/// The wall-clock value the tests pretend the token expires at.
const EXPIRES_MS: i64 = 1_900_000_000_000;

fn config() -> ServerConfig {
    ServerConfig::new(Keepalive::new(None, 600 * SECOND), 10 * SECOND, 4096)
}

/// A server and a client session; the server answers Authorize with `expiry`.
struct Conversation {
    now: Instant,
    server: ServerSession,
    client: ClientSession,
    /// Raw `Data` of every Initialization and Authorization answer the server sent.
    handshake_replies: Vec<(MessageType, Option<Bytes>)>,
    refresh_tokens: Vec<String>,
    client_events: Vec<ClientEvent>,
    client_error: Option<SessionError>,
    server_close: Option<CloseReason>,
    expiry: Option<TokenExpiry>,
}

impl Conversation {
    fn new(features: Features, protocol: ProtocolVersion) -> Self {
        let now = Instant::now();
        let protocols = Protocols::v3(Arc::new(PlainServerEncryptor))
            .with_v2(Arc::new(crate::crypto::plain_v2::PlainServerEncryptor));
        let encryptor: Box<dyn crate::crypto::ClientEncryptor> = match protocol {
            ProtocolVersion::V2 => Box::new(crate::crypto::plain_v2::PlainClientEncryptor),
            ProtocolVersion::V3 => Box::new(PlainClientEncryptor),
        };
        let keepalive = Keepalive::new(None, 600 * SECOND);
        Self {
            now,
            server: ServerSession::new(now, config(), protocols),
            client: ClientSession::with_features(now, keepalive, encryptor, "t1".into(), protocol, features),
            handshake_replies: Vec::new(),
            refresh_tokens: Vec::new(),
            client_events: Vec::new(),
            client_error: None,
            server_close: None,
            expiry: Some(TokenExpiry { unix_ms: EXPIRES_MS, at: now + 10 * SECOND }),
        }
    }

    /// Connected with a token that expires 10 s from now.
    fn connected(features: Features) -> Self {
        let mut c = Self::new(features, ProtocolVersion::V3);
        c.drive();
        assert!(c.server.is_authorized(), "{:?}", c.client_error);
        assert!(matches!(c.client_events.as_slice(), [ClientEvent::Connected]));
        c.client_events.clear();
        c
    }

    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                let Transmit::Message(frame) = t else { continue };
                match self.server.handle_message(self.now, frame) {
                    Some(ServerEvent::Authorize { .. }) => self.server.authorization_decided_until(true, self.expiry),
                    Some(ServerEvent::RefreshToken { token }) => self.refresh_tokens.push(token),
                    _ => {}
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Message(frame) => {
                        let m = WitMessage::decode(frame.clone()).unwrap();
                        if matches!(m.kind, MessageType::Initialization | MessageType::Authorization) {
                            self.handshake_replies.push((m.kind, m.data));
                        }
                        match self.client.handle_message(self.now, frame) {
                            Ok(Some(e)) => self.client_events.push(e),
                            Ok(None) => {}
                            Err(e) => self.client_error = Some(e),
                        }
                    }
                    Transmit::Close(reason) => self.server_close = Some(reason),
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn advance_to(&mut self, at: Instant) {
        self.now = at;
        self.server.handle_timeout(at);
        self.drive();
    }

    fn reply_data(&self, kind: MessageType) -> Bytes {
        self.handshake_replies.iter().find(|(k, _)| *k == kind).and_then(|(_, d)| d.clone()).unwrap()
    }
}

#[test]
fn a_connection_is_closed_with_a_reason_once_its_token_expired_past_the_grace() {
    let mut c = Conversation::connected(Features::TOKEN_REFRESH);
    let t0 = c.now;
    assert_eq!(c.server.token_deadline(), Some(t0 + 12 * SECOND), "expiry + the 2 s default grace");
    assert!(c.server.poll_timeout().is_some_and(|d| d <= t0 + 12 * SECOND));
    c.advance_to(t0 + 11 * SECOND);
    assert_eq!(c.server_close, None, "still inside the grace");
    c.advance_to(t0 + 12 * SECOND);
    let close = c.server_close.expect("closed at expiry + grace");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, TOKEN_EXPIRED));
}

#[test]
fn expiry_also_closes_a_client_that_did_not_negotiate() {
    let mut c = Conversation::connected(Features::NONE);
    assert_eq!(c.client.token_expires_at_unix_ms(), None, "a plain client is not told");
    c.advance_to(c.now + 12 * SECOND);
    assert_eq!(c.server_close.map(|r| r.reason), Some(TOKEN_EXPIRED.to_owned()));
}

#[test]
fn a_token_without_expiry_never_closes_the_connection() {
    let mut c = Conversation::new(Features::TOKEN_REFRESH, ProtocolVersion::V3);
    c.expiry = None;
    c.drive();
    assert_eq!(c.server.token_deadline(), None);
    assert_eq!(c.client.token_expires_at_unix_ms(), None, "0 on the wire reads as no expiry");
    c.advance_to(c.now + 100 * SECOND);
    assert_eq!(c.server_close, None);
}

#[test]
fn a_refresh_moves_the_deadline_and_replaces_the_token() {
    let mut c = Conversation::connected(Features::TOKEN_REFRESH);
    let t0 = c.now;
    assert_eq!(c.client.token_expires_at_unix_ms(), Some(EXPIRES_MS));
    c.advance_to(t0 + 8 * SECOND);
    assert!(c.client.refresh_token("t2".into()));
    assert!(!c.client.refresh_token("t3".into()), "one refresh at a time");
    c.drive();
    assert_eq!(c.refresh_tokens, ["t2"]);
    assert_eq!(c.client.token(), "t1", "the old token until the server accepted the new one");
    let later = TokenExpiry { unix_ms: EXPIRES_MS + 30_000, at: t0 + 40 * SECOND };
    c.server.refresh_decided(true, Some(later), "unused");
    c.drive();
    assert!(
        matches!(c.client_events.as_slice(), [ClientEvent::TokenRefreshed { expires_at_unix_ms: Some(at) }] if *at == EXPIRES_MS + 30_000),
        "{:?}",
        c.client_events
    );
    assert_eq!(c.client.token(), "t2");
    c.advance_to(t0 + 20 * SECOND);
    assert_eq!(c.server_close, None, "past the first expiry, but refreshed");
    c.advance_to(t0 + 42 * SECOND);
    assert_eq!(c.server_close.map(|r| r.reason), Some(TOKEN_EXPIRED.to_owned()));
}

#[test]
fn a_refused_refresh_is_answered_then_closes_the_connection() {
    let mut c = Conversation::connected(Features::TOKEN_REFRESH);
    assert!(c.client.refresh_token("stolen".into()));
    c.drive();
    c.server.refresh_decided(false, None, "token refresh refused: another identity");
    c.drive();
    assert!(matches!(c.client_error, Some(SessionError::RefreshRefused)), "{:?}", c.client_error);
    let close = c.server_close.expect("closed after the answer");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, "token refresh refused: another identity"));
    let (answer, _) =
        WitResponseAuthorization::decode_with_expiry(c.handshake_replies.last().unwrap().1.clone().unwrap()).unwrap();
    assert!(!answer.is_authorized);
}

#[test]
fn a_second_authorization_without_negotiation_is_still_out_of_order() {
    let mut c = Conversation::connected(Features::NONE);
    assert!(!c.client.refresh_token("t2".into()), "not negotiated: the client does not send it");
    let auth = crate::WitRequestAuthorization { token: Some("t2".into()) }.encode();
    let again = WitMessage::new(Uuid::new_v4(), MessageType::Authorization, Some(auth.into())).encode();
    assert!(c.server.handle_message(c.now, again.into()).is_none());
    c.drive();
    let close = c.server_close.expect("closed");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Protocol, "out-of-order authorization"));
}

#[test]
fn a_client_that_does_not_announce_gets_todays_bytes() {
    let mut c = Conversation::new(Features::NONE, ProtocolVersion::V3);
    c.drive();
    assert_eq!(c.reply_data(MessageType::Initialization), Bytes::from(WitResponseInitialization::plain().encode()));
    assert_eq!(c.reply_data(MessageType::Authorization), Bytes::from(WitResponseAuthorization::new(true).encode()));
    assert_eq!(c.server.features(), Features::NONE);
}

#[test]
fn an_announcing_client_gets_the_accepted_features_and_its_expiry() {
    let mut c = Conversation::new(Features::TOKEN_REFRESH, ProtocolVersion::V3);
    c.drive();
    let (_, extensions) =
        WitResponseInitialization::decode_with_extensions(c.reply_data(MessageType::Initialization)).unwrap();
    assert_eq!(extensions.as_deref(), Some("witrpc/1 token-refresh"));
    let (_, expiry) = WitResponseAuthorization::decode_with_expiry(c.reply_data(MessageType::Authorization)).unwrap();
    assert_eq!(expiry, Some(EXPIRES_MS));
    assert_eq!((c.server.features(), c.client.features()), (Features::TOKEN_REFRESH, Features::TOKEN_REFRESH));
}

#[test]
fn unknown_and_reserved_features_are_not_accepted_and_other_sets_are_ignored() {
    let now = Instant::now();
    let answer = |extensions: &str| {
        let mut server = ServerSession::new(now, config(), Protocols::v3(Arc::new(PlainServerEncryptor)));
        let init = WitRequestInitialization::plain().encode_with_extensions(Some(extensions));
        let m = WitMessage::new(Uuid::new_v4(), MessageType::Initialization, Some(init.into())).encode();
        assert!(server.handle_message(now, m.into()).is_none());
        let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("no reply") };
        let data = WitMessage::decode(frame).unwrap().data.unwrap();
        WitResponseInitialization::decode_with_extensions(data).unwrap().1
    };
    assert_eq!(answer("witrpc/1 resume frobnicate").as_deref(), Some("witrpc/1"));
    assert_eq!(answer("witrpc/2 token-refresh"), None, "another feature set: served as plain 3.x");
    assert_eq!(answer(""), None);
}

#[test]
fn protocol_2_never_negotiates() {
    let mut c = Conversation::new(Features::TOKEN_REFRESH, ProtocolVersion::V2);
    c.drive();
    assert!(c.server.is_authorized());
    assert_eq!((c.server.features(), c.client.features()), (Features::NONE, Features::NONE));
    assert!(!c.client.refresh_token("t2".into()));
}
