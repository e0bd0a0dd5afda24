//! Access-token validation.

use std::fmt;

use async_trait::async_trait;
use witrpc_core::{CallContext, Identity};

/// A validator's answer for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The connection may call methods; methods see the identity in their [`CallContext`].
    Allow(Option<Identity>),
    /// The connection is refused (answered `IsAuthorized = false`, then closed).
    Deny,
}

/// Decides whether a connection may call methods.
///
/// The token arrives in-band twice: once in the Authorization handshake
/// ([`AccessTokenValidator::validate`]) and again on every request. By default the
/// per-request token must equal the one accepted at authorization (compared in
/// constant time).
#[async_trait]
pub trait AccessTokenValidator: Send + Sync + fmt::Debug + 'static {
    /// Whether `token` authorizes the connection. May be slow (a database, a remote IdP):
    /// it runs once per connection.
    async fn validate(&self, token: &str) -> bool;

    /// Decides for a connection presenting `token`; `connection` carries its id, peer
    /// address and forwarded headers (no identity yet). Override it to name the caller;
    /// the default allows with no identity when [`AccessTokenValidator::validate`] does.
    async fn authorize(&self, token: &str, connection: &CallContext) -> Authorization {
        let _ = connection;
        if self.validate(token).await { Authorization::Allow(None) } else { Authorization::Deny }
    }

    /// Whether a request carrying `token` may run, given the token the connection was
    /// authorized with. Runs on every request: keep it fast.
    fn is_request_token_valid(&self, authorized_token: &str, token: &str) -> bool {
        constant_time_eq(authorized_token.as_bytes(), token.as_bytes())
    }
}

/// No authentication: accepts exactly the empty token, as the .NET plain validator does.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAccessToken;

#[async_trait]
impl AccessTokenValidator for NoAccessToken {
    async fn validate(&self, token: &str) -> bool {
        token.is_empty()
    }
}

/// A single shared token (`with_access_token`), compared in constant time.
#[derive(Clone)]
pub struct StaticAccessToken {
    token: String,
}

impl StaticAccessToken {
    /// Accepts exactly `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self { token: token.into() }
    }
}

impl fmt::Debug for StaticAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticAccessToken(<redacted>)")
    }
}

#[async_trait]
impl AccessTokenValidator for StaticAccessToken {
    async fn validate(&self, token: &str) -> bool {
        constant_time_eq(self.token.as_bytes(), token.as_bytes())
    }

    fn is_request_token_valid(&self, _authorized_token: &str, token: &str) -> bool {
        constant_time_eq(self.token.as_bytes(), token.as_bytes())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[tokio::test]
    async fn static_token_accepts_only_its_token_and_hides_it_in_debug() {
        let v = StaticAccessToken::new("AuthToken123");
        assert!(v.validate("AuthToken123").await);
        assert!(!v.validate("nope").await);
        assert!(!v.is_request_token_valid("AuthToken123", ""));
        assert!(!format!("{v:?}").contains("AuthToken123"));
        assert!(NoAccessToken.validate("").await);
        assert!(!NoAccessToken.validate("x").await);
    }
}
