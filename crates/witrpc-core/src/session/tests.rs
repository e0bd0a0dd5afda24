//! Whole conversations between a server and a client session, in memory, with made-up
//! time: no sockets, no runtime, no sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::crypto::plain::{PlainClientEncryptor, PlainServerEncryptor};
use crate::v2::ProtocolVersion;
use crate::{CommunicationStatus, MessageType, WitMessage, WitRequest, WitResponse};

const SECOND: Duration = Duration::from_secs(1);

fn config() -> ServerConfig {
    ServerConfig::new(Keepalive::new(Some(5 * SECOND), 20 * SECOND), 10 * SECOND, 1024)
}

/// A server and a client session and the frames in flight between them.
struct Pair {
    now: Instant,
    server: ServerSession,
    client: ClientSession,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    client_error: Option<SessionError>,
    /// What the server wrote that was not a message (pings, the close).
    server_controls: Vec<Transmit>,
    /// Whether the server accepts the token when asked.
    accept: bool,
}

impl Pair {
    fn new() -> Self {
        Self::speaking(both(), ProtocolVersion::V3)
    }

    /// A server accepting `protocols` and a client speaking `version`.
    fn speaking(protocols: Protocols, version: ProtocolVersion) -> Self {
        let now = Instant::now();
        let encryptor: Box<dyn crate::crypto::ClientEncryptor> = match version {
            ProtocolVersion::V2 => Box::new(crate::crypto::plain_v2::PlainClientEncryptor),
            ProtocolVersion::V3 => Box::new(PlainClientEncryptor),
        };
        Self {
            now,
            server: ServerSession::new(now, config(), protocols),
            client: ClientSession::new(now, Keepalive::new(None, 60 * SECOND), encryptor, "t".into(), version),
            server_events: Vec::new(),
            client_events: Vec::new(),
            client_error: None,
            server_controls: Vec::new(),
            accept: true,
        }
    }

    /// Delivers frames both ways until nothing moves; answers Authorize.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                if let Transmit::Message(frame) = t {
                    if self.server.is_closing() {
                        continue;
                    }
                    match self.server.handle_message(self.now, frame) {
                        Some(ServerEvent::Authorize { .. }) => self.server.authorization_decided(self.accept),
                        Some(e) => self.server_events.push(e),
                        None => {}
                    }
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Message(frame) => match self.client.handle_message(self.now, frame) {
                        Ok(Some(e)) => self.client_events.push(e),
                        Ok(None) => {}
                        Err(e) => self.client_error = Some(e),
                    },
                    other => self.server_controls.push(other),
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn connected() -> Self {
        let mut pair = Self::new();
        pair.drive();
        assert!(pair.server.is_authorized());
        assert!(matches!(pair.client_events.as_slice(), [ClientEvent::Connected]));
        pair.client_events.clear();
        pair
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now);
        self.client.handle_timeout(self.now);
        self.drive();
    }

    fn server_closed_with(&self) -> Option<&CloseReason> {
        self.server_controls.iter().find_map(|t| match t {
            Transmit::Close(r) => Some(r),
            _ => None,
        })
    }
}

fn int32() -> crate::ParameterType {
    crate::ParameterType { type_name: Some("System.Int32".into()), assembly: Some("System.Private.CoreLib".into()) }
}

/// Protocols 2 and 3, both unencrypted.
fn both() -> Protocols {
    Protocols::v3(Arc::new(PlainServerEncryptor)).with_v2(Arc::new(crate::crypto::plain_v2::PlainServerEncryptor))
}

fn call(method: &str) -> Bytes {
    WitRequest { token: "t".into(), method_name: method.into(), ..WitRequest::default() }.encode().into()
}

#[test]
fn a_call_goes_out_and_its_response_comes_back() {
    let mut pair = Pair::connected();
    let id = Uuid::new_v4();
    pair.client.send_request(id, &WitRequest::decode(call("Add")).unwrap());
    pair.drive();
    let [ServerEvent::Request { id: got, request }] = pair.server_events.as_slice() else {
        panic!("expected one request, got {:?}", pair.server_events)
    };
    assert_eq!((*got, request.method_name.as_str()), (id, "Add"));
    pair.server.send_response(id, &WitResponse::ok(Some(Bytes::from_static(b"5"))));
    pair.drive();
    let [ClientEvent::Response { id: got, response: Ok(response) }] = pair.client_events.as_slice() else {
        panic!("expected one response, got {:?}", pair.client_events)
    };
    assert_eq!((*got, response.data.as_deref()), (id, Some(&b"5"[..])));
}

