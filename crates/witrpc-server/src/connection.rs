//! One connection: the reader loop, the protocol-3 handshake and request dispatch.
//!
//! The reader decodes each inbound message in arrival order (so AEAD counters are
//! checked in order), answers handshake messages itself and spawns each request as
//! its own task, bounded by a per-connection semaphore: a connection that has
//! `max_in_flight_requests` calls running is not read until one finishes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;
use witrpc_core::{
    CallContext, CommunicationStatus, Identity, MessageType, MethodCall, MethodError, PROTOCOL_VERSION, WitMessage,
    WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
    WitResponseInitialization,
};
use witrpc_crypto::Opener;

use crate::auth::Authorization;
use crate::outbox::{Outbox, Outgoing, Writer};
use crate::server::Shared;
use crate::transport::{CloseCode, CloseReason, Connection, FrameError, Inbound};

/// .NET's answer texts, kept identical so .NET clients and logs read the same.
pub(crate) mod text {
    pub(crate) const REQUEST_EMPTY: &str = "Request is empty";
    pub(crate) const TOKEN_INVALID: &str = "Token is not valid";
    pub(crate) const NOT_AUTHORIZED: &str = "Connection is not authorized";
    pub(crate) const METHOD_NOT_FOUND: &str = "Method not found on service, method name: ";
    pub(crate) const FAILED: &str = "Failed to process request";
    pub(crate) const INVALID_ARGUMENT: &str = "Invalid argument";
    pub(crate) const CANNOT_READ_INIT: &str = "Cannot read the initialization request; the server speaks protocol 3";
}

/// Queued messages that make the connection task write before it reads on.
const WRITE_BATCH: usize = 64;
/// How long a closing connection's writer may take to flush and write the close.
const WRITER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingInitialization,
    AwaitingAuthorization,
    Authorized,
}

/// What the reader does after a message.
enum Next {
    Continue,
    /// Stop reading; the outbox already holds the close.
    Stop,
}

pub(crate) struct ConnectionTask {
    shared: Arc<Shared>,
    id: Uuid,
    outbox: Arc<Outbox>,
    state: State,
    opener: Option<Box<dyn Opener>>,
    authorized_token: String,
    /// Who this connection is; the identity is filled in at authorization.
    context: CallContext,
    in_flight: Arc<Semaphore>,
    calls: TaskTracker,
    /// The transport's hook that lifts its pre-authorization read limits.
    on_authorized: Option<crate::transport::OnAuthorized>,
}

/// Serves `connection` until it closes, the peer misbehaves or the server stops.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    connection: Connection,
    shutdown: CancellationToken,
    drain: CancellationToken,
    calls: TaskTracker,
) {
    let Connection { peer, transport, inbound, outbound, slot, headers, on_authorized } = connection;
    let id = Uuid::new_v4();
    let span = tracing::info_span!("connection", conn_id = %id, peer = ?peer, transport);
    async move {
        tracing::info!("connected");
        shared.connection_opened();
        let outbox = Outbox::new(
            shared.config.outbound_queue_capacity,
            shared.config.max_outbound_bytes,
            shared.stats.slow_consumers.clone(),
            shutdown.child_token(),
        );
        let outbox = Arc::new(outbox);
        let mut writer = Writer::new(outbound);
        let mut task = ConnectionTask {
            in_flight: Arc::new(Semaphore::new(shared.config.max_in_flight_requests)),
            shared: shared.clone(),
            id,
            outbox: outbox.clone(),
            state: State::AwaitingInitialization,
            opener: None,
            authorized_token: String::new(),
            context: CallContext::new(id, peer, None, headers.into()),
            calls,
            on_authorized,
        };
        task.read_loop(inbound, drain, &mut writer).await;
        shared.hub.remove(&id);
        // Write what is queued and the close; a peer that stopped reading cannot hold the
        // connection (and its slot) open past the grace period.
        if tokio::time::timeout(WRITER_GRACE, writer.finish(&outbox)).await.is_err() {
            tracing::warn!(grace = ?WRITER_GRACE, "peer is not reading; dropping the connection");
        }
        drop(slot);
        shared.connection_closed();
        tracing::info!("disconnected");
    }
    .instrument(span)
    .await;
}

