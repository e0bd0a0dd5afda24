//! Message encryption: every demo method and event with encryption on, mode mismatches
//! that fail fast with a reason, and tampered frames that close the connection.

use futures_util::StreamExt;
use witrpc::prelude::*;
use witrpc::protocol::{CommunicationStatus, MessageType};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, demo_request, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_method_and_event_works_encrypted() {
    let server = TestServer::start(|b| b.with_encryption().with_msgpack().with_access_token("t0k")).await;
    let demo =
        DemoServiceClient::new(server.client(|b| b.with_encryption().with_msgpack().with_access_token("t0k")).await);
    assert_eq!(within("add", demo.add(20, 22)).await.unwrap(), 42);
    assert_eq!(within("echo", demo.echo("secret ✓".to_owned())).await.unwrap(), "secret ✓");
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(within("echo bytes", demo.echo_bytes(big.clone())).await.unwrap(), big);
    assert!(matches!(
        within("fail", demo.fail("x".to_owned())).await,
        Err(ClientError::Remote { status: CommunicationStatus::InternalServerError, .. })
    ));
    let mut progress = demo.progress_changed();
    assert!(within("start", demo.start_processing(20)).await.unwrap());
    for i in 1..=20 {
        assert_eq!(within("progress", progress.next()).await.unwrap().unwrap(), f64::from(i) * 5.0);
    }
    // Many concurrent calls keep the counters in wire order on both sides.
    let calls = futures_util::future::join_all((0..200).map(|i| {
        let demo = demo.clone();
        async move { demo.add(i, i).await }
    }));
    for (i, r) in within("200 calls", calls).await.into_iter().enumerate() {
        assert_eq!(r.unwrap(), 2 * i as i32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_is_refused_by_an_encrypting_server_with_a_reason() {
    let server = TestServer::start(|b| b.with_encryption()).await;
    match server.try_client(|b| b).await {
        Err(ClientError::HandshakeRefused { message }) => assert!(message.contains("encryption"), "{message}"),
        other => panic!("expected a refusal that mentions encryption, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypting_client_is_refused_by_a_plain_server_with_a_reason() {
    let server = TestServer::start(|b| b).await;
    match server.try_client(|b| b.with_encryption()).await {
        Err(ClientError::HandshakeRefused { message }) => assert!(message.contains("encryption"), "{message}"),
        other => panic!("expected a refusal that mentions encryption, got {other:?}"),
    }
}

/// Watches broadcasts; `expect_next` asserts the next Message event.
async fn watcher(server: &TestServer) -> (DemoServiceClient<WitClient>, witrpc::EventStream<String>) {
    let demo = DemoServiceClient::new(server.client(|b| b.with_encryption()).await);
    let messages = demo.message();
    (demo, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_frame_closes_the_connection_and_runs_nothing() {
    let server = TestServer::start(|b| b.with_encryption()).await;
    let (demo, mut messages) = watcher(&server).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake_encrypted("").await;
    let frame = peer.seal(MessageType::Request, demo_request("Broadcast", &["\"once\""]).encode());
    peer.send_bytes(frame.clone()).await;
    let response = peer.recv_message().await; // the event (queued first) or the response
    assert!(matches!(response.kind, MessageType::Callback | MessageType::Request));
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "once");
    peer.send_bytes(frame).await; // replay
    let close = loop {
        match peer.recv().await {
            crate::util::Received::Close(frame) => break frame,
            crate::util::Received::Message(_) => continue, // the first call's remaining answer
        }
    };
    assert_eq!(u16::from(close.expect("close frame").code), 1008);
    within("marker", demo.broadcast("marker".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "marker", "the replay ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_or_altered_frames_close_the_connection_and_run_nothing() {
    let server = TestServer::start(|b| b.with_encryption()).await;
    let (demo, mut messages) = watcher(&server).await;

    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake_encrypted("").await;
    let _first = peer.seal(MessageType::Request, demo_request("Broadcast", &["\"first\""]).encode());
    let second = peer.seal(MessageType::Request, demo_request("Broadcast", &["\"second\""]).encode());
    peer.send_bytes(second).await; // counter 2 before counter 1
    assert_eq!(u16::from(peer.expect_close().await.expect("close frame").code), 1008);

    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake_encrypted("").await;
    let mut altered = peer.seal(MessageType::Request, demo_request("Broadcast", &["\"altered\""]).encode());
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    peer.send_bytes(altered).await;
    assert_eq!(u16::from(peer.expect_close().await.expect("close frame").code), 1008);

    within("marker", demo.broadcast("marker".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "marker", "a rejected frame ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_raw_peer_sees_the_protocol_answers() {
    let server = TestServer::start(|b| b.with_encryption().with_access_token("k")).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake_encrypted("k").await;
    let mut request = demo_request("Add", &["40", "2"]);
    request.token = "k".to_owned();
    let response = peer.call(&request).await;
    assert_eq!((response.status, response.data.as_deref()), (CommunicationStatus::Ok, Some(&b"42"[..])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_that_reach_no_server_keep_their_key_pair_and_each_connection_sends_a_fresh_one() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use witrpc::client::ReconnectPolicy;
    use witrpc::crypto::encrypted::EncryptedClientEncryptor;

    let server = TestServer::start(|b| b.with_encryption()).await;
    let proxy = crate::util::Proxy::start(server.server.local_addr().expect("address")).await;
    let made = Arc::new(AtomicUsize::new(0));
    let counted = made.clone();
    let builder = WitClientBuilder::new()
        .with_websocket(proxy.url())
        .with_encryptor(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(EncryptedClientEncryptor::generate()?))
        })
        .with_reconnect(ReconnectPolicy::new(Duration::from_millis(20), Duration::from_millis(100)));
    let client = within("connect", builder.connect(Duration::from_secs(10))).await.expect("connects");
    let demo = DemoServiceClient::new(client);
    assert_eq!(within("add", demo.add(1, 2)).await.expect("answered"), 3);
    assert_eq!(made.load(Ordering::SeqCst), 1);

    proxy.sever();
    // Every retry meanwhile is dropped by the proxy before the upgrade: several attempts,
    // none of which sends its public key anywhere.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    within("the reconnect", async {
        while demo.add(1, 2).await.ok() != Some(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        made.load(Ordering::SeqCst),
        2,
        "one key pair per connection (the first, the reconnect), none per failed attempt"
    );
}
