//! Cross-site WebSocket hijacking protection.
//!
//! Browsers attach an `Origin` header to every WebSocket upgrade and let any page open
//! a socket to any host; only the server can refuse. A request whose `Origin` is not
//! the server's own host and not on the allowlist gets **403 before the upgrade**.
//! Requests without `Origin` come from native clients (Rust, .NET), which cannot be
//! driven by a hostile web page, and pass.

/// Which browser origins may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum OriginPolicy {
    /// Same host as the request's `Host` header, plus these origins (`scheme://host[:port]`).
    #[default]
    SameHost,
    /// Same host, plus an allowlist.
    Allow(Vec<String>),
    /// Any origin (explicit opt-in).
    Any,
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The `host[:port]` part of an origin (`https://example.com:8443` → `example.com:8443`).
fn authority(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(rest.trim_end_matches('/'))
}

impl OriginPolicy {
    pub(crate) fn allow(&mut self, origins: impl IntoIterator<Item = String>) {
        let mut list = match std::mem::take(self) {
            OriginPolicy::Allow(list) => list,
            OriginPolicy::Any => {
                *self = OriginPolicy::Any;
                return;
            }
            OriginPolicy::SameHost => Vec::new(),
        };
        list.extend(origins.into_iter().map(|o| normalize(&o)));
        *self = OriginPolicy::Allow(list);
    }

    /// Whether a request with `origin` (if any) to `host` (the `Host` header) may upgrade.
    pub(crate) fn permits(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if *self == OriginPolicy::Any {
            return true;
        }
        let origin = normalize(origin);
        if let (Some(a), Some(h)) = (authority(&origin), host) {
            if a.eq_ignore_ascii_case(h.trim()) {
                return true;
            }
        }
        matches!(self, OriginPolicy::Allow(list) if list.contains(&origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_clients_and_same_host_pages_pass_others_do_not() {
        let p = OriginPolicy::SameHost;
        assert!(p.permits(None, Some("127.0.0.1:5000")));
        assert!(p.permits(Some("http://127.0.0.1:5000"), Some("127.0.0.1:5000")));
        assert!(p.permits(Some("HTTPS://Example.com/"), Some("example.com")));
        assert!(!p.permits(Some("https://evil.example"), Some("127.0.0.1:5000")));
        assert!(!p.permits(Some("null"), Some("127.0.0.1:5000")));
        assert!(!p.permits(Some("http://127.0.0.1:5001"), Some("127.0.0.1:5000")));
    }

    #[test]
    fn allowlist_and_any() {
        let mut p = OriginPolicy::SameHost;
        p.allow(["https://dashboard.example.com/".to_owned()]);
        assert!(p.permits(Some("https://Dashboard.example.com"), Some("api.example.com")));
        assert!(!p.permits(Some("https://other.example.com"), Some("api.example.com")));
        assert!(OriginPolicy::Any.permits(Some("https://anything"), Some("x")));
    }
}
