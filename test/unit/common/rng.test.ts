import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";

describe("common/rng", () => {
  it("gives the same sequence for the same seed and different ones for different seeds", () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const sa = Array.from({ length: 20 }, () => a.next());
    const sb = Array.from({ length: 20 }, () => b.next());
    const sc = Array.from({ length: 20 }, () => c.next());
    assert.deepEqual(sa, sb);
    assert.notDeepEqual(sa, sc);
    for (const x of sa) assert.ok(x >= 0 && x < 1);
  });

  it("int stays in range and covers it", () => {
    const r = createRng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = r.int(3, 9);
      assert.ok(v >= 3 && v <= 9 && Number.isInteger(v));
      seen.add(v);
    }
    assert.equal(seen.size, 7);
    assert.throws(() => r.int(5, 4), /min <= max/);
  });
});
