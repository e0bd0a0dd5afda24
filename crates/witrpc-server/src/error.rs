//! Errors returned by the server's API (not by remote calls: those are responses).

use std::net::SocketAddr;

/// Why building, starting or configuring the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `build()` was called without a service.
    #[error("no service registered; call `with_service(...)` before `build()`")]
    NoService,
    /// Two methods hash to the same `MethodId`.
    #[error("method id collision between `{first}` and `{second}`; rename one of them")]
    MethodIdCollision {
        /// First method (`Contract#Method`).
        first: String,
        /// Second method.
        second: String,
    },
    /// The same contract was registered twice.
    #[error("contract `{contract}` is registered twice; register each service once")]
    DuplicateContract {
        /// The contract name.
        contract: &'static str,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The transport's endpoint description is invalid (message says which part and what to do).
    #[error("invalid endpoint `{url}`: {reason}")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}; is another process using the port?")]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Resolving the host of the endpoint failed.
    #[error("cannot resolve host `{host}`")]
    Resolve {
        /// The host.
        host: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The transport could not be set up (e.g. unreadable TLS certificate files).
    #[error("cannot set up the transport: {what}")]
    Transport {
        /// What failed, and what to check.
        what: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `start_waiting_for_connection` was called on a running server.
    #[error("the server is already running; call `stop_waiting_for_connection` first")]
    AlreadyRunning,
}
