//! Protocol 2: the wire of .NET WitRPC 2.x (NuGet 2.3.x), as pure building blocks.
//!
//! Protocol 2 keeps the protocol-3 envelope ([`WitMessage`](crate::WitMessage),
//! byte-identical) and differs inside it:
//!
//! - payloads use MemoryPack's *Object* layout, no per-member lengths ([`WitRequest`]
//!   has 7 members, [`WitResponse`] 4, the handshake models 1 or 2);
//! - methods are found by case-insensitive name plus the exact list of .NET parameter
//!   type names ([`MethodTable`]), events carry the runtime type names a .NET client
//!   resolves ([`event_request`]);
//! - the server's texts are .NET's, typos included ([`texts`]);
//! - encryption is AES-256-CBC with one fixed IV per connection (in `witrpc-crypto`).
//!
//! [`detect_frame`] tells a 2.x client from a 3.x one by its Initialization alone.
//! Nothing here does I/O; the server and client sessions plug these in. The facts come
//! from `witrpc-protocol-2x.md`; `docs/protocol-2.md` lists the choices made where the
//! notes are silent.
//!
//! ```
//! use witrpc_core::{MessageType, Uuid, WitMessage};
//! use witrpc_core::v2::{self, ProtocolVersion};
//!
//! // A plain 2.x client's first frame, and the server's acceptance.
//! let init = WitMessage::new(Uuid::new_v4(), MessageType::Initialization,
//!     Some(v2::WitRequestInitialization::plain().encode().into()));
//! let (version, init) = v2::detect_frame(init.encode().into())?;
//! assert_eq!(version, ProtocolVersion::V2);
//! let reply = init.reply(Some(v2::WitResponseInitialization::plain().encode().into()));
//! assert_eq!(reply.encode().len(), 36);
//! # Ok::<(), v2::DetectError>(())
//! ```

mod detect;
mod json;
mod payload;
mod resolve;
pub mod texts;

pub use detect::{
    DetectError, EnvelopeGuess, ProtocolVersion, UnknownProtocol, detect_frame, detect_message, detect_payload,
    detect_reply, initialization_refusal, protocol_3_refusal_payload,
};
pub use json::JsonMessage;
pub use payload::{
    WitRequest, WitRequestAuthorization, WitRequestInitialization, WitResponse, WitResponseAuthorization,
    WitResponseInitialization, decode_parameter_type, encode_parameter_type,
};
pub use resolve::{
    MethodRef, MethodTable, ResolveError, canonical_type_name, event_request, runtime_type_name, short_type_name,
};
