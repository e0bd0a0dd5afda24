// The status → error table of docs/client-errors.md, checked against this client (the Rust
// client's tests read the same table).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { responseError, RemoteError, BadRequestError, UnauthorizedError, WitRpcError } from "../dist/index.js";

const table = readFileSync(new URL("../../../docs/client-errors.md", import.meta.url), "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => /^\|\s*\d+\s*\|/.test(line))
  .map((line) => {
    const cells = line.slice(1).split("|").map((c) => c.trim());
    return { status: Number(cells[0]), rule: cells[2], tsClass: cells[4].replaceAll("`", "") };
  });

test("the status table has rows", () => {
  assert.ok(table.length >= 5, `only ${table.length} rows in docs/client-errors.md`);
});

for (const row of table) {
  test(`status ${row.status} (${row.rule}) is a ${row.tsClass}`, () => {
    const errorMessage = row.rule.includes("Method not found")
      ? "Method not found on service, method name: Multiply"
      : "Failed to process request";
    const error = responseError({ status: row.status, errorMessage, errorDetails: "d" });
    assert.ok(error instanceof WitRpcError, `status ${row.status} gave ${error}`);
    assert.equal(error.name, row.tsClass);
    // The status is kept as given, never replaced by another number.
    if (error instanceof RemoteError || error instanceof BadRequestError || error instanceof UnauthorizedError) {
      assert.equal(error.status, row.status);
    }
    if (error instanceof RemoteError || error instanceof BadRequestError) {
      assert.equal(error.serverMessage, errorMessage);
      assert.equal(error.details, "d");
    }
  });
}

test("status 200 is success", () => {
  assert.equal(responseError({ status: 200, errorMessage: null, errorDetails: null }), null);
});

test("a 400 that is not 'Method not found' is a BadRequestError", () => {
  const error = responseError({ status: 400, errorMessage: "Invalid argument `a`", errorDetails: null });
  assert.equal(error?.name, "BadRequestError");
});
