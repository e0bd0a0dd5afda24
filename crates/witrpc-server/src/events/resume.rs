//! Resuming a connection's event streams: the client's request, what the server keeps
//! of closed resume-capable connections (session records), and the answer with the
//! replay (the wire is in `ARCHITECTURE.md`, "Wire extensions of ours").

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;
use witrpc_core::batch;
use witrpc_core::session::{EventTag, Queued};

use super::{EventHub, Local, Resume, Routes, TOPIC_ALL, connection_stream, group_topic, now, user_topic};
use crate::broker::{HistoryRead, SharedHistory};
use crate::history::{Position, Recovery};
use crate::outbox::Outbox;

/// Longest `Resume` member read (larger ones are ignored).
pub(crate) const MAX_RESUME_LEN: usize = 64 * 1024;
/// Most positions read from one `Resume` member.
pub(crate) const MAX_RESUME_STREAMS: usize = 256;
/// Session records (closed resume-capable connections) kept at once.
pub(crate) const MAX_SESSION_RECORDS: usize = 100_000;
/// How long a shared history keeps the record of a live connection, written when it
/// authorizes, joins or leaves: a day ([`crate::MAX_HISTORY_AGE`]), so a connection
/// whose node dies unannounced within a day of its last membership change can still
/// be resumed with its groups.
pub(crate) const LIVE_RECORD_TTL: Duration = crate::history::MAX_HISTORY_AGE;

/// What the server remembers of a closed connection that negotiated `resume`, for its
/// history's max age: who it was, its groups, and where its streams stood.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SessionRecord {
    pub(super) user: Option<Arc<str>>,
    pub(super) groups: HashSet<Arc<str>>,
    /// Each stream it received, with its position at the close (`None`: no history yet).
    pub(super) tops: Vec<(String, Option<Position>)>,
}

const RECORD_VERSION: u8 = 1;
const NO_USER: u16 = u16::MAX;

/// A name with its u16 length.
fn put_short(out: &mut BytesMut, s: &str) {
    out.put_u16_le(s.len() as u16);
    out.put_slice(s.as_bytes());
}

impl SessionRecord {
    /// The opening bytes of every record of `user` (the version and the user): what
    /// [`crate::broker::SharedHistory::take_session`] compares.
    pub(super) fn owner_prefix(user: Option<&str>) -> Bytes {
        let mut out = BytesMut::with_capacity(3 + user.map_or(0, str::len));
        Self::put_owner(&mut out, user);
        out.freeze()
    }

    fn put_owner(out: &mut BytesMut, user: Option<&str>) {
        out.put_u8(RECORD_VERSION);
        match user.filter(|u| u.len() < usize::from(NO_USER)) {
            Some(u) => put_short(out, u),
            None => out.put_u16_le(NO_USER),
        }
    }

    /// The record as a shared history keeps it (opaque to the broker):
    ///
    /// ```text
    /// u8 1                          version
    /// u16 len, bytes                the user (len 0xFFFF: no identity)
    /// u16 count, then u16 len, bytes per group
    /// u16 count, then per stream: u16 len, bytes (its name), u8 0|1, and for 1:
    ///   u8 len, bytes (epoch), u64 offset
    /// ```
    /// Little-endian; names longer than a u16 (none are: groups, users and streams are
    /// bounded far below) are left out.
    pub(super) fn encode(&self) -> Bytes {
        let fits = |s: &str| s.len() < usize::from(NO_USER);
        let mut out = BytesMut::with_capacity(256);
        Self::put_owner(&mut out, self.user.as_deref());
        let groups: Vec<&Arc<str>> = self.groups.iter().filter(|g| fits(g)).take(usize::from(NO_USER)).collect();
        out.put_u16_le(groups.len() as u16);
        groups.into_iter().for_each(|g| put_short(&mut out, g));
        let tops: Vec<_> = self
            .tops
            .iter()
            .filter(|(s, top)| fits(s) && top.as_ref().is_none_or(|t| t.epoch.len() <= 255))
            .take(usize::from(NO_USER))
            .collect();
        out.put_u16_le(tops.len() as u16);
        for (stream, top) in tops {
            put_short(&mut out, stream);
            match top {
                Some(top) => {
                    out.put_u8(1);
                    out.put_u8(top.epoch.len() as u8);
                    out.put_slice(top.epoch.as_bytes());
                    out.put_u64_le(top.offset);
                }
                None => out.put_u8(0),
            }
        }
        out.freeze()
    }

