//! `WitServerBuilder`: services, transport, serializer, token and limits.

use std::sync::Arc;
use std::time::Duration;

use witrpc_core::crypto::ServerEncryptor;
use witrpc_core::crypto::plain::PlainServerEncryptor;
use witrpc_core::crypto::plain_v2::PlainServerEncryptor as PlainServerEncryptorV2;
use witrpc_core::session::Protocols;
use witrpc_core::v2::ProtocolVersion;
use witrpc_core::{ParameterSerializer, Service};

use crate::auth::{AccessTokenValidator, NoAccessToken, StaticAccessToken};
use crate::broker::{Broker, BrokerInbound, InMemoryBroker};
use crate::error::ServerError;
use crate::events::EventHub;
use crate::limits;
use crate::registry::Registry;
use crate::server::{Shared, Stats, WitServer};
use crate::transport::ServerTransport;
use witrpc_core::session::{RateLimit, SlowConsumerPolicy};

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
    /// Groups one connection may be in at once. Default
    /// [`limits::DEFAULT_MAX_GROUPS_PER_CONNECTION`] (256).
    pub max_groups_per_connection: usize,
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
            max_groups_per_connection: limits::DEFAULT_MAX_GROUPS_PER_CONNECTION,
            event_policies: std::collections::HashMap::new(),
            keepalive_interval: Some(limits::DEFAULT_KEEPALIVE_INTERVAL),
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The transport of a [`WitServerBuilder`] that has none yet: `with_websocket(..)`
/// (from `witrpc-server-websocket`) or [`WitServerBuilder::with_transport`] picks one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransport;

/// Configures and builds a [`WitServer`].
///
/// The names follow the .NET `WitServerBuilder` options: `with_service`,
/// `with_websocket` (from `witrpc-server-websocket`), `with_json`, `with_msgpack`,
/// `with_access_token`. The type parameter is the transport chosen so far, so its
/// settings exist only once it is chosen: `.with_tls_pem(..)` before
/// `.with_websocket(..)` does not compile, and `build()` exists only with a transport.
///
/// ```compile_fail
/// // No transport yet: there is nothing to build.
/// let server = witrpc_server::WitServerBuilder::new().build();
/// ```
#[derive(Debug)]
pub struct WitServerBuilder<T = NoTransport> {
    services: Vec<Arc<dyn Service>>,
    transport: T,
    serializer: Option<Arc<dyn ParameterSerializer>>,
    validator: Option<Arc<dyn AccessTokenValidator>>,
    encryptor: Option<Arc<dyn ServerEncryptor>>,
    /// `None`: the default for the protocol-3 encryptor; `Some(None)`: protocol 2 off.
    encryptor_v2: Option<Option<Arc<dyn ServerEncryptor>>>,
    protocol_versions: Option<Vec<ProtocolVersion>>,
    config: ServerConfig,
    broker: Option<Arc<dyn Broker>>,
}

impl Default for WitServerBuilder<NoTransport> {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            transport: NoTransport,
            serializer: None,
            validator: None,
            encryptor: None,
            encryptor_v2: None,
            protocol_versions: None,
            broker: None,
            config: ServerConfig::default(),
        }
    }
}

