#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr))]
//! Message encryption for witrpc connections.
//!
//! The Initialization handshake hands each connection a [`Sealer`] (outbound) and an
//! [`Opener`] (inbound). They are separate values, so whatever writes seals in wire order
//! and whatever reads opens in arrival order (one task or two) without a lock.
//!
//! Two modes, both wire-compatible with .NET WitRPC 3.x:
//! - [`plain`]: no encryption (`[0x00]` keys, data passed through), the default;
//! - [`encrypted`]: the protocol-3 scheme (`with_encryption()`): RSA-OAEP-SHA256 key
//!   transport, HKDF-SHA256 per-direction keys, AES-256-GCM with counter nonces and
//!   strict in-order counters ([`aead`]). `ring` provides HKDF, AES-GCM and randomness;
//!   the RustCrypto `rsa` crate provides RSA-OAEP, which `ring` does not offer.
//!
//! [`v2`] holds the same two modes for protocol 2 (.NET WitRPC 2.x): RSA-OAEP key
//! transport and AES-256-CBC-PKCS7 with a fixed IV per connection (RustCrypto `aes` +
//! `cbc`, as `ring` has no CBC), behind the same traits.
//!
//! The traits ([`Sealer`], [`Opener`], [`ServerEncryptor`], [`ClientEncryptor`]) and the
//! plain mode live in `witrpc_core::crypto` (so a build without encryption compiles no
//! RSA or AES); they are re-exported here unchanged.
//!
//! ```
//! use witrpc_crypto::{ServerEncryptor, plain::PlainServerEncryptor};
//! use witrpc_core::WitRequestInitialization;
//!
//! let request = WitRequestInitialization::plain();
//! let accepted = PlainServerEncryptor.accept(request.public_key.as_deref())?;
//! let mut sealer = accepted.sealer;
//! assert_eq!(&sealer.seal(bytes::Bytes::from_static(b"x"))?[..], b"x");
//! # Ok::<(), witrpc_crypto::CryptoError>(())
//! ```

pub mod aead;
pub mod encrypted;
pub mod v2;

pub use witrpc_core::crypto::{Accepted, Ciphers, ClientEncryptor, CryptoError, Opener, Sealer, ServerEncryptor};

/// Protocol 3 without encryption (re-exported from `witrpc_core::crypto::plain`).
pub mod plain {
    pub use witrpc_core::crypto::plain::*;
}
