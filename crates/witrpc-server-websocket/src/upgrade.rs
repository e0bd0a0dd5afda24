//! The upgrade, shared by the standalone listener (`router.rs`) and the endpoint mounted
//! in an app (`tower.rs`): origin policy, the WebSocket handshake checks, per-address
//! quotas, `max_clients` (503), the pre-authorization cap (503), and the hand-off of
//! the upgraded socket to the driver. One code path, so both count and refuse alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CONNECTION, HOST, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use witrpc_core::ConnectionRequest;
use witrpc_server::ServerError;
use witrpc_server::transport::{ConnectionHandler, TransportOptions};

use crate::driver::{self, DriverLimits};
use crate::limits::WebSocketLimits;
use crate::origin::OriginPolicy;
use crate::per_ip::{self, IpGuard, PerIp, Refusal};
use crate::stats::{Counters, Gauge};

/// Sockets kept at once after their connection ended while the peer was still sending
/// (each for at most 1 s and 1 MiB read); beyond it they are closed at once.
const MAX_LINGERING: usize = 64;

/// What every upgrade of one running transport shares.
pub(crate) struct Upgrader {
    /// `max_clients`: held from the upgrade to the end of the connection.
    slots: Arc<Semaphore>,
    max_clients: usize,
    /// Held from the upgrade until authorization.
    unauthorized: Arc<Semaphore>,
    pub(crate) per_ip: PerIp,
    handler: Arc<dyn ConnectionHandler>,
    driver_limits: DriverLimits,
    pub(crate) limits: WebSocketLimits,
    /// Cancelled when the transport stops.
    pub(crate) stop: CancellationToken,
    /// Every task of this transport (connections in the HTTP phase, upgrades).
    pub(crate) tasks: TaskTracker,
    origins: OriginPolicy,
    forwarded_headers: Arc<[String]>,
    pub(crate) counters: Arc<Counters>,
    /// Places for sockets kept briefly after their connection ended, so the peer reads
    /// the close frame before the reset (see `driver.rs`).
    lingering: Arc<Semaphore>,
}

impl std::fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrader")
            .field("max_clients", &self.max_clients)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// How the peer's address was counted before the request reached the upgrade.
#[derive(Debug)]
#[cfg_attr(
    not(feature = "tower"),
    expect(dead_code, reason = "`Unchecked` is the mounted endpoint's (feature `tower`)")
)]
pub(crate) enum Address {
    /// At accept (the standalone listener): the guard, or `None` when the address is not
    /// limited or is a trusted proxy (whose client is known only from the headers).
    Admitted(Option<Arc<IpGuard>>),
    /// Not yet (mounted in an app, whose server accepted the socket).
    Unchecked,
}

/// What the connection keeps of its upgrade request for the call context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "tower"), expect(dead_code, reason = "`Parts` is the mounted endpoint's (feature `tower`)"))]
pub(crate) enum Keep {
    /// Only the configured forwarded headers (the standalone listener: a few bytes per
    /// connection).
    ForwardedHeaders,
    /// Those, and the request's parts (headers and the app's extensions) behind an `Arc`.
    Parts,
}

/// The settings both transports (listener and mounted endpoint) must have right.
pub(crate) fn validate(max_clients: usize, limits: &WebSocketLimits) -> Result<(), ServerError> {
    if max_clients == 0 {
        return Err(ServerError::Config("max_clients must be greater than 0"));
    }
    if let Some(problem) = limits.problem() {
        return Err(ServerError::Config(problem));
    }
    Ok(())
}

