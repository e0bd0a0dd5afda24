//! The version-tolerant payload models carried in `WitMessage.Data`.
//!
//! Each model reads the members it knows by order, skips trailing members a newer
//! peer may add, and leaves members an older peer did not send at their defaults.

use std::sync::Arc;

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
        self.encode_with_position(None)
    }

    /// Encodes the request with our trailing member 10, `StreamPosition` (a string,
    /// `<stream>\t<epoch>\t<offset>`), written only on events with history sent to a
    /// client that negotiated `resume`. `None` writes exactly [`encode`](Self::encode)'s
    /// bytes; a .NET peer skips the member.
    pub fn encode_with_position(&self, position: Option<&str>) -> Vec<u8> {
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
        if let Some(position) = position {
            t.body.string(Some(position));
            t.end_member();
        }
        let mut w = Writer::with_capacity(t.body.buf.len() + 32);
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes a request; parameter blobs are sliced from `bytes`.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with(bytes, true).map(|(request, _)| request)
    }

    /// Decodes an event and our trailing member 10, `StreamPosition` (`None` when
    /// absent, null or not a string).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET members.
    pub fn decode_with_position(bytes: Bytes) -> Result<(Self, Option<String>), CodecError> {
        Self::decode_with(bytes, true).map(|(request, position)| (request, position.map(|p| p.to_string())))
    }

    /// Decodes an event for delivery, with its `StreamPosition` like
    /// [`decode_with_position`](Self::decode_with_position), but the four type lists are
    /// skipped and left empty as in [`decode_for_dispatch`](Self::decode_for_dispatch):
    /// a subscriber finds its event by name and contract, and decodes the arguments
    /// with its own types.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the members it reads.
    pub fn decode_event(bytes: Bytes) -> Result<(Self, Option<Arc<str>>), CodecError> {
        Self::decode_with(bytes, false)
    }

    /// Decodes a request for dispatch: like [`decode`](Self::decode), but the four type
    /// lists (`ParameterTypes`, `ParameterTypesByName`, `GenericArguments`,
    /// `GenericArgumentsByName`) are skipped and left empty. A server that resolves
    /// methods by `MethodId` or by name and argument count never reads them, and they
    /// are most of a request's allocations.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the members it reads.
    pub fn decode_for_dispatch(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with(bytes, false).map(|(request, _)| request)
    }

    fn decode_with(bytes: Bytes, types: bool) -> Result<(Self, Option<Arc<str>>), CodecError> {
        decode_top(bytes, "WitRequest", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequest", 11)? else { return Ok(None) };
            let token = o.member(0, "WitRequest.Token", None, |r| r.string("WitRequest.Token"))?.unwrap_or_default();
            let method_name =
                o.member(1, "WitRequest.MethodName", None, |r| r.string("WitRequest.MethodName"))?.unwrap_or_default();
            let parameters = o.member(2, "WitRequest.Parameters", Vec::new(), |r| {
                let Some(n) = r.array_len("WitRequest.Parameters", 4)? else { return Ok(Vec::new()) };
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(r.byte_array("WitRequest.Parameters")?.unwrap_or_default());
                }
                Ok(v)
            })?;
            let mut request = Self { token, method_name, parameters, ..Self::default() };
            if types {
                request.parameter_types = o.member(3, "WitRequest.ParameterTypes", Vec::new(), |r| {
                    read_strings(r, "WitRequest.ParameterTypes")
                })?;
                request.parameter_types_by_name = o.member(4, "WitRequest.ParameterTypesByName", Vec::new(), |r| {
                    read_types(r, "WitRequest.ParameterTypesByName")
                })?;
                request.generic_arguments = o.member(5, "WitRequest.GenericArguments", Vec::new(), |r| {
                    read_strings(r, "WitRequest.GenericArguments")
                })?;
                request.generic_arguments_by_name =
                    o.member(6, "WitRequest.GenericArgumentsByName", Vec::new(), |r| {
                        read_types(r, "WitRequest.GenericArgumentsByName")
                    })?;
            }
            request.invocation_id =
                o.member(7, "WitRequest.InvocationId", Uuid::nil(), |r| r.guid("WitRequest.InvocationId"))?;
            request.contract_id = o.member(8, "WitRequest.ContractId", 0, |r| r.i64("WitRequest.ContractId"))?;
            request.method_id = o.member(9, "WitRequest.MethodId", 0, |r| r.i64("WitRequest.MethodId"))?;
            let position = o
                .member(10, "WitRequest.StreamPosition", None, |r| r.shared_string("WitRequest.StreamPosition"))
                .unwrap_or(None);
            Ok(Some((request, position)))
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

    /// Size of [`WitResponse::encode`]'s output, in bytes.
    pub fn encoded_len(&self) -> usize {
        let members = self.member_lens();
        1 + members.iter().map(|&n| varint_size(n) + n).sum::<usize>()
    }

    fn member_lens(&self) -> [usize; 4] {
        let string = |s: &Option<String>| match s.as_deref() {
            None | Some("") => 4,
            Some(s) => 8 + s.len(),
        };
        [4, 4 + self.data.as_ref().map_or(0, Bytes::len), string(&self.error_message), string(&self.error_details)]
    }

    /// Appends exactly the bytes of [`WitResponse::encode`] to `out` (no intermediate
    /// buffer; used to encode a response straight into an outbound frame).
    ///
    /// ```
    /// use witrpc_core::WitResponse;
    /// let r = WitResponse::ok(Some(bytes::Bytes::from_static(b"5")));
    /// let mut out = Vec::new();
    /// r.encode_into(&mut out);
    /// assert_eq!(out, r.encode());
    /// assert_eq!(out.len(), r.encoded_len());
    /// ```
    pub fn encode_into(&self, out: &mut impl bytes::BufMut) {
        let members = self.member_lens();
        out.put_u8(4);
        for n in members {
            put_varint_len(out, n);
        }
        out.put_i32_le(self.status.to_i32());
        match self.data.as_deref() {
            None => out.put_i32_le(-1),
            Some(d) => {
                out.put_i32_le(i32::try_from(d.len()).unwrap_or(i32::MAX));
                out.put_slice(d);
            }
        }
        for s in [&self.error_message, &self.error_details] {
            match s.as_deref() {
                None => out.put_i32_le(-1),
                Some("") => out.put_i32_le(0),
                Some(s) => {
                    out.put_i32_le(!i32::try_from(s.len()).unwrap_or(i32::MAX));
                    let utf16 = if s.is_ascii() { s.len() } else { s.encode_utf16().count() };
                    out.put_i32_le(i32::try_from(utf16).unwrap_or(i32::MAX));
                    out.put_slice(s.as_bytes());
                }
            }
        }
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
        self.encode_with_extensions(None)
    }

    /// Encodes the request with our trailing member 2, `Extensions` (a string, see
    /// [`crate::extensions`]); `None` writes exactly [`encode`](Self::encode)'s bytes.
    /// A .NET 3.x server skips the member.
    pub fn encode_with_extensions(&self, extensions: Option<&str>) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.byte_array(self.public_key.as_deref());
        t.end_member();
        t.body.i32(self.protocol_version);
        t.end_member();
        if let Some(extensions) = extensions {
            t.body.string(Some(extensions));
            t.end_member();
        }
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input (a 2.x client's payload fails here).
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with_extensions(bytes).map(|(request, _)| request)
    }

    /// Decodes the request and our trailing member 2, `Extensions`. The member is
    /// `None` when absent, null, or not a string (a later .NET member of another type
    /// must not make the request unreadable).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET members.
    pub fn decode_with_extensions(bytes: Bytes) -> Result<(Self, Option<String>), CodecError> {
        decode_top(bytes, "WitRequestInitialization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequestInitialization", 3)? else { return Ok(None) };
            let request = Self {
                public_key: o.member(0, "WitRequestInitialization.PublicKey", None, |r| {
                    r.byte_array("WitRequestInitialization.PublicKey")
                })?,
                protocol_version: o.member(1, "WitRequestInitialization.ProtocolVersion", 0, |r| {
                    r.i32("WitRequestInitialization.ProtocolVersion")
                })?,
            };
            let extensions = o
                .member(2, "WitRequestInitialization.Extensions", None, |r| {
                    r.string("WitRequestInitialization.Extensions")
                })
                .unwrap_or(None);
            Ok(Some((request, extensions)))
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
        self.encode_with_extensions(None)
    }

    /// Encodes the response with our trailing member 4, `Extensions` (the accepted
    /// features, see [`crate::extensions`]); `None` writes exactly
    /// [`encode`](Self::encode)'s bytes, which is what a client that did not announce
    /// any extension must get.
    pub fn encode_with_extensions(&self, extensions: Option<&str>) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.byte_array(self.symmetric_key.as_deref());
        t.end_member();
        t.body.byte_array(self.vector.as_deref());
        t.end_member();
        t.body.i32(self.protocol_version);
        t.end_member();
        t.body.string(self.error_message.as_deref());
        t.end_member();
        if let Some(extensions) = extensions {
            t.body.string(Some(extensions));
            t.end_member();
        }
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with_extensions(bytes).map(|(response, _)| response)
    }

    /// Decodes the response and our trailing member 4, `Extensions` (`None` when
    /// absent, null or not a string).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET members.
    pub fn decode_with_extensions(bytes: Bytes) -> Result<(Self, Option<String>), CodecError> {
        decode_top(bytes, "WitResponseInitialization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitResponseInitialization", 5)? else { return Ok(None) };
            let response = Self {
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
            };
            let extensions = o
                .member(4, "WitResponseInitialization.Extensions", None, |r| {
                    r.string("WitResponseInitialization.Extensions")
                })
                .unwrap_or(None);
            Ok(Some((response, extensions)))
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
        self.encode_with_resume(None)
    }

    /// Encodes the request with our trailing member 1, `Resume` (a string: the
    /// previous connection id, then `\n`-separated `<stream>\t<epoch>\t<offset>`
    /// lines), sent only by a client that negotiated `resume`. `None` writes exactly
    /// [`encode`](Self::encode)'s bytes.
    pub fn encode_with_resume(&self, resume: Option<&str>) -> Vec<u8> {
        let mut t = TolerantWriter::default();
        t.body.string(self.token.as_deref());
        t.end_member();
        if let Some(resume) = resume {
            t.body.string(Some(resume));
            t.end_member();
        }
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the request.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with_resume(bytes).map(|(request, _)| request)
    }

    /// Decodes the request and our trailing member 1, `Resume` (`None` when absent,
    /// null or not a string).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET member.
    pub fn decode_with_resume(bytes: Bytes) -> Result<(Self, Option<String>), CodecError> {
        decode_top(bytes, "WitRequestAuthorization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitRequestAuthorization", 2)? else { return Ok(None) };
            let request = Self {
                token: o
                    .member(0, "WitRequestAuthorization.Token", None, |r| r.string("WitRequestAuthorization.Token"))?,
            };
            let resume = o
                .member(1, "WitRequestAuthorization.Resume", None, |r| r.string("WitRequestAuthorization.Resume"))
                .unwrap_or(None);
            Ok(Some((request, resume)))
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
        self.encode_with_expiry(None)
    }

    /// Encodes the response with our trailing member 2, `ExpiresAtUnixMs` (an `i64`,
    /// milliseconds since the Unix epoch, 0 = the token does not expire); written only
    /// to clients that negotiated `token-refresh`. `None` writes exactly
    /// [`encode`](Self::encode)'s bytes.
    pub fn encode_with_expiry(&self, expires_at_unix_ms: Option<i64>) -> Vec<u8> {
        self.encode_with_resumed(expires_at_unix_ms, None)
    }

    /// Encodes the response with member 2 (as
    /// [`encode_with_expiry`](Self::encode_with_expiry)) and our trailing member 3,
    /// `Resumed` (a string: `\n`-separated `<stream>\t<epoch>\t<offset>\t<0|1>`
    /// lines), the answer to a resume request. With `resumed`, member 2 is written
    /// too (0 when `expires_at_unix_ms` is `None`).
    pub fn encode_with_resumed(&self, expires_at_unix_ms: Option<i64>, resumed: Option<&str>) -> Vec<u8> {
        let expires_at_unix_ms =
            if resumed.is_some() { Some(expires_at_unix_ms.unwrap_or(0)) } else { expires_at_unix_ms };
        let mut t = TolerantWriter::default();
        t.body.bool(self.is_authorized);
        t.end_member();
        t.body.string(self.message.as_deref());
        t.end_member();
        if let Some(at) = expires_at_unix_ms {
            t.body.i64(at);
            t.end_member();
        }
        if let Some(resumed) = resumed {
            t.body.string(Some(resumed));
            t.end_member();
        }
        let mut w = Writer::default();
        t.finish_into(&mut w);
        w.buf
    }

    /// Decodes the response.
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input.
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        Self::decode_with_expiry(bytes).map(|(response, _)| response)
    }

    /// Decodes the response and our trailing member 2, `ExpiresAtUnixMs` (`None`
    /// when absent or unreadable).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET members.
    pub fn decode_with_expiry(bytes: Bytes) -> Result<(Self, Option<i64>), CodecError> {
        Self::decode_with_resumed(bytes).map(|(response, expires_at, _)| (response, expires_at))
    }

    /// Decodes the response, member 2 (`ExpiresAtUnixMs`) and our trailing member 3,
    /// `Resumed` (each `None` when absent or unreadable).
    ///
    /// # Errors
    /// [`CodecError`] on malformed or null input in the .NET members.
    pub fn decode_with_resumed(bytes: Bytes) -> Result<(Self, Option<i64>, Option<String>), CodecError> {
        decode_top(bytes, "WitResponseAuthorization", |r| {
            let Some(mut o) = TolerantObject::read(r, "WitResponseAuthorization", 4)? else { return Ok(None) };
            let response = Self {
                is_authorized: o.member(0, "WitResponseAuthorization.IsAuthorized", false, |r| {
                    r.bool("WitResponseAuthorization.IsAuthorized")
                })?,
                message: o.member(1, "WitResponseAuthorization.Message", None, |r| {
                    r.string("WitResponseAuthorization.Message")
                })?,
            };
            let expires_at = o
                .member(2, "WitResponseAuthorization.ExpiresAtUnixMs", None, |r| {
                    r.i64("WitResponseAuthorization.ExpiresAtUnixMs").map(Some)
                })
                .unwrap_or(None);
            let resumed = o
                .member(3, "WitResponseAuthorization.Resumed", None, |r| r.string("WitResponseAuthorization.Resumed"))
                .unwrap_or(None);
            Ok(Some((response, expires_at, resumed)))
        })
    }
}

