//! Issue 16, findings 1 and 2: what an unauthenticated WebSocket peer can make the server
//! hold. Each attack runs against a fresh server while a good client keeps calling; the
//! bounds are asserted from the transport's own accounting (`WebSocketStats`), never
//! from timings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use witrpc::prelude::*;
use witrpc::server::{WebSocketLimits, WebSocketStats, WebSocketTransport};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, init_tracing, within};

/// The server's default pre-authorization message limit.
const HANDSHAKE_LIMIT: u64 = 64 * 1024;
/// The transport's default write cap before authorization.
const WRITE_CAP: usize = 64 * 1024;
/// A Pong frame with the largest control payload: 2 header bytes + 125.
const MAX_PONG: usize = 127;

/// A demo server whose WebSocket transport counters the test can read.
pub(crate) async fn start(limits: WebSocketLimits) -> (TestServer, WebSocketStats) {
    init_tracing();
    let mut transport = WebSocketTransport::new("http://127.0.0.1:0/ws", 100);
    transport.set_limits(limits);
    let stats = transport.stats();
    let server = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_transport(transport)
        .build()
        .expect("valid server configuration");
    within("server start", server.start_waiting_for_connection()).await.expect("server starts");
    let url = server.client_url().expect("running server has a URL");
    (TestServer { server, url }, stats)
}

pub(crate) fn addr(server: &TestServer) -> SocketAddr {
    server.server.local_addr().expect("running server has an address")
}

/// A TCP connection upgraded to WebSocket by hand (so it can send frames no library
/// would), with `extra` header lines; returns the socket after the 101.
pub(crate) async fn raw_upgrade(stream: TcpStream, extra: &str) -> TcpStream {
    let (status, stream) = try_raw_upgrade(stream, extra).await;
    assert!(status.starts_with("HTTP/1.1 101"), "upgrade refused: {status}");
    stream
}

/// Sends an upgrade request on `stream`; returns the status line and the socket.
pub(crate) async fn try_raw_upgrade(mut stream: TcpStream, extra: &str) -> (String, TcpStream) {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    within("upgrade request", stream.write_all(request.as_bytes())).await.expect("write upgrade request");
    // Byte by byte up to the blank line, so no frame after the head is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match within("upgrade response", stream.read(&mut byte)).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head);
    (text.lines().next().unwrap_or_default().to_owned(), stream)
}

pub(crate) async fn connect_tcp(server: &TestServer) -> TcpStream {
    within("tcp connect", TcpStream::connect(addr(server))).await.expect("tcp connect")
}

/// A client frame header (masked with a zero key, so the payload goes as is).
fn frame_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header(opcode, fin, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close; returns its code and reason.
async fn read_close(stream: &mut (impl AsyncReadExt + Unpin)) -> (u16, String) {
    loop {
        let mut head = [0u8; 2];
        within("server frame", stream.read_exact(&mut head)).await.expect("server sends a close frame");
        let len = match head[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                within("frame length", stream.read_exact(&mut l)).await.expect("length");
                u64::from(u16::from_be_bytes(l))
            }
            127 => {
                let mut l = [0u8; 8];
                within("frame length", stream.read_exact(&mut l)).await.expect("length");
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        within("frame payload", stream.read_exact(&mut payload)).await.expect("payload");
        if head[0] & 0x0f == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

/// A good client that calls `add` until stopped; every call must succeed.
struct GoodClient {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl GoodClient {
    async fn start(server: &TestServer) -> Self {
        let demo = DemoServiceClient::new(server.client(|b| b).await);
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = (calls % 1000) as i32;
                    assert_eq!(demo.add(n, 1).await.expect("the good client is answered during the attack"), n + 1);
                    calls += 1;
                    tokio::task::yield_now().await;
                }
                calls
            }
        });
        Self { stop, task }
    }

    /// Stops it; asserts it was served throughout.
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let calls = within("good client", self.task).await.expect("good client saw every answer");
        assert!(calls > 0, "the good client made no calls");
    }
}

