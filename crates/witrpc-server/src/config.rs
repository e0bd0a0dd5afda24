//! [`ServerConfig`]: the limits and timeouts of a server, with their defaults.

use std::time::Duration;

use witrpc_core::session::{RateLimit, SlowConsumerPolicy};

use crate::limits;

/// Limits and timeouts of a server; every field has a safe default (see [`crate::limits`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest inbound message. Default [`limits::DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB).
    pub max_message_size: usize,
    /// Largest inbound message before authorization. Default 64 KiB.
    pub max_handshake_message_size: usize,
    /// Time to finish the handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Concurrent requests per connection. Default 128; 1 gives .NET's sequential order.
    pub max_in_flight_requests: usize,
    /// Outbound queue length per connection. Default 1024.
    pub outbound_queue_capacity: usize,
    /// Outbound payload bytes queued per connection. Default 16 MiB.
    pub max_outbound_bytes: usize,
    /// How long a connection's queue may stay above its capacity before the client
    /// counts as slow. Default 5 s.
    pub slow_consumer_timeout: Duration,
    /// Inbound rate limits per connection. Default: none.
    pub rate_limit: Option<RateLimit>,
    /// Interval between keepalive pings; `None` disables them. Default 15 s.
    pub keepalive_interval: Option<Duration>,
    /// A connection silent for this long is closed (1001) and its slot freed. Default 30 s.
    pub idle_timeout: Duration,
    /// Slow-consumer policy per event wire name (default for all: `Disconnect`).
    pub event_policies: std::collections::HashMap<String, SlowConsumerPolicy>,
    /// History kept per event wire name for resumable streams
    /// ([`crate::WitServerBuilder::with_event_history`]). Default: none.
    pub event_history: std::collections::HashMap<String, crate::HistoryLimits>,
    /// Groups one connection may be in at once. Default
    /// [`limits::DEFAULT_MAX_GROUPS_PER_CONNECTION`] (256).
    pub max_groups_per_connection: usize,
    /// How long a connection stays open past its token's expiry
    /// ([`crate::Authorization::AllowUntil`]) before it is closed. Default
    /// [`limits::DEFAULT_TOKEN_EXPIRY_GRACE`] (2 s).
    pub token_expiry_grace: Duration,
    /// Upgrade-request headers kept for [`witrpc_core::CallContext::headers`] (lower-case
    /// names). Default: none.
    pub forwarded_headers: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_size: limits::DEFAULT_MAX_MESSAGE_SIZE,
            max_handshake_message_size: limits::DEFAULT_MAX_HANDSHAKE_MESSAGE_SIZE,
            handshake_timeout: limits::DEFAULT_HANDSHAKE_TIMEOUT,
            max_in_flight_requests: limits::DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            outbound_queue_capacity: limits::DEFAULT_OUTBOUND_QUEUE_CAPACITY,
            max_outbound_bytes: limits::DEFAULT_MAX_OUTBOUND_BYTES,
            slow_consumer_timeout: limits::DEFAULT_SLOW_CONSUMER_TIMEOUT,
            rate_limit: None,
            forwarded_headers: Vec::new(),
            token_expiry_grace: limits::DEFAULT_TOKEN_EXPIRY_GRACE,
            max_groups_per_connection: limits::DEFAULT_MAX_GROUPS_PER_CONNECTION,
            event_policies: std::collections::HashMap::new(),
            event_history: std::collections::HashMap::new(),
            keepalive_interval: Some(limits::DEFAULT_KEEPALIVE_INTERVAL),
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
        }
    }
}
