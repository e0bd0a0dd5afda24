//! The WebSocket <-> [`Connection`] adapter: a small async driver over tungstenite's
//! sans-I/O [`WebSocketContext`].
//!
//! Why not `tokio_tungstenite::WebSocketStream`: its limits are fixed when it is
//! created, so an unauthenticated peer could make the server buffer a whole
//! `max_message_size` message (16 MiB) before the 64 KiB pre-authorization check ran,
//! and its write buffer had no cap, so a peer that sent Pings and never read grew the
//! server by a Pong per Ping. Here:
//! - frames and messages are capped at `max_handshake_message_size` *while reading*
//!   until the server calls [`Connection::on_authorized`], then at `max_message_size`
//!   (tungstenite reserves at most one frame's declared length, checked first);
//! - encoded outbound frames wait in one buffer (`out`; messages of 2 KiB or more wait
//!   where they are, in an ordered queue before it, and are written with it in one
//!   vectored write) whose size is known: the server may queue a message only while
//!   less than one batch (16 KiB) waits, and the peer is **not read** while the write
//!   cap or more waits (64 KiB before authorization, `max_message_size` + 16 KiB after),
//!   so Pongs cannot pile up;
//! - invalid UTF-8 in a text message closes with 1007, other protocol violations with
//!   1002, sent by the driver itself (the server's later close is then a no-op).
//!
//! Both halves share one driver behind a mutex that is never held across an await;
//! the server polls them from one task.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use witrpc_server::transport::{CloseCode, Connection, FrameError, Inbound, Outbound};

use crate::stats::Counters;

/// tungstenite's initial read buffer per connection; grows only while a large frame is
/// read. At 2 KiB an idle authorized connection costs the server about 7.8 KB (4 KiB:
/// 9.8 KB, measured with 5000 connections) with no measurable loss of call throughput.
const READ_BUFFER_SIZE: usize = 2 * 1024;
/// Outbound frames collect up to this many bytes before a write; the server's writer
/// flushes whenever its queue is empty, so a burst of responses or events leaves in one
/// `send` instead of one per frame (a frame-per-write spent ~45% of the server's CPU in
/// `sendto` at 64×16).
pub(crate) const WRITE_BATCH: usize = 16 * 1024;
/// A message at least this large is not copied into the write buffer: its frame header
/// goes there, and the message itself waits in `held` to be written from where it is
/// (a replay batch framed once for thousands of connections is never copied per
/// connection). 2 KiB, below the ~4 KB of a full replay batch (`batch::MAX_BATCH_BYTES`):
/// at 4 KiB, 10,000 resumes' batches were copied and written in more calls, node A's CPU
/// over the resume benchmark's window rose by a quarter.
const WRITE_IN_PLACE: usize = 2 * 1024;
/// Buffers one vectored write takes at most.
const MAX_WRITE_SLICES: usize = 16;
/// An empty write buffer larger than this is released rather than kept for the next
/// frame, so one large response does not stay allocated for the life of the connection.
const RETAINED_WRITE_CAPACITY: usize = 64 * 1024;
/// WebSocket close reasons are limited to 123 bytes.
const MAX_CLOSE_REASON: usize = 123;
/// After the server is done with a peer that is still sending, the socket is kept a
/// little (FIN sent, input read and dropped) so the close frame is read before the
/// reset that closing with unread input causes: at most this long...
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);
/// ...and at most this many bytes read.
const LINGER_BYTES: usize = 1024 * 1024;

/// Read and write limits of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverLimits {
    /// Largest frame and message before authorization.
    pub(crate) message_before_auth: usize,
    /// Largest frame and message after authorization.
    pub(crate) message: usize,
    /// Pending write bytes at which reading stops, before authorization.
    pub(crate) write_before_auth: usize,
}

