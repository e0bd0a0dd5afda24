//! A bounded hostile-peer run: 100k random and mutated frames over real sockets while
//! a well-behaved client keeps calling, and alongside them unauthenticated peers that
//! flood Pings and send oversized messages before authorizing (issue 16). The server
//! must not panic, must keep answering the good client, must close every abuser with
//! 1009, and must end with no connection left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use witrpc::protocol::{
    MessageType, ParameterType, Uuid, WitMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization,
};
use witrpc_demo::DemoServiceClient;

use std::time::Duration;

use crate::util::{TestServer, demo_request, within, within_limit};

/// Frames sent in all.
const FRAMES: usize = 100_000;
/// Hostile connections running at once (each reconnects after the server closes it).
const PEERS: usize = 4;

/// xorshift64: deterministic, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A valid frame from the corpus, then mutated (or replaced by noise).
fn hostile_frame(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut frame = corpus[rng.below(corpus.len())].clone();
    match rng.below(100) {
        // Pure noise (usually not an envelope: the server closes the connection).
        0 => (0..rng.below(200) + 1).map(|_| rng.next() as u8).collect(),
        // Any message type, including unknown ones and out-of-order handshakes.
        1..=5 => {
            frame[17..21].copy_from_slice(&(rng.below(7) as i32).to_le_bytes());
            frame
        }
        // Flip bytes inside the payload only: the envelope stays readable.
        6..=70 if frame.len() > 25 => {
            for _ in 0..=rng.below(4) {
                let i = 25 + rng.below(frame.len() - 25);
                frame[i] ^= (rng.next() as u8) | 1;
            }
            frame
        }
        // Truncate or extend the payload and fix up its length.
        71..=95 if frame.len() > 25 => {
            let keep = 25 + rng.below(frame.len() - 25);
            frame.truncate(keep);
            frame.extend((0..rng.below(16)).map(|_| rng.next() as u8));
            let len = (frame.len() - 25) as i32;
            frame[21..25].copy_from_slice(&len.to_le_bytes());
            frame
        }
        // Unchanged valid requests.
        _ => frame,
    }
}

/// The corpus in protocol 2 (.NET 2.x payloads, with the .NET parameter types a 2.x
/// client sends).
fn corpus_v2() -> Vec<Vec<u8>> {
    let int =
        || ParameterType { type_name: Some("System.Int32".into()), assembly: Some("System.Private.CoreLib".into()) };
    let string =
        || ParameterType { type_name: Some("System.String".into()), assembly: Some("System.Private.CoreLib".into()) };
    let v2 = |mut r: WitRequest, types: Vec<ParameterType>| {
        r.parameter_types_by_name = types;
        let payload = witrpc::protocol::v2::WitRequest::from(r).encode();
        WitMessage::new(Uuid::new_v4(), MessageType::Request, Some(Bytes::from(payload))).encode()
    };
    vec![
        v2(demo_request("Add", &["1", "2"]), vec![int(), int()]),
        v2(demo_request("Echo", &["\"hello\""]), vec![string()]),
        v2(demo_request("Broadcast", &["\"x\""]), vec![string()]),
        v2(demo_request("Fail", &["\"no\""]), vec![string()]),
        v2(demo_request("Add", &["1"]), vec![int()]),
        v2(demo_request("NoSuchMethod", &[]), vec![]),
    ]
}

fn corpus() -> Vec<Vec<u8>> {
    let envelope = |kind, data: Vec<u8>| WitMessage::new(Uuid::new_v4(), kind, Some(Bytes::from(data))).encode();
    vec![
        envelope(MessageType::Request, demo_request("Add", &["1", "2"]).encode()),
        envelope(MessageType::Request, demo_request("Echo", &["\"hello\""]).encode()),
        envelope(MessageType::Request, demo_request("EchoBytes", &["\"AAEC\""]).encode()),
        envelope(MessageType::Request, demo_request("Broadcast", &["\"x\""]).encode()),
        envelope(MessageType::Request, demo_request("Fail", &["\"no\""]).encode()),
        envelope(MessageType::Request, demo_request("NoSuchMethod", &[]).encode()),
    ]
}