    /// Reads [`encode`](Self::encode)'s bytes; `None` when they are of another version
    /// or corrupt.
    pub(super) fn decode(mut bytes: &[u8]) -> Option<Self> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = bytes.split_at_checked(n)?;
            *bytes = rest;
            Some(head)
        }
        fn u16le(bytes: &mut &[u8]) -> Option<u16> {
            take(bytes, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
        }
        fn text(bytes: &mut &[u8], n: usize) -> Option<String> {
            take(bytes, n).and_then(|b| std::str::from_utf8(b).ok()).map(str::to_owned)
        }
        if take(&mut bytes, 1)? != [RECORD_VERSION] {
            return None;
        }
        let user = match u16le(&mut bytes)? {
            NO_USER => None,
            n => Some(Arc::from(text(&mut bytes, usize::from(n))?)),
        };
        let mut groups = HashSet::new();
        for _ in 0..u16le(&mut bytes)? {
            let n = u16le(&mut bytes)?;
            groups.insert(Arc::from(text(&mut bytes, usize::from(n))?));
        }
        let mut tops = Vec::new();
        for _ in 0..u16le(&mut bytes)? {
            let n = u16le(&mut bytes)?;
            let stream = text(&mut bytes, usize::from(n))?;
            let top = match take(&mut bytes, 1)? {
                [0] => None,
                [1] => {
                    let n = take(&mut bytes, 1)?[0];
                    let epoch = text(&mut bytes, usize::from(n))?;
                    let offset = take(&mut bytes, 8)?.get_u64_le();
                    Some(Position { stream: stream.clone(), epoch, offset })
                }
                _ => return None,
            };
            tops.push((stream, top));
        }
        bytes.is_empty().then_some(Self { user, groups, tops })
    }
}

/// Session records, oldest first, bounded in count and age.
#[derive(Debug, Default)]
pub(super) struct SessionRecords {
    pub(super) by_id: HashMap<Uuid, SessionRecord>,
    pub(super) order: VecDeque<(Instant, Uuid)>,
}

impl SessionRecords {
    pub(super) fn prune(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(at, id)) = self.order.front() {
            // `order` also holds records consumed by a resume: it is what is bounded.
            if now.saturating_duration_since(at) <= ttl && self.order.len() < MAX_SESSION_RECORDS {
                break;
            }
            self.order.pop_front();
            self.by_id.remove(&id);
        }
    }
}

/// A client's resume request: its previous connection and the last position it
/// received per stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResumeRequest {
    pub(crate) previous: Uuid,
    pub(crate) positions: Vec<Position>,
}

impl ResumeRequest {
    /// Reads a `Resume` member; `None` (logged) when it is too long or its first line
    /// is not a connection id. Unreadable position lines are skipped.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_RESUME_LEN {
            tracing::debug!(len = text.len(), "resume request too long; ignored");
            return None;
        }
        let mut lines = text.split('\n');
        let previous = lines.next().and_then(|l| Uuid::try_parse(l).ok());
        let Some(previous) = previous else {
            tracing::debug!("resume request without a previous connection id; ignored");
            return None;
        };
        let mut positions = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if positions.len() == MAX_RESUME_STREAMS {
                tracing::debug!("resume request names too many streams; the rest is ignored");
                break;
            }
            match Position::parse(line) {
                Some(p) if !positions.iter().any(|q: &Position| q.stream == p.stream) => positions.push(p),
                _ => tracing::debug!("unreadable or repeated resume position; ignored"),
            }
        }
        Some(Self { previous, positions })
    }
}

/// A shared history's answer, ready to queue, or (not recovered) where the stream stands.
pub(super) type Replay = Result<Replayed, Option<Position>>;

/// The recovered events of one stream.
#[derive(Debug)]
pub(super) struct Replayed {
    /// The positioned payloads, in order, for a connection without `replay-batch`.
    events: Vec<(Bytes, EventTag)>,
    /// The same payloads packed into whole replay-batch envelopes, for one with it
    /// (when packed at all): a shared read's are framed once, whatever the number of
    /// connections that share it.
    batches: Vec<Bytes>,
    /// Events replayed.
    count: usize,
    /// The stream's top.
    top: Position,
}

impl Replayed {
    /// The replay of `events`, also packed when `pack`.
    fn new(events: Vec<(Bytes, EventTag)>, top: Position, pack: bool) -> Self {
        let batches = if pack {
            batch::pack(events.iter().map(|(payload, _)| &payload[..])).into_iter().map(batch::frame).collect()
        } else {
            Vec::new()
        };
        Self { count: events.len(), events, batches, top }
    }

