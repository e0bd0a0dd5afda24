//! Issue 16, finding 3: what a peer can make the server hold before the upgrade (and
//! before authorization): header caps, the head deadline, the admission caps and the
//! per-address quotas. A good client connected beforehand keeps being served.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use witrpc::WitClient;
use witrpc::server::{ConnectRate, WebSocketLimits};
use witrpc_demo::DemoServiceClient;

use crate::hostile_preauth::{addr, connect_tcp, raw_upgrade, start, try_raw_upgrade};
use crate::util::{RawPeer, TestServer, http_status, within};

/// Waits until `f` holds, checking the server's counters (no timing is asserted).
async fn until(what: &str, f: impl Fn() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn good_client(server: &TestServer) -> DemoServiceClient<WitClient> {
    DemoServiceClient::new(server.client(|b| b).await)
}

async fn assert_served(demo: &DemoServiceClient<WitClient>) {
    assert_eq!(within("good call", demo.add(20, 22)).await.expect("the good client is served"), 42);
}

/// The status line a refused socket gets at accept, read before sending anything (the
/// server answers without reading, then closes).
async fn refused_at_accept(server: &TestServer) -> String {
    let mut stream = connect_tcp(server).await;
    let mut answer = Vec::new();
    within("refusal", stream.read_to_end(&mut answer)).await.expect("the refusal is readable");
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_get_431() {
    let (server, _stats) = start(WebSocketLimits::default().with_max_headers(16)).await;
    let demo = good_client(&server).await;
    let big = format!("GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(17 * 1024));
    assert_eq!(http_status(addr(&server), &big).await, "HTTP/1.1 431 Request Header Fields Too Large");
    let many: String = (0..17).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(http_status(addr(&server), &many).await, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_served(&demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_ends_gets_408() {
    let limits = WebSocketLimits::default().with_header_read_timeout(Duration::from_millis(200));
    let (server, stats) = start(limits).await;
    let demo = good_client(&server).await;
    // Slowloris: a head that is never finished.
    let status = http_status(addr(&server), "GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    until("the slow connection is gone", || stats.pending_upgrades() == 0).await;
    assert_served(&demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_upgrade_are_capped() {
    let (server, stats) = start(WebSocketLimits::default().with_max_pending_upgrades(Some(2))).await;
    let demo = good_client(&server).await;
    // Two sockets that send nothing hold both pre-upgrade places.
    let idle = [connect_tcp(&server).await, connect_tcp(&server).await];
    until("two pending upgrades", || stats.pending_upgrades() == 2).await;
    assert_eq!(refused_at_accept(&server).await, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(stats.refused(), 1);
    assert_served(&demo).await;
    drop(idle);
    until("idle sockets gone", || stats.pending_upgrades() == 0).await;
    let again = good_client(&server).await;
    assert_served(&again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_have_not_authorized_are_capped_until_they_do() {
    let (server, stats) = start(WebSocketLimits::default().with_max_unauthorized(Some(1))).await;
    let demo = good_client(&server).await;
    assert_eq!(stats.unauthorized(), 0, "an authorized client no longer counts");
    let mut squatter = RawPeer::connect(&server.url).await;
    until("one unauthorized connection", || stats.unauthorized() == 1).await;
    let (status, _stream) = try_raw_upgrade(connect_tcp(&server).await, "").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert_served(&demo).await;
    // Once it authorizes, its place is free.
    squatter.handshake("").await;
    until("no unauthorized connection", || stats.unauthorized() == 0).await;
    let second = good_client(&server).await;
    assert_served(&second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let (server, stats) = start(WebSocketLimits::default().with_max_connections_per_ip(Some(2))).await;
    let demo = good_client(&server).await; // 127.0.0.1: one of two
    let _idle = connect_tcp(&server).await; // two of two
    until("the idle socket is accepted", || stats.pending_upgrades() == 1).await;
    assert_eq!(refused_at_accept(&server).await, "HTTP/1.1 503 Service Unavailable");
    assert_served(&demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_per_address_follow_the_rate_limit() {
    // A burst of 2 and practically no refill: the third connection is over the rate.
    let limits = WebSocketLimits::default().with_new_connections_per_ip(Some(ConnectRate::new(0.001, 2)));
    let (server, _stats) = start(limits).await;
    let demo = good_client(&server).await;
    let _second = raw_upgrade(connect_tcp(&server).await, "").await;
    assert_eq!(refused_at_accept(&server).await, "HTTP/1.1 429 Too Many Requests");
    assert_served(&demo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limit = WebSocketLimits::default().with_max_connections_per_ip(Some(1));
    // Not trusted: every header claims another address, yet all come from 127.0.0.1.
    let (server, _stats) = start(limit.clone()).await;
    let _first = raw_upgrade(connect_tcp(&server).await, "X-Forwarded-For: 203.0.113.1\r\n").await;
    let (status, _s) = try_raw_upgrade(connect_tcp(&server).await, "X-Forwarded-For: 203.0.113.2\r\n").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "the header is ignored from untrusted peers");

    // 127.0.0.1 as a trusted proxy: the header names the client.
    let trusted = limit.with_trusted_proxies(["127.0.0.1".parse().expect("address")]);
    let (server, _stats) = start(trusted).await;
    let _a = raw_upgrade(connect_tcp(&server).await, "X-Forwarded-For: 203.0.113.1\r\n").await;
    let _b = raw_upgrade(connect_tcp(&server).await, "X-Forwarded-For: 203.0.113.2\r\n").await;
    let (status, _s) = try_raw_upgrade(connect_tcp(&server).await, "X-Forwarded-For: 203.0.113.1\r\n").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "a second connection of 203.0.113.1");
    let _c = raw_upgrade(connect_tcp(&server).await, "Forwarded: for=198.51.100.7\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_limits_are_reported_by_build() {
    use witrpc::server::{WebSocketOptions, WebSocketServerExt};
    let err = witrpc::WitServerBuilder::new()
        .with_service(witrpc_demo::Demo::server())
        .with_websocket("http://127.0.0.1:0/ws", 10)
        .with_websocket_limits(WebSocketLimits::default().with_max_header_bytes(1024))
        .build()
        .expect_err("a 1 KiB header cap is below hyper's minimum");
    assert!(err.to_string().contains("max_header_bytes"), "{err}");
}
