//! An in-memory transport and a scripted server for the client's unit tests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::{sink, stream};
use tokio::sync::mpsc;
use uuid::Uuid;
use witrpc_core::{
    BoxFuture, EventDescriptor, MessageType, MethodDescriptor, OutgoingCall, ParameterType, ServiceDescriptor,
    WitMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
    WitResponseInitialization,
};

use crate::transport::{ClientTransport, FrameSink, FrameStream, Inbound, Outbound, TransportError};
use crate::{WitClient, WitClientBuilder};

/// How long any single await in these tests may take before the test fails.
const WITHIN: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test (instead of hanging it) after [`WITHIN`].
pub(super) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WITHIN, future).await {
        Ok(output) => output,
        Err(_) => panic!("`{what}` did not finish within {WITHIN:?}"),
    }
}

/// A transport that hands out one prepared connection (or error).
pub(super) struct FakeTransport {
    connection: Mutex<Option<Result<(FrameSink, FrameStream), TransportError>>>,
}

impl fmt::Debug for FakeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FakeTransport")
    }
}

impl FakeTransport {
    /// A transport whose `connect` fails with `error`.
    pub(super) fn failing(error: TransportError) -> Self {
        Self { connection: Mutex::new(Some(Err(error))) }
    }
}

impl ClientTransport for FakeTransport {
    fn connect(&self, _max_message_size: usize) -> BoxFuture<'_, Result<(FrameSink, FrameStream), TransportError>> {
        let taken = self.connection.lock().unwrap().take();
        Box::pin(async move { taken.unwrap_or(Err(TransportError::Closed { code: None, reason: "used".to_owned() })) })
    }
}

/// The server end of a [`FakeTransport`], driven step by step by a test.
pub(super) struct Server {
    from_client: mpsc::Receiver<Outbound>,
    to_client: Option<mpsc::Sender<Result<Inbound, TransportError>>>,
}

/// A connected pair; the client's outbound channel holds `capacity` frames.
pub(super) fn pair_with_capacity(capacity: usize) -> (FakeTransport, Server) {
    let (client_tx, from_client) = mpsc::channel::<Outbound>(capacity);
    let (to_client, client_rx) = mpsc::channel::<Result<Inbound, TransportError>>(64);
    let sink: FrameSink = Box::pin(sink::unfold(client_tx, |tx, item: Outbound| async move {
        tx.send(item).await.map_err(|_| TransportError::Closed { code: None, reason: String::new() })?;
        Ok::<_, TransportError>(tx)
    }));
    let stream: FrameStream = Box::pin(stream::unfold(client_rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    }));
    let transport = FakeTransport { connection: Mutex::new(Some(Ok((sink, stream)))) };
    (transport, Server { from_client, to_client: Some(to_client) })
}

pub(super) fn pair() -> (FakeTransport, Server) {
    pair_with_capacity(64)
}

/// A pair whose client sink closes as a WebSocket client's does: only once the
/// client has read the end of the server's stream (RFC 6455 §7.1.1, tungstenite).
pub(super) fn pair_closing_after_eof() -> (FakeTransport, Server) {
    let (client_tx, from_client) = mpsc::channel::<Outbound>(64);
    let (to_client, mut client_rx) = mpsc::channel::<Result<Inbound, TransportError>>(64);
    let eof = Arc::new((AtomicBool::new(false), AtomicWaker::new()));
    let seen = eof.clone();
    let stream: FrameStream = Box::pin(stream::poll_fn(move |cx| {
        let item = ready!(client_rx.poll_recv(cx));
        if item.is_none() {
            seen.0.store(true, Ordering::Release);
            seen.1.wake();
        }
        Poll::Ready(item)
    }));
    let sink: FrameSink = Box::pin(ClosingAfterEof { tx: Some(client_tx), eof });
    let transport = FakeTransport { connection: Mutex::new(Some(Ok((sink, stream)))) };
    (transport, Server { from_client, to_client: Some(to_client) })
}

/// The sink of [`pair_closing_after_eof`].
struct ClosingAfterEof {
    tx: Option<mpsc::Sender<Outbound>>,
    eof: Arc<(AtomicBool, AtomicWaker)>,
}

impl futures_util::Sink<Outbound> for ClosingAfterEof {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outbound) -> Result<(), TransportError> {
        let closed = || TransportError::Closed { code: None, reason: String::new() };
        self.tx.as_ref().ok_or_else(closed)?.try_send(item).map_err(|_| closed())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.eof.1.register(cx.waker());
        if !self.eof.0.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}

/// Connects `builder` (plus a fresh fake transport) to a server that accepts the handshake.
pub(super) async fn connected(builder: WitClientBuilder) -> (WitClient, Server) {
    connected_with(builder, pair()).await
}

pub(super) async fn connected_with(
    builder: WitClientBuilder,
    (transport, mut server): (FakeTransport, Server),
) -> (WitClient, Server) {
    let connect = builder.with_transport(transport).connect(WITHIN);
    let (client, _token) = within("handshake", async { tokio::join!(connect, server.accept_handshake(true)) }).await;
    (client.expect("the scripted server accepts the handshake"), server)
}

