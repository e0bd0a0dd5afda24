//! What a served contract looks like to the server: descriptors and dispatch.
//!
//! `#[witrpc::service]` implements [`Service`] for you; the server only sees this
//! trait, so it never depends on user types.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::error::ParameterError;
use crate::events::EventEmitter;
use crate::groups::{GroupError, Member, Membership};
use crate::serializer::ParameterSerializer;

pub use crate::descriptor::{BoxFuture, EventDescriptor, MethodDescriptor, ResolvedContract, ServiceDescriptor};

/// The identity an [`AccessTokenValidator`](../witrpc_server/trait.AccessTokenValidator.html)
/// gave a connection (e.g. a user name or a subject id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(Arc<str>);

impl Identity {
    /// An identity named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    static CURRENT: CallContext;
}

/// Who is calling: the connection, its identity, peer address and selected HTTP
/// headers. A method reads it with [`CallContext::current`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallContext {
    /// Server-side id of the connection (also the envelope id of its events).
    pub connection_id: Uuid,
    /// Remote address, when the transport knows it.
    pub peer: Option<SocketAddr>,
    /// The identity the access-token validator gave the connection, if any.
    pub identity: Option<Identity>,
    /// The upgrade request's headers that the server was configured to keep
    /// (lower-case names), e.g. `user-agent`, `x-forwarded-for`.
    pub headers: Arc<[(String, String)]>,
    /// Fires when the calling connection closes: long work started by a call stops
    /// with it (see [`ConnectionClosed`]).
    pub closed: ConnectionClosed,
    /// The protocol the connection speaks (3: .NET WitRPC 3.x, 2: .NET 2.x), once its
    /// Initialization was accepted.
    pub protocol: Option<crate::v2::ProtocolVersion>,
    /// The server's group membership, set by the server for served calls.
    membership: Option<Arc<dyn Membership>>,
    /// What the transport kept of the request that opened the connection.
    request: Option<ConnectionRequest>,
}

/// What a transport kept of the request that opened a connection, for the access-token
/// validator and for handlers ([`CallContext::request`]): for the WebSocket endpoint
/// mounted in an HTTP app, the upgrade request's `http::request::Parts` (headers and the
/// extensions the app's middleware set). Held once per connection behind an `Arc`, so
/// every call's context shares it; the transport crate offers typed accessors.
///
/// ```
/// use std::sync::Arc;
/// use witrpc_core::ConnectionRequest;
/// let request = ConnectionRequest::new(Arc::new(String::from("upgrade request")));
/// assert_eq!(request.downcast_ref::<String>().map(String::as_str), Some("upgrade request"));
/// assert!(request.downcast_ref::<u32>().is_none());
/// ```
#[derive(Clone)]
pub struct ConnectionRequest(Arc<dyn Any + Send + Sync>);

impl ConnectionRequest {
    /// Wraps the transport's value.
    pub fn new<T: Any + Send + Sync>(value: Arc<T>) -> Self {
        Self(value)
    }

    /// The value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for ConnectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionRequest")
    }
}

/// A signal that a connection has closed; cheap to clone, and clones share it.
///
/// A method that starts long work (a job, a stream of events) takes
/// `CallContext::current()`'s `closed` along and stops when it fires, so a client
/// that goes away does not leave work running on the server:
///
/// ```
/// # async fn job(steps: u32) {
/// let closed = witrpc_core::CallContext::current().map(|c| c.closed).unwrap_or_default();
/// for _step in 0..steps {
///     if closed.is_closed() {
///         return; // the caller is gone
///     }
///     // ... one step of work, then let other tasks run:
///     tokio::task::yield_now().await;
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionClosed(Arc<ClosedInner>);

