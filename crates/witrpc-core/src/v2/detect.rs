//! Telling protocol 2 from protocol 3 by the first message of a connection.
//!
//! Both versions open with an Initialization (`Type = 3`) in the same, byte-identical
//! envelope; only its `Data` differs (notes §11 item 6):
//!
//! ```text
//! protocol 2: 01 | PublicKey (i32 length, bytes)                 one-member Object
//! protocol 3: 02 | VarInt len × 2 | PublicKey | ProtocolVersion   two-member VersionTolerant
//! ```
//!
//! The first `Data` byte is MemoryPack's member count. A 2.x `WitRequestInitialization`
//! has exactly one member, so it always starts with `01`; a 3.x one has two and later
//! 3.x minors only add members, so it starts with `02`–`F9`. The sets are disjoint,
//! which is why no genuine client of one version can be taken for the other. The
//! header alone is not trusted: each version is then validated strictly (a 2.x payload
//! must be exactly `5 + length` bytes, a 3.x payload must decode with every VarInt
//! length adding up and must announce `ProtocolVersion = 3`). We never classify by
//! "does it parse as 3.x": a tolerant 3.x reader reads the plain 2.x payload
//! `01 01 00 00 00 00` as `{PublicKey = [], ProtocolVersion = 0}`.

use bytes::Bytes;

use crate::error::CodecError;
use crate::message::{MessageType, WitMessage};
use crate::payload::PROTOCOL_VERSION;

/// A WitRPC wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// Protocol 2: .NET WitRPC 2.x (NuGet 2.3.x).
    V2,
    /// Protocol 3: .NET WitRPC 3.x.
    V3,
}

impl ProtocolVersion {
    /// The version number (2 or 3), as logs and `ProtocolVersion` fields show it.
    pub fn number(self) -> i32 {
        match self {
            Self::V2 => 2,
            Self::V3 => PROTOCOL_VERSION,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol {}", self.number())
    }
}

/// A protocol number that is neither 2 nor 3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}`; use 2 (WitRPC 2.x) or 3 (WitRPC 3.x)")]
pub struct UnknownProtocol(pub String);

impl std::str::FromStr for ProtocolVersion {
    type Err = UnknownProtocol;

    /// Parses `2` or `3` (as a command line or a config file gives it).
    ///
    /// ```
    /// use witrpc_core::v2::ProtocolVersion;
    /// assert_eq!("2".parse::<ProtocolVersion>(), Ok(ProtocolVersion::V2));
    /// assert!(" 4".parse::<ProtocolVersion>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2" => Ok(Self::V2),
            "3" => Ok(Self::V3),
            other => Err(UnknownProtocol(other.to_owned())),
        }
    }
}

/// What a frame that failed [`detect_frame`] looks like, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeGuess {
    /// Starts with `{`: most likely a 2.x peer set up with
    /// `WithMessageSerializer(new MessageSerializerJson())`.
    Json,
    /// Starts with a MessagePack array or ext header: most likely a 2.x peer set up
    /// with `WithMessageSerializer(new MessageSerializerMessagePack())`.
    MessagePack,
    /// Anything else.
    Unknown,
}

impl EnvelopeGuess {
    fn of(frame: &[u8]) -> Self {
        match frame.first() {
            Some(b'{') => Self::Json,
            // fixarray, array16/32, ext8/16/32 (LZ4 block ext 99).
            Some(0x90..=0x9f | 0xdc | 0xdd | 0xc7..=0xc9) => Self::MessagePack,
            _ => Self::Unknown,
        }
    }
}

/// Why the protocol of an Initialization could not be told.
///
/// A server answers every variant in its default protocol (see
/// [`initialization_refusal`](crate::v2::initialization_refusal) for protocol 2), except
/// [`DetectError::NotAnEnvelope`], which no WitRPC peer can read an answer to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The frame is not a MemoryPack `WitMessage`.
    #[error(
        "the first frame is not a MemoryPack WitMessage (it looks like {guess:?}); both ends must use the default MemoryPack envelope"
    )]
    NotAnEnvelope {
        /// What the bytes resemble.
        guess: EnvelopeGuess,
        /// Why the envelope did not decode.
        #[source]
        source: CodecError,
    },
    /// The first message is not an Initialization.
    #[error("the first message has type {kind:?}, not Initialization; a client must open with Initialization")]
    NotInitialization {
        /// The envelope's type.
        kind: MessageType,
    },
    /// The Initialization's `Data` is null or empty.
    #[error("the Initialization carries no data; the client must send its public key or [0]")]
    NoData,
    /// The first `Data` byte is no member count either version writes (`00`, `FA`–`FF`).
    #[error(
        "the Initialization payload starts with {header:#04x}, which neither protocol 2 (01) nor protocol 3 (02..=f9) writes"
    )]
    UnknownHeader {
        /// The first `Data` byte.
        header: u8,
    },
    /// The header names a version but the payload is not a valid one of it.
    #[error("the Initialization payload has the {version} header but is malformed")]
    Malformed {
        /// The version the header names.
        version: ProtocolVersion,
        /// What was wrong.
        #[source]
        source: CodecError,
    },
    /// A well-formed protocol-3-family payload announcing another version number.
    #[error("the client announces protocol {announced}; this side speaks protocols 2 and 3")]
    UnsupportedVersion {
        /// The client's `ProtocolVersion`.
        announced: i32,
    },
}

