//! [`RedisBroker`]: pub/sub for event frames, hashes with a ttl for presence, and the
//! tasks that publish, receive and refresh.
//!
//! One RESP3 connection (`link.rs`: redis-rs's `ConnectionManager`, or its cluster
//! connection on a Redis Cluster; multiplexed, reconnects by itself, re-subscribes
//! after a reconnect) carries commands, publishes and the subscription pushes. Three
//! tasks run beside it (`tasks.rs`): `publish` (drains the bounded publish queue, one
//! round trip per batch), `receive` (delivers pushed frames from the bounded inbound
//! queue) and `heartbeat` (liveness, presence refresh, repairs after an outage). They
//! end when the broker is dropped. Who listens where is `interest.rs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redis::{IntoConnectionInfo, PushInfo, PushKind};
use ring::hmac;
use tokio::sync::mpsc;
use uuid::Uuid;
use witrpc_server::Member;
use witrpc_server::broker::{Broker, BrokerError, BrokerInbound, PresenceKey, SharedHistory};
use witrpc_server::metrics::BACKPLANE_LOST;

use crate::config::RedisBrokerConfig;
use crate::control;
use crate::error::RedisBrokerError;
use crate::keys;
use crate::link::{self, Link, LinkOptions, TimedOut};

mod interest;
mod tasks;

use interest::{Interest, Pending};
use tasks::{heartbeat_task, publish_task, receive_task};

/// Length of the HMAC-SHA256 tag appended to a signed frame.
const TAG_LEN: usize = 32;
/// Most frames one publish pipeline carries.
const PUBLISH_BATCH: usize = 256;
/// Losses are logged at most this often (each loss is counted).
const LOSS_LOG_INTERVAL: Duration = Duration::from_secs(1);

type Inbound = Arc<Mutex<Option<Weak<dyn BrokerInbound>>>>;

/// A cluster broker over Redis; cheap to clone (clones share one connection).
///
/// Build it with [`RedisBroker::connect`] and give it to
/// `WitServerBuilder::with_broker`. See the crate docs for its guarantees.
#[derive(Debug, Clone)]
pub struct RedisBroker {
    pub(crate) inner: Arc<Inner>,
}

/// What the publish task sends, in queue order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame for a channel (`PUBLISH`).
    Frame { channel: String, frame: Bytes },
    /// A frame appended to history stream `stream`, then published with its position
    /// (the [`keys::APPEND`] script; its keys and channel are named from `stream` as the
    /// command is written).
    Recorded { stream: String, frame: Bytes, max_events: usize, max_age_ms: u64 },
}

pub(crate) struct Inner {
    node: String,
    pub(crate) prefix: String,
    /// The control channel, `P:ctl`.
    ctl: String,
    ttl: Duration,
    timeout: Duration,
    key: Option<hmac::Key>,
    conn: Link,
    publish: mpsc::Sender<Outgoing>,
    inbound: Inbound,
    local: Mutex<LocalState>,
    /// An operation failed or the connection dropped: the next heartbeat re-subscribes
    /// and rewrites presence in full.
    dirty: AtomicBool,
    pub(crate) stats: Arc<Stats>,
    interest: Mutex<Interest>,
    seq: AtomicU64,
    /// Announcements waiting for acknowledgements, by sequence number.
    pending: Mutex<HashMap<u64, Pending>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").field("node", &self.node).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// What this node has told Redis, kept to repeat it after an outage.
#[derive(Debug, Default)]
struct LocalState {
    topics: BTreeSet<String>,
    presence: HashMap<PresenceKey, HashMap<Uuid, Option<String>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    queued: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    last_loss_log: Mutex<Option<Instant>>,
}

impl Stats {
    /// Counts `n` lost frames and logs (at most once a second) why.
    pub(crate) fn lost(&self, n: u64, reason: &'static str) {
        self.lost.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(BACKPLANE_LOST, "reason" => reason).increment(n);
        let mut last = self.last_loss_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOSS_LOG_INTERVAL) {
            *last = Some(Instant::now());
            let total = self.lost.load(Ordering::Relaxed);
            tracing::warn!(reason, frames = n, total, "backplane: event frames lost between nodes");
        }
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> BrokerError {
    BrokerError::Backend(Box::new(e))
}

impl RedisBroker {
    /// Connects to Redis and starts the broker's tasks (they stop when the last clone
    /// is dropped).
    ///
    /// # Errors
    /// [`RedisBrokerError::InvalidUrl`], [`RedisBrokerError::InvalidNodeId`], or
    /// [`RedisBrokerError::Connect`] when Redis cannot be reached now.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropped before it completes, nothing keeps running.
    pub async fn connect(config: RedisBrokerConfig) -> Result<Self, RedisBrokerError> {
        let node = config.node_id.clone().unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        if !keys::valid_node_id(&node) {
            return Err(RedisBrokerError::InvalidNodeId);
        }
        let info = config.url.as_str().into_connection_info().map_err(|e| RedisBrokerError::InvalidUrl(Box::new(e)))?;

        let stats = Arc::new(Stats::default());
        let (push_tx, push_rx) = mpsc::channel::<PushInfo>(config.inbound_capacity);
        let push_stats = stats.clone();
        let push_sender = move |info: PushInfo| -> Result<(), ()> {
            if !matches!(info.kind, PushKind::Message | PushKind::SMessage | PushKind::Disconnection) {
                return Ok(());
            }
            match push_tx.try_send(info) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    push_stats.lost(1, "inbound_full");
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            }
        };
        let conn = link::connect(info, LinkOptions { timeout: config.timeout, push_sender }).await?;

