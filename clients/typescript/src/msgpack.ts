// A small MessagePack codec in MessagePack-CSharp's shapes, plus the LZ4 block
// extension (type 99) that MessagePack-CSharp's `Lz4Block` writes for values of 64
// bytes or more. No dependencies, so the browser needs no bundler.

import { ProtocolError } from "./errors.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const MAX_DEPTH = 128;
/** Largest value a compressed extension may claim when uncompressed (64 MiB). */
const MAX_UNCOMPRESSED = 64 * 1024 * 1024;
const EXT_LZ4_BLOCK = 99;

// ---- encoding --------------------------------------------------------------------

class Out {
  buf = new Uint8Array(64);
  view = new DataView(this.buf.buffer);
  len = 0;

  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.buf[this.len++] = v;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  header(marker: number, size: number, n: number): void {
    this.u8(marker);
    this.reserve(size);
    if (size === 1) this.view.setUint8(this.len, n);
    else if (size === 2) this.view.setUint16(this.len, n);
    else this.view.setUint32(this.len, n);
    this.len += size;
  }
}

function encodeInto(out: Out, value: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new ProtocolError("value nests too deeply for MessagePack");
  if (value === null || value === undefined) return out.u8(0xc0);
  if (value === true) return out.u8(0xc3);
  if (value === false) return out.u8(0xc2);
  if (typeof value === "number") return encodeNumber(out, value);
  if (typeof value === "bigint") {
    out.u8(value < 0n ? 0xd3 : 0xcf);
    out.reserve(8);
    if (value < 0n) out.view.setBigInt64(out.len, value);
    else out.view.setBigUint64(out.len, value);
    out.len += 8;
    return;
  }
  if (typeof value === "string") {
    const b = utf8.encode(value);
    if (b.length < 32) out.u8(0xa0 | b.length);
    else if (b.length < 0x100) out.header(0xd9, 1, b.length);
    else if (b.length < 0x10000) out.header(0xda, 2, b.length);
    else out.header(0xdb, 4, b.length);
    return out.bytes(b);
  }
  if (value instanceof ArrayBuffer) return encodeInto(out, new Uint8Array(value), depth);
  if (value instanceof Uint8Array) {
    if (value.length < 0x100) out.header(0xc4, 1, value.length);
    else if (value.length < 0x10000) out.header(0xc5, 2, value.length);
    else out.header(0xc6, 4, value.length);
    return out.bytes(value);
  }
  if (Array.isArray(value)) {
    if (value.length < 16) out.u8(0x90 | value.length);
    else if (value.length < 0x10000) out.header(0xdc, 2, value.length);
    else out.header(0xdd, 4, value.length);
    for (const v of value) encodeInto(out, v, depth + 1);
    return;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length < 16) out.u8(0x80 | entries.length);
    else if (entries.length < 0x10000) out.header(0xde, 2, entries.length);
    else out.header(0xdf, 4, entries.length);
    for (const [k, v] of entries) {
      encodeInto(out, k, depth + 1);
      encodeInto(out, v, depth + 1);
    }
    return;
  }
  throw new ProtocolError(`cannot encode a ${typeof value} as MessagePack`);
}

function encodeNumber(out: Out, n: number): void {
  if (Number.isInteger(n) && Number.isSafeInteger(n)) {
    if (n >= 0) {
      if (n < 128) return out.u8(n);
      if (n < 0x100) return out.header(0xcc, 1, n);
      if (n < 0x10000) return out.header(0xcd, 2, n);
      if (n < 0x100000000) return out.header(0xce, 4, n);
      out.u8(0xcf);
      out.reserve(8);
      out.view.setBigUint64(out.len, BigInt(n));
      out.len += 8;
      return;
    }
    if (n >= -32) return out.u8(n & 0xff);
    if (n >= -128) {
      out.u8(0xd0);
      out.reserve(1);
      out.view.setInt8(out.len++, n);
      return;
    }
    if (n >= -32768) {
      out.u8(0xd1);
      out.reserve(2);
      out.view.setInt16(out.len, n);
      out.len += 2;
      return;
    }
    if (n >= -2147483648) {
      out.u8(0xd2);
      out.reserve(4);
      out.view.setInt32(out.len, n);
      out.len += 4;
      return;
    }
    out.u8(0xd3);
    out.reserve(8);
    out.view.setBigInt64(out.len, BigInt(n));
    out.len += 8;
    return;
  }
  out.u8(0xcb);
  out.reserve(8);
  out.view.setFloat64(out.len, n);
  out.len += 8;
}

/** Encodes one value. Objects become maps keyed by property name; `Uint8Array` becomes `bin`. */
export function encode(value: unknown): Uint8Array {
  const out = new Out();
  encodeInto(out, value, 0);
  return out.buf.slice(0, out.len);
}

// ---- decoding --------------------------------------------------------------------

