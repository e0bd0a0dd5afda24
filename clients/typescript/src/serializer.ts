// Parameter serializers: each argument, result and event argument is one blob inside
// the MemoryPack envelope. Nothing on the wire says which one is in use: pick the
// server's (`format` option).

import * as msgpack from "./msgpack.js";
import { ProtocolError } from "./errors.js";

export type Format = "json" | "msgpack";

export interface ParameterSerializer {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** Standard base64 of `bytes` (what System.Text.Json writes for `byte[]`). */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * Bytes from a result or event argument that is a .NET `byte[]`: a base64 string under
 * JSON, `bin` under MessagePack. `null` stays an empty array.
 */
export function decodeBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return fromBase64(value);
  if (value === null || value === undefined) return new Uint8Array(0);
  throw new ProtocolError(`expected bytes (base64 text or bin), got ${typeof value}`);
}

/** Marks a bigint inside JSON.stringify's output until it is written as a bare number. */
const BIGINT_MARK = "\u0000witrpc-bigint:";
const BIGINT_MARKED = /"\\u0000witrpc-bigint:(-?\d+)"/g;

/** Replacer: byte arrays as base64 (seen before a Node Buffer's toJSON), bigints marked. */
function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return toBase64(raw);
  if (raw instanceof ArrayBuffer) return toBase64(new Uint8Array(raw));
  if (typeof value === "bigint") return BIGINT_MARK + value.toString();
  return value;
}

/**
 * System.Text.Json conventions: null is an empty blob, `Uint8Array` (and `ArrayBuffer`,
 * Node `Buffer`) is base64, `bigint` is a plain JSON number (for 64-bit integers).
 */
export const json: ParameterSerializer = {
  encode(value) {
    if (value === null || value === undefined) return EMPTY;
    const text = JSON.stringify(value, jsonReplacer);
    if (text === undefined) throw new TypeError(`cannot encode a ${typeof value} as JSON`);
    return utf8.encode(text.includes("witrpc-bigint:") ? text.replace(BIGINT_MARKED, "$1") : text);
  },
  decode(bytes) {
    if (bytes.length === 0) return null;
    try {
      return JSON.parse(utf8Decoder.decode(bytes));
    } catch (e) {
      throw new ProtocolError(`the server sent invalid JSON: ${(e as Error).message}`);
    }
  },
};

/** MessagePack-CSharp conventions: null is an empty blob; LZ4 blocks are read. */
export const messagePack: ParameterSerializer = {
  encode(value) {
    if (value === null || value === undefined) return EMPTY;
    return msgpack.encode(value);
  },
  decode(bytes) {
    if (bytes.length === 0) return null;
    return msgpack.decode(bytes);
  },
};

export function serializerFor(format: Format): ParameterSerializer {
  if (format === "json") return json;
  if (format === "msgpack") return messagePack;
  throw new TypeError(`unknown format ${JSON.stringify(format)}; use "json" or "msgpack"`);
}
