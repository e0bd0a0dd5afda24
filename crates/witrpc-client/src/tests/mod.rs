//! The client against a scripted in-memory server: handshake, calls, events, closing.

mod calls;
mod events;
mod fake;
mod handshake;
mod lifecycle;

#[test]
fn public_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<crate::WitClient>();
    assert_send_sync::<crate::WitClientBuilder>();
    assert_send_sync::<crate::ClientError>();
    assert_send_sync::<crate::TransportError>();
}
