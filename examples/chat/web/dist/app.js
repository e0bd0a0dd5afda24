// ../../../clients/typescript/src/errors.ts
var WitRpcError = class extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
};
var UnauthorizedError = class extends WitRpcError {
  constructor(message, status = null) {
    super(message);
    this.status = status;
  }
};
var MethodNotFoundError = class extends WitRpcError {
  status = 400;
};
var BadRequestError = class extends WitRpcError {
  constructor(serverMessage, details) {
    super(details ? `${serverMessage}: ${details}` : serverMessage);
    this.serverMessage = serverMessage;
    this.details = details;
  }
  status = 400;
};
var RemoteError = class extends WitRpcError {
  constructor(status, serverMessage, details) {
    super(
      [serverMessage, details].filter((s) => !!s).join(": ") || `remote error (status ${status})`
    );
    this.status = status;
    this.serverMessage = serverMessage;
    this.details = details;
  }
};
var TimeoutError = class extends WitRpcError {
};
var ConnectionClosedError = class extends WitRpcError {
};
var ProtocolError = class extends WitRpcError {
};
var CommunicationStatus = {
  Unknown: 0,
  Ok: 200,
  BadRequest: 400,
  Timeout: 408,
  InternalServerError: 500,
  TransportError: 503,
  Unauthorized: 561
};
var METHOD_NOT_FOUND = "Method not found";
function responseError(response) {
  const { status, errorMessage, errorDetails } = response;
  switch (status) {
    case CommunicationStatus.Ok:
      return null;
    case CommunicationStatus.BadRequest: {
      const message = errorMessage ?? "bad request";
      if (message.startsWith(METHOD_NOT_FOUND)) return new MethodNotFoundError(message);
      return new BadRequestError(message, errorDetails);
    }
    case CommunicationStatus.Unauthorized:
      return new UnauthorizedError(errorMessage ?? "unauthorized", status);
    default:
      return new RemoteError(status, errorMessage, errorDetails);
  }
}

// ../../../clients/typescript/src/ids.ts
var OFFSET = 0xcbf29ce484222325n;
var PRIME = 0x100000001b3n;
var MASK = 0xffffffffffffffffn;
var CORE_LIB = "System.Private.CoreLib";
function fnv1a64Utf16(s) {
  let hash = OFFSET;
  for (let i = 0; i < s.length; i++) {
    hash = (hash ^ BigInt(s.charCodeAt(i))) * PRIME & MASK;
  }
  return BigInt.asIntN(64, hash);
}
function contractId(contract) {
  return fnv1a64Utf16(contract);
}
function methodId(contract, method, parameterTypes) {
  if (method === void 0) return fnv1a64Utf16(contract);
  const types = (parameterTypes ?? []).map((t) => splitAssembly(t).type);
  return fnv1a64Utf16(`${contract}#${method}(${types.join(",")})`);
}
function splitAssembly(name) {
  let depth = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === "<" || c === "[") depth++;
    else if (c === ">" || c === "]") depth--;
    else if (c === "," && depth === 0) return { type: name.slice(0, i).trim(), assembly: name.slice(i + 1).trim() };
  }
  return { type: name.trim() };
}
function splitArguments(s) {
  const out = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "<") depth++;
    else if (c === ">") depth--;
    else if (c === "," && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}
function defaultAssembly(stable, fallback) {
  return stable.startsWith("System.") ? CORE_LIB : fallback ?? "";
}
function clrFullName(stable, assembly) {
  if (stable.endsWith("[]")) return `${clrFullName(stable.slice(0, -2), assembly)}[]`;
  const open = stable.indexOf("<");
  if (open < 0 || !stable.endsWith(">")) return stable;
  const args = splitArguments(stable.slice(open + 1, -1));
  const inner = args.map((a) => `[${clrFullName(a, assembly)}, ${defaultAssembly(a, assembly)}]`).join(",");
  return `${stable.slice(0, open)}\`${args.length}[${inner}]`;
}
function parameterTypeByName(name) {
  const { type, assembly } = splitAssembly(name);
  return { type: clrFullName(type, assembly), assembly: assembly ?? defaultAssembly(type, void 0) };
}