#[derive(Debug, Default)]
struct ClosedInner {
    closed: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl ConnectionClosed {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal (the server does this when the connection ends).
    pub fn close(&self) {
        self.0.closed.store(true, std::sync::atomic::Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Completes once the connection has closed.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl CallContext {
    /// A context for `connection_id`.
    pub fn new(
        connection_id: Uuid,
        peer: Option<SocketAddr>,
        identity: Option<Identity>,
        headers: Arc<[(String, String)]>,
    ) -> Self {
        Self {
            connection_id,
            peer,
            identity,
            headers,
            closed: ConnectionClosed::new(),
            protocol: None,
            membership: None,
            request: None,
        }
    }

    /// This context with what the transport kept of the connection's request (the
    /// server does this).
    #[must_use]
    pub fn with_request(mut self, request: Option<ConnectionRequest>) -> Self {
        self.request = request;
        self
    }

    /// What the transport kept of the request that opened the connection, if it is a
    /// `T`: for the WebSocket endpoint mounted in an HTTP app, `http::request::Parts`
    /// (the WebSocket crate's `HttpContextExt` gives typed accessors). `None` when the
    /// transport kept nothing (the standalone listener keeps only
    /// [`CallContext::headers`]).
    pub fn request<T: Any>(&self) -> Option<&T> {
        self.request.as_ref()?.downcast_ref()
    }

    /// This context with group operations served by `membership` (the server does this).
    #[must_use]
    pub fn with_membership(mut self, membership: Arc<dyn Membership>) -> Self {
        self.membership = Some(membership);
        self
    }

    fn membership(&self) -> Result<&Arc<dyn Membership>, GroupError> {
        self.membership.as_ref().ok_or(GroupError::NoServer)
    }

    /// Adds the calling connection to `group`: events raised to the group reach it, on
    /// every node of the cluster, once this returns. Joining twice is a no-op; a
    /// connection leaves every group when it closes.
    ///
    /// ```
    /// # async fn join() -> Result<(), witrpc_core::GroupError> {
    /// if let Some(caller) = witrpc_core::CallContext::current() {
    ///     caller.join_group("room-1").await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`GroupError::InvalidName`], [`GroupError::TooManyGroups`], or
    /// [`GroupError::Backplane`] (local membership changed regardless).
    ///
    /// # Cancel safety
    /// Not cancel-safe: dropped part-way, the join may be visible on this node only.
    pub async fn join_group(&self, group: &str) -> Result<(), GroupError> {
        self.membership()?.join(self.connection_id, group).await
    }

    /// Removes the calling connection from `group` (a no-op when it is not in it).
    ///
    /// # Errors
    /// [`GroupError::InvalidName`] or [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Not cancel-safe, as [`CallContext::join_group`].
    pub async fn leave_group(&self, group: &str) -> Result<(), GroupError> {
        self.membership()?.leave(self.connection_id, group).await
    }

    /// The connections in `group` on every node of the cluster.
    ///
    /// # Errors
    /// [`GroupError::InvalidName`] or [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn group_members(&self, group: &str) -> Result<Vec<Member>, GroupError> {
        self.membership()?.group_members(group).await
    }

    /// The connections of user `user` on every node of the cluster.
    ///
    /// # Errors
    /// [`GroupError::Backplane`].
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn user_connections(&self, user: &str) -> Result<Vec<Member>, GroupError> {
        self.membership()?.user_connections(user).await
    }

    /// The context of the call being served on this task, or `None` outside a call.
    ///
    /// Only the method's own future sees it; tasks it spawns do not, unless given a clone.
    ///
    /// ```
    /// assert!(witrpc_core::CallContext::current().is_none());
    /// ```
    pub fn current() -> Option<CallContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The value of header `name` (case-insensitive), if it was kept.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Runs `future` with this context as [`CallContext::current`].
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }
}

/// The input of one method invocation.
#[derive(Debug)]
pub struct MethodCall {
    /// Argument blobs, one per declared parameter (the server checks the count).
    pub parameters: Vec<Bytes>,
    /// The server's parameter serializer.
    pub serializer: Arc<dyn ParameterSerializer>,
    /// The caller.
    pub context: CallContext,
}

/// Why a method invocation did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    /// An argument could not be decoded (answered with 400).
    #[error("invalid argument")]
    InvalidArgument(#[source] ParameterError),
    /// The method returned an error (answered with 500, details = this message).
    #[error("{details}")]
    Failed {
        /// The error's `Display` text, sent to the caller as `ErrorDetails`.
        details: String,
    },
    /// The result could not be encoded (answered with 500).
    #[error("cannot encode the result")]
    EncodeResult(#[source] ParameterError),
}

/// A contract implementation the server can dispatch to.
///
/// Generated by `#[witrpc::service]`; implement by hand only for dynamic services.
pub trait Service: Send + Sync + 'static {
    /// The contract this service implements.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Runs method number `method` (an index into `descriptor().methods`).
    ///
    /// Returns the encoded result, `None` for `()` / null. The future must not borrow
    /// `self`, so the server can run many calls concurrently.
    fn call(&self, method: usize, call: MethodCall) -> BoxFuture<'static, Result<Option<Vec<u8>>, MethodError>>;

    /// The emitter this service's events are raised through, if it has events.
    fn event_emitter(&self) -> Option<&EventEmitter> {
        None
    }
}

impl fmt::Debug for dyn Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service").field("contract", &self.descriptor().contract).finish()
    }
}
