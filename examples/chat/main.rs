//! A chat in the browser: rooms are server groups, users come from access tokens.
//!
//! ```text
//! cargo run --example chat                          # then open http://127.0.0.1:3001/
//! cargo run --example chat -- --listen 127.0.0.1:0  # any free port
//! ```
//!
//! The server hosts `WitRpc.Chat.IChatService` (`service.rs`) at `ws://HOST:PORT/ws` and
//! serves the page from `examples/chat/web/` (built ahead with `npm run build` there and
//! committed) at `http://HOST:PORT/`. A visitor logs in with a name: the page connects with
//! the token `user:<name>`, which is the only kind of token the server accepts. Messages,
//! joins and leaves reach the members of their room only.
//!
//! When ready it prints `listening on http://HOST:PORT` on stdout; logs go to stderr.

mod service;
#[cfg(test)]
mod tests;

use std::io::Write as _;

use bytes::Bytes;
use clap::Parser;
use witrpc::prelude::*;
use witrpc::server::http::{Method, Response, StatusCode, header};

use crate::service::{Chat, ChatTokens};

#[derive(Debug, Parser)]
#[command(about = "WitRPC chat: page at http://HOST:PORT/, endpoint at ws://HOST:PORT/ws")]
struct Args {
    /// Address to listen on, `host:port` (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: String,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 100)]
    max_clients: usize,
}

/// The built page, compiled into the binary.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("web/index.html")),
    ("/index.html", "text/html; charset=utf-8", include_bytes!("web/index.html")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("web/style.css")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("web/dist/app.js")),
];

/// Serves the page's files; `None` (404) for any other path.
fn static_file(request: &witrpc::server::http::request::Parts) -> Option<Response<Bytes>> {
    if request.method != Method::GET && request.method != Method::HEAD {
        return Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).body(Bytes::new()).ok();
    }
    let (_, content_type, body) = FILES.iter().find(|(path, _, _)| *path == request.uri.path())?;
    Response::builder()
        .header(header::CONTENT_TYPE, *content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .body(Bytes::from_static(body))
        .ok()
}

/// The chat server on `listen` (`host:port`), not started yet.
fn build(listen: &str, max_clients: usize) -> Result<WitServer, ServerError> {
    WitServerBuilder::new()
        .with_service(Chat::server())
        .with_websocket(format!("http://{listen}/ws"), max_clients)
        .with_http_handler(static_file)
        .with_access_token_validator(ChatTokens)
        .build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let server = build(&args.listen, args.max_clients)?;
    server.start_waiting_for_connection().await?;
    let addr = server.local_addr().ok_or_else(|| anyhow::anyhow!("server did not report its address"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c().await?;
    tracing::info!("Ctrl-C received; stopping");
    server.stop_waiting_for_connection().await;
    Ok(())
}
