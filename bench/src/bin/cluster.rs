//! Issue 12's backplane benchmark: three witrpc nodes on one `redis-server` (all on this
//! machine, in this process) against one node, for broadcast and for group events.
//!
//! ```text
//! cargo run --release -p witrpc-bench --bin cluster [-- --save bench/CLUSTER.md]
//! ```
//!
//! Receivers: 40 clients; with three nodes they sit on the two nodes that do not raise
//! the events, so every delivery crosses Redis. Figures: deliveries/s at saturation (the
//! raiser waits only when a bounded queue is full), p99 delivery latency at half that
//! rate, Redis commands per event (`INFO stats`), and frames queued for Redis by events
//! whose receivers are all local (must be 0). Needs `redis-server` on the PATH.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use witrpc::prelude::*;
use witrpc::server::SlowConsumerPolicy;
use witrpc_broker_redis::{RedisBroker, RedisBrokerConfig};

#[witrpc::service(contract = "WitRpc.Bench.IClusterBench")]
pub trait ClusterBench {
    /// The caller joins `group`.
    async fn join(&self, group: String) -> Result<(), String>;
    /// One event carrying when it was raised (ns since the Unix epoch).
    #[event]
    fn tick(&self, sent_at_ns: i64);
}

#[derive(Debug, Clone)]
struct Service;

impl ClusterBench for Service {
    async fn join(&self, group: String) -> Result<(), String> {
        let caller = witrpc::CallContext::current().ok_or("no caller")?;
        caller.join_group(&group).await.map_err(|e| e.to_string())
    }
}

const RECEIVERS: usize = 40;
const EVENTS: u64 = 3000;
const LATENCY_WINDOW: Duration = Duration::from_secs(3);
/// Events in flight (raised, not yet delivered to every receiver) at saturation.
const WINDOW: u64 = 64;

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_redis() -> anyhow::Result<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .context("redis-server must be on the PATH (apt-get install -y redis-server)")?;
    let redis = Redis(child, port);
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(redis);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("redis-server did not start")
}

async fn commands_processed(port: u16) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"INFO stats\r\n").await?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut text = String::new();
    while !text.contains("total_commands_processed:") || !text.ends_with("\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = text.lines().find_map(|l| l.strip_prefix("total_commands_processed:")).context("INFO stats")?;
    Ok(line.trim().parse()?)
}

struct Node {
    server: WitServer,
    events: ClusterBenchEvents,
    broker: Option<RedisBroker>,
}

async fn node(redis: Option<(u16, &str, String)>) -> anyhow::Result<Node> {
    let events = ClusterBenchEvents::new();
    let mut builder = WitServerBuilder::new()
        .with_service(ClusterBenchServer::new(Service).with_events(&events))
        .with_websocket("http://127.0.0.1:0/ws", 1000)
        .with_event_policy("Tick", SlowConsumerPolicy::DropOldest);
    let mut broker = None;
    if let Some((port, prefix, id)) = redis {
        let config = RedisBrokerConfig::new(format!("redis://127.0.0.1:{port}")).with_node_id(id).with_prefix(prefix);
        let b = RedisBroker::connect(config).await?;
        builder = builder.with_broker(Arc::new(b.clone()));
        broker = Some(b);
    }
    let server = builder.build()?;
    server.start_waiting_for_connection().await?;
    Ok(Node { server, events, broker })
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    /// When the last event arrived (ns since the Unix epoch).
    last_ns: std::sync::atomic::AtomicI64,
    recording: std::sync::atomic::AtomicBool,
    latency: Mutex<Option<Histogram<u64>>>,
}