impl WitServerBuilder<NoTransport> {
    /// An empty builder: no services, no transport, JSON parameters, no token.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: ServerTransport> WitServerBuilder<T> {
    /// The chosen transport, for transport crates' settings (e.g. `with_tls_pem`).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}

impl<T> WitServerBuilder<T> {
    /// Hosts `service` (a `FooServer` generated by `#[witrpc::service]`). Call once per
    /// contract; one server can host many.
    pub fn with_service(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Accepts connections through `transport` (replacing any chosen before).
    pub fn with_transport<U: ServerTransport>(self, transport: U) -> WitServerBuilder<U> {
        WitServerBuilder {
            services: self.services,
            transport,
            serializer: self.serializer,
            validator: self.validator,
            encryptor: self.encryptor,
            encryptor_v2: self.encryptor_v2,
            protocol_versions: self.protocol_versions,
            broker: self.broker,
            config: self.config,
        }
    }

    /// JSON parameters (System.Text.Json conventions). The default.
    #[cfg(feature = "json")]
    pub fn with_json(self) -> Self {
        self.with_parameter_serializer(Arc::new(witrpc_serializer_json::JsonSerializer))
    }

    /// MessagePack parameters (the .NET MessagePack plugin's format, LZ4 block compression).
    #[cfg(feature = "msgpack")]
    pub fn with_msgpack(self) -> Self {
        self.with_parameter_serializer(Arc::new(witrpc_serializer_msgpack::MessagePackSerializer::new()))
    }

    /// Any parameter serializer. Clients must use the same one: nothing negotiates it.
    pub fn with_parameter_serializer(mut self, serializer: Arc<dyn ParameterSerializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Requires clients to present `token` (compared in constant time).
    pub fn with_access_token(self, token: impl Into<String>) -> Self {
        self.with_access_token_validator(StaticAccessToken::new(token))
    }

    /// Validates tokens with `validator`.
    pub fn with_access_token_validator(mut self, validator: impl AccessTokenValidator) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// Requires every client to encrypt every message: the protocol-3 scheme (RSA-OAEP
    /// key transport, HKDF-SHA256, AES-256-GCM per direction, strict counters), as .NET's
    /// `WithEncryption()`. A client without encryption is refused at Initialization with
    /// a message saying so.
    ///
    /// Protocol-2 (.NET 2.x) clients get the 2.x scheme at the same time (RSA-OAEP key
    /// transport, AES-256-CBC with a fixed IV and no MAC: see SECURITY.md; refuse
    /// protocol 2 with [`WitServerBuilder::with_protocol_versions`] where that matters).
    #[cfg(feature = "encryption")]
    pub fn with_encryption(self) -> Self {
        self.with_encryptor(Arc::new(witrpc_crypto::encrypted::EncryptedServerEncryptor::new()))
            .with_encryptor_v2(Arc::new(witrpc_crypto::v2::EncryptedServerEncryptor::new()))
    }

    /// Uses `encryptor` for the protocol-3 Initialization handshake. Default: no
    /// encryption. Unless [`WitServerBuilder::with_encryptor_v2`] is called too, a
    /// custom encryptor turns protocol 2 off (it would otherwise stay unencrypted).
    pub fn with_encryptor(mut self, encryptor: Arc<dyn ServerEncryptor>) -> Self {
        self.encryptor = Some(encryptor);
        self.encryptor_v2.get_or_insert(None);
        self
    }

    /// Uses `encryptor` for the protocol-2 (.NET 2.x) handshake.
    pub fn with_encryptor_v2(mut self, encryptor: Arc<dyn ServerEncryptor>) -> Self {
        self.encryptor_v2 = Some(Some(encryptor));
        self
    }

    /// Which protocol versions clients may speak on the endpoint (default both:
    /// protocol 3 of .NET WitRPC 3.x and protocol 2 of .NET 2.x, told apart from each
    /// connection's Initialization). A refused client gets the clearest answer its
    /// version can read, then a close.
    ///
    /// ```
    /// use witrpc_server::{ProtocolVersion, WitServerBuilder};
    /// let builder = WitServerBuilder::new().with_protocol_versions([ProtocolVersion::V3]);
    /// ```
    pub fn with_protocol_versions(mut self, versions: impl IntoIterator<Item = ProtocolVersion>) -> Self {
        self.protocol_versions = Some(versions.into_iter().collect());
        self
    }

    /// Largest inbound message in bytes (default 16 MiB), enforced while reading.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Largest inbound message before authorization (default 64 KiB).
    pub fn with_max_handshake_message_size(mut self, bytes: usize) -> Self {
        self.config.max_handshake_message_size = bytes;
        self
    }

    /// Time a connection has to finish the handshake (default 10 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Requests one connection may run at once (default 128).
    pub fn with_max_in_flight_requests(mut self, n: usize) -> Self {
        self.config.max_in_flight_requests = n;
        self
    }

    /// Runs each connection's requests one at a time, in arrival order, as .NET does.
    pub fn with_sequential_requests(self) -> Self {
        self.with_max_in_flight_requests(1)
    }

    /// Messages queued per connection before a slow client is disconnected (default 1024).
    pub fn with_outbound_queue_capacity(mut self, n: usize) -> Self {
        self.config.outbound_queue_capacity = n;
        self
    }

    /// Pings every connection every `interval` (default 15 s; `None` turns pings off) and
    /// closes one that has been silent for `idle_timeout` (default 30 s), freeing its slot.
    pub fn with_keepalive(mut self, interval: Option<Duration>, idle_timeout: Duration) -> Self {
        self.config.keepalive_interval = interval;
        self.config.idle_timeout = idle_timeout;
        self
    }

    /// Keeps these upgrade-request headers (e.g. `user-agent`, `x-forwarded-for`) so
    /// methods and validators can read them from the [`witrpc_core::CallContext`].
    pub fn with_forwarded_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.forwarded_headers.extend(names.into_iter().map(|n| n.into().to_ascii_lowercase()));
        self
    }

    /// Outbound payload bytes queued per connection before a slow client is disconnected
    /// (default 16 MiB).
    pub fn with_max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.config.max_outbound_bytes = bytes;
        self
    }

