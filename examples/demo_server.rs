//! The demo server: hosts `WitRpc.Demo.IDemoService` (see `src/lib.rs`) over WebSocket.
//!
//! ```text
//! cargo run --example demo_server
//! cargo run --example demo_server -- --listen http://127.0.0.1:0/ws --format msgpack --token AuthToken123
//! cargo run --example demo_server -- --encryption
//! cargo run --example demo_server -- --protocol 3   # refuse .NET 2.x (protocol 2) clients
//! cargo run --example demo_server -- --redis redis://127.0.0.1:6379 --node-id a --user-tokens
//! cargo run --example demo_server -- --user-tokens --token-ttl 60   # tokens expire; clients refresh
//! cargo run --example demo_server -- --listen https://127.0.0.1:5443/ws --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! When ready it prints exactly one line to stdout, `listening on ws://HOST:PORT/PATH`,
//! with the real port; logs go to stderr (`RUST_LOG=debug` for more). Ctrl-C stops it.
//! This command line and the ready line are a stable contract for outside clients.

use clap::{Parser, ValueEnum};
use std::io::Write as _;
use witrpc::prelude::*;
use witrpc::server::{ProtocolVersion, RateLimit};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

#[derive(Debug, Parser)]
#[command(about = "WitRPC demo server (WitRpc.Demo.IDemoService over WebSocket)")]
struct Args {
    /// http:// URL to listen on; port 0 picks a free port.
    #[arg(long, default_value = "http://127.0.0.1:5000/ws")]
    listen: String,
    /// Maximum number of simultaneous clients.
    #[arg(long, default_value_t = 100)]
    max_clients: usize,
    /// Parameter serializer.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Access token clients must present (default: none).
    #[arg(long)]
    token: Option<String>,
    /// Require message encryption (protocol-3 RSA + AES-256-GCM).
    #[arg(long)]
    encryption: bool,
    /// PEM certificate chain for an https:// --listen URL (clients use wss://).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Browser origin allowed to connect besides the server's own host (repeatable).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Time a connection has to finish the handshake, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// Protocol versions accepted: `auto` (2 and 3 on one endpoint), `2` or `3`.
    #[arg(long, value_enum, default_value = "auto")]
    protocol: Protocol,
    /// Hold each connection to this many messages per second (and 64 MiB/s); one held
    /// for 10 s is closed. Default: no limit.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Join a cluster through this Redis (redis://host:port); without it the node stands alone.
    #[arg(long)]
    redis: Option<String>,
    /// This node's id in the cluster (default: random).
    #[arg(long)]
    node_id: Option<String>,
    /// A token `user:<name>` authorizes as user `<name>`; any other token is refused.
    #[arg(long, conflicts_with = "token")]
    user_tokens: bool,
    /// With `--user-tokens`: each token expires this many seconds (fractions allowed)
    /// after it was accepted; clients must refresh it in-band or are closed.
    #[arg(long, requires = "user_tokens")]
    token_ttl: Option<f64>,
    /// How long past its token's expiry a connection stays open, in seconds (default 2).
    #[arg(long)]
    token_grace: Option<f64>,
    /// Keep this many events of each stream (everyone, a group, a user, a connection)
    /// for 5 minutes, so reconnecting clients that resume get what they missed (all three
    /// demo events); with `--redis` the history is kept in Redis and shared by every node.
    /// Default: no history.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    history: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    /// Both: .NET WitRPC 2.x and 3.x clients.
    Auto,
    /// Protocol 2 only (.NET WitRPC 2.x).
    #[value(name = "2")]
    V2,
    /// Protocol 3 only (.NET WitRPC 3.x).
    #[value(name = "3")]
    V3,
}

/// A production-grade allocator: thousands of connections allocate on one worker thread
/// and free on another, which glibc's malloc serves slowly (the resume benchmark's
/// p99 went from 4.3–6.4 s to 3.3–3.9 s). A library leaves this choice to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let mut builder = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket(&args.listen, args.max_clients);
    builder = match args.format {
        Format::Json => builder.with_json(),
        Format::Msgpack => builder.with_msgpack(),
    };
    if let Some(token) = &args.token {
        builder = builder.with_access_token(token);
    }
    match (args.user_tokens, args.token_ttl) {
        (true, Some(ttl)) => {
            let ttl = std::time::Duration::try_from_secs_f64(ttl)?;
            builder = builder.with_access_token_validator(witrpc_demo::ExpiringUserTokens { ttl });
        }
        (true, None) => builder = builder.with_access_token_validator(witrpc_demo::UserTokens),
        _ => {}
    }
    if let Some(n) = args.history {
        let limits = witrpc::server::HistoryLimits::new(n as usize, std::time::Duration::from_secs(300));
        for event in ["Message", "ProgressChanged", "ProcessingCompleted"] {
            builder = builder.with_event_history(event, limits);
        }
    }
    if let Some(grace) = args.token_grace {
        builder = builder.with_token_expiry_grace(std::time::Duration::try_from_secs_f64(grace)?);
    }
    let node_id = args.node_id.clone().unwrap_or_else(|| {
        let random = witrpc::protocol::Uuid::new_v4().simple().to_string();
        format!("node-{}", &random[..8])
    });
    if let Some(url) = &args.redis {
        let config = witrpc_broker_redis::RedisBrokerConfig::new(url).with_node_id(&node_id);
        let broker = witrpc_broker_redis::RedisBroker::connect(config).await?;
        builder = builder.with_broker(std::sync::Arc::new(broker));
    } else {
        builder = builder.with_broker(std::sync::Arc::new(witrpc::server::broker::InMemoryBroker::new(node_id)));
    }
    if args.encryption {
        builder = builder.with_encryption();
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.with_tls_pem(cert, key);
    }
    if !args.allowed_origins.is_empty() {
        builder = builder.with_allowed_origins(args.allowed_origins.iter().cloned());
    }
    builder = builder.with_handshake_timeout(std::time::Duration::from_millis(args.handshake_timeout_ms));
    if let Some(rate) = args.rate_limit {
        builder = builder.with_rate_limit(RateLimit::new(rate, 64 * 1024 * 1024));
    }
    builder = match args.protocol {
        Protocol::Auto => builder,
        Protocol::V2 => builder.with_protocol_versions([ProtocolVersion::V2]),
        Protocol::V3 => builder.with_protocol_versions([ProtocolVersion::V3]),
    };
    let server = builder.build()?;
    server.start_waiting_for_connection().await?;
    let url = server.client_url().ok_or_else(|| anyhow::anyhow!("server did not report its URL"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {url}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c().await?;
    tracing::info!("Ctrl-C received; stopping");
    server.stop_waiting_for_connection().await;
    Ok(())
}
