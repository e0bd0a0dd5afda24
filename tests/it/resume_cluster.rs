//! Resuming on another node: two nodes share their event history through a real Redis
//! (started by the test). A client cut for 30 s from node A (through a proxy that drops
//! TCP) reconnects to node B, with A shut down meanwhile, and gets every missed event
//! once and in order, its groups back, then live ones; past the window it is told
//! `recovered = false` and gets nothing partial; the history's order holds for events
//! raised on both nodes at once, and at the seam of a raw resume; forged positioned
//! frames are dropped; Redis forgetting its scripts costs nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use witrpc::EventError;
use witrpc::client::ReconnectPolicy;
use witrpc::prelude::*;
use witrpc::server::HistoryLimits;
use witrpc_demo::{DemoServiceClient, UserTokens};

use crate::cluster::{Redis, broker, broker_config};
use crate::resume::{expect_recovered, next_event, next_text, resume_peer, send, wait_until_empty};
use crate::util::{Proxy, TestServer, within, within_limit};

async fn node(redis: &Redis, id: &str, limits: HistoryLimits) -> TestServer {
    node_at(redis.url(), id, limits).await
}

/// A node with history for `Message`, its broker on the Redis (server or cluster) at `url`.
async fn node_at(url: String, id: &str, limits: HistoryLimits) -> TestServer {
    let broker = broker(broker_config(url, id)).await;
    TestServer::start(|b| {
        b.with_access_token_validator(UserTokens).with_event_history("Message", limits).with_broker(Arc::new(broker))
    })
    .await
}

async fn connect(url: &str, token: &str, reconnect: bool) -> WitClient {
    let mut builder = WitClientBuilder::new().with_websocket(url).with_access_token(token);
    if reconnect {
        builder = builder.with_reconnect(ReconnectPolicy::new(Duration::from_millis(20), Duration::from_millis(100)));
    }
    within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
}

async fn client(url: &str, token: &str, reconnect: bool) -> DemoServiceClient<WitClient> {
    DemoServiceClient::new(connect(url, token, reconnect).await)
}

async fn raw_client(url: &str, token: &str) -> WitClient {
    connect(url, token, true).await
}

