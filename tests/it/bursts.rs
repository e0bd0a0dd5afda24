//! Event bursts, floods and runaway jobs (issue 16, the engine's half): a burst fills
//! queues for a moment without disconnecting readers that keep up, an emitter can wait
//! for room, a flooding peer is held to its rate and then closed, and a long demo job
//! neither pins a worker nor outlives its caller.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc::protocol::{MessageType, WitMessage};
use witrpc::server::RateLimit;
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, Received, TestServer, demo_request, within};

/// A service that raises `Tick(i)` for `i in 0..n` in one go.
#[witrpc::service(contract = "WitRpc.Tests.IBurst")]
pub(crate) trait Burst {
    /// Raises `n` events without yielding; returns `n`.
    async fn burst(&self, n: i32) -> i32;
    /// Raises `n` `Blob` events of `size` bytes in chunks of `chunk`, waiting for room
    /// between chunks; returns whether every wait found room.
    async fn paced(&self, n: i32, chunk: i32, size: i32) -> bool;
    /// One tick.
    #[event]
    fn tick(&self, i: i32);
    /// Some bytes.
    #[event]
    fn blob(&self, text: String);
}

struct Bursts(BurstEvents);

impl Burst for Bursts {
    async fn burst(&self, n: i32) -> i32 {
        for i in 0..n {
            self.0.tick(i).expect("encodes");
        }
        n
    }

    async fn paced(&self, n: i32, chunk: i32, size: i32) -> bool {
        let mut found_room = true;
        let text = "x".repeat(usize::try_from(size).unwrap_or(0));
        for i in 0..n {
            if i % chunk.max(1) == 0 {
                found_room &= self.0.emitter().wait_for_room(Duration::from_millis(500)).await.is_ok();
            }
            self.0.blob(format!("{i} {text}")).expect("encodes");
        }
        found_room
    }
}

fn burst_server() -> BurstServer<Bursts> {
    let events = BurstEvents::new();
    BurstServer::new(Bursts(events.clone())).with_events(&events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_every_queue_keeps_fast_readers_connected() {
    // 2,000 events at once against 1,024-message queues: the old rule disconnected
    // every client here, before any writer had run.
    let server = TestServer::start(|b| b.with_service(burst_server())).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        let client = BurstClient::new(server.client(|b| b.with_event_capacity(4096)).await);
        let mut ticks = client.tick();
        readers.push(tokio::spawn(async move {
            for expected in 0..2_000 {
                let got = ticks.next().await.expect("stream open").expect("no event lost");
                assert_eq!(got, expected, "out of order");
            }
            client
        }));
    }
    let caller = BurstClient::new(server.client(|b| b).await);
    assert_eq!(within("burst", caller.burst(2_000)).await.unwrap(), 2_000);
    for reader in readers {
        let client = within("2,000 events on every reader", reader).await.unwrap();
        assert!(client.channel().is_connected(), "a fast reader was disconnected");
    }
    assert_eq!(server.server.slow_consumer_disconnects(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_still_disconnected_when_it_stays_congested() {
    let server = TestServer::start(|b| {
        b.with_service(burst_server())
            .with_outbound_queue_capacity(64)
            .with_slow_consumer_timeout(Duration::from_millis(200))
    })
    .await;
    let mut stalled = RawPeer::connect(&server.url).await;
    stalled.handshake("").await; // ...and from now on it never reads.
    let caller = BurstClient::new(server.client(|b| b).await);
    // Bursts spread over more than the slow-consumer timeout: the stalled queue stays
    // congested (its socket is full long before) and the client is closed.
    within("stalled peer closed", async {
        while server.server.slow_consumer_disconnects() == 0 {
            caller.burst(500).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(caller.channel().is_connected(), "the caller reads and stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_can_wait_for_room_and_is_told_when_there_is_none() {
    let server = TestServer::start(|b| b.with_service(burst_server()).with_outbound_queue_capacity(64)).await;
    let reader = BurstClient::new(server.client(|b| b.with_event_capacity(8192)).await);
    let mut blobs = reader.blob();
    let caller = BurstClient::new(server.client(|b| b).await);
    assert!(within("paced burst", caller.paced(5_000, 32, 10)).await.unwrap(), "a fast reader always has room");
    for expected in 0..5_000 {
        let blob = within("blob", blobs.next()).await.unwrap().unwrap();
        assert!(blob.starts_with(&format!("{expected} ")), "out of order: {blob}");
    }
    assert_eq!(server.server.slow_consumer_disconnects(), 0);
    drop(blobs);
    // A peer that never reads: once its socket is full its queue fills and stays full
    // (64 KiB events, far more than the socket buffers hold), and the wait says so.
    let mut stalled = RawPeer::connect(&server.url).await;
    stalled.handshake("").await;
    let found_room = within("paced burst with a stalled peer", caller.paced(600, 32, 64 * 1024)).await.unwrap();
    assert!(!found_room, "the stalled peer's queue had room all along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_held_to_its_rate_then_closed_while_others_are_served() {
    let limit = RateLimit::new(200, 1 << 20).with_max_hold(Duration::from_millis(500));
    let server = TestServer::start(|b| b.with_rate_limit(limit)).await;
    let good = DemoServiceClient::new(server.client(|b| b).await);
    let mut flood = RawPeer::connect(&server.url).await;
    flood.handshake("").await;
    let request = demo_request("Add", &["1", "2"]).encode();
    let flooding = tokio::spawn(async move {
        // Far over 200 messages/s, without reading a single answer.
        for _ in 0..50_000 {
            let message =
                WitMessage::new(witrpc::protocol::Uuid::new_v4(), MessageType::Request, Some(request.clone().into()));
            if flood.try_send_bytes(message.encode()).await.is_err() {
                break;
            }
        }
        flood
    });
    for i in 0..20 {
        assert_eq!(within("a good call during the flood", good.add(i, 1)).await.unwrap(), i + 1);
    }
    let mut flood = within("flood ends", flooding).await.unwrap();
    let close = within("flooder closed", async {
        loop {
            match flood.recv().await {
                Received::Close(frame) => break frame,
                Received::Message(_) => continue,
            }
        }
    })
    .await;
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1008);
        assert!(frame.reason.contains("rate limit"), "{}", frame.reason);
    }
    assert_eq!(within("a good call after the flood", good.add(2, 2)).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_jobs_are_refused_and_long_ones_stop_with_their_caller() {
    let server = TestServer::start(|b| b).await;
    let watcher = DemoServiceClient::new(server.client(|b| b.with_event_capacity(1 << 17)).await);
    let mut completed = watcher.processing_completed();
    let mut progress = watcher.progress_changed();
    let caller = DemoServiceClient::new(server.client(|b| b).await);
    assert!(!within("huge job", caller.start_processing(i32::MAX)).await.unwrap(), "an unbounded job was accepted");
    // Two maximal jobs do not stop the server from answering (they yield every step).
    assert!(within("job 1", caller.start_processing(witrpc_demo::MAX_PROCESSING_STEPS)).await.unwrap());
    assert!(within("job 2", caller.start_processing(witrpc_demo::MAX_PROCESSING_STEPS)).await.unwrap());
    assert_eq!(within("add while the jobs run", watcher.add(1, 1)).await.unwrap(), 2);
    within("the jobs have started", progress.next()).await;
    caller.channel().disconnect().await;
    drop(caller);
    // With the caller gone, neither job runs to its end.
    let quiet = tokio::time::timeout(Duration::from_secs(3), completed.next()).await;
    assert!(quiet.is_err(), "a job finished after its caller disconnected: {quiet:?}");
}
