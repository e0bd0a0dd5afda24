//! A client that stops reading while the server emits many events is disconnected
//! with a reason; everybody else keeps the full, ordered event stream.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc_demo::DemoServiceClient;

use witrpc::protocol::{MessageType, WitRequest};
use witrpc::server::SlowConsumerPolicy;

use crate::util::{RawPeer, TestServer, rss_kib, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_disconnected_and_others_keep_every_event() {
    // Small queues so the test needs little traffic: 256 messages or 4 MiB per connection.
    let server =
        TestServer::start(|b| b.with_outbound_queue_capacity(256).with_max_outbound_bytes(4 * 1024 * 1024)).await;
    let mut stalled = RawPeer::connect(&server.url).await;
    stalled.handshake("").await; // ...and from now on it never reads.
    let demo = DemoServiceClient::new(server.client(|b| b.with_event_capacity(4096)).await);
    let mut messages = demo.message();
    const SIZE: usize = 100 * 1024;
    let text = "x".repeat(SIZE);
    let events = 1_000; // 100 MB of events in all
    let reader = tokio::spawn(async move {
        for i in 0..events {
            let m = messages.next().await.expect("stream open").expect("no event lost");
            assert_eq!(m.len(), SIZE + i.to_string().len(), "event {i} out of order or altered");
            assert!(m.ends_with(&i.to_string()), "event {i} out of order");
        }
    });
    let rss_before = rss_kib();
    for i in 0..events {
        within("broadcast", demo.broadcast(format!("{text}{i}"))).await.unwrap();
    }
    within("all events, in order", reader).await.unwrap();
    println!("stalled client: 100 MB of events emitted, process RSS {rss_before:?} -> {:?} KiB", rss_kib());
    assert_eq!(server.server.slow_consumer_disconnects(), 1);
    // The stalled connection is gone (its writer is cut off after a grace period).
    within("stalled connection closed", async {
        while server.server.connection_count() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesce_latest_keeps_a_slow_client_connected_with_the_newest_value() {
    let server = TestServer::start(|b| {
        b.with_outbound_queue_capacity(64).with_event_policy("Message", SlowConsumerPolicy::CoalesceLatest)
    })
    .await;
    let mut slow = RawPeer::connect(&server.url).await;
    slow.handshake("").await; // ...then does not read while the events are raised.
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    let text = "y".repeat(64 * 1024);
    let events = 600; // ~38 MB: far more than the slow peer's socket and queue hold
    for i in 0..events {
        within("broadcast", demo.broadcast(format!("{text}{i}"))).await.unwrap();
    }
    assert_eq!(server.server.slow_consumer_disconnects(), 0);
    assert_eq!(server.server.connection_count(), 2, "the slow peer was disconnected");
    // Now it reads: some values were coalesced away, but the newest one arrives.
    let last = format!("{}", events - 1);
    let mut received = 0;
    loop {
        let m = slow.recv_message().await;
        assert_eq!(m.kind, MessageType::Callback);
        received += 1;
        let event = WitRequest::decode(m.data.unwrap()).unwrap();
        let value = String::from_utf8_lossy(&event.parameters[0]).into_owned();
        if value.trim_end_matches('"').ends_with(&last) {
            break;
        }
    }
    assert!(received < events, "nothing was coalesced ({received} of {events} delivered)");
}
