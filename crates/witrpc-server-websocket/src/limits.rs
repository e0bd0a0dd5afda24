//! [`WebSocketLimits`]: what a peer may make the transport hold before it is trusted.
//!
//! The server's own limits (`witrpc_server::limits`) cover WitRPC messages; these cover
//! what happens before and around them: TCP connections that have not finished the
//! HTTP upgrade, upgraded connections that have not authorized, request headers, and
//! per-address quotas. Every default is sized for a server on the open internet.

use std::net::IpAddr;
use std::time::Duration;

/// Largest HTTP request head (request line and headers): 16 KiB. Browsers send a few
/// hundred bytes to a WebSocket endpoint (cookies included, rarely over 8 KiB); hyper's
/// own default (~400 KiB) let 5,000 never-ending headers hold 2 GB. hyper needs at
/// least 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most HTTP request headers: 64. An upgrade request carries about a dozen.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// Time from TCP accept to a complete HTTP request head (TLS handshake included): 10 s,
/// then **408** and close (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket's accept queue: 4096 connections (`TcpListener::bind` asks for
/// 128, as the standard library does; Linux caps the value at `net.core.somaxconn`,
/// 4096 by default since 5.4).
pub const DEFAULT_ACCEPT_BACKLOG: u32 = 4096;

/// Connections that have not finished the upgrade, when not set: `max(64, max_clients)`.
/// Each costs at most [`DEFAULT_MAX_HEADER_BYTES`] of buffer for at most
/// [`DEFAULT_HEADER_READ_TIMEOUT`]; keeping them bounded also keeps idle sockets from
/// exhausting file descriptors.
pub const MIN_PENDING_UPGRADES: usize = 64;

/// What an unauthorized connection may have waiting to be written (Pongs, handshake
/// replies, 561 answers) before the transport stops reading it: 64 KiB. A peer that
/// sends Pings and never reads is held there instead of growing the server.
pub const DEFAULT_MAX_WRITE_BUFFER_BEFORE_AUTHORIZATION: usize = 64 * 1024;

/// A token-bucket rate of new connections: `per_second` on average, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ConnectRate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many may come at once.
    pub burst: u32,
}

impl ConnectRate {
    /// `per_second` on average, up to `burst` at once.
    ///
    /// ```
    /// let rate = witrpc_server_websocket::ConnectRate::new(10.0, 20);
    /// assert_eq!(rate.burst, 20);
    /// ```
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// Limits on what peers may make the WebSocket transport hold, set with
/// [`crate::WebSocketOptions::with_websocket_limits`].
///
/// Start from [`Default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use witrpc_server_websocket::{ConnectRate, WebSocketLimits};
///
/// let limits = WebSocketLimits::default()
///     .with_max_connections_per_ip(Some(32))
///     .with_new_connections_per_ip(Some(ConnectRate::new(5.0, 20)))
///     .with_header_read_timeout(Duration::from_secs(5));
/// assert_eq!(limits.max_connections_per_ip, Some(32));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WebSocketLimits {
    /// Largest HTTP request head in bytes (at least 8 KiB); bigger gets **431**.
    /// Default [`DEFAULT_MAX_HEADER_BYTES`] (16 KiB).
    pub max_header_bytes: usize,
    /// Most request headers; more gets **431**. Default [`DEFAULT_MAX_HEADERS`] (64).
    pub max_headers: usize,
    /// Time from accept to a complete request head, then **408**. Default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`] (10 s).
    pub header_read_timeout: Duration,
    /// Connections that have not finished the HTTP upgrade (plain HTTP connections to
    /// other paths included); beyond it new sockets get **503** at once, before
    /// anything is read. `None` (default): `max(64, max_clients)`.
    pub max_pending_upgrades: Option<usize>,
    /// Upgraded connections that have not authorized yet; beyond it upgrades get
    /// **503**. `None` (default): `max_clients` (each one's buffers are capped by the
    /// pre-authorization limits, so this is a share of the slots, not a memory bound);
    /// set it lower to keep slots for clients that authorize.
    pub max_unauthorized: Option<usize>,
    /// What an unauthorized connection may have waiting to be written before the
    /// transport stops reading it. Default
    /// [`DEFAULT_MAX_WRITE_BUFFER_BEFORE_AUTHORIZATION`] (64 KiB). After authorization
    /// the cap is `max_message_size` + 16 KiB (one maximal message plus a batch).
    pub max_write_buffer_before_authorization: usize,
    /// Connections open at once from one address (an IPv6 address counts by its /64);
    /// beyond it new sockets get **503**. `None` (default): no limit, because many users
    /// behind one NAT share an address; set it when clients are spread out.
    pub max_connections_per_ip: Option<usize>,
    /// New connections per second from one address (token bucket); beyond it new
    /// sockets get **429**. `None` (default): no limit.
    pub new_connections_per_ip: Option<ConnectRate>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed for
    /// the per-address limits (exact addresses). Empty (default): the headers are
    /// ignored and the TCP peer is the address, since anyone can send them.
    pub trusted_proxies: Vec<IpAddr>,
    /// The listening socket's accept queue (`listen(2)` backlog): connections the kernel
    /// completes before the server accepts them. Thousands of clients reconnecting at
    /// once (a node restart) overflow a short queue, and each dropped SYN costs its
    /// client a one-second retry. Default [`DEFAULT_ACCEPT_BACKLOG`] (4096); the kernel
    /// caps it at `net.core.somaxconn`.
    pub accept_backlog: u32,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_pending_upgrades: None,
            max_unauthorized: None,
            max_write_buffer_before_authorization: DEFAULT_MAX_WRITE_BUFFER_BEFORE_AUTHORIZATION,
            max_connections_per_ip: None,
            new_connections_per_ip: None,
            trusted_proxies: Vec::new(),
            accept_backlog: DEFAULT_ACCEPT_BACKLOG,
        }
    }
}

