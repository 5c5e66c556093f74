/**
 * Phi-accrual suspicion level (Hayashibara, Défago, Yared, Katayama: "The φ
 * Accrual Failure Detector", SRDS 2004), with the normal-distribution
 * approximation used by Akka and Cassandra.
 *
 * phi(t) = -log10(P(next heartbeat arrives later than t after the last one)),
 * with inter-arrival times modelled as N(mean, stdDev²). phi = 1 means a 10 %
 * chance that the heartbeat is merely late, phi = 3 a 0.1 % chance, and so on.
 *
 * Pure: no clock, no I/O. Times are plain milliseconds given by the caller.
 */

/**
 * Bounded rolling statistics of heartbeat inter-arrival times (a ring of the
 * last `capacity` intervals with running sums, so mean and variance are O(1)).
 */
export interface IntervalStats {
  readonly capacity: number;
  readonly count: number;
  /** Records one inter-arrival interval; non-finite or negative values are ignored. */
  add(intervalMs: number): void;
  /** Mean of the retained intervals; NaN when empty. */
  mean(): number;
  /** Population standard deviation of the retained intervals; NaN when empty. */
  stdDev(): number;
  clear(): void;
}

/** Upper bound on retained intervals per tracker (memory guard). */
export const INTERVAL_STATS_CAPACITY_MAX = 10_000;

export function createIntervalStats(capacity: number): IntervalStats {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > INTERVAL_STATS_CAPACITY_MAX) {
    throw new RangeError(
      `interval history must be an integer in 2..${INTERVAL_STATS_CAPACITY_MAX}, got ${capacity}`,
    );
  }
  return new RingStats(capacity);
}

/** A class, not closures: one per component, updated on every arrival. */
class RingStats implements IntervalStats {
  private readonly ring: Float64Array;
  private head = 0;
  count = 0;
  private sum = 0;
  private sumSq = 0;

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity);
  }

  add(intervalMs: number): void {
    if (!Number.isFinite(intervalMs) || intervalMs < 0) return;
    if (this.count === this.capacity) {
      const old = this.ring[this.head]!;
      this.sum -= old;
      this.sumSq -= old * old;
      this.ring[this.head] = intervalMs;
      this.head = (this.head + 1) % this.capacity;
    } else {
      this.ring[(this.head + this.count) % this.capacity] = intervalMs;
      this.count++;
    }
    this.sum += intervalMs;
    this.sumSq += intervalMs * intervalMs;
  }

  mean(): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count;
  }

  stdDev(): number {
    if (this.count === 0) return Number.NaN;
    const m = this.sum / this.count;
    // Running sums can drift slightly negative through cancellation.
    return Math.sqrt(Math.max(0, this.sumSq / this.count - m * m));
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
    this.sum = 0;
    this.sumSq = 0;
  }
}

const LN10 = Math.log(10);

/**
 * phi for `elapsedMs` since the last heartbeat, given the inter-arrival mean
 * and standard deviation (which must be > 0). Uses the logistic
 * approximation of the normal CDF, 1/(1+e^(-y(1.5976+0.070566y²))), evaluated
 * in log space so large silences give large finite values instead of
 * Infinity. Monotonically non-decreasing in `elapsedMs`.
 */
export function phiOf(elapsedMs: number, meanMs: number, stdDevMs: number): number {
  const y = (elapsedMs - meanMs) / stdDevMs;
  const a = y * (1.5976 + 0.070566 * y * y);
  // P(later) = e^-a / (1 + e^-a) = 1 / (1 + e^a); phi = log10(1 + e^a).
  // For large a, log10(1 + e^a) = (a + ln(1 + e^-a)) / ln 10 without overflow.
  if (a > 30) return (a + Math.log1p(Math.exp(-a))) / LN10;
  return Math.log1p(Math.exp(a)) / LN10;
}