        let (publish_tx, publish_rx) = mpsc::channel(config.publish_capacity);
        let inbound: Inbound = Arc::default();
        let inner = Arc::new(Inner {
            node,
            prefix: config.prefix.clone(),
            ctl: format!("{}:ctl", config.prefix),
            ttl: config.presence_ttl,
            timeout: config.timeout,
            key: config.secret.as_ref().map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)),
            conn: conn.clone(),
            publish: publish_tx,
            inbound: inbound.clone(),
            local: Mutex::default(),
            dirty: AtomicBool::new(false),
            stats: stats.clone(),
            interest: Mutex::default(),
            seq: AtomicU64::new(1),
            pending: Mutex::default(),
        });
        let span = tracing::info_span!("backplane", node = %inner.node);
        use tracing::Instrument as _;
        let prefix = inner.prefix.clone();
        tokio::spawn(publish_task(conn, publish_rx, stats.clone(), config.timeout, prefix).instrument(span.clone()));
        let weak = Arc::downgrade(&inner);
        tokio::spawn(receive_task(push_rx, inbound, weak.clone(), stats).instrument(span.clone()));
        tokio::spawn(heartbeat_task(weak, config.heartbeat).instrument(span));
        let ctl = inner.ctl_channel();
        inner
            .run(|mut c| async move { c.subscribe(ctl).await })
            .await
            .map_err(|e| RedisBrokerError::Connect(Box::new(e)))?;
        inner.forget_previous_run().await?;
        inner.heartbeat().await;
        inner.sync().await;
        tracing::info!(node = %inner.node, "backplane connected to Redis");
        Ok(Self { inner })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Event frames lost between nodes since the broker started (publish queue full,
    /// publish failed, inbound queue full, bad signature): the sum of
    /// `witrpc_backplane_lost_total`.
    pub fn lost_frames(&self) -> u64 {
        self.inner.stats.lost.load(Ordering::Relaxed)
    }

    /// Event frames queued for publishing since the broker started (the hub publishes
    /// only events that may have receivers on another node).
    pub fn queued_frames(&self) -> u64 {
        self.inner.stats.queued.load(Ordering::Relaxed)
    }

    /// Event frames handed to Redis since the broker started.
    pub fn published_frames(&self) -> u64 {
        self.inner.stats.published.load(Ordering::Relaxed)
    }

    /// Event frames received from other nodes (after the signature check).
    pub fn received_frames(&self) -> u64 {
        self.inner.stats.received.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Queues `item` for the publish task; with no room it is dropped and counted.
    pub(crate) fn enqueue(&self, item: Outgoing) {
        match self.publish.try_send(item) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => self.stats.lost(1, "queue_full"),
        }
    }

    fn local(&self) -> MutexGuard<'_, LocalState> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn presence_key(&self, node: &str, key: &PresenceKey) -> String {
        match key {
            PresenceKey::Group(g) => keys::presence(&self.prefix, node, 'g', g),
            PresenceKey::User(u) => keys::presence(&self.prefix, node, 'u', u),
            // A key kind added later is stored under its own letter.
            _ => keys::presence(&self.prefix, node, 'x', ""),
        }
    }

