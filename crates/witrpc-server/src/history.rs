//! Event history for resumable streams, kept in memory on this node.
//!
//! A *stream* is the hub topic an event went to: `all`, `g:<group>`, `u:<user>` or
//! `c:<connection id>`. Each stream has an *epoch* (16 random hex digits, new each time
//! the stream is created) and numbers its events 1, 2, 3… A client that resumes names
//! the last position it received per stream; it either gets every event after it
//! (recovered) or nothing (the history no longer covers the gap, or the epoch changed):
//! never a partial replay.
//!
//! Memory is bounded: each stream keeps at most its event's [`HistoryLimits`] (count
//! and age), a stream whose events all expired is dropped once it stayed empty for its
//! max age, and the number of streams and of events overall are capped ([`MAX_STREAMS`],
//! [`MAX_TOTAL_EVENTS`]; past them the streams written longest ago go). Expiry runs on
//! each access of a stream and, for all streams, at most once a second while events
//! are appended. The store sits behind [`HistoryStore`] so a shared store
//! (Redis) can take its place for a cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use witrpc_core::session::EventTag;

/// How much history one event keeps per stream
/// ([`crate::WitServerBuilder::with_event_history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events kept per stream (at most [`MAX_EVENTS_PER_STREAM`]).
    pub max_events: usize,
    /// How long an event stays in the history.
    pub max_age: Duration,
}

impl HistoryLimits {
    /// Keeps up to `max_events` per stream for `max_age`.
    pub fn new(max_events: usize, max_age: Duration) -> Self {
        Self { max_events, max_age }
    }
}

impl Default for HistoryLimits {
    /// 1,000 events for 5 minutes: a client that lost its network for a while catches
    /// up, and a busy stream costs a bounded amount of memory.
    fn default() -> Self {
        Self { max_events: 1_000, max_age: Duration::from_secs(300) }
    }
}

/// The most events [`HistoryLimits::max_events`] may ask for per stream.
pub const MAX_EVENTS_PER_STREAM: usize = 100_000;
/// The longest [`HistoryLimits::max_age`] may be: a day.
pub const MAX_HISTORY_AGE: Duration = Duration::from_secs(86_400);
/// Streams kept at once on one node.
pub const MAX_STREAMS: usize = 100_000;
/// Events kept at once on one node, over all streams; past it the streams written
/// longest ago are dropped (at the next sweep).
pub const MAX_TOTAL_EVENTS: usize = 1_000_000;
/// How often (at most) the whole store is swept for expired events and stale streams,
/// while events are appended.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Where an event sits in its stream (the wire form is its `Display`).
pub(crate) use witrpc_core::StreamPosition as Position;

/// Whether a stream name can be carried in positions (the wire separators are tab
/// and newline).
pub(crate) fn is_recordable(stream: &str) -> bool {
    !stream.is_empty() && !stream.contains(['\t', '\n'])
}

/// One recorded event: what a resuming client is sent.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) offset: u64,
    /// The encoded callback, with its `StreamPosition`.
    pub(crate) payload: Bytes,
    pub(crate) tag: EventTag,
}

/// What a stream can give a client that last saw `from`.
#[derive(Debug)]
pub(crate) enum Recovery {
    /// Every event after `from`, in order (possibly none); `top` is the stream's
    /// current position.
    Recovered { events: Vec<Recorded>, top: Position },
    /// The gap cannot be filled; `top` is the stream's current position (where the
    /// client continues from), if the stream exists.
    Lost { top: Option<Position> },
}

/// A history of event streams. Calls are made with the hub's route lock held, so a
/// store must not block for long (an in-memory map; a remote store would need an
/// asynchronous seam).
pub(crate) trait HistoryStore: Send + Sync + std::fmt::Debug {
    /// Records the event of `stream`: `encode` gets its position and returns the
    /// payload to keep (and send to resume clients).
    fn append(
        &self,
        stream: &str,
        limits: HistoryLimits,
        now: Instant,
        encode: &mut dyn FnMut(&Position) -> Bytes,
        tag: EventTag,
    ) -> Position;

