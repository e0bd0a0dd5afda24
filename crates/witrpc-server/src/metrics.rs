//! Metrics through the `metrics` facade. Nothing is recorded unless the application
//! installs a recorder (e.g. `metrics-exporter-prometheus`; see `examples/prometheus.rs`).
//!
//! The server's figures are fed from one place: the recording functions of
//! [`ServerStats`](crate::stats::ServerStats) update its counters and call the
//! functions below, so the facade and [`WitServer::stats`](crate::WitServer::stats)
//! count the same events. (The backplane counters are recorded where frames cross
//! nodes, in `events.rs` and the broker crates.)
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `witrpc_connections_active` | gauge | |
//! | `witrpc_connections_total` | counter | |
//! | `witrpc_auth_failures_total` | counter | |
//! | `witrpc_slow_consumer_disconnects_total` | counter | |
//! | `witrpc_events_dropped_total` | counter | |
//! | `witrpc_outbound_queue_bytes` | gauge (all connections) | |
//! | `witrpc_messages_in_total`, `witrpc_messages_out_total` | counter | |
//! | `witrpc_request_duration_seconds` | histogram | `method`, `status` |
//! | `witrpc_backplane_published_total` | counter (frames sent to other nodes) | |
//! | `witrpc_backplane_received_total` | counter (frames from other nodes) | |
//! | `witrpc_backplane_lost_total` | counter (frames not sent or not delivered) | `reason` |

/// `witrpc_connections_active`.
pub const CONNECTIONS_ACTIVE: &str = "witrpc_connections_active";
/// `witrpc_connections_total`.
pub const CONNECTIONS_TOTAL: &str = "witrpc_connections_total";
/// `witrpc_auth_failures_total`.
pub const AUTH_FAILURES: &str = "witrpc_auth_failures_total";
/// `witrpc_slow_consumer_disconnects_total`.
pub const SLOW_CONSUMERS: &str = "witrpc_slow_consumer_disconnects_total";
/// `witrpc_outbound_queue_bytes`.
pub const OUTBOUND_BYTES: &str = "witrpc_outbound_queue_bytes";
/// `witrpc_messages_in_total`.
pub const MESSAGES_IN: &str = "witrpc_messages_in_total";
/// `witrpc_messages_out_total`.
pub const MESSAGES_OUT: &str = "witrpc_messages_out_total";
/// `witrpc_request_duration_seconds`.
pub const REQUEST_DURATION: &str = "witrpc_request_duration_seconds";

/// `witrpc_events_dropped_total`: events dropped or replaced by a `DropOldest` or
/// `CoalesceLatest` policy.
pub const EVENTS_DROPPED: &str = "witrpc_events_dropped_total";

/// Records a finished call (from `ServerStats::call_finished`).
pub(crate) fn request(method: &'static str, status: i32, elapsed: std::time::Duration) {
    // Static labels for the statuses a server sends: no allocation per call.
    let status: std::borrow::Cow<'static, str> = match status {
        200 => "200".into(),
        400 => "400".into(),
        500 => "500".into(),
        561 => "561".into(),
        other => other.to_string().into(),
    };
    metrics::histogram!(REQUEST_DURATION, "method" => method, "status" => status).record(elapsed.as_secs_f64());
}

pub(crate) fn connection_opened() {
    metrics::gauge!(CONNECTIONS_ACTIVE).increment(1.0);
    metrics::counter!(CONNECTIONS_TOTAL).increment(1);
}

pub(crate) fn connection_closed() {
    metrics::gauge!(CONNECTIONS_ACTIVE).decrement(1.0);
}

pub(crate) fn auth_failed() {
    metrics::counter!(AUTH_FAILURES).increment(1);
}

pub(crate) fn message_in() {
    metrics::counter!(MESSAGES_IN).increment(1);
}

pub(crate) fn message_out() {
    metrics::counter!(MESSAGES_OUT).increment(1);
}

pub(crate) fn events_dropped(n: u64) {
    metrics::counter!(EVENTS_DROPPED).increment(n);
}

pub(crate) fn slow_consumer() {
    metrics::counter!(SLOW_CONSUMERS).increment(1);
}

pub(crate) fn outbound_bytes(delta: i64) {
    metrics::gauge!(OUTBOUND_BYTES).increment(delta as f64);
}

/// `witrpc_backplane_published_total`: event frames handed to the cluster broker's backend.
pub const BACKPLANE_PUBLISHED: &str = "witrpc_backplane_published_total";
/// `witrpc_backplane_received_total`: event frames received from other nodes.
pub const BACKPLANE_RECEIVED: &str = "witrpc_backplane_received_total";
/// `witrpc_backplane_lost_total`: event frames lost between nodes, by `reason`
/// (`queue_full`, `publish_failed`, `inbound_full`, `malformed`, `unknown_event`, `too_long`).
pub const BACKPLANE_LOST: &str = "witrpc_backplane_lost_total";
