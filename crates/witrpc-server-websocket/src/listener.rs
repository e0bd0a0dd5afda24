//! The hyper accept loop, the upgrade, and the WebSocket <-> [`Connection`] adapter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HOST, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use witrpc_server::transport::{
    CloseCode, Connection, ConnectionHandler, FrameError, Inbound, Outbound, ServerTransport, TransportHandle,
    TransportOptions,
};
use witrpc_server::{BoxFuture, ServerError};

use crate::endpoint::Endpoint;
use crate::origin::OriginPolicy;
use crate::tls::TlsMaterial;

/// Initial read buffer per connection; grows only while a large message is read. At
/// 2 KiB an idle authorized connection costs the server about 7.8 KB (4 KiB: 9.8 KB,
/// measured with 5000 connections) with no measurable loss of call throughput.
const READ_BUFFER_SIZE: usize = 2 * 1024;
/// Outbound frames collect up to this many bytes before a write; the server's writer
/// flushes whenever its queue is empty, so a burst of responses or events leaves in one
/// `send` instead of one per frame (a frame-per-write spent ~45% of the server's CPU in
/// `sendto` at 64×16). The buffer is allocated only as frames are written.
const WRITE_BUFFER_SIZE: usize = 16 * 1024;
/// Time a client has to send its HTTP upgrade request.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts WitRPC connections over WebSocket at `http://host:port/path` (or
/// `https://` with TLS material).
#[derive(Debug, Clone)]
pub struct WebSocketTransport {
    url: String,
    endpoint: Result<Endpoint, String>,
    max_clients: usize,
    tls: Option<TlsMaterial>,
    origins: OriginPolicy,
    http: Option<HttpHandler>,
}

type HttpHandlerFn = dyn Fn(&hyper::http::request::Parts) -> Option<Response<Bytes>> + Send + Sync;

/// Answers plain HTTP requests to paths other than the WebSocket endpoint; `None` = 404.
#[derive(Clone)]
pub(crate) struct HttpHandler(pub(crate) Arc<HttpHandlerFn>);

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpHandler")
    }
}

impl WebSocketTransport {
    /// A transport for `url` accepting at most `max_clients` connections at once.
    pub fn new(url: impl Into<String>, max_clients: usize) -> Self {
        let url = url.into();
        Self {
            endpoint: Endpoint::parse(&url),
            url,
            max_clients,
            tls: None,
            origins: OriginPolicy::default(),
            http: None,
        }
    }

    /// Serves TLS with the PEM certificate chain (leaf first) and private key at these paths.
    pub fn tls_pem(&mut self, cert_chain: PathBuf, key: PathBuf) {
        self.tls = Some(TlsMaterial::Pem { cert_chain, key });
    }

    /// Serves TLS with a ready rustls configuration.
    pub fn tls_config(&mut self, config: Arc<rustls::ServerConfig>) {
        self.tls = Some(TlsMaterial::Config(config));
    }

    /// Also accepts browser pages from these origins (`https://host[:port]`).
    pub fn allow_origins(&mut self, origins: impl IntoIterator<Item = String>) {
        self.origins.allow(origins);
    }

    /// Accepts browser pages from any origin.
    pub fn allow_any_origin(&mut self) {
        self.origins = OriginPolicy::Any;
    }

    /// Answers plain HTTP requests to every other path with `handler` (`None` = 404).
    pub fn http_handler<F>(&mut self, handler: F)
    where
        F: Fn(&hyper::http::request::Parts) -> Option<Response<Bytes>> + Send + Sync + 'static,
    {
        self.http = Some(HttpHandler(Arc::new(handler)));
    }

    fn endpoint(&self) -> Result<&Endpoint, ServerError> {
        self.endpoint
            .as_ref()
            .map_err(|reason| ServerError::InvalidEndpoint { url: self.url.clone(), reason: reason.clone() })
    }
}

impl ServerTransport for WebSocketTransport {
    fn validate(&self) -> Result<(), ServerError> {
        let endpoint = self.endpoint()?;
        match (endpoint.tls, &self.tls) {
            (true, None) => {
                return Err(ServerError::InvalidEndpoint {
                    url: self.url.clone(),
                    reason: "an https:// URL needs TLS material: call `with_tls_pem(cert_chain, key)` or \
                             `with_tls_config(config)`"
                        .to_owned(),
                });
            }
            (false, Some(_)) => {
                return Err(ServerError::InvalidEndpoint {
                    url: self.url.clone(),
                    reason: "TLS material was given but the URL is http://; use https://".to_owned(),
                });
            }
            _ => {}
        }
        if self.max_clients == 0 {
            return Err(ServerError::Config("max_clients must be greater than 0"));
        }
        Ok(())
    }

