//! Who an event goes to ([`Audience`]) and the group membership a server keeps
//! ([`Membership`]): connections join and leave named groups; events can target one
//! connection, one user (the [`Identity`](crate::Identity) a validator gave), one group,
//! or everyone, optionally except one connection.
//!
//! Delivery is exact: an event for a group or a user reaches only the authorized
//! connections that are in that group or belong to that user at the moment it is
//! delivered, never any other connection.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::descriptor::BoxFuture;

/// Longest group name, in bytes (UTF-8). A bound, so a peer that names groups (through
/// a method that joins them) cannot make the server keep arbitrarily long keys.
pub const MAX_GROUP_NAME_LEN: usize = 256;

/// The receivers an event is meant for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Every authorized connection (the default).
    #[default]
    All,
    /// One connection, by its id ([`CallContext::connection_id`](crate::CallContext)).
    Connection(Uuid),
    /// Every connection whose identity has this name.
    User(Arc<str>),
    /// Every connection in this group.
    Group(Arc<str>),
}

/// An event's receivers: a [`Target`], minus at most one connection.
///
/// ```
/// use witrpc_core::{Audience, Target, Uuid};
/// let caller = Uuid::new_v4();
/// let audience = Audience::group("room-1").except(caller);
/// assert_eq!(audience.target(), &Target::Group("room-1".into()));
/// assert_eq!(audience.excluded(), Some(caller));
/// assert!(Audience::all().is_everyone());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Audience {
    target: Target,
    except: Option<Uuid>,
}

impl Audience {
    /// Every authorized connection.
    pub fn all() -> Self {
        Self::default()
    }

    /// One connection.
    pub fn connection(id: Uuid) -> Self {
        Self { target: Target::Connection(id), except: None }
    }

    /// Every connection of the user named `name`.
    pub fn user(name: impl Into<Arc<str>>) -> Self {
        Self { target: Target::User(name.into()), except: None }
    }

    /// Every connection in group `name`.
    pub fn group(name: impl Into<Arc<str>>) -> Self {
        Self { target: Target::Group(name.into()), except: None }
    }

    /// The same receivers without connection `id` (replaces an earlier exception).
    #[must_use]
    pub fn except(mut self, id: Uuid) -> Self {
        self.except = Some(id);
        self
    }

    /// Who the event is for.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The connection left out, if any.
    pub fn excluded(&self) -> Option<Uuid> {
        self.except
    }

    /// Whether this is every connection with no exception.
    pub fn is_everyone(&self) -> bool {
        self.target == Target::All && self.except.is_none()
    }

    /// Whether connection `id`, with identity `user`, in the groups `in_group` says, is a
    /// receiver.
    pub fn includes(&self, id: Uuid, user: Option<&str>, in_group: impl FnOnce(&str) -> bool) -> bool {
        if self.except == Some(id) {
            return false;
        }
        match &self.target {
            Target::All => true,
            Target::Connection(c) => *c == id,
            Target::User(u) => user == Some(&**u),
            Target::Group(g) => in_group(g),
        }
    }
}

/// One connection as group membership and presence report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Member {
    /// The connection's id.
    pub connection: Uuid,
    /// The node (server process) the connection is open on.
    pub node: String,
    /// The connection's identity name, if it has one.
    pub user: Option<String>,
}

impl Member {
    /// A member record.
    pub fn new(connection: Uuid, node: impl Into<String>, user: Option<String>) -> Self {
        Self { connection, node: node.into(), user }
    }
}

/// Why a group operation or a presence query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The name is empty or too long.
    #[error("group name must be 1 to {max} bytes long; use a shorter name")]
    InvalidName {
        /// [`MAX_GROUP_NAME_LEN`].
        max: usize,
    },
    /// The connection is not open and authorized on this server.
    #[error("connection {connection} is not open and authorized on this server; join groups from the node it is on")]
    UnknownConnection {
        /// The connection id given.
        connection: Uuid,
    },
    /// The connection is in too many groups already.
    #[error("the connection is already in {max} groups; leave one first")]
    TooManyGroups {
        /// The server's limit.
        max: usize,
    },
    /// No server serves this call (e.g. a context built by hand, outside a server).
    #[error("no server is attached to this call context; group operations work only inside a served call")]
    NoServer,
    /// The cluster backplane failed. Local membership has changed regardless and is
    /// published to the cluster again when the backplane is back.
    #[error("the cluster backplane did not complete the operation; it is retried when the backplane is back")]
    Backplane(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Group membership and presence, kept by a server (and its cluster, with a broker).
///
/// Implemented by the server; a [`CallContext`](crate::CallContext) exposes it to methods.
pub trait Membership: Send + Sync + fmt::Debug + 'static {
    /// Adds `connection` (open on this node) to `group`; returns once other nodes route
    /// the group's events to it. Joining twice is a no-op.
    fn join<'a>(&'a self, connection: Uuid, group: &'a str) -> BoxFuture<'a, Result<(), GroupError>>;

    /// Removes `connection` from `group`; leaving a group one is not in is a no-op.
    fn leave<'a>(&'a self, connection: Uuid, group: &'a str) -> BoxFuture<'a, Result<(), GroupError>>;

    /// The connections in `group`, on every node.
    fn group_members<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<Member>, GroupError>>;

    /// The connections of user `user`, on every node.
    fn user_connections<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<Member>, GroupError>>;
}

/// Checks a group name against [`MAX_GROUP_NAME_LEN`].
///
/// # Errors
/// [`GroupError::InvalidName`] when it is empty or too long.
pub fn check_group_name(name: &str) -> Result<(), GroupError> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME_LEN {
        return Err(GroupError::InvalidName { max: MAX_GROUP_NAME_LEN });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_include_exactly_their_receivers() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let in_g = |g: &str| g == "g";
        let nowhere = |_: &str| false;
        assert!(Audience::all().includes(a, None, nowhere));
        assert!(!Audience::all().except(a).includes(a, None, nowhere));
        assert!(Audience::all().except(a).includes(b, None, nowhere));
        assert!(Audience::connection(a).includes(a, None, nowhere));
        assert!(!Audience::connection(a).includes(b, None, nowhere));
        assert!(Audience::user("ann").includes(a, Some("ann"), nowhere));
        assert!(!Audience::user("ann").includes(a, Some("anna"), nowhere));
        assert!(!Audience::user("ann").includes(a, None, nowhere));
        assert!(Audience::group("g").includes(a, None, in_g));
        assert!(!Audience::group("g").includes(a, None, nowhere));
        assert!(!Audience::group("g").except(a).includes(a, None, in_g));
    }

    #[test]
    fn group_names_are_bounded() {
        assert!(check_group_name("").is_err());
        assert!(check_group_name(&"x".repeat(MAX_GROUP_NAME_LEN)).is_ok());
        assert!(check_group_name(&"x".repeat(MAX_GROUP_NAME_LEN + 1)).is_err());
    }
}
