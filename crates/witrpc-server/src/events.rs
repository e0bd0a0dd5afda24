//! The event hub: encodes each event once, queues it to its local receivers, and hands
//! it to the cluster's [`Broker`] when receivers may be elsewhere. It also keeps the
//! node's group membership and answers presence.
//!
//! Routing is exact: an event for a connection, a user or a group is queued only to the
//! authorized connections that match at that moment. Local receivers come first; a frame
//! is built (parameters as encoded here, once) and published only when the audience may
//! include other nodes, so an event whose receivers are all local never leaves the node.
//! The node subscribes to a topic only while it has receivers for it, counting them.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;
use witrpc_core::session::{CloseCode, CloseReason, EventTag, Queued, SlowConsumerPolicy};
use witrpc_core::{
    Audience, BoxFuture, EventSink, GroupError, Identity, Member, Membership, ParameterError, ParameterSerializer,
    Service, ServiceDescriptor, Target, WitRequest, check_group_name,
};

use crate::broker::frame::Frame;
use crate::broker::{Broker, BrokerError, BrokerInbound, PresenceKey, SharedHistory};
use crate::history::{HistoryLimits, HistoryStore, MemoryHistory, Position, is_recordable};
use crate::outbox::Outbox;

mod resume;

pub(crate) use resume::ResumeRequest;
use resume::{SessionRecords, SharedReads};

/// The topic every node with an authorized connection subscribes to: broadcasts and
/// events for one connection on another node.
pub(crate) const TOPIC_ALL: &str = "all";

fn group_topic(group: &str) -> String {
    format!("g:{group}")
}

fn user_topic(user: &str) -> String {
    format!("u:{user}")
}

fn connection_stream(id: Uuid) -> String {
    format!("c:{id}")
}

#[derive(Debug)]
struct Local {
    outbox: Arc<Outbox>,
    user: Option<Arc<str>>,
    groups: HashSet<Arc<str>>,
    /// Negotiated `resume`: gets positions, and leaves a session record when it closes.
    resume: bool,
    /// Negotiated `replay-batch`: a resume's replay is queued packed.
    batch: bool,
    /// While a resume reads a shared history: the events that arrive meanwhile, queued
    /// after the replay (`None`: queue directly).
    pending: Option<Mutex<Vec<Pending>>>,
    /// After a resume from a shared history: each stream's replayed top; live events
    /// at or below it were replayed already.
    floors: Vec<Position>,
    /// With a shared history: the position of the last event of its own stream
    /// (`c:<id>`) it was given.
    own_top: Mutex<Option<Position>>,
}

/// What a connection negotiated of the `resume` extension.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resume {
    /// `resume`: positions on its events, a resume at authorization, a session record.
    pub(crate) negotiated: bool,
    /// `replay-batch`: its replay is queued packed.
    pub(crate) batch: bool,
}

/// An event held while its connection resumes: its position (if it has one), payload
/// and tag.
type Pending = (Option<Position>, Bytes, EventTag);

/// Most events held for one connection while it resumes; past it the connection is
/// closed, and resumes again when it reconnects.
const MAX_PENDING: usize = 10_000;

impl Local {
    fn new(outbox: Arc<Outbox>, user: Option<Arc<str>>, resume: Resume, buffering: bool) -> Self {
        Self {
            outbox,
            user,
            groups: HashSet::new(),
            resume: resume.negotiated,
            batch: resume.batch,
            pending: buffering.then(Mutex::default),
            floors: Vec::new(),
            own_top: Mutex::default(),
        }
    }

    /// Queues one event (its positioned form for a `resume` client), holding it while
    /// the connection resumes and skipping it when a resume replayed it already.
    fn queue(&self, id: Uuid, payloads: &Payloads<'_>, tag: EventTag) {
        let (position, payload) = match payloads.positioned().filter(|_| self.resume) {
            Some((position, payload)) => (Some(position), payload),
            None => (None, payloads.plain()),
        };
        if let Some(pending) = &self.pending {
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.len() < MAX_PENDING {
                pending.push((position.cloned(), payload.clone(), tag));
            } else {
                self.outbox.close(CloseReason::new(CloseCode::Away, RESUME_OVERFLOW));
            }
            return;
        }
        if position.is_some_and(|p| self.replayed(p)) {
            return;
        }
        self.outbox.send_event(Queued::Event { id, payload: payload.clone(), tag });
    }

