/**
 * Metric input for the predictor.
 *
 * A host agent reports samples `{ name, value, unit }` for a component at
 * about 1 Hz. The predictor keeps, per component and per metric it uses, a
 * `MetricWindow`: a ring buffer of (tMs, value) pairs with a fixed capacity in
 * samples. Capacity is the memory bound; spans used by features are in
 * milliseconds, so a window sampled faster than 1 Hz covers a shorter span
 * and the features then use what is there (they never read outside the ring).
 *
 * Contract:
 * - Timestamps within one window never decrease. `push` refuses a sample older
 *   than the newest one, and a non-finite time or value, and says so by
 *   returning false; nothing is stored in that case.
 * - Index 0 is the oldest retained sample, `size - 1` the newest.
 * - Memory is `capacity * 16` bytes plus a constant, whatever the stream length.
 */
export interface MetricSample {
  readonly name: string;
  readonly value: number;
  /** Informational ("bytes", "ratio", "ms", ...). The predictor keys on `name` only. */
  readonly unit?: string;
}

export interface MetricWindow {
  readonly capacity: number;
  readonly size: number;
  /**
   * Raw storage for allocation-free scans by feature code: logical index i is
   * at physical slot (head + i) % capacity. Read-only for callers.
   */
  readonly times: Float64Array;
  readonly values: Float64Array;
  readonly head: number;
  /** Appends a sample, evicting the oldest when full. False (and no change) when refused. */
  push(tMs: number, value: number): boolean;
  timeAt(i: number): number;
  valueAt(i: number): number;
  /** Time of the newest sample, NaN when empty. */
  lastTimeMs(): number;
  /** Newest value, NaN when empty. */
  lastValue(): number;
  clear(): void;
}

class RingWindow implements MetricWindow {
  readonly capacity: number;
  size = 0;
  head = 0; // physical index of the oldest sample
  readonly times: Float64Array;
  readonly values: Float64Array;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
  }

  push(tMs: number, value: number): boolean {
    if (!Number.isFinite(tMs) || !Number.isFinite(value)) return false;
    if (this.size > 0 && tMs < this.lastTimeMs()) return false;
    let slot: number;
    if (this.size < this.capacity) {
      slot = (this.head + this.size) % this.capacity;
      this.size++;
    } else {
      slot = this.head;
      this.head = (this.head + 1) % this.capacity;
    }
    this.times[slot] = tMs;
    this.values[slot] = value;
    return true;
  }

  timeAt(i: number): number {
    return this.times[(this.head + i) % this.capacity]!;
  }

  valueAt(i: number): number {
    return this.values[(this.head + i) % this.capacity]!;
  }

  lastTimeMs(): number {
    return this.size === 0 ? Number.NaN : this.timeAt(this.size - 1);
  }

  lastValue(): number {
    return this.size === 0 ? Number.NaN : this.valueAt(this.size - 1);
  }

  clear(): void {
    this.size = 0;
    this.head = 0;
  }
}

/** Maximum samples one window may hold; a guard against configuration mistakes. */
export const WINDOW_CAPACITY_MAX = 65_536;

export function createMetricWindow(capacity: number): MetricWindow {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > WINDOW_CAPACITY_MAX) {
    throw new RangeError(
      `window capacity must be an integer in 2..${WINDOW_CAPACITY_MAX}, got ${capacity}`,
    );
  }
  return new RingWindow(capacity);
}
