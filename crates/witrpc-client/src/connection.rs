//! The connection behind a `WitClient`: pending calls, event routing, and the one task
//! that drives the connection's [`ClientSession`].
//!
//! The task selects over the socket, the session's next deadline, queued requests and
//! the close signal; feeds the session; and writes what it returns. Writing is driven
//! by hand (`poll_ready`/`start_send`/`poll_flush` with the frames held outside the
//! future), so a server that is slow to read never stops this task from reading its
//! responses, and a write interrupted by another branch loses nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::names::NameMap;
use crate::resume::{Observed, ResumeState};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use witrpc_core::session::{ClientEvent, ClientSession, SessionError, Transmit};
use witrpc_core::{BoxFuture, EventPublisher, WitRequest, WitResponse};

use crate::connector::{TokenError, TokenProvider};
use crate::error::ClientError;
use crate::transport::{FrameSink, FrameStream, Inbound, Outbound, TransportError};

/// How long the writer spends closing the transport (sending a close frame) before it
/// gives up: 1 s. A server that stopped reading must not hold `disconnect`.
pub(crate) const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

type Reply = Result<WitResponse, ClientError>;

/// Subscribers of each event name, with the contract id they subscribed under.
type ByEvent = NameMap<&'static str, Vec<(i64, EventPublisher)>>;

/// Event subscriptions of a client; they outlive any one connection when the client
/// reconnects.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// `None` once the client is closed for good: new subscribers end at once.
    by_event: Mutex<Option<ByEvent>>,
    /// Stream positions for resuming after a reconnect. Locked after `by_event`.
    resume: Mutex<ResumeState>,
}

impl Subscriptions {
    pub(crate) fn new() -> Self {
        Self { by_event: Mutex::new(Some(NameMap::default())), resume: Mutex::default() }
    }

    /// The `Resume` member for the next connection (`None` for a first one).
    pub(crate) fn resume_request(&self) -> Option<String> {
        lock(&self.resume).request()
    }

    /// A connection was established; `answer` is the server's `Resumed` member
    /// (`None` without `resume`). On a reconnect, every stream gets its marker here,
    /// before any event of the new connection.
    pub(crate) fn connected(&self, answer: Option<&str>) {
        let mut by_event = lock(&self.by_event);
        let mut resume = lock(&self.resume);
        let outcome = resume.connected(answer);
        if !outcome.reconnect {
            return;
        }
        if !outcome.lost.is_empty() {
            tracing::info!(streams = outcome.lost.len(), "event streams not recovered after the reconnect");
        }
        let Some(map) = by_event.as_mut() else { return };
        for (event, list) in map.iter_mut() {
            let recovered = resume.recovered(&outcome, event);
            list.retain_mut(|(_, p)| match recovered {
                Some(recovered) => p.publish_resumed(recovered),
                None => p.publish_reconnected(),
            });
        }
    }

    /// Delivers a positioned event; `Err` names the stream with a gap (the event is
    /// not delivered, and the connection must be resumed).
    fn deliver_positioned(&self, event: WitRequest, position: Arc<str>) -> Result<(), String> {
        match lock(&self.resume).observe(&event.method_name, &position) {
            Observed::Next => {}
            Observed::Duplicate => {
                tracing::debug!(event = %event.method_name, "duplicate event dropped");
                return Ok(());
            }
            Observed::Gap { stream } => return Err(stream),
        }
        self.deliver(event, Some(position));
        Ok(())
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

    fn deliver(&self, event: WitRequest, position: Option<Arc<str>>) {
        let mut by_event = lock(&self.by_event);
        let Some(list) = by_event.as_mut().and_then(|m| m.get_mut(event.method_name.as_str())) else { return };
        // .NET's filter: skip only when both ids are set and differ.
        let wanted = |contract_id: i64| event.contract_id == 0 || contract_id == 0 || contract_id == event.contract_id;
        let Some(last) = list.iter().rposition(|(contract_id, _)| wanted(*contract_id)) else { return };
        // The last subscriber takes the arguments; only the others get copies.
        let mut parameters = Some(event.parameters);
        let mut next = 0;
        list.retain_mut(|(contract_id, publisher)| {
            let index = next;
            next += 1;
            if !wanted(*contract_id) {
                return true;
            }
            let arguments = if index == last { parameters.take() } else { parameters.clone() };
            publisher.publish_at(arguments.unwrap_or_default(), position.clone())
        });
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
    /// The server refused a refreshed token: calls fail with
    /// [`ClientError::TokenRefreshRefused`].
    refresh_refused: std::sync::atomic::AtomicBool,
    /// Cancelled when the writer task has ended (it closed the transport or gave up).
    writer_done: CancellationToken,
}

/// A request for the connection task to encode, seal and send.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) id: Uuid,
    pub(crate) request: WitRequest,
}

impl Shared {
    pub(crate) fn new(subscriptions: Arc<Subscriptions>) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            subscriptions,
            closed: CancellationToken::new(),
            close_reason: Mutex::new(None),
            refresh_refused: std::sync::atomic::AtomicBool::new(false),
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

