//! The state every connection of one server shares: configuration, services, the event
//! hub and the counters. Immutable after `build()` except for counters and the hub.

use std::sync::Arc;

use witrpc_core::ParameterSerializer;
use witrpc_core::session::Protocols;

use crate::auth::AccessTokenValidator;
use crate::config::ServerConfig;
use crate::events::EventHub;
use crate::registry::Registry;
use crate::stats::ServerStats;

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
    pub(crate) stats: ServerStats,
}
