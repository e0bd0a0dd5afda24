//! Parsing the `http://host:port/path` URL the server listens on.

/// A parsed listen URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host as written (`127.0.0.1`, `localhost`, `::1`); wildcards become `0.0.0.0`.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path without a trailing slash (`/ws`), or `/`.
    pub(crate) path: String,
    /// `https://`: TLS, clients use `wss://`.
    pub(crate) tls: bool,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            return Err("the server listens on an http:// URL (clients then connect with ws://); write \
                        `http://host:port/path`"
                .to_owned());
        } else {
            return Err("expected an http:// URL such as `http://127.0.0.1:5000/ws`".to_owned());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains(['?', '#']) {
            return Err("the path must not contain a query or fragment".to_owned());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or("unterminated IPv6 address")?;
            let port = v6[end + 1..].strip_prefix(':');
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host; use e.g. `http://127.0.0.1:5000/ws`".to_owned());
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p.parse::<u16>().map_err(|_| format!("`{p}` is not a valid port (0-65535)"))?,
        };
        let host = match host {
            "+" | "*" => "0.0.0.0".to_owned(),
            h => h.to_owned(),
        };
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() };
        Ok(Self { host, port, path, tls })
    }

    /// Whether a request path addresses this endpoint (with or without a trailing slash).
    pub(crate) fn matches(&self, request_path: &str) -> bool {
        let trimmed = request_path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        trimmed == self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let e = Endpoint::parse("http://localhost:5000/ws").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("localhost", 5000, "/ws"));
        let e = Endpoint::parse("http://127.0.0.1:0/api/").unwrap();
        assert_eq!((e.port, e.path.as_str()), (0, "/api"));
        let e = Endpoint::parse("http://+:8080").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("0.0.0.0", "/"));
        let e = Endpoint::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(e.host, "::1");
    }

    #[test]
    fn rejects_ws_urls_with_a_hint() {
        let err = Endpoint::parse("ws://localhost:5000/ws").unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let e = Endpoint::parse("https://localhost/ws").unwrap();
        assert!(e.tls && e.port == 443);
        assert!(Endpoint::parse("http://localhost:99999/").unwrap_err().contains("port"));
        assert!(Endpoint::parse("http://:5000/").is_err());
    }

    #[test]
    fn matches_with_and_without_trailing_slash_only() {
        let e = Endpoint::parse("http://localhost:5000/ws").unwrap();
        assert!(e.matches("/ws"));
        assert!(e.matches("/ws/"));
        assert!(!e.matches("/ws/other"));
        assert!(!e.matches("/"));
        assert!(!e.matches("/wsx"));
    }
}
