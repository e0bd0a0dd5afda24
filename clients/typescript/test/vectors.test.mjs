// The test vectors of shared/witrpc-protocol.md (FNV ids, MemoryPack layouts, HKDF keys,
// AES-GCM frames), and codec edge cases a peer can produce.

import { test } from "node:test";
import assert from "node:assert/strict";
import { methodId, fnv1a64Utf16, msgpack, json, decodeBytes, RemoteError } from "../dist/index.js";
import { parameterTypeByName, clrFullName } from "../dist/ids.js";
import {
  encodeInitialization,
  encodeEnvelope,
  decodeEnvelope,
  decodeInitializationReply,
  decodeResponse,
  encodeAuthorization,
  Reader,
} from "../dist/memorypack.js";
import { deriveDirectionKey, sealFrame, clientCipher, openFrame, AAD_C2S, AAD_S2C } from "../dist/crypto.js";

const hex = (s) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g).map((b) => parseInt(b, 16)));
const toHex = (b) => Buffer.from(b).toString("hex");
const range = (from, n) => Uint8Array.from({ length: n }, (_, i) => from + i);

test("FNV-1a: every vector of §2.1, and whole UTF-16 units for non-ASCII", () => {
  const c = "MyCompany.Contracts.ICalculator";
  assert.equal(BigInt.asUintN(64, fnv1a64Utf16(c)), 0x27bd5c66461ca7a6n);
  assert.equal(methodId(`${c}#Add(System.Int32,System.Int32)`), -6724387377990606637n);
  assert.equal(methodId(c, "Ping", []), -3928012737138291320n);
  assert.equal(methodId(c, "Sum", ["System.Collections.Generic.List<System.Int32>", "System.Byte[]"]), 7784146604138033026n);
  // An assembly suffix is not part of the hashed name.
  assert.equal(methodId(c, "Add", ["System.Int32, System.Private.CoreLib", "System.Int32"]), -6724387377990606637n);
  // 'é' is one UTF-16 unit 0x00E9: one step, not two UTF-8 bytes.
  assert.equal(BigInt.asUintN(64, fnv1a64Utf16("é")), ((0xcbf29ce484222325n ^ 0xe9n) * 0x100000001b3n) & 0xffffffffffffffffn);
});

test("ParameterTypesByName carries .NET full names and assemblies", () => {
  assert.deepEqual(parameterTypeByName("System.Int32"), { type: "System.Int32", assembly: "System.Private.CoreLib" });
  assert.deepEqual(parameterTypeByName("System.Byte[]"), { type: "System.Byte[]", assembly: "System.Private.CoreLib" });
  assert.deepEqual(parameterTypeByName("System.Collections.Generic.List<System.Int32>"), {
    type: "System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]]",
    assembly: "System.Private.CoreLib",
  });
  assert.deepEqual(parameterTypeByName("MyNs.Dto, MyAssembly"), { type: "MyNs.Dto", assembly: "MyAssembly" });
  assert.equal(
    clrFullName("System.Collections.Generic.Dictionary<System.String,System.Collections.Generic.List<System.Int32>>"),
    "System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib],[System.Collections.Generic.List`1[[System.Int32, System.Private.CoreLib]], System.Private.CoreLib]]",
  );
});