/// Tells the protocol of an Initialization's `Data` (the envelope already decoded).
///
/// ```
/// use witrpc_core::v2::{ProtocolVersion, detect_payload};
/// assert_eq!(detect_payload(Some(&[1, 1, 0, 0, 0, 0])), Ok(ProtocolVersion::V2));
/// assert_eq!(detect_payload(Some(&[2, 5, 4, 1, 0, 0, 0, 0, 3, 0, 0, 0])), Ok(ProtocolVersion::V3));
/// assert!(detect_payload(None).is_err());
/// ```
///
/// # Errors
/// [`DetectError`] when `data` is null or empty, starts with an unknown header, or is
/// malformed for the version its header names.
pub fn detect_payload(data: Option<&[u8]>) -> Result<ProtocolVersion, DetectError> {
    let data = data.unwrap_or_default();
    let Some(&header) = data.first() else { return Err(DetectError::NoData) };
    match header {
        1 => {
            validate_v2(data).map_err(|source| DetectError::Malformed { version: ProtocolVersion::V2, source })?;
            Ok(ProtocolVersion::V2)
        }
        2..=249 => {
            let request = crate::WitRequestInitialization::decode(Bytes::copy_from_slice(data))
                .map_err(|source| DetectError::Malformed { version: ProtocolVersion::V3, source })?;
            match request.protocol_version {
                PROTOCOL_VERSION => Ok(ProtocolVersion::V3),
                announced => Err(DetectError::UnsupportedVersion { announced }),
            }
        }
        header => Err(DetectError::UnknownHeader { header }),
    }
}

/// `01 | i32 n | n bytes` exactly, or `01 | -1` (a null key).
fn validate_v2(data: &[u8]) -> Result<(), CodecError> {
    const WHAT: &str = "WitRequestInitialization.PublicKey";
    let len = data.get(1..5).ok_or(CodecError::Truncated { what: WHAT, needed: 5, available: data.len() })?;
    let n = i32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    let body = data.len() - 5;
    match n {
        -1 if body == 0 => Ok(()),
        n if n < 0 => Err(CodecError::InvalidLength { what: WHAT, length: n }),
        n if (n as usize) > body => Err(CodecError::Truncated { what: WHAT, needed: n as usize, available: body }),
        n if (n as usize) < body => {
            Err(CodecError::TrailingBytes { what: "WitRequestInitialization", extra: body - n as usize })
        }
        _ => Ok(()),
    }
}

/// Tells the protocol of a decoded first message.
///
/// # Errors
/// [`DetectError::NotInitialization`] when it is not Type 3; otherwise as
/// [`detect_payload`].
pub fn detect_message(message: &WitMessage) -> Result<ProtocolVersion, DetectError> {
    if message.kind != MessageType::Initialization {
        return Err(DetectError::NotInitialization { kind: message.kind });
    }
    detect_payload(message.data.as_deref())
}

/// Decodes a connection's first frame and tells its protocol; returns the decoded
/// envelope too, so the caller does not decode it twice.
///
/// ```
/// use witrpc_core::{MessageType, Uuid, WitMessage};
/// use witrpc_core::v2::{ProtocolVersion, WitRequestInitialization, detect_frame};
///
/// let init = WitMessage::new(Uuid::new_v4(), MessageType::Initialization,
///     Some(WitRequestInitialization::plain().encode().into()));
/// let (version, message) = detect_frame(init.encode().into()).unwrap();
/// assert_eq!((version, message), (ProtocolVersion::V2, init));
/// ```
///
/// # Errors
/// [`DetectError::NotAnEnvelope`] when the bytes are not a MemoryPack envelope (with a
/// guess at what they are); otherwise as [`detect_message`].
pub fn detect_frame(frame: Bytes) -> Result<(ProtocolVersion, WitMessage), DetectError> {
    let guess = EnvelopeGuess::of(&frame);
    let message = WitMessage::decode(frame).map_err(|source| DetectError::NotAnEnvelope { guess, source })?;
    let version = detect_message(&message)?;
    Ok((version, message))
}

