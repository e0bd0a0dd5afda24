//! Client auto-reconnect: calls fail clearly while the server is away, the client comes
//! back with a new handshake, and event streams continue with a `Reconnected` marker.

use std::time::Duration;

use futures_util::StreamExt;
use witrpc::EventError;
use witrpc::client::ReconnectPolicy;
use witrpc::prelude::*;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, within};

fn policy() -> ReconnectPolicy {
    ReconnectPolicy::new(Duration::from_millis(50), Duration::from_millis(200))
}

async fn server_on(port: u16) -> WitServer {
    let server = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket(format!("http://127.0.0.1:{port}/ws"), 10)
        .with_access_token("r")
        .with_encryption()
        .build()
        .unwrap();
    within("start", server.start_waiting_for_connection()).await.unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_and_event_streams_go_on() {
    let first = TestServer::start(|b| b.with_access_token("r").with_encryption()).await;
    let port = first.server.local_addr().unwrap().port();
    let client = first.client(|b| b.with_access_token("r").with_encryption().with_reconnect(policy())).await;
    let demo = DemoServiceClient::new(client.clone());
    let mut messages = demo.message();
    within("broadcast", demo.broadcast("before".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "before");

    within("shutdown", first.server.shutdown(Duration::from_secs(2))).await;
    match within("call while down", demo.add(1, 1)).await {
        Err(ClientError::ConnectionClosed { .. }) => {}
        other => panic!("a call while the server is away must fail with ConnectionClosed, got {other:?}"),
    }

    let _second = server_on(port).await;
    within("reconnected", async {
        loop {
            match demo.add(2, 2).await {
                Ok(4) => break,
                Err(ClientError::ConnectionClosed { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
                other => panic!("unexpected answer while reconnecting: {other:?}"),
            }
        }
    })
    .await;
    assert!(client.is_connected());
    within("broadcast", demo.broadcast("after".to_owned())).await.unwrap();
    assert!(matches!(within("marker", messages.next()).await.unwrap(), Err(EventError::Reconnected)));
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_after_its_attempts_and_streams_end() {
    let server = TestServer::start(|b| b).await;
    let client = server.client(|b| b.with_reconnect(policy().with_max_attempts(2))).await;
    let mut messages = DemoServiceClient::new(client.clone()).message();
    within("shutdown", server.server.shutdown(Duration::from_secs(1))).await;
    within("gave up", client.closed()).await;
    assert!(!client.is_connected());
    assert!(within("stream end", messages.next()).await.is_none(), "the event stream should end");
}
