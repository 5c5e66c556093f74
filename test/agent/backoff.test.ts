import assert from "node:assert/strict";
import fc from "fast-check";
import { createBackoff } from "../../agent/src/index.ts";
import { createRng } from "../../common/rng.ts";

describe("agent reconnect backoff", () => {
  it("doubles up to the cap, with each delay in [ceil/2, ceil]", () => {
    const b = createBackoff({ initialMs: 100, maxMs: 2000 }, createRng(7));
    const ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
    for (const ceil of ceilings) {
      const d = b.nextDelayMs();
      assert.ok(d >= ceil / 2 && d <= ceil, `delay ${d} outside [${ceil / 2}, ${ceil}]`);
    }
    assert.equal(b.attempts, ceilings.length);
  });

  it("reset starts again from the initial delay", () => {
    const b = createBackoff({ initialMs: 100, maxMs: 10_000 }, createRng(1));
    for (let i = 0; i < 10; i++) b.nextDelayMs();
    b.reset();
    const d = b.nextDelayMs();
    assert.ok(d >= 50 && d <= 100, `delay after reset ${d}`);
  });

  it("is jittered: agents with different seeds spread out", () => {
    const delays = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      const b = createBackoff({ initialMs: 1000, maxMs: 1000 }, createRng(seed));
      delays.add(b.nextDelayMs());
    }
    assert.ok(delays.size >= 15, `only ${delays.size} distinct delays`);
  });

  it("never exceeds maxMs nor goes below initialMs/2, for any options and attempt count (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 600_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer(),
        (initialMs, extra, multiplier, attempts, seed) => {
          const maxMs = initialMs + extra;
          const b = createBackoff({ initialMs, maxMs, multiplier }, createRng(seed));
          for (let i = 0; i < attempts; i++) {
            const d = b.nextDelayMs();
            assert.ok(Number.isFinite(d));
            assert.ok(d <= maxMs, `${d} > max ${maxMs}`);
            assert.ok(d >= Math.floor(initialMs / 2), `${d} < ${initialMs / 2}`);
          }
        },
      ),
    );
  });

  it("rejects options that cannot bound a delay", () => {
    assert.throws(() => createBackoff({ initialMs: 0, maxMs: 10 }, createRng(1)), RangeError);
    assert.throws(() => createBackoff({ initialMs: 100, maxMs: 10 }, createRng(1)), RangeError);
    assert.throws(
      () => createBackoff({ initialMs: 1, maxMs: 10, multiplier: 0.5 }, createRng(1)),
      RangeError,
    );
  });
});