async fn receiver(node: &Node, group: Option<&str>, counters: Arc<Counters>) -> anyhow::Result<WitClient> {
    let url = node.server.client_url().context("url")?;
    let client = WitClientBuilder::new().with_websocket(&url).connect(Duration::from_secs(10)).await?;
    let bench = ClusterBenchClient::new(client.clone());
    let mut ticks = bench.tick();
    if let Some(g) = group {
        bench.join(g.to_owned()).await?;
    }
    tokio::spawn(async move {
        while let Some(tick) = ticks.next().await {
            let Ok(sent) = tick else { continue };
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            counters.last_ns.store(now_ns(), Ordering::Relaxed);
            if counters.recording.load(Ordering::Relaxed) {
                let us = u64::try_from((now_ns() - sent) / 1000).unwrap_or(0);
                if let Some(h) = counters.latency.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    let _ = h.record(us.max(1));
                }
            }
        }
    });
    Ok(client)
}

#[derive(Debug)]
struct Figures {
    delivered: u64,
    deliveries_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    commands_per_event: Option<f64>,
}

/// Raises one event to everyone or the group.
fn raise(events: &ClusterBenchEvents, group: bool) {
    let handle = if group { events.to_group("bench") } else { events.to_all() };
    let _ = handle.tick(now_ns());
}

