//! The subset of MemoryPack that protocol 3 uses, written by hand.
//!
//! Why not the `memorypack` crate (2.0.0, evaluated for this): its collection readers
//! pre-allocate `Vec::with_capacity(count)` from the peer's count without checking the
//! bytes that remain (a 9-byte frame can ask for gigabytes), and it has no
//! version-tolerant object layout, which every protocol-3 payload uses. The subset
//! needed here is small: primitives, strings, byte arrays, arrays, and the two object
//! layouts.
//!
//! Readers work on a borrowed [`Bytes`] so that byte arrays are sliced out of the
//! frame instead of copied. Every length read from the peer is checked against the
//! bytes that remain before anything is allocated, so a hostile length prefix can
//! never make us allocate more than the input itself justifies.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use uuid::Uuid;

use crate::error::CodecError;

/// MemoryPack's "null object" header byte.
pub(crate) const NULL_OBJECT: u8 = 0xFF;

/// Cursor over an input buffer.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    /// Reads stop here (a member's reader covers only the member).
    end: usize,
}

/// The UTF-16 length of `s`: its byte length when it is ASCII, as protocol strings
/// (names, positions) almost always are.
fn utf16_len_of(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.encode_utf16().count() }
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        let end = buf.len();
        Self { buf, pos: 0, end }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated { what, needed: n, available: self.remaining() });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    fn take_bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, CodecError> {
        self.take(n, what)?;
        Ok(self.buf.slice(self.pos - n..self.pos))
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(a))
    }

    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        Ok(self.u8(what)? != 0)
    }

    pub(crate) fn guid(&mut self, what: &'static str) -> Result<Uuid, CodecError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16, what)?);
        Ok(Uuid::from_bytes_le(a))
    }

    /// A collection or byte-array length: `-1` is null, other negatives are invalid.
    fn length(&mut self, what: &'static str) -> Result<Option<usize>, CodecError> {
        match self.i32(what)? {
            -1 => Ok(None),
            n if n < 0 => Err(CodecError::InvalidLength { what, length: n }),
            n => Ok(Some(n as usize)),
        }
    }

    pub(crate) fn byte_array(&mut self, what: &'static str) -> Result<Option<Bytes>, CodecError> {
        match self.length(what)? {
            None => Ok(None),
            Some(n) => self.take_bytes(n, what).map(Some),
        }
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<Option<String>, CodecError> {
        Ok(self.text(what)?.map(Cow::into_owned))
    }

    /// [`Reader::string`] into one shared allocation.
    pub(crate) fn shared_string(&mut self, what: &'static str) -> Result<Option<Arc<str>>, CodecError> {
        Ok(self.text(what)?.map(|t| Arc::from(&*t)))
    }

    /// A string as it is in the input (the UTF-8 form), or decoded (the UTF-16 form).
    fn text(&mut self, what: &'static str) -> Result<Option<Cow<'_, str>>, CodecError> {
        let head = self.i32(what)?;
        match head {
            -1 => Ok(None),
            0 => Ok(Some(Cow::Borrowed(""))),
            n if n < 0 => {
                // UTF-8 form: ~byteCount, utf16 length (ignored when <= 0), bytes.
                let byte_count = !n as usize;
                let utf16_len = self.i32(what)?;
                let raw = self.take(byte_count, what)?;
                let s = std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUtf8 { what })?;
                if utf16_len > 0 && utf16_len_of(s) != utf16_len as usize {
                    return Err(CodecError::Utf16LengthMismatch { what });
                }
                Ok(Some(Cow::Borrowed(s)))
            }
            n => {
                // UTF-16 form: char count, then UTF-16LE units.
                let units = n as usize;
                let raw =
                    self.take(units.checked_mul(2).ok_or(CodecError::InvalidLength { what, length: n })?, what)?;
                let u16s: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                String::from_utf16(&u16s).map(|s| Some(Cow::Owned(s))).map_err(|_| CodecError::InvalidUtf16 { what })
            }
        }
    }

    /// Reads an array count and checks that `count * min_element_size` bytes remain.
    pub(crate) fn array_len(
        &mut self,
        what: &'static str,
        min_element_size: usize,
    ) -> Result<Option<usize>, CodecError> {
        let Some(n) = self.length(what)? else { return Ok(None) };
        if n.saturating_mul(min_element_size) > self.remaining() {
            return Err(CodecError::Truncated {
                what,
                needed: n.saturating_mul(min_element_size),
                available: self.remaining(),
            });
        }
        Ok(Some(n))
    }

    /// MemoryPack VarInt (used for the member lengths of version-tolerant objects).
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<i64, CodecError> {
        let code = self.u8(what)? as i8;
        Ok(match code {
            0..=127 => i64::from(code),
            -120..=-1 => i64::from(code),
            -121 => i64::from(self.u8(what)?),
            -122 => i64::from(self.u8(what)? as i8),
            -123 => {
                let b = self.take(2, what)?;
                i64::from(u16::from_le_bytes([b[0], b[1]]))
            }
            -124 => {
                let b = self.take(2, what)?;
                i64::from(i16::from_le_bytes([b[0], b[1]]))
            }
            -125 => {
                let b = self.take(4, what)?;
                i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            -126 => i64::from(self.i32(what)?),
            -127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(self.take(8, what)?);
                let v = u64::from_le_bytes(a);
                i64::try_from(v).map_err(|_| CodecError::InvalidVarInt { what })?
            }
            -128 => self.i64(what)?,
        })
    }
}

