//! [`JsonSerializer`]: one value to one compact JSON document and back.

use witrpc_core::{DeserializeVisitor, ParameterError, ParameterErrorKind, ParameterSerializer, parameter_error};

/// The serializer's name in logs and errors.
const NAME: &str = "json";
/// What serde_json writes for a null value; .NET sends an empty blob instead.
const NULL: &[u8] = b"null";

/// The JSON parameter serializer (System.Text.Json defaults, as .NET WitRPC uses them).
///
/// Stateless; `JsonSerializer` is both the value and the type. See the crate docs for
/// the wire conventions.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl ParameterSerializer for JsonSerializer {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Writes `value` as compact JSON; a value that writes as `null` gives no bytes.
    ///
    /// # Errors
    /// [`ParameterErrorKind::Encode`] when serde_json refuses the value (a map with
    /// non-string keys, or an error from the value's own `Serialize`).
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError> {
        let bytes = serde_json::to_vec(value).map_err(|e| parameter_error(ParameterErrorKind::Encode, NAME, e))?;
        Ok(if bytes == NULL { Vec::new() } else { bytes })
    }

    /// Reads one JSON document; empty input reads as `null`.
    ///
    /// # Errors
    /// [`ParameterErrorKind::Decode`] when the input is not one JSON value of the shape
    /// the visitor expects, is nested 128 levels deep, or has trailing data.
    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError> {
        let input = if bytes.is_empty() { NULL } else { bytes };
        // `from_slice` keeps serde_json's default recursion limit (128).
        let mut de = serde_json::Deserializer::from_slice(input);
        visit(&mut <dyn erased_serde::Deserializer<'_>>::erase(&mut de))
            .map_err(|e| parameter_error(ParameterErrorKind::Decode, NAME, e))?;
        de.end().map_err(|e| parameter_error(ParameterErrorKind::Decode, NAME, e))
    }
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

    struct FailsToSerialize;

    impl Serialize for FailsToSerialize {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn writes_what_system_text_json_writes() {
        let j = JsonSerializer;
        assert_eq!(j.name(), "json");
        assert_eq!(encode_value(&j, &2).unwrap(), b"2");
        assert_eq!(encode_value(&j, "hi").unwrap(), b"\"hi\"");
        assert_eq!(encode_value(&j, &Dto { name: "x".into(), count: 2 }).unwrap(), br#"{"Name":"x","Count":2}"#);
        assert_eq!(encode_value(&j, &ByteArray(vec![1, 2, 3])).unwrap(), b"\"AQID\"");
        assert_eq!(encode_value(&j, &ByteArray(vec![0xfb, 0xff])).unwrap(), b"\"+/8=\"");
        assert_eq!(encode_value(&j, &1.5f64).unwrap(), b"1.5");
        assert_eq!(encode_value(&j, &true).unwrap(), b"true");
        assert_eq!(encode_value(&j, &vec![1, 2]).unwrap(), b"[1,2]");
        assert_eq!(encode_value(&j, &Some(3)).unwrap(), b"3");
    }

    #[test]
    fn null_is_an_empty_blob() {
        let j = JsonSerializer;
        assert_eq!(encode_value(&j, &None::<String>).unwrap(), b"");
        assert_eq!(encode_value(&j, &()).unwrap(), b"");
        assert_eq!(decode_value::<Option<i32>>(&j, b"").unwrap(), None);
        assert_eq!(decode_value::<Option<Dto>>(&j, b"").unwrap(), None);
        decode_value::<()>(&j, b"").unwrap();
        // Nulls inside a value are written, as System.Text.Json does.
        let dto = Nested { id: 1, note: None, items: vec![], data: vec![], ratio: 0.0 };
        assert_eq!(encode_value(&j, &dto).unwrap(), br#"{"Id":1,"Note":null,"Items":[],"Data":"","Ratio":0.0}"#);
    }

    #[test]
    fn reads_values_with_surrounding_whitespace() {
        let j = JsonSerializer;
        assert_eq!(decode_value::<i32>(&j, b" 7 \r\n").unwrap(), 7);
        assert_eq!(decode_value::<Dto>(&j, br#"{"Name":"y","Count":3}"#).unwrap(), Dto { name: "y".into(), count: 3 });
        assert_eq!(decode_value::<ByteArray>(&j, b"\"AQID\"").unwrap().0, vec![1, 2, 3]);
        // System.Text.Json escapes non-ASCII; both forms read the same.
        assert_eq!(decode_value::<String>(&j, br#""caf\u00e9 \u003c""#).unwrap(), "café <");
        assert_eq!(decode_value::<String>(&j, "\"café <\"".as_bytes()).unwrap(), "café <");
    }

    #[test]
    fn rejects_bad_input_with_a_decode_error() {
        let j = JsonSerializer;
        let cases: [&[u8]; 10] = [b"\"two\"", b"1 2", b"2x", b"{", b"", b" ", b"null", b"1e999999", b"\xff", b"\"5\""];
        for bad in cases {
            let err = decode_value::<i32>(&j, bad).unwrap_err();
            assert_eq!(err.kind, ParameterErrorKind::Decode, "{bad:?}");
            assert_eq!(err.format, "json");
        }
        // Property names are case-sensitive, as in System.Text.Json.
        assert!(decode_value::<Dto>(&j, br#"{"name":"y","count":3}"#).is_err());
        assert!(decode_value::<ByteArray>(&j, b"\"not base64!\"").is_err());
    }

    #[test]
    fn refused_values_are_encode_errors() {
        let j = JsonSerializer;
        let err = encode_value(&j, &FailsToSerialize).unwrap_err();
        assert_eq!(err.kind, ParameterErrorKind::Encode);
        assert_eq!(err.format, "json");
        let map: HashMap<(i32, i32), i32> = HashMap::from([((1, 2), 3)]);
        assert_eq!(encode_value(&j, &map).unwrap_err().kind, ParameterErrorKind::Encode);
    }

    #[test]
    fn deep_nesting_fails_instead_of_overflowing_the_stack() {
        let j = JsonSerializer;
        // Inside the limit: accepted.
        decode_value::<Node>(&j, nested(127).as_bytes()).unwrap();
        decode_value::<Untagged>(&j, nested(127).as_bytes()).unwrap();
        for depth in [128, 10_000, 1_000_000] {
            let deep = nested(depth);
            assert!(decode_value::<Node>(&j, deep.as_bytes()).is_err(), "{depth}");
            assert!(decode_value::<Untagged>(&j, deep.as_bytes()).is_err(), "{depth}");
            // serde_json skips an unknown property without recursing, so any depth is fine there.
            let ignored = format!(r#"{{"Name":"x","Count":1,"Extra":{deep}}}"#);
            assert_eq!(decode_value::<Dto>(&j, ignored.as_bytes()).unwrap(), Dto { name: "x".into(), count: 1 });
        }
    }

    fn any_dto() -> impl Strategy<Value = Dto> {
        (".{0,40}", any::<i32>()).prop_map(|(name, count)| Dto { name, count })
    }

    fn any_nested() -> impl Strategy<Value = Nested> {
        (
            any::<i64>(),
            proptest::option::of(".{0,40}"),
            proptest::collection::vec(any_dto(), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
        )
            .prop_map(|(id, note, items, data, ratio)| Nested { id, note, items, data, ratio })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let j = JsonSerializer;
            let _ = decode_value::<i32>(&j, &bytes);
            let _ = decode_value::<String>(&j, &bytes);
            let _ = decode_value::<Option<Dto>>(&j, &bytes);
            let _ = decode_value::<Nested>(&j, &bytes);
            let _ = decode_value::<ByteArray>(&j, &bytes);
            let _ = decode_value::<Vec<Option<f64>>>(&j, &bytes);
            let _ = decode_value::<HashMap<String, i64>>(&j, &bytes);
            let _ = decode_value::<Untagged>(&j, &bytes);
        }

        #[test]
        fn arbitrary_json_text_never_panics(text in r#"[\[\]{}",:0-9a-zA-Z\\. -]{0,256}"#) {
            let j = JsonSerializer;
            let _ = decode_value::<Nested>(&j, text.as_bytes());
            let _ = decode_value::<Untagged>(&j, text.as_bytes());
        }

        #[test]
        fn values_round_trip(value in any_nested(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let j = JsonSerializer;
            let bytes = encode_value(&j, &value).unwrap();
            prop_assert_eq!(decode_value::<Nested>(&j, &bytes).unwrap(), value.clone());
            let some = encode_value(&j, &Some(value.clone())).unwrap();
            prop_assert_eq!(decode_value::<Option<Nested>>(&j, &some).unwrap(), Some(value));
            let blob = encode_value(&j, &ByteArray(data.clone())).unwrap();
            prop_assert_eq!(decode_value::<ByteArray>(&j, &blob).unwrap().0, data);
        }
    }
}
