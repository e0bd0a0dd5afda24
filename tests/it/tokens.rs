//! Token lifetime end to end: a validator's expiry, in-band refresh while events flow,
//! the close of a connection that does not refresh, and `revoke_user` (one node here;
//! across a Redis cluster at the bottom).
//!
//! Lifetimes are short (a second) and the tests wait on signals (a provider call
//! count, a close), never for a time; what they assert is what a user sees: a close
//! reason, an event count, a call's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use witrpc::prelude::*;
use witrpc::protocol::{
    MessageType, WitRequestAuthorization, WitRequestInitialization, WitResponseAuthorization, WitResponseInitialization,
};
use witrpc::server::async_trait;
use witrpc::{Authorization, CallContext, Identity};
use witrpc_demo::{Demo, DemoServiceClient, DemoServiceEvents, DemoServiceServer};

use crate::cluster::Redis;
use crate::util::{RawPeer, init_tracing, within};

/// Tokens `user:<name>` or `user:<name>#<n>` authorize as `<name>` for `ttl`.
#[derive(Debug)]
struct Expiring {
    ttl: Duration,
}

fn user_of(token: &str) -> Option<&str> {
    let name = token.strip_prefix("user:")?;
    let name = name.split_once('#').map_or(name, |(name, _)| name);
    (!name.is_empty()).then_some(name)
}

#[async_trait]
impl witrpc::AccessTokenValidator for Expiring {
    async fn validate(&self, token: &str) -> bool {
        user_of(token).is_some()
    }

    async fn authorize(&self, token: &str, _connection: &CallContext) -> Authorization {
        match user_of(token) {
            Some(name) => Authorization::AllowUntil {
                identity: Some(Identity::new(name)),
                expires_at: SystemTime::now() + self.ttl,
            },
            None => Authorization::Deny,
        }
    }
}

struct Node {
    server: WitServer,
    url: String,
    events: DemoServiceEvents,
}

impl Node {
    async fn start(ttl: Duration, grace: Duration, broker: Option<witrpc_broker_redis::RedisBroker>) -> Self {
        init_tracing();
        let events = DemoServiceEvents::new();
        let service = DemoServiceServer::new(Demo::new(events.clone())).with_events(&events);
        let mut builder = WitServerBuilder::new()
            .with_service(service)
            .with_websocket("http://127.0.0.1:0/ws", 100)
            .with_access_token_validator(Expiring { ttl })
            .with_token_expiry_grace(grace);
        if let Some(b) = broker {
            builder = builder.with_broker(Arc::new(b));
        }
        let server = builder.build().expect("valid server");
        within("server start", server.start_waiting_for_connection()).await.expect("server starts");
        let url = server.client_url().expect("running server has a URL");
        Self { server, url, events }
    }

    async fn client(&self, token: &str) -> WitClient {
        let builder = WitClientBuilder::new().with_websocket(&self.url).with_access_token(token);
        within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
    }
}

