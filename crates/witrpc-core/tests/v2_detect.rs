//! Telling protocol 2 from protocol 3 by the Initialization alone (notes §11 item 6),
//! with the byte vectors of the notes' table, hand-written.

use proptest::prelude::*;
use witrpc_core::bytes::Bytes;
use witrpc_core::v2::{
    DetectError, EnvelopeGuess, ProtocolVersion, detect_frame, detect_message, detect_payload, initialization_refusal,
    protocol_3_refusal_payload, texts,
};
use witrpc_core::{CodecError, MessageType, Uuid, WitMessage};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

const ID: &str = "ff 19 96 6f 86 8b 11 d0 b4 2d 00 c0 4f c9 64 ff";

/// A key JSON of exactly `n` bytes that starts like the .NET one.
fn key_json(n: usize) -> Vec<u8> {
    let head = br#"{"mod":""#;
    let tail = br#"","exp":"AQAB"}"#;
    let mut v = head.to_vec();
    v.resize(n - tail.len(), b'A');
    v.extend_from_slice(tail);
    v
}

#[test]
fn the_notes_table_plain_frames() {
    let v2 = hex(&format!("03 {ID} 03 00 00 00 06 00 00 00 01 01 00 00 00 00"));
    let v3 = hex(&format!("03 {ID} 03 00 00 00 0c 00 00 00 02 05 04 01 00 00 00 00 03 00 00 00"));
    assert_eq!((v2.len(), v3.len()), (31, 37));
    assert_eq!(detect_frame(v2.into()).unwrap().0, ProtocolVersion::V2);
    let (version, message) = detect_frame(v3.into()).unwrap();
    assert_eq!(version, ProtocolVersion::V3);
    assert_eq!(message.kind, MessageType::Initialization);
}

