#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    #[witrpc(nmae = "Get")]
    async fn get(&self) -> i32;
    async fn put(&self, #[witrpc(type_name = "MyNs.Dto")] value: i32);
    #[event(rename = "Done")]
    fn finished(&self);
}

fn main() {}
