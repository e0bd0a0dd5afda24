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

use super::{Inbound, Inner, Outgoing, PUBLISH_BATCH, Stats};
use crate::control::Control;
use crate::history::{APPEND, NewEpoch, is_noscript};
use crate::keys::{self, Arg, Channel, HistoryKey};
use crate::link::Link;
use witrpc_server::StreamPosition;
use witrpc_server::broker::stream_topic;

pub(super) async fn publish_task(
    mut conn: Link,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<Stats>,
    timeout: Duration,
    prefix: String,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let n = batch.len() as u64;
        match tokio::time::timeout(timeout, publish_batch(&mut conn, &batch, &prefix)).await {
            Ok(Ok(lost)) => {
                let sent = n - lost;
                stats.published.fetch_add(sent, Ordering::Relaxed);
                metrics::counter!(BACKPLANE_PUBLISHED).increment(sent);
                if lost > 0 {
                    stats.lost(lost, "publish_failed");
                }
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

/// The command that sends one queued item (names under `prefix`).
fn command(item: &Outgoing, publish: &'static str, prefix: &str) -> redis::Cmd {
    match item {
        Outgoing::Frame { channel, frame } => {
            let mut cmd = redis::cmd(publish);
            cmd.arg(channel).arg(&frame[..]);
            cmd
        }
        Outgoing::Recorded { stream, frame, max_events, max_age_ms } => {
            let key = |meta| Arg(HistoryKey { prefix, stream, meta });
            let channel = Arg(Channel { prefix, topic: stream_topic(stream) });
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&APPEND.sha).arg(2).arg(key(true)).arg(key(false)).arg(channel).arg(&frame[..]);
            cmd.arg(max_events).arg(max_age_ms).arg(Arg(NewEpoch::random())).arg(stream).arg(publish);
            cmd
        }
    }
}

/// How many times an append that found its script gone is sent again after loading it
/// (the scripts can be flushed again between the load and the resend).
const NOSCRIPT_RETRIES: usize = 3;

/// Publishes a batch; returns how many items failed. One pipeline on a single server
/// (an append that found its script gone, after a Redis restart, is sent again once
/// the script is loaded, up to [`NOSCRIPT_RETRIES`] times; nothing else is, so nothing
/// is published twice); on a cluster, where a pipeline may not cross hash slots, one
/// `SPUBLISH` per frame, all in flight at once on the multiplexed connection (so still
/// one round trip per batch).
async fn publish_batch(conn: &mut Link, batch: &[Outgoing], prefix: &str) -> redis::RedisResult<u64> {
    if conn.is_cluster() {
        let sends = batch.iter().map(|item| {
            let mut c = conn.clone();
            async move {
                let cmd = command(item, "SPUBLISH", prefix);
                let mut result = cmd.query_async::<()>(&mut c).await;
                for _ in 0..NOSCRIPT_RETRIES {
                    match &result {
                        // `SCRIPT LOAD` goes to every master.
                        Err(e) if is_noscript(e) => match APPEND.load(&mut c).await {
                            Ok(()) => result = cmd.query_async::<()>(&mut c).await,
                            Err(e) => return Err(e),
                        },
                        _ => break,
                    }
                }
                result
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            tracing::debug!(error = %e, failed, "backplane: publishes failed");
        }
        return Ok(failed as u64);
    }
    let mut failed = 0;
    let mut pending: Vec<&Outgoing> = batch.iter().collect();
    for attempt in 0..=NOSCRIPT_RETRIES {
        if attempt > 0 {
            APPEND.load(conn).await?;
        }
        let mut pipe = redis::pipe();
        for item in &pending {
            pipe.add_command(command(item, "PUBLISH", prefix));
        }
        let results: Vec<redis::RedisResult<Value>> = pipe.ignore_errors().query_async(conn).await?;
        failed += pending.len().saturating_sub(results.len()) as u64;
        let mut again = Vec::new();
        for (item, result) in pending.iter().zip(&results) {
            match result {
                Err(e) if is_noscript(e) => again.push(*item),
                Err(e) => {
                    tracing::debug!(error = %e, "backplane: a publish failed");
                    failed += 1;
                }
                Ok(_) => {}
            }
        }
        pending = again;
        if pending.is_empty() {
            break;
        }
    }
    if !pending.is_empty() {
        tracing::debug!(appends = pending.len(), "backplane: appends still found no script after reloading it");
    }
    Ok(failed + pending.len() as u64)
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
        if message.starts_with(keys::POSITIONED) {
            match read_positioned(&broker, message) {
                Some((position, frame)) => {
                    let target = inbound.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
                    if let Some(target) = target {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        target.deliver_positioned(position, Bytes::from(frame));
                    }
                }
                None => stats.lost(1, "bad_signature"),
            }
            continue;
        }
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

/// A positioned message: [`keys::POSITIONED`], `<stream>\t<epoch>\t<offset>\n`, then
/// the frame signed with the stream's name; `None` when malformed or forged. The frame
/// keeps the message's buffer (the header is drained off, not copied away).
fn read_positioned(broker: &Inner, mut message: Vec<u8>) -> Option<(StreamPosition, Vec<u8>)> {
    let header = message.get(keys::POSITIONED.len()..)?;
    let end = header.iter().position(|&b| b == b'\n')?;
    let position = StreamPosition::parse(std::str::from_utf8(&header[..end]).ok()?)?;
    message.drain(..keys::POSITIONED.len() + end + 1);
    let frame = broker.verify(position.stream.as_bytes(), message)?;
    Some((position, frame))
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
