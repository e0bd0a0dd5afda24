//! The generated server, client and emitter, exercised through real calls.
//!
//! A loopback `ClientChannel` hands each call straight to the generated server's
//! `Service::call`, with a small serde_json parameter serializer (the real JSON crate is
//! not a dependency of the macro crate), so every byte goes through the generated
//! encoders and decoders.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use witrpc_core::bytes::Bytes;
use witrpc_core::{
    BoxFuture, CallContext, ClientChannel, DeserializeVisitor, DotNetType, EventError, EventPublisher, EventSink,
    EventSubscription, MethodCall, MethodError, OutgoingCall, ParameterError, ParameterErrorKind, ParameterSerializer,
    Service, ServiceDescriptor, erased_serde, event_channel, parameter_error,
};

/// A demo contract covering every shape the macro handles.
#[witrpc_macros::service(contract = "WitRpc.Demo.IDemoService", crate = "witrpc_core")]
pub trait DemoService {
    /// `a + b`.
    async fn add(&self, a: i32, b: i32) -> i32;
    /// Returns `data`.
    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// Returns `data`.
    async fn echo_optional_bytes(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>>;
    /// Fails with `message`.
    async fn fail(&self, message: String) -> Result<(), String>;
    /// `a / b`, or an error for zero.
    async fn divide(&self, a: f64, b: f64) -> Result<f64, String>;
    /// Returns its argument.
    #[witrpc(name = "Delay")]
    async fn delay_ms(&self, milliseconds: i32) -> i32;
    /// Stores `dto`.
    async fn save(&self, #[witrpc(dotnet = "MyNs.Dto", assembly = "MyAssembly")] dto: Dto) -> bool;
    /// Does nothing.
    async fn ping(&self);
    /// Raises every event once.
    async fn raise_all(&self);

    /// Progress in percent.
    #[event]
    fn progress_changed(&self, percent: f64);
    /// A message with its sender.
    #[event]
    fn message(&self, text: String, data: Vec<u8>);
    /// Finished.
    #[event(name = "Done")]
    fn finished(&self);
}

/// A DTO with a .NET name given in the attribute (no `DotNetType` impl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dto {
    name: String,
}

struct Demo {
    events: DemoServiceEvents,
    saved: Mutex<Vec<Dto>>,
}

impl DemoService for Demo {
    async fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }

    async fn echo_bytes(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn echo_optional_bytes(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
        data
    }

    async fn fail(&self, message: String) -> Result<(), String> {
        Err(message)
    }

    async fn divide(&self, a: f64, b: f64) -> Result<f64, String> {
        if b == 0.0 { Err("division by zero".to_owned()) } else { Ok(a / b) }
    }

    async fn delay_ms(&self, milliseconds: i32) -> i32 {
        milliseconds
    }

    async fn save(&self, dto: Dto) -> bool {
        self.saved.lock().unwrap().push(dto);
        true
    }

    async fn ping(&self) {}

    async fn raise_all(&self) {
        self.events.progress_changed(50.0).unwrap();
        self.events.message("hi".to_owned(), vec![1, 2, 3]).unwrap();
        self.events.finished().unwrap();
    }
}

/// The contract from the protocol notes' id vectors.
#[witrpc_macros::service(contract = "MyCompany.Contracts.ICalculator", crate = "witrpc_core")]
pub trait Calculator {
    /// `a + b`.
    async fn add(&self, a: i32, b: i32) -> i32;
    /// Nothing.
    async fn ping(&self);
}

/// A serde_json parameter serializer: null is an empty blob, as in .NET.
#[derive(Debug)]
struct Json;

impl ParameterSerializer for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError> {
        let bytes = serde_json::to_vec(value).map_err(|e| parameter_error(ParameterErrorKind::Encode, "json", e))?;
        Ok(if bytes == b"null" { Vec::new() } else { bytes })
    }

    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError> {
        let bytes = if bytes.is_empty() { &b"null"[..] } else { bytes };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de))
            .map_err(|e| parameter_error(ParameterErrorKind::Decode, "json", e))?;
        de.end().map_err(|e| parameter_error(ParameterErrorKind::Decode, "json", e))
    }
}

