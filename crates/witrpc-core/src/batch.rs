//! Replay batches (extension `replay-batch`): the events one resume replays, packed into
//! a few messages instead of one message each.
//!
//! A batch is the `Data` of a [`MessageType::REPLAY_BATCH`](crate::MessageType::REPLAY_BATCH)
//! envelope with the nil Guid as id ([`frame`]), sealed like any other message of the
//! connection:
//!
//! ```text
//! u8 version (1) | u32le count | count × ( u32le length | length bytes )
//! ```
//!
//! Each entry is exactly the `Data` the event would have had as its own callback
//! message (an encoded `WitRequest` with its `StreamPosition`), in the order the
//! events would have been sent. A batch holds at most [`MAX_BATCH_BYTES`] of entries,
//! except a single entry larger than that, which travels alone.
//!
//! ```
//! use witrpc_core::batch::{pack, unpack};
//!
//! let batches = pack([&b"first"[..], b"second"]);
//! assert_eq!(batches.len(), 1);
//! let entries = unpack(batches[0].clone()).unwrap();
//! assert_eq!(entries, [&b"first"[..], b"second"]);
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::error::CodecError;
use crate::message::{MessageType, WitMessage};

/// The batch format's version byte.
pub const BATCH_VERSION: u8 = 1;
/// Entry bytes one batch holds at most (unless its only entry is larger): small enough
/// that a batch's whole frame (envelope and WebSocket header too) fits a 4 KiB read
/// buffer, so a client reads a replay without growing its buffer, and does not keep a
/// grown one for the rest of the connection. (At 64 KiB, growing the buffers of 10,000
/// resuming clients to hold an 18 KB replay each was a seventh of their CPU, in page
/// faults; at 4,000, with the server writing such frames in place, the resume
/// benchmark's p99 fell by a tenth.)
pub const MAX_BATCH_BYTES: usize = 4000;
/// The version byte and the count.
const HEADER: usize = 1 + 4;

