//! The connection behind a `WitClient`: pending calls, event routing, reader and writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use witrpc_core::{EventPublisher, MessageType, WitMessage, WitRequest, WitResponse};
use witrpc_crypto::{Opener, Sealer};

use crate::error::ClientError;
use crate::transport::{FrameSink, FrameStream, Inbound, Outbound, TransportError};

/// How long the writer spends closing the transport (sending a close frame) before it
/// gives up: 1 s. A server that stopped reading must not hold `disconnect`.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

type Reply = Result<WitResponse, ClientError>;

/// Subscribers of each event name, with the contract id they subscribed under.
type ByEvent = HashMap<&'static str, Vec<(i64, EventPublisher)>>;

/// Event subscriptions of a client; they outlive any one connection when the client
/// reconnects.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// `None` once the client is closed for good: new subscribers end at once.
    by_event: Mutex<Option<ByEvent>>,
}

impl Subscriptions {
    pub(crate) fn new() -> Self {
        Self { by_event: Mutex::new(Some(HashMap::new())) }
    }

    pub(crate) fn subscribe(&self, event: &'static str, contract_id: i64, publisher: EventPublisher) {
        let mut by_event = lock(&self.by_event);
        // Once closed, dropping the publisher ends the stream at once.
        let Some(map) = by_event.as_mut() else { return };
        let list = map.entry(event).or_default();
        // Subscribers that went away are otherwise only noticed when their event fires.
        list.retain(|(_, p)| !p.is_closed());
        list.push((contract_id, publisher));
    }

    fn deliver(&self, event: WitRequest) {
        let mut by_event = lock(&self.by_event);
        let Some(list) = by_event.as_mut().and_then(|m| m.get_mut(event.method_name.as_str())) else { return };
        // .NET's filter: skip only when both ids are set and differ.
        list.retain_mut(|(contract_id, publisher)| {
            if event.contract_id != 0 && *contract_id != 0 && *contract_id != event.contract_id {
                return true;
            }
            publisher.publish(event.parameters.clone())
        });
    }

    /// Tells every stream that the connection was re-established at this point.
    pub(crate) fn reconnected(&self) {
        if let Some(map) = lock(&self.by_event).as_mut() {
            for list in map.values_mut() {
                list.retain_mut(|(_, p)| p.publish_reconnected());
            }
        }
    }

    /// Ends every stream; later subscriptions end at once.
    pub(crate) fn close(&self) {
        lock(&self.by_event).take();
    }

    #[cfg(test)]
    pub(crate) fn count(&self, event: &str) -> usize {
        lock(&self.by_event).as_ref().and_then(|m| m.get(event)).map_or(0, Vec::len)
    }
}

/// State shared by the handle and the tasks of one connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pending: Mutex<HashMap<Uuid, oneshot::Sender<Reply>>>,
    subscriptions: std::sync::Arc<Subscriptions>,
    closed: CancellationToken,
    close_reason: Mutex<Option<String>>,
    /// Cancelled when the writer task has ended (it closed the transport or gave up).
    writer_done: CancellationToken,
}

/// An outbound envelope for the writer task.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Message { id: Uuid, kind: MessageType, payload: Bytes },
    Ping,
}

/// Keepalive settings of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    pub(crate) interval: Option<std::time::Duration>,
    pub(crate) idle_timeout: std::time::Duration,
}

impl Shared {
    pub(crate) fn new(subscriptions: Arc<Subscriptions>) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            subscriptions,
            closed: CancellationToken::new(),
            close_reason: Mutex::new(None),
            writer_done: CancellationToken::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub(crate) fn closed_token(&self) -> &CancellationToken {
        &self.closed
    }

    pub(crate) fn writer_done(&self) -> &CancellationToken {
        &self.writer_done
    }

    pub(crate) fn close_reason(&self) -> String {
        lock(&self.close_reason).clone().unwrap_or_else(|| "the connection was closed".to_owned())
    }

    /// The error a call fails with once the connection is closed.
    pub(crate) fn closed_error(&self) -> ClientError {
        ClientError::ConnectionClosed { reason: self.close_reason() }
    }

    /// Registers a pending call; the returned receiver gets its response.
    ///
    /// # Errors
    /// [`ClientError::ConnectionClosed`] once the connection is closed.
    pub(crate) fn register(&self, id: Uuid) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            // Checked under the lock `shut` drains with, so no call registers after the drain.
            let mut pending = lock(&self.pending);
            if !self.is_closed() {
                pending.insert(id, tx);
                return Ok(rx);
            }
        }
        Err(self.closed_error())
    }

    pub(crate) fn forget(&self, id: &Uuid) {
        lock(&self.pending).remove(id);
    }

    #[cfg(test)]
    pub(crate) fn pending_count(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Marks the connection closed and fails every pending call. (Event streams belong
    /// to the client and end when it closes for good.)
    pub(crate) fn shut(&self, reason: String) {
        {
            let mut slot = lock(&self.close_reason);
            if slot.is_none() {
                tracing::info!(%reason, "connection closed");
                *slot = Some(reason);
            }
        }
        self.closed.cancel();
        let reason = self.close_reason();
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, tx) in pending {
            let _ignored = tx.send(Err(ClientError::ConnectionClosed { reason: reason.clone() })); // caller may be gone
        }
    }

    fn deliver_response(&self, id: Uuid, reply: Reply) {
        match lock(&self.pending).remove(&id) {
            Some(tx) => {
                let _ignored = tx.send(reply); // the caller may have given up (timeout, drop)
            }
            None => tracing::debug!(%id, "response with no waiting call"),
        }
    }

    fn deliver_event(&self, event: WitRequest) {
        self.subscriptions.deliver(event);
    }
}

