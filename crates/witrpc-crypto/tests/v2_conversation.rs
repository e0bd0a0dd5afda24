//! A whole protocol-2 conversation assembled from the pure pieces, plain and
//! encrypted, the way a session will drive them: detection, handshake, authorization,
//! a call resolved by name and .NET types, an event, and an altered frame.

use std::sync::OnceLock;

use bytes::Bytes;
use witrpc_core::v2::{
    self, MethodRef, MethodTable, ProtocolVersion, WitRequest, WitRequestAuthorization, WitRequestInitialization,
    WitResponse, WitResponseAuthorization, WitResponseInitialization,
};
use witrpc_core::{DotNetType, MessageType, MethodDescriptor, ParameterType, ServiceDescriptor, Uuid, WitMessage};
use witrpc_crypto::{Ciphers, ClientEncryptor, Opener, Sealer, ServerEncryptor};

fn int32() -> ParameterType {
    ParameterType { type_name: Some(i32::full_name()), assembly: Some(i32::assembly()) }
}

static CALC: ServiceDescriptor = ServiceDescriptor {
    contract: "Demo.ICalc",
    methods: &[MethodDescriptor {
        name: "Add",
        parameter_names: &["a", "b"],
        parameter_types: Vec::new,
        parameter_types_by_name: || vec![int32(), int32()],
    }],
    events: &[],
    resolved: OnceLock::new(),
};

struct Server {
    sealer: Box<dyn Sealer>,
    opener: Box<dyn Opener>,
}

/// Client and server after the handshake, with the bytes of the Initialization reply.
fn handshake(client: &dyn ClientEncryptor, server: &dyn ServerEncryptor) -> (Ciphers, Server, usize) {
    let init = WitMessage::new(
        Uuid::new_v4(),
        MessageType::Initialization,
        Some(WitRequestInitialization { public_key: Some(client.public_key()) }.encode().into()),
    );
    // Server: tell the version, then accept.
    let (version, init) = v2::detect_frame(init.encode().into()).unwrap();
    assert_eq!(version, ProtocolVersion::V2);
    let request = WitRequestInitialization::decode(init.data.clone().unwrap()).unwrap();
    let accepted = server.accept(request.public_key.as_deref()).unwrap();
    let reply = init.reply(Some(accepted.reply)).encode();
    // Client: unwrap and install the keys.
    let reply = WitMessage::decode(reply.into()).unwrap();
    assert_eq!((reply.id, reply.kind), (init.id, MessageType::Initialization));
    let data = reply.data.unwrap();
    let reply_len = data.len();
    let keys = WitResponseInitialization::decode(client.unwrap_reply(data).unwrap()).unwrap();
    let ciphers = client.complete(keys.symmetric_key.as_deref(), keys.vector.as_deref()).unwrap();
    (ciphers, Server { sealer: accepted.sealer, opener: accepted.opener }, reply_len)
}

/// Authorization, a call, an event and an altered frame; returns the sealed request size.
fn converse(mut client: Ciphers, mut server: Server) -> usize {
    // Authorization (Type 4), sealed both ways.
    let auth = WitRequestAuthorization { token: Some(String::new()) };
    let sealed = client.sealer.seal(auth.encode().into()).unwrap();
    let opened = WitRequestAuthorization::decode(server.opener.open(sealed).unwrap()).unwrap();
    assert_eq!(opened, auth);
    let reply = server.sealer.seal(WitResponseAuthorization::new(true).encode().into()).unwrap();
    assert!(WitResponseAuthorization::decode(client.opener.open(reply).unwrap()).unwrap().is_authorized);

    // Add(2, 3) with the names a MemoryPack envelope carries.
    let call = WitRequest {
        method_name: "add".into(),
        parameters: vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")],
        parameter_types: vec!["System.Int32, System.Private.CoreLib".into(); 2],
        ..WitRequest::default()
    };
    let sealed = client.sealer.seal(call.encode().into()).unwrap();
    let sealed_len = sealed.len();
    let request = WitRequest::decode(server.opener.open(sealed.clone()).unwrap()).unwrap();
    let table = MethodTable::new([&CALC]);
    assert_eq!(table.resolve(&request), Ok(MethodRef { service: 0, method: 0 }));
    let reply = server.sealer.seal(WitResponse::ok(Some(Bytes::from_static(b"5"))).encode().into()).unwrap();
    let response = WitResponse::decode(client.opener.open(reply).unwrap()).unwrap();
    assert_eq!(response.data.as_deref(), Some(&b"5"[..]));

    // An event (Type 2) with the type name a .NET client resolves.
    let event = v2::event_request("Changed", vec![Bytes::from_static(b"7")], &[int32()]);
    let sealed_event = server.sealer.seal(event.encode().into()).unwrap();
    let received = WitRequest::decode(client.opener.open(sealed_event).unwrap()).unwrap();
    assert_eq!(received.parameter_types, ["System.Int32, System.Private.CoreLib"]);

    // A frame cut short in transit: the server cannot read it and answers 400.
    let cut = sealed.slice(..sealed.len() - 1);
    let unreadable = server.opener.open(cut).ok().and_then(|b| WitRequest::decode(b).ok());
    assert!(unreadable.is_none(), "a truncated request was read");
    let answer = WitResponse::request_empty();
    assert_eq!(answer.error_message.as_deref(), Some("Request is empty"));
    sealed_len
}

#[test]
fn a_plain_conversation_sends_everything_in_clear_after_a_real_handshake() {
    let (client, server, reply_len) =
        handshake(&witrpc_crypto::v2::PlainClientEncryptor, &witrpc_crypto::v2::PlainServerEncryptor);
    assert_eq!(reply_len, 11);
    assert_eq!(converse(client, server), 134);
}

#[test]
fn an_encrypted_conversation_seals_every_non_initialization_payload() {
    let client = witrpc_crypto::v2::EncryptedClientEncryptor::generate().unwrap();
    let (client, server, reply_len) = handshake(&client, &witrpc_crypto::v2::EncryptedServerEncryptor::new());
    assert_eq!(reply_len, 256);
    // §8.2: the 134-byte request becomes 144 bytes of ciphertext.
    assert_eq!(converse(client, server), 144);
}
