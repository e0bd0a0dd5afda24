//! Compile-time promises: the protocol engine and the handles that cross tasks are
//! `Send + Sync + 'static` (a runtime may move a connection's session between worker
//! threads, and the server shares its emitters between calls). A change that breaks one
//! of these fails the build here, not a user's `tokio::spawn`.
//!
//! Each assertion is a `const` evaluation, so there is nothing to run.

use std::sync::Arc;

use witrpc_core::crypto::{Ciphers, CryptoError, Opener, Sealer, ServerEncryptor};
use witrpc_core::session::{
    ClientEvent, ClientSession, ClientState, CloseCode, CloseReason, EventPushed, EventTag, Keepalive, OutQueue,
    QueueLimits, Queued, RateLimit, ServerConfig, ServerEvent, ServerSession, ServerState, SessionError, SlowConsumer,
    SlowConsumerPolicy, Transmit,
};
use witrpc_core::{
    CallContext, CodecError, ConnectionClosed, EventEmitter, EventError, EventPublisher, EventStream,
    EventSubscription, Identity, MethodError, ParameterError, ParameterSerializer, ServiceDescriptor, WitMessage,
    WitRequest, WitResponse,
};

/// `T` can move to another thread, be shared between threads, and be held without a
/// borrow (what `tokio::spawn` and `Arc<T>` across tasks need).
const fn send_sync_static<T: Send + Sync + 'static>() {}

/// The same for errors, which also cross `?` into `Box<dyn Error + Send + Sync>` and
/// `anyhow::Error`.
const fn error<T: std::error::Error + Send + Sync + 'static>() {}

// The sans-I/O session, both roles, and everything it takes and returns.
const _: () = {
    send_sync_static::<ServerSession>();
    send_sync_static::<ClientSession>();
    send_sync_static::<ServerConfig>();
    send_sync_static::<ServerEvent>();
    send_sync_static::<ClientEvent>();
    send_sync_static::<ServerState>();
    send_sync_static::<ClientState>();
    send_sync_static::<Transmit>();
    send_sync_static::<OutQueue>();
    send_sync_static::<Queued>();
    send_sync_static::<QueueLimits>();
    send_sync_static::<EventPushed>();
    send_sync_static::<EventTag>();
    send_sync_static::<SlowConsumer>();
    send_sync_static::<SlowConsumerPolicy>();
    send_sync_static::<CloseCode>();
    send_sync_static::<CloseReason>();
    send_sync_static::<Keepalive>();
    send_sync_static::<RateLimit>();
    error::<SessionError>();
};

// Plug-ins are held as `Arc<dyn _>` by every connection.
const _: () = {
    send_sync_static::<Arc<dyn ParameterSerializer>>();
    send_sync_static::<Arc<dyn ServerEncryptor>>();
    send_sync_static::<Box<dyn Sealer>>();
    send_sync_static::<Box<dyn Opener>>();
    send_sync_static::<Ciphers>();
    error::<CryptoError>();
};

// Handles that cross tasks: call context, events, messages.
const _: () = {
    send_sync_static::<CallContext>();
    send_sync_static::<Identity>();
    send_sync_static::<ConnectionClosed>();
    send_sync_static::<EventEmitter>();
    send_sync_static::<EventPublisher>();
    send_sync_static::<EventSubscription>();
    send_sync_static::<EventStream<String>>();
    send_sync_static::<&'static ServiceDescriptor>();
    send_sync_static::<WitMessage>();
    send_sync_static::<WitRequest>();
    send_sync_static::<WitResponse>();
    error::<CodecError>();
    error::<ParameterError>();
    error::<EventError>();
    error::<MethodError>();
};
