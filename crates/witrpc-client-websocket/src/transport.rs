//! The tokio-tungstenite transport: URL parsing, TCP/TLS connect, the WebSocket
//! upgrade and the adapter to the client's frame sink and stream.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt, StreamExt, future};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use witrpc_client::transport::{ClientTransport, FrameSink, FrameStream, Inbound, Outbound, TransportError};
use witrpc_core::BoxFuture;

/// Initial read buffer; grows only while a large message is read.
const READ_BUFFER_SIZE: usize = 4 * 1024;
/// Frames queued together are collected up to this size and written in one go; the
/// connection flushes after each batch, so nothing waits for the buffer to fill. (With
/// 0, each frame was its own write: a reconnect's pipelined Initialization and
/// Authorization went out as two segments, and the server answered them in two.)
const WRITE_BUFFER_SIZE: usize = 16 * 1024;

/// Which certificates a `wss://` connection trusts.
#[derive(Debug, Clone, Default)]
enum TlsTrust {
    /// The operating system's roots.
    #[default]
    Platform,
    /// Only the CA certificate(s) in this PEM file.
    CaPem(PathBuf),
    /// A ready rustls configuration.
    Config(Arc<ClientConfig>),
}

/// Connects to a `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub struct WebSocketTransport {
    url: String,
    trust: TlsTrust,
}

/// The parts of a `ws[s]://host[:port]/path` URL needed to open the socket.
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn tls_error(what: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TransportError {
    TransportError::Tls { what: what.into(), source: source.into() }
}

impl WebSocketTransport {
    /// A transport for `url`; it is checked when connecting.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), trust: TlsTrust::Platform }
    }

    /// Trusts only the CA certificate(s) in this PEM file for `wss://`.
    pub fn trust_ca_pem(&mut self, path: PathBuf) {
        self.trust = TlsTrust::CaPem(path);
    }

    /// Uses this rustls configuration for `wss://`.
    pub fn tls_client_config(&mut self, config: Arc<ClientConfig>) {
        self.trust = TlsTrust::Config(config);
    }

    fn target(&self) -> Result<Target, TransportError> {
        let invalid = |reason| TransportError::InvalidUrl { url: self.url.clone(), reason };
        let (tls, rest) = if let Some(rest) = self.url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = self.url.strip_prefix("wss://") {
            (true, rest)
        } else if self.url.starts_with("http://") || self.url.starts_with("https://") {
            return Err(invalid("clients connect with a ws:// or wss:// URL (the server listens on http(s)://)"));
        } else {
            return Err(invalid("expected a ws:// URL such as ws://127.0.0.1:5000/ws"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| invalid("unterminated IPv6 address"))?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the URL has no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| invalid("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Target { tls, host: host.to_owned(), port })
    }

    fn client_config(&self) -> Result<Arc<ClientConfig>, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.trust {
            TlsTrust::Config(c) => return Ok(c.clone()),
            TlsTrust::CaPem(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| tls_error(format!("cannot read CA file {}", path.display()), e))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(tls_error(format!("{} holds no usable CA certificate", path.display()), "no CA"));
                }
            }
            TlsTrust::Platform => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::debug!(error = %e, "skipping unreadable platform certificate");
                }
                roots.add_parsable_certificates(found.certs);
            }
        }
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("cannot configure TLS", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

impl ClientTransport for WebSocketTransport {
    fn connect(&self, max_message_size: usize) -> BoxFuture<'_, Result<(FrameSink, FrameStream), TransportError>> {
        Box::pin(async move {
            let target = self.target()?;
            let config = config(max_message_size);
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(TransportError::Io)?;
            tcp.set_nodelay(true).map_err(TransportError::Io)?;
            if !target.tls {
                return upgrade(&self.url, tcp, config, max_message_size).await;
            }
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| tls_error(format!("`{}` is not a valid TLS server name", target.host), e))?;
            let tls = TlsConnector::from(self.client_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(format!("handshake with {} failed", target.host), e))?;
            upgrade(&self.url, tls, config, max_message_size).await
        })
    }
}

