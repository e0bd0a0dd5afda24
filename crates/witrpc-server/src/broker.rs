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
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;
use witrpc_core::{Member, StreamPosition};

use crate::history::HistoryLimits;

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

    /// A frame appended to a shared history ([`SharedHistory::append`]), with the
    /// position the history gave it; it comes from every node, this one included.
    /// Must not block. Default: delivered as an unpositioned frame.
    fn deliver_positioned(&self, position: StreamPosition, frame: Bytes) {
        let _ = position;
        self.deliver(frame);
    }
}

/// The topic the events of history stream `stream` are published to: `all` for a
/// connection's own stream (`c:<id>`: the connection may be on any node), else the
/// stream itself (`all`, `g:<group>`, `u:<user>`).
pub fn stream_topic(stream: &str) -> &str {
    if stream.starts_with("c:") { "all" } else { stream }
}

/// One event kept by a [`SharedHistory`]: its offset in its stream and its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The event's offset (1, 2, 3… within an epoch).
    pub offset: u64,
    /// The frame given to [`SharedHistory::append`].
    pub frame: Bytes,
}

/// What a [`SharedHistory`] can give a client that last saw a position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryRead {
    /// Every event after the position, in order (possibly none); `top` is where the
    /// stream stands.
    Recovered {
        /// The events after the position.
        entries: Vec<HistoryEntry>,
        /// The stream's current position.
        top: StreamPosition,
    },
    /// The gap cannot be filled (another epoch, events expired or trimmed); `top` is
    /// where the stream stands, if it exists.
    Lost {
        /// The stream's current position, if the stream exists.
        top: Option<StreamPosition>,
    },
}

/// Event history kept by the cluster's backend, so a client can resume on any node.
///
/// Each stream (`all`, `g:<group>`, `u:<user>`, `c:<connection>`) has an epoch and
/// numbers its events 1, 2, 3…: [`append`](Self::append) assigns the next position,
/// stores the frame in the stream's capped history and publishes it to the topic's
/// subscribers **in one atomic step**, so every node sees a stream's events in offset
/// order and a resume can never fall between the write and the publish. The hub then
/// delivers the event (on every node, the raising one included) from
/// [`BrokerInbound::deliver_positioned`]. An epoch changes only when a stream is
/// created anew (it expired, or the backend lost it): offsets of another epoch are
/// never recovered.
#[async_trait]
pub trait SharedHistory: Send + Sync + fmt::Debug + 'static {
    /// Queues `frame` for `stream` (published to its [`stream_topic`]), keeping at most
    /// `limits`. Never waits: with no room the frame is dropped, counted and logged, and
    /// nobody receives the event.
    fn append(&self, stream: &str, limits: HistoryLimits, frame: Bytes);

    /// Where `stream` stands (`None`: no such stream).
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn top(&self, stream: &str) -> Result<Option<StreamPosition>, BrokerError>;

    /// The events after `from` (same stream and epoch; an empty epoch means "from the
    /// start of whatever epoch is current"), or why they cannot be given.
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn since(&self, from: &StreamPosition) -> Result<HistoryRead, BrokerError>;

    /// Keeps the session record of a closed connection for `ttl` (opaque bytes the hub
    /// writes and reads).
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn save_session(&self, connection: Uuid, record: Bytes, ttl: Duration) -> Result<(), BrokerError>;

    /// The session record of `connection`, if one is kept.
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn session(&self, connection: Uuid) -> Result<Option<Bytes>, BrokerError>;

    /// Forgets the session record of `connection` (it was resumed).
    ///
    /// # Errors
    /// [`BrokerError::Backend`].
    async fn forget_session(&self, connection: Uuid) -> Result<(), BrokerError>;

    /// The session record of `connection`, forgotten if it starts with `owner` (the
    /// record's opening bytes that name whom it belongs to): a resume takes its own
    /// record, and leaves someone else's where it is. The default reads, then forgets;
    /// a backend should do both in one step (one round trip).
    ///
    /// # Errors
    /// [`BrokerError::Backend`] when the record cannot be read; failing to forget it
    /// only leaves it to expire.
    async fn take_session(&self, connection: Uuid, owner: &[u8]) -> Result<Option<Bytes>, BrokerError> {
        let record = self.session(connection).await?;
        if record.as_ref().is_some_and(|r| r.starts_with(owner)) {
            if let Err(e) = self.forget_session(connection).await {
                tracing::debug!(error = %e, "backplane: a resumed session record stays until it expires");
            }
        }
        Ok(record)
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

    /// The history every node shares, when the backend keeps one; `None` (the
    /// default): each node keeps its own, in memory, and a client resumes only on the
    /// node it left.
    fn history(&self) -> Option<&dyn SharedHistory> {
        None
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

#[cfg(test)]
mod take_session_tests {
    use super::*;

    /// Session records only; the other operations are not reached.
    #[derive(Debug, Default)]
    struct Records(Mutex<HashMap<Uuid, Bytes>>);

    #[async_trait]
    impl SharedHistory for Records {
        fn append(&self, _: &str, _: HistoryLimits, _: Bytes) {}
        async fn top(&self, _: &str) -> Result<Option<StreamPosition>, BrokerError> {
            Ok(None)
        }
        async fn since(&self, _: &StreamPosition) -> Result<HistoryRead, BrokerError> {
            Ok(HistoryRead::Lost { top: None })
        }
        async fn save_session(&self, id: Uuid, record: Bytes, _: Duration) -> Result<(), BrokerError> {
            self.0.lock().unwrap().insert(id, record);
            Ok(())
        }
        async fn session(&self, id: Uuid) -> Result<Option<Bytes>, BrokerError> {
            Ok(self.0.lock().unwrap().get(&id).cloned())
        }
        async fn forget_session(&self, id: Uuid) -> Result<(), BrokerError> {
            self.0.lock().unwrap().remove(&id);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_default_take_forgets_only_the_owners_record() {
        let records = Records::default();
        let id = Uuid::new_v4();
        let record = Bytes::from_static(b"\x01\x03\x00ann and the rest");
        records.save_session(id, record.clone(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(records.take_session(id, b"\x01\x03\x00bob").await.unwrap(), Some(record.clone()));
        assert_eq!(records.session(id).await.unwrap(), Some(record.clone()), "someone else's stays");
        assert_eq!(records.take_session(id, b"\x01\x03\x00ann").await.unwrap(), Some(record));
        assert_eq!(records.session(id).await.unwrap(), None, "the owner's take forgets it");
        assert_eq!(records.take_session(id, b"\x01\x03\x00ann").await.unwrap(), None);
    }
}
