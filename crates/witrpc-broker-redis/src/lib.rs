#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! A Redis backplane for witrpc: several servers (nodes) behind a load balancer behave
//! as one. Events raised on any node reach their receivers on every node; groups and
//! presence (who is in a group, which connections a user has) span the cluster.
//!
//! Part of an independent, WitRPC-compatible Rust implementation (not the official
//! .NET WitRPC). The server's event hub decides what to send (see
//! `witrpc_server::broker`); this crate carries it over Redis pub/sub and keeps presence
//! in Redis keys. The wire (topics, frames, keys) is described in `ARCHITECTURE.md`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use witrpc_broker_redis::{RedisBroker, RedisBrokerConfig};
//!
//! let broker = RedisBroker::connect(RedisBrokerConfig::new("redis://127.0.0.1:6379").with_node_id("node-1")).await?;
//! let builder = witrpc_server::WitServerBuilder::new().with_broker(Arc::new(broker));
//! # Ok(()) }
//! ```
//!
//! # One server or a Redis Cluster
//!
//! At connect the broker asks the server at the URL whether it runs in cluster mode. A
//! single server gets classic pub/sub; a **Redis Cluster** (7.0+) gets sharded pub/sub
//! (`SSUBSCRIBE`/`SPUBLISH`): each topic's channel lives on the shard owning its hash
//! slot, so event traffic spreads over the shards instead of being copied to every
//! cluster node. The cluster's other nodes are discovered from the one in the URL.
//! Presence keys share one slot (the prefix is their hash tag).
//!
//! # What it guarantees, and what not
//!
//! - Delivery between nodes is at most once, in order per origin node and topic (on a
//!   single Redis server also across topics; on a cluster two topics may sit on two
//!   shards, so a group event and a broadcast raised after it may arrive in either
//!   order). When
//!   Redis is unreachable, local delivery goes on, cross-node events are dropped and
//!   counted ([`RedisBroker::lost_frames`], metric `witrpc_backplane_lost_total`, a
//!   warning in the log), and delivery resumes by itself when Redis is back
//!   (subscriptions and presence are restored).
//! - A node's presence entries expire [`RedisBrokerConfig::with_presence_ttl`] after its
//!   last heartbeat (default 6 s), so a crashed node disappears from presence within 10 s.
//! - Everything is bounded: the publish queue and the inbound queue have fixed
//!   capacities; what does not fit is dropped and counted, never buffered.
//! - **Shared event history**: for events a server keeps history
//!   of (`WitServerBuilder::with_event_history`), the broker is the history of the
//!   whole cluster (`Broker::history`). One Lua script numbers each such event in its
//!   stream, appends it to a capped Redis stream and publishes it with its position, so
//!   every node delivers a stream in one order and a client resumes on any node, also on
//!   a node restarted after a crash. Such events reach local clients through Redis too;
//!   while Redis is unreachable they are dropped and counted, and a Redis restart starts
//!   new epochs (clients are told `recovered: false`). Closed connections' session
//!   records (identity, groups, positions) are kept in Redis for the longest history
//!   age. On a Redis Cluster the same holds (a stream's keys share its channel's slot).
//!
//! # Security
//!
//! Encryption is per client connection, at the edge: frames carry event parameters in
//! plain text. Use `rediss://` (feature `tls`) and a Redis ACL user limited to the
//! prefix's keys and channels, and set a shared secret
//! ([`RedisBrokerConfig::with_secret`]) so every frame carries an HMAC-SHA256 that
//! receivers check: a client of the same Redis without the secret cannot inject events.
//!
//! # Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `tls` | `rediss://` URLs (rustls) |

mod broker;
mod config;
mod control;
mod error;
mod history;
mod keys;
mod link;

pub use broker::RedisBroker;
pub use config::RedisBrokerConfig;
pub use error::RedisBrokerError;
