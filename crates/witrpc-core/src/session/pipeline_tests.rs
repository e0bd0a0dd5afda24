//! The pipelined handshake (`ClientSession::with_pipelined_authorization`) between a
//! client and a server session, in memory: the Authorization goes out with the
//! Initialization, the server reads both in order, one round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::crypto::plain::{PlainClientEncryptor, PlainServerEncryptor};
use crate::crypto::{Ciphers, ClientEncryptor, CryptoError};
use crate::extensions::Features;
use crate::v2::ProtocolVersion;

fn keepalive() -> Keepalive {
    Keepalive::new(None, Duration::from_secs(600))
}

fn server(resume: bool) -> ServerSession {
    let config = ServerConfig::new(keepalive(), Duration::from_secs(10), 4096).with_resume(resume);
    ServerSession::new(Instant::now(), config, Protocols::v3(Arc::new(PlainServerEncryptor)))
}

fn client(encryptor: Box<dyn ClientEncryptor>, protocol: ProtocolVersion) -> ClientSession {
    ClientSession::with_features(Instant::now(), keepalive(), encryptor, "t".into(), protocol, Features::SUPPORTED)
        .with_resume_request(Some("prev\nall\tab\t1".into()))
        .with_pipelined_authorization()
}

fn frames(client: &mut ClientSession) -> Vec<Bytes> {
    std::iter::from_fn(|| match client.poll_transmit() {
        Some(Transmit::Message(frame)) => Some(frame),
        _ => None,
    })
    .collect()
}

/// One flight each way: everything the client queued goes to the server (answering
/// its Authorize with `accept`), then everything the server wrote comes back. Returns
/// the Resume member the server read and what the client made of the answers.
fn one_round_trip(
    server: &mut ServerSession,
    client: &mut ClientSession,
    accept: bool,
) -> (Option<String>, Vec<Result<Option<ClientEvent>, SessionError>>) {
    let now = Instant::now();
    let mut read = None;
    for frame in frames(client) {
        if let Some(ServerEvent::Authorize { .. }) = server.handle_message(now, frame) {
            read = server.take_resume_request();
            server.authorization_decided_resumed(accept, None, Some("this"));
        }
    }
    let mut got = Vec::new();
    while let Some(Transmit::Message(frame)) = server.poll_transmit() {
        got.push(client.handle_message(now, frame));
    }
    (read, got)
}

#[test]
fn the_authorization_goes_with_the_initialization_and_one_round_trip_connects() {
    let mut client = client(Box::new(PlainClientEncryptor), ProtocolVersion::V3);
    assert!(client.is_pipelined());
    let mut server = server(true);
    let (read, got) = one_round_trip(&mut server, &mut client, true);
    assert!(server.is_authorized());
    assert_eq!(read.as_deref(), Some("prev\nall\tab\t1"), "the Resume member went with it");
    assert!(matches!(got.as_slice(), [Ok(None), Ok(Some(ClientEvent::Connected))]), "{got:?}");
    assert_eq!(client.state(), ClientState::Connected);
    assert!(client.features().resume());
    assert_eq!(client.resumed(), Some("this"));
}

#[test]
fn a_server_without_history_skips_the_resume_member_and_the_client_has_no_answer() {
    let mut client = client(Box::new(PlainClientEncryptor), ProtocolVersion::V3);
    let mut server = server(false);
    let (read, got) = one_round_trip(&mut server, &mut client, true);
    assert!(server.is_authorized());
    assert_eq!(read, None);
    assert!(matches!(got.as_slice(), [Ok(None), Ok(Some(ClientEvent::Connected))]), "{got:?}");
    assert!(!client.features().resume());
    assert_eq!(client.resumed(), None, "no answer is read as a resume");
}

#[test]
fn a_refused_pipelined_token_is_unauthorized() {
    let mut client = client(Box::new(PlainClientEncryptor), ProtocolVersion::V3);
    let mut server = server(true);
    let (_, got) = one_round_trip(&mut server, &mut client, false);
    assert!(!server.is_authorized());
    assert!(matches!(got.as_slice(), [Ok(None), Err(SessionError::Unauthorized)]), "{got:?}");
}

#[test]
fn a_refused_initialization_ends_the_handshake_before_the_authorization_answer() {
    let mut client = client(Box::new(PlainClientEncryptor), ProtocolVersion::V3);
    // A server that speaks only protocol 2 refuses a protocol-3 Initialization.
    let protocols = Protocols::v3(Arc::new(PlainServerEncryptor))
        .with_v2(Arc::new(crate::crypto::plain_v2::PlainServerEncryptor))
        .without_v3();
    let config = ServerConfig::new(keepalive(), Duration::from_secs(10), 4096);
    let mut server = ServerSession::new(Instant::now(), config, protocols);
    let (read, got) = one_round_trip(&mut server, &mut client, true);
    assert_eq!(read, None);
    assert!(!server.is_authorized(), "the Authorization behind a refused Initialization is not read");
    assert!(matches!(got.first(), Some(Err(SessionError::Refused { .. }))), "{got:?}");
    assert_ne!(client.state(), ClientState::Connected);
}

/// An encryptor that needs the reply's keys before it can seal.
#[derive(Debug)]
struct Keyed;

impl ClientEncryptor for Keyed {
    fn public_key(&self) -> Bytes {
        Bytes::from_static(b"not plain")
    }

    fn unwrap_reply(&self, data: Bytes) -> Result<Bytes, CryptoError> {
        Ok(data)
    }

    fn complete(&self, key: Option<&[u8]>, _vector: Option<&[u8]>) -> Result<Ciphers, CryptoError> {
        match key {
            None => Err(CryptoError::InvalidHandshake { reason: "no key" }),
            Some(_) => PlainClientEncryptor.complete(None, None),
        }
    }
}

#[test]
fn nothing_is_pipelined_when_encrypting_or_speaking_protocol_2() {
    let mut encrypted = client(Box::new(Keyed), ProtocolVersion::V3);
    assert!(!encrypted.is_pipelined());
    assert_eq!(frames(&mut encrypted).len(), 1, "the Initialization only");

    let mut v2 = client(Box::new(crate::crypto::plain_v2::PlainClientEncryptor), ProtocolVersion::V2);
    assert!(!v2.is_pipelined());
    assert_eq!(frames(&mut v2).len(), 1, "the Initialization only");
}

#[test]
fn without_pipelining_the_authorization_waits_for_the_reply() {
    let mut client = ClientSession::with_features(
        Instant::now(),
        keepalive(),
        Box::new(PlainClientEncryptor),
        "t".into(),
        ProtocolVersion::V3,
        Features::SUPPORTED,
    );
    assert!(!client.is_pipelined());
    let mut server = server(true);
    let (_, got) = one_round_trip(&mut server, &mut client, true);
    assert!(matches!(got.as_slice(), [Ok(None)]), "{got:?}");
    assert!(!server.is_authorized(), "a second round trip is needed");
    let (_, got) = one_round_trip(&mut server, &mut client, true);
    assert!(matches!(got.as_slice(), [Ok(Some(ClientEvent::Connected))]), "{got:?}");
}
