//! Access tokens: the handshake, the per-request check, and what a refusal looks like.

use futures_util::StreamExt as _;
use witrpc::prelude::*;
use witrpc::protocol::{CommunicationStatus, MessageType, WitRequestInitialization, WitResponseInitialization};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, demo_request, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_is_accepted() {
    let server = TestServer::start(|b| b.with_access_token("AuthToken123")).await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("AuthToken123")).await);
    assert_eq!(within("add", demo.add(1, 1)).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_refused() {
    let server = TestServer::start(|b| b.with_access_token("AuthToken123")).await;
    let err = server.try_client(|b| b.with_access_token("wrong")).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
    let err = server.try_client(|b| b).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized), "{err:?}");
    assert_eq!(server.server.authorization_failures(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_peer_is_told_then_disconnected() {
    let server = TestServer::start(|b| b.with_access_token("AuthToken123")).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.initialize().await;
    let answer = peer.authorize("guess").await;
    assert!(!answer.is_authorized);
    assert_eq!(answer.message.as_deref(), Some("Forbidden"));
    let frame = peer.expect_close().await.expect("close frame with a reason");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("unauthorized"), "{}", frame.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_bad_token_gets_561_and_the_connection_stays_usable() {
    let server = TestServer::start(|b| b.with_access_token("AuthToken123")).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("AuthToken123").await;
    let mut request = demo_request("Add", &["1", "2"]);
    request.token = "stolen".to_owned();
    let response = peer.call(&request).await;
    assert_eq!(response.status, CommunicationStatus::Unauthorized);
    assert_eq!(response.error_message.as_deref(), Some("Token is not valid"));
    request.token = "AuthToken123".to_owned();
    let response = peer.call(&request).await;
    assert_eq!(response.status, CommunicationStatus::Ok);
    assert_eq!(response.data.as_deref(), Some(&b"3"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_before_authorization_executes_nothing() {
    let server = TestServer::start(|b| b.with_access_token("AuthToken123")).await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("AuthToken123")).await);
    let mut messages = demo.message();
    let mut peer = RawPeer::connect(&server.url).await;
    peer.initialize().await;
    let mut request = demo_request("Broadcast", &["\"should not run\""]);
    request.token = "AuthToken123".to_owned();
    let response = peer.call(&request).await;
    assert_eq!(response.status, CommunicationStatus::Unauthorized);
    within("broadcast", demo.broadcast("ran".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "ran", "the unauthorized Broadcast ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_mismatch_is_refused_with_the_dotnet_message() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    let request = WitRequestInitialization { protocol_version: 2, ..WitRequestInitialization::plain() };
    let id = peer.send(MessageType::Initialization, Some(request.encode())).await;
    let reply = peer.recv_message().await;
    assert_eq!((reply.id, reply.kind), (id, MessageType::Initialization));
    let refusal = WitResponseInitialization::decode(reply.data.unwrap()).unwrap();
    assert_eq!(refusal.error_message.as_deref(), Some("Protocol mismatch: client 2, server 3"));
    assert!(refusal.symmetric_key.is_none());
    peer.expect_close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_reports_an_unknown_method() {
    #[witrpc::service(contract = "WitRpc.Demo.IDemoService")]
    pub(crate) trait Newer {
        async fn multiply(&self, a: i32, b: i32) -> i32;
    }
    let server = TestServer::start(|b| b).await;
    let newer = NewerClient::new(server.client(|b| b).await);
    match within("multiply", newer.multiply(6, 7)).await {
        Err(ClientError::MethodNotFound { method, .. }) => assert_eq!(method, "Multiply"),
        other => panic!("expected MethodNotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_gets_400_with_the_dotnet_message() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
    let response = peer.call(&demo_request("NoSuchMethod", &[])).await;
    assert_eq!(response.status, CommunicationStatus::BadRequest);
    assert_eq!(response.error_message.as_deref(), Some("Method not found on service, method name: NoSuchMethod"));
    // Name lookup is case-insensitive and checks arity, as in .NET.
    assert_eq!(peer.call(&demo_request("add", &["2", "2"])).await.data.as_deref(), Some(&b"4"[..]));
    assert_eq!(peer.call(&demo_request("Add", &["2"])).await.status, CommunicationStatus::BadRequest);
}
