// Protocol-3 encryption with WebCrypto: the client's RSA-2048 key travels in the
// Initialization request; the server answers with a master key and salt, RSA-OAEP-SHA256
// encrypted to it; HKDF-SHA256 derives one AES-256-GCM key per direction. Frames are
// `counter u64 LE | tag 16 | ciphertext`, nonce `counter u64 LE | 0u32`, AAD `[3, dir]`,
// and counters must arrive strictly in order.
//
// Protocol 2 (.NET WitRPC 2.x): the same RSA key transport, then AES-256-CBC with PKCS#7
// under the key and IV the server sent, the same IV for every message in both
// directions (no MAC: see the README).

import { ProtocolError } from "./errors.js";
import { toBase64 } from "./serializer.js";

const subtle = (): SubtleCrypto => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new ProtocolError("encryption needs WebCrypto (a secure context in browsers: https:// or localhost)");
  return s;
};

/** WebCrypto takes `BufferSource`; our arrays are never shared memory. */
const bs = (u: Uint8Array): BufferSource => u as unknown as BufferSource;

export interface Cipher {
  seal(plain: Uint8Array): Promise<Uint8Array>;
  open(frame: Uint8Array): Promise<Uint8Array>;
}

/** No encryption: data passes through. */
export const plainCipher: Cipher = {
  seal: async (p) => p,
  open: async (f) => f,
};

export interface RsaKey {
  privateKey: CryptoKey;
  /** `{"mod":b64,"exp":b64}` as UTF-8, what .NET clients send. */
  publicJson: Uint8Array;
}

function base64UrlToBase64(s: string): string {
  const b = s.replace(/-/g, "+").replace(/_/g, "/");
  return b + "=".repeat((4 - (b.length % 4)) % 4);
}

/**
 * A fresh RSA-OAEP-SHA256 2048-bit key. With `escapePlus` every `+` of the Base64 is
 * written `\u002B`, byte for byte what a .NET 2.x client (System.Text.Json) sends.
 */
export async function generateRsaKey(escapePlus = false): Promise<RsaKey> {
  const pair = (await subtle().generateKey(
    { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"],
  )) as CryptoKeyPair;
  const jwk = await subtle().exportKey("jwk", pair.publicKey);
  if (!jwk.n || !jwk.e) throw new ProtocolError("cannot export the RSA public key");
  let json = JSON.stringify({ mod: base64UrlToBase64(jwk.n), exp: base64UrlToBase64(jwk.e) });
  if (escapePlus) json = json.replace(/\+/g, "\\u002B");
  return { privateKey: pair.privateKey, publicJson: new TextEncoder().encode(json) };
}

export async function rsaDecrypt(key: RsaKey, data: Uint8Array): Promise<Uint8Array> {
  try {
    return new Uint8Array(await subtle().decrypt({ name: "RSA-OAEP" }, key.privateKey, bs(data)));
  } catch {
    throw new ProtocolError("cannot decrypt the server's key reply (is encryption enabled on the server?)");
  }
}

/** HKDF-SHA256(master, salt, info) as an AES-256-GCM key (`info` is "wit3c2s" or "wit3s2c"). */
export async function deriveDirectionKey(master: Uint8Array, salt: Uint8Array, info: string, extractable = false): Promise<CryptoKey> {
  const ikm = await subtle().importKey("raw", bs(master), "HKDF", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: bs(salt), info: bs(new TextEncoder().encode(info)) },
    ikm,
    { name: "AES-GCM", length: 256 },
    extractable,
    ["encrypt", "decrypt"],
  );
}

function nonce(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(0, counter, true);
  return n;
}

/** AAD of a frame: the protocol version, then 1 (client to server) or 2 (server to client). */
export const AAD_C2S = new Uint8Array([3, 1]);
export const AAD_S2C = new Uint8Array([3, 2]);

