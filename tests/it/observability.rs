//! Metrics reach a Prometheus recorder with the documented names.

use metrics_exporter_prometheus::PrometheusBuilder;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_connections_show_up_in_prometheus_text() {
    // The recorder is process-wide; other tests' traffic only adds to the counts.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        panic!("another test installed a metrics recorder");
    }
    let server = TestServer::start(|b| b.with_access_token("m")).await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("m")).await);
    assert_eq!(within("add", demo.add(1, 2)).await.unwrap(), 3);
    assert!(within("fail", demo.fail("x".to_owned())).await.is_err());
    let _ = server.try_client(|b| b.with_access_token("wrong")).await;
    let text = handle.render();
    for needle in [
        "witrpc_connections_active",
        "witrpc_connections_total",
        "witrpc_auth_failures_total",
        "witrpc_messages_in_total",
        "witrpc_messages_out_total",
        "witrpc_request_duration_seconds",
        r#"method="Add",status="200""#,
        r#"method="Fail",status="500""#,
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

/// Waits until `f` holds (no timing is asserted; `within` bounds a hang).
async fn until(what: &str, f: impl Fn() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_count_what_the_clients_did() {
    let server = TestServer::start(|b| b.with_access_token("s")).await;
    let fresh = server.server.stats();
    assert_eq!((fresh.calls, fresh.connections, fresh.bytes_in, fresh.events_out), (0, 0, 0, 0));
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("s")).await);
    for i in 0..10 {
        assert_eq!(within("add", demo.add(i, 1)).await.unwrap(), i + 1);
    }
    assert!(within("fail", demo.fail("x".to_owned())).await.is_err());
    within("broadcast", demo.broadcast("hello".to_owned())).await.unwrap();
    assert!(server.try_client(|b| b.with_access_token("wrong")).await.is_err());
    until("the refused client to go", || server.server.connection_count() == 1).await;

    let s = server.server.stats();
    assert_eq!((s.calls, s.call_errors), (12, 1), "{s:?}");
    assert_eq!(s.latency.total(), 12, "every call's latency is in the histogram");
    assert_eq!((s.connections, s.connections_authorized, s.connections_in_handshake()), (1, 1, 0));
    assert_eq!((s.connections_accepted, s.auth_failures), (2, 1));
    assert_eq!(s.events_out, 1, "one broadcast to the one authorized client");
    assert!(s.messages_in >= 12 && s.bytes_in > s.messages_in * 20, "{s:?}");
    assert!(s.messages_out >= 12 && s.bytes_out > 0, "{s:?}");
    assert_eq!(s.slow_consumer_disconnects, 0);
    #[cfg(target_os = "linux")]
    assert!(s.process.rss_bytes.is_some_and(|b| b > 0) && s.process.cpu_time.is_some());
    let interval = s.since(&fresh);
    assert!(interval.calls_per_second > 0.0 && interval.latency_p50.is_some());

    drop(demo);
    until("the client to go", || server.server.stats().connections == 0).await;
    assert_eq!(server.server.stats().connections_authorized, 0);
}

/// `GET path` with an optional bearer token; the status line and the body.
async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.server.local_addr().expect("running server has an address");
    let mut tcp = within("tcp connect", tokio::net::TcpStream::connect(addr)).await.expect("tcp connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    within("http write", tcp.write_all(request.as_bytes())).await.expect("write");
    let mut response = Vec::new();
    within("http read", tcp.read_to_end(&mut response)).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_the_figures_only_with_its_own_token() {
    use witrpc::server::WebSocketOptions as _;
    use witrpc::server::console::ConsoleOptions;
    let server = TestServer::start(|b| {
        b.with_access_token("app-token").with_console("/ops/console", ConsoleOptions::new("console-token"))
    })
    .await;
    let demo = DemoServiceClient::new(server.client(|b| b.with_access_token("app-token")).await);
    for i in 0..3 {
        within("add", demo.add(i, i)).await.unwrap();
    }
    let (status, page) = get(&server, "/ops/console/", None).await;
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("console.js"), "the page is public: {page}");
    for token in [None, Some("app-token"), Some("wrong")] {
        let (status, body) = get(&server, "/ops/console/figures", token).await;
        assert!(status.contains("401"), "{token:?}: {status}");
        assert!(!body.contains("calls_total"), "{token:?}: {body}");
    }
    let (status, body) = get(&server, "/ops/console/figures", Some("console-token")).await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"calls_total\":3"), "{body}");
    assert!(body.contains("\"connections_authorized\":1"), "{body}");
    // Other paths are still the application's (none here: 404), the endpoint still works.
    assert!(get(&server, "/ops/consoleX", None).await.0.contains("404"));
    assert_eq!(within("add", demo.add(2, 2)).await.unwrap(), 4);
}
