//! The scenarios: each starts a fresh server process, drives it, and reads its CPU time
//! and memory from /proc.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::client::{Call, Conn, Payload, Reply, Setup};
use crate::server::{Target, now_ns};

/// A server process under test.
pub(crate) struct ServerProcess {
    child: Child,
    pid: u32,
    pub(crate) url: String,
}

impl ServerProcess {
    /// Starts `target` in a child process. `WITRPC_BENCH_SERVER_EXE` runs another build's
    /// server (to compare two commits in one run); `WITRPC_BENCH_CALLGRIND=<dir>` runs it
    /// under callgrind with collection off until [`ServerProcess::callgrind`] turns it on.
    pub(crate) async fn start(target: Target, workers: usize) -> anyhow::Result<Self> {
        let exe = match std::env::var_os("WITRPC_BENCH_SERVER_EXE") {
            Some(exe) => exe.into(),
            None => std::env::current_exe()?,
        };
        let mut command = match std::env::var_os("WITRPC_BENCH_CALLGRIND") {
            Some(dir) => {
                let out = Path::new(&dir).join(format!("callgrind.{}.%p", target.name()));
                let mut c = Command::new("valgrind");
                c.args(["--tool=callgrind", "--instr-atstart=no"])
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["server", target.name(), "--workers", &workers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the benchmark server")?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("no server stdout")?;
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(120), BufReader::new(stdout).read_line(&mut line))
            .await
            .context("server did not print its ready line within 30 s")??;
        let url = line.trim().strip_prefix("ready ").with_context(|| format!("unexpected ready line {line:?}"))?;
        Ok(Self { child, pid, url: url.to_owned() })
    }

    /// Under `WITRPC_BENCH_CALLGRIND`: turns instruction counting on (`true`) or off and
    /// dumps the counts (`false`); returns the instructions of the dump. Without it: `None`.
    pub(crate) async fn callgrind(&self, on: bool) -> anyhow::Result<Option<u64>> {
        let Some(dir) = std::env::var_os("WITRPC_BENCH_CALLGRIND") else { return Ok(None) };
        let pid = self.pid.to_string();
        if on {
            let status = Command::new("callgrind_control").args(["--instr=on", &pid]).output().await?;
            anyhow::ensure!(status.status.success(), "callgrind_control --instr=on failed");
            return Ok(None);
        }
        // Dump first: switching instrumentation off leaves an empty summary.
        let dumped = Command::new("callgrind_control").args(["--dump", &pid]).output().await?;
        anyhow::ensure!(dumped.status.success(), "callgrind_control --dump failed");
        let _off = Command::new("callgrind_control").args(["--instr=off", &pid]).output().await?;
        // The newest dump of this process holds the window's counts.
        let prefix = "callgrind.";
        let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.contains(&pid) {
                let modified = entry.metadata()?.modified()?;
                if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                    newest = Some((modified, entry.path()));
                }
            }
        }
        let (_, path) = newest.context("no callgrind dump written")?;
        let text = std::fs::read_to_string(&path)?;
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no totals in the callgrind dump")?;
        Ok(Some(total))
    }

    /// User + system CPU time of the whole process so far, in nanoseconds.
    pub(crate) fn cpu_ns(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("odd /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the name.
        let ticks: u64 =
            fields.get(11..13).context("short /proc stat")?.iter().map(|f| f.parse::<u64>().unwrap_or(0)).sum();
        Ok(ticks * 1_000_000_000 / clock_ticks_per_second())
    }

    /// Resident set size, in bytes.
    pub(crate) fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
        let kb: u64 = line.split_whitespace().nth(1).context("odd VmRSS")?.parse()?;
        Ok(kb * 1024)
    }

    pub(crate) async fn stop(mut self) {
        let _gone = self.child.kill().await;
    }
}

/// `sysconf(_SC_CLK_TCK)` is 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks_per_second() -> u64 {
    100
}

/// Connects `n` clients, `parallel` handshakes at a time.
pub(crate) async fn connect_many(url: &str, setup: &Setup, n: usize) -> anyhow::Result<Vec<Conn>> {
    let conns: Vec<anyhow::Result<Conn>> =
        futures_util::stream::iter(0..n).map(|_| Conn::connect(url, setup)).buffer_unordered(64).collect().await;
    conns.into_iter().collect()
}

/// One closed-loop measurement.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throughput {
    pub(crate) requests_per_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) server_cpu_us_per_request: f64,
}

