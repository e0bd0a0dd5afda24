//! The protocol-2 codec of `witrpc-core`, tested through its public API only.
//!
//! - Golden vectors: every byte of the notes' worked example (`witrpc-protocol-2x.md`
//!   §8.1–§8.5), written out by hand from the MemoryPack rules (never produced by our
//!   encoder), decoded, and re-encoded to the same bytes.
//! - The JSON envelope variant §8.4, to the byte.
//! - Hostile input: typed errors, never a panic, never an allocation the input does not
//!   justify; proptest over every 2.x decoder (arbitrary and mutated bytes; round trips).

use proptest::prelude::*;
use proptest::sample::Index;
use witrpc_core::bytes::Bytes;
use witrpc_core::v2::{
    JsonMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
    WitResponseInitialization, decode_parameter_type, encode_parameter_type, event_request,
};
use witrpc_core::{CodecError, CommunicationStatus, DotNetType, MessageType, ParameterType, Uuid, WitMessage};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A non-empty string as .NET writes it with `StringEncoding = Utf8`:
/// `~utf8ByteCount | utf16Length | UTF-8 bytes`.
fn utf8_string(s: &str) -> Vec<u8> {
    let n = i32::try_from(s.len()).unwrap();
    let u = i32::try_from(s.encode_utf16().count()).unwrap();
    [&(!n).to_le_bytes()[..], &u.to_le_bytes(), s.as_bytes()].concat()
}

const INT32: &str = "System.Int32, System.Private.CoreLib";

/// §8.1: `6f9619ff-8b86-d011-b42d-00c04fc964ff` in .NET byte order.
const INIT_ID: &str = "ff 19 96 6f 86 8b 11 d0 b4 2d 00 c0 4f c9 64 ff";
/// §8.2: `0f8fad5b-d9cb-469f-a165-70867728950e` in .NET byte order.
const CALL_ID: &str = "5b ad 8f 0f cb d9 9f 46 a1 65 70 86 77 28 95 0e";
/// An id for the Authorization exchange (the notes leave it open).
const AUTH_ID: &str = "00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff";

fn assert_envelope(frame: &[u8], id: &str, kind: MessageType) -> Bytes {
    let m = WitMessage::decode(Bytes::copy_from_slice(frame)).unwrap();
    assert_eq!(m.id, Uuid::from_bytes_le(hex(id).try_into().unwrap()));
    assert_eq!(m.kind, kind);
    assert_eq!(m.encode(), frame, "envelope re-encodes byte for byte");
    m.data.unwrap()
}

#[test]
fn golden_plain_handshake_8_1() {
    let init = hex(&format!("03 {INIT_ID} 03 00 00 00 06 00 00 00 01 01 00 00 00 00"));
    assert_eq!(init.len(), 31);
    let data = assert_envelope(&init, INIT_ID, MessageType::Initialization);
    let request = WitRequestInitialization::decode(data.clone()).unwrap();
    assert_eq!(request, WitRequestInitialization::plain());
    assert_eq!(request.encode(), data);

    let reply = hex(&format!("03 {INIT_ID} 03 00 00 00 0b 00 00 00 02 01 00 00 00 00 01 00 00 00 00"));
    assert_eq!(reply.len(), 36);
    let data = assert_envelope(&reply, INIT_ID, MessageType::Initialization);
    let response = WitResponseInitialization::decode(data.clone()).unwrap();
    assert_eq!(response, WitResponseInitialization::plain());
    assert_eq!(response.encode(), data);
    // The reply is the request echoed with new data.
    let echoed = WitMessage::decode(init.into()).unwrap().reply(Some(response.encode().into()));
    assert_eq!(echoed.encode(), reply);

    let auth = hex(&format!("03 {AUTH_ID} 04 00 00 00 05 00 00 00 01 00 00 00 00"));
    assert_eq!(auth.len(), 30);
    let data = assert_envelope(&auth, AUTH_ID, MessageType::Authorization);
    let request = WitRequestAuthorization::decode(data.clone()).unwrap();
    assert_eq!(request.token.as_deref(), Some(""));
    assert_eq!(request.encode(), data);

    let auth_reply = hex(&format!(
        "03 {AUTH_ID} 04 00 00 00 14 00 00 00 02 01 f5 ff ff ff 0a 00 00 00 41 75 74 68 6f 72 69 7a 65 64"
    ));
    assert_eq!(auth_reply.len(), 45);
    let data = assert_envelope(&auth_reply, AUTH_ID, MessageType::Authorization);
    let response = WitResponseAuthorization::decode(data.clone()).unwrap();
    assert_eq!(response, WitResponseAuthorization::new(true));
    assert_eq!(response.encode(), data);
    assert_eq!(WitResponseAuthorization::new(false).message.as_deref(), Some("Forbidden"));
}

