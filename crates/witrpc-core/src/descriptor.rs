//! What a contract looks like as data: its methods and events, their .NET types and ids.
//! `#[witrpc::service]` writes one [`ServiceDescriptor`] per contract.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use crate::ids;
use crate::payload::ParameterType;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One method of a contract.
#[derive(Debug)]
pub struct MethodDescriptor {
    /// Wire name (PascalCase by default, as .NET declares it).
    pub name: &'static str,
    /// Rust parameter names, for error messages.
    pub parameter_names: &'static [&'static str],
    /// .NET stable names of the parameters (for the `MethodId`).
    pub parameter_types: fn() -> Vec<String>,
    /// .NET `FullName` + assembly of the parameters (for `ParameterTypesByName`).
    pub parameter_types_by_name: fn() -> Vec<ParameterType>,
}

/// One event of a contract.
#[derive(Debug)]
pub struct EventDescriptor {
    /// Wire name (the .NET event name; matched case-sensitively by .NET clients).
    pub name: &'static str,
    /// .NET `FullName` + assembly of the arguments; .NET clients need these to decode.
    pub parameter_types_by_name: fn() -> Vec<ParameterType>,
}

/// Ids and type tags computed once per contract.
#[derive(Debug)]
pub struct ResolvedContract {
    /// `ContractId` of the contract.
    pub contract_id: i64,
    /// `MethodId` per method, in declaration order.
    pub method_ids: Vec<i64>,
    /// `ParameterTypesByName` per method, in declaration order.
    pub method_parameter_types: Vec<Vec<ParameterType>>,
    /// `ParameterTypesByName` per event, in declaration order.
    pub event_parameter_types: Vec<Vec<ParameterType>>,
}

/// A contract: the .NET interface name, its methods and its events.
#[derive(Debug)]
pub struct ServiceDescriptor {
    /// Namespace-qualified interface name, e.g. `WitRpc.Demo.IDemoService`.
    pub contract: &'static str,
    /// Methods in declaration order.
    pub methods: &'static [MethodDescriptor],
    /// Events in declaration order.
    pub events: &'static [EventDescriptor],
    /// Lazily computed ids; create with `OnceLock::new()`.
    pub resolved: OnceLock<ResolvedContract>,
}

impl ServiceDescriptor {
    /// Ids and type tags, computed on first use.
    pub fn resolved(&self) -> &ResolvedContract {
        self.resolved.get_or_init(|| ResolvedContract {
            contract_id: ids::contract_id(self.contract),
            method_ids: self
                .methods
                .iter()
                .map(|m| ids::method_id(self.contract, m.name, &(m.parameter_types)()))
                .collect(),
            method_parameter_types: self.methods.iter().map(|m| (m.parameter_types_by_name)()).collect(),
            event_parameter_types: self.events.iter().map(|e| (e.parameter_types_by_name)()).collect(),
        })
    }

    /// `ContractId` of this contract.
    pub fn contract_id(&self) -> i64 {
        self.resolved().contract_id
    }
}
