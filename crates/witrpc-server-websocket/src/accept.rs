//! The accept loop and admission before any byte is read: the cap on connections that
//! have not finished the upgrade, per-address quotas, TLS, and `accept` errors that back
//! off instead of spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::listener::State;
use crate::per_ip::Refusal;
use crate::router::{self, Admitted};
use crate::stats::Gauge;

/// First wait after a failed `accept`; doubles per failure in a row.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest wait after failed `accept`s in a row.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut backoff: Option<Duration> = None;
    loop {
        let accepted = tokio::select! {
            () = state.upgrader.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = None;
                admit(tcp, peer, &state);
            }
            // The one connection failed before it was accepted; nothing to wait for.
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) =>
            {
                tracing::debug!(error = %e, "accept: connection gone");
            }
            Err(e) => {
                // Usually out of file descriptors: back off exponentially instead of
                // spinning, so the connections that hold them can finish.
                state.upgrader.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
                backoff = Some(delay);
                tracing::warn!(error = %e, retry_in = ?delay, "accept failed; backing off");
                tokio::select! {
                    () = state.upgrader.stop.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::debug!("listener closed");
}

/// Applies the admission limits that need nothing from the peer, then serves it.
fn admit(tcp: TcpStream, peer: SocketAddr, state: &Arc<State>) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let now = Instant::now();
    let Ok(pending) = state.pending_upgrades.clone().try_acquire_owned() else {
        // Logged at debug: under a flood one line per socket would be the bigger harm;
        // `WebSocketStats::refused` counts them.
        tracing::debug!(%peer, "too many connections before the upgrade; refusing with 503");
        refuse(tcp, state, StatusCode::SERVICE_UNAVAILABLE, "too many connections are being set up; try again later\n");
        return;
    };
    // Behind a trusted proxy the client's address comes with the request headers, so
    // the per-address check waits for them (in the router).
    let ip = if state.upgrader.limits.trusted_proxies.contains(&peer.ip()) {
        None
    } else {
        match state.upgrader.per_ip.admit(peer.ip(), now) {
            Ok(guard) => guard.map(Arc::new),
            Err(refusal) => {
                tracing::debug!(%peer, ?refusal, "per-address limit; refusing");
                let (status, body) = match refusal {
                    Refusal::Concurrent => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many connections from your address; close some and try again\n",
                    ),
                    Refusal::Rate => {
                        (StatusCode::TOO_MANY_REQUESTS, "too many new connections from your address; slow down\n")
                    }
                };
                refuse(tcp, state, status, body);
                return;
            }
        }
    };
    let pending = (pending, Gauge::new(&state.upgrader.counters, |c| &c.pending_upgrades));
    let admitted = Admitted { _pending: pending, ip };
    let deadline = now + state.upgrader.limits.header_read_timeout;
    state.upgrader.tasks.spawn(serve_tcp(tcp, peer, state.clone(), deadline, admitted));
}

/// Answers a refused plain-HTTP socket without reading it or waiting (a fresh socket's
/// send buffer takes it); TLS sockets are just closed (answering would need a handshake).
fn refuse(tcp: TcpStream, state: &State, status: StatusCode, body: &str) {
    state.upgrader.counters.refused.fetch_add(1, Ordering::Relaxed);
    if state.tls.is_none() {
        let _best_effort = tcp.try_write(&router::raw_response(status, body));
        // Closing with unread bytes resets the connection, which can destroy the answer
        // before the peer reads it: take what has already arrived (bounded, no waiting).
        let mut scratch = [0u8; 4096];
        for _ in 0..4 {
            if !matches!(tcp.try_read(&mut scratch), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

async fn serve_tcp(tcp: TcpStream, peer: SocketAddr, state: Arc<State>, deadline: Instant, admitted: Admitted) {
    let Some(acceptor) = state.tls.clone() else {
        return router::serve_http(tcp, peer, state, deadline, admitted).await;
    };
    // The TLS handshake counts against the same deadline as the request head.
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
        () = state.upgrader.stop.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => router::serve_http(tls, peer, state, deadline, admitted).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
