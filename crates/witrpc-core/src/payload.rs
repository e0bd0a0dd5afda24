//! The version-tolerant payload models carried in `WitMessage.Data`.
//!
//! Each model reads the members it knows by order, skips trailing members a newer
//! peer may add, and leaves members an older peer did not send at their defaults.

use bytes::Bytes;
use uuid::Uuid;

use crate::error::CodecError;
use crate::memorypack::{Reader, TolerantObject, TolerantWriter, Writer};

/// Protocol version spoken by this crate (`WitProtocol.VERSION`).
pub const PROTOCOL_VERSION: i32 = 3;

/// Decodes a top-level model and rejects trailing bytes.
fn decode_top<T>(
    bytes: Bytes,
    what: &'static str,
    f: impl FnOnce(&mut Reader) -> Result<Option<T>, CodecError>,
) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let v = f(&mut r)?.ok_or(CodecError::Null { what })?;
    if r.remaining() != 0 {
        return Err(CodecError::TrailingBytes { what, extra: r.remaining() });
    }
    Ok(v)
}

/// `CommunicationStatus`: the status of a [`WitResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommunicationStatus {
    /// `0`.
    Unknown,
    /// `200`: the call succeeded.
    Ok,
    /// `400`: the method was not found or its arguments were unreadable.
    BadRequest,
    /// `408`: client-local timeout.
    Timeout,
    /// `500`: the method failed; details carry its message.
    InternalServerError,
    /// `503`: client-local transport failure.
    TransportError,
    /// `561`: the request's token was rejected.
    Unauthorized,
    /// Any other value.
    Other(i32),
}

impl CommunicationStatus {
    /// The wire value.
    pub fn to_i32(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::Timeout => 408,
            Self::InternalServerError => 500,
            Self::TransportError => 503,
            Self::Unauthorized => 561,
            Self::Other(v) => v,
        }
    }

    /// Maps a wire value.
    pub fn from_i32(v: i32) -> Self {
        match v {
            0 => Self::Unknown,
            200 => Self::Ok,
            400 => Self::BadRequest,
            408 => Self::Timeout,
            500 => Self::InternalServerError,
            503 => Self::TransportError,
            561 => Self::Unauthorized,
            v => Self::Other(v),
        }
    }
}

/// A .NET type given by name (`ParameterType`): `Type.FullName` + assembly simple name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterType {
    /// `Type.FullName`, e.g. `System.Int32`.
    pub type_name: Option<String>,
    /// The simple assembly name, e.g. `System.Private.CoreLib`.
    pub assembly: Option<String>,
}

impl ParameterType {
    fn write(&self, w: &mut Writer) {
        let mut t = TolerantWriter::default();
        t.body.string(self.type_name.as_deref());
        t.end_member();
        t.body.string(self.assembly.as_deref());
        t.end_member();
        t.finish_into(w);
    }

    fn read(r: &mut Reader) -> Result<Option<Self>, CodecError> {
        let Some(mut o) = TolerantObject::read(r, "ParameterType", 2)? else { return Ok(None) };
        Ok(Some(Self {
            type_name: o.member(0, "ParameterType.Type", None, |r| r.string("ParameterType.Type"))?,
            assembly: o.member(1, "ParameterType.Assembly", None, |r| r.string("ParameterType.Assembly"))?,
        }))
    }
}

fn write_strings(w: &mut Writer, v: &[String]) {
    w.i32(v.len() as i32);
    for s in v {
        w.string(Some(s));
    }
}

fn read_strings(r: &mut Reader, what: &'static str) -> Result<Vec<String>, CodecError> {
    let Some(n) = r.array_len(what, 4)? else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.string(what)?.unwrap_or_default());
    }
    Ok(out)
}

fn write_types(w: &mut Writer, v: &[ParameterType]) {
    w.i32(v.len() as i32);
    for t in v {
        t.write(w);
    }
}