    /// Runs `f` on a clone of the connection within the timeout; a failure marks the
    /// broker dirty (repaired by the next heartbeat).
    pub(crate) async fn run<T, F>(&self, f: impl FnOnce(Link) -> F) -> Result<T, BrokerError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(backend(TimedOut(self.timeout))),
        };
        if result.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        result
    }

    pub(crate) fn sign(&self, channel: &str, frame: Bytes) -> Bytes {
        let Some(key) = &self.key else { return frame };
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(channel.as_bytes());
        ctx.update(&frame);
        let tag = ctx.sign();
        let mut out = Vec::with_capacity(frame.len() + TAG_LEN);
        out.extend_from_slice(&frame);
        out.extend_from_slice(tag.as_ref());
        Bytes::from(out)
    }

    /// The frame inside a received message, or `None` when its signature is wrong.
    pub(crate) fn verify(&self, channel: &[u8], mut message: Vec<u8>) -> Option<Vec<u8>> {
        let Some(key) = &self.key else { return Some(message) };
        let split = message.len().checked_sub(TAG_LEN)?;
        // Over the channel and the frame in place: no copy of the frame to check it.
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(channel);
        ctx.update(&message[..split]);
        let valid = witrpc_server::constant_time_eq(ctx.sign().as_ref(), &message[split..]);
        message.truncate(split);
        valid.then_some(message)
    }

    /// Removes the presence a previous run under this node id left (a crashed node
    /// never removed its connections; a restart under the same id would otherwise keep
    /// refreshing them), from the index of keys it wrote.
    async fn forget_previous_run(&self) -> Result<(), RedisBrokerError> {
        let index = keys::presence_index(&self.prefix, &self.node);
        let run = self
            .run(|mut c| async move {
                let written: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query_async(&mut c).await?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                for key in &written {
                    pipe.cmd("DEL").arg(key).ignore();
                }
                pipe.cmd("DEL").arg(&index).ignore();
                pipe.query_async::<()>(&mut c).await.map(|()| written.len())
            })
            .await;
        match run {
            Ok(0) => Ok(()),
            Ok(n) => {
                tracing::info!(keys = n, "backplane: removed the presence a previous run of this node left");
                Ok(())
            }
            Err(e) => Err(RedisBrokerError::Connect(Box::new(e))),
        }
    }

    /// Liveness, presence refresh and, after a failure, re-subscription and a full
    /// rewrite of this node's presence.
    async fn heartbeat(&self) {
        let nodes = keys::nodes(&self.prefix);
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let node = self.node.clone();
        let beat = self
            .run(|mut c| async move {
                redis::cmd("EVAL")
                    .arg(keys::HEARTBEAT)
                    .arg(1)
                    .arg(&nodes)
                    .arg(&node)
                    .arg(ttl_ms)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = beat {
            tracing::debug!(error = %e, "backplane heartbeat failed");
            return;
        }
        let repair = self.dirty.swap(false, Ordering::Relaxed);
        let (topics, entries) = {
            let local = self.local();
            let topics: Vec<String> = local.topics.iter().map(|t| keys::channel(&self.prefix, t)).collect();
            let entries: Vec<(String, Vec<(String, String)>)> = local
                .presence
                .iter()
                .map(|(key, members)| {
                    let fields =
                        members.iter().map(|(id, user)| (id.to_string(), user_value(user.as_deref()))).collect();
                    (self.presence_key(&self.node, key), fields)
                })
                .collect();
            (topics, entries)
        };
        if repair {
            let own: Vec<String> = self.local().topics.iter().cloned().collect();
            let mut channels = topics;
            channels.push(self.ctl.clone());
            if let Err(e) = self.run(|mut c| async move { c.subscribe(channels).await }).await {
                tracing::debug!(error = %e, "backplane re-subscription failed");
                return;
            }
            if let Err(e) = self.send_control(control::FULL, self.next_seq(), "", own).await {
                tracing::debug!(error = %e, "backplane re-announcement failed");
                return;
            }
            self.sync().await;
            tracing::info!("backplane subscriptions restored");
        }
        if entries.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (key, _) in &entries {
            pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms);
        }
        pipe.cmd("PEXPIRE").arg(keys::presence_index(&self.prefix, &self.node)).arg(ttl_ms).ignore();
        let Ok(refreshed) = self.run(|mut c| async move { pipe.query_async::<Vec<i64>>(&mut c).await }).await else {
            return;
        };
        // Keys gone (Redis restarted, or a write failed) are written again in full.
        let mut rewrite = redis::pipe();
        rewrite.atomic();
        let mut any = false;
        for ((key, fields), kept) in entries.iter().zip(refreshed.iter().chain(std::iter::repeat(&0))) {
            if (repair || *kept == 0) && !fields.is_empty() {
                any = true;
                rewrite.cmd("DEL").arg(key).ignore();
                rewrite.cmd("HSET").arg(key).arg(fields).ignore();
                rewrite.cmd("PEXPIRE").arg(key).arg(ttl_ms).ignore();
                rewrite.cmd("SADD").arg(keys::presence_index(&self.prefix, &self.node)).arg(key).ignore();
            }
        }
        if any {
            match self.run(|mut c| async move { rewrite.query_async::<()>(&mut c).await }).await {
                Ok(()) => tracing::debug!("backplane presence rewritten"),
                Err(e) => tracing::debug!(error = %e, "backplane presence rewrite failed"),
            }
        }
    }
}

fn user_value(user: Option<&str>) -> String {
    user.map_or_else(String::new, |u| format!("={u}"))
}

