// Protocol 2 (.NET WitRPC 2.x): every byte of the worked example in
// shared/witrpc-protocol-2x.md §8, encoded and decoded; the Object-layout edge cases a
// peer can produce; the 2.x cipher checked against Node's own crypto.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv, publicEncrypt, createPublicKey, constants, randomBytes } from "node:crypto";
import { json } from "../dist/index.js";
import { encodeEnvelope, decodeEnvelope } from "../dist/memorypack.js";
import {
  encodeInitializationV2,
  decodeInitializationReplyV2,
  encodeAuthorizationV2,
  decodeAuthorizationReplyV2,
  encodeRequestV2,
  decodeRequestV2,
  decodeResponseV2,
  typeNameV2,
  inferTypeV2,
} from "../dist/v2.js";
import { cbcCipher, generateRsaKey, rsaDecrypt } from "../dist/crypto.js";

const hex = (s) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g).map((b) => parseInt(b, 16)));
const toHex = (b) => Buffer.from(b).toString("hex");
const ascii = (s) => toHex(new TextEncoder().encode(s));

// Guid 6f9619ff-8b86-d011-b42d-00c04fc964ff in .NET byte order (§8.1).
const ID1 = hex("ff19966f868b11d0b42d00c04fc964ff");
// Guid 0f8fad5b-d9cb-469f-a165-70867728950e (§8.2).
const ID2 = hex("5bad8f0fcbd99f46a16570867728950e");
const INT32 = "System.Int32, System.Private.CoreLib";

test("§8.1: the plain Initialization request is 31 bytes and its reply 36", () => {
  const request = encodeEnvelope({ id: ID1, type: 3, data: encodeInitializationV2(new Uint8Array([0])) });
  assert.equal(toHex(request), "03" + toHex(ID1) + "03000000" + "06000000" + "010100000000");
  assert.equal(request.length, 31);

  const reply = hex("03" + toHex(ID1) + "03000000 0b000000 02 0100000000 0100000000");
  assert.equal(reply.length, 36);
  const envelope = decodeEnvelope(reply);
  assert.deepEqual(envelope.id, ID1);
  assert.equal(envelope.type, 3);
  assert.deepEqual(decodeInitializationReplyV2(envelope.data), { symmetricKey: new Uint8Array([0]), vector: new Uint8Array([0]) });
});

test("§8.1: the Authorization request is 30 bytes and its reply 45", () => {
  const request = encodeEnvelope({ id: ID2, type: 4, data: encodeAuthorizationV2("") });
  assert.equal(toHex(request), "03" + toHex(ID2) + "04000000" + "05000000" + "0100000000");
  assert.equal(request.length, 30);

  const reply = hex("03" + toHex(ID2) + "04000000 14000000 02 01 f5ffffff 0a000000" + ascii("Authorized"));
  assert.equal(reply.length, 45);
  assert.deepEqual(decodeAuthorizationReplyV2(decodeEnvelope(reply).data), { isAuthorized: true, message: "Authorized" });
  // A token is a MemoryPack UTF-8 string: ~byteCount, UTF-16 length, bytes.
  assert.equal(toHex(encodeAuthorizationV2("é")), "01" + "fdffffff" + "01000000" + "c3a9");
});

const REQUEST_134 =
  "07" +
  "00000000" +
  "fcffffff 03000000" + ascii("Add") +
  "02000000" +
  "01000000 32" +
  "01000000 33" +
  "02000000" +
  ("dbffffff 24000000" + ascii(INT32)).repeat(2) +
  "00000000" +
  "00000000" +
  "00000000";

test("§8.2: Add(2, 3) is a 134-byte WitRequest in a 159-byte envelope", () => {
  const inner = encodeRequestV2({
    token: "",
    methodName: "Add",
    parameters: [json.encode(2), json.encode(3)],
    parameterTypes: [typeNameV2("System.Int32"), typeNameV2("System.Int32")],
  });
  assert.equal(toHex(inner), toHex(hex(REQUEST_134)));
  assert.equal(inner.length, 134);
  const frame = encodeEnvelope({ id: ID2, type: 1, data: inner });
  assert.equal(toHex(frame.subarray(0, 25)), "03" + toHex(ID2) + "01000000" + "86000000");
  assert.equal(frame.length, 159);
  // And it reads back (the decoder events use).
  const q = decodeRequestV2(inner);
  assert.equal(q.methodName, "Add");
  assert.deepEqual(q.parameters.map((p) => json.decode(p)), [2, 3]);
  assert.deepEqual(q.parameterTypes, [INT32, INT32]);
  assert.deepEqual(q.parameterTypesByName, []);
});

