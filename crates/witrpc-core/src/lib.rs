#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! Protocol-3 wire types of WitRPC, their MemoryPack codec, ids, and the traits the
//! other `witrpc-*` crates plug together with. No I/O happens here.
//!
//! This crate is part of an independent, WitRPC-compatible Rust implementation (not
//! the official .NET WitRPC). See `ARCHITECTURE.md` at the repository root for where
//! it sits.
//!
//! - [`WitMessage`]: the frozen envelope, one per WebSocket message.
//! - [`WitRequest`], [`WitResponse`] and the handshake models: version-tolerant payloads.
//! - [`ids`]: FNV-1a contract and method ids, exactly as .NET computes them.
//! - [`ParameterSerializer`], [`Service`], [`EventSink`], [`ClientChannel`]: plug-in traits.
//! - [`v2`]: protocol 2 (.NET WitRPC 2.x) payloads, version detection and dispatch.
//!
//! ```
//! use witrpc_core::{MessageType, WitMessage, WitRequest};
//!
//! let request = WitRequest { method_name: "Add".into(), ..Default::default() };
//! let message = WitMessage::new(uuid::Uuid::new_v4(), MessageType::Request, Some(request.encode().into()));
//! let decoded = WitMessage::decode(message.encode().into())?;
//! let back = WitRequest::decode(decoded.data.unwrap())?;
//! assert_eq!(back.method_name, "Add");
//! # Ok::<(), witrpc_core::CodecError>(())
//! ```

pub mod batch;
mod channel;
pub mod crypto;
mod descriptor;
pub mod dotnet;
mod error;
mod events;
pub mod extensions;
mod groups;
pub mod ids;
mod memorypack;
mod message;
mod payload;
mod serializer;
mod service;
pub mod session;
pub mod v2;

pub use channel::{ClientChannel, OutgoingCall};
pub use dotnet::{ByteArray, ByteArrayRef, DotNetType};
pub use error::{CodecError, ParameterError, ParameterErrorKind};
pub use events::{
    EmitterAttachment, EventDecoder, EventEmitter, EventError, EventPublisher, EventSink, EventStream,
    EventSubscription, PositionedEvent, PositionedEvents, RoomTimeout, StreamPosition, event_channel,
};
pub use groups::{Audience, GroupError, MAX_GROUP_NAME_LEN, Member, Membership, Target, check_group_name};
pub use message::{ENVELOPE_OVERHEAD, MessageType, WitMessage};
pub use payload::{
    AUTHORIZED, CommunicationStatus, FORBIDDEN, PROTOCOL_VERSION, ParameterType, WitRequest, WitRequestAuthorization,
    WitRequestInitialization, WitResponse, WitResponseAuthorization, WitResponseInitialization,
};
pub use serializer::{DeserializeVisitor, ParameterSerializer, decode_value, encode_value, parameter_error};
pub use service::{
    BoxFuture, CallContext, ConnectionClosed, ConnectionRequest, EventDescriptor, Identity, MethodCall,
    MethodDescriptor, MethodError, ResolvedContract, Service, ServiceDescriptor,
};

/// Re-exported so generated code and serializer crates name one version.
pub use bytes;
pub use erased_serde;
/// Re-exported for the bounds of [`encode_value`], [`decode_value`] and the
/// [`dotnet::byte_array`] helpers.
pub use serde;
pub use uuid::Uuid;
