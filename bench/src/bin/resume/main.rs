//! Issue 14's resume benchmark: 10,000 clients resuming at once after a node restart,
//! and the p99 time until each is told whether its missed events were recovered.
//! Target: p99 ≤ 1 s on this machine, with Redis using ≤ 1 core.
//!
//! ```text
//! cargo run --release --locked -p witrpc-bench --bin resume [-- --clients N] [--quick] [--save bench] [--server PATH]
//! ```
//!
//! Scenario, all on this machine (needs `redis-server` on the PATH):
//! 1. `redis-server` on a free loopback port (`--save "" --appendonly no`), then two
//!    demo server *processes* (`target/release/examples/demo_server`, built by this
//!    binary with `cargo build --release --locked --example demo_server` unless
//!    `--server PATH` names one) with `--redis redis://127.0.0.1:PORT --history 1000
//!    --max-clients 12000 --listen http://127.0.0.1:0/ws --node-id a|b`. Processes, not
//!    in-process servers: 10k client sockets and 10k server sockets in one process would
//!    pass the 20,000 file descriptors a process may hold here.
//! 2. `--clients` clients (default 10,000; `--quick`: 200) connect to node A, 500 in
//!    flight at a time, each subscribed to the demo's broadcast event `Message` with
//!    positions, and reconnecting with a short policy (50 ms first delay, doubling up to
//!    250 ms, ±20 % jitter).
//! 3. One more client, on node B, calls `Broadcast` a few times; every client on A must
//!    receive each of those events (so every client has a stream position).
//! 4. Node A is stopped (SIGTERM, then its exit is awaited); B raises 100 more broadcasts
//!    while A is down; A starts again on the same port.
//! 5. For each client: the time from the restarted A printing its ready line to the
//!    client's subscription yielding `EventError::Resumed { recovered }` (p50/p99/max,
//!    hdrhistogram), recovered true/false counts, and whether it then received each of the
//!    100 missed events exactly once and in order ("complete").
//! 6. Redis CPU (`/proc/<pid>/stat` utime + stime) from just before A restarts to the
//!    moment the last client got its marker, as cores = CPU seconds / wall seconds, plus the
//!    peak of 100 ms samples; node A's and this process's (the clients') CPU the same way,
//!    and the whole machine's busy cores (`/proc/stat`: other builds count too). Over the
//!    same window, the machine's listen-queue drops and SYN retransmits
//!    (`/proc/net/netstat`), which show clients held up by TCP's 1 s SYN retry.
//! 7. The floor (`floor.rs`): the same exchange's skeleton (connect, upgrade, two messages
//!    out and their answers back, a replay's bytes in batch-sized frames) on bare tokio-tungstenite, with as many clients, in
//!    a fresh server process: what this machine costs before any WitRPC work.
//! 8. A markdown table on stdout; `--save DIR` also writes it to `DIR/RESUME.md`.
//!
//! Every process runs with `MIMALLOC_PURGE_DELAY=-1` unless it is set (see
//! [`with_kept_memory`]).
//!
//! `--quick` checks that the harness runs (`cargo xtask bench --quick` runs it): it never
//! fails because streams were not recovered, it prints the figures. Neither mode fails on
//! a missed target; the table says whether it was met. Child processes are killed on every
//! exit path (drop guards). Node logs (`RUST_LOG=warn`) go to `target/bench/resume-*.log`.

mod floor;
mod processes;
mod procfs;

/// The clients' allocator, the demo server's too (see `examples/demo_server.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, stream};
use hdrhistogram::Histogram;
use witrpc::prelude::*;
use witrpc::protocol::PositionedEvents;
use witrpc::{EventError, ReconnectPolicy};
use witrpc_demo::DemoServiceClient;

use crate::processes::{demo_server, note, redis_calls, start_node, start_redis, stop_node};
use crate::procfs::{CpuMark, clock_ticks, listen_overflows, machine_busy_ticks, sample_peak, tcp_ext};

/// Broadcasts every client must get before the restart.
const BEFORE: u32 = 3;
/// Broadcasts raised while node A is down: the ones each client must recover.
const MISSED: u32 = 100;
/// Clients connecting at once during setup.
const CONNECT_BATCH: usize = 500;
/// Clients in `--quick` mode.
const QUICK_CLIENTS: usize = 200;
/// The target for the p99 time to recovered.
const TARGET: Duration = Duration::from_secs(1);
/// How long the restarted node's clients may take to resume before the run gives up
/// waiting and reports the ones that did not.
const RESUME_WAIT: Duration = Duration::from_secs(60);
/// After the last marker: no missed event for this long means no more will come.
const QUIET: Duration = Duration::from_secs(1);

fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy::new(Duration::from_millis(50), Duration::from_millis(250))
}

// ----- clients -------------------------------------------------------------------------

/// What one client saw.
#[derive(Debug, Default)]
struct Record {
    /// Events of the first phase received, and how many of them carried a position.
    before: u32,
    before_positioned: u32,
    /// The first marker after the restart: when, and `Some(recovered)` for `Resumed`,
    /// `None` for a bare `Reconnected`.
    marker: Option<(Instant, Option<bool>)>,
    /// Markers seen in all (one is expected).
    markers: u32,
    /// The next missed event expected (`miss-<k>`); `disorder` once one came out of
    /// order or twice.
    next_missed: u32,
    missed_received: u32,
    disorder: bool,
    last_missed_at: Option<Instant>,
    lagged: u64,
    other: u64,
}

impl Record {
    /// Missed event number `k` (`None`: unreadable) arrived; `at` is when, taken only for
    /// the last one (the clock is read once per client, not once per event).
    fn missed(&mut self, k: Option<u32>, at: Option<Instant>) {
        match k {
            Some(k) if k == self.next_missed && !self.disorder => self.next_missed += 1,
            _ => self.disorder = true,
        }
        self.missed_received += 1;
        if at.is_some() {
            self.last_missed_at = at;
        }
    }

    /// Every missed event arrived, each once, in order.
    fn complete(&self) -> bool {
        !self.disorder && self.next_missed == MISSED && self.missed_received == MISSED
    }
}

/// Counters the main task waits on.
#[derive(Debug, Default)]
struct Progress {
    before_done: AtomicUsize,
    markers: AtomicUsize,
    missed_events: AtomicU64,
}

fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text of a broadcast's JSON string argument, read in place (the bench's own texts
/// have no escapes; anything else reads as `None`).
fn text_of(argument: &[u8]) -> Option<&str> {
    let inner = argument.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// Reads one client's `Message` subscription until it ends. Its own work per event is
/// kept small (no allocation, no clock read), since it shares the cores with what is
/// measured.
async fn watch(mut events: PositionedEvents, record: Arc<Mutex<Record>>, progress: Arc<Progress>) {
    while let Some(item) = events.next().await {
        let mut r = lock(&record);
        match item {
            Ok(event) => {
                let text = event.parameters.first().and_then(|p| text_of(p));
                match text.map(|t| t.split_once('-')) {
                    Some(Some(("before", _))) => {
                        r.before += 1;
                        r.before_positioned += u32::from(event.position.is_some());
                        if r.before == BEFORE {
                            progress.before_done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Some(("miss", k))) => {
                        let k = k.parse().ok();
                        r.missed(k, (k == Some(MISSED - 1)).then(Instant::now));
                        progress.missed_events.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => r.other += 1,
                }
            }
            Err(e) => {
                let marker = match e {
                    EventError::Resumed { recovered } => Some(Some(recovered)),
                    EventError::Reconnected => Some(None),
                    EventError::Lagged { missed } => {
                        r.lagged += missed;
                        None
                    }
                    _ => {
                        r.other += 1;
                        None
                    }
                };
                if let Some(kind) = marker {
                    r.markers += 1;
                    if r.marker.is_none() {
                        r.marker = Some((Instant::now(), kind));
                        progress.markers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn connect(url: &str, reconnect: bool) -> anyhow::Result<WitClient> {
    let mut builder = WitClientBuilder::new().with_websocket(url);
    if reconnect {
        builder = builder.with_reconnect(reconnect_policy());
    }
    Ok(builder.connect(Duration::from_secs(10)).await?)
}

/// Waits until `done()` or `limit`, polling every 5 ms; returns whether it got there.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

// ----- the run -------------------------------------------------------------------------

struct Options {
    clients: usize,
    quick: bool,
    save: Option<PathBuf>,
    server: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if let Some(unknown) = args.iter().enumerate().find_map(|(i, a)| {
        let known = ["--quick", "--clients", "--save", "--server"].contains(&a.as_str())
            || (i > 0 && ["--clients", "--save", "--server"].contains(&args[i - 1].as_str()));
        (!known).then_some(a)
    }) {
        bail!("unknown argument {unknown:?}; usage: resume [--clients N] [--quick] [--save DIR] [--server PATH]");
    }
    let quick = args.iter().any(|a| a == "--quick");
    let clients = match value("--clients") {
        Some(n) => n.parse().with_context(|| format!("--clients {n:?} is not a number"))?,
        None if quick => QUICK_CLIENTS,
        None => 10_000,
    };
    if clients == 0 || clients > 12_000 {
        bail!("--clients must be 1..=12000 (the nodes run with --max-clients 12000)");
    }
    Ok(Options {
        clients,
        quick,
        save: value("--save").map(PathBuf::from),
        server: value("--server").map(PathBuf::from),
    })
}

/// The figures of one run.
#[derive(Debug, Default)]
struct Figures {
    clients: usize,
    setup: Duration,
    downtime: Duration,
    /// Of the downtime: SIGTERM to exit, the missed broadcasts, the restart to its ready line.
    stop: Duration,
    raise: Duration,
    start: Duration,
    /// `TcpExtListenOverflows` over the window (the machine's, not only this run's).
    listen_overflows: Option<u64>,
    /// `TcpExtTCPSynRetrans` over the window (the machine's).
    syn_retransmits: Option<u64>,
    markers: usize,
    recovered: usize,
    not_recovered: usize,
    bare_reconnected: usize,
    extra_markers: usize,
    complete: usize,
    missed_received: u64,
    disorder: usize,
    lagged: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// p99 of ready line → last missed event, over complete clients.
    p99_complete: Option<Duration>,
    window: Duration,
    redis_cores: f64,
    redis_peak: f64,
    node_cores: f64,
    clients_cores: f64,
    /// The whole machine's busy cores over the window (other builders included).
    machine_cores: f64,
    /// Redis commands run over the window, most first (`None`: no `redis-cli`).
    redis_commands: Option<String>,
    tck: f64,
    tck_read: bool,
}

async fn run(o: &Options) -> anyhow::Result<Figures> {
    let exe = demo_server(o.server.clone())?;
    let logs = std::env::current_exe()?.parent().and_then(Path::parent).context("odd executable path")?.join("bench");
    std::fs::create_dir_all(&logs)?;
    let (tck, tck_read) = clock_ticks();
    let mut f = Figures { clients: o.clients, tck, tck_read, ..Figures::default() };

    // Declared first, dropped last: the clients go before the nodes, the nodes before Redis.
    let (redis, redis_port) = start_redis().await?;
    let redis_pid = redis.pid().to_string();
    let node_b = start_node(&exe, redis_port, "b", 0, &logs.join("resume-b.log")).await?;
    let node_a = start_node(&exe, redis_port, "a", 0, &logs.join("resume-a1.log")).await?;
    let (a_url, a_port) = (node_a.url.clone(), node_a.port);
    note(&format!("redis on {redis_port}, node A on {a_url}, node B on {}", node_b.url));

    let descriptor = DemoServiceClient::<WitClient>::descriptor();
    let message = descriptor.events.iter().position(|e| e.name == "Message").context("the demo has a Message event")?;
    let progress = Arc::new(Progress::default());
    let mut clients = Vec::with_capacity(o.clients);
    let mut records = Vec::with_capacity(o.clients);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut connecting = stream::iter(0..o.clients)
        .map(|_| async {
            let client = connect(&a_url, true).await?;
            let events = client.subscribe_raw(descriptor, message).positioned();
            anyhow::Ok((client, events))
        })
        .buffer_unordered(CONNECT_BATCH);
    while let Some(connected) = connecting.next().await {
        let (client, events) = connected.with_context(|| format!("client {} failed to connect", clients.len()))?;
        let record = Arc::new(Mutex::new(Record::default()));
        tasks.spawn(watch(events, record.clone(), progress.clone()));
        clients.push(client);
        records.push(record);
    }
    drop(connecting);
    f.setup = started.elapsed();
    note(&format!("{} clients connected to A in {:.1?}", o.clients, f.setup));

    let raiser = DemoServiceClient::new(connect(&node_b.url, false).await?);
    for i in 0..BEFORE {
        raiser.broadcast(format!("before-{i}")).await?;
    }
    let n = o.clients;
    if !wait_for(Duration::from_secs(60), || progress.before_done.load(Ordering::Relaxed) >= n).await {
        bail!(
            "only {}/{n} clients on A received the {BEFORE} broadcasts raised on B within 60 s",
            progress.before_done.load(Ordering::Relaxed)
        );
    }
    let unpositioned = records.iter().filter(|r| lock(r).before_positioned < BEFORE).count();
    if unpositioned > 0 {
        note(&format!("{unpositioned} clients got events without a stream position"));
    }

    let down_at = Instant::now();
    stop_node(node_a).await?;
    f.stop = down_at.elapsed();
    let raising = Instant::now();
    for i in 0..MISSED {
        raiser.broadcast(format!("miss-{i}")).await?;
    }
    f.raise = raising.elapsed();
    let overflows_before = listen_overflows();
    let syn_before = tcp_ext("TCPSynRetrans");
    let calls_before = redis_calls(redis_port);
    let redis_before = CpuMark::now(&redis_pid);
    let self_before = CpuMark::now("self");
    let machine_before = CpuMark { at: redis_before.at, ticks: machine_busy_ticks().unwrap_or(0) };
    let (stop_sampler, stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_peak(redis_pid.clone(), tck, stopped));
    let node_a = start_node(&exe, redis_port, "a", a_port, &logs.join("resume-a2.log")).await?;
    let node_pid = node_a.guard.pid().to_string();
    let node_before = CpuMark { at: redis_before.at, ticks: 0 };
    let ready_at = node_a.ready_at;
    f.downtime = ready_at.duration_since(down_at);
    f.start = ready_at.duration_since(redis_before.at);
    note(&format!("node A restarted on port {a_port}, {:.0?} after the stop", f.downtime));

    let all = wait_for(RESUME_WAIT, || progress.markers.load(Ordering::Relaxed) >= n).await;
    let redis_after = CpuMark::now(&redis_pid);
    f.redis_commands = redis_calls(redis_port).zip(calls_before).map(|(after, before)| {
        let mut delta: Vec<(u64, String)> = after
            .into_iter()
            .map(|(name, n)| (n.saturating_sub(before.get(&name).copied().unwrap_or(0)), name))
            .filter(|(n, _)| *n > 0)
            .collect();
        delta.sort_unstable_by(|a, b| b.cmp(a));
        delta.iter().map(|(n, name)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
    });
    let self_after = CpuMark::now("self");
    let machine_after = CpuMark { at: self_after.at, ticks: machine_busy_ticks().unwrap_or(0) };
    let node_after = CpuMark::now(&node_pid);
    f.syn_retransmits = tcp_ext("TCPSynRetrans").zip(syn_before).map(|(a, b)| a.saturating_sub(b));
    f.listen_overflows = listen_overflows().zip(overflows_before).map(|(a, b)| a.saturating_sub(b));
    let _ = stop_sampler.send(());
    f.redis_peak = sampler.await.unwrap_or(0.0);
    if !all {
        note(&format!(
            "only {}/{n} clients got a marker within {RESUME_WAIT:?}",
            progress.markers.load(Ordering::Relaxed)
        ));
    }
    // The missed events follow the markers: wait until all arrived, or none for QUIET.
    let expected = u64::from(MISSED) * n as u64;
    let (mut seen, mut quiet_since) = (u64::MAX, Instant::now());
    wait_for(Duration::from_secs(30), || {
        let now = progress.missed_events.load(Ordering::Relaxed);
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
        now >= expected || quiet_since.elapsed() >= QUIET
    })
    .await;

    f.window = redis_after.at.duration_since(redis_before.at);
    f.redis_cores = redis_before.cores_until(&redis_after, tck);
    f.clients_cores = self_before.cores_until(&self_after, tck);
    f.machine_cores = machine_before.cores_until(&machine_after, tck);
    f.node_cores = node_before.cores_until(&node_after, tck);

    let mut to_marker = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut to_complete = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, 600_000_000);
    for record in &records {
        let r = lock(record);
        if let Some((at, kind)) = r.marker {
            f.markers += 1;
            to_marker.record(us(at.saturating_duration_since(ready_at)))?;
            match kind {
                Some(true) => f.recovered += 1,
                Some(false) => f.not_recovered += 1,
                None => f.bare_reconnected += 1,
            }
        }
        f.extra_markers += r.markers.saturating_sub(1) as usize;
        f.missed_received += u64::from(r.missed_received);
        f.disorder += usize::from(r.disorder);
        f.lagged += r.lagged;
        if r.complete() {
            f.complete += 1;
            if let Some(at) = r.last_missed_at {
                to_complete.record(us(at.saturating_duration_since(ready_at)))?;
            }
        }
    }
    // How the markers spread over time (bursts show the clients' retry rhythm; a bump
    // one second on shows SYNs dropped by a full listen queue, retried after TCP's 1 s).
    let mut spread = std::collections::BTreeMap::<u128, usize>::new();
    for record in &records {
        if let Some((at, _)) = lock(record).marker {
            *spread.entry(at.saturating_duration_since(ready_at).as_millis() / 100 * 100).or_default() += 1;
        }
    }
    let spread: Vec<String> = spread.iter().map(|(ms, n)| format!("{ms}: {n}")).collect();
    note(&format!("markers per 100 ms after the ready line (ms: clients): {}", spread.join(", ")));
    let ms = |v: u64| Duration::from_micros(v);
    if f.markers > 0 {
        (f.p50, f.p99, f.max) =
            (ms(to_marker.value_at_quantile(0.5)), ms(to_marker.value_at_quantile(0.99)), ms(to_marker.max()));
    }
    if f.complete > 0 {
        f.p99_complete = Some(ms(to_complete.value_at_quantile(0.99)));
    }

    // Teardown in order: clients, then the nodes and Redis (their guards).
    tasks.abort_all();
    drop(clients);
    drop(raiser);
    drop(node_a);
    drop(node_b);
    drop(redis);
    Ok(f)
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{} ms", d.as_millis()) } else { format!("{:.2} s", d.as_secs_f64()) }
}

fn report(o: &Options, f: &Figures, floor: &floor::Floor) -> String {
    let met = f.markers == f.clients && f.recovered == f.clients && f.complete == f.clients && f.p99 <= TARGET;
    let mut s = format!(
        "# Resume benchmark (issue 14)\n\n`cargo run --release --locked -p witrpc-bench --bin resume -- {}`: \
         {} clients on node A (a demo server process) resume after A is restarted, while node B raised {MISSED} \
         broadcasts through Redis; see the doc comment of `bench/src/bin/resume/main.rs` for the scenario.\n\n\
         | clients | markers (Resumed recovered / not recovered / bare Reconnected) | ready → marker p50 / p99 / max (target p99 ≤ 1 s) | complete: all {MISSED} missed, once, in order | ready → last missed event p99 | Redis cores over the window / peak 100 ms (target ≤ 1) | node A cores | clients' cores | machine busy cores |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        if o.quick {
            format!("--quick --clients {}", o.clients)
        } else {
            format!("--clients {} --save bench", o.clients)
        },
        f.clients
    );
    s.push_str(&format!(
        "| {} | {} ({} / {} / {}) | {} / {} / {} | {} | {} | {:.2} / {:.2} | {:.2} | {:.2} | {:.2} |\n",
        f.clients,
        f.markers,
        f.recovered,
        f.not_recovered,
        f.bare_reconnected,
        secs(f.p50),
        secs(f.p99),
        secs(f.max),
        f.complete,
        f.p99_complete.map_or("–".to_owned(), secs),
        f.redis_cores,
        f.redis_peak,
        f.node_cores,
        f.clients_cores,
        f.machine_cores,
    ));
    s.push_str(&format!(
        "\nTarget met: {}. Setup: {} clients connected in {}; A was down for {} (SIGTERM to the restarted \
         node's ready line: {} to exit, {} to raise the missed broadcasts on B, {} to start again). During the \
         window the machine counted {} connections dropped by a full listen queue and {} SYN retransmits \
         (TCP retries a dropped SYN after 1 s). The window, {}, runs from just before A restarts to the moment the last client got \
         its marker; Redis ran these commands in it: {}. Missed events received: {} of {} ({} clients out of order or duplicated, {} lagged), extra \
         markers: {}. CPU from /proc/<pid>/stat at {} ticks/s{}, so short windows read coarse; every process shares the machine's {} cores: \
         Redis, both nodes and this process's clients, and whatever else runs on the machine (the last column \
         counts everything, from /proc/stat).\n",
        if met { "yes" } else { "no" },
        f.clients,
        secs(f.setup),
        secs(f.downtime),
        secs(f.stop),
        secs(f.raise),
        secs(f.start),
        f.listen_overflows.map_or("unknown".to_owned(), |n| n.to_string()),
        f.syn_retransmits.map_or("unknown".to_owned(), |n| n.to_string()),
        secs(f.window),
        f.redis_commands.as_deref().unwrap_or("unknown (no redis-cli)"),
        f.missed_received,
        u64::from(MISSED) * f.clients as u64,
        f.disorder,
        f.lagged,
        f.extra_markers,
        f.tck,
        if f.tck_read { " (getconf CLK_TCK)" } else { " (assumed: getconf CLK_TCK could not be read)" },
        std::thread::available_parallelism().map_or(0, usize::from),
    ));
    s.push_str(&format!(
        "\nThe floor (`bench/src/bin/resume/floor.rs`): the same exchange's skeleton on bare tokio-tungstenite, \
         with no WitRPC, no Redis and nothing decoded: {} clients started over 250 ms, each connects, upgrades, \
         sends two messages together (a reconnect pipelines Initialization and Authorization), gets two answers \
         and as many bytes as a real replay, in frames of the same size. Start → replay p50 / p99 / max: \
         {} / {} / {}; its server {:.2} cores, its clients {:.2} cores. {}\n",
        floor.clients,
        secs(floor.p50),
        secs(floor.p99),
        secs(floor.max),
        floor.server_cores,
        floor.clients_cores,
        if floor.p99 > TARGET {
            "The skeleton alone misses the 1 s target on this machine."
        } else {
            "The skeleton alone meets the 1 s target on this machine; the rest of the time above is WitRPC's own."
        },
    ));
    s
}

/// mimalloc's setting for how long freed memory is kept before it goes back to the OS.
const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";

/// Runs this binary again with [`PURGE_DELAY`] set to `-1` (never return freed memory)
/// unless it is set already; `None` when it is (go on in this process). The clients free
/// 10,000 connections when node A stops and allocate 10,000 again 2 s later: with the
/// default (1 s), mimalloc has given those pages back by then, and taking them again
/// costs a page fault and a zeroed page each, which on this VM was a seventh of the
/// clients' CPU (p99 4.0 s → 3.5 s, the mean of 4 runs each). The environment is
/// inherited, so the nodes and the floor's server run with the same setting; set the
/// variable yourself to measure another.
fn with_kept_memory() -> anyhow::Result<Option<std::process::ExitStatus>> {
    if std::env::var_os(PURGE_DELAY).is_some() {
        return Ok(None);
    }
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(PURGE_DELAY, "-1")
        .status()
        .with_context(|| format!("running {} again with {PURGE_DELAY}=-1", exe.display()))?;
    Ok(Some(status))
}

fn main() -> anyhow::Result<()> {
    if let Some(status) = with_kept_memory()? {
        std::process::exit(status.code().unwrap_or(1));
    }
    if std::env::args().nth(1).as_deref() == Some(floor::SERVER_FLAG) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return runtime.block_on(floor::serve());
    }
    let o = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let figures = runtime.block_on(run(&o))?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    // The floor in a runtime of its own, so nothing of the run above is left in it.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let floor = runtime.block_on(floor::run(o.clients, figures.tck))?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    let table = report(&o, &figures, &floor);
    print!("{table}");
    if let Some(dir) = &o.save {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("RESUME.md");
        std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
        note(&format!("saved {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_complete_only_with_every_missed_event_once_in_order() {
        let at = Instant::now();
        let run = |ks: &[Option<u32>]| {
            let mut r = Record::default();
            for k in ks {
                r.missed(*k, Some(at));
            }
            r.complete()
        };
        let all: Vec<Option<u32>> = (0..MISSED).map(Some).collect();
        assert!(run(&all));
        assert!(!run(&all[1..]), "the first one missing");
        assert!(!run(&all[..all.len() - 1]), "the last one missing");
        let mut twice = all.clone();
        twice.insert(5, Some(4));
        assert!(!run(&twice), "a duplicate");
        let mut swapped = all.clone();
        swapped.swap(3, 4);
        assert!(!run(&swapped), "out of order");
        let mut unreadable = all.clone();
        unreadable[7] = None;
        assert!(!run(&unreadable), "an unreadable one");
        assert!(!run(&[]), "none at all");
    }

    #[test]
    fn a_broadcast_text_is_read_in_place_and_only_when_plain() {
        assert_eq!(text_of(br#""miss-42""#), Some("miss-42"));
        assert_eq!(text_of(b"\"\""), Some(""));
        assert_eq!(text_of(br#""a\"b""#), None, "escapes are not decoded");
        assert_eq!(text_of(b"miss-42"), None, "not a JSON string");
        assert_eq!(text_of(b"\""), None);
    }
}
