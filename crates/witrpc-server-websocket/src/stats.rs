//! [`WebSocketStats`]: the transport's own accounting of what peers make it hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters of one [`crate::WebSocketTransport`], for dashboards and for checking
/// that hostile peers are held to the limits. Cheap to clone; all clones see the same
/// numbers. Figures cover every start of the transport.
///
/// ```
/// let transport = witrpc_server_websocket::WebSocketTransport::new("http://127.0.0.1:0/ws", 10);
/// let stats = transport.stats();
/// assert_eq!(stats.pending_upgrades(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct WebSocketStats(pub(crate) Arc<Counters>);

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) pending_upgrades: AtomicUsize,
    pub(crate) unauthorized: AtomicUsize,
    pub(crate) write_buffered: AtomicUsize,
    pub(crate) peak_write_buffer: AtomicUsize,
    pub(crate) peak_write_buffer_unauthorized: AtomicUsize,
    pub(crate) peak_read_unauthorized: AtomicU64,
    pub(crate) read_pauses: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
}

impl WebSocketStats {
    /// TCP connections accepted that have not finished the HTTP upgrade (plain HTTP
    /// connections included).
    pub fn pending_upgrades(&self) -> usize {
        self.0.pending_upgrades.load(Ordering::Relaxed)
    }

    /// Upgraded connections that have not authorized yet.
    pub fn unauthorized(&self) -> usize {
        self.0.unauthorized.load(Ordering::Relaxed)
    }

    /// Encoded WebSocket bytes waiting to be written, over all connections.
    pub fn write_buffered(&self) -> usize {
        self.0.write_buffered.load(Ordering::Relaxed)
    }

    /// The most any one connection has had waiting to be written.
    pub fn peak_write_buffer(&self) -> usize {
        self.0.peak_write_buffer.load(Ordering::Relaxed)
    }

    /// The most any one connection had waiting to be written before it authorized.
    pub fn peak_write_buffer_unauthorized(&self) -> usize {
        self.0.peak_write_buffer_unauthorized.load(Ordering::Relaxed)
    }

    /// The most bytes the transport read from any one connection before it authorized
    /// (after the upgrade): what an unauthenticated peer could make it take in.
    pub fn peak_read_unauthorized(&self) -> u64 {
        self.0.peak_read_unauthorized.load(Ordering::Relaxed)
    }

    /// Times a connection was not read because too much was waiting to be written to it
    /// (a peer that sends but does not read).
    pub fn read_pauses(&self) -> u64 {
        self.0.read_pauses.load(Ordering::Relaxed)
    }

    /// Connections refused by an admission limit (pending upgrades, unauthorized
    /// connections, per-address limits); `max_clients` refusals are not counted here.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Failed `accept` calls (e.g. out of file descriptors); each one backs off.
    pub fn accept_errors(&self) -> u64 {
        self.0.accept_errors.load(Ordering::Relaxed)
    }
}

/// Counts one connection in a gauge for as long as it lives.
#[derive(Debug)]
pub(crate) struct Gauge {
    counters: Arc<Counters>,
    which: fn(&Counters) -> &AtomicUsize,
}

impl Gauge {
    pub(crate) fn new(counters: &Arc<Counters>, which: fn(&Counters) -> &AtomicUsize) -> Self {
        which(counters).fetch_add(1, Ordering::Relaxed);
        Self { counters: counters.clone(), which }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.which)(&self.counters).fetch_sub(1, Ordering::Relaxed);
    }
}