fn json() -> Arc<dyn ParameterSerializer> {
    Arc::new(Json)
}

/// What a loopback call fails with.
#[derive(Debug)]
enum LoopError {
    Argument(ParameterError),
    Method(MethodError),
}

impl From<ParameterError> for LoopError {
    fn from(e: ParameterError) -> Self {
        Self::Argument(e)
    }
}

type Subscribers = Arc<Mutex<Vec<(&'static str, usize, EventPublisher)>>>;

/// A `ClientChannel` that calls a `Service` in-process, and an `EventSink` that publishes
/// the events that service raises to this channel's subscriptions.
#[derive(Clone)]
struct Loopback {
    service: Arc<dyn Service>,
    serializer: Arc<dyn ParameterSerializer>,
    subscribers: Subscribers,
    /// The argument blobs of the last call, as the client encoded them.
    last_parameters: Arc<Mutex<Vec<Bytes>>>,
}

impl Loopback {
    fn new(service: impl Service) -> Self {
        Self {
            service: Arc::new(service),
            serializer: json(),
            subscribers: Arc::default(),
            last_parameters: Arc::default(),
        }
    }

    fn publish(&self, contract: &'static ServiceDescriptor, event: usize, args: Vec<Bytes>) {
        for (c, e, publisher) in self.subscribers.lock().unwrap().iter_mut() {
            if *c == contract.contract && *e == event {
                publisher.publish(args.clone());
            }
        }
    }
}

impl ClientChannel for Loopback {
    type Error = LoopError;

    fn serializer(&self) -> &Arc<dyn ParameterSerializer> {
        &self.serializer
    }

    fn invoke(&self, call: OutgoingCall) -> BoxFuture<'static, Result<Option<Bytes>, LoopError>> {
        assert_eq!(call.contract.contract, self.service.descriptor().contract, "called through another contract");
        let method = call.method;
        *self.last_parameters.lock().unwrap() = call.parameters.clone();
        let call = MethodCall {
            parameters: call.parameters,
            serializer: self.serializer.clone(),
            context: CallContext::default(),
        };
        let future = self.service.call(method, call);
        Box::pin(async move { future.await.map(|data| data.map(Bytes::from)).map_err(LoopError::Method) })
    }

    fn subscribe(&self, contract: &'static ServiceDescriptor, event: usize) -> EventSubscription {
        let (publisher, subscription) = event_channel(16);
        self.subscribers.lock().unwrap().push((contract.contract, event, publisher));
        subscription
    }
}

/// One raised event: contract, event index, encoded arguments.
type Raised = (String, usize, Vec<Vec<u8>>);

/// Records every event raised, encoded, and forwards it to a loopback's subscribers.
struct RecordingSink {
    serializer: Arc<dyn ParameterSerializer>,
    seen: Mutex<Vec<Raised>>,
    forward: Option<Loopback>,
}

impl EventSink for RecordingSink {
    fn emit(
        &self,
        contract: &'static ServiceDescriptor,
        event: usize,
        args: &[&(dyn erased_serde::Serialize + Sync)],
    ) -> Result<(), ParameterError> {
        let mut blobs = Vec::new();
        for arg in args {
            let arg: &dyn erased_serde::Serialize = *arg;
            blobs.push(self.serializer.serialize(arg)?);
        }
        if let Some(channel) = &self.forward {
            channel.publish(contract, event, blobs.iter().cloned().map(Bytes::from).collect());
        }
        self.seen.lock().unwrap().push((contract.contract.to_owned(), event, blobs));
        Ok(())
    }
}

