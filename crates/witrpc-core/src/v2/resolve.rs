//! Protocol-2 method resolution and the type names 2.x events carry (notes §3.4, §4,
//! §11 item 2).
//!
//! A 2.x request names no contract and no method id: the method is the one whose name
//! equals `MethodName` ignoring case and whose .NET parameter types equal the
//! request's type list exactly, in count and order; the first match in registration
//! order wins. Types travel as strings (`System.Int32, System.Private.CoreLib`, with
//! `Version=…` parts when the envelope is JSON), so both sides are brought to one
//! canonical form by [`canonical_type_name`] before comparing.

use bytes::Bytes;

use crate::descriptor::ServiceDescriptor;
use crate::payload::{CommunicationStatus, ParameterType};
use crate::v2::payload::{WitRequest, WitResponse};
use crate::v2::texts;

/// Deepest generic nesting a type name may have; deeper names never match (and cannot
/// exhaust the stack).
const MAX_TYPE_NAME_DEPTH: usize = 16;

/// Assembly names that resolve to the core library's types on .NET 6+ (reference and
/// facade assemblies forward them there).
const CORE_LIB_ALIASES: [&str; 3] = ["mscorlib", "netstandard", "System.Runtime"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Versions dropped, assemblies lower-cased, a missing assembly = the core library.
    Canonical,
    /// Versions dropped, everything else as written (MemoryPack's `System.Type` form).
    Short,
}

/// Splits `s` at commas outside brackets.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Index of the `]` matching the `[` at `open`.
fn closing(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s[open..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn render(name: &str, mode: Mode, depth: usize) -> Option<String> {
    if depth > MAX_TYPE_NAME_DEPTH {
        return None;
    }
    let parts = split_top(name);
    let (type_part, assembly) = match parts.as_slice() {
        [t] => (t.trim(), None),
        [t, a, ..] => (t.trim(), Some(a.trim())),
        [] => return None,
    };
    if type_part.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let bracket = type_part.find('[').unwrap_or(type_part.len());
    let bare = type_part[..bracket].trim();
    if bare.is_empty() || bare.contains(']') {
        return None;
    }
    out.push_str(bare);
    let mut rest = &type_part[bracket..];
    let mut first_group = true;
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return None;
        }
        let end = closing(rest, 0)?;
        let inner = &rest[1..end];
        let is_array = inner.is_empty() || inner.chars().all(|c| c == ',' || c == '*' || c.is_whitespace());
        if is_array {
            out.push('[');
            out.extend(inner.chars().filter(|c| !c.is_whitespace()));
            out.push(']');
        } else if first_group {
            out.push('[');
            for (i, arg) in split_top(inner).into_iter().enumerate() {
                let arg = arg.trim();
                let arg = arg.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(arg);
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                out.push_str(&render(arg, mode, depth + 1)?);
                out.push(']');
            }
            out.push(']');
        } else {
            return None;
        }
        first_group = false;
        rest = rest[end + 1..].trim_start();
    }
    let assembly = match (assembly, mode) {
        (Some(""), _) => return None,
        (Some(a), Mode::Canonical) if CORE_LIB_ALIASES.iter().any(|x| x.eq_ignore_ascii_case(a)) => {
            Some(texts::CORE_LIB.to_ascii_lowercase())
        }
        (Some(a), Mode::Canonical) => Some(a.to_ascii_lowercase()),
        (None, Mode::Canonical) => Some(texts::CORE_LIB.to_ascii_lowercase()),
        (a, Mode::Short) => a.map(str::to_owned),
    };
    if let Some(a) = assembly {
        out.push_str(", ");
        out.push_str(&a);
    }
    Some(out)
}

