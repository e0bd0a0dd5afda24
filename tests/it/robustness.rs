//! Hostile and broken peers: the server closes them with a reason and keeps serving
//! everyone else.

use witrpc::protocol::{CommunicationStatus, MessageType};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, demo_request, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_dropped_while_others_keep_working() {
    let server = TestServer::start(|b| b).await;
    let demo = DemoServiceClient::new(server.client(|b| b).await);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..20 {
        let mut garbage = RawPeer::connect(&server.url).await;
        if round % 2 == 1 {
            garbage.handshake("").await;
        }
        let len = 1 + (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .map(|b| if b == 3 { 4 } else { b }) // never a valid envelope header
            .collect();
        garbage.send_bytes(bytes).await;
        let frame = garbage.expect_close().await.expect("close frame with a reason");
        assert_eq!(u16::from(frame.code), 1003, "round {round}: {frame:?}");
        assert_eq!(within("good client", demo.add(round, 1)).await.unwrap(), round + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_get_protocol_answers_not_disconnects() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
    // A request whose payload is not a WitRequest: 400, connection stays.
    let id = peer.send(MessageType::Request, Some(vec![0x0A, 0xFF, 0x01])).await;
    let reply = peer.recv_message().await;
    assert_eq!(reply.id, id);
    let response = witrpc::protocol::WitResponse::decode(reply.data.unwrap()).unwrap();
    assert_eq!(response.status, CommunicationStatus::BadRequest);
    // Undecodable arguments: 400 naming the parameter (.NET would pass a default).
    let response = peer.call(&demo_request("Add", &["\"two\"", "3"])).await;
    assert_eq!(response.status, CommunicationStatus::BadRequest);
    assert!(response.error_message.unwrap_or_default().contains("`a`"));
    // Unknown message types and client-sent callbacks are ignored.
    peer.send(MessageType::Other(42), Some(vec![1, 2, 3])).await;
    peer.send(MessageType::Callback, None).await;
    peer.send_bytes(Vec::new()).await; // empty messages are skipped
    assert_eq!(peer.call(&demo_request("Add", &["2", "3"])).await.data.as_deref(), Some(&b"5"[..]));
    // A second Initialization is a protocol violation.
    peer.send(MessageType::Initialization, None).await;
    let frame = peer.expect_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1002);
}
