//! `witrpc-bench attack`: issue 16's hostile-network attacks, each against a fresh demo
//! server process, while a good client keeps calling `Add`. Reports the server's RSS
//! growth (peak during the attack minus before it) and whether the good client was
//! served throughout.
//!
//! ```text
//! cargo build --release --example demo_server -p witrpc-demo
//! cargo run --release -p witrpc-bench -- attack [--seconds N] [--attacks a,b] [--server PATH]
//! ```
//!
//! Attacks: `ping-flood` (one socket that never reads sends Pings), `preauth-big` (100
//! unauthenticated sockets send 16 MiB messages and reconnect), `header-flood` (5,000
//! sockets send a header that never ends), `idle-sockets` (1,100 sockets that send
//! nothing), `request-flood` (4 authorized connections send calls as fast as they can and
//! never read; the server runs with `--rate-limit 100`) and `baseline` (no attack, same
//! server flags as `request-flood`); in those two the good client calls 50 times a second
//! (under the limit), so its p99 latency can be compared. The flooders reconnect as soon as
//! they are closed; the good client runs on a thread of its own, apart from the flood tasks.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use witrpc::protocol::{
    MessageType, Uuid, WitMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse,
};

const ATTACKS: [&str; 6] = ["ping-flood", "preauth-big", "header-flood", "idle-sockets", "baseline", "request-flood"];

pub(crate) fn main(args: &[String]) -> anyhow::Result<()> {
    let value = |name: &str| -> Option<&String> { args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) };
    let seconds: u64 = value("--seconds").map(|s| s.parse()).transpose()?.unwrap_or(5);
    let attacks: Vec<String> = match value("--attacks") {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => ATTACKS.map(str::to_owned).to_vec(),
    };
    if let Some(unknown) = attacks.iter().find(|a| !ATTACKS.contains(&a.as_str())) {
        bail!("unknown attack {unknown:?}; known: {}", ATTACKS.join(", "));
    }
    let server = match value("--server") {
        Some(path) => PathBuf::from(path),
        None => default_server()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        println!("| attack | server RSS before | peak during | growth | good calls | good failures | good p99 |");
        println!("|---|---|---|---|---|---|---|");
        for attack in &attacks {
            let r = run_one(&server, attack, Duration::from_secs(seconds)).await?;
            println!(
                "| {attack} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {} | {} µs |",
                mib(r.before),
                mib(r.peak),
                mib(r.peak.saturating_sub(r.before)),
                r.good_calls,
                r.good_failures,
                r.good_p99_us
            );
        }
        Ok(())
    })
}