/// Wraps an upgraded socket as a [`Connection`]. `slot` is held for the connection's
/// life; `unauthorized` until it authorizes (or ends).
pub(crate) fn connection<S>(
    io: S,
    peer: Option<SocketAddr>,
    limits: DriverLimits,
    counters: Arc<Counters>,
    lingering: Arc<Semaphore>,
    slot: Box<dyn Send + Sync>,
    unauthorized: Box<dyn Send + Sync>,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let before_auth = limits.message_before_auth.min(limits.message);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        // Frames go straight into `out`, which does the batching and the accounting.
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(before_auth))
        .max_frame_size(Some(before_auth));
    let authorized = Arc::new(AtomicBool::new(false));
    let driver = Driver {
        io: Some(io),
        ctx: WebSocketContext::new(Role::Server, Some(config)),
        out: BytesMut::new(),
        held: std::collections::VecDeque::new(),
        held_len: 0,
        accounted: 0,
        authorized: authorized.clone(),
        lifted: false,
        limits,
        read_before_auth: 0,
        read_done: false,
        paused: false,
        urgent: false,
        peer_closed: false,
        lingering,
        counters,
    };
    let shared = Arc::new(Mutex::new(driver));
    Connection {
        peer,
        transport: "websocket",
        inbound: Box::pin(WsStream(shared.clone())),
        outbound: Box::pin(WsSink(shared)),
        slot: Some(slot),
        headers: Vec::new(),
        request: None,
        on_authorized: Some(Box::new(move || {
            authorized.store(true, Ordering::Release);
            drop(unauthorized);
        })),
    }
}

/// What the driver runs on (the upgraded socket; an in-memory pipe in tests).
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Socket for S {}

struct Driver<S: Socket> {
    /// The socket; taken only when the driver is dropped.
    io: Option<S>,
    ctx: WebSocketContext,
    /// Encoded frames not yet written to the socket, after those in `held`.
    out: BytesMut,
    /// Written before `out`, in order: closed-off parts of `out` and large messages
    /// written in place (see [`WRITE_IN_PLACE`]).
    held: std::collections::VecDeque<Bytes>,
    /// Bytes in `held`.
    held_len: usize,
    /// The part of what waits (`held` and `out`) counted in `counters.write_buffered`.
    accounted: usize,
    authorized: Arc<AtomicBool>,
    /// The post-authorization limits are in effect.
    lifted: bool,
    limits: DriverLimits,
    /// Bytes read from the socket before authorization.
    read_before_auth: u64,
    /// Reading ended (error or close); the stream yields `None` from now on.
    read_done: bool,
    /// Reading is paused on the write cap (counted once per pause).
    paused: bool,
    /// `out` holds a Pong or close reply that must leave without waiting for the
    /// server's next flush (which batches its own frames).
    urgent: bool,
    /// The peer closed or reset its side: nothing more will come from it.
    peer_closed: bool,
    /// Places for sockets lingering after their connection ended.
    lingering: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl<S: Socket> Drop for Driver<S> {
    fn drop(&mut self) {
        self.counters.write_buffered.fetch_sub(self.accounted, Ordering::Relaxed);
        if self.peer_closed {
            return;
        }
        // Bounded in number, time and bytes; without a place (or a runtime) the socket
        // is just closed.
        let (Some(io), Ok(place), Ok(runtime)) =
            (self.io.take(), self.lingering.clone().try_acquire_owned(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let mut unwritten = std::mem::take(&mut self.held);
        unwritten.push_back(std::mem::take(&mut self.out).freeze());
        runtime.spawn(async move {
            let _done_or_timed_out = tokio::time::timeout(LINGER_TIME, linger(io, unwritten)).await;
            drop(place);
        });
    }
}

/// Writes what is left (the close frame), sends FIN, then reads and drops input until
/// the peer closes or [`LINGER_BYTES`] have come.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, unwritten: std::collections::VecDeque<Bytes>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for mut part in unwritten {
        if io.write_all_buf(&mut part).await.is_err() {
            return;
        }
    }
    if io.shutdown().await.is_err() {
        return;
    }
    let mut scratch = [0u8; 4096];
    let mut budget = LINGER_BYTES;
    while budget > 0 {
        match io.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// The socket, or `NotConnected` once the driver has given it up (never while in use).
fn socket<S>(io: &mut Option<S>) -> io::Result<Pin<&mut S>>
where
    S: Unpin,
{
    io.as_mut().map(Pin::new).ok_or_else(|| io::ErrorKind::NotConnected.into())
}

impl<S: Socket> Driver<S> {
    /// Applies the post-authorization limits once the server has signalled it.
    fn lift_if_authorized(&mut self) {
        if !self.lifted && self.authorized.load(Ordering::Acquire) {
            let message = self.limits.message;
            self.ctx.set_config(|c| {
                c.max_message_size = Some(message);
                c.max_frame_size = Some(message);
            });
            self.lifted = true;
            tracing::trace!(limit = message, "read limits lifted after authorization");
        }
    }

    fn write_cap(&self) -> usize {
        if self.lifted { self.limits.message.saturating_add(WRITE_BATCH) } else { self.limits.write_before_auth }
    }

    /// Bytes waiting to be written.
    fn pending(&self) -> usize {
        self.held_len + self.out.len()
    }

    /// Brings the shared counters up to date with what waits to be written.
    fn account(&mut self) {
        let len = self.pending();
        if len > self.accounted {
            self.counters.write_buffered.fetch_add(len - self.accounted, Ordering::Relaxed);
        } else {
            self.counters.write_buffered.fetch_sub(self.accounted - len, Ordering::Relaxed);
        }
        self.accounted = len;
        self.counters.peak_write_buffer.fetch_max(len, Ordering::Relaxed);
        if !self.lifted {
            self.counters.peak_write_buffer_unauthorized.fetch_max(len, Ordering::Relaxed);
        }
    }

    /// Writes `held`, then `out`, to the socket (vectored). `Pending` registers for
    /// writability.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending() > 0 {
            let written = {
                let mut slices = [io::IoSlice::new(&[]); MAX_WRITE_SLICES];
                let mut used = 0;
                for part in self.held.iter().take(MAX_WRITE_SLICES - 1) {
                    slices[used] = io::IoSlice::new(part);
                    used += 1;
                }
                if self.held.len() < MAX_WRITE_SLICES {
                    slices[used] = io::IoSlice::new(&self.out);
                    used += 1;
                }
                socket(&mut self.io)?.poll_write_vectored(cx, &slices[..used])
            };
            match written {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.advance_written(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.account();
                    return Poll::Pending;
                }
            }
        }
        self.urgent = false;
        if self.out.capacity() > RETAINED_WRITE_CAPACITY {
            self.out = BytesMut::new();
        }
        self.account();
        Poll::Ready(Ok(()))
    }

    /// Drops the first `n` written bytes: from `held`, then from `out`.
    fn advance_written(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.held.front_mut() else { break };
            let step = n.min(front.len());
            front.advance(step);
            self.held_len -= step;
            n -= step;
            if front.is_empty() {
                self.held.pop_front();
            }
        }
        self.out.advance(n);
    }