/// `connections` × `depth` requests in flight: warm-up, then a measured window.
pub(crate) async fn throughput(
    target: Target,
    workers: usize,
    connections: usize,
    depth: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Throughput> {
    let server = ServerProcess::start(target, workers).await?;
    let setup = Setup::new(target)?;
    let payload = Arc::new(Payload::new(target, Call::Add)?);
    let conns = connect_many(&server.url, &setup, connections).await?;
    let start = Instant::now() + warmup;
    let end = start + window;
    let tasks: Vec<_> =
        conns.into_iter().map(|c| tokio::spawn(closed_loop(c, payload.clone(), depth, start, end))).collect();
    tokio::time::sleep_until(start.into()).await;
    server.callgrind(true).await?;
    let cpu0 = server.cpu_ns()?;
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = server.cpu_ns()?;
    let instructions = server.callgrind(false).await?;
    let mut histogram = new_histogram();
    let mut count = 0u64;
    for task in tasks {
        let (h, n) = task.await??;
        histogram.add(&h)?;
        count += n;
    }
    server.stop().await;
    if count == 0 {
        bail!("{}: no request completed in the measured window", target.name());
    }
    if let Some(instructions) = instructions {
        eprintln!(
            "callgrind {} {connections}x{depth}: {instructions} instructions / {count} calls = {:.0} per call",
            target.name(),
            instructions as f64 / count as f64
        );
    }
    Ok(Throughput {
        requests_per_s: count as f64 / window.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.5) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
        p999_us: histogram.value_at_quantile(0.999) as f64,
        server_cpu_us_per_request: (cpu1.saturating_sub(cpu0)) as f64 / 1000.0 / count as f64,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits: always valid bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Keeps `depth` requests in flight on one connection until `end`; returns the latency
/// histogram of requests sent and answered inside `[start, end]` and their count.
async fn closed_loop(
    mut conn: Conn,
    payload: Arc<Payload>,
    depth: usize,
    start: Instant,
    end: Instant,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut histogram = new_histogram();
    let mut count = 0u64;
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(depth * 2);
    let mut next_id = 1u64 << 32;
    for _ in 0..depth {
        conn.feed(next_id, &payload).await?;
        in_flight.insert(next_id, Instant::now());
        next_id += 1;
    }
    conn.flush().await?;
    let mut unflushed = false;
    loop {
        let reply = match conn.try_next_reply() {
            Some(r) => r?,
            None => {
                if unflushed {
                    conn.flush().await?;
                    unflushed = false;
                }
                conn.next_reply().await?
            }
        };
        let id = match reply {
            Some(Reply::Response { id, .. }) => id,
            Some(Reply::Event { .. }) => continue,
            None => bail!("server closed the connection"),
        };
        let now = Instant::now();
        let sent = in_flight.remove(&id).with_context(|| format!("reply to unknown request {id}"))?;
        if sent >= start && now <= end {
            histogram.saturating_record(now.duration_since(sent).as_micros().max(1) as u64);
            count += 1;
        }
        if now >= end {
            if in_flight.is_empty() {
                return Ok((histogram, count));
            }
            continue;
        }
        conn.feed(next_id, &payload).await?;
        in_flight.insert(next_id, Instant::now());
        next_id += 1;
        unflushed = true;
    }
}

/// Server memory per idle connection.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdleMemory {
    pub(crate) connections: usize,
    pub(crate) bytes_per_connection: f64,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
}

/// Opens `n` connections (authorized, for witrpc) and leaves them idle.
pub(crate) async fn idle_memory(target: Target, workers: usize, n: usize) -> anyhow::Result<IdleMemory> {
    let server = ServerProcess::start(target, workers).await?;
    let setup = Setup::new(target)?;
    // One connection first, so lazily built runtime structures are not counted.
    let mut first = connect_many(&server.url, &setup, 1).await?;
    one_call(&mut first[0], target).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_bytes()?;
    let conns = connect_many(&server.url, &setup, n).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = server.rss_bytes()?;
    drop(conns);
    drop(first);
    server.stop().await;
    Ok(IdleMemory {
        connections: n,
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        rss_before,
        rss_after,
    })
}

async fn one_call(conn: &mut Conn, target: Target) -> anyhow::Result<()> {
    conn.feed(1, &Payload::new(target, Call::Add)?).await?;
    conn.flush().await?;
    match conn.next_reply().await? {
        Some(Reply::Response { .. }) => Ok(()),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// Event fan-out to many clients.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FanOut {
    pub(crate) clients: usize,
    pub(crate) events: i32,
    pub(crate) deliveries_per_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// `clients` subscribers; one `Flood(events)` call raises `Tick` in a tight loop.
pub(crate) async fn fan_out(workers: usize, clients: usize, warmup_events: i32, events: i32) -> anyhow::Result<FanOut> {
    let target = Target::WitJson;
    let server = ServerProcess::start(target, workers).await?;
    let setup = Setup::new(target)?;
    let mut control = Conn::connect(&server.url, &setup).await?;
    let conns = connect_many(&server.url, &setup, clients).await?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<u8>(clients * 2);
    let warm = warmup_events as usize;
    let total = warm + events as usize;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let done = done_tx.clone();
            tokio::spawn(async move {
                let mut histogram = new_histogram();
                let mut seen = 0usize;
                while seen < total {
                    match conn.next_reply().await? {
                        Some(Reply::Event { first_arg }) => {
                            seen += 1;
                            if seen > warm {
                                let sent: i64 = first_arg
                                    .as_deref()
                                    .and_then(|b| std::str::from_utf8(b).ok())
                                    .and_then(|s| s.parse().ok())
                                    .context("unreadable Tick argument")?;
                                histogram.saturating_record(((now_ns() - sent) / 1000).max(1) as u64);
                            }
                            if seen == warm || seen == total {
                                let _ = done.send(if seen == warm { 0 } else { 1 }).await;
                            }
                        }
                        Some(Reply::Response { .. }) => {}
                        None => bail!("server closed a subscriber after {seen} events"),
                    }
                }
                Ok::<_, anyhow::Error>(histogram)
            })
        })
        .collect();
    drop(done_tx);
    // Subscriptions start at authorization; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if warm > 0 {
        flood(&mut control, warmup_events).await?;
        wait_all(&mut done_rx, 0, clients).await?;
    }
    let started = Instant::now();
    flood(&mut control, events).await?;
    wait_all(&mut done_rx, 1, clients).await?;
    let elapsed = started.elapsed();
    let mut histogram = new_histogram();
    for task in tasks {
        histogram.add(&task.await??)?;
    }
    server.stop().await;
    Ok(FanOut {
        clients,
        events,
        deliveries_per_s: (clients * events as usize) as f64 / elapsed.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.5) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
    })
}

