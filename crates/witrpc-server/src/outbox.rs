//! The cross-task handoff of one connection: other tasks (running calls, the event
//! hub, shutdown) put items into the connection's [`OutQueue`] under a lock; the
//! connection task moves them into its session between reads.
//!
//! Everything a connection sends besides the session's own replies goes through here,
//! in order, so an event raised by a method before it returns is written before that
//! method's response. The queue's rules (soft capacity, hard bounds, slow consumers)
//! live in `witrpc_core::session::OutQueue`; this file only adds the lock, the wake-up
//! and the close signal.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use witrpc_core::session::{CloseReason, EventPushed, OutQueue, QueueLimits, Queued};

use crate::stats::ServerStats;

/// The sending side of a connection's queue, shared by the connection task, running
/// calls and the event hub.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<OutQueue>,
    /// Wakes the connection task when an item is queued.
    item_ready: Notify,
    /// Wakes emitters waiting for room when the queue is drained.
    room: Notify,
    capacity: usize,
    closer: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
    /// The server's counters (queued bytes, events, slow consumers).
    stats: ServerStats,
}

/// The connection is closed; the item was not queued.
#[derive(Debug)]
pub(crate) struct Closed;

impl Outbox {
    pub(crate) fn new(limits: QueueLimits, stats: ServerStats, closer: CancellationToken) -> Self {
        Self {
            queue: Mutex::new(OutQueue::new(limits)),
            item_ready: Notify::new(),
            room: Notify::new(),
            capacity: limits.capacity,
            closer,
            reason: Mutex::new(None),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutQueue> {
        // A poisoned lock only means a panic mid-push; the queue itself is consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a response or a close-after-pending. Never waits and never refuses for
    /// room (responses are bounded by the in-flight limit).
    ///
    /// # Errors
    /// [`Closed`] once the connection is closing: nobody will write the item.
    pub(crate) fn send(&self, item: Queued) -> Result<(), Closed> {
        if self.closer.is_cancelled() {
            return Err(Closed);
        }
        let before = {
            let mut queue = self.lock();
            let before = queue.bytes();
            queue.push(item);
            queue.bytes() as i64 - before as i64
        };
        self.stats.outbound_bytes(before);
        self.item_ready.notify_one();
        Ok(())
    }

    /// Queues an event without waiting, under the queue's slow-consumer rules; a slow
    /// consumer is closed with a reason and counted.
    pub(crate) fn send_event(&self, item: Queued) {
        if self.closer.is_cancelled() {
            return;
        }
        let now = std::time::Instant::now();
        let (pushed, added) = {
            let mut queue = self.lock();
            let before = queue.bytes();
            let pushed = queue.push_event(item, now);
            (pushed, queue.bytes() as i64 - before as i64)
        };
        self.stats.outbound_bytes(added);
        match pushed {
            EventPushed::Queued { dropped } => {
                self.stats.event_queued(dropped);
                self.item_ready.notify_one();
            }
            EventPushed::Slow(slow) => {
                tracing::warn!(reason = %slow.reason, "disconnecting slow client");
                self.stats.slow_consumer();
                self.close(CloseReason::new(witrpc_core::session::CloseCode::Policy, slow.reason));
            }
        }
    }

    /// Closes now with `reason` (the first reason given wins); the connection task
    /// writes the close.
    pub(crate) fn close(&self, reason: CloseReason) {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(reason);
        self.closer.cancel();
    }

    /// The reason given to [`Outbox::close`], if any.
    pub(crate) fn take_reason(&self) -> Option<CloseReason> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn closer(&self) -> &CancellationToken {
        &self.closer
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Moves everything queued into `out`, in order.
    pub(crate) fn drain_into(&self, out: &mut VecDeque<Queued>) {
        let bytes = {
            let mut queue = self.lock();
            if queue.is_empty() {
                return;
            }
            let bytes = queue.bytes();
            queue.drain_into(out);
            bytes
        };
        self.stats.outbound_bytes(-(bytes as i64));
        self.room.notify_waiters();
    }

    /// Completes when the queue is below its capacity, or the connection is closing.
    pub(crate) async fn wait_for_room(&self) {
        loop {
            let drained = self.room.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.closer.is_cancelled() || self.len() < self.capacity {
                return;
            }
            tokio::select! {
                () = drained => {}
                () = self.closer.cancelled() => return,
            }
        }
    }

    /// Completes when an item may have been queued since the last call (a queued item
    /// leaves a wake-up behind even when nobody waits, so none is missed).
    pub(crate) async fn item_ready(&self) {
        self.item_ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use uuid::Uuid;
    use witrpc_core::session::{CloseCode, EventTag, SlowConsumerPolicy};

    fn event(value: u8) -> Queued {
        Queued::Event {
            id: Uuid::nil(),
            payload: bytes::Bytes::from(vec![value; 10]),
            tag: EventTag { key: (1, "Tick"), policy: SlowConsumerPolicy::Disconnect },
        }
    }

    #[test]
    fn a_slow_consumer_is_closed_with_a_reason_and_counted() {
        let o = Outbox::new(
            QueueLimits::new(100, 25, Duration::from_secs(5)),
            ServerStats::default(),
            CancellationToken::new(),
        );
        for v in 0..3 {
            o.send_event(event(v));
        }
        assert!(o.closer().is_cancelled());
        assert_eq!(o.stats.snapshot().slow_consumer_disconnects, 1);
        assert!(o.take_reason().is_some_and(|r| r.reason.contains("with_max_outbound_bytes")));
        assert!(o.send(Queued::Close(CloseReason::new(CloseCode::Normal, "late"))).is_err());
    }

    #[test]
    fn items_leave_in_order() {
        let o = Outbox::new(QueueLimits::default(), ServerStats::default(), CancellationToken::new());
        o.send_event(event(1));
        o.send(Queued::Close(CloseReason::new(CloseCode::Normal, "bye"))).unwrap();
        let mut out = VecDeque::new();
        o.drain_into(&mut out);
        assert!(matches!(out.pop_front(), Some(Queued::Event { .. })));
        assert!(matches!(out.pop_front(), Some(Queued::Close(_))));
        assert_eq!(o.len(), 0);
    }
}
