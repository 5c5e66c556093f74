/**
 * Time as an input. Timestamps in events and reports come from `nowMs`,
 * durations (buffer drain, timeouts, throughput) from `monotonicMs`; tests
 * pass a manual clock to the pure parts (buffer model, estimators).
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch (may jump; timestamps only). */
  nowMs(): number;
  /** Monotonic milliseconds from an arbitrary origin (never goes back; durations). */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};
