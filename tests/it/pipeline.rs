//! The reconnect handshake in one round trip: a Rust client that reconnects to a
//! server which negotiated our extensions sends its Authorization (with its resume
//! positions) right behind the Initialization; a first connection, and an encrypted
//! one, wait for the Initialization reply as .NET clients do.
//!
//! A WebSocket proxy between client and server watches each connection: it holds the
//! server's Initialization reply and records whether the client's next message
//! arrived before that reply was let through.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use witrpc::client::ReconnectPolicy;
use witrpc::prelude::*;
use witrpc::server::HistoryLimits;
use witrpc::{EventError, EventStream};
use witrpc_demo::{DemoServiceClient, UserTokens};

use crate::resume::wait_until_empty;
use crate::util::{TestServer, within};

/// How long the watcher holds the Initialization reply waiting for the client's next
/// message. A pipelining client has sent it already; a waiting one never sends it in
/// this time, so this only delays the connections that wait.
const HOLD: Duration = Duration::from_millis(500);

/// A WebSocket proxy that reports, per connection, whether the client's second
/// message came before the server's first answer; [`Watcher::sever`] drops every
/// connection and refuses new ones until [`Watcher::restore`].
struct Watcher {
    url: String,
    pipelined: mpsc::Receiver<bool>,
    generation: watch::Sender<u64>,
}

impl Watcher {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind watcher");
        let url = format!("ws://{}/ws", listener.local_addr().expect("address"));
        let (report, pipelined) = mpsc::channel(16);
        let (generation, _) = watch::channel(0u64);
        let generations = generation.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (target, report) = (target.clone(), report.clone());
                let mut cut = generations.subscribe();
                if *cut.borrow_and_update() % 2 == 1 {
                    continue; // down: dropped before the upgrade
                }
                tokio::spawn(async move {
                    tokio::select! {
                        () = watch_one(tcp, &target, report) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { url, pipelined, generation }
    }

    fn sever(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether the next connection's client pipelined its Authorization.
    async fn next_connection(&mut self) -> bool {
        within("a connection through the watcher", self.pipelined.recv()).await.expect("the watcher runs")
    }
}

async fn watch_one(tcp: tokio::net::TcpStream, target: &str, report: mpsc::Sender<bool>) {
    let Ok(mut client) = tokio_tungstenite::accept_async(tcp).await else { return };
    let Ok((mut server, _)) = tokio_tungstenite::connect_async(target).await else { return };
    // The Initialization, then the server's reply to it, held.
    let Some(Ok(init)) = client.next().await else { return };
    if server.send(init).await.is_err() {
        return;
    }
    let Some(Ok(reply)) = server.next().await else { return };
    let early = tokio::time::timeout(HOLD, client.next()).await.ok().flatten().and_then(Result::ok);
    let _ = report.send(early.is_some()).await;
    if let Some(early) = early
        && server.send(early).await.is_err()
    {
        return;
    }
    if client.send(reply).await.is_err() {
        return;
    }
    // Then everything, both ways.
    let (mut client_tx, mut client_rx) = client.split();
    let (mut server_tx, mut server_rx) = server.split();
    let up = async {
        while let Some(Ok(m)) = client_rx.next().await {
            if server_tx.send(m).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        while let Some(Ok(m)) = server_rx.next().await {
            if client_tx.send(m).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn client(url: &str, configure: impl FnOnce(WebSocketClientBuilder) -> WebSocketClientBuilder) -> WitClient {
    let builder = configure(WitClientBuilder::new().with_websocket(url).with_access_token("user:ann"))
        .with_reconnect(ReconnectPolicy::new(Duration::from_millis(20), Duration::from_millis(100)));
    within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
}

async fn next(messages: &mut EventStream<String>) -> Result<String, EventError> {
    within("the next event", messages.next()).await.expect("the stream goes on")
}

/// Connects `configure`d through a watcher, receives one broadcast, is cut, misses
/// two while its attempts are refused, reconnects: returns whether the first and the second connection pipelined,
/// after checking the resume delivered the two missed broadcasts once, in order.
async fn cut_and_reconnect(
    node: &TestServer,
    configure: fn(WebSocketClientBuilder) -> WebSocketClientBuilder,
) -> (bool, bool) {
    let mut watcher = Watcher::start(node.url.clone()).await;
    let sender = DemoServiceClient::new(node.client(|b| configure(b.with_access_token("user:sam"))).await);
    let ann = client(&watcher.url, configure).await;
    let first = watcher.next_connection().await;
    let demo = DemoServiceClient::new(ann.clone());
    let mut messages = demo.message();
    within("join", demo.join_group("room".into())).await.expect("joined");
    within("broadcast", sender.broadcast("m-0".into())).await.expect("sent");
    assert_eq!(next(&mut messages).await.expect("an event"), "m-0");

    watcher.sever();
    wait_until_empty(&sender, "room").await;
    for text in ["m-1", "m-2"] {
        within("broadcast", sender.broadcast(text.into())).await.expect("sent");
    }
    // Attempts meanwhile fail before any handshake; they change nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.restore();
    let second = watcher.next_connection().await;
    assert!(matches!(next(&mut messages).await, Err(EventError::Resumed { recovered: true })));
    assert_eq!(next(&mut messages).await.expect("an event"), "m-1");
    assert_eq!(next(&mut messages).await.expect("an event"), "m-2");
    within("broadcast", sender.broadcast("m-3".into())).await.expect("sent");
    assert_eq!(next(&mut messages).await.expect("an event"), "m-3", "then live ones, no duplicate");
    (first, second)
}

fn history(b: WebSocketServerBuilder) -> WebSocketServerBuilder {
    b.with_access_token_validator(UserTokens)
        .with_event_history("Message", HistoryLimits::new(100, Duration::from_secs(60)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_sends_its_authorization_with_the_initialization_and_resumes() {
    let node = TestServer::start(history).await;
    let (first, second) = cut_and_reconnect(&node, |b| b).await;
    assert!(!first, "a first connection waits for the Initialization reply");
    assert!(second, "the reconnect to a server that negotiated our extensions pipelines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_reconnect_waits_for_the_keys_and_resumes() {
    let node = TestServer::start(|b| history(b).with_encryption()).await;
    let (first, second) = cut_and_reconnect(&node, |b| b.with_encryption()).await;
    assert!(!first && !second, "the Authorization is sealed with keys from the reply: it must wait");
}