fn read_types(r: &mut Reader, what: &'static str) -> Result<Vec<ParameterType>, CodecError> {
    let Some(n) = r.array_len(what, 1)? else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ParameterType::read(r)?.unwrap_or_default());
    }
    Ok(out)
}

/// A method call (client → server, Type 1) or an event (server → client, Type 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitRequest {
    /// The access token, stamped on every request by the client; `""` for events.
    pub token: String,
    /// The method name, or the event name for a callback.
    pub method_name: String,
    /// One blob per argument, encoded by the parameter serializer; empty = null.
    pub parameters: Vec<Bytes>,
    /// `"Full.Type.Name, Assembly"` per argument (strong-match mode).
    pub parameter_types: Vec<String>,
    /// Type + assembly per argument (the form events use).
    pub parameter_types_by_name: Vec<ParameterType>,
    /// Generic arguments of a generic method.
    pub generic_arguments: Vec<String>,
    /// Generic arguments by name.
    pub generic_arguments_by_name: Vec<ParameterType>,
    /// One id per logical call, stable across retries; nil disables de-duplication.
    pub invocation_id: Uuid,
    /// FNV-1a id of the contract (0 = not declared).
    pub contract_id: i64,
    /// FNV-1a id of the method (0 = resolve by name).
    pub method_id: i64,
}

impl WitRequest {
    /// Encodes the request as MemoryPack (10 members).
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.buf.reserve(64 + self.parameters.iter().map(|p| p.len() + 4).sum::<usize>());
        t.body.string(Some(&self.token));
        t.end_member();
        t.body.string(Some(&self.method_name));
        t.end_member();
        t.body.i32(self.parameters.len() as i32);
        for p in &self.parameters {
            t.body.byte_array(Some(p));
        }
        t.end_member();
        write_strings(&mut t.body, &self.parameter_types);
        t.end_member();
        write_types(&mut t.body, &self.parameter_types_by_name);
        t.end_member();
        write_strings(&mut t.body, &self.generic_arguments);
        t.end_member();
        write_types(&mut t.body, &self.generic_arguments_by_name);
        t.end_member();
        t.body.guid(&self.invocation_id);
        t.end_member();
        t.body.i64(self.contract_id);
        t.end_member();
        t.body.i64(self.method_id);
        t.end_member();
        let mut w = Writer::with_capacity(t.body.buf.len() + 32);
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes a request; parameter blobs are sliced from `bytes`.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequest", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequest", 10)? else { return Ok(None) };
            Ok(Some(Self {
                token: o.member(0, "WitRequest.Token", None, |r| r.string("WitRequest.Token"))?.unwrap_or_default(),
                method_name: o
                    .member(1, "WitRequest.MethodName", None, |r| r.string("WitRequest.MethodName"))?
                    .unwrap_or_default(),
                parameters: o.member(2, "WitRequest.Parameters", Vec::new(), |r| {
                    let Some(n) = r.array_len("WitRequest.Parameters", 4)? else { return Ok(Vec::new()) };
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(r.byte_array("WitRequest.Parameters")?.unwrap_or_default());
                    }
                    Ok(v)
                })?,
                parameter_types: o.member(3, "WitRequest.ParameterTypes", Vec::new(), |r| {
                    read_strings(r, "WitRequest.ParameterTypes")
                })?,
                parameter_types_by_name: o.member(4, "WitRequest.ParameterTypesByName", Vec::new(), |r| {
                    read_types(r, "WitRequest.ParameterTypesByName")
                })?,
                generic_arguments: o.member(5, "WitRequest.GenericArguments", Vec::new(), |r| {
                    read_strings(r, "WitRequest.GenericArguments")
                })?,
                generic_arguments_by_name: o.member(6, "WitRequest.GenericArgumentsByName", Vec::new(), |r| {
                    read_types(r, "WitRequest.GenericArgumentsByName")
                })?,
                invocation_id: o
                    .member(7, "WitRequest.InvocationId", Uuid::nil(), |r| r.guid("WitRequest.InvocationId"))?,
                contract_id: o.member(8, "WitRequest.ContractId", 0, |r| r.i64("WitRequest.ContractId"))?,
                method_id: o.member(9, "WitRequest.MethodId", 0, |r| r.i64("WitRequest.MethodId"))?,
            }))
        })
    }
}