#[test]
fn events_reach_the_client_in_order() {
    let mut pair = Pair::connected();
    for name in ["A", "B", "C"] {
        let payload: Bytes = WitRequest { method_name: name.into(), ..WitRequest::default() }.encode().into();
        pair.server.send_event(Uuid::new_v4(), &payload);
    }
    pair.drive();
    let names: Vec<_> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Callback(r) => Some(r.method_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["A", "B", "C"]);
}

#[test]
fn a_refused_token_closes_after_the_reply_and_the_client_says_unauthorized() {
    let mut pair = Pair::new();
    pair.accept = false;
    pair.drive();
    assert!(matches!(pair.client_error, Some(SessionError::Unauthorized)), "{:?}", pair.client_error);
    assert_eq!(pair.server_closed_with().map(|r| r.code), Some(CloseCode::Policy));
    assert!(!pair.server.is_authorized());
}

#[test]
fn a_request_before_authorization_is_answered_561_and_never_dispatched() {
    let now = Instant::now();
    let mut server = ServerSession::new(now, config(), Protocols::v3(Arc::new(PlainServerEncryptor)));
    let id = Uuid::new_v4();
    let early = WitMessage::new(id, MessageType::Request, Some(call("Add"))).encode();
    assert!(server.handle_message(now, early.into()).is_none(), "nothing to dispatch");
    let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("expected an answer") };
    let m = WitMessage::decode(frame).unwrap();
    let response = WitResponse::decode(m.data.unwrap()).unwrap();
    assert_eq!((m.id, response.status), (id, CommunicationStatus::Unauthorized));
}

#[test]
fn an_oversized_message_before_authorization_closes_with_too_big() {
    let now = Instant::now();
    let mut server = ServerSession::new(now, config(), Protocols::v3(Arc::new(PlainServerEncryptor)));
    let big = WitMessage::new(Uuid::nil(), MessageType::Initialization, Some(Bytes::from(vec![0u8; 2000]))).encode();
    assert!(server.handle_message(now, big.into()).is_none());
    let Some(Transmit::Close(reason)) = server.poll_transmit() else { panic!("expected a close") };
    assert_eq!(reason.code, CloseCode::TooBig);
    assert!(server.poll_transmit().is_none(), "nothing after the close");
}

#[test]
fn a_handshake_that_does_not_finish_in_time_is_closed() {
    let now = Instant::now();
    let mut server = ServerSession::new(now, config(), Protocols::v3(Arc::new(PlainServerEncryptor)));
    assert_eq!(server.poll_timeout(), Some(now + 5 * SECOND), "the first ping comes first");
    server.handle_timeout(now + 9 * SECOND);
    assert!(!matches!(server.poll_transmit(), Some(Transmit::Close(_))), "not closed before the deadline");
    server.handle_timeout(now + 10 * SECOND);
    let closes: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
    let Some(Transmit::Close(reason)) = closes.last() else { panic!("expected a close, got {closes:?}") };
    assert_eq!(reason.code, CloseCode::Policy);
    assert!(reason.reason.contains("handshake not completed"), "{}", reason.reason);
    assert_eq!(server.poll_timeout(), None, "a closing session needs no clock");
}

#[test]
fn a_silent_peer_is_pinged_then_closed_at_its_idle_timeout() {
    let mut pair = Pair::connected();
    pair.advance(5 * SECOND);
    assert_eq!(pair.server_controls, [Transmit::Ping]);
    pair.advance(5 * SECOND);
    pair.advance(5 * SECOND);
    assert!(pair.server_closed_with().is_none(), "15 s of silence is within the 20 s idle timeout");
    pair.advance(5 * SECOND);
    let reason = pair.server_closed_with().expect("closed after 20 s of silence");
    assert_eq!(reason.code, CloseCode::Away);
    assert!(reason.reason.contains("idle timeout"), "{}", reason.reason);
}

#[test]
fn a_peer_that_answers_pings_stays_connected() {
    let mut pair = Pair::connected();
    for _ in 0..20 {
        pair.advance(5 * SECOND);
        pair.server.handle_heartbeat(pair.now); // the pong
    }
    assert!(pair.server_closed_with().is_none(), "closed: {:?}", pair.server_closed_with());
    assert_eq!(pair.server_controls.len(), 20, "one ping per interval");
}

