/**
 * Feature functions: small pure computations over one metric window or one
 * running state. Every function here is deterministic and allocation-free on
 * its hot path (callers pass an `out` object), because the predictor runs them
 * for every component every second.
 *
 * Spans: a span `spanMs` ending at `tMs` selects the samples with
 * `tMs - spanMs < t <= tMs`. Slopes are per second.
 */
import type { MetricWindow } from "./window.ts";

/** First index of the window whose time is inside (tMs - spanMs, tMs]. */
function spanStart(w: MetricWindow, tMs: number, spanMs: number): number {
  const from = tMs - spanMs;
  let i = w.size - 1;
  while (i >= 0 && w.timeAt(i) > tMs) i--;
  // i is now the newest sample at or before tMs; walk back while inside the span.
  let start = i + 1;
  while (start - 1 >= 0 && w.timeAt(start - 1) > from) start--;
  return start;
}

/** Index one past the newest sample at or before tMs. */
function spanEnd(w: MetricWindow, tMs: number): number {
  let end = w.size;
  while (end > 0 && w.timeAt(end - 1) > tMs) end--;
  return end;
}

export interface WindowStats {
  n: number;
  mean: number;
  /** Population variance (divides by n). */
  variance: number;
  min: number;
  max: number;
}

/** Count, mean, population variance, min and max over the span. NaNs when the span is empty. */
export function windowStats(
  w: MetricWindow,
  tMs: number,
  spanMs: number,
  out: WindowStats = { n: 0, mean: 0, variance: 0, min: 0, max: 0 },
): WindowStats {
  const start = spanStart(w, tMs, spanMs);
  const end = spanEnd(w, tMs);
  const n = end - start;
  out.n = n;
  if (n <= 0) {
    out.n = 0;
    out.mean = Number.NaN;
    out.variance = Number.NaN;
    out.min = Number.NaN;
    out.max = Number.NaN;
    return out;
  }
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = start; i < end; i++) {
    const v = w.valueAt(i);
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = start; i < end; i++) {
    const d = w.valueAt(i) - mean;
    ss += d * d;
  }
  out.mean = mean;
  out.variance = ss / n;
  out.min = min;
  out.max = max;
  return out;
}

export interface LineFit {
  n: number;
  /** Units per second. */
  slopePerS: number;
  /** The fitted line's value at tMs (not the last sample). */
  levelAtT: number;
}

/**
 * Ordinary least squares line over the span, in one backward pass over the
 * ring. Time is in seconds relative to tMs and values are taken relative to
 * the newest value in the span, so sums stay small even for byte counters.
 * Needs at least `minSamples` samples spread over a non-zero time range;
 * otherwise n is the count found and slope/level are NaN.
 */
export function fitLine(
  w: MetricWindow,
  tMs: number,
  spanMs: number,
  minSamples = 3,
  out: LineFit = { n: 0, slopePerS: 0, levelAtT: 0 },
): LineFit {
  const times = w.times;
  const values = w.values;
  const cap = w.capacity;
  const from = tMs - spanMs;
  let k = w.head + w.size - 1;
  if (k >= cap) k -= cap;
  let left = w.size;
  // skip samples newer than tMs
  while (left > 0 && times[k]! > tMs) {
    k = k === 0 ? cap - 1 : k - 1;
    left--;
  }
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  const v0 = left > 0 ? values[k]! : 0;
  while (left > 0) {
    const t = times[k]!;
    if (t <= from) break;
    const x = (t - tMs) / 1000;
    const y = values[k]! - v0;
    n++;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    k = k === 0 ? cap - 1 : k - 1;
    left--;
  }
  out.n = n;
  out.slopePerS = Number.NaN;
  out.levelAtT = Number.NaN;
  if (n < Math.max(2, minSamples)) return out;
  const den = n * sxx - sx * sx;
  // Relative guard: all samples at (nearly) the same time give no slope.
  if (!(den > 1e-12 * n * n)) return out;
  const slope = (n * sxy - sx * sy) / den;
  out.slopePerS = slope;
  out.levelAtT = v0 + (sy - slope * sx) / n;
  return out;
}

/**
 * Seconds until a line at `level` moving at `slopePerS` reaches `limit`.
 * 0 when already at or past the limit in the direction of travel is not
 * needed: a level already beyond the limit gives 0 whatever the slope.
 * `direction` says which side is bad: "down" (exhaustion as the value falls
 * to the limit, e.g. free bytes) or "up" (value rising to the limit, e.g.
 * temperature). Infinity when the line moves away from the limit or is flat.
 */
export function timeToLimitS(
  level: number,
  slopePerS: number,
  limit: number,
  direction: "up" | "down",
): number {
  if (!Number.isFinite(level)) return Number.POSITIVE_INFINITY;
  if (direction === "down" ? level <= limit : level >= limit) return 0;
  if (!Number.isFinite(slopePerS)) return Number.POSITIVE_INFINITY;
  if (direction === "down" ? slopePerS >= 0 : slopePerS <= 0) return Number.POSITIVE_INFINITY;
  return (limit - level) / slopePerS;
}