test("§8.3: the 43-byte response carries status 200 and JSON 5", () => {
  const frame = hex("03" + toHex(ID2) + "01000000 12000000 04 c8000000 01000000 35 ffffffff ffffffff");
  assert.equal(frame.length, 43);
  const envelope = decodeEnvelope(frame);
  assert.deepEqual(envelope.id, ID2);
  const response = decodeResponseV2(envelope.data);
  assert.deepEqual(response, { status: 200, data: new Uint8Array([0x35]), errorMessage: null, errorDetails: null });
  assert.equal(json.decode(response.data), 5);
});

test("§8.5: an event is a WitRequest named for the event, with runtime type names", () => {
  const inner = hex(
    "07 00000000 f8ffffff 07000000" + ascii("Changed") +
      "01000000 04000000" + ascii('"hi"') +
      "01000000 daffffff 25000000" + ascii("System.String, System.Private.CoreLib") +
      "00000000 00000000 00000000",
  );
  const connection = hex("00112233445566778899aabbccddeeff");
  const frame = encodeEnvelope({ id: connection, type: 2, data: inner });
  const envelope = decodeEnvelope(frame);
  assert.equal(envelope.type, 2);
  const event = decodeRequestV2(envelope.data);
  assert.equal(event.token, "");
  assert.equal(event.methodName, "Changed");
  assert.deepEqual(event.parameters.map((p) => json.decode(p)), ["hi"]);
  assert.deepEqual(event.parameterTypes, ["System.String, System.Private.CoreLib"]);
  // Our encoder writes the same bytes for the same request.
  const again = encodeRequestV2({ token: "", methodName: "Changed", parameters: [json.encode("hi")], parameterTypes: [typeNameV2("System.String")] });
  assert.equal(toHex(again), toHex(inner));
});

test("Object layout: short headers default, long headers, trailing bytes and bad lengths are errors", () => {
  // A response with only Status: the rest are null.
  assert.deepEqual(decodeResponseV2(hex("01 90010000")), { status: 400, data: null, errorMessage: null, errorDetails: null });
  assert.throws(() => decodeResponseV2(hex("05 c8000000 ffffffff ffffffff ffffffff 00")), /5 members/);
  assert.throws(() => decodeResponseV2(hex("04 c8000000 ffffffff ffffffff ffffffff 00")), /trailing/);
  assert.throws(() => decodeResponseV2(hex("ff")), /null object/);
  assert.throws(() => decodeResponseV2(hex("04 c8000000 ff000000 35")), /needs 255 bytes/);
  assert.throws(() => decodeResponseV2(new Uint8Array()), /needs 1 bytes/);
  // The reply of a protocol-3 server (VersionTolerant, header 04 + VarInt lengths) is not a 2.x reply.
  assert.throws(() => decodeInitializationReplyV2(hex("04 04 04 04 04 01000000 00 01000000 00 03000000 ffffffff")), /4 members/);
  // Null lists (-1) read as empty; a null ParameterType element stays null.
  const q = decodeRequestV2(hex("07 00000000 00000000 ffffffff ffffffff 02000000 ff 02 00000000 ffffffff ffffffff ffffffff"));
  assert.deepEqual(q.parameters, []);
  assert.deepEqual(q.parameterTypesByName, [null, { type: "", assembly: null }]);
  // A count larger than the bytes left is refused before allocating.
  assert.throws(() => decodeRequestV2(hex("07 00000000 00000000 ffffff7f")), /invalid array length/);
  // A UTF-16 (positive length) string is read too.
  assert.equal(decodeAuthorizationReplyV2(hex("02 00 02000000 4f004b00")).message, "OK");
});

test("type names: generated clients' names and inferred ones", () => {
  assert.equal(typeNameV2("System.Int32"), INT32);
  assert.equal(typeNameV2("System.Byte[]"), "System.Byte[], System.Private.CoreLib");
  assert.equal(
    typeNameV2("System.Collections.Generic.List<System.String>"),
    "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib]], System.Private.CoreLib",
  );
  assert.equal(typeNameV2("MyNs.Dto, MyAssembly"), "MyNs.Dto, MyAssembly");
  assert.equal(inferTypeV2(2, "Add", 0), INT32);
  assert.equal(inferTypeV2(2.5, "Add", 0), "System.Double, System.Private.CoreLib");
  assert.equal(inferTypeV2(2 ** 40, "Add", 0), "System.Double, System.Private.CoreLib");
  assert.equal(inferTypeV2(5n, "Add", 0), "System.Int64, System.Private.CoreLib");
  assert.equal(inferTypeV2("x", "Echo", 0), "System.String, System.Private.CoreLib");
  assert.equal(inferTypeV2(true, "Set", 0), "System.Boolean, System.Private.CoreLib");
  assert.equal(inferTypeV2(new Uint8Array(1), "EchoBytes", 0), "System.Byte[], System.Private.CoreLib");
  assert.throws(() => inferTypeV2({ a: 1 }, "Save", 1), /argument 1 of Save: pass `parameterTypes`/);
  assert.throws(() => inferTypeV2(null, "Save", 0), TypeError);
});

