//! A live dashboard in the browser: the page and the WitRPC endpoint on one port.
//!
//! ```text
//! cargo run --example dashboard                      # http://127.0.0.1:5000/
//! cargo run --example dashboard -- --token secret --encryption --format msgpack
//! cargo run --example dashboard -- --listen http://127.0.0.1:0/ws
//! cargo run --example dashboard -- --console-token console-secret
//! ```
//!
//! The server hosts `WitRpc.Demo.IDashboardService` (`src/dashboard.rs`) at `ws://HOST:PORT/ws`
//! and serves the page from `examples/dashboard/web/` (built ahead with `npm run build`
//! there and committed) at `http://HOST:PORT/`. It raises `Metrics` (its own figures) ten
//! times a second, and mounts its live console at `http://HOST:PORT/console/` (guarded by
//! `--console-token` when given), which the page shows beside the job demo. The page
//! connects on load when no access token is needed (`/settings.json` says so).
//! When ready it prints `dashboard at http://HOST:PORT/` and then
//! `listening on ws://HOST:PORT/ws` on stdout; logs go to stderr.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use witrpc::prelude::*;
use witrpc::server::SlowConsumerPolicy;
use witrpc::server::console::ConsoleOptions;
use witrpc::server::http::{Method, Response, StatusCode, header};
use witrpc_demo::dashboard::{Dashboard, DashboardServiceEvents, DashboardServiceServer};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

#[derive(Debug, Parser)]
#[command(about = "WitRPC live dashboard: page at http://HOST:PORT/, endpoint at ws://HOST:PORT/ws")]
struct Args {
    /// http:// URL of the WebSocket endpoint; the page is served from the same host and port.
    #[arg(long, default_value = "http://127.0.0.1:5000/ws")]
    listen: String,
    /// Parameter serializer.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Access token the page must enter (default: none).
    #[arg(long)]
    token: Option<String>,
    /// Require message encryption (the page uses WebCrypto).
    #[arg(long)]
    encryption: bool,
    /// Token of the live console at `/console/` (default: none, the console is open;
    /// give one on anything but localhost). Not the access token.
    #[arg(long)]
    console_token: Option<String>,
}

/// The built page, compiled into the binary.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("web/index.html")),
    ("/index.html", "text/html; charset=utf-8", include_bytes!("web/index.html")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("web/style.css")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("web/dist/app.js")),
];

fn static_file(request: &witrpc::server::http::request::Parts, settings: &Bytes) -> Option<Response<Bytes>> {
    if request.method != Method::GET && request.method != Method::HEAD {
        return Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).body(Bytes::new()).ok();
    }
    if request.uri.path() == "/settings.json" {
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(settings.clone())
            .ok();
    }
    let (_, content_type, body) = FILES.iter().find(|(path, _, _)| *path == request.uri.path())?;
    Response::builder()
        .header(header::CONTENT_TYPE, *content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .body(Bytes::from_static(body))
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let format = match args.format {
        Format::Json => "json",
        Format::Msgpack => "msgpack",
    };
    let events = DashboardServiceEvents::new();
    let dashboard = Dashboard::new(events.clone(), format, args.encryption);
    // What the page needs to know before it connects (no secrets: whether a token is needed).
    let settings = Bytes::from(format!(
        r#"{{"token_required":{},"format":"{format}","encryption":{},"console_token_required":{}}}"#,
        args.token.is_some(),
        args.encryption,
        args.console_token.is_some(),
    ));
    let console = match &args.console_token {
        Some(token) => ConsoleOptions::new(token),
        None => ConsoleOptions::without_token(),
    };
    let mut builder = WitServerBuilder::new()
        .with_service(DashboardServiceServer::new(dashboard.clone()).with_events(&events))
        .with_websocket(&args.listen, 100)
        .with_http_handler(move |request| static_file(request, &settings))
        .with_console("/console", console)
        // A wall screen wants the newest figure, not a backlog.
        .with_event_policy("Metrics", SlowConsumerPolicy::CoalesceLatest);
    builder = match args.format {
        Format::Json => builder.with_json(),
        Format::Msgpack => builder.with_msgpack(),
    };
    if let Some(token) = &args.token {
        builder = builder.with_access_token(token);
    }
    if args.encryption {
        builder = builder.with_encryption();
    }
    let stats = builder.stats();
    let server = builder.build()?;
    server.start_waiting_for_connection().await?;
    dashboard.run_metrics(Duration::from_millis(100), stats);
    let url = server.client_url().ok_or_else(|| anyhow::anyhow!("server did not report its URL"))?;
    let page = url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1);
    let page = page.strip_suffix("ws").unwrap_or(&page).to_owned();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "dashboard at {page}")?;
    writeln!(stdout, "listening on {url}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c().await?;
    tracing::info!("Ctrl-C received; stopping");
    server.stop_waiting_for_connection().await;
    Ok(())
}