const scratchFit: LineFit = { n: 0, slopePerS: 0, levelAtT: 0 };

/**
 * Time to exhaustion by trend extrapolation: fit a line over the span and
 * extrapolate to the limit (the Prometheus `predict_linear` idea, solved for
 * the crossing time). Infinity when the fit is not possible or trends away.
 */
export function timeToExhaustionS(
  w: MetricWindow,
  tMs: number,
  spanMs: number,
  limit: number,
  direction: "up" | "down",
  minSamples = 10,
): number {
  const fit = fitLine(w, tMs, spanMs, minSamples, scratchFit);
  if (!(fit.n >= minSamples) || Number.isNaN(fit.slopePerS)) return Number.POSITIVE_INFINITY;
  return timeToLimitS(fit.levelAtT, fit.slopePerS, limit, direction);
}

/**
 * Rate per second of a cumulative counter over the span, tolerant of resets:
 * a decrease is taken as a restart from zero, so the new value counts as the
 * increment. 0 when fewer than two samples or no elapsed time.
 */
export function counterRatePerS(w: MetricWindow, tMs: number, spanMs: number): number {
  const start = spanStart(w, tMs, spanMs);
  const end = spanEnd(w, tMs);
  if (end - start < 2) return 0;
  let inc = 0;
  for (let i = start + 1; i < end; i++) {
    const d = w.valueAt(i) - w.valueAt(i - 1);
    inc += d >= 0 ? d : w.valueAt(i);
  }
  const dtS = (w.timeAt(end - 1) - w.timeAt(start)) / 1000;
  return dtS > 0 ? inc / dtS : 0;
}

/**
 * Time-aware exponentially weighted moving average: the weight of the new
 * sample is 1 - exp(-dt/tau), so irregular sampling weighs time, not counts.
 * The first sample (prev NaN) becomes the average.
 */
export function ewmaStep(prev: number, x: number, dtMs: number, tauMs: number): number {
  if (Number.isNaN(prev)) return x;
  const alpha = 1 - Math.exp(-Math.max(0, dtMs) / tauMs);
  return prev + alpha * (x - prev);
}

/** A component's own baseline for one metric: exponentially weighted mean and variance. */
export interface Baseline {
  mean: number;
  variance: number;
  /** Samples absorbed. */
  n: number;
  /** Milliseconds of data absorbed so far (for warm-up). */
  absorbedMs: number;
}

export function createBaseline(): Baseline {
  return { mean: Number.NaN, variance: 0, n: 0, absorbedMs: 0 };
}

/**
 * Incremental weighted mean/variance (West 1979 form):
 * d = x - mean; mean += w*d; var = (1 - w) * (var + w*d*d), with
 * w = max(1 - exp(-dt/tau), 1/(n+1)): a plain running mean and variance
 * until there is enough data for the exponential weight to take over, so the
 * first samples do not bias the baseline for a whole time constant.
 * `weightScale` < 1 absorbs this sample more slowly (used for outliers).
 * Mutates and returns `b`.
 */
export function baselineStep(
  b: Baseline,
  x: number,
  dtMs: number,
  tauMs: number,
  weightScale = 1,
): Baseline {
  if (b.n === 0 || Number.isNaN(b.mean)) {
    b.mean = x;
    b.variance = 0;
    b.n = 1;
    return b;
  }
  const w = Math.max(1 - Math.exp(-Math.max(0, dtMs) / tauMs), 1 / (b.n + 1)) * weightScale;
  const d = x - b.mean;
  b.mean += w * d;
  b.variance = (1 - w) * (b.variance + w * d * d);
  b.n++;
  b.absorbedMs += Math.max(0, dtMs);
  return b;
}

/**
 * z-score of x against a mean and variance; `floor` is a standard deviation
 * floor in the metric's units so near-constant metrics do not give huge z for
 * tiny moves. 0 when the mean is unknown.
 */
export function zScore(x: number, mean: number, variance: number, floor: number): number {
  if (Number.isNaN(mean) || Number.isNaN(x)) return 0;
  return (x - mean) / Math.sqrt(Math.max(0, variance) + floor * floor);
}

/**
 * Time-to-something as a model input: ln of the seconds, clamped to
 * [ln 1, ln capS]. Infinity and anything beyond the cap become ln(capS), so
 * "no trend" and "days away" look the same, which is what a 30 s horizon needs.
 */
export function logSeconds(seconds: number, capS: number): number {
  const s = Number.isNaN(seconds) ? capS : Math.min(Math.max(seconds, 1), capS);
  return Math.log(s);
}

/** Largest value in the span, NaN when empty. */
export function windowMax(w: MetricWindow, tMs: number, spanMs: number): number {
  const start = spanStart(w, tMs, spanMs);
  const end = spanEnd(w, tMs);
  let max = Number.NaN;
  for (let i = start; i < end; i++) {
    const v = w.valueAt(i);
    if (!(v <= max)) max = v;
  }
  return max;
}