/// Packs `payloads`, in order, into as few batches as [`MAX_BATCH_BYTES`] allows.
/// No payloads, no batch.
pub fn pack<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<Bytes> {
    let mut batches = Vec::new();
    let mut current = BytesMut::new();
    let mut count: u32 = 0;
    for payload in payloads {
        let entries = current.len().saturating_sub(HEADER);
        if count > 0 && (entries + 4 + payload.len() > MAX_BATCH_BYTES || count == u32::MAX) {
            batches.push(finish(&mut current, count));
            count = 0;
        }
        if count == 0 {
            current.reserve(HEADER + MAX_BATCH_BYTES.max(4 + payload.len()));
            current.put_u8(BATCH_VERSION);
            current.put_u32_le(0);
        }
        // Payloads are frames a connection could send; each is far below 4 GiB.
        current.put_u32_le(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        current.put_slice(payload);
        count += 1;
    }
    if count > 0 {
        batches.push(finish(&mut current, count));
    }
    batches
}

fn finish(current: &mut BytesMut, count: u32) -> Bytes {
    current[1..HEADER].copy_from_slice(&count.to_le_bytes());
    current.split().freeze()
}

/// The envelope of one batch: `Type = 100`, the nil Guid as id (the same bytes for
/// every connection, so a batch is framed once for all of them).
pub fn frame(batch: Bytes) -> Bytes {
    WitMessage::new(Uuid::nil(), MessageType::REPLAY_BATCH, Some(batch)).encode().into()
}

/// The entries of one batch, as slices of it (nothing is copied).
///
/// # Errors
/// An unknown version, a count or a length past the end, or bytes after the last entry.
pub fn unpack(batch: Bytes) -> Result<Vec<Bytes>, CodecError> {
    Ok(entries(batch)?.collect())
}

/// The entries of one batch, one by one, once the whole batch is checked (nothing is
/// allocated or copied).
///
/// # Errors
/// As [`unpack`].
pub fn entries(batch: Bytes) -> Result<Entries, CodecError> {
    const WHAT: &str = "replay batch";
    let truncated = |needed: usize, available: usize| CodecError::Truncated { what: WHAT, needed, available };
    if batch.len() < HEADER {
        return Err(truncated(HEADER, batch.len()));
    }
    if batch[0] != BATCH_VERSION {
        return Err(CodecError::InvalidHeader { what: WHAT, header: batch[0] });
    }
    let count = u32::from_le_bytes([batch[1], batch[2], batch[3], batch[4]]) as usize;
    let mut at = HEADER;
    for _ in 0..count {
        let left = batch.len() - at;
        if left < 4 {
            return Err(truncated(4, left));
        }
        let len = entry_len(&batch, at);
        at += 4;
        if len > batch.len() - at {
            return Err(truncated(len, batch.len() - at));
        }
        at += len;
    }
    if at != batch.len() {
        return Err(CodecError::TrailingBytes { what: WHAT, extra: batch.len() - at });
    }
    Ok(Entries { batch, at: HEADER, left: count })
}

fn entry_len(batch: &[u8], at: usize) -> usize {
    u32::from_le_bytes([batch[at], batch[at + 1], batch[at + 2], batch[at + 3]]) as usize
}

/// The entries of a checked batch ([`entries`]), in order.
#[derive(Debug, Clone)]
pub struct Entries {
    batch: Bytes,
    at: usize,
    left: usize,
}

impl Iterator for Entries {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        // Checked by `entries`: every length and entry is within the batch.
        let len = entry_len(&self.batch, self.at);
        let entry = self.batch.slice(self.at + 4..self.at + 4 + len);
        self.at += 4 + len;
        self.left -= 1;
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_order_and_split_at_the_size_limit() {
        let payloads: Vec<Vec<u8>> = (0..300u32).map(|i| vec![(i % 251) as u8; 500 + (i as usize % 7)]).collect();
        let batches = pack(payloads.iter().map(Vec::as_slice));
        assert!(batches.len() > 1, "300 × ~500 bytes must not fit one batch");
        let mut unpacked = Vec::new();
        for batch in &batches {
            assert!(batch.len() <= HEADER + MAX_BATCH_BYTES, "batch of {} bytes", batch.len());
            unpacked.extend(unpack(batch.clone()).unwrap());
        }
        assert_eq!(unpacked.len(), payloads.len());
        assert!(unpacked.iter().zip(&payloads).all(|(a, b)| a[..] == b[..]));
        assert!(pack(std::iter::empty()).is_empty());
    }

    #[test]
    fn a_full_batch_frame_fits_a_4_kib_read_buffer() {
        let payloads: Vec<Vec<u8>> = (0..200).map(|i| vec![1u8; 150 + i % 7]).collect();
        let batches = pack(payloads.iter().map(Vec::as_slice));
        let fullest = batches.iter().map(|b| frame(b.clone()).len()).max().unwrap();
        // A WebSocket header for 126..=65535 bytes is 4 bytes (server frames are not masked).
        assert!(fullest + 4 <= 4096, "a batch frame of {fullest} bytes");
        assert!(fullest > 3500, "batches are filled: {fullest} bytes");
    }

    #[test]
    fn an_entry_larger_than_a_batch_travels_alone() {
        let big = vec![7u8; MAX_BATCH_BYTES + 1];
        let batches = pack([&b"a"[..], &big, b"b"]);
        let counts: Vec<usize> = batches.iter().map(|b| unpack(b.clone()).unwrap().len()).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert_eq!(unpack(batches[1].clone()).unwrap()[0].len(), big.len());
    }

    #[test]
    fn every_truncation_and_forgery_is_refused() {
        let batch = pack([&b"one"[..], b"two", b""]).remove(0);
        assert_eq!(unpack(batch.clone()).unwrap().len(), 3);
        for cut in 0..batch.len() {
            assert!(unpack(batch.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = batch.to_vec();
        longer.push(0);
        assert!(matches!(unpack(longer.into()), Err(CodecError::TrailingBytes { extra: 1, .. })));
        let mut version = batch.to_vec();
        version[0] = 2;
        assert!(matches!(unpack(version.into()), Err(CodecError::InvalidHeader { header: 2, .. })));
        // A huge count in a tiny message is refused without reserving for it.
        let huge = Bytes::from_static(&[1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(matches!(unpack(huge), Err(CodecError::Truncated { .. })));
        let long_entry = Bytes::from_static(&[1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1]);
        assert!(matches!(unpack(long_entry), Err(CodecError::Truncated { .. })));
    }
}
