//! The demo client: calls every method of `WitRpc.Demo.IDemoService`, prints the
//! results and the events it receives, then measures calls per second.
//!
//! ```text
//! cargo run --example demo_server            # in one terminal
//! cargo run --example demo_client            # in another
//! cargo run --example demo_client -- --url ws://127.0.0.1:5000/ws --format msgpack --token AuthToken123
//! cargo run --example demo_client -- --encryption
//! cargo run --example demo_client -- --protocol 2   # speak .NET WitRPC 2.x's protocol
//! cargo run --example demo_client -- --url wss://127.0.0.1:5443/ws --ca ca.pem
//! cargo run --example demo_client -- --watch-events   # print every event as a JSON line, forever
//! ```
//!
//! Exits with a non-zero status if any answer is not what the contract promises.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use futures_util::{StreamExt, stream};
use witrpc::client::ProtocolVersion;
use witrpc::prelude::*;
use witrpc::protocol::CommunicationStatus;
use witrpc::{EventError, ReconnectPolicy};
use witrpc_demo::DemoServiceClient;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

#[derive(Debug, Parser)]
#[command(about = "WitRPC demo client (calls WitRpc.Demo.IDemoService)")]
struct Args {
    /// ws:// URL of the demo server.
    #[arg(long, default_value = "ws://127.0.0.1:5000/ws")]
    url: String,
    /// Parameter serializer (must match the server's).
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Access token.
    #[arg(long)]
    token: Option<String>,
    /// Encrypt every message (the server must use --encryption too).
    #[arg(long)]
    encryption: bool,
    /// For wss:// URLs: trust this PEM CA certificate instead of the platform roots.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Number of `Add` calls in the throughput run.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Calls in flight at once during the throughput run.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Protocol version to speak: `3` (default) or `2` (.NET WitRPC 2.x servers).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    protocol: u8,
    /// Call nothing: print every event received as one JSON line (name, arguments, and
    /// stream/epoch/offset when the server keeps history), reconnecting and resuming
    /// after a connection loss, until Ctrl-C.
    #[arg(long)]
    watch_events: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    let protocol = if args.protocol == 2 { ProtocolVersion::V2 } else { ProtocolVersion::V3 };
    let mut builder = WitClientBuilder::new().with_websocket(&args.url).with_protocol(protocol);
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
    if let Some(ca) = &args.ca {
        builder = builder.with_tls_root_ca_pem(ca);
    }
    if args.watch_events {
        builder = builder.with_reconnect(ReconnectPolicy::new(Duration::from_millis(100), Duration::from_secs(5)));
        let client =
            builder.connect(Duration::from_secs(5)).await.with_context(|| format!("connecting to {}", args.url))?;
        return watch_events(&client, matches!(args.format, Format::Json)).await;
    }
    let client =
        builder.connect(Duration::from_secs(5)).await.with_context(|| format!("connecting to {}", args.url))?;
    let demo = DemoServiceClient::new(client.clone());
    println!("connected to {}", args.url);

    let sum = demo.add(2, 3).await?;
    println!("Add(2, 3) = {sum}");
    ensure!(sum == 5, "Add returned {sum}");

    let echo = demo.echo("hello, WitRPC".to_owned()).await?;
    println!("Echo = {echo:?}");
    ensure!(echo == "hello, WitRPC");

    let bytes = demo.echo_bytes(vec![0, 1, 2, 254, 255]).await?;
    println!("EchoBytes = {bytes:?}");
    ensure!(bytes == [0, 1, 2, 254, 255]);

    match demo.fail("something broke".to_owned()).await {
        Err(ClientError::Remote { status, details, .. }) => {
            println!("Fail -> status {}, details {details:?}", status.to_i32());
            ensure!(
                status == CommunicationStatus::InternalServerError && details.as_deref() == Some("something broke")
            );
        }
        other => bail!("Fail should fail with status 500, got {other:?}"),
    }

    let started = Instant::now();
    let slept = demo.delay(50).await?;
    println!("Delay(50) = {slept} after {:?}", started.elapsed());
    ensure!(slept == 50);

    let mut progress = demo.progress_changed();
    let mut completed = demo.processing_completed();
    let mut messages = demo.message();
    ensure!(demo.start_processing(4).await?, "StartProcessing(4) returned false");
    for _ in 0..4 {
        let p = tokio::time::timeout(Duration::from_secs(5), progress.next()).await?.context("stream ended")??;
        println!("event ProgressChanged({p})");
    }
    let steps = tokio::time::timeout(Duration::from_secs(5), completed.next()).await?.context("stream ended")??;
    println!("event ProcessingCompleted({steps})");
    ensure!(steps == 4);

    demo.broadcast("hi everyone".to_owned()).await?;
    let text = tokio::time::timeout(Duration::from_secs(5), messages.next()).await?.context("stream ended")??;
    println!("event Message({text:?})");
    ensure!(text == "hi everyone");

    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..args.calls)
        .map(|i| {
            let demo = demo.clone();
            async move { demo.add(i as i32, 1).await.map(|r| (i, r)) }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    for r in results {
        let (i, sum) = r?;
        ensure!(sum == i as i32 + 1, "Add({i}, 1) returned {sum}");
    }
    println!(
        "{} Add calls, {} in flight: {:.0} calls/s ({:?})",
        args.calls,
        args.concurrency,
        args.calls as f64 / elapsed.as_secs_f64(),
        elapsed
    );
    client.disconnect().await;
    Ok(())
}

/// `--watch-events`: one JSON line per event (and per reconnect marker) on stdout.
async fn watch_events(client: &WitClient, json: bool) -> anyhow::Result<()> {
    use serde_json::{Value, json};
    let descriptor = DemoServiceClient::<WitClient>::descriptor();
    let streams = descriptor
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| client.subscribe_raw(descriptor, i).positioned().map(move |item| (e.name, item)));
    let mut all = stream::select_all(streams);
    println!("{}", json!({ "watching": descriptor.events.iter().map(|e| e.name).collect::<Vec<_>>() }));
    loop {
        let next = tokio::select! {
            next = all.next() => next,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some((event, item)) = next else { break };
        let line = match item {
            Ok(e) => {
                // JSON arguments print as themselves; anything else as its bytes.
                let args: Vec<Value> = e
                    .parameters
                    .iter()
                    .map(|p| {
                        json.then(|| serde_json::from_slice(p).ok()).flatten().unwrap_or_else(|| json!(p.to_vec()))
                    })
                    .collect();
                let mut line = json!({ "event": event, "args": args });
                if let Some(p) = e.position {
                    line["stream"] = json!(p.stream);
                    line["epoch"] = json!(p.epoch);
                    line["offset"] = json!(p.offset);
                }
                line
            }
            Err(EventError::Resumed { recovered }) => {
                json!({ "event": event, "resumed": true, "recovered": recovered })
            }
            Err(EventError::Reconnected) => json!({ "event": event, "reconnected": true }),
            Err(EventError::Lagged { missed }) => json!({ "event": event, "lagged": missed }),
            Err(other) => json!({ "event": event, "error": other.to_string() }),
        };
        println!("{line}");
    }
    client.disconnect().await;
    Ok(())
}
