//! [`ReconnectPolicy`]: when and how often a client reconnects.

use std::time::Duration;

/// When and how often a client reconnects after losing its connection.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Wait before the first attempt (default 200 ms); doubled after each failure.
    pub initial_delay: Duration,
    /// Longest wait between attempts (default 30 s).
    pub max_delay: Duration,
    /// Attempts before giving up; `None` (default) tries forever.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self { initial_delay: Duration::from_millis(200), max_delay: Duration::from_secs(30), max_attempts: None }
    }
}

impl ReconnectPolicy {
    /// Waits `initial_delay`, doubling up to `max_delay`, with ±20 % jitter.
    pub fn new(initial_delay: Duration, max_delay: Duration) -> Self {
        Self { initial_delay, max_delay: max_delay.max(initial_delay), max_attempts: None }
    }

    /// Gives up after `attempts` failed attempts; the client then closes for good.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
}
