/**
 * Throughput estimate: an exponentially weighted moving average of object
 * download throughput (bits per second). Samples smaller than
 * `minSampleBytes` are ignored: on tiny LL-HLS parts the request latency, not
 * the link, dominates. Pure.
 */
export interface BandwidthEstimator {
  /** One finished download: `bytes` in `durationMs` (>= 1 ms is assumed). */
  sample(bytes: number, durationMs: number): void;
  estimateBps(): number;
  samples(): number;
}

export function createBandwidthEstimator(
  opts: { initialBps?: number; alpha?: number; minSampleBytes?: number } = {},
): BandwidthEstimator {
  const alpha = opts.alpha ?? 0.3;
  const minBytes = opts.minSampleBytes ?? 16 * 1024;
  let estimate = opts.initialBps ?? 2_000_000;
  let count = 0;
  return {
    sample(bytes, durationMs) {
      if (bytes < minBytes) return;
      const bps = (bytes * 8 * 1000) / Math.max(1, durationMs);
      estimate = count === 0 ? bps : alpha * bps + (1 - alpha) * estimate;
      count++;
    },
    estimateBps: () => estimate,
    samples: () => count,
  };
}
