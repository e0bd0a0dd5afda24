//! The protocol-3 codec of `witrpc-core`, tested through its public API only.
//!
//! - Golden vectors from the protocol notes (`witrpc-protocol.md` §1, §3.2–§3.4), each
//!   written out byte by byte from the MemoryPack rules (never produced by our encoder),
//!   decoded, and re-encoded to the same bytes.
//! - The reader's tolerance rules: unknown trailing members skipped, missing ones
//!   defaulted, both string forms, every VarInt code (§3.2, §7).
//! - Hostile input: a typed [`CodecError`] for every malformed frame, never a panic and
//!   never an allocation the input does not justify.
//! - Property tests: arbitrary and mutated bytes never panic any decoder; arbitrary
//!   values round-trip.

use proptest::prelude::*;
use proptest::sample::Index;
use witrpc_core::bytes::Bytes;
use witrpc_core::{
    AUTHORIZED, CodecError, CommunicationStatus, ENVELOPE_OVERHEAD, FORBIDDEN, MessageType, PROTOCOL_VERSION,
    ParameterType, Uuid, WitMessage, WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse,
    WitResponseAuthorization, WitResponseInitialization, ids,
};

// ---------------------------------------------------------------------------------------
// MemoryPack written by hand
// ---------------------------------------------------------------------------------------

/// An int32 as MemoryPack writes it: little-endian, no padding.
fn i32le(v: i32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A null `byte[]`, string or array: int32 -1.
const NULL: [u8; 4] = [0xFF; 4];

/// A non-empty string as .NET writes it with `StringEncoding = Utf8`:
/// `~utf8ByteCount | utf16Length | UTF-8 bytes`.
fn utf8_string(s: &str) -> Vec<u8> {
    assert!(!s.is_empty(), "\"\" is written as a bare int32 0");
    utf8_string_with_utf16_len(s, i32::try_from(s.encode_utf16().count()).unwrap())
}

/// The UTF-8 string form with an arbitrary value in the UTF-16 length field.
fn utf8_string_with_utf16_len(s: &str, utf16_len: i32) -> Vec<u8> {
    [&i32le(!i32::try_from(s.len()).unwrap())[..], &i32le(utf16_len), s.as_bytes()].concat()
}

/// The UTF-16 string form the .NET reader also accepts: char count, then UTF-16LE units.
fn utf16_string(s: &str) -> Vec<u8> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut v = i32le(i32::try_from(units.len()).unwrap()).to_vec();
    v.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    v
}

/// A non-null `byte[]`: int32 length, then the bytes.
fn byte_array(b: &[u8]) -> Vec<u8> {
    [&i32le(i32::try_from(b.len()).unwrap())[..], b].concat()
}

/// A version-tolerant object whose members are each at most 127 bytes long, so each
/// VarInt length is the single byte .NET writes for it.
fn tolerant(members: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![u8::try_from(members.len()).unwrap()];
    for m in members {
        v.push(u8::try_from(m.len()).ok().filter(|&n| n <= 127).expect("use an explicit VarInt for long members"));
    }
    for m in members {
        v.extend_from_slice(m);
    }
    v
}

