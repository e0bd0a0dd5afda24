//! Events: routing by name and the .NET contract filter.

use bytes::Bytes;
use futures_util::StreamExt;
use witrpc_core::{ClientChannel, EventSubscription};

use super::fake::{DEMO, OTHER, connected, within};
use crate::WitClientBuilder;

async fn next_argument(subscription: &mut EventSubscription) -> Bytes {
    let event = within("an event", subscription.next()).await.expect("the subscription ended").unwrap();
    assert_eq!(event.len(), 1, "{event:?}");
    event[0].clone()
}

#[tokio::test]
async fn events_reach_subscribers_of_their_name_and_contract() {
    let (client, server) = connected(WitClientBuilder::new()).await;
    let mut demo = client.subscribe(&DEMO, 0);
    let mut other = client.subscribe(&OTHER, 0);
    let mut demo_again = client.subscribe(&DEMO, 0);
    server.event("Progress", DEMO.contract_id(), b"1").await;
    server.event("Progress", 0, b"2").await; // no contract id: every subscriber of the name
    server.event("Progress", OTHER.contract_id(), b"3").await;
    server.event("Unknown", 0, b"x").await;
    server.event("progress", 0, b"x").await; // names are case-sensitive, as in .NET
    server.event("Progress", 0, b"4").await;
    for demo in [&mut demo, &mut demo_again] {
        for expected in [&b"1"[..], b"2", b"4"] {
            assert_eq!(next_argument(demo).await, expected);
        }
    }
    for expected in [&b"2"[..], b"3", b"4"] {
        assert_eq!(next_argument(&mut other).await, expected);
    }
}

#[tokio::test]
async fn a_dropped_subscription_does_not_disturb_the_others() {
    let (client, server) = connected(WitClientBuilder::new()).await;
    let dropped = client.subscribe(&DEMO, 0);
    let mut kept = client.subscribe(&DEMO, 0);
    drop(dropped);
    server.event("Progress", 0, b"1").await;
    assert_eq!(next_argument(&mut kept).await, &b"1"[..]);
    assert_eq!(client.subscriber_count("Progress"), 1, "the dropped subscription was not removed");
}

#[tokio::test]
async fn event_streams_end_when_the_connection_closes() {
    let (client, mut server) = connected(WitClientBuilder::new()).await;
    let mut events = client.subscribe(&DEMO, 0);
    server.drop_connection();
    assert!(within("end of events", events.next()).await.is_none());
    // Subscribing after the close gives a stream that has already ended.
    let mut late = client.subscribe(&DEMO, 0);
    assert!(within("end of events", late.next()).await.is_none());
}
