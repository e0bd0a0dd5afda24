#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    type Output;
    const LIMIT: usize;
    async fn get(&self) -> i32;
}

fn main() {}
