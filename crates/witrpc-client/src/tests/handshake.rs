//! Connecting: Initialization, Authorization and the ways they fail.

use std::time::Duration;

use uuid::Uuid;
use witrpc_core::{
    MessageType, PROTOCOL_VERSION, WitMessage, WitRequestAuthorization, WitRequestInitialization,
    WitResponseAuthorization, WitResponseInitialization,
};

use super::fake::{FakeTransport, pair, within};
use crate::transport::TransportError;
use crate::{ClientError, WitClientBuilder};

#[tokio::test]
async fn sends_a_plain_initialization_then_the_token_and_connects() {
    let (transport, mut server) = pair();
    let connect =
        WitClientBuilder::new().with_access_token("secret").with_transport(transport).connect(Duration::from_secs(5));
    let script = async {
        let init = server.expect(MessageType::Initialization).await;
        let request = WitRequestInitialization::decode(init.data.clone().unwrap()).unwrap();
        assert_eq!(request.public_key.as_deref(), Some(&[0u8][..]));
        assert_eq!(request.protocol_version, PROTOCOL_VERSION);
        server.reply(&init, WitResponseInitialization::plain().encode()).await;
        let auth = server.expect(MessageType::Authorization).await;
        assert_ne!(auth.id, init.id, "every message gets a new id");
        let request = WitRequestAuthorization::decode(auth.data.clone().unwrap()).unwrap();
        assert_eq!(request.token.as_deref(), Some("secret"));
        server.reply(&auth, WitResponseAuthorization::new(true).encode()).await;
    };
    let (client, ()) = within("handshake", async { tokio::join!(connect, script) }).await;
    let client = client.unwrap();
    assert!(client.is_connected());
}

#[tokio::test]
async fn sends_an_empty_token_when_none_is_configured() {
    let (transport, mut server) = pair();
    let connect = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5));
    let (client, token) = within("handshake", async { tokio::join!(connect, server.accept_handshake(true)) }).await;
    client.unwrap();
    assert_eq!(token, "");
}

#[tokio::test]
async fn a_rejected_token_is_unauthorized() {
    let (transport, mut server) = pair();
    let connect =
        WitClientBuilder::new().with_access_token("wrong").with_transport(transport).connect(Duration::from_secs(5));
    let (client, _) = within("handshake", async { tokio::join!(connect, server.accept_handshake(false)) }).await;
    let err = client.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
    assert!(err.to_string().contains("with_access_token"), "{err}");
}

/// Sends `reply` to the client's Initialization and returns what `connect` made of it.
async fn initialization_answered_with(reply: WitResponseInitialization) -> ClientError {
    let (transport, mut server) = pair();
    let connect = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5));
    let script = async {
        let init = server.expect(MessageType::Initialization).await;
        server.reply(&init, reply.encode()).await;
    };
    let (client, ()) = within("handshake", async { tokio::join!(connect, script) }).await;
    client.unwrap_err()
}

#[tokio::test]
async fn a_protocol_mismatch_refusal_is_reported_as_such() {
    let refusal = WitResponseInitialization {
        protocol_version: 4,
        ..WitResponseInitialization::refusal("Protocol mismatch: client 3, server 4")
    };
    match initialization_answered_with(refusal).await {
        ClientError::ProtocolMismatch { message } => assert_eq!(message, "Protocol mismatch: client 3, server 4"),
        other => panic!("expected ProtocolMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn another_refusal_carries_the_servers_message() {
    match initialization_answered_with(WitResponseInitialization::refusal("the server requires encryption")).await {
        ClientError::HandshakeRefused { message } => assert_eq!(message, "the server requires encryption"),
        other => panic!("expected HandshakeRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn key_material_sent_to_a_plain_client_is_an_encryption_error() {
    let reply = WitResponseInitialization {
        symmetric_key: Some(vec![7u8; 32].into()),
        vector: Some(vec![1u8; 16].into()),
        ..WitResponseInitialization::plain()
    };
    let err = initialization_answered_with(reply).await;
    assert!(matches!(err, ClientError::Encryption(_)), "{err:?}");
}

#[tokio::test]
async fn only_a_reply_with_the_requests_id_and_type_completes_a_step() {
    let (transport, mut server) = pair();
    let connect = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5));
    let script = async {
        let init = server.expect(MessageType::Initialization).await;
        let refusal = WitResponseInitialization::refusal("not for you").encode();
        // Another id, then the right id with another type: neither is the answer.
        server.send(WitMessage::new(Uuid::new_v4(), MessageType::Initialization, Some(refusal.clone().into()))).await;
        server.send(WitMessage::new(init.id, MessageType::Request, Some(refusal.into()))).await;
        server.reply(&init, WitResponseInitialization::plain().encode()).await;
        let auth = server.expect(MessageType::Authorization).await;
        server.reply(&auth, WitResponseAuthorization::new(true).encode()).await;
    };
    let (client, ()) = within("handshake", async { tokio::join!(connect, script) }).await;
    assert!(client.unwrap().is_connected());
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_fails_connect_with_a_timeout() {
    let (transport, mut server) = pair();
    let connect = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(3));
    let script = async {
        server.expect(MessageType::Initialization).await;
        std::future::pending::<()>().await;
    };
    let err = within("connect", async {
        tokio::select! {
            result = connect => result.unwrap_err(),
            () = script => unreachable!(),
        }
    })
    .await;
    assert!(matches!(err, ClientError::Timeout { after } if after == Duration::from_secs(3)), "{err:?}");
}

#[tokio::test]
async fn a_server_that_closes_during_the_handshake_fails_connect() {
    let (transport, mut server) = pair();
    let connect = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5));
    let script = async {
        server.expect(MessageType::Initialization).await;
        server.drop_connection();
    };
    let (client, ()) = within("handshake", async { tokio::join!(connect, script) }).await;
    let err = client.unwrap_err();
    assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
}

#[tokio::test]
async fn http_503_before_the_upgrade_means_the_server_is_full() {
    let transport = FakeTransport::failing(TransportError::Rejected { status: 503 });
    let err = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, ClientError::ServerFull), "{err:?}");
    let transport = FakeTransport::failing(TransportError::Rejected { status: 404 });
    let err = WitClientBuilder::new().with_transport(transport).connect(Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, ClientError::Rejected { status: 404 }), "{err:?}");
}

// `connect` without a transport does not compile (a compile_fail doctest on
// `WitClientBuilder` pins that), so there is no run-time error left to check.
