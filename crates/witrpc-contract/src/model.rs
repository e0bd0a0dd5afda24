//! The description of a contract that [`parse`](crate::parse()) produces and every consumer
//! (the macro's renderers, gen-ts) works from.
//!
//! A description is well formed by construction: the parser has already rejected what
//! cannot cross the wire, so consumers never re-check.

use proc_macro2::Ident;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Attribute, LitStr, Path, Signature, Token, Type, TypeParamBound, Visibility};

use crate::naming;

/// A whole contract: the trait, its methods and events, and where the runtime lives.
#[derive(Debug)]
pub struct ServiceDef {
    /// Path of the runtime items (`::witrpc::__private` by default).
    pub root: Path,
    /// The .NET interface name (`contract = ".."`).
    pub contract: LitStr,
    /// The trait's own attributes (docs and the like), kept on the rewritten trait.
    pub attrs: Vec<Attribute>,
    /// The trait's visibility, given to every generated item.
    pub vis: Visibility,
    /// `unsafe` when the trait is an `unsafe trait`.
    pub unsafety: Option<Token![unsafe]>,
    /// The trait's name.
    pub ident: Ident,
    /// The supertraits the user wrote.
    pub supertraits: Punctuated<TypeParamBound, Token![+]>,
    /// Methods in declaration order; the position is the method index.
    pub methods: Vec<MethodDef>,
    /// Events in declaration order; the position is the event index.
    pub events: Vec<EventDef>,
}

impl ServiceDef {
    /// `XServer`: the generated `Service` implementation.
    pub fn server_ident(&self) -> Ident {
        format_ident!("{}Server", self.ident)
    }

    /// `XClient`: the generated typed client (Rust and TypeScript).
    pub fn client_ident(&self) -> Ident {
        format_ident!("{}Client", self.ident)
    }

    /// `XEvents`: the generated event emitter (Rust) or event map (TypeScript).
    pub fn events_ident(&self) -> Ident {
        format_ident!("{}Events", self.ident)
    }

    /// The hidden static holding the `ServiceDescriptor`.
    pub fn descriptor_ident(&self) -> Ident {
        format_ident!("__WITRPC_{}_DESCRIPTOR", naming::constant(&self.ident.unraw().to_string()))
    }

    /// The .NET namespace of the contract: `contract` up to its last dot (empty when none).
    pub fn namespace(&self) -> String {
        naming::namespace_of(&self.contract.value()).to_owned()
    }
}

/// One `async fn` of the contract.
#[derive(Debug)]
pub struct MethodDef {
    /// Attributes other than the macro's own (docs, lints), kept on the trait method.
    pub attrs: Vec<Attribute>,
    /// The signature with the macro's argument attributes removed.
    pub sig: Signature,
    /// The name on the wire: the PascalCase Rust name or `#[witrpc(name = "..")]`.
    pub wire_name: String,
    /// The arguments after `&self`, in order.
    pub params: Vec<Param>,
    /// What the method returns.
    pub output: Output,
}

/// One `#[event] fn` of the contract.
#[derive(Debug)]
pub struct EventDef {
    /// Doc comments, repeated on the generated client and emitter methods.
    pub docs: Vec<Attribute>,
    /// The Rust name.
    pub ident: Ident,
    /// The name on the wire: the PascalCase Rust name or `#[event(name = "..")]`.
    pub wire_name: String,
    /// The arguments after `&self`, in order.
    pub params: Vec<Param>,
}

/// One argument of a method or event.
#[derive(Debug)]
pub struct Param {
    /// The argument's name as written (possibly raw, `r#type`).
    pub ident: Ident,
    /// Its type and how it crosses the wire.
    pub value: Value,
    /// `#[witrpc(dotnet = "..", assembly = "..")]`, replacing the `DotNetType` lookup.
    pub dotnet: Option<DotNetName>,
}

impl Param {
    /// The name without `r#`, as used in error messages (`ParameterError::what`).
    pub fn name(&self) -> String {
        self.ident.unraw().to_string()
    }
}

/// A .NET type given by name in an attribute.
#[derive(Debug)]
pub struct DotNetName {
    /// The namespace-qualified type name, e.g. `MyNamespace.MyDto`.
    pub type_name: LitStr,
    /// The simple assembly name, e.g. `MyAssembly`.
    pub assembly: LitStr,
}

/// A type that crosses the wire, and how it is (de)serialized.
#[derive(Debug)]
pub struct Value {
    /// The Rust type as written.
    pub ty: Type,
    /// Whether it needs a byte-array adapter.
    pub kind: WireKind,
}

/// Types that need an adapter to look like their .NET counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    /// Through the type's own serde impls.
    Plain,
    /// `Vec<u8>`, through `ByteArray` / `ByteArrayRef` (base64 in JSON, like .NET `byte[]`).
    Bytes,
    /// `Option<Vec<u8>>`, the same with null for `None`.
    OptionalBytes,
}

/// What a method returns.
#[derive(Debug)]
pub enum Output {
    /// Nothing (`()`): the response carries no data.
    Unit,
    /// A value, encoded as the response data.
    Value(Value),
    /// `Result<T, E>`: `Ok` is the value (`None` for `()`), `Err` becomes the remote error.
    Result {
        /// The `Ok` value, `None` for `()`.
        ok: Option<Value>,
        /// The error type (sent as its `Display` text).
        err: Box<Type>,
    },
}

impl Output {
    /// The value that crosses the wire on success, if any.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Self::Unit | Self::Result { ok: None, .. } => None,
            Self::Value(v) | Self::Result { ok: Some(v), .. } => Some(v),
        }
    }
}