fn bytes(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

// ---------------------------------------------------------------------------------------
// Golden vectors
// ---------------------------------------------------------------------------------------

/// The envelope id of the notes' layout example, and its .NET `Guid.ToByteArray()` bytes.
const MESSAGE_ID: &str = "00112233-4455-6677-8899-aabbccddeeff";
const MESSAGE_ID_WIRE: [u8; 16] =
    [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
/// An InvocationId and its .NET byte order.
const INVOCATION_ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
const INVOCATION_ID_WIRE: [u8; 16] =
    [0xff, 0x19, 0x96, 0x6f, 0x86, 0x8b, 0x11, 0xd0, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff];
/// FNV-1a vectors from the notes (§2.1).
const CALCULATOR: &str = "MyCompany.Contracts.ICalculator";
const CALCULATOR_CONTRACT_ID: i64 = 2_863_546_532_410_206_118;
const ADD_METHOD_ID: i64 = -6_724_387_377_990_606_637;
/// A `System.Type` as MemoryPack's TypeFormatter writes it (strong assembly match).
const INT32_TYPE: &str = "System.Int32, System.Private.CoreLib";

/// `ICalculator.Add(2, 3)` as a .NET 3.x client sends it: JSON parameters, strong
/// assembly match (ParameterTypes filled, ParameterTypesByName empty), no generics.
fn add_request_wire() -> Vec<u8> {
    let token = utf8_string("AuthToken123");
    let method = utf8_string("Add");
    let parameters = [&i32le(2)[..], &byte_array(b"2"), &byte_array(b"3")].concat();
    let parameter_types = [&i32le(2)[..], &utf8_string(INT32_TYPE), &utf8_string(INT32_TYPE)].concat();
    let empty_array = i32le(0);
    let contract_id = CALCULATOR_CONTRACT_ID.to_le_bytes();
    let method_id = ADD_METHOD_ID.to_le_bytes();
    let members: [&[u8]; 10] = [
        &token,
        &method,
        &parameters,
        &parameter_types,
        &empty_array,
        &empty_array,
        &empty_array,
        &INVOCATION_ID_WIRE,
        &contract_id,
        &method_id,
    ];
    // Header: 10 members, then their lengths 20, 11, 14, 92, 4, 4, 4, 16, 8, 8.
    let mut wire = vec![0x0A, 0x14, 0x0B, 0x0E, 0x5C, 0x04, 0x04, 0x04, 0x10, 0x08, 0x08];
    assert_eq!(&wire[1..], &members.map(|m| u8::try_from(m.len()).unwrap())[..], "hand-computed lengths");
    for m in members {
        wire.extend_from_slice(m);
    }
    wire
}

fn add_request() -> WitRequest {
    WitRequest {
        token: "AuthToken123".into(),
        method_name: "Add".into(),
        parameters: vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")],
        parameter_types: vec![INT32_TYPE.to_owned(), INT32_TYPE.to_owned()],
        parameter_types_by_name: Vec::new(),
        generic_arguments: Vec::new(),
        generic_arguments_by_name: Vec::new(),
        invocation_id: Uuid::parse_str(INVOCATION_ID).unwrap(),
        contract_id: CALCULATOR_CONTRACT_ID,
        method_id: ADD_METHOD_ID,
    }
}

/// The Add request inside a Type=1 envelope: one WebSocket binary message.
fn add_request_frame() -> Vec<u8> {
    let payload = add_request_wire();
    [&[0x03][..], &MESSAGE_ID_WIRE, &i32le(1), &byte_array(&payload)].concat()
}

#[test]
fn fnv_vectors_of_the_notes_match_the_ids_module() {
    assert_eq!(ids::contract_id(CALCULATOR), CALCULATOR_CONTRACT_ID);
    assert_eq!(ids::method_id(CALCULATOR, "Add", &["System.Int32", "System.Int32"]), ADD_METHOD_ID);
}

#[test]
fn dotnet_add_request_decodes_and_reencodes_byte_for_byte() {
    let wire = add_request_wire();
    assert_eq!(wire.len(), 192);
    let request = WitRequest::decode(bytes(&wire)).unwrap();
    assert_eq!(request, add_request());
    assert_eq!(request.encode(), wire);
    let args: Vec<i32> = request.parameters.iter().map(|p| serde_json::from_slice(p).unwrap()).collect();
    assert_eq!(args, [2, 3]);
}

#[test]
fn decoding_for_dispatch_reads_everything_but_the_type_lists() {
    let request = WitRequest::decode_for_dispatch(bytes(&add_request_wire())).unwrap();
    assert_eq!(request, WitRequest { parameter_types: Vec::new(), ..add_request() });
    // Malformed bytes in a member it reads are still an error.
    let mut wire = add_request_wire();
    wire.truncate(wire.len() - 4);
    assert!(WitRequest::decode_for_dispatch(bytes(&wire)).is_err());
}

#[test]
fn decoding_an_event_skips_the_type_lists_and_keeps_its_position() {
    let event = WitRequest { parameter_types: Vec::new(), ..add_request() };
    let positioned = event.encode_with_position(Some("all\t00ff\t7"));
    let (decoded, position) = WitRequest::decode_event(bytes(&positioned)).unwrap();
    assert_eq!(decoded, WitRequest { parameter_types_by_name: Vec::new(), ..event.clone() });
    assert_eq!(position.as_deref(), Some("all\t00ff\t7"));
    let (_, none) = WitRequest::decode_event(bytes(&event.encode())).unwrap();
    assert_eq!(none, None, "a .NET event has no position");
}

#[test]
fn dotnet_add_request_frame_is_the_envelope_around_the_payload() {
    let frame = add_request_frame();
    assert_eq!(frame.len(), ENVELOPE_OVERHEAD + 192);
    assert_eq!(&frame[..25], &[&[0x03][..], &MESSAGE_ID_WIRE, &[1, 0, 0, 0], &[192, 0, 0, 0]].concat()[..]);
    let message = WitMessage::decode(bytes(&frame)).unwrap();
    let id = Uuid::parse_str(MESSAGE_ID).unwrap();
    assert_eq!(message, WitMessage::new(id, MessageType::Request, Some(Bytes::from(add_request_wire()))));
    assert_eq!(message.encode(), frame);
    assert_eq!(WitRequest::decode(message.data.clone().unwrap()).unwrap(), add_request());

    // The reply keeps the request's id and type.
    let reply = message.reply(Some(Bytes::from(WitResponse::ok(Some(Bytes::from_static(b"5"))).encode())));
    assert_eq!((reply.id, reply.kind), (id, MessageType::Request));
}

#[test]
fn envelope_is_header_dotnet_guid_type_and_length_prefixed_data() {
    let id = Uuid::parse_str(MESSAGE_ID).unwrap();
    let kinds = [
        (MessageType::Unknown, [0, 0, 0, 0]),
        (MessageType::Request, [1, 0, 0, 0]),
        (MessageType::Callback, [2, 0, 0, 0]),
        (MessageType::Initialization, [3, 0, 0, 0]),
        (MessageType::Authorization, [4, 0, 0, 0]),
        (MessageType::Other(7), [7, 0, 0, 0]),
        (MessageType::Other(-2), [0xFE, 0xFF, 0xFF, 0xFF]),
    ];
    let datas: [(Option<Bytes>, &[u8]); 3] = [
        (None, &[0xFF, 0xFF, 0xFF, 0xFF]),
        (Some(Bytes::new()), &[0, 0, 0, 0]),
        (Some(Bytes::from_static(&[9, 8])), &[2, 0, 0, 0, 9, 8]),
    ];
    for (kind, kind_wire) in kinds {
        for (data, data_wire) in &datas {
            let wire = [&[0x03][..], &MESSAGE_ID_WIRE, &kind_wire, data_wire].concat();
            let message = WitMessage::new(id, kind, data.clone());
            assert_eq!(message.encode(), wire, "{kind:?} {data:?}");
            assert_eq!(WitMessage::decode(bytes(&wire)).unwrap(), message);
            assert_eq!(wire.len(), ENVELOPE_OVERHEAD + data.as_ref().map_or(0, Bytes::len));
        }
    }
}

#[test]
fn plain_initialization_request_is_the_twelve_documented_bytes() {
    let wire = [0x02, 0x05, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00];
    let decoded = WitRequestInitialization::decode(bytes(&wire)).unwrap();
    assert_eq!(decoded, WitRequestInitialization { public_key: Some(Bytes::from_static(&[0])), protocol_version: 3 });
    assert_eq!(decoded, WitRequestInitialization::plain());
    assert_eq!(decoded.encode(), wire);
}

#[test]
fn plain_initialization_response_is_zero_byte_keys_and_version_3() {
    #[rustfmt::skip]
    let wire = [
        0x04, 0x05, 0x05, 0x04, 0x04,
        0x01, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let decoded = WitResponseInitialization::decode(bytes(&wire)).unwrap();
    let expected = WitResponseInitialization {
        symmetric_key: Some(Bytes::from_static(&[0])),
        vector: Some(Bytes::from_static(&[0])),
        protocol_version: PROTOCOL_VERSION,
        error_message: None,
    };
    assert_eq!(decoded, expected);
    assert_eq!(decoded, WitResponseInitialization::plain());
    assert_eq!(decoded.encode(), wire);
}

#[test]
fn encrypted_initialization_response_is_69_bytes_in_the_documented_layout() {
    let key: Vec<u8> = (0..32).collect();
    let salt: Vec<u8> = (0xA0..0xB0).collect();
    let wire = [
        &[0x04, 0x24, 0x14, 0x04, 0x04][..],
        &[0x20, 0x00, 0x00, 0x00],
        &key,
        &[0x10, 0x00, 0x00, 0x00],
        &salt,
        &[0x03, 0x00, 0x00, 0x00],
        &[0xFF, 0xFF, 0xFF, 0xFF],
    ]
    .concat();
    assert_eq!(wire.len(), 69);
    let response = WitResponseInitialization {
        symmetric_key: Some(Bytes::from(key)),
        vector: Some(Bytes::from(salt)),
        protocol_version: 3,
        error_message: None,
    };
    assert_eq!(WitResponseInitialization::decode(bytes(&wire)).unwrap(), response);
    assert_eq!(response.encode(), wire);
}

#[test]
fn refused_initialization_response_has_null_keys_and_a_message() {
    let message = "Protocol version mismatch";
    let wire = tolerant(&[&NULL, &NULL, &i32le(3), &utf8_string(message)]);
    assert_eq!(&wire[..5], &[0x04, 0x04, 0x04, 0x04, 0x21]);
    let refusal = WitResponseInitialization::refusal(message);
    assert_eq!(refusal.encode(), wire);
    assert_eq!(WitResponseInitialization::decode(bytes(&wire)).unwrap(), refusal);
}

#[test]
fn ok_response_with_json_data_matches_memorypack() {
    #[rustfmt::skip]
    let wire = [
        0x04, 0x04, 0x05, 0x04, 0x04,
        0xC8, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, b'5',
        0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let response = WitResponse::ok(Some(Bytes::from_static(b"5")));
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), response);
    assert_eq!(response.encode(), wire);

    // A void method: 200 with null Data.
    let void = [&[0x04, 0x04, 0x04, 0x04, 0x04][..], &i32le(200), &NULL, &NULL, &NULL].concat();
    assert_eq!(WitResponse::decode(bytes(&void)).unwrap(), WitResponse::ok(None));
    assert_eq!(WitResponse::ok(None).encode(), void);
}

#[test]
fn error_response_carries_message_and_details() {
    let details = "Exception has been thrown by the target of an invocation.";
    let wire = [
        &[0x04, 0x04, 0x04, 0x21, 0x41][..],
        &[0xF4, 0x01, 0x00, 0x00],
        &NULL,
        &[0xE6, 0xFF, 0xFF, 0xFF, 0x19, 0x00, 0x00, 0x00],
        b"Failed to process request",
        &[0xC6, 0xFF, 0xFF, 0xFF, 0x39, 0x00, 0x00, 0x00],
        details.as_bytes(),
    ]
    .concat();
    let response =
        WitResponse::error(CommunicationStatus::InternalServerError, "Failed to process request", Some(details.into()));
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), response);
    assert_eq!(response.encode(), wire);

    // 561 without details; an empty message is int32 0, not null.
    let unauthorized = WitResponse::error(CommunicationStatus::Unauthorized, "Token is not valid", None);
    let wire = tolerant(&[&i32le(561), &NULL, &utf8_string("Token is not valid"), &NULL]);
    assert_eq!(unauthorized.encode(), wire);
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), unauthorized);
    let empty = WitResponse::error(CommunicationStatus::BadRequest, "", None);
    let wire = tolerant(&[&i32le(400), &NULL, &i32le(0), &NULL]);
    assert_eq!(empty.encode(), wire);
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), empty);
}

