//! Every demo method, with JSON and with MessagePack; concurrency on one connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use witrpc::prelude::*;
use witrpc::protocol::CommunicationStatus;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, within};

#[derive(Clone, Copy, Debug)]
enum Format {
    Json,
    Msgpack,
}

fn server_format(f: Format) -> impl FnOnce(WebSocketServerBuilder) -> WebSocketServerBuilder {
    move |b| match f {
        Format::Json => b.with_json(),
        Format::Msgpack => b.with_msgpack(),
    }
}

fn client_format(f: Format) -> impl FnOnce(WebSocketClientBuilder) -> WebSocketClientBuilder {
    move |b| match f {
        Format::Json => b.with_json(),
        Format::Msgpack => b.with_msgpack(),
    }
}

async fn every_demo_method_answers(format: Format) {
    let server = TestServer::start(server_format(format)).await;
    let demo = DemoServiceClient::new(server.client(client_format(format)).await);

    assert_eq!(within("add", demo.add(2, 3)).await.unwrap(), 5);
    assert_eq!(within("add overflow", demo.add(i32::MAX, 1)).await.unwrap(), i32::MIN);
    assert_eq!(within("echo", demo.echo("héllo ✓".to_owned())).await.unwrap(), "héllo ✓");
    assert_eq!(within("echo empty", demo.echo(String::new())).await.unwrap(), "");
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(within("echo bytes", demo.echo_bytes(bytes.clone())).await.unwrap(), bytes);
    assert_eq!(within("echo no bytes", demo.echo_bytes(Vec::new())).await.unwrap(), Vec::<u8>::new());
    match within("fail", demo.fail("boom: disk full".to_owned())).await {
        Err(ClientError::Remote { status, message, details }) => {
            assert_eq!(status, CommunicationStatus::InternalServerError);
            assert_eq!(message.as_deref(), Some("Failed to process request"));
            assert_eq!(details.as_deref(), Some("boom: disk full"));
        }
        other => panic!("Fail must give a remote 500 error, got {other:?}"),
    }
    assert_eq!(within("delay", demo.delay(5)).await.unwrap(), 5);
    assert!(within("start processing", demo.start_processing(3)).await.unwrap());
    assert!(!within("start processing 0", demo.start_processing(0)).await.unwrap());
    within("broadcast", demo.broadcast("hi".to_owned())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_method_answers_with_json() {
    every_demo_method_answers(Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_method_answers_with_msgpack() {
    every_demo_method_answers(Format::Msgpack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_parameter_serializers_fail_with_a_clear_error_not_a_hang() {
    let server = TestServer::start(|b| b.with_msgpack()).await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_json()).await);
    // JSON `"hi"` is not a MessagePack string: the server answers 400 naming `text`.
    match within("echo", demo.echo("hi".to_owned())).await.unwrap_err() {
        ClientError::BadRequest { message, .. } => {
            let message = message.unwrap_or_default();
            assert!(message.contains("Invalid argument") && message.contains("`text`"), "{message}");
        }
        other => panic!("expected a 400 naming the argument, got {other:?}"),
    }
    // JSON `2` happens to be MessagePack 50: the call runs, and the client cannot read
    // the MessagePack result as JSON.
    match within("add", demo.add(2, 3)).await.unwrap_err() {
        ClientError::Parameter(e) => assert_eq!(e.what, "result"),
        other => panic!("expected a result decode error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_delays_overtake_a_long_one_on_the_same_connection() {
    let server = TestServer::start(|b| b).await;
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    let long = tokio::spawn({
        let demo = demo.clone();
        async move { demo.delay(3_000).await }
    });
    // Sequential processing would finish these only after the long call.
    let shorts = join_all((0..99).map(|i| {
        let demo = demo.clone();
        async move { demo.delay(1 + i % 5).await }
    }));
    for r in within("99 short delays", shorts).await {
        r.unwrap();
    }
    assert!(!long.is_finished(), "the 3 s call finished before 99 short ones: requests ran one at a time");
    assert_eq!(within("long delay", long).await.unwrap().unwrap(), 3_000);
}

/// A contract for observing how many calls run at once.
#[witrpc::service(contract = "WitRpc.Tests.IRendezvous")]
pub(crate) trait Rendezvous {
    /// Returns once `n` calls are inside at the same time (`false` after the wait limit).
    async fn meet(&self) -> bool;
    /// Stays inside for a moment; returns the most calls seen inside at once.
    async fn occupy(&self) -> i32;
}

/// A barrier, how long each call waits at it, and a concurrency gauge.
struct Meeting(Arc<tokio::sync::Barrier>, Duration, Arc<(AtomicI32, AtomicI32)>);

impl Meeting {
    fn new(parties: usize, wait: Duration) -> Self {
        Self(Arc::new(tokio::sync::Barrier::new(parties)), wait, Arc::default())
    }
}

impl Rendezvous for Meeting {
    async fn meet(&self) -> bool {
        tokio::time::timeout(self.1, self.0.wait()).await.is_ok()
    }

    async fn occupy(&self) -> i32 {
        let (inside, most) = &*self.2;
        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        inside.fetch_sub(1, Ordering::SeqCst);
        most.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_on_one_connection_are_in_flight_at_once() {
    let meeting = Meeting::new(100, Duration::from_secs(10));
    let server = TestServer::start(|b| b.with_service(RendezvousServer::new(meeting))).await;
    let client = RendezvousClient::new(server.client(|b| b).await);
    let calls = join_all((0..100).map(|_| {
        let client = client.clone();
        async move { client.meet().await }
    }));
    let results = within("100 concurrent calls", calls).await;
    assert!(results.into_iter().all(|r| r.unwrap()), "not all 100 calls were running at the same time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_mode_runs_one_request_at_a_time() {
    let meeting = Meeting::new(2, Duration::from_secs(1));
    let server = TestServer::start(|b| b.with_service(RendezvousServer::new(meeting)).with_sequential_requests()).await;
    let client = RendezvousClient::new(server.client(|b| b).await);
    let calls = join_all((0..5).map(|_| {
        let client = client.clone();
        async move { client.occupy().await }
    }));
    for most in within("five calls", calls).await {
        assert_eq!(most.unwrap(), 1, "two requests of one connection ran at once in sequential mode");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_hosts_several_services() {
    let meeting = Meeting::new(1, Duration::from_secs(10));
    let server = TestServer::start(|b| b.with_service(RendezvousServer::new(meeting))).await;
    let client = server.client(|b| b).await;
    assert!(within("meet", RendezvousClient::new(client.clone()).meet()).await.unwrap());
    assert_eq!(within("add", DemoServiceClient::new(client).add(40, 2)).await.unwrap(), 42);
}