/// The WebSocket settings of every connection.
fn config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

async fn upgrade<S>(
    url: &str,
    stream: S,
    config: WebSocketConfig,
    max_message_size: usize,
) -> Result<(FrameSink, FrameStream), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ws, _response): (WebSocketStream<S>, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map_err(|e| map_error(e, max_message_size))?;
    let (sink, stream) = ws.split();
    let inbound = stream.filter_map(move |item| future::ready(inbound(item, max_message_size)));
    let outbound = WsSink { inner: sink, close_sent: false, limit: max_message_size };
    Ok((Box::pin(outbound) as FrameSink, Box::pin(inbound) as FrameStream))
}

/// What one WebSocket read means to the client (`None`: nothing to report).
///
/// Text is taken as bytes, as .NET does; Ping/Pong prove the server alive (tungstenite
/// answers Pings itself); a Close ends the stream with the server's code and reason.
fn inbound(item: Result<Message, tungstenite::Error>, limit: usize) -> Option<Result<Inbound, TransportError>> {
    match item {
        Ok(Message::Binary(b)) => Some(Ok(Inbound::Message(b))),
        Ok(Message::Text(t)) => Some(Ok(Inbound::Message(Bytes::from(t)))),
        Ok(Message::Close(frame)) => Some(Err(TransportError::Closed {
            code: frame.as_ref().map(|f| u16::from(f.code)),
            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
        })),
        Ok(Message::Ping(_) | Message::Pong(_)) => Some(Ok(Inbound::Heartbeat)),
        Ok(Message::Frame(_)) => None,
        Err(e) => Some(Err(map_error(e, limit))),
    }
}

/// The code and reason of the close the client sends, as .NET's client does on `Disconnect()`.
const CLOSE_CODE: CloseCode = CloseCode::Normal;
const CLOSE_REASON: &str = "Client disconnecting";

/// Writes each frame as one Binary message; closing sends a Close frame with
/// [`CLOSE_CODE`] and [`CLOSE_REASON`], so the server logs why the client left.
struct WsSink<S> {
    inner: SplitSink<WebSocketStream<S>, Message>,
    close_sent: bool,
    limit: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Outbound> for WsSink<S> {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let limit = self.limit;
        self.inner.poll_ready_unpin(cx).map_err(|e| map_error(e, limit))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        let message = match item {
            Outbound::Message(b) => Message::Binary(b),
            Outbound::Ping => Message::Ping(Bytes::new()),
        };
        let limit = self.limit;
        self.inner.start_send_unpin(message).map_err(|e| map_error(e, limit))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let limit = self.limit;
        self.inner.poll_flush_unpin(cx).map_err(|e| map_error(e, limit))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if !self.close_sent {
            // When the server closed first, this fails (tungstenite has answered its
            // close already); closing the inner sink below still flushes that answer.
            if let Ok(()) = ready!(self.inner.poll_ready_unpin(cx)) {
                let frame = CloseFrame { code: CLOSE_CODE, reason: CLOSE_REASON.into() };
                let _already_closing = self.inner.start_send_unpin(Message::Close(Some(frame)));
            }
            self.close_sent = true;
        }
        let limit = self.limit;
        self.inner.poll_close_unpin(cx).map_err(|e| map_error(e, limit))
    }
}

