//! The connection to Redis: one server, or a Redis Cluster.
//!
//! [`connect`] asks the server at the configured URL whether it is a cluster node
//! (`INFO cluster`). A single server (or a replica set behind one address) gets
//! redis-rs's `ConnectionManager` and classic pub/sub (`SUBSCRIBE`/`PUBLISH`); a
//! cluster gets redis-rs's `ClusterConnection`, which discovers every node from that
//! seed, and **sharded** pub/sub (`SSUBSCRIBE`/`SPUBLISH`): a channel lives on the shard
//! that owns its hash slot, so event traffic spreads over the cluster instead of being
//! copied to every node as classic pub/sub does there. Both are RESP3, multiplexed,
//! reconnect by themselves and re-subscribe after a reconnect.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, RedisResult, ToRedisArgs, Value};

use crate::error::RedisBrokerError;

/// A cheap-to-clone handle on the connection; clones share it.
#[derive(Clone)]
pub(crate) enum Link {
    /// One Redis server: classic pub/sub.
    Single(ConnectionManager),
    /// A Redis Cluster: sharded pub/sub.
    Cluster(ClusterConnection),
}

impl Link {
    /// Whether this is a cluster (sharded pub/sub; a pipeline may not cross hash slots).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The publish command of this kind of link.
    pub(crate) fn publish_command(&self) -> &'static str {
        if self.is_cluster() { "SPUBLISH" } else { "PUBLISH" }
    }

    /// Subscribes to `channels` (the push sender receives their messages).
    pub(crate) async fn subscribe(&mut self, channels: impl ToRedisArgs + Send + Sync) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(channels).await,
            Self::Cluster(c) => c.ssubscribe(channels).await,
        }
    }

    /// Unsubscribes from `channels`.
    pub(crate) async fn unsubscribe(&mut self, channels: impl ToRedisArgs + Send + Sync) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.unsubscribe(channels).await,
            Self::Cluster(c) => c.sunsubscribe(channels).await,
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What [`connect`] needs besides the address.
pub(crate) struct LinkOptions<P> {
    /// Connect and response timeout.
    pub(crate) timeout: Duration,
    /// Receives the subscription pushes (must not block).
    pub(crate) push_sender: P,
}

/// Connects to the server at `info`, as a cluster when it is a cluster node.
pub(crate) async fn connect<P>(info: ConnectionInfo, options: LinkOptions<P>) -> Result<Link, RedisBrokerError>
where
    P: Fn(PushInfo) -> Result<(), ()> + Clone + Send + Sync + 'static,
{
    let redis_settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(redis_settings);
    let client = redis::Client::open(info.clone()).map_err(|e| RedisBrokerError::InvalidUrl(Box::new(e)))?;
    let timeout = options.timeout;
    if within(timeout, is_cluster_node(&client)).await?.map_err(|e| RedisBrokerError::Connect(Box::new(e)))? {
        let cluster = ClusterClientBuilder::new(vec![info])
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(options.push_sender)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| RedisBrokerError::InvalidUrl(Box::new(e)))?;
        let conn = within(timeout, cluster.get_async_connection())
            .await?
            .map_err(|e| RedisBrokerError::Connect(Box::new(e)))?;
        tracing::info!("backplane: Redis is a cluster; using sharded pub/sub");
        return Ok(Link::Cluster(conn));
    }
    let config = ConnectionManagerConfig::new()
        .set_push_sender(options.push_sender)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_max_delay(Duration::from_secs(1));
    let conn = within(timeout, ConnectionManager::new_with_config(client, config))
        .await?
        .map_err(|e| RedisBrokerError::Connect(Box::new(e)))?;
    Ok(Link::Single(conn))
}

/// `what`, or [`RedisBrokerError::Connect`] when it takes longer than `timeout`.
async fn within<T>(timeout: Duration, what: impl Future<Output = T>) -> Result<T, RedisBrokerError> {
    tokio::time::timeout(timeout, what).await.map_err(|_| RedisBrokerError::Connect(Box::new(TimedOut(timeout))))
}

/// Whether the server behind `client` runs in cluster mode (`cluster_enabled:1`).
async fn is_cluster_node(client: &redis::Client) -> RedisResult<bool> {
    let mut probe = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut probe).await?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// Redis did not answer within the configured timeout.
#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
pub(crate) struct TimedOut(pub(crate) Duration);
