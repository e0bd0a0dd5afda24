//! Shared helpers: a demo server on a free port, clients, and a raw protocol peer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use witrpc::prelude::*;
use witrpc::protocol::{
    MessageType, Uuid, WitMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse,
    WitResponseAuthorization, WitResponseInitialization,
};

/// Upper bound for any single await in these tests.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test instead of hanging.
pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    within_limit(LIMIT, what, f).await
}

/// [`within`] with another bound, for the few waits that do a lot of work (a hang guard
/// sized for a loaded machine, not a timing assertion).
pub(crate) async fn within_limit<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .try_init();
}

/// A running demo server.
pub(crate) struct TestServer {
    pub(crate) server: WitServer,
    pub(crate) url: String,
}

impl TestServer {
    /// The demo service on `ws://127.0.0.1:<free port>/ws`, with `configure` applied.
    pub(crate) async fn start(configure: impl FnOnce(WebSocketServerBuilder) -> WebSocketServerBuilder) -> Self {
        Self::start_with_max(100, configure).await
    }

    pub(crate) async fn start_with_max(
        max_clients: usize,
        configure: impl FnOnce(WebSocketServerBuilder) -> WebSocketServerBuilder,
    ) -> Self {
        init_tracing();
        let builder = WitServerBuilder::new()
            .with_service(witrpc_demo::Demo::server())
            .with_websocket("http://127.0.0.1:0/ws", max_clients);
        let server = configure(builder).build().expect("valid server configuration");
        within("server start", server.start_waiting_for_connection()).await.expect("server starts");
        let url = server.client_url().expect("running server has a URL");
        Self { server, url }
    }

    /// A connected client with `configure` applied.
    pub(crate) async fn client(
        &self,
        configure: impl FnOnce(WebSocketClientBuilder) -> WebSocketClientBuilder,
    ) -> WitClient {
        let builder = configure(WitClientBuilder::new().with_websocket(&self.url));
        within("client connect", builder.connect(Duration::from_secs(10))).await.expect("client connects")
    }

    /// Tries to connect; returns the result.
    pub(crate) async fn try_client(
        &self,
        configure: impl FnOnce(WebSocketClientBuilder) -> WebSocketClientBuilder,
    ) -> Result<WitClient, ClientError> {
        let builder = configure(WitClientBuilder::new().with_websocket(&self.url));
        within("client connect", builder.connect(Duration::from_secs(10))).await
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a raw peer read.
#[derive(Debug)]
pub(crate) enum Received {
    Message(WitMessage),
    Close(Option<CloseFrame>),
}

/// A hand-driven protocol-3 peer for sending what a well-behaved client never would.
pub(crate) struct RawPeer {
    ws: Ws,
    /// Set after an encrypted handshake: payloads are sealed and opened with these.
    ciphers: Option<witrpc::crypto::Ciphers>,
}

impl RawPeer {
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _) = within("raw connect", tokio_tungstenite::connect_async(url)).await.expect("upgrade succeeds");
        Self { ws, ciphers: None }
    }

    /// Encrypted Initialization + Authorization, as a .NET client with `WithEncryption()`.
    pub(crate) async fn handshake_encrypted(&mut self, token: &str) {
        use witrpc::crypto::ClientEncryptor;
        let encryptor = witrpc::crypto::encrypted::EncryptedClientEncryptor::generate().expect("rsa key");
        let init = WitRequestInitialization { public_key: Some(encryptor.public_key()), protocol_version: 3 };
        let id = self.send(MessageType::Initialization, Some(init.encode())).await;
        let reply = self.recv_message().await;
        assert_eq!((reply.id, reply.kind), (id, MessageType::Initialization));
        let plain = encryptor.unwrap_reply(reply.data.expect("init reply has data")).expect("reply decrypts");
        let response = WitResponseInitialization::decode(plain).expect("init reply decodes");
        self.ciphers = Some(
            encryptor.complete(response.symmetric_key.as_deref(), response.vector.as_deref()).expect("key material"),
        );
        let auth = WitRequestAuthorization { token: Some(token.to_owned()) };
        let frame = self.seal(MessageType::Authorization, auth.encode());
        let id = WitMessage::decode(frame.clone().into()).expect("own frame").id;
        self.send_bytes(frame).await;
        let reply = self.recv_message().await;
        assert_eq!((reply.id, reply.kind), (id, MessageType::Authorization));
        let answer = WitResponseAuthorization::decode(reply.data.expect("auth reply")).expect("auth decodes");
        assert!(answer.is_authorized, "raw encrypted peer was not authorized");
    }