    /// The stream's current position (`None`: no such stream).
    fn top(&self, stream: &str, now: Instant) -> Option<Position>;

    /// The events after `from` (same stream and epoch), or why they cannot be given.
    fn since(&self, from: &Position, now: Instant) -> Recovery;
}

#[derive(Debug)]
struct Stream {
    epoch: String,
    /// The offset of the stream's last event.
    top: u64,
    events: VecDeque<(Instant, Recorded)>,
    max_age: Duration,
    /// When the last event was appended.
    written: Instant,
}

impl Stream {
    fn prune(&mut self, now: Instant) {
        while self.events.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.max_age) {
            self.events.pop_front();
        }
    }

    /// Empty and unwritten for its max age: nobody can recover anything from it.
    fn is_stale(&self, now: Instant) -> bool {
        self.events.is_empty() && now.saturating_duration_since(self.written) > self.max_age.saturating_mul(2)
    }

    fn position(&self, stream: &str) -> Position {
        Position { stream: stream.to_owned(), epoch: self.epoch.clone(), offset: self.top }
    }
}

/// The single-node store: every stream in a map behind one lock.
#[derive(Debug, Default)]
pub(crate) struct MemoryHistory {
    streams: Mutex<Streams>,
}

#[derive(Debug, Default)]
struct Streams {
    map: HashMap<String, Stream>,
    /// When the whole map was last swept (`None`: never).
    swept: Option<Instant>,
}

/// 16 random hex digits.
fn new_epoch() -> String {
    let bits = uuid::Uuid::new_v4().as_u64_pair().0;
    format!("{bits:016x}")
}

