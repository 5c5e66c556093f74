import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import {
  FEATURE_INDEX as F,
  FEATURE_COUNT,
  missingFeatureVector,
} from "../../../coordinator/src/predict/extractor.ts";
import { serializeModel } from "../../../coordinator/src/predict/model.ts";
import type { TrainingSnapshot } from "../../../coordinator/src/predict/predictor.ts";
import {
  type CalibrationComponent,
  chooseThreshold,
  createStabilityOnlyModel,
  retrainDue,
  retrainModel,
  simulateAlarms,
  trainBaseModels,
} from "../../../coordinator/src/predict/train.ts";

/** Rows whose label is decided by the memory time-to-exhaustion feature. */
function rows(n: number, seed: number): TrainingSnapshot {
  const rng = createRng(seed);
  const X = new Float32Array(n * FEATURE_COUNT);
  const y = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const x = missingFeatureVector();
    const positive = rng.next() < 0.2;
    x[F.memTte] = positive ? rng.next() * 3.4 : 3.4 + rng.next() * 8;
    x[F.cpuLoadEwma] = rng.next();
    X.set(x, r * FEATURE_COUNT);
    y[r] = positive ? 1 : 0;
  }
  return { X, y, rows: n, dim: FEATURE_COUNT, negativeWeight: 1 };
}

function component(
  prob: number[],
  failures: number[],
): CalibrationComponent & { prob: Float32Array } {
  const n = prob.length;
  return {
    role: "edge",
    startMs: 0,
    tickMs: 1000,
    up: new Uint8Array(n).fill(1),
    ready: new Uint8Array(n).fill(1),
    parts: new Float32Array(n * 3),
    failures: failures.map((s) => ({ failMs: s * 1000, mode: "memory-leak" })),
    prob: Float32Array.from(prob),
  };
}

describe("predict/train", () => {
  it("trainBaseModels learns the deciding feature in both learners", () => {
    const d = rows(3000, 1);
    const m = trainBaseModels(d, createRng(2), { horizonMs: 30_000, gbt: { trees: 20 } });
    assert.ok(m.logistic.weights[F.memTte]! < 0, "shorter time to exhaustion, higher risk");
    const used = new Set(m.gbt.trees.flatMap((t) => [...t.feature].filter((f) => f >= 0)));
    assert.ok(used.has(F.memTte));
    assert.throws(
      () =>
        trainBaseModels({ ...d, y: new Uint8Array(d.rows) }, createRng(1), { horizonMs: 30_000 }),
      /both classes/,
    );
  });

  it("simulateAlarms applies the predictor's debounce and ignores down ticks", () => {
    const c = component([0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9], []);
    c.up[8] = 0;
    assert.deepEqual([...simulateAlarms(c, c.prob, 0.5)], [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]);
  });

  it("chooseThreshold picks the lowest threshold within the budget, counting one extra false alarm", () => {
    // 200 000 s (2.31 days): a blip of 0.6 far from the failure (a false alarm below 0.65),
    // then 0.8 right before the failure
    const n = 200_000;
    const p = new Array(n).fill(0.01);
    for (let i = 1000; i < 1010; i++) p[i] = 0.6;
    for (let i = n - 40; i < n - 10; i++) p[i] = 0.8;
    const c = component(p, [n - 10]);
    const choose = (budget: number, candidates = [0.3, 0.5, 0.65, 0.7, 0.9]) =>
      chooseThreshold(
        [{ ...c, parts: partsFor(c.prob) }],
        { bias: 0, stability: 0, logistic: 1, trees: 0 },
        {
          scoring: { horizonMs: 30_000, slackMs: 10_000 },
          falseAlarmsPerDayBudget: budget,
          candidates,
        },
      );
    // (1 + 1) / 2.31 = 0.86 per day below 0.65; (0 + 1) / 2.31 = 0.43 from 0.65 up
    const strict = choose(0.5);
    assert.equal(strict.threshold, 0.65);
    assert.equal(strict.falseAlarmsPerDay, 0);
    assert.equal(strict.recallGradual, 1);
    assert.equal(choose(1).threshold, 0.3);
    // nothing fits: the fewest false alarms, most conservative among equals
    assert.equal(choose(0.1).threshold, 0.9);
  });

  it("retrainModel refits trees and stack from labelled examples and carries thresholds over", () => {
    const base = trainBaseModels(rows(2000, 3), createRng(4), {
      horizonMs: 30_000,
      gbt: { trees: 10 },
    });
    const model = {
      ...base,
      stack: { bias: -2, stability: 0, logistic: 0.5, trees: 0.5 },
      thresholds: { default: 0.5, byRole: { edge: 0.4 } },
    };
    const next = retrainModel(model, rows(2000, 5), createRng(6), {
      trainedAtMs: 99,
      gbt: { trees: 10 },
    });
    assert.equal(next.trainedAtMs, 99);
    assert.notDeepEqual(next.gbt, model.gbt);
    assert.ok(next.thresholds.byRole.edge! > 0 && next.thresholds.byRole.edge! < 1);
    assert.ok(serializeModel(next).length > 0);
    assert.throws(
      () => retrainModel(model, rows(30, 1), createRng(1), { trainedAtMs: 0 }),
      /at least|>= 20/,
    );
  });

  it("the first retrain turns the stability-only model into a trained one", () => {
    const boot = createStabilityOnlyModel();
    const next = retrainModel(boot, rows(2000, 7), createRng(8), {
      trainedAtMs: 1,
      gbt: { trees: 10 },
    });
    assert.equal(next.gbt.trees.length, 10);
    assert.ok(next.logistic.weights[F.memTte]! < 0);
    assert.notEqual(next.standardizer.scale[F.memTte], 1);
    assert.ok(next.stack.trees !== 0 || next.stack.logistic !== 0);
  });

  it("retrainDue waits for the interval and for enough examples of each class", () => {
    const snap = rows(3000, 9); // about 600 positives
    assert.equal(retrainDue(undefined, 0, 1e12), false);
    assert.equal(retrainDue(snap, 0, 3_600_000), false, "too soon");
    assert.equal(retrainDue(snap, 0, 7 * 3_600_000), true);
    assert.equal(retrainDue(snap, 0, 7 * 3_600_000, { positivesMin: 10_000 }), false);
  });
});

/** Parts that make sigmoid(stack) reproduce `prob` with stack {logistic: 1}. */
function partsFor(prob: Float32Array): Float32Array {
  const parts = new Float32Array(prob.length * 3);
  for (let i = 0; i < prob.length; i++) parts[i * 3 + 1] = Math.log(prob[i]! / (1 - prob[i]!));
  return parts;
}