    /// This replay followed by `since` (read from this one's top), in the one form a
    /// connection `packed` or not needs.
    fn then(&self, since: &Self, packed: bool) -> Self {
        let (events, batches) = if packed {
            (Vec::new(), self.batches.iter().chain(&since.batches).cloned().collect())
        } else {
            (self.events.iter().chain(&since.events).cloned().collect(), Vec::new())
        };
        Self { events, batches, count: self.count + since.count, top: since.top.clone() }
    }

    /// Queues the replay for connection `id`: packed when it negotiated `replay-batch`.
    fn queue(&self, outbox: &Outbox, id: Uuid, packed: bool) {
        if packed {
            for frame in &self.batches {
                let _closed = outbox.send(Queued::ReplayBatch { frame: frame.clone() });
            }
        } else {
            for (payload, tag) in &self.events {
                let _closed = outbox.send(Queued::Event { id, payload: payload.clone(), tag: *tag });
            }
        }
    }
}

/// Reads of a shared history, shared by the connections resuming from the same
/// position at once (after a node restart, thousands resume from one position).
///
/// A read may serve only connections registered before it began: events delivered
/// to a connection before its registration would otherwise be neither replayed nor
/// held. Registrations are numbered; a read records the number current when it begins.
/// So that a herd of resumes costs a few reads whatever its pace:
/// - one position is read once at a time: connections that come while a read they may
///   not join is in flight all wait for the *next* read, which begins when that one
///   ends;
/// - a read that recovered events is kept for [`RECENT_READ`]: a connection registered
///   after it began reads only what came since its top (usually nothing: one small
///   read shared by all of them) and gets both.
#[derive(Debug, Default)]
pub(super) struct SharedReads {
    registrations: AtomicU64,
    in_flight: Mutex<HashMap<Position, PositionReads>>,
    /// The newest read of a position that recovered events: the registration count when
    /// it began, the replay, and when it ended. At most [`MAX_RECENT_READS`]; taken
    /// after `in_flight` when both are held.
    recent: Mutex<HashMap<Position, RecentRead>>,
}

/// A read kept as a base: its registration count when it began, its replay, its end.
type RecentRead = (u64, Arc<Replay>, Instant);

/// How long a read that recovered events serves as the base of later resumes from the
/// same position (entries past their age by at most this much may be replayed).
const RECENT_READ: Duration = Duration::from_secs(1);
/// At most this many positions keep a recent read (each holds its replay's payloads);
/// past them a read is shared only while in flight.
const MAX_RECENT_READS: usize = 256;

/// The reads of one position.
#[derive(Debug, Default)]
struct PositionReads {
    /// Held while one of them reads.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The newest read: in flight, waiting for its turn, or done.
    latest: Option<Arc<ReadSlot>>,
}

#[derive(Debug, Default)]
struct ReadSlot {
    /// The registration count when the read began (0: not begun; counts start at 1).
    started: AtomicU64,
    replay: tokio::sync::OnceCell<Arc<Replay>>,
}

impl ReadSlot {
    /// Whether a connection registered as `registered` may use this read.
    fn serves(&self, registered: u64) -> bool {
        match self.started.load(Ordering::SeqCst) {
            0 => true, // it will begin after this registration
            started => started >= registered,
        }
    }
}

