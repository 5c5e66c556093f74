import assert from "node:assert/strict";
import {
  baselineStep,
  counterRatePerS,
  createBaseline,
  ewmaStep,
  fitLine,
  logSeconds,
  timeToExhaustionS,
  timeToLimitS,
  windowMax,
  windowStats,
  zScore,
} from "../../../coordinator/src/predict/features.ts";
import { createMetricWindow, type MetricWindow } from "../../../coordinator/src/predict/window.ts";
import { close } from "./assert-close.ts";

function windowOf(points: [number, number][], capacity = 16): MetricWindow {
  const w = createMetricWindow(capacity);
  for (const [t, v] of points) w.push(t, v);
  return w;
}

describe("predict/features", () => {
  const w4 = () =>
    windowOf([
      [0, 1],
      [1000, 3],
      [2000, 2],
      [3000, 5],
    ]);

  it("windowStats: mean, population variance, min, max over the span", () => {
    const s = windowStats(w4(), 3000, 10_000);
    assert.equal(s.n, 4);
    close(s.mean, 2.75);
    close(s.variance, 2.1875); // (3.0625 + 0.0625 + 0.5625 + 5.0625) / 4
    assert.equal(s.min, 1);
    assert.equal(s.max, 5);
    // span (1000, 3000] holds 2 and 5
    const t = windowStats(w4(), 3000, 2000);
    assert.equal(t.n, 2);
    close(t.mean, 3.5);
    close(t.variance, 2.25);
    // samples after tMs are ignored
    assert.equal(windowStats(w4(), 1000, 10_000).n, 2);
    assert.ok(Number.isNaN(windowStats(createMetricWindow(4), 0, 1000).mean));
  });

  it("fitLine: least squares slope per second and level at tMs", () => {
    // x = -3..0 s, y = 1,3,2,5: Sxy = 5.5, Sxx = 5 -> slope 1.1; level = 2.75 + 1.1*1.5 = 4.4
    const f = fitLine(w4(), 3000, 10_000);
    assert.equal(f.n, 4);
    close(f.slopePerS, 1.1);
    close(f.levelAtT, 4.4);
    // exact line 2,4,...,10 at 1 Hz
    const line = windowOf([1, 2, 3, 4, 5].map((i) => [i * 1000, 2 * i] as [number, number]));
    const g = fitLine(line, 5000, 10_000);
    close(g.slopePerS, 2);
    close(g.levelAtT, 10);
    // level is extrapolated to tMs when the last sample is earlier
    close(fitLine(line, 6000, 10_000).levelAtT, 12);
    // span (2500, 5000] holds 3 samples
    assert.equal(fitLine(line, 5000, 2500).n, 3);
    // too few samples: NaN
    const h = fitLine(line, 5000, 10_000, 6);
    assert.equal(h.n, 5);
    assert.ok(Number.isNaN(h.slopePerS));
  });

  it("fitLine stays exact for large byte counts", () => {
    const base = 64 * 1024 ** 3;
    const w = windowOf(
      Array.from({ length: 10 }, (_, i) => [1e12 + i * 1000, base - 1e6 * i] as [number, number]),
    );
    const f = fitLine(w, 1e12 + 9000, 60_000);
    close(f.slopePerS, -1e6);
    close(f.levelAtT, base - 9e6);
  });

  it("fitLine reads the ring correctly after wrap-around", () => {
    const w = createMetricWindow(4);
    for (let i = 0; i < 7; i++) w.push(i * 1000, i * i);
    // retained: t=3..6 s, y=9,16,25,36; slope = Sxy/Sxx with x=-3..0: (−1.5·−12.5 −0.5·−5.5 +0.5·3.5 +1.5·14.5)/5 = 9
    const f = fitLine(w, 6000, 60_000);
    assert.equal(f.n, 4);
    close(f.slopePerS, 9);
  });

  it("timeToLimitS: seconds to the limit along the line, 0 past it, Infinity when moving away", () => {
    assert.equal(timeToLimitS(10, -2, 0, "down"), 5);
    assert.equal(timeToLimitS(10, 2, 0, "down"), Number.POSITIVE_INFINITY);
    assert.equal(timeToLimitS(10, 0, 0, "down"), Number.POSITIVE_INFINITY);
    assert.equal(timeToLimitS(-1, 5, 0, "down"), 0);
    assert.equal(timeToLimitS(50, 0.5, 100, "up"), 100);
    assert.equal(timeToLimitS(101, -1, 100, "up"), 0);
    assert.equal(timeToLimitS(Number.NaN, 1, 100, "up"), Number.POSITIVE_INFINITY);
  });

  it("timeToExhaustionS extrapolates the fitted trend to the limit", () => {
    const line = windowOf([1, 2, 3, 4, 5].map((i) => [i * 1000, 2 * i] as [number, number]));
    close(timeToExhaustionS(line, 5000, 10_000, 20, "up", 3), 5); // (20 - 10) / 2
    assert.equal(timeToExhaustionS(line, 5000, 10_000, 0, "down", 3), Number.POSITIVE_INFINITY);
    assert.equal(
      timeToExhaustionS(line, 5000, 10_000, 20, "up", 10),
      Number.POSITIVE_INFINITY,
      "too few samples",
    );
  });

  it("counterRatePerS counts increments and treats a drop as a restart from zero", () => {
    const w = windowOf([
      [0, 100],
      [1000, 110],
      [2000, 130],
      [3000, 5],
      [4000, 15],
    ]);
    close(counterRatePerS(w, 4000, 10_000), 45 / 4); // 10 + 20 + 5 + 10 over 4 s
    close(counterRatePerS(w, 4000, 1500), 10); // only 5 -> 15 over 1 s
    assert.equal(counterRatePerS(windowOf([[0, 1]]), 0, 1000), 0);
  });

  it("ewmaStep weighs by elapsed time", () => {
    assert.equal(ewmaStep(Number.NaN, 5, 1000, 1000), 5);
    close(ewmaStep(0, 10, 1000, 1000), 10 * (1 - Math.exp(-1)));
    close(ewmaStep(0, 10, 0, 1000), 0);
    close(ewmaStep(0, 10, 2000, 1000), 10 * (1 - Math.exp(-2)));
  });

  it("baselineStep: exponentially weighted mean and variance", () => {
    const b = createBaseline();
    baselineStep(b, 2, 0, 1000);
    assert.equal(b.mean, 2);
    assert.equal(b.variance, 0);
    const dt = 1000 * Math.LN2; // weight a = 0.5
    baselineStep(b, 4, dt, 1000);
    close(b.mean, 3); // 2 + 0.5*2
    close(b.variance, 1); // (1 - 0.5) * (0 + 0.5 * 4)
    close(b.absorbedMs, dt);
    baselineStep(b, 3, dt, 1000);
    close(b.mean, 3);
    close(b.variance, 0.5);
    // early on, samples weigh at least 1/(n+1): a plain running mean and variance
    const c = createBaseline();
    for (const v of [1, 2, 3, 4]) baselineStep(c, v, 1, 1e9);
    close(c.mean, 2.5);
    close(c.variance, 1.25);
  });

  it("zScore uses a standard-deviation floor", () => {
    assert.equal(zScore(5, 3, 4, 0), 1);
    close(zScore(5, 3, 4, 3), 2 / Math.sqrt(13));
    assert.equal(zScore(5, Number.NaN, 4, 0), 0);
  });

  it("logSeconds clamps to [ln 1, ln cap]", () => {
    assert.equal(logSeconds(Number.POSITIVE_INFINITY, 86_400), Math.log(86_400));
    assert.equal(logSeconds(1e9, 86_400), Math.log(86_400));
    assert.equal(logSeconds(0.5, 86_400), 0);
    assert.equal(logSeconds(100, 86_400), Math.log(100));
    assert.equal(logSeconds(Number.NaN, 86_400), Math.log(86_400));
  });

  it("windowMax over the span", () => {
    assert.equal(windowMax(w4(), 3000, 10_000), 5);
    assert.equal(windowMax(w4(), 2000, 10_000), 3);
    assert.equal(windowMax(w4(), 3000, 1500), 5);
    assert.ok(Number.isNaN(windowMax(createMetricWindow(4), 0, 1000)));
  });
});
