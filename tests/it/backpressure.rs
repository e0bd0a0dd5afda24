//! A client that stops reading while the server emits many events is disconnected
//! with a reason; everybody else keeps the full, ordered event stream.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_disconnected_and_others_keep_every_event() {
    // Small queues so the test needs little traffic: 256 messages or 4 MiB per connection.
    let server =
        TestServer::start(|b| b.with_outbound_queue_capacity(256).with_max_outbound_bytes(4 * 1024 * 1024)).await;
    let mut stalled = RawPeer::connect(&server.url).await;
    stalled.handshake("").await; // ...and from now on it never reads.
    let demo = DemoServiceClient::new(server.client(|b| b.with_event_capacity(4096)).await);
    let mut messages = demo.message();
    let text = "x".repeat(10 * 1024);
    let events = 3_000; // 30 MB of events in all
    let reader = tokio::spawn(async move {
        for i in 0..events {
            let m = messages.next().await.expect("stream open").expect("no event lost");
            assert_eq!(m.len(), 10 * 1024 + i.to_string().len(), "event {i} out of order or altered");
            assert!(m.ends_with(&i.to_string()), "event {i} out of order");
        }
    });
    for i in 0..events {
        within("broadcast", demo.broadcast(format!("{text}{i}"))).await.unwrap();
    }
    within("all events, in order", reader).await.unwrap();
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
