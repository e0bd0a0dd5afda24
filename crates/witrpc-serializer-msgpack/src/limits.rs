//! Bounds on what a peer's bytes may make the reader do.

/// Nesting limit for arrays and maps: a value nested 128 levels deep or more is
/// rejected.
///
/// rmp-serde's own default (1024) overflows a 2 MiB thread stack in debug builds with
/// an ordinary recursive DTO, or with a deep value inside an ignored map entry; 128
/// is serde_json's limit and far beyond any real argument.
pub const MAX_DEPTH: usize = 128;

/// Largest uncompressed size an LZ4-compressed value may declare: 64 MiB.
///
/// The buffer for the decompressed value is allocated from the declared size, so it
/// must be bounded before the block is even looked at; .NET's own limit is the
/// message size (256 MiB), but a single parameter of more than 64 MiB is not a call
/// worth serving.
pub const MAX_UNCOMPRESSED_LEN: usize = 64 * 1024 * 1024;

/// How much LZ4 can expand its input at most (each extra length byte adds 255 bytes
/// of output); a declared size beyond `255 * block + 64` cannot be true.
pub(crate) const MAX_LZ4_RATIO: u64 = 255;

/// Slack added to the ratio bound, for tiny blocks.
pub(crate) const LZ4_RATIO_SLACK: u64 = 64;
