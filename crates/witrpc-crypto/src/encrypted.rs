//! Protocol-3 encryption handshake: the client's RSA-2048 public key travels in
//! Initialization; the server answers with a fresh master key and salt, RSA-OAEP-SHA256
//! encrypted to that key; both ends derive the AES-256-GCM keys (see [`crate::aead`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use ring::rand::{SecureRandom, SystemRandom};
use rsa::rand_core::OsRng;
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};
use witrpc_core::{PROTOCOL_VERSION, WitResponseInitialization};

use crate::aead::{MASTER_KEY_LEN, SALT_LEN, Side, ciphers};
use crate::{Accepted, Ciphers, ClientEncryptor, CryptoError, ServerEncryptor};

/// RSA key size the client generates (as .NET does).
pub const RSA_KEY_BITS: usize = 2048;
/// Smallest client key the server accepts.
const MIN_RSA_KEY_BITS: usize = 2048;

fn is_plain(key: Option<&[u8]>) -> bool {
    matches!(key, Some([0]) | Some([]) | None)
}

/// Reads a public key as .NET clients send it: UTF-8 JSON with `mod`/`exp`
/// (General, Blazor), `n`/`e` (JWK) or `Modulus`/`Exponent` (BouncyCastle), in
/// standard or URL-safe base64.
///
/// # Errors
/// [`CryptoError::InvalidHandshake`] when the key is unreadable or smaller than 2048 bits.
pub(crate) fn parse_public_key(json: &[u8]) -> Result<RsaPublicKey, CryptoError> {
    let invalid = |reason| CryptoError::InvalidHandshake { reason };
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|_| invalid("public key is not JSON"))?;
    let field = |names: &[&str]| {
        names.iter().find_map(|n| value.get(*n).and_then(serde_json::Value::as_str)).map(str::to_owned)
    };
    let decode = |s: String| {
        STANDARD
            .decode(&s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| invalid("bad base64"))
    };
    let n = decode(field(&["mod", "n", "Modulus"]).ok_or(invalid("public key has no modulus"))?)?;
    let e = decode(field(&["exp", "e", "Exponent"]).ok_or(invalid("public key has no exponent"))?)?;
    let key = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
        .map_err(|_| invalid("public key is not a valid RSA key"))?;
    if key.size() * 8 < MIN_RSA_KEY_BITS {
        return Err(invalid("RSA key smaller than 2048 bits"));
    }
    Ok(key)
}

/// Writes `key` as the General .NET client does: `{"mod":"<b64>","exp":"<b64>"}`.
pub(crate) fn format_public_key(key: &RsaPublicKey) -> Vec<u8> {
    let json = serde_json::json!({
        "mod": STANDARD.encode(key.n().to_bytes_be()),
        "exp": STANDARD.encode(key.e().to_bytes_be()),
    });
    json.to_string().into_bytes()
}

/// Server encryptor for `with_encryption()`: requires every client to encrypt.
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
    /// A new encryptor (one serves every connection; each gets fresh keys).
    pub fn new() -> Self {
        Self { rng: SystemRandom::new() }
    }
}

impl ServerEncryptor for EncryptedServerEncryptor {
    fn is_encrypting(&self) -> bool {
        true
    }

    fn accept(&self, public_key: Option<&[u8]>) -> Result<Accepted, CryptoError> {
        self.accept_with_extensions(public_key, None)
    }

    fn accept_with_extensions(
        &self,
        public_key: Option<&[u8]>,
        extensions: Option<&str>,
    ) -> Result<Accepted, CryptoError> {
        if is_plain(public_key) {
            return Err(CryptoError::EncryptionRequired);
        }
        let key = parse_public_key(public_key.unwrap_or_default())?;
        let mut master = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        self.rng
            .fill(&mut master)
            .and_then(|()| self.rng.fill(&mut salt))
            .map_err(|_| CryptoError::InvalidHandshake { reason: "no system randomness" })?;
        let Ciphers { sealer, opener } = ciphers(&master, &salt, Side::Server)?;
        let reply = WitResponseInitialization {
            symmetric_key: Some(Bytes::copy_from_slice(&master)),
            vector: Some(Bytes::copy_from_slice(&salt)),
            protocol_version: PROTOCOL_VERSION,
            error_message: None,
        };
        let wrapped = key
            .encrypt(&mut OsRng, Oaep::new::<Sha256>(), &reply.encode_with_extensions(extensions))
            .map_err(|_| CryptoError::InvalidHandshake { reason: "RSA encryption failed" })?;
        Ok(Accepted { reply: wrapped.into(), sealer, opener })
    }

    fn refusal(&self, public_key: Option<&[u8]>, payload: Vec<u8>) -> Bytes {
        // Wrap for a client that sent a usable key (it expects RSA); plain otherwise.
        match public_key.filter(|k| !is_plain(Some(k))).map(parse_public_key) {
            Some(Ok(key)) => match key.encrypt(&mut OsRng, Oaep::new::<Sha256>(), &payload) {
                Ok(wrapped) => wrapped.into(),
                Err(_) => payload.into(),
            },
            _ => payload.into(),
        }
    }
}

