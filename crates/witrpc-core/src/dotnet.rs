//! .NET type names for Rust types, so ids and event type tags match a .NET interface.
//!
//! The `#[service]` macro asks [`DotNetType`] for every parameter. Derive it for your own
//! DTOs (`#[derive(witrpc::DotNetType)]` with `#[dotnet(assembly = "..")]`), implement it
//! by hand, or name the type in the macro attribute, so that the `MethodId` a .NET client
//! computes is the one this side computes.
//!
//! The names follow the one table of `witrpc-contract` (`witrpc_contract::dotnet`), which
//! the TypeScript generator reads too; the tests below check these impls against it.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Simple name of the assembly that holds the .NET base types.
pub const CORE_LIB: &str = "System.Private.CoreLib";

/// Maps a Rust type to the .NET type of the same wire shape.
///
/// ```
/// use witrpc_core::DotNetType;
/// assert_eq!(<Vec<i32>>::stable_name(), "System.Collections.Generic.List<System.Int32>");
/// assert_eq!(<Vec<u8>>::stable_name(), "System.Byte[]");
/// assert_eq!(<Option<i32>>::stable_name(), "System.Nullable<System.Int32>");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no .NET type name",
    label = "witrpc needs the .NET type of this parameter to compute method ids",
    note = "derive it: `#[derive(witrpc::DotNetType)] #[dotnet(assembly = \"MyAssembly\")]` on `{Self}` (named `MyAssembly.{Self}`), implement `DotNetType` by hand, or name the .NET type on the parameter: `#[witrpc(dotnet = \"MyNs.MyType\", assembly = \"MyAssembly\")]`"
)]
pub trait DotNetType {
    /// The namespace-qualified name used in `MethodId` strings, e.g. `System.Int32`,
    /// `System.Collections.Generic.List<System.Int32>`.
    fn stable_name() -> String;

    /// `Type.FullName` (what events put in `ParameterTypesByName`); generic types use
    /// the CLR form with assembly-qualified arguments.
    fn full_name() -> String {
        Self::stable_name()
    }

    /// The simple name of the declaring assembly.
    fn assembly() -> String {
        CORE_LIB.to_owned()
    }

    /// Whether the .NET type is a value type (then `Option<T>` is `Nullable<T>`).
    fn is_value_type() -> bool {
        false
    }

    /// Name of `Vec<Self>`; `List<T>` unless overridden (`u8` makes `byte[]`).
    #[doc(hidden)]
    fn vec_stable_name() -> String {
        format!("System.Collections.Generic.List<{}>", Self::stable_name())
    }

    /// Full name of `Vec<Self>`.
    #[doc(hidden)]
    fn vec_full_name() -> String {
        format!("System.Collections.Generic.List`1[[{}, {}]]", Self::full_name(), Self::assembly())
    }
}

macro_rules! value_types {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl DotNetType for $t {
            fn stable_name() -> String { $name.to_owned() }
            fn is_value_type() -> bool { true }
        }
    )*};
}

value_types! {
    i8 => "System.SByte", i16 => "System.Int16", u16 => "System.UInt16",
    i32 => "System.Int32", u32 => "System.UInt32", i64 => "System.Int64", u64 => "System.UInt64",
    f32 => "System.Single", f64 => "System.Double", bool => "System.Boolean", char => "System.Char",
    uuid::Uuid => "System.Guid",
}

impl DotNetType for u8 {
    fn stable_name() -> String {
        "System.Byte".to_owned()
    }
    fn is_value_type() -> bool {
        true
    }
    fn vec_stable_name() -> String {
        "System.Byte[]".to_owned()
    }
    fn vec_full_name() -> String {
        "System.Byte[]".to_owned()
    }
}

impl DotNetType for String {
    fn stable_name() -> String {
        "System.String".to_owned()
    }
}

impl DotNetType for str {
    fn stable_name() -> String {
        "System.String".to_owned()
    }
}

impl<T: DotNetType + ?Sized> DotNetType for &T {
    fn stable_name() -> String {
        T::stable_name()
    }
    fn full_name() -> String {
        T::full_name()
    }
    fn assembly() -> String {
        T::assembly()
    }
    fn is_value_type() -> bool {
        T::is_value_type()
    }
}

impl<T: DotNetType> DotNetType for Vec<T> {
    fn stable_name() -> String {
        T::vec_stable_name()
    }
    fn full_name() -> String {
        T::vec_full_name()
    }
}

impl<T: DotNetType> DotNetType for [T] {
    fn stable_name() -> String {
        T::vec_stable_name()
    }
    fn full_name() -> String {
        T::vec_full_name()
    }
}

impl<T: DotNetType> DotNetType for Option<T> {
    fn stable_name() -> String {
        if T::is_value_type() { format!("System.Nullable<{}>", T::stable_name()) } else { T::stable_name() }
    }
    fn full_name() -> String {
        if T::is_value_type() {
            format!("System.Nullable`1[[{}, {}]]", T::full_name(), T::assembly())
        } else {
            T::full_name()
        }
    }
    fn assembly() -> String {
        if T::is_value_type() { CORE_LIB.to_owned() } else { T::assembly() }
    }
}

