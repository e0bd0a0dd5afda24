//! Protocol-2 (.NET WitRPC 2.x) encryption, behind the same traits as protocol 3.
//!
//! - Key transport (notes §5.2): the client sends its RSA-2048 public key as UTF-8 JSON
//!   `{"mod":"<b64>","exp":"<b64>"}`; the server answers with a fresh 32-byte AES key
//!   and 16-byte IV in a protocol-2 `WitResponseInitialization`, RSA-OAEP-SHA256
//!   encrypted to that key (one 256-byte block).
//! - Messages (§5.3): `Data` of every message except Initialization is AES-256-CBC with
//!   PKCS#7 padding under that key, restarting from the **same IV for every message in
//!   both directions** for the whole connection: no IV prefix, no MAC, no counter.
//!   Identical payloads give identical ciphertexts and an altered ciphertext goes
//!   undetected unless it breaks the padding; this is the 2.x wire, kept only so 2.x
//!   peers can connect.
//! - Without encryption (§5.4) the handshake still happens: `PublicKey = [0x00]`,
//!   answered with `SymmetricKey = [0x00]`, `Vector = [0x00]`, then data in clear.
//!
//! [`ServerEncryptor::refusal`] has no protocol-2 meaning: a 2.x client reads no error
//! text, and every Initialization these encryptors reject must be answered with a null
//! `Data` (`witrpc_core::v2::initialization_refusal`), then closed.
//!
//! ```
//! use witrpc_core::v2::WitResponseInitialization;
//! use witrpc_crypto::{ClientEncryptor, ServerEncryptor, v2};
//!
//! let client = v2::PlainClientEncryptor;
//! let accepted = v2::PlainServerEncryptor.accept(Some(&client.public_key()))?;
//! let reply = WitResponseInitialization::decode(client.unwrap_reply(accepted.reply)?).unwrap();
//! let mut ciphers = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref())?;
//! assert_eq!(&ciphers.sealer.seal(bytes::Bytes::from_static(b"x"))?[..], b"x");
//! # Ok::<(), witrpc_crypto::CryptoError>(())
//! ```

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use rsa::rand_core::OsRng;
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use witrpc_core::v2::WitResponseInitialization;

use crate::encrypted::{RSA_KEY_BITS, parse_public_key};
use crate::{Accepted, Ciphers, ClientEncryptor, CryptoError, Opener, Sealer, ServerEncryptor};
pub use witrpc_core::crypto::plain_v2::{PlainClientEncryptor, PlainServerEncryptor};

/// Length of the AES-256 key (`SymmetricKey`).
pub const KEY_LEN: usize = 32;
/// Length of the CBC IV (`Vector`).
pub const IV_LEN: usize = 16;
/// AES block size: every ciphertext is a non-empty multiple of it.
pub const BLOCK_LEN: usize = 16;

/// A .NET 2.x client without encryption sends `[0x00]`; a 0-byte key counts too (the
/// .NET server treats every key of at most one byte as "no key").
fn is_plain(key: &[u8]) -> bool {
    key.len() <= 1
}

fn no_public_key() -> CryptoError {
    CryptoError::InvalidHandshake { reason: "the Initialization carries no public key" }
}

/// Length of a ciphertext for `plaintext_len` bytes: PKCS#7 always adds 1 to 16 bytes.
///
/// ```
/// assert_eq!(witrpc_crypto::v2::sealed_len(134), 144);
/// assert_eq!(witrpc_crypto::v2::sealed_len(0), 16);
/// ```
pub fn sealed_len(plaintext_len: usize) -> usize {
    (plaintext_len / BLOCK_LEN + 1) * BLOCK_LEN
}

