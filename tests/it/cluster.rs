//! Targeted events (connection, user, group, everyone, except one) and the Redis
//! backplane: one node with the default broker, then three in-process nodes sharing a
//! real `redis-server` that the tests start on a free loopback port.
//!
//! Exactness is checked negatively with a fence: after the targeted event, the same node
//! broadcasts a marker. Frames from one node reach every other node in publish order, and
//! each connection's queue is ordered, so a connection that should not get the targeted
//! event must see the marker first; one that should must see the event first.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use witrpc::prelude::*;
use witrpc::protocol::Uuid;
use witrpc::{EventStream, GroupError};
use witrpc_broker_redis::{RedisBroker, RedisBrokerConfig};
use witrpc_demo::{Demo, DemoServiceClient, DemoServiceEvents, DemoServiceServer, UserTokens};

use crate::util::{init_tracing, within};

/// A `redis-server` child on a free loopback port, with persistence off; killed on drop.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
}

impl Redis {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut redis = Self { child: None, port };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the cluster tests: `apt-get install -y redis-server`");
        self.child = Some(child);
        within("redis-server ready", async {
            loop {
                if ping(self.port).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (data is lost: persistence is off).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one inline command to Redis and returns its first reply line.
pub(crate) async fn command(port: u16, line: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to redis");
    s.write_all(format!("{line}\r\n").as_bytes()).await.expect("write");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).await.expect("read");
    reply
}

pub(crate) async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await, Ok(Ok(_)))
        && &buf == b"+PONG\r\n"
}

/// A broker configuration for tests: node `id` on the Redis at `url`, with a fast
/// heartbeat, short presence and timeouts, and the cluster secret.
pub(crate) fn broker_config(url: String, id: &str) -> RedisBrokerConfig {
    RedisBrokerConfig::new(url)
        .with_node_id(id)
        .with_heartbeat(Duration::from_millis(200))
        .with_presence_ttl(Duration::from_secs(2))
        .with_timeout(Duration::from_millis(500))
        .with_secret("cluster-test-secret")
}

/// Connects a broker.
pub(crate) async fn broker(config: RedisBrokerConfig) -> RedisBroker {
    within("broker connect", RedisBroker::connect(config)).await.expect("broker connects")
}

/// One server with its own events handle (to raise targeted events from the test).
pub(crate) struct Node {
    pub(crate) server: WitServer,
    pub(crate) url: String,
    pub(crate) events: DemoServiceEvents,
    pub(crate) broker: Option<RedisBroker>,
}

impl Node {
    async fn start(broker: Option<RedisBroker>) -> Self {
        init_tracing();
        let events = DemoServiceEvents::new();
        let service = DemoServiceServer::new(Demo::new(events.clone())).with_events(&events);
        let mut builder = WitServerBuilder::new()
            .with_service(service)
            .with_websocket("http://127.0.0.1:0/ws", 100)
            .with_access_token_validator(UserTokens);
        if let Some(b) = &broker {
            builder = builder.with_broker(Arc::new(b.clone()));
        }
        let server = builder.build().expect("valid server");
        within("server start", server.start_waiting_for_connection()).await.expect("server starts");
        let url = server.client_url().expect("running server has a URL");
        Self { server, url, events, broker }
    }

    pub(crate) async fn standalone() -> Self {
        Self::start(None).await
    }

    pub(crate) async fn clustered(redis: &Redis, id: &str) -> Self {
        Self::clustered_with(redis, id, |c| c).await
    }

    pub(crate) async fn clustered_with(
        redis: &Redis,
        id: &str,
        configure: impl FnOnce(RedisBrokerConfig) -> RedisBrokerConfig,
    ) -> Self {
        Self::clustered_at(redis.url(), id, configure).await
    }

    /// A node whose broker connects to the Redis (server or cluster) at `url`.
    pub(crate) async fn clustered_at(
        url: String,
        id: &str,
        configure: impl FnOnce(RedisBrokerConfig) -> RedisBrokerConfig,
    ) -> Self {
        Self::start(Some(broker(configure(broker_config(url, id))).await)).await
    }

    pub(crate) async fn client(&self, user: &str) -> Peer {
        let client = WitClientBuilder::new().with_websocket(&self.url).with_access_token(format!("user:{user}"));
        let client = within("client connect", client.connect(Duration::from_secs(10))).await.expect("client connects");
        let demo = DemoServiceClient::new(client);
        let messages = demo.message();
        Peer { demo, messages }
    }

