//! The benchmark's child processes: `redis-server` and the demo server nodes, each held
//! by a [`Guard`] that kills it on drop.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A child process, killed (SIGKILL) and reaped when dropped, so no exit path leaves one
/// running.
pub(crate) struct Guard {
    child: Child,
    name: String,
}

impl Guard {
    pub(crate) fn new(child: Child, name: &str) -> Self {
        Self { child, name: name.to_owned() }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        note(&format!("{} stopped", self.name));
    }
}

/// Progress lines go to stderr (the table goes to stdout).
pub(crate) fn note(line: &str) {
    eprintln!("resume: {line}");
}

pub(crate) async fn start_redis() -> anyhow::Result<(Guard, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("redis-server must be on the PATH (apt-get install -y redis-server)")?;
    let guard = Guard { child, name: "redis-server".into() };
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((guard, port));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("redis-server did not accept connections within 5 s")
}

/// The demo server binary: `--server PATH`, or the release build next to this binary,
/// (re)built first so it is never stale.
pub(crate) fn demo_server(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("bench/ has a parent")?;
    note("building the demo server (cargo build --release --locked --example demo_server)");
    let status = Command::new(&cargo)
        .args(["build", "--release", "--locked", "-p", "witrpc-demo", "--example", "demo_server"])
        .current_dir(root)
        .status()
        .context("cannot run cargo to build the demo server; build it yourself and pass --server PATH")?;
    if !status.success() {
        bail!("building the demo server failed ({status})");
    }
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("odd executable path")?.join("examples").join("demo_server");
    if !path.exists() {
        bail!("{} not found after the build; pass --server PATH", path.display());
    }
    Ok(path)
}

/// A running node and when it printed its ready line.
pub(crate) struct Node {
    pub(crate) guard: Guard,
    pub(crate) url: String,
    pub(crate) port: u16,
    pub(crate) ready_at: Instant,
}

/// Starts a demo server node; `port` 0 picks a free one. Its ready line is read by a
/// thread of its own, so the timestamp is taken the moment the line arrives, whatever
/// the runtime is busy with.
pub(crate) async fn start_node(exe: &Path, redis: u16, id: &str, port: u16, log: &Path) -> anyhow::Result<Node> {
    let log_path = log.display();
    let log = std::fs::File::create(log).with_context(|| format!("creating {log_path}"))?;
    let mut child = Command::new(exe)
        .args(["--redis", &format!("redis://127.0.0.1:{redis}"), "--history", "1000", "--max-clients", "12000"])
        .args(["--listen", &format!("http://127.0.0.1:{port}/ws"), "--node-id", id])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("no demo server stdout")?;
    let guard = Guard { child, name: format!("node {id}") };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().map(|l| (Instant::now(), l));
        let _ = tx.send(first);
        // Read on to the end, so the node never writes into a closed pipe.
        for _ in lines {}
    });
    let (ready_at, line) = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(Some((at, Ok(line))))) => (at, line),
        Ok(_) => bail!("node {id} exited before its ready line (its log: {log_path})"),
        Err(_) => bail!("node {id} did not print its ready line within 30 s"),
    };
    let url = line.trim().strip_prefix("listening on ").with_context(|| format!("odd ready line {line:?}"))?;
    let port = url
        .strip_prefix("ws://")
        .and_then(|u| u.split('/').next())
        .and_then(|hp| hp.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {url:?}"))?;
    Ok(Node { guard, url: url.to_owned(), port, ready_at })
}

/// SIGTERM (through `kill`, as `unsafe` is forbidden here), then waits up to 10 s for the
/// exit; the guard kills it if it does not.
pub(crate) async fn stop_node(mut node: Node) -> anyhow::Result<()> {
    let status = Command::new("kill").args(["-TERM", &node.guard.pid().to_string()]).status()?;
    if !status.success() {
        bail!("kill -TERM {} failed ({status})", node.guard.pid());
    }
    for _ in 0..1000 {
        if node.guard.child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{} did not exit within 10 s of SIGTERM", node.guard.name)
}

/// Redis's calls per command so far (`INFO commandstats` through `redis-cli`); `None`
/// when `redis-cli` is missing or says something else.
pub(crate) fn redis_calls(port: u16) -> Option<std::collections::BTreeMap<String, u64>> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string(), "info", "commandstats"]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let calls = text
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect();
    Some(calls)
}
