//! [`MessagePackSerializer`]: one value to MessagePack (LZ4-compressed when large) and back.

use witrpc_core::{DeserializeVisitor, ParameterError, ParameterErrorKind, ParameterSerializer, parameter_error};

use crate::error::DecodeError;
use crate::limits::{MAX_DEPTH, MAX_UNCOMPRESSED_LEN};
use crate::lz4;

/// The serializer's name in logs and errors.
const NAME: &str = "msgpack";
/// MessagePack `nil`; .NET sends an empty blob instead.
const NIL: u8 = 0xc0;

/// The MessagePack parameter serializer (MessagePack-CSharp with `Lz4Block`, as the
/// .NET WitRPC MessagePack plugin uses it).
///
/// See the crate docs for the wire conventions. [`Default`] is [`new`](Self::new).
#[derive(Debug, Clone, Copy)]
pub struct MessagePackSerializer {
    /// Whether values of 64 bytes or more are written LZ4-compressed.
    lz4: bool,
    /// Largest size a compressed value may inflate to.
    max_uncompressed: usize,
}

impl MessagePackSerializer {
    /// Compresses values whose MessagePack encoding is 64 bytes or more with LZ4, as
    /// the .NET plugin's helpers do (they pass `Lz4Block` by default).
    pub const fn new() -> Self {
        Self { lz4: true, max_uncompressed: MAX_UNCOMPRESSED_LEN }
    }

    /// Never compresses on write. Reading still accepts compressed values; use this
    /// only for peers whose MessagePack options have no compression.
    pub const fn without_compression() -> Self {
        Self { lz4: false, max_uncompressed: MAX_UNCOMPRESSED_LEN }
    }

    /// Refuses compressed values that would inflate past `max_len` bytes (default and
    /// upper bound [`MAX_UNCOMPRESSED_LEN`]); a witrpc server sets its message-size
    /// limit here by itself.
    pub const fn with_max_uncompressed_len(mut self, max_len: usize) -> Self {
        self.max_uncompressed = if max_len < MAX_UNCOMPRESSED_LEN { max_len } else { MAX_UNCOMPRESSED_LEN };
        self
    }
}

impl Default for MessagePackSerializer {
    fn default() -> Self {
        Self::new()
    }
}

impl ParameterSerializer for MessagePackSerializer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn with_max_decoded_len(&self, max_len: usize) -> Option<std::sync::Arc<dyn ParameterSerializer>> {
        Some(std::sync::Arc::new(self.with_max_uncompressed_len(max_len)))
    }

    /// Writes `value` as MessagePack; a value that writes as `nil` gives no bytes.
    ///
    /// # Errors
    /// [`ParameterErrorKind::Encode`] when the value's own `Serialize` fails, or
    /// rmp-serde cannot represent it.
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError> {
        // rmp-serde's defaults are MessagePack-CSharp's shapes: structs as arrays, and not
        // human-readable, so `byte[]` helpers write `bin`.
        let plain = rmp_serde::to_vec(value).map_err(|e| parameter_error(ParameterErrorKind::Encode, NAME, e))?;
        if plain == [NIL] {
            return Ok(Vec::new());
        }
        if self.lz4 && plain.len() >= lz4::COMPRESSION_THRESHOLD {
            if let Some(packed) = lz4::compress(&plain) {
                return Ok(packed);
            }
        }
        Ok(plain)
    }

    /// Reads one MessagePack value, plain or LZ4-compressed; empty input reads as `nil`.
    ///
    /// # Errors
    /// [`ParameterErrorKind::Decode`] when the input is not one value of the shape the
    /// visitor expects, is nested [`MAX_DEPTH`](crate::MAX_DEPTH) levels deep, has
    /// trailing data, or has a malformed LZ4 extension (a [`DecodeError`] source).
    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError> {
        let value = lz4::decompress(bytes, self.max_uncompressed).map_err(decode_error)?;
        let mut rest: &[u8] = if bytes.is_empty() { &[NIL] } else { &value };
        {
            // Reading from a slice never sizes a buffer by a declared length before the
            // bytes are there; `rest` advances past what the value used.
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            de.set_max_depth(MAX_DEPTH);
            visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de)).map_err(decode_error)?;
        }
        if !rest.is_empty() {
            return Err(decode_error(DecodeError::TrailingBytes { extra: rest.len() }));
        }
        Ok(())
    }
}

