//! End-to-end tests over real sockets on 127.0.0.1 (port 0): the server, the Rust
//! client and raw WebSocket peers that misbehave on purpose.

mod auth;
mod backpressure;
mod bursts;
mod calls;
mod churn;
mod cluster;
mod cluster_processes;
mod encryption;
mod events;
mod hostile;
mod keepalive;
mod limits;
mod observability;
mod reconnect;
mod robustness;
mod security;
mod shutdown;
mod util;