impl SharedReads {
    /// Numbers a registration (made under the hub's write lock, before this is called).
    pub(super) fn registered(&self) -> u64 {
        self.registrations.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The replay from `from` for a connection registered as `registered` (`packed`:
    /// it negotiated `replay-batch`), built from reads it may use (see the type's
    /// docs); `read(p)` reads the history from `p`.
    pub(super) async fn read<F: Future<Output = Replay>>(
        &self,
        registered: u64,
        packed: bool,
        from: &Position,
        read: impl Fn(Position) -> F,
    ) -> Arc<Replay> {
        let base = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let joinable =
                in_flight.get(from).and_then(|r| r.latest.as_ref()).is_some_and(|slot| slot.serves(registered));
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent
                .get(from)
                .filter(|(_, _, at)| !joinable && now().duration_since(*at) < RECENT_READ)
                .map(|(started, replay, _)| (*started, replay.clone()))
        };
        if let Some((started, base)) = base {
            if started >= registered {
                return base; // it began after this registration: usable as it is
            }
            if let Ok(base) = &*base {
                let since = self.read_from(registered, &base.top, || read(base.top.clone())).await;
                return Arc::new(match &*since {
                    Ok(since) => Ok(base.then(since, packed)),
                    Err(top) => Err(top.clone()),
                });
            }
        }
        self.read_from(registered, from, || read(from.clone())).await
    }

    /// The read from `from` for a connection registered as `registered`: one that began
    /// after that registration, or has not begun yet, is joined; otherwise a new one is
    /// queued behind the one in flight. `read` is made by whichever joiner's turn comes
    /// first.
    async fn read_from<F: Future<Output = Replay>>(
        &self,
        registered: u64,
        from: &Position,
        read: impl FnOnce() -> F,
    ) -> Arc<Replay> {
        let (slot, turn) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let reads = in_flight.entry(from.clone()).or_default();
            let slot = match &reads.latest {
                Some(slot) if slot.serves(registered) => slot.clone(),
                _ => reads.latest.insert(Arc::default()).clone(),
            };
            (slot, reads.turn.clone())
        };
        // Let go of when done, or when this resume is dropped midway: nothing stays.
        let _leave = Leave { reads: self, from, slot: &slot };
        if let Some(replay) = slot.replay.get() {
            return replay.clone();
        }
        let _turn = turn.lock().await;
        let replay = slot.replay.get_or_init(|| async {
            let started = self.registrations.load(Ordering::SeqCst);
            slot.started.store(started, Ordering::SeqCst);
            let replay = Arc::new(read().await);
            if replay.as_ref().as_ref().is_ok_and(|r| !r.events.is_empty()) {
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                let now = now();
                if recent.len() >= MAX_RECENT_READS {
                    recent.retain(|_, (_, _, at)| now.duration_since(*at) < RECENT_READ);
                }
                if recent.len() < MAX_RECENT_READS || recent.contains_key(from) {
                    recent.insert(from.clone(), (started, replay.clone(), now));
                }
            }
            replay
        });
        replay.await.clone()
    }
}

/// Takes a position's reads out of the map (if `slot` is still the newest) when dropped.
struct Leave<'a> {
    reads: &'a SharedReads,
    from: &'a Position,
    slot: &'a Arc<ReadSlot>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.reads.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(self.from).and_then(|r| r.latest.as_ref()).is_some_and(|s| Arc::ptr_eq(s, self.slot)) {
            in_flight.remove(self.from);
        }
    }
}

/// The answer line of one stream: `<stream>\t<epoch>\t<offset>\t<0|1>`.
fn answer_line(out: &mut String, position: &Position, recovered: bool) {
    if !out.is_empty() {
        out.push('\n');
    }
    let _infallible = write!(out, "{position}");
    out.push_str(if recovered { "\t1" } else { "\t0" });
}

/// Which streams a resuming connection may recover.
struct Entitled<'a> {
    user: Option<&'a Arc<str>>,
    previous: Uuid,
    /// The previous connection's record, when it had the same identity.
    record: Option<&'a SessionRecord>,
}

impl Entitled<'_> {
    /// Broadcasts and the user's own stream.
    fn own(&self, stream: &str) -> bool {
        stream == TOPIC_ALL || self.user.is_some_and(|u| stream.strip_prefix("u:") == Some(&**u))
    }

    /// The previous connection's own stream and groups (only with its record).
    fn inherited(&self, stream: &str) -> bool {
        self.record.is_some_and(|r| {
            stream == connection_stream(self.previous)
                || stream.strip_prefix("g:").is_some_and(|g| r.groups.contains(g))
        })
    }

    /// Where each stream starts from (the client's position, else the record's; with
    /// whether the client asked), and the answer lines of the refused ones. `unseen`
    /// gives the start of a stream the record saw no event of.
    fn starting_points(
        &self,
        request: &ResumeRequest,
        unseen: impl Fn(&str) -> Option<Position>,
    ) -> (Vec<(Position, bool)>, String) {
        let mut from: Vec<(Position, bool)> = Vec::new();
        let mut answer = String::new();
        for position in &request.positions {
            if self.own(&position.stream) || self.inherited(&position.stream) {
                from.push((position.clone(), true));
            } else if position.stream.starts_with("c:") || position.stream.starts_with("g:") {
                // Not this client's to recover: refused without saying where it stands.
                answer_line(&mut answer, position, false);
            }
        }
        for (stream, top) in self.record.iter().flat_map(|r| &r.tops) {
            if from.iter().any(|(p, _)| &p.stream == stream) || !(self.own(stream) || self.inherited(stream)) {
                continue;
            }
            // No event seen before the close: everything since is missed.
            if let Some(start) = top.clone().or_else(|| unseen(stream)) {
                from.push((start, false));
            }
        }
        (from, answer)
    }
}

