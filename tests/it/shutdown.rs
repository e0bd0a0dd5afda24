//! Graceful drain: running calls finish and are answered, then connections close with
//! 1001; the port is free at once and can be bound again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use witrpc::prelude::*;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, within};

/// A method that signals it started, then waits until the test releases it.
#[witrpc::service(contract = "WitRpc.Tests.IGate")]
pub(crate) trait Gate {
    async fn pass(&self) -> i32;
}

#[derive(Default)]
struct Gatekeeper {
    started: Notify,
    release: Notify,
}

struct GateService(Arc<Gatekeeper>);

impl Gate for GateService {
    async fn pass(&self) -> i32 {
        self.0.started.notify_one();
        self.0.release.notified().await;
        7
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_running_calls_then_closes_with_1001() {
    let keeper = Arc::new(Gatekeeper::default());
    let server = Arc::new(TestServer::start(|b| b.with_service(GateServer::new(GateService(keeper.clone())))).await);
    let addr = server.server.local_addr().unwrap();
    let client = server.client(|b| b).await;
    let gate = GateClient::new(client.clone());
    let call = tokio::spawn(async move { gate.pass().await });
    within("call started", keeper.started.notified()).await;

    let stopping = tokio::spawn({
        let server = server.clone();
        async move { server.server.shutdown(Duration::from_secs(10)).await }
    });
    // The port is released while the call is still running...
    within("port freed", async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!call.is_finished());
    // ...and the running call still gets its answer.
    keeper.release.notify_one();
    assert_eq!(within("call", call).await.unwrap().unwrap(), 7);
    within("close", client.closed()).await;
    let reason = client.close_reason().unwrap_or_default();
    assert!(reason.contains("1001") && reason.contains("shutting down"), "{reason}");
    within("shutdown", stopping).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_deadline_cuts_off_calls_that_do_not_finish() {
    let keeper = Arc::new(Gatekeeper::default());
    let server = TestServer::start(|b| b.with_service(GateServer::new(GateService(keeper.clone())))).await;
    let gate = GateClient::new(server.client(|b| b).await);
    let call = tokio::spawn(async move { gate.pass().await });
    within("call started", keeper.started.notified()).await;
    // Never released: only the deadline ends it.
    within("shutdown", server.server.shutdown(Duration::from_millis(300))).await;
    match within("call", call).await.unwrap() {
        Err(ClientError::ConnectionClosed { .. }) => {}
        other => panic!("expected the cut-off call to fail with ConnectionClosed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_servers_port_can_be_bound_again() {
    let first = TestServer::start(|b| b).await;
    let port = first.server.local_addr().unwrap().port();
    within("stop", first.server.stop_waiting_for_connection()).await;
    let second = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket(format!("http://127.0.0.1:{port}/ws"), 10)
        .build()
        .unwrap();
    within("restart", second.start_waiting_for_connection()).await.unwrap();
    let url = second.client_url().unwrap();
    let client =
        within("connect", WitClientBuilder::new().with_websocket(url).connect(Duration::from_secs(5))).await.unwrap();
    assert_eq!(within("add", DemoServiceClient::new(client).add(3, 4)).await.unwrap(), 7);
    within("stop", second.stop_waiting_for_connection()).await;
}
