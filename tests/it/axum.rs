//! witrpc mounted in an axum app (`WebSocketEndpoint`): the `axum_app` example end to
//! end, and in-process apps for what its middleware hands to witrpc, max clients,
//! plain requests on the route, graceful shutdown and requests the app refuses.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use witrpc::prelude::*;
use witrpc::server::Authorization;
use witrpc::{CallContext, Identity};
use witrpc_demo::DemoServiceClient;
use witrpc_server_websocket::{HttpContextExt, WebSocketEndpoint, WebSocketLimits};

use crate::util::{RawPeer, example_path, http_status, init_tracing, within};

/// A whole HTTP/1.1 answer: status, lower-cased head, body.
struct HttpAnswer {
    status: u16,
    head: String,
    body: String,
}

/// `GET path` with `Connection: close`, read to the end.
async fn http_get(addr: SocketAddr, path: &str) -> HttpAnswer {
    let mut tcp = within("tcp connect", TcpStream::connect(addr)).await.expect("tcp connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    within("http write", tcp.write_all(request.as_bytes())).await.expect("write");
    let mut raw = Vec::new();
    within("http read", tcp.read_to_end(&mut raw)).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    HttpAnswer { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

/// A WebSocket upgrade request for `path` (the status line of the answer is what counts).
fn upgrade_request(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

// ---------------------------------------------------------------- the example process

struct AxumApp {
    /// Taken by a test that waits for the process to exit.
    child: Option<Child>,
    addr: SocketAddr,
}

impl Drop for AxumApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn spawn_example() -> AxumApp {
    let path = example_path("axum_app", "WITRPC_AXUM_APP");
    let (child, line, _) = crate::util::spawn_example(&path, &["--listen", "127.0.0.1:0"]).await;
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    AxumApp { child: Some(child), addr }
}

async fn health_connections(addr: SocketAddr) -> u64 {
    let health = http_get(addr, "/api/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.head.contains("content-type: application/json"), "{}", health.head);
    let json: serde_json::Value = serde_json::from_str(&health.body).expect("health is JSON");
    assert_eq!(json["status"], "ok", "{json}");
    json["connections"].as_u64().unwrap_or_else(|| panic!("no connection count in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_app_example_serves_page_health_and_the_demo_service_on_one_port() {
    let mut app = spawn_example().await;
    assert_ne!(app.addr.port(), 0, "the ready line names the real port");

    let page = http_get(app.addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"), "{}", page.head);
    assert!(page.body.contains("<h1>witrpc in axum</h1>"), "{}", page.body);
    assert!(page.head.contains("x-request-id:"), "the app's middleware ran: {}", page.head);
    assert_eq!(health_connections(app.addr).await, 0);

    let url = format!("ws://{}/ws", app.addr);
    let client = within("connect", WitClientBuilder::new().with_websocket(&url).connect(Duration::from_secs(10)))
        .await
        .expect("the Rust client connects to the mounted endpoint");
    let demo = DemoServiceClient::new(client.clone());
    assert_eq!(within("add", demo.add(2, 3)).await.expect("add"), 5);
    let mut messages = demo.message();
    within("broadcast", demo.broadcast("hello from axum".to_owned())).await.expect("broadcast");
    let event = within("message event", messages.next()).await.expect("an event").expect("the event decodes");
    assert_eq!(event, "hello from axum");
    assert_eq!(health_connections(app.addr).await, 1, "the health check counts the witrpc connection");

    // Ctrl-C: the app's graceful shutdown drains witrpc (1001) and the process exits 0.
    #[cfg(unix)]
    {
        let mut child = app.child.take().expect("the example is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
        assert!(sent.success(), "SIGINT sent");
        within("close after Ctrl-C", client.closed()).await;
        let reason = client.close_reason().unwrap_or_default();
        assert!(reason.contains("1001") && reason.contains("shutting down"), "{reason}");
        let exited = tokio::task::spawn_blocking(move || child.wait());
        let status = match tokio::time::timeout(crate::util::LIMIT, exited).await {
            Ok(status) => status.expect("wait task").expect("wait for axum_app"),
            Err(_) => {
                // Not left running (nor the blocking wait hanging the test binary).
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("axum_app did not exit within {:?} of Ctrl-C", crate::util::LIMIT);
            }
        };
        assert!(status.success(), "axum_app exited with {status} after Ctrl-C");
    }
}

// ---------------------------------------------------------------- in-process apps

/// Who the app's authentication layer says is calling.
#[derive(Debug, Clone)]
struct User(String);

/// The app's authentication: `?user=NAME` on the URL (browsers cannot set headers on a
/// WebSocket), else 401. It also adds a header, to show headers as the layers left them.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let user = request.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("user=")));
    let Some(user) = user.filter(|u| !u.is_empty()).map(str::to_owned) else {
        return (StatusCode::UNAUTHORIZED, "who are you?\n").into_response();
    };
    if let Ok(value) = user.parse() {
        request.headers_mut().insert("x-app-user", value);
    }
    request.extensions_mut().insert(User(user));
    next.run(request).await
}

/// Names the connection after the app's `User` extension; refuses connections without.
#[derive(Debug, Default)]
struct UserFromApp {
    calls: AtomicUsize,
}

#[witrpc::server::async_trait]
impl witrpc::server::AccessTokenValidator for UserFromApp {
    async fn validate(&self, _token: &str) -> bool {
        false
    }

    async fn authorize(&self, _token: &str, connection: &CallContext) -> Authorization {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match connection.request_extension::<User>() {
            Some(user) => Authorization::Allow(Some(Identity::new(format!("validator saw {}", user.0)))),
            None => Authorization::Deny,
        }
    }
}

/// Reports what a handler sees of the upgrade request.
#[witrpc::service(contract = "WitRpc.Tests.IAxumRequest")]
pub(crate) trait AxumRequest {
    async fn describe(&self) -> String;
}

struct AxumRequestService;

impl AxumRequest for AxumRequestService {
    async fn describe(&self) -> String {
        let Some(context) = CallContext::current() else { return "no context".to_owned() };
        let user = context.request_extension::<User>().map_or("none", |u| u.0.as_str()).to_owned();
        let header = context
            .request_headers()
            .and_then(|h| h.get("x-app-user"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let identity = context.identity.as_ref().map_or("none", Identity::name).to_owned();
        format!("user={user} header={header} identity={identity}")
    }
}

/// An axum app with witrpc at `/ws`, behind [`authenticate`], on 127.0.0.1:0.
struct InProcessApp {
    addr: SocketAddr,
    server: Arc<WitServer>,
    validator: Arc<UserFromApp>,
    endpoint: WebSocketEndpoint,
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcessApp {
    async fn start(max_clients: usize) -> Self {
        Self::start_with(WebSocketEndpoint::new(max_clients)).await
    }

    async fn start_with(endpoint: WebSocketEndpoint) -> Self {
        init_tracing();
        let validator = Arc::new(UserFromApp::default());
        let server = WitServerBuilder::new()
            .with_service(witrpc_demo::Demo::server())
            .with_service(AxumRequestServer::new(AxumRequestService))
            .with_access_token_validator(SharedValidator(validator.clone()))
            .with_transport(endpoint.clone())
            .build()
            .expect("valid server");
        let server = Arc::new(server);
        within("server start", server.start_waiting_for_connection()).await.expect("server starts");
        let app = Router::new()
            .route("/", get(|| async { "home" }))
            .route_service("/ws", endpoint.clone())
            .layer(middleware::from_fn(authenticate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let drain = server.clone();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _sent_or_dropped = stopped.await;
                    drain.shutdown(Duration::from_secs(5)).await;
                })
                .await
        });
        Self { addr, server, validator, endpoint, stop: Some(stop), serving }
    }

    fn url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.addr)
    }

    async fn client(&self, user: &str) -> WitClient {
        let builder = WitClientBuilder::new().with_websocket(self.url(user));
        within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
    }
}

/// The validator behind an `Arc`, so the test can read its counter.
#[derive(Debug)]
struct SharedValidator(Arc<UserFromApp>);

#[witrpc::server::async_trait]
impl witrpc::server::AccessTokenValidator for SharedValidator {
    async fn validate(&self, token: &str) -> bool {
        self.0.validate(token).await
    }

    async fn authorize(&self, token: &str, connection: &CallContext) -> Authorization {
        self.0.authorize(token, connection).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_apps_layers_put_on_the_request_reaches_the_validator_and_handlers() {
    let app = InProcessApp::start(10).await;
    let client = app.client("ann").await;
    let described = within("describe", AxumRequestClient::new(client.clone()).describe()).await.expect("call");
    assert_eq!(described, "user=ann header=ann identity=validator saw ann");
    let who = within("who am i", DemoServiceClient::new(client).who_am_i()).await.expect("call");
    assert_eq!(who, "validator saw ann");
    assert_eq!(app.validator.calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_apps_auth_layer_refuses_never_reaches_witrpc() {
    let app = InProcessApp::start(10).await;
    let status = http_status(app.addr, &upgrade_request(app.addr, "/ws")).await;
    assert!(status.contains(" 401 "), "{status}");
    let refused =
        WitClientBuilder::new().with_websocket(format!("ws://{}/ws", app.addr)).connect(Duration::from_secs(10));
    assert!(within("refused connect", refused).await.is_err(), "no user: the client cannot connect");
    assert_eq!(app.validator.calls.load(Ordering::Relaxed), 0, "the validator never ran");
    assert_eq!(app.server.accepted_connections(), 0, "witrpc never saw a connection");
    // The same route with a user is served: the refusal was the layer's.
    let status = http_status(app.addr, &upgrade_request(app.addr, "/ws?user=bob")).await;
    assert!(status.contains(" 101 "), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_on_the_witrpc_route_get_400_at_once() {
    let app = InProcessApp::start(10).await;
    let plain = http_get(app.addr, "/ws?user=ann").await;
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert!(plain.body.contains("WebSocket upgrade requests only"), "{}", plain.body);
    let post = format!("POST /ws?user=ann HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n", app.addr);
    let status = http_status(app.addr, &post).await;
    assert!(status.contains(" 400 "), "{status}");
    // The app's other routes are untouched.
    assert_eq!(http_get(app.addr, "/?user=ann").await.body, "home");
    assert_eq!(app.server.accepted_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_beyond_max_clients_get_503_and_the_slot_frees_on_close() {
    let app = InProcessApp::start(1).await;
    let first = app.client("ann").await;
    let status = http_status(app.addr, &upgrade_request(app.addr, "/ws?user=bob")).await;
    assert!(status.contains(" 503 "), "a full server refuses before the upgrade: {status}");
    let second = WitClientBuilder::new().with_websocket(app.url("bob")).connect(Duration::from_secs(10));
    assert!(within("refused connect", second).await.is_err());
    assert_eq!(app.server.accepted_connections(), 1);

    first.disconnect().await;
    within("slot freed", async {
        while app.server.connection_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let again = app.client("bob").await;
    assert_eq!(within("add", DemoServiceClient::new(again).add(1, 1)).await.expect("add"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_graceful_shutdown_closes_witrpc_connections_with_1001() {
    let mut app = InProcessApp::start(10).await;
    let mut peer = RawPeer::connect(&app.url("ann")).await;
    peer.handshake("").await;
    assert_eq!(app.endpoint.stats().unauthorized(), 0);
    assert!(app.endpoint.is_running());

    app.stop.take().expect("not stopped yet").send(()).expect("the app is serving");
    let frame = within("close frame", peer.expect_close()).await.expect("a close frame, not a reset");
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    assert!(frame.reason.contains("shutting down"), "{frame:?}");
    within("app stops", &mut app.serving).await.expect("serve task").expect("serve ends cleanly");
    assert!(!app.endpoint.is_running(), "the route refuses new upgrades once the server stopped");
    assert_eq!(app.server.connection_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_quotas_apply_to_the_peer_axum_reports() {
    let limits = WebSocketLimits::default().with_max_connections_per_ip(Some(1));
    let app = InProcessApp::start_with(WebSocketEndpoint::new(10).with_limits(limits)).await;
    let _first = app.client("ann").await;
    let status = http_status(app.addr, &upgrade_request(app.addr, "/ws?user=bob")).await;
    assert!(status.contains(" 503 "), "a second connection from 127.0.0.1 is over its quota: {status}");
    assert_eq!(app.endpoint.stats().refused(), 1);
    assert_eq!(app.server.accepted_connections(), 1);
}