#[test]
fn authorization_request_writes_the_token_as_a_utf8_string() {
    let wire = [&[0x01, 0x14, 0xF3, 0xFF, 0xFF, 0xFF, 0x0C, 0x00, 0x00, 0x00][..], b"AuthToken123"].concat();
    let request = WitRequestAuthorization { token: Some("AuthToken123".into()) };
    assert_eq!(WitRequestAuthorization::decode(bytes(&wire)).unwrap(), request);
    assert_eq!(request.encode(), wire);
    assert_eq!(wire, tolerant(&[&utf8_string("AuthToken123")]), "the helper agrees with the literal bytes");
}

#[test]
fn authorization_responses_are_a_bool_and_the_dotnet_message() {
    let yes = [&[0x02, 0x01, 0x12, 0x01, 0xF5, 0xFF, 0xFF, 0xFF, 0x0A, 0x00, 0x00, 0x00][..], b"Authorized"].concat();
    let authorized = WitResponseAuthorization { is_authorized: true, message: Some(AUTHORIZED.into()) };
    assert_eq!(WitResponseAuthorization::new(true), authorized);
    assert_eq!(WitResponseAuthorization::decode(bytes(&yes)).unwrap(), authorized);
    assert_eq!(authorized.encode(), yes);

    let no = [&[0x02, 0x01, 0x11, 0x00, 0xF6, 0xFF, 0xFF, 0xFF, 0x09, 0x00, 0x00, 0x00][..], b"Forbidden"].concat();
    let forbidden = WitResponseAuthorization { is_authorized: false, message: Some(FORBIDDEN.into()) };
    assert_eq!(WitResponseAuthorization::new(false), forbidden);
    assert_eq!(WitResponseAuthorization::decode(bytes(&no)).unwrap(), forbidden);
    assert_eq!(forbidden.encode(), no);
}

#[test]
fn non_ascii_strings_count_utf8_bytes_and_utf16_units() {
    // 12 UTF-8 bytes; 8 UTF-16 units (the emoji is a surrogate pair).
    let token = "Grüße 😀";
    let wire = [&[0x01, 0x14][..], &i32le(!12), &i32le(8), token.as_bytes()].concat();
    let request = WitRequestAuthorization { token: Some(token.into()) };
    assert_eq!(request.encode(), wire);
    assert_eq!(WitRequestAuthorization::decode(bytes(&wire)).unwrap(), request);
}

#[test]
fn empty_and_null_tokens_are_distinct_on_the_wire() {
    for (token, wire) in [(None, tolerant(&[&NULL])), (Some(String::new()), tolerant(&[&i32le(0)]))] {
        let request = WitRequestAuthorization { token };
        assert_eq!(request.encode(), wire);
        assert_eq!(WitRequestAuthorization::decode(bytes(&wire)).unwrap(), request);
    }
}

// ---------------------------------------------------------------------------------------
// Decoder tolerance
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_trailing_members_are_skipped() {
    // A WitResponse from a later 3.x with a fifth member.
    let wire = tolerant(&[&i32le(200), &byte_array(b"5"), &NULL, &NULL, &[0xAA, 0xBB]]);
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), WitResponse::ok(Some(Bytes::from_static(b"5"))));

    // A WitRequest with an eleventh member of 300 bytes (its length a 0x84 VarInt).
    let base = add_request_wire();
    let eleventh = [0x5A; 300];
    let wire = [&[0x0B][..], &base[1..11], &[0x84, 0x2C, 0x01], &base[11..], &eleventh].concat();
    assert_eq!(WitRequest::decode(bytes(&wire)).unwrap(), add_request());

    // The handshake models too.
    let extra: &[u8] = &[1, 2, 3];
    let wire = tolerant(&[&byte_array(&[0]), &i32le(3), extra]);
    assert_eq!(WitRequestInitialization::decode(bytes(&wire)).unwrap(), WitRequestInitialization::plain());
    let wire = tolerant(&[&byte_array(&[0]), &byte_array(&[0]), &i32le(3), &NULL, extra]);
    assert_eq!(WitResponseInitialization::decode(bytes(&wire)).unwrap(), WitResponseInitialization::plain());
    let wire = tolerant(&[&utf8_string("t"), extra]);
    assert_eq!(WitRequestAuthorization::decode(bytes(&wire)).unwrap().token.as_deref(), Some("t"));
    let wire = tolerant(&[&[1], &utf8_string(AUTHORIZED), extra]);
    assert_eq!(WitResponseAuthorization::decode(bytes(&wire)).unwrap(), WitResponseAuthorization::new(true));
}