test("MemoryPack: the worked examples of §3.3-3.4", () => {
  // Plain-mode WitRequestInitialization{PublicKey=[0], ProtocolVersion=3}: 12 bytes.
  assert.equal(toHex(encodeInitialization(new Uint8Array([0]))), "020504" + "0100000000" + "03000000");
  // Envelope: .NET Guid layout is the caller's 16 bytes as they are; null Data is -1.
  const id = hex("33221100 5544 7766 8899aabbccddeeff"); // Guid 00112233-4455-6677-8899-aabbccddeeff
  assert.equal(toHex(encodeEnvelope({ id, type: 4, data: new Uint8Array([9, 8]) })), "03" + toHex(id) + "04000000" + "02000000" + "0908");
  assert.equal(toHex(encodeEnvelope({ id, type: 1, data: null }).subarray(21)), "ffffffff");
  assert.equal(decodeEnvelope(encodeEnvelope({ id, type: 1, data: null })).data, null);
  // Encrypted-mode WitResponseInitialization: 69 bytes, lengths 24 14 04 04.
  const reply = Uint8Array.from([0x04, 0x24, 0x14, 0x04, 0x04, 32, 0, 0, 0, ...range(0, 32), 16, 0, 0, 0, ...range(0x20, 16), 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(reply.length, 69);
  assert.deepEqual(decodeInitializationReply(reply), { symmetricKey: range(0, 32), vector: range(0x20, 16), protocolVersion: 3, errorMessage: null, extensions: null });
  // Strings: ~utf8Count, utf16Length, bytes.
  const auth = encodeAuthorization("héllo");
  assert.equal(toHex(auth), "01" + "0e" + "f9ffffff" + "05000000" + toHex(new TextEncoder().encode("héllo")));
});

test("MemoryPack: version tolerance, long VarInt lengths, UTF-16 strings", () => {
  // A WitResponse with a 200-byte Data member (length 204 as VarInt 0x84 + i16) and a
  // fifth member from a newer peer, which is skipped.
  const data = range(0, 200);
  const bytes = Uint8Array.from([0x05, 0x04, 0x84, 204, 0, 0x04, 0x04, 0x01, 200, 0, 0, 0, 200, 0, 0, 0, ...data, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x2a]);
  assert.deepEqual(decodeResponse(bytes), { status: 200, data, errorMessage: null, errorDetails: "" });
  // An older peer's two-member response: the rest stay at their defaults; a zero-length member is the default.
  assert.deepEqual(decodeResponse(Uint8Array.from([0x02, 0x04, 0x00, 0xf4, 0x01, 0, 0])), { status: 500, data: null, errorMessage: null, errorDetails: null });
  // The UTF-16 string form (positive char count) is read too.
  const r = new Reader(Uint8Array.from([2, 0, 0, 0, 0x68, 0, 0xe9, 0]), "test");
  assert.equal(r.string(), "hé");
  // Truncated input and hostile counts are errors, never huge allocations.
  assert.throws(() => decodeResponse(bytes.subarray(0, 20)), /needs/);
  assert.throws(() => new Reader(Uint8Array.from([0xff, 0xff, 0xff, 0x7f]), "t").arrayLength(4), /invalid array length/);
});

test("AEAD: the HKDF keys and AES-GCM frames of §5", async () => {
  const master = range(0, 32);
  const salt = range(0x20, 16);
  const c2s = await deriveDirectionKey(master, salt, "wit3c2s", true);
  const s2c = await deriveDirectionKey(master, salt, "wit3s2c", true);
  const raw = async (k) => toHex(new Uint8Array(await crypto.subtle.exportKey("raw", k)));
  assert.equal(await raw(c2s), "8031f3d5b13875a86b8980ea338fd8744ecba3b2f755fece8ede1236caefafce");
  assert.equal(await raw(s2c), "17691f9e2216acd2585847bd4cd66fe8fcb9d46cc3306e2752cbfc23f0c58f93");
  const plain = hex("01020304");
  const c2sFrame = "0000000000000000" + "4874df0a4be92ce5c97a20b1da5760d2" + "6b4787d2";
  const s2cFrame1 = "0100000000000000" + "9fc8c345e872c3217f0a9c825214aa0b" + "e3172b9f";
  assert.equal(toHex(await sealFrame(c2s, AAD_C2S, 0n, plain)), c2sFrame);
  assert.equal(toHex(await sealFrame(s2c, AAD_S2C, 1n, plain)), s2cFrame1);

  // The client's cipher: seals from counter 0, opens strictly in order.
  const cipher = await clientCipher(master, salt);
  assert.equal(toHex(await cipher.seal(plain)), c2sFrame);
  await assert.rejects(cipher.open(hex(s2cFrame1)), /out of order/);
  assert.deepEqual(await cipher.open(await sealFrame(s2c, AAD_S2C, 0n, hex("aa"))), hex("aa"));
  const tampered = hex(s2cFrame1);
  tampered[23] ^= 1;
  await assert.rejects(cipher.open(tampered), /authentication/);
  assert.deepEqual(await cipher.open(hex(s2cFrame1)), plain);
  // The wrong direction's AAD does not open.
  await assert.rejects(openFrame(s2c, AAD_C2S, 1n, hex(s2cFrame1)), /authentication/);
  await assert.rejects(clientCipher(new Uint8Array([0]), new Uint8Array([0])), /does not use encryption/);
});

test("MessagePack: the LZ4 extension MessagePack-CSharp writes for large values", () => {
  // "x" * 200 as str8 (202 bytes): 3 literals, a match of 194 at offset 1, 5 literals.
  const block = [0x3f, 0xd9, 200, 0x78, 1, 0, 175, 0x50, 0x78, 0x78, 0x78, 0x78, 0x78];
  const ext = Uint8Array.from([0xc7, 5 + block.length, 99, 0xd2, 0, 0, 0, 202, ...block]);
  assert.equal(msgpack.decode(ext), "x".repeat(200));
  // The length may be any MessagePack integer (here uint8), and ext16 is read as well.
  const ext16 = Uint8Array.from([0xc8, 0, 2 + block.length, 99, 0xcc, 202, ...block]);
  assert.equal(msgpack.decode(ext16), "x".repeat(200));
  // A declared length that the block does not produce is an error.
  assert.throws(() => msgpack.decode(Uint8Array.from([0xc7, 5 + block.length, 99, 0xd2, 0, 0, 0, 203, ...block])), /LZ4/);
  // Other extension types are left to the caller.
  assert.deepEqual(msgpack.decode(Uint8Array.from([0xd4, 5, 0x01])), { extType: 5, data: Uint8Array.from([1]) });
  // Large values are sent uncompressed (every MessagePack reader accepts that).
  const big = msgpack.encode("y".repeat(100));
  assert.deepEqual([...big.subarray(0, 2)], [0xd9, 100]);
  assert.deepEqual(msgpack.encode(new Uint8Array([1, 2]).buffer), Uint8Array.from([0xc4, 2, 1, 2]));
  assert.equal(msgpack.decode(msgpack.encode(2n ** 63n - 1n)), 2n ** 63n - 1n);
});

test("JSON: byte arrays as base64 (Node Buffers too), bigints as numbers, null as no bytes", () => {
  const text = (v) => new TextDecoder().decode(json.encode(v));
  assert.equal(text(Buffer.from([1, 2, 3])), '"AQID"');
  assert.equal(text({ Data: new Uint8Array([0xfb, 0xff]), Id: 9007199254740993n, Name: "a" }), '{"Data":"+/8=","Id":9007199254740993,"Name":"a"}');
  assert.equal(text([-5n]), "[-5]");
  assert.equal(json.encode(undefined).length, 0);
  assert.deepEqual(decodeBytes(json.decode(json.encode(new Uint8Array([7, 8])))), new Uint8Array([7, 8]));
  assert.deepEqual(decodeBytes(null), new Uint8Array());
  assert.throws(() => decodeBytes(5), /expected bytes/);
});

test("RemoteError: message is the server's ErrorMessage then its details", () => {
  const e = new RemoteError(500, "Failed to process request", "disk is full");
  assert.equal(e.message, "Failed to process request: disk is full");
  assert.equal(e.serverMessage, "Failed to process request");
  assert.equal(e.details, "disk is full");
  assert.equal(e.name, "RemoteError");
  assert.equal(new RemoteError(503, null, null).message, "remote error (status 503)");
});
