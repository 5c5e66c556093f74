/**
 * Small, bounded metric primitives for /status and /metrics (Prometheus text
 * exposition format 0.0.4). Every structure has a fixed size; time comes in
 * as an argument (monotonic ms) so the windows are testable.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

interface Metric {
  render(out: string[]): void;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Distinct label sets kept; more are folded into one overflow series. */
    private readonly seriesMax = 1000,
  ) {}
  inc(labels?: Labels, by = 1): void {
    this.incKey(labelKey(labels), by);
  }
  /** `key` as returned by `Counter.key(labels)`: for hot paths that reuse label sets. */
  incKey(key: string, by = 1): void {
    if (!this.values.has(key) && this.values.size >= this.seriesMax) key = 'overflow="true"';
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  static key(labels?: Labels): string {
    return labelKey(labels);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    if (this.values.size === 0) out.push(`${this.name} 0`);
    for (const [k, v] of this.values) out.push(`${this.name}${k ? `{${k}}` : ""} ${fmt(v)}`);
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | Array<{ labels: Labels; value: number }>,
  ) {}
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    const v = this.read();
    if (typeof v === "number") {
      out.push(`${this.name} ${fmt(v)}`);
      return;
    }
    for (const s of v) {
      const k = labelKey(s.labels);
      out.push(`${this.name}${k ? `{${k}}` : ""} ${fmt(s.value)}`);
    }
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    private readonly seriesMax = 100,
  ) {}
  observe(value: number, labels?: Labels): void {
    this.observeKey(value, labelKey(labels));
  }
  observeKey(value: number, key: string): void {
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.seriesMax) key = 'overflow="true"';
      s = this.series.get(key) ?? { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      for (let i = 0; i < this.buckets.length; i++) {
        out.push(`${this.name}_bucket{${sep}le="${fmt(this.buckets[i]!)}"} ${s.counts[i]}`);
      }
      out.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${fmt(s.sum)}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return `${out.join("\n")}\n`;
  }
}

/**
 * Event counts over a sliding window of whole seconds (fixed ring of
 * buckets), for "requests per second over the last 60 s".
 */
export class RateWindow {
  private readonly counts: Float64Array;
  private readonly seconds: Float64Array;
  constructor(private readonly windowSec = 60) {
    this.counts = new Float64Array(windowSec);
    this.seconds = new Float64Array(windowSec).fill(-1);
  }
  add(nowMs: number, n = 1): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.windowSec;
    if (this.seconds[i] !== sec) {
      this.seconds[i] = sec;
      this.counts[i] = 0;
    }
    this.counts[i]! += n;
  }
  /** Sum over the window ending at nowMs. */
  sum(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    let total = 0;
    for (let i = 0; i < this.windowSec; i++) {
      const s = this.seconds[i]!;
      if (s >= 0 && sec - s < this.windowSec) total += this.counts[i]!;
    }
    return total;
  }
  perSecond(nowMs: number): number {
    return this.sum(nowMs) / this.windowSec;
  }
}

/** The last `capacity` samples with their time, for windowed quantiles. */
export class SampleWindow {
  private readonly values: Float64Array;
  private readonly times: Float64Array;
  private next = 0;
  private filled = 0;
  constructor(
    capacity = 2048,
    private readonly windowMs = 60_000,
  ) {
    this.values = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }
  add(nowMs: number, value: number): void {
    this.values[this.next] = value;
    this.times[this.next] = nowMs;
    this.next = (this.next + 1) % this.values.length;
    if (this.filled < this.values.length) this.filled++;
  }
  /** Quantiles (0..1) over samples within the window; NaN when empty. */
  quantiles(nowMs: number, qs: readonly number[]): number[] {
    const xs: number[] = [];
    for (let i = 0; i < this.filled; i++)
      if (nowMs - this.times[i]! <= this.windowMs) xs.push(this.values[i]!);
    if (xs.length === 0) return qs.map(() => Number.NaN);
    xs.sort((a, b) => a - b);
    return qs.map((q) => xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!);
  }
}

export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
