//! Events: raising them on the server, receiving them on the client.
//!
//! Server side, a service raises events through an [`EventEmitter`]; the server
//! attaches an [`EventSink`] to it while it runs, which encodes each event once and
//! queues it to every authorized connection. Client side, the connection publishes
//! each received event to the matching [`EventSubscription`]s, which typed
//! [`EventStream`]s decode.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::error::ParameterError;
use crate::groups::Audience;
use crate::serializer::ParameterSerializer;
use crate::service::ServiceDescriptor;

/// Receives events raised through an [`EventEmitter`]; implemented by the server.
pub trait EventSink: Send + Sync + 'static {
    /// Encodes and delivers event number `event` of `contract` with `args`.
    ///
    /// Must not block: it queues to connections and returns.
    ///
    /// # Errors
    /// When an argument cannot be encoded; nothing is sent then.
    fn emit(
        &self,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError>;

    /// Encodes and delivers event number `event` of `contract` to `audience` only.
    ///
    /// The default hands an audience of everyone to [`EventSink::emit`] and delivers a
    /// targeted event to nobody: a sink that does not know targeting never widens it.
    ///
    /// # Errors
    /// When an argument cannot be encoded; nothing is sent then.
    fn emit_to(
        &self,
        audience: &Audience,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        if audience.is_everyone() { self.emit(contract, event, args) } else { Ok(()) }
    }

    /// Completes when every connection's queue has room below its capacity (the
    /// default: at once). See [`EventEmitter::wait_for_room`].
    fn room(&self) -> crate::BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// [`EventEmitter::wait_for_room`] gave up: some client's queue stayed full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a client's event queue stayed full for {waited:?}; it is not keeping up")]
pub struct RoomTimeout {
    /// How long it waited.
    pub waited: std::time::Duration,
}

type Sinks = Vec<(u64, Arc<dyn EventSink>)>;

/// The handle a service raises events through; cheap to clone.
///
/// Generated event emitters (`FooEvents`) wrap one. Until a running server attaches
/// to it, raising an event reaches nobody, which is correct: nobody is connected.
#[derive(Clone, Default)]
pub struct EventEmitter {
    inner: Arc<EmitterInner>,
}

#[derive(Default)]
struct EmitterInner {
    sinks: RwLock<Sinks>,
    next_id: AtomicU64,
}

impl fmt::Debug for EventEmitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inner.sinks.read().map_or(0, |s| s.len());
        f.debug_struct("EventEmitter").field("attached_sinks", &n).finish()
    }
}

impl EventEmitter {
    /// A new emitter with no sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `sink` until the returned guard is dropped.
    pub fn attach(&self, sink: Arc<dyn EventSink>) -> EmitterAttachment {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.sinks_mut(|s| s.push((id, sink)));
        EmitterAttachment { emitter: self.clone(), id }
    }

    fn sinks_mut(&self, f: impl FnOnce(&mut Sinks)) {
        // A poisoned lock only means another thread panicked mid-push; the Vec is intact.
        let mut guard = self.inner.sinks.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// Waits (at most `timeout`) until every connected client's queue has room, for
    /// services that raise events in bursts: awaiting this between chunks of a burst
    /// keeps even slow-but-alive readers connected, where raising the whole burst at
    /// once could push a queue past its limits.
    ///
    /// # Errors
    /// [`RoomTimeout`] when a queue stayed full for `timeout`; raising more events then
    /// applies the slow-consumer policy to that client.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn wait_for_room(&self, timeout: std::time::Duration) -> Result<(), RoomTimeout> {
        let sinks: Vec<Arc<dyn EventSink>> = {
            let sinks = self.inner.sinks.read().unwrap_or_else(|e| e.into_inner());
            sinks.iter().map(|(_, s)| s.clone()).collect()
        };
        let all = async {
            for sink in &sinks {
                sink.room().await;
            }
        };
        tokio::time::timeout(timeout, all).await.map_err(|_| RoomTimeout { waited: timeout })
    }

    /// Raises event number `event` of `contract` on every attached sink.
    ///
    /// # Errors
    /// When an argument cannot be encoded.
    pub fn emit(
        &self,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        let sinks = self.inner.sinks.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in sinks.iter() {
            sink.emit(contract, event, args)?;
        }
        Ok(())
    }

