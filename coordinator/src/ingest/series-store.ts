/**
 * Per-component metric memory of the leader: for every series (metric name +
 * sample labels) a raw window at native rate (MetricWindow from the predict
 * component, bounded in samples) and a downsampled history of fixed-width
 * buckets (min/max/sum/count/last, bounded in buckets).
 *
 * Buckets are aligned to multiples of `historyBucketMs` (unix ms) and close
 * per component: the first report whose time falls in a later bucket closes
 * the open bucket of every series of that component at once, which yields one
 * HistoryRecord per component and bucket (what the history files store).
 * `closeIdle` closes buckets of components that stopped reporting.
 *
 * Memory bound per component: seriesPerComponentMax × (16 B × rawSamples +
 * 48 B × historyBuckets) plus constants; the owner bounds the component count.
 *
 * Pure: times are arguments (unix ms); no I/O.
 */
import { createMetricWindow, type MetricWindow } from "../predict/window.ts";

export interface SeriesStoreLimits {
  /** Raw samples kept per series (MetricWindow capacity). */
  rawSamplesPerSeries: number;
  /** Width of a history bucket. */
  historyBucketMs: number;
  /** History buckets kept per series. */
  historyBucketsPerSeries: number;
  /** Distinct series per component; samples of further series are dropped and counted. */
  seriesPerComponentMax: number;
}

export const defaultSeriesStoreLimits: Readonly<SeriesStoreLimits> = {
  rawSamplesPerSeries: 120,
  historyBucketMs: 10_000,
  historyBucketsPerSeries: 360,
  seriesPerComponentMax: 64,
};

export function validateSeriesStoreLimits(l: SeriesStoreLimits): void {
  const int = (v: number, lo: number, hi: number, field: keyof SeriesStoreLimits) => {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`ingest.${field}: must be an integer in ${lo}..${hi}, got ${v}`);
    }
  };
  int(l.rawSamplesPerSeries, 2, 65_536, "rawSamplesPerSeries");
  int(l.historyBucketMs, 1000, 3_600_000, "historyBucketMs");
  int(l.historyBucketsPerSeries, 1, 100_000, "historyBucketsPerSeries");
  int(l.seriesPerComponentMax, 1, 4096, "seriesPerComponentMax");
}

/** Worst-case bytes of one component's series at these limits (for logging the bound). */
export function componentBytesMax(l: SeriesStoreLimits): number {
  return (
    l.seriesPerComponentMax * (16 * l.rawSamplesPerSeries + 48 * l.historyBucketsPerSeries + 512)
  );
}

export type SampleLabels = Readonly<Record<string, string>>;

/** What the store needs of a sample (wire MetricSample fits as is). */
export interface StoredSample {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly labels: SampleLabels;
}

/** One closed bucket of one series. */
export interface BucketStats {
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly count: number;
  readonly last: number;
}

export interface HistorySeriesRecord extends BucketStats {
  readonly name: string;
  readonly unit: string;
  readonly labels: SampleLabels;
}

/** Everything one component reported in one history bucket. */
export interface HistoryRecord {
  readonly componentId: string;
  /** Agent instance that produced the latest report in the bucket ("" if unknown). */
  readonly instanceId: string;
  /** Highest report sequence folded into the bucket (0 if unknown). */
  readonly sequenceHigh: number;
  readonly startMs: number;
  readonly series: readonly HistorySeriesRecord[];
}

export interface SeriesView {
  readonly key: string;
  readonly name: string;
  readonly unit: string;
  readonly labels: SampleLabels;
  /** Raw recent samples; read-only for callers. */
  readonly raw: MetricWindow;
}

export interface SeriesPoint {
  readonly tMs: number;
  readonly value: number;
}

export interface QueriedSeries {
  readonly name: string;
  readonly unit: string;
  readonly labels: SampleLabels;
  readonly points: readonly SeriesPoint[];
}