fn add_request_bytes() -> Vec<u8> {
    let t = utf8_string(INT32);
    assert_eq!(&t[..8], &hex("db ff ff ff 24 00 00 00")[..]);
    [
        &hex("07 00 00 00 00 fc ff ff ff 03 00 00 00 41 64 64")[..],
        &hex("02 00 00 00 01 00 00 00 32 01 00 00 00 33 02 00 00 00"),
        &t,
        &t,
        &hex("00 00 00 00 00 00 00 00 00 00 00 00"),
    ]
    .concat()
}

fn add_request() -> WitRequest {
    WitRequest {
        token: String::new(),
        method_name: "Add".into(),
        parameters: vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")],
        parameter_types: vec![INT32.into(), INT32.into()],
        ..WitRequest::default()
    }
}

#[test]
fn golden_request_8_2() {
    let inner = add_request_bytes();
    assert_eq!(inner.len(), 134);
    let frame = [&hex(&format!("03 {CALL_ID} 01 00 00 00 86 00 00 00"))[..], &inner].concat();
    assert_eq!(frame.len(), 159);
    let data = assert_envelope(&frame, CALL_ID, MessageType::Request);
    let request = WitRequest::decode(data).unwrap();
    assert_eq!(request, add_request());
    assert_eq!(request.encode(), inner);
}

#[test]
fn golden_response_8_3() {
    let inner = hex("04 c8 00 00 00 01 00 00 00 35 ff ff ff ff ff ff ff ff");
    assert_eq!(inner.len(), 18);
    let frame = [&hex(&format!("03 {CALL_ID} 01 00 00 00 12 00 00 00"))[..], &inner].concat();
    assert_eq!(frame.len(), 43);
    let data = assert_envelope(&frame, CALL_ID, MessageType::Request);
    let response = WitResponse::decode(data).unwrap();
    assert_eq!(response, WitResponse::ok(Some(Bytes::from_static(b"5"))));
    assert_eq!(response.encode(), inner);
}

#[test]
fn golden_json_envelope_8_4() {
    let request_json = concat!(
        r#"{"Token":"","MethodName":"Add","Parameters":["Mg==","Mw=="],"#,
        r#""ParameterTypes":["System.Int32, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e","#,
        r#""System.Int32, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e"],"#,
        r#""ParameterTypesByName":[],"GenericArguments":[],"GenericArgumentsByName":[]}"#
    );
    let request: WitRequest = serde_json::from_str(request_json).unwrap();
    assert_eq!(request.method_name, "Add");
    assert_eq!(request.parameters, [Bytes::from_static(b"2"), Bytes::from_static(b"3")]);
    assert_eq!(serde_json::to_string(&request).unwrap(), request_json);

    let response_json = r#"{"Status":200,"Data":"NQ==","ErrorMessage":null,"ErrorDetails":null}"#;
    let response = WitResponse::ok(Some(Bytes::from_static(b"5")));
    assert_eq!(serde_json::to_string(&response).unwrap(), response_json);
    assert_eq!(serde_json::from_str::<WitResponse>(response_json).unwrap(), response);

    let id = Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
    let envelope =
        JsonMessage(WitMessage::new(id, MessageType::Request, Some(serde_json::to_vec(&response).unwrap().into())));
    let expected = concat!(
        r#"{"Id":"0f8fad5b-d9cb-469f-a165-70867728950e","Type":1,"#,
        r#""Data":"eyJTdGF0dXMiOjIwMCwiRGF0YSI6Ik5RPT0iLCJFcnJvck1lc3NhZ2UiOm51bGwsIkVycm9yRGV0YWlscyI6bnVsbH0="}"#
    );
    assert_eq!(serde_json::to_string(&envelope).unwrap(), expected);
    let back: JsonMessage = serde_json::from_str(expected).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(serde_json::from_slice::<WitResponse>(&back.0.data.unwrap()).unwrap(), response);
}