    /// Holds every connection to `limit` (messages and bytes per second, token
    /// buckets): a peer over it is not read until its buckets refill, and a peer held
    /// for `limit.max_hold` without pause is closed with a reason (1008). Off by default.
    ///
    /// ```
    /// use witrpc_server::{RateLimit, WitServerBuilder};
    /// let builder = WitServerBuilder::new().with_rate_limit(RateLimit::new(1_000, 8 * 1024 * 1024));
    /// ```
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// How long a client's queue may stay above its capacity
    /// ([`WitServerBuilder::with_outbound_queue_capacity`]) before the client counts as
    /// slow and its events' [`SlowConsumerPolicy`] applies (default 5 s). Bursts that a
    /// reader drains within this time never disconnect it.
    pub fn with_slow_consumer_timeout(mut self, timeout: Duration) -> Self {
        self.config.slow_consumer_timeout = timeout;
        self
    }

    /// What happens when a client's queue has no room for event `event` (its wire
    /// name, e.g. `"ProgressChanged"`): disconnect it (the default), drop older
    /// instances of the event, or keep only the newest value.
    pub fn with_event_policy(mut self, event: impl Into<String>, policy: SlowConsumerPolicy) -> Self {
        self.config.event_policies.insert(event.into(), policy);
        self
    }

    /// Joins a cluster through `broker`: events, groups and presence span every server
    /// built with a broker of the same cluster (e.g. `witrpc-broker-redis`). Default: an
    /// [`InMemoryBroker`], a single node.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use witrpc_server::WitServerBuilder;
    /// use witrpc_server::broker::InMemoryBroker;
    /// let builder = WitServerBuilder::new().with_broker(Arc::new(InMemoryBroker::new("node-1")));
    /// ```
    pub fn with_broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Groups one connection may be in at once (default 256); joining one more fails
    /// with `GroupError::TooManyGroups`.
    pub fn with_max_groups_per_connection(mut self, n: usize) -> Self {
        self.config.max_groups_per_connection = n;
        self
    }

