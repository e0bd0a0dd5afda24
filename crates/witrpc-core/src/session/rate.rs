//! Per-connection inbound rate limits: two token buckets (messages and bytes).
//!
//! A peer over its rate is *held*: the session asks the runtime not to read it until
//! the buckets refill (TCP back-pressure does the rest). A peer held continuously for
//! [`RateLimit::max_hold`] is closed with a reason. Time is passed in, never read.

use std::time::{Duration, Instant};

/// Inbound rate limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Messages per second, sustained.
    pub messages_per_second: f64,
    /// Message bytes per second, sustained.
    pub bytes_per_second: f64,
    /// How far a burst may go above the rate, in seconds of it (default 1 s).
    pub burst: Duration,
    /// A peer held to its rate continuously this long is closed (default 10 s).
    pub max_hold: Duration,
}

impl RateLimit {
    /// At most `messages_per_second` messages and `bytes_per_second` bytes per second,
    /// bursts of one second's worth, closed after 10 s of being held.
    pub fn new(messages_per_second: u32, bytes_per_second: u64) -> Self {
        Self {
            messages_per_second: f64::from(messages_per_second.max(1)),
            bytes_per_second: (bytes_per_second.max(1)) as f64,
            burst: Duration::from_secs(1),
            max_hold: Duration::from_secs(10),
        }
    }

    /// Sets the burst allowance.
    pub fn with_burst(mut self, burst: Duration) -> Self {
        self.burst = burst.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a peer may be held before it is closed.
    pub fn with_max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = max_hold;
        self
    }
}

/// What [`Limiter::consume`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate.
    Ok,
    /// Over the rate: do not read until this instant.
    Hold(Instant),
    /// Held for too long: close.
    Close,
}

#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    limit: RateLimit,
    messages: f64,
    bytes: f64,
    last: Instant,
    held_since: Option<Instant>,
    resume_at: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let secs = limit.burst.as_secs_f64();
        Self {
            messages: limit.messages_per_second * secs,
            bytes: limit.bytes_per_second * secs,
            limit,
            last: now,
            held_since: None,
            resume_at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let secs = self.limit.burst.as_secs_f64();
        self.messages =
            (self.messages + elapsed * self.limit.messages_per_second).min(self.limit.messages_per_second * secs);
        self.bytes = (self.bytes + elapsed * self.limit.bytes_per_second).min(self.limit.bytes_per_second * secs);
    }

    /// A message of `len` bytes arrived at `now`.
    pub(crate) fn consume(&mut self, now: Instant, len: usize) -> Verdict {
        self.refill(now);
        let secs = self.limit.burst.as_secs_f64();
        let relaxed = self.messages >= self.limit.messages_per_second * secs / 2.0
            && self.bytes >= self.limit.bytes_per_second * secs / 2.0;
        if relaxed {
            self.held_since = None;
        }
        self.messages -= 1.0;
        self.bytes -= len as f64;
        if self.messages >= 0.0 && self.bytes >= 0.0 {
            return Verdict::Ok;
        }
        let wait = (-self.messages / self.limit.messages_per_second).max(-self.bytes / self.limit.bytes_per_second);
        let since = *self.held_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.limit.max_hold {
            return Verdict::Close;
        }
        let resume = now + Duration::from_secs_f64(wait.max(0.0));
        self.resume_at = Some(resume);
        Verdict::Hold(resume)
    }

    /// Until when reading is held, if it is at `now`.
    pub(crate) fn held_until(&self, now: Instant) -> Option<Instant> {
        self.resume_at.filter(|t| *t > now)
    }

    pub(crate) fn limit(&self) -> &RateLimit {
        &self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_within_its_rate_is_never_held() {
        let t0 = Instant::now();
        let mut l = Limiter::new(RateLimit::new(10, 1 << 20), t0);
        for i in 0..100u32 {
            assert_eq!(l.consume(t0 + Duration::from_millis(100) * i, 100), Verdict::Ok);
        }
    }

    #[test]
    fn a_burst_is_held_to_the_rate_then_a_flood_is_closed() {
        let t0 = Instant::now();
        let mut l = Limiter::new(RateLimit::new(10, 1 << 20).with_max_hold(Duration::from_secs(2)), t0);
        for _ in 0..10 {
            assert_eq!(l.consume(t0, 1), Verdict::Ok, "one second's worth passes at once");
        }
        let Verdict::Hold(resume) = l.consume(t0, 1) else { panic!("the 11th message is held") };
        assert_eq!(resume, t0 + Duration::from_millis(100));
        // A peer that keeps sending as fast as it is let in stays held...
        let mut now = resume;
        let mut verdict = Verdict::Ok;
        while verdict != Verdict::Close && now < t0 + Duration::from_secs(5) {
            verdict = l.consume(now, 1);
            if let Verdict::Hold(r) = verdict {
                now = r;
            }
        }
        // ...and is closed once it has been held for max_hold.
        assert_eq!(verdict, Verdict::Close);
        assert!(now >= t0 + Duration::from_secs(2) && now < t0 + Duration::from_secs(3), "{:?}", now - t0);
    }

    #[test]
    fn large_messages_count_against_the_byte_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(RateLimit::new(1000, 1000), t0);
        assert_eq!(l.consume(t0, 1000), Verdict::Ok);
        assert_eq!(l.consume(t0, 500), Verdict::Hold(t0 + Duration::from_millis(500)));
    }
}
