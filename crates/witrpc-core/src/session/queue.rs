//! The ordered, bounded outbound queue of one connection and its slow-consumer rules.
//!
//! Everything other tasks send a connection (responses of calls that ran on their own
//! task, events, a close) waits here, in order, until the connection's task moves it
//! into the session. The queue holds no lock and reads no clock: the caller wraps it
//! in its own synchronisation and passes `now`.
//!
//! **Slow consumers.** A burst of events may fill any queue for a moment before the
//! connection's task runs; that is not a slow consumer. The queue therefore has a
//! *soft* capacity and hard bounds:
//! - above the soft capacity, the queue is *congested*; events are still accepted, up
//!   to the hard bounds (`hard_capacity` messages, `max_bytes` payload bytes);
//! - a consumer is slow when it stays congested for `slow_consumer_timeout` (it did
//!   not drain) or when an event would cross a hard bound: then the event's
//!   [`SlowConsumerPolicy`] decides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use crate::WitResponse;
use crate::session::close::CloseReason;

/// What happens to a client that does not keep up with its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection with a reason naming the limit (the default): the client
    /// never sees a gap it does not know about.
    #[default]
    Disconnect,
    /// Drop the oldest queued instances of this event to make room as soon as the
    /// queue is congested (for feeds where only recent values matter). Falls back to
    /// disconnecting if that is not enough.
    DropOldest,
    /// Keep only the newest value of this event (for dashboards): a queued, unsent
    /// instance is dropped whenever a newer one is queued, so at most one waits.
    CoalesceLatest,
}

/// Which event an item carries, for the slow-consumer policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTag {
    /// Contract id and event name.
    pub key: (i64, &'static str),
    /// What to do when the consumer is slow.
    pub policy: SlowConsumerPolicy,
}

/// An item in a connection's queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum Queued {
    /// The response to a call (encoded and sealed when it leaves the queue).
    Response {
        /// The request's envelope id.
        id: Uuid,
        /// The answer.
        response: WitResponse,
    },
    /// An event: an encoded `WitRequest` shared by every connection it goes to.
    Event {
        /// The envelope id.
        id: Uuid,
        /// The encoded callback payload (sealed per connection when it leaves).
        payload: Bytes,
        /// Which event it is.
        tag: EventTag,
    },
    /// Events a resume replays, packed ([`crate::batch`]); only for a connection that
    /// negotiated `replay-batch`. Not subject to the slow-consumer rules: a replay is
    /// sent whole or the connection is lost.
    ReplayBatch {
        /// The whole envelope ([`crate::batch::frame`]), shared by every connection it
        /// goes to (sealed per connection when it leaves, unless plain).
        frame: Bytes,
    },
    /// Close the connection after everything queued before it.
    Close(CloseReason),
}

impl Queued {
    fn payload_len(&self) -> usize {
        match self {
            Queued::Response { response, .. } => response.data.as_ref().map_or(0, Bytes::len),
            Queued::Event { payload, .. } => payload.len(),
            Queued::ReplayBatch { frame } => frame.len(),
            Queued::Close(_) => 0,
        }
    }

    fn event_key(&self) -> Option<(i64, &'static str)> {
        match self {
            Queued::Event { tag, .. } => Some(tag.key),
            _ => None,
        }
    }
}

/// Limits of a connection's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueLimits {
    /// Messages above which the queue is congested (default 1024).
    pub capacity: usize,
    /// Messages the queue never exceeds (default 16 × `capacity`).
    pub hard_capacity: usize,
    /// Payload bytes the queue never exceeds (default 16 MiB).
    pub max_bytes: usize,
    /// How long the queue may stay congested before its consumer counts as slow
    /// (default 5 s).
    pub slow_consumer_timeout: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self::new(1024, 16 * 1024 * 1024, Duration::from_secs(5))
    }
}

impl QueueLimits {
    /// Soft `capacity` (hard = 16 × it), `max_bytes`, and the congestion time budget.
    pub fn new(capacity: usize, max_bytes: usize, slow_consumer_timeout: Duration) -> Self {
        Self { capacity, hard_capacity: capacity.saturating_mul(16), max_bytes, slow_consumer_timeout }
    }
}