#[test]
fn the_notes_table_rsa_payloads_with_a_392_byte_key() {
    let key = key_json(392);
    let v2 = [&hex("01 88 01 00 00")[..], &key].concat();
    assert_eq!(v2.len(), 397);
    assert_eq!(&v2[5..13], br#"{"mod":""#);
    let v3 = [&hex("02 84 8c 01 04 88 01 00 00")[..], &key, &hex("03 00 00 00")].concat();
    assert_eq!(v3.len(), 405);
    assert_eq!(detect_payload(Some(&v2)), Ok(ProtocolVersion::V2));
    assert_eq!(detect_payload(Some(&v3)), Ok(ProtocolVersion::V3));
    // Our own encoders agree with the table.
    let ours_v2 = witrpc_core::v2::WitRequestInitialization { public_key: Some(key.clone().into()) }.encode();
    let ours_v3 = witrpc_core::WitRequestInitialization { public_key: Some(key.into()), protocol_version: 3 }.encode();
    assert_eq!((ours_v2, ours_v3), (v2, v3));
}

#[test]
fn a_plain_2x_payload_is_never_read_as_3x_even_though_a_tolerant_reader_accepts_it() {
    let v2 = hex("01 01 00 00 00 00");
    // The trap: MemoryPack's own tolerant reader takes it as {PublicKey = [], ProtocolVersion = 0};
    // ours rejects the trailing bytes, and detection never asks it anyway.
    assert!(witrpc_core::WitRequestInitialization::decode(Bytes::from(v2.clone())).is_err());
    assert_eq!(detect_payload(Some(&v2)), Ok(ProtocolVersion::V2));
}

#[test]
fn unreadable_initializations_are_typed() {
    assert_eq!(detect_payload(None), Err(DetectError::NoData));
    assert_eq!(detect_payload(Some(&[])), Err(DetectError::NoData));
    for header in [0x00, 0xfa, 0xfe, 0xff] {
        assert_eq!(detect_payload(Some(&[header, 0, 0, 0, 0])), Err(DetectError::UnknownHeader { header }));
    }
    // 3.x header, lengths that do not add up.
    assert!(matches!(
        detect_payload(Some(&hex("02 05 04 01 00 00 00 00 03 00 00"))),
        Err(DetectError::Malformed { version: ProtocolVersion::V3, .. })
    ));
    // A later protocol in the 3.x layout.
    let v4 = witrpc_core::WitRequestInitialization { public_key: Some(vec![0].into()), protocol_version: 4 }.encode();
    assert_eq!(detect_payload(Some(&v4)), Err(DetectError::UnsupportedVersion { announced: 4 }));
    // Not an Initialization.
    let request = WitMessage::new(Uuid::nil(), MessageType::Request, Some(vec![1, 1, 0, 0, 0, 0].into()));
    assert_eq!(detect_message(&request), Err(DetectError::NotInitialization { kind: MessageType::Request }));
    // A JSON envelope from a 2.x peer with WithMessageSerializer(MessageSerializerJson).
    let json = br#"{"Id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","Type":3,"Data":"AQEAAAAA"}"#;
    assert!(matches!(
        detect_frame(Bytes::from_static(json)),
        Err(DetectError::NotAnEnvelope { guess: EnvelopeGuess::Json, source: CodecError::InvalidHeader { .. } })
    ));
    assert!(matches!(
        detect_frame(Bytes::from_static(&[0x93, 0xd9, 0x24])),
        Err(DetectError::NotAnEnvelope { guess: EnvelopeGuess::MessagePack, .. })
    ));
    let err = detect_frame(Bytes::from_static(json)).unwrap_err().to_string();
    assert!(err.contains("MemoryPack"), "{err}");
}

#[test]
fn each_version_gets_a_refusal_it_can_read() {
    let request =
        WitMessage::decode(hex(&format!("03 {ID} 03 00 00 00 06 00 00 00 01 01 00 00 00 00")).into()).unwrap();
    // Protocol 2: 25 bytes, same Id, Type 3, Data null (-1).
    assert_eq!(initialization_refusal(&request).encode(), hex(&format!("03 {ID} 03 00 00 00 ff ff ff ff")));
    // Protocol 3: an ErrorMessage a 3.x client reports.
    let payload = protocol_3_refusal_payload(texts::PROTOCOL_3_REFUSED);
    let reply = witrpc_core::WitResponseInitialization::decode(payload.into()).unwrap();
    assert_eq!(reply.error_message.as_deref(), Some(texts::PROTOCOL_3_REFUSED));
    assert_eq!((reply.symmetric_key, reply.vector), (None, None));
}

proptest! {
    /// The byte-level argument, as a property: whatever key a genuine client of one
    /// version sends, it is detected as that version and never as the other.
    #[test]
    fn genuine_clients_are_never_misread(key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..600))) {
        let key = key.map(Bytes::from);
        let v2 = witrpc_core::v2::WitRequestInitialization { public_key: key.clone() }.encode();
        prop_assert_eq!(detect_payload(Some(&v2)), Ok(ProtocolVersion::V2));
        let v3 = witrpc_core::WitRequestInitialization { public_key: key, protocol_version: 3 }.encode();
        prop_assert_eq!(detect_payload(Some(&v3)), Ok(ProtocolVersion::V3));
    }
}

#[test]
fn a_client_can_tell_which_protocol_answered() {
    use witrpc_core::v2::detect_reply;
    // A 3.x server refusing a 2.x Initialization, in clear.
    let v3_refusal = witrpc_core::WitResponseInitialization::refusal(
        "Cannot read the initialization request; the server speaks protocol 3",
    )
    .encode();
    assert_eq!(detect_reply(&v3_refusal), Some(ProtocolVersion::V3));
    assert_eq!(detect_reply(&hex("02 01 00 00 00 00 01 00 00 00 00")), Some(ProtocolVersion::V2));
    assert_eq!(detect_reply(&witrpc_core::WitResponseInitialization::plain().encode()), Some(ProtocolVersion::V3));
    for bad in [&[][..], &[0x02, 0x01], &[0x04, 0, 0], &[0xff], &[0x01, 0, 0, 0, 0]] {
        assert_eq!(detect_reply(bad), None, "{bad:02x?}");
    }
}
