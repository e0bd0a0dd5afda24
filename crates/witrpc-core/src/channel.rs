//! What a generated client needs from a connection.

use bytes::Bytes;
use std::sync::Arc;

use crate::descriptor::{BoxFuture, ServiceDescriptor};
use crate::error::ParameterError;
use crate::events::EventSubscription;
use crate::serializer::ParameterSerializer;

/// One outgoing method call, before it is put in a `WitRequest`.
#[derive(Debug)]
pub struct OutgoingCall {
    /// The contract the method belongs to.
    pub contract: &'static ServiceDescriptor,
    /// Index into `contract.methods`.
    pub method: usize,
    /// Encoded arguments, one per parameter (empty = null).
    pub parameters: Vec<Bytes>,
}

/// A connection that typed clients call methods and subscribe to events through.
///
/// `witrpc-client`'s `WitClient` implements it; generated `FooClient<C>` types are
/// generic over it, so they depend on nothing but this crate.
pub trait ClientChannel: Clone + Send + Sync + 'static {
    /// The error a call fails with; must absorb argument encoding errors.
    type Error: From<ParameterError> + Send + 'static;

    /// The parameter serializer this connection was configured with.
    fn serializer(&self) -> &Arc<dyn ParameterSerializer>;

    /// Sends `call` and waits for its response's data (`None` for void or null).
    fn invoke(&self, call: OutgoingCall) -> BoxFuture<'static, Result<Option<Bytes>, Self::Error>>;

    /// Subscribes to event number `event` of `contract`.
    fn subscribe(&self, contract: &'static ServiceDescriptor, event: usize) -> EventSubscription;
}
