// Helpers for a page test of an example: start the example binary and wait for its ready
// line, launch the system Chromium headless. Nothing here knows the chat, so another
// example's test can use it as is.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

/**
 * Starts `binary` with `args` and resolves, once it prints `listening on <url>` on
 * stdout, with `{ url, stop }`; rejects when it exits first or prints nothing for 30 s.
 */
export function startExample(binary, args, { build = "cargo build --examples" } = {}) {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${binary} printed no ready line within 30 s`));
    }, 30_000);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${binary}: ${e.message}; run ${build}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited early with ${code}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (!line.startsWith("listening on ")) return;
      clearTimeout(timer);
      const stopped = new Promise((done) => child.once("exit", done));
      const stop = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
        return stopped;
      };
      resolve({ url: line.slice("listening on ".length).trim(), stop });
    });
  });
}

/** Headless Chromium from `CHROMIUM` (default /usr/bin/chromium), without network chatter. */
export function launchChromium() {
  return chromium.launch({
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
}
