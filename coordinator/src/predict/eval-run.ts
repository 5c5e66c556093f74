/**
 * The evaluation pipeline, per seed, pure (the worker pool in eval-pool.ts
 * only moves these calls onto threads; results do not depend on how seeds are
 * spread across workers).
 *
 * Seeds are split three ways by position in the range: index % 5 == 0 fits
 * the base models, index % 5 == 1 calibrates (stack + thresholds), the rest
 * are held out for testing. Nothing from a test seed reaches training, except
 * what the live system would also learn: during a test run the predictor
 * learns online from the failure labels of that run, causally (a label is
 * delivered `detectDelayMs` after the failure and only affects later ticks).
 */
import { createPredictLinearDetector, createStaticThresholdDetector } from "./baselines.ts";
import {
  DEFAULT_SCORING,
  type ScoredFailure,
  type ScoringWindow,
  scoreTimeline,
  type TimelineScore,
} from "./evaluation.ts";
import { createFeatureExtractor, FEATURE_COUNT } from "./extractor.ts";
import type { GbtParams } from "./gbt.ts";
import { deserializeModel, type PredictorModel } from "./model.ts";
import { createPredictor, type TopFeature } from "./predictor.ts";
import {
  createTrace,
  type FailureMode,
  type SimulatedComponent,
  type TraceOptions,
} from "./trace.ts";
import { type CalibrationComponent, type LabelledRows, stackInputs } from "./train.ts";

export interface EvalConfig {
  readonly scoring: ScoringWindow;
  readonly trace: TraceOptions;
  /** Healthy ticks kept for training: one in this many. */
  readonly negativeStride: number;
  /** Every tick this close before a failure is kept (hard examples). */
  readonly denseBeforeFailureMs: number;
  /** Delay between a failure and its label reaching the predictor. */
  readonly detectDelayMs: number;
  /** False alarms per component-day allowed on calibration data when choosing thresholds. */
  readonly falseAlarmsPerDayBudget: number;
  readonly gbt: GbtParams;
  /** Online learning during test runs. */
  readonly online: boolean;
}

export const DEFAULT_EVAL_CONFIG: EvalConfig = {
  scoring: DEFAULT_SCORING,
  trace: { components: 5, durationMs: 6 * 3_600_000 },
  negativeStride: 10,
  denseBeforeFailureMs: 180_000,
  detectDelayMs: 3000,
  falseAlarmsPerDayBudget: 0.5,
  gbt: { trees: 80, maxDepth: 3, learningRate: 0.15, subsample: 0.7 },
  online: true,
};

export type SeedRole = "fit" | "calibrate" | "test";

export function seedRole(indexInRange: number): SeedRole {
  const k = indexInRange % 5;
  return k === 0 ? "fit" : k === 1 ? "calibrate" : "test";
}

function ticksOf(durationMs: number, tickMs: number): number {
  return Math.floor(durationMs / tickMs);
}

/** Label: a failure within (t, t + H]. Sampling weight: 1 near failures, `stride` elsewhere (0 = skipped). */
function tickLabel(
  c: SimulatedComponent,
  t: number,
  tickIndex: number,
  cfg: EvalConfig,
  cursor: { i: number },
): { y: 0 | 1; weight: number } {
  while (cursor.i < c.failures.length && c.failures[cursor.i]!.failMs <= t) cursor.i++;
  const next = c.failures[cursor.i];
  const until = next === undefined ? Number.POSITIVE_INFINITY : next.failMs - t;
  const y = until <= cfg.scoring.horizonMs ? 1 : 0;
  if (until <= cfg.denseBeforeFailureMs) return { y, weight: 1 };
  return { y, weight: tickIndex % cfg.negativeStride === 0 ? cfg.negativeStride : 0 };
}

