//! Compile-time promises: the client's public types can be shared between tasks and
//! threads, and its async methods can be spawned (their futures are `Send`). A change
//! that breaks one of these fails the build here, not a user's `tokio::spawn`.
//!
//! Each assertion is a `const` evaluation or a function that is only type-checked, so
//! there is nothing to run.

use std::future::Future;
use std::time::Duration;

use witrpc_client::{
    ClientError, ClientTransport, Inbound, Outbound, ReconnectPolicy, TransportError, WitClient, WitClientBuilder,
};
use witrpc_core::{OutgoingCall, ServiceDescriptor};

/// `T` can move to another thread, be shared between threads, and be held without a
/// borrow (what `tokio::spawn` and `Arc<T>` across tasks need).
const fn send_sync_static<T: Send + Sync + 'static>() {}

/// A cheap handle: clone it into every task that calls.
const fn handle<T: Clone + Send + Sync + 'static>() {}

/// The same as [`send_sync_static`] for errors, which also cross `?` into
/// `Box<dyn Error + Send + Sync>` and `anyhow::Error`.
const fn error<T: std::error::Error + Send + Sync + 'static>() {}

const _: () = {
    handle::<WitClient>();
    send_sync_static::<WitClientBuilder>();
    send_sync_static::<ReconnectPolicy>();
    send_sync_static::<Box<dyn ClientTransport>>();
    send_sync_static::<Inbound>();
    send_sync_static::<Outbound>();
    error::<ClientError>();
    error::<TransportError>();
};

/// `future` can be handed to `tokio::spawn`.
fn spawnable<F: Future + Send + 'static>(_future: F) {}

/// Connecting, calling and closing can run on a multi-threaded runtime: `connect` takes
/// the builder by value; the rest are called on a client moved into the task (a
/// `'static` borrow stands for it).
fn futures_are_spawnable(
    builder: WitClientBuilder<Box<dyn ClientTransport>>,
    client: &'static WitClient,
    contract: &'static ServiceDescriptor,
) {
    spawnable(builder.connect(Duration::from_secs(1)));
    spawnable(client.call(OutgoingCall { contract, method: 0, parameters: Vec::new() }));
    spawnable(client.closed());
    spawnable(client.disconnect());
}

const _: fn(WitClientBuilder<Box<dyn ClientTransport>>, &'static WitClient, &'static ServiceDescriptor) =
    futures_are_spawnable;
