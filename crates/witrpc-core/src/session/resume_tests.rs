//! The `resume` feature between a client and a server session, in memory: negotiated
//! only when the server keeps history, the request and answer members, positioned
//! callbacks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::crypto::plain::{PlainClientEncryptor, PlainServerEncryptor};
use crate::extensions::Features;
use crate::v2::ProtocolVersion;
use crate::{CodecError, WitMessage, WitRequest};

/// Runs a handshake: the client announces everything, the server accepts `resume` when
/// `server_resume`; returns both sessions and the Resume member the server read.
fn handshake(
    server_resume: bool,
    request: Option<&str>,
    answer: &str,
) -> (ServerSession, ClientSession, Option<String>) {
    handshake_announcing(Features::SUPPORTED, server_resume, request, answer)
}

/// [`handshake`] with the client announcing `announced`.
fn handshake_announcing(
    announced: Features,
    server_resume: bool,
    request: Option<&str>,
    answer: &str,
) -> (ServerSession, ClientSession, Option<String>) {
    let now = Instant::now();
    let config = ServerConfig::new(Keepalive::new(None, Duration::from_secs(600)), Duration::from_secs(10), 4096)
        .with_resume(server_resume);
    let mut server = ServerSession::new(now, config, Protocols::v3(Arc::new(PlainServerEncryptor)));
    let mut client = ClientSession::with_features(
        now,
        Keepalive::new(None, Duration::from_secs(600)),
        Box::new(PlainClientEncryptor),
        "t".into(),
        ProtocolVersion::V3,
        announced,
    )
    .with_resume_request(request.map(str::to_owned));
    let mut read = None;
    for _ in 0..4 {
        while let Some(Transmit::Message(frame)) = client.poll_transmit() {
            if let Some(ServerEvent::Authorize { .. }) = server.handle_message(now, frame) {
                read = server.take_resume_request();
                server.authorization_decided_resumed(true, None, Some(answer));
            }
        }
        while let Some(Transmit::Message(frame)) = server.poll_transmit() {
            client.handle_message(now, frame).expect("the client reads the server");
        }
    }
    assert!(server.is_authorized());
    (server, client, read)
}

fn callback(server: &mut ServerSession, client: &mut ClientSession, payload: Vec<u8>) -> ClientEvent {
    server.send_event(Uuid::new_v4(), &Bytes::from(payload));
    let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("no event frame") };
    client.handle_message(Instant::now(), frame).expect("reads").expect("an event")
}

#[test]
fn resume_is_negotiated_only_with_history_and_carries_request_answer_and_positions() {
    let id = Uuid::new_v4().to_string();
    let (mut server, mut client, read) = handshake(true, Some("prev\nall\tab\t1"), &id);
    assert!(server.features().resume() && client.features().resume());
    assert_eq!(read.as_deref(), Some("prev\nall\tab\t1"));
    assert_eq!(client.resumed(), Some(id.as_str()));
    let event = WitRequest { method_name: "Tick".into(), ..WitRequest::default() };
    match callback(&mut server, &mut client, event.encode_with_position(Some("all\tab\t2"))) {
        ClientEvent::PositionedCallback { event: got, position } => {
            assert_eq!((got, &*position), (event.clone(), "all\tab\t2"));
        }
        other => panic!("expected a positioned callback, got {other:?}"),
    }
    assert!(matches!(callback(&mut server, &mut client, event.encode()), ClientEvent::Callback(_)));

    // A server without history: not negotiated, no member read or written.
    let (mut server, mut client, read) = handshake(false, Some("prev\nall\tab\t1"), &id);
    assert!(!server.features().resume() && server.features().token_refresh());
    assert_eq!((read, client.resumed()), (None, None));
    // Even a positioned payload is a plain callback to a client that did not negotiate.
    let positioned = event.encode_with_position(Some("all\tab\t2"));
    assert!(matches!(callback(&mut server, &mut client, positioned), ClientEvent::Callback(_)));
}

#[test]
fn replay_batches_are_negotiated_with_resume_and_unpack_into_positioned_callbacks() {
    let id = Uuid::new_v4().to_string();
    let event = |name: &str| WitRequest { method_name: name.into(), ..WitRequest::default() };
    let (mut server, mut client, _) = handshake(true, None, &id);
    assert!(server.features().replay_batch() && client.features().replay_batch());
    let payloads =
        [event("A").encode_with_position(Some("all\tab\t5")), event("B").encode_with_position(Some("u:ann\tcd\t1"))];
    let batches: Vec<Bytes> =
        crate::batch::pack(payloads.iter().map(Vec::as_slice)).into_iter().map(crate::batch::frame).collect();
    server.send_replay_batch(&batches[0]);
    let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("no batch frame") };
    assert_eq!(frame, batches[0], "a plain connection sends the shared frame as it is");
    match client.handle_message(Instant::now(), frame) {
        Ok(Some(ClientEvent::Replayed { events })) => {
            let got: Vec<(String, String)> =
                events.map(|e| e.map(|(e, p)| (e.method_name, p.to_string())).unwrap()).collect();
            assert_eq!(got, [("A".into(), "all\tab\t5".into()), ("B".into(), "u:ann\tcd\t1".into())]);
        }
        other => panic!("expected the replayed events, got {other:?}"),
    }

    // A batch is ours: an entry without a position, or a damaged batch, is a fault
    // (the connection ends and the reconnect resumes), never a silent hole.
    let unpositioned = crate::batch::frame(crate::batch::pack([&event("C").encode()[..]]).remove(0));
    let data = WitMessage::decode(batches[0].clone()).unwrap().data.unwrap();
    let damaged = crate::batch::frame(data.slice(..data.len() - 1));
    server.send_replay_batch(&damaged);
    let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("no batch frame") };
    assert!(matches!(client.handle_message(Instant::now(), frame), Err(SessionError::Codec(_))));
    server.send_replay_batch(&unpositioned);
    let Some(Transmit::Message(frame)) = server.poll_transmit() else { panic!("no batch frame") };
    match client.handle_message(Instant::now(), frame) {
        Ok(Some(ClientEvent::Replayed { mut events })) => {
            assert!(matches!(events.next(), Some(Err(CodecError::Null { .. }))), "an entry without a position");
        }
        other => panic!("expected the replayed events, got {other:?}"),
    }

    // Not announced, or announced without `resume`, or a server without history: no
    // batches, and the server sends none even if asked to.
    for (announced, server_resume) in [
        (Features::RESUME, true),
        (Features::TOKEN_REFRESH.union(Features::REPLAY_BATCH), true),
        (Features::SUPPORTED, false),
    ] {
        let (mut server, client, _) = handshake_announcing(announced, server_resume, None, &id);
        assert!(!server.features().replay_batch() && !client.features().replay_batch(), "{announced:?}");
        server.send_replay_batch(&batches[0]);
        assert!(server.poll_transmit().is_none(), "{announced:?}");
    }
}
