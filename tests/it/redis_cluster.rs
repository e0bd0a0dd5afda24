//! The backplane on a real Redis Cluster (three `redis-server` masters in cluster mode,
//! started by the test on free loopback ports): the broker finds out it talks to a
//! cluster, uses sharded pub/sub, targeting stays exact across nodes, and a client
//! resumes on another node from the history kept in the cluster.
//!
//! Sharded pub/sub keeps order per topic, not across topics (two topics may live on two
//! shards), so the negative checks fence on the receiving node: once a member there has
//! the targeted event, the node has handed that frame to every local receiver it was for,
//! and a broadcast fence raised afterwards must be the next thing a non-member sees.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{Node, fence, ping};
use crate::util::within;

/// Three cluster-mode masters sharing the 16,384 slots; killed on drop.
struct RedisCluster {
    children: Vec<Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that is free, and whose cluster bus port (+10,000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Sends one inline command and reads its reply: until `until` appears in it, or, with
/// `until = None`, until the server has been quiet for 300 ms (the whole reply).
async fn query(port: u16, line: &str, until: Option<&str>) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to redis");
    s.write_all(format!("{line}\r\n").as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while until.is_none_or(|u| !String::from_utf8_lossy(&reply).contains(u)) {
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

impl RedisCluster {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("witrpc-redis-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cluster = Self { children: Vec::new(), ports: Vec::new(), dir };
        for _ in 0..3 {
            let port = free_cluster_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--dir", &cluster.dir.display().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed for the cluster tests: `apt-get install -y redis-server`");
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            within("redis-server ready", async {
                while !ping(port).await {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        }
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli (Debian's redis-tools, a dependency of redis-server) must be installed");
        assert!(created.success(), "redis-cli --cluster create failed");
        for &port in &cluster.ports {
            within("cluster state ok", async {
                while !query(port, "CLUSTER INFO", Some("cluster_state")).await.contains("cluster_state:ok") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
        }
        cluster
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// The sharded channels subscribed on any master.
    async fn shard_channels(&self) -> String {
        let mut all = String::new();
        for &port in &self.ports {
            all.push_str(&query(port, "PUBSUB SHARDCHANNELS", None).await);
        }
        all
    }

    /// The classic channels subscribed on any master.
    async fn classic_channels(&self) -> String {
        let mut all = String::new();
        for &port in &self.ports {
            all.push_str(&query(port, "PUBSUB CHANNELS", None).await);
        }
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeting_is_exact_across_nodes_on_a_redis_cluster_with_sharded_pub_sub() {
    let redis = RedisCluster::start().await;
    let a = Node::clustered_at(redis.url(), "a", |c| c).await;
    let b = Node::clustered_at(redis.url(), "b", |c| c).await;
    let mut member = b.client("ann").await;
    let mut other = b.client("carl").await;
    let sender = a.client("sender").await;
    within("join", member.demo.join_group("room".into())).await.expect("join");
    assert_eq!(within("size", sender.demo.group_size("room".into())).await.expect("size"), 1);

    // The broker subscribed with SSUBSCRIBE: the channels are shard channels, not classic ones.
    let shard = redis.shard_channels().await;
    assert!(shard.contains("witrpc:t:g:room"), "no shard channel for the group: {shard:?}");
    assert!(shard.contains("witrpc:ctl"), "no shard channel for control: {shard:?}");
    assert!(!redis.classic_channels().await.contains("witrpc:"), "classic pub/sub used on a cluster");

    within("send", sender.demo.send_to_group("room".into(), "to room".into())).await.expect("send");
    member.expect("to room", "the member on b").await;
    fence(&sender).await;
    member.expect("fence", "the member on b").await;
    other.expect("fence", "the non-member on b").await;

    within("send", sender.demo.send_to_user("carl".into(), "to carl".into())).await.expect("send");
    other.expect("to carl", "carl on b").await;
    fence(&sender).await;
    other.expect("fence", "carl on b").await;
    member.expect("fence", "ann on b").await;

    // Presence answers from either node; leaving is seen everywhere.
    let members = within("members", a.server.group_members("room")).await.expect("presence");
    assert_eq!(members.iter().map(|m| m.node.as_str()).collect::<Vec<_>>(), ["b"]);
    within("leave", member.demo.leave_group("room".into())).await.expect("leave");
    assert_eq!(within("size", sender.demo.group_size("room".into())).await.expect("size"), 0);
    assert_eq!(a.broker.as_ref().map(|b| b.lost_frames()), Some(0));
    assert_eq!(b.broker.as_ref().map(|b| b.lost_frames()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_from_the_history_kept_in_a_redis_cluster() {
    let redis = RedisCluster::start().await;
    crate::resume_cluster::resume_elsewhere(redis.url(), 50, Duration::ZERO).await;
}
