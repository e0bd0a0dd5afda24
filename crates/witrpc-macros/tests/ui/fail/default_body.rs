#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }
}

fn main() {}