export interface SeriesQuery {
  /** Metric names; empty = all. */
  readonly names: readonly string[];
  /** Inclusive; 0 = everything held. */
  readonly fromMs: number;
  /** Exclusive. */
  readonly toMs: number;
  readonly maxPoints: number;
}

export interface QueryResult {
  readonly series: readonly QueriedSeries[];
  /** Oldest time held for this component (0 when nothing is held). */
  readonly heldFromMs: number;
}

const HISTORY_FIELDS = 6;

class Series implements SeriesView {
  readonly raw: MetricWindow;
  // History ring: one typed array, HISTORY_FIELDS numbers per bucket
  // (start, min, max, sum, count, last). One allocation per series instead
  // of six: small typed arrays cost ~200 bytes of overhead each.
  private readonly hist: Float64Array;
  private readonly hCap: number;
  private hHead = 0;
  hSize = 0;
  // Open bucket (belongs to the component's open bucket when curStart matches).
  curStart = Number.NaN;
  curMin = 0;
  curMax = 0;
  curSum = 0;
  curCount = 0;
  curLast = 0;

  constructor(
    readonly key: string,
    readonly name: string,
    readonly unit: string,
    readonly labels: SampleLabels,
    limits: SeriesStoreLimits,
  ) {
    this.raw = createMetricWindow(limits.rawSamplesPerSeries);
    this.hCap = limits.historyBucketsPerSeries;
    this.hist = new Float64Array(this.hCap * HISTORY_FIELDS);
  }

  fold(bucketStart: number, v: number): void {
    if (this.curStart !== bucketStart) {
      this.curStart = bucketStart;
      this.curMin = v;
      this.curMax = v;
      this.curSum = v;
      this.curCount = 1;
      this.curLast = v;
      return;
    }
    if (v < this.curMin) this.curMin = v;
    if (v > this.curMax) this.curMax = v;
    this.curSum += v;
    this.curCount++;
    this.curLast = v;
  }

  /** Appends a closed bucket; refuses one not newer than the newest held. */
  pushBucket(startMs: number, b: BucketStats): boolean {
    const cap = this.hCap;
    if (this.hSize > 0 && startMs <= this.bucketStartAt(this.hSize - 1)) return false;
    let slot: number;
    if (this.hSize < cap) {
      slot = (this.hHead + this.hSize) % cap;
      this.hSize++;
    } else {
      slot = this.hHead;
      this.hHead = (this.hHead + 1) % cap;
    }
    const o = slot * HISTORY_FIELDS;
    const h = this.hist;
    h[o] = startMs;
    h[o + 1] = b.min;
    h[o + 2] = b.max;
    h[o + 3] = b.sum;
    h[o + 4] = b.count;
    h[o + 5] = b.last;
    return true;
  }

  bucketStartAt(i: number): number {
    return this.hist[((this.hHead + i) % this.hCap) * HISTORY_FIELDS]!;
  }

  bucketAt(i: number): BucketStats & { startMs: number } {
    const o = ((this.hHead + i) % this.hCap) * HISTORY_FIELDS;
    const h = this.hist;
    return {
      startMs: h[o]!,
      min: h[o + 1]!,
      max: h[o + 2]!,
      sum: h[o + 3]!,
      count: h[o + 4]!,
      last: h[o + 5]!,
    };
  }
}

export interface ComponentSeries {
  readonly componentId: string;
  readonly seriesCount: number;
  /** Samples dropped because the component hit seriesPerComponentMax. */
  readonly droppedSamples: number;
  /** Samples older than the open bucket (history) or the raw window's newest (raw). */
  readonly lateSamples: number;
  /** Start of the open history bucket (NaN when none). */
  readonly openBucketMs: number;
  /**
   * Folds one report's samples at time tMs. Closes the open bucket first when
   * tMs is in a later bucket, returning the closed record (else undefined).
   */
  addReport(
    tMs: number,
    samples: readonly StoredSample[],
    instanceId: string,
    sequence: number,
    moreSamples?: readonly StoredSample[],
  ): HistoryRecord | undefined;
  /** Closes the open bucket if it ended at or before `beforeMs`. */
  closeIdle(beforeMs: number): HistoryRecord | undefined;
  /** Loads a persisted bucket (history reload); out-of-order buckets are skipped. */
  loadRecord(rec: HistoryRecord): void;
  series(): readonly SeriesView[];
  /** Newest raw value of a metric; for labeled metrics the largest over label sets. */
  latest(name: string): { value: number; tMs: number } | undefined;
  query(q: SeriesQuery, nowMs: number): QueryResult;
}