/// `examples/demo_server` next to this binary (same cargo profile).
fn default_server() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("odd executable path")?;
    let path = dir.join("examples").join("demo_server");
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --example demo_server` (same profile) or pass --server PATH",
            path.display()
        );
    }
    Ok(path)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Outcome {
    before: u64,
    peak: u64,
    good_calls: u64,
    good_failures: u64,
    good_p99_us: u64,
}

struct Demo {
    child: Child,
    pid: u32,
    addr: std::net::SocketAddr,
    url: String,
}

impl Demo {
    async fn start(path: &PathBuf, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(path)
            .args(["--listen", "http://127.0.0.1:0/ws"])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let pid = child.id().context("demo server exited at once")?;
        let stdout = child.stdout.take().context("no demo server stdout")?;
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).read_line(&mut line))
            .await
            .context("demo server did not print its ready line within 30 s")??;
        let url = line.trim().strip_prefix("listening on ").with_context(|| format!("odd ready line {line:?}"))?;
        let host_port = url.strip_prefix("ws://").and_then(|u| u.split('/').next()).context("odd URL")?;
        Ok(Self { child, pid, addr: host_port.parse()?, url: url.to_owned() })
    }

    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
        kb.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
    }
}

async fn run_one(server: &PathBuf, attack: &str, duration: Duration) -> anyhow::Result<Outcome> {
    let extra: &[&str] = if matches!(attack, "baseline" | "request-flood") { &["--rate-limit", "100"] } else { &[] };
    let mut demo = Demo::start(server, extra).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pace = matches!(attack, "baseline" | "request-flood").then(|| Duration::from_millis(20));
    // The good client runs on its own thread and runtime, so the harness's own flood
    // tasks cannot delay it: what its latency shows is the server's doing.
    let good = {
        let (url, stop, calls, failures, latencies) =
            (demo.url.clone(), stop.clone(), calls.clone(), failures.clone(), latencies.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(good_client(pace, url, stop, calls, failures, latencies));
            }
        })
    };
    // Let the good client connect before measuring.
    while calls.load(Ordering::Relaxed) == 0 && failures.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = demo.rss();
    let mut tasks = tokio::task::JoinSet::new();
    let flood = Arc::new(FloodCounters::default());
    let addr = demo.addr;
    match attack {
        "ping-flood" => {
            tasks.spawn(ping_flood(addr, stop.clone()));
        }
        "preauth-big" => {
            for _ in 0..100 {
                tasks.spawn(preauth_big(addr, stop.clone()));
            }
        }
        "header-flood" => {
            tasks.spawn(sockets(addr, 5000, Some(b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Long: "), stop.clone()));
        }
        "baseline" => {}
        "request-flood" => {
            for _ in 0..4 {
                tasks.spawn(request_flood(demo.url.clone(), stop.clone(), flood.clone()));
            }
        }
        _ => {
            tasks.spawn(sockets(addr, 1100, None, stop.clone()));
        }
    }
    let started = Instant::now();
    let mut peak = before;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(demo.rss());
    }
    stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = tokio::task::spawn_blocking(move || good.join()).await;
    let _killed = demo.child.kill().await;
    if attack == "request-flood" {
        eprintln!(
            "request-flood: {} calls sent by the flooders, {} of their connections closed by the server",
            flood.sent.load(Ordering::Relaxed),
            flood.closed.load(Ordering::Relaxed)
        );
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    let good_p99_us = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or(0);
    Ok(Outcome {
        before,
        peak,
        good_calls: calls.load(Ordering::Relaxed),
        good_failures: failures.load(Ordering::Relaxed),
        good_p99_us,
    })
}

/// Handshakes, then calls `Add` until `stop`, reconnecting after a failure; each call
/// must be answered within 5 s to count.
async fn good_client(
    pace: Option<Duration>,
    url: String,
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let session = async {
            let (mut ws, _) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(&url))
                .await
                .context("no connection within 5 s")??;
            send(&mut ws, MessageType::Initialization, WitRequestInitialization::plain().encode()).await?;
            recv(&mut ws).await?;
            let auth = WitRequestAuthorization { token: Some(String::new()) };
            send(&mut ws, MessageType::Authorization, auth.encode()).await?;
            recv(&mut ws).await?;
            let mut i = 0i32;
            let mut ticks = pace.map(tokio::time::interval);
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = ticks.as_mut() {
                    t.tick().await;
                }
                let request = WitRequest {
                    method_name: "Add".to_owned(),
                    parameters: vec![Bytes::from(i.to_string()), Bytes::from_static(b"1")],
                    invocation_id: Uuid::new_v4(),
                    ..WitRequest::default()
                };
                let sent = Instant::now();
                send(&mut ws, MessageType::Request, request.encode()).await?;
                let reply = recv(&mut ws).await?;
                let took = sent.elapsed().as_micros() as u64;
                latencies.lock().unwrap_or_else(|e| e.into_inner()).push(took);
                let response = WitResponse::decode(reply.data.context("empty response")?)?;
                if response.data.as_deref() != Some((i + 1).to_string().as_bytes()) {
                    bail!("wrong answer {response:?}");
                }
                calls.fetch_add(1, Ordering::Relaxed);
                i = (i + 1) % 1000;
            }
            anyhow::Ok(())
        };
        // Every step has its own 5 s deadline (`recv`, the connect below); a session that
        // fails counts one failure and the client connects again.
        if session.await.is_err() {
            failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An authorized connection that sends `Add` calls as fast as it can and never reads;
/// when the server closes it, it connects again at once (a persistent attacker).
async fn request_flood(url: String, stop: Arc<AtomicBool>, counters: Arc<FloodCounters>) {
    while !stop.load(Ordering::Relaxed) {
        let flood = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
            send(&mut ws, MessageType::Initialization, WitRequestInitialization::plain().encode()).await?;
            recv(&mut ws).await?;
            let auth = WitRequestAuthorization { token: Some(String::new()) };
            send(&mut ws, MessageType::Authorization, auth.encode()).await?;
            recv(&mut ws).await?;
            let request = WitRequest {
                method_name: "Add".to_owned(),
                parameters: vec![Bytes::from_static(b"1"), Bytes::from_static(b"1")],
                ..WitRequest::default()
            };
            let payload = request.encode();
            while !stop.load(Ordering::Relaxed) {
                send(&mut ws, MessageType::Request, payload.clone()).await?;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        };
        if flood.await.is_err() {
            counters.closed.fetch_add(1, Ordering::Relaxed);
            // Closed by the server (held, then cut off) or refused: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What the flooders did.
#[derive(Default)]
struct FloodCounters {
    sent: AtomicU64,
    closed: AtomicU64,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn send(ws: &mut Ws, kind: MessageType, data: Vec<u8>) -> anyhow::Result<()> {
    let message = WitMessage::new(Uuid::new_v4(), kind, Some(Bytes::from(data)));
    ws.send(Message::Binary(message.encode().into())).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> anyhow::Result<WitMessage> {
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(WitMessage::decode(b)?),
                Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("connection ended"),
            }
        }
    })
    .await;
    reply.context("no answer within 5 s")?
}

/// A hand-made upgrade, so frames no library would send can follow.
async fn upgrade(addr: std::net::SocketAddr, rcvbuf: Option<u32>) -> anyhow::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let mut stream = socket.connect(addr).await?;
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            bail!("closed during the upgrade");
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("upgrade refused");
    }
    Ok(stream)
}

/// A client frame header, masked with a zero key.
fn frame_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0; 4]);
    h
}

async fn ping_flood(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    let Ok(mut stream) = upgrade(addr, Some(4096)).await else { return };
    let mut ping = frame_header(0x9, 125);
    ping.extend_from_slice(&[0x55; 125]);
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 512).collect();
    while !stop.load(Ordering::Relaxed) && stream.write_all(&burst).await.is_ok() {}
}

async fn preauth_big(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    let chunk = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = upgrade(addr, None).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let size = 16 * 1024 * 1024u64;
        if stream.write_all(&frame_header(0x2, size)).await.is_err() {
            continue;
        }
        for _ in 0..size / chunk.len() as u64 {
            if stop.load(Ordering::Relaxed) || stream.write_all(&chunk).await.is_err() {
                break;
            }
        }
    }
}

/// `n` sockets that send `prefix` (or nothing) and then hold still.
async fn sockets(addr: std::net::SocketAddr, n: usize, prefix: Option<&'static [u8]>, stop: Arc<AtomicBool>) {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(mut stream) = TcpStream::connect(addr).await else { continue };
        if let Some(prefix) = prefix {
            let _ = stream.write_all(prefix).await;
            let _ = stream.write_all(&[b'a'; 8 * 1024]).await;
        }
        held.push(stream);
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
