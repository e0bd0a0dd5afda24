//! The encryption seam: the traits a connection's key exchange and ciphers implement,
//! and the plain (no encryption) implementation.
//!
//! The Initialization handshake hands each connection a [`Sealer`] (outbound) and an
//! [`Opener`] (inbound). They are separate values, so whatever writes seals in wire order
//! and whatever reads opens in arrival order without a lock. The real ciphers live in
//! the `witrpc-crypto` crate (RSA-OAEP key transport, AES-256-GCM); a build without
//! encryption needs only this module.
//!
//! ```
//! use witrpc_core::crypto::{ServerEncryptor, plain::PlainServerEncryptor};
//! use witrpc_core::WitRequestInitialization;
//!
//! let request = WitRequestInitialization::plain();
//! let accepted = PlainServerEncryptor.accept(request.public_key.as_deref())?;
//! let mut sealer = accepted.sealer;
//! assert_eq!(&sealer.seal(bytes::Bytes::from_static(b"x"))?[..], b"x");
//! # Ok::<(), witrpc_core::crypto::CryptoError>(())
//! ```

pub mod plain;
pub mod plain_v2;

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Why a handshake or a frame was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The client asked for encryption and this server does not use it.
    #[error(
        "the client offered an encryption key but this server does not use encryption; connect without encryption or enable it on the server"
    )]
    EncryptionNotEnabled,
    /// This side requires encryption and the peer did not offer it.
    #[error("the peer did not offer encryption but this side requires it; enable encryption on both ends")]
    EncryptionRequired,
    /// The peer's key or handshake reply is unreadable.
    #[error("invalid handshake material: {reason}")]
    InvalidHandshake {
        /// What was wrong.
        reason: &'static str,
    },
    /// A sealed frame failed authentication, was replayed or arrived out of order.
    #[error("encrypted frame rejected: {reason}")]
    Frame {
        /// What was wrong.
        reason: &'static str,
    },
}

/// The server's per-connection result of a successful Initialization.
pub struct Accepted {
    /// `Data` of the Initialization reply (plain MemoryPack, or RSA-wrapped).
    pub reply: Bytes,
    /// Seals outbound payloads.
    pub sealer: Box<dyn Sealer>,
    /// Opens inbound payloads.
    pub opener: Box<dyn Opener>,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted").field("reply_len", &self.reply.len()).finish_non_exhaustive()
    }
}

/// The per-direction ciphers of one connection, as the handshake left them.
pub struct Ciphers {
    /// Seals outbound payloads.
    pub sealer: Box<dyn Sealer>,
    /// Opens inbound payloads.
    pub opener: Box<dyn Opener>,
}

impl fmt::Debug for Ciphers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ciphers").field("sealer", &self.sealer).field("opener", &self.opener).finish()
    }
}

/// Server side of the key exchange; one instance serves every connection.
pub trait ServerEncryptor: Send + Sync + fmt::Debug + 'static {
    /// Whether this encryptor really encrypts (used in logs and errors).
    fn is_encrypting(&self) -> bool;

    /// Answers an Initialization carrying `public_key` (`[0x00]` in plain mode).
    ///
    /// # Errors
    /// [`CryptoError`] when the client's mode does not match this server's, or its key
    /// is unreadable; the server then sends [`ServerEncryptor::refusal`] and closes.
    fn accept(&self, public_key: Option<&[u8]>) -> Result<Accepted, CryptoError>;

    /// As [`ServerEncryptor::accept`], with our `Extensions` member (order 4) in the
    /// reply: `extensions` is the accepted feature set's text (see
    /// [`crate::extensions`]), written only for a client that announced one. The
    /// default ignores it: the client then sees a plain 3.x reply and negotiates
    /// nothing (safe for custom encryptors that do not know the member).
    ///
    /// # Errors
    /// As [`ServerEncryptor::accept`].
    fn accept_with_extensions(
        &self,
        public_key: Option<&[u8]>,
        extensions: Option<&str>,
    ) -> Result<Accepted, CryptoError> {
        let _ = extensions;
        self.accept(public_key)
    }

    /// Wraps an encoded refusal (`WitResponseInitialization` with `ErrorMessage`) so the
    /// client can read it.
    fn refusal(&self, public_key: Option<&[u8]>, payload: Vec<u8>) -> Bytes;
}

/// Client side of the key exchange; one instance per connection attempt.
pub trait ClientEncryptor: Send + Sync + fmt::Debug {
    /// `PublicKey` to put in the Initialization request.
    fn public_key(&self) -> Bytes;

    /// Reads the server's Initialization reply `Data` into a decoded response.
    ///
    /// # Errors
    /// When the reply cannot be unwrapped.
    fn unwrap_reply(&self, data: Bytes) -> Result<Bytes, CryptoError>;

    /// Derives the per-direction ciphers from the accepted reply.
    ///
    /// # Errors
    /// When the key material is missing or malformed.
    fn complete(&self, symmetric_key: Option<&[u8]>, vector: Option<&[u8]>) -> Result<Ciphers, CryptoError>;
}

/// Seals outbound payloads, in wire order.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Seals one payload.
    ///
    /// # Errors
    /// When the counter space is exhausted.
    fn seal(&mut self, plaintext: Bytes) -> Result<Bytes, CryptoError>;

    /// Whether sealing leaves a payload exactly as it is (plain mode): a frame encoded
    /// once for many connections may then be sent to this one as it is. Default `false`.
    fn leaves_plaintext(&self) -> bool {
        false
    }

    /// Bytes this sealer writes in front of the plaintext; callers reserve them so
    /// [`Sealer::seal_in_place`] can seal without moving the payload. Default 0.
    fn prefix_len(&self) -> usize {
        0
    }

    /// Seals `frame[at + prefix_len()..]` in place, filling the `prefix_len()` bytes
    /// reserved at `frame[at..]`. The default seals a copy with [`Sealer::seal`];
    /// ciphers that can work in place override it (no extra copy per message).
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    fn seal_in_place(&mut self, frame: &mut BytesMut, at: usize) -> Result<(), CryptoError> {
        let plaintext = frame.split_off(at + self.prefix_len()).freeze();
        frame.truncate(at);
        let sealed = self.seal(plaintext)?;
        frame.extend_from_slice(&sealed);
        Ok(())
    }
}

/// Opens inbound payloads, in arrival order.
pub trait Opener: Send + Sync + fmt::Debug {
    /// Opens one payload.
    ///
    /// # Errors
    /// [`CryptoError::Frame`] when it fails authentication or arrives out of order.
    fn open(&mut self, sealed: Bytes) -> Result<Bytes, CryptoError>;
}
