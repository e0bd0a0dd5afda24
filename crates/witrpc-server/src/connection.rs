//! One connection: the tokio task around its [`ServerSession`].
//!
//! The session (in `witrpc_core::session`) is the protocol: handshake, sealing,
//! framing, keepalive and idle deadlines. This task only selects over the socket, the
//! session's next deadline, the connection's queue and the shutdown signals; feeds
//! what arrives to the session; acts on the session's events (check a token, dispatch
//! a request); and writes what the session returns. Requests run concurrently, bounded
//! by a per-connection semaphore: a connection that has `max_in_flight_requests` calls
//! running is not read until one finishes. A call whose future is ready at once is
//! answered in place (no second task, no wake-up).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;
use witrpc_core::session::{
    CloseCode, CloseReason, Keepalive, QueueLimits, Queued, ServerConfig as SessionConfig, ServerEvent, ServerSession,
    TokenExpiry, Transmit, text,
};
use witrpc_core::v2;
use witrpc_core::{CallContext, CommunicationStatus, Identity, MethodCall, MethodError, WitRequest, WitResponse};

use crate::auth::Authorization;
use crate::events::Resume;
use crate::outbox::Outbox;
use crate::registry::Target;
use crate::shared::Shared;
use crate::transport::{Connection, FrameError, FrameSink, FrameStream, Inbound, Outbound};

/// Queued frames that make the connection task write before it reads on.
const WRITE_BATCH: usize = 64;
/// How long a closing connection may take to write what is left and the close.
const WRITER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long an unauthorized peer's close may take to write: the handshake deadline
/// holds whatever the peer does (it may never read).
const HANDSHAKE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest method name echoed back in a "method not found" answer.
const MAX_ECHOED_NAME: usize = 128;

struct ConnectionTask {
    shared: Arc<Shared>,
    id: Uuid,
    session: ServerSession,
    outbox: Arc<Outbox>,
    sink: FrameSink,
    /// Frames fed to the sink since its last flush.
    unflushed: bool,
    /// A close was written or the transport failed: nothing more can be written.
    finished: bool,
    /// Items moved out of the outbox, reused between batches.
    batch: VecDeque<Queued>,
    authorized_token: String,
    /// When the authorized token expires (`None`: never).
    token_expiry: Option<TokenExpiry>,
    /// The token a refresh replaced, honoured on requests until this instant (requests
    /// the client sent before it saw the refresh's answer).
    previous_token: Option<(String, std::time::Instant)>,
    /// Who this connection is; the identity is filled in at authorization.
    context: CallContext,
    in_flight: Arc<Semaphore>,
    calls: TaskTracker,
    on_authorized: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// Serves `connection` until it closes, the peer misbehaves or the server stops.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    connection: Connection,
    shutdown: CancellationToken,
    drain: CancellationToken,
    calls: TaskTracker,
) {
    let Connection { peer, transport, inbound, outbound, slot, headers, request, on_authorized } = connection;
    let id = Uuid::new_v4();
    let span =
        tracing::info_span!("connection", conn_id = %id, peer = ?peer, transport, protocol = tracing::field::Empty);
    async move {
        tracing::info!("connected");
        shared.stats.connection_opened();
        let config = &shared.config;
        let limits =
            QueueLimits::new(config.outbound_queue_capacity, config.max_outbound_bytes, config.slow_consumer_timeout);
        let outbox = Arc::new(Outbox::new(limits, shared.stats.clone(), shutdown.child_token()));
        let session_config = SessionConfig::new(
            Keepalive::new(config.keepalive_interval, config.idle_timeout),
            config.handshake_timeout,
            config.max_handshake_message_size,
        )
        .with_rate_limit(config.rate_limit)
        .with_token_expiry_grace(config.token_expiry_grace)
        .with_resume(shared.hub.has_history());
        let session = ServerSession::new(now(), session_config, shared.protocols.clone());
        let mut task = ConnectionTask {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight_requests)),
            shared: shared.clone(),
            id,
            session,
            outbox,
            sink: outbound,
            unflushed: false,
            finished: false,
            batch: VecDeque::new(),
            authorized_token: String::new(),
            token_expiry: None,
            previous_token: None,
            context: CallContext::new(id, peer, None, headers.into())
                .with_request(request)
                .with_membership(shared.hub.clone()),
            calls,
            on_authorized,
        };
        task.run(inbound, drain).await;
        shared.hub.remove(id).await;
        task.context.closed.close();
        // Write what is left and the close; a peer that stopped reading cannot hold the
        // connection (and its slot) open past the grace period, and an unauthorized peer
        // not past its handshake deadline by more than a moment.
        let grace = if task.session.is_authorized() { WRITER_GRACE } else { HANDSHAKE_CLOSE_GRACE };
        if tokio::time::timeout(grace, task.finish()).await.is_err() {
            tracing::warn!(?grace, "peer is not reading; dropping the connection");
        }
        task.outbox.closer().cancel();
        drop(slot);
        shared.stats.connection_closed(task.session.is_authorized());
        tracing::info!("disconnected");
    }
    .instrument(span)
    .await;
}

