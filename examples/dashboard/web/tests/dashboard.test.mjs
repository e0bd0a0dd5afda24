// End-to-end: the dashboard example in headless Chromium, asserting what a user sees.
//
// Needs the example binary (`cargo build --example dashboard`; WITRPC_DASHBOARD to
// point elsewhere) and Chromium (CHROMIUM, default /usr/bin/chromium). Saves a
// screenshot to target/dashboard.png (WITRPC_SCREENSHOT to change).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const binary = process.env.WITRPC_DASHBOARD ?? path.join(root, "target/debug/examples/dashboard");
const screenshot = process.env.WITRPC_SCREENSHOT ?? path.join(root, "target/dashboard.png");
const TOKEN = "wall-screen-token";

/** Starts the dashboard example; resolves with its page URL once it is ready. */
function startDashboard(args) {
  const child = spawn(binary, ["--listen", "http://127.0.0.1:0/ws", "--token", TOKEN, ...args], {
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
