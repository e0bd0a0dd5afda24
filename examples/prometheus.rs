//! The demo server with its metrics exposed in Prometheus text format.
//!
//! ```text
//! cargo run --example prometheus
//! curl http://127.0.0.1:9000/metrics
//! ```
//!
//! witrpc records through the `metrics` facade (see `witrpc::server::metrics` for the
//! names); this example installs the Prometheus recorder and serves its rendering on a
//! second port. It prints `listening on ws://...` and `metrics on http://...`.

use clap::Parser;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use witrpc::prelude::*;

#[derive(Debug, Parser)]
#[command(about = "WitRPC demo server with Prometheus metrics")]
struct Args {
    /// http:// URL of the WitRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:5000/ws")]
    listen: String,
    /// Address of the metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:9000")]
    metrics: String,
}

/// Answers every request with the current metrics (enough for a scraper).
async fn serve_metrics(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
        let body = handle.render();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = tcp.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = tcp.write_all(head.as_bytes()).await;
            let _ = tcp.write_all(body.as_bytes()).await;
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args = Args::parse();
    let handle = PrometheusBuilder::new().install_recorder()?;
    let server =
        WitServerBuilder::new().with_service(witrpc_demo::Demo::server()).with_websocket(&args.listen, 100).build()?;
    server.start_waiting_for_connection().await?;
    let listener = tokio::net::TcpListener::bind(&args.metrics).await?;
    println!("listening on {}", server.client_url().unwrap_or_default());
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(serve_metrics(listener, handle));
    tokio::signal::ctrl_c().await?;
    server.stop_waiting_for_connection().await;
    Ok(())
}
