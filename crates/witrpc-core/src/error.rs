//! Errors of the wire codec and of parameter serialization.

/// A protocol-3 message or payload could not be decoded.
///
/// Every decoder in this crate returns this instead of panicking; `what` names the
/// field being read so a log line says where the peer's bytes went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the field was complete.
    #[error("truncated {what}: needs {needed} more bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A length prefix is negative (other than the null marker -1).
    #[error("invalid length {length} for {what}")]
    InvalidLength {
        /// The field being read.
        what: &'static str,
        /// The length on the wire.
        length: i32,
    },
    /// An object header byte is not a valid member count.
    #[error("invalid object header {header:#04x} for {what}")]
    InvalidHeader {
        /// The object being read.
        what: &'static str,
        /// The header byte on the wire.
        header: u8,
    },
    /// A VarInt length is out of range.
    #[error("invalid varint in {what}")]
    InvalidVarInt {
        /// The field being read.
        what: &'static str,
    },
    /// A UTF-8 string holds invalid UTF-8.
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// A UTF-16 string holds unpaired surrogates.
    #[error("invalid UTF-16 in {what}")]
    InvalidUtf16 {
        /// The field being read.
        what: &'static str,
    },
    /// A UTF-8 string's declared UTF-16 length does not match its text.
    #[error("UTF-16 length of {what} does not match its UTF-8 bytes")]
    Utf16LengthMismatch {
        /// The field being read.
        what: &'static str,
    },
    /// A version-tolerant member's declared length does not match its content.
    #[error("{what} declares {extra} more bytes than its value uses")]
    MemberLengthMismatch {
        /// The member being read.
        what: &'static str,
        /// Unused bytes.
        extra: usize,
    },
    /// A payload that must be present is null.
    #[error("{what} is null")]
    Null {
        /// The object that was null.
        what: &'static str,
    },
    /// Bytes follow a complete value.
    #[error("{extra} unexpected bytes after {what}")]
    TrailingBytes {
        /// The value that ended early.
        what: &'static str,
        /// Bytes left over.
        extra: usize,
    },
}

/// Kind of a [`ParameterError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParameterErrorKind {
    /// Turning a Rust value into bytes failed.
    Encode,
    /// Turning bytes into a Rust value failed.
    Decode,
}

/// A parameter, return value or event argument could not be (de)serialized.
#[derive(Debug, thiserror::Error)]
#[error("cannot {} `{what}` with the {format} parameter serializer", match .kind { ParameterErrorKind::Encode => "encode", ParameterErrorKind::Decode => "decode" })]
pub struct ParameterError {
    /// Encode or decode.
    pub kind: ParameterErrorKind,
    /// The serializer's name (`json`, `msgpack`).
    pub format: &'static str,
    /// What was being converted (a parameter name, "result", an event argument).
    pub what: String,
    /// The serializer's own error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ParameterError {
    /// Returns a copy of this error that names `what` as the value being converted.
    pub fn for_value(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }
}