    /// Whether a resume replayed `position` already.
    fn replayed(&self, position: &Position) -> bool {
        self.floors
            .iter()
            .any(|f| f.stream == position.stream && f.epoch == position.epoch && position.offset <= f.offset)
    }
}

/// An event's two encodings, each made when a receiver first needs it (an event none of
/// this node's connections receives is not encoded at all).
struct Payloads<'a> {
    request: &'a WitRequest,
    /// Its place in its stream, when it has one.
    position: Option<&'a Position>,
    plain: OnceCell<Bytes>,
    positioned: OnceCell<Bytes>,
}

impl<'a> Payloads<'a> {
    fn new(request: &'a WitRequest, position: Option<&'a Position>) -> Self {
        Self { request, position, plain: OnceCell::new(), positioned: OnceCell::new() }
    }

    /// Without a position, for clients that did not negotiate `resume`.
    fn plain(&self) -> &Bytes {
        self.plain.get_or_init(|| Bytes::from(self.request.encode()))
    }

    /// With its position (`None`: it has none).
    fn positioned(&self) -> Option<(&Position, &Bytes)> {
        let position = self.position?;
        let bytes =
            self.positioned.get_or_init(|| Bytes::from(self.request.encode_with_position(Some(&position.to_string()))));
        Some((position, bytes))
    }
}

/// The close reason of a connection whose resume could not keep up with live events.
const RESUME_OVERFLOW: &str = "too many events while resuming; reconnect to resume";

/// Authorized connections of this node and who is in which group.
#[derive(Debug, Default)]
struct Routes {
    connections: HashMap<Uuid, Local>,
    groups: HashMap<Arc<str>, HashSet<Uuid>>,
    users: HashMap<Arc<str>, HashSet<Uuid>>,
}

impl Routes {
    /// Calls `f` with each local receiver of `audience`.
    fn each(&self, audience: &Audience, mut f: impl FnMut(Uuid, &Local)) {
        let except = audience.excluded();
        let mut send = |id: &Uuid| {
            if Some(*id) != except {
                if let Some(local) = self.connections.get(id) {
                    f(*id, local);
                }
            }
        };
        match audience.target() {
            Target::Connection(id) => send(id),
            Target::User(u) => self.users.get(u).into_iter().flatten().for_each(send),
            Target::Group(g) => self.groups.get(g).into_iter().flatten().for_each(send),
            // `All`, and any target added later: everyone (no narrower rule exists yet).
            _ => self.connections.keys().for_each(send),
        }
    }
}

