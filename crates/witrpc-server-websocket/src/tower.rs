//! [`WebSocketEndpoint`]: witrpc mounted in an HTTP app (axum, hyper, any tower stack)
//! instead of owning a port. The app's server accepts the socket, runs its TLS and its
//! middleware, and hands the upgrade request to this `Service`; from there on the
//! connection takes the standalone listener's path (`upgrade.rs`, then the driver).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::http::{HeaderMap, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use witrpc_server::transport::{ConnectionHandler, ServerTransport, TransportHandle, TransportOptions};
use witrpc_server::{BoxFuture, CallContext, ServerError};

use crate::limits::WebSocketLimits;
use crate::origin::OriginPolicy;
use crate::stats::WebSocketStats;
use crate::upgrade::{Address, Keep, Upgrader, text_response};

/// A witrpc WebSocket endpoint to mount in an existing HTTP app: a tower
/// [`Service`](tower_service::Service) for `http::Request<B>` (any body type) and, at
/// the same time, the server's transport.
///
/// Give one clone to the server builder (`with_transport`) and mount another at a
/// route of the app; the route serves once the server has started
/// (`start_waiting_for_connection`) and answers **503** before and after. On its route:
/// - a WebSocket upgrade gets **101** and becomes a witrpc connection, driven, limited
///   and counted exactly as on the standalone listener: the pre-authorization message
///   and write-buffer caps, the origin policy (**403**), `max_clients` (**503** before
///   the upgrade; the slot frees when the connection ends), the pre-authorization cap
///   and per-address quotas of [`WebSocketLimits`] (**503** / **429**), and
///   [`WebSocketEndpoint::stats`];
/// - any other request (a plain `GET`, a `POST`) gets **400** at once.
///
/// The app's server owns the HTTP phase: its TLS, its request-head limits and timeouts
/// (the `max_header_bytes`, `max_headers`, `header_read_timeout` and
/// `max_pending_upgrades` fields of [`WebSocketLimits`] do not apply here), and its
/// middleware, which runs on the upgrade request before it reaches witrpc: a layer that
/// refuses the request keeps it from witrpc entirely. What the layers leave on the
/// request (headers, extensions such as an authenticated user) is kept for the
/// connection: the access-token validator's `authorize(.., connection)` and every
/// handler's [`CallContext`] read it through [`HttpContextExt`].
///
/// The peer address (for `CallContext::peer` and the per-address quotas) is taken from
/// the request's extensions: a `std::net::SocketAddr`, or with the `axum` feature axum's
/// `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`).
/// Without either, the address is unknown and not limited.
///
/// The app owns the address: while running, `WitServer::local_addr` reports `0.0.0.0:0`
/// and `client_url` an empty string.
///
/// Only HTTP/1.1 upgrades are served (`GET` with `Upgrade: websocket`); WebSocket over
/// HTTP/2 (RFC 8441 `CONNECT`) gets 400, so serve the route over HTTP/1.1.
///
/// **Shutdown**: hyper forgets a connection once it is upgraded, so the app's graceful
/// shutdown does not wait for witrpc connections; await the server's
/// [`shutdown`](witrpc_server::WitServer::shutdown) (or `stop_waiting_for_connection`)
/// in the app's shutdown future: the endpoint refuses new upgrades with 503, running
/// calls finish, and each connection closes with 1001 "server is shutting down".
///
/// ```
/// use witrpc_server::WitServerBuilder;
/// use witrpc_server_websocket::WebSocketEndpoint;
/// use witrpc_server_websocket::http::{Request, StatusCode};
///
/// async fn serve(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
///     let endpoint = WebSocketEndpoint::new(100);
///     let server = WitServerBuilder::new().with_service(service).with_transport(endpoint.clone()).build()?;
///     server.start_waiting_for_connection().await?;
///     // Mount `endpoint` in the app: axum's `Router::new().route_service("/ws", endpoint)`,
///     // or `endpoint.respond(request)` in hyper's `service_fn`. Then, in the app's
///     // shutdown future, drain and close the witrpc connections:
///     server.shutdown(std::time::Duration::from_secs(5)).await;
///     Ok(())
/// }
///
/// // Before its server starts (and after it stops) the endpoint answers 503, and a
/// // request that is not a WebSocket upgrade always gets a 4xx.
/// let endpoint = WebSocketEndpoint::new(100);
/// assert_eq!(endpoint.respond(Request::new(())).status(), StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[derive(Debug, Clone)]
pub struct WebSocketEndpoint {
    max_clients: usize,
    origins: OriginPolicy,
    limits: WebSocketLimits,
    stats: WebSocketStats,
    /// The running server's upgrade state; `None` while it is not running. Locked only
    /// to clone or swap the `Arc`, never across an await.
    running: Arc<Mutex<Option<Arc<Upgrader>>>>,
}

