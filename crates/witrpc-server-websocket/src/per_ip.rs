//! Per-address quotas: connections open at once and new connections per second (token
//! bucket), and which address a connection counts against when it comes through a
//! trusted reverse proxy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use crate::limits::{ConnectRate, WebSocketLimits};

/// Addresses tracked at most; past it, entries with nothing open and a full bucket are
/// forgotten, and if none can be, new addresses are refused (so a flood of distinct
/// addresses cannot grow the table).
const MAX_TRACKED: usize = 65_536;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many open from this address (503).
    Concurrent,
    /// Too many new ones per second from this address (429).
    Rate,
}

/// The per-address table; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PerIp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_concurrent: Option<usize>,
    rate: Option<ConnectRate>,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug)]
struct Entry {
    open: usize,
    tokens: f64,
    updated: Instant,
}

/// Counts one connection against its address until dropped.
#[derive(Debug)]
pub(crate) struct IpGuard {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut table = self.inner.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.key) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && self.inner.rate.is_none() {
                table.remove(&self.key);
            }
        }
    }
}

impl PerIp {
    pub(crate) fn new(limits: &WebSocketLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_concurrent: limits.max_connections_per_ip,
                rate: limits.new_connections_per_ip,
                table: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether any per-address limit is on.
    pub(crate) fn enabled(&self) -> bool {
        self.inner.max_concurrent.is_some() || self.inner.rate.is_some()
    }

    /// Admits one new connection from `ip`, or says why not. `None` when no limit is on.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Result<Option<IpGuard>, Refusal> {
        if !self.enabled() {
            return Ok(None);
        }
        let key = key(ip);
        let inner = &self.inner;
        let mut table = inner.table.lock().unwrap_or_else(PoisonError::into_inner);
        if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
            table.retain(|_, e| e.open > 0 || inner.rate.is_some_and(|r| refill(e, r, now) < f64::from(r.burst)));
            if table.len() >= MAX_TRACKED {
                return Err(Refusal::Concurrent);
            }
        }
        let burst = inner.rate.map_or(0.0, |r| f64::from(r.burst));
        let entry = table.entry(key).or_insert(Entry { open: 0, tokens: burst, updated: now });
        if inner.max_concurrent.is_some_and(|max| entry.open >= max) {
            return Err(Refusal::Concurrent);
        }
        if let Some(rate) = inner.rate {
            entry.tokens = refill(entry, rate, now);
            entry.updated = now;
            if entry.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(Some(IpGuard { inner: inner.clone(), key }))
    }
}

/// The bucket's tokens at `now` (not stored).
fn refill(entry: &Entry, rate: ConnectRate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(entry.updated).as_secs_f64();
    (entry.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

/// IPv6 hosts usually get a whole /64: count them by it, or one host could take every
/// quota by rotating addresses. IPv4-mapped addresses count as IPv4.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client address of a request that came from `peer`: `peer` itself unless it is a
/// trusted proxy, else the nearest untrusted hop in `X-Forwarded-For` (or, without it,
/// `Forwarded: for=`), read right to left. A hop that is not an address ends the walk
/// at the proxy that reported it.
pub(crate) fn client_ip(peer: IpAddr, trusted: &[IpAddr], headers: &hyper::HeaderMap) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let hops: Vec<&str> = if xff.is_empty() {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').map(str::trim).find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
                })
            })
            .collect()
    } else {
        xff
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches('"');
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn concurrent_connections_per_address_are_capped_and_freed() {
        let per_ip = PerIp::new(&WebSocketLimits::default().with_max_connections_per_ip(Some(2)));
        let now = Instant::now();
        let a = per_ip.admit(ip("10.0.0.1"), now).expect("first");
        let _b = per_ip.admit(ip("10.0.0.1"), now).expect("second");
        assert_eq!(per_ip.admit(ip("10.0.0.1"), now).unwrap_err(), Refusal::Concurrent);
        assert!(per_ip.admit(ip("10.0.0.2"), now).is_ok(), "other addresses are not affected");
        drop(a);
        assert!(per_ip.admit(ip("10.0.0.1"), now).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn new_connections_follow_the_token_bucket() {
        let limits = WebSocketLimits::default().with_new_connections_per_ip(Some(ConnectRate::new(2.0, 3)));
        let per_ip = PerIp::new(&limits);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(per_ip.admit(ip("10.0.0.1"), start).is_ok(), "a burst of 3 passes");
        }
        assert_eq!(per_ip.admit(ip("10.0.0.1"), start).unwrap_err(), Refusal::Rate);
        // 2 per second: one more after half a second, not two.
        let later = start + Duration::from_millis(500);
        assert!(per_ip.admit(ip("10.0.0.1"), later).is_ok());
        assert_eq!(per_ip.admit(ip("10.0.0.1"), later).unwrap_err(), Refusal::Rate);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let per_ip = PerIp::new(&WebSocketLimits::default().with_max_connections_per_ip(Some(1)));
        let now = Instant::now();
        let _a = per_ip.admit(ip("2001:db8:1:2::1"), now).expect("first");
        assert!(per_ip.admit(ip("2001:db8:1:2::ffff"), now).is_err(), "same /64");
        assert!(per_ip.admit(ip("2001:db8:1:3::1"), now).is_ok(), "another /64");
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse().expect("header"));
        let proxy = ip("10.0.0.5");
        // Not configured: the header is ignored.
        assert_eq!(client_ip(proxy, &[], &headers), proxy);
        // A trusted proxy: the nearest untrusted hop, skipping trusted ones.
        assert_eq!(client_ip(proxy, &[proxy], &headers), ip("10.0.0.7"));
        assert_eq!(client_ip(proxy, &[proxy, ip("10.0.0.7")], &headers), ip("203.0.113.9"));
        // A peer that is not trusted cannot choose its address.
        assert_eq!(client_ip(ip("198.51.100.1"), &[proxy], &headers), ip("198.51.100.1"));

        let mut forwarded = hyper::HeaderMap::new();
        forwarded.insert("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"".parse().expect("h"));
        assert_eq!(client_ip(proxy, &[proxy], &forwarded), ip("2001:db8::1"));
        let mut junk = hyper::HeaderMap::new();
        junk.insert("x-forwarded-for", "unknown".parse().expect("header"));
        assert_eq!(client_ip(proxy, &[proxy], &junk), proxy);
    }
}
