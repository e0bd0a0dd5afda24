//! Closing: by the server, by the client, by dropping the last handle.

use std::time::Duration;

use witrpc_core::MessageType;

use super::fake::{add, connected, connected_with, pair_closing_after_eof, pair_with_capacity, within};
use crate::transport::{Inbound, TransportError};
use crate::{ClientError, WitClientBuilder};

#[tokio::test]
async fn a_lost_connection_fails_every_pending_call_and_later_ones() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(add("1", "2")).await })
        })
        .collect();
    for _ in 0..3 {
        server.request().await;
    }
    server.drop_connection();
    for call in calls {
        let err = within("pending call", call).await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
    }
    within("closed", client.closed()).await;
    assert!(!client.is_connected());
    let err = within("call after close", client.call(add("1", "2"))).await.unwrap_err();
    assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
}

#[tokio::test]
async fn the_servers_close_reason_reaches_the_caller() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    server.request().await;
    let closed = TransportError::Closed { code: Some(1008), reason: "policy violation".to_owned() };
    server.send_inbound(Err(closed)).await;
    match within("pending call", call).await.unwrap().unwrap_err() {
        ClientError::ConnectionClosed { reason } => assert!(reason.contains("policy violation"), "{reason}"),
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert!(client.close_reason().unwrap_or_default().contains("policy violation"));
}

#[tokio::test]
async fn an_invalid_envelope_closes_the_connection_with_a_reason() {
    let (client, server) = connected(WitClientBuilder::new()).await;
    server.send_inbound(Ok(Inbound::Message(vec![0x07, 0x01].into()))).await;
    within("closed", client.closed()).await;
    let reason = client.close_reason().unwrap_or_default();
    assert!(reason.contains("invalid message"), "{reason}");
}

#[tokio::test]
async fn empty_messages_and_heartbeats_are_skipped() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    server.send_inbound(Ok(Inbound::Message(Vec::new().into()))).await;
    server.send_inbound(Ok(Inbound::Heartbeat)).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    let (message, _) = server.request().await;
    server.respond(&message, witrpc_core::WitResponse::ok(None)).await;
    assert_eq!(within("call", call).await.unwrap().unwrap(), None);
}

#[tokio::test]
async fn disconnect_fails_pending_calls_and_closes_the_transport() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(add("1", "2")).await }
    });
    server.expect(MessageType::Request).await;
    within("disconnect", client.disconnect()).await;
    let err = within("pending call", call).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
    assert!(server.next().await.is_none(), "the transport is still open");
    assert!(!client.is_connected());
    let err = within("call after disconnect", client.call(add("1", "2"))).await.unwrap_err();
    assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
    // A second disconnect is harmless.
    within("disconnect again", client.disconnect()).await;
}

#[tokio::test(start_paused = true)]
async fn disconnect_returns_even_when_the_server_stopped_reading() {
    // Room for one frame: the writer blocks on the second request.
    let (client, mut server) = connected_with(WitClientBuilder::new(), pair_with_capacity(1)).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(add("1", "2")).await })
        })
        .collect();
    // With time paused, this returns only once every other task is idle: the writer is
    // then blocked on the full transport.
    tokio::time::sleep(Duration::from_millis(10)).await;
    within("disconnect", client.disconnect()).await;
    for call in calls {
        let err = within("pending call", call).await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::ConnectionClosed { .. }), "{err:?}");
    }
    drop(server.next().await); // the one frame that fitted
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let clone = client.clone();
    drop(client);
    assert!(clone.is_connected(), "a clone keeps the connection");
    drop(clone);
    assert!(server.next().await.is_none(), "the transport is still open");
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_server_closed_lets_go_of_its_transport_at_once() {
    let (client, mut server) = connected_with(WitClientBuilder::new(), pair_closing_after_eof()).await;
    let started = tokio::time::Instant::now();
    let closed = TransportError::Closed { code: Some(1001), reason: "server shutting down".to_owned() };
    server.send_inbound(Err(closed)).await;
    server.drop_connection();
    within("closed", client.closed()).await;
    // The transport is released (its sink dropped) without waiting out the close
    // timeout: time is paused, so only waiting on a timer would move the clock.
    assert!(server.next().await.is_none(), "the client still holds its transport");
    assert!(started.elapsed() < crate::connection::CLOSE_TIMEOUT, "released after {:?}", started.elapsed());
}
