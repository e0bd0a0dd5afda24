//! Churn: many connect → authorize → call → disconnect cycles, a batch at a time. The
//! server must end with no connection and no task left behind. `cargo xtask soak`
//! runs the large version (`WITRPC_CHURN_CYCLES=10000`) in release mode.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use witrpc::prelude::*;
use witrpc_demo::DemoServiceClient;

use crate::util::{TestServer, rss_kib, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaves_nothing_behind() {
    let cycles: usize = std::env::var("WITRPC_CHURN_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let batch = 200;
    let server = TestServer::start_with_max(batch, |b| b.with_access_token("churn")).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss_kib();
    let started = Instant::now();
    for round in 0..cycles.div_ceil(batch) {
        let n = batch.min(cycles - round * batch);
        let cycle = |i: usize| {
            let url = server.url.clone();
            async move {
                let client = WitClientBuilder::new()
                    .with_websocket(url)
                    .with_access_token("churn")
                    .connect(Duration::from_secs(20))
                    .await
                    .expect("connect");
                let demo = DemoServiceClient::new(client.clone());
                assert_eq!(demo.add(i as i32, 1).await.expect("call"), i as i32 + 1);
                client.disconnect().await;
            }
        };
        within("a batch of cycles", join_all((0..n).map(cycle))).await;
        // A batch's slots must all be free before the next one (max_clients = batch).
        within("slots freed", async {
            while server.server.connection_count() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    let elapsed = started.elapsed();
    assert_eq!(server.server.connection_count(), 0);
    assert_eq!(server.server.accepted_connections(), cycles as u64);
    within("tasks finished", async {
        while metrics.num_alive_tasks() > tasks_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let rss_after = rss_kib();
    println!(
        "churn: {cycles} cycles in {elapsed:.2?} ({:.0}/s), alive tasks {tasks_before} -> {}, RSS {rss_before:?} -> {rss_after:?} KiB",
        cycles as f64 / elapsed.as_secs_f64(),
        metrics.num_alive_tasks()
    );
}
