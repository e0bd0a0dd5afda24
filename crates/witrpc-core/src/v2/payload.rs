//! Protocol-2 payload models and their MemoryPack *Object* layout.
//!
//! WitRPC 2.x marks every payload `[MemoryPackable]` with the default (non-tolerant)
//! layout: one header byte holding the member count, then the members back to back in
//! declaration order, with no per-member lengths (notes §2.4). The envelope
//! ([`WitMessage`](crate::WitMessage)) is byte-identical to protocol 3 and is reused.
//!
//! Reading follows MemoryPack 1.21.4: a header larger than the model's member count is
//! an error, a smaller one reads that many members and leaves the rest at their
//! defaults, `0xFF` is a null object. Null collections (`-1` counts) read as empty, as
//! the notes advise (§9 item 27). Unlike .NET we reject bytes after a complete payload:
//! no .NET peer writes them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::memorypack::{NULL_OBJECT, Reader, Writer};
use crate::payload::{AUTHORIZED, CommunicationStatus, FORBIDDEN, ParameterType};
use crate::v2::{json, texts};

/// Reads an Object-layout header: `None` for a null object, else the member count
/// (at most `members`).
fn object_header(r: &mut Reader, what: &'static str, members: u8) -> Result<Option<u8>, CodecError> {
    match r.u8(what)? {
        NULL_OBJECT => Ok(None),
        n if n > members => Err(CodecError::InvalidHeader { what, header: n }),
        n => Ok(Some(n)),
    }
}

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

/// Reads member `i` when the header says it is present, else yields `default`.
fn member<T>(
    present: u8,
    i: u8,
    default: T,
    r: &mut Reader,
    f: impl FnOnce(&mut Reader) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    if i < present { f(r) } else { Ok(default) }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn write_parameter_type(w: &mut Writer, t: &ParameterType) {
    w.u8(2);
    w.string(t.type_name.as_deref());
    w.string(t.assembly.as_deref());
}

fn read_parameter_type(r: &mut Reader) -> Result<Option<ParameterType>, CodecError> {
    let Some(n) = object_header(r, "ParameterType", 2)? else { return Ok(None) };
    Ok(Some(ParameterType {
        type_name: member(n, 0, None, r, |r| r.string("ParameterType.Type"))?,
        assembly: member(n, 1, None, r, |r| r.string("ParameterType.Assembly"))?,
    }))
}

fn write_strings(w: &mut Writer, v: &[String]) {
    w.i32(len_i32(v.len()));
    for s in v {
        w.string(Some(s));
    }
}

/// A `System.Type[]`: each element a type-name string; null elements read as `""`.
fn read_strings(r: &mut Reader, what: &'static str) -> Result<Vec<String>, CodecError> {
    let Some(n) = r.array_len(what, 4)? else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.string(what)?.unwrap_or_default());
    }
    Ok(out)
}

fn write_types(w: &mut Writer, v: &[ParameterType]) {
    w.i32(len_i32(v.len()));
    for t in v {
        write_parameter_type(w, t);
    }
}

/// A `ParameterType[]`; a null element (`FF`) reads as a type with no name, which
/// resolves to nothing (as `Type.GetType(null)` would).
fn read_types(r: &mut Reader, what: &'static str) -> Result<Vec<ParameterType>, CodecError> {
    let Some(n) = r.array_len(what, 1)? else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(read_parameter_type(r)?.unwrap_or_default());
    }
    Ok(out)
}

/// Encodes one protocol-2 `ParameterType` (`02 | Type | Assembly`).
///
/// ```
/// use witrpc_core::{ParameterType, v2};
/// let t = ParameterType { type_name: Some("A".into()), assembly: None };
/// assert_eq!(v2::encode_parameter_type(&t), [2, 0xfe, 0xff, 0xff, 0xff, 1, 0, 0, 0, b'A', 0xff, 0xff, 0xff, 0xff]);
/// ```
pub fn encode_parameter_type(t: &ParameterType) -> Vec<u8> {
    let mut w = Writer::with_capacity(16);
    write_parameter_type(&mut w, t);
    w.buf
}