impl<K: DotNetType, V: DotNetType, S> DotNetType for HashMap<K, V, S> {
    fn stable_name() -> String {
        format!("System.Collections.Generic.Dictionary<{},{}>", K::stable_name(), V::stable_name())
    }
    fn full_name() -> String {
        format!(
            "System.Collections.Generic.Dictionary`2[[{}, {}],[{}, {}]]",
            K::full_name(),
            K::assembly(),
            V::full_name(),
            V::assembly()
        )
    }
}

/// Serde adapter for .NET `byte[]`: a base64 string in human-readable formats (JSON,
/// as System.Text.Json writes it), raw binary otherwise (MessagePack `bin`).
///
/// Use it on DTO fields with `#[serde(with = "witrpc_core::dotnet::byte_array")]`;
/// the `#[service]` macro applies it to `Vec<u8>` parameters by itself.
pub mod byte_array {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes `v` as base64 (human-readable) or bytes.
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&STANDARD.encode(v)) } else { s.serialize_bytes(v) }
    }

    /// Deserializes base64 text, bytes, or a sequence of numbers.
    ///
    /// # Errors
    /// When the input is none of those, or not valid base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string or a byte array")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                STANDARD.decode(v).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        if d.is_human_readable() { d.deserialize_str(V) } else { d.deserialize_bytes(V) }
    }
}

/// A `Vec<u8>` that serializes like a .NET `byte[]` (see [`byte_array`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ByteArray(pub Vec<u8>);

impl Serialize for ByteArray {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        byte_array::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for ByteArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        byte_array::deserialize(d).map(ByteArray)
    }
}

/// Borrowed form of [`ByteArray`], for encoding without a copy.
#[derive(Debug, Clone, Copy)]
pub struct ByteArrayRef<'a>(pub &'a [u8]);

impl Serialize for ByteArrayRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        byte_array::serialize(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_common_types() {
        assert_eq!(i32::stable_name(), "System.Int32");
        assert_eq!(String::stable_name(), "System.String");
        assert_eq!(<Option<String>>::stable_name(), "System.String");
        assert_eq!(<Vec<String>>::stable_name(), "System.Collections.Generic.List<System.String>");
        assert_eq!(
            <Vec<i32>>::full_name(),
            "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]]"
        );
        assert_eq!(<Option<f64>>::full_name(), "System.Nullable`1[[System.Double, System.Private.CoreLib]]");
        assert_eq!(uuid::Uuid::stable_name(), "System.Guid");
    }

    /// Every impl of the table above, with the Rust name the contract table knows it by.
    macro_rules! table_entries {
        ($($t:ty => $rust:literal),* $(,)?) => {
            vec![$(($rust, <$t>::stable_name(), <$t>::is_value_type(), <$t>::assembly())),*]
        };
    }

    #[test]
    fn names_follow_the_contract_table() {
        use witrpc_contract::dotnet as table;
        let impls = table_entries![
            i8 => "i8", u8 => "u8", i16 => "i16", u16 => "u16", i32 => "i32", u32 => "u32",
            i64 => "i64", u64 => "u64", f32 => "f32", f64 => "f64", bool => "bool", char => "char",
            uuid::Uuid => "Uuid", String => "String", str => "str",
        ];
        // Both ways: no impl the table lacks, no table entry without an impl.
        assert_eq!(impls.len(), table::PRIMITIVES.len());
        for (rust, name, value_type, assembly) in impls {
            let entry = table::primitive(rust).unwrap_or_else(|| panic!("`{rust}` is not in the contract table"));
            assert_eq!((name.as_str(), value_type), (entry.dotnet, entry.value_type), "{rust}");
            assert_eq!(assembly, table::CORE_LIB);
        }
        assert_eq!(CORE_LIB, table::CORE_LIB);
        assert_eq!(<Vec<u8>>::stable_name(), table::BYTE_ARRAY);
        assert_eq!(<Vec<u8>>::full_name(), table::BYTE_ARRAY);
        assert_eq!(<Vec<i64>>::stable_name(), table::list("System.Int64"));
        assert_eq!(<Vec<i64>>::full_name(), table::list_full("System.Int64", CORE_LIB));
        assert_eq!(<Option<bool>>::stable_name(), table::nullable("System.Boolean"));
        assert_eq!(<Option<bool>>::full_name(), table::nullable_full("System.Boolean", CORE_LIB));
        assert_eq!(<HashMap<String, i32>>::stable_name(), table::dictionary("System.String", "System.Int32"));
        assert_eq!(
            <HashMap<String, i32>>::full_name(),
            table::dictionary_full(("System.String", CORE_LIB), ("System.Int32", CORE_LIB))
        );
    }

    #[test]
    fn byte_array_is_base64_in_json() {
        let json = serde_json::to_string(&ByteArray(vec![1, 2, 3])).unwrap();
        assert_eq!(json, "\"AQID\"");
        let back: ByteArray = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, vec![1, 2, 3]);
        assert!(serde_json::from_str::<ByteArray>("\"not base64!\"").is_err());
    }
}
