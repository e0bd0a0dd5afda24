//! Protocol 2 (.NET WitRPC 2.x) on the same endpoint as protocol 3: the Rust client in
//! protocol 2 (JSON, MessagePack with LZ4 blocks, token, encryption, events, errors), a
//! 2.x and a 3.x client side by side, and servers that refuse one of the versions.

use futures_util::StreamExt;
use witrpc::client::ProtocolVersion;
use witrpc::prelude::*;
use witrpc::protocol::CommunicationStatus;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, within};

fn v2(b: WebSocketClientBuilder) -> WebSocketClientBuilder {
    b.with_protocol(ProtocolVersion::V2)
}

async fn every_demo_method_in_protocol_2(
    server: impl FnOnce(WebSocketServerBuilder) -> WebSocketServerBuilder,
    client: impl FnOnce(WebSocketClientBuilder) -> WebSocketClientBuilder,
) {
    let server = TestServer::start(server).await;
    let demo = DemoServiceClient::new(server.client(|b| client(v2(b))).await);
    assert_eq!(within("add", demo.add(2, 3)).await.unwrap(), 5);
    assert_eq!(within("echo", demo.echo("héllo ✓".to_owned())).await.unwrap(), "héllo ✓");
    let long = "x".repeat(50_000); // MessagePack writes this as an LZ4 block
    assert_eq!(within("echo long", demo.echo(long.clone())).await.unwrap(), long);
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(within("echo bytes", demo.echo_bytes(bytes.clone())).await.unwrap(), bytes);
    match within("fail", demo.fail("boom".to_owned())).await {
        Err(ClientError::Remote { status, message, details }) => {
            assert_eq!(status, CommunicationStatus::InternalServerError);
            assert_eq!(message.as_deref(), Some("Failed to process request"));
            assert_eq!(details.as_deref(), Some("boom"));
        }
        other => panic!("Fail must give a remote 500 error, got {other:?}"),
    }
    assert_eq!(within("delay", demo.delay(5)).await.unwrap(), 5);
    let mut progress = demo.progress_changed();
    let mut completed = demo.processing_completed();
    assert!(within("start processing", demo.start_processing(4)).await.unwrap());
    for i in 1..=4 {
        assert_eq!(within("progress", progress.next()).await.unwrap().unwrap(), f64::from(i) * 25.0);
    }
    assert_eq!(within("completed", completed.next()).await.unwrap().unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_method_and_event_works_in_protocol_2_with_json() {
    every_demo_method_in_protocol_2(|b| b.with_json(), |b| b.with_json()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_method_and_event_works_in_protocol_2_with_msgpack() {
    every_demo_method_in_protocol_2(|b| b.with_msgpack(), |b| b.with_msgpack()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_2_works_encrypted_with_a_token() {
    every_demo_method_in_protocol_2(
        |b| b.with_encryption().with_access_token("t0k"),
        |b| b.with_encryption().with_access_token("t0k"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_in_protocol_2() {
    let server = TestServer::start(|b| b.with_access_token("right")).await;
    let refused = server.try_client(|b| v2(b).with_access_token("wrong")).await;
    assert!(matches!(refused, Err(ClientError::Unauthorized)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2x_and_a_3x_client_share_one_server_and_its_events() {
    let server = TestServer::start(|b| b).await;
    let old = DemoServiceClient::new(server.client(v2).await);
    let new = DemoServiceClient::new(server.client(|b| b).await);
    let mut old_messages = old.message();
    let mut new_messages = new.message();
    assert_eq!(within("2.x add", old.add(1, 2)).await.unwrap(), 3);
    assert_eq!(within("3.x add", new.add(3, 4)).await.unwrap(), 7);
    within("broadcast from 2.x", old.broadcast("from old".to_owned())).await.unwrap();
    within("broadcast from 3.x", new.broadcast("from new".to_owned())).await.unwrap();
    for messages in [&mut old_messages, &mut new_messages] {
        assert_eq!(within("first", messages.next()).await.unwrap().unwrap(), "from old");
        assert_eq!(within("second", messages.next()).await.unwrap().unwrap(), "from new");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_can_refuse_either_version_with_a_clear_error() {
    let only3 = TestServer::start(|b| b.with_protocol_versions([ProtocolVersion::V3])).await;
    let refused = only3.try_client(v2).await;
    assert!(matches!(refused, Err(ClientError::HandshakeRefused { .. })), "{refused:?}");
    assert_eq!(
        within("3.x still served", DemoServiceClient::new(only3.client(|b| b).await).add(1, 1)).await.unwrap(),
        2
    );

    let only2 = TestServer::start(|b| b.with_protocol_versions([ProtocolVersion::V2])).await;
    match only2.try_client(|b| b).await {
        Err(ClientError::HandshakeRefused { message }) => assert!(message.contains("protocol 2"), "{message}"),
        other => panic!("a 3.x client must be refused with a reason, got {other:?}"),
    }
    assert_eq!(within("2.x still served", DemoServiceClient::new(only2.client(v2).await).add(2, 2)).await.unwrap(), 4);
}

/// Tells a caller which protocol its connection speaks.
#[witrpc::service(contract = "WitRpc.Tests.IProtocolProbe")]
pub(crate) trait ProtocolProbe {
    async fn protocol(&self) -> i32;
}

struct Probe;

impl ProtocolProbe for Probe {
    async fn protocol(&self) -> i32 {
        let context = witrpc::CallContext::current().expect("methods run inside a call context");
        context.protocol.map_or(0, |p| p.number())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_see_the_protocol_of_their_connection() {
    let server = TestServer::start(|b| b.with_service(ProtocolProbeServer::new(Probe))).await;
    let old = server.client(v2).await;
    let new = server.client(|b| b).await;
    for (client, expected) in [(old, 2), (new, 3)] {
        let protocol = within("protocol", ProtocolProbeClient::new(client).protocol()).await.unwrap();
        assert_eq!(protocol, expected);
    }
}