/// Decodes one protocol-2 `ParameterType`.
///
/// # Errors
/// [`CodecError`] on malformed or null input, or trailing bytes.
pub fn decode_parameter_type(bytes: Bytes) -> Result<ParameterType, CodecError> {
    decode_top(bytes, "ParameterType", read_parameter_type)
}

/// Protocol-2 `WitRequest`: a method call (Type 1) or an event (Type 2); 7 members.
///
/// Its `serde` impls are the JSON form (see [`JsonMessage`](crate::v2::JsonMessage)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitRequest {
    /// The access token, refreshed by the .NET client on every call; `""` for events.
    #[serde(deserialize_with = "json::null_default")]
    pub token: String,
    /// Method name (matched case-insensitively) or event name (matched exactly).
    #[serde(deserialize_with = "json::null_default")]
    pub method_name: String,
    /// One blob per argument, each encoded alone by the parameters serializer;
    /// an empty blob is a null argument.
    #[serde(with = "json::bytes_list")]
    pub parameters: Vec<Bytes>,
    /// `System.Type` per argument as a string, e.g. `System.Int32, System.Private.CoreLib`
    /// (filled by .NET clients in their default `strongAssemblyMatch` mode).
    #[serde(deserialize_with = "json::strings::deserialize")]
    pub parameter_types: Vec<String>,
    /// `FullName` + simple assembly name per argument (`strongAssemblyMatch = false`).
    #[serde(with = "json::types")]
    pub parameter_types_by_name: Vec<ParameterType>,
    /// Generic arguments of a generic method, as type-name strings.
    #[serde(deserialize_with = "json::strings::deserialize")]
    pub generic_arguments: Vec<String>,
    /// Generic arguments by name.
    #[serde(with = "json::types")]
    pub generic_arguments_by_name: Vec<ParameterType>,
}

impl WitRequest {
    /// Encodes the request (header `07`).
    ///
    /// ```
    /// let r = witrpc_core::v2::WitRequest { method_name: "Ping".into(), ..Default::default() };
    /// let bytes = r.encode();
    /// assert_eq!(bytes[0], 7);
    /// assert_eq!(witrpc_core::v2::WitRequest::decode(bytes.into()).unwrap(), r);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.parameters.iter().map(|p| p.len() + 4).sum::<usize>());
        w.u8(7);
        w.string(Some(&self.token));
        w.string(Some(&self.method_name));
        w.i32(len_i32(self.parameters.len()));
        for p in &self.parameters {
            w.byte_array(Some(p));
        }
        write_strings(&mut w, &self.parameter_types);
        write_types(&mut w, &self.parameter_types_by_name);
        write_strings(&mut w, &self.generic_arguments);
        write_types(&mut w, &self.generic_arguments_by_name);
        w.buf
    }

    /// Decodes a request; parameter blobs are sliced from `bytes`, not copied.
    ///
    /// Null strings read as `""` and null arrays as empty.
    ///
    /// # Errors
    /// [`CodecError`] on malformed, truncated or null input. The server answers any of
    /// these with [`WitResponse::request_empty`].
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequest", |r| {
            let Some(n) = object_header(r, "WitRequest", 7)? else { return Ok(None) };
            let token = member(n, 0, None, r, |r| r.string("WitRequest.Token"))?.unwrap_or_default();
            let method_name = member(n, 1, None, r, |r| r.string("WitRequest.MethodName"))?.unwrap_or_default();
            let parameters = member(n, 2, Vec::new(), r, |r| {
                let Some(count) = r.array_len("WitRequest.Parameters", 4)? else { return Ok(Vec::new()) };
                let mut v = Vec::with_capacity(count);
                for _ in 0..count {
                    v.push(r.byte_array("WitRequest.Parameters")?.unwrap_or_default());
                }
                Ok(v)
            })?;
            Ok(Some(Self {
                token,
                method_name,
                parameters,
                parameter_types: member(n, 3, Vec::new(), r, |r| read_strings(r, "WitRequest.ParameterTypes"))?,
                parameter_types_by_name: member(n, 4, Vec::new(), r, |r| {
                    read_types(r, "WitRequest.ParameterTypesByName")
                })?,
                generic_arguments: member(n, 5, Vec::new(), r, |r| read_strings(r, "WitRequest.GenericArguments"))?,
                generic_arguments_by_name: member(n, 6, Vec::new(), r, |r| {
                    read_types(r, "WitRequest.GenericArgumentsByName")
                })?,
            }))
        })
    }
}

