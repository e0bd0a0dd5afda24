//! Compile-time promises for the code `#[witrpc::service]` generates (through the demo
//! service): the typed client and the event emitter are cheap handles for any task, the
//! server side can be shared by every connection, and a generated call or event stream
//! can be spawned. A change to the macro that breaks one of these fails the build here.
//!
//! Each assertion is a `const` evaluation or a function that is only type-checked, so
//! there is nothing to run.

use std::future::Future;

use futures_util::Stream;
use witrpc::WitClient;
use witrpc::protocol::Service;
use witrpc_demo::{Demo, DemoServiceClient, DemoServiceEvents, DemoServiceServer};

/// A cheap handle: clone it into every task that needs it.
const fn handle<T: Clone + Send + Sync + 'static>() {}

/// `T` can move to another thread, be shared between threads, and be held without a
/// borrow.
const fn send_sync_static<T: Send + Sync + 'static>() {}

const _: () = {
    handle::<DemoServiceClient<WitClient>>();
    handle::<DemoServiceEvents>();
    send_sync_static::<DemoServiceServer<Demo>>();
    send_sync_static::<Box<dyn Service>>();
};

/// `future` can be handed to `tokio::spawn`.
fn spawnable<F: Future + Send + 'static>(_future: F) {}

/// `stream` can be moved into a spawned task and polled there with `.next()` (no
/// pinning needed).
fn spawnable_stream<S: Stream + Send + Unpin + 'static>(_stream: S) {}

/// A generated call on a client moved into a task (a `'static` borrow stands for it),
/// and a generated event stream.
fn generated_calls_and_streams_are_spawnable(client: &'static DemoServiceClient<WitClient>) {
    spawnable(client.add(1, 2));
    spawnable(client.echo("text".to_owned()));
    spawnable(client.start_processing(3));
    spawnable_stream(client.progress_changed());
    spawnable_stream(client.message());
}

const _: fn(&'static DemoServiceClient<WitClient>) = generated_calls_and_streams_are_spawnable;