/// Waits until `clients` subscribers report reaching `phase`.
async fn wait_all(rx: &mut tokio::sync::mpsc::Receiver<u8>, phase: u8, clients: usize) -> anyhow::Result<()> {
    let mut left = clients;
    while left > 0 {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(p)) if p == phase => left -= 1,
            Ok(Some(_)) => {}
            Ok(None) => bail!("a subscriber failed"),
            Err(_) => bail!("{left} subscribers still waiting for events after 120 s"),
        }
    }
    Ok(())
}

async fn flood(control: &mut Conn, events: i32) -> anyhow::Result<()> {
    control.feed(7, &Payload::new(Target::WitJson, Call::Flood(events))?).await?;
    control.flush().await
}

/// Round trips of one large payload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Large {
    pub(crate) bytes: usize,
    pub(crate) p50_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) megabytes_per_s: f64,
}

/// `iterations` sequential round trips of `bytes` (witrpc `EchoBytes`, jsonrpsee `echo`
/// of a string, raw echo of a frame).
pub(crate) async fn large(target: Target, workers: usize, bytes: usize, iterations: usize) -> anyhow::Result<Large> {
    let server = ServerProcess::start(target, workers).await?;
    let setup = Setup::new(target)?;
    let payload = Payload::new(target, Call::Bytes(bytes))?;
    let mut conn = Conn::connect(&server.url, &setup).await?;
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations as u64 + 1 {
        let sent = Instant::now();
        conn.feed((1 << 40) + i, &payload).await?;
        conn.flush().await?;
        loop {
            match conn.next_reply().await? {
                Some(Reply::Response { data, .. }) => {
                    let len = data.map_or(0, |d| d.len());
                    if len < bytes / 2 {
                        bail!("{}: a {len}-byte reply to a {bytes}-byte echo", target.name());
                    }
                    break;
                }
                Some(Reply::Event { .. }) => {}
                None => bail!("server closed the connection"),
            }
        }
        if i > 0 {
            times.push(sent.elapsed());
        }
    }
    server.stop().await;
    times.sort();
    let total: Duration = times.iter().sum();
    Ok(Large {
        bytes,
        p50_ms: times[times.len() / 2].as_secs_f64() * 1000.0,
        max_ms: times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0),
        megabytes_per_s: (2 * bytes * times.len()) as f64 / total.as_secs_f64() / 1e6,
    })
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)?;
    Ok(())
}