#[test]
fn the_client_notices_a_silent_server() {
    let now = Instant::now();
    let mut client = ClientSession::new(
        now,
        Keepalive::new(Some(SECOND), 3 * SECOND),
        Box::new(PlainClientEncryptor),
        "t".into(),
        ProtocolVersion::V3,
    );
    let _init = client.poll_transmit();
    client.handle_timeout(now + 3 * SECOND);
    let reason = client.close_reason().expect("closed");
    assert!(reason.reason.contains("no traffic from the server"), "{}", reason.reason);
}

#[test]
fn a_close_after_pending_keeps_the_order_and_close_now_drops_the_rest() {
    let mut pair = Pair::connected();
    pair.server.send_response(Uuid::new_v4(), &WitResponse::ok(None));
    pair.server.close(CloseReason::new(CloseCode::Away, "server is shutting down"));
    pair.server.send_response(Uuid::new_v4(), &WitResponse::ok(None));
    let out: Vec<_> = std::iter::from_fn(|| pair.server.poll_transmit()).collect();
    assert!(matches!(out.as_slice(), [Transmit::Message(_), Transmit::Close(_)]), "{out:?}");

    let mut pair = Pair::connected();
    pair.server.send_response(Uuid::new_v4(), &WitResponse::ok(None));
    pair.server.close_now(CloseReason::new(CloseCode::Policy, "slow"));
    let out: Vec<_> = std::iter::from_fn(|| pair.server.poll_transmit()).collect();
    assert!(matches!(out.as_slice(), [Transmit::Close(r)] if r.reason == "slow"), "{out:?}");
}

fn kind() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Initialization),
        Just(MessageType::Authorization),
        Just(MessageType::Request),
        Just(MessageType::Callback),
        any::<i32>().prop_map(MessageType::from_i32),
    ]
}

/// Inbound messages a hostile or confused peer might send: valid envelopes of any type
/// with random or well-formed payloads, and raw garbage.
fn inbound() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        (kind(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..48)))
            .prop_map(|(k, d)| { Bytes::from(WitMessage::new(Uuid::new_v4(), k, d.map(Bytes::from)).encode()) }),
        Just(Bytes::from(
            WitMessage::new(
                Uuid::new_v4(),
                MessageType::Initialization,
                Some(crate::WitRequestInitialization::plain().encode().into())
            )
            .encode()
        )),
        Just(Bytes::from(
            WitMessage::new(
                Uuid::new_v4(),
                MessageType::Authorization,
                Some(crate::WitRequestAuthorization { token: Some("t".into()) }.encode().into())
            )
            .encode()
        )),
        Just(Bytes::from(WitMessage::new(Uuid::new_v4(), MessageType::Request, Some(call("Add"))).encode())),
    ]
}

proptest! {
    /// Whatever arrives: no panic, no request dispatched before authorization, and
    /// nothing written after a close.
    #[test]
    fn any_inbound_sequence_keeps_the_session_rules(messages in proptest::collection::vec(inbound(), 0..24), accept in any::<bool>()) {
        let now = Instant::now();
        let mut server = ServerSession::new(now, config(), Protocols::v3(Arc::new(PlainServerEncryptor)));
        let mut closed = false;
        for m in messages {
            let was_authorized = server.is_authorized();
            match server.handle_message(now, m) {
                Some(ServerEvent::Authorize { .. }) => server.authorization_decided(accept),
                Some(ServerEvent::Request { .. }) => prop_assert!(was_authorized, "dispatched before authorization"),
                _ => {}
            }
            while let Some(t) = server.poll_transmit() {
                prop_assert!(!closed, "wrote {t:?} after the close");
                closed |= matches!(t, Transmit::Close(_));
            }
        }
    }

    /// The direct response encoder writes exactly what the codec writes.
    #[test]
    fn encode_into_matches_encode(status in any::<i32>(), data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        message in proptest::option::of(".{0,200}"), details in proptest::option::of(".{0,40000}")) {
        let r = WitResponse { status: CommunicationStatus::from_i32(status), data: data.map(Bytes::from), error_message: message, error_details: details };
        let mut out = Vec::new();
        r.encode_into(&mut out);
        prop_assert_eq!(out.len(), r.encoded_len());
        prop_assert_eq!(out, r.encode());
    }
}