impl Server {
    /// The next envelope from the client (keepalive pings skipped); `None` once the
    /// client closed its side.
    pub(super) async fn next(&mut self) -> Option<WitMessage> {
        loop {
            match within("a message from the client", self.from_client.recv()).await? {
                Outbound::Message(bytes) => return Some(WitMessage::decode(bytes).unwrap()),
                Outbound::Ping => continue,
            }
        }
    }

    /// The next envelope, which must be of `kind`.
    pub(super) async fn expect(&mut self, kind: MessageType) -> WitMessage {
        let message = self.next().await.unwrap_or_else(|| panic!("the client closed instead of sending {kind:?}"));
        assert_eq!(message.kind, kind, "{message:?}");
        message
    }

    /// Sends raw traffic to the client.
    pub(super) async fn send_inbound(&self, item: Result<Inbound, TransportError>) {
        let to_client = self.to_client.as_ref().expect("the connection was dropped");
        within("send to the client", to_client.send(item)).await.expect("the client stopped reading");
    }

    pub(super) async fn send(&self, message: WitMessage) {
        self.send_inbound(Ok(Inbound::Message(message.encode().into()))).await;
    }

    /// Answers `to` with `data`, keeping its id and type as .NET does.
    pub(super) async fn reply(&self, to: &WitMessage, data: Vec<u8>) {
        self.send(to.reply(Some(data.into()))).await;
    }

    /// Plays the server's half of a plain handshake; returns the token the client sent.
    pub(super) async fn accept_handshake(&mut self, authorized: bool) -> String {
        let init = self.expect(MessageType::Initialization).await;
        WitRequestInitialization::decode(init.data.clone().unwrap()).unwrap();
        self.reply(&init, WitResponseInitialization::plain().encode()).await;
        let auth = self.expect(MessageType::Authorization).await;
        let token = WitRequestAuthorization::decode(auth.data.clone().unwrap()).unwrap().token.unwrap_or_default();
        self.reply(&auth, WitResponseAuthorization::new(authorized).encode()).await;
        token
    }

    /// The next request: its envelope and payload.
    pub(super) async fn request(&mut self) -> (WitMessage, WitRequest) {
        let message = self.expect(MessageType::Request).await;
        let request = WitRequest::decode(message.data.clone().unwrap()).unwrap();
        (message, request)
    }

    pub(super) async fn respond(&self, to: &WitMessage, response: WitResponse) {
        self.reply(to, response.encode()).await;
    }

    /// Raises event `name` of contract `contract_id` with one argument.
    pub(super) async fn event(&self, name: &str, contract_id: i64, argument: &'static [u8]) {
        let event = WitRequest {
            method_name: name.to_owned(),
            parameters: vec![Bytes::from_static(argument)],
            contract_id,
            ..WitRequest::default()
        };
        self.send(WitMessage::new(Uuid::new_v4(), MessageType::Callback, Some(event.encode().into()))).await;
    }

    /// Drops the server's end: the client reads the end of its stream.
    pub(super) fn drop_connection(&mut self) {
        self.to_client = None;
    }
}

fn two_longs() -> Vec<String> {
    vec!["System.Int64".to_owned(); 2]
}

fn long_type() -> ParameterType {
    ParameterType { type_name: Some("System.Int64".to_owned()), assembly: Some("System.Private.CoreLib".to_owned()) }
}

fn two_longs_by_name() -> Vec<ParameterType> {
    vec![long_type(); 2]
}

fn one_long_by_name() -> Vec<ParameterType> {
    vec![long_type()]
}

/// `Tests.IDemo`: `Add(long, long)` and an event `Progress(long)`.
pub(super) static DEMO: ServiceDescriptor = ServiceDescriptor {
    contract: "Tests.IDemo",
    methods: &[MethodDescriptor {
        name: "Add",
        parameter_names: &["a", "b"],
        parameter_types: two_longs,
        parameter_types_by_name: two_longs_by_name,
    }],
    events: &[EventDescriptor { name: "Progress", parameter_types_by_name: one_long_by_name }],
    resolved: OnceLock::new(),
};

/// `Tests.IOther`: another contract with an event of the same name.
pub(super) static OTHER: ServiceDescriptor = ServiceDescriptor {
    contract: "Tests.IOther",
    methods: &[],
    events: &[EventDescriptor { name: "Progress", parameter_types_by_name: one_long_by_name }],
    resolved: OnceLock::new(),
};

/// `Add(a, b)` with JSON-encoded arguments.
pub(super) fn add(a: &'static str, b: &'static str) -> OutgoingCall {
    OutgoingCall {
        contract: &DEMO,
        method: 0,
        parameters: vec![Bytes::from_static(a.as_bytes()), Bytes::from_static(b.as_bytes())],
    }
}
