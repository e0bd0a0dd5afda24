//! Protocol 2 without encryption: the mandatory handshake with `[0x00]` keys, then
//! everything in clear (.NET 2.x `WithoutEncryption()`, the default).

use bytes::Bytes;

use super::plain::{PLAIN_KEY, PlainCipher};
use super::{Accepted, Ciphers, ClientEncryptor, CryptoError, ServerEncryptor};
use crate::v2::WitResponseInitialization;

fn is_plain(key: &[u8]) -> bool {
    key.len() <= 1
}

fn no_public_key() -> CryptoError {
    CryptoError::InvalidHandshake { reason: "the Initialization carries no public key" }
}

/// Protocol-2 server without encryption (`WithoutEncryption()`, the .NET default).
///
/// Accepts `PublicKey = [0x00]` (or empty) with `{[0x00], [0x00]}` in clear. A client
/// that offers a real key is refused with [`CryptoError::EncryptionNotEnabled`]
/// (.NET would accept it and answer in clear, which the encrypting .NET client then
/// fails to RSA-decrypt and throws from `ConnectAsync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainServerEncryptor;

impl ServerEncryptor for PlainServerEncryptor {
    fn is_encrypting(&self) -> bool {
        false
    }

    fn accept(&self, public_key: Option<&[u8]>) -> Result<Accepted, CryptoError> {
        match public_key {
            None => Err(no_public_key()),
            Some(k) if !is_plain(k) => Err(CryptoError::EncryptionNotEnabled),
            Some(_) => Ok(Accepted {
                reply: WitResponseInitialization::plain().encode().into(),
                sealer: Box::new(PlainCipher),
                opener: Box::new(PlainCipher),
            }),
        }
    }

    /// Returns `payload` unchanged; a protocol-2 session sends a null `Data` instead.
    fn refusal(&self, _public_key: Option<&[u8]>, payload: Vec<u8>) -> Bytes {
        payload.into()
    }
}

/// Protocol-2 client without encryption: sends `[0x00]`, expects `{[0x00], [0x00]}`.
///
/// Real key material in the reply is refused with [`CryptoError::EncryptionRequired`]:
/// it comes from an encrypting server that will encrypt everything after the
/// handshake (.NET's plain client would ignore it and then fail on every frame).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainClientEncryptor;

impl ClientEncryptor for PlainClientEncryptor {
    fn public_key(&self) -> Bytes {
        Bytes::from_static(PLAIN_KEY)
    }

    fn unwrap_reply(&self, data: Bytes) -> Result<Bytes, CryptoError> {
        Ok(data)
    }

    fn complete(&self, symmetric_key: Option<&[u8]>, vector: Option<&[u8]>) -> Result<Ciphers, CryptoError> {
        match (symmetric_key, vector) {
            (Some(k), Some(v)) if is_plain(k) && is_plain(v) => {
                Ok(Ciphers { sealer: Box::new(PlainCipher), opener: Box::new(PlainCipher) })
            }
            (Some(_), Some(_)) => Err(CryptoError::EncryptionRequired),
            _ => Err(CryptoError::InvalidHandshake { reason: "the server's reply has no key or no vector" }),
        }
    }
}
