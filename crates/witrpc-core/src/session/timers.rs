//! Keepalive, idle, handshake and token-expiry deadlines as values: the session says when it next
//! needs the clock ([`Timers::next_deadline`]) and what is due at a given instant
//! ([`Timers::due`]); it never reads a clock itself.

use std::time::{Duration, Instant};

/// Keepalive settings of a connection (both roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keepalive {
    /// How often to ping the peer; `None` sends no pings (the peer's pings, or any
    /// traffic, still count as life).
    pub interval: Option<Duration>,
    /// How long the peer may stay silent (no message, ping or pong) before the
    /// connection is closed.
    pub idle_timeout: Duration,
}

impl Keepalive {
    /// Pings every `interval` (if any) and closes after `idle_timeout` of silence.
    pub fn new(interval: Option<Duration>, idle_timeout: Duration) -> Self {
        Self { interval, idle_timeout }
    }
}

impl Default for Keepalive {
    /// A ping every 15 s, closed after 30 s of silence (two missed rounds).
    fn default() -> Self {
        Self { interval: Some(Duration::from_secs(15)), idle_timeout: Duration::from_secs(30) }
    }
}

/// What [`Timers::due`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet.
    Nothing,
    /// Send a ping now.
    Ping,
    /// The peer was silent for the idle timeout.
    Idle,
    /// The handshake did not complete in time.
    Handshake,
    /// The access token expired (past its grace period) and was not refreshed.
    TokenExpired,
}

/// The deadlines of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Timers {
    keepalive: Keepalive,
    last_heard: Instant,
    next_ping: Option<Instant>,
    handshake_deadline: Option<Instant>,
    /// When the connection's access token stops being honoured (expiry + grace).
    token_deadline: Option<Instant>,
}

impl Timers {
    pub(crate) fn new(now: Instant, keepalive: Keepalive, handshake_timeout: Option<Duration>) -> Self {
        Self {
            keepalive,
            last_heard: now,
            next_ping: keepalive.interval.map(|i| now + i),
            handshake_deadline: handshake_timeout.map(|t| now + t),
            token_deadline: None,
        }
    }

    pub(crate) fn keepalive(&self) -> Keepalive {
        self.keepalive
    }

    /// The peer sent something at `now`.
    pub(crate) fn heard(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
    }

    /// The handshake completed: its deadline no longer applies.
    pub(crate) fn handshake_done(&mut self) {
        self.handshake_deadline = None;
    }

    pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
        self.handshake_deadline
    }

    /// Sets (or clears) the instant the access token stops being honoured.
    pub(crate) fn set_token_deadline(&mut self, at: Option<Instant>) {
        self.token_deadline = at;
    }

    pub(crate) fn token_deadline(&self) -> Option<Instant> {
        self.token_deadline
    }

    pub(crate) fn idle_deadline(&self) -> Instant {
        self.last_heard + self.keepalive.idle_timeout
    }

    /// The earliest instant something may be due.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut next = self.idle_deadline();
        for d in [self.next_ping, self.handshake_deadline, self.token_deadline].into_iter().flatten() {
            next = next.min(d);
        }
        next
    }

    /// What is due at `now` (the most severe first); a due ping is re-armed.
    pub(crate) fn due(&mut self, now: Instant) -> Due {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            return Due::Handshake;
        }
        if self.token_deadline.is_some_and(|d| now >= d) {
            return Due::TokenExpired;
        }
        if now >= self.idle_deadline() {
            return Due::Idle;
        }
        match (self.next_ping, self.keepalive.interval) {
            (Some(at), Some(interval)) if now >= at => {
                self.next_ping = Some(now + interval);
                Due::Ping
            }
            _ => Due::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn pings_on_the_interval_and_closes_after_silence() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, Keepalive::new(Some(S), 3 * S), None);
        assert_eq!(t.next_deadline(), t0 + S);
        assert_eq!(t.due(t0 + S / 2), Due::Nothing);
        assert_eq!(t.due(t0 + S), Due::Ping);
        assert_eq!(t.next_deadline(), t0 + 2 * S);
        t.heard(t0 + 2 * S);
        assert_eq!(t.due(t0 + 2 * S), Due::Ping);
        assert_eq!(t.idle_deadline(), t0 + 5 * S);
        assert_eq!(t.due(t0 + 5 * S), Due::Idle);
    }

    #[test]
    fn the_handshake_deadline_comes_first_until_done() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, Keepalive::new(None, 30 * S), Some(10 * S));
        assert_eq!(t.next_deadline(), t0 + 10 * S);
        assert_eq!(t.due(t0 + 10 * S), Due::Handshake);
        t.handshake_done();
        assert_eq!(t.due(t0 + 10 * S), Due::Nothing);
        assert_eq!(t.next_deadline(), t0 + 30 * S);
    }

    #[test]
    fn the_token_deadline_fires_until_it_is_moved_or_cleared() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0, Keepalive::new(None, 30 * S), None);
        t.set_token_deadline(Some(t0 + 3 * S));
        assert_eq!(t.next_deadline(), t0 + 3 * S);
        assert_eq!(t.due(t0 + 2 * S), Due::Nothing);
        assert_eq!(t.due(t0 + 3 * S), Due::TokenExpired);
        t.set_token_deadline(Some(t0 + 10 * S));
        assert_eq!(t.due(t0 + 3 * S), Due::Nothing);
        t.set_token_deadline(None);
        assert_eq!(t.next_deadline(), t0 + 30 * S);
    }
}
