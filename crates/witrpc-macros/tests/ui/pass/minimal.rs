//! Edge cases: no methods, no events, user supertraits, an empty trait.
#![deny(warnings)]

#[witrpc_macros::service(contract = "WitRpc.Tests.IOnlyEvents", crate = "witrpc_core")]
pub trait OnlyEvents {
    #[event]
    fn tick(&self, n: u64);
}

#[witrpc_macros::service(contract = "WitRpc.Tests.IOnlyMethods", crate = "witrpc_core")]
pub trait OnlyMethods: std::fmt::Debug {
    async fn get(&self) -> u32;
}

#[witrpc_macros::service(contract = "WitRpc.Tests.IEmpty", crate = "witrpc_core")]
pub trait Empty {}

#[derive(Debug)]
struct Imp;

impl OnlyEvents for Imp {}

impl OnlyMethods for Imp {
    async fn get(&self) -> u32 {
        7
    }
}

impl Empty for Imp {}

fn main() {
    let events = OnlyEventsEvents::new();
    let _ = OnlyEventsServer::new(Imp).with_events(&events);
    let _ = events.tick(1);
    let _ = OnlyMethodsServer::new(Imp);
    let _ = EmptyServer::new(Imp);
}