class In {
  pos = 0;
  readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): number {
    if (n > this.buf.length - this.pos) throw new ProtocolError("MessagePack value is truncated");
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(): number {
    return this.buf[this.need(1)];
  }
  u16(): number {
    return this.view.getUint16(this.need(2));
  }
  u32(): number {
    return this.view.getUint32(this.need(4));
  }
  take(n: number): Uint8Array {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
}

function int64(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function decodeFrom(input: In, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new ProtocolError("MessagePack value nests too deeply");
  const m = input.u8();
  if (m < 0x80) return m;
  if (m >= 0xe0) return m - 0x100;
  if ((m & 0xf0) === 0x80) return map(input, m & 0x0f, depth);
  if ((m & 0xf0) === 0x90) return array(input, m & 0x0f, depth);
  if ((m & 0xe0) === 0xa0) return str(input, m & 0x1f);
  switch (m) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return input.take(input.u8()).slice();
    case 0xc5:
      return input.take(input.u16()).slice();
    case 0xc6:
      return input.take(input.u32()).slice();
    case 0xca:
      return input.view.getFloat32(input.need(4));
    case 0xcb:
      return input.view.getFloat64(input.need(8));
    case 0xcc:
      return input.u8();
    case 0xcd:
      return input.u16();
    case 0xce:
      return input.u32();
    case 0xcf:
      return int64(input.view.getBigUint64(input.need(8)));
    case 0xd0:
      return input.view.getInt8(input.need(1));
    case 0xd1:
      return input.view.getInt16(input.need(2));
    case 0xd2:
      return input.view.getInt32(input.need(4));
    case 0xd3:
      return int64(input.view.getBigInt64(input.need(8)));
    case 0xd9:
      return str(input, input.u8());
    case 0xda:
      return str(input, input.u16());
    case 0xdb:
      return str(input, input.u32());
    case 0xdc:
      return array(input, input.u16(), depth);
    case 0xdd:
      return array(input, input.u32(), depth);
    case 0xde:
      return map(input, input.u16(), depth);
    case 0xdf:
      return map(input, input.u32(), depth);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: {
      const len = 1 << (m - 0xd4);
      const type = input.view.getInt8(input.need(1));
      return { extType: type, data: input.take(len).slice() };
    }
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      const len = m === 0xc7 ? input.u8() : m === 0xc8 ? input.u16() : input.u32();
      const type = input.view.getInt8(input.need(1));
      return { extType: type, data: input.take(len).slice() };
    }
    default:
      throw new ProtocolError(`unknown MessagePack marker 0x${m.toString(16)}`);
  }
}

function str(input: In, n: number): string {
  try {
    return utf8Decoder.decode(input.take(n));
  } catch {
    throw new ProtocolError("MessagePack string is not valid UTF-8");
  }
}

function array(input: In, n: number, depth: number): unknown[] {
  if (n > input.buf.length - input.pos) throw new ProtocolError("MessagePack array is truncated");
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) out[i] = decodeFrom(input, depth + 1);
  return out;
}

function map(input: In, n: number, depth: number): Record<string, unknown> {
  if (n * 2 > input.buf.length - input.pos) throw new ProtocolError("MessagePack map is truncated");
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const key = decodeFrom(input, depth + 1);
    out[String(key)] = decodeFrom(input, depth + 1);
  }
  return out;
}

/** Decodes exactly one value (LZ4-compressed or not); trailing bytes are an error. */
export function decode(bytes: Uint8Array): unknown {
  const plain = unwrapLz4(bytes);
  const input = new In(plain);
  const value = decodeFrom(input, 0);
  if (input.pos !== plain.length) throw new ProtocolError("bytes after the MessagePack value");
  return value;
}

/** `bytes` itself, or the content of the LZ4 extension (type 99) that is all of `bytes`. */
export function unwrapLz4(bytes: Uint8Array): Uint8Array {
  const m = bytes[0];
  if (m !== 0xc7 && m !== 0xc8 && m !== 0xc9) return bytes;
  const input = new In(bytes);
  input.u8();
  const len = m === 0xc7 ? input.u8() : m === 0xc8 ? input.u16() : input.u32();
  const type = input.view.getInt8(input.need(1));
  if (type !== EXT_LZ4_BLOCK) return bytes;
  if (input.pos + len !== bytes.length) throw new ProtocolError("bytes after the LZ4 extension");
  const payload = new In(input.take(len));
  const declared = decodeFrom(payload, 0);
  if (typeof declared !== "number" || declared < 0) throw new ProtocolError("LZ4 extension without a valid length");
  const block = payload.take(payload.buf.length - payload.pos);
  if (declared > MAX_UNCOMPRESSED || declared > block.length * 255 + 64) {
    throw new ProtocolError(`LZ4 extension claims an implausible ${declared} bytes`);
  }
  return lz4DecompressBlock(block, declared);
}

/** Decompresses one raw LZ4 block into exactly `size` bytes. */
export function lz4DecompressBlock(block: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let ip = 0;
  let op = 0;
  const fail = (why: string): never => {
    throw new ProtocolError(`invalid LZ4 block: ${why}`);
  };
  while (ip < block.length) {
    const token = block[ip++];
    let literals = token >> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= block.length) fail("truncated literal length");
        b = block[ip++];
        literals += b;
      } while (b === 255);
    }
    if (ip + literals > block.length || op + literals > size) fail("literals overrun");
    out.set(block.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip >= block.length) break; // the last sequence has no match
    if (ip + 2 > block.length) fail("truncated offset");
    const offset = block[ip] | (block[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail("match offset out of range");
    let matchLength = (token & 0x0f) + 4;
    if ((token & 0x0f) === 15) {
      let b: number;
      do {
        if (ip >= block.length) fail("truncated match length");
        b = block[ip++];
        matchLength += b;
      } while (b === 255);
    }
    if (op + matchLength > size) fail("match overruns the declared size");
    for (let i = 0; i < matchLength; i++, op++) out[op] = out[op - offset];
  }
  if (op !== size) fail(`decompressed ${op} bytes, declared ${size}`);
  return out;
}
