#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! MessagePack parameters for witrpc, as the .NET WitRPC MessagePack plugin writes
//! them (MessagePack-CSharp with `Lz4Block` compression).
//!
//! Part of an independent, WitRPC-compatible implementation (not the official
//! WitRPC). Select it on both ends with `with_msgpack()`:
//! - values are encoded by `rmp-serde` in MessagePack-CSharp's shapes: compact
//!   integers, `float64` for `f64`, `bin` for byte arrays, structs as arrays in field
//!   order (what `[MessagePackObject]` with `[Key(n)]` writes);
//! - an encoding of 64 bytes or more is wrapped in MessagePack-CSharp's LZ4 block
//!   form: one `ext` value of type 99 holding the uncompressed length (`int32`) and
//!   the raw LZ4 block. Reading accepts both forms;
//! - a null value travels as an **empty** blob, as in .NET.
//!
//! DTOs: declare fields in `[Key(n)]` order; `byte[]` fields use
//! `#[serde(with = "witrpc_core::dotnet::byte_array")]`.
//!
//! ```
//! use witrpc_core::{decode_value, encode_value};
//! use witrpc_serializer_msgpack::MessagePackSerializer;
//!
//! let mp = MessagePackSerializer::new();
//! assert_eq!(encode_value(&mp, &2)?, [0x02]);
//! let long = "x".repeat(200);
//! let packed = encode_value(&mp, &long)?;
//! assert_eq!(packed[0], 0xc7); // ext8 holding the LZ4 block
//! assert_eq!(decode_value::<String>(&mp, &packed)?, long);
//! # Ok::<(), witrpc_core::ParameterError>(())
//! ```

mod lz4;

use witrpc_core::{DeserializeVisitor, ParameterError, ParameterErrorKind, ParameterSerializer, parameter_error};

const NAME: &str = "msgpack";
/// MessagePack `nil`.
const NIL: u8 = 0xc0;

/// The MessagePack parameter serializer.
#[derive(Debug, Clone, Copy)]
pub struct MessagePackSerializer {
    lz4: bool,
}

impl Default for MessagePackSerializer {
    fn default() -> Self {
        Self::new()
    }
}

impl MessagePackSerializer {
    /// With LZ4 block compression for values of 64 bytes or more, as .NET writes them.
    pub fn new() -> Self {
        Self { lz4: true }
    }

    /// Never compresses on write (reading still accepts compressed values). Only for
    /// peers configured without compression.
    pub fn without_compression() -> Self {
        Self { lz4: false }
    }
}

