import assert from "node:assert/strict";
import { createMetricWindow } from "../../../coordinator/src/predict/window.ts";

describe("predict/window", () => {
  it("keeps the newest `capacity` samples, oldest first", () => {
    const w = createMetricWindow(3);
    for (let i = 1; i <= 4; i++) assert.equal(w.push(i * 1000, i * 10), true);
    assert.equal(w.size, 3);
    assert.deepEqual(
      [0, 1, 2].map((i) => [w.timeAt(i), w.valueAt(i)]),
      [
        [2000, 20],
        [3000, 30],
        [4000, 40],
      ],
    );
    assert.equal(w.lastTimeMs(), 4000);
    assert.equal(w.lastValue(), 40);
    // raw storage agrees with the logical view
    assert.equal(w.times[(w.head + 0) % w.capacity], 2000);
  });

  it("refuses samples that go back in time or are not finite, and stores nothing", () => {
    const w = createMetricWindow(4);
    w.push(5000, 1);
    assert.equal(w.push(4999, 2), false);
    assert.equal(w.push(6000, Number.NaN), false);
    assert.equal(w.push(Number.POSITIVE_INFINITY, 1), false);
    assert.equal(w.size, 1);
    assert.equal(w.push(5000, 3), true, "equal timestamps are accepted");
    w.clear();
    assert.equal(w.size, 0);
    assert.ok(Number.isNaN(w.lastValue()));
  });

  it("rejects capacities outside the bound", () => {
    assert.throws(() => createMetricWindow(1), /capacity must be an integer in 2\.\./);
    assert.throws(() => createMetricWindow(2.5), /capacity/);
    assert.throws(() => createMetricWindow(1_000_000), /capacity/);
  });
});