    fn start(
        &self,
        handler: Arc<dyn ConnectionHandler>,
        options: TransportOptions,
    ) -> BoxFuture<'_, Result<Box<dyn TransportHandle>, ServerError>> {
        Box::pin(async move {
            self.validate()?;
            let endpoint = self.endpoint()?.clone();
            let tls = match &self.tls {
                Some(material) => Some(TlsAcceptor::from(material.load()?)),
                None => None,
            };
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|source| ServerError::Resolve { host: endpoint.host.clone(), source })?
                .collect();
            let mut last_error = None;
            let mut listener = None;
            for addr in &addrs {
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        listener = Some(l);
                        break;
                    }
                    Err(e) => last_error = Some((*addr, e)),
                }
            }
            let listener = match (listener, last_error) {
                (Some(l), _) => l,
                (None, Some((addr, source))) => return Err(ServerError::Bind { addr, source }),
                (None, None) => {
                    return Err(ServerError::Resolve {
                        host: endpoint.host.clone(),
                        source: std::io::Error::other("no addresses"),
                    });
                }
            };
            let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: addrs[0], source })?;
            let client_host = match local_addr.ip() {
                ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                _ if endpoint.host.contains(':') => format!("[{}]", endpoint.host),
                _ => endpoint.host.clone(),
            };
            let scheme = if endpoint.tls { "wss" } else { "ws" };
            let client_url = format!("{scheme}://{client_host}:{}{}", local_addr.port(), endpoint.path);
            let stop = CancellationToken::new();
            let state = Arc::new(State {
                endpoint,
                slots: Arc::new(Semaphore::new(self.max_clients)),
                max_clients: self.max_clients,
                handler,
                ws_config: WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_SIZE)
                    .write_buffer_size(WRITE_BUFFER_SIZE)
                    .max_message_size(Some(options.max_message_size))
                    .max_frame_size(Some(options.max_message_size)),
                max_message_size: options.max_message_size,
                forwarded_headers: options.forwarded_headers.clone(),
                stop: stop.clone(),
                tls,
                origins: self.origins.clone(),
                http: self.http.clone(),
            });
            let tasks = TaskTracker::new();
            tasks.spawn(accept_loop(listener, state, tasks.clone()));
            Ok(Box::new(Handle { local_addr, client_url, stop, tasks }) as Box<dyn TransportHandle>)
        })
    }
}

#[derive(Debug)]
struct Handle {
    local_addr: SocketAddr,
    client_url: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl TransportHandle for Handle {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn client_url(&self) -> String {
        self.client_url.clone()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            self.tasks.close();
            self.tasks.wait().await;
        })
    }
}