impl ParameterSerializer for MessagePackSerializer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError> {
        let plain = rmp_serde::to_vec(value).map_err(|e| parameter_error(ParameterErrorKind::Encode, NAME, e))?;
        if plain == [NIL] {
            return Ok(Vec::new());
        }
        if self.lz4 && plain.len() >= lz4::MIN_COMPRESSED_INPUT {
            return Ok(lz4::wrap(&plain));
        }
        Ok(plain)
    }

    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError> {
        let decode = |e: Box<dyn std::error::Error + Send + Sync>| parameter_error(ParameterErrorKind::Decode, NAME, e);
        let unpacked = lz4::unwrap(bytes).map_err(|e| decode(e.into()))?;
        let input: &[u8] = match &unpacked {
            Some(v) => v,
            None if bytes.is_empty() => &[NIL],
            None => bytes,
        };
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(input));
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de)).map_err(|e| decode(e.into()))?;
        let used = usize::try_from(de.position()).unwrap_or(usize::MAX);
        if used != input.len() {
            return Err(decode(
                format!("{} unexpected bytes after the value", input.len().saturating_sub(used)).into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use witrpc_core::{ByteArray, decode_value, encode_value};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Dto {
        name: String,
        count: i32,
    }

    #[test]
    fn writes_messagepack_csharp_shapes() {
        let mp = MessagePackSerializer::new();
        assert_eq!(encode_value(&mp, &2).unwrap(), [0x02]);
        assert_eq!(encode_value(&mp, &-1).unwrap(), [0xff]);
        assert_eq!(encode_value(&mp, &300).unwrap(), [0xcd, 0x01, 0x2c]);
        assert_eq!(encode_value(&mp, &1.5f64).unwrap(), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_value(&mp, "hi").unwrap(), [0xa2, b'h', b'i']);
        assert_eq!(encode_value(&mp, &None::<i32>).unwrap(), b"");
        assert_eq!(encode_value(&mp, &ByteArray(vec![1, 2, 3])).unwrap(), [0xc4, 3, 1, 2, 3]);
        assert_eq!(encode_value(&mp, &Dto { name: "x".into(), count: 2 }).unwrap(), [0x92, 0xa1, b'x', 0x02]);
    }

    #[test]
    fn large_values_use_the_lz4_ext_form_and_come_back() {
        let mp = MessagePackSerializer::new();
        let long = "abc".repeat(100);
        let packed = encode_value(&mp, &long).unwrap();
        // ext8 | len | type 99 | int32 uncompressed length (big-endian) | LZ4 block
        assert_eq!(packed[0], 0xc7);
        assert_eq!(usize::from(packed[1]), packed.len() - 3);
        assert_eq!(packed[2], 99);
        assert_eq!(packed[3], 0xd2);
        let plain_len = rmp_serde::to_vec(&long).unwrap().len() as u32;
        assert_eq!(packed[4..8], plain_len.to_be_bytes());
        assert_eq!(decode_value::<String>(&mp, &packed).unwrap(), long);
        // Uncompressed large values are accepted too, and compression can be turned off.
        let plain = encode_value(&MessagePackSerializer::without_compression(), &long).unwrap();
        assert_eq!(plain[0], 0xda);
        assert_eq!(decode_value::<String>(&mp, &plain).unwrap(), long);
        // Just below the threshold stays plain.
        let short = encode_value(&mp, &"y".repeat(60)).unwrap();
        assert_eq!(short[0], 0xd9);
    }

    #[test]
    fn a_hostile_uncompressed_length_is_rejected_before_allocating() {
        let mp = MessagePackSerializer::new();
        // ext8, 6 bytes, type 99, int32 0x7fffffff, one literal byte.
        let bomb = [0xc7, 6, 99, 0xd2, 0x7f, 0xff, 0xff, 0xff, 0x00];
        let err = decode_value::<String>(&mp, &bomb).unwrap_err();
        assert_eq!(err.kind, ParameterErrorKind::Decode);
        let negative = [0xc7, 6, 99, 0xd2, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode_value::<String>(&mp, &negative).is_err());
    }

    #[test]
    fn trailing_bytes_and_type_mismatches_are_decode_errors() {
        let mp = MessagePackSerializer::new();
        assert!(decode_value::<i32>(&mp, &[0x01, 0x02]).is_err());
        assert!(decode_value::<i32>(&mp, &[0xa1, b'x']).is_err());
        assert!(decode_value::<i32>(&mp, b"").is_err());
        assert_eq!(decode_value::<Option<i32>>(&mp, b"").unwrap(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mp = MessagePackSerializer::new();
            let _ = decode_value::<i32>(&mp, &bytes);
            let _ = decode_value::<String>(&mp, &bytes);
            let _ = decode_value::<Dto>(&mp, &bytes);
            let _ = decode_value::<Vec<Option<f64>>>(&mp, &bytes);
            let mut ext = vec![0xc7, bytes.len().min(255) as u8, 99];
            ext.extend_from_slice(&bytes);
            let _ = decode_value::<String>(&mp, &ext);
        }

        #[test]
        fn values_round_trip(name in ".{0,200}", count in any::<i32>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mp = MessagePackSerializer::new();
            let dto = Dto { name, count };
            let bytes = encode_value(&mp, &dto).unwrap();
            prop_assert_eq!(decode_value::<Dto>(&mp, &bytes).unwrap(), dto);
            let blob = encode_value(&mp, &ByteArray(data.clone())).unwrap();
            prop_assert_eq!(decode_value::<ByteArray>(&mp, &blob).unwrap().0, data);
        }
    }
}