/// Client encryptor for `with_encryption()`: a fresh RSA-2048 key per connection.
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
        let public_json = format_public_key(&private.to_public_key()).into();
        Ok(Self { private, public_json })
    }
}

impl ClientEncryptor for EncryptedClientEncryptor {
    fn public_key(&self) -> Bytes {
        self.public_json.clone()
    }

    fn unwrap_reply(&self, data: Bytes) -> Result<Bytes, CryptoError> {
        match self.private.decrypt(Oaep::new::<Sha256>(), &data) {
            Ok(plain) => Ok(plain.into()),
            // A server that does not encrypt answers in clear; pass it on so the caller
            // can read its refusal (or see plain keys and report the mismatch).
            Err(_) if WitResponseInitialization::decode(data.clone()).is_ok() => Ok(data),
            Err(_) => Err(CryptoError::InvalidHandshake { reason: "cannot decrypt the server's key reply" }),
        }
    }

    fn complete(&self, symmetric_key: Option<&[u8]>, vector: Option<&[u8]>) -> Result<Ciphers, CryptoError> {
        match (symmetric_key, vector) {
            (Some(k), Some(v)) if k.len() == MASTER_KEY_LEN && v.len() == SALT_LEN => ciphers(k, v, Side::Client),
            (k, v) if is_plain(k) && is_plain(v) => Err(CryptoError::EncryptionNotEnabled),
            _ => Err(CryptoError::InvalidHandshake { reason: "the server sent malformed key material" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_handshake_gives_both_ends_matching_ciphers() {
        let client = EncryptedClientEncryptor::generate().unwrap();
        let server = EncryptedServerEncryptor::new();
        let accepted = server.accept(Some(&client.public_key())).unwrap();
        let reply = client.unwrap_reply(accepted.reply.clone()).unwrap();
        let reply = WitResponseInitialization::decode(reply).unwrap();
        assert_eq!(reply.protocol_version, 3);
        let mut client_ciphers = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref()).unwrap();
        let mut server_opener = accepted.opener;
        let mut server_sealer = accepted.sealer;
        let sealed = client_ciphers.sealer.seal(Bytes::from_static(b"token")).unwrap();
        assert_eq!(&server_opener.open(sealed).unwrap()[..], b"token");
        let sealed = server_sealer.seal(Bytes::from_static(b"ok")).unwrap();
        assert_eq!(&client_ciphers.opener.open(sealed).unwrap()[..], b"ok");
        // The reply is RSA ciphertext, not the key in clear.
        assert_eq!(accepted.reply.len(), 256);
    }

    #[test]
    fn key_json_in_every_dotnet_shape_is_read() {
        let client = EncryptedClientEncryptor::generate().unwrap();
        let public = client.private.to_public_key();
        let (n, e) = (public.n().to_bytes_be(), public.e().to_bytes_be());
        for json in [
            format!(r#"{{"mod":"{}","exp":"{}"}}"#, STANDARD.encode(&n), STANDARD.encode(&e)),
            format!(r#"{{"mod":"{}","exp":"{}","d":null,"p":null}}"#, STANDARD.encode(&n), STANDARD.encode(&e)),
            format!(r#"{{"n":"{}","e":"{}"}}"#, URL_SAFE_NO_PAD.encode(&n), URL_SAFE_NO_PAD.encode(&e)),
            format!(r#"{{"Modulus":"{}","Exponent":"{}"}}"#, STANDARD.encode(&n), STANDARD.encode(&e)),
        ] {
            assert_eq!(parse_public_key(json.as_bytes()).unwrap(), public, "{json}");
        }
        assert!(parse_public_key(b"{}").is_err());
        assert!(parse_public_key(b"not json").is_err());
        let small = RsaPrivateKey::new(&mut OsRng, 1024).unwrap().to_public_key();
        assert!(parse_public_key(&format_public_key(&small)).is_err(), "a 1024-bit key was accepted");
    }

    #[test]
    fn mismatched_modes_fail_with_errors_that_say_so() {
        let server = EncryptedServerEncryptor::new();
        assert!(matches!(server.accept(Some(&[0])), Err(CryptoError::EncryptionRequired)));
        let client = EncryptedClientEncryptor::generate().unwrap();
        // A plain server's clear reply is passed through, then refused as "not encrypting".
        let plain_reply = Bytes::from(WitResponseInitialization::plain().encode());
        let reply = WitResponseInitialization::decode(client.unwrap_reply(plain_reply).unwrap()).unwrap();
        let err = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref()).unwrap_err();
        assert!(matches!(err, CryptoError::EncryptionNotEnabled));
    }
}