/// The answer to a [`WitRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitResponse {
    /// Outcome.
    pub status: CommunicationStatus,
    /// The serialized return value; `None` for void or null.
    pub data: Option<Bytes>,
    /// Short error text (`"Failed to process request"`, ...).
    pub error_message: Option<String>,
    /// Details, typically the failing method's error message.
    pub error_details: Option<String>,
}

impl WitResponse {
    /// A `200` response carrying `data`.
    pub fn ok(data: Option<Bytes>) -> Self {
        Self { status: CommunicationStatus::Ok, data, error_message: None, error_details: None }
    }

    /// An error response.
    pub fn error(status: CommunicationStatus, message: impl Into<String>, details: Option<String>) -> Self {
        Self { status, data: None, error_message: Some(message.into()), error_details: details }
    }

    /// Encodes the response (4 members).
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.buf.reserve(16 + self.data.as_ref().map_or(0, Bytes::len));
        t.body.i32(self.status.to_i32());
        t.end_member();
        t.body.byte_array(self.data.as_deref());
        t.end_member();
        t.body.string(self.error_message.as_deref());
        t.end_member();
        t.body.string(self.error_details.as_deref());
        t.end_member();
        let mut w = Writer::with_capacity(t.body.buf.len() + 12);
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes a response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponse", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitResponse", 4)? else { return Ok(None) };
            Ok(Some(Self {
                status: CommunicationStatus::from_i32(
                    o.member(0, "WitResponse.Status", 0, |r| r.i32("WitResponse.Status"))?,
                ),
                data: o.member(1, "WitResponse.Data", None, |r| r.byte_array("WitResponse.Data"))?,
                error_message: o
                    .member(2, "WitResponse.ErrorMessage", None, |r| r.string("WitResponse.ErrorMessage"))?,
                error_details: o
                    .member(3, "WitResponse.ErrorDetails", None, |r| r.string("WitResponse.ErrorDetails"))?,
            }))
        })
    }
}

/// Client → server, Type 3: the client's public key (or `[0]`) and protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitRequestInitialization {
    /// RSA public key JSON in encrypted mode; `[0x00]` in plain mode.
    pub public_key: Option<Bytes>,
    /// The client's protocol version; 0 when an older peer did not send it.
    pub protocol_version: i32,
}

impl WitRequestInitialization {
    /// The plain-mode request a client without encryption sends.
    pub fn plain() -> Self {
        Self { public_key: Some(Bytes::from_static(&[0])), protocol_version: PROTOCOL_VERSION }
    }

    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.byte_array(self.public_key.as_deref());
        t.end_member();
        t.body.i32(self.protocol_version);
        t.end_member();
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input (a 2.x client's payload fails here).
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequestInitialization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequestInitialization", 2)? else { return Ok(None) };
            Ok(Some(Self {
                public_key: o.member(0, "WitRequestInitialization.PublicKey", None, |r| {
                    r.byte_array("WitRequestInitialization.PublicKey")
                })?,
                protocol_version: o.member(1, "WitRequestInitialization.ProtocolVersion", 0, |r| {
                    r.i32("WitRequestInitialization.ProtocolVersion")
                })?,
            }))
        })
    }
}

/// Server → client, Type 3: key material (or `[0]`), version, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitResponseInitialization {
    /// 32-byte AEAD master key; `[0x00]` in plain mode; `None` on refusal.
    pub symmetric_key: Option<Bytes>,
    /// 16-byte HKDF salt; `[0x00]` in plain mode; `None` on refusal.
    pub vector: Option<Bytes>,
    /// The server's protocol version.
    pub protocol_version: i32,
    /// Set only when the server refuses the handshake.
    pub error_message: Option<String>,
}

