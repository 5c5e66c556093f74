/**
 * The Predictor: per-component features in, a calibrated probability that the
 * component fails within the horizon out, with an alarm and the reasons.
 *
 * Pure: time arrives as `tMs` arguments, nothing here reads a clock, starts a
 * timer or does I/O. Call order per component: `observe` then `predict` once
 * per tick (alarm debouncing counts predict calls; a repeated call at the same
 * tMs returns the previous prediction).
 *
 * Models: a hand-weighted stability score, an online logistic regression and
 * gradient-boosted trees, combined by a stack fitted on held-out data (Platt
 * scaling of the three outputs). Each role has its own alarm threshold, set at
 * training to meet a false-alarm target and raised here when the false alarms
 * actually observed exceed the target (calibration drift), then lowered back
 * towards the calibrated value when they subside.
 *
 * Learning from the live system: every `exampleIntervalMs` a ready component's
 * feature vector is kept in a small per-component buffer. An example at time t
 * becomes a negative once t + H + labelGraceMs passes with no failure label,
 * and a positive when a failure label arrives at f with f - H <= t < f.
 * A "mitigated" label (we handed viewers over before a failure could happen)
 * drops the buffered examples: the outcome is unknown, and training on them
 * as healthy would teach the model that predicted failures never happen.
 * Labelled examples update the logistic regression at once and feed bounded
 * rings from which the trees are retrained off the event loop (gbt-worker.ts).
 */
import {
  type AlarmPolicy,
  type AlarmState,
  createAlarmState,
  DEFAULT_ALARM_POLICY,
  resetAlarm,
  stepAlarm,
} from "./alarm.ts";
import {
  createFeatureExtractor,
  type ExtractorOptions,
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_SET_VERSION,
  type FeatureExtractor,
} from "./extractor.ts";
import { type GbtModel, gbtContributions, gbtMargin } from "./gbt.ts";
import { logisticLogit, logit, sgdStep, sigmoid, standardize } from "./logistic.ts";
import type { PredictorModel, StackWeights } from "./model.ts";
import { stabilityScore } from "./stability.ts";
import type { MetricSample } from "./window.ts";

export type LabelKind = "failed" | "mitigated" | "operator-healthy" | "operator-failed";

export interface TopFeature {
  readonly name: string;
  /** The feature's value (see FEATURE_NAMES for units). */
  readonly value: number;
  /** Log-odds this feature adds to the failure probability (all three models, stacked). */
  readonly contribution: number;
}

export interface Prediction {
  readonly componentId: string;
  readonly role: string;
  readonly tMs: number;
  /** Calibrated probability that the component fails within horizonMs. */
  readonly probability: number;
  readonly threshold: number;
  readonly alarm: boolean;
  readonly horizonMs: number;
  /** Stability score 0..100 (100 = healthy). */
  readonly stability: number;
  /** Features pushing towards failure, largest first (at most `topFeatures`). */
  readonly topFeatures: readonly TopFeature[];
  /** False while the component's data segment is too short to judge; never alarms then. */
  readonly ready: boolean;
  /** Raw outputs of the individual models, for logs and calibration. */
  readonly parts: { readonly logisticLogit: number; readonly treesMargin: number };
}

export interface OnlineLearningOptions {
  /** SGD step for the online logistic regression. Default 0.002. */
  learningRate?: number;
  l2?: number;
  /** One example per component per this interval. Default 5000 ms. */
  exampleIntervalMs?: number;
  /** Extra wait beyond H before an example counts as healthy (detector delay). Default 10 s. */
  labelGraceMs?: number;
  /** Bounds of the retraining rings. */
  positivesMax?: number;
  negativesMax?: number;
}

