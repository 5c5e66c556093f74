import assert from "node:assert/strict";
import { FEATURE_NAMES } from "../../../coordinator/src/predict/extractor.ts";
import {
  deserializeModel,
  type PredictorModel,
  serializeModel,
} from "../../../coordinator/src/predict/model.ts";
import { createPredictor, type Predictor } from "../../../coordinator/src/predict/predictor.ts";
import { createStabilityOnlyModel } from "../../../coordinator/src/predict/train.ts";
import type { MetricSample } from "../../../coordinator/src/predict/window.ts";

const GB = 1024 ** 3;

/**
 * Stability alone decides (the logistic regression learns online but has no
 * weight in the stack): p = 0.5 at 12.5 lost points, i.e. memory about 49 s
 * from exhaustion; 15 lost points give p = sigmoid(1) = 0.73.
 */
function model(): PredictorModel {
  return {
    ...createStabilityOnlyModel(30_000),
    stack: { bias: -5, stability: 40, logistic: 0, trees: 0 },
    thresholds: { default: 0.5, byRole: { edge: 0.5 } },
  };
}

function host(availBytes: number, load = 0.3): MetricSample[] {
  return [
    { name: "cpu.load", value: load, unit: "ratio" },
    { name: "mem.available_bytes", value: availBytes, unit: "bytes" },
    { name: "mem.used_bytes", value: 16 * GB - availBytes, unit: "bytes" },
    { name: "heartbeat.interval_ms", value: 1000, unit: "ms" },
  ];
}

/** Healthy for `healthyS` seconds, then memory drains to zero over `leakS` seconds. */
function drive(p: Predictor, id: string, fromS: number, healthyS: number, leakS: number) {
  const out = [];
  for (let s = 0; s < healthyS + leakS; s++) {
    const avail = s < healthyS ? 8 * GB : 8 * GB * (1 - (s - healthyS) / leakS);
    const t = (fromS + s) * 1000;
    p.observe(id, "edge", host(avail), t);
    out.push(p.predict(id, t));
  }
  return out;
}

