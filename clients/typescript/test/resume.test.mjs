// Resumable event streams (our `resume` extension) against the real Rust demo server
// (`--history <n>`): a client whose TCP connection is cut by a proxy in the test gets
// every missed broadcast once, in order, after its reconnect, or is told it did not.
// Waits are on signals (events seen, state changes), not on time.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect as tcpConnect } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { WitRpcClient, json } from "../dist/index.js";
import { ResumeState } from "../dist/resume.js";
import {
  decodeAuthorizationReply,
  decodeEnvelope,
  decodeEvent,
  decodeInitializationReply,
  encodeAuthorization,
  encodeEnvelope,
  encodeInitialization,
  encodeRequest,
  Reader,
  TolerantWriter,
  readTolerant,
} from "../dist/memorypack.js";
import { startServer, until } from "./server.mjs";

/** Envelope types (a const enum in the sources). */
const MessageType = { Request: 1, Callback: 2, Initialization: 3, Authorization: 4 };

const servers = [];
const clients = [];
const proxies = [];

after(async () => {
  for (const c of clients) await c.close();
  for (const p of proxies) p.close();
  for (const s of servers) await s.stop();
});

async function server(args) {
  const s = await startServer(args);
  servers.push(s);
  return s;
}

async function connect(url, options = {}) {
  const c = await WitRpcClient.connect(url, { WebSocket, ...options });
  clients.push(c);
  return c;
}

/**
 * A TCP proxy in front of `url`: `cut()` drops every connection through it and refuses
 * new ones until `restore()`.
 */
