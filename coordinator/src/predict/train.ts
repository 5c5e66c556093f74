/**
 * Offline training and calibration, all pure (an Rng is passed in).
 *
 * 1. trainBaseModels: standardiser, logistic regression and trees on a fit set.
 * 2. fitStack: Platt-style logistic fit of the three model outputs on
 *    held-out rows, weighted back to the true class frequencies, so the
 *    result is a calibrated probability of failure within H.
 * 3. chooseThresholds: per role, the lowest threshold whose false alarms on
 *    held-out timelines stay within the budget, scored with evaluation.ts.
 * 4. retrainModel: the live path, from the predictor's labelled examples.
 */
import type { Rng } from "../../../common/rng.ts";
import {
  type AlarmPolicy,
  createAlarmState,
  DEFAULT_ALARM_POLICY,
  resetAlarm,
  stepAlarm,
} from "./alarm.ts";
import { type ScoredFailure, type ScoringWindow, scoreTimeline } from "./evaluation.ts";
import { FEATURE_NAMES, FEATURE_SET_VERSION } from "./extractor.ts";
import { type GbtParams, gbtMargin, trainGbt } from "./gbt.ts";
import {
  fitSmallLogistic,
  fitStandardizer,
  type LogisticTrainOptions,
  logisticLogit,
  logit,
  sigmoid,
  standardize,
  trainLogistic,
} from "./logistic.ts";
import type { PredictorModel, StackWeights, Thresholds } from "./model.ts";
import type { TrainingSnapshot } from "./predictor.ts";
import { stabilityScore } from "./stability.ts";

export interface LabelledRows {
  /** rows × dim raw feature vectors. */
  readonly X: Float32Array;
  readonly y: Uint8Array;
  readonly rows: number;
  readonly dim: number;
}

/** Rows of several sets, in order, as one set. */
export function concatRows(parts: readonly LabelledRows[]): LabelledRows {
  if (parts.length === 0) throw new RangeError("concatRows needs at least one set");
  const dim = parts[0]!.dim;
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  const X = new Float32Array(rows * dim);
  const y = new Uint8Array(rows);
  let r = 0;
  for (const p of parts) {
    if (p.dim !== dim) throw new RangeError(`row sets differ in width: ${p.dim} vs ${dim}`);
    X.set(p.X, r * dim);
    y.set(p.y, r);
    r += p.rows;
  }
  return { X, y, rows, dim };
}

export interface TrainOptions {
  horizonMs: number;
  trainedAtMs?: number;
  gbt?: GbtParams;
  logistic?: LogisticTrainOptions;
}

/** A model with trained base learners, an identity-like stack and placeholder thresholds. */
export function trainBaseModels(data: LabelledRows, rng: Rng, opts: TrainOptions): PredictorModel {
  if (data.dim !== FEATURE_NAMES.length) {
    throw new RangeError(
      `training rows have ${data.dim} features, expected ${FEATURE_NAMES.length}`,
    );
  }
  let pos = 0;
  for (let r = 0; r < data.rows; r++) pos += data.y[r]!;
  if (pos === 0 || pos === data.rows) {
    throw new RangeError(`training needs both classes; got ${pos} positives in ${data.rows} rows`);
  }
  const standardizer = fitStandardizer(data.X, data.rows, data.dim);
  const Z = new Float32Array(data.X.length);
  const zi = new Float64Array(data.dim);
  for (let r = 0; r < data.rows; r++) {
    standardize(standardizer, data.X.subarray(r * data.dim, (r + 1) * data.dim), zi);
    Z.set(zi, r * data.dim);
  }
  const positiveWeight = (data.rows - pos) / pos;
  const logistic = trainLogistic(Z, data.y, data.rows, data.dim, rng.fork(), {
    positiveWeight,
    ...opts.logistic,
  });
  const gbt = trainGbt(data, rng.fork(), opts.gbt);
  return {
    featureSetVersion: FEATURE_SET_VERSION,
    featureNames: FEATURE_NAMES,
    horizonMs: opts.horizonMs,
    trainedAtMs: opts.trainedAtMs ?? 0,
    standardizer,
    logistic,
    positiveWeight,
    gbt,
    stack: { bias: 0, stability: 0, logistic: 0, trees: 1 },
    thresholds: { default: 0.5, byRole: {} },
  };
}