#[test]
fn missing_trailing_members_are_left_at_their_defaults() {
    // An older peer's WitResponse with only Status.
    let wire = tolerant(&[&i32le(400)]);
    let expected =
        WitResponse { status: CommunicationStatus::BadRequest, data: None, error_message: None, error_details: None };
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), expected);

    // Header 0: every member at its default.
    assert_eq!(WitRequest::decode(Bytes::from_static(&[0x00])).unwrap(), WitRequest::default());
    let status_only = WitResponse::decode(Bytes::from_static(&[0x00])).unwrap();
    assert_eq!(status_only.status, CommunicationStatus::Unknown);

    // A WitRequest without the 3.0 members: no InvocationId, ContractId or MethodId.
    let base = add_request_wire();
    let seven_lengths = &base[1..8];
    let seven_len: usize = seven_lengths.iter().map(|&l| usize::from(l)).sum();
    let wire = [&[0x07][..], seven_lengths, &base[11..11 + seven_len]].concat();
    let expected = WitRequest { invocation_id: Uuid::nil(), contract_id: 0, method_id: 0, ..add_request() };
    assert_eq!(WitRequest::decode(bytes(&wire)).unwrap(), expected);

    // An initialization request without ProtocolVersion reads as version 0.
    let wire = tolerant(&[&byte_array(&[0])]);
    let decoded = WitRequestInitialization::decode(bytes(&wire)).unwrap();
    assert_eq!(decoded, WitRequestInitialization { public_key: Some(Bytes::from_static(&[0])), protocol_version: 0 });
    let wire = tolerant(&[&byte_array(&[0]), &byte_array(&[0])]);
    let decoded = WitResponseInitialization::decode(bytes(&wire)).unwrap();
    assert_eq!((decoded.protocol_version, decoded.error_message), (0, None));
    let decoded = WitResponseAuthorization::decode(Bytes::from_static(&[0x00])).unwrap();
    assert_eq!(decoded, WitResponseAuthorization { is_authorized: false, message: None });
    assert_eq!(WitRequestAuthorization::decode(Bytes::from_static(&[0x00])).unwrap().token, None);
}

#[test]
fn nested_parameter_types_tolerate_extra_missing_and_null_members() {
    let newer = tolerant(&[&utf8_string("System.String"), &utf8_string("System.Private.CoreLib"), &[1, 2, 3]]);
    let older = tolerant(&[&utf8_string("System.Int32")]);
    let by_name = [&i32le(3)[..], &newer, &older, &[0xFF]].concat();
    let empty = i32le(0);
    let zero_id = [0; 8];
    let wire = tolerant(&[
        &i32le(0),
        &utf8_string("Changed"),
        &[&i32le(1)[..], &byte_array(b"\"x\"")].concat(),
        &empty,
        &by_name,
        &empty,
        &empty,
        &[0; 16],
        &CALCULATOR_CONTRACT_ID.to_le_bytes(),
        &zero_id,
    ]);
    let event = WitRequest::decode(bytes(&wire)).unwrap();
    assert_eq!(event.method_name, "Changed");
    assert_eq!(event.parameters, [Bytes::from_static(b"\"x\"")]);
    assert_eq!(
        event.parameter_types_by_name,
        [
            ParameterType { type_name: Some("System.String".into()), assembly: Some("System.Private.CoreLib".into()) },
            ParameterType { type_name: Some("System.Int32".into()), assembly: None },
            ParameterType::default(),
        ]
    );
    assert_eq!(event.contract_id, CALCULATOR_CONTRACT_ID);
}

#[test]
fn utf16_string_form_is_accepted() {
    for s in ["AuthToken123", "Grüße 😀"] {
        let wire = tolerant(&[&utf16_string(s)]);
        assert_eq!(WitRequestAuthorization::decode(bytes(&wire)).unwrap().token.as_deref(), Some(s));
        let wire = tolerant(&[&i32le(500), &NULL, &utf16_string(s), &utf16_string(s)]);
        let response = WitResponse::decode(bytes(&wire)).unwrap();
        assert_eq!((response.error_message.as_deref(), response.error_details.as_deref()), (Some(s), Some(s)));
    }
}

#[test]
fn utf8_string_with_zero_or_negative_utf16_length_is_accepted() {
    for utf16_len in [0, -1, i32::MIN] {
        for s in ["abc", "Grüße 😀"] {
            let wire = tolerant(&[&utf8_string_with_utf16_len(s, utf16_len)]);
            let decoded = WitRequestAuthorization::decode(bytes(&wire));
            assert_eq!(decoded.unwrap().token.as_deref(), Some(s), "utf16 length {utf16_len}");
        }
    }
}

#[test]
fn every_varint_code_is_accepted_as_a_member_length() {
    // Status (4 bytes), its length in each of the nine VarInt forms.
    let four: [&[u8]; 9] = [
        &[0x04],
        &[0x87, 4],
        &[0x86, 4],
        &[0x85, 4, 0],
        &[0x84, 4, 0],
        &[0x83, 4, 0, 0, 0],
        &[0x82, 4, 0, 0, 0],
        &[0x81, 4, 0, 0, 0, 0, 0, 0, 0],
        &[0x80, 4, 0, 0, 0, 0, 0, 0, 0],
    ];
    for varint in four {
        let wire = [&[0x01][..], varint, &i32le(200)].concat();
        assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), WitResponse::ok(None), "{varint:02x?}");
    }

    // A 204-byte Data member, in every form that holds 204 (0x87 is an unsigned byte).
    let data = [7u8; 200];
    let members = [&i32le(200)[..], &byte_array(&data), &NULL, &NULL].concat();
    let len_204: [&[u8]; 7] = [
        &[0x87, 204],
        &[0x85, 204, 0],
        &[0x84, 204, 0],
        &[0x83, 204, 0, 0, 0],
        &[0x82, 204, 0, 0, 0],
        &[0x81, 204, 0, 0, 0, 0, 0, 0, 0],
        &[0x80, 204, 0, 0, 0, 0, 0, 0, 0],
    ];
    for varint in len_204 {
        let wire = [&[0x04, 0x04][..], varint, &[0x04, 0x04], &members].concat();
        let decoded = WitResponse::decode(bytes(&wire)).unwrap();
        assert_eq!(decoded, WitResponse::ok(Some(Bytes::copy_from_slice(&data))), "{varint:02x?}");
    }
}

