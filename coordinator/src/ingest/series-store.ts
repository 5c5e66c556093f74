/**
 * Per-component metric memory of the leader: for every series (metric name +
 * sample labels) a raw window at native rate (bounded in samples) and a
 * downsampled history of fixed-width buckets (bounded in buckets).
 *
 * Buckets are aligned to multiples of `historyBucketMs` (unix ms) and close
 * per component: the first report whose time falls in a later bucket closes
 * the open bucket of every series of that component at once, which yields one
 * HistoryRecord per component and bucket (what the history files store, with
 * min/max/sum/count/last in full precision). `closeIdle` closes buckets of
 * components that stopped reporting.
 *
 * Memory is proportional to what is held, bounded by the limits:
 * - raw: one Float64Array per series of (time, value) pairs, grown by
 *   doubling from 4 samples up to `rawSamplesPerSeries` (16 B per sample);
 *   the open bucket's accumulators sit in its first 6 slots (no boxed
 *   doubles on the object);
 * - history: one Float32Array per series of (mean, count) pairs, a ring over
 *   consecutive bucket numbers (a bucket's start is implied by its slot, a
 *   gap is a count of 0), grown by doubling up to `historyBucketsPerSeries`
 *   (8 B per bucket instead of 48). Float32 keeps 24 bits of mantissa:
 *   means are exact to a relative 6e-8 (a byte count of 1e11 to ±6 KB, a
 *   ratio to ±6e-8), far below what agents measure, and counts are exact up
 *   to 2^24 samples per bucket. Only GetMetrics reads them (as bucket means);
 *   min/max/last are never read back from memory, so only the history files
 *   keep them.
 * `componentBytesMax` is the bound per component; the owner bounds the
 * component count (ingest.componentsMax) and reports the product at start.
 * `bytes` (per component, and the shared account) is what is allocated now.
 *
 * Pure: times are arguments (unix ms); no I/O.
 */
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

/** Estimated fixed bytes of one series: object, map entry, two typed arrays, key. */
export const SERIES_OVERHEAD_BYTES = 420;
/** Estimated fixed bytes of one component's store (object, map, layout of ~30 samples). */
export const COMPONENT_OVERHEAD_BYTES = 900;
/** Open bucket (start, min, max, sum, count, last), then the newest raw time. */
const RAW_HEADER = 7;
const NEWEST_T = 6;
const RAW_INITIAL_SAMPLES = 4;
const HIST_INITIAL_BUCKETS = 4;

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
    COMPONENT_OVERHEAD_BYTES +
    8 * LAYOUT_MAX +
    l.seriesPerComponentMax *
      (SERIES_OVERHEAD_BYTES +
        8 * (RAW_HEADER + 2 * l.rawSamplesPerSeries) +
        8 * l.historyBucketsPerSeries)
  );
}

/** Bytes allocated by a set of component stores (shared, updated as they grow). */
export interface MemoryAccount {
  bytes: number;
}

export type SampleLabels = Readonly<Record<string, string>>;

/** The labels of unlabeled samples, shared (keys of series with it are just the name). */
export const NO_LABELS: SampleLabels = Object.freeze({});

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

/** Read access to a series' raw window; index 0 is the oldest sample. */
export interface RawWindow {
  readonly size: number;
  timeAt(i: number): number;
  valueAt(i: number): number;
  /** NaN when empty. */
  lastTimeMs(): number;
  /** NaN when empty. */
  lastValue(): number;
}

export interface SeriesView {
  readonly key: string;
  readonly name: string;
  readonly unit: string;
  readonly labels: SampleLabels;
  /** Raw recent samples. */
  readonly raw: RawWindow;
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

class Series implements SeriesView, RawWindow {
  /**
   * [curStart, curMin, curMax, curSum, curCount, curLast, newestT, t0, v0, t1, v1, ...]:
   * the open bucket, the newest raw time, then the raw ring of (time, value)
   * pairs.
   */
  private r: Float64Array;
  private rCap: number;
  private rHead = 0;
  size = 0;
  /** (mean, count) per bucket; slot of bucket number b is (hHead + b - hFirst) % hCap. */
  private h: Float32Array | undefined = undefined;
  private hCap = 0;
  private hHead = 0;
  /** Buckets in the ring, empty ones included. */
  hSize = 0;
  /** Bucket number (startMs / bucketMs) of the oldest slot. */
  private hFirst = 0;

  constructor(
    readonly key: string,
    readonly name: string,
    readonly unit: string,
    readonly labels: SampleLabels,
    private readonly limits: SeriesStoreLimits,
    private readonly account: MemoryAccount,
  ) {
    this.rCap = Math.min(RAW_INITIAL_SAMPLES, limits.rawSamplesPerSeries);
    this.r = new Float64Array(RAW_HEADER + 2 * this.rCap);
    this.r[0] = Number.NaN;
    account.bytes += SERIES_OVERHEAD_BYTES + this.r.byteLength;
  }

