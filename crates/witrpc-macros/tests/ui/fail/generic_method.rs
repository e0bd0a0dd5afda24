#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn typed<T>(&self, value: T) -> i32;
    async fn bounded(&self, value: i32) -> i32
    where
        Self: Sized;
}

fn main() {}
