//! Real `demo_server` processes on one `redis-server`: targeting across processes,
//! presence, a node killed with SIGKILL leaving presence within 10 s, and the clients
//! of a killed node resuming, from the shared history and the session records saved
//! while they were connected, on the node restarted in its place.

use std::process::Child;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use witrpc::prelude::*;
use witrpc_demo::DemoServiceClient;

use crate::cluster::Redis;
use crate::resume::next_text;
use crate::util::{example_path, spawn_example, within};

/// How soon a killed node must be gone from presence (the bound).
const CRASH_BOUND: Duration = Duration::from_secs(10);

struct DemoServer {
    child: Child,
    url: String,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(redis: &Redis, node: &str) -> DemoServer {
    spawn_with(redis, node, "http://127.0.0.1:0/ws", &[]).await
}

async fn spawn_with(redis: &Redis, node: &str, listen: &str, more: &[&str]) -> DemoServer {
    let path = example_path("demo_server", "WITRPC_DEMO_SERVER");
    let url = redis.url();
    let mut args = vec!["--listen", listen, "--redis", &url, "--node-id", node, "--user-tokens"];
    args.extend_from_slice(more);
    let (child, line, _) = spawn_example(&path, &args).await;
    let url = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    DemoServer { child, url }
}

async fn client(server: &DemoServer, user: &str) -> DemoServiceClient<WitClient> {
    let builder = WitClientBuilder::new().with_websocket(&server.url).with_access_token(format!("user:{user}"));
    DemoServiceClient::new(within("connect", builder.connect(Duration::from_secs(10))).await.expect("client connects"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_demo_server_processes_act_as_one_and_a_killed_node_leaves_presence() {
    let redis = Redis::start().await;
    let one = spawn(&redis, "one").await;
    let two = spawn(&redis, "two").await;
    let mut three = spawn(&redis, "three").await;
    let c1 = client(&one, "ann").await;
    let c2 = client(&two, "bob").await;
    let c3 = client(&three, "ann").await;
    let (mut m1, mut m2, mut m3) = (c1.message(), c2.message(), c3.message());
    assert_eq!(within("whoami", c2.who_am_i()).await.unwrap(), "bob");
    for c in [&c1, &c2, &c3] {
        within("join", c.join_group("room".into())).await.unwrap();
    }
    assert_eq!(within("size", c1.group_size("room".into())).await.unwrap(), 3);

    within("send", c3.send_to_group("room".into(), "hello room".into())).await.unwrap();
    for m in [&mut m1, &mut m2, &mut m3] {
        assert_eq!(within("group message", m.next()).await.unwrap().unwrap(), "hello room");
    }
    within("send", c2.send_to_user("ann".into(), "hello ann".into())).await.unwrap();
    within("fence", c2.broadcast("fence".into())).await.unwrap();
    for m in [&mut m1, &mut m3] {
        assert_eq!(within("user message", m.next()).await.unwrap().unwrap(), "hello ann");
        assert_eq!(within("fence", m.next()).await.unwrap().unwrap(), "fence");
    }
    assert_eq!(within("fence on bob", m2.next()).await.unwrap().unwrap(), "fence", "bob got ann's message");

    // SIGKILL: no goodbye; its entries must expire.
    three.child.kill().expect("SIGKILL node three");
    let _ = three.child.wait();
    let killed = Instant::now();
    loop {
        let size = within("size", c1.group_size("room".into())).await.unwrap();
        if size == 2 {
            break;
        }
        assert!(killed.elapsed() < CRASH_BOUND, "the killed node was still in presence after {CRASH_BOUND:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The survivors go on.
    within("send", c1.send_to_group("room".into(), "still here".into())).await.unwrap();
    for m in [&mut m1, &mut m2] {
        assert_eq!(within("after the crash", m.next()).await.unwrap().unwrap(), "still here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_resume_on_its_restart_with_what_they_missed() {
    use witrpc::EventError;
    use witrpc::client::ReconnectPolicy;

    let redis = Redis::start().await;
    let history = ["--history", "100"];
    let mut a = spawn_with(&redis, "restart-a", "http://127.0.0.1:0/ws", &history).await;
    let b = spawn_with(&redis, "restart-b", "http://127.0.0.1:0/ws", &history).await;
    let sender = client(&b, "sam").await;
    let builder = WitClientBuilder::new()
        .with_websocket(&a.url)
        .with_access_token("user:ann")
        .with_reconnect(ReconnectPolicy::new(Duration::from_millis(50), Duration::from_millis(200)));
    let ann = DemoServiceClient::new(within("connect", builder.connect(Duration::from_secs(10))).await.expect("ann"));
    let mut messages = ann.message();
    within("join", ann.join_group("room".into())).await.expect("joined");
    within("send", sender.broadcast("before".into())).await.expect("sent");
    assert_eq!(next_text(&mut messages).await, "before");

    // SIGKILL: node A closes nothing (its port is free again at once); what it saved
    // while ann was connected (her identity and group) is all a resume has.
    let _ = a.child.kill();
    let _ = a.child.wait();
    let mut missed = Vec::new();
    for i in 1..=10 {
        let (all, room) = (format!("all-{i}"), format!("room-{i}"));
        within("send", sender.broadcast(all.clone())).await.expect("sent");
        within("send", sender.send_to_group("room".into(), room.clone())).await.expect("sent");
        missed.extend([all, room]);
    }
    let listen = a.url.replace("ws://", "http://");
    a = spawn_with(&redis, "restart-a", &listen, &history).await;

    let marker = within("marker", messages.next()).await.expect("the stream goes on");
    assert!(matches!(marker, Err(EventError::Resumed { recovered: true })), "{marker:?}");
    let mut received = Vec::new();
    while received.len() < missed.len() {
        received.push(next_text(&mut messages).await);
    }
    for prefix in ["all-", "room-"] {
        let got: Vec<&String> = received.iter().filter(|t| t.starts_with(prefix)).collect();
        let want: Vec<&String> = missed.iter().filter(|t| t.starts_with(prefix)).collect();
        assert_eq!(got, want, "stream {prefix}: every missed event once, in order");
    }
    // Back in the group on the restarted node: live group events reach her.
    within("send", sender.send_to_group("room".into(), "room-after".into())).await.expect("sent");
    assert_eq!(next_text(&mut messages).await, "room-after");
    assert_eq!(within("size", sender.group_size("room".into())).await.expect("size"), 1);
    drop(a);
}
