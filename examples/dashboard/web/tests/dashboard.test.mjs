// End-to-end: the dashboard example in headless Chromium, asserting what a user sees.
//
// Needs the example binary (`cargo build --example dashboard`; WITRPC_DASHBOARD to
// point elsewhere), Chromium (CHROMIUM, default /usr/bin/chromium) and, for the call
// load, the built TypeScript client (`npm ci && npm run build` in clients/typescript,
// which `cargo xtask test-all` does first). Saves a screenshot to target/dashboard.png
// (WITRPC_SCREENSHOT to change).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const binary = process.env.WITRPC_DASHBOARD ?? path.join(root, "target/debug/examples/dashboard");
const screenshot = process.env.WITRPC_SCREENSHOT ?? path.join(root, "target/dashboard.png");
const TOKEN = "wall-screen-token";
const CONSOLE_TOKEN = "console-only-token";

/** Starts the dashboard example (with the access token unless `token` is null); resolves
 * with its page URL once it is ready. */
function startDashboard(args, { token = TOKEN } = {}) {
  const tokenArgs = token === null ? [] : ["--token", token];
  const child = spawn(binary, ["--listen", "http://127.0.0.1:0/ws", ...tokenArgs, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("dashboard printed no ready line within 30 s")), 30_000);
    let page;
    child.once("error", (e) => reject(new Error(`cannot start ${binary}: ${e.message}; run cargo build --example dashboard`)));
    child.once("exit", (code) => reject(new Error(`dashboard exited early with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith("dashboard at ")) page = line.slice("dashboard at ".length).trim();
      if (line.startsWith("listening on ") && page) {
        clearTimeout(timer);
        resolve({ page, stop: () => child.kill("SIGINT") });
      }
    });
  });
}

let browser;
const servers = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.stop();
});

async function open(server, query) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.page}?${query}`);
  return { page, errors, close: () => context.close() };
}

async function samples(page) {
  return Number(await page.getAttribute("#chart", "data-samples"));
}

/** Connects, calls, watches the chart and a job: the whole page, as a user uses it. */
async function exercise(serverArgs, query, { shot } = {}) {
  const server = await startDashboard(serverArgs);
  servers.push(server);
  const { page, errors, close } = await open(server, `token=${TOKEN}&connect=1&${query}`);
  await page.waitForSelector('#status[data-state="open"]', { timeout: 20_000 });
  assert.equal(await page.textContent("#status-text"), "connected");
  assert.equal(await page.isVisible("#error"), false);

  // Live metrics: the chart keeps growing and the tiles show figures.
  await page.waitForFunction(() => Number(document.querySelector("#chart").dataset.samples) >= 5, null, { timeout: 10_000 });
  const first = await samples(page);
  await page.waitForFunction((n) => Number(document.querySelector("#chart").dataset.samples) > n, first, { timeout: 5_000 });
  assert.match(await page.textContent("#cpu"), /^\d+(\.\d)?%$/);
  assert.notEqual(await page.getAttribute("#cpu-line", "points"), "");
  assert.match(await page.textContent("#server-info"), /IDashboardService/);

  // A call returns.
  await page.fill("#a", "40");
  await page.fill("#b", "2");
  await page.click("#add");
  await page.waitForFunction(() => document.querySelector("#sum").textContent === "42", null, { timeout: 5_000 });

  // A job's progress events drive the bar to 100%, in order, then the completion.
  await page.fill("#steps", "10");
  await page.click("#start-job");
  await page.waitForFunction(() => /done in/.test(document.querySelector("#job-status").textContent), null, { timeout: 15_000 });
  assert.equal(await page.$eval("#progress-bar", (e) => e.style.width), "100%");
  const log = await page.$$eval("#log li", (items) => items.map((i) => i.textContent).reverse());
  const percents = log.filter((l) => l.includes("JobProgress")).map((l) => Number(/ (\d+)% /.exec(l)[1]));
  assert.deepEqual(percents, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  const completed = log.findIndex((l) => l.includes("JobCompleted"));
  assert.ok(completed > log.findLastIndex((l) => l.includes("JobProgress")), "JobCompleted comes after the last progress");

  if (shot) {
    // A few seconds of chart and a settled progress bar make a picture worth keeping.
    await page.waitForFunction(() => Number(document.querySelector("#chart").dataset.samples) >= 40, null, { timeout: 15_000 });
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
  }
  assert.deepEqual(errors, []);
  await close();
}

test("plain JSON: calls return, metrics chart and job progress update", async () => {
  await exercise([], "", { shot: true });
});

test("encrypted MessagePack: the same page works with WebCrypto", async () => {
  await exercise(["--encryption", "--format", "msgpack"], "format=msgpack&encryption=1");
});

test("a wrong token shows an error and no connection", async () => {
  const server = await startDashboard([]);
  servers.push(server);
  const { page, close } = await open(server, "token=wrong&connect=1");
  await page.waitForSelector("#error:not([hidden])", { timeout: 15_000 });
  assert.match(await page.textContent("#error"), /unauthori[sz]ed|token/i);
  assert.equal(await page.getAttribute("#status", "data-state"), "closed");
  assert.equal(await page.isDisabled("#add"), true);
  await close();
});

// ---- the console: the server's own figures ----

/** The console frame of the dashboard page, once it shows live figures. */
async function consoleFrame(page) {
  const frame = await (await page.waitForSelector("#console")).contentFrame();
  await frame.waitForSelector('#status[data-state="live"]', { timeout: 15_000 });
  return frame;
}

const latest = (frame) => frame.evaluate(() => window.witrpcConsole.samples.at(-1));

/** `count` calls of `Add` from Node with the TypeScript client (built by `npm test` in
 * clients/typescript), 25 at a time; returns once all are answered. */
async function callLoad(wsUrl, count) {
  const client = path.join(root, "clients/typescript");
  const WebSocket = createRequire(path.join(client, "package.json"))("ws");
  const { WitRpcClient } = await import(pathToFileURL(path.join(client, "dist/index.js")).href);
  const c = await WitRpcClient.connect(wsUrl, { WebSocket, timeoutMs: 10_000 });
  const add = (a, b) =>
    c.call("Add", [a, b], { contract: "WitRpc.Demo.IDashboardService", parameterTypes: ["System.Int32", "System.Int32"] });
  try {
    for (let i = 0; i < count; i += 25) {
      const sums = await Promise.all(Array.from({ length: 25 }, (_, k) => add(i, k)));
      assert.equal(sums[24], i + 24);
    }
  } finally {
    await c.close();
  }
}

test("the page connects on load and its console's figures move when a load runs", async () => {
  const server = await startDashboard(["--console-token", CONSOLE_TOKEN], { token: null });
  servers.push(server);
  // No `connect=1`: the server needs no access token, so the page connects by itself.
  const { page, errors, close } = await open(server, `console_token=${CONSOLE_TOKEN}`);
  await page.waitForSelector('#status[data-state="open"]', { timeout: 20_000 });
  assert.equal(await page.isDisabled("#add"), false);

  const frame = await consoleFrame(page);
  await frame.waitForFunction(() => window.witrpcConsole.samples.length >= 2, null, { timeout: 10_000 });
  assert.equal(await frame.isVisible("#token-form"), false, "no token form while the figures are live");
  const before = await latest(frame);
  assert.ok(before.connections_authorized >= 1, "the page's own connection is counted");
  assert.ok(before.rss_bytes > 0, "the process's memory is reported");

  const calls = 500;
  await callLoad(server.page.replace(/^http/, "ws") + "ws", calls);
  // The first sample taken after the load covers (part of) it.
  const after = await frame.waitForFunction(
    (want) => window.witrpcConsole.samples.find((s) => s.calls_total >= want),
    before.calls_total + calls,
    { timeout: 10_000 },
  ).then((h) => h.jsonValue());
  assert.ok(after.calls_per_second > 0, `calls/s moved: ${JSON.stringify(after)}`);
  assert.ok(after.latency_p50_ms > 0 && after.latency_p99_ms >= after.latency_p50_ms, "latency of the interval's calls");
  assert.ok(after.bytes_in_total > before.bytes_in_total + calls * 20, "the calls' bytes came in");
  assert.ok(after.bytes_out_total > before.bytes_out_total, "answers and events went out");
  assert.ok(after.events_total > before.events_total, "the Metrics events are counted");
  assert.ok(after.connections_authorized >= 1 && after.rss_bytes > 0);
  assert.equal(after.slow_consumer_disconnects, 0);

  // What a visitor reads on the tiles.
  await frame.waitForFunction((want) => Number(document.querySelector("#v-calls-total").dataset.value) >= want, before.calls_total + calls);
  assert.ok(Number(await frame.getAttribute("#v-rss", "data-value")) > 0);
  assert.match(await frame.textContent("#v-rss"), /MiB/);
  assert.ok(Number(await frame.getAttribute('canvas[data-chart="rate"]', "data-points")) >= 2);
  // The dashboard's own Metrics chart now carries the same, real figures.
  assert.match(await page.textContent("#memory"), /^\d+ MB$/);
  assert.notEqual(await page.textContent("#memory"), "0 MB");
  assert.deepEqual(errors, []);
  await close();
});

test("the console refuses a wrong token and the application's token", async () => {
  const server = await startDashboard(["--console-token", CONSOLE_TOKEN]);
  servers.push(server);
  const figures = (token) =>
    fetch(`${server.page}console/figures`, { headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } });
  for (const token of [undefined, "wrong", TOKEN, ""]) {
    const response = await figures(token);
    assert.equal(response.status, 401, `token ${token}`);
    assert.doesNotMatch(await response.text(), /calls_total/);
  }
  const ok = await figures(CONSOLE_TOKEN);
  assert.equal(ok.status, 200);
  assert.ok(Array.isArray((await ok.json()).samples));

  // In the browser: the app's token opens no console; the console's own token does.
  // A token is needed for the app and none is given, so the page waits for one quietly.
  const { page, errors, close } = await open(server, `console_token=${TOKEN}`);
  const frame = await (await page.waitForSelector("#console")).contentFrame();
  await frame.waitForSelector('#status[data-state="unauthorized"]', { timeout: 15_000 });
  assert.equal(await frame.isVisible("#token-form"), true);
  assert.match(await frame.textContent("#token-error"), /refused/);
  assert.equal(await frame.evaluate(() => window.witrpcConsole.samples.length), 0);
  await frame.fill("#token", CONSOLE_TOKEN);
  await frame.click('#token-form button[type="submit"]');
  await frame.waitForSelector('#status[data-state="live"]', { timeout: 15_000 });
  assert.equal(await page.getAttribute("#status", "data-state"), "closed");
  assert.equal(await page.isVisible("#error"), false);
  assert.deepEqual(errors, []);
  await close();
});