/// Writes `key` byte for byte as the .NET 2.x general client does:
/// `{"mod":"<b64>","exp":"<b64>"}`, in that order, with System.Text.Json's default
/// escaping of `+` as `\u002B` (notes §5.2). Any JSON reader (ours too) reads it.
pub(crate) fn format_public_key(key: &RsaPublicKey) -> Vec<u8> {
    let b64 = |v: Vec<u8>| STANDARD.encode(v).replace('+', "\\u002B");
    format!(r#"{{"mod":"{}","exp":"{}"}}"#, b64(key.n().to_bytes_be()), b64(key.e().to_bytes_be())).into_bytes()
}

/// AES-256-CBC-PKCS7 with one key and one IV for every message of a connection, in
/// both directions; it is both the [`Sealer`] and the [`Opener`].
#[derive(Clone)]
pub struct CbcCipher {
    key: [u8; KEY_LEN],
    iv: [u8; IV_LEN],
}

impl fmt::Debug for CbcCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcCipher").finish_non_exhaustive()
    }
}

impl CbcCipher {
    /// A cipher for `key` and `iv`.
    ///
    /// # Errors
    /// [`CryptoError::InvalidHandshake`] unless the key is 32 bytes and the IV 16.
    pub fn new(key: &[u8], iv: &[u8]) -> Result<Self, CryptoError> {
        let key =
            key.try_into().map_err(|_| CryptoError::InvalidHandshake { reason: "the AES key is not 32 bytes" })?;
        let iv = iv.try_into().map_err(|_| CryptoError::InvalidHandshake { reason: "the CBC IV is not 16 bytes" })?;
        Ok(Self { key, iv })
    }

    /// Encrypts one payload (never fails: CBC has no counter to run out of).
    ///
    /// ```
    /// let c = witrpc_crypto::v2::CbcCipher::new(&[7; 32], &[9; 16]).unwrap();
    /// let sealed = c.encrypt(b"hello");
    /// assert_eq!(sealed.len(), 16);
    /// assert_eq!(sealed, c.encrypt(b"hello"), "the fixed IV makes equal payloads equal");
    /// assert_eq!(c.decrypt(&sealed).unwrap(), b"hello");
    /// ```
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)
    }

    /// Decrypts one payload.
    ///
    /// # Errors
    /// [`CryptoError::Frame`] when the length is not a non-zero multiple of 16 or the
    /// padding is wrong (a different key, or altered bytes in the last block).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.is_empty() || ciphertext.len() % BLOCK_LEN != 0 {
            return Err(CryptoError::Frame { reason: "AES-CBC data is not a non-empty multiple of 16 bytes" });
        }
        cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| CryptoError::Frame { reason: "AES-CBC data does not decrypt under this connection's key" })
    }
}

impl Sealer for CbcCipher {
    fn seal(&mut self, plaintext: Bytes) -> Result<Bytes, CryptoError> {
        Ok(self.encrypt(&plaintext).into())
    }
}

impl Opener for CbcCipher {
    fn open(&mut self, sealed: Bytes) -> Result<Bytes, CryptoError> {
        self.decrypt(&sealed).map(Bytes::from)
    }
}

/// Protocol-2 server with encryption (`WithEncryption()`): RSA-OAEP-SHA256 key
/// transport, then AES-256-CBC with a fixed IV per connection.
///
/// Each accepted connection gets a fresh random key and IV. A client without a key
/// (`[0x00]`) is refused with [`CryptoError::EncryptionRequired`] (.NET would send it
/// the AES key and IV in clear, notes §9 item 8). Keys under 2048 bits are refused.
#[derive(Debug)]
pub struct EncryptedServerEncryptor {
    rng: SystemRandom,
}

impl Default for EncryptedServerEncryptor {
    fn default() -> Self {
        Self::new()
    }
}

impl EncryptedServerEncryptor {
    /// A new encryptor (one serves every connection).
    pub fn new() -> Self {
        Self { rng: SystemRandom::new() }
    }
}

impl ServerEncryptor for EncryptedServerEncryptor {
    fn is_encrypting(&self) -> bool {
        true
    }

