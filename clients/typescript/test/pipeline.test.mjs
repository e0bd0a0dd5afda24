// The reconnect handshake in one round trip, against the real Rust demo server: a
// client that reconnects to a server which answered our extensions sends its
// Authorization (with its resume positions) right behind the Initialization; a first
// connection, and an encrypted one, wait for the Initialization reply; an encrypted one
// sends a fresh public key on each connection.
//
// A WebSocket proxy between client and server holds the server's Initialization reply
// and records whether the client's next message arrived before the reply was let
// through. Waits are on signals, not on time (the hold only delays clients that wait).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import WebSocket, { WebSocketServer } from "ws";
import { WitRpcClient, json } from "../dist/index.js";
import { startServer, until } from "./server.mjs";

/** How long the proxy holds the Initialization reply waiting for the client's next message. */
const HOLD_MS = 500;

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/**
 * A WebSocket proxy in front of `url`; `pipelined` gets one boolean per connection;
 * `cut()` drops every connection and refuses new ones until `restore()`.
 */
async function watchingProxy(url) {
  const pipelined = [];
  const initializations = [];
  const sockets = new Set();
  let open = true;
  // While cut, upgrades are refused (503): the client's socket never opens.
  const verifyClient = (_info, done) => (open ? done(true) : done(false, 503));
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, verifyClient });
  await once(wss, "listening");
  wss.on("connection", (client) => {
    const server = new WebSocket(url);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.terminate();
        server.terminate();
      });
    }
    const toServer = (m) => (server.readyState === WebSocket.OPEN ? server.send(m) : server.once("open", () => server.send(m)));
    // 0: waiting for the Initialization; 1: it went on, its reply is awaited or held;
    // 2: the reply went through, everything is piped.
    let stage = 0;
    const early = [];
    client.on("message", (m) => {
      if (stage === 0) {
        stage = 1;
        initializations.push(Buffer.from(m).subarray(17)); // after the envelope's version byte and id
        toServer(m);
      } else if (stage === 1) {
        early.push(m);
      } else {
        toServer(m);
      }
    });
    server.on("message", (reply) => {
      if (stage !== 1) return client.send(reply);
      const release = () => {
        if (stage !== 1) return;
        stage = 2;
        pipelined.push(early.length > 0);
        for (const m of early.splice(0)) toServer(m);
        client.send(reply);
      };
      if (early.length > 0) return release();
      const timer = setTimeout(release, HOLD_MS);
      client.once("message", () => {
        clearTimeout(timer);
        setImmediate(release);
      });
    });
  });
  const p = {
    url: `ws://127.0.0.1:${wss.address().port}${new URL(url).pathname}`,
    pipelined,
    initializations,
    cut() {
      open = false;
      for (const s of [...sockets]) s.terminate();
    },
    restore() {
      open = true;
    },
  };
  cleanups.push(() => {
    p.cut();
    return new Promise((resolve) => wss.close(resolve));
  });
  return p;
}

async function connect(url, options) {
  const c = await WitRpcClient.connect(url, { WebSocket, serializer: json, ...options });
  cleanups.push(() => c.close());
  return c;
}

for (const [name, args, options, expected] of [
  ["plain", [], {}, [false, true]],
  ["encrypted", ["--encryption"], { encryption: true }, [false, false]],
]) {
  test(`${name}: the reconnect ${expected[1] ? "pipelines its Authorization" : "waits for the keys"} and resumes every missed event`, async () => {
    const s = await startServer(["--history", "100", ...args]);
    cleanups.push(() => s.stop());
    const p = await watchingProxy(s.url);
    const client = await connect(p.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100 }, ...options });
    const raiser = await connect(s.url, { reconnect: false, ...options });
    const log = [];
    client.on("Message", (text) => log.push(text));
    client.onResumed("Message", ({ recovered }) => log.push({ recovered }));
    const states = [];
    client.onStateChange((state) => states.push(state));
    await raiser.call("Broadcast", ["m0"]);
    await until("the first broadcast", () => log.length === 1);

    p.cut();
    await until("the client to notice the cut", () => states.includes("reconnecting"));
    await raiser.call("Broadcast", ["m1"]);
    await raiser.call("Broadcast", ["m2"]);
    // Attempts meanwhile are refused before any handshake; they change nothing.
    await new Promise((r) => setTimeout(r, 300));
    p.restore();
    await until("the reconnect", () => states.lastIndexOf("open") > states.indexOf("reconnecting"));
    await raiser.call("Broadcast", ["m3"]);
    await until("the live broadcast", () => log.includes("m3"));
    assert.deepEqual(log, ["m0", { recovered: true }, "m1", "m2", "m3"], "no gap, no duplicate, marker first");
    assert.deepEqual(p.pipelined, expected, "first connection, then the reconnect: Authorization before the reply?");
    // Each connection's Initialization: the same bytes in plain mode, a fresh public key each time encrypted.
    const [first, second] = p.initializations;
    assert.equal(p.initializations.length, 2);
    assert.equal(first.equals(second), !options.encryption, "a fresh key pair per encrypted connection");
  });
}
