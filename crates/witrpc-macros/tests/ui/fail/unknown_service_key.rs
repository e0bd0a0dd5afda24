#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core", version = "1")]
pub trait Bad {
    async fn get(&self) -> i32;
}

fn main() {}
