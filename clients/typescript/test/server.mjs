// Starts the Rust demo server (examples/demo_server.rs) for the tests; shared test helpers.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const binary = process.env.WITRPC_DEMO_SERVER ?? path.join(root, "target/debug/examples/demo_server");

/** Starts the demo server with `args`; resolves `{ url, stop }` once it prints its ready line. */
export function startServer(args = [], listen = "http://127.0.0.1:0/ws") {
  const child = spawn(binary, ["--listen", listen, ...args], { stdio: ["ignore", "pipe", "ignore"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("demo_server printed no ready line within 30 s")), 30_000);
    child.once("error", (e) => reject(new Error(`cannot start ${binary} (cargo build --example demo_server): ${e.message}`)));
    child.once("exit", (code) => reject(new Error(`demo_server exited early (${code})`)));
    createInterface({ input: child.stdout }).once("line", (line) => {
      clearTimeout(timer);
      const url = line.replace(/^listening on /, "").trim();
      resolve({
        url,
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once("exit", () => done());
            child.kill("SIGKILL");
          }),
      });
    });
  });
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Waits (polling every 10 ms) until `done()` holds; fails naming `what` after `limitMs`. */
export async function until(what, done, limitMs = 20_000) {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
