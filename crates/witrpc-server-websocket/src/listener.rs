//! [`WebSocketTransport`]: configuration, binding, and the state shared by the accept
//! loop (`accept.rs`) and the HTTP phase (`router.rs`); the upgrade is `upgrade.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use witrpc_server::transport::{ConnectionHandler, ServerTransport, TransportHandle, TransportOptions};
use witrpc_server::{BoxFuture, ServerError};

use crate::endpoint::Endpoint;
use crate::limits::WebSocketLimits;
use crate::origin::OriginPolicy;
use crate::stats::WebSocketStats;
use crate::tls::TlsMaterial;
use crate::upgrade::Upgrader;

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
    /// A console mounted with `with_console`: answers before `http`.
    console: Option<HttpHandler>,
    limits: WebSocketLimits,
    stats: WebSocketStats,
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
            console: None,
            limits: WebSocketLimits::default(),
            stats: WebSocketStats::default(),
        }
    }

    /// Replaces the admission and buffer limits ([`WebSocketLimits`]); invalid values
    /// are reported by `build()`.
    pub fn set_limits(&mut self, limits: WebSocketLimits) {
        self.limits = limits;
    }

    /// The limits in effect.
    pub fn limits(&self) -> &WebSocketLimits {
        &self.limits
    }

    /// Live counters of this transport (shared by its clones): connections before the
    /// upgrade and before authorization, buffered bytes, refusals.
    pub fn stats(&self) -> WebSocketStats {
        self.stats.clone()
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

    /// Answers requests under a console's path before the HTTP handler sees them.
    #[cfg_attr(not(feature = "console"), allow(dead_code))]
    pub(crate) fn mount_console(&mut self, console: HttpHandler) {
        self.console = Some(console);
    }

    /// The console first, then the application's handler.
    fn plain_http(&self) -> Option<HttpHandler> {
        match (self.console.clone(), self.http.clone()) {
            (Some(console), Some(app)) => {
                Some(HttpHandler(Arc::new(move |parts| (console.0)(parts).or_else(|| (app.0)(parts)))))
            }
            (console, app) => console.or(app),
        }
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
        crate::upgrade::validate(self.max_clients, &self.limits)
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
                match bind(*addr, self.limits.accept_backlog) {
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
            let upgrader = Arc::new(Upgrader::new(
                self.max_clients,
                self.limits.clone(),
                self.origins.clone(),
                self.stats.0.clone(),
                handler,
                &options,
            ));
            let (stop, tasks) = (upgrader.stop.clone(), upgrader.tasks.clone());
            let state = Arc::new(State {
                endpoint,
                pending_upgrades: Arc::new(Semaphore::new(self.limits.pending_upgrades(self.max_clients))),
                tls,
                http: self.plain_http(),
                upgrader,
            });
            tasks.spawn(crate::accept::accept_loop(listener, state));
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

/// What the accept loop and the HTTP phase share; the upgrade's own state is in
/// [`Upgrader`], shared with the mounted endpoint.
pub(crate) struct State {
    pub(crate) endpoint: Endpoint,
    /// Held from accept until the HTTP phase ends.
    pub(crate) pending_upgrades: Arc<Semaphore>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) http: Option<HttpHandler>,
    pub(crate) upgrader: Arc<Upgrader>,
}

/// A listening socket on `addr` with an accept queue of `backlog` (what
/// `TcpListener::bind` does, with `SO_REUSEADDR` as there, but a longer queue).
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