#[test]
fn long_member_lengths_are_written_as_dotnet_writes_them() {
    // Data of n bytes is a member of n + 4 bytes: one byte up to 127, 0x84 + i16 up to
    // 32767, 0x82 + i32 beyond.
    let cases: [(usize, &[u8]); 6] = [
        (123, &[0x7F]),
        (124, &[0x84, 0x80, 0x00]),
        (200, &[0x84, 0xCC, 0x00]),
        (32_763, &[0x84, 0xFF, 0x7F]),
        (32_764, &[0x82, 0x00, 0x80, 0x00, 0x00]),
        (40_000, &[0x82, 0x44, 0x9C, 0x00, 0x00]),
    ];
    for (n, varint) in cases {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let wire = [&[0x04, 0x04][..], varint, &[0x04, 0x04], &i32le(200), &byte_array(&data), &NULL, &NULL].concat();
        let response = WitResponse::ok(Some(Bytes::from(data)));
        assert_eq!(response.encode(), wire, "{n}-byte Data");
        assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), response);
    }

    // A long non-ASCII error message: 100 × 'é' is 200 UTF-8 bytes, a 208-byte member.
    let message = "é".repeat(100);
    let response = WitResponse::error(CommunicationStatus::BadRequest, message.clone(), None);
    let wire =
        [&[0x04, 0x04, 0x04, 0x84, 0xD0, 0x00, 0x04][..], &i32le(400), &NULL, &utf8_string(&message), &NULL].concat();
    assert_eq!(response.encode(), wire);
    assert_eq!(WitResponse::decode(bytes(&wire)).unwrap(), response);
}

/// MemoryPack's generated version-tolerant reader reads a member whose length is 0 as
/// its default (`if (deltas[i] == 0) { __X = default; } else ...`, MemoryPack
/// `MemoryPackGenerator.Emitter.cs` @85ab9ad, `EmitReadToDeserialize`). A .NET writer
/// emits such a member for a "blank" slot: a member removed from a model whose later
/// members keep their `[MemoryPackOrder]`, the way version-tolerant models drop fields.
#[test]
fn zero_length_member_reads_as_its_default_as_memorypack_does() {
    // A WitResponse with blank Data and ErrorDetails.
    let wire = tolerant(&[&i32le(200), &[], &utf8_string("x"), &[]]);
    let response = WitResponse::decode(bytes(&wire));
    let expected_response = WitResponse {
        status: CommunicationStatus::Ok,
        data: None,
        error_message: Some("x".into()),
        error_details: None,
    };

    // A WitRequest from a peer whose model dropped ParameterTypes (order 3).
    let base = add_request_wire();
    let lengths = &base[1..11];
    let (before, rest) = base[11..].split_at(20 + 11 + 14);
    let after = &rest[92..];
    let wire = [&[0x0A][..], &lengths[..3], &[0x00], &lengths[4..], before, after].concat();
    let request = WitRequest::decode(bytes(&wire));
    let expected_request = WitRequest { parameter_types: Vec::new(), ..add_request() };

    assert_eq!((response, request), (Ok(expected_response), Ok(expected_request)));
}

// ---------------------------------------------------------------------------------------
// Hostile input: typed errors, never a panic
// ---------------------------------------------------------------------------------------

/// Every strict prefix of `wire` must be a `Truncated` error.
fn assert_every_prefix_is_truncated<T: std::fmt::Debug>(wire: &[u8], decode: fn(Bytes) -> Result<T, CodecError>) {
    for n in 0..wire.len() {
        let result = decode(bytes(&wire[..n]));
        assert!(matches!(result, Err(CodecError::Truncated { .. })), "prefix of {n}/{} bytes: {result:?}", wire.len());
    }
    assert!(decode(bytes(wire)).is_ok());
}

#[test]
fn every_truncation_of_a_request_or_its_frame_is_a_truncated_error() {
    assert_every_prefix_is_truncated(&add_request_wire(), WitRequest::decode);
    assert_every_prefix_is_truncated(&add_request_frame(), WitMessage::decode);
}

#[test]
fn every_truncation_of_the_other_payloads_is_a_truncated_error() {
    let response = WitResponse::error(CommunicationStatus::InternalServerError, "Failed", Some("boom".into()));
    assert_every_prefix_is_truncated(&response.encode(), WitResponse::decode);
    assert_every_prefix_is_truncated(&WitResponse::ok(Some(Bytes::from(vec![1; 300]))).encode(), WitResponse::decode);
    assert_every_prefix_is_truncated(&WitRequestInitialization::plain().encode(), WitRequestInitialization::decode);
    assert_every_prefix_is_truncated(&WitResponseInitialization::plain().encode(), WitResponseInitialization::decode);
    let auth = WitRequestAuthorization { token: Some("AuthToken123".into()) };
    assert_every_prefix_is_truncated(&auth.encode(), WitRequestAuthorization::decode);
    assert_every_prefix_is_truncated(&WitResponseAuthorization::new(true).encode(), WitResponseAuthorization::decode);
}

#[test]
fn envelope_header_other_than_3_is_rejected() {
    let frame = add_request_frame();
    for header in [0x00, 0x01, 0x02, 0x04, 0x0A, 0xF9, 0xFA, 0xFE] {
        let mut wire = frame.clone();
        wire[0] = header;
        assert_eq!(WitMessage::decode(bytes(&wire)), Err(CodecError::InvalidHeader { what: "WitMessage", header }));
    }
}

#[test]
fn envelope_with_trailing_bytes_is_rejected() {
    for extra in [1, 7] {
        let wire = [add_request_frame(), vec![0; extra]].concat();
        assert_eq!(WitMessage::decode(bytes(&wire)), Err(CodecError::TrailingBytes { what: "WitMessage", extra }));
    }
    let null_data = [&[0x03][..], &[0; 16], &i32le(1), &NULL, &[0]].concat();
    assert_eq!(WitMessage::decode(bytes(&null_data)), Err(CodecError::TrailingBytes { what: "WitMessage", extra: 1 }));
}

#[test]
fn payload_with_trailing_bytes_is_rejected() {
    fn with_extra_byte(mut v: Vec<u8>) -> Bytes {
        v.push(0);
        Bytes::from(v)
    }
    let trailing = |what| Some(CodecError::TrailingBytes { what, extra: 1 });
    assert_eq!(WitRequest::decode(with_extra_byte(add_request_wire())).err(), trailing("WitRequest"));
    assert_eq!(WitResponse::decode(with_extra_byte(WitResponse::ok(None).encode())).err(), trailing("WitResponse"));
    let init = WitRequestInitialization::plain().encode();
    assert_eq!(WitRequestInitialization::decode(with_extra_byte(init)).err(), trailing("WitRequestInitialization"));
    let init = WitResponseInitialization::plain().encode();
    assert_eq!(WitResponseInitialization::decode(with_extra_byte(init)).err(), trailing("WitResponseInitialization"));
    let auth = WitRequestAuthorization { token: None }.encode();
    assert_eq!(WitRequestAuthorization::decode(with_extra_byte(auth)).err(), trailing("WitRequestAuthorization"));
    let auth = WitResponseAuthorization::new(false).encode();
    assert_eq!(WitResponseAuthorization::decode(with_extra_byte(auth)).err(), trailing("WitResponseAuthorization"));
}