    fn poll_next_inbound(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Inbound, FrameError>>> {
        if self.read_done {
            return Poll::Ready(None);
        }
        self.lift_if_authorized();
        loop {
            // Pongs and close replies leave even while the server has nothing to write;
            // the server's own frames wait for its flush, so they leave in batches.
            // (Always at the write cap, so a paused read is woken by the socket.)
            let cap = self.write_cap();
            if self.urgent || self.pending() >= WRITE_BATCH.min(cap) {
                if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                    self.read_done = true;
                    return Poll::Ready(Some(Err(FrameError::Io(Box::new(e)))));
                }
            }
            if self.pending() >= cap {
                // The peer does not read what it is sent: stop reading it until the
                // socket takes more (poll_write_out registered for that).
                if !self.paused {
                    self.paused = true;
                    self.counters.read_pauses.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(pending = self.pending(), "peer is not reading; pausing reads");
                }
                return Poll::Pending;
            }
            self.paused = false;
            let before = self.out.len();
            let result = {
                let Self { io, ctx, out, read_before_auth, .. } = self;
                ctx.read(&mut ReadIo { io, cx, out, read: read_before_auth })
            };
            self.urgent |= self.out.len() > before;
            if !self.lifted {
                self.counters.peak_read_unauthorized.fetch_max(self.read_before_auth, Ordering::Relaxed);
            }
            self.account();
            let item = match result {
                Ok(Message::Binary(b)) => Inbound::Message(b),
                Ok(Message::Text(t)) => Inbound::Message(Bytes::from(t)),
                Ok(Message::Ping(_) | Message::Pong(_)) => Inbound::Heartbeat,
                // The close reply is queued; the next read writes it and reports the end.
                Ok(Message::Close(_) | Message::Frame(_)) => continue,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // tungstenite moves a pending Pong or close reply into `out` at the
                    // start of a read: send it now, nothing else may poll us soon.
                    if self.urgent {
                        if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                            self.read_done = true;
                            return Poll::Ready(Some(Err(FrameError::Io(Box::new(e)))));
                        }
                    }
                    return Poll::Pending;
                }
                Err(e) => {
                    self.read_done = true;
                    return Poll::Ready(Some(Err(self.read_error(e, cx))));
                }
            };
            return Poll::Ready(Some(Ok(item)));
        }
    }

    /// Maps a read failure; protocol violations are closed here with their own code.
    fn read_error(&mut self, error: WsError, cx: &mut Context<'_>) -> FrameError {
        match error {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                FrameError::TooLarge { size, limit: max_size }
            }
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                self.peer_closed = true;
                FrameError::Closed
            }
            WsError::Io(e) => {
                self.peer_closed = true;
                FrameError::Io(Box::new(e))
            }
            WsError::Utf8(e) => {
                tracing::debug!(error = %e, "invalid UTF-8 in a text message");
                self.close_now(cx, close_frame(CloseCode::InvalidPayload, "invalid UTF-8 in a text message"));
                FrameError::Protocol(Box::new(WsError::Utf8(e)))
            }
            WsError::Protocol(p) => {
                tracing::debug!(error = %p, "WebSocket protocol violation");
                self.close_now(cx, close_frame(CloseCode::Protocol, &format!("WebSocket protocol violation: {p}")));
                FrameError::Protocol(Box::new(p))
            }
            e => FrameError::Protocol(Box::new(e)),
        }
    }

    /// Queues a close frame and tries to write it at once (best effort).
    fn close_now(&mut self, cx: &mut Context<'_>, frame: CloseFrame) {
        if let Err(e) = self.ctx.close(&mut WriteIo { out: &mut self.out }, Some(frame)) {
            tracing::trace!(error = %e, "close not queued");
        }
        let _pending_or_failed = self.poll_write_out(cx);
    }

    fn start_send_outbound(&mut self, item: Outbound) -> Result<(), FrameError> {
        let result = match item {
            Outbound::Message(b) => {
                if !self.ctx.can_write() {
                    return Err(FrameError::Closed);
                }
                // Written here rather than by tungstenite, whose own buffer would copy
                // the message once more and keep its capacity for the connection's life.
                // A server frame is unmasked: FIN + opcode, length, payload.
                encode_binary_header(&mut self.out, b.len());
                if b.len() >= WRITE_IN_PLACE {
                    let before = self.out.split().freeze();
                    self.held_len += before.len() + b.len();
                    self.held.push_back(before);
                    self.held.push_back(b);
                } else {
                    self.out.extend_from_slice(&b);
                }
                Ok(())
            }
            Outbound::Ping => self.ctx.write(&mut WriteIo { out: &mut self.out }, Message::Ping(Bytes::new())),
            Outbound::Close(reason) => {
                let frame = close_frame(reason.code, &reason.reason);
                match self.ctx.close(&mut WriteIo { out: &mut self.out }, Some(frame)) {
                    // Already closed (by the peer or by us): what is queued still goes out.
                    Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
                    other => other,
                }
            }
        };
        self.account();
        result.map_err(|e| match e {
            WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Protocol(ProtocolError::SendAfterClosing) => {
                FrameError::Closed
            }
            e => FrameError::Io(Box::new(e)),
        })
    }
}

