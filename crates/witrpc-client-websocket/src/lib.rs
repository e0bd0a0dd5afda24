#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! WebSocket transport for the witrpc client (tokio-tungstenite; `wss://` with rustls,
//! trusting the platform roots or a given CA).
//!
//! Part of an independent, WitRPC-compatible implementation (not the official
//! WitRPC). Each WitRPC message is one binary WebSocket message; text messages are
//! accepted as bytes, empty ones skipped, pings answered. An HTTP error during the
//! upgrade becomes [`TransportError::Rejected`] (503 = the server is full).
//!
//! ```no_run
//! use std::time::Duration;
//! use witrpc_client::WitClientBuilder;
//! use witrpc_client_websocket::WebSocketClientExt;
//!
//! # async fn run() -> Result<(), witrpc_client::ClientError> {
//! let client = WitClientBuilder::new().with_websocket("ws://127.0.0.1:5000/ws").connect(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use witrpc_client::WitClientBuilder;
use witrpc_client::transport::{ClientTransport, FrameSink, FrameStream, Inbound, Outbound, TransportError};
use witrpc_core::BoxFuture;

/// Re-exported for [`WebSocketClientExt::with_tls_client_config`].
pub use rustls;

/// Initial read buffer; grows only while a large message is read.
const READ_BUFFER_SIZE: usize = 4 * 1024;

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
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_SIZE)
                .write_buffer_size(0)
                .max_message_size(Some(max_message_size))
                .max_frame_size(Some(max_message_size));
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
    let inbound = stream.filter_map(move |item| {
        future::ready(match item {
            Ok(Message::Binary(b)) => Some(Ok(Inbound::Message(b))),
            Ok(Message::Text(t)) => Some(Ok(Inbound::Message(Bytes::from(t)))),
            Ok(Message::Close(frame)) => Some(Err(TransportError::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)),
                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
            })),
            Ok(Message::Ping(_) | Message::Pong(_)) => Some(Ok(Inbound::Heartbeat)),
            Ok(Message::Frame(_)) => None,
            Err(e) => Some(Err(map_error(e, max_message_size))),
        })
    });
    let outbound = sink.sink_map_err(move |e| map_error(e, max_message_size)).with(|item: Outbound| {
        future::ready(Ok::<_, TransportError>(match item {
            Outbound::Message(b) => Message::Binary(b),
            Outbound::Ping => Message::Ping(Bytes::new()),
        }))
    });
    Ok((Box::pin(outbound) as FrameSink, Box::pin(inbound) as FrameStream))
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

/// Adds the WebSocket settings to [`WitClientBuilder`].
pub trait WebSocketClientExt {
    /// Connects to `url` (`ws://host:port/path`, or `wss://` over TLS) over WebSocket.
    fn with_websocket(self, url: impl Into<String>) -> WitClientBuilder;

    /// For `wss://`: trusts only the CA certificate(s) in this PEM file instead of the
    /// platform's roots (for private CAs and self-signed servers).
    fn with_tls_root_ca_pem(self, path: impl Into<PathBuf>) -> WitClientBuilder;

    /// For `wss://`: uses this rustls configuration (full control).
    fn with_tls_client_config(self, config: Arc<ClientConfig>) -> WitClientBuilder;
}

impl WebSocketClientExt for WitClientBuilder {
    fn with_websocket(self, url: impl Into<String>) -> WitClientBuilder {
        self.with_transport(WebSocketTransport::new(url))
    }

    fn with_tls_root_ca_pem(self, path: impl Into<PathBuf>) -> WitClientBuilder {
        let path = path.into();
        self.configure_transport("with_tls_root_ca_pem", |t: &mut WebSocketTransport| t.trust_ca_pem(path))
    }

    fn with_tls_client_config(self, config: Arc<ClientConfig>) -> WitClientBuilder {
        self.configure_transport("with_tls_client_config", |t: &mut WebSocketTransport| t.tls_client_config(config))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use witrpc_client::ClientError;

    use super::*;

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
