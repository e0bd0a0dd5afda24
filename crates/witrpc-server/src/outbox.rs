//! One ordered, bounded outbound queue per connection and the [`Writer`] that drains it.
//!
//! Everything a connection sends (handshake replies, responses, events, the final
//! close) goes through its queue, so sealing happens in wire order and an event raised
//! by a method before it returns is written before that method's response.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use witrpc_core::{MessageType, WitMessage};
use witrpc_crypto::Sealer;

use crate::transport::{CloseCode, CloseReason, FrameSink, Outbound};

/// What happens to a client whose queue has no room for an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection with a reason naming the limit (the default): the client
    /// never sees a gap it does not know about.
    #[default]
    Disconnect,
    /// Drop the oldest queued instances of this event to make room (for feeds where
    /// only recent values matter). Disconnects if that is not enough.
    DropOldest,
    /// Keep only the newest value of this event (for dashboards): a queued, unsent
    /// instance is dropped whenever a newer one is queued, so at most one waits.
    CoalesceLatest,
}

/// Which event an item carries, for the slow-consumer policies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventTag {
    /// Contract id and event name.
    pub(crate) key: (i64, &'static str),
    pub(crate) policy: SlowConsumerPolicy,
}

/// An item in a connection's queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// An envelope; `payload` is sealed first when `seal` is set.
    Message { id: Uuid, kind: MessageType, payload: Option<Bytes>, seal: bool, event: Option<EventTag> },
    /// Install the cipher negotiated by the Initialization handshake.
    SetSealer(Box<dyn Sealer>),
    /// A keepalive probe.
    Ping,
    /// Write a close and stop.
    Close(CloseReason),
}

impl Outgoing {
    fn payload_len(&self) -> usize {
        match self {
            Outgoing::Message { payload: Some(p), .. } => p.len(),
            _ => 0,
        }
    }

    fn event_key(&self) -> Option<(i64, &'static str)> {
        match self {
            Outgoing::Message { event: Some(tag), .. } => Some(tag.key),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Payload bytes of `items`.
    bytes: usize,
}

impl Queue {
    fn push(&mut self, item: Outgoing) {
        let len = item.payload_len();
        metrics::gauge!(crate::metrics::OUTBOUND_BYTES).increment(len as f64);
        self.bytes += len;
        self.items.push_back(item);
    }

    fn remove(&mut self, index: usize) -> Option<Outgoing> {
        let item = self.items.remove(index)?;
        let len = item.payload_len();
        metrics::gauge!(crate::metrics::OUTBOUND_BYTES).decrement(len as f64);
        self.bytes -= len;
        Some(item)
    }
}

/// The sending side of a connection's queue, shared by the reader, running calls and
/// the event hub; the connection task drains it through its [`Writer`].
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the connection task when an item is queued.
    item_ready: Notify,
    closer: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
    capacity: usize,
    max_bytes: usize,
    /// Server-wide count of clients closed for not keeping up.
    slow_consumers: Arc<AtomicU64>,
}

/// The connection is closed; the item was not queued.
#[derive(Debug)]
pub(crate) struct Closed;

impl Outbox {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        slow_consumers: Arc<AtomicU64>,
        closer: CancellationToken,
    ) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            item_ready: Notify::new(),
            closer,
            reason: Mutex::new(None),
            capacity,
            max_bytes,
            slow_consumers,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock only means a panic mid-push; the queue itself is consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mut queue: MutexGuard<'_, Queue>, item: Outgoing) {
        queue.push(item);
        drop(queue);
        self.item_ready.notify_one();
    }

    /// Queues a handshake reply, a response or a cipher change. Never waits and never
    /// refuses for room: these are bounded without the queue's limit (one reply per
    /// message read, and the connection task writes the queue out before it reads the
    /// next message; responses of running calls by the in-flight limit). Only events,
    /// which any task may raise at any rate, are subject to the limits.
    pub(crate) fn send(&self, item: Outgoing) -> Result<(), Closed> {
        if self.closer.is_cancelled() {
            return Err(Closed);
        }
        let queue = self.lock();
        self.push(queue, item);
        Ok(())
    }

    /// Queues an event without waiting. When there is no room, the event's
    /// [`SlowConsumerPolicy`] decides: disconnect the client with a reason (default),
    /// drop older instances of the event, or replace a queued one with this newer value.
    pub(crate) fn send_event(&self, item: Outgoing) {
        if self.closer.is_cancelled() {
            return;
        }
        let (Some(key), Some(policy)) = (item.event_key(), event_policy(&item)) else { return };
        let mut queue = self.lock();
        if policy == SlowConsumerPolicy::CoalesceLatest {
            if let Some(i) = queue.items.iter().position(|q| q.event_key() == Some(key)) {
                let _older = queue.remove(i);
                metrics::counter!(crate::metrics::EVENTS_DROPPED).increment(1);
            }
        }
        let len = item.payload_len();
        let fits = |q: &Queue| q.items.len() < self.capacity && q.bytes + len <= self.max_bytes;
        if !fits(&queue) && policy != SlowConsumerPolicy::Disconnect {
            while !fits(&queue) {
                let Some(i) = queue.items.iter().position(|q| q.event_key() == Some(key)) else { break };
                let _older = queue.remove(i);
                metrics::counter!(crate::metrics::EVENTS_DROPPED).increment(1);
            }
        }
        if fits(&queue) {
            self.push(queue, item);
            return;
        }
        let reason = if queue.items.len() >= self.capacity {
            format!("outbound queue full ({} messages, with_outbound_queue_capacity); client too slow", self.capacity)
        } else {
            format!("outbound queue over {} bytes (with_max_outbound_bytes); client too slow", self.max_bytes)
        };
        drop(queue);
        tracing::warn!(%reason, "disconnecting slow client");
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
        self.close(CloseReason::new(CloseCode::Policy, reason));
    }

    /// Queues a keepalive ping unless the queue is full (then traffic is flowing anyway).
    pub(crate) fn ping(&self) {
        let queue = self.lock();
        if queue.items.len() < self.capacity {
            self.push(queue, Outgoing::Ping);
        }
    }

    /// Queues a close after everything already queued (e.g. after a refusal reply).
    pub(crate) fn close_after_pending(&self, reason: CloseReason) {
        let queue = self.lock();
        self.push(queue, Outgoing::Close(reason));
    }

    /// Closes now with `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
        drop(slot);
        self.closer.cancel();
    }

    fn take_reason(&self) -> Option<CloseReason> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn closer(&self) -> &CancellationToken {
        &self.closer
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// The next queued item, if any.
    fn try_next(&self) -> Option<Outgoing> {
        self.lock().remove(0)
    }

    /// Completes when an item may have been queued since the last call (a queued item
    /// leaves a wake-up behind even when nobody waits, so none is missed).
    pub(crate) async fn item_ready(&self) {
        self.item_ready.notified().await;
    }

    /// The next item for the writer, or `None` once the connection closes.
    async fn next(&self) -> Option<Outgoing> {
        loop {
            if self.closer.is_cancelled() {
                return None;
            }
            if let Some(item) = self.try_next() {
                return Some(item);
            }
            tokio::select! {
                biased;
                () = self.closer.cancelled() => return None,
                () = self.item_ready() => {}
            }
        }
    }
}

