//! The cluster seam: a [`Broker`] carries events between the nodes (server processes)
//! of a cluster and keeps their presence (who is in which group, which connections a
//! user has), so several servers behave as one.
//!
//! The server's event hub does the routing and decides what to send: it delivers to
//! local connections first, encodes an event's parameters once per node, subscribes a
//! node to a topic only while it has receivers for it (one subscription per topic per
//! node, reference-counted) and never publishes an event whose receivers are all local.
//! A broker only moves opaque frames and stores presence; so another one (NATS, say)
//! needs only this trait. The frame format and topic names are in `ARCHITECTURE.md`.
//!
//! [`InMemoryBroker`] is the default: a single node, nothing leaves the process.
//! `witrpc-broker-redis` is the Redis one.
//!
//! Frames carry event parameters in plain text (encryption is per connection, at the
//! edge): protect the broker's transport (TLS, ACLs) as you protect the server's.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;
use witrpc_core::Member;

pub(crate) mod frame;

/// A presence index: the members of a group, or the connections of a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PresenceKey {
    /// The connections in a group.
    Group(Arc<str>),
    /// The connections of a user.
    User(Arc<str>),
}

/// What a broker could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The backend failed or did not answer in time.
    #[error("the broker's backend failed; check that it is reachable (the operation is retried when it is back)")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Receives the frames a broker reads from its subscriptions; the event hub.
pub trait BrokerInbound: Send + Sync + 'static {
    /// One frame from another node. Must not block.
    fn deliver(&self, frame: Bytes);

    /// Another node revoked `user` ([`Broker::revoke_user`]): close the user's
    /// connections here. Must not block. Default: nothing.
    fn revoke_user(&self, user: &str) {
        let _ = user;
    }
}

/// Moves event frames between the nodes of a cluster and stores their presence.
///
/// Topics are short strings the hub chooses (`all`, `g:<group>`, `u:<user>`); a broker
/// may prefix them with a namespace. Every operation is bounded: a slow backend must
/// not grow memory. What a broker drops it counts and logs, never silently.
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// This node's id, unique in the cluster (it names the node in [`Member::node`]).
    fn node_id(&self) -> &str;

    /// Whether other nodes may exist. When `false` the hub never builds or publishes
    /// frames.
    fn is_clustered(&self) -> bool;

    /// Where frames read from subscriptions go; called once, when the server is built.
    fn attach(&self, inbound: Weak<dyn BrokerInbound>);

    /// Starts receiving the frames published to `topic` by other nodes.
    ///
    /// # Errors
    /// [`BrokerError::Backend`]; the broker keeps the subscription wanted and retries.
    async fn subscribe(&self, topic: &str) -> Result<(), BrokerError>;

    /// Stops receiving `topic`.
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn unsubscribe(&self, topic: &str) -> Result<(), BrokerError>;

    /// Whether another node may have receivers for `topic`; when `false` the hub does not
    /// publish. It must err towards `true`: a wrong `false` loses events. Default: `true`.
    fn has_remote_receivers(&self, topic: &str) -> bool {
        let _ = topic;
        true
    }

    /// Queues `frame` for the nodes subscribed to `topic`. Never waits: with no room
    /// the frame is dropped, counted and logged.
    fn publish(&self, topic: &str, frame: Bytes);

    /// Records `member` under `key`, visible from every node until removed or until
    /// this node stops refreshing it (a crashed node's entries expire).
    ///
    /// # Errors
    /// [`BrokerError::Backend`]; the entry is kept locally and written again later.
    async fn add_presence(&self, key: &PresenceKey, member: &Member) -> Result<(), BrokerError>;

    /// Removes `connection` from `key`.
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn remove_presence(&self, key: &PresenceKey, connection: Uuid) -> Result<(), BrokerError>;

    /// Every member under `key`, on every live node.
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn presence(&self, key: &PresenceKey) -> Result<Vec<Member>, BrokerError>;

    /// Tells every other node to close `user`'s connections
    /// ([`BrokerInbound::revoke_user`] there); the calling node closes its own. A
    /// control message, not stored: a node that is down or cut off at that moment
    /// does not see it (its connections of the user then hold until their tokens
    /// expire). Default (a single node): nothing to send.
    ///
    /// # Errors
    /// [`BrokerError::Backend`] when it could not be sent.
    async fn revoke_user(&self, user: &str) -> Result<(), BrokerError> {
        let _ = user;
        Ok(())
    }
}

/// The single-node broker (the default): no other node, presence kept in memory.
#[derive(Debug)]
pub struct InMemoryBroker {
    node: String,
    presence: Mutex<HashMap<PresenceKey, HashMap<Uuid, Member>>>,
}

impl InMemoryBroker {
    /// A broker for one node named `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self { node: node.into(), presence: Mutex::default() }
    }
}

impl Default for InMemoryBroker {
    fn default() -> Self {
        Self::new("local")
    }
}

#[async_trait]
impl Broker for InMemoryBroker {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn is_clustered(&self) -> bool {
        false
    }

    fn attach(&self, _inbound: Weak<dyn BrokerInbound>) {}

    async fn subscribe(&self, _topic: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _topic: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    fn publish(&self, _topic: &str, _frame: Bytes) {}

    async fn add_presence(&self, key: &PresenceKey, member: &Member) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        presence.entry(key.clone()).or_default().insert(member.connection, member.clone());
        Ok(())
    }

    async fn remove_presence(&self, key: &PresenceKey, connection: Uuid) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = presence.get_mut(key) {
            members.remove(&connection);
            if members.is_empty() {
                presence.remove(key);
            }
        }
        Ok(())
    }

    async fn presence(&self, key: &PresenceKey) -> Result<Vec<Member>, BrokerError> {
        let presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        Ok(presence.get(key).map(|m| m.values().cloned().collect()).unwrap_or_default())
    }
}