#[test]
fn json_reading_is_case_sensitive_tolerant_of_unknown_keys_and_nulls() {
    // A key in another case is ignored and the member keeps its default (System.Text.Json).
    let r: WitResponse = serde_json::from_str(r#"{"status":500,"Extra":[1],"Data":null}"#).unwrap();
    assert_eq!(r.status, CommunicationStatus::Unknown);
    let r: WitRequest = serde_json::from_str(
        r#"{"Token":null,"MethodName":"M","Parameters":[null,"AQ=="],"ParameterTypes":null,"ParameterTypesByName":[{"Type":"System.Int32","Assembly":null},null]}"#,
    )
    .unwrap();
    assert_eq!(r.token, "");
    assert_eq!(r.parameters, [Bytes::new(), Bytes::from_static(&[1])]);
    assert!(r.parameter_types.is_empty());
    assert_eq!(r.parameter_types_by_name[0].type_name.as_deref(), Some("System.Int32"));
    assert_eq!(r.parameter_types_by_name[1], ParameterType::default());
    assert!(serde_json::from_str::<WitRequest>(r#"{"Parameters":["not base64!"]}"#).is_err());
    assert!(serde_json::from_str::<JsonMessage>(r#"{"Id":"nope","Type":1}"#).is_err());
    let init: WitRequestInitialization = serde_json::from_str(r#"{"PublicKey":"AA=="}"#).unwrap();
    assert_eq!(init, WitRequestInitialization::plain());
}

#[test]
fn golden_event_8_5() {
    let inner = [
        &hex("07 00 00 00 00")[..],
        &utf8_string("Changed"),
        &hex("01 00 00 00 04 00 00 00"),
        b"\"hi\"",
        &hex("01 00 00 00"),
        &utf8_string("System.String, System.Private.CoreLib"),
        &hex("00 00 00 00 00 00 00 00 00 00 00 00"),
    ]
    .concat();
    assert_eq!(&inner[5..13], &hex("f8 ff ff ff 07 00 00 00")[..]);
    let string = ParameterType { type_name: Some(String::full_name()), assembly: Some(String::assembly()) };
    let event = event_request("Changed", vec![Bytes::from_static(b"\"hi\"")], &[string]);
    assert_eq!(event.encode(), inner);
    assert_eq!(WitRequest::decode(inner.clone().into()).unwrap(), event);
    let connection = Uuid::new_v4();
    let frame = WitMessage::new(connection, MessageType::Callback, Some(inner.into())).encode();
    assert_eq!(&frame[17..21], &[2, 0, 0, 0]);
}

#[test]
fn protocol_3_payloads_fail_the_protocol_2_readers_like_dotnet() {
    // A 3.x client's plain Initialization at a 2.x reader: header 02 > 1 member.
    let v3_init = witrpc_core::WitRequestInitialization::plain().encode();
    assert!(matches!(
        WitRequestInitialization::decode(v3_init.into()),
        Err(CodecError::InvalidHeader { header: 2, .. })
    ));
    // A 3.x server's reply at a 2.x client: header 04 > 2 members.
    let v3_reply = witrpc_core::WitResponseInitialization::plain().encode();
    assert!(matches!(
        WitResponseInitialization::decode(v3_reply.into()),
        Err(CodecError::InvalidHeader { header: 4, .. })
    ));
}

#[test]
fn hostile_lengths_are_refused_before_allocating() {
    // 7 members, empty token and name, then 2^31-1 parameters in 4 bytes of input.
    let huge = hex("07 00 00 00 00 00 00 00 00 ff ff ff 7f");
    assert!(matches!(WitRequest::decode(huge.into()), Err(CodecError::Truncated { .. })));
    let huge_blob = hex("04 c8 00 00 00 ff ff ff 7f");
    assert!(matches!(WitResponse::decode(huge_blob.into()), Err(CodecError::Truncated { .. })));
    let huge_string = hex("01 00 00 00 80 ff ff ff 7f");
    assert!(WitRequestAuthorization::decode(huge_string.into()).is_err());
    for bad in [&[][..], &[0x07], &[0x08], &[0x07, 0, 0]] {
        assert!(WitRequest::decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:02x?}");
    }
    // Bytes after a complete payload.
    let mut trailing = add_request_bytes();
    trailing.push(0);
    assert!(matches!(WitRequest::decode(trailing.into()), Err(CodecError::TrailingBytes { extra: 1, .. })));
    // Every truncation of a valid request is an error, never a panic.
    let full = add_request_bytes();
    for n in 0..full.len() {
        assert!(WitRequest::decode(Bytes::copy_from_slice(&full[..n])).is_err(), "prefix of {n} bytes decoded");
    }
}

#[test]
fn parameter_type_layout_and_null_elements() {
    let t = ParameterType { type_name: Some("System.Int32".into()), assembly: Some("System.Private.CoreLib".into()) };
    let bytes = [&[2u8][..], &utf8_string("System.Int32"), &utf8_string("System.Private.CoreLib")].concat();
    assert_eq!(encode_parameter_type(&t), bytes);
    assert_eq!(decode_parameter_type(bytes.into()).unwrap(), t);
    // A ByName list with one null element (FF) reads as a nameless type.
    let mut request = hex("07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 ff");
    request.extend(hex("00 00 00 00 00 00 00 00"));
    let r = WitRequest::decode(request.into()).unwrap();
    assert_eq!(r.parameter_types_by_name, [ParameterType::default()]);
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9.,`\\[\\] ]{1,40}", any::<String>()]
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn parameter_type() -> impl Strategy<Value = ParameterType> {
    (proptest::option::of(text()), proptest::option::of(text()))
        .prop_map(|(type_name, assembly)| ParameterType { type_name, assembly })
}

fn request() -> impl Strategy<Value = WitRequest> {
    (
        text(),
        text(),
        proptest::collection::vec(blob(), 0..4),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(parameter_type(), 0..3),
        proptest::collection::vec(text(), 0..2),
        proptest::collection::vec(parameter_type(), 0..2),
    )
        .prop_map(|(token, method_name, parameters, pt, ptn, ga, gan)| WitRequest {
            token,
            method_name,
            parameters,
            parameter_types: pt,
            parameter_types_by_name: ptn,
            generic_arguments: ga,
            generic_arguments_by_name: gan,
        })
}

fn response() -> impl Strategy<Value = WitResponse> {
    (any::<i32>(), proptest::option::of(blob()), proptest::option::of(text()), proptest::option::of(text())).prop_map(
        |(status, data, error_message, error_details)| WitResponse {
            status: CommunicationStatus::from_i32(status),
            data,
            error_message,
            error_details,
        },
    )
}

/// Runs every protocol-2 decoder on `bytes`; none may panic.
fn decode_all(bytes: &[u8]) {
    let b = || Bytes::copy_from_slice(bytes);
    let _ = WitRequest::decode(b());
    let _ = WitResponse::decode(b());
    let _ = WitRequestInitialization::decode(b());
    let _ = WitResponseInitialization::decode(b());
    let _ = WitRequestAuthorization::decode(b());
    let _ = WitResponseAuthorization::decode(b());
    let _ = decode_parameter_type(b());
    let _ = witrpc_core::v2::detect_frame(b());
    let _ = witrpc_core::v2::detect_payload(Some(bytes));
    let _ = witrpc_core::v2::detect_reply(bytes);
    let _ = serde_json::from_slice::<JsonMessage>(bytes);
    let _ = serde_json::from_slice::<WitRequest>(bytes);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&bytes);
        // With a valid header in front, readers get past the first byte.
        for header in [1u8, 2, 4, 7] {
            decode_all(&[&[header][..], &bytes].concat());
        }
    }

    #[test]
    fn mutated_requests_never_panic(r in request(), at in any::<Index>(), byte in any::<u8>(), cut in any::<Index>()) {
        let mut bytes = r.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        decode_all(&bytes);
        decode_all(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn requests_round_trip(r in request()) {
        let bytes = r.encode();
        let back = WitRequest::decode(bytes.clone().into()).unwrap();
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back, r.clone());
        let json = serde_json::to_vec(&r).unwrap();
        prop_assert_eq!(serde_json::from_slice::<WitRequest>(&json).unwrap(), r);
    }

    #[test]
    fn responses_round_trip(r in response()) {
        let back = WitResponse::decode(r.encode().into()).unwrap();
        prop_assert_eq!(&back, &r);
        let json = serde_json::to_vec(&r).unwrap();
        prop_assert_eq!(serde_json::from_slice::<WitResponse>(&json).unwrap(), r);
    }

    #[test]
    fn handshake_models_round_trip(
        key in proptest::option::of(blob()),
        vector in proptest::option::of(blob()),
        token in proptest::option::of(text()),
        authorized in any::<bool>(),
        message in proptest::option::of(text()),
    ) {
        let a = WitRequestInitialization { public_key: key.clone() };
        prop_assert_eq!(WitRequestInitialization::decode(a.encode().into()).unwrap(), a);
        let b = WitResponseInitialization { symmetric_key: key, vector };
        prop_assert_eq!(WitResponseInitialization::decode(b.encode().into()).unwrap(), b);
        let c = WitRequestAuthorization { token };
        prop_assert_eq!(WitRequestAuthorization::decode(c.encode().into()).unwrap(), c);
        let d = WitResponseAuthorization { is_authorized: authorized, message };
        prop_assert_eq!(WitResponseAuthorization::decode(d.encode().into()).unwrap(), d);
    }

    #[test]
    fn parameter_types_round_trip(t in parameter_type()) {
        prop_assert_eq!(decode_parameter_type(encode_parameter_type(&t).into()).unwrap(), t);
    }
}
