//! Access-token validation.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use witrpc_core::{CallContext, Identity};

/// A validator's answer for a connection.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use witrpc_server::{Authorization, Identity};
///
/// // A token good for one hour: the connection is closed (1008 "access token
/// // expired") shortly after, unless the client refreshes it in-band first.
/// let answer = Authorization::AllowUntil {
///     identity: Some(Identity::new("ada")),
///     expires_at: SystemTime::now() + Duration::from_secs(3600),
/// };
/// assert_eq!(answer.identity().map(Identity::name), Some("ada"));
/// assert!(answer.expires_at().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The connection may call methods; methods see the identity in their [`CallContext`].
    Allow(Option<Identity>),
    /// As [`Authorization::Allow`], for a token that expires at `expires_at`: past it
    /// (plus `with_token_expiry_grace`, 2 s by default) the connection is closed with
    /// 1008 "access token expired", unless the client refreshed its token in-band
    /// (our `token-refresh` extension; .NET clients cannot and are closed).
    AllowUntil {
        /// Who the caller is.
        identity: Option<Identity>,
        /// When the token stops being honoured (wall-clock time).
        expires_at: SystemTime,
    },
    /// The connection is refused (answered `IsAuthorized = false`, then closed).
    Deny,
}

impl Authorization {
    /// Whether the token was accepted.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Self::Deny)
    }

    /// The caller's identity, when allowed with one.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Allow(identity) | Self::AllowUntil { identity, .. } => identity.as_ref(),
            Self::Deny => None,
        }
    }

    /// When the token expires, when it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self {
            Self::AllowUntil { expires_at, .. } => Some(*expires_at),
            _ => None,
        }
    }
}

/// Decides whether a connection may call methods.
///
/// The token arrives in-band twice: once in the Authorization handshake
/// ([`AccessTokenValidator::validate`]) and again on every request. By default the
/// per-request token must equal the one accepted at authorization (compared in
/// constant time).
///
/// A client that negotiated `token-refresh` may send a fresh token on an authorized
/// connection: [`AccessTokenValidator::authorize`] runs again, and the new token is
/// accepted only when it names the same identity as the first one (else the client
/// is refused and the connection closed). Requests stamped with the previous token
/// stay valid until that token's expiry. Revoking a user
/// ([`crate::WitServer::revoke_user`]) closes its connections but stores nothing: the
/// validator must refuse the user's tokens from then on.
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
