// The client with `protocol: 2` against a stand-in for a .NET WitRPC 2.x server
// (test/dotnet2_server.mjs): what a user with an existing 2.x server sees.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { WitRpcClient, MethodNotFoundError, UnauthorizedError, ProtocolError } from "../dist/index.js";
import { DemoServiceClient } from "../dist/generated/demo_service.js";
import { startDotNet2Server } from "./dotnet2_server.mjs";

const INT32 = "System.Int32, System.Private.CoreLib";
const STRING = "System.String, System.Private.CoreLib";
const servers = [];
const clients = [];

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.stop();
});

async function server(options) {
  const s = await startDotNet2Server(options);
  servers.push(s);
  return s;
}

async function connect(url, options = {}) {
  const c = await WitRpcClient.connect(url, { WebSocket, protocol: 2, reconnect: false, ...options });
  clients.push(c);
  return c;
}

function next(client, event) {
  return new Promise((resolve) => {
    const off = client.on(event, (...args) => {
      off();
      resolve(args);
    });
  });
}

for (const encryption of [false, true]) {
  const mode = encryption ? "encrypted" : "plain";

  test(`${mode}: calls, typed dispatch and events work against a 2.x server`, async () => {
    const s = await server({ encryption, token: "t0k" });
    const c = await connect(s.url, { encryption, token: "t0k" });
    assert.equal(await c.call("Add", [2, 3]), 5);
    assert.deepEqual(s.seen.requests.at(-1), {
      token: "t0k",
      methodName: "Add",
      parameters: [new TextEncoder().encode("2"), new TextEncoder().encode("3")],
      parameterTypes: [INT32, INT32],
      parameterTypesByName: [],
    });
    // Concurrent calls are matched by Id (a .NET client sends one at a time; the server does not care).
    assert.deepEqual(await Promise.all([c.call("Echo", ["héllo ✓"]), c.call("add", [40, 2])]), ["héllo ✓", 42]);
    // The generated client sends the .NET types it knows.
    assert.equal(await new DemoServiceClient(c).add(20, 22), 42);
    assert.deepEqual(s.seen.requests.at(-1).parameterTypes, [INT32, INT32]);
    await assert.rejects(c.call("Add", ["2", 3]), (e) => e instanceof MethodNotFoundError && /method name: Add/.test(e.message));
    const heard = next(c, "Message");
    assert.equal(await c.call("Broadcast", ["hi all"]), null);
    assert.deepEqual(await heard, ["hi all"]);
    // An event between calls does not disturb the next call.
    const unsolicited = next(c, "Message");
    s.raise("Message", ["from the server"], [STRING]);
    assert.deepEqual(await unsolicited, ["from the server"]);
    assert.equal(await c.call("Add", [1, 1]), 2);
  });

  test(`${mode}: a wrong token is UnauthorizedError even though a 2.x server keeps the socket open`, async () => {
    const s = await server({ encryption, token: "right" });
    await assert.rejects(WitRpcClient.connect(s.url, { WebSocket, protocol: 2, encryption, token: "wrong" }), (e) => e instanceof UnauthorizedError);
  });
}

test("an event a 2.x server sends before the handshake is dropped, not fatal", async () => {
  for (const encryption of [false, true]) {
    const s = await server({ encryption, earlyEvent: true });
    const c = await connect(s.url, { encryption });
    assert.equal(await c.call("Add", [1, 2]), 3);
    const heard = next(c, "Message");
    await c.call("Broadcast", ["after"]);
    assert.deepEqual(await heard, ["after"]);
  }
});

test("encrypted: the key goes out as a .NET 2.x client writes it", async () => {
  const s = await server({ encryption: true });
  await connect(s.url, { encryption: true });
  const init = s.seen.initializations[0];
  assert.equal(init[0], 1, "a one-member Object");
  const text = new TextDecoder().decode(init.subarray(5));
  assert.equal(new DataView(init.buffer, init.byteOffset + 1, 4).getInt32(0, true), init.length - 5);
  assert.match(text, /^\{"mod":"[^"+]+","exp":"AQAB"\}$/);
});

test("encryption must match the 2.x server's setting, with a clear error", async () => {
  const encrypted = await server({ encryption: true });
  await assert.rejects(WitRpcClient.connect(encrypted.url, { WebSocket, protocol: 2 }), (e) => e instanceof ProtocolError && /encryption: true/.test(e.message));
  const plain = await server({ encryption: false });
  await assert.rejects(
    WitRpcClient.connect(plain.url, { WebSocket, protocol: 2, encryption: true }),
    (e) => e instanceof ProtocolError && /without `encryption: true`/.test(e.message),
  );
});

test("a protocol-3 client at a 2.x server is told to connect with protocol 2", async () => {
  const s = await server();
  await assert.rejects(
    WitRpcClient.connect(s.url, { WebSocket }),
    (e) => e instanceof ProtocolError && /the server speaks protocol 2 \(WitRPC 2\.x\): connect with `protocol: 2`/.test(e.message),
  );
  // Three members: .NET's two and our trailing Extensions (still a protocol-3 payload).
  assert.equal(s.seen.initializations[0][0], 3, "the client sent a protocol-3 Initialization");
});