/// The canonical form of a .NET type name, for comparing names from different peers.
///
/// `Version=`, `Culture=` and `PublicKeyToken=` parts are dropped at every nesting
/// level, assembly names are compared case-insensitively (as .NET loads assemblies),
/// type names case-sensitively (as `Type.GetType` does), a missing assembly means the
/// core library and `mscorlib`, `netstandard` and `System.Runtime` are taken as the
/// core library. Returns `None` for a name that is not a well-formed type name.
///
/// ```
/// use witrpc_core::v2::canonical_type_name;
/// let short = canonical_type_name("System.Int32, System.Private.CoreLib");
/// let long = canonical_type_name(
///     "System.Int32, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e");
/// assert_eq!(short, long);
/// assert_ne!(short, canonical_type_name("System.Int64, System.Private.CoreLib"));
/// ```
pub fn canonical_type_name(name: &str) -> Option<String> {
    render(name, Mode::Canonical, 0)
}

/// `name` without its `Version=`, `Culture=` and `PublicKeyToken=` parts, at every
/// nesting level: the form MemoryPack writes a `System.Type` in.
///
/// ```
/// assert_eq!(
///     witrpc_core::v2::short_type_name("System.String, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral").as_deref(),
///     Some("System.String, System.Private.CoreLib"),
/// );
/// ```
pub fn short_type_name(name: &str) -> Option<String> {
    render(name, Mode::Short, 0)
}

/// `"{FullName}, {Assembly}"` of a by-name type, or `None` when either is missing
/// (.NET's `Type.GetType` then yields null).
fn qualified(t: &ParameterType) -> Option<String> {
    match (t.type_name.as_deref(), t.assembly.as_deref()) {
        (Some(n), Some(a)) if !n.is_empty() && !a.is_empty() => Some(format!("{n}, {a}")),
        _ => None,
    }
}

/// The type-name string a .NET 2.x client can resolve for an event argument declared
/// as `t`: the runtime type .NET itself would write (`Nullable<T>` boxes as `T`),
/// without versions; `System.Object` when the type is unknown.
///
/// ```
/// use witrpc_core::{DotNetType, ParameterType, v2::runtime_type_name};
/// let t = ParameterType { type_name: Some(<Option<i32>>::full_name()), assembly: Some(<Option<i32>>::assembly()) };
/// assert_eq!(runtime_type_name(&t), "System.Int32, System.Private.CoreLib");
/// ```
pub fn runtime_type_name(t: &ParameterType) -> String {
    let object = || format!("{}, {}", texts::OBJECT, texts::CORE_LIB);
    let Some(name) = qualified(t) else { return object() };
    let unwrapped = t
        .type_name
        .as_deref()
        .and_then(|n| n.strip_prefix(texts::NULLABLE_PREFIX))
        .and_then(|n| n.strip_suffix("]]"))
        .map(str::to_owned)
        .unwrap_or(name);
    short_type_name(&unwrapped).unwrap_or_else(object)
}

/// The `WitRequest` of a 2.x event (sent as `Type = 2` with the connection's Guid).
///
/// `ParameterTypes` gets one [`runtime_type_name`] per argument, the list a .NET
/// client decodes events with; `System.Object` pads a list shorter than the
/// arguments. The other three lists stay empty and `Token` is `""`, as .NET's
/// server writes them in its default `isStrongAssemblyMatch` mode.
pub fn event_request(event_name: &str, parameters: Vec<Bytes>, types: &[ParameterType]) -> WitRequest {
    let parameter_types = (0..parameters.len())
        .map(|i| types.get(i).map_or_else(|| runtime_type_name(&ParameterType::default()), runtime_type_name))
        .collect();
    WitRequest { method_name: event_name.to_owned(), parameters, parameter_types, ..WitRequest::default() }
}

/// Which method a request resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodRef {
    /// Index of the service, in the order given to [`MethodTable::new`].
    pub service: usize,
    /// Index into that service's `descriptor().methods`.
    pub method: usize,
}

