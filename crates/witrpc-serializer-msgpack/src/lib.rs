#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! MessagePack parameters for witrpc, as the .NET WitRPC MessagePack plugin writes
//! them (MessagePack-CSharp with `Lz4Block` compression).
//!
//! Part of an independent, WitRPC-compatible implementation (not the official .NET
//! WitRPC). See `ARCHITECTURE.md` at the repository root for where it sits: it turns
//! single values into the blobs inside `WitRequest.Parameters` and `WitResponse.Data`;
//! the envelope around them is always MemoryPack. Nothing on the wire says which
//! parameter serializer is in use, so select it on both ends (`WithMessagePack()` in
//! .NET).
//!
//! On the wire:
//! - values are encoded by `rmp-serde` in MessagePack-CSharp's shapes: compact
//!   integers, `float64` for `f64`, `bin` for byte arrays, `nil` for null, structs as
//!   arrays in field order (what `[MessagePackObject]` with `[Key(n)]` writes);
//! - an encoding of 64 bytes or more is wrapped in MessagePack-CSharp's LZ4 block
//!   form: one `ext` value of type 99 holding the uncompressed length (`int32`) and
//!   the raw LZ4 block. Reading accepts both forms;
//! - a null value travels as an **empty** blob, and an empty blob reads as `nil`;
//! - bytes after the value are an error.
//!
//! Reading is bounded: nesting [`MAX_DEPTH`] levels deep fails instead of exhausting
//! the stack, no buffer is sized by a length the peer declares before the bytes are
//! there, and a compressed value may claim at most [`MAX_UNCOMPRESSED_LEN`] bytes (and
//! no more than LZ4 can produce from its block). Framing errors are a
//! [`DecodeError`] in the `source` of the [`ParameterError`](witrpc_core::ParameterError).
//!
//! # DTO conventions
//!
//! .NET DTOs are `[MessagePackObject]` classes; declare Rust DTOs to match:
//! - WitRPC's classes use integer `[Key(n)]`s, which is an array in key order: declare
//!   the Rust fields in the same order (the default here). A class keyed by strings is
//!   a map; its keys are usually the C# PascalCase property names, so use
//!   `#[serde(rename_all = "PascalCase")]` (reading accepts both arrays and maps);
//! - enums are **numbers**: give them a numeric representation (as the `serde_repr`
//!   crate does), not serde's default variant names;
//! - `byte[]` is `bin`: use `#[serde(with = "witrpc_core::dotnet::byte_array")]` on
//!   `Vec<u8>` fields, or [`witrpc_core::ByteArray`] as a value (a plain `Vec<u8>` is an
//!   array of integers, which is a .NET `List<byte>`).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use witrpc_core::{decode_value, encode_value};
//! use witrpc_serializer_msgpack::MessagePackSerializer;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(rename_all = "PascalCase")]
//! struct Item {
//!     name: String,
//!     count: i32,
//! }
//!
//! let mp = MessagePackSerializer::new();
//! assert_eq!(encode_value(&mp, &2)?, [0x02]);
//! let item = Item { name: "x".into(), count: 2 };
//! let bytes = encode_value(&mp, &item)?;
//! assert_eq!(bytes, [0x92, 0xa1, b'x', 0x02]); // [ "x", 2 ]
//! assert_eq!(decode_value::<Item>(&mp, &bytes)?, item);
//! // Null is an empty blob, both ways.
//! assert_eq!(encode_value(&mp, &None::<i32>)?, b"");
//! assert_eq!(decode_value::<Option<i32>>(&mp, b"")?, None);
//! // Large values travel LZ4-compressed.
//! let long = "x".repeat(200);
//! let packed = encode_value(&mp, &long)?;
//! assert_eq!(packed[..3], [0xc7, (packed.len() - 3) as u8, 99]); // ext8, type 99
//! assert_eq!(decode_value::<String>(&mp, &packed)?, long);
//! # Ok::<(), witrpc_core::ParameterError>(())
//! ```

mod error;
mod limits;
mod lz4;
mod serializer;

pub use error::DecodeError;
pub use limits::{MAX_DEPTH, MAX_UNCOMPRESSED_LEN};
/// Re-exported for [`DecodeError::InvalidLz4Block`].
pub use lz4_flex::block::DecompressError;
pub use serializer::MessagePackSerializer;
