//! Protocol-2 dispatch: method name (case-insensitive) + .NET parameter type names
//! (notes §3.4, §11 item 2), with the exact .NET replies for what does not resolve.

use std::sync::OnceLock;

use proptest::prelude::*;
use witrpc_core::bytes::Bytes;
use witrpc_core::v2::{
    MethodRef, MethodTable, ResolveError, WitRequest, canonical_type_name, runtime_type_name, texts,
};
use witrpc_core::{CommunicationStatus, DotNetType, MethodDescriptor, ParameterType, ServiceDescriptor};

fn by_name<T: DotNetType>() -> ParameterType {
    ParameterType { type_name: Some(T::full_name()), assembly: Some(T::assembly()) }
}

const fn method(name: &'static str, types: fn() -> Vec<ParameterType>) -> MethodDescriptor {
    MethodDescriptor { name, parameter_names: &[], parameter_types: Vec::new, parameter_types_by_name: types }
}

static CALC: ServiceDescriptor = ServiceDescriptor {
    contract: "Demo.ICalc",
    methods: &[
        method("Add", || vec![by_name::<i32>(), by_name::<i32>()]),
        method("Add", || vec![by_name::<i64>(), by_name::<i64>()]),
        method("Sum", || vec![by_name::<Vec<i32>>()]),
        method("Ping", Vec::new),
        method("Maybe", || vec![by_name::<Option<f64>>(), by_name::<String>()]),
    ],
    events: &[],
    resolved: OnceLock::new(),
};

static OTHER: ServiceDescriptor = ServiceDescriptor {
    contract: "Demo.IOther",
    methods: &[method("Ping", Vec::new), method("Hello", || vec![by_name::<String>()])],
    events: &[],
    resolved: OnceLock::new(),
};

fn call(name: &str, types: &[&str]) -> WitRequest {
    WitRequest {
        method_name: name.into(),
        parameters: types.iter().map(|_| Bytes::from_static(b"0")).collect(),
        parameter_types: types.iter().map(|t| (*t).to_owned()).collect(),
        ..WitRequest::default()
    }
}

const INT32: &str = "System.Int32, System.Private.CoreLib";
const INT64: &str = "System.Int64, System.Private.CoreLib";
const INT32_JSON: &str =
    "System.Int32, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e";

#[test]
fn overloads_are_told_apart_by_parameter_types() {
    let table = MethodTable::new([&CALC]);
    assert_eq!(table.resolve(&call("Add", &[INT32, INT32])), Ok(MethodRef { service: 0, method: 0 }));
    assert_eq!(table.resolve(&call("Add", &[INT64, INT64])), Ok(MethodRef { service: 0, method: 1 }));
    // JSON envelopes carry versions; case of the name does not matter.
    assert_eq!(table.resolve(&call("aDD", &[INT32_JSON, INT32_JSON])), Ok(MethodRef { service: 0, method: 0 }));
    let list = "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]], System.Private.CoreLib";
    assert_eq!(table.resolve(&call("sum", &[list])), Ok(MethodRef { service: 0, method: 2 }));
    let nullable = "System.Nullable`1[[System.Double, System.Private.CoreLib]], System.Private.CoreLib";
    let string = "System.String, System.Private.CoreLib";
    assert_eq!(table.resolve(&call("Maybe", &[nullable, string])), Ok(MethodRef { service: 0, method: 4 }));
    assert_eq!(table.resolve(&call("Ping", &[])), Ok(MethodRef { service: 0, method: 3 }));
}

#[test]
fn by_name_types_win_over_parameter_types_when_present() {
    let table = MethodTable::new([&CALC]);
    let mut request = call("Add", &[INT32, INT32]);
    request.parameter_types_by_name = vec![by_name::<i64>(), by_name::<i64>()];
    assert_eq!(table.resolve(&request), Ok(MethodRef { service: 0, method: 1 }));
    // strongAssemblyMatch = false: ParameterTypes empty, ByName filled.
    request.parameter_types.clear();
    assert_eq!(table.resolve(&request), Ok(MethodRef { service: 0, method: 1 }));
    // A ByName entry without an assembly resolves to nothing.
    request.parameter_types_by_name[1].assembly = None;
    assert!(matches!(table.resolve(&request), Err(ResolveError::MethodNotFound { .. })));
}

