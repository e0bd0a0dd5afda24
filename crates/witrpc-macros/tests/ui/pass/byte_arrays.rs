//! `Vec<u8>` and `Option<Vec<u8>>` as arguments, results and event arguments.
#![deny(warnings)]

#[witrpc_macros::service(contract = "WitRpc.Tests.IBytes", crate = "witrpc_core")]
pub trait Bytes {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    async fn maybe(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>>;
    async fn fully_qualified(&self, data: std::vec::Vec<u8>) -> Result<std::vec::Vec<u8>, String>;
    #[event]
    fn received(&self, data: Vec<u8>, maybe: Option<Vec<u8>>);
}

struct Echo;

impl Bytes for Echo {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn maybe(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
        data
    }

    async fn fully_qualified(&self, data: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(data)
    }
}

#[allow(dead_code, reason = "only type-checked")]
async fn use_client<C: witrpc_core::ClientChannel>(client: BytesClient<C>) -> Result<Vec<u8>, C::Error> {
    let _: Option<Vec<u8>> = client.maybe(None).await?;
    let _: witrpc_core::EventStream<(Vec<u8>, Option<Vec<u8>>)> = client.received();
    client.echo(vec![1, 2, 3]).await
}

fn main() {
    let events = BytesEvents::new();
    let _ = BytesServer::new(Echo).with_events(&events);
    let _ = events.received(vec![1], Some(vec![2]));
}
