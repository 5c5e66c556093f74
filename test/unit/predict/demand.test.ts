import assert from "node:assert/strict";
import { createDemandForecaster } from "../../../coordinator/src/predict/demand.ts";

const MIN = 60_000;

describe("predict/demand", () => {
  it("tracks a level and a trend", () => {
    const f = createDemandForecaster({ bucketMs: MIN, alpha: 0.5, beta: 0.3, phi: 1 });
    assert.equal(f.forecast("s/720p", 0), undefined);
    for (let m = 0; m < 60; m++) f.observe("s/720p", m * MIN, 100);
    assert.ok(Math.abs(f.forecast("s/720p", 10 * MIN)!.sessions - 100) < 1e-6);
    // ramp of +10 sessions per minute
    for (let m = 60; m < 120; m++) f.observe("s/720p", m * MIN, 100 + 10 * (m - 59));
    const now = 100 + 10 * 60;
    const ahead = f.forecast("s/720p", 5 * MIN)!;
    assert.ok(
      Math.abs(ahead.sessions - (now + 50)) < 15,
      `forecast ${ahead.sessions} vs ${now + 50}`,
    );
    assert.ok(ahead.lower <= ahead.sessions && ahead.upper >= ahead.sessions);
  });

  it("learns a seasonal shape", () => {
    const season = 60 * MIN;
    const f = createDemandForecaster({ bucketMs: MIN, seasonMs: season, gamma: 0.5, beta: 0.01 });
    const shape = (m: number) => 200 + 100 * Math.sin((2 * Math.PI * (m % 60)) / 60);
    for (let m = 0; m < 60 * 6; m++) f.observe("k", m * MIN, shape(m));
    // last observation at minute 359; 15 minutes ahead is minute 374 (phase 14)
    const fc = f.forecast("k", 15 * MIN)!;
    assert.ok(Math.abs(fc.sessions - shape(374)) < 25, `${fc.sessions} vs ${shape(374)}`);
  });

  it("folds the bucket in progress into the forecast (a surge shows at once)", () => {
    const f = createDemandForecaster({ bucketMs: MIN });
    for (let m = 0; m < 30; m++) f.observe("k", m * MIN, 50);
    f.observe("k", 30 * MIN + 1000, 500);
    assert.ok(f.forecast("k", 0)!.sessions > 150);
  });

  it("refuses bad samples, bounds keys, never forecasts below zero", () => {
    const f = createDemandForecaster({ keysMax: 2 });
    assert.equal(f.observe("a", 0, -1), false);
    assert.equal(f.observe("a", 0, Number.NaN), false);
    assert.equal(f.observe("a", 5000, 10), true);
    assert.equal(f.observe("a", 4000, 10), false);
    f.observe("b", 0, 1);
    f.observe("c", 0, 1);
    assert.equal(f.size, 2);
    assert.equal(f.forecast("a", 0), undefined, "least recently observed key dropped");
    for (let m = 0; m < 20; m++) f.observe("d", m * MIN, Math.max(0, 100 - 10 * m));
    assert.ok(f.forecast("d", 60 * MIN)!.sessions >= 0);
    f.forget("d");
    assert.equal(f.forecast("d", 0), undefined);
    assert.throws(
      () => createDemandForecaster({ seasonMs: 90_000, bucketMs: MIN }),
      /whole buckets/,
    );
    assert.throws(() => f.forecast("c", -1), /aheadMs/);
  });
});
