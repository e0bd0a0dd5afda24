//! Keepalive: zombie peers are closed and free their slot; live idle clients stay;
//! the client notices a server that went silent.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use witrpc::prelude::*;
use witrpc::protocol::{
    MessageType, WitMessage, WitRequestAuthorization, WitRequestInitialization, WitResponseAuthorization,
    WitResponseInitialization,
};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, Received, TestServer, within};

const PING: Duration = Duration::from_millis(100);
const IDLE: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_closed_and_frees_its_slot() {
    let server = TestServer::start_with_max(1, |b| b.with_keepalive(Some(PING), IDLE)).await;
    let mut zombie = RawPeer::connect(&server.url).await;
    zombie.handshake("").await;
    // The zombie stops reading, so it never answers the server's pings.
    tokio::time::sleep(IDLE * 3).await;
    assert_eq!(server.server.connection_count(), 0, "the silent connection is still open");
    // Its slot is free (max_clients = 1).
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    assert_eq!(within("add", demo.add(1, 2)).await.unwrap(), 3);
    // Reading again shows the close; its frame may be lost to the reset that the
    // zombie's late pongs provoke, but when it arrives it names the idle timeout.
    // (The close frame itself is asserted strictly in the session's tests, with simulated
    // time.) What must never come is anything but the end of the connection.
    match zombie.recv().await {
        Received::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert!(frame.reason.contains("idle timeout"), "{}", frame.reason);
        }
        Received::Close(None) => {}
        Received::Message(m) => panic!("the closed zombie still got a message: {m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_that_answers_pings_stays_connected() {
    let server = TestServer::start(|b| b.with_keepalive(Some(PING), IDLE)).await;
    let client = server.client(|b| b.with_keepalive(Some(PING), IDLE)).await;
    tokio::time::sleep(IDLE * 4).await;
    assert!(client.is_connected(), "closed: {:?}", client.close_reason());
    assert_eq!(within("add", DemoServiceClient::new(client).add(2, 2)).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_notices_a_server_that_went_silent() {
    crate::util::init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    // A server that completes the handshake, then neither reads nor writes.
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        for _ in 0..2 {
            let Some(Ok(Message::Binary(b))) = ws.next().await else { panic!("expected a handshake message") };
            let m = WitMessage::decode(b).unwrap();
            let reply = match m.kind {
                MessageType::Initialization => {
                    WitRequestInitialization::decode(m.data.clone().unwrap()).unwrap();
                    WitResponseInitialization::plain().encode()
                }
                _ => {
                    WitRequestAuthorization::decode(m.data.clone().unwrap()).unwrap();
                    WitResponseAuthorization::new(true).encode()
                }
            };
            ws.send(Message::Binary(m.reply(Some(reply.into())).encode().into())).await.unwrap();
        }
        std::future::pending::<()>().await;
        drop(ws);
    });
    let client = within(
        "connect",
        WitClientBuilder::new().with_websocket(&url).with_keepalive(Some(PING), IDLE).connect(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    within("idle detection", client.closed()).await;
    let reason = client.close_reason().unwrap_or_default();
    assert!(reason.contains("idle timeout"), "{reason}");
    server.abort();
}