    /// An envelope with `payload` sealed by the next outbound counter (not sent).
    pub(crate) fn seal(&mut self, kind: MessageType, payload: Vec<u8>) -> Vec<u8> {
        let ciphers = self.ciphers.as_mut().expect("encrypted handshake first");
        let sealed = ciphers.sealer.seal(Bytes::from(payload)).expect("seal");
        WitMessage::new(Uuid::new_v4(), kind, Some(sealed)).encode()
    }

    /// Sends raw bytes; `Err` once the connection is gone.
    pub(crate) async fn try_send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        self.ws.send(Message::Binary(bytes.into())).await.map_err(|_| ())
    }

    pub(crate) async fn send_bytes(&mut self, bytes: Vec<u8>) {
        within("raw send", self.ws.send(Message::Binary(Bytes::from(bytes)))).await.expect("send");
    }

    pub(crate) async fn send(&mut self, kind: MessageType, data: Option<Vec<u8>>) -> Uuid {
        if let (Some(_), Some(payload)) = (&self.ciphers, &data) {
            let frame = self.seal(kind, payload.clone());
            let id = WitMessage::decode(frame.clone().into()).expect("own frame").id;
            self.send_bytes(frame).await;
            return id;
        }
        let id = Uuid::new_v4();
        self.send_bytes(WitMessage::new(id, kind, data.map(Bytes::from)).encode()).await;
        id
    }

    /// The next WitRPC message or close; control frames are skipped.
    pub(crate) async fn recv(&mut self) -> Received {
        loop {
            match within("raw receive", self.ws.next()).await {
                Some(Ok(Message::Binary(b))) => {
                    let mut m = WitMessage::decode(b).expect("server sends valid envelopes");
                    if m.kind != MessageType::Initialization {
                        if let (Some(c), Some(data)) = (self.ciphers.as_mut(), m.data.clone()) {
                            m.data = Some(c.opener.open(data).expect("server frames open in order"));
                        }
                    }
                    return Received::Message(m);
                }
                Some(Ok(Message::Close(frame))) => return Received::Close(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Received::Close(None),
            }
        }
    }

    pub(crate) async fn recv_message(&mut self) -> WitMessage {
        match self.recv().await {
            Received::Message(m) => m,
            Received::Close(frame) => panic!("expected a message, connection closed: {frame:?}"),
        }
    }

    /// Expects the server to close next; returns its close frame.
    pub(crate) async fn expect_close(&mut self) -> Option<CloseFrame> {
        match self.recv().await {
            Received::Close(frame) => frame,
            Received::Message(m) => panic!("expected a close, got {m:?}"),
        }
    }

    /// Plain-mode Initialization.
    pub(crate) async fn initialize(&mut self) -> WitResponseInitialization {
        let id = self.send(MessageType::Initialization, Some(WitRequestInitialization::plain().encode())).await;
        let reply = self.recv_message().await;
        assert_eq!((reply.id, reply.kind), (id, MessageType::Initialization));
        WitResponseInitialization::decode(reply.data.expect("init reply has data")).expect("init reply decodes")
    }

    /// Plain-mode Authorization with `token`.
    pub(crate) async fn authorize(&mut self, token: &str) -> WitResponseAuthorization {
        let request = WitRequestAuthorization { token: Some(token.to_owned()) };
        let id = self.send(MessageType::Authorization, Some(request.encode())).await;
        let reply = self.recv_message().await;
        assert_eq!((reply.id, reply.kind), (id, MessageType::Authorization));
        WitResponseAuthorization::decode(reply.data.expect("auth reply has data")).expect("auth reply decodes")
    }

    pub(crate) async fn handshake(&mut self, token: &str) {
        self.initialize().await;
        assert!(self.authorize(token).await.is_authorized, "raw peer was not authorized");
    }

    /// Sends `request` and returns the response to it (skipping callbacks).
    pub(crate) async fn call(&mut self, request: &WitRequest) -> WitResponse {
        let id = self.send(MessageType::Request, Some(request.encode())).await;
        loop {
            let reply = self.recv_message().await;
            if reply.kind == MessageType::Callback {
                continue;
            }
            assert_eq!((reply.id, reply.kind), (id, MessageType::Request));
            return WitResponse::decode(reply.data.expect("response has data")).expect("response decodes");
        }
    }
}

