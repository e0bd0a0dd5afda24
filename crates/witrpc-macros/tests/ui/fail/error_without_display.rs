#[derive(Debug)]
pub struct Opaque;

#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn get(&self) -> Result<i32, Opaque>;
}

fn main() {}
