//! `WitClientBuilder`: transport, serializer, token, limits; `connect` runs the handshake.

use std::sync::Arc;
use std::time::Duration;

use witrpc_core::ParameterSerializer;
use witrpc_core::crypto::{ClientEncryptor, CryptoError};
use witrpc_core::session::Keepalive;
use witrpc_core::v2::ProtocolVersion;

use crate::client::{Inner, WitClient};
use crate::connection::Subscriptions;
use crate::connector::{Connector, EncryptorFactory, TokenProvider};
use crate::error::ClientError;
use crate::reconnect::ReconnectPolicy;
use crate::transport::ClientTransport;

/// Default time a call waits for its response: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default buffer of each event subscription: 1024 events.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Default largest inbound message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Default interval between keepalive pings: 15 s.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Default silence after which the server is taken for dead: 30 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The transport of a [`WitClientBuilder`] that has none yet: `with_websocket(..)` (from
/// `witrpc-client-websocket`) or [`WitClientBuilder::with_transport`] picks one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTransport;

/// Configures and connects a [`WitClient`].
///
/// The type parameter is the transport chosen so far: its settings (e.g.
/// `with_tls_root_ca_pem`) exist only once it is chosen, and `connect` only with one.
///
/// ```compile_fail
/// # async fn demo() {
/// // No transport yet: there is nothing to connect with.
/// let client = witrpc_client::WitClientBuilder::new().connect(std::time::Duration::from_secs(5)).await;
/// # }
/// ```
pub struct WitClientBuilder<T = NoTransport> {
    transport: T,
    serializer: Option<Arc<dyn ParameterSerializer>>,
    token: String,
    provider: Option<TokenProvider>,
    request_timeout: Duration,
    event_capacity: usize,
    max_message_size: usize,
    encryptor: Option<EncryptorFactory>,
    protocol: ProtocolVersion,
    keepalive: Keepalive,
    reconnect: Option<ReconnectPolicy>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for WitClientBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitClientBuilder")
            .field("transport", &self.transport)
            .field("serializer", &self.serializer.as_ref().map(|s| s.name()))
            .field("token", &if self.token.is_empty() { "<none>" } else { "<redacted>" })
            .field("token_provider", &self.provider.is_some())
            .field("encryption", &self.encryptor.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for WitClientBuilder<NoTransport> {
    fn default() -> Self {
        Self::new()
    }
}

impl WitClientBuilder<NoTransport> {
    /// A builder with JSON parameters, no token and the default limits.
    pub fn new() -> Self {
        Self {
            transport: NoTransport,
            serializer: None,
            token: String::new(),
            provider: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            encryptor: None,
            protocol: ProtocolVersion::V3,
            keepalive: Keepalive::new(Some(DEFAULT_KEEPALIVE_INTERVAL), DEFAULT_IDLE_TIMEOUT),
            reconnect: None,
        }
    }
}

impl<T: ClientTransport> WitClientBuilder<T> {
    /// The chosen transport, for transport crates' settings (e.g. `with_tls_root_ca_pem`).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}

impl<T> WitClientBuilder<T> {
    /// Pings the server every `interval` (default 15 s; `None` turns pings off) and
    /// treats it as dead after `idle_timeout` (default 30 s) without any traffic: the
    /// connection closes and pending calls fail with [`ClientError::ConnectionClosed`].
    pub fn with_keepalive(mut self, interval: Option<Duration>, idle_timeout: Duration) -> Self {
        self.keepalive = Keepalive::new(interval, idle_timeout.max(Duration::from_millis(1)));
        self
    }

    /// Reconnects after a lost connection (not after `disconnect`), with exponential
    /// backoff and jitter, repeating the handshake. Calls in flight when the connection
    /// drops fail with [`ClientError::ConnectionClosed`]; calls made while reconnecting
    /// fail the same way at once. Event streams continue and yield
    /// `EventError::Reconnected` where events may have been missed. Off by default.
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Encrypts every message with the protocol-3 scheme (a fresh RSA-2048 key per
    /// connection, then AES-256-GCM per direction), as .NET's `WithEncryption()`. The
    /// server must use encryption too; a mismatch fails the handshake with a message.
    /// Generating the key takes about a third of a second of CPU; reconnect attempts
    /// that never reach a server keep it for the next one instead of generating again.
    ///
    /// With [`WitClientBuilder::with_protocol`] 2 it is the 2.x scheme instead (RSA-OAEP
    /// key transport, AES-256-CBC with a fixed IV, no MAC: see SECURITY.md).
    #[cfg(feature = "encryption")]
    pub fn with_encryption(mut self) -> Self {
        self.encryptor = Some(Arc::new(|protocol| {
            let encryptor: Box<dyn ClientEncryptor> = match protocol {
                ProtocolVersion::V2 => Box::new(witrpc_crypto::v2::EncryptedClientEncryptor::generate()?),
                _ => Box::new(witrpc_crypto::encrypted::EncryptedClientEncryptor::generate()?),
            };
            Ok(encryptor)
        }));
        self
    }

    /// Encrypts with a custom key exchange: `make` builds one [`ClientEncryptor`] per
    /// connection (it runs on a blocking thread, so it may generate keys). An attempt
    /// that fails before its Initialization is sent (server down, upgrade refused) leaves
    /// its encryptor to the next attempt. The server must speak the same scheme, in the
    /// protocol this client speaks.
    pub fn with_encryptor<F>(mut self, make: F) -> Self
    where
        F: Fn() -> Result<Box<dyn ClientEncryptor>, CryptoError> + Send + Sync + 'static,
    {
        self.encryptor = Some(Arc::new(move |_protocol| make()));
        self
    }

    /// Speaks `protocol` (default [`ProtocolVersion::V3`], .NET WitRPC 3.x and witrpc
    /// servers); [`ProtocolVersion::V2`] talks to an existing .NET WitRPC 2.x server
    /// (a witrpc server accepts both).
    pub fn with_protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// Connects through `transport` (`with_websocket` from `witrpc-client-websocket`
    /// sets this for you), replacing any chosen before.
    pub fn with_transport<U: ClientTransport>(self, transport: U) -> WitClientBuilder<U> {
        WitClientBuilder {
            transport,
            serializer: self.serializer,
            token: self.token,
            provider: self.provider,
            request_timeout: self.request_timeout,
            event_capacity: self.event_capacity,
            max_message_size: self.max_message_size,
            encryptor: self.encryptor,
            protocol: self.protocol,
            keepalive: self.keepalive,
            reconnect: self.reconnect,
        }
    }

    /// JSON parameters (the default). Must match the server.
    #[cfg(feature = "json")]
    pub fn with_json(self) -> Self {
        self.with_parameter_serializer(Arc::new(witrpc_serializer_json::JsonSerializer))
    }

    /// MessagePack parameters. Must match the server.
    #[cfg(feature = "msgpack")]
    pub fn with_msgpack(self) -> Self {
        self.with_parameter_serializer(Arc::new(witrpc_serializer_msgpack::MessagePackSerializer::new()))
    }

    /// Any parameter serializer. Must match the server: nothing negotiates it.
    pub fn with_parameter_serializer(mut self, serializer: Arc<dyn ParameterSerializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// The access token sent at authorization and on every request (a constant
    /// provider: it replaces `with_token_provider`).
    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.provider = None;
        self.token = token.into();
        self
    }

    /// Asks `provider` for an access token at every connect (reconnects included) and
    /// again before the current one expires: when the server says when the token
    /// expires (our `token-refresh` extension), the client refreshes it in-band at
    /// about 80 % of its lifetime (at most 5 s before the expiry, at least half-way),
    /// without reconnecting; requests are stamped with the new token once the server
    /// accepted it. A refused refresh closes the client for good, even with
    /// `with_reconnect` ([`ClientError::TokenRefreshRefused`]); a failing provider is asked again a
    /// second later, until the token expires. Replaces `with_access_token`.
    ///
    /// ```
    /// use witrpc_client::WitClientBuilder;
    /// let builder = WitClientBuilder::new().with_token_provider(|| async {
    ///     // e.g. ask the identity provider for a fresh token
    ///     Ok::<_, std::io::Error>("fresh-token".to_owned())
    /// });
    /// # drop(builder);
    /// ```
    pub fn with_token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let provider: TokenProvider = Arc::new(move || {
            let token = provider();
            Box::pin(async move { token.await.map_err(Into::into) })
        });
        self.provider = Some(provider);
        self.token = String::new();
        self
    }

    /// How long a call waits for its response (default 30 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Events buffered per subscription before the stream reports a lag (default 1024).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Largest inbound message (default 16 MiB).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Connects and runs the protocol-3 handshake (Initialization, Authorization), all
    /// within `timeout`.
    ///
    /// # Errors
    /// [`ClientError::ServerFull`] (HTTP 503), [`ClientError::Unauthorized`],
    /// [`ClientError::ProtocolMismatch`], [`ClientError::Timeout`], transport errors.
    ///
    /// # Cancel safety
    /// Dropping the future drops the half-open connection.
    pub async fn connect(self, timeout: Duration) -> Result<WitClient, ClientError>
    where
        T: ClientTransport,
    {
        let transport: Box<dyn ClientTransport> = Box::new(self.transport);
        let serializer = match self.serializer.clone() {
            Some(s) => s,
            None => default_serializer()?,
        };
        let connector = Arc::new(Connector {
            transport: Arc::from(transport),
            max_message_size: self.max_message_size,
            encryptor: self.encryptor.clone(),
            protocol: self.protocol,
            token: self.token.clone(),
            provider: self.provider.clone(),
            keepalive: self.keepalive,
            timeout,
            pipeline: std::sync::atomic::AtomicBool::new(false),
            unsent_key: std::sync::Mutex::new(None),
        });
        let subscriptions = Arc::new(Subscriptions::new());
        let conn = connector.open(subscriptions.clone()).await?;
        conn.start();
        let inner = Inner {
            conn: std::sync::Mutex::new(Arc::new(conn)),
            subscriptions,
            serializer,
            token: self.token.clone(),
            request_timeout: self.request_timeout,
            event_capacity: self.event_capacity,
            finished: tokio_util::sync::CancellationToken::new(),
            supervisor: std::sync::Mutex::new(None),
        };
        Ok(WitClient::start(inner, self.reconnect.map(|policy| (connector, policy))))
    }
}

#[cfg(feature = "json")]
fn default_serializer() -> Result<Arc<dyn ParameterSerializer>, ClientError> {
    Ok(Arc::new(witrpc_serializer_json::JsonSerializer))
}

#[cfg(not(feature = "json"))]
fn default_serializer() -> Result<Arc<dyn ParameterSerializer>, ClientError> {
    Err(ClientError::NoSerializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let builder = WitClientBuilder::new().with_access_token("s3cr3t-token");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