impl EventHub {
    /// Answers `request` for connection `id` (just registered, under the write lock):
    /// queues the recovered events, restores the previous connection's groups when it
    /// had the same identity. Returns the `Resumed` lines and the restored groups.
    pub(super) fn resume_locked(
        &self,
        routes: &mut Routes,
        id: Uuid,
        request: &ResumeRequest,
    ) -> (String, Vec<Arc<str>>) {
        let now = now();
        let Some(local) = routes.connections.get(&id) else { return (String::new(), Vec::new()) };
        let user = local.user.clone();
        let outbox = local.outbox.clone();
        let record = {
            let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            records.prune(now, self.record_ttl);
            // Another identity does not consume the record: its owner may still resume.
            if records.by_id.get(&request.previous).is_some_and(|r| r.user == user) {
                records.by_id.remove(&request.previous)
            } else {
                None
            }
        };
        let entitled = Entitled { user: user.as_ref(), previous: request.previous, record: record.as_ref() };
        let (from, mut answer) = entitled
            .starting_points(request, |stream| self.history.top(stream, now).map(|c| Position { offset: 0, ..c }));
        let packed = local.batch;
        for (position, reported) in from {
            match self.history.since(&position, now) {
                Recovery::Recovered { events, top } => {
                    tracing::debug!(stream = %top.stream, replayed = events.len(), "stream recovered");
                    answer_line(&mut answer, &top, true);
                    let events = events.into_iter().map(|e| (e.payload, e.tag)).collect();
                    Replayed::new(events, top, packed).queue(&outbox, id, packed);
                }
                Recovery::Lost { top } => {
                    tracing::debug!(stream = %position.stream, "stream not recovered");
                    if reported || top.is_some() {
                        answer_line(&mut answer, top.as_ref().unwrap_or(&position), false);
                    }
                }
            }
        }
        let restored = record.map(|r| self.restore_groups(routes, id, r)).unwrap_or_default();
        if !restored.is_empty() || !answer.is_empty() {
            tracing::debug!(previous = %request.previous, groups = restored.len(), "session resumed");
        }
        (answer, restored)
    }

    /// Puts connection `id` in the groups of its previous connection's record.
    fn restore_groups(&self, routes: &mut Routes, id: Uuid, record: SessionRecord) -> Vec<Arc<str>> {
        let mut restored = Vec::new();
        for group in record.groups.into_iter().take(self.max_groups) {
            if let Some(local) = routes.connections.get_mut(&id) {
                local.groups.insert(group.clone());
            }
            routes.groups.entry(group.clone()).or_default().insert(id);
            restored.push(group);
        }
        restored
    }