    /// Raises event number `event` of `contract` to `audience` on every attached sink.
    ///
    /// # Errors
    /// When an argument cannot be encoded.
    pub fn emit_to(
        &self,
        audience: &Audience,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        if audience.is_everyone() {
            return self.emit(contract, event, args);
        }
        let sinks = self.inner.sinks.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in sinks.iter() {
            sink.emit_to(audience, contract, event, args)?;
        }
        Ok(())
    }
}

/// Keeps a sink attached to an [`EventEmitter`]; detaches on drop.
#[derive(Debug)]
pub struct EmitterAttachment {
    emitter: EventEmitter,
    id: u64,
}

impl Drop for EmitterAttachment {
    fn drop(&mut self) {
        let id = self.id;
        self.emitter.sinks_mut(|s| s.retain(|(i, _)| *i != id));
    }
}

/// Something a subscription may yield instead of an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The subscriber fell behind and `missed` events were dropped at this point.
    #[error(
        "{missed} events were dropped because the subscriber did not keep up; read the stream faster or raise the subscription capacity"
    )]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
    /// The event's arguments could not be decoded as the declared types.
    #[error("cannot decode event arguments")]
    Decode(#[source] ParameterError),
    /// The connection was lost and re-established here: events raised in between were
    /// not received. The stream goes on with events from the new connection.
    #[error("the connection was re-established; events raised while it was down were missed")]
    Reconnected,
}

#[derive(Debug)]
enum Item {
    Event(Vec<Bytes>),
    Lagged(u64),
    Reconnected,
}

/// Creates a bounded subscription and its publishing end.
///
/// The publisher never blocks: when the subscriber's buffer of `capacity` events is
/// full, events are counted and the stream later yields [`EventError::Lagged`] at
/// exactly the place they were dropped.
pub fn event_channel(capacity: usize) -> (EventPublisher, EventSubscription) {
    let (tx, rx) = mpsc::channel(capacity.max(2));
    (EventPublisher { tx, missed: 0 }, EventSubscription { rx })
}

/// The publishing end of an [`EventSubscription`], held by the client connection.
#[derive(Debug)]
pub struct EventPublisher {
    tx: mpsc::Sender<Item>,
    missed: u64,
}

impl EventPublisher {
    /// Publishes one event's raw arguments. Returns `false` once the subscription was dropped.
    pub fn publish(&mut self, parameters: Vec<Bytes>) -> bool {
        if self.missed > 0 {
            match self.tx.try_send(Item::Lagged(self.missed)) {
                Ok(()) => self.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.missed += 1;
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(Item::Event(parameters)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Marks the place where the connection was re-established. Returns `false` once the
    /// subscription was dropped. A full buffer counts the marker as a lag instead.
    pub fn publish_reconnected(&mut self) -> bool {
        match self.tx.try_send(Item::Reconnected) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the subscriber is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A stream of one event's raw arguments; ends when the connection closes.
#[derive(Debug)]
pub struct EventSubscription {
    rx: mpsc::Receiver<Item>,
}

impl Stream for EventSubscription {
    type Item = Result<Vec<Bytes>, EventError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|i| match i {
                Item::Event(p) => Ok(p),
                Item::Lagged(missed) => Err(EventError::Lagged { missed }),
                Item::Reconnected => Err(EventError::Reconnected),
            })
        })
    }
}

/// Decodes one event's raw arguments into `T`.
pub type EventDecoder<T> = fn(&dyn ParameterSerializer, &[Bytes]) -> Result<T, ParameterError>;

/// A typed stream of events; generated clients return these.
pub struct EventStream<T> {
    subscription: EventSubscription,
    serializer: Arc<dyn ParameterSerializer>,
    decode: EventDecoder<T>,
}

impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").field("serializer", &self.serializer.name()).finish()
    }
}

impl<T> EventStream<T> {
    /// Wraps a raw subscription with a decoder.
    pub fn new(
        subscription: EventSubscription,
        serializer: Arc<dyn ParameterSerializer>,
        decode: EventDecoder<T>,
    ) -> Self {
        Self { subscription, serializer, decode }
    }
}

impl<T> Unpin for EventStream<T> {}

impl<T> Stream for EventStream<T> {
    type Item = Result<T, EventError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Pin::new(&mut this.subscription).poll_next(cx).map(|item| {
            item.map(|r| r.and_then(|p| (this.decode)(this.serializer.as_ref(), &p).map_err(EventError::Decode)))
        })
    }
}