/// Sends `frames` without authorizing; the server must close with 1009 having read at
/// most `bound` bytes of them.
async fn oversized_before_authorization(bound: u64, frames: impl FnOnce() -> Vec<Vec<u8>> + Send + 'static) {
    let (server, stats) = start(WebSocketLimits::default()).await;
    let good = GoodClient::start(&server).await;
    let stream = raw_upgrade(connect_tcp(&server).await, "").await;
    let (mut read, mut write) = stream.into_split();
    // Keeps sending until the server hangs up (at most the frames given).
    let sender = tokio::spawn(async move {
        for f in frames() {
            if write.write_all(&f).await.is_err() {
                break;
            }
        }
    });
    let (code, reason) = read_close(&mut read).await;
    assert_eq!(code, 1009, "oversized message before authorization: {reason}");
    assert!(reason.contains("65536"), "the reason names the limit: {reason}");
    let read_by_server = stats.peak_read_unauthorized();
    assert!(
        read_by_server <= bound,
        "the server read {read_by_server} bytes of an unauthenticated peer (bound {bound})"
    );
    drop(read);
    within("sender ends", sender).await.expect("sender task");
    good.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_frame_before_authorization_is_refused_after_its_header() {
    // The header says 16 MiB (the server's max_message_size); then 1 MiB of payload.
    // The frame is refused on its header: little more than the header is read.
    oversized_before_authorization(8 * 1024, || {
        let mut frames = vec![frame_header(0x2, true, 16 * 1024 * 1024)];
        frames.extend((0..16).map(|_| vec![0u8; 64 * 1024]));
        frames
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_before_authorization_is_refused_at_the_limit() {
    // Fragments of 32 KiB, each under the frame limit, that never finish. The message
    // size is checked as each fragment completes, so at most the limit plus one frame
    // (itself at most the limit) is read: 2 MiB were sent.
    oversized_before_authorization(2 * HANDSHAKE_LIMIT + 4 * 1024, || {
        let chunk = vec![0u8; 32 * 1024];
        let mut frames = vec![frame(0x2, false, &chunk)];
        frames.extend((0..64).map(|_| frame(0x0, false, &chunk)));
        frames
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_connections_get_the_full_message_limit() {
    let (server, stats) = start(WebSocketLimits::default()).await;
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    let big = vec![7u8; 1024 * 1024];
    let echoed = within("1 MiB echo", demo.echo_bytes(big.clone())).await.expect("a 1 MiB call after authorization");
    assert_eq!(echoed, big);
    assert!(
        stats.peak_read_unauthorized() < HANDSHAKE_LIMIT,
        "the handshake stays small: {}",
        stats.peak_read_unauthorized()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_socket_that_never_reads_is_not_buffered() {
    let (server, stats) = start(WebSocketLimits::default()).await;
    let good = GoodClient::start(&server).await;
    // A small receive buffer, never read: the server's Pongs have nowhere to go.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = within("tcp connect", socket.connect(addr(&server))).await.expect("connect");
    let stream = raw_upgrade(stream, "").await;
    let (read, mut write) = stream.into_split();
    let ping = frame(0x9, true, &[0x55; 125]);
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 256).collect();
    let flood = tokio::spawn(async move {
        // Ends when the server stops reading (the write blocks) and the test aborts it.
        while write.write_all(&burst).await.is_ok() {}
    });
    within("the server stops reading the flooder", async {
        while stats.read_pauses() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let peak = stats.peak_write_buffer_unauthorized();
    assert!(peak <= WRITE_CAP + MAX_PONG, "an unread Pong backlog of {peak} bytes (cap {WRITE_CAP})");
    // The server is still serving: a new client connects and calls.
    let late = DemoServiceClient::new(server.client(|b| b).await);
    assert_eq!(within("late call", late.add(2, 3)).await.expect("served during the flood"), 5);
    flood.abort();
    drop(read);
    good.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_message_closes_with_1007() {
    let (server, _stats) = start(WebSocketLimits::default()).await;
    let mut stream = raw_upgrade(connect_tcp(&server).await, "").await;
    within("send text", stream.write_all(&frame(0x1, true, &[b'h', 0xff, 0xfe]))).await.expect("send");
    let (code, reason) = read_close(&mut stream).await;
    assert_eq!(code, 1007, "invalid UTF-8: {reason}");
    // The server goes on serving others.
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
}
