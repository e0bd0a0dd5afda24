//! witrpc mounted in an axum app: one port serves a page (`GET /`), a JSON health check
//! (`GET /api/health`) and the demo service (`WitRpc.Demo.IDemoService`, the one
//! `demo_server` hosts) at `/ws`, behind the app's own middleware.
//!
//! ```text
//! cargo run --example axum_app
//! cargo run --example axum_app -- --listen 127.0.0.1:0
//! cargo run --example demo_client -- --url ws://127.0.0.1:3000/ws
//! ```
//!
//! When ready it prints exactly one line to stdout, `listening on http://HOST:PORT`, with
//! the real port; logs go to stderr (`RUST_LOG=debug` for more). Ctrl-C drains the witrpc
//! connections (each closes with 1001) and then stops the app.
//!
//! The middleware is a small `from_fn` layer that runs on every request, the WebSocket
//! upgrade included: it numbers the request, puts that number on it as an extension
//! (which the demo's handlers could read with `HttpContextExt::request_extension`) and
//! answers with an `x-request-id` header.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use witrpc::prelude::*;
use witrpc_server_websocket::WebSocketEndpoint;

#[derive(Debug, Parser)]
#[command(about = "An axum app serving a page, a health check and the witrpc demo service on one port")]
struct Args {
    /// host:port to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Maximum number of simultaneous witrpc clients.
    #[arg(long, default_value_t = 100)]
    max_clients: usize,
}

/// The number the middleware gives each request (an extension on the request).
#[derive(Debug, Clone, Copy)]
struct RequestId(u64);

const PAGE: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>witrpc in axum</title></head>
<body>
<h1>witrpc in axum</h1>
<p>This page, <a href=\"/api/health\">/api/health</a> and the WitRPC endpoint
<code>ws://this-host/ws</code> (<code>WitRpc.Demo.IDemoService</code>) share one port.</p>
</body></html>
";

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(server): State<Arc<WitServer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "connections": server.connection_count() }))
}

/// Numbers every request, upgrades to `/ws` included.
async fn request_id(mut request: Request, next: Next) -> Response {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = RequestId(NEXT.fetch_add(1, Ordering::Relaxed));
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    response.headers_mut().insert("x-request-id", id.0.into());
    response
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();

    let endpoint = WebSocketEndpoint::new(args.max_clients);
    let server = Arc::new(
        WitServerBuilder::new().with_service(witrpc_demo::Demo::server()).with_transport(endpoint.clone()).build()?,
    );
    server.start_waiting_for_connection().await?;

    let app = Router::new()
        .route("/", get(page))
        .route("/api/health", get(health))
        .route_service("/ws", endpoint)
        .layer(middleware::from_fn(request_id))
        .with_state(server.clone());

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);

    let drain = server.clone();
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C; stopping");
            }
            tracing::info!("Ctrl-C received; draining witrpc connections");
            // hyper no longer tracks upgraded connections: drain witrpc's here.
            drain.shutdown(Duration::from_secs(5)).await;
        })
        .await?;
    Ok(())
}
