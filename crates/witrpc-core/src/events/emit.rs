//! The emitting half: a service raises events through an [`EventEmitter`]; the server
//! attaches an [`EventSink`] to it while it runs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::descriptor::ServiceDescriptor;
use crate::error::ParameterError;
use crate::groups::Audience;

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