/// Reads the header of a version-tolerant object and yields one sub-reader per member.
///
/// Returns `None` for a null object. Members beyond `known` are skipped by their
/// lengths; a reader for a missing member is `None`, so the caller keeps its default.
#[derive(Debug)]
pub(crate) struct TolerantObject {
    /// The input the members are in.
    buf: Bytes,
    /// Where each known member is in `buf`: start and length (`None`: not sent).
    members: [Option<(usize, usize)>; MAX_KNOWN_MEMBERS],
}

/// The most members a protocol object we read has (`WitRequest`: 11).
const MAX_KNOWN_MEMBERS: usize = 11;

impl TolerantObject {
    /// Reads the header and skips past every member; nothing is allocated or copied.
    pub(crate) fn read(r: &mut Reader, what: &'static str, known: usize) -> Result<Option<Self>, CodecError> {
        debug_assert!(known <= MAX_KNOWN_MEMBERS, "{what} has more members than TolerantObject keeps");
        let count = r.u8(what)?;
        if count == NULL_OBJECT {
            return Ok(None);
        }
        let count = usize::from(count);
        if count > 249 {
            return Err(CodecError::InvalidHeader { what, header: count as u8 });
        }
        let mut lengths = [0usize; MAX_KNOWN_MEMBERS];
        let mut total = 0usize;
        for i in 0..count {
            let len = r.varint(what)?;
            let len = usize::try_from(len).map_err(|_| CodecError::InvalidLength { what, length: len as i32 })?;
            if let Some(slot) = lengths.get_mut(i) {
                *slot = len;
            }
            total = total.saturating_add(len);
        }
        if total > r.remaining() {
            return Err(CodecError::Truncated { what, needed: total, available: r.remaining() });
        }
        let mut members = [None; MAX_KNOWN_MEMBERS];
        let mut at = r.pos;
        for (i, member) in members.iter_mut().enumerate().take(count.min(known)) {
            *member = Some((at, lengths[i]));
            at += lengths[i];
        }
        r.pos += total;
        Ok(Some(Self { buf: r.buf.clone(), members }))
    }

    /// Decodes member `i` with `f`, or returns `default` when the peer did not send it.
    /// The member's bytes must be consumed exactly.
    pub(crate) fn member<T>(
        &mut self,
        i: usize,
        what: &'static str,
        default: T,
        f: impl FnOnce(&mut Reader) -> Result<T, CodecError>,
    ) -> Result<T, CodecError> {
        match self.members.get_mut(i).and_then(Option::take) {
            // A zero length is how MemoryPack writes a member gap: it reads as the default.
            None | Some((_, 0)) => Ok(default),
            Some((start, len)) => {
                // The buffer moves into the member's reader and back: no reference count
                // traffic per member.
                let mut r = Reader { buf: std::mem::take(&mut self.buf), pos: start, end: start + len };
                let v = f(&mut r);
                self.buf = r.buf;
                let v = v?;
                if r.pos != r.end {
                    return Err(CodecError::MemberLengthMismatch { what, extra: r.end - r.pos });
                }
                Ok(v)
            }
        }
    }
}

/// Output buffer with MemoryPack primitives.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32_le(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64_le(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }

    pub(crate) fn guid(&mut self, v: &Uuid) {
        self.buf.extend_from_slice(&v.to_bytes_le());
    }

    pub(crate) fn byte_array(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.i32(-1),
            Some(b) => {
                self.i32(len_i32(b.len()));
                self.buf.extend_from_slice(b);
            }
        }
    }

    /// Writes a string the way .NET does with `StringEncoding = Utf8`.
    pub(crate) fn string(&mut self, v: Option<&str>) {
        match v {
            None => self.i32(-1),
            Some("") => self.i32(0),
            Some(s) => {
                self.i32(!len_i32(s.len()));
                let utf16 = if s.is_ascii() { s.len() } else { s.encode_utf16().count() };
                self.i32(len_i32(utf16));
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// VarInt exactly as .NET writes a non-negative length.
    pub(crate) fn varint_len(&mut self, n: usize) {
        if n <= 127 {
            self.u8(n as u8);
        } else if n <= i16::MAX as usize {
            self.u8(0x84);
            self.buf.extend_from_slice(&(n as i16).to_le_bytes());
        } else {
            self.u8(0x82);
            self.i32(len_i32(n));
        }
    }

    /// Appends the bytes of another writer.
    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// Builds a version-tolerant object: members are written into one scratch body,
/// their end offsets recorded, then header + VarInt lengths + body are emitted.
#[derive(Debug, Default)]
pub(crate) struct TolerantWriter {
    pub(crate) body: Writer,
    ends: [usize; 16],
    count: usize,
}

impl TolerantWriter {
    /// Marks the end of the member just written into `body`.
    pub(crate) fn end_member(&mut self) {
        debug_assert!(self.count < self.ends.len(), "protocol-3 payloads have at most 10 members");
        if let Some(slot) = self.ends.get_mut(self.count) {
            *slot = self.body.buf.len();
            self.count += 1;
        }
    }

    pub(crate) fn finish_into(self, out: &mut Writer) {
        out.u8(self.count as u8);
        let mut start = 0;
        for &end in &self.ends[..self.count] {
            out.varint_len(end - start);
            start = end;
        }
        out.raw(&self.body.buf);
    }
}

/// Lengths on the wire are int32; callers enforce message-size limits far below this.
fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
