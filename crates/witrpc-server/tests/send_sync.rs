//! Compile-time promises: the server's public types can be shared between tasks and
//! threads, and its async methods can be spawned (their futures are `Send`). A change
//! that breaks one of these fails the build here, not a user's `tokio::spawn`.
//!
//! Each assertion is a `const` evaluation or a function that is only type-checked, so
//! there is nothing to run.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use witrpc_server::transport::{
    CloseReason, Connection, ConnectionHandler, FrameError, Inbound, Outbound, ServerTransport, TransportHandle,
    TransportOptions,
};
use witrpc_server::{
    AccessTokenValidator, Authorization, CallContext, Identity, NoAccessToken, RateLimit, ServerConfig, ServerError,
    SlowConsumerPolicy, StaticAccessToken, WitServer, WitServerBuilder,
};

/// `T` can move to another thread, be shared between threads, and be held without a
/// borrow (what `tokio::spawn` and `Arc<T>` across tasks need).
const fn send_sync_static<T: Send + Sync + 'static>() {}

/// `T` can move to another thread and be held without a borrow (one owner at a time).
const fn send_static<T: Send + 'static>() {}

/// The same as [`send_sync_static`] for errors, which also cross `?` into
/// `Box<dyn Error + Send + Sync>` and `anyhow::Error`.
const fn error<T: std::error::Error + Send + Sync + 'static>() {}

const _: () = {
    send_sync_static::<WitServer>();
    send_sync_static::<WitServerBuilder>();
    send_sync_static::<ServerConfig>();
    send_sync_static::<StaticAccessToken>();
    send_sync_static::<NoAccessToken>();
    send_sync_static::<Authorization>();
    send_sync_static::<Arc<dyn AccessTokenValidator>>();
    send_sync_static::<RateLimit>();
    send_sync_static::<SlowConsumerPolicy>();
    send_sync_static::<CallContext>();
    send_sync_static::<Identity>();
    error::<ServerError>();
};

// The transport seam: a connection moves to its task; handles and options are shared.
const _: () = {
    send_static::<Connection>();
    send_sync_static::<Inbound>();
    send_sync_static::<Outbound>();
    send_sync_static::<CloseReason>();
    send_sync_static::<TransportOptions>();
    send_sync_static::<Arc<dyn ConnectionHandler>>();
    send_sync_static::<Box<dyn TransportHandle>>();
    send_sync_static::<Box<dyn ServerTransport>>();
    error::<FrameError>();
};

/// `future` can be handed to `tokio::spawn`.
fn spawnable<F: Future + Send + 'static>(_future: F) {}

/// The server's async methods, called on a server shared as `Arc<WitServer>` (a
/// `'static` borrow stands for it), can run on a multi-threaded runtime.
fn futures_are_spawnable(server: &'static WitServer) {
    spawnable(server.start_waiting_for_connection());
    spawnable(server.stop_waiting_for_connection());
    spawnable(server.shutdown(Duration::from_secs(1)));
}

const _: fn(&'static WitServer) = futures_are_spawnable;