/// Appends the header of one final, unmasked binary frame of `len` bytes (RFC 6455
/// §5.2); the payload follows it.
fn encode_binary_header(out: &mut BytesMut, len: usize) {
    const FIN_BINARY: u8 = 0x80 | 0x2;
    out.reserve(if len < WRITE_IN_PLACE { len + 10 } else { 10 });
    out.extend_from_slice(&[FIN_BINARY]);
    match len {
        len @ 0..=125 => out.extend_from_slice(&[len as u8]),
        len @ 126..=0xffff => {
            out.extend_from_slice(&[126]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.extend_from_slice(&[127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame { code: ws_close_code(code), reason: truncate(reason, MAX_CLOSE_REASON).to_owned().into() }
}

fn ws_close_code(code: CloseCode) -> WsCloseCode {
    match code {
        CloseCode::Normal => WsCloseCode::Normal,
        CloseCode::Away => WsCloseCode::Away,
        CloseCode::Protocol => WsCloseCode::Protocol,
        CloseCode::Unsupported => WsCloseCode::Unsupported,
        CloseCode::InvalidPayload => WsCloseCode::Invalid,
        CloseCode::Policy => WsCloseCode::Policy,
        CloseCode::TooBig => WsCloseCode::Size,
        _ => WsCloseCode::Error,
    }
}

/// Cuts `s` to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// tungstenite's view while reading: reads come from the socket (`WouldBlock` when it
/// has nothing), writes (Pongs, close replies) go to `out`.
struct ReadIo<'a, 'b, S> {
    io: &'a mut Option<S>,
    cx: &'a mut Context<'b>,
    out: &'a mut BytesMut,
    read: &'a mut u64,
}

impl<S: AsyncRead + Unpin> Read for ReadIo<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read_buf = ReadBuf::new(buf);
        match socket(self.io)?.poll_read(self.cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                *self.read = self.read.saturating_add(n as u64);
                Ok(n)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S> Write for ReadIo<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's view while writing: everything goes to `out`; nothing is read.
struct WriteIo<'a> {
    out: &'a mut BytesMut,
}

impl Read for WriteIo<'_> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for WriteIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Shared<S> = Arc<Mutex<Driver<S>>>;

fn lock<S: Socket>(shared: &Shared<S>) -> MutexGuard<'_, Driver<S>> {
    // No code path panics while holding the lock; if one did, the driver's state is
    // still consistent byte buffers, so go on.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

struct WsStream<S: Socket>(Shared<S>);

impl<S: Socket> Stream for WsStream<S> {
    type Item = Result<Inbound, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.0).poll_next_inbound(cx)
    }
}

struct WsSink<S: Socket>(Shared<S>);

impl<S: Socket> Sink<Outbound> for WsSink<S> {
    type Error = FrameError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let mut driver = lock(&self.0);
        if driver.pending() >= WRITE_BATCH {
            ready!(driver.poll_write_out(cx)).map_err(|e| FrameError::Io(Box::new(e)))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outbound) -> Result<(), FrameError> {
        lock(&self.0).start_send_outbound(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let mut driver = lock(&self.0);
        ready!(driver.poll_write_out(cx)).map_err(|e| FrameError::Io(Box::new(e)))?;
        let io = socket(&mut driver.io).map_err(|e| FrameError::Io(Box::new(e)))?;
        io.poll_flush(cx).map_err(|e| FrameError::Io(Box::new(e)))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let mut driver = lock(&self.0);
        ready!(driver.poll_write_out(cx)).map_err(|e| FrameError::Io(Box::new(e)))?;
        let io = socket(&mut driver.io).map_err(|e| FrameError::Io(Box::new(e)))?;
        io.poll_shutdown(cx).map_err(|e| FrameError::Io(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::WebSocketStream;

    const LIMITS: DriverLimits =
        DriverLimits { message_before_auth: 1024, message: 64 * 1024, write_before_auth: 4096 };

    /// A driver on one end of an in-memory pipe, a tungstenite client on the other.
    async fn pair() -> (Connection, WebSocketStream<tokio::io::DuplexStream>, Arc<Counters>) {
        let (server, client) = tokio::io::duplex(256 * 1024);
        let counters = Arc::new(Counters::default());
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let lingering = Arc::new(Semaphore::new(4));
        let connection =
            connection(server, Some(peer), LIMITS, counters.clone(), lingering, Box::new(()), Box::new(()));
        (connection, WebSocketStream::from_raw_socket(client, Role::Client, None).await, counters)
    }

    #[tokio::test]
    async fn messages_over_the_handshake_limit_are_refused_until_authorized() {
        let (mut connection, mut client, counters) = pair().await;
        client.send(Message::Binary(vec![1u8; 16 * 1024].into())).await.expect("client send");
        match connection.inbound.next().await {
            Some(Err(FrameError::TooLarge { limit, .. })) => assert_eq!(limit, 1024),
            other => panic!("expected TooLarge before authorization, got {other:?}"),
        }
        // Refused on the frame header: one read's worth, not the message.
        let read = counters.peak_read_unauthorized.load(Ordering::Relaxed);
        assert!(read <= READ_BUFFER_SIZE as u64, "read {read} bytes of a refused message");

        let (mut connection, mut client, _counters) = pair().await;
        let authorize = connection.on_authorized.take().expect("the driver has a hook");
        authorize();
        client.send(Message::Binary(vec![1u8; 2048].into())).await.expect("client send");
        match connection.inbound.next().await {
            Some(Ok(Inbound::Message(b))) => assert_eq!(b.len(), 2048),
            other => panic!("expected the message after authorization, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pings_are_answered_and_counted_as_heartbeats() {
        let (mut connection, mut client, counters) = pair().await;
        client.send(Message::Ping(Bytes::from_static(b"hi"))).await.expect("ping");
        assert!(matches!(connection.inbound.next().await, Some(Ok(Inbound::Heartbeat))));
        // The Pong leaves without the server writing anything of its own.
        let poll_again = connection.inbound.next();
        let pong = client.next();
        tokio::pin!(poll_again);
        let answer = tokio::select! {
            answer = pong => answer,
            _ = &mut poll_again => panic!("nothing else was sent"),
        };
        assert!(matches!(answer, Some(Ok(Message::Pong(p))) if p == "hi"));
        assert_eq!(counters.write_buffered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn server_frames_batch_until_flushed_and_close_goes_out() {
        let (mut connection, mut client, counters) = pair().await;
        connection.outbound.feed(Outbound::Message(Bytes::from_static(b"one"))).await.expect("feed");
        connection.outbound.feed(Outbound::Message(Bytes::from_static(b"two"))).await.expect("feed");
        assert_eq!(counters.write_buffered.load(Ordering::Relaxed), 10, "two 5-byte frames wait for the flush");
        connection.outbound.flush().await.expect("flush");
        assert!(matches!(client.next().await, Some(Ok(Message::Binary(b))) if b == "one"));
        assert!(matches!(client.next().await, Some(Ok(Message::Binary(b))) if b == "two"));
        // The 16- and 64-bit length forms.
        for len in [300, 70_000] {
            let payload = Bytes::from(vec![9u8; len]);
            connection.outbound.send(Outbound::Message(payload.clone())).await.expect("send");
            assert!(matches!(client.next().await, Some(Ok(Message::Binary(b))) if b == payload));
        }
        let reason = witrpc_server::transport::CloseReason::new(CloseCode::Policy, "bye");
        connection.outbound.send(Outbound::Close(reason)).await.expect("close");
        let after = connection.outbound.send(Outbound::Message(Bytes::from_static(b"late"))).await;
        assert!(matches!(after, Err(FrameError::Closed)), "nothing is written after the close");
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "bye"));
            }
            other => panic!("expected the close, got {other:?}"),
        }
        drop(connection);
        assert_eq!(counters.write_buffered.load(Ordering::Relaxed), 0, "the gauge is released");
    }

    #[tokio::test]
    async fn large_messages_written_in_place_keep_their_order_and_their_count() {
        let (mut connection, mut client, counters) = pair().await;
        // Small and in-place messages mixed, more parts than one vectored write takes.
        let shared = Bytes::from(vec![7u8; WRITE_IN_PLACE]);
        let mut sent = Vec::new();
        for i in 0..(MAX_WRITE_SLICES + 5) {
            let message = if i % 3 == 0 { Bytes::from(format!("small-{i}")) } else { shared.clone() };
            connection.outbound.feed(Outbound::Message(message.clone())).await.expect("feed");
            sent.push(message);
        }
        let framed: usize = sent.iter().map(|m| m.len() + if m.len() > 125 { 4 } else { 2 }).sum();
        // A batch's worth is written as soon as it waits; what is left (in place or
        // not) counts as waiting.
        let waiting = counters.write_buffered.load(Ordering::Relaxed);
        assert!(
            waiting > 0 && waiting < WRITE_BATCH + WRITE_IN_PLACE + 10 && waiting < framed,
            "{waiting} of {framed}"
        );
        connection.outbound.flush().await.expect("flush");
        for message in &sent {
            assert!(matches!(client.next().await, Some(Ok(Message::Binary(b))) if b == message));
        }
        assert_eq!(counters.write_buffered.load(Ordering::Relaxed), 0, "everything was written");
    }

    #[test]
    fn close_reasons_are_cut_at_a_char_boundary() {
        assert_eq!(truncate("short", 123), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long, 123);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn invalid_payload_maps_to_1007() {
        assert_eq!(u16::from(ws_close_code(CloseCode::InvalidPayload)), 1007);
        assert_eq!(u16::from(ws_close_code(CloseCode::TooBig)), 1009);
    }
}