/// Why an event made the queue give up on its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowConsumer {
    /// What to tell the peer and the logs.
    pub reason: String,
}

/// What [`OutQueue::push_event`] did.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum EventPushed {
    /// Queued (older instances may have been dropped, see `dropped`).
    Queued {
        /// Older instances of the event dropped by its policy.
        dropped: usize,
    },
    /// The consumer is slow: close the connection with this reason.
    Slow(SlowConsumer),
}

/// The queue itself.
#[derive(Debug)]
pub struct OutQueue {
    items: VecDeque<Queued>,
    bytes: usize,
    limits: QueueLimits,
    congested_since: Option<Instant>,
}

impl OutQueue {
    /// An empty queue with `limits`.
    pub fn new(limits: QueueLimits) -> Self {
        Self { items: VecDeque::new(), bytes: 0, limits, congested_since: None }
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Payload bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues a response or a close. Never refuses: these are bounded without the
    /// queue's limits (responses by the connection's in-flight limit, one close).
    pub fn push(&mut self, item: Queued) {
        self.bytes += item.payload_len();
        self.items.push_back(item);
    }

    /// Queues an event at `now` under the slow-consumer rules (see the module docs).
    pub fn push_event(&mut self, item: Queued, now: Instant) -> EventPushed {
        let len = item.payload_len();
        let (key, policy) = match &item {
            Queued::Event { tag, .. } => (tag.key, tag.policy),
            _ => {
                self.push(item);
                return EventPushed::Queued { dropped: 0 };
            }
        };
        let mut dropped = 0;
        if policy == SlowConsumerPolicy::CoalesceLatest {
            dropped += self.remove_first(key);
        }
        if policy == SlowConsumerPolicy::DropOldest {
            while self.items.len() >= self.limits.capacity || self.bytes + len > self.limits.max_bytes {
                if self.remove_first(key) == 0 {
                    break;
                }
                dropped += 1;
            }
        }
        let limits = self.limits;
        if self.items.len() >= limits.hard_capacity {
            return EventPushed::Slow(SlowConsumer {
                reason: format!("outbound queue full ({} messages); client too slow", limits.hard_capacity),
            });
        }
        if self.bytes + len > limits.max_bytes {
            return EventPushed::Slow(SlowConsumer {
                reason: format!(
                    "outbound queue over {} bytes (with_max_outbound_bytes); client too slow",
                    limits.max_bytes
                ),
            });
        }
        if self.items.len() >= limits.capacity {
            let since = *self.congested_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= limits.slow_consumer_timeout {
                return EventPushed::Slow(SlowConsumer {
                    reason: format!(
                        "outbound queue above {} messages (with_outbound_queue_capacity) for {:?}; client too slow",
                        limits.capacity, limits.slow_consumer_timeout
                    ),
                });
            }
        }
        self.push(item);
        EventPushed::Queued { dropped }
    }

    /// Since when the queue is congested, if it is.
    pub fn congested_since(&self) -> Option<Instant> {
        self.congested_since
    }

    fn remove_first(&mut self, key: (i64, &'static str)) -> usize {
        let Some(i) = self.items.iter().position(|q| q.event_key() == Some(key)) else { return 0 };
        if let Some(item) = self.items.remove(i) {
            self.bytes -= item.payload_len();
        }
        1
    }

    /// Moves everything queued to `out` (the consumer drained the queue).
    pub fn drain_into(&mut self, out: &mut VecDeque<Queued>) {
        out.append(&mut self.items);
        self.bytes = 0;
        self.congested_since = None;
    }

    /// The oldest item, if any.
    pub fn pop(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.bytes -= item.payload_len();
        if self.items.len() < self.limits.capacity {
            self.congested_since = None;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &'static str, policy: SlowConsumerPolicy, value: u8) -> Queued {
        Queued::Event {
            id: Uuid::nil(),
            payload: Bytes::from(vec![value; 10]),
            tag: EventTag { key: (1, name), policy },
        }
    }

    fn queue(capacity: usize, max_bytes: usize) -> OutQueue {
        OutQueue::new(QueueLimits::new(capacity, max_bytes, Duration::from_secs(5)))
    }

    /// (event name, first payload byte) of everything queued, in order.
    fn drain(q: &mut OutQueue) -> Vec<(&'static str, u8)> {
        std::iter::from_fn(|| q.pop())
            .filter_map(|item| match item {
                Queued::Event { payload, tag, .. } => Some((tag.key.1, payload[0])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_burst_above_capacity_is_not_a_slow_consumer() {
        let t0 = Instant::now();
        let mut q = queue(2, 1 << 20);
        for v in 0..20 {
            assert_eq!(
                q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), t0),
                EventPushed::Queued { dropped: 0 }
            );
        }
        assert_eq!(q.len(), 20);
        assert_eq!(q.congested_since(), Some(t0));
    }

    #[test]
    fn a_queue_congested_past_the_timeout_is_a_slow_consumer() {
        let t0 = Instant::now();
        let mut q = queue(2, 1 << 20);
        for v in 0..3 {
            let _queued = q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), t0);
        }
        let late = t0 + Duration::from_secs(5);
        let EventPushed::Slow(slow) = q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, 9), late) else {
            panic!("expected a slow consumer")
        };
        assert!(slow.reason.contains("with_outbound_queue_capacity"), "{}", slow.reason);
    }

    #[test]
    fn draining_ends_congestion() {
        let t0 = Instant::now();
        let mut q = queue(2, 1 << 20);
        for v in 0..3 {
            let _queued = q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), t0);
        }
        q.drain_into(&mut VecDeque::new());
        let late = t0 + Duration::from_secs(60);
        for v in 0..3 {
            assert!(matches!(
                q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), late),
                EventPushed::Queued { .. }
            ));
        }
    }

    #[test]
    fn hard_bounds_hold_at_once() {
        let t0 = Instant::now();
        let mut q = queue(100, 25);
        let mut outcomes = (0..3).map(|v| q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), t0));
        assert!(matches!(outcomes.next(), Some(EventPushed::Queued { .. })));
        assert!(matches!(outcomes.next(), Some(EventPushed::Queued { .. })));
        let Some(EventPushed::Slow(slow)) = outcomes.next() else { panic!("expected the byte bound") };
        assert!(slow.reason.contains("with_max_outbound_bytes"), "{}", slow.reason);
        let mut q = queue(1, 1 << 20);
        let results: Vec<_> =
            (0..17).map(|v| q.push_event(event("Tick", SlowConsumerPolicy::Disconnect, v), t0)).collect();
        assert!(results[..16].iter().all(|r| matches!(r, EventPushed::Queued { .. })));
        assert!(matches!(results[16], EventPushed::Slow(_)), "the hard message bound is 16 x capacity");
    }

    #[test]
    fn drop_oldest_keeps_the_newest_of_that_event_and_everything_else() {
        let t0 = Instant::now();
        let mut q = queue(3, 1 << 20);
        let _queued = q.push_event(event("Other", SlowConsumerPolicy::Disconnect, 9), t0);
        for v in 0..5 {
            let _queued = q.push_event(event("Tick", SlowConsumerPolicy::DropOldest, v), t0);
        }
        assert_eq!(drain(&mut q), [("Other", 9), ("Tick", 3), ("Tick", 4)]);
    }

    #[test]
    fn coalesce_latest_keeps_one_newest_value_per_event() {
        let t0 = Instant::now();
        let mut q = queue(10, 1 << 20);
        for v in 0..5 {
            let _queued = q.push_event(event("Load", SlowConsumerPolicy::CoalesceLatest, v), t0);
            let _queued = q.push_event(event("Log", SlowConsumerPolicy::Disconnect, v), t0);
        }
        let queued = drain(&mut q);
        assert_eq!(queued.iter().filter(|(n, _)| *n == "Load").collect::<Vec<_>>(), [&("Load", 4)]);
        assert_eq!(queued.iter().filter(|(n, _)| *n == "Log").count(), 5, "other events are untouched");
    }

    #[test]
    fn responses_are_queued_even_when_events_fill_the_queue() {
        let t0 = Instant::now();
        let mut q = queue(1, 1 << 20);
        let _queued = q.push_event(event("A", SlowConsumerPolicy::DropOldest, 1), t0);
        q.push(event("B", SlowConsumerPolicy::Disconnect, 2));
        assert_eq!(drain(&mut q), [("A", 1), ("B", 2)]);
    }
}