/** Stable key of a series: the name, plus sorted labels when there are any. */
export function seriesKey(name: string, labels: SampleLabels): string {
  let keys: string[] | undefined;
  for (const k in labels) {
    keys ??= [];
    keys.push(k);
  }
  if (keys === undefined) return name;
  keys.sort();
  let out = `${name}{`;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    out += `${i ? "," : ""}${k}=${JSON.stringify(labels[k])}`;
  }
  return `${out}}`;
}

export function createComponentSeries(
  componentId: string,
  limits: SeriesStoreLimits,
): ComponentSeries {
  const bucketMs = limits.historyBucketMs;
  const map = new Map<string, Series>();
  let openBucket = Number.NaN;
  let openInstance = "";
  let openSeq = 0;
  let dropped = 0;
  let late = 0;

  const seriesFor = (name: string, unit: string, labels: SampleLabels): Series | undefined => {
    const key = seriesKey(name, labels);
    let s = map.get(key);
    if (s === undefined) {
      if (map.size >= limits.seriesPerComponentMax) return undefined;
      s = new Series(key, name, unit, labels, limits);
      map.set(key, s);
    }
    return s;
  };

  const close = (): HistoryRecord | undefined => {
    if (Number.isNaN(openBucket)) return undefined;
    const out: HistorySeriesRecord[] = [];
    for (const s of map.values()) {
      if (s.curStart !== openBucket || s.curCount === 0) continue;
      const b = { min: s.curMin, max: s.curMax, sum: s.curSum, count: s.curCount, last: s.curLast };
      s.pushBucket(openBucket, b);
      s.curStart = Number.NaN;
      s.curCount = 0;
      out.push({ name: s.name, unit: s.unit, labels: s.labels, ...b });
    }
    const rec: HistoryRecord = {
      componentId,
      instanceId: openInstance,
      sequenceHigh: openSeq,
      startMs: openBucket,
      series: out,
    };
    openBucket = Number.NaN;
    return out.length > 0 ? rec : undefined;
  };

  return {
    componentId,
    get seriesCount() {
      return map.size;
    },
    get droppedSamples() {
      return dropped;
    },
    get lateSamples() {
      return late;
    },
    get openBucketMs() {
      return openBucket;
    },
    addReport(tMs, samples, instanceId, sequence, moreSamples) {
      const b = tMs - (((tMs % bucketMs) + bucketMs) % bucketMs);
      let closed: HistoryRecord | undefined;
      let toHistory = true;
      if (Number.isNaN(openBucket) || b > openBucket) {
        closed = close();
        openBucket = b;
      } else if (b < openBucket) {
        toHistory = false;
      }
      if (toHistory) {
        if (instanceId !== openInstance || sequence > openSeq) openSeq = sequence;
        openInstance = instanceId;
      }
      const fold = (list: readonly StoredSample[]) => {
        for (let i = 0; i < list.length; i++) {
          const smp = list[i]!;
          const s = seriesFor(smp.name, smp.unit, smp.labels);
          if (s === undefined) {
            dropped++;
            continue;
          }
          if (!s.raw.push(tMs, smp.value)) late++;
          if (toHistory) s.fold(b, smp.value);
          else late++;
        }
      };
      fold(samples);
      if (moreSamples !== undefined) fold(moreSamples);
      return closed;
    },
    closeIdle(beforeMs) {
      if (Number.isNaN(openBucket) || openBucket + bucketMs > beforeMs) return undefined;
      return close();
    },
    loadRecord(rec) {
      for (const r of rec.series) {
        const s = seriesFor(r.name, r.unit, r.labels);
        if (s === undefined) {
          dropped += r.count;
          continue;
        }
        s.pushBucket(rec.startMs, r);
      }
    },
    series() {
      return [...map.values()];
    },
    latest(name) {
      let best: { value: number; tMs: number } | undefined;
      for (const s of map.values()) {
        if (s.name !== name || s.raw.size === 0) continue;
        const v = s.raw.lastValue();
        if (best === undefined || v > best.value) best = { value: v, tMs: s.raw.lastTimeMs() };
      }
      return best;
    },
    query(q, nowMs) {
      const names = q.names.length > 0 ? new Set(q.names) : undefined;
      let heldFrom = Number.POSITIVE_INFINITY;
      const out: { sortKey: string; s: QueriedSeries }[] = [];
      for (const s of map.values()) {
        if (s.hSize > 0) heldFrom = Math.min(heldFrom, s.bucketStartAt(0));
        if (s.raw.size > 0) heldFrom = Math.min(heldFrom, s.raw.timeAt(0));
        if (names !== undefined && !names.has(s.name)) continue;
        const pts = collectPoints(s, bucketMs, q.fromMs, q.toMs);
        const points = downsample(pts, q, nowMs);
        out.push({ sortKey: s.key, s: { name: s.name, unit: s.unit, labels: s.labels, points } });
      }
      out.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
      return {
        series: out.map((o) => o.s),
        heldFromMs: Number.isFinite(heldFrom) ? heldFrom : 0,
      };
    },
  };
}

