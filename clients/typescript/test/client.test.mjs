// The TypeScript client against the real Rust demo server (WitRpc.Demo.IDemoService).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import {
  WitRpcClient,
  RemoteError,
  MethodNotFoundError,
  UnauthorizedError,
  TimeoutError,
  ConnectionClosedError,
  ProtocolError,
  decodeBytes,
} from "../dist/index.js";
import { startServer as startDemo, freePort } from "./server.mjs";

const TOKEN = "ts-client-token";
const CONTRACT = "WitRpc.Demo.IDemoService";
const servers = [];
const clients = [];

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.stop();
});

async function serverWith(args = []) {
  const s = await startDemo(["--token", TOKEN, ...args]);
  servers.push(s);
  return s;
}

async function connectWith(url, options = {}) {
  const c = await WitRpcClient.connect(url, { WebSocket, token: TOKEN, ...options });
  clients.push(c);
  return c;
}

function collect(client, event, count) {
  return new Promise((resolve) => {
    const seen = [];
    const off = client.on(event, (...args) => {
      seen.push(args);
      if (seen.length === count) {
        off();
        resolve(seen);
      }
    });
  });
}

// Protocol 2 needs a demo server that serves both protocols on one endpoint:
// `--protocol auto`, its default, given explicitly so that a server without it fails loudly.
const PROTOCOL_ARGS = { 3: [], 2: ["--protocol", "auto"] };