fn decode_error(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ParameterError {
    parameter_error(ParameterErrorKind::Decode, NAME, source)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use witrpc_core::{ByteArray, decode_value, encode_value};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Dto {
        name: String,
        count: i32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Nested {
        id: i64,
        note: Option<String>,
        items: Vec<Dto>,
        #[serde(with = "witrpc_core::dotnet::byte_array")]
        data: Vec<u8>,
        ratio: f64,
    }

    /// A recursive shape: nesting depth is chosen by the input.
    #[derive(Debug, Deserialize)]
    struct Node(#[expect(dead_code, reason = "only decoded")] Vec<Node>);

    /// Buffers arbitrary input through serde's untagged-enum path.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Int(#[expect(dead_code, reason = "only decoded")] i64),
        List(#[expect(dead_code, reason = "only decoded")] Vec<Untagged>),
    }

    /// Serializes and deserializes as the format's `is_human_readable()`.
    struct HumanReadable(bool);

    impl Serialize for HumanReadable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let readable = s.is_human_readable();
            s.serialize_bool(readable)
        }
    }

    impl<'de> Deserialize<'de> for HumanReadable {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let readable = d.is_human_readable();
            serde::de::IgnoredAny::deserialize(d)?;
            Ok(Self(readable))
        }
    }

    struct FailsToSerialize;

    impl Serialize for FailsToSerialize {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }

    fn source(err: &ParameterError) -> Option<&DecodeError> {
        err.source.downcast_ref::<DecodeError>()
    }

    /// `levels` nested arrays: one-element arrays around an empty one.
    fn nested(levels: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; levels - 1];
        bytes.push(0x90);
        bytes
    }

    #[test]
    fn writes_messagepack_csharp_shapes() {
        let mp = MessagePackSerializer::new();
        assert_eq!(mp.name(), "msgpack");
        assert_eq!(encode_value(&mp, &2).unwrap(), [0x02]);
        assert_eq!(encode_value(&mp, &-1).unwrap(), [0xff]);
        assert_eq!(encode_value(&mp, &300).unwrap(), [0xcd, 0x01, 0x2c]);
        assert_eq!(encode_value(&mp, &-200i64).unwrap(), [0xd1, 0xff, 0x38]);
        assert_eq!(encode_value(&mp, &1.5f64).unwrap(), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_value(&mp, &true).unwrap(), [0xc3]);
        assert_eq!(encode_value(&mp, "hi").unwrap(), [0xa2, b'h', b'i']);
        assert_eq!(encode_value(&mp, &ByteArray(vec![1, 2, 3])).unwrap(), [0xc4, 3, 1, 2, 3]);
        assert_eq!(encode_value(&mp, &vec![1u8, 2]).unwrap(), [0x92, 1, 2]);
        assert_eq!(encode_value(&mp, &Dto { name: "x".into(), count: 2 }).unwrap(), [0x92, 0xa1, b'x', 0x02]);
        assert_eq!(encode_value(&mp, &Some(3)).unwrap(), [0x03]);
    }

    #[test]
    fn the_format_is_not_human_readable() {
        let mp = MessagePackSerializer::new();
        assert_eq!(encode_value(&mp, &HumanReadable(true)).unwrap(), [0xc2]);
        assert!(!decode_value::<HumanReadable>(&mp, &[0x01]).unwrap().0);
        assert_eq!(decode_value::<ByteArray>(&mp, &[0xc4, 3, 1, 2, 3]).unwrap().0, [1, 2, 3]);
    }

    #[test]
    fn null_is_an_empty_blob() {
        let mp = MessagePackSerializer::new();
        assert_eq!(encode_value(&mp, &None::<i32>).unwrap(), b"");
        assert_eq!(encode_value(&mp, &()).unwrap(), b"");
        assert_eq!(decode_value::<Option<i32>>(&mp, b"").unwrap(), None);
        assert_eq!(decode_value::<Option<Dto>>(&mp, b"").unwrap(), None);
        assert_eq!(decode_value::<Option<i32>>(&mp, &[NIL]).unwrap(), None);
        decode_value::<()>(&mp, b"").unwrap();
        // Nulls inside a value are written.
        assert_eq!(encode_value(&mp, &vec![None, Some(1)]).unwrap(), [0x92, NIL, 0x01]);
    }

    #[test]
    fn large_values_use_the_lz4_extension_and_come_back() {
        let mp = MessagePackSerializer::new();
        let long = "x".repeat(200);
        let plain = rmp_serde::to_vec(&long).unwrap();
        let packed = encode_value(&mp, &long).unwrap();
        // ext8 | payload length | type 99 | int32 uncompressed length | LZ4 block
        assert_eq!(packed[0], 0xc7);
        assert_eq!(usize::from(packed[1]), packed.len() - 3);
        assert_eq!(packed[2], 99);
        assert_eq!(packed[3], 0xd2);
        assert_eq!(packed[4..8], u32::try_from(plain.len()).unwrap().to_be_bytes());
        assert_eq!(lz4_flex::block::decompress(&packed[8..], plain.len()).unwrap(), plain);
        assert_eq!(decode_value::<String>(&mp, &packed).unwrap(), long);
        assert_eq!(decode_value::<String>(&MessagePackSerializer::without_compression(), &packed).unwrap(), long);

        // Incompressible and larger: ext16.
        let noise: Vec<u8> = (0..400u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let packed = encode_value(&mp, &ByteArray(noise.clone())).unwrap();
        assert_eq!(packed[0], 0xc8);
        assert_eq!(usize::from(u16::from_be_bytes([packed[1], packed[2]])), packed.len() - 4);
        assert_eq!(packed[3], 99);
        assert_eq!(decode_value::<ByteArray>(&mp, &packed).unwrap().0, noise);
    }

    #[test]
    fn compression_starts_at_64_bytes() {
        let mp = MessagePackSerializer::new();
        // str8 header (2 bytes) + 61 = 63 bytes: plain; + 62 = 64 bytes: compressed.
        assert_eq!(encode_value(&mp, &"y".repeat(61)).unwrap()[0], 0xd9);
        assert_eq!(encode_value(&mp, &"y".repeat(62)).unwrap()[2], 99);
        let plain = encode_value(&MessagePackSerializer::without_compression(), &"y".repeat(200)).unwrap();
        assert_eq!(plain[..2], [0xd9, 200]);
        assert_eq!(MessagePackSerializer::default().lz4, MessagePackSerializer::new().lz4);
    }

    #[test]
    fn large_uncompressed_values_are_accepted() {
        let mp = MessagePackSerializer::new();
        // What a .NET peer without compression sends: an 80-byte str8.
        let mut bytes = vec![0xd9, 78];
        bytes.extend_from_slice(&[b'z'; 78]);
        assert_eq!(bytes.len(), 80);
        assert_eq!(decode_value::<String>(&mp, &bytes).unwrap(), "z".repeat(78));
    }

    #[test]
    fn a_hostile_uncompressed_length_is_rejected_before_allocating() {
        let mp = MessagePackSerializer::new();
        // ext8, 6 bytes, type 99, int32 0x7fffffff, one literal byte.
        let bomb = [0xc7, 6, 99, 0xd2, 0x7f, 0xff, 0xff, 0xff, 0x00];
        let err = decode_value::<String>(&mp, &bomb).unwrap_err();
        assert_eq!(err.kind, ParameterErrorKind::Decode);
        assert_eq!(err.format, "msgpack");
        assert!(matches!(
            source(&err),
            Some(DecodeError::ImplausibleUncompressedLength { declared: 0x7fff_ffff, compressed: 1, limit: 319 })
        ));
        let negative = [0xc7, 6, 99, 0xd2, 0xff, 0xff, 0xff, 0xff, 0x00];
        let err = decode_value::<String>(&mp, &negative).unwrap_err();
        assert!(matches!(source(&err), Some(DecodeError::NegativeUncompressedLength { declared: -1 })));
        // Lengths inside plain values are not trusted either: 4 GiB string and array headers.
        assert!(decode_value::<String>(&mp, &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).is_err());
        assert!(decode_value::<ByteArray>(&mp, &[0xc6, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(decode_value::<Vec<u64>>(&mp, &[0xdd, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(decode_value::<HashMap<u8, u8>>(&mp, &[0xdf, 0xff, 0xff, 0xff, 0xff, 1, 1]).is_err());
    }

    #[test]
    fn trailing_bytes_and_type_mismatches_are_decode_errors() {
        let mp = MessagePackSerializer::new();
        let err = decode_value::<i32>(&mp, &[0x01, 0x02]).unwrap_err();
        assert_eq!(err.kind, ParameterErrorKind::Decode);
        assert!(matches!(source(&err), Some(DecodeError::TrailingBytes { extra: 1 })));
        let mut trailing = encode_value(&mp, &"x".repeat(100)).unwrap();
        trailing.push(0x00);
        assert!(matches!(
            source(&decode_value::<String>(&mp, &trailing).unwrap_err()),
            Some(DecodeError::TrailingBytes { .. })
        ));
        for bad in [&[0xa1, b'x'][..], b"", &[0xc1], &[0xcd, 0x01], &[0x92, 0x01]] {
            let err = decode_value::<i32>(&mp, bad).unwrap_err();
            assert_eq!(err.kind, ParameterErrorKind::Decode, "{bad:?}");
        }
        // A decompressed value must not be empty or hold another LZ4 extension.
        // ext8, 6 bytes, type 99, int32 0, an LZ4 block of no bytes.
        let empty = [0xc7, 6, 99, 0xd2, 0, 0, 0, 0, 0x00];
        assert_eq!(lz4::decompress(&empty, MAX_UNCOMPRESSED_LEN).unwrap(), &[][..]);
        assert!(decode_value::<Option<i32>>(&mp, &empty).is_err());
        let inner = encode_value(&mp, &"x".repeat(100)).unwrap();
        let twice = lz4::compress(&inner).unwrap();
        assert!(decode_value::<String>(&mp, &twice).is_err());
    }

    #[test]
    fn refused_values_are_encode_errors() {
        let mp = MessagePackSerializer::new();
        let err = encode_value(&mp, &FailsToSerialize).unwrap_err();
        assert_eq!(err.kind, ParameterErrorKind::Encode);
        assert_eq!(err.format, "msgpack");
    }

    #[test]
    fn deep_nesting_fails_instead_of_overflowing_the_stack() {
        let mp = MessagePackSerializer::new();
        decode_value::<Node>(&mp, &nested(MAX_DEPTH - 1)).unwrap();
        decode_value::<Untagged>(&mp, &nested(MAX_DEPTH - 1)).unwrap();
        for depth in [MAX_DEPTH, 1_000, 100_000] {
            let deep = nested(depth);
            assert!(decode_value::<Node>(&mp, &deep).is_err(), "{depth}");
            assert!(decode_value::<Untagged>(&mp, &deep).is_err(), "{depth}");
            // rmp-serde skips an unknown map entry by recursing, so that is bounded as well.
            let mut ignored =
                vec![0x83, 0xa4, b'N', b'a', b'm', b'e', 0xa1, b'x', 0xa5, b'C', b'o', b'u', b'n', b't', 0x01];
            ignored.extend_from_slice(&[0xa1, b'Z']);
            ignored.extend_from_slice(&deep);
            assert!(decode_value::<Dto>(&mp, &ignored).is_err(), "{depth}");
            // The same depth behind compression.
            assert!(decode_value::<Node>(&mp, &lz4::compress(&deep).unwrap()).is_err(), "{depth}");
        }
        // Maps keyed by the PascalCase names are read too, as .NET `[Key("Name")]` writes them.
        let map = [0x82, 0xa4, b'N', b'a', b'm', b'e', 0xa1, b'x', 0xa5, b'C', b'o', b'u', b'n', b't', 0x01];
        assert_eq!(decode_value::<Dto>(&mp, &map).unwrap(), Dto { name: "x".into(), count: 1 });
    }

    fn any_dto() -> impl Strategy<Value = Dto> {
        (".{0,40}", any::<i32>()).prop_map(|(name, count)| Dto { name, count })
    }

    fn any_nested() -> impl Strategy<Value = Nested> {
        (
            any::<i64>(),
            proptest::option::of(".{0,80}"),
            proptest::collection::vec(any_dto(), 0..6),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
        )
            .prop_map(|(id, note, items, data, ratio)| Nested { id, note, items, data, ratio })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mp = MessagePackSerializer::new();
            let _ = decode_value::<i32>(&mp, &bytes);
            let _ = decode_value::<String>(&mp, &bytes);
            let _ = decode_value::<Option<Dto>>(&mp, &bytes);
            let _ = decode_value::<Nested>(&mp, &bytes);
            let _ = decode_value::<ByteArray>(&mp, &bytes);
            let _ = decode_value::<Vec<Option<f64>>>(&mp, &bytes);
            let _ = decode_value::<HashMap<String, i64>>(&mp, &bytes);
            let _ = decode_value::<Untagged>(&mp, &bytes);
            // The same bytes as the payload of an LZ4 extension.
            let mut ext = vec![0xc8];
            ext.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
            ext.push(99);
            ext.extend_from_slice(&bytes);
            let _ = decode_value::<String>(&mp, &ext);
            let _ = decode_value::<Nested>(&mp, &ext);
        }

        #[test]
        fn corrupted_values_never_panic(value in any_nested(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mp = MessagePackSerializer::new();
            let mut bytes = encode_value(&mp, &value).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_value::<Nested>(&mp, &bytes);
            bytes.truncate(i);
            let _ = decode_value::<Nested>(&mp, &bytes);
        }

        #[test]
        fn values_round_trip(value in any_nested(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for mp in [MessagePackSerializer::new(), MessagePackSerializer::without_compression()] {
                let bytes = encode_value(&mp, &value).unwrap();
                prop_assert_eq!(decode_value::<Nested>(&mp, &bytes).unwrap(), value.clone());
                let some = encode_value(&mp, &Some(value.clone())).unwrap();
                prop_assert_eq!(decode_value::<Option<Nested>>(&mp, &some).unwrap(), Some(value.clone()));
                let blob = encode_value(&mp, &ByteArray(data.clone())).unwrap();
                prop_assert_eq!(decode_value::<ByteArray>(&mp, &blob).unwrap().0, data.clone());
            }
        }
    }
}
