//! `witrpc-bench server <target> --workers N`: one benchmark server per process, so the
//! driver can read its CPU time and memory from /proc. Prints `ready <url>` when it
//! accepts connections and runs until killed.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;
use witrpc::prelude::*;

/// The access token every witrpc benchmark client presents (connections are authorized).
pub(crate) const TOKEN: &str = "bench-token";

/// The benchmark contract: the same work as the jsonrpsee server's methods.
#[witrpc::service(contract = "WitRpc.Bench.IBenchService")]
pub trait BenchService {
    /// `a + b`.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Returns `data`.
    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// Raises `Tick` `count` times in a tight loop, after answering.
    async fn flood(&self, count: i32) -> i32;
    /// One fan-out event carrying when it was raised (ns since the Unix epoch).
    #[event]
    fn tick(&self, sent_at_ns: i64);
}

/// The benchmark implementation.
#[derive(Debug, Clone)]
pub(crate) struct Bench {
    events: BenchServiceEvents,
}

impl Bench {
    pub(crate) fn new(events: BenchServiceEvents) -> Self {
        Self { events }
    }
}

impl BenchService for Bench {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn flood(&self, count: i32) -> i32 {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            for _ in 0..count {
                if events.tick(now_ns()).is_err() {
                    return;
                }
            }
        });
        count
    }
}

/// Nanoseconds since the Unix epoch: one clock for both processes on this machine.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// The servers under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    WitJson,
    WitMsgpack,
    WitEncrypted,
    Jsonrpsee,
    Echo,
}

impl Target {
    pub(crate) const ALL: [Target; 5] =
        [Target::WitJson, Target::WitMsgpack, Target::WitEncrypted, Target::Jsonrpsee, Target::Echo];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::WitJson => "witrpc-json",
            Target::WitMsgpack => "witrpc-msgpack",
            Target::WitEncrypted => "witrpc-encrypted",
            Target::Jsonrpsee => "jsonrpsee",
            Target::Echo => "raw-echo",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }

    pub(crate) fn is_witrpc(self) -> bool {
        matches!(self, Target::WitJson | Target::WitMsgpack | Target::WitEncrypted)
    }
}

pub(crate) fn main(args: &[String]) -> anyhow::Result<()> {
    let target =
        args.first().and_then(|s| Target::parse(s)).context("usage: witrpc-bench server <target> [--workers N]")?;
    let workers = match args.iter().position(|a| a == "--workers") {
        Some(i) => args.get(i + 1).context("--workers needs a value")?.parse().context("--workers")?,
        None => 2,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(async move {
        let url = match target {
            Target::Jsonrpsee => jsonrpsee_server().await?,
            Target::Echo => echo_server().await?,
            _ => witrpc_server(target).await?,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {url}")?;
        out.flush()?;
        drop(out);
        std::future::pending::<anyhow::Result<()>>().await
    })
}

async fn witrpc_server(target: Target) -> anyhow::Result<String> {
    let events = BenchServiceEvents::new();
    let service = BenchServiceServer::new(Bench::new(events.clone())).with_events(&events);
    let mut builder = WitServerBuilder::new()
        .with_service(service)
        .with_websocket("http://127.0.0.1:0/bench", 20_000)
        .with_access_token(TOKEN)
        .with_max_in_flight_requests(1024)
        // Fan-out rounds queue up to a few thousand events per client at once.
        .with_outbound_queue_capacity(1 << 16)
        .with_max_outbound_bytes(64 << 20)
        .with_keepalive(None, Duration::from_secs(3600))
        .with_handshake_timeout(Duration::from_secs(60));
    builder = match target {
        Target::WitMsgpack => builder.with_msgpack(),
        Target::WitEncrypted => builder.with_json().with_encryption(),
        _ => builder.with_json(),
    };
    let server = builder.build()?;
    server.start_waiting_for_connection().await?;
    let url = server.client_url().context("no client url")?;
    // Keep the server alive for the life of the process.
    std::mem::forget(server);
    Ok(url)
}

async fn jsonrpsee_server() -> anyhow::Result<String> {
    use jsonrpsee::server::{RpcModule, Server, ServerConfig};
    use jsonrpsee::types::ErrorObjectOwned;
    let config = ServerConfig::builder()
        .max_connections(20_000)
        .max_request_body_size(64 << 20)
        .max_response_body_size(64 << 20)
        .build();
    let server = Server::builder().set_config(config).build("127.0.0.1:0").await?;
    let mut module = RpcModule::new(());
    module.register_method("add", |params, _, _| {
        let (a, b): (i64, i64) = params.parse()?;
        Ok::<_, ErrorObjectOwned>(a.wrapping_add(b))
    })?;
    module.register_method("echo", |params, _, _| {
        let (s,): (String,) = params.parse()?;
        Ok::<_, ErrorObjectOwned>(s)
    })?;
    let addr = server.local_addr()?;
    let handle = server.start(module);
    std::mem::forget(handle);
    Ok(format!("ws://{addr}/"))
}

/// The floor for this stack: tokio-tungstenite echoing each binary frame, with the witrpc
/// server's buffer sizes, flushing once per batch of ready frames as the witrpc writer does.
async fn echo_server() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _nodelay = tcp.set_nodelay(true);
                // The witrpc server's buffer settings, so the floor differs only by the RPC.
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(2 * 1024)
                    .write_buffer_size(16 * 1024)
                    .max_message_size(Some(64 << 20))
                    .max_frame_size(Some(64 << 20));
                let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else { return };
                let mut next = ws.next().await;
                while let Some(Ok(message)) = next {
                    if (message.is_binary() || message.is_text()) && ws.feed(message).await.is_err() {
                        return;
                    }
                    next = match ws.next().now_or_never() {
                        Some(n) => n,
                        None => {
                            if ws.flush().await.is_err() {
                                return;
                            }
                            ws.next().await
                        }
                    };
                }
            });
        }
    });
    Ok(format!("ws://{addr}/"))
}

/// Refuses a target name the driver does not know.
pub(crate) fn parse_targets(list: &str) -> anyhow::Result<Vec<Target>> {
    list.split(',')
        .map(|s| match Target::parse(s.trim()) {
            Some(t) => Ok(t),
            None => bail!("unknown target `{s}`; expected one of {:?}", Target::ALL.map(Target::name)),
        })
        .collect()
}