async function proxy(url) {
  const target = new URL(url);
  const pairs = new Set();
  let open = true;
  const listener = createServer((inbound) => {
    if (!open) return inbound.destroy();
    const outbound = tcpConnect(Number(target.port), target.hostname);
    const pair = [inbound, outbound];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const p = {
    url: `ws://127.0.0.1:${listener.address().port}${target.pathname}`,
    cut() {
      open = false;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    restore() {
      open = true;
    },
    close() {
      p.cut();
      listener.close();
    },
  };
  proxies.push(p);
  return p;
}

/** A client behind a proxy that logs its `Message` events and resume markers in one list. */
async function watcher(url, options = {}) {
  const p = await proxy(url);
  const client = await connect(p.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100 }, ...options });
  const log = [];
  client.on("Message", (text) => log.push(text));
  client.onResumed("Message", ({ recovered }) => log.push({ recovered }));
  const states = [];
  client.onStateChange((s) => states.push(s));
  return { p, client, log, states };
}

/** Cuts the watcher's connection and waits until the client noticed. */
async function cut(w) {
  const before = w.states.length;
  w.p.cut();
  await until("the client to notice the cut", () => w.states.slice(before).includes("reconnecting"));
}

async function reconnected(w) {
  const before = w.states.length;
  w.p.restore();
  await until("the reconnect", () => w.states.slice(before).includes("open"));
}

async function broadcast(client, from, to) {
  for (let i = from; i < to; i++) await client.call("Broadcast", [`m${i}`]);
}

const texts = (from, to) => Array.from({ length: to - from }, (_, i) => `m${from + i}`);

for (const [name, args, options] of [
  ["plain", [], {}],
  ["encrypted", ["--encryption"], { encryption: true }],
]) {
  test(`${name}: after a cut, every missed broadcast arrives once and in order, marked recovered`, async () => {
    const s = await server(["--history", "100", ...args]);
    const w = await watcher(s.url, options);
    const raiser = await connect(s.url, { reconnect: false, ...options });
    assert.equal(w.client.resumeAccepted, true);
    await broadcast(raiser, 0, 5);
    await until("the first broadcasts", () => w.log.length === 5);
    await cut(w);
    await broadcast(raiser, 5, 15); // raised while the watcher is away
    await reconnected(w);
    await until("the replay", () => w.log.includes("m14"));
    await broadcast(raiser, 15, 18);
    await until("the live broadcasts", () => w.log.includes("m17"));
    assert.deepEqual(w.log, [...texts(0, 5), { recovered: true }, ...texts(5, 18)], "no gap, no duplicate, marker first");
  });
}

test("beyond the history window the marker says recovered: false and nothing partial is replayed", async () => {
  const s = await server(["--history", "5"]);
  const w = await watcher(s.url);
  const raiser = await connect(s.url, { reconnect: false });
  await broadcast(raiser, 0, 3);
  await until("the first broadcasts", () => w.log.length === 3);
  await cut(w);
  await broadcast(raiser, 3, 23); // 20 missed, 5 kept
  await reconnected(w);
  await raiser.call("Broadcast", ["live"]);
  await until("the live broadcast", () => w.log.includes("live"));
  assert.deepEqual(w.log, [...texts(0, 3), { recovered: false }, "live"]);
});

test("a server without history does not accept resume: the reconnect vouches for nothing", async () => {
  const s = await server([]);
  const w = await watcher(s.url);
  const raiser = await connect(s.url, { reconnect: false });
  assert.equal(w.client.resumeAccepted, false);
  await broadcast(raiser, 0, 2);
  await until("the first broadcasts", () => w.log.length === 2);
  await cut(w);
  await broadcast(raiser, 2, 4); // lost: nothing keeps them
  await reconnected(w);
  await raiser.call("Broadcast", ["live"]);
  await until("the live broadcast", () => w.log.includes("live"));
  assert.deepEqual(w.log, ["m0", "m1", { recovered: null }, "live"]);
});

/** One broadcast seen by a hand-made protocol-3 session that announces `announce`. */
async function rawEvent(url, announce) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let wake;
  ws.on("message", (data) => {
    inbox.push(decodeEnvelope(new Uint8Array(data)));
    wake?.();
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const next = async (type) => {
    for (;;) {
      const i = inbox.findIndex((e) => e.type === type);
      if (i >= 0) return inbox.splice(i, 1)[0];
      await new Promise((r) => (wake = r));
    }
  };
  const id = () => globalThis.crypto.getRandomValues(new Uint8Array(16));
  try {
    ws.send(encodeEnvelope({ id: id(), type: MessageType.Initialization, data: encodeInitialization(new Uint8Array([0]), announce) }));
    const init = decodeInitializationReply((await next(MessageType.Initialization)).data);
    ws.send(encodeEnvelope({ id: id(), type: MessageType.Authorization, data: encodeAuthorization("") }));
    const auth = decodeAuthorizationReply((await next(MessageType.Authorization)).data);
    assert.equal(auth.isAuthorized, true);
    const request = encodeRequest({
      token: "",
      methodName: "Broadcast",
      parameters: [json.encode("raw")],
      parameterTypesByName: [],
      invocationId: id(),
      contractId: 0n,
      methodId: 0n,
    });
    ws.send(encodeEnvelope({ id: id(), type: MessageType.Request, data: request }));
    const event = decodeEvent((await next(MessageType.Callback)).data);
    return { extensions: init.extensions, resumed: auth.resumed, event };
  } finally {
    ws.close();
  }
}

test("positions (member 10) go only to clients that negotiated resume with a server keeping history", async () => {
  const plain = await server([]);
  const kept = await server(["--history", "10"]);
  const without = await rawEvent(plain.url, "witrpc/1 token-refresh resume");
  assert.equal(without.extensions, "witrpc/1 token-refresh", "resume is not accepted without history");
  assert.equal(without.resumed, null);
  assert.equal(without.event.name, "Message");
  assert.equal(without.event.position, null);
  const withHistory = await rawEvent(kept.url, "witrpc/1 token-refresh resume");
  assert.equal(withHistory.extensions, "witrpc/1 token-refresh resume");
  assert.match(withHistory.resumed ?? "", /^[0-9a-f-]{36}$/, "the answer's first line is the connection id");
  assert.match(withHistory.event.position ?? "", /^all\t[0-9a-f]{16}\t1$/);
  const notAnnounced = await rawEvent(kept.url, undefined);
  assert.equal(notAnnounced.extensions, null, "a .NET-shaped client negotiates nothing");
  assert.equal(notAnnounced.event.position, null);
});

/**
 * A scripted protocol-3 server that accepts `resume`: `script(connection, resumeRequest)`
 * returns the `Resumed` answer and then sends events with `send(name, n, position)`.
 */
async function fakeServer(script, extensions = "witrpc/1 resume") {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => wss.once("listening", resolve));
  let connections = 0;
  wss.on("connection", (ws) => {
    const index = connections++;
    const closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on("message", (data) => {
      const envelope = decodeEnvelope(new Uint8Array(data));
      const reply = (payload) => ws.send(encodeEnvelope({ id: envelope.id, type: envelope.type, data: payload }));
      if (envelope.type === MessageType.Initialization) {
        const t = new TolerantWriter();
        t.body.byteArray(new Uint8Array([0]));
        t.endMember();
        t.body.byteArray(new Uint8Array([0]));
        t.endMember();
        t.body.i32(3);
        t.endMember();
        t.body.string(null);
        t.endMember();
        t.body.string(extensions);
        t.endMember();
        reply(t.finish());
      } else if (envelope.type === MessageType.Authorization) {
        const m = readTolerant(new Reader(envelope.data, "auth"), 2);
        const payload = (name, n, position) => {
          const e = new TolerantWriter();
          e.body.string("");
          e.endMember();
          e.body.string(name);
          e.endMember();
          e.body.i32(1);
          e.body.byteArray(json.encode(n));
          e.endMember();
          for (let i = 0; i < 4; i++) {
            e.body.i32(0); // the four empty type lists
            e.endMember();
          }
          e.body.bytes(new Uint8Array(16));
          e.endMember();
          e.body.i64(0n);
          e.endMember();
          e.body.i64(0n);
          e.endMember();
          e.body.string(position);
          e.endMember();
          return e.finish();
        };
        const randomId = () => globalThis.crypto.getRandomValues(new Uint8Array(16));
        const send = (name, n, position) => {
          ws.send(encodeEnvelope({ id: randomId(), type: MessageType.Callback, data: payload(name, n, position) }));
        };
        // A replay batch of [name, n, position] events; `cut` bytes taken off its end.
        send.batch = (events, cut = 0) => {
          const entries = events.map(([name, n, position]) => payload(name, n, position));
          const batch = new Uint8Array(5 + entries.reduce((sum, e) => sum + 4 + e.length, 0));
          const view = new DataView(batch.buffer);
          batch[0] = 1;
          view.setUint32(1, entries.length, true);
          let at = 5;
          for (const entry of entries) {
            view.setUint32(at, entry.length, true);
            batch.set(entry, at + 4);
            at += 4 + entry.length;
          }
          const data = batch.subarray(0, batch.length - cut);
          ws.send(encodeEnvelope({ id: new Uint8Array(16), type: 100, data }));
        };
        const { answer, events } = script(index, m[1]?.string() ?? null, closed);
        const a = new TolerantWriter();
        a.body.u8(1);
        a.endMember();
        a.body.string(null);
        a.endMember();
        a.body.i64(0n);
        a.endMember();
        a.body.string(answer);
        a.endMember();
        reply(a.finish());
        events(send);
      }
    });
  });
  return { url: `ws://127.0.0.1:${wss.address().port}/ws`, close: () => wss.close() };
}

const FIRST = "0c8f1a2e-5b7d-4e3f-9a10-112233445566";
const SECOND = "1c8f1a2e-5b7d-4e3f-9a10-112233445566";

/**
 * A client of a scripted server that drops its first connection: `first(send)` sends
 * that connection's events (once the client listens), the second connection answers
 * `resumed` and sends `second(send)`. Runs until the client logged `last`; returns the
 * `Tick` log (markers as `{ recovered }`), the two resume requests and the first close.
 */
async function resumedOnce({ extensions, first, resumed, second, last }) {
  const requests = [];
  let firstClose;
  let listening;
  const ready = new Promise((resolve) => (listening = resolve)); // the test's listeners are on
  const fake = await fakeServer((index, request, closed) => {
    requests.push(request);
    if (index === 0) {
      firstClose = closed;
      return { answer: FIRST, events: async (send) => first(send, await ready) };
    }
    return { answer: `${SECOND}\n${resumed}`, events: second };
  }, extensions);
  try {
    const client = await connect(fake.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    const log = [];
    client.on("Tick", (n) => log.push(n));
    client.onResumed("Tick", ({ recovered }) => log.push({ recovered }));
    listening();
    await until("the events after the resume", () => log.includes(last));
    return { log, requests, close: await firstClose };
  } finally {
    fake.close();
  }
}

test("a live gap drops the connection and the reconnect resumes from the last offset delivered", async () => {
  const { log, requests, close } = await resumedOnce({
    first: (send) => {
      for (const n of [1, 2, 2, 4, 5]) send("Tick", n, `all\tep\t${n}`); // 2 twice, then 3 skipped
    },
    resumed: "all\tep\t5\t1",
    second: (send) => {
      for (const n of [3, 4, 5, 6]) send("Tick", n, `all\tep\t${n}`);
    },
    last: 6,
  });
  assert.deepEqual(log, [1, 2, { recovered: true }, 3, 4, 5, 6], "the duplicate dropped, nothing past the gap delivered live");
  assert.deepEqual(requests, [null, `${FIRST}\nall\tep\t2`], "the first connection asks nothing; the second names the last offset delivered");
  assert.equal(close.code, 4000);
  assert.match(close.reason, /events of stream all were skipped/);
});

test("a replay batch is delivered event by event, and a damaged one drops the connection to resume", async () => {
  const { log, requests, close } = await resumedOnce({
    extensions: "witrpc/1 resume replay-batch",
    first: (send) => {
      send.batch([1, 2, 3].map((n) => ["Tick", n, `all\tep\t${n}`]));
      send("Tick", 4, "all\tep\t4");
      send.batch([["Tick", 5, "all\tep\t5"]], 1); // damaged: never delivered
    },
    resumed: "all\tep\t5\t1",
    second: (send) => send.batch([["Tick", 5, "all\tep\t5"]]),
    last: 5,
  });
  assert.deepEqual(log, [1, 2, 3, 4, { recovered: true }, 5], "batched and single events in order, nothing of the damaged batch");
  assert.deepEqual(requests, [null, `${FIRST}\nall\tep\t4`], "the resume starts after the last event delivered");
  assert.equal(close.code, 4000);
  assert.match(close.reason, /unreadable replay batch/);
});

test("the resume state drops duplicates, reports gaps, and answers per event", () => {
  const s = new ResumeState();
  assert.equal(s.request(), null, "no connection yet");
  const id = "0c8f1a2e-5b7d-4e3f-9a10-112233445566";
  const first = s.connected(id);
  assert.equal(first.reconnect, false);
  assert.deepEqual(s.observe("Tick", "all\tab\t1"), { kind: "next" });
  assert.deepEqual(s.observe("Tick", "all\tab\t2"), { kind: "next" });
  assert.deepEqual(s.observe("Tick", "all\tab\t2"), { kind: "duplicate" });
  assert.deepEqual(s.observe("Tick", "all\tab\t4"), { kind: "gap", stream: "all" });
  assert.deepEqual(s.observe("Tick", "all\tcd\t9"), { kind: "next" }, "a new epoch starts over");
  assert.deepEqual(s.observe("Tick", "garbage"), { kind: "next" }, "unreadable: delivered, not tracked");
  s.observe("Chat", "g:room\tef\t2");
  s.observe("Note", "u:ann\t01\t1");
  assert.equal(s.request(), `${id}\nall\tcd\t9\ng:room\tef\t2\nu:ann\t01\t1`);
  const next = "1c8f1a2e-5b7d-4e3f-9a10-112233445566";
  const outcome = s.connected(`${next}\nall\tcd\t12\t1\ng:room\tef\t90\t0`);
  assert.equal(outcome.reconnect, true);
  assert.equal(s.recovered(outcome, "Tick"), true);
  assert.equal(s.recovered(outcome, "Chat"), false);
  assert.equal(s.recovered(outcome, "Note"), false, "asked and not answered");
  assert.equal(s.recovered(outcome, "Never"), null, "never seen with a position");
  assert.deepEqual(s.observe("Chat", "g:room\tef\t91"), { kind: "next" }, "a lost stream continues from its top");
  assert.ok(s.request()?.startsWith(next));
  const plain = s.connected(null);
  assert.equal(s.recovered(plain, "Tick"), null, "a server without resume");
  assert.equal(s.request(), null);
});
