//! Protocol 3 without encryption: `[0x00]` keys, payloads passed through.

use crate::WitResponseInitialization;
use bytes::{Bytes, BytesMut};

use super::{Accepted, Ciphers, ClientEncryptor, CryptoError, Opener, Sealer, ServerEncryptor};

/// The `PublicKey` a plain client sends.
pub const PLAIN_KEY: &[u8] = &[0];

fn is_plain(key: Option<&[u8]>) -> bool {
    matches!(key, Some([0]) | Some([]) | None)
}

/// Server encryptor that does not encrypt (the default, as in .NET).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainServerEncryptor;

impl ServerEncryptor for PlainServerEncryptor {
    fn is_encrypting(&self) -> bool {
        false
    }

    fn accept(&self, public_key: Option<&[u8]>) -> Result<Accepted, CryptoError> {
        self.accept_with_extensions(public_key, None)
    }

    fn accept_with_extensions(
        &self,
        public_key: Option<&[u8]>,
        extensions: Option<&str>,
    ) -> Result<Accepted, CryptoError> {
        if !is_plain(public_key) {
            return Err(CryptoError::EncryptionNotEnabled);
        }
        Ok(Accepted {
            reply: WitResponseInitialization::plain().encode_with_extensions(extensions).into(),
            sealer: Box::new(PlainCipher),
            opener: Box::new(PlainCipher),
        })
    }

    fn refusal(&self, _public_key: Option<&[u8]>, payload: Vec<u8>) -> Bytes {
        payload.into()
    }
}

/// Client encryptor that does not encrypt.
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
        if !is_plain(symmetric_key) || !is_plain(vector) {
            return Err(CryptoError::EncryptionRequired);
        }
        Ok(Ciphers { sealer: Box::new(PlainCipher), opener: Box::new(PlainCipher) })
    }
}

/// Pass-through sealer and opener.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainCipher;

impl Sealer for PlainCipher {
    fn seal(&mut self, plaintext: Bytes) -> Result<Bytes, CryptoError> {
        Ok(plaintext)
    }

    fn leaves_plaintext(&self) -> bool {
        true
    }

    fn seal_in_place(&mut self, _frame: &mut BytesMut, _at: usize) -> Result<(), CryptoError> {
        Ok(())
    }
}

impl Opener for PlainCipher {
    fn open(&mut self, sealed: Bytes) -> Result<Bytes, CryptoError> {
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WitRequestInitialization;

    #[test]
    fn plain_server_accepts_plain_client_with_dotnet_reply_bytes() {
        let req = WitRequestInitialization::plain();
        let accepted = PlainServerEncryptor.accept(req.public_key.as_deref()).unwrap();
        // {[0],[0],3,null}: header 4, lengths 5 5 4 4, values.
        assert_eq!(
            &accepted.reply[..],
            &[4, 5, 5, 4, 4, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..]
        );
    }

    #[test]
    fn plain_server_refuses_a_client_that_offers_a_key() {
        let err = PlainServerEncryptor.accept(Some(br#"{"mod":"AQAB","exp":"AQAB"}"#)).unwrap_err();
        assert!(matches!(err, CryptoError::EncryptionNotEnabled));
    }

    #[test]
    fn plain_client_refuses_real_key_material() {
        let err = PlainClientEncryptor.complete(Some(&[7u8; 32]), Some(&[1u8; 16])).unwrap_err();
        assert!(matches!(err, CryptoError::EncryptionRequired));
    }
}