fn addr(node: &TestServer) -> std::net::SocketAddr {
    node.server.local_addr().expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_for_30_s_resumes_on_another_node_with_every_missed_event_once_in_order() {
    let redis = Redis::start().await;
    resume_elsewhere(redis.url(), 333, Duration::from_secs(30)).await;
}

/// Node A and node B on the Redis at `redis_url`; ann, on A through a proxy and in group
/// `room`, is cut; A shuts down; `per_stream` events each to everyone, to `room` and to
/// ann are raised on B; `cut` after the cut ann reconnects, to B: every missed event
/// arrives once and in order per stream, then live ones, in the group the resume restored.
pub(crate) async fn resume_elsewhere(redis_url: String, per_stream: usize, cut: Duration) {
    let limits = HistoryLimits::new(1_000, Duration::from_secs(120));
    let a = node_at(redis_url.clone(), "resume-a", limits).await;
    let b = node_at(redis_url, "resume-b", limits).await;
    let proxy = Proxy::start(addr(&a)).await;
    // The sender is on node B: every event crosses Redis to reach A.
    let sender = client(&b.url, "user:sam", false).await;
    let ann = client(&proxy.url(), "user:ann", true).await;
    let mut messages = ann.message();
    within("join", ann.join_group("room".into())).await.expect("joined");
    for text in ["all-0", "room-0", "ann-0"] {
        send(&sender, text).await;
        assert_eq!(next_text(&mut messages).await, text);
    }

    proxy.sever();
    let cut_at = tokio::time::Instant::now();
    wait_until_empty(&sender, "room").await;
    // Node A goes away for good: the resume can only happen on B.
    within("node A shuts down", a.server.shutdown(Duration::from_secs(2))).await;
    proxy.retarget(addr(&b));
    let mut expected = Vec::new();
    for i in 1..=per_stream {
        for text in [format!("all-{i}"), format!("room-{i}"), format!("ann-{i}")] {
            send(&sender, &text).await;
            expected.push(text);
        }
    }
    tokio::time::sleep_until(cut_at + cut).await;
    proxy.restore();

    expect_recovered(&mut messages, &expected).await;
    // Then live ones, in the group the resume restored on node B; nothing more before them.
    send(&sender, "room-live").await;
    send(&sender, "all-live").await;
    assert_eq!(next_text(&mut messages).await, "room-live");
    assert_eq!(next_text(&mut messages).await, "all-live");
    let members = within("members", b.server.group_members("room")).await.expect("presence");
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].node, "resume-b", "the resumed connection lives on node B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_another_node_past_the_window_the_client_is_told_and_gets_nothing_partial() {
    let redis = Redis::start().await;
    let limits = HistoryLimits::new(10, Duration::from_secs(120));
    let a = node(&redis, "window-a", limits).await;
    let b = node(&redis, "window-b", limits).await;
    let proxy = Proxy::start(addr(&a)).await;
    let sender = client(&b.url, "user:sam", false).await;
    let ann = client(&proxy.url(), "user:ann", true).await;
    let mut messages = ann.message();
    within("join", ann.join_group("room".into())).await.expect("joined");
    send(&sender, "all-0").await;
    assert_eq!(next_text(&mut messages).await, "all-0");

    proxy.sever();
    wait_until_empty(&sender, "room").await;
    proxy.retarget(addr(&b));
    // 20 broadcasts: ten more than the window keeps.
    for i in 1..=20 {
        send(&sender, &format!("all-{i}")).await;
    }
    proxy.restore();
    let marker = within("marker", messages.next()).await.expect("the stream goes on");
    assert!(matches!(marker, Err(EventError::Resumed { recovered: false })), "{marker:?}");
    // Nothing of the missed ones: the next event is the live one.
    send(&sender, "all-live").await;
    assert_eq!(next_text(&mut messages).await, "all-live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_raised_on_both_nodes_share_one_order_and_a_resume_has_no_gap_or_duplicate() {
    let redis = Redis::start().await;
    let limits = HistoryLimits::new(1_000, Duration::from_secs(120));
    let a = node(&redis, "order-a", limits).await;
    let b = node(&redis, "order-b", limits).await;
    let proxy = Proxy::start(addr(&a)).await;
    let on_a = client(&a.url, "user:sam", false).await;
    let on_b = client(&b.url, "user:tom", false).await;
    let ann = raw_client(&proxy.url(), "user:ann").await;
    let descriptor = DemoServiceClient::<WitClient>::descriptor();
    let message = descriptor.events.iter().position(|e| e.name == "Message").expect("a Message event");
    let mut positioned = ann.subscribe_raw(descriptor, message).positioned();
    send(&on_a, "all-start").await;
    let first = within("first", positioned.next()).await.expect("event").expect("no marker");
    let first_offset = first.position.as_ref().expect("a position").offset;

    // Both nodes raise broadcasts at once while ann is cut and reconnects to B.
    let raise = |sender: DemoServiceClient<WitClient>, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..150 {
                send(&sender, &format!("all-{tag}{i}")).await;
            }
        })
    };
    let (ra, rb) = (raise(on_a.clone(), "a"), raise(on_b.clone(), "b"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    proxy.sever();
    proxy.retarget(addr(&b));
    proxy.restore();
    ra.await.expect("raiser a");
    rb.await.expect("raiser b");
    send(&on_b, "all-end").await;

    let mut offsets = vec![first_offset];
    let mut texts = Vec::new();
    within_limit(Duration::from_secs(30), "every event", async {
        while texts.last().map(String::as_str) != Some("all-end") {
            match positioned.next().await.expect("stream open") {
                Ok(event) => {
                    offsets.push(event.position.expect("a position").offset);
                    texts.push(serde_json::from_slice::<String>(&event.parameters[0]).expect("a string"));
                }
                Err(EventError::Resumed { recovered }) => assert!(recovered, "the history covers the cut"),
                Err(other) => panic!("unexpected marker {other:?}"),
            }
        }
    })
    .await;
    let consecutive: Vec<u64> = (first_offset..first_offset + offsets.len() as u64).collect();
    assert_eq!(offsets, consecutive, "one order for both nodes' events: no gap, no duplicate");
    for tag in ["a", "b"] {
        let mine: Vec<String> = texts.iter().filter(|t| t.starts_with(&format!("all-{tag}"))).cloned().collect();
        let want: Vec<String> = (0..150).map(|i| format!("all-{tag}{i}")).collect();
        assert_eq!(mine, want, "node {tag}'s events, each once and in the order raised");
    }
}

/// Broadcasts `text`, again while the sender reconnects (it may be closed by a gap).
async fn send_until_sent(sender: &DemoServiceClient<WitClient>, text: &str) {
    within("sent once the sender is back", async {
        while sender.broadcast(text.into()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positioned_frames_without_the_cluster_secret_are_dropped_counted_and_never_replayed() {
    let redis = Redis::start().await;
    let limits = HistoryLimits::new(100, Duration::from_secs(120));
    let server = |secret: &'static str, id: &'static str| {
        let url = redis.url();
        async move {
            let broker = broker(broker_config(url, id).with_secret(secret)).await;
            let handle = broker.clone();
            let node = TestServer::start(|b| {
                b.with_access_token_validator(UserTokens)
                    .with_event_history("Message", limits)
                    .with_broker(Arc::new(broker))
            })
            .await;
            (node, handle)
        }
    };
    let (good, broker) = server("cluster-test-secret", "secret-good").await;
    let (intruder, _) = server("another-secret", "secret-bad").await;
    // The sender sees the gap too, and reconnects.
    let honest = client(&good.url, "user:sam", true).await;
    let attacker = client(&intruder.url, "user:eve", false).await;
    let victim = client(&good.url, "user:ann", true).await;
    let mut messages = victim.message();
    send(&honest, "all-first").await;
    assert_eq!(next_text(&mut messages).await, "all-first");

    let lost = broker.lost_frames();
    within("forged broadcast", attacker.broadcast("all-forged".into())).await.expect("sent");
    // The forged event took an offset (before or after any honest one: the two nodes'
    // appends race), so the victim sees a gap and resumes; the history holds a forged
    // entry in the gap, so it is told `recovered = false` and gets nothing of it.
    let recovered = within("a gap-forced resume", async {
        let mut i = 0;
        loop {
            send_until_sent(&honest, &format!("all-next-{i}")).await;
            i += 1;
            match messages.next().await.expect("the stream goes on") {
                Ok(text) => assert!(text.starts_with("all-next-"), "only honest events: {text}"),
                Err(EventError::Resumed { recovered }) => break recovered,
                Err(other) => panic!("unexpected marker {other:?}"),
            }
        }
    })
    .await;
    assert!(!recovered, "a forged entry is a hole");
    assert!(broker.lost_frames() > lost, "the forged frame is counted");
    send_until_sent(&honest, "all-after").await;
    within("the live event", async {
        loop {
            match messages.next().await.expect("the stream goes on") {
                Ok(text) if text == "all-after" => break,
                Ok(text) => assert!(text.starts_with("all-next-"), "only honest events: {text}"),
                Err(other) => panic!("one resume only: {other:?}"),
            }
        }
    })
    .await;
}

/// The server side of the seam, without a client's duplicate filter: a raw connection
/// resumes on node B while node A keeps raising broadcasts; the offsets it receives go
/// on from its position one by one, with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_resume_on_another_node_while_events_keep_coming_gets_each_offset_once() {
    let redis = Redis::start().await;
    let limits = HistoryLimits::new(5_000, Duration::from_secs(120));
    let a = node(&redis, "seam-a", limits).await;
    let b = node(&redis, "seam-b", limits).await;
    let sender = client(&a.url, "user:sam", false).await;
    let (mut first, answer) = resume_peer(&b.url, "user:ann", None).await;
    let previous = answer.lines().next().expect("the connection id").to_owned();
    send(&sender, "all-0").await;
    let (_, position) = next_event(&mut first).await;
    let from = witrpc::StreamPosition::parse(&position.expect("a position")).expect("readable");
    drop(first);

    const LAST: u32 = 2_000;
    let raising = tokio::spawn(async move {
        for i in 1..=LAST {
            send(&sender, &format!("all-{i}")).await;
        }
    });
    // Resume mid-flood: the replay, the events held meanwhile and the live ones meet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let request = format!("{previous}\n{from}");
    let (mut peer, answer) = resume_peer(&b.url, "user:ann", Some(&request)).await;
    let line = answer.lines().find(|l| l.starts_with("all\t")).expect("the all stream is answered");
    assert!(line.ends_with("\t1"), "recovered: {answer}");
    let mut offsets = Vec::new();
    within_limit(Duration::from_secs(60), "every event", async {
        loop {
            let (text, position) = next_event(&mut peer).await;
            let position = witrpc::StreamPosition::parse(&position.expect("positioned")).expect("readable");
            assert_eq!(position.epoch, from.epoch);
            offsets.push(position.offset);
            if text == format!("all-{LAST}") {
                break;
            }
        }
    })
    .await;
    raising.await.expect("raiser");
    let want: Vec<u64> = (from.offset + 1..=from.offset + u64::from(LAST)).collect();
    assert_eq!(offsets, want, "each offset once, in order, across replay, held and live events");
}

/// Redis forgetting its scripts (`SCRIPT FLUSH`, as after a restart with persistence) is
/// seen as `NOSCRIPT` and the scripts are loaded again: appends and resume reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_resumes_go_on_after_redis_forgets_its_scripts() {
    let redis = Redis::start().await;
    let limits = HistoryLimits::new(100, Duration::from_secs(120));
    let a = node(&redis, "flush-a", limits).await;
    let proxy = Proxy::start(addr(&a)).await;
    let sender = client(&a.url, "user:sam", false).await;
    let ann = client(&proxy.url(), "user:ann", true).await;
    let mut messages = ann.message();
    send(&sender, "all-0").await;
    assert_eq!(next_text(&mut messages).await, "all-0");

    assert!(crate::cluster::command(redis.port, "SCRIPT FLUSH").await.starts_with("+OK"));
    send(&sender, "all-1").await;
    assert_eq!(next_text(&mut messages).await, "all-1");

    assert!(crate::cluster::command(redis.port, "SCRIPT FLUSH").await.starts_with("+OK"));
    proxy.sever();
    within("the cut is noticed", async {
        while a.server.stats().connections_authorized > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let expected: Vec<String> = (2..=4).map(|i| format!("all-{i}")).collect();
    for text in &expected {
        send(&sender, text).await;
    }
    assert!(crate::cluster::command(redis.port, "SCRIPT FLUSH").await.starts_with("+OK"));
    proxy.restore();
    expect_recovered(&mut messages, &expected).await;
}

/// A resume takes its own session record from Redis in one step (read and forgotten)
/// and leaves another identity's where it is.
#[tokio::test]
async fn a_session_record_is_taken_by_its_owner_only() {
    use witrpc::server::broker::SharedHistory as _;
    let redis = Redis::start().await;
    let broker = broker(broker_config(redis.url(), "a")).await;
    let id = uuid::Uuid::new_v4();
    let record = bytes::Bytes::from_static(b"\x01\x03\x00ann, then groups and streams");
    within("save", broker.save_session(id, record.clone(), Duration::from_secs(60))).await.expect("saved");
    let taken = within("take", broker.take_session(id, b"\x01\x03\x00bob")).await.expect("read");
    assert_eq!(taken.as_ref(), Some(&record), "read whoever asks");
    assert_eq!(within("read", broker.session(id)).await.expect("read"), Some(record.clone()), "someone else's stays");
    let taken = within("take", broker.take_session(id, b"\x01\x03\x00ann")).await.expect("read");
    assert_eq!(taken.as_ref(), Some(&record));
    assert_eq!(within("read", broker.session(id)).await.expect("read"), None, "the owner's take forgets it");
    assert_eq!(within("take", broker.take_session(id, b"\x01\x03\x00ann")).await.expect("read"), None);
}
