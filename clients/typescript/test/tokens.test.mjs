// Token lifetime against the real Rust demo server (`--user-tokens --token-ttl`):
// in-band refresh while events flow, the close of a client that cannot refresh, and
// a refused refresh. Waits are on signals (provider calls, state changes), not on time.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { WitRpcClient, UnauthorizedError } from "../dist/index.js";
import { refreshDelayMs } from "../dist/client.js";
import { encodeInitialization, decodeInitializationReply } from "../dist/memorypack.js";
import { startServer, until } from "./server.mjs";

const servers = [];
const clients = [];

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.stop();
});

// Tokens live 1 s and are honoured 0.3 s past that.
async function expiringServer() {
  const s = await startServer(["--user-tokens", "--token-ttl", "1", "--token-grace", "0.3"]);
  servers.push(s);
  return s;
}

async function connect(url, options) {
  const c = await WitRpcClient.connect(url, { WebSocket, reconnect: false, ...options });
  clients.push(c);
  return c;
}

function closedWith(client) {
  return new Promise((resolve) => {
    if (client.state === "closed") return resolve(undefined);
    const off = client.onStateChange((state, error) => {
      if (state === "closed") {
        off();
        resolve(error);
      }
    });
  });
}

test("refresh is planned at 80 % of the lifetime, at most 5 s before expiry, never in a loop", () => {
  assert.equal(refreshDelayMs(3_600_000), 2_880_000);
  assert.equal(refreshDelayMs(20_000), 15_000);
  assert.equal(refreshDelayMs(4_000), 2_000);
  assert.equal(refreshDelayMs(-5), 0);
});

test("the Initialization announces witrpc/1 token-refresh, which a .NET server skips", () => {
  const bytes = encodeInitialization(new Uint8Array([0]), "witrpc/1 token-refresh");
  assert.equal(bytes[0], 3, "a third, trailing member");
  assert.deepEqual([...encodeInitialization(new Uint8Array([0]))].slice(1, 3), [5, 4], "without it: .NET's two members");
  // A reply without member 4 (any .NET server) reads as no extension.
  const plainReply = new Uint8Array([4, 5, 5, 4, 4, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 255, 255, 255, 255]);
  assert.equal(decodeInitializationReply(plainReply).extensions, null);
});

test("a client with a token provider refreshes in-band while events flow, losing none", async () => {
  const { url } = await expiringServer();
  let calls = 0;
  const client = await connect(url, {
    tokenProvider: async () => {
      calls++;
      return "user:ann";
    },
  });
  const seen = [];
  client.on("Message", (text) => seen.push(text));
  const states = [];
  client.onStateChange((s) => states.push(s));
  let sent = 0;
  // Several lifetimes: without refreshes the server closes the connection at 1.3 s.
  while (calls < 6) {
    await client.call("Broadcast", [`m${sent}`]);
    sent++;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(client.state, "open");
  assert.deepEqual(states, [], "no reconnect, no state change");
  assert.equal(await client.call("WhoAmI", []), "ann");
  await until("every broadcast", () => seen.length >= sent);
  assert.deepEqual(seen, Array.from({ length: sent }, (_, i) => `m${i}`), "in order, none missing");
});

test("a client that cannot refresh is closed after expiry with the reason", async () => {
  const { url } = await expiringServer();
  const client = await connect(url, { token: "user:bob" });
  const error = await closedWith(client);
  assert.match(String(error?.message), /access token expired/);
});

test("a refused refresh closes the client with an UnauthorizedError", async () => {
  const { url } = await expiringServer();
  let calls = 0;
  const client = await connect(url, { tokenProvider: () => (calls++ === 0 ? "user:ann" : "user:mallory") });
  const error = await closedWith(client);
  assert.ok(error instanceof UnauthorizedError, String(error));
  assert.ok(calls >= 2);
  await assert.rejects(client.call("WhoAmI", []));
});
