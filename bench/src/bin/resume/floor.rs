//! The floor: the resume's exchange with nothing of WitRPC in it, to show what the
//! machine itself costs.
//!
//! A resuming client opens a TCP connection, upgrades it to WebSocket, sends two
//! messages together (Initialization, and behind it Authorization with its positions: a
//! reconnect pipelines them) and receives the two answers and its replay: one round trip.
//! Here the same skeleton runs on bare tokio-tungstenite: a server process of its own
//! (this binary, `--floor-server`) answers each message with one of the same size and
//! follows the second answer with as many bytes as a real replay (answer and 100
//! events), in frames of witrpc's replay batch size written together; nothing is
//! decoded, no Redis, no sessions. The clients start
//! spread over [`SPREAD`] (the real clients' retry timers put them in that range after the
//! ready line), and each records the time from the start to its replay frame. Same
//! machine, same buffer settings as witrpc's transports (client: 4 KiB reads, writes
//! collected up to 16 KiB, `TCP_NODELAY`; server: 2 KiB reads, writes collected up to 16 KiB), same
//! allocator.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use witrpc_core::batch::MAX_BATCH_BYTES;

use crate::processes::Guard;
use crate::procfs::CpuMark;

/// The flag that makes this binary the floor's server.
pub(crate) const SERVER_FLAG: &str = "--floor-server";
/// Bytes that stand for the replay: what node A wrote to one client for its resume
/// answer and its 100 events (18,654 bytes, read off `strace -e writev` with
/// `--clients 1`), sent in frames of at most [`MAX_BATCH_BYTES`] as witrpc's are.
const REPLAY_BYTES: usize = 18_654;
/// Bytes of each handshake message and answer (Initialization and Authorization are a
/// few hundred bytes).
const HANDSHAKE_BYTES: usize = 300;
/// The clients start spread evenly over this long.
const SPREAD: Duration = Duration::from_millis(250);

/// What the floor run measured.
#[derive(Debug, Default)]
pub(crate) struct Floor {
    pub(crate) clients: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    pub(crate) server_cores: f64,
    pub(crate) clients_cores: f64,
}

fn server_config() -> WebSocketConfig {
    // witrpc's driver collects frames up to 16 KiB (`WRITE_BATCH`) before a write.
    WebSocketConfig::default().read_buffer_size(2 * 1024).write_buffer_size(16 * 1024)
}

fn client_config() -> WebSocketConfig {
    // witrpc's client transport: 4 KiB reads, frames collected up to 16 KiB per flush.
    WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(16 * 1024)
}

/// The floor's server (run as a child process): prints its port, then serves each
/// connection the skeleton exchange until it closes.
pub(crate) async fn serve() -> anyhow::Result<()> {
    let listener = listen()?;
    println!("{}", listener.local_addr()?.port());
    serve_on(listener).await
}

fn listen() -> anyhow::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    // The demo server's backlog too (witrpc-server-websocket's listener).
    Ok(socket.listen(4096)?)
}

async fn serve_on(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let replay = bytes::Bytes::from(vec![7u8; REPLAY_BYTES]);
    let frames: Vec<bytes::Bytes> = (0..REPLAY_BYTES)
        .step_by(MAX_BATCH_BYTES)
        .map(|at| replay.slice(at..REPLAY_BYTES.min(at + MAX_BATCH_BYTES)))
        .collect();
    loop {
        let (tcp, _) = listener.accept().await?;
        let frames = frames.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(server_config())).await else {
                return;
            };
            for answer in 0..2 {
                match ws.next().await {
                    Some(Ok(message)) if message.is_binary() => {
                        if ws.send(message).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
                if answer == 1 {
                    for frame in &frames {
                        if ws.feed(Message::Binary(frame.clone())).await.is_err() {
                            return;
                        }
                    }
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

/// One client: connect, upgrade, two messages out and their answers back, the
/// replay frames; `Ok` holds the
/// connection (kept open until every client is done, as resumed clients stay) and the
/// time from `t0` to the replay.
async fn client(port: u16, t0: Instant, start: Duration) -> anyhow::Result<(impl Sized, Duration)> {
    tokio::time::sleep_until((t0 + start).into()).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(client_config())).await?;
    for _ in 0..2 {
        ws.feed(Message::Binary(vec![1u8; HANDSHAKE_BYTES].into())).await?;
    }
    ws.flush().await?;
    for _ in 0..2 {
        ws.next().await.context("closed during the handshake")??;
    }
    let mut replayed = 0;
    while replayed < REPLAY_BYTES {
        replayed += ws.next().await.context("closed before the whole replay")??.len();
    }
    if replayed != REPLAY_BYTES {
        bail!("the replay has {replayed} bytes, not {REPLAY_BYTES}");
    }
    Ok((ws, t0.elapsed()))
}

/// Runs the floor with `clients` clients against a fresh server process.
pub(crate) async fn run(clients: usize, tck: f64) -> anyhow::Result<Floor> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(&exe)
        .arg(SERVER_FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} {SERVER_FLAG}", exe.display()))?;
    let stdout = child.stdout.take().context("no floor server stdout")?;
    let server = Guard::new(child, "the floor's server");
    let port: u16 = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let port = lines.next().and_then(Result::ok).and_then(|l| l.trim().parse().ok());
        // Read on to the end, so the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        port
    })
    .await?
    .context("the floor's server printed no port")?;

    let server_pid = server.pid().to_string();
    let server_before = CpuMark::now(&server_pid);
    let self_before = CpuMark::now("self");
    let t0 = Instant::now() + Duration::from_millis(20);
    let spread = SPREAD.as_micros() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..clients as u64 {
        let start = Duration::from_micros(k * spread / clients as u64);
        tasks.spawn(client(port, t0, start));
    }
    let mut held = Vec::with_capacity(clients);
    let mut times = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let timeout = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(timeout);
    while held.len() < clients {
        let done = tokio::select! {
            done = tasks.join_next() => done.context("floor clients ended early")?,
            () = &mut timeout => bail!("only {}/{clients} floor clients got their replay within 60 s", held.len()),
        };
        let (ws, took) = done?.context("a floor client failed")?;
        times.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, 600_000_000))?;
        held.push(ws);
    }
    let f = Floor {
        clients,
        p50: Duration::from_micros(times.value_at_quantile(0.5)),
        p99: Duration::from_micros(times.value_at_quantile(0.99)),
        max: Duration::from_micros(times.max()),
        server_cores: server_before.cores_until(&CpuMark::now(&server_pid), tck),
        clients_cores: self_before.cores_until(&CpuMark::now("self"), tck),
    };
    drop(held);
    drop(server);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_floor_client_gets_two_answers_and_a_replays_bytes() {
        let listener = listen().unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(serve_on(listener));
        let t0 = Instant::now();
        let clients = (0..3u64).map(|k| client(port, t0, Duration::from_millis(k)));
        let all = tokio::time::timeout(Duration::from_secs(10), futures_util::future::join_all(clients));
        for result in all.await.expect("the clients finish within 10 s") {
            let (_ws, took) = result.expect("the skeleton exchange completes");
            assert!(took > Duration::ZERO);
        }
        server.abort();
    }
}