export interface ThresholdControlOptions {
  /** False alarms per component-day the thresholds aim at. Default 1. */
  targetFalseAlarmsPerDay?: number;
  /** Tolerance for early alarms, as in the evaluation. Default 10 s. */
  slackMs?: number;
  /**
   * Memory of the false-alarm rate, in component-days of exposure; thresholds
   * move at most one step per half-life. Default 7.
   */
  halfLifeComponentDays?: number;
  /** No adjustment before this much exposure per role. Default 2 component-days. */
  minExposureComponentDays?: number;
  /** Log-odds step of one adjustment. Default 0.25. */
  stepLogit?: number;
  /** Thresholds never go above this. Default 0.995. */
  thresholdMax?: number;
}

export interface PredictorOptions extends ExtractorOptions {
  model: PredictorModel;
  alarmPolicy?: AlarmPolicy;
  /** The alarm releases below threshold × releaseRatio. Default 0.8. */
  releaseRatio?: number;
  /** How many top features a prediction carries. Default 5. */
  topFeatures?: number;
  /** Online learning; false freezes the model (used while calibrating). */
  online?: OnlineLearningOptions | false;
  thresholdControl?: ThresholdControlOptions | false;
}

export interface TrainingSnapshot {
  readonly X: Float32Array;
  readonly y: Uint8Array;
  readonly rows: number;
  readonly dim: number;
  /**
   * Weight that restores the true class balance for a negative row: the rings
   * keep at most N of each class, so negatives are usually under-represented.
   */
  readonly negativeWeight: number;
}

export interface Predictor {
  readonly size: number;
  readonly horizonMs: number;
  observe(componentId: string, role: string, samples: readonly MetricSample[], tMs: number): number;
  predict(componentId: string, tMs: number): Prediction;
  label(componentId: string, tMs: number, kind: LabelKind): void;
  forget(componentId: string): void;
  thresholdFor(role: string): number;
  /** The current model, including online updates and adjusted thresholds, ready to serialise. */
  exportModel(trainedAtMs: number): PredictorModel;
  /** Replaces the model (a newer one committed through Raft); component state is kept. */
  loadModel(model: PredictorModel): void;
  /** Labelled examples gathered so far (copies), for retraining; undefined if none. */
  trainingSnapshot(): TrainingSnapshot | undefined;
}

interface PendingEpisode {
  startMs: number;
  endMs: number;
}

interface ComponentRuntime {
  alarm: AlarmState;
  episodeStartMs: number;
  /** Closed episodes waiting to learn whether a failure follows. */
  pendingEpisodes: PendingEpisode[];
  lastPredictMs: number;
  lastPrediction: Prediction | undefined;
  lastExampleMs: number;
  exTimes: Float64Array;
  exX: Float32Array;
  exHead: number;
  exLen: number;
}

interface RoleControl {
  baseLogit: number;
  logitNow: number;
  falseAlarms: number;
  exposureDays: number;
  sinceCheckDays: number;
}

/** Ring of labelled rows with a fixed capacity; overwrites the oldest. */
class RowRing {
  readonly X: Float32Array;
  len = 0;
  next = 0;
  constructor(
    readonly capacity: number,
    readonly dim: number,
  ) {
    this.X = new Float32Array(capacity * dim);
  }
  push(x: ArrayLike<number>, offset: number): void {
    const base = this.next * this.dim;
    for (let j = 0; j < this.dim; j++) this.X[base + j] = x[offset + j]!;
    this.next = (this.next + 1) % this.capacity;
    if (this.len < this.capacity) this.len++;
  }
}

const DAY_MS = 86_400_000;

export function checkModelCompatible(model: PredictorModel): void {
  if (model.featureSetVersion !== FEATURE_SET_VERSION) {
    throw new RangeError(
      `model uses feature set v${model.featureSetVersion}; this build computes v${FEATURE_SET_VERSION}`,
    );
  }
  if (
    model.featureNames.length !== FEATURE_COUNT ||
    model.featureNames.some((n, i) => n !== FEATURE_NAMES[i])
  ) {
    throw new RangeError("model feature names do not match this build's feature vector");
  }
  if (!(model.horizonMs > 0))
    throw new RangeError(`model horizonMs must be > 0, got ${model.horizonMs}`);
}