impl MemoryHistory {
    fn lock(&self) -> MutexGuard<'_, Streams> {
        // A poisoned lock only means a panic mid-append of a map that stays consistent.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expires old events everywhere, drops stale streams, and keeps the total under
    /// [`MAX_TOTAL_EVENTS`] (dropping the streams written longest ago): at most once a
    /// [`SWEEP_INTERVAL`], so an idle stream's events do not outlive their age by much
    /// while others are written.
    fn sweep(streams: &mut Streams, now: Instant) {
        if streams.swept.is_some_and(|at| now.saturating_duration_since(at) < SWEEP_INTERVAL) {
            return;
        }
        streams.swept = Some(now);
        let map = &mut streams.map;
        map.values_mut().for_each(|s| s.prune(now));
        map.retain(|_, s| !s.is_stale(now));
        let mut total: usize = map.values().map(|s| s.events.len()).sum();
        if total <= MAX_TOTAL_EVENTS {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = map.iter().map(|(k, s)| (s.written, k.clone())).collect();
        by_age.sort_unstable();
        for (_, name) in by_age {
            if total <= MAX_TOTAL_EVENTS {
                break;
            }
            if let Some(stream) = map.remove(&name) {
                tracing::debug!(stream = %name, "history: over its total; dropping the stream written longest ago");
                total -= stream.events.len();
            }
        }
    }

    /// Makes room for one more stream: drops stale streams, then the oldest.
    fn make_room(streams: &mut HashMap<String, Stream>, now: Instant) {
        if streams.len() < MAX_STREAMS {
            return;
        }
        streams.values_mut().for_each(|s| s.prune(now));
        streams.retain(|_, s| !s.is_stale(now));
        while streams.len() >= MAX_STREAMS {
            let Some(oldest) = streams.iter().min_by_key(|(_, s)| s.written).map(|(k, _)| k.clone()) else { break };
            tracing::debug!(stream = %oldest, "history: too many streams; dropping the oldest");
            streams.remove(&oldest);
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn append(
        &self,
        stream: &str,
        limits: HistoryLimits,
        now: Instant,
        encode: &mut dyn FnMut(&Position) -> Bytes,
        tag: EventTag,
    ) -> Position {
        let mut guard = self.lock();
        Self::sweep(&mut guard, now);
        let streams = &mut guard.map;
        if streams.get_mut(stream).is_some_and(|s| {
            s.prune(now);
            s.is_stale(now)
        }) {
            streams.remove(stream);
        }
        if !streams.contains_key(stream) {
            Self::make_room(streams, now);
        }
        let entry = streams.entry(stream.to_owned()).or_insert_with(|| Stream {
            epoch: new_epoch(),
            top: 0,
            events: VecDeque::new(),
            max_age: limits.max_age,
            written: now,
        });
        entry.top += 1;
        entry.written = now;
        // Several events of one stream may have different limits: the stream keeps the
        // longest age it was asked for.
        entry.max_age = entry.max_age.max(limits.max_age);
        let position = entry.position(stream);
        let payload = encode(&position);
        entry.events.push_back((now, Recorded { offset: position.offset, payload, tag }));
        entry.prune(now);
        while entry.events.len() > limits.max_events.max(1) {
            entry.events.pop_front();
        }
        position
    }

    fn top(&self, stream: &str, now: Instant) -> Option<Position> {
        let mut streams = self.lock();
        let s = streams.map.get_mut(stream)?;
        s.prune(now);
        (!s.is_stale(now)).then(|| s.position(stream))
    }

    fn since(&self, from: &Position, now: Instant) -> Recovery {
        let mut streams = self.lock();
        let Some(stream) = streams.map.get_mut(&from.stream) else { return Recovery::Lost { top: None } };
        stream.prune(now);
        if stream.is_stale(now) {
            return Recovery::Lost { top: None };
        }
        let top = stream.position(&from.stream);
        if stream.epoch != from.epoch || from.offset > stream.top {
            return Recovery::Lost { top: Some(top) };
        }
        if from.offset == stream.top {
            return Recovery::Recovered { events: Vec::new(), top };
        }
        let first = stream.events.front().map_or(u64::MAX, |(_, e)| e.offset);
        if first > from.offset + 1 {
            return Recovery::Lost { top: Some(top) };
        }
        let events = stream.events.iter().filter(|(_, e)| e.offset > from.offset).map(|(_, e)| e.clone()).collect();
        Recovery::Recovered { events, top }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use witrpc_core::session::SlowConsumerPolicy;

    const TAG: EventTag = EventTag { key: (1, "Tick"), policy: SlowConsumerPolicy::Disconnect };

    fn append(h: &MemoryHistory, stream: &str, limits: HistoryLimits, now: Instant) -> Position {
        h.append(stream, limits, now, &mut |p| Bytes::from(p.to_string()), TAG)
    }

    fn offsets(r: &Recovery) -> Option<Vec<u64>> {
        match r {
            Recovery::Recovered { events, .. } => Some(events.iter().map(|e| e.offset).collect()),
            Recovery::Lost { .. } => None,
        }
    }

    #[test]
    fn offsets_count_from_one_and_a_resume_gets_exactly_what_followed() {
        let h = MemoryHistory::default();
        let now = Instant::now();
        let limits = HistoryLimits::new(10, Duration::from_secs(60));
        let first = append(&h, "all", limits, now);
        assert_eq!(first.offset, 1);
        assert_eq!(first.epoch.len(), 16);
        for _ in 0..4 {
            append(&h, "all", limits, now);
        }
        let from = Position { offset: 2, ..first.clone() };
        assert_eq!(offsets(&h.since(&from, now)), Some(vec![3, 4, 5]));
        let Recovery::Recovered { events, .. } = h.since(&from, now) else { panic!("recovered") };
        assert_eq!(
            &events[0].payload[..],
            format!("all\t{}\t3", first.epoch).as_bytes(),
            "the payload knows its place"
        );
        assert_eq!(offsets(&h.since(&Position { offset: 5, ..first.clone() }, now)), Some(vec![]), "up to date");
        assert_eq!(offsets(&h.since(&Position { offset: 0, ..first.clone() }, now)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(offsets(&h.since(&Position { offset: 9, ..first.clone() }, now)), None, "from the future");
        assert_eq!(h.top("all", now).map(|p| p.offset), Some(5));
        assert_eq!(h.top("g:x", now), None);
    }

    #[test]
    fn the_count_bound_drops_old_events_and_a_gap_past_it_is_not_recovered() {
        let h = MemoryHistory::default();
        let now = Instant::now();
        let limits = HistoryLimits::new(3, Duration::from_secs(60));
        let first = append(&h, "u:ann", limits, now);
        for _ in 0..9 {
            append(&h, "u:ann", limits, now);
        }
        // Kept: 8, 9, 10. From 7 every missed event is there; from 6 one is not.
        assert_eq!(offsets(&h.since(&Position { offset: 7, ..first.clone() }, now)), Some(vec![8, 9, 10]));
        let lost = h.since(&Position { offset: 6, ..first.clone() }, now);
        let Recovery::Lost { top: Some(top) } = lost else { panic!("not recovered: {lost:?}") };
        assert_eq!(top.offset, 10, "the client continues from the top");
    }

    #[test]
    fn the_age_bound_expires_events() {
        let h = MemoryHistory::default();
        let t0 = Instant::now();
        let limits = HistoryLimits::new(100, Duration::from_secs(10));
        let first = append(&h, "all", limits, t0);
        append(&h, "all", limits, t0 + Duration::from_secs(8));
        let from = Position { offset: 0, ..first.clone() };
        assert_eq!(offsets(&h.since(&from, t0 + Duration::from_secs(10))), Some(vec![1, 2]));
        assert_eq!(offsets(&h.since(&from, t0 + Duration::from_secs(11))), None, "event 1 expired");
        let from_one = Position { offset: 1, ..first.clone() };
        assert_eq!(offsets(&h.since(&from_one, t0 + Duration::from_secs(11))), Some(vec![2]));
        assert_eq!(offsets(&h.since(&from_one, t0 + Duration::from_secs(19))), None, "event 2 expired");
        // Up to date with an empty history: nothing was missed.
        let top = Position { offset: 2, ..first.clone() };
        assert_eq!(offsets(&h.since(&top, t0 + Duration::from_secs(19))), Some(vec![]));
    }

    #[test]
    fn another_epoch_is_never_recovered_and_a_stale_stream_starts_a_new_one() {
        let h = MemoryHistory::default();
        let t0 = Instant::now();
        let limits = HistoryLimits::new(100, Duration::from_secs(10));
        let first = append(&h, "g:room", limits, t0);
        let other = Position { epoch: "0123456789abcdef".into(), ..first.clone() };
        assert_eq!(offsets(&h.since(&Position { offset: 0, ..other }, t0)), None);
        // Empty and unwritten for twice its age: dropped; the next event opens a new epoch.
        let later = t0 + Duration::from_secs(25);
        assert_eq!(h.top("g:room", later), None);
        assert_eq!(offsets(&h.since(&first, later)), None);
        let next = append(&h, "g:room", limits, later);
        assert_ne!(next.epoch, first.epoch);
        assert_eq!(next.offset, 1);
    }

    #[test]
    fn writes_elsewhere_sweep_an_idle_streams_expired_events_and_the_stream() {
        let h = MemoryHistory::default();
        let t0 = Instant::now();
        let limits = HistoryLimits::new(100, Duration::from_secs(10));
        for _ in 0..50 {
            append(&h, "g:idle", limits, t0);
        }
        append(&h, "all", limits, t0 + Duration::from_secs(12));
        let idle_events = |h: &MemoryHistory| h.lock().map.get("g:idle").map(|s| s.events.len());
        assert_eq!(idle_events(&h), Some(0), "expired, although nobody touched the stream");
        append(&h, "all", limits, t0 + Duration::from_secs(25));
        assert_eq!(idle_events(&h), None, "empty and unwritten for twice its age: dropped");
        assert_eq!(h.lock().map.len(), 1);
    }

    #[test]
    fn positions_parse_strictly() {
        let p = Position { stream: "g:a b".into(), epoch: "00ff".into(), offset: 42 };
        assert_eq!(Position::parse(&p.to_string()), Some(p));
        for bad in ["", "all", "all\tab", "all\tab\t-1", "all\tab\tx", "\tab\t1", "all\t\t1", "all\tab\t1\t1"] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
        assert!(is_recordable("u:ann") && !is_recordable("u:a\tb") && !is_recordable("u:a\nb"));
    }
}
