#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad<T> {
    async fn get(&self) -> i32;
}

fn main() {}