    /// The connection id of `peer` (connected to this node), learnt through a probe group.
    pub(crate) async fn connection_id(&self, peer: &Peer) -> Uuid {
        let probe = format!("probe-{}", Uuid::new_v4());
        within("join probe", peer.demo.join_group(probe.clone())).await.expect("join");
        let members = within("members", self.server.group_members(&probe)).await.expect("presence");
        within("leave probe", peer.demo.leave_group(probe)).await.expect("leave");
        assert_eq!(members.len(), 1, "{members:?}");
        members[0].connection
    }
}

/// A client of the demo with its `Message` stream.
pub(crate) struct Peer {
    pub(crate) demo: DemoServiceClient<WitClient>,
    pub(crate) messages: EventStream<String>,
}

impl Peer {
    pub(crate) async fn next(&mut self) -> String {
        within("Message event", self.messages.next()).await.expect("stream open").expect("event decodes")
    }

    /// Asserts the next message is `expected` (a connection that must not get a targeted
    /// event sees the fence first).
    pub(crate) async fn expect(&mut self, expected: &str, who: &str) {
        let got = self.next().await;
        assert_eq!(got, expected, "{who} received {got:?} where {expected:?} was due");
    }
}

pub(crate) async fn fence(from: &Peer) {
    within("fence", from.demo.broadcast("fence".to_owned())).await.expect("broadcast");
}

// --- one node, the default in-memory broker -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_user_events_reach_exactly_their_receivers_on_one_node() {
    let node = Node::standalone().await;
    let mut member = node.client("ann").await;
    let mut other = node.client("bob").await;
    let mut ann_again = node.client("ann").await;
    let mut anna = node.client("anna").await;
    within("join", member.demo.join_group("room".into())).await.unwrap();
    within("send", other.demo.send_to_group("room".into(), "to room".into())).await.unwrap();
    fence(&other).await;
    member.expect("to room", "the member").await;
    member.expect("fence", "the member").await;
    for (peer, who) in
        [(&mut other, "the sender (not a member)"), (&mut ann_again, "ann's other connection"), (&mut anna, "anna")]
    {
        peer.expect("fence", who).await;
    }
    within("send", other.demo.send_to_user("ann".into(), "to ann".into())).await.unwrap();
    fence(&other).await;
    for (peer, who) in [(&mut member, "ann"), (&mut ann_again, "ann again")] {
        peer.expect("to ann", who).await;
        peer.expect("fence", who).await;
    }
    for (peer, who) in [(&mut other, "bob"), (&mut anna, "anna (a similar name)")] {
        peer.expect("fence", who).await;
    }
    assert_eq!(within("whoami", member.demo.who_am_i()).await.unwrap(), "ann");
    assert_eq!(within("size", other.demo.group_size("room".into())).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_targets_and_exceptions_are_exact() {
    let node = Node::standalone().await;
    let mut a = node.client("a").await;
    let mut b = node.client("b").await;
    let (ida, idb) = (node.connection_id(&a).await, node.connection_id(&b).await);
    node.events.to_connection(ida).message("only a".into()).unwrap();
    node.events.to_all().except(ida).message("all but a".into()).unwrap();
    node.server.join_group(idb, "g").await.unwrap();
    node.server.join_group(ida, "g").await.unwrap();
    node.events.to_group("g").except(idb).message("g but b".into()).unwrap();
    fence(&a).await;
    a.expect("only a", "a").await;
    a.expect("g but b", "a").await;
    a.expect("fence", "a").await;
    b.expect("all but a", "b").await;
    b.expect("fence", "b").await;
    assert!(matches!(node.server.join_group(Uuid::new_v4(), "g").await, Err(GroupError::UnknownConnection { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_or_closing_removes_a_connection_from_its_groups() {
    let node = Node::standalone().await;
    let mut stays = node.client("s").await;
    let leaves = node.client("l").await;
    let closes = node.client("c").await;
    for peer in [&stays, &leaves, &closes] {
        within("join", peer.demo.join_group("g".into())).await.unwrap();
    }
    assert_eq!(within("size", stays.demo.group_size("g".into())).await.unwrap(), 3);
    within("leave", leaves.demo.leave_group("g".into())).await.unwrap();
    let id = node.connection_id(&closes).await;
    drop(closes);
    within("closed connection gone", async {
        while node.server.is_connected(id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(within("size", stays.demo.group_size("g".into())).await.unwrap(), 1);
    let mut leaves = leaves;
    within("send", stays.demo.send_to_group("g".into(), "after".into())).await.unwrap();
    fence(&stays).await;
    stays.expect("after", "the remaining member").await;
    leaves.expect("fence", "a connection that left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_and_counts_are_bounded_and_bad_tokens_refused() {
    let node = Node::standalone().await;
    let peer = node.client("x").await;
    let too_long = "g".repeat(witrpc::protocol::MAX_GROUP_NAME_LEN + 1);
    assert!(within("join", peer.demo.join_group(too_long)).await.is_err());
    assert!(within("join", peer.demo.join_group(String::new())).await.is_err());
    for i in 0..witrpc::server::limits::DEFAULT_MAX_GROUPS_PER_CONNECTION {
        within("join", peer.demo.join_group(format!("g{i}"))).await.unwrap();
    }
    let err = within("join", peer.demo.join_group("one-more".into())).await.unwrap_err();
    assert!(err.to_string().contains("groups") || format!("{err:?}").contains("groups"), "{err:?}");
    for token in ["", "user:", "admin", "AuthToken123"] {
        let refused = WitClientBuilder::new().with_websocket(&node.url).with_access_token(token);
        assert!(
            within("connect", refused.connect(Duration::from_secs(10))).await.is_err(),
            "token {token:?} was accepted"
        );
    }
}

// --- three nodes on one Redis ---------------------------------------------------------

async fn three_nodes(redis: &Redis) -> [Node; 3] {
    [Node::clustered(redis, "a").await, Node::clustered(redis, "b").await, Node::clustered(redis, "c").await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_user_and_broadcast_events_are_exact_across_three_nodes() {
    let redis = Redis::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut a_member = a.client("ann").await;
    let mut a_other = a.client("carl").await;
    let mut b_member = b.client("bob").await;
    let mut b_ann = b.client("ann").await;
    let mut c_anna = c.client("anna").await;
    let sender = c.client("sender").await;
    within("join", a_member.demo.join_group("room".into())).await.unwrap();
    within("join", b_member.demo.join_group("room".into())).await.unwrap();
    assert_eq!(within("size", sender.demo.group_size("room".into())).await.unwrap(), 2);

    within("send", sender.demo.send_to_group("room".into(), "to room".into())).await.unwrap();
    fence(&sender).await;
    for (peer, who) in [(&mut a_member, "member on a"), (&mut b_member, "member on b")] {
        peer.expect("to room", who).await;
        peer.expect("fence", who).await;
    }
    for (peer, who) in [(&mut a_other, "carl on a"), (&mut b_ann, "ann on b"), (&mut c_anna, "anna on c")] {
        peer.expect("fence", who).await;
    }

    within("send", sender.demo.send_to_user("ann".into(), "to ann".into())).await.unwrap();
    fence(&sender).await;
    for (peer, who) in [(&mut a_member, "ann on a"), (&mut b_ann, "ann on b")] {
        peer.expect("to ann", who).await;
        peer.expect("fence", who).await;
    }
    for (peer, who) in [(&mut a_other, "carl"), (&mut b_member, "bob"), (&mut c_anna, "anna")] {
        peer.expect("fence", who).await;
    }
    let anns = within("presence", c.server.user_connections("ann")).await.unwrap();
    let mut nodes: Vec<&str> = anns.iter().map(|m| m.node.as_str()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["a", "b"]);
    // Events whose receivers are all on this node never reach Redis: one connection, a
    // group with local members only.
    let id = a.connection_id(&a_other).await;
    within("join", a_other.demo.join_group("local-room".into())).await.unwrap();
    let queued = a.broker.as_ref().map(RedisBroker::queued_frames);
    a.events.to_connection(id).message("local only".into()).unwrap();
    a.events.to_group("local-room").message("local room".into()).unwrap();
    a_other.expect("local only", "carl").await;
    a_other.expect("local room", "carl").await;
    assert_eq!(
        a.broker.as_ref().map(RedisBroker::queued_frames),
        queued,
        "an event with only local receivers was published"
    );
    // A member joining on another node is known everywhere once its join returns.
    within("join", b_member.demo.join_group("local-room".into())).await.unwrap();
    a.events.to_group("local-room").message("now remote too".into()).unwrap();
    b_member.expect("now remote too", "the new member on b").await;
    assert!(a.broker.as_ref().map(RedisBroker::queued_frames) > queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_targets_exceptions_and_membership_changes_across_nodes() {
    let redis = Redis::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut on_a = a.client("x").await;
    let mut on_b = b.client("y").await;
    let mut on_c = c.client("z").await;
    let (id_a, id_b) = (a.connection_id(&on_a).await, b.connection_id(&on_b).await);
    // From c: one connection on b, then everyone but the one on a.
    c.events.to_connection(id_b).message("only b".into()).unwrap();
    c.events.to_all().except(id_a).message("not a".into()).unwrap();
    // Joined from outside a method, by connection id, on its own node.
    a.server.join_group(id_a, "g").await.unwrap();
    b.server.join_group(id_b, "g").await.unwrap();
    c.events.to_group("g").except(id_b).message("g not b".into()).unwrap();
    fence(&on_c).await;
    on_a.expect("g not b", "a").await;
    on_a.expect("fence", "a").await;
    on_b.expect("only b", "b").await;
    on_b.expect("not a", "b").await;
    on_b.expect("fence", "b").await;
    on_c.expect("not a", "c").await;
    on_c.expect("fence", "c").await;
    assert!(matches!(c.server.join_group(id_a, "g").await, Err(GroupError::UnknownConnection { .. })));

    // Leaving on b, closing on a: the group empties everywhere.
    b.server.leave_group(id_b, "g").await.unwrap();
    assert_eq!(within("size", on_c.demo.group_size("g".into())).await.unwrap(), 1);
    drop(on_a);
    within("a's connection gone from presence", async {
        while on_c.demo.group_size("g".into()).await.unwrap() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("send", on_c.demo.send_to_group("g".into(), "nobody".into())).await.unwrap();
    fence(&on_c).await;
    on_b.expect("fence", "b after leaving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_keeps_local_delivery_counts_losses_and_resumes() {
    let mut redis = Redis::start().await;
    let a = Node::clustered(&redis, "a").await;
    let b = Node::clustered(&redis, "b").await;
    let mut on_a = a.client("x").await;
    let mut on_b = b.client("y").await;
    within("join", on_a.demo.join_group("g".into())).await.unwrap();
    within("join", on_b.demo.join_group("g".into())).await.unwrap();
    let broker_a = a.broker.clone().expect("clustered");

    redis.stop();
    // Local delivery goes on while Redis is down; the frames for b are lost and counted.
    for i in 0..3 {
        within("send", on_a.demo.send_to_group("g".into(), format!("down-{i}"))).await.unwrap();
        on_a.expect(&format!("down-{i}"), "a while Redis is down").await;
    }
    within("losses counted", async {
        while broker_a.lost_frames() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    redis.restart().await;
    // Cross-node delivery resumes by itself (reconnect, resubscription, presence rewrite).
    within("cross-node delivery resumes", async {
        for i in 0.. {
            on_a.demo.send_to_group("g".into(), format!("probe-{i}")).await.unwrap();
            if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), on_b.messages.next()).await {
                // A frame queued while Redis was down may still arrive if Redis came back
                // within the publish timeout: late, never duplicated.
                assert!(m.starts_with("probe-") || m.starts_with("down-"), "b received {m:?}");
                return;
            }
        }
    })
    .await;
    within("presence restored", async {
        while on_b.demo.group_size("g".into()).await.unwrap_or(0) != 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_without_the_cluster_secret_are_dropped_and_counted() {
    let redis = Redis::start().await;
    let good = Node::clustered(&redis, "good").await;
    let intruder = Node::clustered_with(&redis, "intruder", |c| c.with_secret("another-secret")).await;
    let mut victim = good.client("v").await;
    let attacker = intruder.client("x").await;
    within("join", victim.demo.join_group("g".into())).await.unwrap();
    let broker = good.broker.clone().expect("clustered");
    let before = broker.lost_frames();
    within("forged broadcast", attacker.demo.broadcast("forged".into())).await.unwrap();
    within("forged group event", attacker.demo.send_to_group("g".into(), "forged".into())).await.unwrap();
    within("bad signatures counted", async {
        while broker.lost_frames() < before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    fence(&victim).await;
    victim.expect("fence", "a connection on the node with the right secret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_slower_than_the_publish_rate_costs_counted_frames_not_memory() {
    let redis = Redis::start().await;
    let a =
        Node::clustered_with(&redis, "a", |c| c.with_publish_capacity(4).with_timeout(Duration::from_secs(3))).await;
    let b = Node::clustered(&redis, "b").await;
    let mut on_a = a.client("x").await;
    let mut on_b = b.client("y").await;
    let broker = a.broker.clone().expect("clustered");
    // Writes (PUBLISH among them) stall for 1.5 s: Redis is slower than any rate now.
    assert_eq!(within("pause", command(redis.port, "CLIENT PAUSE 1500 WRITE")).await.trim(), "+OK");
    let before = broker.lost_frames();
    for i in 0..100 {
        a.events.message(format!("burst-{i}")).unwrap();
    }
    // Only the queue (4) and the batch in flight (at most the queue's 4) wait for Redis;
    // the rest is dropped and counted at once.
    let lost = broker.lost_frames() - before;
    assert!(lost >= 100 - 8, "only {lost} of 100 frames counted as lost");
    for i in 0..100 {
        on_a.expect(&format!("burst-{i}"), "a (local delivery does not wait for Redis)").await;
    }
    // Once Redis keeps up again, events flow.
    within("delivery resumes", async {
        loop {
            a.events.message("after".into()).unwrap();
            if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), on_b.messages.next()).await {
                if m == "after" {
                    return;
                }
            }
        }
    })
    .await;
}
