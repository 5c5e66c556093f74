import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import {
  FEATURE_INDEX as F,
  missingFeatureVector,
} from "../../../coordinator/src/predict/extractor.ts";
import { gbtContributions, gbtMargin, trainGbt } from "../../../coordinator/src/predict/gbt.ts";
import {
  fitSmallLogistic,
  fitStandardizer,
  logisticLogit,
  logit,
  sgdStep,
  sigmoid,
  standardize,
  trainLogistic,
} from "../../../coordinator/src/predict/logistic.ts";
import { rampPenalty, stabilityScore } from "../../../coordinator/src/predict/stability.ts";
import { close } from "./assert-close.ts";

describe("predict/stability", () => {
  it("rampPenalty is 0 at fine, 1 at bad, linear between, either direction", () => {
    assert.equal(rampPenalty(0.9, 0.9, 1), 0);
    close(rampPenalty(0.95, 0.9, 1), 0.5);
    assert.equal(rampPenalty(2, 0.9, 1), 1);
    close(rampPenalty(0.775, 0.95, 0.6), 0.5); // falling ramp (fps ratio)
    assert.equal(rampPenalty(1, 0.95, 0.6), 0);
  });

  it("scores 100 for the neutral vector and attributes lost points to the worst feature of each group", () => {
    const x = missingFeatureVector();
    assert.equal(stabilityScore(x), 100);
    // memory group (weight 15): tte of 30 s -> penalty 1; ratio 0.0275 -> 0.5; group takes the worst
    x[F.memTte] = Math.log(30);
    x[F.memAvailRatio] = 0.0275;
    // encoder fps (weight 10): ratio 0.775 -> 0.5
    x[F.fpsRatio] = 0.775;
    const contrib = new Float64Array(x.length);
    close(stabilityScore(x, contrib), 100 - 15 - 5);
    close(contrib[F.memTte]!, 15);
    assert.equal(contrib[F.memAvailRatio], 0);
    close(contrib[F.fpsRatio]!, 5);
  });
});

describe("predict/logistic", () => {
  it("sigmoid and logit invert each other and are stable at the extremes", () => {
    close(sigmoid(0), 0.5);
    close(sigmoid(logit(0.2)), 0.2);
    assert.equal(sigmoid(-1000), 0);
    assert.equal(sigmoid(1000), 1);
    assert.ok(Number.isFinite(logit(0)) && Number.isFinite(logit(1)));
  });

  it("standardizer: column mean and population sd; constant columns get scale 1; clipped", () => {
    const X = Float32Array.from([1, 5, 3, 5]); // 2 rows x 2 cols
    const s = fitStandardizer(X, 2, 2);
    assert.deepEqual([...s.mean], [2, 5]);
    assert.deepEqual([...s.scale], [1, 1]);
    const z = standardize(s, [4, 5], new Float64Array(2));
    assert.deepEqual([...z], [2, 0]);
    assert.deepEqual([...standardize(s, [100, 5], new Float64Array(2))], [8, 0]);
  });

  it("sgdStep follows the hand-computed gradient", () => {
    const m = { weights: Float64Array.from([0.5, -1]), bias: 0.25 };
    const z = [2, 1];
    const s = 0.25 + 0.5 * 2 - 1 * 1; // 0.25
    const g = sigmoid(s) - 1;
    sgdStep(m, z, 1, 2, 0.1, 0.01);
    close(m.weights[0]!, 0.5 - 0.1 * (2 * g * 2 + 0.01 * 0.5));
    close(m.weights[1]!, -1 - 0.1 * (2 * g * 1 + 0.01 * -1));
    close(m.bias, 0.25 - 0.1 * 2 * g);
    close(logisticLogit(m, [0, 0]), m.bias);
  });

  it("fitSmallLogistic recovers known coefficients", () => {
    const rng = createRng(3);
    const rows = 4000;
    const X = new Float64Array(rows * 2);
    const y = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      const a = rng.next() * 4 - 2;
      const b = rng.next() * 4 - 2;
      X[r * 2] = a;
      X[r * 2 + 1] = b;
      y[r] = rng.next() < sigmoid(-1 + 2 * a - 0.5 * b) ? 1 : 0;
    }
    const m = fitSmallLogistic(X, y, undefined, rows, 2);
    assert.ok(Math.abs(m.bias + 1) < 0.2, `bias ${m.bias}`);
    assert.ok(Math.abs(m.weights[0]! - 2) < 0.3, `w0 ${m.weights[0]}`);
    assert.ok(Math.abs(m.weights[1]! + 0.5) < 0.2, `w1 ${m.weights[1]}`);
  });

  it("trainLogistic separates a separable problem, deterministically", () => {
    const rows = 400;
    const Z = new Float32Array(rows);
    const y = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      Z[r] = (r / rows) * 4 - 2;
      y[r] = Z[r]! > 0.5 ? 1 : 0;
    }
    const a = trainLogistic(Z, y, rows, 1, createRng(1));
    const b = trainLogistic(Z, y, rows, 1, createRng(1));
    assert.deepEqual([...a.weights], [...b.weights]);
    assert.ok(logisticLogit(a, [1.5]) > 0 && logisticLogit(a, [-1]) < 0);
  });
});

describe("predict/gbt", () => {
  function dataset(rows: number) {
    const rng = createRng(11);
    const dim = 3;
    const X = new Float32Array(rows * dim);
    const y = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < dim; j++) X[r * dim + j] = rng.next();
      // feature 1 decides, with 5% label noise; feature 0 and 2 are noise
      const clean = X[r * dim + 1]! > 0.7 ? 1 : 0;
      y[r] = rng.next() < 0.05 ? 1 - clean : clean;
    }
    return { X, y, rows, dim };
  }

  it("learns a threshold on the informative feature and attributes the margin to it", () => {
    const data = dataset(3000);
    const m = trainGbt(data, createRng(5), { trees: 30 });
    assert.ok(gbtMargin(m, [0.5, 0.9, 0.5]) > 1);
    assert.ok(gbtMargin(m, [0.5, 0.2, 0.5]) < -1);
    const contrib = new Float64Array(3);
    const x = [0.5, 0.9, 0.5];
    const margin = gbtContributions(m, x, contrib);
    close(margin, gbtMargin(m, x));
    // margin = base + Σ root values + Σ contributions
    const roots = m.trees.reduce((a, t) => a + t.value[0]!, 0);
    close(m.baseMargin + roots + contrib[0]! + contrib[1]! + contrib[2]!, margin, 1e-9);
    assert.ok(contrib[1]! > Math.abs(contrib[0]!) + Math.abs(contrib[2]!));
  });

  it("is deterministic for a seed and keeps children after parents", () => {
    const data = dataset(500);
    const a = trainGbt(data, createRng(9), { trees: 5 });
    const b = trainGbt(data, createRng(9), { trees: 5 });
    assert.deepEqual(a, b);
    for (const t of a.trees) {
      for (let i = 0; i < t.feature.length; i++) {
        if (t.feature[i]! >= 0) assert.ok(t.left[i]! > i && t.right[i]! > i);
      }
    }
    assert.throws(() => trainGbt({ ...data, rows: 0 }, createRng(1)), /at least one row/);
  });
});
