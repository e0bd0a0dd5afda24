// A stand-in for a .NET WitRPC 2.x server (shared/witrpc-protocol-2x.md §3-§5), small
// enough to read: MemoryPack envelope, JSON parameters, the 2.x handshake, dispatch by
// name + ParameterTypes, events to every connection with the connection's Guid, and
// optional RSA-OAEP + AES-256-CBC done with Node's own crypto (not WebCrypto), so the
// client's cipher is checked against an independent implementation.

import { WebSocketServer } from "ws";
import { createCipheriv, createDecipheriv, createPublicKey, publicEncrypt, constants, randomBytes } from "node:crypto";
import { Reader, Writer, encodeEnvelope, decodeEnvelope } from "../dist/memorypack.js";
import { decodeRequestV2, encodeRequestV2 } from "../dist/v2.js";

const INT32 = "System.Int32, System.Private.CoreLib";
const STRING = "System.String, System.Private.CoreLib";

/** `IDemo` of the stand-in: name → { types, run(args, server) }. */
const METHODS = [
  { name: "Add", types: [INT32, INT32], run: ([a, b]) => a + b },
  { name: "Echo", types: [STRING], run: ([s]) => s },
  {
    name: "Broadcast",
    types: [STRING],
    run: ([text], server) => {
      server.raise("Message", [text], [STRING]);
      return null;
    },
  },
];

function response(status, data, message = null, details = null) {
  const w = new Writer();
  w.u8(4);
  w.i32(status);
  w.byteArray(data);
  w.string(message);
  w.string(details);
  return w.finish();
}

function jsonBytes(value) {
  return new TextEncoder().encode(JSON.stringify(value));
}

/**
 * Starts the stand-in on 127.0.0.1:0; resolves `{ url, seen, raise, stop }` (`seen`:
 * decoded requests and raw Initialization payloads). With `earlyEvent` it raises an
 * event to a connection just before its Initialization reply, under its AES key when
 * encrypting, as a busy .NET server can (notes §11 item 3).
 */
export function startDotNet2Server({ encryption = false, token = "", earlyEvent = false } = {}) {
  const seen = { requests: [], initializations: [] };
  const connections = new Set();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });

  const server = {
    raise(name, args, types) {
      const payload = encodeRequestV2({ token: "", methodName: name, parameters: args.map(jsonBytes), parameterTypes: types });
      // .NET sends every event to every connection, initialized or not (§4).
      for (const c of connections) c.send(2, c.id, payload);
    },
  };

  wss.on("connection", (socket) => {
    const c = {
      id: randomBytes(16),
      key: randomBytes(32),
      iv: randomBytes(16),
      encrypting: false,
      seal(data) {
        if (!this.encrypting || data === null) return data;
        const cipher = createCipheriv("aes-256-cbc", this.key, this.iv);
        return Buffer.concat([cipher.update(data), cipher.final()]);
      },
      open(data) {
        if (!this.encrypting || data === null) return data;
        const decipher = createDecipheriv("aes-256-cbc", this.key, this.iv);
        return Buffer.concat([decipher.update(data), decipher.final()]);
      },
      send(type, id, payload, seal = true) {
        const data = seal ? this.seal(payload) : payload;
        socket.send(encodeEnvelope({ id, type, data: data && new Uint8Array(data) }));
      },
    };
    connections.add(c);
    const early = () => {
      c.encrypting = encryption; // the key exists from accept time; the client gets it later
      c.send(2, c.id, encodeRequestV2({ token: "", methodName: "Message", parameters: [jsonBytes("early")], parameterTypes: [STRING] }));
      c.encrypting = false;
    };
    socket.on("close", () => connections.delete(c));
    socket.on("message", (raw) => {
      const envelope = decodeEnvelope(new Uint8Array(raw));
      const reply = (payload, seal = true) => c.send(envelope.type, envelope.id, payload, seal);
      if (envelope.type === 3) {
        const data = envelope.data;
        seen.initializations.push(data);
        if (earlyEvent) early();
        // Only a one-member Object is a 2.x WitRequestInitialization; anything else (a 3.x one) gets a null Data.
        if (!data || data[0] !== 1) return reply(null, false);
        const publicKey = new Reader(data.subarray(1), "PublicKey").byteArray();
        const w = new Writer();
        w.u8(2);
        if (!encryption) {
          w.byteArray(new Uint8Array([0]));
          w.byteArray(new Uint8Array([0]));
          return reply(w.finish(), false);
        }
        w.byteArray(c.key);
        w.byteArray(c.iv);
        c.encrypting = true;
        // A key of at most one byte means "no key": .NET then sends the AES key and IV in clear (§9 item 8).
        if (publicKey.length <= 1) return reply(w.finish(), false);
        const { mod, exp } = JSON.parse(new TextDecoder().decode(publicKey));
        const jwk = { kty: "RSA", n: Buffer.from(mod, "base64").toString("base64url"), e: Buffer.from(exp, "base64").toString("base64url") };
        const wrapped = publicEncrypt({ key: createPublicKey({ key: jwk, format: "jwk" }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, w.finish());
        return reply(new Uint8Array(wrapped), false);
      }
      const plain = c.open(envelope.data);
      if (envelope.type === 4) {
        const r = new Reader(new Uint8Array(plain), "WitRequestAuthorization");
        r.u8();
        const ok = r.string() === token;
        const w = new Writer();
        w.u8(2);
        w.u8(ok ? 1 : 0);
        w.string(ok ? "Authorized" : "Forbidden");
        return reply(w.finish()); // .NET keeps the connection open either way
      }
      if (envelope.type !== 1) return;
      const request = decodeRequestV2(new Uint8Array(plain));
      seen.requests.push(request);
      if (request.token !== token) return reply(response(561, null, "Tokes is not valid"));
      const method = METHODS.find(
        (m) => m.name.toLowerCase() === request.methodName.toLowerCase() && m.types.join("|") === request.parameterTypes.join("|"),
      );
      if (!method) return reply(response(400, null, `Method not found on service, method name: ${request.methodName}`));
      const args = request.parameters.map((p) => (p.length ? JSON.parse(new TextDecoder().decode(p)) : null));
      const result = method.run(args, server);
      return reply(response(200, result === null ? null : jsonBytes(result)));
    });
  });

  return new Promise((resolve) =>
    wss.on("listening", () =>
      resolve({
        url: `ws://127.0.0.1:${wss.address().port}/`,
        seen,
        raise: server.raise,
        stop: () =>
          new Promise((done) => {
            for (const client of wss.clients) client.terminate();
            wss.close(() => done());
          }),
      }),
    ),
  );
}