fn map_error(e: tungstenite::Error, limit: usize) -> TransportError {
    match e {
        tungstenite::Error::Http(response) => TransportError::Rejected { status: response.status().as_u16() },
        tungstenite::Error::Io(e) => TransportError::Io(e),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            TransportError::Closed { code: None, reason: String::new() }
        }
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { .. }) => {
            TransportError::TooLarge { limit }
        }
        e => TransportError::Protocol(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::OnceLock;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use witrpc_client::{ClientError, WitClient, WitClientBuilder};
    use witrpc_core::{
        MessageType, MethodDescriptor, OutgoingCall, ServiceDescriptor, WitMessage, WitRequest,
        WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
        WitResponseInitialization,
    };

    use super::*;
    use crate::WebSocketClientExt;

    /// A stream that counts its writes.
    struct Counting {
        inner: tokio::io::DuplexStream,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncRead for Counting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn frames_sent_together_go_out_in_one_write_and_each_flush_sends_its_frames() {
        use futures_util::SinkExt as _;
        let (near, far) = tokio::io::duplex(64 * 1024);
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = tokio::spawn(async move {
            let mut ws = tokio_tungstenite::accept_async(far).await.expect("upgrade");
            let mut got = Vec::new();
            while got.len() < 3 {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => got.push(b.to_vec()),
                    other => panic!("expected a binary message, got {other:?}"),
                }
            }
            got
        });
        let stream = Counting { inner: near, writes: writes.clone() };
        let (mut sink, _stream) =
            within("upgrade", upgrade("ws://127.0.0.1/ws", stream, config(1 << 20), 1 << 20)).await.expect("upgrades");
        let after_upgrade = writes.load(std::sync::atomic::Ordering::Relaxed);
        // A pipelined handshake: two frames queued, then one flush.
        sink.feed(Outbound::Message(Bytes::from_static(b"initialization"))).await.expect("queued");
        sink.feed(Outbound::Message(Bytes::from_static(b"authorization"))).await.expect("queued");
        sink.flush().await.expect("flushed");
        assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed) - after_upgrade, 1, "one write for both");
        // A frame alone is not held back for the buffer to fill: its flush sends it.
        sink.send(Outbound::Message(Bytes::from_static(b"call"))).await.expect("sent");
        let got = within("the server reads all three", server).await.expect("server task");
        assert_eq!(got, [b"initialization".to_vec(), b"authorization".to_vec(), b"call".to_vec()]);
    }

    /// Fails the test instead of hanging it.
    async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not finish in time"))
    }

    type ServerSocket = WebSocketStream<tokio::net::TcpStream>;

    /// Accepts one WebSocket connection on 127.0.0.1:0 and hands it to `script`.
    async fn serve<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(ServerSocket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            script(tokio_tungstenite::accept_async(tcp).await.unwrap()).await;
        });
        (url, task)
    }

    async fn next_message(ws: &mut ServerSocket) -> WitMessage {
        loop {
            match ws.next().await.expect("the client went away").unwrap() {
                Message::Binary(b) => return WitMessage::decode(b).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a binary message, got {other:?}"),
            }
        }
    }

    async fn reply(ws: &mut ServerSocket, to: &WitMessage, data: Vec<u8>) {
        ws.send(Message::Binary(to.reply(Some(data.into())).encode().into())).await.unwrap();
    }

    /// The server's half of a plain handshake that accepts any token.
    async fn accept_handshake(ws: &mut ServerSocket) {
        let init = next_message(ws).await;
        assert_eq!(init.kind, MessageType::Initialization);
        WitRequestInitialization::decode(init.data.clone().unwrap()).unwrap();
        reply(ws, &init, WitResponseInitialization::plain().encode()).await;
        let auth = next_message(ws).await;
        assert_eq!(auth.kind, MessageType::Authorization);
        WitRequestAuthorization::decode(auth.data.clone().unwrap()).unwrap();
        reply(ws, &auth, WitResponseAuthorization::new(true).encode()).await;
    }

    fn no_types() -> Vec<String> {
        Vec::new()
    }

    fn no_types_by_name() -> Vec<witrpc_core::ParameterType> {
        Vec::new()
    }

    static ECHO: ServiceDescriptor = ServiceDescriptor {
        contract: "Tests.IEcho",
        methods: &[MethodDescriptor {
            name: "Ping",
            parameter_names: &[],
            parameter_types: no_types,
            parameter_types_by_name: no_types_by_name,
        }],
        events: &[],
        resolved: OnceLock::new(),
    };

    async fn connect(url: &str) -> WitClient {
        within("connect", WitClientBuilder::new().with_websocket(url).connect(Duration::from_secs(5))).await.unwrap()
    }

    #[tokio::test]
    async fn calls_over_a_real_socket_and_closes_with_a_reason() {
        let (url, server) = serve(|mut ws| async move {
            accept_handshake(&mut ws).await;
            let request = next_message(&mut ws).await;
            assert_eq!(WitRequest::decode(request.data.clone().unwrap()).unwrap().method_name, "Ping");
            reply(&mut ws, &request, WitResponse::ok(Some(Bytes::from_static(b"\"pong\""))).encode()).await;
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(frame.code, CloseCode::Normal);
                    assert_eq!(frame.reason.as_str(), "Client disconnecting");
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        })
        .await;
        let client = connect(&url).await;
        let call = OutgoingCall { contract: &ECHO, method: 0, parameters: Vec::new() };
        let result = within("call", client.call(call)).await.unwrap();
        assert_eq!(result.as_deref(), Some(&b"\"pong\""[..]));
        within("disconnect", client.disconnect()).await;
        within("server", server).await.unwrap();
    }

    #[tokio::test]
    async fn the_servers_close_frame_is_the_close_reason() {
        let (url, server) = serve(|mut ws| async move {
            accept_handshake(&mut ws).await;
            let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
            ws.send(Message::Close(Some(frame))).await.unwrap();
            // Read until the client's answer completes the close handshake.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let client = connect(&url).await;
        within("close", client.closed()).await;
        let reason = client.close_reason().unwrap_or_default();
        assert!(reason.contains("1001") && reason.contains("server shutting down"), "{reason}");
        within("server", server).await.unwrap();
    }

    #[tokio::test]
    async fn an_oversized_message_closes_the_connection() {
        let (url, server) = serve(|mut ws| async move {
            accept_handshake(&mut ws).await;
            ws.send(Message::Binary(vec![3u8; 64 * 1024].into())).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let client = within(
            "connect",
            WitClientBuilder::new()
                .with_websocket(&url)
                .with_max_message_size(16 * 1024)
                .connect(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        within("close", client.closed()).await;
        let reason = client.close_reason().unwrap_or_default();
        assert!(reason.contains("max_message_size"), "{reason}");
        drop(client);
        within("server", server).await.unwrap();
    }

    #[test]
    fn text_messages_are_taken_as_bytes_and_pings_as_heartbeats() {
        match inbound(Ok(Message::Text("abc".into())), 1024) {
            Some(Ok(Inbound::Message(b))) => assert_eq!(&b[..], b"abc"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(inbound(Ok(Message::Ping(Bytes::new())), 1024), Some(Ok(Inbound::Heartbeat))));
        let closed = inbound(Ok(Message::Close(None)), 1024);
        assert!(matches!(closed, Some(Err(TransportError::Closed { code: None, .. }))), "{closed:?}");
    }

    #[tokio::test]
    async fn a_503_before_the_upgrade_means_the_server_is_full() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await.unwrap();
            tcp.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let err = WitClientBuilder::new()
            .with_websocket(format!("ws://{addr}/ws"))
            .connect(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::ServerFull), "{err:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn wrong_schemes_are_explained() {
        for (url, hint) in
            [("http://127.0.0.1:1/ws", "ws://"), ("ftp://127.0.0.1:1/ws", "ws://"), ("127.0.0.1", "ws://")]
        {
            let err = WitClientBuilder::new().with_websocket(url).connect(Duration::from_secs(5)).await.unwrap_err();
            assert!(format!("{err}: {:?}", std::error::Error::source(&err)).contains(hint), "{url}: {err:?}");
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_transport_error_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = WitClientBuilder::new()
            .with_websocket(format!("ws://{addr}/ws"))
            .connect(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport(TransportError::Io(_))), "{err:?}");
    }
}