// ../../../clients/typescript/src/memorypack.ts
var utf8 = new TextEncoder();
var utf8Strict = new TextDecoder("utf-8", { fatal: true });
var Writer = class {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  length = 0;
  reserve(n) {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) {
    this.reserve(1);
    this.buf[this.length++] = v;
  }
  i32(v) {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  i64(v) {
    this.reserve(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }
  bytes(b) {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  byteArray(b) {
    if (b === null) return this.i32(-1);
    this.i32(b.length);
    this.bytes(b);
  }
  /** A string as .NET writes it with UTF-8 string encoding: `~byteCount, utf16Length, bytes`. */
  string(s) {
    if (s === null) return this.i32(-1);
    if (s === "") return this.i32(0);
    const encoded = utf8.encode(s);
    this.i32(~encoded.length);
    this.i32(s.length);
    this.bytes(encoded);
  }
  /** VarInt exactly as .NET writes a non-negative length. */
  varintLength(n) {
    if (n <= 127) {
      this.u8(n);
    } else if (n <= 32767) {
      this.u8(132);
      this.reserve(2);
      this.view.setInt16(this.length, n, true);
      this.length += 2;
    } else {
      this.u8(130);
      this.i32(n);
    }
  }
  finish() {
    return this.buf.slice(0, this.length);
  }
};
var TolerantWriter = class {
  body = new Writer();
  ends = [];
  endMember() {
    this.ends.push(this.body.length);
  }
  finish() {
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
};
var Reader = class _Reader {
  constructor(buf, what) {
    this.buf = buf;
    this.what = what;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  pos = 0;
  view;
  get remaining() {
    return this.buf.length - this.pos;
  }
  take(n) {
    if (n < 0 || n > this.remaining) {
      throw new ProtocolError(`${this.what}: needs ${n} bytes, ${this.remaining} left`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8() {
    return this.take(1)[0];
  }
  i32() {
    this.take(4);
    return this.view.getInt32(this.pos - 4, true);
  }
  i64() {
    this.take(8);
    return this.view.getBigInt64(this.pos - 8, true);
  }
  byteArray() {
    const n = this.i32();
    if (n === -1) return null;
    if (n < 0) throw new ProtocolError(`${this.what}: invalid length ${n}`);
    return this.take(n);
  }
  string() {
    const head = this.i32();
    if (head === -1) return null;
    if (head === 0) return "";
    if (head < 0) {
      const byteCount = ~head;
      this.i32();
      try {
        return utf8Strict.decode(this.take(byteCount));
      } catch {
        throw new ProtocolError(`${this.what}: invalid UTF-8`);
      }
    }
    const raw = this.take(head * 2);
    let s = "";
    for (let i = 0; i < raw.length; i += 2) s += String.fromCharCode(raw[i] | raw[i + 1] << 8);
    return s;
  }
  /** An array count, checked against the bytes that remain. */
  arrayLength(minElementSize) {
    const n = this.i32();
    if (n === -1) return null;
    if (n < 0 || n * minElementSize > this.remaining) throw new ProtocolError(`${this.what}: invalid array length ${n}`);
    return n;
  }
  varint() {
    const code = this.u8() << 24 >> 24;
    if (code >= -120) return code;
    switch (code) {
      case -121:
        return this.u8();
      case -122:
        return this.u8() << 24 >> 24;
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
  sub(n) {
    return new _Reader(this.take(n), this.what);
  }
  guid() {
    return this.take(16);
  }
  end() {
    if (this.remaining !== 0) throw new ProtocolError(`${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
};
function readTolerant(r, known) {
  const count = r.u8();
  if (count === 255) return null;
  if (count > 249 || count > r.remaining) throw new ProtocolError("invalid object header");
  const lengths = [];
  for (let i = 0; i < count; i++) {
    const len = r.varint();
    if (len < 0) throw new ProtocolError("invalid member length");
    lengths.push(len);
  }
  const members = [];
  lengths.forEach((len, i) => {
    const sub = r.sub(len);
    if (i < known) members.push(len === 0 ? null : sub);
  });
  while (members.length < known) members.push(null);
  return members;
}
function replayBatchEntries(batch) {
  const fail = (why) => {
    throw new ProtocolError(`unreadable replay batch: ${why}`);
  };
  if (batch.length < 5) fail("shorter than its header");
  if (batch[0] !== 1) fail(`unknown version ${batch[0]}`);
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const count = view.getUint32(1, true);
  let at = 5;
  const entries = [];
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
function encodeEnvelope(e) {
  const w = new Writer();
  w.u8(3);
  w.bytes(e.id);
  w.i32(e.type);
  w.byteArray(e.data);
  return w.finish();
}
function decodeEnvelope(bytes) {
  const r = new Reader(bytes, "WitMessage");
  if (r.u8() !== 3) throw new ProtocolError("not a WitMessage (its header byte is not 03)");
  const id = r.guid().slice();
  const type = r.i32();
  const data = r.byteArray();
  r.end();
  return { id, type, data };
}
function encodeRequest(q) {
  const t = new TolerantWriter();
  t.body.string(q.token);
  t.endMember();
  t.body.string(q.methodName);
  t.endMember();
  t.body.i32(q.parameters.length);
  for (const p of q.parameters) t.body.byteArray(p);
  t.endMember();
  t.body.i32(0);
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
  t.body.i32(0);
  t.endMember();
  t.body.i32(0);
  t.endMember();
  t.body.bytes(q.invocationId);
  t.endMember();
  t.body.i64(q.contractId);
  t.endMember();
  t.body.i64(q.methodId);
  t.endMember();
  return t.finish();
}
function decodeEvent(bytes) {
  const r = new Reader(bytes, "WitRequest");
  const m = readTolerant(r, 11);
  if (!m) throw new ProtocolError("null event payload");
  const name = m[1]?.string() ?? "";
  const parameters = [];
  const p = m[2];
  if (p) {
    const n = p.arrayLength(4) ?? 0;
    for (let i = 0; i < n; i++) parameters.push(p.byteArray() ?? new Uint8Array());
  }
  const contractId2 = m[8] ? m[8].i64() : 0n;
  return { name, contractId: contractId2, parameters, position: lenient(m[10], (r2) => r2.string()) };
}
function decodeResponse(bytes) {
  const r = new Reader(bytes, "WitResponse");
  const m = readTolerant(r, 4);
  if (!m) throw new ProtocolError("null response");
  return {
    status: m[0] ? m[0].i32() : 0,
    data: m[1] ? m[1].byteArray() : null,
    errorMessage: m[2] ? m[2].string() : null,
    errorDetails: m[3] ? m[3].string() : null
  };
}
function encodeInitialization(publicKey, extensions) {
  const t = new TolerantWriter();
  t.body.byteArray(publicKey);
  t.endMember();
  t.body.i32(3);
  t.endMember();
  if (extensions !== void 0) {
    t.body.string(extensions);
    t.endMember();
  }
  return t.finish();
}
function lenient(member, read) {
  if (!member) return null;
  try {
    const value = read(member);
    return member.remaining === 0 ? value : null;
  } catch {
    return null;
  }
}
function decodeInitializationReply(bytes) {
  const r = new Reader(bytes, "WitResponseInitialization");
  const m = readTolerant(r, 5);
  if (!m) throw new ProtocolError("null initialization reply");
  return {
    symmetricKey: m[0] ? m[0].byteArray() : null,
    vector: m[1] ? m[1].byteArray() : null,
    protocolVersion: m[2] ? m[2].i32() : 0,
    errorMessage: m[3] ? m[3].string() : null,
    extensions: lenient(m[4], (r2) => r2.string())
  };
}
function encodeAuthorization(token, resume) {
  const t = new TolerantWriter();
  t.body.string(token);
  t.endMember();
  if (resume !== void 0) {
    t.body.string(resume);
    t.endMember();
  }
  return t.finish();
}
function decodeAuthorizationReply(bytes) {
  const r = new Reader(bytes, "WitResponseAuthorization");
  const m = readTolerant(r, 4);
  if (!m) throw new ProtocolError("null authorization reply");
  const expires = lenient(m[2], (r2) => Number(r2.i64()));
  return {
    isAuthorized: m[0] ? m[0].u8() !== 0 : false,
    message: m[1] ? m[1].string() : null,
    expiresAtUnixMs: expires && expires > 0 ? expires : null,
    resumed: lenient(m[3], (r2) => r2.string())
  };
}

// ../../../clients/typescript/src/crypto.ts
var subtle = () => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new ProtocolError("encryption needs WebCrypto (a secure context in browsers: https:// or localhost)");
  return s;
};
var bs = (u) => u;
var plainCipher = {
  seal: async (p) => p,
  open: async (f) => f
};
function base64UrlToBase64(s) {
  const b = s.replace(/-/g, "+").replace(/_/g, "/");
  return b + "=".repeat((4 - b.length % 4) % 4);
}
async function generateRsaKey(escapePlus = false) {
  const pair = await subtle().generateKey(
    { name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["encrypt", "decrypt"]
  );
  const jwk = await subtle().exportKey("jwk", pair.publicKey);
  if (!jwk.n || !jwk.e) throw new ProtocolError("cannot export the RSA public key");
  let json2 = JSON.stringify({ mod: base64UrlToBase64(jwk.n), exp: base64UrlToBase64(jwk.e) });
  if (escapePlus) json2 = json2.replace(/\+/g, "\\u002B");
  return { privateKey: pair.privateKey, publicJson: new TextEncoder().encode(json2) };
}
async function rsaDecrypt(key, data) {
  try {
    return new Uint8Array(await subtle().decrypt({ name: "RSA-OAEP" }, key.privateKey, bs(data)));
  } catch {
    throw new ProtocolError("cannot decrypt the server's key reply (is encryption enabled on the server?)");
  }
}
async function deriveDirectionKey(master, salt, info, extractable = false) {
  const ikm = await subtle().importKey("raw", bs(master), "HKDF", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: bs(salt), info: bs(new TextEncoder().encode(info)) },
    ikm,
    { name: "AES-GCM", length: 256 },
    extractable,
    ["encrypt", "decrypt"]
  );
}
function nonce(counter) {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(0, counter, true);
  return n;
}
var AAD_C2S = new Uint8Array([3, 1]);
var AAD_S2C = new Uint8Array([3, 2]);
async function sealFrame(key, aad, counter, plain) {
  const sealed = new Uint8Array(
    await subtle().encrypt({ name: "AES-GCM", iv: bs(nonce(counter)), additionalData: bs(aad), tagLength: 128 }, key, bs(plain))
  );
  const frame = new Uint8Array(24 + plain.length);
  new DataView(frame.buffer).setBigUint64(0, counter, true);
  frame.set(sealed.subarray(plain.length), 8);
  frame.set(sealed.subarray(0, plain.length), 24);
  return frame;
}
function frameCounter(frame) {
  if (frame.length < 24) throw new ProtocolError("encrypted frame too short");
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigUint64(0, true);
}
async function openFrame(key, aad, counter, frame) {
  if (frame.length < 24) throw new ProtocolError("encrypted frame too short");
  const joined = new Uint8Array(frame.length - 8);
  joined.set(frame.subarray(24), 0);
  joined.set(frame.subarray(8, 24), frame.length - 24);
  try {
    const plain = await subtle().decrypt(
      { name: "AES-GCM", iv: bs(nonce(counter)), additionalData: bs(aad), tagLength: 128 },
      key,
      bs(joined)
    );
    return new Uint8Array(plain);
  } catch {
    throw new ProtocolError("encrypted frame failed authentication");
  }
}
async function clientCipher(master, salt) {
  if (master.length !== 32 || salt.length !== 16) {
    throw new ProtocolError("the server sent no encryption keys; it does not use encryption, so connect without it");
  }
  const send2 = await deriveDirectionKey(master, salt, "wit3c2s");
  const receive = await deriveDirectionKey(master, salt, "wit3s2c");
  let sent = 0n;
  let received2 = 0n;
  return {
    seal(plain) {
      return sealFrame(send2, AAD_C2S, sent++, plain);
    },
    async open(frame) {
      const counter = frameCounter(frame);
      if (counter !== received2) throw new ProtocolError(`encrypted frame out of order (counter ${counter}, expected ${received2})`);
      const plain = await openFrame(receive, AAD_S2C, counter, frame);
      received2++;
      return plain;
    }
  };
}
async function cbcCipher(key, iv) {
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
    }
  };
}

// ../../../clients/typescript/src/v2.ts
function header(r, members, what) {
  const count = r.u8();
  if (count === 255) return null;
  if (count > members) throw new ProtocolError(`${what}: header says ${count} members, the model has ${members}`);
  return count;
}
function readObject(bytes, what, members, read) {
  const r = new Reader(bytes, what);
  const count = header(r, members, what);
  if (count === null) throw new ProtocolError(`${what}: null object`);
  const value = read(r, count);
  r.end();
  return value;
}
function list(r, min, item) {
  const n = r.arrayLength(min) ?? 0;
  const out = [];
  for (let i = 0; i < n; i++) out.push(item());
  return out;
}
function encodeRequestV2(q) {
  const w = new Writer();
  w.u8(7);
  w.string(q.token);
  w.string(q.methodName);
  w.i32(q.parameters.length);
  for (const p of q.parameters) w.byteArray(p);
  w.i32(q.parameterTypes.length);
  for (const t of q.parameterTypes) w.string(t);
  w.i32(0);
  w.i32(0);
  w.i32(0);
  return w.finish();
}
function decodeRequestV2(bytes) {
  return readObject(bytes, "WitRequest", 7, (r, n) => {
    const typeByName = () => {
      const count = header(r, 2, "ParameterType");
      if (count === null) return null;
      return { type: count > 0 ? r.string() : null, assembly: count > 1 ? r.string() : null };
    };
    const q = {
      token: (n > 0 ? r.string() : null) ?? "",
      methodName: (n > 1 ? r.string() : null) ?? "",
      parameters: n > 2 ? list(r, 4, () => r.byteArray() ?? new Uint8Array()) : [],
      parameterTypes: n > 3 ? list(r, 4, () => r.string() ?? "") : [],
      parameterTypesByName: n > 4 ? list(r, 1, typeByName) : []
    };
    if (n > 5) list(r, 4, () => r.string());
    if (n > 6) list(r, 1, typeByName);
    return q;
  });
}
function decodeResponseV2(bytes) {
  return readObject(bytes, "WitResponse", 4, (r, n) => ({
    status: n > 0 ? r.i32() : 0,
    data: n > 1 ? r.byteArray() : null,
    errorMessage: n > 2 ? r.string() : null,
    errorDetails: n > 3 ? r.string() : null
  }));
}
function encodeInitializationV2(publicKey) {
  const w = new Writer();
  w.u8(1);
  w.byteArray(publicKey);
  return w.finish();
}
function decodeInitializationReplyV2(bytes) {
  return readObject(bytes, "WitResponseInitialization", 2, (r, n) => ({
    symmetricKey: n > 0 ? r.byteArray() : null,
    vector: n > 1 ? r.byteArray() : null
  }));
}
function encodeAuthorizationV2(token) {
  const w = new Writer();
  w.u8(1);
  w.string(token);
  return w.finish();
}
function decodeAuthorizationReplyV2(bytes) {
  return readObject(bytes, "WitResponseAuthorization", 2, (r, n) => ({
    isAuthorized: n > 0 ? r.u8() !== 0 : false,
    message: n > 1 ? r.string() : null
  }));
}
function typeNameV2(name) {
  const { type, assembly } = parameterTypeByName(name);
  return assembly ? `${type}, ${assembly}` : type;
}
function inferTypeV2(value, method, index) {
  const name = typeof value === "string" ? "System.String" : typeof value === "boolean" ? "System.Boolean" : typeof value === "bigint" ? "System.Int64" : typeof value === "number" ? Number.isInteger(value) && value >= -2147483648 && value <= 2147483647 ? "System.Int32" : "System.Double" : value instanceof Uint8Array || value instanceof ArrayBuffer ? "System.Byte[]" : void 0;
  if (!name) {
    throw new TypeError(
      `protocol 2 needs the .NET type of argument ${index} of ${method}: pass \`parameterTypes\` (e.g. ["MyNs.Dto, MyAssembly"]) or use a generated client`
    );
  }
  return `${name}, ${CORE_LIB}`;
}

// ../../../clients/typescript/src/msgpack.ts
var utf82 = new TextEncoder();
var utf8Decoder = new TextDecoder("utf-8", { fatal: true });
var MAX_DEPTH = 128;
var MAX_UNCOMPRESSED = 64 * 1024 * 1024;
var EXT_LZ4_BLOCK = 99;
var Out = class {
  buf = new Uint8Array(64);
  view = new DataView(this.buf.buffer);
  len = 0;
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) {
    this.reserve(1);
    this.buf[this.len++] = v;
  }
  bytes(b) {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  header(marker, size, n) {
    this.u8(marker);
    this.reserve(size);
    if (size === 1) this.view.setUint8(this.len, n);
    else if (size === 2) this.view.setUint16(this.len, n);
    else this.view.setUint32(this.len, n);
    this.len += size;
  }
};
function encodeInto(out, value, depth) {
  if (depth > MAX_DEPTH) throw new ProtocolError("value nests too deeply for MessagePack");
  if (value === null || value === void 0) return out.u8(192);
  if (value === true) return out.u8(195);
  if (value === false) return out.u8(194);
  if (typeof value === "number") return encodeNumber(out, value);
  if (typeof value === "bigint") {
    out.u8(value < 0n ? 211 : 207);
    out.reserve(8);
    if (value < 0n) out.view.setBigInt64(out.len, value);
    else out.view.setBigUint64(out.len, value);
    out.len += 8;
    return;
  }
  if (typeof value === "string") {
    const b = utf82.encode(value);
    if (b.length < 32) out.u8(160 | b.length);
    else if (b.length < 256) out.header(217, 1, b.length);
    else if (b.length < 65536) out.header(218, 2, b.length);
    else out.header(219, 4, b.length);
    return out.bytes(b);
  }
  if (value instanceof ArrayBuffer) return encodeInto(out, new Uint8Array(value), depth);
  if (value instanceof Uint8Array) {
    if (value.length < 256) out.header(196, 1, value.length);
    else if (value.length < 65536) out.header(197, 2, value.length);
    else out.header(198, 4, value.length);
    return out.bytes(value);
  }
  if (Array.isArray(value)) {
    if (value.length < 16) out.u8(144 | value.length);
    else if (value.length < 65536) out.header(220, 2, value.length);
    else out.header(221, 4, value.length);
    for (const v of value) encodeInto(out, v, depth + 1);
    return;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== void 0);
    if (entries.length < 16) out.u8(128 | entries.length);
    else if (entries.length < 65536) out.header(222, 2, entries.length);
    else out.header(223, 4, entries.length);
    for (const [k, v] of entries) {
      encodeInto(out, k, depth + 1);
      encodeInto(out, v, depth + 1);
    }
    return;
  }
  throw new ProtocolError(`cannot encode a ${typeof value} as MessagePack`);
}
function encodeNumber(out, n) {
  if (Number.isInteger(n) && Number.isSafeInteger(n)) {
    if (n >= 0) {
      if (n < 128) return out.u8(n);
      if (n < 256) return out.header(204, 1, n);
      if (n < 65536) return out.header(205, 2, n);
      if (n < 4294967296) return out.header(206, 4, n);
      out.u8(207);
      out.reserve(8);
      out.view.setBigUint64(out.len, BigInt(n));
      out.len += 8;
      return;
    }
    if (n >= -32) return out.u8(n & 255);
    if (n >= -128) {
      out.u8(208);
      out.reserve(1);
      out.view.setInt8(out.len++, n);
      return;
    }
    if (n >= -32768) {
      out.u8(209);
      out.reserve(2);
      out.view.setInt16(out.len, n);
      out.len += 2;
      return;
    }
    if (n >= -2147483648) {
      out.u8(210);
      out.reserve(4);
      out.view.setInt32(out.len, n);
      out.len += 4;
      return;
    }
    out.u8(211);
    out.reserve(8);
    out.view.setBigInt64(out.len, BigInt(n));
    out.len += 8;
    return;
  }
  out.u8(203);
  out.reserve(8);
  out.view.setFloat64(out.len, n);
  out.len += 8;
}
function encode(value) {
  const out = new Out();
  encodeInto(out, value, 0);
  return out.buf.slice(0, out.len);
}
var In = class {
  constructor(buf) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  pos = 0;
  view;
  need(n) {
    if (n > this.buf.length - this.pos) throw new ProtocolError("MessagePack value is truncated");
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8() {
    return this.buf[this.need(1)];
  }
  u16() {
    return this.view.getUint16(this.need(2));
  }
  u32() {
    return this.view.getUint32(this.need(4));
  }
  take(n) {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
};
function int64(v) {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
function decodeFrom(input, depth) {
  if (depth > MAX_DEPTH) throw new ProtocolError("MessagePack value nests too deeply");
  const m = input.u8();
  if (m < 128) return m;
  if (m >= 224) return m - 256;
  if ((m & 240) === 128) return map(input, m & 15, depth);
  if ((m & 240) === 144) return array(input, m & 15, depth);
  if ((m & 224) === 160) return str(input, m & 31);
  switch (m) {
    case 192:
      return null;
    case 194:
      return false;
    case 195:
      return true;
    case 196:
      return input.take(input.u8()).slice();
    case 197:
      return input.take(input.u16()).slice();
    case 198:
      return input.take(input.u32()).slice();
    case 202:
      return input.view.getFloat32(input.need(4));
    case 203:
      return input.view.getFloat64(input.need(8));
    case 204:
      return input.u8();
    case 205:
      return input.u16();
    case 206:
      return input.u32();
    case 207:
      return int64(input.view.getBigUint64(input.need(8)));
    case 208:
      return input.view.getInt8(input.need(1));
    case 209:
      return input.view.getInt16(input.need(2));
    case 210:
      return input.view.getInt32(input.need(4));
    case 211:
      return int64(input.view.getBigInt64(input.need(8)));
    case 217:
      return str(input, input.u8());
    case 218:
      return str(input, input.u16());
    case 219:
      return str(input, input.u32());
    case 220:
      return array(input, input.u16(), depth);
    case 221:
      return array(input, input.u32(), depth);
    case 222:
      return map(input, input.u16(), depth);
    case 223:
      return map(input, input.u32(), depth);
    case 212:
    case 213:
    case 214:
    case 215:
    case 216: {
      const len = 1 << m - 212;
      const type = input.view.getInt8(input.need(1));
      return { extType: type, data: input.take(len).slice() };
    }
    case 199:
    case 200:
    case 201: {
      const len = m === 199 ? input.u8() : m === 200 ? input.u16() : input.u32();
      const type = input.view.getInt8(input.need(1));
      return { extType: type, data: input.take(len).slice() };
    }
    default:
      throw new ProtocolError(`unknown MessagePack marker 0x${m.toString(16)}`);
  }
}
function str(input, n) {
  try {
    return utf8Decoder.decode(input.take(n));
  } catch {
    throw new ProtocolError("MessagePack string is not valid UTF-8");
  }
}
function array(input, n, depth) {
  if (n > input.buf.length - input.pos) throw new ProtocolError("MessagePack array is truncated");
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeFrom(input, depth + 1);
  return out;
}
function map(input, n, depth) {
  if (n * 2 > input.buf.length - input.pos) throw new ProtocolError("MessagePack map is truncated");
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = decodeFrom(input, depth + 1);
    out[String(key)] = decodeFrom(input, depth + 1);
  }
  return out;
}
function decode(bytes) {
  const plain = unwrapLz4(bytes);
  const input = new In(plain);
  const value = decodeFrom(input, 0);
  if (input.pos !== plain.length) throw new ProtocolError("bytes after the MessagePack value");
  return value;
}
function unwrapLz4(bytes) {
  const m = bytes[0];
  if (m !== 199 && m !== 200 && m !== 201) return bytes;
  const input = new In(bytes);
  input.u8();
  const len = m === 199 ? input.u8() : m === 200 ? input.u16() : input.u32();
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
function lz4DecompressBlock(block, size) {
  const out = new Uint8Array(size);
  let ip = 0;
  let op = 0;
  const fail = (why) => {
    throw new ProtocolError(`invalid LZ4 block: ${why}`);
  };
  while (ip < block.length) {
    const token = block[ip++];
    let literals = token >> 4;
    if (literals === 15) {
      let b;
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
    if (ip >= block.length) break;
    if (ip + 2 > block.length) fail("truncated offset");
    const offset = block[ip] | block[ip + 1] << 8;
    ip += 2;
    if (offset === 0 || offset > op) fail("match offset out of range");
    let matchLength = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b;
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

// ../../../clients/typescript/src/serializer.ts
var utf83 = new TextEncoder();
var utf8Decoder2 = new TextDecoder();
var EMPTY = new Uint8Array(0);
function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 32768) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 32768));
  }
  return btoa(binary);
}
var BIGINT_MARK = "\0witrpc-bigint:";
var BIGINT_MARKED = /"\\u0000witrpc-bigint:(-?\d+)"/g;
function jsonReplacer(key, value) {
  const raw = this[key];
  if (raw instanceof Uint8Array) return toBase64(raw);
  if (raw instanceof ArrayBuffer) return toBase64(new Uint8Array(raw));
  if (typeof value === "bigint") return BIGINT_MARK + value.toString();
  return value;
}
var json = {
  encode(value) {
    if (value === null || value === void 0) return EMPTY;
    const text = JSON.stringify(value, jsonReplacer);
    if (text === void 0) throw new TypeError(`cannot encode a ${typeof value} as JSON`);
    return utf83.encode(text.includes("witrpc-bigint:") ? text.replace(BIGINT_MARKED, "$1") : text);
  },
  decode(bytes) {
    if (bytes.length === 0) return null;
    try {
      return JSON.parse(utf8Decoder2.decode(bytes));
    } catch (e) {
      throw new ProtocolError(`the server sent invalid JSON: ${e.message}`);
    }
  }
};
var messagePack = {
  encode(value) {
    if (value === null || value === void 0) return EMPTY;
    return encode(value);
  },
  decode(bytes) {
    if (bytes.length === 0) return null;
    return decode(bytes);
  }
};
function serializerFor(format) {
  if (format === "json") return json;
  if (format === "msgpack") return messagePack;
  throw new TypeError(`unknown format ${JSON.stringify(format)}; use "json" or "msgpack"`);
}

// ../../../clients/typescript/src/resume.ts
var MAX_STREAMS = 256;
var MAX_STREAM_NAME = 200;
var GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
var OFFSET2 = /^[0-9]{1,20}$/;
function parseOffset(text) {
  return text !== void 0 && OFFSET2.test(text) ? BigInt(text) : null;
}
var ResumeState = class {
  /** The id the server gave the last connection (lower case). */
  lastId = null;
  /** Last position per stream. */
  streams = /* @__PURE__ */ new Map();
  /** The streams each event name arrived on. */
  byEvent = /* @__PURE__ */ new Map();
  /** The streams named in the last resume request. */
  asked = [];
  /** A connection was established before (the next one is a reconnect). */
  connectedBefore = false;
  /** The `Resume` member for the next connection: null before a connection told us its id. */
  request() {
    const previous = this.lastId;
    if (previous === null) return null;
    const own = `c:${previous}`;
    for (const stream of [...this.streams.keys()]) {
      if (stream.startsWith("c:") && stream !== own) this.streams.delete(stream);
    }
    let text = previous;
    this.asked = [];
    for (const [stream, { epoch, offset }] of this.streams) {
      text += `
${stream}	${epoch}	${offset}`;
      this.asked.push(stream);
    }
    return text;
  }
  /** Records a positioned event of `event`. */
  observe(event, position) {
    const parts = position.split("	");
    const offset = parseOffset(parts[2]);
    if (parts.length !== 3 || offset === null) return { kind: "next" };
    const [stream, epoch] = parts;
    if (stream.length > MAX_STREAM_NAME) return { kind: "next" };
    const seen = this.byEvent.get(event);
    if (seen) {
      if (!seen.has(stream) && seen.size < MAX_STREAMS) seen.add(stream);
    } else if (this.byEvent.size < MAX_STREAMS) {
      this.byEvent.set(event, /* @__PURE__ */ new Set([stream]));
    }
    const known = this.streams.get(stream);
    if (known && known.epoch === epoch) {
      if (offset <= known.offset) return { kind: "duplicate" };
      if (offset > known.offset + 1n) return { kind: "gap", stream };
      known.offset = offset;
    } else if (known || this.streams.size < MAX_STREAMS) {
      this.streams.set(stream, { epoch, offset });
    }
    return { kind: "next" };
  }
  /**
   * Takes in the server's `Resumed` answer of a new connection (null: the server does
   * not accept `resume`).
   */
  connected(answer) {
    const outcome = { reconnect: this.connectedBefore, resumed: false, lost: /* @__PURE__ */ new Set(), lostUnknown: false };
    this.connectedBefore = true;
    const asked = this.asked;
    this.asked = [];
    if (answer === null) {
      this.lastId = null;
      return outcome;
    }
    outcome.resumed = true;
    const lines = answer.split("\n");
    const first = lines.shift() ?? "";
    this.lastId = GUID.test(first) ? first.toLowerCase() : null;
    const answered = /* @__PURE__ */ new Set();
    for (const line of lines) {
      const parts = line.split("	");
      const offset = parseOffset(parts[2]);
      if (parts.length !== 4 || offset === null) continue;
      const [stream, epoch, , flag] = parts;
      answered.add(stream);
      if (flag === "1") continue;
      if (this.streams.has(stream) || this.streams.size < MAX_STREAMS) this.streams.set(stream, { epoch, offset });
      if (![...this.byEvent.values()].some((s) => s.has(stream))) outcome.lostUnknown = true;
      outcome.lost.add(stream);
    }
    for (const stream of asked) {
      if (answered.has(stream)) continue;
      this.streams.delete(stream);
      outcome.lost.add(stream);
    }
    return outcome;
  }
  /**
   * Whether every missed event of `event` follows after `outcome`: null when the server
   * does not resume or the event never arrived with a position (nothing to vouch for).
   */
  recovered(outcome, event) {
    const streams = outcome.resumed ? this.byEvent.get(event) : void 0;
    if (!streams) return null;
    if (outcome.lostUnknown) return false;
    for (const s of streams) if (outcome.lost.has(s)) return false;
    return true;
  }
};

// ../../../clients/typescript/src/client.ts
function hex(id) {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}
function randomId() {
  return globalThis.crypto.getRandomValues(new Uint8Array(16));
}
function reportListenerError(error) {
  const report = globalThis.reportError;
  if (typeof report === "function") report(error);
  else console.error("witrpc-client: an event listener threw", error);
}
function abortReason(signal) {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException("the call was aborted", "AbortError");
}
var ANNOUNCED_EXTENSIONS = "witrpc/1 token-refresh resume replay-batch";
function accepts(extensions, feature) {
  const tokens = (extensions ?? "").split(/\s+/).filter((t) => t.length > 0);
  return tokens[0] === "witrpc/1" && tokens.includes(feature);
}
function refreshDelayMs(remainingMs) {
  const remaining = Math.max(0, remainingMs);
  const margin = Math.max(remaining / 5, Math.min(5e3, remaining / 2));
  return Math.max(Math.min(100, remaining), remaining - margin);
}
var SERVER_SPEAKS_2 = "the server speaks protocol 2 (WitRPC 2.x)";
function eventV2(data) {
  const q = decodeRequestV2(data);
  return { name: q.methodName, parameters: q.parameters };
}
async function initializeV2(reply, rsa) {
  if (!reply) {
    throw new ProtocolError(
      "the server refused the protocol-2 initialization (empty reply): its encryption setting may differ from `encryption`, or it does not accept protocol 2"
    );
  }
  let plain = reply;
  if (rsa) {
    try {
      plain = await rsaDecrypt(rsa, reply);
    } catch {
    }
  }
  if (plain[0] !== 2) {
    let refusal = null;
    try {
      refusal = decodeInitializationReply(plain).errorMessage;
    } catch {
      throw new ProtocolError("the server's initialization reply is neither protocol 2 nor protocol 3");
    }
    throw new ProtocolError(`the server speaks protocol 3 (WitRPC 3.x): connect with \`protocol: 3\`${refusal ? ` (${refusal})` : ""}`);
  }
  const init = decodeInitializationReplyV2(plain);
  const key = init.symmetricKey ?? new Uint8Array();
  const vector = init.vector ?? new Uint8Array();
  if (rsa) {
    if (plain === reply) throw new ProtocolError("the server does not use encryption: connect without `encryption: true`");
    return cbcCipher(key, vector);
  }
  if (key.length > 1 || vector.length > 1) {
    throw new ProtocolError("the server requires encryption: connect with `encryption: true`");
  }
  return plainCipher;
}
var WitRpcClient = class _WitRpcClient {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.serializer = serializerFor(options.format ?? "json");
    const protocol = options.protocol ?? 3;
    if (protocol !== 2 && protocol !== 3) throw new TypeError(`unknown protocol ${JSON.stringify(protocol)}; use 2 or 3`);
    this.protocol = protocol;
    const ctor = options.WebSocket ?? globalThis.WebSocket;
    if (typeof ctor !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as `WebSocket` (e.g. from the `ws` package)");
    }
    this.SocketImpl = ctor;
  }
  socket;
  cipher = plainCipher;
  pending = /* @__PURE__ */ new Map();
  listeners = /* @__PURE__ */ new Map();
  stateListeners = /* @__PURE__ */ new Set();
  /** Ends each open `events()` iterator; run when the client closes for good. */
  iteratorEnds = /* @__PURE__ */ new Set();
  serializer;
  SocketImpl;
  sendChain = Promise.resolve();
  receiveChain = Promise.resolve();
  rsaKey;
  currentToken = "";
  /** The server accepted our `token-refresh` extension on the current connection. */
  tokenRefresh = false;
  refreshTimer;
  /** The server accepted our `resume` extension on the current connection. */
  resume = false;
  /** The server accepted `replay-batch`: a resume's replay may come packed. */
  replayBatch = false;
  /**
   * The last handshake found our extensions: the next one (protocol 3, unencrypted)
   * sends its Authorization right behind the Initialization, one round trip instead of
   * two. Every witrpc and .NET 3.x server reads a connection's messages in order.
   */
  pipeline = false;
  /** Positions per stream; outlives the connections. */
  resumeState = new ResumeState();
  resumeListeners = /* @__PURE__ */ new Map();
  /** A connection on which a gap was seen: nothing more of it is delivered. */
  gapped;
  stateValue = "connecting";
  closedByUser = false;
  openWaiters = [];
  protocol;
  /** Connects, runs the handshake (encryption, token) and resolves when calls can be made. */
  static async connect(url, options = {}) {
    const client2 = new _WitRpcClient(url, options);
    try {
      await client2.attempt();
    } catch (error) {
      client2.closedByUser = true;
      client2.setState("closed", error);
      throw error;
    }
    client2.setState("open");
    return client2;
  }
  /** The wire protocol this client speaks (the `protocol` option). */
  get protocolVersion() {
    return this.protocol;
  }
  /** Where the connection is. */
  get state() {
    return this.stateValue;
  }
  /** Calls `listener` whenever the state changes; returns the unsubscribe function. */
  onStateChange(listener) {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }
  /** Calls `listener` with the arguments of every `event`; returns the unsubscribe function. */
  on(event, listener) {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }
  /**
   * Calls `listener` after every reconnect with whether the events of `event` missed
   * meanwhile follow ({@link ResumeInfo}); it runs before any event of the new
   * connection is delivered. Against a server that keeps history of `event` (our
   * `resume` extension) the client resumes by itself: it remembers the last position of
   * each stream, asks for what followed, drops duplicates, and drops the connection (to
   * resume) when a running stream skips an event. Returns the unsubscribe function.
   *
   * ```ts
   * client.onResumed("PriceChanged", ({ recovered }) => {
   *   if (recovered !== true) void reloadPrices(); // the gap is not replayed
   * });
   * ```
   */
  onResumed(event, listener) {
    let set = this.resumeListeners.get(event);
    if (!set) this.resumeListeners.set(event, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }
  /** Whether the server accepted our `resume` extension on the current connection. */
  get resumeAccepted() {
    return this.resume;
  }
  /** The arguments of every `event`, in arrival order, until `signal` aborts or the loop breaks. */
  events(event, options = {}) {
    const queue = [];
    let wake;
    let done = false;
    const finish = () => {
      done = true;
      this.iteratorEnds.delete(finish);
      off();
      options.signal?.removeEventListener("abort", finish);
      wake?.({ value: void 0, done: true });
      wake = void 0;
    };
    const off = this.on(event, (...args) => {
      if (wake) {
        const w = wake;
        wake = void 0;
        w({ value: args, done: false });
      } else {
        queue.push(args);
      }
    });
    this.iteratorEnds.add(finish);
    if (options.signal?.aborted || this.stateValue === "closed") finish();
    options.signal?.addEventListener("abort", finish);
    const iterator = {
      next: () => {
        const value = queue.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (done) return Promise.resolve({ value: void 0, done: true });
        return new Promise((resolve) => wake = resolve);
      },
      return: () => {
        finish();
        return Promise.resolve({ value: void 0, done: true });
      },
      [Symbol.asyncIterator]: () => iterator
    };
    return iterator;
  }
  /**
   * Calls `method` with `args`; resolves with the decoded result (`null` for void).
   * Rejects with a {@link WitRpcError} subclass, or the signal's reason when aborted.
   */
  async call(method, args, options = {}) {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 3e4;
    if (options.signal?.aborted) throw abortReason(options.signal);
    if (this.stateValue === "closed") throw new ConnectionClosedError("the client is closed");
    const parameters = args.map((a) => this.serializer.encode(a));
    const types = options.parameterTypes ?? [];
    const contract = options.contract;
    const typesV2 = this.protocol === 2 ? options.parameterTypes?.map(typeNameV2) ?? args.map((a, i) => inferTypeV2(a, method, i)) : [];
    const id = randomId();
    const key = hex(id);
    return new Promise((resolve, reject) => {
      let timer;
      const cleanup = () => {
        this.pending.delete(key);
        if (timer !== void 0) clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        cleanup();
        reject(abortReason(options.signal));
      };
      options.signal?.addEventListener("abort", onAbort);
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          cleanup();
          reject(new TimeoutError(`${method} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(key, {
        resolve: (data) => {
          cleanup();
          try {
            resolve(this.readResponse(method, data));
          } catch (e) {
            reject(e);
          }
        },
        reject: (e) => {
          cleanup();
          reject(e);
        }
      });
      void this.whenOpen().then(() => {
        const entry = this.pending.get(key);
        if (!entry) return;
        entry.socket = this.socket;
        const payload = this.protocol === 2 ? encodeRequestV2({ token: this.currentToken, methodName: method, parameters, parameterTypes: typesV2 }) : encodeRequest({
          token: this.currentToken,
          methodName: method,
          parameters,
          parameterTypesByName: types.map(parameterTypeByName),
          invocationId: randomId(),
          contractId: contract ? contractId(contract) : 0n,
          methodId: contract && options.parameterTypes ? methodId(contract, method, types) : 0n
        });
        this.send(id, 1 /* Request */, payload, true).catch((e) => this.pending.get(key)?.reject(e));
      }).catch((e) => this.pending.get(key)?.reject(e));
    });
  }
  /** Closes the connection; pending calls reject with {@link ConnectionClosedError}. */
  async close() {
    if (this.closedByUser && this.stateValue === "closed") return;
    this.closedByUser = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = void 0;
    const socket = this.socket;
    this.failPending(new ConnectionClosedError("the client was closed"));
    this.setState("closed");
    for (const w of this.openWaiters.splice(0)) w();
    if (socket && socket.readyState < 2) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 1e3);
        socket.onclose = () => {
          clearTimeout(timer);
          resolve();
        };
        socket.close(1e3, "client closed");
      });
    }
  }
  // ---- internals ------------------------------------------------------------------
  setState(state, error) {
    if (this.stateValue === state && !error) return;
    this.stateValue = state;
    if (state === "open") for (const w of this.openWaiters.splice(0)) w();
    if (state === "closed") for (const end of [...this.iteratorEnds]) end();
    for (const l of [...this.stateListeners]) {
      try {
        l(state, error);
      } catch {
      }
    }
  }
  whenOpen() {
    if (this.stateValue === "open") return Promise.resolve();
    if (this.stateValue === "closed") return Promise.reject(new ConnectionClosedError("the client is closed"));
    return new Promise(
      (resolve, reject) => this.openWaiters.push(
        () => this.stateValue === "open" ? resolve() : reject(new ConnectionClosedError("the client is closed"))
      )
    );
  }
  readResponse(method, data) {
    if (!data) throw new ProtocolError(`empty response to ${method}`);
    const response = this.protocol === 2 ? decodeResponseV2(data) : decodeResponse(data);
    const error = responseError(response);
    if (error) throw error;
    return response.data && response.data.length > 0 ? this.serializer.decode(response.data) : null;
  }
  /** Rejects the calls sent on `socket` (every call when no socket is given). */
  failPending(error, socket) {
    for (const [key, p] of [...this.pending]) {
      if (socket && p.socket !== socket) continue;
      this.pending.delete(key);
      p.reject(error);
    }
  }
  /** Queues one envelope; sealing and sending keep call order (AEAD counters). */
  send(id, type, payload, seal) {
    const socket = this.socket;
    const cipher = this.cipher;
    const next = this.sendChain.then(async () => {
      if (!socket || socket.readyState !== 1 || socket !== this.socket) {
        throw new ConnectionClosedError("the connection is not open");
      }
      const data = payload && seal ? await cipher.seal(payload) : payload;
      socket.send(encodeEnvelope({ id, type, data }));
    });
    this.sendChain = next.catch(() => void 0);
    return next;
  }
  /**
   * Sends a handshake message and waits for the reply with the same id; `onReply` runs
   * on it synchronously, before the next inbound message is handled.
   */
  exchange(type, payload, seal, onReply) {
    const id = randomId();
    const key = hex(id);
    return new Promise((resolve, reject) => {
      this.pending.set(key, {
        resolve: (d) => {
          this.pending.delete(key);
          try {
            onReply?.(d);
          } catch (e) {
            reject(e);
            return;
          }
          resolve(d);
        },
        reject: (e) => {
          this.pending.delete(key);
          reject(e);
        },
        socket: this.socket
      });
      this.send(id, type, payload, seal).catch(reject);
    });
  }
  /** One connection attempt: socket, Initialization, Authorization. */
  async attempt() {
    const timeoutMs = this.options.connectTimeoutMs ?? 1e4;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        reject(new TimeoutError(`no connection to ${this.url} within ${timeoutMs} ms`));
        this.socket?.close();
      }, timeoutMs);
    });
    try {
      await Promise.race([this.handshake(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
  async handshake() {
    const token = await this.freshToken();
    const encryption = this.options.encryption ?? false;
    if (encryption) this.rsaKey ??= generateRsaKey(this.protocol === 2);
    const rsa = encryption ? await this.rsaKey?.catch((e) => {
      this.rsaKey = void 0;
      throw e;
    }) : void 0;
    this.cipher = plainCipher;
    const socket = new this.SocketImpl(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let closeInfo = "";
    await new Promise((resolve, reject) => {
      socket.onopen = () => {
        if (rsa) this.rsaKey = void 0;
        resolve();
      };
      socket.onerror = () => reject(new ConnectionClosedError(`cannot connect to ${this.url}`));
      socket.onclose = (ev) => reject(new ConnectionClosedError(`cannot connect to ${this.url} (close ${ev.code})`));
    });
    socket.onmessage = (ev) => {
      const data = ev.data;
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new TextEncoder().encode(String(data));
      this.receiveChain = this.receiveChain.then(() => this.receive(socket, bytes)).catch((e) => this.protocolFailure(socket, e));
    };
    socket.onclose = (ev) => {
      closeInfo = ev.reason ? `${ev.code}: ${ev.reason}` : String(ev.code);
      this.receiveChain = this.receiveChain.then(() => this.onSocketClosed(socket, closeInfo));
    };
    socket.onerror = () => void 0;
    const describe2 = (e) => e instanceof ConnectionClosedError && closeInfo ? new ConnectionClosedError(`${e.message} (server closed: ${closeInfo})`) : e;
    const v2 = this.protocol === 2;
    const pipelined = this.pipeline && !v2 && !rsa;
    try {
      const publicKey = rsa ? rsa.publicJson : new Uint8Array([0]);
      const initRequest = v2 ? encodeInitializationV2(publicKey) : encodeInitialization(publicKey, ANNOUNCED_EXTENSIONS);
      this.tokenRefresh = false;
      this.resume = false;
      this.replayBatch = false;
      const readInit = (plain) => {
        if (!plain) throw new ProtocolError(`${SERVER_SPEAKS_2}: connect with \`protocol: 2\``);
        const init2 = decodeInitializationReply(plain);
        if (init2.errorMessage) throw new ProtocolError(`the server refused the connection: ${init2.errorMessage}`);
        this.tokenRefresh = accepts(init2.extensions, "token-refresh");
        this.resume = accepts(init2.extensions, "resume");
        this.replayBatch = this.resume && accepts(init2.extensions, "replay-batch");
        return init2;
      };
      let init;
      const initExchange = this.exchange(3 /* Initialization */, initRequest, false, v2 || rsa ? void 0 : (reply) => {
        init = readInit(reply);
      });
      const authorize = (resumeRequest) => this.exchange(4 /* Authorization */, v2 ? encodeAuthorizationV2(token) : encodeAuthorization(token, resumeRequest), true, (reply) => {
        const answer = reply ? (v2 ? decodeAuthorizationReplyV2 : decodeAuthorizationReply)(reply) : null;
        const resumed = answer && "resumed" in answer && this.resume ? answer.resumed : null;
        if (answer?.isAuthorized) this.resumed(resumed);
      });
      const early = pipelined ? authorize(this.resumeState.request() ?? void 0) : void 0;
      early?.catch(() => void 0);
      const initReply = await initExchange;
      if (v2) {
        this.cipher = await initializeV2(initReply, rsa);
      } else {
        init ??= readInit(rsa && initReply ? await rsaDecrypt(rsa, initReply) : initReply);
        if (rsa) {
          this.cipher = await clientCipher(init.symmetricKey ?? new Uint8Array(), init.vector ?? new Uint8Array());
        } else if ((init.symmetricKey?.length ?? 0) > 1) {
          throw new ProtocolError("the server requires encryption: connect with `encryption: true`");
        }
      }
      const authReply = await (early ?? authorize(this.resume ? this.resumeState.request() ?? void 0 : void 0));
      const auth = authReply ? (v2 ? decodeAuthorizationReplyV2 : decodeAuthorizationReply)(authReply) : { isAuthorized: false, message: null };
      if (!auth.isAuthorized) {
        throw new UnauthorizedError("the server rejected the access token");
      }
      this.currentToken = token;
      const expiresAt = "expiresAtUnixMs" in auth ? auth.expiresAtUnixMs : null;
      if (socket.readyState !== 1) throw new ConnectionClosedError("the connection closed during the handshake");
      if (this.tokenRefresh && expiresAt) this.scheduleRefresh(socket, expiresAt, null);
      this.pipeline = !v2 && (this.tokenRefresh || this.resume);
    } catch (e) {
      this.pipeline = false;
      socket.close();
      throw describe2(e);
    }
  }
  /** Handles one inbound message, in arrival order. */
  async receive(socket, bytes) {
    if (socket !== this.socket || bytes.length === 0) return;
    const envelope = decodeEnvelope(bytes);
    if (envelope.type === 2 /* Callback */ && this.protocol === 2) {
      let event;
      try {
        event = envelope.data ? eventV2(await this.cipher.open(envelope.data)) : void 0;
      } catch {
        return;
      }
      if (event) this.deliver(event);
      return;
    }
    const sealed = envelope.type !== 3 /* Initialization */;
    const data = envelope.data && sealed ? await this.cipher.open(envelope.data) : envelope.data;
    if (envelope.type === 2 /* Callback */) {
      if (!data || socket === this.gapped) return;
      this.receiveEvent(socket, decodeEvent(data));
      return;
    }
    if (envelope.type === 100 /* ReplayBatch */ && this.replayBatch) {
      if (socket === this.gapped) return;
      let entries;
      try {
        entries = replayBatchEntries(data ?? new Uint8Array());
      } catch (e) {
        return this.stopDelivering(socket, e.message);
      }
      for (const entry of entries) {
        const event = decodeEvent(entry);
        if (event.position === null) return this.stopDelivering(socket, "a replayed event has no position");
        if (!this.receiveEvent(socket, event)) return;
      }
      return;
    }
    this.pending.get(hex(envelope.id))?.resolve(data);
  }
  /**
   * Delivers one event, minding its position on a `resume` connection: a duplicate is
   * dropped; a gap stops this connection (false), so the reconnect resumes it.
   */
  receiveEvent(socket, event) {
    if (event.position !== null && this.resume) {
      const seen = this.resumeState.observe(event.name, event.position);
      if (seen.kind === "duplicate") return true;
      if (seen.kind === "gap") {
        this.stopDelivering(socket, `events of stream ${seen.stream.slice(0, 60)} were skipped`);
        return false;
      }
    }
    this.deliver(event);
    return true;
  }
  /** Never a silent hole: this connection delivers nothing more, the reconnect resumes. */
  stopDelivering(socket, reason) {
    this.gapped = socket;
    try {
      socket.close(4e3, reason.slice(0, 60));
    } catch {
      try {
        socket.close(4e3);
      } catch {
      }
    }
  }
  /**
   * Takes in a new connection's `Resumed` answer (null: no resume) and, on a reconnect,
   * tells every `onResumed` listener whether its event was recovered.
   */
  resumed(answer) {
    const outcome = this.resumeState.connected(answer);
    if (!outcome.reconnect) return;
    for (const [event, set] of this.resumeListeners) {
      const info = { recovered: this.resumeState.recovered(outcome, event) };
      for (const l of [...set]) {
        try {
          l(info);
        } catch (e) {
          reportListenerError(e);
        }
      }
    }
  }
  /** Hands one event to its listeners. */
  deliver(event) {
    const set = this.listeners.get(event.name);
    if (!set || set.size === 0) return;
    let args;
    try {
      args = event.parameters.map((p) => this.serializer.decode(p));
    } catch (e) {
      console.warn(`witrpc-client: event ${event.name} has unreadable arguments and was skipped:`, e);
      return;
    }
    for (const l of [...set]) {
      try {
        l(...args);
      } catch (e) {
        reportListenerError(e);
      }
    }
  }
  protocolFailure(socket, error) {
    const e = error instanceof WitRpcError ? error : new ProtocolError(String(error));
    this.failPending(e, socket);
    try {
      socket.close(4002, "protocol error");
    } catch {
    }
  }
  /** A token from `tokenProvider`, or `token`. */
  async freshToken() {
    if (this.options.tokenProvider) return this.options.tokenProvider();
    return typeof this.options.token === "function" ? this.options.token() : this.options.token ?? "";
  }
  /** Plans the in-band refresh of a token that expires at `expiresAt` (ms since the epoch). */
  scheduleRefresh(socket, expiresAt, previous) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = void 0;
    const refreshable = this.options.tokenProvider !== void 0 || typeof this.options.token === "function";
    if (!refreshable || previous !== null && expiresAt <= previous) return;
    const delay = refreshDelayMs(expiresAt - Date.now());
    this.refreshTimer = setTimeout(() => void this.refresh(socket, expiresAt), delay);
  }
  /** Sends a fresh token on the open connection; a refusal closes the client. */
  async refresh(socket, expiresAt) {
    this.refreshTimer = void 0;
    if (socket !== this.socket || this.stateValue !== "open") return;
    let token;
    try {
      token = await this.freshToken();
    } catch {
      this.refreshTimer = setTimeout(() => void this.refresh(socket, expiresAt), 1e3);
      return;
    }
    let reply;
    try {
      reply = await this.exchange(4 /* Authorization */, encodeAuthorization(token), true);
    } catch {
      return;
    }
    if (socket !== this.socket) return;
    const answer = reply ? decodeAuthorizationReply(reply) : { isAuthorized: false, expiresAtUnixMs: null };
    if (!answer.isAuthorized) {
      const error = new UnauthorizedError("the server refused the refreshed access token and closed the connection");
      this.closedByUser = true;
      this.failPending(error);
      this.setState("closed", error);
      for (const w of this.openWaiters.splice(0)) w();
      socket.close();
      return;
    }
    this.currentToken = token;
    if (answer.expiresAtUnixMs) this.scheduleRefresh(socket, answer.expiresAtUnixMs, expiresAt);
  }
  onSocketClosed(socket, info) {
    if (socket === this.socket) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = void 0;
    }
    this.failPending(new ConnectionClosedError(`the connection closed (${info})`), socket);
    if (socket !== this.socket) return;
    if (this.closedByUser || this.stateValue !== "open") return;
    if (this.options.reconnect === false) {
      this.setState("closed", new ConnectionClosedError(`the connection closed (${info})`));
      for (const w of this.openWaiters.splice(0)) w();
      return;
    }
    void this.reconnectLoop();
  }
  async reconnectLoop() {
    const policy = this.options.reconnect || {};
    let delay = policy.initialDelayMs ?? 100;
    const maxDelay = policy.maxDelayMs ?? 5e3;
    const maxAttempts = policy.maxAttempts ?? Infinity;
    this.setState("reconnecting");
    for (let attempt = 1; attempt <= maxAttempts && !this.closedByUser; attempt++) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.closedByUser) return;
      try {
        await this.attempt();
        if (this.closedByUser) {
          this.socket?.close();
          return;
        }
        this.setState("open");
        return;
      } catch (error) {
        if (error instanceof UnauthorizedError) {
          this.setState("closed", error);
          for (const w of this.openWaiters.splice(0)) w();
          return;
        }
        this.setState("reconnecting", error);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
    if (!this.closedByUser) {
      this.setState("closed", new ConnectionClosedError(`gave up reconnecting to ${this.url}`));
      for (const w of this.openWaiters.splice(0)) w();
    }
  }
};

// src/generated/chat_service.ts
var CHAT_SERVICE_CONTRACT = "WitRpc.Chat.IChatService";
var CHAT_SERVICE_EVENTS = {
  Message: (a) => [a[0], a[1], a[2]],
  Joined: (a) => [a[0], a[1]],
  Left: (a) => [a[0], a[1]]
};
var ChatServiceClient = class {
  constructor(client2) {
    this.client = client2;
  }
  /**
   * Joins `room` (a no-op when already in it) and returns its members, sorted; raises
   * `Joined` to the others when the caller's user was not in the room yet.
   */
  join(room, options) {
    return this.client.call("Join", [room], { ...options, contract: CHAT_SERVICE_CONTRACT, parameterTypes: ["System.String"] }).then((v) => v);
  }
  /**
   * Leaves `room` (a no-op when not in it); raises `Left` to the others when this was
   * the user's last connection in the room.
   */
  leave(room, options) {
    return this.client.call("Leave", [room], { ...options, contract: CHAT_SERVICE_CONTRACT, parameterTypes: ["System.String"] }).then(() => void 0);
  }
  /**
   * Raises `Message(room, <caller's user name>, text)` to every connection in `room`,
   * the caller's included; the caller must be in the room.
   */
  send(room, text, options) {
    return this.client.call("Send", [room, text], { ...options, contract: CHAT_SERVICE_CONTRACT, parameterTypes: ["System.String", "System.String"] }).then(() => void 0);
  }
  /** The user names in `room`, sorted, each once; the caller must be in the room. */
  members(room, options) {
    return this.client.call("Members", [room], { ...options, contract: CHAT_SERVICE_CONTRACT, parameterTypes: ["System.String"] }).then((v) => v);
  }
  /** Calls `listener` with the typed arguments of every `event`; returns the unsubscribe function. */
  on(event, listener) {
    return this.client.on(event, (...a) => listener(...CHAT_SERVICE_EVENTS[event](a)));
  }
  /** The typed arguments of every `event`, in arrival order. */
  async *events(event, options) {
    for await (const a of this.client.events(event, options)) yield CHAT_SERVICE_EVENTS[event](a);
  }
};

// src/app.ts
var $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
};
var LINES_PER_ROOM = 200;
var client;
var chat;
var me = "";
var unsubscribe = [];
var rooms = /* @__PURE__ */ new Map();
var active;
var received = 0;
function counted(listener) {
  return (...args) => {
    received += 1;
    document.body.dataset.events = String(received);
    listener(...args);
  };
}
function showError(message) {
  const banner = $("error");
  banner.textContent = message ?? "";
  banner.hidden = !message;
}
function describe(error) {
  if (error instanceof UnauthorizedError) return "the server refused that name; use 1 to 32 characters, no spaces around it";
  if (error && typeof error === "object" && "details" in error && typeof error.details === "string") return error.details;
  return error instanceof Error ? error.message : String(error);
}
function setState(state) {
  $("status").dataset.state = state;
  const names = {
    connecting: "connecting\u2026",
    open: `signed in as ${me}`,
    reconnecting: "reconnecting\u2026",
    closed: "signed out"
  };
  $("status-text").textContent = names[state] ?? state;
  $("login").hidden = state !== "closed";
  $("chat").hidden = state === "closed";
  $("login-button").disabled = state === "connecting";
  renderRoom();
}
function push(room, line) {
  room.lines.push(line);
  if (room.lines.length > LINES_PER_ROOM) room.lines.splice(0, room.lines.length - LINES_PER_ROOM);
  if (room.name !== active) room.unread += 1;
}
function onRoom(name, change) {
  const room = rooms.get(name);
  if (!room) return;
  if (room.pending) room.pending.push(() => change(room));
  else change(room);
  renderRooms();
  if (name === active) renderRoom();
}
function renderRooms() {
  const list2 = $("rooms");
  list2.replaceChildren(
    ...[...rooms.values()].map((room) => {
      const item = document.createElement("li");
      item.dataset.room = room.name;
      item.setAttribute("aria-current", String(room.name === active));
      const name = document.createElement("span");
      name.textContent = `# ${room.name}`;
      const unread = document.createElement("span");
      unread.className = "unread";
      unread.textContent = room.unread > 0 ? String(room.unread) : "";
      item.append(name, unread);
      item.addEventListener("click", () => select(room.name));
      return item;
    })
  );
}
function renderRoom() {
  const room = active ? rooms.get(active) : void 0;
  $("room-title").textContent = room ? `# ${room.name}` : "Join a room";
  $("chat").dataset.room = room?.name ?? "";
  const ready = !!room && !room.pending && client?.state === "open";
  for (const id of ["text", "send", "leave"]) $(id).disabled = !ready;
  const messages = $("messages");
  messages.replaceChildren(
    ...(room?.lines ?? []).map((line) => {
      const item = document.createElement("li");
      if (line.kind === "system") {
        item.className = "system";
        item.textContent = line.text;
        return item;
      }
      item.dataset.user = line.user;
      if (line.user === me) item.className = "mine";
      const user = document.createElement("span");
      user.className = "user";
      user.textContent = line.user;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = line.text;
      item.append(user, text);
      return item;
    })
  );
  messages.scrollTop = messages.scrollHeight;
  $("members").replaceChildren(
    ...[...room?.members ?? []].sort().map((name) => {
      const item = document.createElement("li");
      item.dataset.user = name;
      item.textContent = name === me ? `${name} (you)` : name;
      return item;
    })
  );
}
function select(name) {
  active = name;
  const room = name ? rooms.get(name) : void 0;
  if (room) room.unread = 0;
  renderRooms();
  renderRoom();
}
async function enter(room) {
  if (!chat) return;
  room.pending = [];
  renderRoom();
  const members = await chat.join(room.name);
  room.members = new Set(members);
  const pending = room.pending ?? [];
  room.pending = null;
  for (const change of pending) change();
  renderRooms();
  renderRoom();
}
async function join(name) {
  showError(void 0);
  const existing = rooms.get(name);
  if (existing) return select(name);
  const room = { name, members: /* @__PURE__ */ new Set(), lines: [], unread: 0, pending: [] };
  rooms.set(name, room);
  try {
    await enter(room);
    select(name);
  } catch (error) {
    rooms.delete(name);
    renderRooms();
    showError(`Cannot join: ${describe(error)}`);
  }
}
async function leave() {
  const name = active;
  if (!chat || !name) return;
  try {
    await chat.leave(name);
    rooms.delete(name);
    select(rooms.keys().next().value);
  } catch (error) {
    showError(`Cannot leave: ${describe(error)}`);
  }
}
async function send() {
  const input = $("text");
  const name = active;
  if (!chat || !name || !input.value.trim()) return;
  const text = input.value;
  try {
    await chat.send(name, text);
    input.value = "";
  } catch (error) {
    showError(`Not sent: ${describe(error)}`);
  }
}
async function signIn() {
  await signOut();
  showError(void 0);
  me = $("name").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  setState("connecting");
  try {
    const connected = await WitRpcClient.connect(url, { token: `user:${me}`, timeoutMs: 1e4 });
    client = connected;
    chat = new ChatServiceClient(connected);
    let wasReconnecting = false;
    unsubscribe = [
      connected.onStateChange((state) => {
        setState(state);
        if (state === "reconnecting") wasReconnecting = true;
        if (state === "open" && wasReconnecting) {
          wasReconnecting = false;
          for (const room of rooms.values()) enter(room).catch((e) => showError(`Cannot rejoin ${room.name}: ${describe(e)}`));
        }
      }),
      chat.on(
        "Message",
        counted((room, user, text) => onRoom(room, (r) => push(r, { kind: "message", user, text })))
      ),
      chat.on(
        "Joined",
        counted(
          (room, user) => onRoom(room, (r) => {
            r.members.add(user);
            push(r, { kind: "system", text: `${user} joined` });
          })
        )
      ),
      chat.on(
        "Left",
        counted(
          (room, user) => onRoom(room, (r) => {
            r.members.delete(user);
            push(r, { kind: "system", text: `${user} left` });
          })
        )
      )
    ];
    $("me").textContent = me;
    setState("open");
    $("room").focus();
  } catch (error) {
    client = void 0;
    chat = void 0;
    setState("closed");
    showError(`Cannot sign in: ${describe(error)}`);
  }
}
async function signOut() {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  const old = client;
  client = void 0;
  chat = void 0;
  rooms.clear();
  active = void 0;
  renderRooms();
  if (old) await old.close();
  setState("closed");
}
function form(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    void action();
  });
}
form("login-form", signIn);
form("join-form", async () => {
  const input = $("room");
  const name = input.value.trim();
  if (!name) return;
  await join(name);
  if (rooms.has(name)) input.value = "";
});
form("send-form", send);
$("leave").addEventListener("click", () => void leave());
$("logout").addEventListener("click", () => void signOut());
$("name").value = new URLSearchParams(location.search).get("name") ?? "";
setState("closed");
