import assert from "node:assert/strict";

/** Asserts |a - b| <= eps, relative to |b| when |b| > 1. */
export function close(a: number, b: number, eps = 1e-9): void {
  assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} != ${b}`);
}
