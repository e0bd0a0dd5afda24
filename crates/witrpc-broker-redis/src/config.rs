//! Settings of the Redis broker.

use std::fmt;
use std::time::Duration;

/// Settings of a [`crate::RedisBroker`]; every field has a default that suits a LAN.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisBrokerConfig {
    pub(crate) url: String,
    pub(crate) node_id: Option<String>,
    pub(crate) prefix: String,
    pub(crate) publish_capacity: usize,
    pub(crate) inbound_capacity: usize,
    pub(crate) presence_ttl: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) timeout: Duration,
    pub(crate) secret: Option<Vec<u8>>,
}

impl fmt::Debug for RedisBrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBrokerConfig")
            .field("node_id", &self.node_id)
            .field("prefix", &self.prefix)
            .field("publish_capacity", &self.publish_capacity)
            .field("inbound_capacity", &self.inbound_capacity)
            .field("presence_ttl", &self.presence_ttl)
            .field("heartbeat", &self.heartbeat)
            .field("timeout", &self.timeout)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl RedisBrokerConfig {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`); RESP3 is always used.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: None,
            prefix: "witrpc".into(),
            publish_capacity: 8192,
            inbound_capacity: 8192,
            presence_ttl: Duration::from_secs(6),
            heartbeat: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            secret: None,
        }
    }

    /// This node's id, unique in the cluster (1 to 64 of `A-Z a-z 0-9 - _ .`).
    /// Default: a random UUID.
    #[must_use]
    pub fn with_node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// Prefix of every channel and key (default `witrpc`): clusters sharing one Redis
    /// use different prefixes.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Frames waiting to be published (default 8192). When Redis is slower than the
    /// publish rate, what does not fit is dropped and counted, never buffered.
    #[must_use]
    pub fn with_publish_capacity(mut self, frames: usize) -> Self {
        self.publish_capacity = frames.max(1);
        self
    }

    /// Frames received and not yet delivered (default 8192); beyond, dropped and counted.
    #[must_use]
    pub fn with_inbound_capacity(mut self, frames: usize) -> Self {
        self.inbound_capacity = frames.max(1);
        self
    }

    /// How long a node's presence outlives its last heartbeat (default 6 s); the
    /// heartbeat runs every [`RedisBrokerConfig::with_heartbeat`] (default 2 s), so a
    /// crashed node leaves presence within ttl + heartbeat.
    #[must_use]
    pub fn with_presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// Interval of the presence heartbeat (default 2 s); keep it well below the ttl.
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Longest wait for one Redis operation (default 2 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Signs every frame with HMAC-SHA256 under `secret` and drops frames whose
    /// signature does not verify (counted as `bad_signature`). Every node of the cluster
    /// needs the same secret. Default: no signature.
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}