struct State {
    endpoint: Endpoint,
    slots: Arc<Semaphore>,
    max_clients: usize,
    handler: Arc<dyn ConnectionHandler>,
    ws_config: WebSocketConfig,
    max_message_size: usize,
    stop: CancellationToken,
    tls: Option<TlsAcceptor>,
    origins: OriginPolicy,
    forwarded_headers: Arc<[String]>,
    http: Option<HttpHandler>,
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, tasks: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            () = state.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                tasks.spawn(serve_tcp(tcp, peer, state.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::debug!("listener closed");
}

async fn serve_tcp(tcp: tokio::net::TcpStream, peer: SocketAddr, state: Arc<State>) {
    let Some(acceptor) = state.tls.clone() else {
        return serve_http(tcp, peer, state).await;
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)) => r,
        () = state.stop.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => serve_http(tls, peer, state).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_http<I>(io: I, peer: SocketAddr, state: Arc<State>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |req| {
        let state = service_state.clone();
        async move { Ok::<_, std::convert::Infallible>(route(req, peer, &state)) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::select! {
        r = connection => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "http connection error");
        },
        () = state.stop.cancelled() => {}
    }
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn route(mut req: Request<Incoming>, peer: SocketAddr, state: &Arc<State>) -> Response<Full<Bytes>> {
    if !state.endpoint.matches(req.uri().path()) {
        let (parts, _body) = req.into_parts();
        let answer = state.http.as_ref().and_then(|h| (h.0)(&parts));
        return answer.map_or_else(|| text_response(StatusCode::NOT_FOUND, "not found\n"), |r| r.map(Full::new));
    }
    let origin = req.headers().get(ORIGIN).map(|v| v.to_str().unwrap_or("invalid"));
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
    if !state.origins.permits(origin, host) {
        tracing::warn!(%peer, origin = ?origin, "cross-origin WebSocket request refused with 403");
        return text_response(
            StatusCode::FORBIDDEN,
            "cross-origin WebSocket requests are refused; the server can allow this origin with `with_allowed_origins`\n",
        );
    }
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = req.method() == Method::GET
        && header_has(&req, CONNECTION, "upgrade")
        && header_has(&req, UPGRADE, "websocket")
        && req.headers().get(SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| is_upgrade) else {
        return text_response(StatusCode::BAD_REQUEST, "this endpoint accepts WebSocket upgrade requests only\n");
    };
    let Ok(slot) = state.slots.clone().try_acquire_owned() else {
        tracing::warn!(%peer, max_clients = state.max_clients, "server full; refusing connection with 503");
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "server is full; try again later\n");
    };
    let headers: Vec<(String, String)> = state
        .forwarded_headers
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(name.as_str())?.to_str().ok()?;
            Some((name.clone(), value.to_owned()))
        })
        .collect();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let state = state.clone();
    tokio::spawn(async move {
        let upgraded = tokio::select! {
            r = on_upgrade => r,
            () = state.stop.cancelled() => return,
        };
        match upgraded {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(state.ws_config)).await;
                let mut connection = connection(ws, peer, state.max_message_size, Box::new(slot));
                connection.headers = headers;
                state.handler.handle(connection);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "upgrade failed"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn connection(ws: Ws, peer: SocketAddr, limit: usize, slot: Box<dyn Send + Sync>) -> Connection {
    let (sink, stream) = ws.split();
    let inbound = stream.filter_map(move |item| {
        future::ready(match item {
            Ok(Message::Binary(b)) => Some(Ok(Inbound::Message(b))),
            Ok(Message::Text(t)) => Some(Ok(Inbound::Message(Bytes::from(t)))),
            Ok(Message::Ping(_) | Message::Pong(_)) => Some(Ok(Inbound::Heartbeat)),
            Ok(Message::Frame(_) | Message::Close(_)) => None,
            Err(tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size, .. })) => {
                Some(Err(FrameError::TooLarge { size, limit }))
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Some(Err(FrameError::Closed))
            }
            Err(tungstenite::Error::Io(e)) => Some(Err(FrameError::Io(Box::new(e)))),
            Err(e) => Some(Err(FrameError::Protocol(Box::new(e)))),
        })
    });
    let outbound = sink
        .sink_map_err(|e| match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => FrameError::Closed,
            e => FrameError::Io(Box::new(e)),
        })
        .with(|item: Outbound| {
            future::ready(Ok::<_, FrameError>(match item {
                Outbound::Message(b) => Message::Binary(b),
                Outbound::Ping => Message::Ping(Bytes::new()),
                Outbound::Close(reason) => Message::Close(Some(CloseFrame {
                    code: close_code(reason.code),
                    reason: truncate(&reason.reason, 123).into(),
                })),
            }))
        });
    Connection {
        peer: Some(peer),
        transport: "websocket",
        inbound: Box::pin(inbound),
        outbound: Box::pin(outbound),
        slot: Some(slot),
        headers: Vec::new(),
        on_authorized: None,
    }
}

fn close_code(code: CloseCode) -> WsCloseCode {
    match code {
        CloseCode::Normal => WsCloseCode::Normal,
        CloseCode::Away => WsCloseCode::Away,
        CloseCode::Protocol => WsCloseCode::Protocol,
        CloseCode::Unsupported => WsCloseCode::Unsupported,
        CloseCode::Policy => WsCloseCode::Policy,
        CloseCode::TooBig => WsCloseCode::Size,
        _ => WsCloseCode::Error,
    }
}

/// WebSocket close reasons are limited to 123 bytes; cut at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
