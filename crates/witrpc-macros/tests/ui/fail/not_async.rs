#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    fn add(&self, a: i32, b: i32) -> i32;
}

fn main() {}