export function createPredictor(opts: PredictorOptions): Predictor {
  checkModelCompatible(opts.model);
  let model = opts.model;
  let horizonMs = model.horizonMs;
  const extractor: FeatureExtractor = createFeatureExtractor(opts);
  const policy = opts.alarmPolicy ?? DEFAULT_ALARM_POLICY;
  const releaseRatio = opts.releaseRatio ?? 0.8;
  const topN = opts.topFeatures ?? 5;
  const online = opts.online === false ? undefined : (opts.online ?? {});
  const learningRate = online?.learningRate ?? 0.002;
  const l2 = online?.l2 ?? 1e-5;
  const exampleIntervalMs = online?.exampleIntervalMs ?? 5000;
  const labelGraceMs = online?.labelGraceMs ?? 10_000;
  const tc = opts.thresholdControl === false ? undefined : (opts.thresholdControl ?? {});
  const targetFa = tc?.targetFalseAlarmsPerDay ?? 1;
  const slackMs = tc?.slackMs ?? 10_000;
  const halfLifeDays = tc?.halfLifeComponentDays ?? 7;
  const minExposureDays = tc?.minExposureComponentDays ?? 2;
  const stepLogit = tc?.stepLogit ?? 0.25;
  const maxLogit = logit(tc?.thresholdMax ?? 0.995);
  const dim = FEATURE_COUNT;
  const exCapacity = Math.ceil((horizonMs + labelGraceMs) / exampleIntervalMs) + 2;

  // Mutable copy of the logistic weights: the online model.
  let lrWeights = Float64Array.from(model.logistic.weights);
  let lrBias = model.logistic.bias;
  const lr = {
    get weights() {
      return lrWeights;
    },
    get bias() {
      return lrBias;
    },
  };
  const positives = new RowRing(online?.positivesMax ?? 4096, dim);
  let positivesSeen = 0;
  let negativesSeen = 0;
  const negatives = new RowRing(online?.negativesMax ?? 16_384, dim);
  const runtimes = new Map<string, ComponentRuntime>();
  const roles = new Map<string, RoleControl>();

  const x = new Float64Array(dim);
  const z = new Float64Array(dim);
  const zRow = new Float64Array(dim);

  function baseThreshold(role: string): number {
    return model.thresholds.byRole[role] ?? model.thresholds.default;
  }

  function roleControl(role: string): RoleControl {
    let r = roles.get(role);
    if (r === undefined) {
      const b = logit(baseThreshold(role));
      r = { baseLogit: b, logitNow: b, falseAlarms: 0, exposureDays: 0, sinceCheckDays: 0 };
      roles.set(role, r);
    }
    return r;
  }

  function adjust(r: RoleControl): void {
    if (r.exposureDays < minExposureDays) return;
    const rate = r.falseAlarms / r.exposureDays;
    if (rate > targetFa) r.logitNow = Math.min(maxLogit, r.logitNow + stepLogit);
    else if (rate < targetFa / 2 && r.logitNow > r.baseLogit) {
      r.logitNow = Math.max(r.baseLogit, r.logitNow - stepLogit / 2);
    }
  }

  function addExposure(r: RoleControl, dtMs: number): void {
    const d = dtMs / DAY_MS;
    const decay = 2 ** (-d / halfLifeDays);
    r.falseAlarms *= decay;
    r.exposureDays = r.exposureDays * decay + d;
    r.sinceCheckDays += d;
    // One step per half-life of exposure: half the evidence behind each step is
    // newer than the previous step, so the controller does not ratchet on old
    // false alarms (a 10,000-component fleet accrues a half-life in about a minute).
    if (r.sinceCheckDays >= halfLifeDays) {
      r.sinceCheckDays = 0;
      adjust(r);
    }
  }

  function recordFalseAlarm(role: string): void {
    if (tc === undefined) return;
    roleControl(role).falseAlarms += 1;
  }

  function runtime(id: string): ComponentRuntime {
    let rt = runtimes.get(id);
    if (rt === undefined) {
      rt = {
        alarm: createAlarmState(),
        episodeStartMs: Number.NaN,
        pendingEpisodes: [],
        lastPredictMs: Number.NaN,
        lastPrediction: undefined,
        lastExampleMs: Number.NEGATIVE_INFINITY,
        exTimes: new Float64Array(exCapacity),
        exX: new Float32Array(exCapacity * dim),
        exHead: 0,
        exLen: 0,
      };
      runtimes.set(id, rt);
    }
    return rt;
  }

  function learn(rt: ComponentRuntime, k: number, y: 0 | 1): void {
    const base = k * dim;
    for (let j = 0; j < dim; j++) zRow[j] = rt.exX[base + j]!;
    if (y === 1) {
      positives.push(zRow, 0);
      positivesSeen++;
    } else {
      negatives.push(zRow, 0);
      negativesSeen++;
    }
    standardize(model.standardizer, zRow, z);
    const pw = model.positiveWeight;
    const w = y === 1 ? (2 * pw) / (1 + pw) : 2 / (1 + pw);
    const m = { weights: lrWeights, bias: lrBias };
    sgdStep(m, z, y, w, learningRate, l2);
    lrBias = m.bias;
  }

  /** Pops the oldest buffered example. */
  function popExample(rt: ComponentRuntime): number {
    const k = rt.exHead;
    rt.exHead = (rt.exHead + 1) % exCapacity;
    rt.exLen--;
    return k;
  }

  function matureExamples(rt: ComponentRuntime, tMs: number): void {
    while (rt.exLen > 0 && rt.exTimes[rt.exHead]! + horizonMs + labelGraceMs <= tMs) {
      learn(rt, popExample(rt), 0);
    }
  }

  function resolveEpisodes(rt: ComponentRuntime, role: string, tMs: number): void {
    while (
      rt.pendingEpisodes.length > 0 &&
      rt.pendingEpisodes[0]!.endMs + horizonMs + slackMs < tMs
    ) {
      rt.pendingEpisodes.shift();
      recordFalseAlarm(role);
    }
  }

  function closeEpisode(rt: ComponentRuntime, endMs: number): void {
    if (Number.isNaN(rt.episodeStartMs)) return;
    // Bounded: at most a few episodes can wait H + slack.
    if (rt.pendingEpisodes.length >= 64) rt.pendingEpisodes.shift();
    rt.pendingEpisodes.push({ startMs: rt.episodeStartMs, endMs });
    rt.episodeStartMs = Number.NaN;
  }

  return {
    get size() {
      return extractor.size;
    },
    get horizonMs() {
      return horizonMs;
    },

    observe(componentId, role, samples, tMs) {
      const hadGap =
        runtimes.has(componentId) &&
        extractor.has(componentId) &&
        !Number.isNaN(runtimes.get(componentId)!.lastPredictMs) &&
        tMs - runtimes.get(componentId)!.lastPredictMs > (opts.maxGapMs ?? 10_000);
      const used = extractor.observe(componentId, role, samples, tMs);
      if (hadGap) {
        // The component was silent: examples spanning the silence have an unknown outcome.
        const rt = runtimes.get(componentId)!;
        rt.exLen = 0;
        closeEpisode(rt, rt.lastPredictMs);
        resetAlarm(rt.alarm);
      }
      return used;
    },

    predict(componentId, tMs) {
      if (!extractor.has(componentId)) {
        throw new RangeError(`unknown component "${componentId}": observe it before predict`);
      }
      const rt = runtime(componentId);
      if (rt.lastPrediction !== undefined && rt.lastPredictMs === tMs) return rt.lastPrediction;
      const role = extractor.roleOf(componentId)!;
      const ready = extractor.extract(componentId, tMs, x);

      standardize(model.standardizer, x, z);
      const lrLogit = logisticLogit(lr, z);
      const margin = gbtMargin(model.gbt, x);
      const stability = stabilityScore(x);
      const s = model.stack;
      const score =
        s.bias + (s.stability * (100 - stability)) / 100 + s.logistic * lrLogit + s.trees * margin;
      const probability = sigmoid(score);
      // Explanations are computed on first read (most predictions are never explained),
      // from a snapshot of this tick's inputs; the logistic part is fixed now because
      // online learning changes the weights in place.
      const xSnap = Float64Array.from(x);
      const lrPart = new Float64Array(dim);
      for (let j = 0; j < dim; j++) lrPart[j] = s.logistic * lrWeights[j]! * z[j]!;
      const gbt = model.gbt;
      let top: TopFeature[] | undefined;
      const explain = () => {
        top ??= explainPrediction(xSnap, lrPart, gbt, s, topN);
        return top;
      };

      const rc = roleControl(role);
      const threshold = sigmoid(rc.logitNow);
      if (tc !== undefined) {
        const dt = Number.isNaN(rt.lastPredictMs) ? 0 : Math.min(tMs - rt.lastPredictMs, 10_000);
        addExposure(rc, Math.max(0, dt));
      }
      const wasOn = rt.alarm.on;
      let alarm = false;
      if (ready) {
        alarm = stepAlarm(
          rt.alarm,
          probability >= threshold,
          probability < threshold * releaseRatio,
          policy,
        );
      } else {
        resetAlarm(rt.alarm);
      }
      if (alarm && !wasOn) rt.episodeStartMs = tMs;
      if (!alarm && wasOn) closeEpisode(rt, rt.lastPredictMs);
      resolveEpisodes(rt, role, tMs);

      if (online !== undefined) {
        matureExamples(rt, tMs);
        if (ready && tMs - rt.lastExampleMs >= exampleIntervalMs) {
          // Full only if the horizon grew through loadModel: drop the oldest, outcome unknown.
          if (rt.exLen === exCapacity) popExample(rt);
          const k = (rt.exHead + rt.exLen) % exCapacity;
          rt.exTimes[k] = tMs;
          for (let j = 0; j < dim; j++) rt.exX[k * dim + j] = x[j]!;
          rt.exLen++;
          rt.lastExampleMs = tMs;
        }
      }

      const prediction: Prediction = {
        componentId,
        role,
        tMs,
        probability,
        threshold,
        alarm,
        horizonMs,
        stability,
        get topFeatures() {
          return explain();
        },
        ready,
        parts: { logisticLogit: lrLogit, treesMargin: margin },
      };
      rt.lastPredictMs = tMs;
      rt.lastPrediction = prediction;
      return prediction;
    },

    label(componentId, tMs, kind) {
      const rt = runtimes.get(componentId);
      const role = extractor.roleOf(componentId);
      if (rt === undefined || role === undefined) return;
      const failed = kind === "failed" || kind === "operator-failed";
      if (failed) {
        while (rt.exLen > 0) {
          const t = rt.exTimes[rt.exHead]!;
          const k = popExample(rt);
          if (t < tMs && online !== undefined) learn(rt, k, tMs - t <= horizonMs ? 1 : 0);
        }
        // Episodes that overlap the failure window were right; the others were false.
        if (rt.alarm.on) closeEpisode(rt, rt.lastPredictMs);
        const lo = tMs - horizonMs - slackMs;
        for (const e of rt.pendingEpisodes)
          if (!(e.startMs < tMs && e.endMs >= lo)) recordFalseAlarm(role);
        rt.pendingEpisodes.length = 0;
        resetAlarm(rt.alarm);
        rt.episodeStartMs = Number.NaN;
        extractor.resetSegment(componentId, tMs);
      } else if (kind === "mitigated") {
        rt.exLen = 0;
        rt.pendingEpisodes.length = 0;
        rt.episodeStartMs = Number.NaN;
        resetAlarm(rt.alarm);
      } else {
        while (rt.exLen > 0) {
          const k = popExample(rt);
          if (online !== undefined) learn(rt, k, 0);
        }
        if (rt.alarm.on) closeEpisode(rt, rt.lastPredictMs);
        for (let i = 0; i < rt.pendingEpisodes.length; i++) recordFalseAlarm(role);
        rt.pendingEpisodes.length = 0;
        resetAlarm(rt.alarm);
      }
      rt.lastPrediction = undefined;
    },

    forget(componentId) {
      extractor.forget(componentId);
      runtimes.delete(componentId);
    },

    thresholdFor(role) {
      return sigmoid(roleControl(role).logitNow);
    },

    exportModel(trainedAtMs) {
      const byRole: Record<string, number> = { ...model.thresholds.byRole };
      for (const [role, r] of roles) byRole[role] = sigmoid(r.logitNow);
      return {
        ...model,
        trainedAtMs,
        logistic: { weights: Float64Array.from(lrWeights), bias: lrBias },
        thresholds: { default: model.thresholds.default, byRole },
      };
    },

    loadModel(next) {
      checkModelCompatible(next);
      model = next;
      horizonMs = next.horizonMs;
      lrWeights = Float64Array.from(next.logistic.weights);
      lrBias = next.logistic.bias;
      roles.clear();
    },

    trainingSnapshot() {
      const rows = positives.len + negatives.len;
      if (rows === 0) return undefined;
      const X = new Float32Array(rows * dim);
      const y = new Uint8Array(rows);
      X.set(positives.X.subarray(0, positives.len * dim), 0);
      X.set(negatives.X.subarray(0, negatives.len * dim), positives.len * dim);
      y.fill(1, 0, positives.len);
      const keptPos = positives.len / Math.max(1, positivesSeen);
      const keptNeg = negatives.len / Math.max(1, negativesSeen);
      return { X, y, rows, dim, negativeWeight: keptNeg > 0 ? keptPos / keptNeg : 1 };
    },
  };
}