#[test]
fn negative_lengths_other_than_null_are_invalid() {
    for length in [-2, -1000, i32::MIN] {
        let envelope = [&[0x03][..], &[0; 16], &i32le(1), &i32le(length), &[0; 8]].concat();
        assert_eq!(
            WitMessage::decode(bytes(&envelope)),
            Err(CodecError::InvalidLength { what: "WitMessage.Data", length })
        );

        let response = tolerant(&[&i32le(200), &i32le(length)]);
        assert_eq!(
            WitResponse::decode(bytes(&response)),
            Err(CodecError::InvalidLength { what: "WitResponse.Data", length })
        );

        let key = tolerant(&[&i32le(length), &i32le(3)]);
        assert!(matches!(
            WitRequestInitialization::decode(bytes(&key)),
            Err(CodecError::InvalidLength { length: l, .. }) if l == length
        ));

        // Parameters: a negative count, and a negative element length.
        for parameters in [i32le(length).to_vec(), [&i32le(1)[..], &i32le(length)].concat()] {
            let request = tolerant(&[&i32le(0), &i32le(0), &parameters]);
            assert_eq!(
                WitRequest::decode(bytes(&request)),
                Err(CodecError::InvalidLength { what: "WitRequest.Parameters", length })
            );
        }
        let types = tolerant(&[&i32le(0), &i32le(0), &i32le(0), &i32le(length)]);
        assert_eq!(
            WitRequest::decode(bytes(&types)),
            Err(CodecError::InvalidLength { what: "WitRequest.ParameterTypes", length })
        );
    }
}

/// A declared count or length larger than the input fails before anything is
/// allocated for it. (Were the arrays allocated up front, these counts would ask for
/// tens of GiB and abort the test process.)
#[test]
fn huge_declared_counts_fail_before_allocating() {
    fn request_with(member: usize, value: &[u8]) -> Bytes {
        let empty = i32le(0);
        let mut members: Vec<&[u8]> = vec![&empty; member];
        members.push(value);
        Bytes::from(tolerant(&members))
    }
    fn is_truncated(result: Result<WitRequest, CodecError>, field: &str) -> bool {
        matches!(result, Err(CodecError::Truncated { what, needed, available: 6 }) if what == field && needed > 6)
    }
    // Each count or length is 0x7fffffff with 6 bytes left after it.
    let huge = [&i32le(i32::MAX)[..], &[0; 6]].concat();
    assert!(is_truncated(WitRequest::decode(request_with(2, &huge)), "WitRequest.Parameters"));
    assert!(is_truncated(WitRequest::decode(request_with(3, &huge)), "WitRequest.ParameterTypes"));
    assert!(is_truncated(WitRequest::decode(request_with(4, &huge)), "WitRequest.ParameterTypesByName"));
    assert!(is_truncated(WitRequest::decode(request_with(5, &huge)), "WitRequest.GenericArguments"));
    assert!(is_truncated(WitRequest::decode(request_with(6, &huge)), "WitRequest.GenericArgumentsByName"));
    // A string of 0x7fffffff UTF-16 units, and one of 0x7fffffff UTF-8 bytes.
    assert!(is_truncated(WitRequest::decode(request_with(0, &huge)), "WitRequest.Token"));
    let utf8 = [&i32le(!i32::MAX)[..], &i32le(0), &[b'a'; 6]].concat();
    assert!(is_truncated(WitRequest::decode(request_with(1, &utf8)), "WitRequest.MethodName"));
    // A parameter blob of 0x7fffffff bytes.
    let blob = [&i32le(1)[..], &i32le(i32::MAX), &[0; 6]].concat();
    assert!(is_truncated(WitRequest::decode(request_with(2, &blob)), "WitRequest.Parameters"));

    let envelope = [&[0x03][..], &[0; 16], &i32le(1), &i32le(i32::MAX), &[0; 6]].concat();
    assert!(matches!(
        WitMessage::decode(bytes(&envelope)),
        Err(CodecError::Truncated { what: "WitMessage.Data", available: 6, .. })
    ));
    let key = tolerant(&[&[&i32le(i32::MAX)[..], &[0; 6]].concat()]);
    assert!(matches!(WitRequestInitialization::decode(bytes(&key)), Err(CodecError::Truncated { available: 6, .. })));
}

#[test]
fn member_lengths_beyond_the_input_are_truncated_errors() {
    let cases: [&[u8]; 6] = [
        &[0x01, 0x7F, 1, 2, 3],
        &[0x01, 0x82, 0xFF, 0xFF, 0xFF, 0x7F, 0xC8, 0, 0, 0],
        &[0x01, 0x83, 0xFF, 0xFF, 0xFF, 0xFF, 0xC8, 0, 0, 0],
        &[0x01, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xC8, 0, 0, 0],
        &[0x0A, 0x04, 0x04],
        &[0xF9],
    ];
    for wire in cases {
        let result = WitResponse::decode(bytes(wire));
        assert!(matches!(result, Err(CodecError::Truncated { .. })), "{wire:02x?}: {result:?}");
        let result = WitRequest::decode(bytes(wire));
        assert!(matches!(result, Err(CodecError::Truncated { .. })), "{wire:02x?}: {result:?}");
    }
}

#[test]
fn negative_or_oversized_varint_lengths_are_typed_errors() {
    let status = i32le(200);
    let negative: [&[u8]; 5] =
        [&[0xFF], &[0x88], &[0x86, 0xFC], &[0x84, 0xFF, 0xFF], &[0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]];
    for varint in negative {
        let wire = [&[0x01][..], varint, &status].concat();
        let result = WitResponse::decode(bytes(&wire));
        assert!(
            matches!(result, Err(CodecError::InvalidLength { what: "WitResponse", .. })),
            "{varint:02x?}: {result:?}"
        );
    }
    let above_i64 = [&[0x01, 0x81][..], &u64::MAX.to_le_bytes(), &status].concat();
    assert_eq!(WitResponse::decode(bytes(&above_i64)), Err(CodecError::InvalidVarInt { what: "WitResponse" }));
}

#[test]
fn reserved_object_headers_are_invalid() {
    for header in 250..=254u8 {
        let wire = [header, 0x04, 0xC8, 0, 0, 0];
        assert_eq!(WitResponse::decode(bytes(&wire)), Err(CodecError::InvalidHeader { what: "WitResponse", header }));
        assert!(matches!(WitRequest::decode(bytes(&wire)), Err(CodecError::InvalidHeader { .. })));
    }
}

#[test]
fn member_length_not_matching_its_value_is_rejected() {
    // Status declared as 5 bytes: the int32 leaves one unread.
    let wire = [0x01, 0x05, 0xC8, 0, 0, 0, 0];
    assert_eq!(
        WitResponse::decode(bytes(&wire)),
        Err(CodecError::MemberLengthMismatch { what: "WitResponse.Status", extra: 1 })
    );
    // Status declared as 3 bytes: the int32 does not fit.
    let wire = [0x01, 0x03, 0xC8, 0, 0];
    assert!(matches!(WitResponse::decode(bytes(&wire)), Err(CodecError::Truncated { .. })));
    // A string member with spare bytes after the text.
    let token = [utf8_string("abc"), vec![0]].concat();
    assert_eq!(
        WitRequestAuthorization::decode(bytes(&tolerant(&[&token]))),
        Err(CodecError::MemberLengthMismatch { what: "WitRequestAuthorization.Token", extra: 1 })
    );
}

