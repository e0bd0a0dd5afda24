//! Method lookup: by `MethodId` first, then by name (case-insensitive) and arity, as
//! the .NET server resolves calls.

use std::collections::HashMap;
use std::sync::Arc;

use witrpc_core::v2;
use witrpc_core::{Service, WitRequest};

use crate::error::ServerError;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) service: usize,
    pub(crate) method: usize,
    pub(crate) arity: usize,
}

/// The services of one server and their lookup tables; immutable after `build()`, so
/// the request path reads it without a lock.
#[derive(Debug)]
pub(crate) struct Registry {
    services: Vec<Arc<dyn Service>>,
    by_id: HashMap<i64, Target>,
    by_name: HashMap<String, Vec<Target>>,
    /// Protocol-2 dispatch: by name and .NET parameter types.
    v2: v2::MethodTable,
}

impl Registry {
    pub(crate) fn new(services: Vec<Arc<dyn Service>>) -> Result<Self, ServerError> {
        let mut by_id: HashMap<i64, Target> = HashMap::new();
        let mut by_name: HashMap<String, Vec<Target>> = HashMap::new();
        let mut contracts: Vec<&'static str> = Vec::new();
        for (s, service) in services.iter().enumerate() {
            let d = service.descriptor();
            if contracts.contains(&d.contract) {
                return Err(ServerError::DuplicateContract { contract: d.contract });
            }
            contracts.push(d.contract);
            let resolved = d.resolved();
            for (m, (method, &id)) in d.methods.iter().zip(&resolved.method_ids).enumerate() {
                let target = Target { service: s, method: m, arity: method.parameter_names.len() };
                if let Some(prev) = by_id.insert(id, target) {
                    let pd = services[prev.service].descriptor();
                    return Err(ServerError::MethodIdCollision {
                        first: format!("{}#{}", pd.contract, pd.methods[prev.method].name),
                        second: format!("{}#{}", d.contract, method.name),
                    });
                }
                by_name.entry(method.name.to_lowercase()).or_default().push(target);
            }
        }
        let v2 = v2::MethodTable::new(services.iter().map(|s| s.descriptor()));
        Ok(Self { services, by_id, by_name, v2 })
    }

    pub(crate) fn services(&self) -> &[Arc<dyn Service>] {
        &self.services
    }

    pub(crate) fn service(&self, target: Target) -> &Arc<dyn Service> {
        &self.services[target.service]
    }

    /// Finds the method a protocol-2 request names (name + .NET parameter types).
    pub(crate) fn resolve_v2(&self, request: &v2::WitRequest) -> Result<Target, v2::ResolveError> {
        let found = self.v2.resolve(request)?;
        let arity = self.services[found.service].descriptor().methods[found.method].parameter_names.len();
        Ok(Target { service: found.service, method: found.method, arity })
    }

    /// Finds the method a request names, or `None` (answered with 400).
    pub(crate) fn resolve(&self, request: &WitRequest) -> Option<Target> {
        let arity = request.parameters.len();
        if request.method_id != 0 {
            if let Some(t) = self.by_id.get(&request.method_id) {
                if t.arity == arity {
                    return Some(*t);
                }
            }
        }
        let candidates = self.by_name.get(&request.method_name.to_lowercase())?;
        candidates.iter().copied().find(|t| t.arity == arity)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use witrpc_core::{BoxFuture, MethodCall, MethodDescriptor, MethodError, ServiceDescriptor, ids};

    use super::*;

    fn int2() -> Vec<String> {
        vec!["System.Int32".into(), "System.Int32".into()]
    }
    fn none() -> Vec<String> {
        Vec::new()
    }
    fn no_types() -> Vec<witrpc_core::ParameterType> {
        Vec::new()
    }

    static CALC: ServiceDescriptor = ServiceDescriptor {
        contract: "MyCompany.Contracts.ICalculator",
        methods: &[
            MethodDescriptor {
                name: "Add",
                parameter_names: &["a", "b"],
                parameter_types: int2,
                parameter_types_by_name: no_types,
            },
            MethodDescriptor {
                name: "Ping",
                parameter_names: &[],
                parameter_types: none,
                parameter_types_by_name: no_types,
            },
        ],
        events: &[],
        resolved: OnceLock::new(),
    };

    struct Calc;
    impl Service for Calc {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            &CALC
        }
        fn call(&self, _: usize, _: MethodCall) -> BoxFuture<'static, Result<Option<Vec<u8>>, MethodError>> {
            Box::pin(async { Ok(None) })
        }
    }

    fn request(name: &str, id: i64, arity: usize) -> WitRequest {
        WitRequest {
            method_name: name.into(),
            method_id: id,
            parameters: vec![Default::default(); arity],
            ..Default::default()
        }
    }

    #[test]
    fn resolves_by_method_id_then_by_name_and_arity() {
        let registry = Registry::new(vec![Arc::new(Calc)]).unwrap();
        let add_id = ids::method_id("MyCompany.Contracts.ICalculator", "Add", &["System.Int32", "System.Int32"]);
        assert_eq!(add_id, -6_724_387_377_990_606_637);
        assert_eq!(registry.resolve(&request("", add_id, 2)).map(|t| t.method), Some(0));
        // Unknown id: falls back to the name, case-insensitively.
        assert_eq!(registry.resolve(&request("aDD", 12345, 2)).map(|t| t.method), Some(0));
        assert_eq!(registry.resolve(&request("ping", 0, 0)).map(|t| t.method), Some(1));
        // Known id but wrong arity, and a name with the wrong arity: not found.
        assert_eq!(registry.resolve(&request("Add", add_id, 1)), None);
        assert_eq!(registry.resolve(&request("Nope", 0, 0)), None);
    }

    #[test]
    fn registering_a_contract_twice_is_an_error() {
        let err = Registry::new(vec![Arc::new(Calc), Arc::new(Calc)]).unwrap_err();
        assert!(matches!(err, ServerError::DuplicateContract { .. }), "{err}");
    }
}
