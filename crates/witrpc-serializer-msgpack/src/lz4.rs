//! MessagePack-CSharp's `Lz4Block` envelope: `ext(99) { int32 uncompressed length, LZ4 block }`.

/// MessagePack-CSharp leaves encodings shorter than this uncompressed.
pub(crate) const MIN_COMPRESSED_INPUT: usize = 64;
/// The extension type code of an LZ4 block.
const EXT_LZ4_BLOCK: i8 = 99;
/// LZ4 cannot expand data by more than ~255x; a declared size beyond that is a lie.
const MAX_RATIO: usize = 255;
/// Upper bound on a decompressed value regardless of ratio.
const MAX_UNCOMPRESSED: usize = 64 * 1024 * 1024;

/// Wraps `plain` in the LZ4 ext form.
pub(crate) fn wrap(plain: &[u8]) -> Vec<u8> {
    let block = lz4_flex::block::compress(plain);
    let payload_len = 5 + block.len();
    let mut out = Vec::with_capacity(payload_len + 6);
    match payload_len {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        n if n <= 0xff => out.extend_from_slice(&[0xc7, n as u8]),
        n if n <= 0xffff => {
            out.push(0xc8);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0xc9);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.push(EXT_LZ4_BLOCK as u8);
    out.push(0xd2);
    out.extend_from_slice(&(plain.len() as i32).to_be_bytes());
    out.extend_from_slice(&block);
    out
}

/// Returns the decompressed value if `bytes` is the LZ4 ext form, `None` if it is not.
pub(crate) fn unwrap(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let Some((&marker, rest)) = bytes.split_first() else { return Ok(None) };
    let (len, rest) = match marker {
        0xd4 => (1, rest),
        0xd5 => (2, rest),
        0xd6 => (4, rest),
        0xd7 => (8, rest),
        0xd8 => (16, rest),
        0xc7 => match rest.split_first() {
            Some((&n, rest)) => (usize::from(n), rest),
            None => return Ok(None),
        },
        0xc8 => match (rest.get(..2), rest.get(2..)) {
            (Some(n), Some(rest)) => (usize::from(u16::from_be_bytes([n[0], n[1]])), rest),
            _ => return Ok(None),
        },
        0xc9 => match (rest.get(..4), rest.get(4..)) {
            (Some(n), Some(rest)) => (u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize, rest),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some((&ext_type, payload)) = rest.split_first() else { return Ok(None) };
    if ext_type as i8 != EXT_LZ4_BLOCK {
        return Ok(None);
    }
    if payload.len() != len {
        return Err(format!("LZ4 extension declares {len} bytes but {} follow", payload.len()));
    }
    let (declared, block) = match payload {
        [0xd2, a, b, c, d, block @ ..] => (i32::from_be_bytes([*a, *b, *c, *d]), block),
        _ => return Err("LZ4 extension does not start with an int32 length".to_owned()),
    };
    let declared = usize::try_from(declared).map_err(|_| format!("negative LZ4 length {declared}"))?;
    if declared > MAX_UNCOMPRESSED || declared > block.len().saturating_mul(MAX_RATIO).saturating_add(64) {
        return Err(format!("implausible LZ4 length {declared} for a {}-byte block", block.len()));
    }
    let mut out = vec![0u8; declared];
    let n = lz4_flex::block::decompress_into(block, &mut out).map_err(|e| format!("invalid LZ4 block: {e}"))?;
    if n != declared {
        return Err(format!("LZ4 block holds {n} bytes, header says {declared}"));
    }
    Ok(Some(out))
}