  get raw(): RawWindow {
    return this;
  }

  get curStart(): number {
    return this.r[0]!;
  }

  get curCount(): number {
    return this.r[4]!;
  }

  /** The open bucket as stats (valid when curCount > 0). */
  openStats(): BucketStats {
    const r = this.r;
    return { min: r[1]!, max: r[2]!, sum: r[3]!, count: r[4]!, last: r[5]! };
  }

  clearOpen(): void {
    this.r[0] = Number.NaN;
    this.r[4] = 0;
  }

  fold(bucketStart: number, v: number): void {
    const r = this.r;
    if (r[0] !== bucketStart) {
      r[0] = bucketStart;
      r[1] = v;
      r[2] = v;
      r[3] = v;
      r[4] = 1;
      r[5] = v;
      return;
    }
    if (v < r[1]!) r[1] = v;
    if (v > r[2]!) r[2] = v;
    r[3]! += v;
    r[4]!++;
    r[5] = v;
  }

  /** Appends a raw sample; false (nothing stored) for a non-finite or out-of-order one. */
  push(tMs: number, value: number): boolean {
    if (!Number.isFinite(tMs) || !Number.isFinite(value)) return false;
    if (this.size > 0 && tMs < this.r[NEWEST_T]!) return false;
    if (this.size === this.rCap && this.rCap < this.limits.rawSamplesPerSeries) this.growRaw();
    let slot: number;
    if (this.size < this.rCap) {
      slot = this.rHead + this.size;
      if (slot >= this.rCap) slot -= this.rCap;
      this.size++;
    } else {
      slot = this.rHead;
      this.rHead = slot + 1 === this.rCap ? 0 : slot + 1;
    }
    const r = this.r;
    const o = RAW_HEADER + 2 * slot;
    r[o] = tMs;
    r[o + 1] = value;
    r[NEWEST_T] = tMs;
    return true;
  }

  private growRaw(): void {
    const cap = Math.min(this.rCap * 2, this.limits.rawSamplesPerSeries);
    const next = new Float64Array(RAW_HEADER + 2 * cap);
    next.set(this.r.subarray(0, RAW_HEADER));
    // The ring is full when it grows: copy it oldest first.
    for (let i = 0; i < this.size; i++) {
      const from = RAW_HEADER + 2 * ((this.rHead + i) % this.rCap);
      next[RAW_HEADER + 2 * i] = this.r[from]!;
      next[RAW_HEADER + 2 * i + 1] = this.r[from + 1]!;
    }
    this.account.bytes += next.byteLength - this.r.byteLength;
    this.r = next;
    this.rCap = cap;
    this.rHead = 0;
  }

  timeAt(i: number): number {
    return this.r[RAW_HEADER + 2 * ((this.rHead + i) % this.rCap)]!;
  }

  valueAt(i: number): number {
    return this.r[RAW_HEADER + 2 * ((this.rHead + i) % this.rCap) + 1]!;
  }

  lastTimeMs(): number {
    return this.size === 0 ? Number.NaN : this.r[NEWEST_T]!;
  }

  lastValue(): number {
    return this.size === 0 ? Number.NaN : this.valueAt(this.size - 1);
  }

  /**
   * Appends a closed bucket (bucket number b = startMs / bucketMs, floored);
   * refuses one not newer than the newest held. Buckets skipped in between
   * become empty slots; a jump past the whole ring starts it afresh.
   */
  pushBucket(b: number, mean: number, count: number): boolean {
    const max = this.limits.historyBucketsPerSeries;
    if (this.hSize > 0) {
      const newest = this.hFirst + this.hSize - 1;
      if (b <= newest) return false;
      if (b - newest >= max) this.hSize = 0;
    }
    if (this.hSize === 0) {
      this.hHead = 0;
      this.hFirst = b;
    }
    // Slots needed from the oldest held bucket through b.
    const need = b - this.hFirst + 1;
    if (need > this.hCap && this.hCap < max) this.growHist(Math.min(max, need));
    const cap = this.hCap;
    const h = this.h!;
    // Drop the oldest buckets the ring cannot hold together with b.
    const drop = Math.max(0, need - cap);
    if (drop > 0) {
      this.hHead = (this.hHead + drop) % cap;
      this.hFirst += drop;
      this.hSize -= drop;
    }
    // Empty slots for skipped buckets, then b.
    for (let k = this.hFirst + this.hSize; k < b; k++) {
      const o = 2 * ((this.hHead + this.hSize) % cap);
      h[o] = 0;
      h[o + 1] = 0;
      this.hSize++;
    }
    const o = 2 * ((this.hHead + this.hSize) % cap);
    h[o] = mean;
    h[o + 1] = count;
    this.hSize++;
    return true;
  }

