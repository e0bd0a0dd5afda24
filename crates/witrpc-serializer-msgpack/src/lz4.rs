//! MessagePack-CSharp's `Lz4Block` form: one `ext` value of type 99 whose payload is a
//! MessagePack integer (the uncompressed length) followed by a raw LZ4 block.

use std::borrow::Cow;

use crate::error::DecodeError;
use crate::limits::{LZ4_RATIO_SLACK, MAX_LZ4_RATIO, MAX_UNCOMPRESSED_LEN};

/// MessagePack-CSharp writes encodings shorter than this uncompressed.
pub(crate) const COMPRESSION_THRESHOLD: usize = 64;
/// MessagePack-CSharp's extension type code for an LZ4 block.
const EXT_LZ4_BLOCK: i8 = 99;

// MessagePack markers used here.
const FIXEXT1: u8 = 0xd4;
const FIXEXT2: u8 = 0xd5;
const FIXEXT4: u8 = 0xd6;
const FIXEXT8: u8 = 0xd7;
const FIXEXT16: u8 = 0xd8;
const EXT8: u8 = 0xc7;
const EXT16: u8 = 0xc8;
const EXT32: u8 = 0xc9;
const UINT8: u8 = 0xcc;
const UINT16: u8 = 0xcd;
const UINT32: u8 = 0xce;
const UINT64: u8 = 0xcf;
const INT8: u8 = 0xd0;
const INT16: u8 = 0xd1;
const INT32: u8 = 0xd2;
const INT64: u8 = 0xd3;

/// Wraps `plain` in the LZ4 extension, as MessagePack-CSharp's `Lz4Block` does.
///
/// Returns `None` when `plain` is too large for the `int32` length field (over 2 GiB);
/// the caller then sends it uncompressed, which every reader accepts.
pub(crate) fn compress(plain: &[u8]) -> Option<Vec<u8>> {
    let declared = i32::try_from(plain.len()).ok()?;
    let block = lz4_flex::block::compress(plain);
    // MessagePack-CSharp always writes the length as a 5-byte int32.
    let payload_len = u32::try_from(block.len().checked_add(5)?).ok()?;
    let mut out = Vec::with_capacity(block.len() + 11);
    write_ext_header(&mut out, payload_len, EXT_LZ4_BLOCK);
    out.push(INT32);
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(&block);
    Some(out)
}

/// The MessagePack value inside `bytes`: `bytes` itself, or the decompressed content
/// when `bytes` is one LZ4 extension (which is then all of `bytes`).
///
/// The declared length is checked against [`MAX_UNCOMPRESSED_LEN`] and against what
/// the block could possibly expand to before anything is allocated.
pub(crate) fn decompress(bytes: &[u8], max_len: usize) -> Result<Cow<'_, [u8]>, DecodeError> {
    let Some((len, EXT_LZ4_BLOCK, rest)) = read_ext_header(bytes) else {
        return Ok(Cow::Borrowed(bytes));
    };
    let Some((payload, trailing)) = rest.split_at_checked(len) else {
        return Err(DecodeError::TruncatedExtension { declared: len, available: rest.len() });
    };
    if !trailing.is_empty() {
        return Err(DecodeError::TrailingBytes { extra: trailing.len() });
    }
    // .NET reads the length with `ReadInt32`, which takes any integer encoding.
    let (declared, block) = read_int(payload).ok_or(DecodeError::MissingUncompressedLength)?;
    let declared = u64::try_from(declared).map_err(|_| DecodeError::NegativeUncompressedLength {
        declared: i64::try_from(declared).unwrap_or(i64::MIN),
    })?;
    // usize -> u64 is lossless on every target Rust supports.
    let limit = (block.len() as u64)
        .saturating_mul(MAX_LZ4_RATIO)
        .saturating_add(LZ4_RATIO_SLACK)
        .min(max_len.min(MAX_UNCOMPRESSED_LEN) as u64);
    let implausible = || DecodeError::ImplausibleUncompressedLength { declared, compressed: block.len(), limit };
    if declared > limit {
        return Err(implausible());
    }
    let declared = usize::try_from(declared).map_err(|_| implausible())?;
    let mut out = vec![0; declared];
    let actual = lz4_flex::block::decompress_into(block, &mut out).map_err(DecodeError::InvalidLz4Block)?;
    if actual != declared {
        return Err(DecodeError::UncompressedLengthMismatch { declared, actual });
    }
    Ok(Cow::Owned(out))
}

