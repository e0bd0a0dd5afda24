#[witrpc_macros::service(contract = "WitRpc.Tests.IBad", crate = "witrpc_core")]
pub trait Bad {
    #[event]
    async fn progress_changed(&self, percent: f64);
    #[event]
    fn completed(&self) -> bool;
    #[event]
    #[witrpc(name = "Other")]
    fn renamed(&self);
}

fn main() {}