describe("predict/predictor", () => {
  it("stays quiet while healthy and warming up; throws for unknown components", () => {
    const p = createPredictor({ model: model() });
    assert.throws(() => p.predict("x", 0), /unknown component "x"/);
    const preds = drive(p, "a", 0, 120, 0);
    assert.equal(preds[0]!.ready, false);
    assert.equal(preds[0]!.alarm, false);
    const last = preds[preds.length - 1]!;
    assert.equal(last.ready, true);
    assert.equal(last.alarm, false);
    assert.ok(last.probability < 0.05, `p ${last.probability}`);
    assert.equal(last.stability, 100);
    assert.equal(last.horizonMs, 30_000);
    assert.equal(last.threshold, 0.5);
    assert.deepEqual(last.topFeatures, []);
  });

  it("alarms before memory runs out and says why", () => {
    const p = createPredictor({ model: model() });
    const preds = drive(p, "a", 0, 120, 200);
    const first = preds.findIndex((x) => x.alarm);
    assert.ok(first > 120, "no alarm while healthy");
    const secondsLeft = 320 - first;
    assert.ok(secondsLeft >= 10 && secondsLeft <= 60, `alarm ${secondsLeft} s before exhaustion`);
    const at = preds[first]!;
    assert.ok(at.probability >= at.threshold);
    assert.ok(
      preds[first - 1]!.probability >= at.threshold,
      "debounced: two ticks above threshold",
    );
    assert.equal(at.topFeatures[0]!.name, "mem.available_bytes:tte_ln_s");
    assert.ok(at.topFeatures[0]!.contribution > 0);
    assert.ok(at.stability < 100);
  });

  it("returns the same prediction for a repeated tick without advancing the debounce", () => {
    const p = createPredictor({ model: model() });
    drive(p, "a", 0, 30, 0);
    p.observe("a", "edge", host(8 * GB), 30_000);
    const a = p.predict("a", 30_000);
    assert.equal(p.predict("a", 30_000), a);
  });

  it("failure labels turn the examples of the last H into positives and restart the segment", () => {
    const p = createPredictor({
      model: model(),
      online: { exampleIntervalMs: 5000, labelGraceMs: 5000 },
    });
    drive(p, "a", 0, 200, 0);
    const before = p.trainingSnapshot()!;
    const negBefore = before.rows - before.y.reduce((a, b) => a + b, 0);
    assert.ok(negBefore >= 30, "matured healthy examples became negatives");
    p.label("a", 200_000, "failed");
    const after = p.trainingSnapshot()!;
    const pos = after.y.reduce((a, b) => a + b, 0);
    // examples at 165, 170, ..., 195 s; those within 30 s before the failure (170..195) are positive
    assert.equal(pos, 6);
    assert.equal(after.rows - pos, negBefore + 1);
    p.observe("a", "edge", host(8 * GB), 201_000);
    assert.equal(p.predict("a", 201_000).ready, false, "windows restart after a failure");
  });

  it("mitigated labels drop the pending examples: acting on a prediction teaches nothing", () => {
    const p = createPredictor({ model: model() });
    drive(p, "a", 0, 200, 0);
    const rows = p.trainingSnapshot()!.rows;
    p.label("a", 200_000, "mitigated");
    for (let s = 200; s < 260; s++) {
      p.observe("a", "edge", host(8 * GB), s * 1000);
      p.predict("a", s * 1000);
    }
    const after = p.trainingSnapshot()!;
    assert.equal(
      after.y.reduce((a, b) => a + b, 0),
      0,
    );
    // the examples pending at the handover (165..200 s) were dropped, later ones mature normally
    const matured = Math.floor((260 - 200 - 40) / 5) + 1;
    assert.ok(after.rows <= rows + matured, `${after.rows} <= ${rows} + ${matured}`);
    assert.ok(after.rows > rows);
  });

  it("operator-healthy labels confirm pending examples as negatives", () => {
    const p = createPredictor({ model: model() });
    drive(p, "a", 0, 100, 0);
    const rows = p.trainingSnapshot()!.rows;
    p.label("a", 100_000, "operator-healthy");
    const after = p.trainingSnapshot()!;
    assert.ok(after.rows > rows);
    assert.equal(
      after.y.reduce((a, b) => a + b, 0),
      0,
    );
  });

  it("online updates change the logistic regression, and exportModel carries them", () => {
    const m = model();
    const p = createPredictor({ model: m });
    drive(p, "a", 0, 120, 200);
    p.label("a", 320_000, "failed");
    const exported = p.exportModel(5);
    assert.equal(exported.trainedAtMs, 5);
    assert.notDeepEqual([...exported.logistic.weights], [...m.logistic.weights]);
    const frozen = createPredictor({ model: m, online: false });
    drive(frozen, "a", 0, 120, 200);
    frozen.label("a", 320_000, "failed");
    assert.deepEqual([...frozen.exportModel(5).logistic.weights], [...m.logistic.weights]);
    assert.equal(frozen.trainingSnapshot(), undefined);
  });

  it("raises a role's threshold when false alarms exceed the target, and exports it", () => {
    const p = createPredictor({
      model: model(),
      thresholdControl: {
        targetFalseAlarmsPerDay: 1,
        minExposureComponentDays: 0.001,
        halfLifeComponentDays: 0.002, // about 3 min of one component: a step every 3 min
        stepLogit: 0.5,
      },
    });
    const initial = p.thresholdFor("edge");
    const seen = [initial];
    // memory dips (alarm) then recovers, many times: every episode is a false alarm
    let t = 0;
    for (let k = 0; k < 6; k++) {
      for (let s = 0; s < 200; s++, t += 1000) {
        // nearly out of memory for a while, then the process frees it again
        const avail =
          s < 100 ? 8 * GB : s < 150 ? 8 * GB - (s - 100) * 0.16 * GB : s < 160 ? 0.1 * GB : 8 * GB;
        p.observe("a", "edge", host(avail), t);
        const th = p.predict("a", t).threshold;
        if (th !== seen[seen.length - 1]) seen.push(th);
      }
    }
    assert.ok(p.thresholdFor("edge") > initial, `${p.thresholdFor("edge")} > ${initial}`);
    // at most one step per half-life of exposure (1200 s / 172.8 s)
    assert.ok(seen.length - 1 <= Math.ceil(1200 / 172.8), `${seen.length - 1} steps`);
    assert.equal(p.exportModel(0).thresholds.byRole.edge, p.thresholdFor("edge"));
    assert.equal(p.thresholdFor("encoder"), 0.5, "other roles untouched (default)");
  });

  it("a predictor built from committed bytes predicts exactly like the leader", () => {
    const m = model();
    const a = createPredictor({ model: m });
    const b = createPredictor({ model: deserializeModel(serializeModel(m)) });
    const pa = drive(a, "x", 0, 60, 100).map((x) => x.probability);
    const pb = drive(b, "x", 0, 60, 100).map((x) => x.probability);
    assert.deepEqual(pa, pb);
  });

  it("refuses models built for another feature set", () => {
    const bad = { ...model(), featureNames: [...FEATURE_NAMES].reverse() };
    assert.throws(() => createPredictor({ model: bad }), /feature names do not match/);
    const p = createPredictor({ model: model() });
    assert.throws(() => p.loadModel({ ...model(), featureSetVersion: 999 }), /feature set v999/);
  });

  it("forget frees a component", () => {
    const p = createPredictor({ model: model() });
    drive(p, "a", 0, 5, 0);
    assert.equal(p.size, 1);
    p.forget("a");
    assert.equal(p.size, 0);
    assert.throws(() => p.predict("a", 10_000), /unknown component/);
  });
});
