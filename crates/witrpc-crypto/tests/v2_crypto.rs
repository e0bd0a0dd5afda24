//! Protocol-2 encryption through the public traits: full handshakes both ways, the
//! AES-256-CBC-PKCS7 cipher against independent vectors, mode mismatches, hostile
//! ciphertexts.
//!
//! Known-answer vectors: NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), extended with the
//! PKCS#7 padding block, and the notes' §8.2 request (134 bytes → 144), both encrypted
//! by OpenSSL (`openssl enc -aes-256-cbc -K … -iv …`), not by the code under test.

use bytes::Bytes;
use proptest::prelude::*;
use witrpc_core::v2::{WitRequest, WitResponseInitialization};
use witrpc_crypto::v2::{
    CbcCipher, EncryptedClientEncryptor, EncryptedServerEncryptor, PlainClientEncryptor, PlainServerEncryptor,
    sealed_len,
};
use witrpc_crypto::{ClientEncryptor, CryptoError, ServerEncryptor};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn cbc_matches_the_nist_vector_with_pkcs7_padding() {
    let key = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let iv = hex("000102030405060708090a0b0c0d0e0f");
    let plaintext = hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
    let expected = hex("f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
         39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b
         3f461796d6b0d6b2e0c2a72b4d80e644");
    let cipher = CbcCipher::new(&key, &iv).unwrap();
    assert_eq!(cipher.encrypt(&plaintext), expected);
    assert_eq!(cipher.decrypt(&expected).unwrap(), plaintext);
}

#[test]
fn the_worked_example_request_encrypts_to_144_bytes() {
    // §8.2's inner WitRequest for Add(2, 3).
    let request = WitRequest {
        method_name: "Add".into(),
        parameters: vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")],
        parameter_types: vec!["System.Int32, System.Private.CoreLib".into(); 2],
        ..WitRequest::default()
    }
    .encode();
    assert_eq!(request.len(), 134);
    let key: Vec<u8> = (0u8..32).collect();
    let iv: Vec<u8> = (0xf0u8..=0xff).collect();
    let expected = hex("bfb1644ab5b96c4751fbac0997d234772d1f67f35d3abcb4fcf52fc450a43838
         0e0c32bd0591eadebc6fe8ed22bc471fbdff8dcfe108c658a17b9118d6ee20ec
         476239706634903c3968663a0b2b4e7a377e8b391280980f836b3f77281c863e
         51718fc5f65c89bcf3a99d8f25f3e134cca946083ff9198b72336146b1503e80
         c91cbc1247e836945bad1840561c3b8e");
    let cipher = CbcCipher::new(&key, &iv).unwrap();
    let sealed = cipher.encrypt(&request);
    assert_eq!(sealed.len(), sealed_len(134));
    assert_eq!(sealed, expected);
    assert_eq!(WitRequest::decode(cipher.decrypt(&sealed).unwrap().into()).unwrap().method_name, "Add");
}

#[test]
fn an_encrypted_handshake_gives_both_ends_one_shared_cipher() {
    let client = EncryptedClientEncryptor::generate().unwrap();
    let server = EncryptedServerEncryptor::new();
    assert!(server.is_encrypting());
    let public_key = client.public_key();
    assert!(public_key.starts_with(br#"{"mod":""#), "key JSON: {:?}", String::from_utf8_lossy(&public_key));
    let accepted = server.accept(Some(&public_key)).unwrap();
    // One RSA-2048 OAEP block, not the key in clear.
    assert_eq!(accepted.reply.len(), 256);
    assert!(WitResponseInitialization::decode(accepted.reply.clone()).is_err());

    let reply = WitResponseInitialization::decode(client.unwrap_reply(accepted.reply).unwrap()).unwrap();
    assert_eq!(reply.symmetric_key.as_ref().map(Bytes::len), Some(32));
    assert_eq!(reply.vector.as_ref().map(Bytes::len), Some(16));
    let mut client_ciphers = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref()).unwrap();
    let (mut server_sealer, mut server_opener) = (accepted.sealer, accepted.opener);

    let sealed = client_ciphers.sealer.seal(Bytes::from_static(b"authorization")).unwrap();
    assert_ne!(&sealed[..], b"authorization");
    assert_eq!(&server_opener.open(sealed.clone()).unwrap()[..], b"authorization");
    // Fixed IV, both directions: the server's seal of the same bytes is the same ciphertext.
    assert_eq!(server_sealer.seal(Bytes::from_static(b"authorization")).unwrap(), sealed);
    let reply = server_sealer.seal(Bytes::from_static(b"response")).unwrap();
    assert_eq!(&client_ciphers.opener.open(reply).unwrap()[..], b"response");
}

#[test]
fn each_connection_gets_its_own_key() {
    let client = EncryptedClientEncryptor::generate().unwrap();
    let server = EncryptedServerEncryptor::new();
    let keys: Vec<_> = (0..2)
        .map(|_| {
            let reply = client.unwrap_reply(server.accept(Some(&client.public_key())).unwrap().reply).unwrap();
            WitResponseInitialization::decode(reply).unwrap()
        })
        .collect();
    assert_ne!(keys[0], keys[1]);
}

#[test]
fn a_plain_handshake_is_still_a_handshake() {
    let client = PlainClientEncryptor;
    assert_eq!(&client.public_key()[..], &[0]);
    let accepted = PlainServerEncryptor.accept(Some(&client.public_key())).unwrap();
    assert_eq!(&accepted.reply[..], &[2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    let reply = WitResponseInitialization::decode(client.unwrap_reply(accepted.reply).unwrap()).unwrap();
    let mut ciphers = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref()).unwrap();
    assert_eq!(&ciphers.sealer.seal(Bytes::from_static(b"clear")).unwrap()[..], b"clear");
    let mut opener = accepted.opener;
    assert_eq!(&opener.open(Bytes::from_static(b"clear")).unwrap()[..], b"clear");
}

#[test]
fn mismatched_modes_are_refused_with_errors_that_say_which_side_to_change() {
    let client = EncryptedClientEncryptor::generate().unwrap();
    // Plain server, encrypting client: refused (a .NET plain server would accept).
    let err = PlainServerEncryptor.accept(Some(&client.public_key())).unwrap_err();
    assert!(matches!(err, CryptoError::EncryptionNotEnabled), "{err}");
    // Encrypting server, plain client: refused (a .NET server would send the key in clear).
    let err = EncryptedServerEncryptor::new().accept(Some(&[0])).unwrap_err();
    assert!(matches!(err, CryptoError::EncryptionRequired), "{err}");
    // No key at all: refused by both.
    assert!(PlainServerEncryptor.accept(None).is_err());
    assert!(EncryptedServerEncryptor::new().accept(None).is_err());
    // Encrypting client, plain server's clear reply: passed through, then reported.
    let clear = Bytes::from(WitResponseInitialization::plain().encode());
    let reply = WitResponseInitialization::decode(client.unwrap_reply(clear).unwrap()).unwrap();
    let err = client.complete(reply.symmetric_key.as_deref(), reply.vector.as_deref()).unwrap_err();
    assert!(matches!(err, CryptoError::EncryptionNotEnabled), "{err}");
    // Plain client, key material in clear (a .NET encrypting server given [0]).
    let err = PlainClientEncryptor.complete(Some(&[1; 32]), Some(&[2; 16])).unwrap_err();
    assert!(matches!(err, CryptoError::EncryptionRequired), "{err}");
    // A protocol-3 server's clear refusal is passed through for the caller to report.
    let v3 = Bytes::from(witrpc_core::WitResponseInitialization::refusal("protocol 3").encode());
    assert_eq!(client.unwrap_reply(v3.clone()).unwrap(), v3);
    // Garbage where the RSA block should be.
    assert!(client.unwrap_reply(Bytes::from_static(&[9; 256])).is_err());
    // Wrong key sizes.
    assert!(client.complete(Some(&[1; 16]), Some(&[2; 16])).is_err());
    assert!(client.complete(Some(&[1; 32]), None).is_err());
}

#[test]
fn ciphertext_that_does_not_decrypt_is_a_frame_error() {
    let cipher = CbcCipher::new(&[3; 32], &[4; 16]).unwrap();
    let other = CbcCipher::new(&[5; 32], &[4; 16]).unwrap();
    let sealed = cipher.encrypt(b"a request");
    for bad in [&b""[..], &sealed[..15], &[sealed.as_slice(), &[0]].concat()] {
        assert!(matches!(cipher.decrypt(bad), Err(CryptoError::Frame { .. })), "{bad:02x?}");
    }
    // Another key nearly always breaks the padding (and never yields the plaintext).
    assert_ne!(other.decrypt(&sealed).ok().as_deref(), Some(&b"a request"[..]));
    assert!(CbcCipher::new(&[0; 31], &[0; 16]).is_err());
    assert!(CbcCipher::new(&[0; 32], &[0; 15]).is_err());
}

#[test]
fn altered_ciphertext_can_decrypt_without_any_error() {
    // No MAC: flipping a bit of ciphertext block 0 garbles plaintext block 0, flips the
    // same bit of block 1, and the padding (in the last block) still checks out.
    let cipher = CbcCipher::new(&[6; 32], &[8; 16]).unwrap();
    let plaintext = [b'a'; 48];
    let mut sealed = cipher.encrypt(&plaintext);
    sealed[3] ^= 0x01;
    let opened = cipher.decrypt(&sealed).unwrap();
    assert_ne!(opened[..16], plaintext[..16]);
    assert_eq!(opened[16 + 3], b'a' ^ 0x01);
    assert_eq!(opened[32..], plaintext[32..]);
}

proptest! {
    #[test]
    fn cbc_round_trips_any_payload(key in any::<[u8; 32]>(), iv in any::<[u8; 16]>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let cipher = CbcCipher::new(&key, &iv).unwrap();
        let sealed = cipher.encrypt(&data);
        prop_assert_eq!(sealed.len(), sealed_len(data.len()));
        prop_assert_eq!(cipher.decrypt(&sealed).unwrap(), data);
    }

    #[test]
    fn decrypting_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let cipher = CbcCipher::new(&[1; 32], &[2; 16]).unwrap();
        let _ = cipher.decrypt(&data);
    }
}