async fn scenario(redis: &Redis, cluster: bool, group: bool, run: usize) -> anyhow::Result<Figures> {
    let prefix = format!("bench{run}");
    let nodes = if cluster {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(node(Some((redis.1, &prefix, format!("n{i}")))).await?);
        }
        v
    } else {
        vec![node(None).await?]
    };
    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for i in 0..RECEIVERS {
        // Cluster: receivers on nodes 1 and 2 only, so every delivery crosses Redis.
        let at = if cluster { &nodes[1 + i % 2] } else { &nodes[0] };
        clients.push(receiver(at, group.then_some("bench"), counters.clone()).await?);
    }
    let sender = &nodes[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Saturation without loss: the raiser keeps at most WINDOW events in flight (raised
    // but not yet delivered to every receiver), the same rule for one node and three, so
    // nothing is dropped and the two figures compare the same work.
    let commands_before = commands_processed(redis.1).await?;
    let started = now_ns();
    for i in 0..EVENTS {
        while i.saturating_sub(counters.delivered.load(Ordering::Relaxed) / RECEIVERS as u64) >= WINDOW {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        raise(&sender.events, group);
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let expected = EVENTS * RECEIVERS as u64;
    // Until everything arrived, or nothing more did for half a second.
    let (mut seen, mut quiet_since) = (0, Instant::now());
    loop {
        let now = counters.delivered.load(Ordering::Relaxed);
        if now >= expected || quiet_since.elapsed() > Duration::from_millis(500) {
            break;
        }
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = (counters.last_ns.load(Ordering::Relaxed) - started).max(1) as f64 / 1e9;
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let commands_per_event = if cluster {
        Some((commands_processed(redis.1).await?.saturating_sub(commands_before + 1)) as f64 / EVENTS as f64)
    } else {
        None
    };
    let deliveries_per_s = delivered as f64 / elapsed;
    // Half load: events per second = half the saturated rate, raised in 1 ms slices.
    let events_per_ms = (deliveries_per_s / RECEIVERS as f64 / 2.0 / 1000.0).max(0.05);
    *counters.latency.lock().unwrap_or_else(|e| e.into_inner()) = Some(Histogram::new_with_bounds(1, 60_000_000, 3)?);
    counters.recording.store(true, Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let (mut owed, until) = (0.0, Instant::now() + LATENCY_WINDOW);
    while Instant::now() < until {
        tick.tick().await;
        owed += events_per_ms;
        while owed >= 1.0 {
            raise(&sender.events, group);
            owed -= 1.0;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    counters.recording.store(false, Ordering::Relaxed);
    let (p50_us, p99_us) = counters
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or((0.0, 0.0), |h| (h.value_at_quantile(0.5) as f64, h.value_at_quantile(0.99) as f64));
    eprintln!(
        "{} {:<9}: {delivered}/{expected} delivered, {deliveries_per_s:.0} deliveries/s, p50 {p50_us:.0} µs, p99 {p99_us:.0} µs at half load{}",
        if cluster { "3 nodes" } else { "1 node " },
        if group { "group" } else { "broadcast" },
        commands_per_event.map_or(String::new(), |c| format!(", {c:.2} Redis commands/event")),
    );
    drop(clients);
    for n in &nodes {
        n.server.shutdown(Duration::from_secs(1)).await;
    }
    Ok(Figures { delivered, deliveries_per_s, p50_us, p99_us, commands_per_event })
}

/// Frames queued for Redis by events whose receivers are all on the raising node.
async fn local_publishes(redis: &Redis) -> anyhow::Result<u64> {
    let a = node(Some((redis.1, "benchlocal", "a".into()))).await?;
    let b = node(Some((redis.1, "benchlocal", "b".into()))).await?;
    let counters = Arc::new(Counters::default());
    let _local = receiver(&a, Some("local"), counters.clone()).await?;
    let _remote = receiver(&b, None, counters).await?;
    let broker = a.broker.clone().context("clustered")?;
    let before = broker.queued_frames();
    for _ in 0..1000 {
        let _ = a.events.to_group("local").tick(now_ns());
    }
    Ok(broker.queued_frames() - before)
}

fn main() -> anyhow::Result<()> {
    let save = std::env::args().skip_while(|a| a != "--save").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let redis = start_redis().await?;
        let mut rows = Vec::new();
        for (run, group) in [false, true].into_iter().enumerate() {
            let single = scenario(&redis, false, group, run * 2).await?;
            let cluster = scenario(&redis, true, group, run * 2 + 1).await?;
            rows.push((if group { "group" } else { "broadcast" }, single, cluster));
        }
        let local = local_publishes(&redis).await?;
        let mut report = String::from(
            "# Cluster benchmark (issue 12)\n\n`cargo run --release -p witrpc-bench --bin cluster -- --save bench/CLUSTER.md`: \
             three nodes and `redis-server` in one process and machine against one node; 40 receiving clients \
             (with three nodes on the two nodes that do not raise the events, so every delivery crosses Redis).\n\n\
             | events | 1 node deliveries/s (delivered) | 3 nodes deliveries/s (delivered) | ratio (goal ≥ 50%) | 3 nodes p50 / p99 at half load (goal p99 ≤ 5 ms) | Redis commands/event |\n|---|---|---|---|---|---|\n",
        );
        let expected = EVENTS * RECEIVERS as u64;
        for (name, single, cluster) in &rows {
            report.push_str(&format!(
                "| {name} | {:.0} ({}/{expected}) | {:.0} ({}/{expected}) | {:.0}% | {:.2} / {:.2} ms | {:.2} |\n",
                single.deliveries_per_s,
                single.delivered,
                cluster.deliveries_per_s,
                cluster.delivered,
                100.0 * cluster.deliveries_per_s / single.deliveries_per_s.max(1.0),
                cluster.p50_us / 1000.0,
                cluster.p99_us / 1000.0,
                cluster.commands_per_event.unwrap_or(0.0),
            ));
        }
        report.push_str(&format!(
            "\nRedis publishes for 1000 group events whose members are all on the raising node: {local} (goal 0).\n\n\
             Saturation: the raiser keeps at most {WINDOW} events in flight (raised, not yet delivered \
             to every receiver), the same rule for one node and for three, so nothing is dropped and both \
             columns count the same work. Half load: half of that event rate, raised in 1 ms slices for \
             {LATENCY_WINDOW:?}; latency is raise to arrival at the client. All of it shares the machine's \
             cores ({} available): the raiser, the nodes, Redis and the 40 clients.\n",
            std::thread::available_parallelism().map_or(0, usize::from)
        ));
        print!("{report}");
        if let Some(path) = save {
            std::fs::write(&path, &report)?;
            eprintln!("saved {path}");
        }
        Ok(())
    })
}
