//! `WitServer`: lifecycle (start, stop) and the state shared by all connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use witrpc_core::{EmitterAttachment, EventSink, GroupError, Member, Membership};

use crate::broker::BrokerError;
use crate::connection;
use crate::error::ServerError;
use crate::events::EventHub;
use crate::shared::Shared;
use crate::transport::{Connection, ConnectionHandler, ServerTransport, TransportHandle, TransportOptions};

struct Handler {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    drain: CancellationToken,
    tasks: TaskTracker,
}

impl ConnectionHandler for Handler {
    fn handle(&self, connection: Connection) {
        if self.drain.is_cancelled() {
            return; // dropping the connection closes it
        }
        let task = connection::serve(
            self.shared.clone(),
            connection,
            self.shutdown.clone(),
            self.drain.clone(),
            self.tasks.clone(),
        );
        self.tasks.spawn(task);
    }
}

#[derive(Debug)]
struct Running {
    transport: Box<dyn TransportHandle>,
    shutdown: CancellationToken,
    drain: CancellationToken,
    tasks: TaskTracker,
    _attachments: Vec<EmitterAttachment>,
}

/// Revokes users of one server (cloneable; see [`WitServer::revoke_user`]).
///
/// ```
/// # async fn demo(server: &witrpc_server::WitServer) {
/// let revoker = server.revoker();
/// tokio::spawn(async move {
///     // e.g. when the identity provider reports a compromised account:
///     let _closed_here = revoker.revoke_user("mallory").await;
/// });
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Revoker {
    hub: Arc<EventHub>,
}

impl Revoker {
    /// As [`WitServer::revoke_user`].
    ///
    /// # Errors
    /// [`BrokerError::Backend`] when the other nodes could not be told.
    ///
    /// # Cancel safety
    /// Cancel-safe: this node's connections are closed before the first await.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, BrokerError> {
        self.hub.revoke_user(user).await
    }
}

/// How long `stop_waiting_for_connection` waits for connections and running calls.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A WitRPC server: services, a transport, and the connections it accepts.
///
/// Build one with [`crate::WitServerBuilder`]. The server is idle until
/// [`WitServer::start_waiting_for_connection`]; it can be stopped and started again.
#[derive(Debug)]
pub struct WitServer {
    shared: Arc<Shared>,
    transport: Box<dyn ServerTransport>,
    running: tokio::sync::Mutex<Option<Running>>,
    endpoint: Mutex<Option<(SocketAddr, String)>>,
}

impl WitServer {
    pub(crate) fn new(shared: Shared, transport: Box<dyn ServerTransport>) -> Self {
        Self { shared: Arc::new(shared), transport, running: tokio::sync::Mutex::new(None), endpoint: Mutex::new(None) }
    }