/// A protocol-2 request seen as a protocol-3 one (no invocation id, no contract or
/// method id), so dispatch code written for protocol 3 can take it.
impl From<WitRequest> for crate::WitRequest {
    fn from(r: WitRequest) -> Self {
        Self {
            token: r.token,
            method_name: r.method_name,
            parameters: r.parameters,
            parameter_types: r.parameter_types,
            parameter_types_by_name: r.parameter_types_by_name,
            generic_arguments: r.generic_arguments,
            generic_arguments_by_name: r.generic_arguments_by_name,
            ..Self::default()
        }
    }
}

/// The first seven members of a protocol-3 request (its ids have no protocol-2 form).
impl From<crate::WitRequest> for WitRequest {
    fn from(r: crate::WitRequest) -> Self {
        Self {
            token: r.token,
            method_name: r.method_name,
            parameters: r.parameters,
            parameter_types: r.parameter_types,
            parameter_types_by_name: r.parameter_types_by_name,
            generic_arguments: r.generic_arguments,
            generic_arguments_by_name: r.generic_arguments_by_name,
        }
    }
}

/// Protocol-2 `WitResponse` (header `04`): the answer to a [`WitRequest`].
///
/// Statuses a 2.x server writes: 200, 400, 500, 561. A .NET 2.x client treats every
/// status other than 200 as a failure and throws `WitExceptionFault` with `Status`,
/// `ErrorMessage` and an inner exception of `ErrorDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitResponse {
    /// Outcome.
    #[serde(with = "json::status")]
    pub status: CommunicationStatus,
    /// The return value encoded by the parameters serializer; `None` for void or null.
    #[serde(with = "json::bytes_opt")]
    pub data: Option<Bytes>,
    /// Short error text (one of the constants in [`texts`](crate::v2::texts)).
    pub error_message: Option<String>,
    /// Details, e.g. the failing method's error message.
    pub error_details: Option<String>,
}

/// Status `Unknown` (0) and no members: what .NET reads from an empty object.
impl Default for WitResponse {
    fn default() -> Self {
        Self { status: CommunicationStatus::Unknown, data: None, error_message: None, error_details: None }
    }
}

impl WitResponse {
    /// `200` carrying `data`.
    pub fn ok(data: Option<Bytes>) -> Self {
        Self { status: CommunicationStatus::Ok, data, error_message: None, error_details: None }
    }

    /// An error response.
    pub fn error(status: CommunicationStatus, message: impl Into<String>, details: Option<String>) -> Self {
        Self { status, data: None, error_message: Some(message.into()), error_details: details }
    }

    /// `400 "Request is empty"`: the request's `Data` was null, unreadable or did not
    /// decrypt.
    pub fn request_empty() -> Self {
        Self::error(CommunicationStatus::BadRequest, texts::REQUEST_IS_EMPTY, None)
    }

    /// `561 "Tokes is not valid"` (sic): the request's token was rejected.
    pub fn token_not_valid() -> Self {
        Self::error(CommunicationStatus::Unauthorized, texts::TOKEN_IS_NOT_VALID, None)
    }

    /// `400 "Method not found on service, method name: X"`, or the composite
    /// processor's "on any registered service" text when `several_services`.
    pub fn method_not_found(method_name: &str, several_services: bool) -> Self {
        let prefix =
            if several_services { texts::METHOD_NOT_FOUND_ON_ANY_SERVICE } else { texts::METHOD_NOT_FOUND_ON_SERVICE };
        Self::error(CommunicationStatus::BadRequest, format!("{prefix}{method_name}"), None)
    }

    /// `500 "Failed to process request"` with `details` (the method's error text).
    pub fn failed(details: impl Into<String>) -> Self {
        Self::error(CommunicationStatus::InternalServerError, texts::FAILED_TO_PROCESS_REQUEST, Some(details.into()))
    }