test("AES-256-CBC-PKCS7 with a fixed IV: what Node's OpenSSL writes, 134 bytes become 144", async () => {
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = await cbcCipher(new Uint8Array(key), new Uint8Array(iv));
  const plain = hex(REQUEST_134);
  const sealed = await cipher.seal(plain);
  assert.equal(sealed.length, 144);
  const openssl = createCipheriv("aes-256-cbc", key, iv);
  assert.equal(toHex(sealed), Buffer.concat([openssl.update(plain), openssl.final()]).toString("hex"));
  assert.equal(toHex(await cipher.seal(plain)), toHex(sealed), "the same IV for every message");
  const fromServer = createCipheriv("aes-256-cbc", key, iv);
  const reply = Buffer.concat([fromServer.update(Buffer.from("05", "hex")), fromServer.final()]);
  assert.equal(toHex(await cipher.open(new Uint8Array(reply))), "05");
  // Wrong lengths and a frame under another key are ProtocolErrors, never a crash.
  await assert.rejects(cipher.open(new Uint8Array(15)), /whole number of AES blocks/);
  await assert.rejects(cipher.open(new Uint8Array()), /whole number of AES blocks/);
  const other = await cbcCipher(new Uint8Array(32).fill(1), new Uint8Array(16));
  // Random keys: the padding check fails for all but ~1/256 of cases; try a few frames.
  let failed = 0;
  for (let i = 0; i < 8; i++) failed += await other.open(await cipher.seal(new Uint8Array([i]))).then(() => 0, () => 1);
  assert.ok(failed >= 6, `${failed} of 8 foreign frames failed to decrypt`);
  await assert.rejects(cbcCipher(new Uint8Array([0]), new Uint8Array([0])), /connect without it/);
  // Sanity: Node reads what we seal.
  const decipher = createDecipheriv("aes-256-cbc", key, iv);
  assert.equal(Buffer.concat([decipher.update(sealed), decipher.final()]).toString("hex"), toHex(plain));
});

test("the 2.x key JSON is what a .NET client writes, and the RSA-OAEP-SHA256 reply opens", async () => {
  let rsa;
  // Retry until the modulus has a '+' in its Base64 (almost every key does).
  do rsa = await generateRsaKey(true);
  while (!new TextDecoder().decode(rsa.publicJson).includes("\\u002B"));
  const text = new TextDecoder().decode(rsa.publicJson);
  assert.match(text, /^\{"mod":"[A-Za-z0-9/=\\u]+","exp":"AQAB"\}$/);
  assert.ok(!text.includes("+"), "every + is escaped");
  const { mod, exp } = JSON.parse(text);
  assert.equal(Buffer.from(mod, "base64").length, 256);
  const publicKey = createPublicKey({
    key: { kty: "RSA", n: Buffer.from(mod, "base64").toString("base64url"), e: Buffer.from(exp, "base64").toString("base64url") },
    format: "jwk",
  });
  const reply = hex("02 20000000" + "11".repeat(32) + "10000000" + "22".repeat(16));
  const wrapped = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, reply);
  assert.equal(wrapped.length, 256);
  const opened = await rsaDecrypt(rsa, new Uint8Array(wrapped));
  assert.deepEqual(decodeInitializationReplyV2(opened), { symmetricKey: new Uint8Array(32).fill(0x11), vector: new Uint8Array(16).fill(0x22) });
  // The protocol-3 key JSON stays unescaped.
  assert.ok(!new TextDecoder().decode((await generateRsaKey()).publicJson).includes("\\u"));
});

test("the 2.x decoders reject arbitrary and mutated bytes with ProtocolError only", async () => {
  const { ProtocolError } = await import("../dist/index.js");
  const decoders = [decodeRequestV2, decodeResponseV2, decodeInitializationReplyV2, decodeAuthorizationReplyV2];
  let seed = 0x2545f491;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const golden = [hex(REQUEST_134), hex("04 c8000000 01000000 35 ffffffff ffffffff"), hex("02 0100000000 0100000000"), hex("02 01 f5ffffff 0a000000" + ascii("Authorized"))];
  const inputs = [];
  for (let i = 0; i < 500; i++) inputs.push(Uint8Array.from({ length: random() % 64 }, random));
  for (const g of golden) {
    for (let i = 0; i < 300; i++) {
      const m = g.slice(0, g.length - (random() % 3 === 0 ? random() % g.length : 0));
      if (m.length) m[random() % m.length] = random();
      inputs.push(m);
    }
  }
  let accepted = 0;
  for (const bytes of inputs) {
    for (const decode of decoders) {
      try {
        decode(bytes);
        accepted++;
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `${decode.name}(${toHex(bytes)}) threw ${e}`);
      }
    }
  }
  assert.ok(accepted > 0, "some mutations still decode (the check is not vacuous)");
});
