//! Wire extensions of ours, negotiated at Initialization (feature set `witrpc/1`).
//!
//! A client that wants an extension announces it in a trailing member of its
//! `WitRequestInitialization` (order 2, a string: `"witrpc/1"` then space-separated
//! feature tokens). A server that knows the set answers, in a trailing member of its
//! `WitResponseInitialization` (order 4), `"witrpc/1"` plus the features it accepted.
//! .NET peers skip trailing members they do not know (VersionTolerant), and a server
//! writes member 4 only to a client that announced, so neither side of a .NET
//! conversation ever sees a byte of this. The exact wire is in `ARCHITECTURE.md`
//! ("Wire extensions of ours").
//!
//! ```
//! use witrpc_core::extensions::Features;
//!
//! let offered = Features::parse("witrpc/1 token-refresh something-new").unwrap();
//! assert!(offered.token_refresh());
//! assert_eq!(offered.to_wire(), "witrpc/1 token-refresh");
//! assert_eq!(Features::parse("witrpc/2 token-refresh"), None);
//! ```

/// The name of our feature set, the first token of both members.
pub const FEATURE_SET: &str = "witrpc/1";
/// Feature token: in-band token refresh and the token's expiry in the Authorization
/// answer (`WitResponseAuthorization` member 2, `ExpiresAtUnixMs`).
pub const TOKEN_REFRESH: &str = "token-refresh";
/// Feature token: resumable event streams (a `StreamPosition` on events with history,
/// a `Resume` request in the Authorization and its `Resumed` answer). A server accepts
/// it only when it keeps history for some event.
pub const RESUME: &str = "resume";
/// Feature token: the events a resume replays may arrive packed into
/// [`MessageType::REPLAY_BATCH`](crate::MessageType::REPLAY_BATCH) messages (see
/// [`crate::batch`]). Accepted only together with [`RESUME`].
pub const REPLAY_BATCH: &str = "replay-batch";

/// A set of negotiated features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Features {
    token_refresh: bool,
    resume: bool,
    replay_batch: bool,
}

impl Features {
    /// No feature (what a peer that did not negotiate gets).
    pub const NONE: Self = Self { token_refresh: false, resume: false, replay_batch: false };

    /// Every feature this crate implements.
    pub const SUPPORTED: Self = Self { token_refresh: true, resume: true, replay_batch: true };

    /// Just [`TOKEN_REFRESH`].
    pub const TOKEN_REFRESH: Self = Self { token_refresh: true, resume: false, replay_batch: false };

    /// Just [`RESUME`].
    pub const RESUME: Self = Self { token_refresh: false, resume: true, replay_batch: false };

    /// Just [`REPLAY_BATCH`] (meaningful only with [`RESUME`]).
    pub const REPLAY_BATCH: Self = Self { token_refresh: false, resume: false, replay_batch: true };

    /// Whether [`TOKEN_REFRESH`] is in the set.
    pub fn token_refresh(self) -> bool {
        self.token_refresh
    }

    /// Whether [`RESUME`] is in the set.
    pub fn resume(self) -> bool {
        self.resume
    }

    /// Whether [`REPLAY_BATCH`] is in the set.
    pub fn replay_batch(self) -> bool {
        self.replay_batch
    }

    /// The features in both sets.
    pub fn intersect(self, other: Self) -> Self {
        Self {
            token_refresh: self.token_refresh && other.token_refresh,
            resume: self.resume && other.resume,
            replay_batch: self.replay_batch && other.replay_batch,
        }
    }

    /// The features in either set.
    pub fn union(self, other: Self) -> Self {
        Self {
            token_refresh: self.token_refresh || other.token_refresh,
            resume: self.resume || other.resume,
            replay_batch: self.replay_batch || other.replay_batch,
        }
    }

    /// This set without the features of `other`.
    pub fn without(self, other: Self) -> Self {
        Self {
            token_refresh: self.token_refresh && !other.token_refresh,
            resume: self.resume && !other.resume,
            replay_batch: self.replay_batch && !other.replay_batch,
        }
    }

    /// Reads an `Extensions` member: `Some` when its first token is [`FEATURE_SET`]
    /// (the features it names that this crate knows; unknown tokens are ignored),
    /// `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        let mut tokens = text.split_ascii_whitespace();
        if tokens.next() != Some(FEATURE_SET) {
            return None;
        }
        let mut features = Self::NONE;
        for token in tokens {
            match token {
                TOKEN_REFRESH => features.token_refresh = true,
                RESUME => features.resume = true,
                REPLAY_BATCH => features.replay_batch = true,
                _ => {}
            }
        }
        Some(features)
    }

    /// The member's text: [`FEATURE_SET`] followed by each feature token.
    pub fn to_wire(self) -> String {
        let mut out = String::from(FEATURE_SET);
        if self.token_refresh {
            out.push(' ');
            out.push_str(TOKEN_REFRESH);
        }
        if self.resume {
            out.push(' ');
            out.push_str(RESUME);
        }
        if self.replay_batch {
            out.push(' ');
            out.push_str(REPLAY_BATCH);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_feature_set_is_read_and_unknown_tokens_are_ignored() {
        assert_eq!(Features::parse("witrpc/1"), Some(Features::NONE));
        assert_eq!(Features::parse("witrpc/1  token-refresh "), Some(Features::TOKEN_REFRESH));
        assert_eq!(Features::parse("witrpc/1 resume future-thing"), Some(Features::RESUME));
        assert_eq!(Features::parse("witrpc/1 future-thing"), Some(Features::NONE));
        for other in ["", " ", "witrpc/10 token-refresh", "witrpc/1token-refresh", "token-refresh witrpc/1"] {
            assert_eq!(Features::parse(other), None, "{other:?}");
        }
        assert_eq!(Features::NONE.to_wire(), "witrpc/1");
        assert_eq!(Features::parse(&Features::SUPPORTED.to_wire()), Some(Features::SUPPORTED));
        assert_eq!(Features::SUPPORTED.to_wire(), "witrpc/1 token-refresh resume replay-batch");
        assert_eq!(
            Features::parse("witrpc/1 replay-batch resume"),
            Some(Features::RESUME.union(Features::REPLAY_BATCH))
        );
        assert_eq!(
            Features::SUPPORTED.without(Features::RESUME.union(Features::REPLAY_BATCH)),
            Features::TOKEN_REFRESH
        );
        assert_eq!(Features::TOKEN_REFRESH.union(Features::RESUME).union(Features::REPLAY_BATCH), Features::SUPPORTED);
    }
}