/// A poisoned lock only means a panic elsewhere mid-update of a map; the map is intact.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a response to the call's result (see `error::response_result`).
pub(crate) fn map_response(method: &str, response: WitResponse) -> Result<Option<Bytes>, ClientError> {
    crate::error::response_result(method, response)
}

/// Reads frames until the connection ends, routing responses and events.
pub(crate) async fn read_loop(
    shared: Arc<Shared>,
    mut inbound: FrameStream,
    mut opener: Box<dyn Opener>,
    outbound: mpsc::Sender<Outgoing>,
    keepalive: Keepalive,
) {
    let tick = keepalive.interval.unwrap_or(keepalive.idle_timeout).min(keepalive.idle_timeout / 4);
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut last_ping = last_heard;
    let reason = loop {
        let frame = tokio::select! {
            biased;
            () = shared.closed.cancelled() => break None,
            now = timer.tick() => {
                if now.duration_since(last_heard) >= keepalive.idle_timeout {
                    break Some(format!("no traffic from the server for {:?} (idle timeout)", keepalive.idle_timeout));
                }
                if keepalive.interval.is_some_and(|i| now.duration_since(last_ping) >= i) {
                    last_ping = now;
                    let _full_or_closed = outbound.try_send(Outgoing::Ping); // full: traffic is flowing
                }
                continue;
            }
            frame = inbound.next() => frame,
        };
        last_heard = tokio::time::Instant::now();
        let bytes = match frame {
            None => break Some("the server closed the connection".to_owned()),
            Some(Err(e @ TransportError::Closed { .. })) => break Some(e.to_string()),
            Some(Err(e)) => break Some(format!("transport error: {e}")),
            Some(Ok(Inbound::Heartbeat)) => continue,
            Some(Ok(Inbound::Message(b))) if b.is_empty() => continue,
            Some(Ok(Inbound::Message(b))) => b,
        };
        let message = match WitMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => break Some(format!("the server sent an invalid message: {e}")),
        };
        let data = match message.data.map(|d| opener.open(d)).transpose() {
            Ok(d) => d,
            Err(e) => break Some(format!("cannot open an encrypted frame: {e}")),
        };
        match message.kind {
            MessageType::Request => {
                let reply = match data.map(WitResponse::decode) {
                    Some(Ok(r)) => Ok(r),
                    Some(Err(e)) => Err(ClientError::Protocol(e)),
                    None => Err(ClientError::EmptyResponse),
                };
                shared.deliver_response(message.id, reply);
            }
            MessageType::Callback => match data.map(WitRequest::decode) {
                Some(Ok(event)) => shared.deliver_event(event),
                Some(Err(e)) => tracing::warn!(error = %e, "undecodable event ignored"),
                None => tracing::debug!("empty event ignored"),
            },
            other => tracing::debug!(kind = ?other, "ignoring message"),
        }
    };
    if let Some(reason) = reason {
        shared.shut(reason);
    }
}

/// Seals and writes queued envelopes in order, so AEAD counters follow wire order.
///
/// Every wait also watches the close signal: a server that stopped reading must not
/// keep `disconnect` (or the task) waiting, so the final close is bounded by
/// [`CLOSE_TIMEOUT`] too.
pub(crate) fn write_loop(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Outgoing>,
    sink: FrameSink,
    sealer: Box<dyn Sealer>,
) -> impl Future<Output = ()> + Send {
    // Taken before the task first runs, so it fires however the task ends (return,
    // panic, abort, a runtime dropping it unpolled); `disconnect` waits for it.
    let done = shared.writer_done.clone().drop_guard();
    async move {
        let _done = done;
        write_frames(&shared, rx, sink, sealer).await;
    }
}

async fn write_frames(
    shared: &Shared,
    mut rx: mpsc::Receiver<Outgoing>,
    mut sink: FrameSink,
    mut sealer: Box<dyn Sealer>,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = shared.closed.cancelled() => break,
            item = rx.recv() => item,
        };
        let sent = match item {
            Some(Outgoing::Message { id, kind, payload }) => {
                let sealed = match sealer.seal(payload) {
                    Ok(s) => s,
                    Err(e) => {
                        shared.shut(format!("cannot seal a message: {e}"));
                        break;
                    }
                };
                let frame = Bytes::from(WitMessage::new(id, kind, Some(sealed)).encode());
                tracing::trace!(%id, ?kind, len = frame.len(), "sending");
                let flush = rx.is_empty();
                unless_closed(shared, async {
                    sink.feed(Outbound::Message(frame)).await?;
                    if flush { sink.flush().await } else { Ok(()) }
                })
                .await
            }
            Some(Outgoing::Ping) => unless_closed(shared, sink.send(Outbound::Ping)).await,
            None => break,
        };
        match sent {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                shared.shut(format!("cannot send: {e}"));
                break;
            }
            None => break,
        }
    }
    shared.shut("the client disconnected".to_owned()); // keeps an earlier reason
    // Best effort: the peer may already be gone, or have stopped reading.
    let _closed_or_gone = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Runs `send` unless the connection closes first (`None` then).
async fn unless_closed<T>(shared: &Shared, send: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = shared.closed.cancelled() => None,
        result = send => Some(result),
    }
}
