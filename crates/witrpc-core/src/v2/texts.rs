//! Every protocol-2 wire string in one place: statuses' texts and type names exactly as
//! the .NET 2.3.3 server writes them (typos included; clients may match on them).

/// `ErrorMessage` of a 400 when the request's `Data` is missing, unreadable or does not
/// decrypt (.NET `WitResponse.BadRequest("Request is empty")`).
pub const REQUEST_IS_EMPTY: &str = "Request is empty";

/// `ErrorMessage` of a 561 when a request's token is rejected. The typo is .NET's and is
/// kept verbatim.
pub const TOKEN_IS_NOT_VALID: &str = "Tokes is not valid";

/// `ErrorMessage` of a 500 when decoding arguments or running the method failed.
pub const FAILED_TO_PROCESS_REQUEST: &str = "Failed to process request";

/// `ErrorDetails` of a 500 when a request carries arguments but neither type list.
pub const PARAMETER_TYPES_MISSING: &str = "Cannot deserialize request: parameter types missing";

/// `ErrorDetails` of a 500 when the argument count differs from the method's
/// (the text of .NET's `TargetParameterCountException`).
pub const PARAMETER_COUNT_MISMATCH: &str = "Parameter count mismatch.";

/// Prefix of the 400 text when one service is registered; the method name follows.
pub const METHOD_NOT_FOUND_ON_SERVICE: &str = "Method not found on service, method name: ";

/// Prefix of the 400 text when several services are registered (.NET's composite
/// processor); the method name follows.
pub const METHOD_NOT_FOUND_ON_ANY_SERVICE: &str = "Method not found on any registered service, method name: ";

/// Simple name of the assembly that holds the .NET base types on every runtime that
/// WitRPC 2.x supports (net6.0 and later).
pub const CORE_LIB: &str = "System.Private.CoreLib";

/// `Type.FullName` of `System.Object`, the runtime type .NET writes for a null argument.
pub const OBJECT: &str = "System.Object";

/// `Type.FullName` prefix of `Nullable<T>` (its generic argument follows in `[[...]]`).
pub const NULLABLE_PREFIX: &str = "System.Nullable`1[[";

/// Log text for a protocol-2 client refused by a server that does not accept protocol 2
/// (the client itself cannot read a text; it sees a null `Data`).
pub const PROTOCOL_2_REFUSED: &str = "a WitRPC 2.x (protocol 2) client was refused: this server accepts protocol 3 only; allow protocol 2 on the server or upgrade the client";

/// `ErrorMessage` for a protocol-3 client refused by a server that accepts protocol 2
/// only; a 3.x client reports this text from its `ConnectAsync`.
pub const PROTOCOL_3_REFUSED: &str =
    "this server speaks protocol 2 (WitRPC 2.x) only; connect with protocol 2 or allow protocol 3 on the server";

/// What a protocol-3 client reports when its well-formed Initialization (with a
/// non-null key) got a null-`Data` reply: what a .NET 2.x server answers every 3.x
/// Initialization with (notes §11 item 7).
pub const SERVER_SPEAKS_PROTOCOL_2: &str = "the server speaks protocol 2 (WitRPC 2.x); connect with protocol 2";

/// What a protocol-2 client reports when the Initialization reply is a protocol-3
/// payload (a 3.x server's refusal of a 2.x Initialization).
pub const SERVER_SPEAKS_PROTOCOL_3: &str = "the server speaks protocol 3 (WitRPC 3.x); connect with protocol 3";
