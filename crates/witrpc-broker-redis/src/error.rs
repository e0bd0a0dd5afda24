//! Errors of the Redis broker.

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBrokerError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL; expected redis://host:port (or rediss:// with the `tls` feature)")]
    InvalidUrl(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The node id has characters other than ASCII letters, digits, `-`, `_` and `.`,
    /// or is empty or longer than 64 bytes.
    #[error("node id must be 1 to 64 ASCII letters, digits, '-', '_' or '.'")]
    InvalidNodeId,
    /// Redis could not be reached or refused the connection.
    #[error("cannot connect to Redis; check the URL, that Redis runs, and its ACL")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
}