/** One AEAD frame: `counter u64 LE | tag 16 | ciphertext`. */
export async function sealFrame(key: CryptoKey, aad: Uint8Array, counter: bigint, plain: Uint8Array): Promise<Uint8Array> {
  const sealed = new Uint8Array(
    await subtle().encrypt({ name: "AES-GCM", iv: bs(nonce(counter)), additionalData: bs(aad), tagLength: 128 }, key, bs(plain)),
  );
  // WebCrypto returns ciphertext || tag; the wire wants counter | tag | ciphertext.
  const frame = new Uint8Array(24 + plain.length);
  new DataView(frame.buffer).setBigUint64(0, counter, true);
  frame.set(sealed.subarray(plain.length), 8);
  frame.set(sealed.subarray(0, plain.length), 24);
  return frame;
}

/** The counter of a frame (its first 8 bytes). */
export function frameCounter(frame: Uint8Array): bigint {
  if (frame.length < 24) throw new ProtocolError("encrypted frame too short");
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigUint64(0, true);
}

/** Opens a frame sealed under `counter`; a wrong key, counter or AAD fails authentication. */
export async function openFrame(key: CryptoKey, aad: Uint8Array, counter: bigint, frame: Uint8Array): Promise<Uint8Array> {
  if (frame.length < 24) throw new ProtocolError("encrypted frame too short");
  const joined = new Uint8Array(frame.length - 8);
  joined.set(frame.subarray(24), 0);
  joined.set(frame.subarray(8, 24), frame.length - 24);
  try {
    const plain = await subtle().decrypt(
      { name: "AES-GCM", iv: bs(nonce(counter)), additionalData: bs(aad), tagLength: 128 },
      key,
      bs(joined),
    );
    return new Uint8Array(plain);
  } catch {
    throw new ProtocolError("encrypted frame failed authentication");
  }
}

/**
 * The client's ciphers from the server's master key and salt. `seal` takes its counter
 * when called (call it in send order); `open` must be called in arrival order.
 */
export async function clientCipher(master: Uint8Array, salt: Uint8Array): Promise<Cipher> {
  if (master.length !== 32 || salt.length !== 16) {
    throw new ProtocolError("the server sent no encryption keys; it does not use encryption, so connect without it");
  }
  const send = await deriveDirectionKey(master, salt, "wit3c2s");
  const receive = await deriveDirectionKey(master, salt, "wit3s2c");
  let sent = 0n;
  let received = 0n;
  return {
    seal(plain) {
      return sealFrame(send, AAD_C2S, sent++, plain);
    },
    async open(frame) {
      const counter = frameCounter(frame);
      if (counter !== received) throw new ProtocolError(`encrypted frame out of order (counter ${counter}, expected ${received})`);
      const plain = await openFrame(receive, AAD_S2C, counter, frame);
      received++;
      return plain;
    },
  };
}

/**
 * The protocol-2 cipher: AES-256-CBC-PKCS7 under `key` with `iv` for every message.
 * Equal payloads give equal ciphertexts; a frame that does not decrypt is a ProtocolError.
 */
export async function cbcCipher(key: Uint8Array, iv: Uint8Array): Promise<Cipher> {
  if (key.length !== 32 || iv.length !== 16) {
    throw new ProtocolError("the server sent no usable encryption keys (32-byte key, 16-byte IV); it does not use encryption, so connect without it");
  }
  const aes = await subtle().importKey("raw", bs(key), "AES-CBC", false, ["encrypt", "decrypt"]);
  const params = { name: "AES-CBC", iv: bs(iv.slice()) };
  return {
    seal: async (plain) => new Uint8Array(await subtle().encrypt(params, aes, bs(plain))),
    async open(frame) {
      if (frame.length === 0 || frame.length % 16 !== 0) throw new ProtocolError("encrypted frame is not a whole number of AES blocks");
      try {
        return new Uint8Array(await subtle().decrypt(params, aes, bs(frame)));
      } catch {
        throw new ProtocolError("encrypted frame does not decrypt under this connection's key");
      }
    },
  };
}
