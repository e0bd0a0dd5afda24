//! Envelope encoding into one reused buffer: the header is written first, the payload
//! right after it, sealed in place, and the length patched in; the frame leaves as a
//! `Bytes` split off the buffer (no copy of the payload after it is encoded).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::crypto::{CryptoError, Sealer};
use crate::message::{ENVELOPE_OVERHEAD, MessageType};

/// Offset of `Data`'s length in an envelope: header byte, Guid, Type.
const LEN_AT: usize = 1 + 16 + 4;
/// A buffer that grew past this for one large frame is let go afterwards, so an idle
/// connection does not keep the memory of its largest message.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct FrameWriter {
    buf: BytesMut,
}

impl FrameWriter {
    /// An envelope with `Data` = what `payload` writes (about `size_hint` bytes), sealed
    /// by `sealer` when one is given.
    pub(crate) fn frame(
        &mut self,
        id: Uuid,
        kind: MessageType,
        sealer: Option<&mut (dyn Sealer + 'static)>,
        size_hint: usize,
        payload: impl FnOnce(&mut BytesMut),
    ) -> Result<Bytes, CryptoError> {
        let prefix = sealer.as_ref().map_or(0, |s| s.prefix_len());
        self.buf.reserve(ENVELOPE_OVERHEAD + prefix + size_hint);
        self.header(id, kind);
        let start = self.buf.len();
        self.buf.put_bytes(0, prefix);
        payload(&mut self.buf);
        if let Some(sealer) = sealer {
            if let Err(e) = sealer.seal_in_place(&mut self.buf, start) {
                self.buf.clear();
                return Err(e);
            }
        }
        let len = i32::try_from(self.buf.len() - start).unwrap_or(i32::MAX);
        self.buf[LEN_AT..ENVELOPE_OVERHEAD].copy_from_slice(&len.to_le_bytes());
        Ok(self.take())
    }

    /// An envelope whose `Data` is null.
    pub(crate) fn null(&mut self, id: Uuid, kind: MessageType) -> Bytes {
        self.buf.reserve(ENVELOPE_OVERHEAD);
        self.header(id, kind);
        self.buf[LEN_AT..ENVELOPE_OVERHEAD].copy_from_slice(&(-1i32).to_le_bytes());
        self.take()
    }

    fn header(&mut self, id: Uuid, kind: MessageType) {
        self.buf.put_u8(3);
        self.buf.put_slice(&id.to_bytes_le());
        self.buf.put_i32_le(kind.to_i32());
        self.buf.put_i32_le(0);
    }

    fn take(&mut self) -> Bytes {
        let frame = self.buf.split().freeze();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::plain::PlainCipher;
    use crate::message::WitMessage;

    #[test]
    fn frames_match_the_envelope_codec() {
        let mut w = FrameWriter::default();
        let id = Uuid::new_v4();
        let mut cipher = PlainCipher;
        for payload in [&b""[..], b"abc", &[7u8; 5000]] {
            let frame = w.frame(id, MessageType::Request, Some(&mut cipher), 3, |b| b.put_slice(payload)).unwrap();
            let expected = WitMessage::new(id, MessageType::Request, Some(Bytes::copy_from_slice(payload))).encode();
            assert_eq!(&frame[..], &expected[..]);
        }
        let null = w.null(id, MessageType::Callback);
        assert_eq!(&null[..], &WitMessage::new(id, MessageType::Callback, None).encode()[..]);
    }

    /// A sealer that only has the default (copying) in-place path.
    #[derive(Debug)]
    struct Reverse;
    impl Sealer for Reverse {
        fn seal(&mut self, plaintext: Bytes) -> Result<Bytes, CryptoError> {
            let mut v = plaintext.to_vec();
            v.reverse();
            v.push(0xEE);
            Ok(v.into())
        }
    }

    #[test]
    fn sealers_without_an_in_place_path_still_frame_correctly() {
        let mut w = FrameWriter::default();
        let frame = w.frame(Uuid::nil(), MessageType::Request, Some(&mut Reverse), 3, |b| b.put_slice(b"abc")).unwrap();
        let m = WitMessage::decode(frame).unwrap();
        assert_eq!(m.data.as_deref(), Some(&b"cba\xEE"[..]));
    }
}