/// Sends hostile frames until `stop`, reconnecting (and re-authorizing) whenever the
/// server closes the connection. Answers are read and dropped so the peer never stalls.
///
/// With `protocol_2`, the peer speaks protocol 2 (.NET 2.x): its handshake and requests
/// are 2.x payloads, mutated the same way.
async fn hostile_peer(url: String, seed: u64, stop: Arc<AtomicBool>, protocol_2: bool) {
    let corpus = if protocol_2 { corpus_v2() } else { corpus() };
    let mut rng = Rng(seed);
    let mut sent = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        let (mut sink, mut stream) = ws.split();
        // Reads (and drops) the answers; notices the server's close.
        let closed = Arc::new(AtomicBool::new(false));
        let drain = tokio::spawn({
            let closed = closed.clone();
            async move {
                while let Some(Ok(m)) = stream.next().await {
                    if m.is_close() {
                        break;
                    }
                }
                closed.store(true, Ordering::Relaxed);
            }
        });
        // Handshake without waiting for answers: the order on the wire is what counts.
        let (init, auth) = if protocol_2 {
            use witrpc::protocol::v2;
            (
                v2::WitRequestInitialization::plain().encode(),
                v2::WitRequestAuthorization { token: Some(String::new()) }.encode(),
            )
        } else {
            (
                WitRequestInitialization::plain().encode(),
                WitRequestAuthorization { token: Some(String::new()) }.encode(),
            )
        };
        let init = WitMessage::new(Uuid::new_v4(), MessageType::Initialization, Some(init.into()));
        let auth = WitMessage::new(Uuid::new_v4(), MessageType::Authorization, Some(auth.into()));
        let mut alive = sink.send(Message::Binary(init.encode().into())).await.is_ok()
            && sink.send(Message::Binary(auth.encode().into())).await.is_ok();
        while alive && !stop.load(Ordering::Relaxed) {
            let frame = hostile_frame(&mut rng, &corpus);
            alive = !closed.load(Ordering::Relaxed) && sink.send(Message::Binary(frame.into())).await.is_ok();
            sent += usize::from(alive);
            if sent % 16 == 0 {
                // Let the server keep up, so frames are not written into a connection it
                // has already closed.
                tokio::task::yield_now().await;
            }
        }
        let _ = sink.close().await;
        drain.abort();
    }
}

/// Rounds of the pre-authorization abuser (few: it must not starve the frame peers).
const ABUSER_ROUNDS: u64 = 16;

/// Up to [`ABUSER_ROUNDS`] times until `stop`: connects, sends a burst of Pings and then a
/// 256 KiB message before any handshake, and expects the server to close with 1009.
/// Returns the rounds done.
async fn preauth_abuser(url: String, stop: Arc<AtomicBool>) -> u64 {
    let mut rounds = 0;
    while rounds < ABUSER_ROUNDS && !stop.load(Ordering::Relaxed) {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        for _ in 0..64 {
            ws.feed(Message::Ping(Bytes::from_static(&[0x55; 125]))).await.expect("ping");
        }
        // The server may close while this is still being written.
        let _ = ws.send(Message::Binary(vec![0u8; 256 * 1024].into())).await;
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break None,
            }
        };
        assert_eq!(code, Some(1009), "an oversized message before authorization closes with 1009");
        rounds += 1;
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_hostile_frames_leave_the_server_serving() {
    let server = TestServer::start(|b| b).await;
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    let stop = Arc::new(AtomicBool::new(false));
    let good_calls = Arc::new(AtomicU64::new(0));
    let good = tokio::spawn({
        let (stop, good_calls) = (stop.clone(), good_calls.clone());
        async move {
            let mut i = 0i32;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(demo.add(i, 1).await.expect("the good client is always answered"), i + 1);
                i = i.wrapping_add(1);
                good_calls.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let peers: Vec<_> = (0..PEERS)
        .map(|i| {
            // The last peer speaks protocol 2 (.NET 2.x), on the same endpoint.
            let protocol_2 = i == PEERS - 1;
            tokio::spawn(hostile_peer(
                server.url.clone(),
                0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                stop.clone(),
                protocol_2,
            ))
        })
        .collect();
    let abuser = tokio::spawn(preauth_abuser(server.url.clone(), stop.clone()));
    // Count what the server really read, not what was written into closed sockets.
    // 100k frames through the debug build, with reconnects: a lot of work on a loaded
    // 2-core machine, hence the wider hang guard.
    within_limit(Duration::from_secs(90), "100k hostile frames read by the server", async {
        while server.server.messages_received().saturating_sub(good_calls.load(Ordering::Relaxed)) < FRAMES as u64 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for p in peers {
        within("hostile peer", p).await.expect("hostile peer task");
    }
    let rounds = within("pre-authorization abuser", abuser).await.expect("every abuser was closed with 1009");
    assert!(rounds > 0, "the pre-authorization abuser made no attempt");
    within("good client", good).await.expect("good client saw every answer");
    assert!(good_calls.load(Ordering::Relaxed) > 0, "the good client made no calls");
    within("hostile connections gone", async {
        while server.server.connection_count() > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