/** The three stack inputs for one feature vector: instability in [0,1], logistic logit, tree margin. */
export function stackInputs(
  model: PredictorModel,
  x: ArrayLike<number>,
  z: Float64Array,
): [number, number, number] {
  standardize(model.standardizer, x, z);
  return [
    (100 - stabilityScore(x)) / 100,
    logisticLogit(model.logistic, z),
    gbtMargin(model.gbt, x),
  ];
}

export function stackLogit(
  s: StackWeights,
  instability: number,
  lrLogit: number,
  margin: number,
): number {
  return s.bias + s.stability * instability + s.logistic * lrLogit + s.trees * margin;
}

/** Platt scaling of the stacked outputs. `parts` is rows × 3 as from stackInputs. */
export function fitStack(
  parts: Float64Array,
  y: Uint8Array,
  weight: Float64Array | undefined,
  rows: number,
): StackWeights {
  const m = fitSmallLogistic(parts, y, weight, rows, 3, 1e-3, 40);
  return { bias: m.bias, stability: m.weights[0]!, logistic: m.weights[1]!, trees: m.weights[2]! };
}

export interface CalibrationComponent {
  readonly role: string;
  readonly startMs: number;
  readonly tickMs: number;
  readonly up: Uint8Array;
  /** 1 where the predictor was past warm-up (alarms are possible). */
  readonly ready: Uint8Array;
  /** ticks × 3 stack inputs. */
  readonly parts: Float32Array;
  readonly failures: readonly ScoredFailure[];
}

export interface ThresholdChoice {
  readonly threshold: number;
  readonly falseAlarmsPerDay: number;
  readonly recallGradual: number;
}

export interface ThresholdOptions {
  scoring: ScoringWindow;
  /** False-alarm budget per component-day on the calibration data. */
  falseAlarmsPerDayBudget: number;
  policy?: AlarmPolicy;
  releaseRatio?: number;
  candidates?: readonly number[];
}

/** Candidate thresholds, evenly spaced in log-odds between 0.02 and 0.995. */
export function thresholdCandidates(count = 80): number[] {
  const lo = logit(0.02);
  const hi = logit(0.995);
  return Array.from({ length: count }, (_, i) => sigmoid(lo + ((hi - lo) * i) / (count - 1)));
}

/** Probabilities per tick for a calibration component under a stack. */
export function componentProbabilities(c: CalibrationComponent, s: StackWeights): Float32Array {
  const n = c.up.length;
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    p[i] = sigmoid(stackLogit(s, c.parts[i * 3]!, c.parts[i * 3 + 1]!, c.parts[i * 3 + 2]!));
  }
  return p;
}

/** Alarm ticks for one component at one threshold, with the predictor's debouncing. */
export function simulateAlarms(
  c: CalibrationComponent,
  prob: Float32Array,
  threshold: number,
  policy: AlarmPolicy = DEFAULT_ALARM_POLICY,
  releaseRatio = 0.8,
): Uint8Array {
  const n = c.up.length;
  const alarm = new Uint8Array(n);
  const st = createAlarmState();
  for (let i = 0; i < n; i++) {
    if (c.up[i] !== 1 || c.ready[i] !== 1) {
      resetAlarm(st);
      continue;
    }
    const p = prob[i]!;
    alarm[i] = stepAlarm(st, p >= threshold, p < threshold * releaseRatio, policy) ? 1 : 0;
  }
  return alarm;
}

/**
 * The lowest candidate threshold whose false alarms on the calibration
 * timelines, counted with one extra ((falseAlarms + 1) / days, so a few
 * component-days of luck cannot pass), stay within the budget — at that
 * threshold and at every higher candidate. Picking the lowest threshold that
 * happens to fit is biased towards luck; requiring the whole range above it
 * to fit removes most of that bias. If none fits, the candidate with the
 * fewest false alarms (the highest among equals) is returned.
 */