#[async_trait]
impl Broker for RedisBroker {
    fn node_id(&self) -> &str {
        &self.inner.node
    }

    fn is_clustered(&self) -> bool {
        true
    }

    fn attach(&self, inbound: Weak<dyn BrokerInbound>) {
        *self.inner.inbound.lock().unwrap_or_else(|e| e.into_inner()) = Some(inbound);
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BrokerError> {
        self.inner.local().topics.insert(topic.to_owned());
        let channel = keys::channel(&self.inner.prefix, topic);
        self.inner.run(|mut c| async move { c.subscribe(channel).await }).await?;
        // Every live node learns the new receiver before the join returns.
        if !self.inner.send_and_wait(control::ADD, vec![topic.to_owned()]).await? {
            tracing::warn!(topic, "backplane: some nodes did not confirm a new subscription in time");
        }
        Ok(())
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BrokerError> {
        self.inner.local().topics.remove(topic);
        let channel = keys::channel(&self.inner.prefix, topic);
        self.inner.run(|mut c| async move { c.unsubscribe(channel).await }).await?;
        // No wait: a node that still thinks we listen only publishes once too often.
        self.inner.send_control(control::REMOVE, self.inner.next_seq(), "", vec![topic.to_owned()]).await
    }

    fn has_remote_receivers(&self, topic: &str) -> bool {
        self.inner.has_remote_receivers(topic)
    }

    fn publish(&self, topic: &str, frame: Bytes) {
        let channel = keys::channel(&self.inner.prefix, topic);
        let frame = self.inner.sign(&channel, frame);
        self.inner.enqueue(Outgoing::Frame { channel, frame });
    }

    fn history(&self) -> Option<&dyn SharedHistory> {
        Some(self)
    }

    async fn revoke_user(&self, user: &str) -> Result<(), BrokerError> {
        self.inner.send_control(control::REVOKE, self.inner.next_seq(), "", vec![user.to_owned()]).await
    }

    async fn add_presence(&self, key: &PresenceKey, member: &Member) -> Result<(), BrokerError> {
        self.inner.local().presence.entry(key.clone()).or_default().insert(member.connection, member.user.clone());
        let redis_key = self.inner.presence_key(&self.inner.node, key);
        let field = member.connection.to_string();
        let value = user_value(member.user.as_deref());
        let ttl_ms = u64::try_from(self.inner.ttl.as_millis()).unwrap_or(u64::MAX);
        let index = keys::presence_index(&self.inner.prefix, &self.inner.node);
        self.inner
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("SADD")
                    .arg(&index)
                    .arg(&redis_key)
                    .ignore()
                    .cmd("HSET")
                    .arg(&redis_key)
                    .arg(field)
                    .arg(value)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&redis_key)
                    .arg(ttl_ms)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn remove_presence(&self, key: &PresenceKey, connection: Uuid) -> Result<(), BrokerError> {
        let emptied = {
            let mut local = self.inner.local();
            let emptied = local.presence.get_mut(key).is_some_and(|members| {
                members.remove(&connection);
                members.is_empty()
            });
            if emptied {
                local.presence.remove(key);
            }
            emptied
        };
        let redis_key = self.inner.presence_key(&self.inner.node, key);
        let field = connection.to_string();
        let index = keys::presence_index(&self.inner.prefix, &self.inner.node);
        self.inner
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("HDEL").arg(&redis_key).arg(field).ignore();
                if emptied {
                    pipe.cmd("SREM").arg(index).arg(&redis_key).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await
    }

    async fn presence(&self, key: &PresenceKey) -> Result<Vec<Member>, BrokerError> {
        let nodes_key = keys::nodes(&self.inner.prefix);
        let ttl_ms = u64::try_from(self.inner.ttl.as_millis()).unwrap_or(u64::MAX);
        let nodes: Vec<String> = self
            .inner
            .run(|mut c| async move {
                redis::cmd("EVAL").arg(keys::LIVE_NODES).arg(1).arg(nodes_key).arg(ttl_ms).query_async(&mut c).await
            })
            .await?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for node in &nodes {
            pipe.cmd("HGETALL").arg(self.inner.presence_key(node, key));
        }
        let hashes: Vec<HashMap<String, String>> =
            self.inner.run(|mut c| async move { pipe.query_async(&mut c).await }).await?;
        let mut members = Vec::new();
        for (node, hash) in nodes.iter().zip(hashes) {
            for (field, value) in hash {
                let Ok(connection) = field.parse::<Uuid>() else { continue };
                let user = value.strip_prefix('=').map(str::to_owned);
                members.push(Member::new(connection, node.clone(), user));
            }
        }
        members.sort_by(|a, b| (&a.node, a.connection).cmp(&(&b.node, b.connection)));
        Ok(members)
    }
}
