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