/// The session's clock: tokio's, so paused test time drives the session too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl ConnectionTask {
    /// Reads messages and, between them, writes what the session and the queue hold.
    /// Returns with the session closing (its close queued).
    async fn run(&mut self, mut inbound: FrameStream, drain: CancellationToken) {
        let closer = self.outbox.closer().clone();
        // Created once: a fresh `cancelled()` per message registers and unregisters a
        // waiter each time (a measurable share of a small call's cost).
        let closed = closer.cancelled();
        let draining = drain.cancelled();
        tokio::pin!(closed, draining);
        let mut armed = self.session.poll_timeout().unwrap_or_else(far_future);
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        loop {
            if self.session.is_closing() {
                return;
            }
            // A peer that keeps sending still gets its answers in batches of this size.
            if (self.session.pending_transmits() >= WRITE_BATCH || self.outbox.len() >= WRITE_BATCH)
                && !self.write_out(closed.as_mut()).await
            {
                return;
            }
            // A peer over its rate limit is not read until its buckets refill.
            let held = if self.shared.config.rate_limit.is_some() { self.session.read_held_until(now()) } else { None };
            // Re-arm only when the session needs the clock earlier than armed; a later
            // deadline is found when the armed one fires (no timer work per message).
            if let Some(deadline) = self.session.poll_timeout().into_iter().chain(held).min().filter(|d| *d < armed) {
                armed = deadline;
                timer.as_mut().reset(armed.into());
            }
            let frame = tokio::select! {
                biased;
                () = &mut closed => {
                    self.close_from_outbox();
                    return;
                }
                () = &mut draining => {
                    self.drain().await;
                    return;
                }
                () = &mut timer => {
                    self.session.handle_timeout(now());
                    armed = self.session.poll_timeout().unwrap_or_else(far_future);
                    timer.as_mut().reset(armed.into());
                    continue;
                }
                frame = inbound.next(), if held.is_none() => frame,
                // Nothing more to read right now: write what the frames just read
                // produced, in one go.
                () = std::future::ready(()), if self.session.pending_transmits() > 0 => {
                    if !self.write_out(closed.as_mut()).await {
                        return;
                    }
                    continue;
                }
                () = self.outbox.item_ready() => {
                    if !self.write_out(closed.as_mut()).await {
                        return;
                    }
                    continue;
                }
            };
            let at = now();
            let bytes = match frame {
                Some(Ok(Inbound::Message(b))) => b,
                Some(Ok(Inbound::Heartbeat)) => {
                    self.session.handle_heartbeat(at);
                    continue;
                }
                None | Some(Err(FrameError::Closed)) => {
                    // The peer went away: nothing is left to write.
                    self.session.close_now(CloseReason::new(CloseCode::Normal, "peer closed the connection"));
                    return;
                }
                Some(Err(FrameError::TooLarge { size, limit })) => {
                    tracing::warn!(size, limit, authorized = self.session.is_authorized(), "message too large");
                    let reason = if self.session.is_authorized() {
                        format!("message exceeds max_message_size ({limit} bytes)")
                    } else {
                        format!("message before authorization exceeds {limit} bytes")
                    };
                    self.session.close_now(CloseReason::new(CloseCode::TooBig, reason));
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "read failed");
                    self.session.close_now(CloseReason::new(e.close_code(), "transport error"));
                    return;
                }
            };
            tracing::trace!(len = bytes.len(), "frame in");
            if !bytes.is_empty() {
                self.shared.stats.message_in(bytes.len());
            }
            match self.session.handle_message(at, bytes) {
                None => {}
                Some(ServerEvent::Authorize { token }) => self.authorize(token).await,
                Some(ServerEvent::RefreshToken { token }) => self.refresh(token).await,
                Some(ServerEvent::Request { id, request }) => self.dispatch(id, request, closed.as_mut()).await,
                Some(ServerEvent::RequestV2 { id, request }) => self.dispatch_v2(id, request, closed.as_mut()).await,
                Some(_) => {}
            }
        }
    }

    /// The outbox was closed by another task (slow consumer, hard shutdown).
    fn close_from_outbox(&mut self) {
        let reason =
            self.outbox.take_reason().unwrap_or_else(|| CloseReason::new(CloseCode::Away, "server is shutting down"));
        self.session.close_now(reason);
    }

    /// Moves the queue's items into the session, in order.
    fn pump(&mut self) {
        self.outbox.drain_into(&mut self.batch);
        while let Some(item) = self.batch.pop_front() {
            self.session.send_queued(item);
        }
    }

    /// Writes everything queued. `false` when the connection must stop: the write
    /// failed, a close was written, the connection is closing, or the peer neither read
    /// nor wrote for its idle timeout (a peer that stops reading cannot hold it open).
    async fn write_out(&mut self, closed: Pin<&mut WaitForCancellationFuture<'_>>) -> bool {
        self.pump();
        let idle = self.shared.config.idle_timeout;
        let deadline = Instant::from_std(self.session.idle_deadline());
        tokio::select! {
            biased;
            () = closed => {
                self.close_from_outbox();
                false
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::info!(?idle, "peer neither reads nor writes; closing");
                self.session.close_now(CloseReason::new(CloseCode::Away, format!("no traffic for {idle:?} (idle timeout)")));
                false
            }
            more = self.write_transmits() => more,
        }
    }

    /// Feeds every frame the session holds, then flushes once.
    async fn write_transmits(&mut self) -> bool {
        while let Some(transmit) = self.session.poll_transmit() {
            let outbound = match transmit {
                Transmit::Message(frame) => {
                    tracing::trace!(len = frame.len(), "frame out");
                    self.shared.stats.message_out(frame.len());
                    Outbound::Message(frame)
                }
                Transmit::Ping => Outbound::Ping,
                Transmit::Close(reason) => {
                    tracing::debug!(%reason, "closing connection");
                    // Best effort: the peer may be gone.
                    let _ignored = self.sink.send(Outbound::Close(reason)).await;
                    self.finished = true;
                    return false;
                }
                _ => continue,
            };
            if let Err(e) = self.sink.feed(outbound).await {
                tracing::debug!(error = %e, "write failed");
                self.finished = true;
                return false;
            }
            self.unflushed = true;
        }
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

    /// After reading stopped (the session is closing): writes what is left and the close.
    async fn finish(&mut self) {
        if !self.outbox.closer().is_cancelled() {
            self.pump();
        }
        while !self.finished {
            if !self.write_transmits().await {
                break;
            }
            if !self.session.is_closing() {
                self.close_from_outbox();
            }
        }
    }

    /// Graceful shutdown of this connection: read nothing more, let running calls
    /// finish and send their responses, then close with 1001. The server's hard
    /// deadline (cancelling the closer) cuts this short.
    async fn drain(&mut self) {
        let all = u32::try_from(self.shared.config.max_in_flight_requests).unwrap_or(u32::MAX);
        let drained = tokio::select! {
            biased;
            () = self.outbox.closer().cancelled() => false,
            _permits = self.in_flight.acquire_many(all) => true,
        };
        if !drained {
            return self.close_from_outbox();
        }
        tracing::debug!("drained");
        self.pump();
        self.session.close(CloseReason::new(CloseCode::Away, "server is shutting down"));
    }

    async fn authorize(&mut self, token: String) {
        let deadline = self.session.handshake_deadline().map_or_else(|| far_future().into(), Instant::from_std);
        let validator = self.shared.validator.clone();
        let decision = tokio::select! {
            d = validator.authorize(&token, &self.context) => d,
            () = tokio::time::sleep_until(deadline) => Authorization::Deny,
        };
        let resume_request = self.session.take_resume_request();
        let (identity, expiry) = match decision {
            Authorization::Allow(identity) => (identity, None),
            Authorization::AllowUntil { identity, expires_at } => (identity, Some(token_expiry(expires_at))),
            Authorization::Deny => {
                self.session.authorization_decided(false);
                self.shared.stats.auth_failed();
                return;
            }
        };
        tracing::debug!(identity = ?identity.as_ref().map(Identity::name), expires = expiry.is_some(), "authorized");
        self.context.identity = identity;
        // Registered before the answer: a resume's answer names what is replayed, and
        // the replayed events wait in the queue until the answer is written.
        let features = self.session.features();
        let resume = Resume { negotiated: features.resume(), batch: features.replay_batch() };
        let resumed = self
            .shared
            .hub
            .insert(self.id, self.outbox.clone(), self.context.identity.as_ref(), resume, resume_request.as_deref())
            .await;
        self.session.authorization_decided_resumed(true, expiry, resumed.as_deref());
        self.shared.stats.authorized();
        self.token_expiry = expiry;
        self.context.protocol = self.session.protocol();
        if let Some(version) = self.context.protocol {
            tracing::Span::current().record("protocol", version.number());
        }
        self.authorized_token = token;
        if let Some(lift_limits) = self.on_authorized.take() {
            lift_limits();
        }
    }

    /// A negotiated client's fresh token: accepted only for the same identity. While
    /// the validator runs this connection is neither read nor written (as at
    /// authorization); it is bounded by the handshake timeout.
    async fn refresh(&mut self, token: String) {
        let timeout = self.shared.config.handshake_timeout;
        let validator = self.shared.validator.clone();
        let decision = tokio::time::timeout(timeout, validator.authorize(&token, &self.context))
            .await
            .unwrap_or(Authorization::Deny);
        let refused = if !decision.is_allowed() {
            Some("token refresh refused: the access token was rejected")
        } else if decision.identity() != self.context.identity.as_ref() {
            Some("token refresh refused: the token names another identity")
        } else {
            None
        };
        if let Some(reason) = refused {
            self.shared.stats.auth_failed();
            return self.session.refresh_decided(false, None, reason);
        }
        let expiry = decision.expires_at().map(token_expiry);
        // Requests already on their way carry the old token: honour it until it expires
        // (a token without expiry: for the grace period).
        let grace = self.shared.config.token_expiry_grace;
        let until = self.token_expiry.map_or_else(|| now() + grace, |e| e.at);
        let previous = std::mem::replace(&mut self.authorized_token, token);
        self.previous_token = Some((previous, until));
        self.token_expiry = expiry;
        self.session.refresh_decided(true, expiry, "");
    }

    /// Whether a request stamped with `token` may run on this connection.
    fn request_token_ok(&self, token: &str) -> bool {
        let validator = &self.shared.validator;
        validator.is_request_token_valid(&self.authorized_token, token)
            || self
                .previous_token
                .as_ref()
                .is_some_and(|(previous, until)| now() < *until && validator.is_request_token_valid(previous, token))
    }

    /// Answers a call in place: events the call queued first go out first.
    fn respond(&mut self, id: Uuid, response: &WitResponse) {
        self.pump();
        self.session.send_response(id, response);
    }

    async fn dispatch(&mut self, id: Uuid, request: WitRequest, closed: Pin<&mut WaitForCancellationFuture<'_>>) {
        if !self.request_token_ok(&request.token) {
            tracing::debug!(method = %request.method_name, "request token rejected");
            let response = WitResponse::error(CommunicationStatus::Unauthorized, text::TOKEN_INVALID, None);
            return self.respond(id, &response);
        }
        let Some(target) = self.shared.registry.resolve(&request) else {
            tracing::debug!(method = %truncated(&request.method_name), "method not found");
            let message = format!("{}{}", text::METHOD_NOT_FOUND, truncated(&request.method_name));
            let response = WitResponse::error(CommunicationStatus::BadRequest, message, None);
            return self.respond(id, &response);
        };
        self.call(id, target, request.parameters, closed).await;
    }

    /// A protocol-2 request: the 2.x token text, dispatch by name and .NET types.
    async fn dispatch_v2(
        &mut self,
        id: Uuid,
        request: v2::WitRequest,
        closed: Pin<&mut WaitForCancellationFuture<'_>>,
    ) {
        if !self.shared.validator.is_request_token_valid(&self.authorized_token, &request.token) {
            tracing::debug!(method = %truncated(&request.method_name), "request token rejected");
            return self.respond(id, &v2::WitResponse::token_not_valid().into());
        }
        let target = match self.shared.registry.resolve_v2(&request) {
            Ok(target) => target,
            Err(e) => {
                tracing::debug!(method = %truncated(&request.method_name), error = %e, "protocol-2 request not resolved");
                let mut response: WitResponse = e.response().into();
                if let Some(message) = response.error_message.as_mut() {
                    if message.len() > 256 {
                        *message = truncated(message).into_owned();
                    }
                }
                return self.respond(id, &response);
            }
        };
        self.call(id, target, request.parameters, closed).await;
    }

    /// Runs a resolved call: in place when its future is ready at once, else on its own
    /// task (bounded by the in-flight limit).
    async fn call(
        &mut self,
        id: Uuid,
        target: Target,
        parameters: Vec<bytes::Bytes>,
        closed: Pin<&mut WaitForCancellationFuture<'_>>,
    ) {
        // Back-pressure: wait for a free slot before reading the next message.
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                biased;
                () = closed => return self.close_from_outbox(),
                p = self.in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            },
        };
        let service = self.shared.registry.service(target).clone();
        let method_name = service.descriptor().methods.get(target.method).map_or("?", |m| m.name);
        let call = MethodCall { parameters, serializer: self.shared.serializer.clone(), context: self.context.clone() };
        let span = tracing::debug_span!("request", %id, method = method_name);
        let started = std::time::Instant::now();
        let mut future =
            Box::pin(AssertUnwindSafe(self.context.clone().scope(service.call(target.method, call))).catch_unwind());
        // Fast path: most methods finish without waiting (no I/O, no timers). Poll once
        // here and answer at once; only a method that is still pending gets its own task.
        // (The task polls it again with its own waker, so nothing is lost.)
        if let Some(result) = span.in_scope(|| (&mut future).now_or_never()) {
            let response = span.in_scope(|| finish(result, method_name, started, &self.shared.stats));
            self.respond(id, &response);
            drop(permit);
            return;
        }
        let outbox = self.outbox.clone();
        let stats = self.shared.stats.clone();
        self.calls.spawn(
            async move {
                let response = finish(future.await, method_name, started, &stats);
                // A closed queue means the connection is going away; nobody to answer.
                let _closed = outbox.send(Queued::Response { id, response });
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// A validator's wall-clock expiry as the wire value and an instant on the session's
/// clock (tokio's, so paused test time drives it).
fn token_expiry(expires_at: std::time::SystemTime) -> TokenExpiry {
    let remaining = expires_at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    let unix_ms = expires_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .max(1);
    TokenExpiry { unix_ms, at: now().checked_add(remaining).unwrap_or_else(far_future) }
}

/// A deadline that never comes (a timer must be armed with something).
fn far_future() -> std::time::Instant {
    now() + std::time::Duration::from_secs(86_400 * 365)
}

/// A peer-chosen name cut to [`MAX_ECHOED_NAME`] bytes (at a char boundary) for
/// answers and logs.
fn truncated(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= MAX_ECHOED_NAME {
        return name.into();
    }
    let mut end = MAX_ECHOED_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &name[..end], name.len()).into()
}

/// The response to a method's outcome (or panic), logged and counted.
fn finish(
    result: std::thread::Result<Result<Option<Vec<u8>>, MethodError>>,
    method_name: &'static str,
    started: std::time::Instant,
    stats: &crate::stats::ServerStats,
) -> WitResponse {
    let response = match result {
        Ok(result) => response_for(result),
        Err(_) => {
            tracing::error!("service method panicked");
            WitResponse::error(
                CommunicationStatus::InternalServerError,
                text::FAILED,
                Some("the method panicked".to_owned()),
            )
        }
    };
    let elapsed = started.elapsed();
    tracing::debug!(status = response.status.to_i32(), elapsed_us = elapsed.as_micros() as u64, "done");
    stats.call_finished(method_name, response.status.to_i32(), elapsed);
    response
}

/// Maps a method's outcome to its response: the one place that decides statuses.
fn response_for(result: Result<Option<Vec<u8>>, MethodError>) -> WitResponse {
    match result {
        Ok(data) => WitResponse::ok(data.filter(|d| !d.is_empty()).map(bytes::Bytes::from)),
        Err(MethodError::InvalidArgument(e)) => {
            let details = std::error::Error::source(&e).map(ToString::to_string);
            WitResponse::error(CommunicationStatus::BadRequest, format!("{}: {e}", text::INVALID_ARGUMENT), details)
        }
        Err(MethodError::Failed { details }) => {
            WitResponse::error(CommunicationStatus::InternalServerError, text::FAILED, Some(details))
        }
        Err(e @ MethodError::EncodeResult(_)) => {
            let details = std::error::Error::source(&e).map(ToString::to_string);
            WitResponse::error(CommunicationStatus::InternalServerError, text::FAILED, details)
        }
        Err(e) => WitResponse::error(CommunicationStatus::InternalServerError, text::FAILED, Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use witrpc_core::{ParameterErrorKind, parameter_error};

    #[test]
    fn outcomes_map_to_dotnet_statuses_and_messages() {
        let ok = response_for(Ok(Some(b"5".to_vec())));
        assert_eq!((ok.status, ok.data.as_deref()), (CommunicationStatus::Ok, Some(&b"5"[..])));
        // An empty encoding is null on the wire, as .NET writes it.
        assert_eq!(response_for(Ok(Some(Vec::new()))).data, None);

        let failed = response_for(Err(MethodError::Failed { details: "disk full".into() }));
        assert_eq!(failed.status, CommunicationStatus::InternalServerError);
        assert_eq!(failed.error_message.as_deref(), Some("Failed to process request"));
        assert_eq!(failed.error_details.as_deref(), Some("disk full"));

        let bad = parameter_error(ParameterErrorKind::Decode, "json", "expected i32").for_value("a");
        let bad = response_for(Err(MethodError::InvalidArgument(bad)));
        assert_eq!(bad.status, CommunicationStatus::BadRequest);
        let message = bad.error_message.unwrap_or_default();
        assert!(message.starts_with("Invalid argument") && message.contains('a'), "{message}");
    }

    #[test]
    fn long_method_names_are_cut_in_answers() {
        assert_eq!(truncated("Add"), "Add");
        let long = "é".repeat(1000);
        let cut = truncated(&long);
        assert!(cut.len() < 200, "{}", cut.len());
        assert!(cut.ends_with("(2000 bytes)"), "{cut}");
    }
}
