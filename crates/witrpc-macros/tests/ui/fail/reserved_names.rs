#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn new(&self) -> i32;
    #[event]
    fn emitter(&self);
}

fn main() {}
