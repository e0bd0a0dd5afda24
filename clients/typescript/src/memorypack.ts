// The MemoryPack subset of WitRPC protocol 3: the frozen envelope and the
// version-tolerant payload objects. Every length from the peer is checked against the
// bytes that remain before anything is allocated.

import { ProtocolError } from "./errors.js";

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.buf[this.length++] = v;
  }

  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }

  i64(v: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  byteArray(b: Uint8Array | null): void {
    if (b === null) return this.i32(-1);
    this.i32(b.length);
    this.bytes(b);
  }

  /** A string as .NET writes it with UTF-8 string encoding: `~byteCount, utf16Length, bytes`. */
  string(s: string | null): void {
    if (s === null) return this.i32(-1);
    if (s === "") return this.i32(0);
    const encoded = utf8.encode(s);
    this.i32(~encoded.length);
    this.i32(s.length); // JS string length is the UTF-16 unit count
    this.bytes(encoded);
  }

  /** VarInt exactly as .NET writes a non-negative length. */
  varintLength(n: number): void {
    if (n <= 127) {
      this.u8(n);
    } else if (n <= 0x7fff) {
      this.u8(0x84);
      this.reserve(2);
      this.view.setInt16(this.length, n, true);
      this.length += 2;
    } else {
      this.u8(0x82);
      this.i32(n);
    }
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Builds a version-tolerant object: member count, VarInt member lengths, member bytes. */
export class TolerantWriter {
  readonly body = new Writer();
  private ends: number[] = [];

  endMember(): void {
    this.ends.push(this.body.length);
  }

  finish(): Uint8Array {
    const out = new Writer();
    out.u8(this.ends.length);
    let start = 0;
    for (const end of this.ends) {
      out.varintLength(end - start);
      start = end;
    }
    out.bytes(this.body.finish());
    return out.finish();
  }
}

export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, private readonly what: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number): Uint8Array {
    if (n < 0 || n > this.remaining) {
      throw new ProtocolError(`${this.what}: needs ${n} bytes, ${this.remaining} left`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    return this.take(1)[0];
  }

  i32(): number {
    this.take(4);
    return this.view.getInt32(this.pos - 4, true);
  }

  i64(): bigint {
    this.take(8);
    return this.view.getBigInt64(this.pos - 8, true);
  }

  byteArray(): Uint8Array | null {
    const n = this.i32();
    if (n === -1) return null;
    if (n < 0) throw new ProtocolError(`${this.what}: invalid length ${n}`);
    return this.take(n);
  }

  string(): string | null {
    const head = this.i32();
    if (head === -1) return null;
    if (head === 0) return "";
    if (head < 0) {
      const byteCount = ~head;
      this.i32(); // UTF-16 length, informational
      try {
        return utf8Strict.decode(this.take(byteCount));
      } catch {
        throw new ProtocolError(`${this.what}: invalid UTF-8`);
      }
    }
    const raw = this.take(head * 2);
    let s = "";
    for (let i = 0; i < raw.length; i += 2) s += String.fromCharCode(raw[i] | (raw[i + 1] << 8));
    return s;
  }

  /** An array count, checked against the bytes that remain. */
  arrayLength(minElementSize: number): number | null {
    const n = this.i32();
    if (n === -1) return null;
    if (n < 0 || n * minElementSize > this.remaining) throw new ProtocolError(`${this.what}: invalid array length ${n}`);
    return n;
  }

  varint(): number {
    const code = (this.u8() << 24) >> 24; // as int8
    if (code >= -120) return code;
    switch (code) {
      case -121:
        return this.u8();
      case -122:
        return (this.u8() << 24) >> 24;
      case -123:
        this.take(2);
        return this.view.getUint16(this.pos - 2, true);
      case -124:
        this.take(2);
        return this.view.getInt16(this.pos - 2, true);
      case -125:
        this.take(4);
        return this.view.getUint32(this.pos - 4, true);
      case -126:
        return this.i32();
      default:
        throw new ProtocolError(`${this.what}: unsupported 64-bit VarInt length`);
    }
  }

  sub(n: number): Reader {
    return new Reader(this.take(n), this.what);
  }

  guid(): Uint8Array {
    return this.take(16);
  }

  end(): void {
    if (this.remaining !== 0) throw new ProtocolError(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}

/** Reads a version-tolerant object's header; returns one reader per member (null when absent), or null for a null object. */
export function readTolerant(r: Reader, known: number): Array<Reader | null> | null {
  const count = r.u8();
  if (count === 0xff) return null;
  if (count > 249 || count > r.remaining) throw new ProtocolError("invalid object header");
  const lengths: number[] = [];
  for (let i = 0; i < count; i++) {
    const len = r.varint();
    if (len < 0) throw new ProtocolError("invalid member length");
    lengths.push(len);
  }
  const members: Array<Reader | null> = [];
  lengths.forEach((len, i) => {
    const sub = r.sub(len);
    if (i < known) members.push(len === 0 ? null : sub);
  });
  while (members.length < known) members.push(null);
  return members;
}

export const enum MessageType {
  Request = 1,
  Callback = 2,
  Initialization = 3,
  Authorization = 4,
  /** Ours (`replay-batch`): the events a resume replays, packed (ARCHITECTURE.md). */
  ReplayBatch = 100,
}

/**
 * The entries of a replay batch (`u8 1 | u32le count | count × (u32le length | bytes)`),
 * each the Data of one positioned callback. Throws on anything else: the batch is ours,
 * so a damaged one is a fault, never skipped.
 */
export function replayBatchEntries(batch: Uint8Array): Uint8Array[] {
  const fail = (why: string): never => {
    throw new ProtocolError(`unreadable replay batch: ${why}`);
  };
  if (batch.length < 5) fail("shorter than its header");
  if (batch[0] !== 1) fail(`unknown version ${batch[0]}`);
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const count = view.getUint32(1, true);
  let at = 5;
  const entries: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (batch.length - at < 4) fail("an entry's length is cut");
    const len = view.getUint32(at, true);
    at += 4;
    if (len > batch.length - at) fail("an entry is cut");
    entries.push(batch.subarray(at, at + len));
    at += len;
  }
  if (at !== batch.length) fail(`${batch.length - at} bytes after the last entry`);
  return entries;
}

export interface Envelope {
  id: Uint8Array;
  type: number;
  data: Uint8Array | null;
}

export function encodeEnvelope(e: Envelope): Uint8Array {
  const w = new Writer();
  w.u8(3);
  w.bytes(e.id);
  w.i32(e.type);
  w.byteArray(e.data);
  return w.finish();
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const r = new Reader(bytes, "WitMessage");
  if (r.u8() !== 3) throw new ProtocolError("not a WitMessage (its header byte is not 03)");
  const id = r.guid().slice();
  const type = r.i32();
  const data = r.byteArray();
  r.end();
  return { id, type, data };
}

export interface ParameterType {
  type: string;
  assembly: string;
}

export interface WitRequest {
  token: string;
  methodName: string;
  parameters: Uint8Array[];
  parameterTypesByName: ParameterType[];
  invocationId: Uint8Array;
  contractId: bigint;
  methodId: bigint;
}

export function encodeRequest(q: WitRequest): Uint8Array {
  const t = new TolerantWriter();
  t.body.string(q.token);
  t.endMember();
  t.body.string(q.methodName);
  t.endMember();
  t.body.i32(q.parameters.length);
  for (const p of q.parameters) t.body.byteArray(p);
  t.endMember();
  t.body.i32(0); // ParameterTypes: left empty, as the Rust client does
  t.endMember();
  t.body.i32(q.parameterTypesByName.length);
  for (const p of q.parameterTypesByName) {
    const pt = new TolerantWriter();
    pt.body.string(p.type);
    pt.endMember();
    pt.body.string(p.assembly);
    pt.endMember();
    t.body.bytes(pt.finish());
  }
  t.endMember();
  t.body.i32(0); // GenericArguments
  t.endMember();
  t.body.i32(0); // GenericArgumentsByName
  t.endMember();
  t.body.bytes(q.invocationId);
  t.endMember();
  t.body.i64(q.contractId);
  t.endMember();
  t.body.i64(q.methodId);
  t.endMember();
  return t.finish();
}

/** The parts of a `WitRequest` a client reads from a server-raised event. */
export interface EventPayload {
  name: string;
  contractId: bigint;
  parameters: Uint8Array[];
  /** Our member 10 (`resume`): `<stream>\t<epoch>\t<offset>`; null from .NET or without history. */
  position: string | null;
}

export function decodeEvent(bytes: Uint8Array): EventPayload {
  const r = new Reader(bytes, "WitRequest");
  const m = readTolerant(r, 11);
  if (!m) throw new ProtocolError("null event payload");
  const name = m[1]?.string() ?? "";
  const parameters: Uint8Array[] = [];
  const p = m[2];
  if (p) {
    const n = p.arrayLength(4) ?? 0;
    for (let i = 0; i < n; i++) parameters.push(p.byteArray() ?? new Uint8Array());
  }
  const contractId = m[8] ? m[8].i64() : 0n;
  return { name, contractId, parameters, position: lenient(m[10], (r) => r.string()) };
}

export interface WitResponse {
  status: number;
  data: Uint8Array | null;
  errorMessage: string | null;
  errorDetails: string | null;
}

export function decodeResponse(bytes: Uint8Array): WitResponse {
  const r = new Reader(bytes, "WitResponse");
  const m = readTolerant(r, 4);
  if (!m) throw new ProtocolError("null response");
  return {
    status: m[0] ? m[0].i32() : 0,
    data: m[1] ? m[1].byteArray() : null,
    errorMessage: m[2] ? m[2].string() : null,
    errorDetails: m[3] ? m[3].string() : null,
  };
}

/**
 * `WitRequestInitialization`; `extensions` is our trailing member 2 (`"witrpc/1 ..."`,
 * see ARCHITECTURE.md "Wire extensions of ours"), skipped by .NET servers.
 */
export function encodeInitialization(publicKey: Uint8Array, extensions?: string): Uint8Array {
  const t = new TolerantWriter();
  t.body.byteArray(publicKey);
  t.endMember();
  t.body.i32(3);
  t.endMember();
  if (extensions !== undefined) {
    t.body.string(extensions);
    t.endMember();
  }
  return t.finish();
}

/** A trailing member of ours, or null when absent or of another type. */
function lenient<T>(member: Reader | null, read: (r: Reader) => T): T | null {
  if (!member) return null;
  try {
    const value = read(member);
    return member.remaining === 0 ? value : null;
  } catch {
    return null;
  }
}

export interface InitializationReply {
  symmetricKey: Uint8Array | null;
  vector: Uint8Array | null;
  protocolVersion: number;
  errorMessage: string | null;
  /** Our member 4: the features the server accepted (`"witrpc/1 ..."`); null from .NET. */
  extensions: string | null;
}

export function decodeInitializationReply(bytes: Uint8Array): InitializationReply {
  const r = new Reader(bytes, "WitResponseInitialization");
  const m = readTolerant(r, 5);
  if (!m) throw new ProtocolError("null initialization reply");
  return {
    symmetricKey: m[0] ? m[0].byteArray() : null,
    vector: m[1] ? m[1].byteArray() : null,
    protocolVersion: m[2] ? m[2].i32() : 0,
    errorMessage: m[3] ? m[3].string() : null,
    extensions: lenient(m[4], (r) => r.string()),
  };
}

/**
 * `WitRequestAuthorization`; `resume` is our member 1 (the previous connection's id,
 * then one `\n<stream>\t<epoch>\t<offset>` line per stream), written only when given.
 */
export function encodeAuthorization(token: string, resume?: string): Uint8Array {
  const t = new TolerantWriter();
  t.body.string(token);
  t.endMember();
  if (resume !== undefined) {
    t.body.string(resume);
    t.endMember();
  }
  return t.finish();
}

/**
 * `WitResponseAuthorization`; `expiresAtUnixMs` is our member 2 (ms since the epoch,
 * 0 = no expiry), sent only to clients that negotiated `token-refresh`; `resumed` is our
 * member 3 (`resume`): this connection's id, then one `\n<stream>\t<epoch>\t<offset>\t<0|1>`
 * line per resumed stream.
 */
export function decodeAuthorizationReply(bytes: Uint8Array): {
  isAuthorized: boolean;
  message: string | null;
  expiresAtUnixMs: number | null;
  resumed: string | null;
} {
  const r = new Reader(bytes, "WitResponseAuthorization");
  const m = readTolerant(r, 4);
  if (!m) throw new ProtocolError("null authorization reply");
  const expires = lenient(m[2], (r) => Number(r.i64()));
  return {
    isAuthorized: m[0] ? m[0].u8() !== 0 : false,
    message: m[1] ? m[1].string() : null,
    expiresAtUnixMs: expires && expires > 0 ? expires : null,
    resumed: lenient(m[3], (r) => r.string()),
  };
}