    /// Registers connection `id` and answers its resume from the shared history: its
    /// live events are held from the start; the node subscribes to its topics before
    /// reading, so nothing published meanwhile is missed; then, under the write lock,
    /// the replay is queued, then the held events it did not contain. Returns the
    /// authorization answer (the connection id, then the `Resumed` lines).
    pub(super) async fn resume_shared(
        &self,
        history: &dyn SharedHistory,
        id: Uuid,
        outbox: Arc<Outbox>,
        user: Option<Arc<str>>,
        resume: Resume,
        request: &ResumeRequest,
    ) -> String {
        let registered = {
            let mut routes = self.write();
            if let Some(u) = &user {
                routes.users.entry(u.clone()).or_default().insert(id);
            }
            routes.connections.insert(id, Local::new(outbox, user.clone(), resume, true));
            self.reads.registered()
        };
        // Taken (read and forgotten in one step) only when it is this identity's.
        let owner = SessionRecord::owner_prefix(user.as_deref());
        let record = match history.take_session(request.previous, &owner).await {
            Ok(bytes) => bytes.and_then(|b| SessionRecord::decode(&b)).filter(|r| r.user == user),
            Err(e) => {
                tracing::debug!(error = %e, "backplane: session record unreadable; resuming without it");
                None
            }
        };
        let entitled = Entitled { user: user.as_ref(), previous: request.previous, record: record.as_ref() };
        let (from, mut answer) = entitled.starting_points(request, |stream| {
            Some(Position { stream: stream.to_owned(), epoch: String::new(), offset: 0 })
        });
        let restored = match record {
            Some(record) => self.restore_groups(&mut self.write(), id, record),
            None => Vec::new(),
        };
        self.announce(id, user.as_ref(), restored).await;
        let mut reads = Vec::with_capacity(from.len());
        for (position, reported) in from {
            let replay = self.reads.read(registered, resume.batch, &position, |from| async move {
                let read = history.since(&from).await.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, stream = %from.stream, "backplane: history unreadable; not recovered");
                    HistoryRead::Lost { top: None }
                });
                self.replay_of(read)
            });
            reads.push((position.clone(), reported, replay.await));
        }
        self.queue_replay(id, reads, &mut answer);
        self.save_live_record(id).await;
        if answer.is_empty() { id.to_string() } else { format!("{id}\n{answer}") }
    }

    /// Under the write lock: queues the replay of each stream, then the events held
    /// meanwhile that it did not contain; sets the floors; adds the `Resumed` lines.
    fn queue_replay(&self, id: Uuid, reads: Vec<(Position, bool, Arc<Replay>)>, answer: &mut String) {
        let mut routes = self.write();
        let Some(local) = routes.connections.get_mut(&id) else { return };
        let mut floors = Vec::new();
        for (position, reported, replay) in reads {
            match &*replay {
                Ok(replayed) => {
                    let top = &replayed.top;
                    tracing::debug!(stream = %top.stream, replayed = replayed.count, "stream recovered");
                    replayed.queue(&local.outbox, id, local.batch);
                    answer_line(answer, top, true);
                    floors.push(top.clone());
                }
                Err(top) => {
                    tracing::debug!(stream = %position.stream, "stream not recovered");
                    if reported || top.is_some() {
                        answer_line(answer, top.as_ref().unwrap_or(&position), false);
                    }
                    floors.extend(top.clone());
                }
            }
        }
        local.floors = floors;
        let held = local.pending.take().map(|p| p.into_inner().unwrap_or_else(|e| e.into_inner())).unwrap_or_default();
        for (position, payload, tag) in held {
            if position.is_none_or(|p| !local.replayed(&p)) {
                let _closed = local.outbox.send(Queued::Event { id, payload, tag });
            }
        }
    }

    /// The payloads of a shared history's answer (each event positioned), and its top;
    /// or, when not recovered, where the stream stands.
    fn replay_of(&self, read: HistoryRead) -> Replay {
        let (entries, top) = match read {
            HistoryRead::Recovered { entries, top } => (entries, top),
            HistoryRead::Lost { top } => return Err(top),
        };
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            // A frame this node cannot read leaves a hole: not recovered, rather than partial.
            let Some(event) = self.read_frame(&entry.frame) else { return Err(Some(top)) };
            let position = Position { offset: entry.offset, ..top.clone() };
            let payload = Bytes::from(event.request.encode_with_position(Some(&position.to_string())));
            events.push((payload, event.tag));
        }
        // Packed too: a shared read serves connections of both kinds.
        Ok(Replayed::new(events, top, true))
    }

    /// With a shared history, saves what a *live* resume-capable connection could
    /// resume, so a node that dies without closing it (SIGKILL, power loss) leaves its
    /// identity and groups behind: written when it authorizes, joins and leaves, kept for
    /// [`LIVE_RECORD_TTL`] (the close replaces it with the final record).
    pub(super) async fn save_live_record(&self, id: Uuid) {
        let Some(history) = self.shared_history() else { return };
        let record = {
            let routes = self.read();
            match routes.connections.get(&id) {
                Some(local) if local.resume && local.pending.is_none() => self.snapshot(id, local),
                _ => return,
            }
        };
        if let Err(e) = history.save_session(id, record.encode(), LIVE_RECORD_TTL).await {
            tracing::debug!(error = %e, "backplane: session record not saved; a crash would lose its groups");
        }
    }

    /// What a closing resume-capable connection may resume: kept here (`None` is
    /// returned) or, with a shared history, returned for the caller to save there.
    pub(super) fn record_session(&self, id: Uuid, local: &Local) -> Option<SessionRecord> {
        let now = now();
        let record = self.snapshot(id, local);
        if self.shared {
            return Some(record);
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.prune(now, self.record_ttl);
        records.by_id.insert(id, record);
        records.order.push_back((now, id));
        None
    }

    /// The identity, groups and stream tops of connection `id` now (taken under a route
    /// lock, so no event slips between the tops and what the connection was given).
    fn snapshot(&self, id: Uuid, local: &Local) -> SessionRecord {
        let now = now();
        let mut streams = vec![TOPIC_ALL.to_owned(), connection_stream(id)];
        streams.extend(local.user.iter().map(|u| user_topic(u)));
        streams.extend(local.groups.iter().map(|g| group_topic(g)));
        let own = connection_stream(id);
        // Closed mid-resume (held events may have been dropped): no stream counts as seen,
        // so the next resume starts each one the client did not name from the beginning.
        let resuming = local.pending.is_some();
        let tops = streams
            .into_iter()
            .map(|s| {
                let top = if resuming {
                    None
                } else if !self.shared {
                    self.history.top(&s, now)
                } else if s == own {
                    local.own_top.lock().unwrap_or_else(|e| e.into_inner()).clone()
                } else {
                    self.live_tops.lock().unwrap_or_else(|e| e.into_inner()).get(&s).cloned().flatten()
                };
                (s, top)
            })
            .collect();
        SessionRecord { user: local.user.clone(), groups: local.groups.clone(), tops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_requests_are_bounded_and_malformed_parts_are_ignored() {
        let id = Uuid::new_v4();
        let parsed = ResumeRequest::parse(&format!("{id}\nall\tab\t3\nbad line\ng:x\tcd\t1\nall\tab\t9\n")).unwrap();
        assert_eq!(parsed.previous, id);
        let streams: Vec<(&str, u64)> = parsed.positions.iter().map(|p| (p.stream.as_str(), p.offset)).collect();
        assert_eq!(streams, [("all", 3), ("g:x", 1)], "unreadable and repeated lines skipped");

        let many: String = (0..1000).map(|i| format!("\ng:{i}\tab\t1")).collect();
        assert_eq!(ResumeRequest::parse(&format!("{id}{many}")).unwrap().positions.len(), MAX_RESUME_STREAMS);
        assert_eq!(ResumeRequest::parse(&format!("{id}\n{}", "x".repeat(MAX_RESUME_LEN))), None, "too long");
        for bad in ["", "\nall\tab\t1", "not-an-id\nall\tab\t1", "\u{0}"] {
            assert_eq!(ResumeRequest::parse(bad), None, "{bad:?}");
        }
        let mut line = String::new();
        answer_line(&mut line, &Position { stream: "all".into(), epoch: "ab".into(), offset: 7 }, true);
        answer_line(&mut line, &Position { stream: "g:x".into(), epoch: "cd".into(), offset: 2 }, false);
        assert_eq!(line, "all\tab\t7\t1\ng:x\tcd\t2\t0");
    }

    fn all_from(offset: u64) -> Position {
        Position { stream: "all".into(), epoch: "00ff".into(), offset }
    }

    #[tokio::test]
    async fn a_read_is_shared_only_by_connections_registered_before_it_began() {
        let reads = SharedReads::default();
        let made = std::sync::atomic::AtomicUsize::new(0);
        let read = |_| async {
            made.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Err(None)
        };
        let from = all_from(3);
        // Two registered, then both resume at once: one read.
        let (first, second) = (reads.registered(), reads.registered());
        let (a, b) = tokio::join!(reads.read(first, true, &from, read), reads.read(second, true, &from, read));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        // Registered while a read is in flight: that read began too early for it.
        let early = reads.registered();
        let slow = reads.read(early, true, &from, read);
        let after = async {
            tokio::task::yield_now().await;
            let third = reads.registered();
            reads.read(third, true, &from, read).await
        };
        let (x, y) = tokio::join!(slow, after);
        assert!(!Arc::ptr_eq(&x, &y), "a connection registered after a read began gets its own");
        assert_eq!(made.load(Ordering::SeqCst), 3);
        assert!(reads.in_flight.lock().unwrap().is_empty(), "finished reads leave the map");
        // Many registered while a read is in flight: they wait for it, then share one
        // read, never one each, and never two reads of a position at once.
        let at_once = std::sync::atomic::AtomicUsize::new(0);
        let (before, made_before) = (reads.registered(), made.load(Ordering::SeqCst));
        let watched = |_| async {
            assert_eq!(at_once.fetch_add(1, Ordering::SeqCst), 0, "two reads of one position at once");
            made.fetch_add(1, Ordering::SeqCst);
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            at_once.fetch_sub(1, Ordering::SeqCst);
            Err(None)
        };
        let herd = async {
            tokio::task::yield_now().await;
            // Each registers, then reads, after the one before it: each comes while a
            // read it may not join is in flight.
            let late = (0..50).map(|_| async { reads.read(reads.registered(), true, &from, watched).await });
            futures_util::future::join_all(late).await
        };
        let (first_read, herd) = tokio::join!(reads.read(before, true, &from, watched), herd);
        assert_eq!(made.load(Ordering::SeqCst) - made_before, 2, "the first read and one for the 50");
        assert!(herd.iter().all(|r| Arc::ptr_eq(r, &herd[0])) && !Arc::ptr_eq(&first_read, &herd[0]));
        assert!(reads.in_flight.lock().unwrap().is_empty(), "finished reads leave the map");
        // A resume dropped midway leaves nothing behind either.
        let fourth = reads.registered();
        let elsewhere = all_from(9);
        let pending = reads.read(fourth, true, &elsewhere, |_| std::future::pending());
        assert!(tokio::time::timeout(std::time::Duration::from_millis(1), pending).await.is_err());
        assert!(reads.in_flight.lock().unwrap().is_empty(), "a dropped read leaves the map");
    }

    #[tokio::test]
    async fn a_connection_registered_after_a_recovered_read_reads_only_what_came_since() {
        let reads = SharedReads::default();
        let tag = EventTag { key: (0, "E"), policy: Default::default() };
        let event = |n: u8| (Bytes::from(vec![n]), tag);
        let asked = Mutex::new(Vec::new());
        let read = |from: Position| {
            asked.lock().unwrap().push(from.offset);
            // From 3 the history holds 4 and 5; from 5 (its top then), 6 has come since.
            let (events, top) = if from.offset == 3 { (vec![event(4), event(5)], 5) } else { (vec![event(6)], 6) };
            std::future::ready(Ok(Replayed::new(events, all_from(top), true)))
        };
        let from = all_from(3);
        let (early, early_too) = (reads.registered(), reads.registered());
        let first = reads.read(early, true, &from, read).await;
        let same = reads.read(early_too, true, &from, read).await;
        assert!(Arc::ptr_eq(&first, &same), "registered before the read began: it is used as it is");
        let later = reads.read(reads.registered(), true, &from, read).await;
        let unpacked = reads.read(reads.registered(), false, &from, read).await;
        assert_eq!(*asked.lock().unwrap(), [3, 5, 5], "the later ones read from the first read's top");
        let offsets = |r: &Replay| r.as_ref().unwrap().events.iter().map(|(p, _)| p[0]).collect::<Vec<_>>();
        assert_eq!((offsets(&first), offsets(&unpacked)), (vec![4, 5], vec![4, 5, 6]));
        assert_eq!(later.as_ref().as_ref().unwrap().count, 3);
        assert_eq!(later.as_ref().as_ref().unwrap().top.offset, 6);
        let packed: Vec<Bytes> = later
            .as_ref()
            .as_ref()
            .unwrap()
            .batches
            .iter()
            .flat_map(|frame| {
                let message = witrpc_core::WitMessage::decode(frame.clone()).unwrap();
                assert_eq!((message.id, message.kind), (Uuid::nil(), witrpc_core::MessageType::REPLAY_BATCH));
                batch::unpack(message.data.unwrap()).unwrap()
            })
            .collect();
        assert_eq!(packed, [Bytes::from_static(&[4]), Bytes::from_static(&[5]), Bytes::from_static(&[6])]);
        // A base that is not recovered any more from its top: not recovered, nothing partial.
        let lost = reads.read(reads.registered(), true, &from, |_| std::future::ready(Err(Some(all_from(9))))).await;
        assert!(matches!(&*lost, Err(Some(p)) if p.offset == 9));
    }

    #[test]
    fn session_records_round_trip_and_corrupt_ones_are_refused() {
        let record = SessionRecord {
            user: Some("ann\tx".into()),
            groups: ["room\n1".into(), "b".into()].into_iter().collect(),
            tops: vec![
                ("all".into(), Some(Position { stream: "all".into(), epoch: "00ff".into(), offset: 42 })),
                ("c:x".into(), None),
            ],
        };
        let bytes = record.encode();
        assert_eq!(SessionRecord::decode(&bytes), Some(record));
        let anonymous = SessionRecord { user: None, groups: HashSet::new(), tops: Vec::new() };
        assert_eq!(SessionRecord::decode(&anonymous.encode()), Some(anonymous));
        for cut in 0..bytes.len() {
            assert_eq!(SessionRecord::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(SessionRecord::decode(&longer), None, "trailing bytes");
        let mut other = bytes.to_vec();
        other[0] = 2;
        assert_eq!(SessionRecord::decode(&other), None, "another version");
    }

    #[test]
    fn a_record_starts_with_its_owners_prefix_and_no_one_elses() {
        let record = |user: Option<&str>| SessionRecord {
            user: user.map(Arc::from),
            groups: ["room".into()].into_iter().collect(),
            tops: vec![("all".into(), None)],
        };
        let owner = SessionRecord::owner_prefix;
        for user in [Some("ann"), Some("an"), Some("anna"), None] {
            let bytes = record(user).encode();
            assert!(bytes.starts_with(&owner(user)), "{user:?}");
            for other in [Some("ann"), Some("an"), Some("anna"), Some("bob"), None].into_iter().filter(|o| *o != user) {
                assert!(!bytes.starts_with(&owner(other)), "{user:?}'s record taken by {other:?}");
            }
        }
    }
}
