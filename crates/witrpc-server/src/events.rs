//! The event hub: encodes each event once and queues it to every authorized connection.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use uuid::Uuid;
use witrpc_core::{EventSink, ParameterError, ParameterSerializer, ServiceDescriptor, WitRequest};

use witrpc_core::session::{EventTag, Queued, SlowConsumerPolicy};

use crate::outbox::Outbox;

/// Authorized connections by id. The lock is taken for writing only when a connection
/// authorizes or leaves; raising an event takes it for reading. The request path never
/// touches it.
#[derive(Debug)]
pub(crate) struct EventHub {
    serializer: Arc<dyn ParameterSerializer>,
    connections: RwLock<HashMap<Uuid, Arc<Outbox>>>,
    /// Slow-consumer policy by event wire name; absent = `Disconnect`.
    policies: HashMap<String, SlowConsumerPolicy>,
}

impl EventHub {
    pub(crate) fn new(serializer: Arc<dyn ParameterSerializer>, policies: HashMap<String, SlowConsumerPolicy>) -> Self {
        Self { serializer, connections: RwLock::new(HashMap::new()), policies }
    }

    pub(crate) fn insert(&self, id: Uuid, outbox: Arc<Outbox>) {
        self.connections.write().unwrap_or_else(|e| e.into_inner()).insert(id, outbox);
    }

    pub(crate) fn remove(&self, id: &Uuid) {
        self.connections.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

impl EventSink for EventHub {
    fn room(&self) -> witrpc_core::BoxFuture<'_, ()> {
        let outboxes: Vec<Arc<Outbox>> =
            self.connections.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        Box::pin(async move {
            for outbox in outboxes {
                outbox.wait_for_room().await;
            }
        })
    }

    fn emit(
        &self,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn witrpc_core::erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        let Some(descriptor) = contract.events.get(event) else { return Ok(()) };
        let resolved = contract.resolved();
        let mut parameters = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let blob = self
                .serializer
                .serialize(*arg)
                .map_err(|e| e.for_value(format!("argument {i} of event {}", descriptor.name)))?;
            parameters.push(Bytes::from(blob));
        }
        let request = WitRequest {
            method_name: descriptor.name.to_owned(),
            parameters,
            parameter_types_by_name: resolved.event_parameter_types.get(event).cloned().unwrap_or_default(),
            invocation_id: Uuid::new_v4(),
            contract_id: resolved.contract_id,
            ..WitRequest::default()
        };
        let payload = Bytes::from(request.encode());
        let tag = EventTag {
            key: (resolved.contract_id, descriptor.name),
            policy: self.policies.get(descriptor.name).copied().unwrap_or_default(),
        };
        let connections = self.connections.read().unwrap_or_else(|e| e.into_inner());
        tracing::trace!(event = descriptor.name, connections = connections.len(), "event");
        for (id, outbox) in connections.iter() {
            outbox.send_event(Queued::Event { id: *id, payload: payload.clone(), tag });
        }
        Ok(())
    }
}
