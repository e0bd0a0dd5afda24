#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! JSON parameters for witrpc, as .NET WitRPC writes them with System.Text.Json.
//!
//! Part of an independent, WitRPC-compatible implementation (not the official .NET
//! WitRPC). See `ARCHITECTURE.md` at the repository root for where it sits: it turns
//! single values into the blobs inside `WitRequest.Parameters` and `WitResponse.Data`;
//! the envelope around them is always MemoryPack.
//!
//! This is the default parameter serializer on both ends (`with_json()` in .NET):
//! - each argument, result and event argument is one compact UTF-8 JSON document
//!   (`5`, `"abc"`, `{"Name":"x","Count":2}`);
//! - a null value travels as an **empty** blob, never as `null`, and an empty blob
//!   reads as `null` (so it decodes into `Option::None`);
//! - bytes after the value (other than whitespace) are an error;
//! - a value nested 128 levels deep or more fails with an error (serde_json's recursion
//!   limit) instead of exhausting the stack.
//!
//! # DTO conventions
//!
//! System.Text.Json's defaults decide the shape of a .NET DTO, so declare Rust DTOs to
//! match:
//! - property names are PascalCase exactly as declared in C#, and matched
//!   case-sensitively: put `#[serde(rename_all = "PascalCase")]` on the struct;
//! - enums are written as **numbers**: give them a numeric representation (as the
//!   `serde_repr` crate does), not serde's default variant names;
//! - `byte[]` is a standard base64 string: use
//!   `#[serde(with = "witrpc_core::dotnet::byte_array")]` on `Vec<u8>` fields, or
//!   [`witrpc_core::ByteArray`] as a value.
//!
//! Output is not always byte-for-byte what .NET writes: System.Text.Json escapes
//! non-ASCII and HTML-sensitive characters (`\u00e9`, `\u003c`) where serde_json writes
//! them as UTF-8; each side reads the other's form. serde_json writes non-finite floats
//! (NaN, infinity) as `null`, which .NET refuses to read into a `double`; a top-level
//! NaN therefore travels as an empty blob.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use witrpc_core::{decode_value, encode_value};
//! use witrpc_serializer_json::JsonSerializer;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(rename_all = "PascalCase")]
//! struct Item {
//!     name: String,
//!     count: i32,
//! }
//!
//! let json = JsonSerializer;
//! assert_eq!(encode_value(&json, &5)?, b"5");
//! let item = Item { name: "x".into(), count: 2 };
//! let bytes = encode_value(&json, &item)?;
//! assert_eq!(bytes, br#"{"Name":"x","Count":2}"#);
//! assert_eq!(decode_value::<Item>(&json, &bytes)?, item);
//! // Null is an empty blob, both ways.
//! assert_eq!(encode_value(&json, &None::<i32>)?, b"");
//! assert_eq!(decode_value::<Option<i32>>(&json, b"")?, None);
//! # Ok::<(), witrpc_core::ParameterError>(())
//! ```

mod serializer;

pub use serializer::JsonSerializer;
