//! Admission and size limits: max clients (503 before the upgrade), message size,
//! handshake timeout, and the HTTP answers around the WebSocket endpoint.

use std::time::Duration;

use witrpc::prelude::*;
use witrpc::protocol::MessageType;
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, http_status, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_503_when_full_and_frees_a_slot_when_a_client_leaves() {
    let server = TestServer::start_with_max(2, |b| b).await;
    let first = server.client(|b| b).await;
    let _second = server.client(|b| b).await;
    let err = server.try_client(|b| b).await.unwrap_err();
    assert!(matches!(err, ClientError::ServerFull), "{err:?}");
    first.disconnect().await;
    // The slot frees once the server has seen the close: retry until it has.
    let third = within("a free slot", async {
        loop {
            match server.try_client(|b| b).await {
                Ok(c) => break c,
                Err(ClientError::ServerFull) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(within("add", DemoServiceClient::new(third).add(1, 2)).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_requests_get_400_and_other_paths_404() {
    let server = TestServer::start(|b| b).await;
    let addr = server.server.local_addr().unwrap();
    let get = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert!(http_status(addr, get).await.starts_with("HTTP/1.1 400"));
    let other = "GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert!(http_status(addr, other).await.starts_with("HTTP/1.1 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_handler_serves_other_paths_on_the_same_port() {
    use witrpc::server::http::{Response, StatusCode};
    let server = TestServer::start(|b| {
        b.with_http_handler(|request| match request.uri.path() {
            "/" => Some(Response::new(bytes::Bytes::from_static(b"<h1>dashboard</h1>"))),
            "/teapot" => Response::builder().status(StatusCode::IM_A_TEAPOT).body(bytes::Bytes::new()).ok(),
            _ => None,
        })
    })
    .await;
    let addr = server.server.local_addr().unwrap();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(http_status(addr, &get("/")).await.starts_with("HTTP/1.1 200"));
    assert!(http_status(addr, &get("/teapot")).await.starts_with("HTTP/1.1 418"));
    assert!(http_status(addr, &get("/missing")).await.starts_with("HTTP/1.1 404"));
    // The endpoint itself is untouched: plain GET 400, WebSocket calls work.
    assert!(http_status(addr, &get("/ws")).await.starts_with("HTTP/1.1 400"));
    let client = server.client(|b| b).await;
    assert_eq!(within("add", DemoServiceClient::new(client).add(2, 3)).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_matches_with_and_without_a_trailing_slash() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&format!("{}/", server.url)).await;
    peer.handshake("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_the_connection_with_the_reason() {
    let server = TestServer::start(|b| b.with_max_message_size(64 * 1024)).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
    peer.send(MessageType::Request, Some(vec![0u8; 100 * 1024])).await;
    let frame = peer.expect_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1009);
    assert!(frame.reason.contains("max_message_size"), "{}", frame.reason);
    // The Rust client sees the connection closed, with the reason.
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    match within("big echo", demo.echo_bytes(vec![7u8; 100 * 1024])).await {
        Err(ClientError::ConnectionClosed { .. }) => {}
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_authorizes_is_closed_after_the_handshake_timeout() {
    let server = TestServer::start_with_max(1, |b| b.with_handshake_timeout(Duration::from_millis(300))).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.initialize().await;
    let frame = peer.expect_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("handshake"), "{}", frame.reason);
    // Its slot is free again (max_clients = 1).
    let demo = within("slot", async {
        loop {
            match server.try_client(|b| b).await {
                Ok(c) => break DemoServiceClient::new(c),
                Err(ClientError::ServerFull) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(within("add", demo.add(2, 2)).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_before_authorization_is_refused() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.send(MessageType::Initialization, Some(vec![1u8; 100 * 1024])).await;
    let frame = peer.expect_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_frees_its_port_and_starts_again() {
    let server = TestServer::start(|b| b).await;
    let client = server.client(|b| b).await;
    let demo = DemoServiceClient::new(client.clone());
    assert_eq!(within("add", demo.add(1, 1)).await.unwrap(), 2);
    within("stop", server.server.stop_waiting_for_connection()).await;
    assert!(server.server.local_addr().is_none());
    match within("call after stop", demo.add(1, 1)).await {
        Err(ClientError::ConnectionClosed { .. }) => {}
        other => panic!("expected ConnectionClosed after stop, got {other:?}"),
    }
    within("restart", server.server.start_waiting_for_connection()).await.unwrap();
    let url = server.server.client_url().unwrap();
    let again = within("reconnect", WitClientBuilder::new().with_websocket(&url).connect(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(within("add", DemoServiceClient::new(again).add(2, 2)).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_mistakes_are_reported_by_build() {
    let err = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("ws://127.0.0.1:5000/ws", 10)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
    // A builder without a transport has no `build()` at all (a compile_fail doctest on
    // `WitServerBuilder` pins that).
    let err = WitServerBuilder::new().with_websocket("http://127.0.0.1:0/ws", 10).build().unwrap_err();
    assert!(matches!(err, ServerError::NoService), "{err}");
    let err = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("http://127.0.0.1:0/ws", 0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_clients"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_bind_error() {
    let first = TestServer::start(|b| b).await;
    let addr = first.server.local_addr().unwrap();
    let second = WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket(format!("http://127.0.0.1:{}/ws", addr.port()), 10)
        .build()
        .unwrap();
    let err = within("start", second.start_waiting_for_connection()).await.unwrap_err();
    assert!(matches!(err, ServerError::Bind { .. }), "{err:?}");
}
