#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn echo(&self, text: &str) -> String;
    async fn first(&self, values: Vec<i32>) -> Option<&'static i32>;
}

fn main() {}