/// Writes the smallest extension header for a payload of `len` bytes, as MessagePack does.
fn write_ext_header(out: &mut Vec<u8>, len: u32, ext_type: i8) {
    match len {
        1 => out.push(FIXEXT1),
        2 => out.push(FIXEXT2),
        4 => out.push(FIXEXT4),
        8 => out.push(FIXEXT8),
        16 => out.push(FIXEXT16),
        _ => {
            if let Ok(n) = u8::try_from(len) {
                out.extend_from_slice(&[EXT8, n]);
            } else if let Ok(n) = u16::try_from(len) {
                out.push(EXT16);
                out.extend_from_slice(&n.to_be_bytes());
            } else {
                out.push(EXT32);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&ext_type.to_be_bytes());
}

/// Reads an extension header: payload length, type code, and the bytes after the header.
/// `None` when `bytes` does not start with a complete extension header.
fn read_ext_header(bytes: &[u8]) -> Option<(usize, i8, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    let (len, rest) = match marker {
        FIXEXT1 => (1, rest),
        FIXEXT2 => (2, rest),
        FIXEXT4 => (4, rest),
        FIXEXT8 => (8, rest),
        FIXEXT16 => (16, rest),
        EXT8 => {
            let (&n, rest) = rest.split_first()?;
            (usize::from(n), rest)
        }
        EXT16 => {
            let (n, rest) = rest.split_first_chunk()?;
            (usize::from(u16::from_be_bytes(*n)), rest)
        }
        EXT32 => {
            let (n, rest) = rest.split_first_chunk()?;
            (usize::try_from(u32::from_be_bytes(*n)).ok()?, rest)
        }
        _ => return None,
    };
    let (ext_type, rest) = rest.split_first_chunk()?;
    Some((len, i8::from_be_bytes(*ext_type), rest))
}

/// Reads one MessagePack integer of any width from the start of `bytes`.
fn read_int(bytes: &[u8]) -> Option<(i128, &[u8])> {
    fn be<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
        bytes.split_first_chunk().map(|(n, rest)| (*n, rest))
    }
    let (&marker, rest) = bytes.split_first()?;
    Some(match marker {
        0x00..=0x7f => (i128::from(marker), rest),
        0xe0..=0xff => (i128::from(i8::from_be_bytes([marker])), rest),
        UINT8 => be(rest).map(|(n, rest)| (i128::from(u8::from_be_bytes(n)), rest))?,
        UINT16 => be(rest).map(|(n, rest)| (i128::from(u16::from_be_bytes(n)), rest))?,
        UINT32 => be(rest).map(|(n, rest)| (i128::from(u32::from_be_bytes(n)), rest))?,
        UINT64 => be(rest).map(|(n, rest)| (i128::from(u64::from_be_bytes(n)), rest))?,
        INT8 => be(rest).map(|(n, rest)| (i128::from(i8::from_be_bytes(n)), rest))?,
        INT16 => be(rest).map(|(n, rest)| (i128::from(i16::from_be_bytes(n)), rest))?,
        INT32 => be(rest).map(|(n, rest)| (i128::from(i32::from_be_bytes(n)), rest))?,
        INT64 => be(rest).map(|(n, rest)| (i128::from(i64::from_be_bytes(n)), rest))?,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An LZ4 extension (ext8) with `payload` as given.
    fn ext8(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![EXT8, u8::try_from(payload.len()).unwrap(), 99];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_block_may_not_inflate_past_the_given_limit() {
        let plain = vec![b'a'; 10_000];
        let packed = compress(&[&[0xc5, 0x27, 0x10][..], &plain].concat()).unwrap();
        assert!(decompress(&packed, 20_000).is_ok());
        assert!(
            matches!(decompress(&packed, 5_000), Err(DecodeError::ImplausibleUncompressedLength { limit: 5_000, .. })),
            "the declared size is over the limit before anything is inflated"
        );
    }

    #[test]
    fn extension_headers_use_the_smallest_form() {
        let cases: [(u32, &[u8]); 11] = [
            (1, &[0xd4]),
            (2, &[0xd5]),
            (3, &[0xc7, 3]),
            (4, &[0xd6]),
            (8, &[0xd7]),
            (16, &[0xd8]),
            (17, &[0xc7, 17]),
            (255, &[0xc7, 0xff]),
            (256, &[0xc8, 0x01, 0x00]),
            (65_535, &[0xc8, 0xff, 0xff]),
            (65_536, &[0xc9, 0x00, 0x01, 0x00, 0x00]),
        ];
        for (len, header) in cases {
            let mut out = Vec::new();
            write_ext_header(&mut out, len, 99);
            assert_eq!(out[..out.len() - 1], *header, "{len}");
            assert_eq!(out.last(), Some(&99));
            out.push(0xaa);
            let (read_len, ext_type, rest) = read_ext_header(&out).unwrap();
            assert_eq!((read_len, ext_type, rest), (len as usize, 99, &[0xaa][..]));
        }
    }

    #[test]
    fn the_length_may_be_any_integer_encoding() {
        let plain = [0x01u8; 80];
        let block = lz4_flex::block::compress(&plain);
        for length in
            [&[80u8][..], &[0xcc, 80], &[0xcd, 0, 80], &[0xce, 0, 0, 0, 80], &[0xd0, 80], &[0xd2, 0, 0, 0, 80]]
        {
            let mut payload = length.to_vec();
            payload.extend_from_slice(&block);
            assert_eq!(decompress(&ext8(&payload), MAX_UNCOMPRESSED_LEN).unwrap(), &plain[..], "{length:?}");
        }
    }

    #[test]
    fn values_that_are_not_an_lz4_extension_pass_through() {
        for bytes in [&[][..], &[0x02], &[0xc7], &[0xc7, 1], &[0xd4, 98, 0], &[0xc8, 0]] {
            assert!(
                matches!(decompress(bytes, MAX_UNCOMPRESSED_LEN).unwrap(), Cow::Borrowed(b) if b == bytes),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn malformed_extensions_are_typed_errors() {
        let block = lz4_flex::block::compress(&[0x01; 80]);
        let mut good = vec![0xd2, 0, 0, 0, 80];
        good.extend_from_slice(&block);

        let mut truncated = ext8(&good);
        truncated.pop();
        assert!(matches!(decompress(&truncated, MAX_UNCOMPRESSED_LEN), Err(DecodeError::TruncatedExtension { .. })));
        let mut trailing = ext8(&good);
        trailing.push(0);
        assert!(matches!(decompress(&trailing, MAX_UNCOMPRESSED_LEN), Err(DecodeError::TrailingBytes { extra: 1 })));
        assert!(matches!(
            decompress(&ext8(&[0xa1, b'x']), MAX_UNCOMPRESSED_LEN),
            Err(DecodeError::MissingUncompressedLength)
        ));
        assert!(matches!(decompress(&ext8(&[]), MAX_UNCOMPRESSED_LEN), Err(DecodeError::MissingUncompressedLength)));
        assert!(matches!(
            decompress(&ext8(&[0xd2, 0xff, 0xff, 0xff, 0xff, 0]), MAX_UNCOMPRESSED_LEN),
            Err(DecodeError::NegativeUncompressedLength { declared: -1 })
        ));

        let mut longer = vec![0xd2, 0, 0, 0, 81];
        longer.extend_from_slice(&block);
        assert!(matches!(
            decompress(&ext8(&longer), MAX_UNCOMPRESSED_LEN),
            Err(DecodeError::UncompressedLengthMismatch { declared: 81, actual: 80 })
        ));
        let mut shorter = vec![0xd2, 0, 0, 0, 79];
        shorter.extend_from_slice(&block);
        assert!(matches!(decompress(&ext8(&shorter), MAX_UNCOMPRESSED_LEN), Err(DecodeError::InvalidLz4Block(_))));
        assert!(matches!(
            decompress(&ext8(&[0xd2, 0, 0, 0, 10, 0xff]), MAX_UNCOMPRESSED_LEN),
            Err(DecodeError::InvalidLz4Block(_))
        ));
    }

    #[test]
    fn implausible_lengths_are_rejected_before_allocating() {
        let limit_for_one_byte = 255 + 64;
        for (declared, limit) in [
            (0x7fff_ffff_u64, limit_for_one_byte),
            (u64::MAX, limit_for_one_byte),
            (limit_for_one_byte + 1, limit_for_one_byte),
        ] {
            let mut payload = vec![0xcf];
            payload.extend_from_slice(&declared.to_be_bytes());
            payload.push(0x00);
            match decompress(&ext8(&payload), MAX_UNCOMPRESSED_LEN) {
                Err(DecodeError::ImplausibleUncompressedLength { declared: d, compressed: 1, limit: l }) => {
                    assert_eq!((d, l), (declared, limit));
                }
                other => panic!("{declared}: {other:?}"),
            }
        }
        // A block large enough for the ratio still cannot claim more than the cap.
        let mut payload = vec![0xd2, 0x7f, 0xff, 0xff, 0xff];
        payload.extend_from_slice(&vec![0u8; 600_000]);
        let mut bytes = vec![EXT32];
        bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        bytes.push(99);
        bytes.extend_from_slice(&payload);
        assert!(matches!(
            decompress(&bytes, MAX_UNCOMPRESSED_LEN),
            Err(DecodeError::ImplausibleUncompressedLength { limit, .. }) if limit == MAX_UNCOMPRESSED_LEN as u64
        ));
    }

    proptest! {
        #[test]
        fn compressed_values_come_back(plain in proptest::collection::vec(any::<u8>(), 0..2_000), runs in 0usize..2_000) {
            let mut plain = plain;
            plain.extend(std::iter::repeat_n(7u8, runs));
            let packed = compress(&plain).unwrap();
            prop_assert_eq!(decompress(&packed, MAX_UNCOMPRESSED_LEN).unwrap(), &plain[..]);
        }

        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = vec![EXT16];
            bytes.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
            bytes.push(99);
            bytes.extend_from_slice(&payload);
            let _ = decompress(&bytes, MAX_UNCOMPRESSED_LEN);
            let _ = decompress(&payload, MAX_UNCOMPRESSED_LEN);
        }
    }
}