    /// Encodes the response.
    ///
    /// ```
    /// let bytes = witrpc_core::v2::WitResponse::ok(None).encode();
    /// assert_eq!(bytes, [4, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(24 + self.data.as_ref().map_or(0, Bytes::len));
        w.u8(4);
        w.i32(self.status.to_i32());
        w.byte_array(self.data.as_deref());
        w.string(self.error_message.as_deref());
        w.string(self.error_details.as_deref());
        w.buf
    }

    /// Decodes a response; `Data` is sliced from `bytes`.
    ///
    /// # Errors
    /// [`CodecError`] on malformed, truncated or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponse", |r| {
            let Some(n) = object_header(r, "WitResponse", 4)? else { return Ok(None) };
            Ok(Some(Self {
                status: CommunicationStatus::from_i32(member(n, 0, 0, r, |r| r.i32("WitResponse.Status"))?),
                data: member(n, 1, None, r, |r| r.byte_array("WitResponse.Data"))?,
                error_message: member(n, 2, None, r, |r| r.string("WitResponse.ErrorMessage"))?,
                error_details: member(n, 3, None, r, |r| r.string("WitResponse.ErrorDetails"))?,
            }))
        })
    }
}

impl From<WitResponse> for crate::WitResponse {
    fn from(r: WitResponse) -> Self {
        Self { status: r.status, data: r.data, error_message: r.error_message, error_details: r.error_details }
    }
}

impl From<crate::WitResponse> for WitResponse {
    fn from(r: crate::WitResponse) -> Self {
        Self { status: r.status, data: r.data, error_message: r.error_message, error_details: r.error_details }
    }
}

/// Client → server, Type 3 (header `01`): the client's public key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitRequestInitialization {
    /// UTF-8 JSON of the client's RSA public key (`{"mod":"…","exp":"…"}`), or `[0x00]`
    /// from a client without encryption; `None` is refused with a null reply.
    #[serde(with = "json::bytes_opt")]
    pub public_key: Option<Bytes>,
}

impl WitRequestInitialization {
    /// What a client without encryption sends: `PublicKey = [0x00]`.
    pub fn plain() -> Self {
        Self { public_key: Some(Bytes::from_static(&[0])) }
    }

    /// Encodes the request.
    ///
    /// ```
    /// let bytes = witrpc_core::v2::WitRequestInitialization::plain().encode();
    /// assert_eq!(bytes, [1, 1, 0, 0, 0, 0]);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(5 + self.public_key.as_ref().map_or(0, Bytes::len));
        w.u8(1);
        w.byte_array(self.public_key.as_deref());
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input; a protocol-3 payload (header `02`)
    /// fails with [`CodecError::InvalidHeader`].
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequestInitialization", |r| {
            let Some(n) = object_header(r, "WitRequestInitialization", 1)? else { return Ok(None) };
            Ok(Some(Self {
                public_key: member(n, 0, None, r, |r| r.byte_array("WitRequestInitialization.PublicKey"))?,
            }))
        })
    }
}

/// Server → client, Type 3 (header `02`): the AES key and IV, or `[0x00]`, `[0x00]`
/// from a server without encryption. There is no error member: a 2.x server refuses
/// an Initialization with a null `Data` instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitResponseInitialization {
    /// 32-byte AES-256 key; `[0x00]` in plain mode.
    #[serde(with = "json::bytes_opt")]
    pub symmetric_key: Option<Bytes>,
    /// 16-byte CBC IV, used for every message of the connection; `[0x00]` in plain mode.
    #[serde(with = "json::bytes_opt")]
    pub vector: Option<Bytes>,
}

impl WitResponseInitialization {
    /// The plain-mode acceptance: `SymmetricKey = [0x00]`, `Vector = [0x00]`.
    pub fn plain() -> Self {
        Self { symmetric_key: Some(Bytes::from_static(&[0])), vector: Some(Bytes::from_static(&[0])) }
    }

