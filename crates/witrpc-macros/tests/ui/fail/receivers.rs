#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn by_value(self) -> i32;
    async fn by_mut(&mut self) -> i32;
    async fn no_receiver(a: i32) -> i32;
    async fn boxed(self: Box<Self>) -> i32;
}

fn main() {}