interface WeightedPoint {
  tMs: number;
  value: number;
  weight: number;
}

/**
 * History buckets that end before the raw window starts (as bucket means),
 * then the raw samples: each time span is represented once, at the finest
 * resolution held.
 */
function collectPoints(s: Series, bucketMs: number, fromMs: number, toMs: number): WeightedPoint[] {
  const rawStart = s.raw.size > 0 ? s.raw.timeAt(0) : Number.POSITIVE_INFINITY;
  const pts: WeightedPoint[] = [];
  for (let i = 0; i < s.hSize; i++) {
    const b = s.bucketAt(i);
    if (b.startMs + bucketMs > rawStart) break;
    if (b.startMs < fromMs || b.startMs >= toMs || b.count <= 0) continue;
    pts.push({ tMs: b.startMs, value: b.sum / b.count, weight: b.count });
  }
  for (let i = 0; i < s.raw.size; i++) {
    const t = s.raw.timeAt(i);
    if (t < fromMs || t >= toMs) continue;
    pts.push({ tMs: t, value: s.raw.valueAt(i), weight: 1 });
  }
  return pts;
}

/**
 * At most q.maxPoints points: the query window (from, or the first point;
 * to, or now) is split into maxPoints equal buckets and each non-empty bucket
 * becomes its weighted mean at the bucket start.
 */
function downsample(pts: WeightedPoint[], q: SeriesQuery, nowMs: number): SeriesPoint[] {
  if (pts.length <= q.maxPoints) return pts.map((p) => ({ tMs: p.tMs, value: p.value }));
  const lo = q.fromMs > 0 ? q.fromMs : pts[0]!.tMs;
  const hi = Number.isFinite(q.toMs) ? q.toMs : Math.max(nowMs, pts[pts.length - 1]!.tMs + 1);
  const width = (hi - lo) / q.maxPoints;
  const out: SeriesPoint[] = [];
  let cur = -1;
  let sum = 0;
  let w = 0;
  const flush = () => {
    if (cur >= 0 && w > 0) out.push({ tMs: Math.floor(lo + cur * width), value: sum / w });
  };
  for (const p of pts) {
    const idx = Math.min(q.maxPoints - 1, Math.floor((p.tMs - lo) / width));
    if (idx !== cur) {
      flush();
      cur = idx;
      sum = 0;
      w = 0;
    }
    sum += p.value * p.weight;
    w += p.weight;
  }
  flush();
  return out;
}
