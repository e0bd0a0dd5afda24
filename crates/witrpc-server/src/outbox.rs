//! One ordered, bounded outbound queue per connection and the writer task draining it.
//!
//! Everything a connection sends (handshake replies, responses, events, the final
//! close) goes through its queue, so sealing happens in wire order and an event raised
//! by a method before it returns is written before that method's response.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use witrpc_core::{MessageType, WitMessage};
use witrpc_crypto::Sealer;

use crate::transport::{CloseCode, CloseReason, FrameSink, Outbound};

/// An item in a connection's queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// An envelope; `payload` is sealed first when `seal` is set.
    Message { id: Uuid, kind: MessageType, payload: Option<Bytes>, seal: bool },
    /// Install the cipher negotiated by the Initialization handshake.
    SetSealer(Box<dyn Sealer>),
    /// A keepalive probe.
    Ping,
    /// Write a close and stop.
    Close(CloseReason),
}

/// The sending side of a connection's queue, shared by the reader, running calls and
/// the event hub.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    closer: CancellationToken,
    reason: Mutex<Option<CloseReason>>,
    capacity: usize,
    /// Payload bytes queued and not yet written, against `max_bytes`.
    queued_bytes: AtomicUsize,
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
    ) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity);
        let outbox = Self {
            tx,
            closer,
            reason: Mutex::new(None),
            capacity,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            slow_consumers,
        };
        (outbox, rx)
    }

    fn payload_len(item: &Outgoing) -> usize {
        match item {
            Outgoing::Message { payload: Some(p), .. } => p.len(),
            _ => 0,
        }
    }

    /// Counts `len` queued bytes; returns the connection's new total.
    fn add_bytes(&self, len: usize) -> usize {
        metrics::gauge!(crate::metrics::OUTBOUND_BYTES).increment(len as f64);
        self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len
    }

    fn sub_bytes(&self, len: usize) {
        metrics::gauge!(crate::metrics::OUTBOUND_BYTES).decrement(len as f64);
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    fn slow_consumer(&self, reason: String) {
        tracing::warn!(%reason, "disconnecting slow client");
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
        self.close(CloseReason::new(CloseCode::Policy, reason));
    }

    /// Queues `item`, waiting for room. (Responses are bounded by the in-flight limit,
    /// so their bytes are counted but never refused.)
    pub(crate) async fn send(&self, item: Outgoing) -> Result<(), Closed> {
        let len = Self::payload_len(&item);
        self.add_bytes(len);
        let sent = tokio::select! {
            biased;
            () = self.closer.cancelled() => Err(Closed),
            r = self.tx.send(item) => r.map_err(|_| Closed),
        };
        if sent.is_err() {
            self.sub_bytes(len);
        }
        sent
    }

    /// Queues an event without waiting. A full queue means the client does not keep
    /// up: it is disconnected with a reason rather than silently missing events.
    pub(crate) fn send_event(&self, item: Outgoing) {
        let len = Self::payload_len(&item);
        let queued = self.add_bytes(len);
        if queued > self.max_bytes {
            self.sub_bytes(len);
            self.slow_consumer(format!(
                "outbound queue over {} bytes (with_max_outbound_bytes); client too slow",
                self.max_bytes
            ));
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.sub_bytes(len);
                self.slow_consumer(format!(
                    "outbound queue full ({} messages, with_outbound_queue_capacity); client too slow",
                    self.capacity
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.sub_bytes(len),
        }
    }

    /// Queues a keepalive ping unless the queue is full (then traffic is flowing anyway).
    pub(crate) fn ping(&self) {
        let _full_or_closed = self.tx.try_send(Outgoing::Ping);
    }

    /// Queues a close after everything already queued (e.g. after a refusal reply);
    /// if the queue is full, closes at once.
    pub(crate) fn close_after_pending(&self, reason: CloseReason) {
        if let Err(e) = self.tx.try_send(Outgoing::Close(reason)) {
            if let Outgoing::Close(reason) = e.into_inner() {
                self.close(reason);
            }
        }
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
}

/// Drains the queue into the transport until a close, an error or cancellation.
pub(crate) async fn write_loop(outbox: &Outbox, mut rx: mpsc::Receiver<Outgoing>, mut sink: FrameSink) {
    let mut sealer: Option<Box<dyn Sealer>> = None;
    // Frames are fed without flushing while more are queued, then flushed together.
    let mut unflushed = false;
    loop {
        if unflushed && rx.is_empty() {
            if let Err(e) = sink.flush().await {
                tracing::debug!(error = %e, "flush failed");
                break;
            }
            unflushed = false;
        }
        let item = tokio::select! {
            biased;
            () = outbox.closer.cancelled() => {
                let reason = outbox
                    .take_reason()
                    .unwrap_or_else(|| CloseReason::new(CloseCode::Away, "server is shutting down"));
                tracing::debug!(%reason, "closing connection");
                let _ignored = sink.send(Outbound::Close(reason)).await; // best effort: the peer may be gone
                break;
            }
            item = rx.recv() => item,
        };
        let Some(item) = item else { break };
        match item {
            Outgoing::Message { id, kind, payload, seal } => {
                outbox.sub_bytes(payload.as_ref().map_or(0, Bytes::len));
                let data = match (payload, seal, sealer.as_mut()) {
                    (Some(p), true, Some(s)) => match s.seal(p) {
                        Ok(sealed) => Some(sealed),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot seal outbound message");
                            outbox.close(CloseReason::new(CloseCode::Internal, "encryption failure"));
                            continue;
                        }
                    },
                    (p, _, _) => p,
                };
                let frame = Bytes::from(WitMessage::new(id, kind, data).encode());
                tracing::trace!(len = frame.len(), "frame out");
                metrics::counter!(crate::metrics::MESSAGES_OUT).increment(1);
                if let Err(e) = sink.feed(Outbound::Message(frame)).await {
                    tracing::debug!(error = %e, "write failed");
                    break;
                }
                unflushed = true;
            }
            Outgoing::SetSealer(s) => sealer = Some(s),
            Outgoing::Ping => {
                if let Err(e) = sink.feed(Outbound::Ping).await {
                    tracing::debug!(error = %e, "ping failed");
                    break;
                }
                unflushed = true;
            }
            Outgoing::Close(reason) => {
                tracing::debug!(%reason, "closing connection");
                let _ignored = sink.send(Outbound::Close(reason)).await; // best effort: the peer may be gone
                break;
            }
        }
    }
    outbox.closer.cancel();
}
