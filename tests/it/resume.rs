//! Resumable event streams: a client whose TCP connection is cut (through a proxy that
//! drops it; once for 30 s) reconnects, resumes, and gets every event raised meanwhile once and in
//! order, then live ones; past the history window it is told so and gets nothing
//! partial; another identity cannot take over someone's groups; a .NET-shaped client
//! sees today's bytes.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc::client::ReconnectPolicy;
use witrpc::prelude::*;
use witrpc::protocol::{
    MessageType, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponseAuthorization,
    WitResponseInitialization,
};
use witrpc::server::HistoryLimits;
use witrpc::{EventError, EventStream};
use witrpc_demo::{DemoServiceClient, UserTokens};

use crate::util::{Proxy, RawPeer, TestServer, demo_request, within, within_limit};

fn policy() -> ReconnectPolicy {
    ReconnectPolicy::new(Duration::from_millis(20), Duration::from_millis(100))
}

async fn server(limits: HistoryLimits) -> TestServer {
    TestServer::start(|b| b.with_access_token_validator(UserTokens).with_event_history("Message", limits)).await
}

async fn client(url: &str, token: &str, reconnect: bool) -> WitClient {
    let mut builder = WitClientBuilder::new().with_websocket(url).with_access_token(token);
    if reconnect {
        builder = builder.with_reconnect(policy());
    }
    within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
}

