//! Errors this crate raises itself while reading a value.

/// A MessagePack parameter blob is malformed at the framing level.
///
/// Found as the `source` of a [`ParameterError`](witrpc_core::ParameterError) of kind
/// `Decode`; errors inside the value (wrong type, truncated string) come from
/// rmp-serde instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An LZ4 extension ends before its declared payload length.
    #[error("LZ4 extension declares {declared} payload bytes but only {available} follow")]
    TruncatedExtension {
        /// Payload length in the extension header.
        declared: usize,
        /// Bytes left after the header.
        available: usize,
    },
    /// An LZ4 extension's payload does not start with an integer length.
    #[error("LZ4 extension does not start with its uncompressed length")]
    MissingUncompressedLength,
    /// An LZ4 extension declares a negative uncompressed length.
    #[error("LZ4 extension declares a negative uncompressed length ({declared})")]
    NegativeUncompressedLength {
        /// The length on the wire.
        declared: i64,
    },
    /// An LZ4 extension declares more bytes than its block can hold or than
    /// [`MAX_UNCOMPRESSED_LEN`](crate::MAX_UNCOMPRESSED_LEN) allows.
    #[error("LZ4 extension declares {declared} uncompressed bytes for a {compressed}-byte block (at most {limit})")]
    ImplausibleUncompressedLength {
        /// The length on the wire.
        declared: u64,
        /// Size of the LZ4 block.
        compressed: usize,
        /// The most this block may declare.
        limit: u64,
    },
    /// The LZ4 block is corrupt or larger than its declared length.
    #[error("invalid LZ4 block")]
    InvalidLz4Block(#[source] lz4_flex::block::DecompressError),
    /// The LZ4 block holds fewer bytes than declared.
    #[error("LZ4 block holds {actual} bytes but its extension declares {declared}")]
    UncompressedLengthMismatch {
        /// The length on the wire.
        declared: usize,
        /// Bytes the block produced.
        actual: usize,
    },
    /// Bytes follow a complete value.
    #[error("{extra} unexpected bytes after the value")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
}
