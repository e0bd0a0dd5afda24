//! A contract with methods and events builds warning-free, with every item documented.
#![deny(warnings, missing_docs)]

use witrpc_core::EventStream;

/// The demo contract.
#[witrpc_macros::service(contract = "WitRpc.Demo.IDemoService", crate = "witrpc_core")]
pub trait DemoService {
    /// `a + b`.
    async fn add(&self, a: i32, b: i32) -> i32;
    /// Returns `text`.
    async fn echo(&self, text: String) -> String;
    /// Returns nothing.
    async fn ping(&self);
    /// Returns `()` spelled out.
    async fn unit(&self) -> ();
    /// Several shapes of argument.
    async fn shapes(
        &self,
        list: Vec<i32>,
        pair: Option<String>,
        map: std::collections::HashMap<String, i64>,
    ) -> Option<String>;

    /// Progress in percent.
    #[event]
    fn progress_changed(&self, percent: f64);
    /// A message.
    #[event]
    fn message(&self, text: String);
    /// Several arguments.
    #[event]
    fn moved(&self, x: i32, y: i32, label: String);
    /// No arguments.
    #[event]
    fn finished(&self);
}

struct Demo {
    events: DemoServiceEvents,
}

impl DemoService for Demo {
    async fn add(&self, a: i32, b: i32) -> i32 {
        let _ = self.events.progress_changed(50.0);
        a + b
    }

    async fn echo(&self, text: String) -> String {
        let _ = self.events.message(text.clone());
        text
    }

    async fn ping(&self) {
        let _ = self.events.moved(1, 2, "here".to_owned());
        let _ = self.events.finished();
    }

    async fn unit(&self) {}

    async fn shapes(
        &self,
        list: Vec<i32>,
        pair: Option<String>,
        map: std::collections::HashMap<String, i64>,
    ) -> Option<String> {
        Some(format!("{list:?} {pair:?} {map:?}"))
    }
}

fn assert_service<S: witrpc_core::Service>(_: &S) {}

#[allow(dead_code, reason = "only type-checked")]
async fn use_client<C: witrpc_core::ClientChannel>(client: DemoServiceClient<C>) -> Result<(), C::Error> {
    let sum: i32 = client.add(1, 2).await?;
    let text: String = client.echo(sum.to_string()).await?;
    let (): () = client.ping().await?;
    let (): () = client.unit().await?;
    let _: Option<String> = client.shapes(vec![1], Some(text), Default::default()).await?;
    let _: EventStream<f64> = client.progress_changed();
    let _: EventStream<String> = client.message();
    let _: EventStream<(i32, i32, String)> = client.moved();
    let _: EventStream<()> = client.finished();
    let _: &C = client.channel();
    let _ = format!("{client:?}");
    Ok(())
}

fn main() {
    let events = DemoServiceEvents::new();
    let server = DemoServiceServer::new(Demo { events: events.clone() }).with_events(&events);
    assert_service(&server);
    let _ = server.clone();
    let _ = format!("{server:?} {events:?}");
    let _ = DemoServiceServer::from_arc(std::sync::Arc::new(Demo { events: DemoServiceEvents::default() }));
    let _ = events.emitter();
    assert_eq!(DemoServiceServer::<Demo>::descriptor().contract, "WitRpc.Demo.IDemoService");
    assert_eq!(DemoServiceEvents::descriptor().events.len(), 4);
}