    /// Whether the server refused a refreshed token (the client then does not reconnect).
    pub(crate) fn was_refresh_refused(&self) -> bool {
        self.refresh_refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn close_reason(&self) -> String {
        lock(&self.close_reason).clone().unwrap_or_else(|| "the connection was closed".to_owned())
    }

    /// The error a call fails with once the connection is closed.
    pub(crate) fn closed_error(&self) -> ClientError {
        if self.was_refresh_refused() {
            return ClientError::TokenRefreshRefused;
        }
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
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, tx) in pending {
            let _ignored = tx.send(Err(self.closed_error())); // caller may be gone
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
        self.subscriptions.deliver(event, None);
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

/// Most frames taken from the session before they are written: beyond it, requests
/// wait in their channel (back-pressure on callers) until the socket drains.
const MAX_UNWRITTEN: usize = 256;

/// Drives one connection until it closes.
///
/// The drop guard on `writer_done` is taken before the task first runs, so it fires
/// however the task ends (return, panic, abort, a runtime dropping it unpolled);
/// `disconnect` waits for it.
pub(crate) fn run(
    shared: Arc<Shared>,
    session: ClientSession,
    io: (FrameSink, FrameStream),
    requests: mpsc::Receiver<Outgoing>,
    refresher: Option<TokenProvider>,
    started: tokio::sync::oneshot::Receiver<()>,
) -> impl Future<Output = ()> + Send {
    let done = shared.writer_done.clone().drop_guard();
    async move {
        let _done = done;
        // The client uses this connection from now on ([`Conn::start`]; a dropped
        // connection starts only to shut down).
        let _started_or_dropped = started.await;
        // Markers first, then the replayed events this task delivers.
        shared.subscriptions.connected(session.resumed());
        let (mut sink, mut inbound) = io;
        let reason = drive(&shared, session, &mut sink, &mut inbound, requests, refresher).await;
        shared.shut(reason); // keeps an earlier reason
        // Best effort: the peer may already be gone, or have stopped reading. The input
        // is read (and dropped) meanwhile: a WebSocket client's close completes only
        // when it reads the server's end of the TCP stream, so without reading it every
        // connection the server closed would linger for the whole timeout.
        let draining = async { while inbound.next().await.is_some() {} };
        let _closed_or_gone =
            tokio::time::timeout(CLOSE_TIMEOUT, futures_util::future::join(sink.close(), draining)).await;
    }
}

/// The session's clock: tokio's, so paused test time drives the session too.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Frames waiting for the sink, and whether fed frames await a flush.
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    frames: VecDeque<Outbound>,
    unflushed: bool,
}

impl Unwritten {
    /// Takes the session's frames; `Some(reason)` once it closed.
    fn take_from(&mut self, session: &mut ClientSession) -> Option<String> {
        while let Some(t) = session.poll_transmit() {
            match t {
                Transmit::Message(frame) => self.frames.push_back(Outbound::Message(frame)),
                Transmit::Ping => self.frames.push_back(Outbound::Ping),
                Transmit::Close(reason) => return Some(reason.reason),
                _ => {}
            }
        }
        None
    }

    fn is_idle(&self) -> bool {
        self.frames.is_empty() && !self.unflushed
    }

    /// Writes what it can; ready once everything is written and flushed.
    fn poll_write(&mut self, sink: &mut FrameSink, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        while !self.frames.is_empty() {
            ready!(sink.as_mut().poll_ready(cx))?;
            if let Some(frame) = self.frames.pop_front() {
                sink.as_mut().start_send(frame)?;
                self.unflushed = true;
            }
        }
        if self.unflushed {
            ready!(sink.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes everything (the handshake's way: nothing else to do meanwhile).
    pub(crate) async fn flush_all(
        &mut self,
        session: &mut ClientSession,
        sink: &mut FrameSink,
    ) -> Result<(), ClientError> {
        if let Some(reason) = self.take_from(session) {
            return Err(ClientError::ConnectionClosed { reason });
        }
        std::future::poll_fn(|cx| self.poll_write(sink, cx)).await.map_err(ClientError::from)
    }
}

/// The shortest wait before a refresh, whatever the token's lifetime.
const MIN_REFRESH_DELAY: Duration = Duration::from_millis(100);
/// How long before its expiry a short-lived token is refreshed: 5 s.
const REFRESH_MARGIN: Duration = Duration::from_secs(5);
/// A failing token provider is asked again after this long.
const PROVIDER_RETRY: Duration = Duration::from_secs(1);

/// How long to wait before refreshing a token that expires in `remaining`: at 80 % of
/// it, but at least [`REFRESH_MARGIN`] before the expiry, and never before half-way
/// (a very short lifetime must not make the client refresh in a loop).
pub(crate) fn refresh_delay(remaining: Duration) -> Duration {
    let margin = (remaining / 5).max(REFRESH_MARGIN.min(remaining / 2));
    remaining.saturating_sub(margin).max(MIN_REFRESH_DELAY.min(remaining))
}

/// When to refresh a token that expires at `expires_at_unix_ms` (wall clock).
fn refresh_deadline(expires_at_unix_ms: Option<i64>) -> Option<tokio::time::Instant> {
    let at = u64::try_from(expires_at_unix_ms?).ok()?;
    let expires = std::time::UNIX_EPOCH + Duration::from_millis(at);
    let remaining = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    Some(tokio::time::Instant::now() + refresh_delay(remaining))
}

/// The token refresh of one connection: when it is due, and the provider call in flight.
struct Refresh {
    provider: Option<TokenProvider>,
    due: Option<tokio::time::Instant>,
    fetching: Option<BoxFuture<'static, Result<String, TokenError>>>,
    /// The expiry the current schedule was computed for.
    expires_at: Option<i64>,
}

impl Refresh {
    fn new(provider: Option<TokenProvider>, session: &ClientSession) -> Self {
        let mut refresh = Self { provider, due: None, fetching: None, expires_at: None };
        refresh.schedule(session.token_expires_at_unix_ms());
        refresh
    }

    /// Plans the next refresh for a token expiring at `expires_at` (with a provider and
    /// a server that negotiated `token-refresh`). A refresh that did not move the
    /// expiry plans none (the provider hands out the same token).
    fn schedule(&mut self, expires_at: Option<i64>) {
        let moved = match (self.expires_at, expires_at) {
            (Some(before), Some(now)) => now > before,
            _ => true,
        };
        self.due = if self.provider.is_some() && moved { refresh_deadline(expires_at) } else { None };
        if !moved {
            tracing::warn!("the refreshed token expires no later than the previous one; not refreshing again");
        }
        self.expires_at = expires_at;
    }

    /// Waits until a refresh is due, then asks the provider; the token once it has one.
    async fn next(&mut self) -> Result<String, TokenError> {
        if self.fetching.is_none() {
            match self.due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
            let Some(provider) = self.provider.as_ref() else { return std::future::pending().await };
            self.due = None;
            self.fetching = Some(provider());
        }
        let Some(fetching) = self.fetching.as_mut() else { return std::future::pending().await };
        let token = fetching.await;
        self.fetching = None;
        token
    }
}

/// The connection loop; returns why the connection ended.
async fn drive(
    shared: &Shared,
    mut session: ClientSession,
    sink: &mut FrameSink,
    inbound: &mut FrameStream,
    mut requests: mpsc::Receiver<Outgoing>,
    provider: Option<TokenProvider>,
) -> String {
    let mut out = Unwritten::default();
    let far = || now() + std::time::Duration::from_secs(86_400 * 365);
    let mut armed = session.poll_timeout().unwrap_or_else(far);
    let timer = tokio::time::sleep_until(armed.into());
    tokio::pin!(timer);
    let closed = shared.closed.cancelled();
    tokio::pin!(closed);
    let mut refresh = Refresh::new(provider, &session);
    loop {
        if let Some(reason) = out.take_from(&mut session) {
            return reason;
        }
        if let Some(deadline) = session.poll_timeout().filter(|d| *d < armed) {
            armed = deadline;
            timer.as_mut().reset(armed.into());
        }
        let room = out.frames.len() < MAX_UNWRITTEN;
        let frame = tokio::select! {
            biased;
            () = &mut closed => return "the client disconnected".to_owned(),
            () = &mut timer => {
                session.handle_timeout(now());
                armed = session.poll_timeout().unwrap_or_else(far);
                timer.as_mut().reset(armed.into());
                continue;
            }
            written = std::future::poll_fn(|cx| out.poll_write(sink, cx)), if !out.is_idle() => {
                if let Err(e) = written {
                    return format!("cannot send: {e}");
                }
                continue;
            }
            token = refresh.next(), if session.features().token_refresh() && !session.is_refreshing() => {
                match token {
                    Ok(token) => {
                        tracing::debug!("refreshing the access token");
                        session.refresh_token(token);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?PROVIDER_RETRY, "the token provider failed");
                        refresh.due = Some(tokio::time::Instant::now() + PROVIDER_RETRY);
                    }
                }
                continue;
            }
            request = requests.recv(), if room => {
                match request {
                    Some(Outgoing { id, mut request }) => {
                        tracing::trace!(%id, method = %request.method_name, "sending");
                        // Stamped here, in wire order: the token the server last accepted.
                        if request.token != session.token() {
                            request.token.clear();
                            request.token.push_str(session.token());
                        }
                        session.send_request(id, &request);
                    }
                    None => return "the client disconnected".to_owned(),
                }
                continue;
            }
            frame = inbound.next() => frame,
        };
        let at = now();
        let bytes = match frame {
            None => return "the server closed the connection".to_owned(),
            Some(Err(e @ TransportError::Closed { .. })) => return e.to_string(),
            Some(Err(e)) => return format!("transport error: {e}"),
            Some(Ok(Inbound::Heartbeat)) => {
                session.handle_heartbeat(at);
                continue;
            }
            Some(Ok(Inbound::Message(b))) => b,
        };
        match session.handle_message(at, bytes) {
            Ok(None | Some(ClientEvent::Connected)) => {}
            Ok(Some(ClientEvent::Response { id, response })) => {
                let reply = response.map_err(|e| match e {
                    Some(e) => ClientError::Protocol(e),
                    None => ClientError::EmptyResponse,
                });
                shared.deliver_response(id, reply);
            }
            Ok(Some(ClientEvent::Callback(event))) => shared.deliver_event(event),
            Ok(Some(ClientEvent::PositionedCallback { event, position })) => {
                if let Err(reason) = deliver_positioned(shared, event, position) {
                    return reason;
                }
            }
            Ok(Some(ClientEvent::Replayed { events })) => {
                for replayed in events {
                    let delivered = match replayed {
                        Ok((event, position)) => deliver_positioned(shared, event, position),
                        Err(e) => Err(format!("unreadable replayed event: {e}; the connection is resumed")),
                    };
                    if let Err(reason) = delivered {
                        return reason;
                    }
                }
            }
            Ok(Some(ClientEvent::TokenRefreshed { expires_at_unix_ms })) => {
                tracing::debug!(expires_at_unix_ms, "access token refreshed");
                refresh.schedule(expires_at_unix_ms);
            }
            Ok(Some(_)) => {}
            Err(SessionError::RefreshRefused) => {
                shared.refresh_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                return SessionError::RefreshRefused.to_string();
            }
            Err(e) => return e.to_string(),
        }
    }
}

/// Delivers one positioned event; a gap in its stream ends the connection (with this
/// reason) so the reconnect resumes it.
fn deliver_positioned(shared: &Shared, event: WitRequest, position: Arc<str>) -> Result<(), String> {
    shared.subscriptions.deliver_positioned(event, position).map_err(|stream| {
        tracing::warn!(%stream, "gap in an event stream; reconnecting to resume it");
        format!("events of stream {stream} were skipped; the connection is resumed")
    })
}

/// One live connection: its state and its task.
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    /// Requests for the connection's task, which ends by itself once the connection
    /// is shut (sending the transport's close, bounded by a timeout).
    pub(crate) outbound: mpsc::Sender<Outgoing>,
    /// Lets the connection's task start reading (see [`Conn::start`]).
    pub(crate) start: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Conn {
    /// Starts delivering what the connection receives: called once the client uses
    /// this connection, so a reconnect's stream markers come after calls can use it.
    pub(crate) fn start(&self) {
        if let Some(start) = lock(&self.start).take() {
            let _gone = start.send(());
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Nobody can use this connection any more: the close signal stops its task.
        self.shared.shut("the client was dropped".to_owned());
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_80_percent_or_5_s_before_expiry_but_never_in_a_loop() {
        let s = Duration::from_secs;
        assert_eq!(refresh_delay(s(3600)), s(2880), "80 % of an hour");
        assert_eq!(refresh_delay(s(20)), s(15), "5 s before a 20 s token expires");
        assert_eq!(refresh_delay(s(10)), s(5));
        assert_eq!(refresh_delay(s(4)), s(2), "half-way through a very short token");
        assert_eq!(refresh_delay(Duration::ZERO), Duration::ZERO, "already expired: at once");
    }
}

/// What one positioned event costs the client, from a replay batch's entry to the
/// subscriber's stream: decode, position check, routing, the channel and the stream's
/// item. Not a check (it asserts only that every event arrives): a measurement, run with
/// `cargo test --release -p witrpc-client event_path_cost -- --ignored --nocapture`.
#[cfg(test)]
mod event_path_cost {
    use super::*;
    use futures_util::FutureExt as _;
    use witrpc_core::ParameterType;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn event_path_cost() {
        const EVENTS: u64 = 100;
        // `COST_ROUNDS=1 COST_CLIENTS=500` under `valgrind --tool=callgrind` counts
        // instructions, which the machine's noise does not move.
        let knob =
            |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let (clients, rounds_n) = (knob("COST_CLIENTS", 4_000) as u32, knob("COST_ROUNDS", 9));
        let epoch = "6f1c2a9be03d4471";
        let entries: Vec<Bytes> = (1..=EVENTS)
            .map(|k| {
                let event = WitRequest {
                    method_name: "Message".into(),
                    parameters: vec![Bytes::from(format!("\"miss-{k}\""))],
                    parameter_types_by_name: vec![ParameterType {
                        type_name: Some("System.String".into()),
                        assembly: Some("System.Private.CoreLib".into()),
                    }],
                    ..WitRequest::default()
                };
                Bytes::from(event.encode_with_position(Some(&format!("all\t{epoch}\t{k}"))))
            })
            .collect();
        // Rounds of many clients each; the fastest round is the figure (the machine is shared).
        let mut rounds = Vec::new();
        for _ in 0..rounds_n {
            let started = std::time::Instant::now();
            let mut received = 0u64;
            for _ in 0..clients {
                let subscriptions = Subscriptions::new();
                let (publisher, subscription) = witrpc_core::event_channel(256);
                subscriptions.subscribe("Message", 0, publisher);
                let mut events = subscription.positioned();
                for entry in &entries {
                    let (event, position) = WitRequest::decode_event(entry.clone()).unwrap();
                    subscriptions.deliver_positioned(event, position.unwrap()).unwrap();
                }
                while let Some(Some(Ok(event))) = events.next().now_or_never() {
                    assert!(event.position.is_some());
                    received += 1;
                }
            }
            assert_eq!(received, EVENTS * u64::from(clients));
            rounds.push(started.elapsed().as_nanos() as f64 / received as f64);
        }
        rounds.sort_by(f64::total_cmp);
        eprintln!(
            "ns per event: fastest round {:.0}, median {:.0} ({rounds_n} rounds)",
            rounds[0],
            rounds[rounds_n / 2]
        );
    }
}
