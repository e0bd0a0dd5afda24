//! End-to-end tests over real sockets on 127.0.0.1 (port 0): the server, the Rust
//! client and raw WebSocket peers that misbehave on purpose.

mod auth;
mod axum;
mod backpressure;
mod bursts;
mod calls;
mod churn;
mod cluster;
mod cluster_processes;
mod encryption;
mod events;
mod hostile;
mod hostile_http;
mod hostile_preauth;
mod keepalive;
mod limits;
mod observability;
mod pipeline;
mod protocol2;
mod reconnect;
mod redis_cluster;
mod resume;
mod resume_cluster;
mod robustness;
mod security;
mod send_sync;
mod shutdown;
mod tokens;
mod util;