/**
 * Per-feature log-odds contributions (logistic part given, trees by path
 * attribution, stability by lost points) and the `n` largest positive ones.
 */
function explainPrediction(
  x: Float64Array,
  lrPart: Float64Array,
  gbt: GbtModel,
  s: StackWeights,
  n: number,
): TopFeature[] {
  const dim = x.length;
  const gbtC = new Float64Array(dim);
  const stabC = new Float64Array(dim);
  gbtContributions(gbt, x, gbtC);
  stabilityScore(x, stabC);
  const contrib = new Float64Array(dim);
  for (let j = 0; j < dim; j++)
    contrib[j] = lrPart[j]! + s.trees * gbtC[j]! + (s.stability * stabC[j]!) / 100;
  const out: TopFeature[] = [];
  const used = new Uint8Array(dim);
  for (let k = 0; k < n; k++) {
    let best = -1;
    let bestV = 0;
    for (let j = 0; j < dim; j++) {
      if (used[j] === 0 && contrib[j]! > bestV) {
        bestV = contrib[j]!;
        best = j;
      }
    }
    if (best < 0) break;
    used[best] = 1;
    out.push({ name: FEATURE_NAMES[best]!, value: x[best]!, contribution: contrib[best]! });
  }
  return out;
}

/** A model's output without a trained stack: used to produce calibration data. */
export function rawParts(model: PredictorModel, x: Float64Array): [number, number, number] {
  const z = standardize(model.standardizer, x, new Float64Array(x.length));
  return [stabilityScore(x), logisticLogit(model.logistic, z), gbtMargin(model.gbt, x)];
}