impl ConnectionTask {
    /// Reads messages and, between them, writes what the outbox holds (responses, events,
    /// pings), so a call answered in place is written without waking another task.
    async fn read_loop(
        &mut self,
        mut inbound: crate::transport::FrameStream,
        drain: CancellationToken,
        writer: &mut Writer,
    ) {
        let deadline = Instant::now() + self.shared.config.handshake_timeout;
        let closer = self.outbox.closer().clone();
        let handshake_timer = tokio::time::sleep_until(deadline);
        tokio::pin!(handshake_timer);
        let shared = self.shared.clone();
        let config = &shared.config;
        // Checks liveness often enough to close within ~1/4 of the idle timeout.
        let tick = config.keepalive_interval.unwrap_or(config.idle_timeout).min(config.idle_timeout / 4);
        let mut keepalive = tokio::time::interval_at(Instant::now() + tick, tick);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut last_ping = Instant::now();
        // Created once: a fresh `cancelled()` per message registers and unregisters a
        // waiter each time (a measurable share of a small call's cost).
        let closed = closer.cancelled();
        let draining = drain.cancelled();
        tokio::pin!(closed, draining);
        loop {
            // A peer that keeps sending still gets its answers in batches of this size.
            if self.outbox.len() >= WRITE_BATCH && !self.write_out(writer, closed.as_mut(), last_heard).await {
                return;
            }
            let frame = tokio::select! {
                biased;
                () = &mut closed => return,
                () = &mut draining => {
                    self.drain().await;
                    return;
                }
                () = &mut handshake_timer, if self.state != State::Authorized => {
                    tracing::warn!("handshake timeout");
                    self.outbox.close(CloseReason::new(
                        CloseCode::Policy,
                        format!("handshake not completed within {:?}", self.shared.config.handshake_timeout),
                    ));
                    return;
                }
                now = keepalive.tick() => {
                    if now.duration_since(last_heard) >= config.idle_timeout {
                        tracing::info!(idle = ?config.idle_timeout, "peer silent; closing");
                        self.outbox.close(CloseReason::new(
                            CloseCode::Away,
                            format!("no traffic for {:?} (idle timeout)", config.idle_timeout),
                        ));
                        return;
                    }
                    if config.keepalive_interval.is_some_and(|i| now.duration_since(last_ping) >= i) {
                        last_ping = now;
                        self.outbox.ping();
                    }
                    continue;
                }
                frame = inbound.next() => frame,
                // Nothing more to read right now: write what the frames just read produced,
                // in one go.
                () = self.outbox.item_ready() => {
                    if !self.write_out(writer, closed.as_mut(), last_heard).await {
                        return;
                    }
                    continue;
                }
            };
            last_heard = Instant::now();
            let bytes = match frame {
                None | Some(Err(FrameError::Closed)) => {
                    // The peer went away: stop the writer too.
                    self.outbox.close(CloseReason::new(CloseCode::Normal, "peer closed the connection"));
                    return;
                }
                Some(Ok(Inbound::Message(b))) => b,
                Some(Ok(Inbound::Heartbeat)) => continue,
                Some(Err(FrameError::TooLarge { size, limit })) => {
                    tracing::warn!(size, limit, "message too large");
                    self.outbox.close(CloseReason::new(
                        CloseCode::TooBig,
                        format!("message exceeds max_message_size ({limit} bytes)"),
                    ));
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "read failed");
                    self.outbox.close(CloseReason::new(CloseCode::Protocol, "transport error"));
                    return;
                }
            };
            tracing::trace!(len = bytes.len(), "frame in");
            if bytes.is_empty() {
                continue; // .NET skips empty messages
            }
            self.shared.stats.messages_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(crate::metrics::MESSAGES_IN).increment(1);
            let limit = self.shared.config.max_handshake_message_size;
            if self.state != State::Authorized && bytes.len() > limit {
                tracing::warn!(len = bytes.len(), limit, "oversized message before authorization");
                self.outbox.close(CloseReason::new(
                    CloseCode::TooBig,
                    format!("message before authorization exceeds {limit} bytes"),
                ));
                return;
            }
            let message = match WitMessage::decode(bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "invalid envelope; closing");
                    self.outbox.close(CloseReason::new(CloseCode::Unsupported, "invalid WitRPC message"));
                    return;
                }
            };
            let next = match message.kind {
                MessageType::Initialization => self.on_initialization(message),
                MessageType::Authorization => self.on_authorization(message, deadline).await,
                MessageType::Request => self.on_request(message).await,
                other => {
                    // Client-sent callbacks and unknown types are ignored, but a sealed
                    // payload still consumes the inbound counter, as in .NET.
                    tracing::debug!(kind = ?other, "ignoring message");
                    match (message.data, self.opener.as_mut()) {
                        (Some(data), Some(opener)) => match opener.open(data) {
                            Ok(_) => Next::Continue,
                            Err(e) => self.reject_frame(&e),
                        },
                        _ => Next::Continue,
                    }
                }
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Writes the queued messages. `false` when the connection must stop: the write
    /// failed or closed it, the connection is closing, or the peer neither read nor wrote
    /// for its idle timeout (a peer that stops reading cannot hold the connection).
    async fn write_out(
        &self,
        writer: &mut Writer,
        closed: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
        last_heard: Instant,
    ) -> bool {
        let idle_timeout = self.shared.config.idle_timeout;
        tokio::select! {
            biased;
            () = closed => false,
            () = tokio::time::sleep_until(last_heard + idle_timeout) => {
                tracing::info!(idle = ?idle_timeout, "peer neither reads nor writes; closing");
                self.outbox.close(CloseReason::new(
                    CloseCode::Away,
                    format!("no traffic for {idle_timeout:?} (idle timeout)"),
                ));
                false
            }
            more = writer.write_queued(&self.outbox) => more,
        }
    }

    /// Graceful shutdown of this connection: read nothing more, let running calls
    /// finish and send their responses, then close with 1001. The server's hard
    /// deadline (cancelling the closer) cuts this short.
    async fn drain(&self) {
        let all = u32::try_from(self.shared.config.max_in_flight_requests).unwrap_or(u32::MAX);
        tokio::select! {
            biased;
            () = self.outbox.closer().cancelled() => return,
            _permits = self.in_flight.acquire_many(all) => {}
        }
        tracing::debug!("drained");
        self.outbox.close_after_pending(CloseReason::new(CloseCode::Away, "server is shutting down"));
    }

    fn reply(&self, to: &WitMessage, payload: Option<Vec<u8>>, seal: bool) {
        let item = Outgoing::Message { id: to.id, kind: to.kind, payload: payload.map(Bytes::from), seal, event: None };
        // A closed queue means the connection is going away; nothing left to answer.
        let _closed = self.outbox.send(item);
    }

    fn stop_with(&self, code: CloseCode, reason: impl Into<String>) -> Next {
        self.outbox.close_after_pending(CloseReason::new(code, reason));
        Next::Stop
    }

    fn reject_frame(&self, error: &witrpc_crypto::CryptoError) -> Next {
        tracing::warn!(%error, "inbound frame rejected; closing");
        self.outbox.close(CloseReason::new(CloseCode::Policy, "encrypted frame rejected"));
        Next::Stop
    }

    fn on_initialization(&mut self, message: WitMessage) -> Next {
        if self.state != State::AwaitingInitialization {
            tracing::warn!("out-of-order initialization");
            return self.stop_with(CloseCode::Protocol, "out-of-order initialization");
        }
        let Some(data) = message.data.clone() else {
            self.reply(&message, None, false);
            return Next::Continue;
        };
        let request = match WitRequestInitialization::decode(data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable initialization (a protocol 2.x client?)");
                let refusal = WitResponseInitialization::refusal(text::CANNOT_READ_INIT).encode();
                self.reply(&message, Some(refusal), false);
                return self.stop_with(CloseCode::Protocol, text::CANNOT_READ_INIT);
            }
        };
        let encryptor = &self.shared.encryptor;
        if request.protocol_version != PROTOCOL_VERSION {
            let text = format!("Protocol mismatch: client {}, server {PROTOCOL_VERSION}", request.protocol_version);
            tracing::warn!(client_version = request.protocol_version, "protocol mismatch");
            let refusal =
                encryptor.refusal(request.public_key.as_deref(), WitResponseInitialization::refusal(&text).encode());
            self.outbox_reply_bytes(&message, refusal);
            return self.stop_with(CloseCode::Protocol, text);
        }
        let Some(key) = request.public_key.as_deref() else {
            self.reply(&message, None, false);
            return Next::Continue;
        };
        match encryptor.accept(Some(key)) {
            Ok(accepted) => {
                self.outbox_reply_bytes(&message, accepted.reply);
                let _closed = self.outbox.send(Outgoing::SetSealer(accepted.sealer));
                self.opener = Some(accepted.opener);
                self.state = State::AwaitingAuthorization;
                tracing::debug!(encrypted = encryptor.is_encrypting(), "initialized");
                Next::Continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "initialization refused");
                let text = e.to_string();
                let refusal = encryptor.refusal(Some(key), WitResponseInitialization::refusal(&text).encode());
                self.outbox_reply_bytes(&message, refusal);
                self.stop_with(CloseCode::Policy, "initialization refused")
            }
        }
    }

    fn outbox_reply_bytes(&self, to: &WitMessage, data: Bytes) {
        let item = Outgoing::Message { id: to.id, kind: to.kind, payload: Some(data), seal: false, event: None };
        let _closed = self.outbox.send(item);
    }

    async fn on_authorization(&mut self, message: WitMessage, deadline: Instant) -> Next {
        if self.state != State::AwaitingAuthorization {
            tracing::warn!("out-of-order authorization");
            return self.stop_with(CloseCode::Protocol, "out-of-order authorization");
        }
        let Some(opener) = self.opener.as_mut() else {
            return self.stop_with(CloseCode::Protocol, "out-of-order authorization");
        };
        let Some(data) = message.data.clone() else {
            self.reply(&message, None, false);
            return self.stop_with(CloseCode::Protocol, "empty authorization");
        };
        let plain = match opener.open(data) {
            Ok(p) => p,
            Err(e) => return self.reject_frame(&e),
        };
        let token = match WitRequestAuthorization::decode(plain) {
            Ok(WitRequestAuthorization { token: Some(t) }) => t,
            _ => {
                tracing::warn!("unreadable authorization");
                self.reply(&message, None, false);
                return self.stop_with(CloseCode::Protocol, "unreadable authorization");
            }
        };
        let validator = self.shared.validator.clone();
        let decision = tokio::select! {
            d = validator.authorize(&token, &self.context) => d,
            () = tokio::time::sleep_until(deadline) => Authorization::Deny,
        };
        let authorized = matches!(decision, Authorization::Allow(_));
        self.reply(&message, Some(WitResponseAuthorization::new(authorized).encode()), true);
        if !authorized {
            tracing::warn!("authorization refused");
            self.shared.stats.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(crate::metrics::AUTH_FAILURES).increment(1);
            return self.stop_with(CloseCode::Policy, "unauthorized: the access token was rejected");
        }
        if let Authorization::Allow(identity) = decision {
            tracing::debug!(identity = ?identity.as_ref().map(Identity::name), "authorized");
            self.context.identity = identity;
        }
        self.state = State::Authorized;
        if let Some(lift_limits) = self.on_authorized.take() {
            lift_limits()
        }
        self.authorized_token = token;
        self.shared.hub.insert(self.id, self.outbox.clone());
        Next::Continue
    }

    async fn on_request(&mut self, message: WitMessage) -> Next {
        let id = message.id;
        let respond = move |response: WitResponse| response_item(id, response);
        let plain = match (message.data.clone(), self.opener.as_mut()) {
            (Some(data), Some(opener)) => match opener.open(data) {
                Ok(p) => Some(p),
                Err(e) => return self.reject_frame(&e),
            },
            (data, None) => data,
            (None, Some(_)) => None,
        };
        if self.state != State::Authorized {
            tracing::warn!("request before authorization");
            let response = WitResponse::error(CommunicationStatus::Unauthorized, text::NOT_AUTHORIZED, None);
            let _closed = self.outbox.send(respond(response));
            return Next::Continue;
        }
        let request = match plain.map(WitRequest::decode_for_dispatch) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "unreadable request");
                let response =
                    WitResponse::error(CommunicationStatus::BadRequest, text::REQUEST_EMPTY, Some(e.to_string()));
                let _closed = self.outbox.send(respond(response));
                return Next::Continue;
            }
            None => {
                let response = WitResponse::error(CommunicationStatus::BadRequest, text::REQUEST_EMPTY, None);
                let _closed = self.outbox.send(respond(response));
                return Next::Continue;
            }
        };
        if !self.shared.validator.is_request_token_valid(&self.authorized_token, &request.token) {
            tracing::debug!(method = %request.method_name, "request token rejected");
            let response = WitResponse::error(CommunicationStatus::Unauthorized, text::TOKEN_INVALID, None);
            let _closed = self.outbox.send(respond(response));
            return Next::Continue;
        }
        let Some(target) = self.shared.registry.resolve(&request) else {
            tracing::debug!(method = %request.method_name, "method not found");
            let response = WitResponse::error(
                CommunicationStatus::BadRequest,
                format!("{}{}", text::METHOD_NOT_FOUND, request.method_name),
                None,
            );
            let _closed = self.outbox.send(respond(response));
            return Next::Continue;
        };
        // Back-pressure: wait for a free slot before reading the next message.
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                biased;
                () = self.outbox.closer().cancelled() => return Next::Stop,
                p = self.in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Next::Stop,
                },
            },
        };
        let service = self.shared.registry.service(target).clone();
        let method_name = service.descriptor().methods.get(target.method).map_or("?", |m| m.name);
        let call = MethodCall {
            parameters: request.parameters,
            serializer: self.shared.serializer.clone(),
            context: self.context.clone(),
        };
        let span = tracing::debug_span!("request", %id, method = method_name);
        let started = std::time::Instant::now();
        let mut future =
            Box::pin(AssertUnwindSafe(self.context.clone().scope(service.call(target.method, call))).catch_unwind());
        // Fast path: most methods finish without waiting (no I/O, no timers). Poll once
        // here and answer at once; only a method that is still pending gets its own task.
        // (The task polls it again with its own waker, so nothing is lost.)
        if let Some(result) = span.in_scope(|| (&mut future).now_or_never()) {
            let response = span.in_scope(|| finish(result, method_name, started));
            let _closed = self.outbox.send(response_item(id, response));
            drop(permit);
            return Next::Continue;
        }
        let outbox = self.outbox.clone();
        self.calls.spawn(
            async move {
                let response = finish(future.await, method_name, started);
                let _closed = outbox.send(response_item(id, response));
                drop(permit);
            }
            .instrument(span),
        );
        Next::Continue
    }
}

/// The response to a method's outcome (or panic), logged and counted.
fn finish(
    result: std::thread::Result<Result<Option<Vec<u8>>, MethodError>>,
    method_name: &'static str,
    started: std::time::Instant,
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
    crate::metrics::request(method_name, response.status.to_i32(), elapsed);
    response
}

fn response_item(id: Uuid, response: WitResponse) -> Outgoing {
    Outgoing::Message {
        id,
        kind: MessageType::Request,
        payload: Some(Bytes::from(response.encode())),
        seal: true,
        event: None,
    }
}

/// Maps a method's outcome to its response: the one place that decides statuses.
fn response_for(result: Result<Option<Vec<u8>>, MethodError>) -> WitResponse {
    match result {
        Ok(data) => WitResponse::ok(data.filter(|d| !d.is_empty()).map(Bytes::from)),
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
}