/// Waits until the server has closed every connection in `group` (so the cut
/// connection is gone from the server, not only from the client).
pub(crate) async fn wait_until_empty(sender: &DemoServiceClient<WitClient>, group: &str) {
    within("the server notices the cut", async {
        while sender.group_size(group.to_owned()).await.expect("group size") > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Sends `text` to everyone, to `room` or to user `ann`, by its prefix.
pub(crate) async fn send(sender: &DemoServiceClient<WitClient>, text: &str) {
    let sent = match text.split('-').next() {
        Some("all") => within("broadcast", sender.broadcast(text.into())).await,
        Some("room") => within("group", sender.send_to_group("room".into(), text.into())).await,
        _ => within("user", sender.send_to_user("ann".into(), text.into())).await,
    };
    sent.expect("sent");
}

/// The next event's text; a marker, or the end of the stream, fails the test.
pub(crate) async fn next_text(messages: &mut EventStream<String>) -> String {
    within("the next event", messages.next()).await.expect("the stream goes on").expect("an event, not a marker")
}

/// The stream yields `Resumed { recovered: true }`, then every text of `expected` once,
/// in order per stream (`all-`, `room-`, `ann-`; the streams are replayed one after the
/// other).
pub(crate) async fn expect_recovered(messages: &mut EventStream<String>, expected: &[String]) {
    let marker = within("marker", messages.next()).await.expect("the stream goes on");
    assert!(matches!(marker, Err(EventError::Resumed { recovered: true })), "{marker:?}");
    let mut received = Vec::new();
    within_limit(Duration::from_secs(60), "replay", async {
        while received.len() < expected.len() {
            received.push(messages.next().await.expect("stream open").expect("an event, not a marker"));
        }
    })
    .await;
    for prefix in ["all-", "room-", "ann-"] {
        let got: Vec<&String> = received.iter().filter(|t| t.starts_with(prefix)).collect();
        let want: Vec<&String> = expected.iter().filter(|t| t.starts_with(prefix)).collect();
        assert_eq!(got, want, "stream {prefix}: every missed event once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_for_30_s_gets_every_missed_broadcast_group_and_user_event_once_in_order() {
    let node = server(HistoryLimits::new(1_000, Duration::from_secs(120))).await;
    let proxy = Proxy::start(node.server.local_addr().expect("address")).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let ann = client(&proxy.url(), "user:ann", true).await;
    let demo = DemoServiceClient::new(ann.clone());
    let mut messages = demo.message();
    within("join", demo.join_group("room".into())).await.expect("joined");
    for text in ["all-0", "room-0", "ann-0"] {
        send(&sender, text).await;
        assert_eq!(next_text(&mut messages).await, text);
    }

    proxy.sever();
    let cut = tokio::time::Instant::now();
    wait_until_empty(&sender, "room").await;
    // 999 events while the client is away: a third to everyone, to its group, to its user.
    let mut expected = Vec::new();
    for i in 1..=333 {
        for text in [format!("all-{i}"), format!("room-{i}"), format!("ann-{i}")] {
            send(&sender, &text).await;
            expected.push(text);
        }
    }
    // The one long cut of the suite (issue 14 asks for 30 s): real sockets cannot run on
    // paused time. The client keeps retrying meanwhile.
    tokio::time::sleep_until(cut + Duration::from_secs(30)).await;
    proxy.restore();

    expect_recovered(&mut messages, &expected).await;
    // Then live ones, the group membership restored by the resume.
    within("group", sender.send_to_group("room".into(), "room-live".into())).await.expect("sent");
    within("broadcast", sender.broadcast("all-live".into())).await.expect("sent");
    assert_eq!(next_text(&mut messages).await, "room-live");
    assert_eq!(next_text(&mut messages).await, "all-live");
    assert_eq!(within("group size", sender.group_size("room".into())).await.expect("size"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_history_window_the_client_is_told_and_gets_nothing_partial() {
    let node = server(HistoryLimits::new(10, Duration::from_secs(120))).await;
    let proxy = Proxy::start(node.server.local_addr().expect("address")).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let ann = client(&proxy.url(), "user:ann", true).await;
    let demo = DemoServiceClient::new(ann.clone());
    let mut messages = demo.message();
    within("join", demo.join_group("room".into())).await.expect("joined");
    within("broadcast", sender.broadcast("before".into())).await.expect("sent");
    assert_eq!(next_text(&mut messages).await, "before");

    proxy.sever();
    wait_until_empty(&sender, "room").await;
    for i in 0..50 {
        within("broadcast", sender.broadcast(format!("missed-{i}"))).await.expect("sent");
    }
    proxy.restore();
    let marker = within("marker", messages.next()).await.expect("the stream goes on");
    assert!(matches!(marker, Err(EventError::Resumed { recovered: false })), "{marker:?}");
    // The client is back once a call goes through; then the next event is a live one.
    within("call", demo.add(1, 2)).await.expect("connected again");
    within("broadcast", sender.broadcast("after".into())).await.expect("sent");
    assert_eq!(next_text(&mut messages).await, "after");
}

/// A raw peer that negotiates `resume` (plain mode) and returns its `Resumed` answer.
pub(crate) async fn resume_peer(url: &str, token: &str, resume: Option<&str>) -> (RawPeer, String) {
    resume_peer_with(url, token, resume, "witrpc/1 resume").await
}

/// [`resume_peer`] announcing `features` (all of which the server must accept).
async fn resume_peer_with(url: &str, token: &str, resume: Option<&str>, features: &str) -> (RawPeer, String) {
    let mut peer = RawPeer::connect(url).await;
    let init = WitRequestInitialization::plain().encode_with_extensions(Some(features));
    peer.send(MessageType::Initialization, Some(init)).await;
    let reply = peer.recv_message().await;
    let (_, ext) = WitResponseInitialization::decode_with_extensions(reply.data.expect("data")).expect("decodes");
    assert_eq!(ext.as_deref(), Some(features));
    let auth = WitRequestAuthorization { token: Some(token.into()) }.encode_with_resume(resume);
    peer.send(MessageType::Authorization, Some(auth)).await;
    let reply = peer.recv_message().await;
    let (answer, expiry, resumed) =
        WitResponseAuthorization::decode_with_resumed(reply.data.expect("data")).expect("decodes");
    assert!(answer.is_authorized);
    assert_eq!(expiry, Some(0), "member 2 is written with member 3");
    (peer, resumed.expect("a resume client always gets member 3"))
}

/// The next callback: its text argument and position.
pub(crate) async fn next_event(peer: &mut RawPeer) -> (String, Option<String>) {
    loop {
        let message = peer.recv_message().await;
        if message.kind != MessageType::Callback {
            continue;
        }
        let (event, position) = WitRequest::decode_with_position(message.data.expect("data")).expect("decodes");
        let text = String::from_utf8(event.parameters[0].to_vec()).expect("utf-8");
        return (text.trim_matches('"').to_owned(), position);
    }
}

/// The text argument and position of one encoded callback.
fn text_and_position(payload: witrpc::protocol::bytes::Bytes) -> (String, Option<String>) {
    let (event, position) = WitRequest::decode_with_position(payload).expect("decodes");
    let text = String::from_utf8(event.parameters[0].to_vec()).expect("utf-8");
    (text.trim_matches('"').to_owned(), position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_reaches_a_batch_client_packed_and_any_other_event_by_event() {
    let node = server(HistoryLimits::new(1000, Duration::from_secs(120))).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let batching = "witrpc/1 resume replay-batch";
    let (mut packed, packed_answer) = resume_peer_with(&node.url, "user:ann", None, batching).await;
    let (mut plain, plain_answer) = resume_peer(&node.url, "user:bob", None).await;
    within("broadcast", sender.broadcast("first".into())).await.expect("sent");
    // Live events are single callbacks for both.
    let (_, top) = next_event(&mut packed).await;
    let (_, plain_top) = next_event(&mut plain).await;
    let (top, plain_top) = (top.expect("positioned"), plain_top.expect("positioned"));
    drop((packed, plain));
    let missed: Vec<String> = (0..300).map(|i| format!("missed-{i}-{}", "x".repeat(i % 400))).collect();
    for text in &missed {
        within("broadcast", sender.broadcast(text.clone())).await.expect("sent");
    }

    let id = |answer: &str| answer.lines().next().expect("the connection id").to_owned();
    let request = format!("{}\n{top}", id(&packed_answer));
    let (mut packed, answer) = resume_peer_with(&node.url, "user:ann", Some(&request), batching).await;
    assert!(answer.lines().any(|l| l.starts_with("all\t") && l.ends_with("\t1")), "{answer:?}");
    // The 300 come packed, several to a message (about 60 KB: more than one batch),
    // in order and each with its position; no single callback comes before the last.
    let (stream_epoch, offset) = top.rsplit_once('\t').map(|(s, o)| (s.to_owned(), o.parse::<u64>().unwrap())).unwrap();
    let (mut replayed, mut batches) = (Vec::new(), 0);
    while replayed.len() < missed.len() {
        let message = within("replay", packed.recv_message()).await;
        assert_eq!(message.kind, MessageType::REPLAY_BATCH, "a replayed event came alone: {message:?}");
        batches += 1;
        for entry in witrpc::protocol::batch::unpack(message.data.expect("data")).expect("a well-formed batch") {
            let (text, position) = text_and_position(entry);
            let expected_offset = offset + 1 + replayed.len() as u64;
            assert_eq!(position.as_deref(), Some(format!("{stream_epoch}\t{expected_offset}").as_str()));
            replayed.push(text);
        }
    }
    assert_eq!(replayed, missed);
    assert!((2..missed.len()).contains(&batches), "{batches} batches for {} events", missed.len());
    // Then live events, one callback each, and nothing replayed twice.
    within("broadcast", sender.broadcast("live".into())).await.expect("sent");
    let live = within("live", packed.recv_message()).await;
    assert_eq!(live.kind, MessageType::Callback);
    assert_eq!(text_and_position(live.data.expect("data")).0, "live");

    // A client that did not announce `replay-batch` gets the same events one by one.
    let request = format!("{}\n{plain_top}", id(&plain_answer));
    let (mut plain, _) = resume_peer(&node.url, "user:bob", Some(&request)).await;
    for text in missed.iter().chain([&"live".to_owned()]) {
        let message = within("replay", plain.recv_message()).await;
        assert_eq!(message.kind, MessageType::Callback, "{message:?}");
        assert_eq!(&text_and_position(message.data.expect("data")).0, text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_client_gets_its_replay_sealed_for_its_own_connection() {
    let limits = HistoryLimits::new(1_000, Duration::from_secs(120));
    let node = TestServer::start(|b| {
        b.with_encryption().with_access_token_validator(UserTokens).with_event_history("Message", limits)
    })
    .await;
    let proxy = Proxy::start(node.server.local_addr().expect("address")).await;
    let encrypted = |url: String, token: &'static str| {
        WitClientBuilder::new().with_websocket(url).with_encryption().with_access_token(token)
    };
    let sender = within("connect", encrypted(node.url.clone(), "user:sam").connect(Duration::from_secs(10)))
        .await
        .expect("connects");
    let sender = DemoServiceClient::new(sender);
    let ann =
        within("connect", encrypted(proxy.url(), "user:ann").with_reconnect(policy()).connect(Duration::from_secs(10)))
            .await
            .expect("connects");
    let demo = DemoServiceClient::new(ann.clone());
    let mut messages = demo.message();
    within("join", demo.join_group("room".into())).await.expect("joined");
    send(&sender, "all-0").await;
    assert_eq!(next_text(&mut messages).await, "all-0");

    proxy.sever();
    wait_until_empty(&sender, "room").await;
    let expected: Vec<String> = (1..=200).map(|i| format!("all-{i}")).collect();
    for text in &expected {
        send(&sender, text).await;
    }
    proxy.restore();
    // The replay travels packed, framed once for every plain connection; this one's
    // batches are sealed with its own keys, or it could not read them.
    expect_recovered(&mut messages, &expected).await;
}

fn call(method: &str, token: &str, params: &[&str]) -> WitRequest {
    WitRequest { token: token.into(), ..demo_request(method, params) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_identity_cannot_resume_someone_elses_groups_and_the_owner_can() {
    let node = server(HistoryLimits::new(100, Duration::from_secs(120))).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let (mut ann, answer) = resume_peer(&node.url, "user:ann", None).await;
    let ann_id = answer.lines().next().expect("the connection id").to_owned();
    assert_eq!(ann_id.len(), 36, "{answer:?}");
    let joined = ann.call(&call("JoinGroup", "user:ann", &["\"room\""])).await;
    assert!(joined.data.is_none() || joined.error_message.is_none(), "{joined:?}");
    within("group", sender.send_to_group("room".into(), "g1".into())).await.expect("sent");
    let (text, position) = next_event(&mut ann).await;
    assert_eq!(text, "g1");
    let position = position.expect("an event with history has a position");
    assert!(position.starts_with("g:room\t") && position.ends_with("\t1"), "{position:?}");
    drop(ann);
    wait_until_empty(&sender, "room").await;
    within("group", sender.send_to_group("room".into(), "g2".into())).await.expect("sent");

    // Bob names ann's connection and her group position: refused, not joined.
    let request = format!("{ann_id}\n{position}");
    let (mut bob, answer) = resume_peer(&node.url, "user:bob", Some(&request)).await;
    let refused = format!("{position}\t0");
    assert_eq!(answer.lines().nth(1), Some(refused.as_str()), "{answer:?}");
    within("group", sender.send_to_group("room".into(), "g3".into())).await.expect("sent");
    within("broadcast", sender.broadcast("b1".into())).await.expect("sent");
    assert_eq!(next_event(&mut bob).await.0, "b1", "bob gets neither the replay nor ann's group");

    // Ann herself resumes: the group's missed events, then the broadcast, then live.
    let (mut ann, answer) = resume_peer(&node.url, "user:ann", Some(&request)).await;
    assert!(answer.lines().any(|l| l.starts_with("g:room\t") && l.ends_with("\t3\t1")), "{answer:?}");
    assert_eq!(next_event(&mut ann).await.0, "g2");
    assert_eq!(next_event(&mut ann).await.0, "g3");
    assert_eq!(next_event(&mut ann).await.0, "b1");
    within("group", sender.send_to_group("room".into(), "g4".into())).await.expect("sent");
    let (text, position) = next_event(&mut ann).await;
    assert_eq!(text, "g4", "the membership was restored");
    assert!(position.is_some_and(|p| p.ends_with("\t4")));

    // Malformed resume requests are ignored: the connection is served as a new one.
    for junk in ["", "not-a-guid\nall\tx\t1", &format!("{ann_id}\nall\tx"), &"x\n".repeat(20_000)] {
        let (_peer, answer) = resume_peer(&node.url, "user:eve", Some(junk)).await;
        assert_eq!(answer.lines().count(), 1, "only the new id for {:?}", &junk[..junk.len().min(20)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotnet_shaped_client_gets_todays_bytes_from_a_server_with_history() {
    let node = server(HistoryLimits::new(100, Duration::from_secs(120))).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let mut plain = RawPeer::connect(&node.url).await;
    plain.send(MessageType::Initialization, Some(WitRequestInitialization::plain().encode())).await;
    let reply = plain.recv_message().await;
    assert_eq!(reply.data.as_deref(), Some(&WitResponseInitialization::plain().encode()[..]));
    let auth = WitRequestAuthorization { token: Some("user:dan".into()) }.encode();
    plain.send(MessageType::Authorization, Some(auth)).await;
    let reply = plain.recv_message().await;
    assert_eq!(reply.data.as_deref(), Some(&WitResponseAuthorization::new(true).encode()[..]));

    within("broadcast", sender.broadcast("hello".into())).await.expect("sent");
    let callback = loop {
        let m = plain.recv_message().await;
        if m.kind == MessageType::Callback {
            break m.data.expect("data");
        }
    };
    assert_eq!(callback[0], 10, "ten members, no StreamPosition");
    let (event, position) = WitRequest::decode_with_position(callback.clone()).expect("decodes");
    assert_eq!(position, None);
    assert_eq!(event.encode(), callback.to_vec(), "exactly a plain 3.x server's bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_and_no_duplicate_at_the_seam_while_events_keep_coming() {
    let node = server(HistoryLimits::new(2_000, Duration::from_secs(120))).await;
    let proxy = Proxy::start(node.server.local_addr().expect("address")).await;
    let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
    let ann = client(&proxy.url(), "user:ann", true).await;
    let mut messages = DemoServiceClient::new(ann.clone()).message();
    const LAST: u32 = 1_500;
    let raising = tokio::spawn(async move {
        for i in 1..=LAST {
            match i {
                300 => proxy.sever(),
                // Back while events keep coming: the resume races with live emits.
                800 => proxy.restore(),
                _ => {}
            }
            sender.broadcast(i.to_string()).await.expect("sent");
        }
        proxy
    });
    let mut numbers = Vec::new();
    let mut markers = Vec::new();
    within_limit(Duration::from_secs(60), "every event", async {
        while numbers.last() != Some(&LAST) {
            match messages.next().await.expect("stream open") {
                Ok(text) => numbers.push(text.parse::<u32>().expect("a number")),
                Err(marker) => markers.push(marker.to_string()),
            }
        }
    })
    .await;
    let _proxy = within("raiser", raising).await.expect("raiser");
    assert_eq!(numbers, (1..=LAST).collect::<Vec<_>>(), "each event once, in order");
    assert_eq!(markers.len(), 1, "one reconnect, no gap-forced one: {markers:?}");
    assert!(markers[0].contains("recovered: true"), "{markers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_emitters_keep_each_stream_in_offset_order_across_a_resume() {
    let node = server(HistoryLimits::new(2_000, Duration::from_secs(120))).await;
    let proxy = std::sync::Arc::new(Proxy::start(node.server.local_addr().expect("address")).await);
    let ann = client(&proxy.url(), "user:ann", true).await;
    let mut messages = DemoServiceClient::new(ann.clone()).message();
    const EACH: u32 = 600;
    let mut raisers = Vec::new();
    for name in ["a", "b"] {
        let sender = DemoServiceClient::new(client(&node.url, "user:sam", false).await);
        let proxy = proxy.clone();
        raisers.push(tokio::spawn(async move {
            for i in 1..=EACH {
                // Sender `a` cuts and restores the link while both keep raising.
                match (name, i) {
                    ("a", 200) => proxy.sever(),
                    ("a", 400) => proxy.restore(),
                    _ => {}
                }
                sender.broadcast(format!("{name}-{i}")).await.expect("sent");
            }
        }));
    }
    let (mut a, mut b, mut markers) = (Vec::new(), Vec::new(), Vec::new());
    within_limit(Duration::from_secs(60), "every event", async {
        while a.len() + b.len() < 2 * EACH as usize {
            match messages.next().await.expect("stream open") {
                Ok(text) => {
                    let (name, i) = text.split_once('-').expect("name-number");
                    let i: u32 = i.parse().expect("a number");
                    if name == "a" { a.push(i) } else { b.push(i) }
                }
                Err(marker) => markers.push(marker.to_string()),
            }
        }
    })
    .await;
    for raiser in raisers {
        within("raiser", raiser).await.expect("raiser");
    }
    let all: Vec<u32> = (1..=EACH).collect();
    assert_eq!((a == all, b == all), (true, true), "each sender's events once, in order");
    assert_eq!(markers.len(), 1, "one reconnect, no gap-forced one: {markers:?}");
    assert!(markers[0].contains("recovered: true"), "{markers:?}");
}

/// The demo client's `--watch-events` prints every event as a JSON line with its
/// position, and across a cut of its connection resumes: the missed events follow the
/// `resumed` marker, once, in order, in the same epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_clients_watch_mode_prints_positions_and_resumes_across_a_cut() {
    let node = server(HistoryLimits::new(100, Duration::from_secs(60))).await;
    let proxy = Proxy::start(node.server.local_addr().expect("bound")).await;
    let path = crate::util::example_path("demo_client", "WITRPC_DEMO_CLIENT");
    let args = ["--watch-events", "--url", &proxy.url(), "--token", "user:watcher"];
    let (mut child, first, stdout) = crate::util::spawn_example(&path, &args).await;
    let first: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert!(first["watching"].as_array().is_some_and(|a| a.iter().any(|e| e == "Message")), "{first}");
    let (tx, mut lines) = tokio::sync::mpsc::channel::<serde_json::Value>(1024);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == "Message" && tx.blocking_send(v).is_err() {
                    return;
                }
            }
        }
    });
    let sender = DemoServiceClient::new(client(&node.url, "user:sender", false).await);
    let mut next = async || within("a watched line", lines.recv()).await.expect("the watcher prints");

    // Wait until the watcher is connected (its first line may precede authorization).
    within("the watcher connects", async {
        while node.server.connection_count() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within("broadcast", sender.broadcast("one".into())).await.expect("broadcast");
    let one = next().await;
    assert_eq!(one["args"], serde_json::json!(["one"]), "{one}");
    assert_eq!(one["stream"], "all", "{one}");
    let (epoch, offset) = (one["epoch"].clone(), one["offset"].as_u64().expect("an offset"));

    proxy.sever();
    within("the server notices the cut", async {
        while node.server.connection_count() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for text in ["two", "three"] {
        within("broadcast", sender.broadcast(text.into())).await.expect("broadcast");
    }
    proxy.restore();
    let marker = next().await;
    assert_eq!((marker["resumed"].clone(), marker["recovered"].clone()), (true.into(), true.into()), "{marker}");
    for (i, text) in ["two", "three"].into_iter().enumerate() {
        let line = next().await;
        assert_eq!(line["args"], serde_json::json!([text]), "{line}");
        assert_eq!((line["epoch"].clone(), line["offset"].as_u64()), (epoch.clone(), Some(offset + 1 + i as u64)));
    }
    within("broadcast", sender.broadcast("four".into())).await.expect("broadcast");
    let four = next().await;
    assert_eq!((four["args"].clone(), four["offset"].as_u64()), (serde_json::json!(["four"]), Some(offset + 3)));
    let _ = child.kill();
    let _ = child.wait();
}
