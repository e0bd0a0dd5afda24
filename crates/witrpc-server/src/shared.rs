//! The state every connection of one server shares: configuration, services, the event
//! hub and the counters. Immutable after `build()` except for counters and the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use witrpc_core::ParameterSerializer;
use witrpc_core::session::Protocols;

use crate::auth::AccessTokenValidator;
use crate::config::ServerConfig;
use crate::events::EventHub;
use crate::registry::Registry;

/// Counters, readable while the server runs.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) active: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) slow_consumers: Arc<AtomicU64>,
}

/// Everything a connection task needs; immutable except for counters and the hub.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    pub(crate) serializer: Arc<dyn ParameterSerializer>,
    pub(crate) validator: Arc<dyn AccessTokenValidator>,
    /// The accepted protocol versions and their key exchanges.
    pub(crate) protocols: Protocols,
    pub(crate) hub: Arc<EventHub>,
    pub(crate) stats: Stats,
}

impl Shared {
    pub(crate) fn connection_opened(&self) {
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::CONNECTIONS_ACTIVE).increment(1.0);
        metrics::counter!(crate::metrics::CONNECTIONS_TOTAL).increment(1);
    }

    pub(crate) fn connection_closed(&self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::CONNECTIONS_ACTIVE).decrement(1.0);
    }
}