    fn accept(&self, public_key: Option<&[u8]>) -> Result<Accepted, CryptoError> {
        let public_key = public_key.ok_or_else(no_public_key)?;
        if is_plain(public_key) {
            return Err(CryptoError::EncryptionRequired);
        }
        let rsa_key = parse_public_key(public_key)?;
        let mut key = [0u8; KEY_LEN];
        let mut iv = [0u8; IV_LEN];
        self.rng
            .fill(&mut key)
            .and_then(|()| self.rng.fill(&mut iv))
            .map_err(|_| CryptoError::InvalidHandshake { reason: "no system randomness" })?;
        let reply = WitResponseInitialization {
            symmetric_key: Some(Bytes::copy_from_slice(&key)),
            vector: Some(Bytes::copy_from_slice(&iv)),
        };
        let wrapped = rsa_key
            .encrypt(&mut OsRng, Oaep::new::<Sha256>(), &reply.encode())
            .map_err(|_| CryptoError::InvalidHandshake { reason: "RSA encryption failed" })?;
        let cipher = CbcCipher { key, iv };
        Ok(Accepted { reply: wrapped.into(), sealer: Box::new(cipher.clone()), opener: Box::new(cipher) })
    }

    /// Returns `payload` unchanged; a protocol-2 session sends a null `Data` instead.
    fn refusal(&self, _public_key: Option<&[u8]>, payload: Vec<u8>) -> Bytes {
        payload.into()
    }
}

/// Protocol-2 client with encryption: a fresh RSA-2048 key per connection, its public
/// half sent as `{"mod":"…","exp":"…"}`.
pub struct EncryptedClientEncryptor {
    private: RsaPrivateKey,
    public_json: Bytes,
}

impl fmt::Debug for EncryptedClientEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedClientEncryptor").finish_non_exhaustive()
    }
}

impl EncryptedClientEncryptor {
    /// Generates a key pair. Takes tens of milliseconds: run it off the async runtime
    /// (`spawn_blocking`).
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn generate() -> Result<Self, CryptoError> {
        let private = RsaPrivateKey::new(&mut OsRng, RSA_KEY_BITS)
            .map_err(|_| CryptoError::InvalidHandshake { reason: "RSA key generation failed" })?;
        Ok(Self::from_private_key(private))
    }

    /// Uses an existing key pair (e.g. one generated ahead of time).
    pub(crate) fn from_private_key(private: RsaPrivateKey) -> Self {
        let public_json = format_public_key(&private.to_public_key()).into();
        Self { private, public_json }
    }
}

impl ClientEncryptor for EncryptedClientEncryptor {
    fn public_key(&self) -> Bytes {
        self.public_json.clone()
    }

    fn unwrap_reply(&self, data: Bytes) -> Result<Bytes, CryptoError> {
        match self.private.decrypt(Oaep::new::<Sha256>(), &data) {
            Ok(plain) => Ok(plain.into()),
            // A server without encryption, or a protocol-3 server refusing us, answers in
            // clear: pass it on, so the caller reports the mode or version mismatch
            // (`witrpc_core::v2::detect_reply`) instead of a decryption error.
            Err(_) if witrpc_core::v2::detect_reply(&data).is_some() => Ok(data),
            Err(_) => Err(CryptoError::InvalidHandshake { reason: "cannot decrypt the server's key reply" }),
        }
    }

    fn complete(&self, symmetric_key: Option<&[u8]>, vector: Option<&[u8]>) -> Result<Ciphers, CryptoError> {
        match (symmetric_key, vector) {
            (Some(k), Some(v)) if is_plain(k) && is_plain(v) => Err(CryptoError::EncryptionNotEnabled),
            (Some(k), Some(v)) => {
                let cipher = CbcCipher::new(k, v)?;
                Ok(Ciphers { sealer: Box::new(cipher.clone()), opener: Box::new(cipher) })
            }
            _ => Err(CryptoError::InvalidHandshake { reason: "the server's reply has no key or no vector" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_written_as_the_dotnet_client_writes_them() {
        use rsa::BigUint;
        let key = RsaPublicKey::new(BigUint::from_bytes_be(&[0xfb; 256]), BigUint::from(65537u32)).unwrap();
        let json = String::from_utf8(format_public_key(&key)).unwrap();
        assert!(json.starts_with(r#"{"mod":"\u002B/v7\u002B/v7"#));
        assert!(json.ends_with(r#"","exp":"AQAB"}"#));
        assert_eq!(crate::encrypted::parse_public_key(json.as_bytes()).unwrap(), key);
    }
}
