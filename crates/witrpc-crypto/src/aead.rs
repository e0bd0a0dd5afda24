//! Protocol-3 message encryption: HKDF-SHA256 per-direction keys, AES-256-GCM with
//! a counter nonce, and strict in-order counters.
//!
//! Frame (what goes in `WitMessage.Data`): `counter u64 LE | tag (16) | ciphertext`.
//! Nonce: `u64 LE counter | 0u32`. AAD: `[3, direction]` (1 = client→server,
//! 2 = server→client). The receiver requires exactly the next counter: a replayed,
//! reordered, dropped or altered frame fails and the connection is closed.

use std::fmt;

use bytes::{Bytes, BytesMut};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use ring::hkdf;

use crate::CryptoError;

/// Length of the HKDF master key (`SymmetricKey`).
pub const MASTER_KEY_LEN: usize = 32;
/// Length of the HKDF salt (`Vector`).
pub const SALT_LEN: usize = 16;
const COUNTER_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Counter + tag.
pub const FRAME_OVERHEAD: usize = COUNTER_LEN + TAG_LEN;
const PROTOCOL_BYTE: u8 = 3;

/// Which way a key protects traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (`"wit3c2s"`, AAD byte 1).
    ClientToServer,
    /// Server to client (`"wit3s2c"`, AAD byte 2).
    ServerToClient,
}

impl Direction {
    fn info(self) -> &'static [u8] {
        match self {
            Self::ClientToServer => b"wit3c2s",
            Self::ServerToClient => b"wit3s2c",
        }
    }

    fn aad(self) -> [u8; 2] {
        match self {
            Self::ClientToServer => [PROTOCOL_BYTE, 1],
            Self::ServerToClient => [PROTOCOL_BYTE, 2],
        }
    }
}

struct KeyLen(usize);

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256(ikm = master, salt, info = direction label) → 32-byte AES key.
///
/// # Errors
/// Never for the fixed lengths used here; kept typed for safety.
pub fn derive_key(master: &[u8], salt: &[u8], direction: Direction) -> Result<[u8; 32], CryptoError> {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(master)
        .expand(&[direction.info()], KeyLen(32))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| CryptoError::InvalidHandshake { reason: "key derivation failed" })?;
    Ok(out)
}

fn aes_key(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidHandshake { reason: "invalid AES key" })
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Builds the sealer and opener for one side from the handshake's master key and salt.
///
/// # Errors
/// [`CryptoError::InvalidHandshake`] when the key or salt has the wrong length.
pub fn ciphers(master: &[u8], salt: &[u8], side: Side) -> Result<crate::Ciphers, CryptoError> {
    if master.len() != MASTER_KEY_LEN || salt.len() != SALT_LEN {
        return Err(CryptoError::InvalidHandshake { reason: "master key must be 32 bytes and salt 16 bytes" });
    }
    let (out_dir, in_dir) = match side {
        Side::Server => (Direction::ServerToClient, Direction::ClientToServer),
        Side::Client => (Direction::ClientToServer, Direction::ServerToClient),
    };
    Ok(crate::Ciphers {
        sealer: Box::new(AeadSealer::new(&derive_key(master, salt, out_dir)?, out_dir)?),
        opener: Box::new(AeadOpener::new(&derive_key(master, salt, in_dir)?, in_dir)?),
    })
}

/// Which end of the connection a cipher pair is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Seals server→client, opens client→server.
    Server,
    /// Seals client→server, opens server→client.
    Client,
}

/// Seals outbound frames with the next counter.
pub struct AeadSealer {
    key: LessSafeKey,
    aad: [u8; 2],
    counter: u64,
}

impl AeadSealer {
    /// A sealer with `key` for `direction`, counter 0.
    ///
    /// # Errors
    /// Never for a 32-byte key.
    pub fn new(key: &[u8; 32], direction: Direction) -> Result<Self, CryptoError> {
        Ok(Self { key: aes_key(key)?, aad: direction.aad(), counter: 0 })
    }
}

impl fmt::Debug for AeadSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadSealer").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl crate::Sealer for AeadSealer {
    fn seal(&mut self, plaintext: Bytes) -> Result<Bytes, CryptoError> {
        let mut frame = BytesMut::with_capacity(FRAME_OVERHEAD + plaintext.len());
        frame.resize(FRAME_OVERHEAD, 0);
        frame.extend_from_slice(&plaintext);
        self.seal_in_place(&mut frame, 0)?;
        Ok(frame.freeze())
    }

    fn prefix_len(&self) -> usize {
        FRAME_OVERHEAD
    }

    fn seal_in_place(&mut self, frame: &mut BytesMut, at: usize) -> Result<(), CryptoError> {
        let counter = self.counter;
        let next = counter.checked_add(1).ok_or(CryptoError::Frame { reason: "counter exhausted" })?;
        let Some(sealed) = frame.get_mut(at..).filter(|f| f.len() >= FRAME_OVERHEAD) else {
            return Err(CryptoError::Frame { reason: "no room reserved for the frame header" });
        };
        let (header, body) = sealed.split_at_mut(FRAME_OVERHEAD);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::from(self.aad), body)
            .map_err(|_| CryptoError::Frame { reason: "sealing failed" })?;
        header[..COUNTER_LEN].copy_from_slice(&counter.to_le_bytes());
        header[COUNTER_LEN..].copy_from_slice(tag.as_ref());
        self.counter = next;
        Ok(())
    }
}

/// Opens inbound frames, requiring exactly the next counter.
pub struct AeadOpener {
    key: LessSafeKey,
    aad: [u8; 2],
    expected: u64,
}