    /// Replaces every limit at once.
    pub fn with_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the configuration and builds the server (not yet listening).
    ///
    /// # Errors
    /// [`ServerError::NoService`], an invalid endpoint, a zero limit, or a `MethodId`
    /// collision between services.
    pub fn build(self) -> Result<WitServer, ServerError>
    where
        T: ServerTransport,
    {
        let transport: Box<dyn ServerTransport> = Box::new(self.transport);
        transport.validate()?;
        if self.services.is_empty() {
            return Err(ServerError::NoService);
        }
        let c = &self.config;
        if c.max_message_size == 0 || c.max_handshake_message_size == 0 {
            return Err(ServerError::Config("message size limits must be greater than 0"));
        }
        if c.max_in_flight_requests == 0 || c.max_in_flight_requests > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ServerError::Config("max_in_flight_requests must be at least 1"));
        }
        if c.keepalive_interval.is_some_and(|i| i.is_zero()) || c.idle_timeout.is_zero() {
            return Err(ServerError::Config("keepalive interval and idle timeout must be greater than 0"));
        }
        if c.outbound_queue_capacity == 0 || c.max_outbound_bytes == 0 {
            return Err(ServerError::Config("outbound_queue_capacity and max_outbound_bytes must be at least 1"));
        }
        let serializer = match self.serializer {
            Some(s) => s,
            None => default_serializer()?,
        };
        // A compressed argument may not inflate past what a plain message may be.
        let serializer = serializer.with_max_decoded_len(self.config.max_message_size).unwrap_or(serializer);
        let protocols = protocols(self.encryptor, self.encryptor_v2, self.protocol_versions)?;
        let registry = Registry::new(self.services)?;
        let broker = self.broker.unwrap_or_else(|| Arc::new(InMemoryBroker::default()));
        let hub = Arc::new(EventHub::new(
            serializer.clone(),
            self.config.event_policies.clone(),
            broker.clone(),
            registry.services(),
            self.config.max_groups_per_connection,
        ));
        let inbound: Arc<dyn BrokerInbound> = hub.clone();
        broker.attach(Arc::downgrade(&inbound));
        let shared = Shared {
            config: self.config,
            registry,
            hub,
            serializer,
            validator: self.validator.unwrap_or_else(|| Arc::new(NoAccessToken)),
            protocols,
            stats: Stats::default(),
        };
        Ok(WitServer::new(shared, transport))
    }
}

/// The accepted protocol versions with their key exchanges.
fn protocols(
    v3: Option<Arc<dyn ServerEncryptor>>,
    v2: Option<Option<Arc<dyn ServerEncryptor>>>,
    versions: Option<Vec<ProtocolVersion>>,
) -> Result<Protocols, ServerError> {
    let versions = versions.unwrap_or_else(|| vec![ProtocolVersion::V2, ProtocolVersion::V3]);
    if versions.is_empty() {
        return Err(ServerError::Config("with_protocol_versions needs at least one version"));
    }
    let v2 = match v2 {
        None => Some(Arc::new(PlainServerEncryptorV2) as Arc<dyn ServerEncryptor>),
        Some(v2) => v2,
    };
    let mut protocols = Protocols::v3(v3.unwrap_or_else(|| Arc::new(PlainServerEncryptor)));
    if versions.contains(&ProtocolVersion::V2) {
        match v2 {
            Some(v2) => protocols = protocols.with_v2(v2),
            None if versions.len() == 1 => {
                return Err(ServerError::Config(
                    "protocol 2 needs a protocol-2 key exchange next to a custom encryptor: call `with_encryptor_v2`",
                ));
            }
            None => {}
        }
    }
    if !versions.contains(&ProtocolVersion::V3) {
        protocols = protocols.without_v3();
    }
    Ok(protocols)
}

#[cfg(feature = "json")]
fn default_serializer() -> Result<Arc<dyn ParameterSerializer>, ServerError> {
    Ok(Arc::new(witrpc_serializer_json::JsonSerializer))
}

#[cfg(not(feature = "json"))]
fn default_serializer() -> Result<Arc<dyn ParameterSerializer>, ServerError> {
    Err(ServerError::Config("no parameter serializer: enable the `json` feature or call `with_parameter_serializer`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", WitServerBuilder::new().with_access_token("s3cr3t-token"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
