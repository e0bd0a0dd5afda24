// Codec unit tests: ids, MessagePack, LZ4 blocks, the MemoryPack envelope.

import { test } from "node:test";
import assert from "node:assert/strict";
import { contractId, methodId, fnv1a64Utf16, msgpack, json, messagePack, decodeBytes } from "../dist/index.js";
import { decodeEnvelope, encodeEnvelope, encodeRequest, decodeEvent } from "../dist/memorypack.js";

test("FNV-1a ids match the protocol notes' vectors", () => {
  assert.equal(BigInt.asUintN(64, fnv1a64Utf16("a")), 0xaf63dc4c8601ec8cn);
  assert.equal(contractId("MyCompany.Contracts.ICalculator"), 2863546532410206118n);
  assert.equal(methodId("MyCompany.Contracts.ICalculator", "Add", ["System.Int32", "System.Int32"]), -6724387377990606637n);
});

test("MessagePack round-trips values in MessagePack-CSharp's shapes", () => {
  for (const v of [0, 1, 127, 128, 255, 65536, -1, -33, -200, -70000, 2 ** 40, -(2 ** 40), 1.5, "", "é✓", true, false, null, [1, [2, "x"]], { A: 1, B: "b" }]) {
    assert.deepEqual(msgpack.decode(msgpack.encode(v)), v);
  }
  assert.deepEqual([...msgpack.encode(2)], [0x02]);
  assert.deepEqual([...msgpack.encode(["x", 2])], [0x92, 0xa1, 0x78, 0x02]);
  assert.deepEqual(msgpack.decode(msgpack.encode(new Uint8Array([1, 2, 3]))), new Uint8Array([1, 2, 3]));
  assert.throws(() => msgpack.decode(new Uint8Array([0x92, 0x01])), /truncated/);
  assert.throws(() => msgpack.decode(new Uint8Array([0x01, 0x02])), /after the MessagePack value/);
  const deep = new Uint8Array(200).fill(0x91);
  assert.throws(() => msgpack.decode(deep), /deep|truncated/);
});

test("LZ4 blocks decompress, and hostile ones fail cleanly", () => {
  const enc = new TextEncoder();
  // "abc", then a 9-byte match at offset 3, then the literals "xyzzy".
  const block = new Uint8Array([0x35, ...enc.encode("abc"), 3, 0, 0x50, ...enc.encode("xyzzy")]);
  assert.equal(new TextDecoder().decode(msgpack.lz4DecompressBlock(block, 17)), "abcabcabcabcxyzzy");
  assert.throws(() => msgpack.lz4DecompressBlock(block, 16), /overrun|declared/);
  assert.throws(() => msgpack.lz4DecompressBlock(new Uint8Array([0x10, 0x41, 9, 0]), 10), /offset/);
  // ext 99 with an implausible declared length.
  const ext = new Uint8Array([0xc7, 6, 99, 0xd2, 0x7f, 0xff, 0xff, 0xff, 0x00]);
  assert.throws(() => msgpack.decode(ext), /implausible/);
});

test("parameter serializers follow the .NET conventions", () => {
  assert.equal(json.encode(null).length, 0);
  assert.equal(json.decode(new Uint8Array()), null);
  assert.equal(new TextDecoder().decode(json.encode(new Uint8Array([1, 2, 3]))), '"AQID"');
  assert.deepEqual(decodeBytes("AQID"), new Uint8Array([1, 2, 3]));
  assert.equal(messagePack.encode(undefined).length, 0);
});

test("the envelope is 0x03 | id | type | length-prefixed data", () => {
  const id = new Uint8Array(16).map((_, i) => i);
  const frame = encodeEnvelope({ id, type: 1, data: new Uint8Array([9, 8]) });
  assert.deepEqual([...frame], [3, ...id, 1, 0, 0, 0, 2, 0, 0, 0, 9, 8]);
  assert.deepEqual(decodeEnvelope(frame), { id, type: 1, data: new Uint8Array([9, 8]) });
  assert.throws(() => decodeEnvelope(frame.subarray(0, 10)), /needs/);
  assert.throws(() => decodeEnvelope(new Uint8Array([2, ...frame.subarray(1)])), /not a WitMessage/);
});

test("a request payload reads back as an event payload", () => {
  const payload = encodeRequest({
    token: "t",
    methodName: "Progress",
    parameters: [new Uint8Array([0x35, 0x30])],
    parameterTypesByName: [{ type: "System.Double", assembly: "System.Private.CoreLib" }],
    invocationId: new Uint8Array(16),
    contractId: 7n,
    methodId: 0n,
  });
  const event = decodeEvent(payload);
  assert.equal(event.name, "Progress");
  assert.equal(event.contractId, 7n);
  assert.deepEqual(event.parameters, [new Uint8Array([0x35, 0x30])]);
});