impl AeadOpener {
    /// An opener with `key` for `direction`, expecting counter 0.
    ///
    /// # Errors
    /// Never for a 32-byte key.
    pub fn new(key: &[u8; 32], direction: Direction) -> Result<Self, CryptoError> {
        Ok(Self { key: aes_key(key)?, aad: direction.aad(), expected: 0 })
    }
}

impl fmt::Debug for AeadOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadOpener").field("expected", &self.expected).finish_non_exhaustive()
    }
}

impl crate::Opener for AeadOpener {
    fn open(&mut self, sealed: Bytes) -> Result<Bytes, CryptoError> {
        let (Some(counter), Some(tag), Some(ciphertext)) =
            (sealed.get(..COUNTER_LEN), sealed.get(COUNTER_LEN..FRAME_OVERHEAD), sealed.get(FRAME_OVERHEAD..))
        else {
            return Err(CryptoError::Frame { reason: "frame shorter than 24 bytes" });
        };
        let mut c = [0u8; COUNTER_LEN];
        c.copy_from_slice(counter);
        let counter = u64::from_le_bytes(c);
        if counter != self.expected {
            return Err(CryptoError::Frame { reason: "out-of-order frame (replayed, reordered or dropped)" });
        }
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        let mut buf = ciphertext.to_vec();
        self.key
            .open_in_place_separate_tag(nonce(counter), Aad::from(self.aad), Tag::from(t), &mut buf, 0..)
            .map_err(|_| CryptoError::Frame { reason: "authentication failed (altered or wrong key)" })?;
        self.expected = self.expected.checked_add(1).ok_or(CryptoError::Frame { reason: "counter exhausted" })?;
        Ok(buf.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic_and_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (m, s) = master_and_salt();
            let mut server = ciphers(&m, &s, Side::Server).unwrap();
            prop_assert!(server.opener.open(Bytes::from(bytes)).is_err());
        }

        #[test]
        fn sealed_frames_round_trip_in_order(messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 1..8)) {
            let (m, s) = master_and_salt();
            let mut client = ciphers(&m, &s, Side::Client).unwrap();
            let mut server = ciphers(&m, &s, Side::Server).unwrap();
            for msg in messages {
                let sealed = client.sealer.seal(Bytes::from(msg.clone())).unwrap();
                prop_assert_eq!(sealed.len(), msg.len() + FRAME_OVERHEAD);
                prop_assert_eq!(&server.opener.open(sealed).unwrap()[..], &msg[..]);
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn master_and_salt() -> (Vec<u8>, Vec<u8>) {
        ((0u8..0x20).collect(), (0x20u8..0x30).collect())
    }

    #[test]
    fn key_derivation_matches_the_protocol_vectors() {
        let (m, s) = master_and_salt();
        assert_eq!(
            derive_key(&m, &s, Direction::ClientToServer).unwrap().to_vec(),
            hex("8031f3d5b13875a86b8980ea338fd8744ecba3b2f755fece8ede1236caefafce")
        );
        assert_eq!(
            derive_key(&m, &s, Direction::ServerToClient).unwrap().to_vec(),
            hex("17691f9e2216acd2585847bd4cd66fe8fcb9d46cc3306e2752cbfc23f0c58f93")
        );
    }

    #[test]
    fn sealed_frames_match_the_protocol_vectors() {
        let (m, s) = master_and_salt();
        let mut client = ciphers(&m, &s, Side::Client).unwrap();
        let frame = client.sealer.seal(Bytes::from_static(&[1, 2, 3, 4])).unwrap();
        assert_eq!(frame.to_vec(), hex("0000000000000000 4874df0a4be92ce5c97a20b1da5760d2 6b4787d2"));
        let mut server = ciphers(&m, &s, Side::Server).unwrap();
        server.sealer.seal(Bytes::from_static(b"first")).unwrap();
        let frame = server.sealer.seal(Bytes::from_static(&[1, 2, 3, 4])).unwrap();
        assert_eq!(frame.to_vec(), hex("0100000000000000 9fc8c345e872c3217f0a9c825214aa0b e3172b9f"));
    }

    #[test]
    fn opener_rejects_replayed_reordered_altered_and_short_frames() {
        let (m, s) = master_and_salt();
        let mut client = ciphers(&m, &s, Side::Client).unwrap();
        let mut server = ciphers(&m, &s, Side::Server).unwrap();
        let f0 = client.sealer.seal(Bytes::from_static(b"zero")).unwrap();
        let f1 = client.sealer.seal(Bytes::from_static(b"one")).unwrap();
        let f2 = client.sealer.seal(Bytes::from_static(b"two")).unwrap();
        assert!(server.opener.open(f1.clone()).is_err(), "reordered frame accepted");
        assert_eq!(&server.opener.open(f0.clone()).unwrap()[..], b"zero");
        assert!(server.opener.open(f0).is_err(), "replayed frame accepted");
        let mut altered = f1.to_vec();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(server.opener.open(altered.into()).is_err(), "altered frame accepted");
        assert_eq!(&server.opener.open(f1).unwrap()[..], b"one");
        assert!(server.opener.open(Bytes::from_static(&[0; 10])).is_err());
        // A frame sealed for the other direction fails authentication.
        let wrong_way = server.sealer.seal(Bytes::from_static(b"x")).unwrap();
        let mut other = ciphers(&m, &s, Side::Server).unwrap();
        assert!(other.opener.open(wrong_way).is_err());
        assert_eq!(&server.opener.open(f2).unwrap()[..], b"two");
    }
}
