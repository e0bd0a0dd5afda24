#[witrpc_macros::service(crate = "witrpc_core")]
pub trait Bad {
    async fn get(&self) -> i32;
}

fn main() {}
