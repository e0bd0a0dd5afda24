//! The backplane frame: one event, as a node publishes it to the others.
//!
//! ```text
//! "WRB" 0x01                    magic and version
//! u8 len, bytes                 origin node id (UTF-8)
//! u8 kind                       0 all, 1 connection, 2 user, 3 group
//!   connection: 16 bytes        the connection id
//!   user/group: u16 len, bytes  the name (UTF-8)
//! u8 0|1 [16 bytes]             the connection left out, if any
//! i64                           ContractId
//! u8 len, bytes                 event wire name
//! 16 bytes                      invocation id
//! u16 count, then per parameter u32 len, bytes
//! ```
//!
//! Integers are little-endian; ids are the UUID's 16 bytes in RFC 4122 order. The
//! parameters are the serializer's plain bytes.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;
use witrpc_core::{Audience, Target};

const MAGIC: &[u8; 4] = b"WRB\x01";

/// One event on the backplane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub(crate) origin: String,
    pub(crate) audience: Audience,
    pub(crate) contract_id: i64,
    pub(crate) event: String,
    pub(crate) invocation_id: Uuid,
    pub(crate) parameters: Vec<Bytes>,
}

/// A frame that cannot be read (another version, or corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backplane frame is malformed or of another version")]
pub(crate) struct BadFrame;

/// Names longer than a length prefix can say cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a name or parameter is too long for a backplane frame")]
pub(crate) struct TooLong;

fn put_short(out: &mut BytesMut, s: &[u8]) -> Result<(), TooLong> {
    out.put_u8(u8::try_from(s.len()).map_err(|_| TooLong)?);
    out.put_slice(s);
    Ok(())
}

impl Frame {
    pub(crate) fn encode(&self) -> Result<Bytes, TooLong> {
        let size =
            64 + self.origin.len() + self.event.len() + self.parameters.iter().map(|p| 4 + p.len()).sum::<usize>();
        let mut out = BytesMut::with_capacity(size + 300);
        out.put_slice(MAGIC);
        put_short(&mut out, self.origin.as_bytes())?;
        match self.audience.target() {
            Target::Connection(id) => {
                out.put_u8(1);
                out.put_slice(id.as_bytes());
            }
            Target::User(name) | Target::Group(name) => {
                out.put_u8(if matches!(self.audience.target(), Target::User(_)) { 2 } else { 3 });
                out.put_u16_le(u16::try_from(name.len()).map_err(|_| TooLong)?);
                out.put_slice(name.as_bytes());
            }
            _ => out.put_u8(0),
        }
        match self.audience.excluded() {
            Some(id) => {
                out.put_u8(1);
                out.put_slice(id.as_bytes());
            }
            None => out.put_u8(0),
        }
        out.put_i64_le(self.contract_id);
        put_short(&mut out, self.event.as_bytes())?;
        out.put_slice(self.invocation_id.as_bytes());
        out.put_u16_le(u16::try_from(self.parameters.len()).map_err(|_| TooLong)?);
        for p in &self.parameters {
            out.put_u32_le(u32::try_from(p.len()).map_err(|_| TooLong)?);
            out.put_slice(p);
        }
        Ok(out.freeze())
    }

    pub(crate) fn decode(frame: &Bytes) -> Result<Self, BadFrame> {
        let mut r = Reader { buf: frame, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(BadFrame);
        }
        let origin = r.short_str()?;
        let target = match r.u8()? {
            0 => Target::All,
            1 => Target::Connection(r.uuid()?),
            kind @ (2 | 3) => {
                let len = usize::from(r.u16()?);
                let name: Arc<str> = std::str::from_utf8(r.take(len)?).map_err(|_| BadFrame)?.into();
                if kind == 2 { Target::User(name) } else { Target::Group(name) }
            }
            _ => return Err(BadFrame),
        };
        let mut audience = match target {
            Target::Connection(id) => Audience::connection(id),
            Target::User(u) => Audience::user(u),
            Target::Group(g) => Audience::group(g),
            _ => Audience::all(),
        };
        match r.u8()? {
            0 => {}
            1 => audience = audience.except(r.uuid()?),
            _ => return Err(BadFrame),
        }
        let contract_id = i64::from_le_bytes(r.take(8)?.try_into().map_err(|_| BadFrame)?);
        let event = r.short_str()?;
        let invocation_id = r.uuid()?;
        let count = usize::from(r.u16()?);
        // Each parameter takes at least its 4-byte length: no allocation beyond the input.
        if count > r.remaining() / 4 {
            return Err(BadFrame);
        }
        let mut parameters = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::try_from(r.u32()?).map_err(|_| BadFrame)?;
            let start = r.pos;
            r.take(len)?;
            parameters.push(frame.slice(start..start + len));
        }
        if r.remaining() != 0 {
            return Err(BadFrame);
        }
        Ok(Self { origin, audience, contract_id, event, invocation_id, parameters })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BadFrame> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(BadFrame)?;
        let out = self.buf.get(self.pos..end).ok_or(BadFrame)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, BadFrame> {
        self.take(1)?.first().copied().ok_or(BadFrame)
    }

    fn u16(&mut self) -> Result<u16, BadFrame> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| BadFrame)?))
    }

    fn u32(&mut self) -> Result<u32, BadFrame> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| BadFrame)?))
    }

    fn uuid(&mut self) -> Result<Uuid, BadFrame> {
        Ok(Uuid::from_bytes(self.take(16)?.try_into().map_err(|_| BadFrame)?))
    }

    fn short_str(&mut self) -> Result<String, BadFrame> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).map(str::to_owned).map_err(|_| BadFrame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(audience: Audience) -> Frame {
        Frame {
            origin: "node-a".into(),
            audience,
            contract_id: -42,
            event: "Message".into(),
            invocation_id: Uuid::new_v4(),
            parameters: vec![Bytes::from_static(b"\"hi\""), Bytes::new()],
        }
    }

    #[test]
    fn every_audience_round_trips() {
        let id = Uuid::new_v4();
        for audience in [
            Audience::all(),
            Audience::all().except(id),
            Audience::connection(id),
            Audience::user("ann"),
            Audience::group("room").except(id),
        ] {
            let f = frame(audience);
            assert_eq!(Frame::decode(&f.encode().unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn truncated_or_padded_frames_are_refused_without_panic() {
        let bytes = frame(Audience::group("g")).encode().unwrap();
        for n in 0..bytes.len() {
            assert_eq!(Frame::decode(&bytes.slice(..n)), Err(BadFrame), "prefix of {n} bytes");
        }
        let mut padded = bytes.to_vec();
        padded.push(0);
        assert_eq!(Frame::decode(&Bytes::from(padded)), Err(BadFrame));
        let mut other_version = bytes.to_vec();
        other_version[3] = 2;
        assert_eq!(Frame::decode(&Bytes::from(other_version)), Err(BadFrame));
    }

    #[test]
    fn a_huge_parameter_count_does_not_allocate() {
        let mut bytes = frame(Audience::all()).encode().unwrap().to_vec();
        // The count sits before the two parameters: "hi" with quotes (4 + 4 bytes), empty (4).
        let at = bytes.len() - 8 - 4 - 2;
        bytes[at] = 0xff;
        bytes[at + 1] = 0xff;
        assert_eq!(Frame::decode(&Bytes::from(bytes)), Err(BadFrame));
    }
}