/** Feature rows of one fit seed. */
export function trainingRows(seed: number, cfg: EvalConfig): LabelledRows {
  const trace = createTrace(seed, cfg.trace);
  const ex = createFeatureExtractor();
  const dim = FEATURE_COUNT;
  const n = ticksOf(trace.durationMs, trace.tickMs);
  const rows: number[] = [];
  const labels: number[] = [];
  const x = new Float64Array(dim);
  const cursors = trace.components.map(() => ({ i: 0 }));
  for (let i = 0; i < n; i++) {
    const t = trace.startMs + i * trace.tickMs;
    trace.components.forEach((c, k) => {
      if (!c.step(t)) return;
      ex.observe(c.id, c.role, c.samples, t);
      const { y, weight } = tickLabel(c, t, i, cfg, cursors[k]!);
      if (weight === 0) return;
      if (!ex.extract(c.id, t, x)) return;
      for (let j = 0; j < dim; j++) rows.push(x[j]!);
      labels.push(y);
    });
    deliverFailures(trace.components, t, (c, f) => ex.resetSegment(c.id, f));
  }
  return { X: Float32Array.from(rows), y: Uint8Array.from(labels), rows: labels.length, dim };
}

/** Calls `fn` for failures whose label is due at tick t (the tick right after the failure here). */
function deliverFailures(
  comps: readonly SimulatedComponent[],
  t: number,
  fn: (c: SimulatedComponent, failMs: number) => void,
  delayMs = 0,
  tickMs = 1000,
): void {
  for (const c of comps) {
    for (const f of c.failures) {
      const due = f.failMs + delayMs;
      if (due <= t && due > t - tickMs) fn(c, f.failMs);
    }
  }
}

export interface CalibrationSeed {
  readonly components: CalibrationComponent[];
  /** Sampled rows for the stack fit: rows × 3 inputs, label, weight restoring class frequencies. */
  readonly stackParts: Float64Array;
  readonly stackY: Uint8Array;
  readonly stackWeight: Float64Array;
}

export function calibrationSeed(
  seed: number,
  cfg: EvalConfig,
  model: PredictorModel,
): CalibrationSeed {
  const trace = createTrace(seed, cfg.trace);
  const ex = createFeatureExtractor();
  const n = ticksOf(trace.durationMs, trace.tickMs);
  const x = new Float64Array(FEATURE_COUNT);
  const z = new Float64Array(FEATURE_COUNT);
  const comps = trace.components.map((c) => ({
    role: c.role,
    startMs: trace.startMs,
    tickMs: trace.tickMs,
    up: new Uint8Array(n),
    ready: new Uint8Array(n),
    parts: new Float32Array(n * 3),
    failures: c.failures.map((f): ScoredFailure => ({ failMs: f.failMs, mode: f.mode })),
  }));
  const parts: number[] = [];
  const ys: number[] = [];
  const ws: number[] = [];
  const cursors = trace.components.map(() => ({ i: 0 }));
  for (let i = 0; i < n; i++) {
    const t = trace.startMs + i * trace.tickMs;
    trace.components.forEach((c, k) => {
      if (!c.step(t)) return;
      const cc = comps[k]!;
      cc.up[i] = 1;
      ex.observe(c.id, c.role, c.samples, t);
      const ready = ex.extract(c.id, t, x);
      cc.ready[i] = ready ? 1 : 0;
      const p = stackInputs(model, x, z);
      cc.parts[i * 3] = p[0];
      cc.parts[i * 3 + 1] = p[1];
      cc.parts[i * 3 + 2] = p[2];
      const { y, weight } = tickLabel(c, t, i, cfg, cursors[k]!);
      if (weight > 0 && ready) {
        parts.push(p[0], p[1], p[2]);
        ys.push(y);
        ws.push(weight);
      }
    });
    deliverFailures(trace.components, t, (c, f) => ex.resetSegment(c.id, f));
  }
  return {
    components: comps,
    stackParts: Float64Array.from(parts),
    stackY: Uint8Array.from(ys),
    stackWeight: Float64Array.from(ws),
  };
}

export type DetectorName = "model" | "static-threshold" | "predict-linear";
export const DETECTORS: readonly DetectorName[] = ["model", "static-threshold", "predict-linear"];