/// A request for a demo method, JSON parameters, resolved by name.
pub(crate) fn demo_request(method: &str, params: &[&str]) -> WitRequest {
    WitRequest {
        method_name: method.to_owned(),
        parameters: params.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect(),
        invocation_id: Uuid::new_v4(),
        ..WitRequest::default()
    }
}

/// The status line of a raw HTTP/1.1 request.
pub(crate) async fn http_status(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = within("tcp connect", TcpStream::connect(addr)).await.expect("tcp connect");
    within("http write", tcp.write_all(request.as_bytes())).await.expect("write");
    // Read only the status line: an upgraded connection stays open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match within("http read", tcp.read(&mut chunk)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines().next().unwrap_or_default().to_owned()
}

/// This process's resident set size in KiB (Linux), for figures the tests print.
pub(crate) fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

/// The path of example `name`: the value of `env_var` when set, else the binary `cargo
/// test` built next to this test binary (`target/<profile>/examples/<name>`).
pub(crate) fn example_path(name: &str, env_var: &str) -> std::path::PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile.join("examples").join(name)
}

/// Starts the example at `path` with `args` and waits for its first stdout line (the
/// ready line), which it returns trimmed with the child and the rest of its stdout.
pub(crate) async fn spawn_example(
    path: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, String, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child =
        Command::new(path).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {} ({e}); `cargo test` builds the examples first", path.display())
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let line = within(
        "the example's ready line",
        tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).map(|_| (line, reader))
        }),
    )
    .await
    .expect("reader task")
    .expect("ready line");
    (child, line.0.trim().to_owned(), line.1)
}

/// A TCP proxy on 127.0.0.1 that can be severed (every piped connection dropped, new
/// ones refused) and restored.
pub(crate) struct Proxy {
    addr: SocketAddr,
    /// Where new connections go.
    target: Arc<Mutex<SocketAddr>>,
    /// The generation: bumped by `sever`; pipes of an older one end. Odd = down.
    state: watch::Sender<u64>,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (state, _) = watch::channel(0u64);
        let states = state.clone();
        let target = Arc::new(Mutex::new(target));
        let targets = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut generation = states.subscribe();
                let born = *generation.borrow_and_update();
                if born % 2 == 1 {
                    continue; // down: the connection is dropped at once
                }
                let to = *targets.lock().unwrap_or_else(|e| e.into_inner());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = generation.wait_for(|g| *g != born) => {}
                    }
                });
            }
        });
        Self { addr, target, state }
    }

    pub(crate) fn sever(&self) {
        self.state.send_modify(|g| *g += 1);
    }

    pub(crate) fn restore(&self) {
        self.state.send_modify(|g| *g += 1);
    }

    /// Sends new connections to `target` from now on.
    pub(crate) fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}