/// One event of a served contract, for frames that name it by contract id and name.
type EventIndex = HashMap<i64, Vec<(&'static ServiceDescriptor, usize)>>;

/// The hub. Its route lock is taken for writing only when a connection authorizes,
/// joins, leaves or closes; raising an event takes it for reading. The request path
/// never touches it.
#[derive(Debug)]
pub(crate) struct EventHub {
    serializer: Arc<dyn ParameterSerializer>,
    routes: RwLock<Routes>,
    /// Slow-consumer policy by event wire name; absent = `Disconnect`.
    policies: HashMap<String, SlowConsumerPolicy>,
    broker: Arc<dyn Broker>,
    /// Local receivers per topic; a topic is subscribed while its count is above 0.
    /// An async lock: subscribing waits for the broker, and the order of subscribe and
    /// unsubscribe of one topic must be kept.
    topics: tokio::sync::Mutex<HashMap<String, usize>>,
    events: EventIndex,
    max_groups: usize,
    /// History limits by event wire name; events not named keep none.
    history_limits: HashMap<String, HistoryLimits>,
    history: Box<dyn HistoryStore>,
    /// Held while an event with history is recorded and queued, so each stream's
    /// events reach every queue in offset order.
    emit_order: Mutex<()>,
    records: Mutex<SessionRecords>,
    /// How long a session record is kept: the longest history age.
    record_ttl: Duration,
    /// Whether events with history go through the broker's shared history.
    shared: bool,
    /// With a shared history: the position of the last event delivered here, per
    /// subscribed topic (`None`: none yet and the stream did not exist at the
    /// subscription). Kept while the topic is subscribed.
    live_tops: Mutex<HashMap<String, Option<Position>>>,
    /// Shared-history reads of resuming connections, in flight.
    reads: SharedReads,
}

impl EventHub {
    pub(crate) fn new(
        serializer: Arc<dyn ParameterSerializer>,
        policies: HashMap<String, SlowConsumerPolicy>,
        broker: Arc<dyn Broker>,
        services: &[Arc<dyn Service>],
        max_groups: usize,
        history_limits: HashMap<String, HistoryLimits>,
    ) -> Self {
        let mut events: EventIndex = HashMap::new();
        for service in services {
            let d = service.descriptor();
            for index in 0..d.events.len() {
                events.entry(d.contract_id()).or_default().push((d, index));
            }
        }
        let shared = broker.history().is_some() && !history_limits.is_empty();
        if broker.is_clustered() && !history_limits.is_empty() && !shared {
            tracing::warn!("event history stays on each node: the broker keeps no shared history");
        }
        Self {
            shared,
            live_tops: Mutex::default(),
            reads: SharedReads::default(),
            serializer,
            routes: RwLock::default(),
            policies,
            broker,
            topics: tokio::sync::Mutex::default(),
            events,
            max_groups,
            record_ttl: history_limits.values().map(|l| l.max_age).max().unwrap_or_default(),
            history_limits,
            history: Box::new(MemoryHistory::default()),
            emit_order: Mutex::default(),
            records: Mutex::default(),
        }
    }

    /// Whether some event keeps history (the server accepts `resume`).
    pub(crate) fn has_history(&self) -> bool {
        !self.history_limits.is_empty()
    }

    /// The broker's history, when events with history go through it.
    fn shared_history(&self) -> Option<&dyn SharedHistory> {
        self.broker.history().filter(|_| self.shared)
    }

    fn read(&self) -> RwLockReadGuard<'_, Routes> {
        // A poisoned lock only means a panic mid-update of maps that stay consistent.
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Routes> {
        self.routes.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn node_id(&self) -> &str {
        self.broker.node_id()
    }

    fn member(&self, id: Uuid, user: Option<&Arc<str>>) -> Member {
        Member::new(id, self.broker.node_id(), user.map(|u| u.to_string()))
    }

    /// A connection authorized: it receives events from now on. `resume` is set for a
    /// client that negotiated `resume`, with its request when it sent one; the answer
    /// (this connection's id, then the `Resumed` lines) is returned, and the replayed events are queued before any
    /// live one (the snapshot and the registration happen under the route lock emits
    /// take too: no gap and no duplicate at the seam).
    pub(crate) async fn insert(
        &self,
        id: Uuid,
        outbox: Arc<Outbox>,
        identity: Option<&Identity>,
        resume: Resume,
        request: Option<&str>,
    ) -> Option<String> {
        let user: Option<Arc<str>> = identity.map(|i| i.name().into());
        let request = request.filter(|_| resume.negotiated).and_then(ResumeRequest::parse);
        if let (Some(history), Some(request)) = (self.shared_history(), &request) {
            return Some(self.resume_shared(history, id, outbox, user, resume, request).await);
        }
        let (answer, restored) = {
            let mut routes = self.write();
            if let Some(u) = &user {
                routes.users.entry(u.clone()).or_default().insert(id);
            }
            routes.connections.insert(id, Local::new(outbox, user.clone(), resume, false));
            let (lines, restored) = match &request {
                Some(request) => self.resume_locked(&mut routes, id, request),
                None => (String::new(), Vec::new()),
            };
            // A `resume` client always learns its connection id (its next resume names it).
            let answer =
                resume.negotiated.then(|| if lines.is_empty() { id.to_string() } else { format!("{id}\n{lines}") });
            (answer, restored)
        };
        self.announce(id, user.as_ref(), restored).await;
        if resume.negotiated {
            self.save_live_record(id).await;
        }
        answer
    }

    /// Subscribes this node to a new connection's topics and records its presence:
    /// broadcasts, its user's, and the groups a resume restored.
    async fn announce(&self, id: Uuid, user: Option<&Arc<str>>, restored: Vec<Arc<str>>) {
        for group in restored {
            let subscribed = self.retain(&group_topic(&group)).await;
            let present = self.broker.add_presence(&PresenceKey::Group(group), &self.member(id, user)).await;
            if let Err(e) = subscribed.and(present) {
                tracing::warn!(error = %e, "backplane: cannot register a restored group membership yet");
            }
        }
        if let Err(e) = self.retain(TOPIC_ALL).await {
            tracing::warn!(error = %e, "backplane: cannot subscribe to broadcasts yet; retried when it is back");
        }
        if let Some(u) = user {
            // Both run even when the first fails: the broker keeps what it was told and
            // repeats it when the backend is back.
            let subscribed = self.retain(&user_topic(u)).await;
            let present = self.broker.add_presence(&PresenceKey::User(u.clone()), &self.member(id, Some(u))).await;
            if let Err(e) = subscribed.and(present) {
                tracing::warn!(error = %e, "backplane: cannot register the user's connection yet");
            }
        }
    }

    /// A connection closed: it leaves every group and receives nothing more.
    pub(crate) async fn remove(&self, id: Uuid) {
        let mut record = None;
        let Some(local) = ({
            let mut routes = self.write();
            let local = routes.connections.remove(&id);
            if let Some(local) = &local {
                if local.resume && self.has_history() {
                    // Under the write lock: no event slips between the tops and the close.
                    record = self.record_session(id, local);
                }
                for g in &local.groups {
                    forget(&mut routes.groups, g, id);
                }
                if let Some(u) = &local.user {
                    forget(&mut routes.users, u, id);
                }
            }
            local
        }) else {
            return;
        };
        if let (Some(history), Some(record)) = (self.shared_history(), record) {
            if let Err(e) = history.save_session(id, record.encode(), self.record_ttl).await {
                tracing::debug!(error = %e, "backplane: session record not saved; a resume elsewhere recovers less");
            }
        }
        for g in &local.groups {
            self.release_presence(&group_topic(g), &PresenceKey::Group(g.clone()), id).await;
        }
        if let Some(u) = &local.user {
            self.release_presence(&user_topic(u), &PresenceKey::User(u.clone()), id).await;
        }
        if let Err(e) = self.release(TOPIC_ALL).await {
            tracing::debug!(error = %e, "backplane: unsubscribe failed");
        }
    }

    async fn release_presence(&self, topic: &str, key: &PresenceKey, id: Uuid) {
        if let Err(e) = self.broker.remove_presence(key, id).await {
            tracing::debug!(error = %e, "backplane: presence removal failed; the entry expires with the refresh");
        }
        if let Err(e) = self.release(topic).await {
            tracing::debug!(error = %e, "backplane: unsubscribe failed");
        }
    }

    /// One more local receiver for `topic`: subscribes on the first.
    async fn retain(&self, topic: &str) -> Result<(), BrokerError> {
        if !self.broker.is_clustered() {
            return Ok(());
        }
        let mut topics = self.topics.lock().await;
        let count = topics.entry(topic.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            if let Some(history) = self.shared_history() {
                // Read before subscribing: what was delivered here starts after it.
                let top = history.top(topic).await.unwrap_or_default();
                self.live_tops.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_owned(), top);
            }
            return self.broker.subscribe(topic).await;
        }
        Ok(())
    }

    /// One local receiver fewer for `topic`: unsubscribes after the last.
    async fn release(&self, topic: &str) -> Result<(), BrokerError> {
        if !self.broker.is_clustered() {
            return Ok(());
        }
        let mut topics = self.topics.lock().await;
        let Some(count) = topics.get_mut(topic) else { return Ok(()) };
        *count = count.saturating_sub(1);
        if *count == 0 {
            topics.remove(topic);
            self.live_tops.lock().unwrap_or_else(|e| e.into_inner()).remove(topic);
            return self.broker.unsubscribe(topic).await;
        }
        Ok(())
    }

    /// The slow-consumer tag of event `event` of `contract`.
    fn tag(&self, contract_id: i64, name: &'static str) -> EventTag {
        EventTag { key: (contract_id, name), policy: self.policies.get(name).copied().unwrap_or_default() }
    }

    /// Queues the event to the local receivers of `audience`, recording it first when
    /// the event keeps history; returns how many receivers. Encodes it once for
    /// `resume` clients (with its position) and once for the others.
    fn deliver_local(&self, audience: &Audience, request: &WitRequest, tag: EventTag) -> usize {
        let recorded = if self.shared { None } else { self.recording(audience, tag) };
        let routes = self.read();
        let Some((limits, stream)) = recorded else {
            return Self::queue_all(&routes, audience, &Payloads::new(request, None), tag);
        };
        let _order = self.emit_order.lock().unwrap_or_else(|e| e.into_inner());
        let mut positioned = Bytes::new();
        let position = self.history.append(
            &stream,
            limits,
            now(),
            &mut |position| {
                positioned = Bytes::from(request.encode_with_position(Some(&position.to_string())));
                positioned.clone()
            },
            tag,
        );
        // The history keeps the positioned form: it is made anyway, and shared.
        let payloads = Payloads { positioned: OnceCell::from(positioned), ..Payloads::new(request, Some(&position)) };
        Self::queue_all(&routes, audience, &payloads, tag)
    }

    /// Queues an event of a shared history, at the position it was given, to the local
    /// receivers of `audience`; returns how many.
    fn deliver_at(&self, audience: &Audience, request: &WitRequest, tag: EventTag, position: &Position) -> usize {
        let routes = self.read();
        // Under the read lock: a closing connection's session record (written under the
        // write lock) sees exactly what was queued to it.
        if let Target::Connection(id) = audience.target() {
            if let Some(local) = routes.connections.get(id) {
                advance(&mut local.own_top.lock().unwrap_or_else(|e| e.into_inner()), position);
            }
        } else if let Some(top) =
            self.live_tops.lock().unwrap_or_else(|e| e.into_inner()).get_mut(position.stream.as_str())
        {
            advance(top, position);
        }
        Self::queue_all(&routes, audience, &Payloads::new(request, Some(position)), tag)
    }

    fn queue_all(routes: &Routes, audience: &Audience, payloads: &Payloads<'_>, tag: EventTag) -> usize {
        let mut n = 0;
        routes.each(audience, |id, local| {
            n += 1;
            local.queue(id, payloads, tag);
        });
        n
    }

    /// The history limits and stream of an event to `audience`, when it keeps history.
    fn recording(&self, audience: &Audience, tag: EventTag) -> Option<(HistoryLimits, String)> {
        // An event that skips a connection is not recorded: the skipped client would
        // get it on resume. Such events carry no position.
        if self.history_limits.is_empty() || audience.excluded().is_some() {
            return None;
        }
        self.history_limits
            .get(tag.key.1)
            .map(|limits| (*limits, Self::stream_of(audience)))
            .filter(|(_, stream)| is_recordable(stream))
    }

    /// The history stream of an audience: its topic, or `c:<id>` for one connection.
    fn stream_of(audience: &Audience) -> String {
        match audience.target() {
            Target::Connection(id) => connection_stream(*id),
            _ => Self::topic_of(audience),
        }
    }

    /// Whether `stream` is the history stream of `audience` (as [`Self::stream_of`]
    /// names it, without building the name).
    fn is_stream_of(audience: &Audience, stream: &str) -> bool {
        match audience.target() {
            Target::Connection(id) => {
                stream.strip_prefix("c:") == Some(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
            }
            Target::User(u) => stream.strip_prefix("u:") == Some(&**u),
            Target::Group(g) => stream.strip_prefix("g:") == Some(&**g),
            _ => stream == TOPIC_ALL,
        }
    }

    /// Whether `audience` may have receivers on another node.
    fn may_be_remote(&self, audience: &Audience) -> bool {
        if !self.broker.is_clustered() {
            return false;
        }
        match audience.target() {
            // A local connection is only here.
            Target::Connection(id) if self.read().connections.contains_key(id) => false,
            _ => self.broker.has_remote_receivers(&Self::topic_of(audience)),
        }
    }

    fn topic_of(audience: &Audience) -> String {
        match audience.target() {
            Target::User(u) => user_topic(u),
            Target::Group(g) => group_topic(g),
            _ => TOPIC_ALL.to_owned(),
        }
    }

    /// Builds the WitRPC request of an event from its encoded parameters.
    fn request(descriptor: &'static ServiceDescriptor, event: usize, parameters: Vec<Bytes>, id: Uuid) -> WitRequest {
        let resolved = descriptor.resolved();
        WitRequest {
            method_name: descriptor.events.get(event).map_or("", |e| e.name).to_owned(),
            parameters,
            parameter_types_by_name: resolved.event_parameter_types.get(event).cloned().unwrap_or_default(),
            invocation_id: id,
            contract_id: resolved.contract_id,
            ..WitRequest::default()
        }
    }

    fn check_connection(routes: &Routes, connection: Uuid) -> Result<&Local, GroupError> {
        routes.connections.get(&connection).ok_or(GroupError::UnknownConnection { connection })
    }

    async fn join_group(&self, connection: Uuid, group: &str) -> Result<(), GroupError> {
        check_group_name(group)?;
        let (group, user) = {
            let mut routes = self.write();
            let local = routes.connections.get_mut(&connection).ok_or(GroupError::UnknownConnection { connection })?;
            if local.groups.contains(group) {
                return Ok(());
            }
            if local.groups.len() >= self.max_groups {
                return Err(GroupError::TooManyGroups { max: self.max_groups });
            }
            let group: Arc<str> = group.into();
            local.groups.insert(group.clone());
            let user = local.user.clone();
            routes.groups.entry(group.clone()).or_default().insert(connection);
            (group, user)
        };
        tracing::debug!(%connection, group = %group, "joined group");
        let subscribed = self.retain(&group_topic(&group)).await;
        let member = self.member(connection, user.as_ref());
        let present = self.broker.add_presence(&PresenceKey::Group(group), &member).await;
        self.save_live_record(connection).await;
        subscribed.and(present).map_err(backplane)
    }

    async fn leave_group(&self, connection: Uuid, group: &str) -> Result<(), GroupError> {
        check_group_name(group)?;
        let group = {
            let mut routes = self.write();
            let Some(local) = routes.connections.get_mut(&connection) else { return Ok(()) };
            let Some(group) = local.groups.take(group) else { return Ok(()) };
            forget(&mut routes.groups, &group, connection);
            group
        };
        tracing::debug!(%connection, group = %group, "left group");
        let absent = self.broker.remove_presence(&PresenceKey::Group(group.clone()), connection).await;
        let released = self.release(&group_topic(&group)).await;
        self.save_live_record(connection).await;
        absent.and(released).map_err(backplane)
    }

    /// Closes every connection of `user` on this node (1008 "access revoked"); returns
    /// how many.
    pub(crate) fn close_user(&self, user: &str) -> usize {
        let routes = self.read();
        let Some(ids) = routes.users.get(user) else { return 0 };
        let reason = CloseReason::new(CloseCode::Policy, ACCESS_REVOKED);
        for id in ids {
            if let Some(local) = routes.connections.get(id) {
                local.outbox.close(reason.clone());
            }
        }
        tracing::info!(connections = ids.len(), "access revoked");
        ids.len()
    }

    /// Closes `user`'s connections here, then asks every other node to.
    pub(crate) async fn revoke_user(&self, user: &str) -> Result<usize, BrokerError> {
        let closed = self.close_user(user);
        self.broker.revoke_user(user).await?;
        Ok(closed)
    }

    /// Whether `connection` is authorized here.
    pub(crate) fn is_local(&self, connection: Uuid) -> bool {
        Self::check_connection(&self.read(), connection).is_ok()
    }
}

/// Moves a stream's last delivered position to `position`: in place within an epoch (no
/// allocation per event), replaced when the epoch changes.
fn advance(top: &mut Option<Position>, position: &Position) {
    match top {
        Some(t) if t.epoch == position.epoch && t.stream == position.stream => t.offset = position.offset,
        _ => *top = Some(position.clone()),
    }
}

/// The hub's clock: tokio's, so paused test time ages the history too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn backplane(e: BrokerError) -> GroupError {
    GroupError::Backplane(Box::new(e))
}

/// Removes `id` from the set at `key`, and the set when it is empty.
fn forget(map: &mut HashMap<Arc<str>, HashSet<Uuid>>, key: &Arc<str>, id: Uuid) {
    if let Some(set) = map.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Membership for EventHub {
    fn join<'a>(&'a self, connection: Uuid, group: &'a str) -> BoxFuture<'a, Result<(), GroupError>> {
        Box::pin(self.join_group(connection, group))
    }

    fn leave<'a>(&'a self, connection: Uuid, group: &'a str) -> BoxFuture<'a, Result<(), GroupError>> {
        Box::pin(self.leave_group(connection, group))
    }

    fn group_members<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<Member>, GroupError>> {
        Box::pin(async move {
            check_group_name(group)?;
            self.broker.presence(&PresenceKey::Group(group.into())).await.map_err(backplane)
        })
    }

    fn user_connections<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<Member>, GroupError>> {
        Box::pin(async move { self.broker.presence(&PresenceKey::User(user.into())).await.map_err(backplane) })
    }
}

/// The close reason of a connection whose user was revoked.
pub(crate) const ACCESS_REVOKED: &str = "access revoked";

/// A backplane frame, read: the event it carries, ready to queue.
struct FrameEvent {
    origin: String,
    audience: Audience,
    request: WitRequest,
    tag: EventTag,
}

impl EventHub {
    /// Reads a backplane frame (a dropped frame is logged and counted).
    fn read_frame(&self, frame: &Bytes) -> Option<FrameEvent> {
        let frame = match Frame::decode(frame) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "backplane: dropping an unreadable frame");
                metrics::counter!(crate::metrics::BACKPLANE_LOST, "reason" => "malformed").increment(1);
                return None;
            }
        };
        let found = self
            .events
            .get(&frame.contract_id)
            .and_then(|events| events.iter().find(|(d, i)| d.events.get(*i).is_some_and(|e| e.name == frame.event)));
        let Some(&(descriptor, index)) = found else {
            tracing::warn!(event = %frame.event, "backplane: event of a contract this node does not serve; dropped");
            metrics::counter!(crate::metrics::BACKPLANE_LOST, "reason" => "unknown_event").increment(1);
            return None;
        };
        let name = descriptor.events.get(index).map_or("", |e| e.name);
        Some(FrameEvent {
            tag: self.tag(frame.contract_id, name),
            request: Self::request(descriptor, index, frame.parameters, frame.invocation_id),
            origin: frame.origin,
            audience: frame.audience,
        })
    }
}