export function chooseThreshold(
  comps: readonly CalibrationComponent[],
  stack: StackWeights,
  opts: ThresholdOptions,
): ThresholdChoice {
  const candidates = [...(opts.candidates ?? thresholdCandidates())].sort((a, b) => a - b);
  const probs = comps.map((c) => componentProbabilities(c, stack));
  const choices: ThresholdChoice[] = [];
  const fits: boolean[] = [];
  for (const th of candidates) {
    let fa = 0;
    let upMs = 0;
    let failures = 0;
    let detected = 0;
    comps.forEach((c, k) => {
      const alarm = simulateAlarms(c, probs[k]!, th, opts.policy, opts.releaseRatio);
      const s = scoreTimeline(
        { startMs: c.startMs, tickMs: c.tickMs, up: c.up, alarm, failures: c.failures },
        opts.scoring,
      );
      fa += s.falseAlarms;
      upMs += s.upMs;
      for (const f of s.failures) {
        if (f.mode === "sudden") continue;
        failures++;
        if (f.detected) detected++;
      }
    });
    const days = upMs / 86_400_000;
    choices.push({
      threshold: th,
      falseAlarmsPerDay: days > 0 ? fa / days : 0,
      recallGradual: failures > 0 ? detected / failures : Number.NaN,
    });
    fits.push(days > 0 && (fa + 1) / days <= opts.falseAlarmsPerDayBudget);
  }
  for (let i = 0; i < candidates.length; i++) {
    if (fits.slice(i).every((f) => f)) return choices[i]!;
  }
  let best = choices[choices.length - 1]!;
  for (const c of choices) if (c.falseAlarmsPerDay < best.falseAlarmsPerDay) best = c;
  return best;
}

/** Per-role thresholds; unknown roles get the most conservative one. */
export function chooseThresholds(
  comps: readonly CalibrationComponent[],
  stack: StackWeights,
  opts: ThresholdOptions,
): { thresholds: Thresholds; choices: Record<string, ThresholdChoice> } {
  const roles = [...new Set(comps.map((c) => c.role))].sort();
  const byRole: Record<string, number> = {};
  const choices: Record<string, ThresholdChoice> = {};
  for (const role of roles) {
    const choice = chooseThreshold(
      comps.filter((c) => c.role === role),
      stack,
      opts,
    );
    byRole[role] = choice.threshold;
    choices[role] = choice;
  }
  const all = Object.values(byRole);
  return { thresholds: { default: all.length > 0 ? Math.max(...all) : 0.5, byRole }, choices };
}

/**
 * Retrains from a predictor's labelled examples: standardiser, logistic
 * regression and trees on 75% of the rows, the stack on the other 25%
 * (weighted back to the true class balance). Starting from the
 * stability-only model this is the first real training. Thresholds are
 * carried over by quantile matching: each role's new threshold passes the
 * same fraction of held-out negatives as the old model's threshold did, so
 * the false-alarm rate stays put and the live threshold control takes it
 * from there.
 */