#[test]
fn unknown_methods_get_the_dotnet_400_texts() {
    let single = MethodTable::new([&CALC]);
    for request in
        [call("Add", &[INT32]), call("Add", &[INT32, INT64]), call("Nope", &[]), call("Add", &["Int32", "Int32"])]
    {
        let err = single.resolve(&request).unwrap_err();
        let response = err.response();
        assert_eq!(response.status, CommunicationStatus::BadRequest);
        assert_eq!(
            response.error_message.unwrap(),
            format!("Method not found on service, method name: {}", request.method_name)
        );
        assert_eq!(response.error_details, None);
    }
    let composite = MethodTable::new([&CALC, &OTHER]);
    let response = composite.resolve(&call("Nope", &[])).unwrap_err().response();
    assert_eq!(
        response.error_message.as_deref(),
        Some("Method not found on any registered service, method name: Nope")
    );
}

#[test]
fn the_first_registered_service_wins() {
    let table = MethodTable::new([&CALC, &OTHER]);
    assert_eq!(table.resolve(&call("ping", &[])), Ok(MethodRef { service: 0, method: 3 }));
    assert_eq!(
        table.resolve(&call("Hello", &["System.String, System.Private.CoreLib"])),
        Ok(MethodRef { service: 1, method: 1 })
    );
}

#[test]
fn argument_lists_that_do_not_fit_get_the_dotnet_500() {
    let table = MethodTable::new([&CALC]);
    // Arguments but no type list: only the parameterless method matches, then fails.
    let mut request = call("Ping", &[]);
    request.parameters.push(Bytes::from_static(b"1"));
    let err = table.resolve(&request).unwrap_err();
    assert_eq!(err, ResolveError::ParameterTypesMissing);
    let response = err.response();
    assert_eq!(response.status, CommunicationStatus::InternalServerError);
    assert_eq!(response.error_message.as_deref(), Some(texts::FAILED_TO_PROCESS_REQUEST));
    assert_eq!(response.error_details.as_deref(), Some("Cannot deserialize request: parameter types missing"));
    // Types for two arguments, one argument.
    let mut request = call("Add", &[INT32, INT32]);
    request.parameters.pop();
    assert_eq!(table.resolve(&request), Err(ResolveError::ParameterCountMismatch { expected: 2, actual: 1 }));
    assert_eq!(table.resolve(&request).unwrap_err().status(), CommunicationStatus::InternalServerError);
}

#[test]
fn event_type_names_are_the_ones_a_dotnet_client_loads() {
    assert_eq!(runtime_type_name(&by_name::<String>()), "System.String, System.Private.CoreLib");
    assert_eq!(
        runtime_type_name(&by_name::<Vec<i32>>()),
        "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]], System.Private.CoreLib"
    );
    assert_eq!(runtime_type_name(&by_name::<Option<i64>>()), INT64);
    assert_eq!(runtime_type_name(&ParameterType::default()), "System.Object, System.Private.CoreLib");
    let dto = ParameterType { type_name: Some("Demo.Point".into()), assembly: Some("Demo.Contracts".into()) };
    assert_eq!(runtime_type_name(&dto), "Demo.Point, Demo.Contracts");
}

proptest! {
    #[test]
    fn canonical_names_never_panic_and_are_stable(name in "[A-Za-z.,`\\[\\]= 0-9]{0,60}") {
        if let Some(c) = canonical_type_name(&name) {
            prop_assert_eq!(canonical_type_name(&c), Some(c));
        }
    }

    #[test]
    fn resolving_arbitrary_requests_never_panics(name in ".{0,12}", types in proptest::collection::vec(".{0,40}", 0..3), n in 0usize..4) {
        let table = MethodTable::new([&CALC, &OTHER]);
        let request = WitRequest {
            method_name: name,
            parameters: vec![Bytes::new(); n],
            parameter_types: types,
            ..WitRequest::default()
        };
        let _ = table.resolve(&request);
    }
}