  private growHist(atLeast: number): void {
    let cap = Math.max(HIST_INITIAL_BUCKETS, this.hCap);
    while (cap < atLeast) cap *= 2;
    cap = Math.min(cap, this.limits.historyBucketsPerSeries);
    const next = new Float32Array(2 * cap);
    for (let i = 0; i < this.hSize; i++) {
      const from = 2 * ((this.hHead + i) % this.hCap);
      next[2 * i] = this.h![from]!;
      next[2 * i + 1] = this.h![from + 1]!;
    }
    this.account.bytes += next.byteLength - (this.h?.byteLength ?? 0);
    this.h = next;
    this.hCap = cap;
    this.hHead = 0;
  }

  /** Bucket number of slot i (0 = oldest). */
  bucketAt(i: number): number {
    return this.hFirst + i;
  }

  bucketMean(i: number): number {
    return this.h![2 * ((this.hHead + i) % this.hCap)]!;
  }

  bucketCount(i: number): number {
    return this.h![2 * ((this.hHead + i) % this.hCap) + 1]!;
  }

  get bytes(): number {
    return SERIES_OVERHEAD_BYTES + this.r.byteLength + (this.h?.byteLength ?? 0);
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
  /** Bytes allocated for this component's series now. */
  readonly bytes: number;
  /** Gives this store's bytes back to the account it was created with (the owner dropped it). */
  release(): void;
  /**
   * Folds one report's samples at time tMs. Closes the open bucket first when
   * tMs is in a later bucket, returning the closed record (else undefined).
   */
  addReport(
    tMs: number,
    samples: readonly StoredSample[],
    instanceId: string,
    sequence: number,
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

/** Positions remembered per component (a report has at most 512 wire samples). */
const LAYOUT_MAX = 128;

/**
 * Keys of labeled series, per shared (frozen) labels object: the decoder
 * interns label sets, so a key is built once per series, not per sample.
 */
const keyCache = new WeakMap<SampleLabels, Map<string, string>>();

function keyOf(name: string, labels: SampleLabels): string {
  if (labels === NO_LABELS) return name;
  let any = false;
  for (const _ in labels) {
    any = true;
    break;
  }
  if (!any) return name;
  if (!Object.isFrozen(labels)) return seriesKey(name, labels);
  let byName = keyCache.get(labels);
  if (byName === undefined) {
    byName = new Map();
    keyCache.set(labels, byName);
  }
  let key = byName.get(name);
  if (key === undefined) {
    key = seriesKey(name, labels);
    byName.set(name, key);
  }
  return key;
}

export function createComponentSeries(
  componentId: string,
  limits: SeriesStoreLimits,
  account: MemoryAccount = { bytes: 0 },
): ComponentSeries {
  return new ComponentStore(componentId, limits, account);
}

class ComponentStore implements ComponentSeries {
  private readonly map = new Map<string, Series>();
  /**
   * The series of the previous report's samples by position: an agent sends
   * the same samples in the same order every time, so most samples find
   * their series by two identity comparisons instead of a key and a lookup.
   */
  private readonly layout: (Series | undefined)[] = [];
  private openBucket = Number.NaN;
  private openInstance = "";
  private openSeq = 0;
  droppedSamples = 0;
  lateSamples = 0;

  constructor(
    readonly componentId: string,
    private readonly limits: SeriesStoreLimits,
    private readonly account: MemoryAccount,
  ) {
    account.bytes += COMPONENT_OVERHEAD_BYTES;
  }

  get seriesCount(): number {
    return this.map.size;
  }

  get openBucketMs(): number {
    return this.openBucket;
  }

  get bytes(): number {
    let n = COMPONENT_OVERHEAD_BYTES;
    for (const s of this.map.values()) n += s.bytes;
    return n;
  }

  /** Gives this store's bytes back to the account (the owner dropped it). */
  release(): void {
    this.account.bytes -= this.bytes;
  }

  private seriesFor(name: string, unit: string, labels: SampleLabels): Series | undefined {
    const key = keyOf(name, labels);
    let s = this.map.get(key);
    if (s === undefined) {
      if (this.map.size >= this.limits.seriesPerComponentMax) return undefined;
      s = new Series(key, name, unit, labels, this.limits, this.account);
      this.map.set(key, s);
    }
    return s;
  }

  private close(): HistoryRecord | undefined {
    const openBucket = this.openBucket;
    if (Number.isNaN(openBucket)) return undefined;
    const b = Math.floor(openBucket / this.limits.historyBucketMs);
    const out: HistorySeriesRecord[] = [];
    for (const s of this.map.values()) {
      if (s.curStart !== openBucket || s.curCount === 0) continue;
      const st = s.openStats();
      s.pushBucket(b, st.sum / st.count, st.count);
      s.clearOpen();
      out.push({ name: s.name, unit: s.unit, labels: s.labels, ...st });
    }
    const rec: HistoryRecord = {
      componentId: this.componentId,
      instanceId: this.openInstance,
      sequenceHigh: this.openSeq,
      startMs: openBucket,
      series: out,
    };
    this.openBucket = Number.NaN;
    return out.length > 0 ? rec : undefined;
  }

  addReport(
    tMs: number,
    samples: readonly StoredSample[],
    instanceId: string,
    sequence: number,
  ): HistoryRecord | undefined {
    const bucketMs = this.limits.historyBucketMs;
    const b = tMs - (((tMs % bucketMs) + bucketMs) % bucketMs);
    let closed: HistoryRecord | undefined;
    let toHistory = true;
    if (Number.isNaN(this.openBucket) || b > this.openBucket) {
      closed = this.close();
      this.openBucket = b;
    } else if (b < this.openBucket) {
      toHistory = false;
    }
    if (toHistory) {
      if (instanceId !== this.openInstance || sequence > this.openSeq) this.openSeq = sequence;
      this.openInstance = instanceId;
    }
    this.fold(samples, tMs, b, toHistory);
    return closed;
  }

  private fold(list: readonly StoredSample[], tMs: number, b: number, toHistory: boolean): void {
    const layout = this.layout;
    for (let i = 0; i < list.length; i++) {
      const smp = list[i]!;
      let s = i < LAYOUT_MAX ? layout[i] : undefined;
      if (s === undefined || s.name !== smp.name || s.labels !== smp.labels) {
        s = this.seriesFor(smp.name, smp.unit, smp.labels);
        if (s === undefined) {
          this.droppedSamples++;
          continue;
        }
        if (i < LAYOUT_MAX) layout[i] = s;
      }
      if (!s.push(tMs, smp.value)) this.lateSamples++;
      if (toHistory) s.fold(b, smp.value);
      else this.lateSamples++;
    }
  }

  closeIdle(beforeMs: number): HistoryRecord | undefined {
    if (Number.isNaN(this.openBucket) || this.openBucket + this.limits.historyBucketMs > beforeMs) {
      return undefined;
    }
    return this.close();
  }

  loadRecord(rec: HistoryRecord): void {
    const b = Math.floor(rec.startMs / this.limits.historyBucketMs);
    for (const r of rec.series) {
      const s = this.seriesFor(r.name, r.unit, r.labels);
      if (s === undefined) {
        this.droppedSamples += r.count;
        continue;
      }
      if (r.count > 0) s.pushBucket(b, r.sum / r.count, r.count);
    }
  }

  series(): readonly SeriesView[] {
    return [...this.map.values()];
  }

  latest(name: string): { value: number; tMs: number } | undefined {
    let best: { value: number; tMs: number } | undefined;
    for (const s of this.map.values()) {
      if (s.name !== name || s.size === 0) continue;
      const v = s.lastValue();
      if (best === undefined || v > best.value) best = { value: v, tMs: s.lastTimeMs() };
    }
    return best;
  }

  query(q: SeriesQuery, nowMs: number): QueryResult {
    const bucketMs = this.limits.historyBucketMs;
    const names = q.names.length > 0 ? new Set(q.names) : undefined;
    let heldFrom = Number.POSITIVE_INFINITY;
    const out: { sortKey: string; s: QueriedSeries }[] = [];
    for (const s of this.map.values()) {
      for (let i = 0; i < s.hSize; i++) {
        if (s.bucketCount(i) > 0) {
          heldFrom = Math.min(heldFrom, s.bucketAt(i) * bucketMs);
          break;
        }
      }
      if (s.size > 0) heldFrom = Math.min(heldFrom, s.timeAt(0));
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
  }
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
  const rawStart = s.size > 0 ? s.timeAt(0) : Number.POSITIVE_INFINITY;
  const pts: WeightedPoint[] = [];
  for (let i = 0; i < s.hSize; i++) {
    const startMs = s.bucketAt(i) * bucketMs;
    if (startMs + bucketMs > rawStart) break;
    const count = s.bucketCount(i);
    if (startMs < fromMs || startMs >= toMs || count <= 0) continue;
    pts.push({ tMs: startMs, value: s.bucketMean(i), weight: count });
  }
  for (let i = 0; i < s.size; i++) {
    const t = s.timeAt(i);
    if (t < fromMs || t >= toMs) continue;
    pts.push({ tMs: t, value: s.valueAt(i), weight: 1 });
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