impl WebSocketLimits {
    /// Sets [`Self::max_header_bytes`].
    pub fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`Self::max_headers`].
    pub fn with_max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`Self::header_read_timeout`].
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`Self::max_pending_upgrades`].
    pub fn with_max_pending_upgrades(mut self, count: Option<usize>) -> Self {
        self.max_pending_upgrades = count;
        self
    }

    /// Sets [`Self::max_unauthorized`].
    pub fn with_max_unauthorized(mut self, count: Option<usize>) -> Self {
        self.max_unauthorized = count;
        self
    }

    /// Sets [`Self::max_write_buffer_before_authorization`].
    pub fn with_max_write_buffer_before_authorization(mut self, bytes: usize) -> Self {
        self.max_write_buffer_before_authorization = bytes;
        self
    }

    /// Sets [`Self::max_connections_per_ip`].
    pub fn with_max_connections_per_ip(mut self, count: Option<usize>) -> Self {
        self.max_connections_per_ip = count;
        self
    }

    /// Sets [`Self::new_connections_per_ip`].
    pub fn with_new_connections_per_ip(mut self, rate: Option<ConnectRate>) -> Self {
        self.new_connections_per_ip = rate;
        self
    }

    /// Sets [`Self::accept_backlog`] (at least 1).
    pub fn with_accept_backlog(mut self, backlog: u32) -> Self {
        self.accept_backlog = backlog.max(1);
        self
    }

    /// Sets [`Self::trusted_proxies`].
    pub fn with_trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// The pre-upgrade cap in effect for `max_clients`.
    pub(crate) fn pending_upgrades(&self, max_clients: usize) -> usize {
        self.max_pending_upgrades.unwrap_or(max_clients.max(MIN_PENDING_UPGRADES))
    }

    /// The pre-authorization cap in effect for `max_clients`.
    pub(crate) fn unauthorized(&self, max_clients: usize) -> usize {
        self.max_unauthorized.unwrap_or(max_clients)
    }

    /// What is wrong with these limits, if anything.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        // hyper asserts this minimum; refuse it here rather than panic at start.
        if self.max_header_bytes < 8 * 1024 {
            return Some("WebSocketLimits::max_header_bytes must be at least 8192 (hyper's minimum)");
        }
        if self.max_headers == 0 {
            return Some("WebSocketLimits::max_headers must be greater than 0");
        }
        if self.header_read_timeout.is_zero() {
            return Some("WebSocketLimits::header_read_timeout must be greater than 0");
        }
        if self.max_pending_upgrades == Some(0) || self.max_unauthorized == Some(0) {
            return Some("WebSocketLimits::max_pending_upgrades and max_unauthorized must be greater than 0");
        }
        if self.max_connections_per_ip == Some(0) {
            return Some("WebSocketLimits::max_connections_per_ip must be greater than 0 (None turns it off)");
        }
        if self.max_write_buffer_before_authorization == 0 {
            return Some("WebSocketLimits::max_write_buffer_before_authorization must be greater than 0");
        }
        if let Some(rate) = self.new_connections_per_ip {
            if !(rate.per_second.is_finite() && rate.per_second > 0.0) || rate.burst == 0 {
                return Some("WebSocketLimits::new_connections_per_ip needs per_second > 0 and burst > 0");
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_derive_from_max_clients_and_validate() {
        let limits = WebSocketLimits::default();
        assert_eq!(limits.problem(), None);
        assert_eq!((limits.pending_upgrades(10), limits.pending_upgrades(1000)), (64, 1000));
        assert_eq!(limits.unauthorized(100), 100);
        let set = limits.with_max_pending_upgrades(Some(5)).with_max_unauthorized(Some(3));
        assert_eq!((set.pending_upgrades(1000), set.unauthorized(1000)), (5, 3));
    }

    #[test]
    fn nonsense_limits_are_refused_with_a_reason() {
        let small_head = WebSocketLimits::default().with_max_header_bytes(100);
        assert!(small_head.problem().is_some_and(|p| p.contains("8192")));
        assert!(WebSocketLimits::default().with_max_connections_per_ip(Some(0)).problem().is_some());
        assert!(
            WebSocketLimits::default().with_new_connections_per_ip(Some(ConnectRate::new(0.0, 1))).problem().is_some()
        );
        assert!(
            WebSocketLimits::default().with_new_connections_per_ip(Some(ConnectRate::new(1.0, 0))).problem().is_some()
        );
    }
}
