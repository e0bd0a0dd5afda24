// End-to-end: the chat example in headless Chromium, three people on three pages,
// asserting what each of them sees.
//
// Needs the example binary (`cargo build --example chat`; WITRPC_CHAT to point
// elsewhere) and Chromium (CHROMIUM, default /usr/bin/chromium). Saves a screenshot to
// target/chat.png (WITRPC_SCREENSHOT to change).
//
// Exactness is checked with fences: each page counts every chat event it receives
// (`body[data-events]`, whatever the room), and a connection's events arrive in the
// order the server queued them. So once a page has seen a later message of its own room,
// an event that was never meant for it can no longer be on its way.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { mkdirSync } from "node:fs";
import { launchChromium, startExample } from "./browser.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const binary = process.env.WITRPC_CHAT ?? path.join(root, "target/debug/examples/chat");
const screenshot = process.env.WITRPC_SCREENSHOT ?? path.join(root, "target/chat.png");
const WAIT = { timeout: 15_000 };

let browser;
let server;

before(async () => {
  server = await startExample(binary, ["--listen", "127.0.0.1:0"], { build: "cargo build --example chat" });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A new browser profile on the page at `url`, signed in as `name`. */
async function signIn(name, url = server.url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/`);
  await page.fill("#name", name);
  await page.click("#login-button");
  await page.waitForSelector('#status[data-state="open"]', WAIT);
  assert.equal(await page.textContent("#status-text"), `signed in as ${name}`);
  return { name, page, errors, close: () => context.close() };
}

async function join(user, room) {
  await user.page.fill("#room", room);
  await user.page.click("#join");
  await user.page.waitForFunction(
    (r) => document.querySelector("#chat").dataset.room === r && !document.querySelector("#text").disabled,
    room,
    WAIT,
  );
}

async function say(user, text) {
  await user.page.fill("#text", text);
  await user.page.click("#send");
}

/** Waits until `user`'s open room shows `text` from `from`. */
async function sees(user, from, text) {
  await user.page.waitForFunction(
    ([f, t]) =>
      [...document.querySelectorAll("#messages li[data-user]")].some(
        (li) => li.dataset.user === f && li.querySelector(".text").textContent === t,
      ),
    [from, text],
    WAIT,
  );
}

async function seesLine(user, text) {
  await user.page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li.system")].some((li) => li.textContent === t),
    text,
    WAIT,
  );
}

async function membersAre(user, names) {
  await user.page
    .waitForFunction(
      (n) => [...document.querySelectorAll("#members li")].map((li) => li.dataset.user).join(",") === n.join(","),
      names,
      WAIT,
    )
    .catch(async (e) => {
      const shown = await user.page.$$eval("#members li", (items) => items.map((li) => li.dataset.user));
      const lines = JSON.stringify(await texts(user));
      const banner = await user.page.textContent("#error");
      throw new Error(
        `${user.name} shows members ${JSON.stringify(shown)}, not ${JSON.stringify(names)} (lines ${lines}, error ${JSON.stringify(banner)}): ${e.message}`,
      );
    });
}

async function events(user) {
  return Number(await user.page.getAttribute("body", "data-events"));
}

async function texts(user) {
  return user.page.$$eval("#messages li", (items) => items.map((li) => li.textContent));
}

test("a room's messages, members, joins and leaves reach its members only", async () => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");
  const carol = await signIn("carol");
  await join(alice, "lobby");
  await join(carol, "garden");
  await join(bob, "lobby");

  // Presence: both lobby members see both; alice was told that bob joined.
  await membersAre(alice, ["alice", "bob"]);
  await membersAre(bob, ["alice", "bob"]);
  await membersAre(carol, ["carol"]);
  await seesLine(alice, "bob joined");

  // alice's message reaches bob, and alice herself, with the name her token gave her.
  await say(alice, "hello bob");
  await sees(bob, "alice", "hello bob");
  await sees(alice, "alice", "hello bob");
  assert.equal(await alice.page.$eval("#messages li.mine .text", (e) => e.textContent), "hello bob");

  // It never reaches carol: she sees her own later message, and nothing before it.
  await say(carol, "anyone here?");
  await sees(carol, "carol", "anyone here?");
  assert.equal(await events(carol), 1, "carol received an event of a room she is not in");
  assert.deepEqual(await texts(carol), ["carolanyone here?"]);

  // Nor does carol's reach the lobby: bob's later message is the next thing both see.
  await say(bob, "hi alice");
  await sees(alice, "bob", "hi alice");
  await sees(bob, "bob", "hi alice");
  assert.equal(await events(alice), 3, "alice: Joined(bob), her message, bob's; nothing of the garden");
  assert.equal(await events(bob), 2, "bob: alice's message and his own; not his own Joined");

  // bob closes his page: alice is told he left and he leaves her member list.
  await bob.close();
  await seesLine(alice, "bob left");
  await membersAre(alice, ["alice"]);
  await say(carol, "still here");
  await sees(carol, "carol", "still here");
  assert.equal(await events(carol), 2, "carol was told of bob leaving a room she is not in");

  await say(alice, "bye");
  await sees(alice, "alice", "bye");
  mkdirSync(path.dirname(screenshot), { recursive: true });
  await alice.page.screenshot({ path: screenshot });
  for (const user of [alice, bob, carol]) assert.deepEqual(user.errors, [], `${user.name}'s page threw`);
  await alice.close();
  await carol.close();
});

test("the server's refusals show on the page", async () => {
  // A name the token rule refuses (the field's maxlength is bypassed on purpose).
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await page.$eval("#name", (e) => {
    e.value = "x".repeat(40);
  });
  await page.click("#login-button");
  await page.waitForSelector("#error:not([hidden])", WAIT);
  assert.match(await page.textContent("#error"), /refused that name/);
  assert.equal(await page.getAttribute("#status", "data-state"), "closed");
  assert.equal(await page.isVisible("#chat"), false);
  await context.close();

  // A room name the service refuses: the page names the rule and joins nothing.
  const dave = await signIn("dave");
  await dave.page.fill("#room", "r".repeat(65));
  await dave.page.click("#join");
  await dave.page.waitForSelector("#error:not([hidden])", WAIT);
  assert.match(await dave.page.textContent("#error"), /room name must be 1 to 64 characters/);
  assert.equal(await dave.page.$$eval("#rooms li", (items) => items.length), 0);
  assert.deepEqual(dave.errors, []);
  await dave.close();
});

test("after a server restart the pages reconnect, rejoin their rooms and talk again", async () => {
  // A server of its own, restarted on the same port; the client reconnects with backoff.
  const build = { build: "cargo build --example chat" };
  const first = await startExample(binary, ["--listen", "127.0.0.1:0"], build);
  const users = [];
  let second;
  try {
    const alice = await signIn("alice", first.url);
    const bob = await signIn("bob", first.url);
    users.push(alice, bob);
    await join(alice, "lobby");
    await join(bob, "lobby");
    await membersAre(alice, ["alice", "bob"]);

    await first.stop();
    await alice.page.waitForSelector('#status[data-state="reconnecting"]', WAIT);
    second = await startExample(binary, ["--listen", `127.0.0.1:${new URL(first.url).port}`], build);
    for (const user of users) {
      await user.page.waitForSelector('#status[data-state="open"]', WAIT);
      await membersAre(user, ["alice", "bob"]);
    }
    await say(bob, "back again");
    await sees(alice, "bob", "back again");
    for (const user of users) assert.deepEqual(user.errors, [], `${user.name}'s page threw`);
  } finally {
    for (const user of users) await user.close();
    await first.stop();
    await second?.stop();
  }
});
