#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn save(&self, #[witrpc(dotnet = "MyNs.Dto")] value: i32);
    async fn load(&self, #[witrpc(assembly = "MyAssembly")] value: i32);
}

fn main() {}
