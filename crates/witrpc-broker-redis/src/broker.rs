//! [`RedisBroker`]: pub/sub for event frames, hashes with a ttl for presence, and the
//! tasks that publish, receive and refresh.
//!
//! One RESP3 connection (redis-rs's `ConnectionManager`: multiplexed, reconnects by
//! itself, re-subscribes after a reconnect) carries commands, publishes and the
//! subscription pushes. Three tasks run beside it: `publish` (drains the bounded
//! publish queue, a pipeline per batch), `receive` (delivers pushed frames from the
//! bounded inbound queue) and `heartbeat` (liveness, presence refresh, repairs after
//! an outage). They end when the broker is dropped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redis::{IntoConnectionInfo, PushInfo, PushKind, Value};
use ring::hmac;
use tokio::sync::mpsc;
use uuid::Uuid;
use witrpc_server::Member;
use witrpc_server::broker::{Broker, BrokerError, BrokerInbound, PresenceKey};
use witrpc_server::metrics::{BACKPLANE_LOST, BACKPLANE_PUBLISHED};

use crate::config::RedisBrokerConfig;
use crate::control::{self, Control};
use crate::error::RedisBrokerError;
use crate::keys;
use crate::link::{self, Link, LinkOptions, TimedOut};

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
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    key: Option<hmac::Key>,
    conn: Link,
    publish: mpsc::Sender<(String, Bytes)>,
    inbound: Inbound,
    local: Mutex<LocalState>,
    /// An operation failed or the connection dropped: the next heartbeat re-subscribes
    /// and rewrites presence in full.
    dirty: AtomicBool,
    stats: Arc<Stats>,
    interest: Mutex<Interest>,
    seq: AtomicU64,
    /// Announcements waiting for acknowledgements, by sequence number.
    pending: Mutex<HashMap<u64, Pending>>,
}

/// Which other node has receivers for which topic (from the control channel).
#[derive(Debug, Default)]
struct Interest {
    by_node: HashMap<String, HashSet<String>>,
    /// Every live node's full set is known; until then every topic counts as remote.
    synced: bool,
}

