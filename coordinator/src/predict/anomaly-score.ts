/**
 * Streaming, causal anomaly score for one metric series (`predict score`).
 *
 * The score of a sample depends only on that sample and the ones before it:
 * it is computed from state built from earlier samples, and only then is the
 * state updated. State is a fixed handful of numbers, so memory does not grow
 * with the length of the series.
 *
 * Two detectors, time-aware so any sampling rate works:
 * - point: z = |x - mean| / sd against a slow exponentially weighted mean and
 *   variance (time constant `slowTauMs`);
 * - shift: how far a fast EWMA (time constant `fastTauMs`) has moved from the
 *   slow one, in units of the fast EWMA's own standard error, which catches
 *   level shifts and ramps that no single point reveals.
 * score = max over both of logistic(steepness * (z - zMid)), in [0, 1]
 * (z = zMid gives 0.5; z = 0 gives about 0.002 with the defaults).
 * The first `warmupSamples` samples score 0: there is no baseline yet.
 * Updates clip a sample to mean ± 5 sd, so one spike does not blow up the
 * variance and mask what follows.
 */
export interface StreamingScorerOptions {
  slowTauMs?: number;
  fastTauMs?: number;
  warmupSamples?: number;
  zMid?: number;
  steepness?: number;
}

export interface StreamingScorer {
  /** Scores a sample, then absorbs it. tMs must not decrease (the caller checks). */
  score(tMs: number, value: number): number;
  /** Number of samples seen. */
  readonly count: number;
}

export function createStreamingScorer(opts: StreamingScorerOptions = {}): StreamingScorer {
  const slowTauMs = opts.slowTauMs ?? 30 * 60_000;
  const fastTauMs = opts.fastTauMs ?? 60_000;
  const warmup = opts.warmupSamples ?? 10;
  const zMid = opts.zMid ?? 4;
  const k = opts.steepness ?? 1.5;
  let n = 0;
  let lastT = Number.NaN;
  let mean = 0;
  let variance = 0;
  let fast = 0;
  /** EWMA of the sampling interval, for the fast average's standard error. */
  let dtAvgMs = Number.NaN;

  const squash = (z: number) => 1 / (1 + Math.exp(-k * (z - zMid)));

  return {
    get count() {
      return n;
    },
    score(tMs, x) {
      let s = 0;
      const sdFloor = 1e-9 * Math.abs(mean) + 1e-12;
      const sd = Math.sqrt(variance + sdFloor * sdFloor);
      if (n >= warmup) {
        const zPoint = Math.abs(x - mean) / sd;
        // Var of an EWMA of iid noise with weight a is var * a / (2 - a).
        const a = 1 - Math.exp(-(Number.isNaN(dtAvgMs) ? 1000 : dtAvgMs) / fastTauMs);
        const zShift = Math.abs(fast - mean) / (sd * Math.sqrt(a / (2 - a)));
        s = Math.max(squash(zPoint), squash(zShift));
      }
      // absorb
      if (n === 0) {
        mean = x;
        fast = x;
      } else {
        let dt = tMs - lastT;
        if (!(dt > 0)) dt = Number.isNaN(dtAvgMs) ? 1 : dtAvgMs;
        dtAvgMs = Number.isNaN(dtAvgMs) ? dt : dtAvgMs + 0.05 * (dt - dtAvgMs);
        const clipped = n >= warmup ? Math.min(mean + 5 * sd, Math.max(mean - 5 * sd, x)) : x;
        const aSlow = 1 - Math.exp(-dt / slowTauMs);
        const aFast = 1 - Math.exp(-dt / fastTauMs);
        const d = clipped - mean;
        // During warm-up weigh samples equally so the first baseline is a plain mean/variance.
        const w = n < warmup ? 1 / (n + 1) : aSlow;
        mean += w * d;
        variance = (1 - w) * (variance + w * d * d);
        fast += aFast * (clipped - fast);
        if (n < warmup) fast = mean;
      }
      lastT = tMs;
      n++;
      return s;
    },
  };
}
