#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    async fn get_value(&self) -> i32;
    #[witrpc(name = "getvalue")]
    async fn other(&self) -> i32;
    #[event]
    fn done(&self);
    #[event(name = "Done")]
    fn finished(&self);
}

fn main() {}