#[derive(Debug)]
struct Pending {
    waiting: HashSet<String>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
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
struct Stats {
    queued: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    last_loss_log: Mutex<Option<Instant>>,
}

impl Stats {
    /// Counts `n` lost frames and logs (at most once a second) why.
    fn lost(&self, n: u64, reason: &'static str) {
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
        tokio::spawn(publish_task(conn, publish_rx, stats.clone(), config.timeout).instrument(span.clone()));
        let weak = Arc::downgrade(&inner);
        tokio::spawn(receive_task(push_rx, inbound, weak.clone(), stats).instrument(span.clone()));
        tokio::spawn(heartbeat_task(weak, config.heartbeat).instrument(span));
        let ctl = inner.ctl_channel();
        inner
            .run(|mut c| async move { c.subscribe(ctl).await })
            .await
            .map_err(|e| RedisBrokerError::Connect(Box::new(e)))?;
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
    async fn run<T, F>(&self, f: impl FnOnce(Link) -> F) -> Result<T, BrokerError>
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

    fn ctl_channel(&self) -> String {
        format!("{}:ctl", self.prefix)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    async fn send_control(&self, kind: u8, seq: u64, acked: &str, topics: Vec<String>) -> Result<(), BrokerError> {
        let message = Control { kind, node: self.node.clone(), seq, acked: acked.to_owned(), topics }.encode();
        let channel = self.ctl_channel();
        let signed = self.sign(&channel, Bytes::from(message));
        self.run(|mut c| async move {
            redis::cmd(c.publish_command()).arg(channel).arg(&signed[..]).query_async::<()>(&mut c).await
        })
        .await
    }

    /// The nodes whose heartbeat is younger than the ttl.
    async fn live_nodes(&self) -> Result<Vec<String>, BrokerError> {
        let nodes_key = keys::nodes(&self.prefix);
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(|mut c| async move {
            redis::cmd("EVAL").arg(keys::LIVE_NODES).arg(1).arg(nodes_key).arg(ttl_ms).query_async(&mut c).await
        })
        .await
    }

    /// Sends a control message and waits (within the timeout) until every other live
    /// node answered it. `false` when some did not.
    async fn send_and_wait(&self, kind: u8, topics: Vec<String>) -> Result<bool, BrokerError> {
        let others: HashSet<String> = self.live_nodes().await?.into_iter().filter(|n| *n != self.node).collect();
        let seq = self.next_seq();
        if others.is_empty() {
            self.send_control(kind, seq, "", topics).await?;
            return Ok(true);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending().insert(seq, Pending { waiting: others, done: Some(tx) });
        let sent = self.send_control(kind, seq, "", topics).await;
        let answered = match sent {
            Ok(()) => tokio::time::timeout(self.timeout, rx).await.is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        if let Some(p) = self.pending().remove(&seq) {
            tracing::debug!(missing = ?p.waiting, "backplane: nodes did not answer an announcement in time");
        }
        sent.map(|()| answered)
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interest(&self) -> MutexGuard<'_, Interest> {
        self.interest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns every live node's topics; until it has, every topic counts as remote.
    async fn sync(&self) {
        self.interest().synced = false;
        match self.send_and_wait(control::ASK, Vec::new()).await {
            Ok(true) => {
                self.interest().synced = true;
                tracing::debug!("backplane: interest of every node known");
            }
            Ok(false) => tracing::debug!("backplane: interest sync incomplete; publishing every event until it is"),
            Err(e) => tracing::debug!(error = %e, "backplane: interest sync failed"),
        }
    }

    /// `from` answered announcement `seq`.
    fn answered(&self, seq: u64, from: &str) {
        let mut pending = self.pending();
        if let Some(p) = pending.get_mut(&seq) {
            p.waiting.remove(from);
            if p.waiting.is_empty() {
                if let Some(done) = p.done.take() {
                    let _receiver_gone = done.send(());
                }
                pending.remove(&seq);
            }
        }
    }

    async fn handle_control(&self, message: Control) {
        if message.node == self.node {
            return;
        }
        match message.kind {
            control::ADD => {
                self.interest().by_node.entry(message.node.clone()).or_default().extend(message.topics);
                if let Err(e) = self.send_control(control::ACK, message.seq, &message.node, Vec::new()).await {
                    tracing::debug!(error = %e, "backplane: cannot acknowledge an announcement");
                }
            }
            control::REMOVE => {
                if let Some(topics) = self.interest().by_node.get_mut(&message.node) {
                    for t in &message.topics {
                        topics.remove(t);
                    }
                }
            }
            control::FULL => {
                self.interest().by_node.insert(message.node.clone(), message.topics.into_iter().collect());
                if message.acked == self.node {
                    self.answered(message.seq, &message.node);
                }
            }
            control::ASK => {
                let topics: Vec<String> = self.local().topics.iter().cloned().collect();
                if let Err(e) = self.send_control(control::FULL, message.seq, &message.node, topics).await {
                    tracing::debug!(error = %e, "backplane: cannot answer an interest request");
                }
            }
            control::ACK if message.acked == self.node => self.answered(message.seq, &message.node),
            control::REVOKE => {
                let target = self.inbound.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
                if let Some(target) = target {
                    for user in &message.topics {
                        target.revoke_user(user);
                    }
                }
            }
            _ => {}
        }
    }

    fn has_remote_receivers(&self, topic: &str) -> bool {
        let interest = self.interest();
        !interest.synced || interest.by_node.iter().any(|(node, topics)| *node != self.node && topics.contains(topic))
    }

    fn sign(&self, channel: &str, frame: Bytes) -> Bytes {
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
    fn verify(&self, channel: &[u8], mut message: Vec<u8>) -> Option<Vec<u8>> {
        let Some(key) = &self.key else { return Some(message) };
        let split = message.len().checked_sub(TAG_LEN)?;
        let tag = message.split_off(split);
        let mut signed = Vec::with_capacity(channel.len() + message.len());
        signed.extend_from_slice(channel);
        signed.extend_from_slice(&message);
        hmac::verify(key, &signed, &tag).ok().map(|()| message)
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
            channels.push(self.ctl_channel());
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

async fn publish_task(mut conn: Link, mut rx: mpsc::Receiver<(String, Bytes)>, stats: Arc<Stats>, timeout: Duration) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let n = batch.len() as u64;
        match tokio::time::timeout(timeout, publish_batch(&mut conn, &batch)).await {
            Ok(Ok(())) => {
                stats.published.fetch_add(n, Ordering::Relaxed);
                metrics::counter!(BACKPLANE_PUBLISHED).increment(n);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "backplane publish failed");
                stats.lost(n, "publish_failed");
            }
            Err(_) => stats.lost(n, "publish_failed"),
        }
        batch.clear();
    }
}

/// Publishes a batch: one pipeline on a single server; on a cluster, where a pipeline
/// may not cross hash slots, one `SPUBLISH` per frame, all in flight at once on the
/// multiplexed connection (so still one round trip per batch).
async fn publish_batch(conn: &mut Link, batch: &[(String, Bytes)]) -> redis::RedisResult<()> {
    if conn.is_cluster() {
        let sends = batch.iter().map(|(channel, frame)| {
            let mut c = conn.clone();
            async move { redis::cmd("SPUBLISH").arg(channel).arg(&frame[..]).query_async::<()>(&mut c).await }
        });
        return futures_util::future::try_join_all(sends).await.map(drop);
    }
    let mut pipe = redis::pipe();
    for (channel, frame) in batch {
        pipe.cmd("PUBLISH").arg(channel).arg(&frame[..]).ignore();
    }
    pipe.query_async::<()>(conn).await
}

async fn receive_task(mut rx: mpsc::Receiver<PushInfo>, inbound: Inbound, broker: Weak<Inner>, stats: Arc<Stats>) {
    while let Some(push) = rx.recv().await {
        let Some(broker) = broker.upgrade() else { return };
        if push.kind == PushKind::Disconnection {
            tracing::warn!("backplane lost its Redis connection; reconnecting (local delivery goes on)");
            broker.dirty.store(true, Ordering::Relaxed);
            broker.interest().synced = false;
            continue;
        }
        let mut data = push.data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(message))) = (data.next(), data.next()) else {
            continue;
        };
        let Some(frame) = broker.verify(&channel, message) else {
            stats.lost(1, "bad_signature");
            continue;
        };
        if channel == broker.ctl_channel().as_bytes() {
            match Control::decode(&frame) {
                Some(message) => broker.handle_control(message).await,
                None => tracing::warn!("backplane: dropping an unreadable control message"),
            }
            continue;
        }
        let target = inbound.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
        if let Some(target) = target {
            stats.received.fetch_add(1, Ordering::Relaxed);
            target.deliver(Bytes::from(frame));
        }
    }
}

async fn heartbeat_task(broker: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        broker.heartbeat().await;
    }
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
        match self.inner.publish.try_send((channel, frame)) {
            Ok(()) => {
                self.inner.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => self.inner.stats.lost(1, "queue_full"),
        }
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
        self.inner
            .run(|mut c| async move {
                redis::pipe()
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
        {
            let mut local = self.inner.local();
            if let Some(members) = local.presence.get_mut(key) {
                members.remove(&connection);
                if members.is_empty() {
                    local.presence.remove(key);
                }
            }
        }
        let redis_key = self.inner.presence_key(&self.inner.node, key);
        let field = connection.to_string();
        self.inner
            .run(|mut c| async move { redis::cmd("HDEL").arg(redis_key).arg(field).query_async::<()>(&mut c).await })
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
