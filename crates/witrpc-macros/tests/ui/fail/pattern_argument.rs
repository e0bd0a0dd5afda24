#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn add(&self, (a, b): (i32, i32)) -> i32;
    async fn ignore(&self, _: i32);
}

fn main() {}
