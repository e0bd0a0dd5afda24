//! HTTP/1.1 before the upgrade: hyper with capped headers and a head deadline that
//! answers 408, routing (404 / 403 / 400 / 503 / 101), and the hand-off of the upgraded
//! socket to the driver.

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
use hyper::header::{
    CONNECTION, HOST, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::driver;
use crate::listener::State;
use crate::per_ip::{self, IpGuard, Refusal};
use crate::stats::Gauge;

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
    let limits = &state.limits;
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
        () = state.stop.cancelled() => {}
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

fn route(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    state: &Arc<State>,
    ip: Option<Arc<IpGuard>>,
) -> Response<Full<Bytes>> {
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
    // Behind a trusted proxy the address is known only now, from its headers.
    let forwarded_ip = if state.per_ip.enabled() && state.limits.trusted_proxies.contains(&peer.ip()) {
        let client = per_ip::client_ip(peer.ip(), &state.limits.trusted_proxies, req.headers());
        match state.per_ip.admit(client, Instant::now()) {
            Ok(guard) => guard,
            Err(refusal) => {
                state.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, %client, ?refusal, "per-address limit; refusing the upgrade");
                return match refusal {
                    Refusal::Concurrent => text_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many connections from your address; close some and try again\n",
                    ),
                    Refusal::Rate => text_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many new connections from your address; slow down\n",
                    ),
                };
            }
        }
    } else {
        None
    };
    let Ok(slot) = state.slots.clone().try_acquire_owned() else {
        tracing::warn!(%peer, max_clients = state.max_clients, "server full; refusing connection with 503");
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "server is full; try again later\n");
    };
    let Ok(unauthorized) = state.unauthorized.clone().try_acquire_owned() else {
        state.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, "too many connections waiting to authorize; refusing with 503");
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections are authorizing; try again later\n",
        );
    };
    let unauthorized = (unauthorized, Gauge::new(&state.counters, |c| &c.unauthorized));
    let headers: Vec<(String, String)> = state
        .forwarded_headers
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(name.as_str())?.to_str().ok()?;
            Some((name.clone(), value.to_owned()))
        })
        .collect();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_state = state.clone();
    state.tasks.spawn(async move {
        let state = task_state;
        let upgraded = tokio::select! {
            r = on_upgrade => r,
            () = state.stop.cancelled() => return,
        };
        match upgraded {
            Ok(upgraded) => {
                let slot: Box<dyn Send + Sync> = Box::new((slot, ip, forwarded_ip));
                let mut connection = driver::connection(
                    TokioIo::new(upgraded),
                    peer,
                    state.driver_limits,
                    state.counters.clone(),
                    state.lingering.clone(),
                    slot,
                    Box::new(unauthorized),
                );
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
