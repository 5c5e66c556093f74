/** Log-bucketed latency histogram (2 % resolution from 0.01 ms), bounded memory. */
const MIN_MS = 0.01;
const GROWTH = Math.log(1.02);
const BUCKETS = 1200;

export interface LatencyHistogram {
  record(ms: number): void;
  /** Value at quantile q (0..1), ms; NaN when empty. */
  quantile(q: number): number;
  readonly count: number;
  max(): number;
  reset(): void;
}

export function createLatencyHistogram(): LatencyHistogram {
  const counts = new Float64Array(BUCKETS);
  let n = 0;
  let maxMs = 0;
  return {
    record(ms) {
      if (!(ms >= 0)) return;
      const i =
        ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(ms / MIN_MS) / GROWTH));
      counts[i]!++;
      n++;
      if (ms > maxMs) maxMs = ms;
    },
    quantile(q) {
      if (n === 0) return Number.NaN;
      const want = Math.ceil(q * n);
      let seen = 0;
      for (let i = 0; i < BUCKETS; i++) {
        seen += counts[i]!;
        if (seen >= want) return Math.min(maxMs, MIN_MS * Math.exp((i + 1) * GROWTH));
      }
      return maxMs;
    },
    get count() {
      return n;
    },
    max: () => maxMs,
    reset() {
      counts.fill(0);
      n = 0;
      maxMs = 0;
    },
  };
}