export interface ComponentResult {
  readonly id: string;
  readonly role: string;
  readonly mode: FailureMode;
  readonly scores: Record<DetectorName, TimelineScore>;
}

export interface Explanation {
  readonly componentId: string;
  readonly mode: FailureMode;
  readonly leadS: number;
  readonly probability: number;
  readonly topFeatures: readonly TopFeature[];
}

export interface SeedResult {
  readonly seed: number;
  readonly components: ComponentResult[];
  /** The model's reasons at the first alarm before each detected failure (a sample for the report). */
  readonly explanations: Explanation[];
}

export function testSeed(seed: number, cfg: EvalConfig, modelBytes: Uint8Array): SeedResult {
  const trace = createTrace(seed, cfg.trace);
  const predictor = createPredictor({
    model: deserializeModel(modelBytes),
    online: cfg.online ? {} : false,
  });
  const n = ticksOf(trace.durationMs, trace.tickMs);
  const per = trace.components.map((_c) => ({
    up: new Uint8Array(n),
    alarms: {
      model: new Uint8Array(n),
      "static-threshold": new Uint8Array(n),
      "predict-linear": new Uint8Array(n),
    },
    staticRule: createStaticThresholdDetector(),
    linear: createPredictLinearDetector({ horizonMs: cfg.scoring.horizonMs }),
    firstAlarm: undefined as
      | { tMs: number; probability: number; top: readonly TopFeature[] }
      | undefined,
    failureCursor: 0,
  }));
  const explanations: Explanation[] = [];
  for (let i = 0; i < n; i++) {
    const t = trace.startMs + i * trace.tickMs;
    trace.components.forEach((c, k) => {
      const s = per[k]!;
      if (!c.step(t)) {
        s.firstAlarm = undefined;
        return;
      }
      s.up[i] = 1;
      predictor.observe(c.id, c.role, c.samples, t);
      const p = predictor.predict(c.id, t);
      if (p.alarm) {
        s.alarms.model[i] = 1;
        if (s.firstAlarm === undefined)
          s.firstAlarm = { tMs: t, probability: p.probability, top: p.topFeatures };
      } else {
        s.firstAlarm = undefined;
      }
      if (s.staticRule.step(c.samples, t)) s.alarms["static-threshold"][i] = 1;
      if (s.linear.step(c.samples, t)) s.alarms["predict-linear"][i] = 1;
    });
    // Record the explanation at the moment of failure, then deliver the label after the detector delay.
    trace.components.forEach((c, k) => {
      const s = per[k]!;
      const f = c.failures[s.failureCursor];
      if (f !== undefined && f.failMs === t + trace.tickMs) {
        if (
          s.firstAlarm !== undefined &&
          f.failMs - s.firstAlarm.tMs <= cfg.scoring.horizonMs + cfg.scoring.slackMs + 600_000
        ) {
          explanations.push({
            componentId: c.id,
            mode: f.mode,
            leadS: (f.failMs - s.firstAlarm.tMs) / 1000,
            probability: s.firstAlarm.probability,
            topFeatures: s.firstAlarm.top,
          });
        }
        s.failureCursor++;
      }
    });
    deliverFailures(
      trace.components,
      t,
      (c, f) => predictor.label(c.id, f, "failed"),
      cfg.detectDelayMs,
      trace.tickMs,
    );
  }
  const components = trace.components.map((c, k): ComponentResult => {
    const s = per[k]!;
    const failures = c.failures.map((f): ScoredFailure => ({ failMs: f.failMs, mode: f.mode }));
    const score = (alarm: Uint8Array) =>
      scoreTimeline(
        { startMs: trace.startMs, tickMs: trace.tickMs, up: s.up, alarm, failures },
        cfg.scoring,
      );
    return {
      id: c.id,
      role: c.role,
      mode: c.mode,
      scores: {
        model: score(s.alarms.model),
        "static-threshold": score(s.alarms["static-threshold"]),
        "predict-linear": score(s.alarms["predict-linear"]),
      },
    };
  });
  return { seed, components, explanations };
}
