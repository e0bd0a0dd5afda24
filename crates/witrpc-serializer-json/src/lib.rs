#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! JSON parameters for witrpc, as .NET WitRPC writes them with System.Text.Json.
//!
//! Part of an independent, WitRPC-compatible implementation (not the official
//! WitRPC). This is the default parameter serializer on both ends (`with_json()`):
//! each argument, result and event argument is one compact UTF-8 JSON document;
//! a null value travels as an **empty** blob, never as `null`.
//!
//! DTOs should follow the .NET conventions so both sides read each other:
//! - property names are PascalCase as declared: `#[serde(rename_all = "PascalCase")]`;
//! - enums are numbers (use a numeric representation such as `serde_repr`);
//! - `byte[]` is a base64 string: `#[serde(with = "witrpc_core::dotnet::byte_array")]`.
//!
//! ```
//! use witrpc_core::{decode_value, encode_value};
//! use witrpc_serializer_json::JsonSerializer;
//!
//! let json = JsonSerializer;
//! assert_eq!(encode_value(&json, &5)?, b"5");
//! assert_eq!(encode_value(&json, &None::<i32>)?, b"");
//! let back: Option<i32> = decode_value(&json, b"")?;
//! assert_eq!(back, None);
//! # Ok::<(), witrpc_core::ParameterError>(())
//! ```

use witrpc_core::{DeserializeVisitor, ParameterError, ParameterErrorKind, ParameterSerializer, parameter_error};

const NAME: &str = "json";

/// The JSON parameter serializer.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl ParameterSerializer for JsonSerializer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError> {
        let bytes = serde_json::to_vec(value).map_err(|e| parameter_error(ParameterErrorKind::Encode, NAME, e))?;
        // .NET sends a null argument or result as an empty blob.
        Ok(if bytes == b"null" { Vec::new() } else { bytes })
    }

    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError> {
        let input: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
        let mut de = serde_json::Deserializer::from_slice(input);
        let decode = |e| parameter_error(ParameterErrorKind::Decode, NAME, e);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de)).map_err(decode)?;
        de.end().map_err(|e| parameter_error(ParameterErrorKind::Decode, NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use witrpc_core::{ByteArray, decode_value, encode_value};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Dto {
        name: String,
        count: i32,
    }

    #[test]
    fn writes_what_system_text_json_writes() {
        let j = JsonSerializer;
        assert_eq!(encode_value(&j, &2).unwrap(), b"2");
        assert_eq!(encode_value(&j, "hi").unwrap(), b"\"hi\"");
        assert_eq!(encode_value(&j, &Dto { name: "x".into(), count: 2 }).unwrap(), br#"{"Name":"x","Count":2}"#);
        assert_eq!(encode_value(&j, &ByteArray(vec![1, 2, 3])).unwrap(), b"\"AQID\"");
        assert_eq!(encode_value(&j, &None::<String>).unwrap(), b"");
        assert_eq!(encode_value(&j, &()).unwrap(), b"");
        assert_eq!(encode_value(&j, &1.5f64).unwrap(), b"1.5");
    }

    #[test]
    fn reads_values_and_empty_as_null() {
        let j = JsonSerializer;
        assert_eq!(decode_value::<i32>(&j, b" 7 ").unwrap(), 7);
        assert_eq!(decode_value::<Option<i32>>(&j, b"").unwrap(), None);
        assert_eq!(decode_value::<Dto>(&j, br#"{"Name":"y","Count":3}"#).unwrap(), Dto { name: "y".into(), count: 3 });
        assert_eq!(decode_value::<ByteArray>(&j, b"\"AQID\"").unwrap().0, vec![1, 2, 3]);
    }

    #[test]
    fn rejects_bad_input_with_a_decode_error() {
        let j = JsonSerializer;
        for bad in [&b"\"two\""[..], b"1 2", b"{", b"", b"1e999999"] {
            let err = decode_value::<i32>(&j, bad).unwrap_err();
            assert_eq!(err.kind, ParameterErrorKind::Decode, "{bad:?}");
            assert_eq!(err.format, "json");
        }
        // Deeply nested input hits serde_json's recursion limit instead of the stack.
        let deep = "[".repeat(100_000);
        assert!(decode_value::<serde_json::Value>(&j, deep.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let j = JsonSerializer;
            let _ = decode_value::<i32>(&j, &bytes);
            let _ = decode_value::<String>(&j, &bytes);
            let _ = decode_value::<Dto>(&j, &bytes);
            let _ = decode_value::<Vec<Option<f64>>>(&j, &bytes);
        }

        #[test]
        fn values_round_trip(name in ".*", count in any::<i32>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let j = JsonSerializer;
            let dto = Dto { name, count };
            let bytes = encode_value(&j, &dto).unwrap();
            prop_assert_eq!(decode_value::<Dto>(&j, &bytes).unwrap(), dto);
            let blob = encode_value(&j, &ByteArray(data.clone())).unwrap();
            prop_assert_eq!(decode_value::<ByteArray>(&j, &blob).unwrap().0, data);
        }
    }
}