impl BrokerInbound for EventHub {
    fn revoke_user(&self, user: &str) {
        self.close_user(user);
    }

    fn deliver(&self, frame: Bytes) {
        let Some(event) = self.read_frame(&frame) else { return };
        if event.origin == self.broker.node_id() {
            return; // our own echo: delivered locally already
        }
        let n = self.deliver_local(&event.audience, &event.request, event.tag);
        metrics::counter!(crate::metrics::BACKPLANE_RECEIVED).increment(1);
        tracing::trace!(event = event.tag.key.1, origin = %event.origin, receivers = n, "backplane event");
    }

    fn deliver_positioned(&self, position: Position, frame: Bytes) {
        // Our own events too: with a shared history they are delivered from here.
        let Some(event) = self.read_frame(&frame) else { return };
        if !Self::is_stream_of(&event.audience, &position.stream) {
            tracing::warn!(stream = %position.stream, "backplane: a positioned frame of another stream; dropped");
            metrics::counter!(crate::metrics::BACKPLANE_LOST, "reason" => "malformed").increment(1);
            return;
        }
        let n = self.deliver_at(&event.audience, &event.request, event.tag, &position);
        metrics::counter!(crate::metrics::BACKPLANE_RECEIVED).increment(1);
        tracing::trace!(event = event.tag.key.1, origin = %event.origin, receivers = n, "backplane event");
    }
}

