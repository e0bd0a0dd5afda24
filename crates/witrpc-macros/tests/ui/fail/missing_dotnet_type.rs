#[derive(serde::Serialize, serde::Deserialize)]
pub struct Dto {
    name: String,
}

#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn save(&self, dto: Dto) -> bool;
}

fn main() {}
