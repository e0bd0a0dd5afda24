#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn show(&self, value: impl std::fmt::Display) -> String;
    async fn nested(&self, values: Vec<impl serde::Serialize>);
}

fn main() {}