impl WebSocketEndpoint {
    /// An endpoint accepting at most `max_clients` connections at once (more get 503).
    /// Configure it (`with_*`) before giving a clone to the server builder: the
    /// builder's clone is the one whose settings apply.
    pub fn new(max_clients: usize) -> Self {
        Self {
            max_clients,
            origins: OriginPolicy::default(),
            limits: WebSocketLimits::default(),
            stats: WebSocketStats::default(),
            running: Arc::new(Mutex::new(None)),
        }
    }

    /// Lets browser pages from these origins connect (`https://app.example.com`). By
    /// default only pages from the request's own host may (`Origin` equal to `Host`);
    /// requests without an `Origin` header (native clients) always pass. An app that
    /// checks origins in its own layer can call [`WebSocketEndpoint::allow_any_origin`].
    #[must_use]
    pub fn with_allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins.allow(origins.into_iter().map(Into::into));
        self
    }

    /// Lets browser pages from **any** origin connect.
    #[must_use]
    pub fn allow_any_origin(mut self) -> Self {
        self.origins = OriginPolicy::Any;
        self
    }

    /// Replaces the admission and buffer limits (default: [`WebSocketLimits::default`]);
    /// the HTTP-phase fields do not apply to a mounted endpoint (see the type's docs).
    /// Invalid values are reported by `build()`.
    #[must_use]
    pub fn with_limits(mut self, limits: WebSocketLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Live counters of this endpoint, shared by its clones (connections not yet
    /// authorized, buffered bytes, refusals).
    pub fn stats(&self) -> WebSocketStats {
        self.stats.clone()
    }

    /// Whether the server using this endpoint is running (upgrades are accepted).
    pub fn is_running(&self) -> bool {
        self.upgrader().is_some()
    }

    /// Answers one request: what the `Service` does, for servers that take a plain
    /// function (hyper's `service_fn`). Never waits: the upgraded connection is served
    /// on its own task once the response has been written.
    pub fn respond<B>(&self, request: Request<B>) -> Response<Full<Bytes>> {
        let Some(upgrader) = self.upgrader() else {
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the witrpc server is not running; try again later\n",
            );
        };
        let peer = peer_address(&request);
        upgrader.upgrade(request, peer, Address::Unchecked, Keep::Parts)
    }

    fn upgrader(&self) -> Option<Arc<Upgrader>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The peer's address, as the app's server left it in the request's extensions.
fn peer_address<B>(request: &Request<B>) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    request.extensions().get::<SocketAddr>().copied()
}

impl<B> tower_service::Service<Request<B>> for WebSocketEndpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    /// Always ready: admission is decided per request (503 when full).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(request)))
    }
}

impl ServerTransport for WebSocketEndpoint {
    fn validate(&self) -> Result<(), ServerError> {
        crate::upgrade::validate(self.max_clients, &self.limits)
    }