/// Tells which protocol an Initialization reply's (RSA-unwrapped) `Data` is in, for a
/// client that wants to say "the server speaks protocol N" instead of a parse error.
///
/// A 2.x reply has two members (header `02`), a 3.x reply four or more (header `04`
/// and up), so the header decides again; the payload must then decode strictly.
/// Returns `None` for anything else. A null `Data` has no version: a client that sent a
/// well-formed protocol-3 Initialization with a key and got a null `Data` is most
/// likely talking to a 2.x server ([`texts::SERVER_SPEAKS_PROTOCOL_2`](crate::v2::texts::SERVER_SPEAKS_PROTOCOL_2)).
///
/// ```
/// use witrpc_core::v2::{ProtocolVersion, WitResponseInitialization, detect_reply};
/// assert_eq!(detect_reply(&WitResponseInitialization::plain().encode()), Some(ProtocolVersion::V2));
/// let v3 = witrpc_core::WitResponseInitialization::refusal("no").encode();
/// assert_eq!(detect_reply(&v3), Some(ProtocolVersion::V3));
/// assert_eq!(detect_reply(&[9; 256]), None);
/// ```
pub fn detect_reply(data: &[u8]) -> Option<ProtocolVersion> {
    let bytes = || Bytes::copy_from_slice(data);
    match data.first()? {
        2 => crate::v2::WitResponseInitialization::decode(bytes()).ok().map(|_| ProtocolVersion::V2),
        3..=249 => crate::WitResponseInitialization::decode(bytes()).ok().map(|_| ProtocolVersion::V3),
        _ => None,
    }
}

/// The refusal a protocol-2 client can read: the request echoed (same `Id`,
/// `Type = 3`) with a null `Data`, 25 bytes, in clear.
///
/// A .NET 2.x client's `ConnectAsync` returns `false` on it, whether it encrypts or
/// not; it is the only Initialization refusal every 2.x client reads without
/// throwing (a protocol-3 refusal makes a plain 2.x client fail to parse and an
/// encrypting one throw from `ConnectAsync`, notes §11 item 6). Send it, then close:
/// the .NET client never closes by itself.
///
/// ```
/// use witrpc_core::{MessageType, Uuid, WitMessage, v2::initialization_refusal};
/// let request = WitMessage::new(Uuid::new_v4(), MessageType::Initialization, Some(vec![2, 0].into()));
/// let refusal = initialization_refusal(&request);
/// assert_eq!(refusal.encode().len(), 25);
/// assert_eq!((refusal.id, refusal.kind, refusal.data), (request.id, MessageType::Initialization, None));
/// ```
pub fn initialization_refusal(request: &WitMessage) -> WitMessage {
    request.reply(None)
}

/// The refusal payload a protocol-3 client can read: a protocol-3
/// `WitResponseInitialization` carrying `message` as its `ErrorMessage`.
///
/// Pass it through the protocol-3 `ServerEncryptor::refusal` (which RSA-wraps it for
/// a client that offered a key) and send it as the Initialization reply's `Data`,
/// then close. A .NET 3.x client's `ConnectAsync` returns `false` and reports the
/// text; use [`texts::PROTOCOL_3_REFUSED`](crate::v2::texts::PROTOCOL_3_REFUSED) when
/// the server accepts protocol 2 only.
pub fn protocol_3_refusal_payload(message: &str) -> Vec<u8> {
    crate::WitResponseInitialization::refusal(message).encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_headers_never_overlap() {
        for header in 0..=u8::MAX {
            let mut data = vec![header];
            data.extend([0u8; 11]);
            match detect_payload(Some(&data)) {
                Ok(ProtocolVersion::V2) => assert_eq!(header, 1),
                Ok(ProtocolVersion::V3) => assert!((2..=249).contains(&header)),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn a_v2_payload_with_a_wrong_length_is_malformed_not_v3() {
        for data in [
            &[1u8, 1, 0, 0, 0][..],
            &[1, 1, 0, 0, 0, 0, 0],
            &[1, 0xfe, 0xff, 0xff, 0xff],
            &[1, 0xff, 0xff, 0xff, 0xff, 0],
        ] {
            assert!(
                matches!(detect_payload(Some(data)), Err(DetectError::Malformed { version: ProtocolVersion::V2, .. })),
                "{data:02x?}"
            );
        }
        assert_eq!(detect_payload(Some(&[1, 0xff, 0xff, 0xff, 0xff])), Ok(ProtocolVersion::V2));
    }
}