/// Why a 2.x request could not be dispatched; each maps to the reply .NET sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No method has this name and signature.
    #[error("no method `{method_name}` with the requested parameter types")]
    MethodNotFound {
        /// The request's `MethodName`.
        method_name: String,
        /// Whether more than one service is registered (chooses the .NET text).
        several_services: bool,
    },
    /// The request has arguments but neither type list.
    #[error("the request carries arguments but no parameter types")]
    ParameterTypesMissing,
    /// The number of arguments differs from the method's.
    #[error("the request carries {actual} arguments; the method takes {expected}")]
    ParameterCountMismatch {
        /// Parameters of the method.
        expected: usize,
        /// Arguments in the request.
        actual: usize,
    },
}

impl ResolveError {
    /// The response a .NET 2.x server sends for this error.
    pub fn response(&self) -> WitResponse {
        match self {
            Self::MethodNotFound { method_name, several_services } => {
                WitResponse::method_not_found(method_name, *several_services)
            }
            Self::ParameterTypesMissing => WitResponse::failed(texts::PARAMETER_TYPES_MISSING),
            Self::ParameterCountMismatch { .. } => WitResponse::failed(texts::PARAMETER_COUNT_MISMATCH),
        }
    }

    /// The response's status.
    pub fn status(&self) -> CommunicationStatus {
        self.response().status
    }
}

#[derive(Debug)]
struct Entry {
    service: usize,
    method: usize,
    name: &'static str,
    /// Canonical parameter type names; `None` for a type without a name.
    signature: Vec<Option<String>>,
}

/// Every method of the served contracts with its canonical signature, built once
/// when the server starts.
///
/// ```
/// use std::sync::OnceLock;
/// use witrpc_core::{DotNetType, MethodDescriptor, ParameterType, ServiceDescriptor};
/// use witrpc_core::v2::{MethodRef, MethodTable, WitRequest};
///
/// fn ints() -> Vec<ParameterType> {
///     vec![ParameterType { type_name: Some(i32::full_name()), assembly: Some(i32::assembly()) }; 2]
/// }
/// static CALC: ServiceDescriptor = ServiceDescriptor {
///     contract: "Demo.ICalc",
///     methods: &[MethodDescriptor {
///         name: "Add",
///         parameter_names: &["a", "b"],
///         parameter_types: || vec!["System.Int32".into(); 2],
///         parameter_types_by_name: ints,
///     }],
///     events: &[],
///     resolved: OnceLock::new(),
/// };
///
/// let table = MethodTable::new([&CALC]);
/// let request = WitRequest {
///     method_name: "add".into(),
///     parameters: vec![b"2".to_vec().into(), b"3".to_vec().into()],
///     parameter_types: vec!["System.Int32, System.Private.CoreLib".into(); 2],
///     ..Default::default()
/// };
/// assert_eq!(table.resolve(&request), Ok(MethodRef { service: 0, method: 0 }));
/// ```
#[derive(Debug)]
pub struct MethodTable {
    entries: Vec<Entry>,
    services: usize,
}