impl Upgrader {
    pub(crate) fn new(
        max_clients: usize,
        limits: WebSocketLimits,
        origins: OriginPolicy,
        counters: Arc<Counters>,
        handler: Arc<dyn ConnectionHandler>,
        options: &TransportOptions,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_clients)),
            max_clients,
            unauthorized: Arc::new(Semaphore::new(limits.unauthorized(max_clients))),
            per_ip: PerIp::new(&limits),
            handler,
            driver_limits: DriverLimits {
                message_before_auth: options.max_handshake_message_size,
                message: options.max_message_size,
                write_before_auth: limits.max_write_buffer_before_authorization,
            },
            limits,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            origins,
            forwarded_headers: options.forwarded_headers.clone(),
            counters,
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
        }
    }

    /// Answers a request addressed to the WebSocket endpoint: **101** and the connection
    /// handed to the server once hyper completes the upgrade, or a refusal (403 foreign
    /// origin, 400 not a WebSocket upgrade, 503/429 per-address quota, 503 full).
    pub(crate) fn upgrade<B>(
        self: &Arc<Self>,
        mut req: Request<B>,
        peer: Option<SocketAddr>,
        address: Address,
        keep: Keep,
    ) -> Response<Full<Bytes>> {
        let origin = req.headers().get(ORIGIN).map(|v| v.to_str().unwrap_or("invalid"));
        let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
        if !self.origins.permits(origin, host) {
            tracing::warn!(?peer, origin = ?origin, "cross-origin WebSocket request refused with 403");
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
        let late_ip = match self.admit_address(&req, peer, &address) {
            Ok(guard) => guard,
            Err(refusal) => return refusal_response(refusal),
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(?peer, max_clients = self.max_clients, "server full; refusing connection with 503");
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "server is full; try again later\n");
        };
        let Ok(unauthorized) = self.unauthorized.clone().try_acquire_owned() else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?peer, "too many connections waiting to authorize; refusing with 503");
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections are authorizing; try again later\n",
            );
        };
        let unauthorized = (unauthorized, Gauge::new(&self.counters, |c| &c.unauthorized));
        let headers: Vec<(String, String)> = self
            .forwarded_headers
            .iter()
            .filter_map(|name| {
                let value = req.headers().get(name.as_str())?.to_str().ok()?;
                Some((name.clone(), value.to_owned()))
            })
            .collect();
        let on_upgrade = hyper::upgrade::on(&mut req);
        let request = match keep {
            Keep::ForwardedHeaders => None,
            Keep::Parts => Some(ConnectionRequest::new(Arc::new(req.into_parts().0))),
        };
        let early_ip = match address {
            Address::Admitted(guard) => guard,
            Address::Unchecked => None,
        };
        let this = self.clone();
        self.tasks.spawn(async move {
            let upgraded = tokio::select! {
                r = on_upgrade => r,
                () = this.stop.cancelled() => return,
            };
            match upgraded {
                Ok(upgraded) => {
                    let slot: Box<dyn Send + Sync> = Box::new((slot, early_ip, late_ip));
                    let mut connection = driver::connection(
                        TokioIo::new(upgraded),
                        peer,
                        this.driver_limits,
                        this.counters.clone(),
                        this.lingering.clone(),
                        slot,
                        Box::new(unauthorized),
                    );
                    connection.headers = headers;
                    connection.request = request;
                    this.handler.handle(connection);
                }
                Err(e) => tracing::debug!(?peer, error = %e, "upgrade failed"),
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

    /// The per-address quota for the addresses not counted at accept: a client behind a
    /// trusted proxy (known only from the headers), or any peer of a mounted endpoint.
    fn admit_address<B>(
        &self,
        req: &Request<B>,
        peer: Option<SocketAddr>,
        address: &Address,
    ) -> Result<Option<IpGuard>, Refusal> {
        let Some(peer) = peer.filter(|_| self.per_ip.enabled()) else { return Ok(None) };
        let client = if self.limits.trusted_proxies.contains(&peer.ip()) {
            per_ip::client_ip(peer.ip(), &self.limits.trusted_proxies, req.headers())
        } else if matches!(address, Address::Unchecked) {
            peer.ip()
        } else {
            return Ok(None);
        };
        self.per_ip.admit(client, Instant::now()).inspect_err(|refusal| {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, %client, ?refusal, "per-address limit; refusing the upgrade");
        })
    }
}

/// The answer to a per-address refusal.
fn refusal_response(refusal: Refusal) -> Response<Full<Bytes>> {
    match refusal {
        Refusal::Concurrent => text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections from your address; close some and try again\n",
        ),
        Refusal::Rate => {
            text_response(StatusCode::TOO_MANY_REQUESTS, "too many new connections from your address; slow down\n")
        }
    }
}

/// A small plain-text answer.
pub(crate) fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn header_has<B>(req: &Request<B>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
