#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    #[cfg(test)]
    async fn only_in_tests(&self) -> i32;
    async fn get(&self) -> i32;
}

fn main() {}