    /// Encodes the response.
    ///
    /// ```
    /// let bytes = witrpc_core::v2::WitResponseInitialization::plain().encode();
    /// assert_eq!(bytes, [2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            9 + self.symmetric_key.as_ref().map_or(0, Bytes::len) + self.vector.as_ref().map_or(0, Bytes::len),
        );
        w.u8(2);
        w.byte_array(self.symmetric_key.as_deref());
        w.byte_array(self.vector.as_deref());
        w.buf
    }

    /// Decodes the response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input; a protocol-3 reply (header `04`)
    /// fails with [`CodecError::InvalidHeader`].
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponseInitialization", |r| {
            let Some(n) = object_header(r, "WitResponseInitialization", 2)? else { return Ok(None) };
            Ok(Some(Self {
                symmetric_key: member(n, 0, None, r, |r| r.byte_array("WitResponseInitialization.SymmetricKey"))?,
                vector: member(n, 1, None, r, |r| r.byte_array("WitResponseInitialization.Vector"))?,
            }))
        })
    }
}

/// Client → server, Type 4 (header `01`): the access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitRequestAuthorization {
    /// The token; `""` when the client has none. `None` gets a null-`Data` reply.
    pub token: Option<String>,
}

impl WitRequestAuthorization {
    /// Encodes the request.
    ///
    /// ```
    /// let r = witrpc_core::v2::WitRequestAuthorization { token: Some(String::new()) };
    /// assert_eq!(r.encode(), [1, 0, 0, 0, 0]);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(9 + self.token.as_ref().map_or(0, String::len));
        w.u8(1);
        w.string(self.token.as_deref());
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitRequestAuthorization", |r| {
            let Some(n) = object_header(r, "WitRequestAuthorization", 1)? else { return Ok(None) };
            Ok(Some(Self { token: member(n, 0, None, r, |r| r.string("WitRequestAuthorization.Token"))? }))
        })
    }
}

/// Server → client, Type 4 (header `02`): whether the token was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WitResponseAuthorization {
    /// `true` when the connection may call methods.
    #[serde(deserialize_with = "json::null_default")]
    pub is_authorized: bool,
    /// `"Authorized"` or `"Forbidden"`.
    pub message: Option<String>,
}

impl WitResponseAuthorization {
    /// The answer for `authorized`, with the .NET texts.
    pub fn new(authorized: bool) -> Self {
        Self { is_authorized: authorized, message: Some(if authorized { AUTHORIZED } else { FORBIDDEN }.to_owned()) }
    }

    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(10 + self.message.as_ref().map_or(0, String::len));
        w.u8(2);
        w.bool(self.is_authorized);
        w.string(self.message.as_deref());
        w.buf
    }

    /// Decodes the response. Any non-zero `IsAuthorized` byte reads as `true`, as in .NET.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        decode_top(bytes, "WitResponseAuthorization", |r| {
            let Some(n) = object_header(r, "WitResponseAuthorization", 2)? else { return Ok(None) };
            Ok(Some(Self {
                is_authorized: member(n, 0, false, r, |r| r.bool("WitResponseAuthorization.IsAuthorized"))?,
                message: member(n, 1, None, r, |r| r.string("WitResponseAuthorization.Message"))?,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_header_defaults_the_missing_members_and_a_longer_one_is_refused() {
        // Header 02 of a 4-member response: Status and Data only.
        let r = WitResponse::decode(Bytes::from_static(&[2, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])).unwrap();
        assert_eq!(r, WitResponse::ok(None));
        let err = WitResponse::decode(Bytes::from_static(&[5, 200, 0, 0, 0])).unwrap_err();
        assert!(matches!(err, CodecError::InvalidHeader { header: 5, .. }));
        assert!(matches!(WitResponse::decode(Bytes::from_static(&[0xff])), Err(CodecError::Null { .. })));
    }

    #[test]
    fn null_collections_read_as_empty() {
        let mut bytes = vec![7, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend([0xff; 4 * 5]);
        let r = WitRequest::decode(bytes.into()).unwrap();
        assert_eq!(r, WitRequest::default());
    }

    #[test]
    fn conversions_to_protocol_3_keep_every_member() {
        let r = WitRequest {
            token: "t".into(),
            method_name: "M".into(),
            parameters: vec![Bytes::from_static(b"1")],
            parameter_types: vec!["System.Int32, System.Private.CoreLib".into()],
            ..WitRequest::default()
        };
        let v3: crate::WitRequest = r.clone().into();
        assert_eq!(WitRequest::from(v3), r);
        let resp = WitResponse::failed("boom");
        assert_eq!(WitResponse::from(crate::WitResponse::from(resp.clone())), resp);
    }
}