#[test]
fn invalid_text_is_a_typed_error() {
    let what = "WitRequestAuthorization.Token";
    let decode = |member: &[u8]| WitRequestAuthorization::decode(bytes(&tolerant(&[member])));

    // Invalid UTF-8: a broken two-byte sequence, an encoded surrogate, an overlong '/'.
    for raw in [&[0xC3, 0x28][..], &[0xED, 0xA0, 0x80], &[0xC0, 0xAF], &[0xFF]] {
        for utf16_len in [0, 2] {
            let member = [&i32le(!i32::try_from(raw.len()).unwrap())[..], &i32le(utf16_len), raw].concat();
            assert_eq!(decode(&member), Err(CodecError::InvalidUtf8 { what }), "{raw:02x?}");
        }
    }

    // A positive UTF-16 length must be exact.
    for (s, utf16_len) in [("abc", 9), ("abc", 2), ("Grüße 😀", 7), ("Grüße 😀", 12)] {
        let member = utf8_string_with_utf16_len(s, utf16_len);
        assert_eq!(decode(&member), Err(CodecError::Utf16LengthMismatch { what }), "{s:?} as {utf16_len}");
    }

    // UTF-16 form with an unpaired surrogate.
    let lone = [&i32le(2)[..], &0x0041u16.to_le_bytes(), &0xD800u16.to_le_bytes()].concat();
    assert_eq!(decode(&lone), Err(CodecError::InvalidUtf16 { what }));

    // The field is named wherever the text sits.
    let bad = [&i32le(!1)[..], &i32le(1), &[0x80]].concat();
    let request = tolerant(&[&i32le(0), &bad]);
    assert_eq!(WitRequest::decode(bytes(&request)), Err(CodecError::InvalidUtf8 { what: "WitRequest.MethodName" }));
    let types = [&i32le(1)[..], &bad].concat();
    let request = tolerant(&[&i32le(0), &i32le(0), &i32le(0), &types]);
    assert_eq!(WitRequest::decode(bytes(&request)), Err(CodecError::InvalidUtf8 { what: "WitRequest.ParameterTypes" }));
}

#[test]
fn null_object_at_top_level_is_a_null_error() {
    let null = || Bytes::from_static(&[0xFF]);
    assert_eq!(WitMessage::decode(null()), Err(CodecError::Null { what: "WitMessage" }));
    let mut frame = add_request_frame();
    frame[0] = 0xFF;
    assert_eq!(WitMessage::decode(bytes(&frame)), Err(CodecError::Null { what: "WitMessage" }));
    assert_eq!(WitRequest::decode(null()), Err(CodecError::Null { what: "WitRequest" }));
    assert_eq!(WitResponse::decode(null()), Err(CodecError::Null { what: "WitResponse" }));
    assert_eq!(WitRequestInitialization::decode(null()), Err(CodecError::Null { what: "WitRequestInitialization" }));
    assert_eq!(WitResponseInitialization::decode(null()), Err(CodecError::Null { what: "WitResponseInitialization" }));
    assert_eq!(WitRequestAuthorization::decode(null()), Err(CodecError::Null { what: "WitRequestAuthorization" }));
    assert_eq!(WitResponseAuthorization::decode(null()), Err(CodecError::Null { what: "WitResponseAuthorization" }));
}

#[test]
fn empty_input_is_truncated_for_every_decoder() {
    let truncated = |r: Result<(), CodecError>| matches!(r, Err(CodecError::Truncated { needed: 1, available: 0, .. }));
    assert!(truncated(WitMessage::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitRequest::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitResponse::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitRequestInitialization::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitResponseInitialization::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitRequestAuthorization::decode(Bytes::new()).map(drop)));
    assert!(truncated(WitResponseAuthorization::decode(Bytes::new()).map(drop)));
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// Feeds `input` to every decoder. None may panic; whatever one accepts must re-encode
/// to bytes that decode to the same value (the envelope to the very same bytes).
fn decode_with_every_decoder(input: &[u8]) -> Result<(), TestCaseError> {
    let b = Bytes::copy_from_slice(input);
    if let Ok(message) = WitMessage::decode(b.clone()) {
        prop_assert_eq!(message.encode(), input);
    }
    macro_rules! stable {
        ($ty:ty) => {
            if let Ok(value) = <$ty>::decode(b.clone()) {
                let again = <$ty>::decode(Bytes::from(value.encode()));
                prop_assert_eq!(again, Ok(value), "{} re-encoded to a different value", stringify!($ty));
            }
        };
    }
    stable!(WitRequest);
    stable!(WitResponse);
    stable!(WitRequestInitialization);
    stable!(WitResponseInitialization);
    stable!(WitRequestAuthorization);
    stable!(WitResponseAuthorization);
    Ok(())
}

/// Strings: empty, ASCII, any Unicode (incl. surrogate pairs in UTF-16), and long
/// enough to need a multi-byte VarInt length.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[ -~]{1,24}", ".{1,16}", "[a-zé€😀]{100,140}"]
}

/// Parameter and data blobs, short and past the 127-byte VarInt boundary.
fn blob() -> impl Strategy<Value = Bytes> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..16), prop::collection::vec(any::<u8>(), 120..300)]
        .prop_map(Bytes::from)
}

fn parameter_type() -> impl Strategy<Value = ParameterType> {
    (prop::option::of(text()), prop::option::of(text()))
        .prop_map(|(type_name, assembly)| ParameterType { type_name, assembly })
}

fn request() -> impl Strategy<Value = WitRequest> {
    (
        text(),
        text(),
        prop::collection::vec(blob(), 0..4),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(parameter_type(), 0..3),
        prop::collection::vec(text(), 0..2),
        prop::collection::vec(parameter_type(), 0..2),
        any::<u128>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(
                token,
                method_name,
                parameters,
                parameter_types,
                parameter_types_by_name,
                generic_arguments,
                generic_arguments_by_name,
                invocation_id,
                contract_id,
                method_id,
            )| WitRequest {
                token,
                method_name,
                parameters,
                parameter_types,
                parameter_types_by_name,
                generic_arguments,
                generic_arguments_by_name,
                invocation_id: Uuid::from_u128(invocation_id),
                contract_id,
                method_id,
            },
        )
}

/// Statuses as a decoder produces them (`Other` only for values without a name).
fn status() -> impl Strategy<Value = CommunicationStatus> {
    prop_oneof![
        Just(CommunicationStatus::Ok),
        Just(CommunicationStatus::BadRequest),
        Just(CommunicationStatus::InternalServerError),
        Just(CommunicationStatus::Unauthorized),
        any::<i32>().prop_map(CommunicationStatus::from_i32),
    ]
}