    fn start(
        &self,
        handler: Arc<dyn ConnectionHandler>,
        options: TransportOptions,
    ) -> BoxFuture<'_, Result<Box<dyn TransportHandle>, ServerError>> {
        Box::pin(async move {
            self.validate()?;
            let upgrader = Arc::new(Upgrader::new(
                self.max_clients,
                self.limits.clone(),
                self.origins.clone(),
                self.stats.0.clone(),
                handler,
                &options,
            ));
            let (stop, tasks) = (upgrader.stop.clone(), upgrader.tasks.clone());
            {
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                if running.is_some() {
                    // Another server already serves this endpoint.
                    return Err(ServerError::AlreadyRunning);
                }
                *running = Some(upgrader);
            }
            tracing::info!(max_clients = self.max_clients, "witrpc endpoint mounted");
            Ok(Box::new(Handle { running: self.running.clone(), stop, tasks }) as Box<dyn TransportHandle>)
        })
    }
}

#[derive(Debug)]
struct Handle {
    running: Arc<Mutex<Option<Arc<Upgrader>>>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl TransportHandle for Handle {
    /// The app owns the socket: `0.0.0.0:0`.
    fn local_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    }

    /// The app knows its own URL: empty.
    fn client_url(&self) -> String {
        String::new()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // From here on the route answers 503; upgrades still waiting are abandoned.
            drop(self.running.lock().unwrap_or_else(PoisonError::into_inner).take());
            self.stop.cancel();
            self.tasks.close();
            self.tasks.wait().await;
        })
    }
}

/// Typed access to the HTTP request that opened a connection of a
/// [`WebSocketEndpoint`], from its [`CallContext`]: in the access-token validator's
/// `authorize(token, connection)` and in handlers (`CallContext::current()`). Kept once
/// per connection behind an `Arc`; `None` on the standalone listener, which keeps only
/// the headers named in `with_forwarded_headers` ([`CallContext::header`]).
///
/// ```
/// use witrpc_server::CallContext;
/// use witrpc_server_websocket::HttpContextExt;
///
/// #[derive(Clone)]
/// struct User(String);
///
/// fn user_name(connection: &CallContext) -> Option<&str> {
///     connection.request_extension::<User>().map(|user| user.0.as_str())
/// }
/// # let context = CallContext::new(Default::default(), None, None, Vec::new().into());
/// # assert!(user_name(&context).is_none() && context.request_headers().is_none());
/// ```
pub trait HttpContextExt {
    /// The upgrade request's parts (method, URI, headers, extensions).
    fn request_parts(&self) -> Option<&Parts>;

    /// The upgrade request's headers, as the app's middleware left them.
    fn request_headers(&self) -> Option<&HeaderMap> {
        self.request_parts().map(|parts| &parts.headers)
    }

    /// The extension of type `T` the app's middleware put on the upgrade request (e.g.
    /// the user its authentication layer found).
    fn request_extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.request_parts()?.extensions.get::<T>()
    }
}

impl HttpContextExt for CallContext {
    fn request_parts(&self) -> Option<&Parts> {
        self.request::<Parts>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    fn upgrade_request() -> Request<()> {
        Request::builder()
            .uri("/ws")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("valid request")
    }

    #[tokio::test]
    async fn refuses_with_503_until_a_server_runs_it() {
        let mut endpoint = WebSocketEndpoint::new(1);
        assert!(!endpoint.is_running());
        let response = endpoint.call(upgrade_request()).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn reads_the_peer_address_from_the_extensions() {
        let mut request = upgrade_request();
        assert_eq!(peer_address(&request), None);
        let addr = SocketAddr::from(([10, 0, 0, 7], 4242));
        request.extensions_mut().insert(addr);
        assert_eq!(peer_address(&request), Some(addr));
    }

    /// A cheap handle for every task and for axum's `route_service`.
    const _: () = {
        const fn handle<T: Clone + Send + Sync + 'static>() {}
        handle::<WebSocketEndpoint>();
    };

    #[test]
    fn zero_clients_is_a_configuration_error() {
        assert!(matches!(WebSocketEndpoint::new(0).validate(), Err(ServerError::Config(_))));
        assert!(WebSocketEndpoint::new(1).validate().is_ok());
    }
}
