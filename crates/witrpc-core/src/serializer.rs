//! The parameter serializer: how arguments, results and event arguments become bytes.
//!
//! The envelope and payload models are always MemoryPack; only the blobs inside
//! `WitRequest.Parameters` and `WitResponse.Data` go through a [`ParameterSerializer`].
//! JSON (`witrpc-serializer-json`) is the default, MessagePack
//! (`witrpc-serializer-msgpack`) the alternative. Both ends must agree: nothing on
//! the wire says which one is in use.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ParameterError, ParameterErrorKind};

/// Callback that receives an erased deserializer positioned at one value.
pub type DeserializeVisitor<'v> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 'v;

/// Encodes and decodes single values (one argument, one result).
///
/// Object-safe so servers and clients hold it as `Arc<dyn ParameterSerializer>`;
/// use [`encode_value`] and [`decode_value`] for typed access.
///
/// Implementations follow the .NET convention that a null value is an **empty** blob:
/// `serialize` returns no bytes for a value that encodes as null, and `deserialize`
/// presents empty input to the visitor as null.
pub trait ParameterSerializer: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and errors (`"json"`, `"msgpack"`).
    fn name(&self) -> &'static str;

    /// Encodes one value.
    ///
    /// # Errors
    /// When the value cannot be represented in this format.
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, ParameterError>;

    /// Decodes one value from `bytes` by handing a deserializer to `visit`.
    ///
    /// # Errors
    /// When `bytes` is not one well-formed value of the expected shape, or has trailing data.
    fn deserialize(&self, bytes: &[u8], visit: &mut DeserializeVisitor<'_>) -> Result<(), ParameterError>;

    /// This serializer with decoded values bounded to `max_len` bytes, for formats
    /// that can expand their input (compression); `None` when the format cannot (the
    /// default). Servers call it with their message-size limit, so a small compressed
    /// argument cannot inflate past what a plain one may be.
    fn with_max_decoded_len(&self, max_len: usize) -> Option<std::sync::Arc<dyn ParameterSerializer>> {
        let _unbounded = max_len;
        None
    }
}

/// Builds a [`ParameterError`] from a serializer's own error.
pub fn parameter_error(
    kind: ParameterErrorKind,
    format: &'static str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> ParameterError {
    ParameterError { kind, format, what: "value".to_owned(), source: source.into() }
}

/// Encodes `value` with `serializer`.
///
/// # Errors
/// See [`ParameterSerializer::serialize`].
pub fn encode_value<T: Serialize + ?Sized>(
    serializer: &dyn ParameterSerializer,
    value: &T,
) -> Result<Vec<u8>, ParameterError> {
    serializer.serialize(&value)
}

/// Decodes a `T` from `bytes` with `serializer` (empty bytes = null).
///
/// # Errors
/// See [`ParameterSerializer::deserialize`].
pub fn decode_value<T: DeserializeOwned>(
    serializer: &dyn ParameterSerializer,
    bytes: &[u8],
) -> Result<T, ParameterError> {
    let mut out: Option<T> = None;
    serializer.deserialize(bytes, &mut |d| {
        out = Some(erased_serde::deserialize::<T>(d)?);
        Ok(())
    })?;
    out.ok_or_else(|| parameter_error(ParameterErrorKind::Decode, serializer.name(), "serializer produced no value"))
}