fn event_policy(item: &Outgoing) -> Option<SlowConsumerPolicy> {
    match item {
        Outgoing::Message { event: Some(tag), .. } => Some(tag.policy),
        _ => None,
    }
}

/// The writing half of a connection: the transport sink and the negotiated sealer. The
/// connection task writes through it between reads (one task per connection, so a call
/// answered in place costs no extra wake-up); once reading stops, [`Writer::finish`]
/// writes the rest and the close.
pub(crate) struct Writer {
    sink: FrameSink,
    sealer: Option<Box<dyn Sealer>>,
    /// Frames fed since the last flush.
    unflushed: bool,
    /// A close was written or the transport failed: nothing more can be written.
    finished: bool,
}

impl Writer {
    pub(crate) fn new(sink: FrameSink) -> Self {
        Self { sink, sealer: None, unflushed: false, finished: false }
    }

    /// Writes everything queued and flushes it in one go (frames collect in the
    /// transport's write buffer). `false` when the connection must stop: a close was
    /// queued, sealing failed, or the transport failed.
    pub(crate) async fn write_queued(&mut self, outbox: &Outbox) -> bool {
        while let Some(item) = outbox.try_next() {
            if !self.write(outbox, item).await {
                return false;
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> bool {
        if self.unflushed {
            if let Err(e) = self.sink.flush().await {
                tracing::debug!(error = %e, "flush failed");
                self.finished = true;
                return false;
            }
            self.unflushed = false;
        }
        true
    }

    /// Feeds one item (unflushed); `false` when the connection must stop.
    async fn write(&mut self, outbox: &Outbox, item: Outgoing) -> bool {
        match item {
            Outgoing::Message { id, kind, payload, seal, .. } => {
                let data = match (payload, seal, self.sealer.as_mut()) {
                    (Some(p), true, Some(s)) => match s.seal(p) {
                        Ok(sealed) => Some(sealed),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot seal outbound message");
                            outbox.close(CloseReason::new(CloseCode::Internal, "encryption failure"));
                            return false;
                        }
                    },
                    (p, _, _) => p,
                };
                let frame = Bytes::from(WitMessage::new(id, kind, data).encode());
                tracing::trace!(len = frame.len(), "frame out");
                metrics::counter!(crate::metrics::MESSAGES_OUT).increment(1);
                self.feed(Outbound::Message(frame)).await
            }
            Outgoing::SetSealer(s) => {
                self.sealer = Some(s);
                true
            }
            Outgoing::Ping => self.feed(Outbound::Ping).await,
            Outgoing::Close(reason) => {
                self.close(reason).await;
                false
            }
        }
    }

    async fn feed(&mut self, outbound: Outbound) -> bool {
        if let Err(e) = self.sink.feed(outbound).await {
            tracing::debug!(error = %e, "write failed");
            self.finished = true;
            return false;
        }
        self.unflushed = true;
        true
    }

    async fn close(&mut self, reason: CloseReason) {
        tracing::debug!(%reason, "closing connection");
        let _ignored = self.sink.send(Outbound::Close(reason)).await; // best effort: the peer may be gone
        self.finished = true;
    }

    /// After reading stopped: writes what is queued, then the close, and marks the
    /// connection closed. Callers bound it with a grace period (a peer may not read).
    pub(crate) async fn finish(mut self, outbox: &Outbox) {
        while !self.finished {
            if self.unflushed && outbox.is_empty() && !self.flush().await {
                break;
            }
            let Some(item) = outbox.next().await else {
                let reason = outbox
                    .take_reason()
                    .unwrap_or_else(|| CloseReason::new(CloseCode::Away, "server is shutting down"));
                self.close(reason).await;
                break;
            };
            // `false` without `finished` is a sealing failure: the outbox is closed now,
            // so the next turn writes the close.
            let _more = self.write(outbox, item).await;
        }
        outbox.closer.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &'static str, policy: SlowConsumerPolicy, value: u8) -> Outgoing {
        Outgoing::Message {
            id: Uuid::nil(),
            kind: MessageType::Callback,
            payload: Some(Bytes::from(vec![value; 10])),
            seal: true,
            event: Some(EventTag { key: (1, name), policy }),
        }
    }

    fn outbox(capacity: usize, max_bytes: usize) -> Outbox {
        Outbox::new(capacity, max_bytes, Arc::default(), CancellationToken::new())
    }

    /// (event name, first payload byte) of everything queued, in order.
    fn drain(outbox: &Outbox) -> Vec<(&'static str, u8)> {
        let mut queue = outbox.lock();
        std::iter::from_fn(|| queue.remove(0))
            .filter_map(|item| match item {
                Outgoing::Message { payload: Some(p), event: Some(tag), .. } => Some((tag.key.1, p[0])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_full_queue_disconnects_by_default_and_counts_it() {
        let o = outbox(2, 1 << 20);
        for v in 0..3 {
            o.send_event(event("Tick", SlowConsumerPolicy::Disconnect, v));
        }
        assert!(o.closer().is_cancelled());
        assert_eq!(o.slow_consumers.load(Ordering::Relaxed), 1);
        assert!(o.take_reason().is_some_and(|r| r.reason.contains("with_outbound_queue_capacity")));
    }

    #[test]
    fn the_byte_limit_disconnects_too() {
        let o = outbox(100, 25);
        for v in 0..3 {
            o.send_event(event("Tick", SlowConsumerPolicy::Disconnect, v));
        }
        assert!(o.take_reason().is_some_and(|r| r.reason.contains("with_max_outbound_bytes")));
    }

    #[test]
    fn drop_oldest_keeps_the_newest_of_that_event_and_everything_else() {
        let o = outbox(3, 1 << 20);
        o.send_event(event("Other", SlowConsumerPolicy::Disconnect, 9));
        for v in 0..5 {
            o.send_event(event("Tick", SlowConsumerPolicy::DropOldest, v));
        }
        assert!(!o.closer().is_cancelled());
        assert_eq!(drain(&o), [("Other", 9), ("Tick", 3), ("Tick", 4)]);
    }

    #[test]
    fn coalesce_latest_keeps_one_newest_value_per_event() {
        let o = outbox(10, 1 << 20);
        for v in 0..5 {
            o.send_event(event("Load", SlowConsumerPolicy::CoalesceLatest, v));
            o.send_event(event("Log", SlowConsumerPolicy::Disconnect, v));
        }
        let queued = drain(&o);
        assert_eq!(queued.iter().filter(|(n, _)| *n == "Load").collect::<Vec<_>>(), [&("Load", 4)]);
        assert_eq!(queued.iter().filter(|(n, _)| *n == "Log").count(), 5, "other events are untouched");
    }

    #[test]
    fn responses_are_queued_even_when_events_fill_the_queue() {
        let o = outbox(1, 1 << 20);
        o.send_event(event("A", SlowConsumerPolicy::DropOldest, 1));
        o.send(event("B", SlowConsumerPolicy::Disconnect, 2)).unwrap();
        assert!(!o.closer().is_cancelled());
        assert_eq!(drain(&o), [("A", 1), ("B", 2)]);
        o.close(CloseReason::new(CloseCode::Normal, "done"));
        assert!(o.send(event("C", SlowConsumerPolicy::Disconnect, 3)).is_err());
    }
}