#[test]
fn a_protocol_2_client_is_served_on_the_same_endpoint() {
    let mut pair = Pair::speaking(both(), ProtocolVersion::V2);
    pair.drive();
    assert!(matches!(pair.client_events.as_slice(), [ClientEvent::Connected]), "{:?}", pair.client_error);
    assert_eq!(pair.server.protocol(), Some(ProtocolVersion::V2));
    pair.client_events.clear();
    let id = Uuid::new_v4();
    let request = WitRequest {
        token: "t".into(),
        method_name: "Add".into(),
        parameters: vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")],
        parameter_types_by_name: vec![int32(); 2],
        ..WitRequest::default()
    };
    pair.client.send_request(id, &request);
    pair.drive();
    let [ServerEvent::RequestV2 { id: got, request }] = pair.server_events.as_slice() else {
        panic!("expected one protocol-2 request, got {:?}", pair.server_events)
    };
    assert_eq!((*got, request.method_name.as_str(), request.parameter_types_by_name.len()), (id, "Add", 2));
    pair.server.send_response(id, &WitResponse::ok(Some(Bytes::from_static(b"5"))));
    let event = WitRequest {
        method_name: "Tick".into(),
        parameters: vec![Bytes::from_static(b"1")],
        parameter_types_by_name: vec![int32()],
        ..WitRequest::default()
    };
    pair.server.send_event(Uuid::new_v4(), &event.encode().into());
    pair.drive();
    match pair.client_events.as_slice() {
        [ClientEvent::Response { id: got, response: Ok(r) }, ClientEvent::Callback(e)] => {
            assert_eq!((*got, r.data.as_deref()), (id, Some(&b"5"[..])));
            assert_eq!(e.method_name, "Tick");
            assert_eq!(e.parameter_types, ["System.Int32, System.Private.CoreLib"], "runtime type names for .NET 2.x");
        }
        other => panic!("expected the response then the event, got {other:?}"),
    }
}

#[test]
fn a_server_without_protocol_2_refuses_it_with_a_reply_2x_clients_read() {
    let mut pair = Pair::speaking(Protocols::v3(Arc::new(PlainServerEncryptor)), ProtocolVersion::V2);
    pair.drive();
    assert!(matches!(pair.client_error, Some(SessionError::Refused { .. })), "{:?}", pair.client_error);
    assert!(pair.server_events.is_empty());
    assert!(!pair.server.is_authorized());
    assert_eq!(pair.server_closed_with().map(|r| r.code), Some(CloseCode::Policy));
}

#[test]
fn a_server_without_protocol_3_tells_a_3x_client_why() {
    let protocols = both().without_v3();
    let mut pair = Pair::speaking(protocols, ProtocolVersion::V3);
    pair.drive();
    let Some(SessionError::Refused { message }) = &pair.client_error else {
        panic!("expected a refusal, got {:?}", pair.client_error)
    };
    assert!(message.contains("protocol 2"), "{message}");
}

#[test]
fn a_protocol_3_client_of_a_2x_server_is_told_so() {
    // What a .NET 2.x server answers a protocol-3 Initialization: null Data.
    let now = Instant::now();
    let mut client =
        ClientSession::new(now, Keepalive::default(), Box::new(PlainClientEncryptor), "t".into(), ProtocolVersion::V3);
    let Some(Transmit::Message(init)) = client.poll_transmit() else { panic!("no initialization") };
    let init = WitMessage::decode(init).unwrap();
    let reply = WitMessage::new(init.id, MessageType::Initialization, None).encode();
    let Err(SessionError::ProtocolMismatch { message }) = client.handle_message(now, reply.into()) else {
        panic!("expected a protocol mismatch")
    };
    assert!(message.contains("protocol 2"), "{message}");
}

#[test]
fn an_unreadable_protocol_2_request_is_answered_before_the_close() {
    let mut pair = Pair::speaking(both(), ProtocolVersion::V2);
    pair.drive();
    let id = Uuid::new_v4();
    let garbage = WitMessage::new(id, MessageType::Request, Some(Bytes::from_static(b"\x07junk"))).encode();
    assert!(pair.server.handle_message(pair.now, garbage.into()).is_none());
    let out: Vec<_> = std::iter::from_fn(|| pair.server.poll_transmit()).collect();
    let [Transmit::Message(reply), Transmit::Close(_)] = out.as_slice() else {
        panic!("expected a reply then a close: {out:?}")
    };
    let reply = WitMessage::decode(reply.clone()).unwrap();
    let response = crate::v2::WitResponse::decode(reply.data.unwrap()).unwrap();
    assert_eq!((reply.id, response.status), (id, CommunicationStatus::BadRequest));
}