/// Bytes [`put_varint_len`] writes for `n`.
fn varint_size(n: usize) -> usize {
    if n <= 127 {
        1
    } else if n <= i16::MAX as usize {
        3
    } else {
        5
    }
}

/// A non-negative length as .NET's VarInt (the same bytes as `Writer::varint_len`).
fn put_varint_len(out: &mut impl bytes::BufMut, n: usize) {
    if n <= 127 {
        out.put_u8(n as u8);
    } else if n <= i16::MAX as usize {
        out.put_u8(0x84);
        out.put_i16_le(n as i16);
    } else {
        out.put_u8(0x82);
        out.put_i32_le(i32::try_from(n).unwrap_or(i32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_members_round_trip_and_are_absent_unless_given() {
        let init = WitRequestInitialization::plain();
        assert_eq!(init.encode_with_extensions(None), init.encode());
        let announced = init.encode_with_extensions(Some("witrpc/1 token-refresh"));
        assert_eq!(announced[0], 3, "a third member");
        assert_eq!(WitRequestInitialization::decode(announced.clone().into()).unwrap(), init, ".NET reads it");
        let (decoded, ext) = WitRequestInitialization::decode_with_extensions(announced.into()).unwrap();
        assert_eq!((decoded, ext.as_deref()), (init, Some("witrpc/1 token-refresh")));

        let reply = WitResponseInitialization::plain();
        assert_eq!(reply.encode_with_extensions(None), reply.encode());
        let answered = reply.encode_with_extensions(Some("witrpc/1"));
        assert_eq!(WitResponseInitialization::decode(answered.clone().into()).unwrap(), reply);
        assert_eq!(
            WitResponseInitialization::decode_with_extensions(answered.into()).unwrap().1.as_deref(),
            Some("witrpc/1")
        );

        let auth = WitResponseAuthorization::new(true);
        assert_eq!(auth.encode_with_expiry(None), auth.encode());
        let with_expiry = auth.encode_with_expiry(Some(1_700_000_000_123));
        assert_eq!(WitResponseAuthorization::decode(with_expiry.clone().into()).unwrap(), auth);
        assert_eq!(
            WitResponseAuthorization::decode_with_expiry(with_expiry.into()).unwrap().1,
            Some(1_700_000_000_123)
        );
    }

    #[test]
    fn resume_members_round_trip_and_dotnet_reads_around_them() {
        let event = WitRequest { method_name: "Tick".into(), invocation_id: Uuid::new_v4(), ..WitRequest::default() };
        assert_eq!(event.encode_with_position(None), event.encode());
        let positioned = event.encode_with_position(Some("all\tab12\t7"));
        assert_eq!(positioned[0], 11, "an eleventh member");
        assert_eq!(WitRequest::decode(positioned.clone().into()).unwrap(), event, ".NET reads it");
        let (decoded, position) = WitRequest::decode_with_position(positioned.into()).unwrap();
        assert_eq!((decoded, position.as_deref()), (event.clone(), Some("all\tab12\t7")));
        assert_eq!(WitRequest::decode_with_position(event.encode().into()).unwrap().1, None);

        let auth = WitRequestAuthorization { token: Some("t".into()) };
        assert_eq!(auth.encode_with_resume(None), auth.encode());
        let resume = auth.encode_with_resume(Some("id\nall\tab\t3"));
        assert_eq!(WitRequestAuthorization::decode(resume.clone().into()).unwrap(), auth);
        assert_eq!(
            WitRequestAuthorization::decode_with_resume(resume.into()).unwrap().1.as_deref(),
            Some("id\nall\tab\t3")
        );

        let answer = WitResponseAuthorization::new(true);
        let resumed = answer.encode_with_resumed(None, Some("all\tab\t3\t1"));
        assert_eq!(WitResponseAuthorization::decode(resumed.clone().into()).unwrap(), answer);
        let (decoded, expiry, lines) = WitResponseAuthorization::decode_with_resumed(resumed.into()).unwrap();
        assert_eq!((decoded, expiry, lines.as_deref()), (answer.clone(), Some(0), Some("all\tab\t3\t1")));
        assert_eq!(answer.encode_with_resumed(Some(5), None), answer.encode_with_expiry(Some(5)));
    }

    #[test]
    fn a_trailing_member_of_another_type_is_no_extension_and_no_error() {
        // A later .NET version could add member 2 as, say, an i32.
        let mut t = TolerantWriter::default();
        t.body.byte_array(Some(&[0]));
        t.end_member();
        t.body.i32(3);
        t.end_member();
        t.body.i32(7);
        t.end_member();
        let mut w = Writer::default();
        t.finish_into(&mut w);
        let (request, ext) = WitRequestInitialization::decode_with_extensions(w.buf.into()).unwrap();
        assert_eq!((request.protocol_version, ext), (3, None));
    }
}