impl EventSink for EventHub {
    fn room(&self) -> BoxFuture<'_, ()> {
        let outboxes: Vec<Arc<Outbox>> = self.read().connections.values().map(|l| l.outbox.clone()).collect();
        Box::pin(async move {
            for outbox in outboxes {
                outbox.wait_for_room().await;
            }
        })
    }

    fn emit(
        &self,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn witrpc_core::erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        self.emit_to(&Audience::all(), contract, event, args)
    }

    fn emit_to(
        &self,
        audience: &Audience,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn witrpc_core::erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        let Some(descriptor) = contract.events.get(event) else { return Ok(()) };
        let mut parameters = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let blob = self
                .serializer
                .serialize(*arg)
                .map_err(|e| e.for_value(format!("argument {i} of event {}", descriptor.name)))?;
            parameters.push(Bytes::from(blob));
        }
        let invocation_id = Uuid::new_v4();
        let tag = self.tag(contract.contract_id(), descriptor.name);
        let shared = self.shared_history().zip(self.recording(audience, tag));
        if let Some((history, (limits, stream))) = shared {
            // Positioned by the shared history and delivered, here too, when it comes back.
            let frame = self.frame(audience, contract, descriptor.name, invocation_id, parameters);
            if let Some(bytes) = frame {
                history.append(&stream, limits, bytes);
            }
            return Ok(());
        }
        let remote = self.may_be_remote(audience);
        // Parameter blobs are reference-counted: the frame shares them with the payload.
        let frame_parameters = remote.then(|| parameters.clone());
        let request = Self::request(contract, event, parameters, invocation_id);
        let n = self.deliver_local(audience, &request, tag);
        tracing::trace!(event = descriptor.name, receivers = n, "event");
        if let Some(parameters) = frame_parameters {
            if let Some(bytes) = self.frame(audience, contract, descriptor.name, invocation_id, parameters) {
                self.broker.publish(&Self::topic_of(audience), bytes);
            }
        }
        Ok(())
    }
}