impl MethodTable {
    /// Indexes the methods of `services`, in registration order.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a ServiceDescriptor>) -> Self {
        let mut entries = Vec::new();
        let mut count = 0;
        for (service, descriptor) in services.into_iter().enumerate() {
            count += 1;
            for (method, m) in descriptor.methods.iter().enumerate() {
                let signature = (m.parameter_types_by_name)()
                    .iter()
                    .map(|t| qualified(t).as_deref().and_then(canonical_type_name))
                    .collect();
                entries.push(Entry { service, method, name: m.name, signature });
            }
        }
        Self { entries, services: count }
    }

    /// Finds the method `request` calls, and checks its argument count.
    ///
    /// The signature is `ParameterTypesByName` when that list is non-empty, else
    /// `ParameterTypes` (§11 item 2); generic arguments are not consulted, since no
    /// served method is generic.
    ///
    /// # Errors
    /// [`ResolveError`]; answer with [`ResolveError::response`].
    pub fn resolve(&self, request: &WitRequest) -> Result<MethodRef, ResolveError> {
        let wanted: Vec<Option<String>> = if request.parameter_types_by_name.is_empty() {
            request.parameter_types.iter().map(|t| canonical_type_name(t)).collect()
        } else {
            request
                .parameter_types_by_name
                .iter()
                .map(|t| qualified(t).as_deref().and_then(canonical_type_name))
                .collect()
        };
        let entry = self
            .entries
            .iter()
            .find(|e| {
                names_match(e.name, &request.method_name)
                    && e.signature.len() == wanted.len()
                    && e.signature.iter().zip(&wanted).all(|(a, b)| a.is_some() && a == b)
            })
            .ok_or_else(|| ResolveError::MethodNotFound {
                method_name: request.method_name.clone(),
                several_services: self.services > 1,
            })?;
        let actual = request.parameters.len();
        if actual > 0 && wanted.is_empty() {
            return Err(ResolveError::ParameterTypesMissing);
        }
        if actual != entry.signature.len() {
            return Err(ResolveError::ParameterCountMismatch { expected: entry.signature.len(), actual });
        }
        Ok(MethodRef { service: entry.service, method: entry.method })
    }
}

/// .NET's `InvariantCultureIgnoreCase` for identifiers: ASCII case folding, and simple
/// lower-casing beyond ASCII.
fn names_match(declared: &str, requested: &str) -> bool {
    declared.eq_ignore_ascii_case(requested)
        || (!requested.is_ascii() && declared.to_lowercase() == requested.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_names_compare_without_versions_at_every_level() {
        let short = "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]], System.Private.CoreLib";
        let long = "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]], System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e";
        assert_eq!(canonical_type_name(short), canonical_type_name(long));
        assert_eq!(short_type_name(long).as_deref(), Some(short));
        let dict = "System.Collections.Generic.Dictionary`2[[System.String, mscorlib],[System.Int32[], System.Private.CoreLib]], System.Private.CoreLib";
        assert_eq!(
            canonical_type_name(dict).as_deref(),
            Some(
                "System.Collections.Generic.Dictionary`2[[System.String, system.private.corelib],[System.Int32[], system.private.corelib]], system.private.corelib"
            )
        );
    }

    #[test]
    fn type_names_are_case_sensitive_and_assemblies_are_not() {
        assert_eq!(canonical_type_name("A.B, MyLib"), canonical_type_name("A.B, mylib"));
        assert_ne!(canonical_type_name("A.B, MyLib"), canonical_type_name("a.b, MyLib"));
        assert_ne!(canonical_type_name("A.B, MyLib"), canonical_type_name("A.B, Other"));
        assert_eq!(canonical_type_name("System.Int32"), canonical_type_name("System.Int32, System.Private.CoreLib"));
    }

    #[test]
    fn malformed_or_too_deep_names_are_none() {
        for bad in ["", ", Asm", "A[[B", "A]]", "A[[B, C]]x", "A, "] {
            assert_eq!(canonical_type_name(bad), None, "{bad:?}");
        }
        let deep = format!("{}X{}", "A`1[[".repeat(40), "]]".repeat(40));
        assert_eq!(canonical_type_name(&deep), None);
    }

    #[test]
    fn event_types_pad_with_object_and_unwrap_nullable() {
        let nullable = ParameterType {
            type_name: Some("System.Nullable`1[[System.Double, System.Private.CoreLib]]".into()),
            assembly: Some("System.Private.CoreLib".into()),
        };
        let r = event_request("Changed", vec![Bytes::from_static(b"1"), Bytes::new()], &[nullable]);
        assert_eq!(
            r.parameter_types,
            ["System.Double, System.Private.CoreLib", "System.Object, System.Private.CoreLib"]
        );
        assert!(r.parameter_types_by_name.is_empty() && r.token.is_empty());
    }
}