fn response() -> impl Strategy<Value = WitResponse> {
    (status(), prop::option::of(blob()), prop::option::of(text()), prop::option::of(text())).prop_map(
        |(status, data, error_message, error_details)| WitResponse { status, data, error_message, error_details },
    )
}

/// Message types as a decoder produces them.
fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Request),
        Just(MessageType::Callback),
        Just(MessageType::Initialization),
        Just(MessageType::Authorization),
        any::<i32>().prop_map(MessageType::from_i32),
    ]
}

fn message() -> impl Strategy<Value = WitMessage> {
    (any::<u128>(), message_type(), prop::option::of(blob()))
        .prop_map(|(id, kind, data)| WitMessage::new(Uuid::from_u128(id), kind, data))
}

fn request_initialization() -> impl Strategy<Value = WitRequestInitialization> {
    (prop::option::of(blob()), any::<i32>())
        .prop_map(|(public_key, protocol_version)| WitRequestInitialization { public_key, protocol_version })
}

fn response_initialization() -> impl Strategy<Value = WitResponseInitialization> {
    (prop::option::of(blob()), prop::option::of(blob()), any::<i32>(), prop::option::of(text())).prop_map(
        |(symmetric_key, vector, protocol_version, error_message)| WitResponseInitialization {
            symmetric_key,
            vector,
            protocol_version,
            error_message,
        },
    )
}

/// One edit of a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte with a non-zero mask.
    Flip(Index, u8),
    /// Insert a byte.
    Insert(Index, u8),
    /// Delete a byte.
    Delete(Index),
    /// Overwrite four bytes with a length a hostile peer would pick.
    Length(Index, i32),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let lengths = prop::sample::select(vec![-2, -1, 0, 1, 127, 128, 0x7FFF, 0x8000, i32::MAX, i32::MIN, !i32::MAX]);
    let mutation = prop_oneof![
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, mask)| Mutation::Flip(i, mask)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), lengths).prop_map(|(i, v)| Mutation::Length(i, v)),
    ];
    prop::collection::vec(mutation, 1..4)
}

fn mutate(mut wire: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Flip(i, mask) if !wire.is_empty() => {
                let i = i.index(wire.len());
                wire[i] ^= mask;
            }
            Mutation::Insert(i, b) => wire.insert(i.index(wire.len() + 1), *b),
            Mutation::Delete(i) if !wire.is_empty() => {
                wire.remove(i.index(wire.len()));
            }
            Mutation::Length(i, v) if wire.len() >= 4 => {
                let i = i.index(wire.len() - 3);
                wire[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    wire
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_with_every_decoder(&input)?;
    }

    /// Garbage members behind a well-formed version-tolerant header reach every member
    /// decoder, which random bytes rarely do.
    #[test]
    fn garbage_members_behind_a_valid_header_never_panic(
        members in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
    ) {
        let members: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
        decode_with_every_decoder(&tolerant(&members))?;
    }

    #[test]
    fn requests_round_trip(request in request()) {
        let wire = request.encode();
        let decoded = WitRequest::decode(Bytes::from(wire.clone())).unwrap();
        prop_assert_eq!(decoded.encode(), wire);
        prop_assert_eq!(decoded, request);
    }

    #[test]
    fn responses_round_trip(response in response()) {
        let wire = response.encode();
        let decoded = WitResponse::decode(Bytes::from(wire.clone())).unwrap();
        prop_assert_eq!(decoded.encode(), wire);
        prop_assert_eq!(decoded, response);
    }

    #[test]
    fn messages_round_trip(message in message()) {
        let wire = message.encode();
        prop_assert_eq!(wire.len(), ENVELOPE_OVERHEAD + message.data.as_ref().map_or(0, Bytes::len));
        prop_assert_eq!(WitMessage::decode(Bytes::from(wire)).unwrap(), message);
    }

    #[test]
    fn framed_requests_and_responses_round_trip(id in any::<u128>(), request in request(), response in response()) {
        let call = WitMessage::new(Uuid::from_u128(id), MessageType::Request, Some(Bytes::from(request.encode())));
        let received = WitMessage::decode(Bytes::from(call.encode())).unwrap();
        prop_assert_eq!(WitRequest::decode(received.data.clone().unwrap()).unwrap(), request);
        let reply = received.reply(Some(Bytes::from(response.encode())));
        let answered = WitMessage::decode(Bytes::from(reply.encode())).unwrap();
        prop_assert_eq!((answered.id, answered.kind), (call.id, MessageType::Request));
        prop_assert_eq!(WitResponse::decode(answered.data.unwrap()).unwrap(), response);
    }

    #[test]
    fn handshake_payloads_round_trip(
        request_init in request_initialization(),
        response_init in response_initialization(),
        token in prop::option::of(text()),
        is_authorized in any::<bool>(),
        message in prop::option::of(text()),
    ) {
        prop_assert_eq!(WitRequestInitialization::decode(Bytes::from(request_init.encode())).unwrap(), request_init);
        prop_assert_eq!(WitResponseInitialization::decode(Bytes::from(response_init.encode())).unwrap(), response_init);
        let auth = WitRequestAuthorization { token };
        prop_assert_eq!(WitRequestAuthorization::decode(Bytes::from(auth.encode())).unwrap(), auth);
        let answer = WitResponseAuthorization { is_authorized, message };
        prop_assert_eq!(WitResponseAuthorization::decode(Bytes::from(answer.encode())).unwrap(), answer);
    }

    #[test]
    fn every_strict_prefix_of_an_encoding_is_truncated(request in request(), response in response()) {
        let wire = request.encode();
        for n in 0..wire.len() {
            let result = WitRequest::decode(Bytes::copy_from_slice(&wire[..n]));
            prop_assert!(matches!(result, Err(CodecError::Truncated { .. })), "{}/{}: {:?}", n, wire.len(), result);
        }
        let wire = response.encode();
        for n in 0..wire.len() {
            let result = WitResponse::decode(Bytes::copy_from_slice(&wire[..n]));
            prop_assert!(matches!(result, Err(CodecError::Truncated { .. })), "{}/{}: {:?}", n, wire.len(), result);
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        request in request(),
        response in response(),
        request_init in request_initialization(),
        response_init in response_initialization(),
        edits in mutations(),
    ) {
        let frame = WitMessage::new(Uuid::nil(), MessageType::Request, Some(Bytes::from(request.encode()))).encode();
        let auth = WitRequestAuthorization { token: Some("AuthToken123".into()) }.encode();
        for wire in [
            request.encode(),
            response.encode(),
            frame,
            request_init.encode(),
            response_init.encode(),
            auth,
            WitResponseAuthorization::new(true).encode(),
        ] {
            decode_with_every_decoder(&mutate(wire, &edits))?;
        }
    }
}