export function retrainModel(
  model: PredictorModel,
  snap: TrainingSnapshot,
  rng: Rng,
  opts: { trainedAtMs: number; gbt?: GbtParams },
): PredictorModel {
  const { rows, dim } = snap;
  let pos = 0;
  for (let r = 0; r < rows; r++) pos += snap.y[r]!;
  if (pos < 20 || rows - pos < 20) {
    throw new RangeError(
      `retraining needs >= 20 examples of each class; have ${pos} positive, ${rows - pos} negative`,
    );
  }
  const fitIdx: number[] = [];
  const holdIdx: number[] = [];
  for (let r = 0; r < rows; r++) (rng.next() < 0.75 ? fitIdx : holdIdx).push(r);
  const take = (idx: number[]) => {
    const X = new Float32Array(idx.length * dim);
    const y = new Uint8Array(idx.length);
    idx.forEach((r, i) => {
      X.set(snap.X.subarray(r * dim, (r + 1) * dim), i * dim);
      y[i] = snap.y[r]!;
    });
    return { X, y, rows: idx.length, dim };
  };
  const fit = take(fitIdx);
  const hold = take(holdIdx);
  const fresh = trainBaseModels(fit, rng.fork(), {
    horizonMs: model.horizonMs,
    ...(opts.gbt ? { gbt: opts.gbt } : {}),
  });
  const next: PredictorModel = {
    ...model,
    standardizer: fresh.standardizer,
    logistic: fresh.logistic,
    positiveWeight: fresh.positiveWeight,
    gbt: fresh.gbt,
    trainedAtMs: opts.trainedAtMs,
  };
  const z = new Float64Array(dim);
  const oldParts = new Float64Array(hold.rows * 3);
  const newParts = new Float64Array(hold.rows * 3);
  for (let r = 0; r < hold.rows; r++) {
    const x = hold.X.subarray(r * dim, (r + 1) * dim);
    oldParts.set(stackInputs(model, x, z), r * 3);
    newParts.set(stackInputs(next, x, z), r * 3);
  }
  const weights = new Float64Array(hold.rows);
  for (let r = 0; r < hold.rows; r++) weights[r] = hold.y[r] === 1 ? 1 : snap.negativeWeight;
  const stack = fitStack(newParts, hold.y, weights, hold.rows);
  const negOld: number[] = [];
  const negNew: number[] = [];
  for (let r = 0; r < hold.rows; r++) {
    if (hold.y[r] === 1) continue;
    negOld.push(
      sigmoid(
        stackLogit(model.stack, oldParts[r * 3]!, oldParts[r * 3 + 1]!, oldParts[r * 3 + 2]!),
      ),
    );
    negNew.push(
      sigmoid(stackLogit(stack, newParts[r * 3]!, newParts[r * 3 + 1]!, newParts[r * 3 + 2]!)),
    );
  }
  negNew.sort((a, b) => a - b);
  const mapThreshold = (old: number): number => {
    if (negOld.length === 0) return old;
    const passing = negOld.filter((p) => p >= old).length / negOld.length;
    const k = Math.min(negNew.length - 1, Math.max(0, Math.floor((1 - passing) * negNew.length)));
    return Math.min(0.995, Math.max(0.02, negNew[k]!));
  };
  const byRole: Record<string, number> = {};
  for (const [role, th] of Object.entries(model.thresholds.byRole)) byRole[role] = mapThreshold(th);
  return {
    ...next,
    stack,
    thresholds: { default: mapThreshold(model.thresholds.default), byRole },
  };
}

/**
 * A model that needs no training data: the stability score alone, mapped to a
 * probability (50% at 30 points lost), with empty trees and a zero logistic
 * regression. For a fresh cluster until a trained model is committed; the
 * online logistic regression starts learning from it at once.
 */
export function createStabilityOnlyModel(horizonMs = 30_000): PredictorModel {
  const dim = FEATURE_NAMES.length;
  return {
    featureSetVersion: FEATURE_SET_VERSION,
    featureNames: FEATURE_NAMES,
    horizonMs,
    trainedAtMs: 0,
    standardizer: { mean: new Float64Array(dim), scale: new Float64Array(dim).fill(1) },
    logistic: { weights: new Float64Array(dim), bias: 0 },
    positiveWeight: 1,
    gbt: { baseMargin: 0, trees: [] },
    stack: { bias: -6, stability: 20, logistic: 0, trees: 0 },
    thresholds: { default: 0.5, byRole: {} },
  };
}

export interface RetrainPolicy {
  /** Least time between retrains. Default 6 h. */
  intervalMs?: number;
  /** Least positive examples gathered. Default 50. */
  positivesMin?: number;
  /** Least negative examples gathered. Default 500. */
  negativesMin?: number;
}

/**
 * Whether the leader should retrain now (pure; the caller keeps
 * `lastRetrainMs`, e.g. the model's trainedAtMs). Then:
 * trainer.retrain({ modelBytes: serializeModel(predictor.exportModel(t)),
 * snapshot, ... }) off the event loop, propose the bytes through Raft, and
 * `loadModel(deserializeModel(bytes))` on every replica when committed.
 */
export function retrainDue(
  snap: TrainingSnapshot | undefined,
  lastRetrainMs: number,
  tMs: number,
  policy: RetrainPolicy = {},
): boolean {
  if (snap === undefined) return false;
  if (tMs - lastRetrainMs < (policy.intervalMs ?? 6 * 3_600_000)) return false;
  let pos = 0;
  for (let r = 0; r < snap.rows; r++) pos += snap.y[r]!;
  return pos >= (policy.positivesMin ?? 50) && snap.rows - pos >= (policy.negativesMin ?? 500);
}