impl WitResponseInitialization {
    /// The plain-mode acceptance.
    pub fn plain() -> Self {
        Self {
            symmetric_key: Some(Bytes::from_static(&[0])),
            vector: Some(Bytes::from_static(&[0])),
            protocol_version: PROTOCOL_VERSION,
            error_message: None,
        }
    }

    /// A refusal carrying `message`.
    pub fn refusal(message: impl Into<String>) -> Self {
        Self {
            symmetric_key: None,
            vector: None,
            protocol_version: PROTOCOL_VERSION,
            error_message: Some(message.into()),
        }
    }

    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.byte_array(self.symmetric_key.as_deref());
        t.end_member();
        t.body.byte_array(self.vector.as_deref());
        t.end_member();
        t.body.i32(self.protocol_version);
        t.end_member();
        t.body.string(self.error_message.as_deref());
        t.end_member();
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponseInitialization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitResponseInitialization", 4)? else { return Ok(None) };
            Ok(Some(Self {
                symmetric_key: o.member(0, "WitResponseInitialization.SymmetricKey", None, |r| {
                    r.byte_array("WitResponseInitialization.SymmetricKey")
                })?,
                vector: o.member(1, "WitResponseInitialization.Vector", None, |r| {
                    r.byte_array("WitResponseInitialization.Vector")
                })?,
                protocol_version: o.member(2, "WitResponseInitialization.ProtocolVersion", 0, |r| {
                    r.i32("WitResponseInitialization.ProtocolVersion")
                })?,
                error_message: o.member(3, "WitResponseInitialization.ErrorMessage", None, |r| {
                    r.string("WitResponseInitialization.ErrorMessage")
                })?,
            }))
        })
    }
}

/// Client → server, Type 4: the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitRequestAuthorization {
    /// The token; `""` when the client has none.
    pub token: Option<String>,
}

impl WitRequestAuthorization {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.string(self.token.as_deref());
        t.end_member();
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequestAuthorization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequestAuthorization", 1)? else { return Ok(None) };
            Ok(Some(Self {
                token: o
                    .member(0, "WitRequestAuthorization.Token", None, |r| r.string("WitRequestAuthorization.Token"))?,
            }))
        })
    }
}

/// Server → client, Type 4: whether the token was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitResponseAuthorization {
    /// `true` when the connection may call methods.
    pub is_authorized: bool,
    /// `"Authorized"` or `"Forbidden"`.
    pub message: Option<String>,
}

/// Message text of an accepted authorization.
pub const AUTHORIZED: &str = "Authorized";
/// Message text of a refused authorization.
pub const FORBIDDEN: &str = "Forbidden";