    /// Binds the transport and starts accepting connections; returns once listening.
    ///
    /// # Errors
    /// [`ServerError::Bind`] / [`ServerError::Resolve`] when the endpoint cannot be
    /// bound, [`ServerError::AlreadyRunning`] when called twice.
    ///
    /// # Cancel safety
    /// If the future is dropped before it completes, the server is not started.
    pub async fn start_waiting_for_connection(&self) -> Result<(), ServerError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(ServerError::AlreadyRunning);
        }
        let shutdown = CancellationToken::new();
        let drain = CancellationToken::new();
        let tasks = TaskTracker::new();
        let handler = Arc::new(Handler {
            shared: self.shared.clone(),
            shutdown: shutdown.clone(),
            drain: drain.clone(),
            tasks: tasks.clone(),
        });
        let options = TransportOptions {
            max_message_size: self.shared.config.max_message_size,
            max_handshake_message_size: self.shared.config.max_handshake_message_size,
            forwarded_headers: self.shared.config.forwarded_headers.clone().into(),
        };
        let transport = self.transport.start(handler, options).await?;
        let sink: Arc<dyn EventSink> = self.shared.hub.clone();
        let attachments = self
            .shared
            .registry
            .services()
            .iter()
            .filter_map(|s| s.event_emitter())
            .map(|e| e.attach(sink.clone()))
            .collect();
        let url = transport.client_url();
        tracing::info!(%url, "listening");
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = Some((transport.local_addr(), url));
        *running = Some(Running { transport, shutdown, drain, tasks, _attachments: attachments });
        Ok(())
    }

    /// [`WitServer::shutdown`] with a 5 s deadline (the .NET name).
    ///
    /// # Cancel safety
    /// Dropping the future part-way leaves the server stopped or stopping.
    pub async fn stop_waiting_for_connection(&self) {
        self.shutdown(STOP_GRACE).await;
    }

    /// Graceful drain: stops accepting and frees the port at once; every connection
    /// stops reading new requests, lets its running calls finish and sends their
    /// responses, then closes with 1001 "server is shutting down". Whatever is still
    /// running at `deadline` is cut off (connections closed, responses dropped).
    /// Does nothing if the server is not running; the server can be started again.
    ///
    /// # Cancel safety
    /// Dropping the future part-way leaves the server stopped or stopping.
    pub async fn shutdown(&self, deadline: Duration) {
        let Some(running) = self.running.lock().await.take() else { return };
        running.transport.stop().await;
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = None;
        running.drain.cancel();
        running.tasks.close();
        if tokio::time::timeout(deadline, running.tasks.wait()).await.is_err() {
            tracing::warn!(?deadline, "calls still running at the shutdown deadline; closing their connections");
            running.shutdown.cancel();
            if tokio::time::timeout(STOP_GRACE, running.tasks.wait()).await.is_err() {
                tracing::warn!("connections did not close within the grace period");
            }
        }
        running.shutdown.cancel();
        tracing::info!("stopped");
    }

    /// The bound address while running (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(a, _)| *a)
    }

    /// The URL clients connect to while running, e.g. `ws://127.0.0.1:5000/ws`.
    pub fn client_url(&self) -> Option<String> {
        self.endpoint.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, u)| u.clone())
    }

    /// Connections currently open (authorized or not).
    pub fn connection_count(&self) -> usize {
        self.shared.stats.connections()
    }

    /// The server's figures now: connections, calls and their latency, events, bytes,
    /// queued bytes, slow consumers, and the process's CPU time and memory. The same
    /// counters feed the [`metrics`](crate::metrics) facade.
    ///
    /// ```
    /// # fn demo(server: &witrpc_server::WitServer) {
    /// let figures = server.stats();
    /// println!("{} calls, {} open connections", figures.calls, figures.connections);
    /// # }
    /// ```
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The live counters (cheap to clone), for a sampler that snapshots them itself.
    pub fn live_stats(&self) -> crate::stats::ServerStats {
        self.shared.stats.clone()
    }

    /// Connections accepted since the server was built.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.stats.counter(|c| &c.life.accepted)
    }

    /// WitRPC messages received (all connections) since the server was built.
    pub fn messages_received(&self) -> u64 {
        self.shared.stats.counter(|c| &c.read.messages_in)
    }

    /// Clients disconnected since the server was built because their outbound queue
    /// overflowed (they did not read their events fast enough).
    pub fn slow_consumer_disconnects(&self) -> u64 {
        self.shared.stats.counter(|c| &c.life.slow_consumers)
    }

    /// This node's id in its cluster (the broker's; `"local"` without one).
    pub fn node_id(&self) -> &str {
        self.shared.hub.node_id()
    }

    /// Adds connection `connection` (open and authorized on this server) to `group`,
    /// from outside a method (for one, use [`witrpc_core::CallContext::join_group`]). Events raised
    /// to the group reach it, on every node of the cluster, once this returns.
    ///
    /// # Errors
    /// [`GroupError::UnknownConnection`] when it is not open here, an invalid name, too
    /// many groups, or [`GroupError::Backplane`] (local membership changed regardless).
    ///
    /// # Cancel safety
    /// Not cancel-safe: dropped part-way, the join may be visible on this node only.
    pub async fn join_group(&self, connection: Uuid, group: &str) -> Result<(), GroupError> {
        self.shared.hub.join(connection, group).await
    }

    /// Removes connection `connection` from `group` (a no-op when it is not in it).
    ///
    /// # Errors
    /// An invalid name or [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Not cancel-safe, as [`WitServer::join_group`].
    pub async fn leave_group(&self, connection: Uuid, group: &str) -> Result<(), GroupError> {
        self.shared.hub.leave(connection, group).await
    }

    /// The connections in `group` on every node of the cluster.
    ///
    /// # Errors
    /// An invalid name or [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn group_members(&self, group: &str) -> Result<Vec<Member>, GroupError> {
        self.shared.hub.group_members(group).await
    }

    /// The connections of user `user` on every node of the cluster.
    ///
    /// # Errors
    /// [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn user_connections(&self, user: &str) -> Result<Vec<Member>, GroupError> {
        self.shared.hub.user_connections(user).await
    }

    /// Whether connection `connection` is open and authorized on this server.
    pub fn is_connected(&self, connection: Uuid) -> bool {
        self.shared.hub.is_local(connection)
    }

    /// Closes every connection of `user` (the [`witrpc_core::Identity`] name its
    /// validator gave) at once, with 1008 "access revoked": on this node, and on every
    /// other node of the cluster through the broker. Returns how many were closed on
    /// this node.
    ///
    /// Revoking stores nothing: the validator must refuse the user's tokens from now
    /// on, or the client simply connects (or refreshes) again.
    ///
    /// # Errors
    /// [`BrokerError::Backend`] when the other nodes could not be told (this node's
    /// connections are closed regardless).
    ///
    /// # Cancel safety
    /// Cancel-safe: this node's connections are closed before the first await.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, BrokerError> {
        self.shared.hub.revoke_user(user).await
    }

    /// A handle that revokes users of this server from anywhere (a service, an admin
    /// task), without holding the server: see [`WitServer::revoke_user`].
    pub fn revoker(&self) -> Revoker {
        Revoker { hub: self.shared.hub.clone() }
    }

    /// Authorizations refused since the server was built.
    pub fn authorization_failures(&self) -> u64 {
        self.shared.stats.counter(|c| &c.life.auth_failures)
    }
}