fn demo() -> (DemoServiceEvents, DemoServiceServer<Demo>) {
    let events = DemoServiceEvents::new();
    let server = DemoServiceServer::new(Demo { events: events.clone(), saved: Mutex::default() }).with_events(&events);
    (events, server)
}

fn client() -> DemoServiceClient<Loopback> {
    DemoServiceClient::new(Loopback::new(demo().1))
}

/// Calls method `index` of the demo server directly with raw argument blobs.
async fn raw_call(index: usize, parameters: &[&str]) -> Result<Option<Vec<u8>>, MethodError> {
    let (_, server) = demo();
    let call = MethodCall {
        parameters: parameters.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect(),
        serializer: json(),
        context: CallContext::default(),
    };
    server.call(index, call).await
}

/// Awaits `call` (named `what`) with a timeout.
async fn within<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within 5 s"),
    }
}

#[test]
fn generated_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<DemoServiceServer<Demo>>();
    send_sync::<DemoServiceClient<Loopback>>();
    send_sync::<DemoServiceEvents>();
    fn send_future<F: std::future::Future + Send>(_: &F) {}
    let client = client();
    send_future(&client.add(1, 2));
}

#[tokio::test]
async fn add_returns_the_sum() {
    let client = client();
    assert_eq!(within("Add", client.add(2, 40)).await.unwrap(), 42);
    assert_eq!(raw_call(0, &["2", "3"]).await.unwrap(), Some(b"5".to_vec()));
}

#[tokio::test]
async fn byte_vectors_round_trip_as_base64() {
    let client = client();
    assert_eq!(within("EchoBytes", client.echo_bytes(vec![1, 2, 3])).await.unwrap(), vec![1, 2, 3]);
    assert_eq!(*client.channel().last_parameters.lock().unwrap(), [Bytes::from_static(b"\"AQID\"")]);
    // The server reads and writes .NET's byte[] form: a base64 string.
    assert_eq!(raw_call(1, &["\"AQID\""]).await.unwrap(), Some(b"\"AQID\"".to_vec()));
    assert_eq!(
        within("EchoOptionalBytes", client.echo_optional_bytes(Some(vec![255]))).await.unwrap(),
        Some(vec![255])
    );
    assert_eq!(within("EchoOptionalBytes", client.echo_optional_bytes(None)).await.unwrap(), None);
    assert_eq!(raw_call(2, &["\"/w==\""]).await.unwrap(), Some(b"\"/w==\"".to_vec()));
    // null (an empty blob) is None, and None is sent as an empty blob.
    assert_eq!(raw_call(2, &[""]).await.unwrap(), None);
}

#[tokio::test]
async fn err_becomes_the_error_details() {
    let client = client();
    match within("Fail", client.fail("boom".to_owned())).await {
        Err(LoopError::Method(MethodError::Failed { details })) => assert_eq!(details, "boom"),
        other => panic!("expected MethodError::Failed, got {other:?}"),
    }
    match within("Divide", client.divide(1.0, 0.0)).await {
        Err(LoopError::Method(MethodError::Failed { details })) => assert_eq!(details, "division by zero"),
        other => panic!("expected MethodError::Failed, got {other:?}"),
    }
    assert_eq!(within("Divide", client.divide(1.0, 4.0)).await.unwrap(), 0.25);
}

