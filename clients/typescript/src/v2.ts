// Protocol 2 (.NET WitRPC 2.x) payloads: MemoryPack *Object* layout, i.e. one header
// byte = member count (0xFF = null), then the members back to back without lengths.
// The envelope is the same as protocol 3's (`memorypack.ts`). A header with fewer
// members than the model leaves the rest at their defaults (as MemoryPack does); more
// members, or bytes after the object, are an error.

import { ProtocolError } from "./errors.js";
import { CORE_LIB, parameterTypeByName } from "./ids.js";
import { Reader, Writer, type WitResponse } from "./memorypack.js";

/** A protocol-2 request as the client sends it (the other lists stay empty, as a .NET proxy with `strongAssemblyMatch` sends them). */
export interface WitRequestV2 {
  token: string;
  methodName: string;
  parameters: Uint8Array[];
  /** `System.Type` names without versions, e.g. `System.Int32, System.Private.CoreLib`. */
  parameterTypes: string[];
}

/** A decoded protocol-2 `WitRequest` (what a server sends as an event). */
export interface DecodedRequestV2 extends WitRequestV2 {
  parameterTypesByName: Array<{ type: string | null; assembly: string | null } | null>;
}

/** Reads an Object header; returns the member count, or null for a null object. */
function header(r: Reader, members: number, what: string): number | null {
  const count = r.u8();
  if (count === 0xff) return null;
  if (count > members) throw new ProtocolError(`${what}: header says ${count} members, the model has ${members}`);
  return count;
}

function readObject<T>(bytes: Uint8Array, what: string, members: number, read: (r: Reader, count: number) => T): T {
  const r = new Reader(bytes, what);
  const count = header(r, members, what);
  if (count === null) throw new ProtocolError(`${what}: null object`);
  const value = read(r, count);
  r.end();
  return value;
}

/** A list of elements of at least `min` bytes; a null list (-1) reads as empty. */
function list<T>(r: Reader, min: number, item: () => T): T[] {
  const n = r.arrayLength(min) ?? 0;
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(item());
  return out;
}

export function encodeRequestV2(q: WitRequestV2): Uint8Array {
  const w = new Writer();
  w.u8(7);
  w.string(q.token);
  w.string(q.methodName);
  w.i32(q.parameters.length);
  for (const p of q.parameters) w.byteArray(p);
  w.i32(q.parameterTypes.length);
  for (const t of q.parameterTypes) w.string(t);
  w.i32(0); // ParameterTypesByName
  w.i32(0); // GenericArguments
  w.i32(0); // GenericArgumentsByName
  return w.finish();
}

export function decodeRequestV2(bytes: Uint8Array): DecodedRequestV2 {
  return readObject(bytes, "WitRequest", 7, (r, n) => {
    const typeByName = () => {
      const count = header(r, 2, "ParameterType");
      if (count === null) return null;
      return { type: count > 0 ? r.string() : null, assembly: count > 1 ? r.string() : null };
    };
    const q: DecodedRequestV2 = {
      token: (n > 0 ? r.string() : null) ?? "",
      methodName: (n > 1 ? r.string() : null) ?? "",
      parameters: n > 2 ? list(r, 4, () => r.byteArray() ?? new Uint8Array()) : [],
      parameterTypes: n > 3 ? list(r, 4, () => r.string() ?? "") : [],
      parameterTypesByName: n > 4 ? list(r, 1, typeByName) : [],
    };
    if (n > 5) list(r, 4, () => r.string()); // GenericArguments
    if (n > 6) list(r, 1, typeByName); // GenericArgumentsByName
    return q;
  });
}

export function decodeResponseV2(bytes: Uint8Array): WitResponse {
  return readObject(bytes, "WitResponse", 4, (r, n) => ({
    status: n > 0 ? r.i32() : 0,
    data: n > 1 ? r.byteArray() : null,
    errorMessage: n > 2 ? r.string() : null,
    errorDetails: n > 3 ? r.string() : null,
  }));
}

export function encodeInitializationV2(publicKey: Uint8Array): Uint8Array {
  const w = new Writer();
  w.u8(1);
  w.byteArray(publicKey);
  return w.finish();
}

export function decodeInitializationReplyV2(bytes: Uint8Array): { symmetricKey: Uint8Array | null; vector: Uint8Array | null } {
  return readObject(bytes, "WitResponseInitialization", 2, (r, n) => ({
    symmetricKey: n > 0 ? r.byteArray() : null,
    vector: n > 1 ? r.byteArray() : null,
  }));
}

export function encodeAuthorizationV2(token: string): Uint8Array {
  const w = new Writer();
  w.u8(1);
  w.string(token);
  return w.finish();
}

export function decodeAuthorizationReplyV2(bytes: Uint8Array): { isAuthorized: boolean; message: string | null } {
  return readObject(bytes, "WitResponseAuthorization", 2, (r, n) => ({
    isAuthorized: n > 0 ? r.u8() !== 0 : false,
    message: n > 1 ? r.string() : null,
  }));
}

/**
 * The `System.Type` name a protocol-2 request carries for a parameter given as a stable
 * name (`System.Int32`, `System.Collections.Generic.List<System.String>`, `MyNs.Dto, MyAssembly`):
 * the assembly-qualified name without version parts, as MemoryPack writes it.
 */
export function typeNameV2(name: string): string {
  const { type, assembly } = parameterTypeByName(name);
  return assembly ? `${type}, ${assembly}` : type;
}

/**
 * The .NET type of an argument when the caller gave none: strings, booleans, integers
 * (as `System.Int32`), other numbers (`System.Double`), bigints (`System.Int64`) and
 * byte arrays. Anything else has no single .NET type and needs `parameterTypes`.
 */
export function inferTypeV2(value: unknown, method: string, index: number): string {
  const name =
    typeof value === "string"
      ? "System.String"
      : typeof value === "boolean"
        ? "System.Boolean"
        : typeof value === "bigint"
          ? "System.Int64"
          : typeof value === "number"
            ? Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff
              ? "System.Int32"
              : "System.Double"
            : value instanceof Uint8Array || value instanceof ArrayBuffer
              ? "System.Byte[]"
              : undefined;
  if (!name) {
    throw new TypeError(
      `protocol 2 needs the .NET type of argument ${index} of ${method}: pass \`parameterTypes\` (e.g. ["MyNs.Dto, MyAssembly"]) or use a generated client`,
    );
  }
  return `${name}, ${CORE_LIB}`;
}
