//! The broker's background tasks: publishing (a bounded queue drained in batches),
//! receiving (pushes from Redis to the hub) and the heartbeat. They end when the
//! broker is dropped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use witrpc_server::metrics::BACKPLANE_PUBLISHED;

use super::{Inbound, Inner, PUBLISH_BATCH, Stats};
use crate::control::Control;
use crate::link::Link;

pub(super) async fn publish_task(
    mut conn: Link,
    mut rx: mpsc::Receiver<(String, Bytes)>,
    stats: Arc<Stats>,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let n = batch.len() as u64;
        match tokio::time::timeout(timeout, publish_batch(&mut conn, &batch)).await {
            Ok(Ok(())) => {
                stats.published.fetch_add(n, Ordering::Relaxed);
                metrics::counter!(BACKPLANE_PUBLISHED).increment(n);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "backplane publish failed");
                stats.lost(n, "publish_failed");
            }
            Err(_) => stats.lost(n, "publish_failed"),
        }
        batch.clear();
    }
}

/// Publishes a batch: one pipeline on a single server; on a cluster, where a pipeline
/// may not cross hash slots, one `SPUBLISH` per frame, all in flight at once on the
/// multiplexed connection (so still one round trip per batch).
async fn publish_batch(conn: &mut Link, batch: &[(String, Bytes)]) -> redis::RedisResult<()> {
    if conn.is_cluster() {
        let sends = batch.iter().map(|(channel, frame)| {
            let mut c = conn.clone();
            async move { redis::cmd("SPUBLISH").arg(channel).arg(&frame[..]).query_async::<()>(&mut c).await }
        });
        return futures_util::future::try_join_all(sends).await.map(drop);
    }
    let mut pipe = redis::pipe();
    for (channel, frame) in batch {
        pipe.cmd("PUBLISH").arg(channel).arg(&frame[..]).ignore();
    }
    pipe.query_async::<()>(conn).await
}

pub(super) async fn receive_task(
    mut rx: mpsc::Receiver<PushInfo>,
    inbound: Inbound,
    broker: Weak<Inner>,
    stats: Arc<Stats>,
) {
    while let Some(push) = rx.recv().await {
        let Some(broker) = broker.upgrade() else { return };
        if push.kind == PushKind::Disconnection {
            tracing::warn!("backplane lost its Redis connection; reconnecting (local delivery goes on)");
            broker.dirty.store(true, Ordering::Relaxed);
            broker.interest().synced = false;
            continue;
        }
        let mut data = push.data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(message))) = (data.next(), data.next()) else {
            continue;
        };
        let Some(frame) = broker.verify(&channel, message) else {
            stats.lost(1, "bad_signature");
            continue;
        };
        if channel == broker.ctl_channel().as_bytes() {
            match Control::decode(&frame) {
                Some(message) => broker.handle_control(message).await,
                None => tracing::warn!("backplane: dropping an unreadable control message"),
            }
            continue;
        }
        let target = inbound.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
        if let Some(target) = target {
            stats.received.fetch_add(1, Ordering::Relaxed);
            target.deliver(Bytes::from(frame));
        }
    }
}

pub(super) async fn heartbeat_task(broker: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        broker.heartbeat().await;
    }
}