impl EventHub {
    /// The backplane frame of an event (`None`, logged and counted, when a name is too
    /// long to frame).
    fn frame(
        &self,
        audience: &Audience,
        contract: &'static ServiceDescriptor,
        event: &'static str,
        invocation_id: Uuid,
        parameters: Vec<Bytes>,
    ) -> Option<Bytes> {
        let frame = Frame {
            origin: self.broker.node_id().to_owned(),
            audience: audience.clone(),
            contract_id: contract.contract_id(),
            event: event.to_owned(),
            invocation_id,
            parameters,
        };
        match frame.encode() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(error = %e, event, "backplane: event not sent to other nodes");
                metrics::counter!(crate::metrics::BACKPLANE_LOST, "reason" => "too_long").increment(1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_recognised_as_its_audiences_without_building_its_name() {
        let id = Uuid::new_v4();
        let audiences = [
            Audience::all(),
            Audience::connection(id),
            Audience::user("ann"),
            Audience::group("room"),
            Audience::group("ann"),
        ];
        for audience in &audiences {
            for other in &audiences {
                let stream = EventHub::stream_of(other);
                let same = EventHub::stream_of(audience) == stream;
                assert_eq!(EventHub::is_stream_of(audience, &stream), same, "{audience:?} / {stream}");
            }
        }
        let upper = format!("c:{}", id.hyphenated().to_string().to_uppercase());
        assert!(!EventHub::is_stream_of(&Audience::connection(id), &upper), "only the name stream_of gives");
        assert!(!EventHub::is_stream_of(&Audience::connection(id), &format!("c:{}", id.simple())));
    }
}