impl WitResponseAuthorization {
    /// The answer for `authorized`, with the .NET message text.
    pub fn new(authorized: bool) -> Self {
        Self { is_authorized: authorized, message: Some(if authorized { AUTHORIZED } else { FORBIDDEN }.to_owned()) }
    }

    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.bool(self.is_authorized);
        t.end_member();
        t.body.string(self.message.as_deref());
        t.end_member();
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponseAuthorization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitResponseAuthorization", 2)? else { return Ok(None) };
            Ok(Some(Self {
                is_authorized: o.member(0, "WitResponseAuthorization.IsAuthorized", false, |r| {
                    r.bool("WitResponseAuthorization.IsAuthorized")
                })?,
                message: o.member(1, "WitResponseAuthorization.Message", None, |r| {
                    r.string("WitResponseAuthorization.Message")
                })?,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utf8(s: &str) -> Vec<u8> {
        let mut v = (!(s.len() as i32)).to_le_bytes().to_vec();
        v.extend_from_slice(&(s.encode_utf16().count() as i32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn blob(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as i32).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn plain_initialization_request_matches_the_notes() {
        let bytes = [0x02, 0x05, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00];
        assert_eq!(WitRequestInitialization::plain().encode(), bytes);
        let back = WitRequestInitialization::decode(Bytes::copy_from_slice(&bytes)).unwrap();
        assert_eq!(back, WitRequestInitialization::plain());
    }

    #[test]
    fn encrypted_initialization_response_has_the_documented_layout() {
        let r = WitResponseInitialization {
            symmetric_key: Some(Bytes::from(vec![0xAB; 32])),
            vector: Some(Bytes::from(vec![0xCD; 16])),
            protocol_version: 3,
            error_message: None,
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), 69);
        assert_eq!(&bytes[..5], &[0x04, 0x24, 0x14, 0x04, 0x04]);
        assert_eq!(&bytes[5..9], &[0x20, 0, 0, 0]);
        assert_eq!(&bytes[41..45], &[0x10, 0, 0, 0]);
        assert_eq!(&bytes[61..], &[3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(WitResponseInitialization::decode(bytes.into()).unwrap(), r);
    }

    /// `Add(2, 3)` as a .NET 3.x client sends it, built by hand from the MemoryPack rules.
    #[test]
    fn a_dotnet_add_request_decodes_and_reencodes_byte_for_byte() {
        let invocation = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        let members: Vec<Vec<u8>> = vec![
            utf8("AuthToken123"),
            utf8("Add"),
            [2i32.to_le_bytes().to_vec(), blob(b"2"), blob(b"3")].concat(),
            [
                2i32.to_le_bytes().to_vec(),
                utf8("System.Int32, System.Private.CoreLib"),
                utf8("System.Int32, System.Private.CoreLib"),
            ]
            .concat(),
            0i32.to_le_bytes().to_vec(),
            0i32.to_le_bytes().to_vec(),
            0i32.to_le_bytes().to_vec(),
            vec![0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
            2_863_546_532_410_206_118i64.to_le_bytes().to_vec(),
            (-6_724_387_377_990_606_637i64).to_le_bytes().to_vec(),
        ];
        let mut wire = vec![0x0A];
        wire.extend(members.iter().map(|m| m.len() as u8));
        for m in &members {
            wire.extend_from_slice(m);
        }
        let request = WitRequest::decode(Bytes::from(wire.clone())).unwrap();
        assert_eq!(request.token, "AuthToken123");
        assert_eq!(request.method_name, "Add");
        assert_eq!(request.parameters, vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")]);
        assert_eq!(request.parameter_types, vec!["System.Int32, System.Private.CoreLib"; 2]);
        assert_eq!(request.invocation_id, invocation);
        assert_eq!(request.contract_id, crate::ids::contract_id("MyCompany.Contracts.ICalculator"));
        assert_eq!(request.method_id, -6_724_387_377_990_606_637);
        assert_eq!(request.encode(), wire);
    }

    #[test]
    fn responses_and_authorization_payloads_match_memorypack() {
        let ok = WitResponse::ok(Some(Bytes::from_static(b"5")));
        let expected = [&[0x04, 4, 5, 4, 4][..], &200i32.to_le_bytes(), &blob(b"5"), &[0xFF; 4], &[0xFF; 4]].concat();
        assert_eq!(ok.encode(), expected);
        let err = WitResponse::error(
            CommunicationStatus::InternalServerError,
            "Failed to process request",
            Some("boom".into()),
        );
        assert_eq!(WitResponse::decode(err.encode().into()).unwrap(), err);

        let auth = WitRequestAuthorization { token: Some("AuthToken123".into()) };
        let token = utf8("AuthToken123");
        assert_eq!(auth.encode(), [&[0x01, token.len() as u8][..], &token].concat());
        let yes = WitResponseAuthorization::new(true);
        let msg = utf8("Authorized");
        assert_eq!(yes.encode(), [&[0x02, 1, msg.len() as u8, 1][..], &msg].concat());
    }

    #[test]
    fn newer_peers_extra_members_are_skipped_and_missing_ones_defaulted() {
        // A WitResponse with a fifth member a later 3.x might add.
        let mut five = vec![0x05, 4, 4, 4, 4, 2];
        five.extend_from_slice(&200i32.to_le_bytes());
        five.extend_from_slice(&[0xFF; 4]);
        five.extend_from_slice(&[0xFF; 4]);
        five.extend_from_slice(&[0xFF; 4]);
        five.extend_from_slice(&[0xAA, 0xBB]);
        assert_eq!(WitResponse::decode(five.into()).unwrap(), WitResponse::ok(None));
        // An older peer that sends only Status.
        let mut one = vec![0x01, 4];
        one.extend_from_slice(&400i32.to_le_bytes());
        let r = WitResponse::decode(one.into()).unwrap();
        assert_eq!((r.status, r.data, r.error_message), (CommunicationStatus::BadRequest, None, None));
    }

    #[test]
    fn every_varint_code_is_accepted_and_long_lengths_are_written_as_dotnet_does() {
        // Member length 4 (the Status int) in each VarInt encoding.
        for prefix in [
            vec![0x04],
            vec![0x87, 4],
            vec![0x86, 4],
            vec![0x85, 4, 0],
            vec![0x84, 4, 0],
            vec![0x83, 4, 0, 0, 0],
            vec![0x82, 4, 0, 0, 0],
            vec![0x81, 4, 0, 0, 0, 0, 0, 0, 0],
            vec![0x80, 4, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let mut bytes = vec![0x01];
            bytes.extend_from_slice(&prefix);
            bytes.extend_from_slice(&200i32.to_le_bytes());
            assert_eq!(WitResponse::decode(bytes.into()).unwrap().status, CommunicationStatus::Ok, "{prefix:x?}");
        }
        let r = WitResponse::ok(Some(Bytes::from(vec![1; 200])));
        assert_eq!(&r.encode()[1..5], &[0x04, 0x84, 204, 0]);
        let r = WitResponse::ok(Some(Bytes::from(vec![1; 40_000])));
        assert_eq!(&r.encode()[1..7], &[0x04, 0x82, 0x44, 0x9c, 0, 0]);
    }

    #[test]
    fn strings_in_utf16_form_and_without_utf16_length_are_read() {
        let mut utf16 = vec![0x01, 10];
        utf16.extend_from_slice(&3i32.to_le_bytes());
        utf16.extend("Hé!".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(WitRequestAuthorization::decode(utf16.into()).unwrap().token.as_deref(), Some("Hé!"));
        let mut no_len = vec![0x01, 11];
        no_len.extend_from_slice(&(!3i32).to_le_bytes());
        no_len.extend_from_slice(&0i32.to_le_bytes());
        no_len.extend_from_slice(b"abc");
        assert_eq!(WitRequestAuthorization::decode(no_len.into()).unwrap().token.as_deref(), Some("abc"));
    }

    #[test]
    fn hostile_inputs_get_typed_errors() {
        // Parameters claims 2^31-1 entries in a 10-byte member: rejected before allocating.
        let mut huge = vec![0x03, 4, 4, 4];
        huge.extend_from_slice(&0i32.to_le_bytes());
        huge.extend_from_slice(&0i32.to_le_bytes());
        huge.extend_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(WitRequest::decode(huge.into()), Err(CodecError::Truncated { .. })));
        // A member length past the end of the input.
        assert!(matches!(WitResponse::decode(Bytes::from_static(&[0x01, 0x7f, 1])), Err(CodecError::Truncated { .. })));
        // Negative byte-array length.
        let mut neg = vec![0x02, 4, 4];
        neg.extend_from_slice(&200i32.to_le_bytes());
        neg.extend_from_slice(&(-2i32).to_le_bytes());
        assert!(matches!(WitResponse::decode(neg.into()), Err(CodecError::InvalidLength { length: -2, .. })));
        // Invalid UTF-8 and a wrong UTF-16 length.
        let mut bad = vec![0x01, 10];
        bad.extend_from_slice(&(!2i32).to_le_bytes());
        bad.extend_from_slice(&2i32.to_le_bytes());
        bad.extend_from_slice(&[0xC3, 0x28]);
        assert!(matches!(WitRequestAuthorization::decode(bad.into()), Err(CodecError::InvalidUtf8 { .. })));
        let mut wrong = vec![0x01, 11];
        wrong.extend_from_slice(&(!3i32).to_le_bytes());
        wrong.extend_from_slice(&9i32.to_le_bytes());
        wrong.extend_from_slice(b"abc");
        assert!(matches!(WitRequestAuthorization::decode(wrong.into()), Err(CodecError::Utf16LengthMismatch { .. })));
        assert!(matches!(WitRequest::decode(Bytes::from_static(&[0xFF])), Err(CodecError::Null { .. })));
        assert!(matches!(WitResponse::decode(Bytes::new()), Err(CodecError::Truncated { .. })));
    }

    #[test]
    fn every_truncation_of_a_request_is_an_error() {
        let request = WitRequest {
            token: "t".into(),
            method_name: "Echo".into(),
            parameters: vec![Bytes::from_static(b"\"x\"")],
            parameter_types_by_name: vec![ParameterType { type_name: Some("System.String".into()), assembly: None }],
            invocation_id: Uuid::from_u128(7),
            contract_id: 1,
            method_id: 2,
            ..WitRequest::default()
        };
        let bytes = request.encode();
        for n in 0..bytes.len() {
            assert!(WitRequest::decode(Bytes::copy_from_slice(&bytes[..n])).is_err(), "prefix {n} decoded");
        }
        assert_eq!(WitRequest::decode(bytes.into()).unwrap(), request);
    }

    fn bytes_strategy() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn request_strategy() -> impl Strategy<Value = WitRequest> {
        (
            ".{0,20}",
            ".{0,20}",
            proptest::collection::vec(bytes_strategy(), 0..4),
            proptest::collection::vec(".{0,12}", 0..3),
            proptest::collection::vec((proptest::option::of(".{0,12}"), proptest::option::of(".{0,12}")), 0..3),
            any::<u128>(),
            any::<i64>(),
            any::<i64>(),
        )
            .prop_map(|(token, method_name, parameters, types, by_name, inv, contract_id, method_id)| {
                WitRequest {
                    token,
                    method_name,
                    parameters,
                    parameter_types: types.clone(),
                    parameter_types_by_name: by_name
                        .into_iter()
                        .map(|(type_name, assembly)| ParameterType { type_name, assembly })
                        .collect(),
                    generic_arguments: types,
                    generic_arguments_by_name: Vec::new(),
                    invocation_id: Uuid::from_u128(inv),
                    contract_id,
                    method_id,
                }
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let b = Bytes::from(bytes);
            let _ = crate::WitMessage::decode(b.clone());
            let _ = WitRequest::decode(b.clone());
            let _ = WitResponse::decode(b.clone());
            let _ = WitRequestInitialization::decode(b.clone());
            let _ = WitResponseInitialization::decode(b.clone());
            let _ = WitRequestAuthorization::decode(b.clone());
            let _ = WitResponseAuthorization::decode(b);
        }

        #[test]
        fn requests_round_trip(request in request_strategy()) {
            prop_assert_eq!(WitRequest::decode(request.encode().into()).unwrap(), request);
        }

        #[test]
        fn responses_round_trip(status in any::<i32>(), data in proptest::option::of(bytes_strategy()),
                                message in proptest::option::of(".{0,30}"), details in proptest::option::of(".{0,30}")) {
            let r = WitResponse { status: CommunicationStatus::from_i32(status), data, error_message: message, error_details: details };
            prop_assert_eq!(WitResponse::decode(r.encode().into()).unwrap(), r);
        }

        #[test]
        fn mutated_requests_never_panic(request in request_strategy(), at in any::<usize>(), byte in any::<u8>(), op in 0u8..3) {
            let mut bytes = request.encode();
            let i = at % (bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] ^= byte | 1,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
            let _ = WitRequest::decode(bytes.into());
        }
    }
}
