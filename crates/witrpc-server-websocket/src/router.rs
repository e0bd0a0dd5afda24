//! HTTP/1.1 before the upgrade: hyper with capped headers and a head deadline that
//! answers 408, and routing (404 or the HTTP handler; the endpoint's path goes to
//! `upgrade.rs`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::listener::State;
use crate::per_ip::IpGuard;
use crate::stats::Gauge;
use crate::upgrade::{Address, Keep, text_response};

/// What a connection was admitted with at accept; held until the HTTP phase ends (the
/// address quota is shared with the WebSocket connection, which keeps its own clone).
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The pre-upgrade slot, freed when this is dropped.
    pub(crate) _pending: (tokio::sync::OwnedSemaphorePermit, Gauge),
    pub(crate) ip: Option<Arc<IpGuard>>,
}

/// Serves HTTP/1.1 on `io` until it ends or is upgraded; the request head must be
/// complete by `deadline`.
pub(crate) async fn serve_http<I>(io: I, peer: SocketAddr, state: Arc<State>, deadline: Instant, admitted: Admitted)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let armed = Arc::new(AtomicBool::new(true));
    let io =
        HeadDeadline { inner: io, sleep: Some(Box::pin(tokio::time::sleep_until(deadline))), armed: armed.clone() };
    let service_state = state.clone();
    let ip = admitted.ip.clone();
    let service = hyper::service::service_fn(move |req| {
        armed.store(false, Ordering::Relaxed);
        let answer = route(req, peer, &service_state, ip.clone());
        async move { Ok::<_, std::convert::Infallible>(answer) }
    });
    let limits = &state.upgrader.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Later requests on a kept-alive connection (plain HTTP handler) get the same
        // time, closed without an answer (the connection is idle, nobody waits).
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        r = connection => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "http connection error");
        },
        () = state.upgrader.stop.cancelled() => {}
    }
    drop(admitted);
}

/// A bare HTTP response for refusing a socket without reading from it.
pub(crate) fn raw_response(status: StatusCode, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// The connection's I/O until its first request head is read: past the deadline it
/// answers **408** itself (hyper closes silently on its own header timeout) and fails
/// the read, which ends the connection.
struct HeadDeadline<I> {
    inner: I,
    /// Dropped once disarmed: a registered timer costs an idle upgraded connection
    /// (which keeps this wrapper under it) about 5 KB of RSS, measured with 10,000.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Cleared by the router once a request head has arrived.
    armed: Arc<AtomicBool>,
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadDeadline<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let armed = self.armed.load(Ordering::Relaxed);
        let expired = match self.sleep.as_mut() {
            Some(sleep) if armed => sleep.as_mut().poll(cx).is_ready(),
            Some(_) => {
                self.sleep = None;
                false
            }
            None => false,
        };
        if expired {
            self.armed.store(false, Ordering::Relaxed);
            self.sleep = None;
            tracing::debug!("request head not complete in time; answering 408");
            let answer = raw_response(StatusCode::REQUEST_TIMEOUT, "request headers not received in time\n");
            // Best effort, never waiting: a socket that has not been answered yet has an
            // empty send buffer, so this normally takes the whole answer.
            let inner = Pin::new(&mut self.inner);
            if let Poll::Ready(Ok(_)) = inner.poll_write(cx, &answer) {
                let _flushed = Pin::new(&mut self.inner).poll_flush(cx);
            }
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head timeout")));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: &Arc<State>,
    ip: Option<Arc<IpGuard>>,
) -> Response<Full<Bytes>> {
    if !state.endpoint.matches(req.uri().path()) {
        let (parts, _body) = req.into_parts();
        let answer = state.http.as_ref().and_then(|h| (h.0)(&parts));
        return answer.map_or_else(|| text_response(StatusCode::NOT_FOUND, "not found\n"), |r| r.map(Full::new));
    }
    state.upgrader.upgrade(req, Some(peer), Address::Admitted(ip), Keep::ForwardedHeaders)
}