// The whole suite runs once per protocol; only the client's `protocol` option differs.
for (const protocol of [3, 2]) {
  const p = `protocol ${protocol}`;
  const server = (args = []) => serverWith([...PROTOCOL_ARGS[protocol], ...args]);
  const connect = (url, options = {}) => connectWith(url, { protocol, ...options });
  const startServer = (args, listen) => startDemo([...PROTOCOL_ARGS[protocol], ...args], listen);
  const tokenless = (url, options) => WitRpcClient.connect(url, { WebSocket, protocol, ...options });
  for (const [format, args] of [
    ["json", []],
    ["msgpack", ["--format", "msgpack"]],
    ["json encrypted", ["--encryption"]],
    ["msgpack encrypted", ["--format", "msgpack", "--encryption"]],
  ]) {
    const options = { format: format.startsWith("msgpack") ? "msgpack" : "json", encryption: format.endsWith("encrypted") };

    test(`${p}, ${format}: calls round-trip values, large ones included`, async () => {
      const s = await server(args);
      const c = await connect(s.url, options);
      assert.equal(await c.call("Add", [2, 3]), 5);
      // With the contract and .NET types the client sends the MethodId, as .NET does.
      assert.equal(await c.call("Add", [40, 2], { contract: CONTRACT, parameterTypes: ["System.Int32", "System.Int32"] }), 42);
      assert.equal(await c.call("Echo", ["héllo ✓"]), "héllo ✓");
      const long = "x".repeat(5000) + "é";
      assert.equal(await c.call("Echo", [long]), long); // ≥ 64 bytes: LZ4 extension under msgpack
      const bytes = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) % 256);
      assert.deepEqual(decodeBytes(await c.call("EchoBytes", [bytes])), bytes);
    });

    test(`${p}, ${format}: events arrive in order, as listeners and as async iterators`, async () => {
      const s = await server(args);
      const c = await connect(s.url, options);
      const progress = collect(c, "ProgressChanged", 5);
      const completed = collect(c, "ProcessingCompleted", 1);
      const iterated = (async () => {
        const out = [];
        for await (const [percent] of c.events("ProgressChanged")) {
          out.push(percent);
          if (out.length === 5) break;
        }
        return out;
      })();
      assert.equal(await c.call("StartProcessing", [5]), true);
      assert.deepEqual((await progress).map(([p]) => p), [20, 40, 60, 80, 100]);
      assert.deepEqual(await iterated, [20, 40, 60, 80, 100]);
      assert.deepEqual(await completed, [[5]]);
    });
  }

  test(`${p}: 100 concurrent calls all resolve to their own answers`, async () => {
    const s = await server();
    const c = await connect(s.url);
    const sums = await Promise.all(Array.from({ length: 100 }, (_, i) => c.call("Add", [i, 1000])));
    assert.deepEqual(sums, Array.from({ length: 100 }, (_, i) => i + 1000));
  });

  test(`${p}: a failing method rejects with RemoteError carrying the server's message`, async () => {
    const s = await server();
    const c = await connect(s.url);
    const error = await c.call("Fail", ["disk is full"]).then(() => null, (e) => e);
    assert.ok(error instanceof RemoteError, String(error));
    assert.equal(error.status, 500);
    assert.equal(error.details, "disk is full");
    assert.equal(error.serverMessage, "Failed to process request");
    assert.equal(error.message, "Failed to process request: disk is full");
  });

  test(`${p}: an unknown method rejects with MethodNotFoundError`, async () => {
    const s = await server();
    const c = await connect(s.url);
    await assert.rejects(c.call("NoSuchMethod", []), (e) => e instanceof MethodNotFoundError && /NoSuchMethod/.test(e.message));
    // The connection is still usable.
    assert.equal(await c.call("Add", [1, 1]), 2);
  });

  test(`${p}: a wrong token is refused with UnauthorizedError`, async () => {
    const s = await server();
    await assert.rejects(tokenless(s.url, { token: "wrong" }), (e) => e instanceof UnauthorizedError);
    const c = await connect(s.url, { token: () => Promise.resolve(TOKEN) });
    assert.equal(await c.call("Add", [1, 2]), 3);
  });

  for (const format of ["json", "msgpack"]) {
    test(`${p}, encrypted ${format}: a wrong token is UnauthorizedError (the refusal beats the close), the right one works`, async () => {
      const s = await server(["--encryption", "--format", format]);
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          tokenless(s.url, { token: "wrong", encryption: true, format }),
          (e) => e instanceof UnauthorizedError,
        );
      }
      const c = await connect(s.url, { encryption: true, format });
      assert.equal(await c.call("Echo", ["secret"]), "secret");
    });
  }

  test(`${p}: events of different names keep the server's order; events() ends on abort; on() unsubscribes`, async () => {
    const s = await server();
    const c = await connect(s.url);
    const order = [];
    const finished = new Promise((resolve) => {
      c.on("ProgressChanged", (p) => order.push(["ProgressChanged", p]));
      c.on("ProcessingCompleted", (n) => {
        order.push(["ProcessingCompleted", n]);
        resolve();
      });
    });
    const completedByIterator = (async () => {
      for await (const args of c.events("ProcessingCompleted")) return args;
    })();
    assert.equal(await c.call("StartProcessing", [5]), true);
    await finished;
    assert.deepEqual(order, [
      ["ProgressChanged", 20],
      ["ProgressChanged", 40],
      ["ProgressChanged", 60],
      ["ProgressChanged", 80],
      ["ProgressChanged", 100],
      ["ProcessingCompleted", 5],
    ]);
    assert.deepEqual(await completedByIterator, [5]);

    // An aborted iterator ends; an unsubscribed listener hears nothing more.
    const controller = new AbortController();
    const seen = [];
    const iterating = (async () => {
      for await (const [text] of c.events("Message", { signal: controller.signal })) seen.push(text);
      return "ended";
    })();
    let heard = 0;
    const off = c.on("Message", () => heard++);
    const first = collect(c, "Message", 1);
    await c.call("Broadcast", ["one"]);
    await first;
    off();
    controller.abort();
    assert.equal(await iterating, "ended");
    const second = collect(c, "Message", 1);
    await c.call("Broadcast", ["two"]);
    await second;
    assert.equal(heard, 1);
    assert.deepEqual(seen, ["one"]);
  });

  test(`${p}: a listener that throws does not stop other listeners or the connection`, async (t) => {
    const s = await server();
    const c = await connect(s.url);
    const reported = [];
    const original = globalThis.reportError;
    globalThis.reportError = (e) => reported.push(e);
    t.after(() => {
      if (original) globalThis.reportError = original;
      else delete globalThis.reportError;
    });
    c.on("Message", () => {
      throw new Error("listener bug");
    });
    const got = collect(c, "Message", 1);
    await c.call("Broadcast", ["still delivered"]);
    assert.deepEqual(await got, [["still delivered"]]);
    assert.equal(reported[0]?.message, "listener bug");
    assert.equal(await c.call("Add", [2, 2]), 4);
  });

  test(`${p}: encryption must match the server's setting, with a clear error`, async () => {
    const s = await server(["--encryption"]);
    await assert.rejects(tokenless(s.url, { token: TOKEN }), /encryption/i);
    const plain = await server();
    await assert.rejects(tokenless(plain.url, { token: TOKEN, encryption: true }), /encryption/i);
  });

  test(`${p}: Broadcast reaches every connected client`, async () => {
    const s = await server();
    const a = await connect(s.url);
    const b = await connect(s.url, { format: "json" });
    const gotA = collect(a, "Message", 1);
    const gotB = collect(b, "Message", 1);
    await a.call("Broadcast", ["hello all"]);
    assert.deepEqual(await gotA, [["hello all"]]);
    assert.deepEqual(await gotB, [["hello all"]]);
  });

  test(`${p}: AbortSignal aborts a call promptly; timeoutMs rejects with TimeoutError`, async () => {
    const s = await server();
    const c = await connect(s.url);
    const controller = new AbortController();
    const started = Date.now();
    await assert.rejects(c.call("Add", [1, 2], { signal: AbortSignal.abort() }), (e) => e.name === "AbortError");
    const call = c.call("Delay", [5000], { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(call, (e) => e.name === "AbortError");
    await assert.rejects(c.call("Delay", [5000], { timeoutMs: 100 }), (e) => e instanceof TimeoutError);
    assert.ok(Date.now() - started < 2000, "neither call waited for the server");
    assert.equal(await c.call("Delay", [10]), 10);
  });

  test(`${p}: close() rejects pending calls with ConnectionClosedError`, async () => {
    const s = await server();
    const c = await connect(s.url);
    const pending = c.call("Delay", [5000]).then(() => null, (e) => e);
    const iterating = (async () => {
      for await (const _ of c.events("Message")) return "event";
      return "ended";
    })();
    await new Promise((r) => setTimeout(r, 50));
    await c.close();
    assert.ok((await pending) instanceof ConnectionClosedError);
    assert.equal(await iterating, "ended", "an events() iterator ends when the client closes");
    await assert.rejects(c.call("Add", [1, 2]), (e) => e instanceof ConnectionClosedError);
    assert.equal(c.state, "closed");
  });

  test(`${p}: after the server restarts, the client reconnects, re-authorizes and keeps its listeners`, async () => {
    const port = await freePort();
    const listen = `http://127.0.0.1:${port}/ws`;
    let s = await startServer(["--token", TOKEN], listen);
    const c = await connect(s.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    const states = [];
    c.onStateChange((state) => states.push(state));
    // Subscribed before the restart: both must hear events after it.
    const heardByListener = collect(c, "Message", 1);
    const heardByIterator = (async () => {
      for await (const args of c.events("Message")) return args;
    })();
    assert.equal(await c.call("Add", [1, 2]), 3);
    const inFlight = c.call("Delay", [5000]).then(() => null, (e) => e);
    await new Promise((r) => setTimeout(r, 50));
    await s.stop();
    assert.ok((await inFlight) instanceof ConnectionClosedError);
    s = await startServer(["--token", TOKEN], listen);
    servers.push(s);
    // A call made while reconnecting waits for the connection.
    assert.equal(await c.call("Add", [20, 22], { timeoutMs: 10_000 }), 42);
    assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(","));
    await c.call("Broadcast", ["after restart"]);
    assert.deepEqual(await heardByListener, [["after restart"]]);
    assert.deepEqual(await heardByIterator, ["after restart"]);
  });

  test(`${p}: with reconnect: false a lost connection closes the client`, async () => {
    const s = await startServer(["--token", TOKEN]);
    const c = await connect(s.url, { reconnect: false });
    const states = [];
    c.onStateChange((state, error) => states.push([state, error?.name]));
    const inFlight = c.call("Delay", [5000]).then(() => null, (e) => e);
    await new Promise((r) => setTimeout(r, 50));
    await s.stop();
    assert.ok((await inFlight) instanceof ConnectionClosedError);
    assert.equal(c.state, "closed");
    assert.deepEqual(states, [["closed", "ConnectionClosedError"]]);
    await assert.rejects(c.call("Add", [1, 2]), (e) => e instanceof ConnectionClosedError);
  });

  test(`${p}: the generated DemoServiceClient is typed over the same wire (MessagePack)`, async () => {
    const { DemoServiceClient, DEMO_SERVICE_CONTRACT } = await import("../dist/generated/demo_service.js");
    assert.equal(DEMO_SERVICE_CONTRACT, CONTRACT);
    const s = await server(["--format", "msgpack"]);
    const demo = new DemoServiceClient(await connect(s.url, { format: "msgpack" }));
    assert.equal(await demo.add(20, 22), 42);
    assert.deepEqual(await demo.echoBytes(new Uint8Array([1, 2, 3])), new Uint8Array([1, 2, 3]));
    await assert.rejects(demo.fail("typed failure"), (e) => e instanceof RemoteError && e.details === "typed failure");
    const percents = [];
    const done = new Promise((resolve) => demo.on("ProcessingCompleted", (steps) => resolve(steps)));
    demo.on("ProgressChanged", (p) => percents.push(p));
    assert.equal(await demo.startProcessing(4), true);
    assert.equal(await done, 4);
    assert.deepEqual(percents, [25, 50, 75, 100]);
  });
}

test("a protocol-2 and a protocol-3 client on one server: both call, both hear a broadcast", async () => {
  for (const args of [[], ["--encryption"]]) {
    const s = await serverWith(["--protocol", "auto", ...args]);
    const encryption = args.length > 0;
    const two = await connectWith(s.url, { protocol: 2, encryption });
    const three = await connectWith(s.url, { protocol: 3, encryption });
    assert.equal(two.protocolVersion, 2);
    assert.equal(three.protocolVersion, 3);
    const [a, b] = await Promise.all([two.call("Add", [2, 3]), three.call("Add", [4, 5])]);
    assert.deepEqual([a, b], [5, 9]);
    const heardByTwo = collect(two, "Message", 1);
    const heardByThree = collect(three, "Message", 1);
    await two.call("Broadcast", ["to both"]);
    assert.deepEqual(await heardByTwo, [["to both"]]);
    assert.deepEqual(await heardByThree, [["to both"]]);
  }
});

test("a server restricted to one protocol refuses the other with an error that says so", async () => {
  const only3 = await serverWith(["--protocol", "3"]);
  await assert.rejects(
    WitRpcClient.connect(only3.url, { WebSocket, token: TOKEN, protocol: 2 }),
    (e) => e instanceof ProtocolError && /does not accept protocol 2/.test(e.message),
  );
  assert.equal(await (await connectWith(only3.url)).call("Add", [1, 1]), 2);
  const only2 = await serverWith(["--protocol", "2"]);
  await assert.rejects(
    WitRpcClient.connect(only2.url, { WebSocket, token: TOKEN, protocol: 3 }),
    (e) => e instanceof ProtocolError && /protocol 2/.test(e.message),
  );
  assert.equal(await (await connectWith(only2.url, { protocol: 2 })).call("Add", [1, 1]), 2);
});

test("protocol 2: an argument without a .NET type needs parameterTypes; with them the call works", async () => {
  const s = await serverWith(["--protocol", "auto"]);
  const c = await connectWith(s.url, { protocol: 2 });
  await assert.rejects(c.call("Echo", [{ text: "x" }]), (e) => e instanceof TypeError && /parameterTypes/.test(e.message));
  await assert.rejects(c.call("Echo", [null]), TypeError);
  // A wrong type is the server's "Method not found" (protocol 2 dispatches on types).
  await assert.rejects(c.call("Echo", [5]), (e) => e instanceof MethodNotFoundError && /Echo/.test(e.message));
  assert.equal(await c.call("Echo", ["typed"], { parameterTypes: ["System.String"] }), "typed");
  assert.equal(await c.call("Add", [2, 3], { parameterTypes: ["System.Int32", "System.Int32"] }), 5);
});

test("the protocol option is checked", async () => {
  await assert.rejects(WitRpcClient.connect("ws://127.0.0.1:1/ws", { WebSocket, protocol: 4 }), /unknown protocol 4/);
});