/// A provider handing out `user:<name>#<n>`, counting its calls.
fn counting_provider(
    name: &'static str,
    calls: Arc<AtomicUsize>,
) -> impl Fn() -> std::future::Ready<Result<String, std::io::Error>> + Send + Sync + 'static {
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(format!("user:{name}#{n}")))
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refreshes_in_band_while_events_flow_and_loses_none() {
    // Tokens live 1 s and are honoured 300 ms past that: without refreshes the
    // connection would be closed at 1.3 s; it lives through several lifetimes.
    let node = Node::start(Duration::from_secs(1), Duration::from_millis(300), None).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let builder =
        WitClientBuilder::new().with_websocket(&node.url).with_token_provider(counting_provider("ann", calls.clone()));
    let client = within("connect", builder.connect(Duration::from_secs(10))).await.expect("client connects");
    let demo = DemoServiceClient::new(client.clone());
    let mut messages = demo.message();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let emitter = {
        let (events, stop) = (node.events.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(Ordering::SeqCst) {
                events.message(format!("{sent}")).expect("emit");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            events.message("end".into()).expect("emit");
            sent
        })
    };
    // Four refreshes: well past the first token's expiry plus grace.
    wait_until("four refreshes", || calls.load(Ordering::SeqCst) >= 5).await;
    assert!(client.is_connected(), "refreshing must not drop the connection: {:?}", client.close_reason());
    assert_eq!(within("call with the refreshed token", demo.who_am_i()).await.expect("call succeeds"), "ann");
    stop.store(true, Ordering::SeqCst);
    let sent = within("emitter", emitter).await.expect("emitter task");

    let mut received = 0u32;
    loop {
        let text = within("event", messages.next()).await.expect("stream open (no reconnect)").expect("an event");
        if text == "end" {
            break;
        }
        assert_eq!(text, received.to_string(), "events arrive in order, none missing");
        received += 1;
    }
    assert_eq!(received, sent, "every event raised during the refreshes arrived");
    assert_eq!(node.server.accepted_connections(), 1, "no reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_refresh_is_closed_after_expiry_with_the_reason() {
    let node = Node::start(Duration::from_millis(500), Duration::from_millis(200), None).await;
    let client = node.client("user:bob").await;
    within("expiry close", client.closed()).await;
    let reason = client.close_reason().unwrap_or_default();
    assert!(reason.contains("access token expired"), "{reason}");

    // A .NET-shaped peer (no extension) is closed the same way, with 1008.
    let mut raw = RawPeer::connect(&node.url).await;
    raw.handshake("user:carol").await;
    let close = raw.expect_close().await.expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (1008, "access token expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_for_another_identity_is_refused_and_closes_with_a_typed_error() {
    let node = Node::start(Duration::from_secs(1), Duration::from_secs(5), None).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // With reconnecting on: a refused refresh still closes the client for good (it does
    // not reconnect with the provider's other identity).
    let builder = WitClientBuilder::new()
        .with_websocket(&node.url)
        .with_reconnect(witrpc::ReconnectPolicy::default())
        .with_token_provider(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<_, std::io::Error>(if n == 0 { "user:ann".into() } else { "user:mallory".into() }))
        });
    let client = within("connect", builder.connect(Duration::from_secs(10))).await.expect("client connects");
    let demo = DemoServiceClient::new(client.clone());
    within("refused refresh closes the client for good", client.closed()).await;
    assert!(calls.load(Ordering::SeqCst) >= 2, "the provider was asked for a refresh");
    let error = within("call", demo.who_am_i()).await.expect_err("closed");
    assert!(matches!(error, ClientError::TokenRefreshRefused), "{error:?}");
    assert_eq!(node.server.accepted_connections(), 1, "no reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotnet_shaped_client_gets_todays_bytes_and_an_announcing_one_its_expiry() {
    let node = Node::start(Duration::from_secs(60), Duration::from_secs(2), None).await;
    let mut plain = RawPeer::connect(&node.url).await;
    plain.send(MessageType::Initialization, Some(WitRequestInitialization::plain().encode())).await;
    let reply = plain.recv_message().await;
    assert_eq!(reply.data.as_deref(), Some(&WitResponseInitialization::plain().encode()[..]));
    let auth = WitRequestAuthorization { token: Some("user:dan".into()) }.encode();
    plain.send(MessageType::Authorization, Some(auth.clone())).await;
    let reply = plain.recv_message().await;
    assert_eq!(reply.data.as_deref(), Some(&WitResponseAuthorization::new(true).encode()[..]));

    let mut ours = RawPeer::connect(&node.url).await;
    let init = WitRequestInitialization::plain().encode_with_extensions(Some("witrpc/1 token-refresh"));
    ours.send(MessageType::Initialization, Some(init)).await;
    let reply = ours.recv_message().await;
    let (_, extensions) =
        WitResponseInitialization::decode_with_extensions(reply.data.expect("data")).expect("decodes");
    assert_eq!(extensions.as_deref(), Some("witrpc/1 token-refresh"));
    ours.send(MessageType::Authorization, Some(auth)).await;
    let reply = ours.recv_message().await;
    let (answer, expires_at) =
        WitResponseAuthorization::decode_with_expiry(reply.data.expect("data")).expect("decodes");
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    assert!(answer.is_authorized);
    let expires_at = expires_at.expect("an expiry for a negotiated client");
    assert!(expires_at > now_ms && expires_at <= now_ms + 60_000, "{expires_at} vs now {now_ms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_closes_its_connections_and_no_one_elses() {
    let node = Node::start(Duration::from_secs(600), Duration::from_secs(2), None).await;
    let ann = [node.client("user:ann").await, node.client("user:ann#2").await];
    let bob = DemoServiceClient::new(node.client("user:bob").await);
    let closed = within("revoke", node.server.revoker().revoke_user("ann")).await.expect("single node: no backplane");
    assert_eq!(closed, 2);
    for client in &ann {
        within("revoked close", client.closed()).await;
        let reason = client.close_reason().unwrap_or_default();
        assert!(reason.contains("access revoked"), "{reason}");
    }
    assert_eq!(within("bob still served", bob.who_am_i()).await.expect("bob's connection stays open"), "bob");
    assert_eq!(within("nobody", node.server.revoke_user("nobody")).await.expect("revoke"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_closes_its_connections_on_every_node_of_a_redis_cluster() {
    let redis = Redis::start().await;
    let mut nodes = Vec::new();
    for id in ["revoke-a", "revoke-b", "revoke-c"] {
        let broker = crate::cluster::broker(crate::cluster::broker_config(redis.url(), id)).await;
        nodes.push(Node::start(Duration::from_secs(600), Duration::from_secs(2), Some(broker)).await);
    }
    let mut ann = Vec::new();
    for node in &nodes {
        ann.push(node.client("user:ann").await);
    }
    let bob: Vec<_> = futures_util::future::join_all(nodes.iter().map(|n| n.client("user:bob")))
        .await
        .into_iter()
        .map(DemoServiceClient::new)
        .collect();
    // Every node must know ann is connected (presence) before revoking: only then are
    // all three connections authorized and subscribed.
    within("presence", async {
        while nodes[0].server.user_connections("ann").await.map_or(0, |m| m.len()) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let closed_here = within("revoke", nodes[0].server.revoke_user("ann")).await.expect("published");
    assert_eq!(closed_here, 1, "one of ann's connections is on the revoking node");
    for (i, client) in ann.iter().enumerate() {
        within("revoked close on every node", client.closed()).await;
        let reason = client.close_reason().unwrap_or_default();
        assert!(reason.contains("access revoked"), "node {i}: {reason}");
    }
    for (i, bob) in bob.iter().enumerate() {
        assert_eq!(within("bob still served", bob.who_am_i()).await.expect("bob stays connected"), "bob", "node {i}");
    }
}
