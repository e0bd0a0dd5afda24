//! The frozen `WitMessage` envelope: `0x03 | Guid Id | i32 Type | byte[] Data`.

use bytes::Bytes;
use uuid::Uuid;

use crate::error::CodecError;
use crate::memorypack::{NULL_OBJECT, Reader, Writer};

/// The `Type` field of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `0`: ignored by every peer.
    Unknown,
    /// `1`: a method call, and its response.
    Request,
    /// `2`: a server-pushed event.
    Callback,
    /// `3`: the key-exchange / version handshake (never AEAD-sealed).
    Initialization,
    /// `4`: the access-token handshake.
    Authorization,
    /// Any other value; ignored, kept for logs.
    Other(i32),
}

impl MessageType {
    /// `100`, an extension of ours (not a .NET value): events a resume replays, packed
    /// together ([`crate::batch`]). Sent only to a client that negotiated
    /// [`REPLAY_BATCH`](crate::extensions::REPLAY_BATCH).
    pub const REPLAY_BATCH: Self = Self::Other(100);

    /// The wire value.
    pub fn to_i32(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::Request => 1,
            Self::Callback => 2,
            Self::Initialization => 3,
            Self::Authorization => 4,
            Self::Other(v) => v,
        }
    }

    /// Maps a wire value; unknown values become [`MessageType::Other`].
    pub fn from_i32(v: i32) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::Request,
            2 => Self::Callback,
            3 => Self::Initialization,
            4 => Self::Authorization,
            v => Self::Other(v),
        }
    }
}

/// One protocol-3 envelope; exactly one WebSocket binary message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitMessage {
    /// Correlation id: a reply reuses its request's id.
    pub id: Uuid,
    /// What `data` holds.
    pub kind: MessageType,
    /// The payload (MemoryPack model, AEAD frame or RSA blob); `None` is null on the wire.
    pub data: Option<Bytes>,
}

/// Size of an envelope without its data bytes.
pub const ENVELOPE_OVERHEAD: usize = 1 + 16 + 4 + 4;

impl WitMessage {
    /// A message with the given id, type and data.
    pub fn new(id: Uuid, kind: MessageType, data: Option<Bytes>) -> Self {
        Self { id, kind, data }
    }

    /// The reply to this message: same id and type, new data (the .NET convention).
    pub fn reply(&self, data: Option<Bytes>) -> Self {
        Self { id: self.id, kind: self.kind, data }
    }

    /// Encodes the envelope into a new buffer.
    ///
    /// ```
    /// use witrpc_core::{MessageType, WitMessage};
    /// let m = WitMessage::new(uuid::Uuid::nil(), MessageType::Request, None);
    /// let bytes = m.encode();
    /// assert_eq!(bytes.len(), 25);
    /// assert_eq!(WitMessage::decode(bytes.into()).unwrap(), m);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(ENVELOPE_OVERHEAD + self.data.as_ref().map_or(0, Bytes::len));
        w.u8(3);
        w.guid(&self.id);
        w.i32(self.kind.to_i32());
        w.byte_array(self.data.as_deref());
        w.buf
    }

    /// Decodes an envelope. `Data` is sliced from `bytes`, not copied.
    ///
    /// # Errors
    /// [`CodecError`] when the bytes are not a protocol-3 envelope (wrong header,
    /// truncated, trailing bytes).
    pub fn decode(bytes: Bytes) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let header = r.u8("WitMessage header")?;
        if header == NULL_OBJECT {
            return Err(CodecError::Null { what: "WitMessage" });
        }
        if header != 3 {
            return Err(CodecError::InvalidHeader { what: "WitMessage", header });
        }
        let id = r.guid("WitMessage.Id")?;
        let kind = MessageType::from_i32(r.i32("WitMessage.Type")?);
        let data = r.byte_array("WitMessage.Data")?;
        if r.remaining() != 0 {
            return Err(CodecError::TrailingBytes { what: "WitMessage", extra: r.remaining() });
        }
        Ok(Self { id, kind, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_layout_uses_dotnet_guid_byte_order() {
        let id = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        let m = WitMessage::new(id, MessageType::Authorization, Some(Bytes::from_static(&[9, 8])));
        let bytes = m.encode();
        let expected = [
            &[0x03][..],
            &[0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
            &[4, 0, 0, 0],
            &[2, 0, 0, 0, 9, 8],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(WitMessage::decode(bytes.into()).unwrap(), m);
        let null = WitMessage::new(id, MessageType::Request, None).encode();
        assert_eq!(&null[21..], &[0xFF; 4]);
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        let good = WitMessage::new(Uuid::nil(), MessageType::Request, Some(Bytes::from_static(b"abc"))).encode();
        let mut wrong_header = good.clone();
        wrong_header[0] = 7;
        assert!(matches!(WitMessage::decode(wrong_header.into()), Err(CodecError::InvalidHeader { header: 7, .. })));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(WitMessage::decode(trailing.into()), Err(CodecError::TrailingBytes { extra: 1, .. })));
        for n in 0..good.len() {
            assert!(WitMessage::decode(Bytes::copy_from_slice(&good[..n])).is_err());
        }
        assert_eq!(WitMessage::decode(good.into()).unwrap().kind, MessageType::Request);
        assert_eq!(MessageType::from_i32(99), MessageType::Other(99));
    }
}
