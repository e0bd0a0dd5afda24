//! Events: ordered per connection, to every authorized connection, never to others.

use futures_util::StreamExt;
use witrpc::protocol::{CommunicationStatus, MessageType, WitRequest};
use witrpc_demo::DemoServiceClient;

use crate::util::{RawPeer, TestServer, demo_request, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_on_every_connection() {
    let server = TestServer::start(|b| b).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let demo = DemoServiceClient::new(server.client(|b| b).await);
        let progress = demo.progress_changed();
        let completed = demo.processing_completed();
        clients.push((demo, progress, completed));
    }
    let steps = 50;
    assert!(within("start", clients[0].0.start_processing(steps)).await.unwrap());
    for (_, progress, completed) in &mut clients {
        for i in 1..=steps {
            let p = within("progress event", progress.next()).await.expect("stream open").expect("event decodes");
            assert_eq!(p, 100.0 * f64::from(i) / f64::from(steps), "event {i} out of order");
        }
        let done = within("completed event", completed.next()).await.expect("stream open").expect("event decodes");
        assert_eq!(done, steps);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_client_including_the_caller() {
    let server = TestServer::start(|b| b.with_msgpack()).await;
    let a = DemoServiceClient::new(server.client(|b| b.with_msgpack()).await);
    let b = DemoServiceClient::new(server.client(|b| b.with_msgpack()).await);
    let mut on_a = a.message();
    let mut on_b = b.message();
    within("broadcast", a.broadcast("to all".to_owned())).await.unwrap();
    assert_eq!(within("a", on_a.next()).await.unwrap().unwrap(), "to all");
    assert_eq!(within("b", on_b.next()).await.unwrap().unwrap(), "to all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_dotnet_type_names_and_the_interface_contract_id() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
    let id = peer.send(MessageType::Request, Some(demo_request("Broadcast", &["\"x\""]).encode())).await;
    let callback = peer.recv_message().await;
    assert_eq!(callback.kind, MessageType::Callback);
    let response = peer.recv_message().await;
    assert_eq!((response.id, response.kind), (id, MessageType::Request));
    let response = witrpc::protocol::WitResponse::decode(response.data.unwrap()).unwrap();
    assert_eq!(response.status, CommunicationStatus::Ok);
    let event = WitRequest::decode(callback.data.unwrap()).unwrap();
    assert_eq!(event.method_name, "Message");
    assert_eq!(event.contract_id, witrpc::protocol::ids::contract_id("WitRpc.Demo.IDemoService"));
    assert_eq!(event.method_id, 0);
    assert_eq!(&event.parameters[0][..], b"\"x\"");
    assert_eq!(event.parameter_types_by_name[0].type_name.as_deref(), Some("System.String"));
    assert_eq!(event.parameter_types_by_name[0].assembly.as_deref(), Some("System.Private.CoreLib"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_raised_before_a_method_returns_is_written_before_its_response() {
    let server = TestServer::start(|b| b).await;
    let mut peer = RawPeer::connect(&server.url).await;
    peer.handshake("").await;
    let id = peer.send(MessageType::Request, Some(demo_request("Broadcast", &["\"first\""]).encode())).await;
    let first = peer.recv_message().await;
    assert_eq!(first.kind, MessageType::Callback, "the event must precede the response");
    let second = peer.recv_message().await;
    assert_eq!((second.id, second.kind), (id, MessageType::Request));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_are_not_authorized_receive_no_events() {
    let server = TestServer::start(|b| b.with_access_token("secret")).await;
    let mut unauthorized = RawPeer::connect(&server.url).await;
    unauthorized.initialize().await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("secret")).await);
    let mut messages = demo.message();
    within("broadcast", demo.broadcast("private".to_owned())).await.unwrap();
    assert_eq!(within("event", messages.next()).await.unwrap().unwrap(), "private");
    // The outbound queue is ordered: had the event been queued to the unauthorized
    // peer, it would arrive before the answer to this request.
    let id = unauthorized.send(MessageType::Request, Some(demo_request("Add", &["1", "2"]).encode())).await;
    let reply = unauthorized.recv_message().await;
    assert_eq!((reply.id, reply.kind), (id, MessageType::Request), "an unauthorized peer received {reply:?}");
    let response = witrpc::protocol::WitResponse::decode(reply.data.unwrap()).unwrap();
    assert_eq!(response.status, CommunicationStatus::Unauthorized);
}