#[tokio::test]
async fn a_bad_argument_names_the_parameter() {
    match raw_call(0, &["2", "\"three\""]).await {
        Err(MethodError::InvalidArgument(e)) => {
            assert_eq!(e.what, "b");
            assert_eq!(e.kind, ParameterErrorKind::Decode);
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // A missing blob is null, which an i32 cannot be.
    match raw_call(0, &["2"]).await {
        Err(MethodError::InvalidArgument(e)) => assert_eq!(e.what, "b"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_method_index_is_an_error_not_a_panic() {
    match raw_call(99, &[]).await {
        Err(MethodError::Failed { details }) => assert_eq!(details, "unknown method index"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn unit_methods_and_overridden_names_work() {
    let client = client();
    within("Ping", client.ping()).await.unwrap();
    assert_eq!(raw_call(7, &[]).await.unwrap(), None);
    assert_eq!(within("Delay", client.delay_ms(7)).await.unwrap(), 7);
    let dto = Dto { name: "x".to_owned() };
    assert!(within("Save", client.save(dto)).await.unwrap());
}

#[test]
fn descriptor_has_wire_names_and_dotnet_types() {
    let d = DemoServiceServer::<Demo>::descriptor();
    assert_eq!(d.contract, "WitRpc.Demo.IDemoService");
    let names: Vec<_> = d.methods.iter().map(|m| m.name).collect();
    assert_eq!(names, ["Add", "EchoBytes", "EchoOptionalBytes", "Fail", "Divide", "Delay", "Save", "Ping", "RaiseAll"]);
    let events: Vec<_> = d.events.iter().map(|e| e.name).collect();
    assert_eq!(events, ["ProgressChanged", "Message", "Done"]);
    assert_eq!(d.methods[0].parameter_names, ["a", "b"]);
    assert_eq!((d.methods[1].parameter_types)(), ["System.Byte[]"]);
    let save = &d.methods[6];
    assert_eq!((save.parameter_types)(), ["MyNs.Dto"]);
    let by_name = (save.parameter_types_by_name)();
    assert_eq!(by_name[0].type_name.as_deref(), Some("MyNs.Dto"));
    assert_eq!(by_name[0].assembly.as_deref(), Some("MyAssembly"));
    let message = (d.events[1].parameter_types_by_name)();
    assert_eq!(message[0].type_name.as_deref(), Some("System.String"));
    assert_eq!(message[0].assembly.as_deref(), Some("System.Private.CoreLib"));
    assert_eq!(message[1].type_name, Some(<Vec<u8>>::full_name()));
    assert!((d.events[2].parameter_types_by_name)().is_empty());
    // Every generated type hands out the same descriptor.
    assert!(std::ptr::eq(d, DemoServiceClient::<Loopback>::descriptor()));
    assert!(std::ptr::eq(d, DemoServiceEvents::descriptor()));
    assert!(std::ptr::eq(d, Service::descriptor(&demo().1)));
}

#[test]
fn method_ids_match_the_dotnet_vectors() {
    let resolved = CalculatorServer::<Calc>::descriptor().resolved();
    assert_eq!(resolved.contract_id, 2_863_546_532_410_206_118);
    assert_eq!(resolved.method_ids, [-6_724_387_377_990_606_637, -3_928_012_737_138_291_320]);
}

struct Calc;

/// The demo contract as a client with a wrong idea of `Add`'s result type.
#[witrpc_macros::service(contract = "WitRpc.Demo.IDemoService", crate = "witrpc_core")]
pub trait WrongDemo {
    /// Declares a string result where the server sends a number.
    async fn add(&self, a: i32, b: i32) -> String;
}

#[tokio::test]
async fn a_result_of_the_wrong_type_is_a_decode_error_naming_the_result() {
    let client = WrongDemoClient::new(Loopback::new(demo().1));
    match within("Add", client.add(1, 2)).await {
        Err(LoopError::Argument(e)) => {
            assert_eq!(e.what, "result");
            assert_eq!(e.kind, ParameterErrorKind::Decode);
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

impl Calculator for Calc {
    async fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }

    async fn ping(&self) {}
}

#[tokio::test]
async fn raised_events_reach_an_attached_sink_encoded() {
    let (events, server) = demo();
    let sink = Arc::new(RecordingSink { serializer: json(), seen: Mutex::default(), forward: None });
    let emitter = server.event_emitter().expect("a server built with_events has an emitter");
    let _attached = emitter.attach(sink.clone());
    events.progress_changed(12.5).unwrap();
    events.message("hello".to_owned(), vec![1, 2, 3]).unwrap();
    events.finished().unwrap();
    let seen = sink.seen.lock().unwrap();
    let contract = "WitRpc.Demo.IDemoService".to_owned();
    assert_eq!(
        *seen,
        [
            (contract.clone(), 0, vec![b"12.5".to_vec()]),
            (contract.clone(), 1, vec![b"\"hello\"".to_vec(), b"\"AQID\"".to_vec()]),
            (contract, 2, vec![]),
        ]
    );
}

#[tokio::test]
async fn typed_event_streams_decode_published_arguments() {
    let (events, server) = demo();
    let channel = Loopback::new(server.clone());
    let sink = Arc::new(RecordingSink { serializer: json(), seen: Mutex::default(), forward: Some(channel.clone()) });
    let _attached = events.emitter().attach(sink);
    let client = DemoServiceClient::new(channel.clone());
    let mut progress = client.progress_changed();
    let mut messages = client.message();
    let mut done = client.finished();
    within("RaiseAll", client.raise_all()).await.unwrap();
    assert_eq!(within("progress", progress.next()).await.unwrap().unwrap(), 50.0);
    assert_eq!(within("message", messages.next()).await.unwrap().unwrap(), ("hi".to_owned(), vec![1, 2, 3]));
    within("done", done.next()).await.unwrap().unwrap();

    // A blob that is not an f64 is a decode error naming the argument; the stream goes on.
    channel.publish(DemoServiceEvents::descriptor(), 0, vec![Bytes::from_static(b"\"x\"")]);
    channel.publish(DemoServiceEvents::descriptor(), 0, vec![Bytes::from_static(b"1")]);
    match within("progress", progress.next()).await {
        Some(Err(EventError::Decode(e))) => assert_eq!(e.what, "percent"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(within("progress", progress.next()).await.unwrap().unwrap(), 1.0);
}

/// A DTO named by `#[derive(DotNetType)]` (default rule: the assembly's name as namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, witrpc_macros::DotNetType)]
#[dotnet(assembly = "MyCompany.Contracts", crate = "witrpc_core")]
pub struct Point {
    x: i32,
}

/// A contract whose method takes derived DTOs.
#[witrpc_macros::service(contract = "MyCompany.Contracts.IShapes", crate = "witrpc_core")]
pub trait Shapes {
    /// Moves `at`.
    async fn place(&self, at: Point, path: Vec<Point>) -> Point;
    /// `at` was placed.
    #[event]
    fn placed(&self, at: Point);
}

#[test]
fn derived_dotnet_names_reach_method_ids_and_event_types() {
    struct Impl;
    impl Shapes for Impl {
        async fn place(&self, at: Point, _path: Vec<Point>) -> Point {
            at
        }
    }
    let resolved = ShapesServer::<Impl>::descriptor().resolved();
    let types = ["MyCompany.Contracts.Point", "System.Collections.Generic.List<MyCompany.Contracts.Point>"];
    assert_eq!(resolved.method_ids, [witrpc_core::ids::method_id("MyCompany.Contracts.IShapes", "Place", &types)]);
    let by_name = &resolved.method_parameter_types[0];
    assert_eq!(by_name[0].type_name.as_deref(), Some("MyCompany.Contracts.Point"));
    assert_eq!(by_name[0].assembly.as_deref(), Some("MyCompany.Contracts"));
    assert_eq!(
        by_name[1].type_name.as_deref(),
        Some("System.Collections.Generic.List`1[[MyCompany.Contracts.Point, MyCompany.Contracts]]")
    );
    let event = &resolved.event_parameter_types[0][0];
    assert_eq!(
        (event.type_name.as_deref(), event.assembly.as_deref()),
        (Some("MyCompany.Contracts.Point"), Some("MyCompany.Contracts"))
    );
    let _ = ShapesServer::new(Impl);
}
