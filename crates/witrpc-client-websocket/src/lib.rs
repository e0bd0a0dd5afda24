#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! WebSocket transport for the witrpc client (tokio-tungstenite).
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

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future};
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use witrpc_client::WitClientBuilder;
use witrpc_client::transport::{ClientTransport, FrameSink, FrameStream, TransportError};
use witrpc_core::BoxFuture;

/// Initial read buffer; grows only while a large message is read.
const READ_BUFFER_SIZE: usize = 4 * 1024;

/// Connects to a `ws://host:port/path` URL.
#[derive(Debug, Clone)]
pub struct WebSocketTransport {
    url: String,
}

impl WebSocketTransport {
    /// A transport for `url`; it is checked when connecting.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }

    fn check_url(&self) -> Result<(), TransportError> {
        let invalid = |reason| Err(TransportError::InvalidUrl { url: self.url.clone(), reason });
        if self.url.starts_with("ws://") {
            Ok(())
        } else if self.url.starts_with("wss://") {
            invalid("wss:// needs TLS, which this version of the client does not support yet; use ws://")
        } else if self.url.starts_with("http://") || self.url.starts_with("https://") {
            invalid("clients connect with a ws:// URL (the server listens on http://); write ws://host:port/path")
        } else {
            invalid("expected a ws:// URL such as ws://127.0.0.1:5000/ws")
        }
    }
}

impl ClientTransport for WebSocketTransport {
    fn connect(&self, max_message_size: usize) -> BoxFuture<'_, Result<(FrameSink, FrameStream), TransportError>> {
        Box::pin(async move {
            self.check_url()?;
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_SIZE)
                .write_buffer_size(0)
                .max_message_size(Some(max_message_size))
                .max_frame_size(Some(max_message_size));
            let (ws, _response) = tokio_tungstenite::connect_async_with_config(self.url.as_str(), Some(config), true)
                .await
                .map_err(|e| map_error(e, max_message_size))?;
            let (sink, stream) = ws.split();
            let inbound = stream.filter_map(move |item| {
                future::ready(match item {
                    Ok(Message::Binary(b)) => Some(Ok(b)),
                    Ok(Message::Text(t)) => Some(Ok(Bytes::from(t))),
                    Ok(Message::Close(frame)) => Some(Err(TransportError::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    })),
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
                    Err(e) => Some(Err(map_error(e, max_message_size))),
                })
            });
            let outbound = sink
                .sink_map_err(move |e| map_error(e, max_message_size))
                .with(|b: Bytes| future::ready(Ok::<_, TransportError>(Message::Binary(b))));
            Ok((Box::pin(outbound) as FrameSink, Box::pin(inbound) as FrameStream))
        })
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

/// Adds `with_websocket` to [`WitClientBuilder`].
pub trait WebSocketClientExt {
    /// Connects to `url` (`ws://host:port/path`) over WebSocket.
    fn with_websocket(self, url: impl Into<String>) -> WitClientBuilder;
}

impl WebSocketClientExt for WitClientBuilder {
    fn with_websocket(self, url: impl Into<String>) -> WitClientBuilder {
        self.with_transport(WebSocketTransport::new(url))
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
        for (url, hint) in [("http://127.0.0.1:1/ws", "ws://"), ("wss://127.0.0.1:1/ws", "TLS"), ("127.0.0.1", "ws://")]
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
