/**
 * Per-component feature extraction.
 *
 * The extractor owns, for each component, the metric windows it needs, fast
 * EWMAs, the component's own slow baselines (for z-scores) and a little
 * counter state. `observe` appends one tick of samples; `extract` writes the
 * fixed-order feature vector described by FEATURE_NAMES.
 *
 * A "segment" is a stretch of contiguous data: a gap longer than `maxGapMs`,
 * or `resetSegment` (called when the component is known to have failed and
 * restarted), clears the windows and fast averages but keeps the baselines,
 * which describe the component's normal behaviour across restarts.
 *
 * Missing metrics (an edge has no encoder.fps) give each feature a documented
 * neutral value, so every role yields a vector of the same shape.
 */
import {
  type Baseline,
  baselineStep,
  counterRatePerS,
  createBaseline,
  fitLine,
  type LineFit,
  logSeconds,
  timeToLimitS,
  type WindowStats,
  windowMax,
  windowStats,
  zScore,
} from "./features.ts";
import { createMetricWindow, type MetricSample, type MetricWindow } from "./window.ts";

/** Upper cap of every time-to-limit feature: one day. */
export const TTE_CAP_S = 86_400;
const TTE_CAP_LOG = Math.log(TTE_CAP_S);

/** Metrics the predictor reads, with window capacity in samples (sized for 1 Hz). */
const METRICS = [
  ["cpu.load", 64],
  ["proc.cpu", 64],
  ["heartbeat.interval_ms", 64],
  ["mem.used_bytes", 128],
  ["mem.available_bytes", 128],
  ["mem.swap_used_bytes", 64],
  ["proc.rss_bytes", 128],
  ["fs.used_ratio", 128],
  ["fs.free_bytes", 128],
  ["proc.fds", 128],
  ["proc.restarts", 4],
  ["cpu.temp_c", 128],
  ["cpu.freq_ratio", 16],
  ["probe.loss_ratio", 64],
  ["net.rx_errors_per_s", 16],
  ["net.rx_dropped_per_s", 16],
  ["probe.rtt_ms", 16],
  ["encoder.fps", 64],
  ["encoder.speed", 64],
  ["encoder.dropped_frames", 16],
  // Stored as ln(max(ms, 1)): latency grows multiplicatively, so trends are fitted in log space.
  ["packager.ingest_latency_ms", 64],
  ["packager.error_rate", 64],
  ["edge.http_5xx_rate", 64],
  ["disk.io_wait", 16],
  // Derived: net.rx_errors_per_s + net.rx_dropped_per_s, recorded when either arrives.
  ["net.drops_per_s", 16],
] as const;

const M = {
  cpuLoad: 0,
  procCpu: 1,
  hb: 2,
  memUsed: 3,
  memAvail: 4,
  swap: 5,
  rss: 6,
  fsUsed: 7,
  fsFree: 8,
  fds: 9,
  restarts: 10,
  temp: 11,
  freq: 12,
  loss: 13,
  rxErr: 14,
  rxDrop: 15,
  rtt: 16,
  fps: 17,
  speed: 18,
  dropped: 19,
  latency: 20,
  perr: 21,
  e5xx: 22,
  ioWait: 23,
  drops: 24,
} as const;
const METRIC_COUNT = METRICS.length;
const METRIC_INDEX = new Map<string, number>(METRICS.map(([name], i) => [name, i]));

/** Metrics with a slow baseline, and the z-score standard-deviation floor in their units. */
const BASELINE_FLOOR: ReadonlyMap<number, number> = new Map([
  [M.cpuLoad, 0.03],
  [M.drops, 1],
  [M.rtt, 2],
  [M.latency, 0.1],
  [M.e5xx, 0.003],
  [M.fps, 0.5],
]);

/**
 * The feature vector, in order: [name, value used when the inputs are missing].
 * Names are `<metric>:<transform>`; they appear in explanations and logs.
 * Changing this list changes FEATURE_SET_VERSION (models record both).
 */
const SPECS = {
  cpuLoadEwma: ["cpu.load:ewma10s", 0],
  cpuLoadZ: ["cpu.load:z", 0],
  cpuLoadSlope: ["cpu.load:slope30s", 0],
  procCpuEwma: ["proc.cpu:ewma10s", 0],
  procCpuSlope: ["proc.cpu:slope60s", 0],
  hbJitter: ["heartbeat.interval_ms:std30s", 0],
  hbMax: ["heartbeat.interval_ms:max10s", 1000],
  hbSlope: ["heartbeat.interval_ms:slope60s", 0],
  hbTte: ["heartbeat.interval_ms:tte_ln_s", TTE_CAP_LOG],
  memAvailRatio: ["mem.available:ratio", 1],
  memTte: ["mem.available_bytes:tte_ln_s", TTE_CAP_LOG],
  memSlope: ["mem.available:slope120s_of_total", 0],
  swapSlope: ["mem.swap_used:slope60s_of_total", 0],
  rssSlope: ["proc.rss:slope120s_of_total", 0],
  fsUsed: ["fs.used_ratio:last", 0],
  fsTte: ["fs.free_bytes:tte_ln_s", TTE_CAP_LOG],
  fsSlope: ["fs.used_ratio:slope120s", 0],
  fdsTte: ["proc.fds:tte_ln_s", TTE_CAP_LOG],
  restartAge: ["proc.restarts:age_ln_s", TTE_CAP_LOG],
  tempLevel: ["cpu.temp_c:ewma10s", 50],
  tempSlope: ["cpu.temp_c:slope60s", 0],
  tempTte: ["cpu.temp_c:tte_ln_s", TTE_CAP_LOG],
  freqRatio: ["cpu.freq_ratio:ewma10s", 1],
  lossEwma: ["probe.loss_ratio:ewma10s", 0],
  lossSlope: ["probe.loss_ratio:slope60s", 0],
  lossTte: ["probe.loss_ratio:tte_ln_s", TTE_CAP_LOG],
  dropsLog: ["net.drops:ln1p_ewma10s", 0],
  dropsZ: ["net.drops:z", 0],
  rttZ: ["probe.rtt_ms:z", 0],
  fpsRatio: ["encoder.fps:ratio_to_baseline", 1],
  fpsSlope: ["encoder.fps:slope30s_of_baseline", 0],
  fpsTte: ["encoder.fps:tte_ln_s", TTE_CAP_LOG],
  speedEwma: ["encoder.speed:ewma10s", 1],
  speedSlope: ["encoder.speed:slope30s", 0],
  droppedRate: ["encoder.dropped_frames:rate10s", 0],
  latLog: ["packager.ingest_latency_ms:ln_ewma10s", Math.log(200)],
  latZ: ["packager.ingest_latency_ms:z", 0],
  latSlope: ["packager.ingest_latency_ms:ln_slope60s", 0],
  latTte: ["packager.ingest_latency_ms:tte_ln_s", TTE_CAP_LOG],
  // Fast onset: a young packager has no baseline for z, and a 60 s fit over
  // flat history hides a steep ramp for half a minute.
  latRise: ["packager.ingest_latency_ms:ln_rise3s_vs_60s", 0],
  latSlope15: ["packager.ingest_latency_ms:ln_slope15s", 0],
  latTte15: ["packager.ingest_latency_ms:tte15_ln_s", TTE_CAP_LOG],
  perrEwma: ["packager.error_rate:ewma10s", 0],
  perrSlope: ["packager.error_rate:slope60s", 0],
  e5xxEwma: ["edge.http_5xx_rate:ewma10s", 0],
  e5xxSlope: ["edge.http_5xx_rate:slope60s", 0],
  e5xxZ: ["edge.http_5xx_rate:z", 0],
  ioWait: ["disk.io_wait:ewma10s", 0],
  uptime: ["segment:uptime_ln1p_s", 0],
  minTte: ["any:min_tte_ln_s", TTE_CAP_LOG],
} as const satisfies Record<string, readonly [string, number]>;

export type FeatureKey = keyof typeof SPECS;
const KEYS = Object.keys(SPECS) as FeatureKey[];
/** Index of each feature in the vector. */
export const FEATURE_INDEX = Object.fromEntries(KEYS.map((k, i) => [k, i])) as Record<
  FeatureKey,
  number
>;
export const FEATURE_NAMES: readonly string[] = KEYS.map((k) => SPECS[k][0]);
export const FEATURE_MISSING: readonly number[] = KEYS.map((k) => SPECS[k][1]);
export const FEATURE_COUNT = KEYS.length;
/** Bumped whenever the meaning or order of features changes. */
export const FEATURE_SET_VERSION = 2;

export interface ExtractorOptions {
  /** Windows and fast averages are cleared after a silence longer than this. Default 10 s. */
  maxGapMs?: number;
  /** Time constant of the fast EWMAs. Default 10 s. */
  fastTauMs?: number;
  /** Time constant of the component's own baselines. Default 30 min. */
  baselineTauMs?: number;
  /** Data needed before z-scores are used (0 until then). Default 5 min. */
  baselineWarmupMs?: number;
  /** Data needed in a segment before `extract` reports ready. Default 10 s. */
  segmentWarmupMs?: number;
  /** The detector declares a component down when a heartbeat interval reaches this. Default 3000. */
  heartbeatTimeoutMs?: number;
  /** Temperature at which hosts shut down. Default 100 °C. */
  criticalTempC?: number;
  /** Open file descriptor limit assumed for proc.fds. Default 65536. */
  fdLimit?: number;
  /** Probe loss ratio at which heartbeats stop getting through. Default 0.3. */
  lossRatioLimit?: number;
  /** Ingest latency at which a packager is considered stalled. Default 5000 ms. */
  ingestLatencyLimitMs?: number;
  /** Encoder fps, as a fraction of its own baseline, considered failed. Default 0.5. */
  fpsFloorRatio?: number;
  /** Bound on tracked components; observe() throws beyond it. Default 20000. */
  componentsMax?: number;
}

interface ComponentState {
  readonly id: string;
  role: string;
  readonly windows: (MetricWindow | undefined)[];
  readonly fast: Float64Array;
  readonly lastT: Float64Array;
  readonly baselines: (Baseline | undefined)[];
  segmentStartMs: number;
  lastObserveMs: number;
  restartsValue: number;
  restartsChangedMs: number;
  createdMs: number;
  /** Names seen at each position last tick, to skip the map lookup when the agent repeats its layout. */
  nameCache: string[];
  idxCache: number[];
}

export interface FeatureExtractor {
  readonly dimension: number;
  readonly size: number;
  /**
   * Appends one tick of samples for a component. Samples older than the
   * component's newest tick, non-finite values and unknown names are ignored.
   * Returns how many samples were used.
   */
  observe(componentId: string, role: string, samples: readonly MetricSample[], tMs: number): number;
  /** Writes the feature vector into `out`; returns false when the segment is still warming up. */
  extract(componentId: string, tMs: number, out: Float64Array): boolean;
  /** Clears windows (not baselines): the component restarted. */
  resetSegment(componentId: string, tMs: number): void;
  has(componentId: string): boolean;
  roleOf(componentId: string): string | undefined;
  forget(componentId: string): void;
  componentIds(): IterableIterator<string>;
}

export function createFeatureExtractor(opts: ExtractorOptions = {}): FeatureExtractor {
  const maxGapMs = opts.maxGapMs ?? 10_000;
  const fastTauMs = opts.fastTauMs ?? 10_000;
  const baselineTauMs = opts.baselineTauMs ?? 30 * 60_000;
  const baselineWarmupMs = opts.baselineWarmupMs ?? 5 * 60_000;
  const segmentWarmupMs = opts.segmentWarmupMs ?? 10_000;
  const heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? 3000;
  const criticalTempC = opts.criticalTempC ?? 100;
  const fdLimit = opts.fdLimit ?? 65_536;
  const lossRatioLimit = opts.lossRatioLimit ?? 0.3;
  const latencyLimitLn = Math.log(opts.ingestLatencyLimitMs ?? 5000);
  const fpsFloorRatio = opts.fpsFloorRatio ?? 0.5;
  const componentsMax = opts.componentsMax ?? 20_000;
  const comps = new Map<string, ComponentState>();
  let alphaDt = Number.NaN;
  let alphaValue = 0;
  const fastAlpha = (dtMs: number): number => {
    if (dtMs !== alphaDt) {
      alphaDt = dtMs;
      alphaValue = 1 - Math.exp(-Math.max(0, dtMs) / fastTauMs);
    }
    return alphaValue;
  };
  const stats: WindowStats = { n: 0, mean: 0, variance: 0, min: 0, max: 0 };
  const fit: LineFit = { n: 0, slopePerS: 0, levelAtT: 0 };

  function newState(id: string, role: string, tMs: number): ComponentState {
    return {
      id,
      role,
      windows: new Array<MetricWindow | undefined>(METRIC_COUNT).fill(undefined),
      fast: new Float64Array(METRIC_COUNT).fill(Number.NaN),
      lastT: new Float64Array(METRIC_COUNT).fill(Number.NaN),
      baselines: METRICS.map((_, i) => (BASELINE_FLOOR.has(i) ? createBaseline() : undefined)),
      segmentStartMs: tMs,
      lastObserveMs: Number.NaN,
      restartsValue: Number.NaN,
      restartsChangedMs: Number.NaN,
      createdMs: tMs,
      nameCache: [],
      idxCache: [],
    };
  }

  function clearSegment(c: ComponentState, tMs: number): void {
    for (const w of c.windows) w?.clear();
    c.fast.fill(Number.NaN);
    c.lastT.fill(Number.NaN);
    c.segmentStartMs = tMs;
  }

  function record(c: ComponentState, m: number, tMs: number, raw: number): boolean {
    const v = m === M.latency ? Math.log(Math.max(raw, 1)) : raw;
    let w = c.windows[m];
    if (w === undefined) {
      w = createMetricWindow(METRICS[m]![1]);
      c.windows[m] = w;
    }
    if (!w.push(tMs, v)) return false;
    const dt = tMs - c.lastT[m]!;
    const prev = c.fast[m]!;
    // Same arithmetic as ewmaStep, with the weight cached for the usual 1 s interval.
    c.fast[m] = Number.isNaN(prev) ? v : prev + fastAlpha(Number.isNaN(dt) ? 0 : dt) * (v - prev);
    const b = c.baselines[m];
    if (b !== undefined) {
      const floor = BASELINE_FLOOR.get(m)!;
      // Outliers are absorbed ten times slower, so a precursor does not become "normal"
      // within its own duration, while a permanent level shift still is, eventually.
      const far =
        b.absorbedMs >= baselineWarmupMs && Math.abs(zScore(v, b.mean, b.variance, floor)) > 3;
      baselineStep(b, v, Number.isNaN(dt) ? 0 : dt, baselineTauMs, far ? 0.1 : 1);
    }
    if (m === M.restarts) {
      if (!Number.isNaN(c.restartsValue) && v !== c.restartsValue) c.restartsChangedMs = tMs;
      c.restartsValue = v;
    }
    c.lastT[m] = tMs;
    return true;
  }

  function get(id: string): ComponentState {
    const c = comps.get(id);
    if (c === undefined) throw new RangeError(`unknown component "${id}": observe it first`);
    return c;
  }

  function z(c: ComponentState, m: number): number {
    const b = c.baselines[m]!;
    if (b.absorbedMs < baselineWarmupMs) return 0;
    const x = c.fast[m]!;
    if (Number.isNaN(x)) return 0;
    return zScore(x, b.mean, b.variance, BASELINE_FLOOR.get(m)!);
  }

  /** Fits a line over the span into `fit`; false when the metric has no usable window. */
  function fitOf(c: ComponentState, m: number, tMs: number, spanMs: number): boolean {
    const w = c.windows[m];
    if (w === undefined) {
      fit.n = 0;
      fit.slopePerS = Number.NaN;
      fit.levelAtT = Number.NaN;
      return false;
    }
    fitLine(w, tMs, spanMs, 5, fit);
    return !Number.isNaN(fit.slopePerS);
  }

  function slope(c: ComponentState, m: number, tMs: number, spanMs: number): number {
    fitOf(c, m, tMs, spanMs);
    return fit.slopePerS;
  }

  /** ln seconds to `limit` from the last fit (needs 10 samples), capped at a day. */
  function tteFromFit(limit: number, direction: "up" | "down"): number {
    if (!(fit.n >= 10) || Number.isNaN(fit.slopePerS)) return TTE_CAP_LOG;
    return logSeconds(timeToLimitS(fit.levelAtT, fit.slopePerS, limit, direction), TTE_CAP_S);
  }

  const F = FEATURE_INDEX;
  const orMissing = (x: number, k: FeatureKey): number =>
    Number.isFinite(x) ? x : FEATURE_MISSING[F[k]]!;

  return {
    dimension: FEATURE_COUNT,
    get size() {
      return comps.size;
    },

    observe(componentId, role, samples, tMs) {
      let c = comps.get(componentId);
      if (c === undefined) {
        if (comps.size >= componentsMax) {
          throw new RangeError(
            `predictor tracks ${componentsMax} components (componentsMax); forget() one first`,
          );
        }
        c = newState(componentId, role, tMs);
        comps.set(componentId, c);
      }
      c.role = role;
      if (!Number.isFinite(tMs) || tMs < c.lastObserveMs) return 0;
      if (!Number.isNaN(c.lastObserveMs) && tMs - c.lastObserveMs > maxGapMs) {
        clearSegment(c, tMs);
      }
      if (Number.isNaN(c.lastObserveMs)) c.segmentStartMs = tMs;
      let used = 0;
      let drops = 0;
      let sawDrops = false;
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i]!;
        let m: number;
        if (c.nameCache[i] === s.name) {
          m = c.idxCache[i]!;
        } else {
          m = METRIC_INDEX.get(s.name) ?? -1;
          c.nameCache[i] = s.name;
          c.idxCache[i] = m;
        }
        if (m < 0 || !Number.isFinite(s.value)) continue;
        if (record(c, m, tMs, s.value)) {
          used++;
          if (m === M.rxErr || m === M.rxDrop) {
            drops += s.value;
            sawDrops = true;
          }
        }
      }
      if (sawDrops) record(c, M.drops, tMs, drops);
      c.lastObserveMs = tMs;
      return used;
    },

    extract(componentId, tMs, out) {
      const c = get(componentId);
      const W = c.windows;
      const fast = c.fast;

      out[F.cpuLoadEwma] = orMissing(fast[M.cpuLoad]!, "cpuLoadEwma");
      out[F.cpuLoadZ] = W[M.cpuLoad] ? z(c, M.cpuLoad) : 0;
      out[F.cpuLoadSlope] = orMissing(slope(c, M.cpuLoad, tMs, 30_000), "cpuLoadSlope");
      out[F.procCpuEwma] = orMissing(fast[M.procCpu]!, "procCpuEwma");
      out[F.procCpuSlope] = orMissing(slope(c, M.procCpu, tMs, 60_000), "procCpuSlope");

      const hb = W[M.hb];
      if (hb !== undefined && hb.size > 0) {
        windowStats(hb, tMs, 30_000, stats);
        out[F.hbJitter] = stats.n > 1 ? Math.sqrt(stats.variance) : 0;
        out[F.hbMax] = orMissing(windowMax(hb, tMs, 10_000), "hbMax");
      } else {
        out[F.hbJitter] = FEATURE_MISSING[F.hbJitter]!;
        out[F.hbMax] = FEATURE_MISSING[F.hbMax]!;
      }
      fitOf(c, M.hb, tMs, 60_000);
      out[F.hbSlope] = orMissing(fit.slopePerS, "hbSlope");
      out[F.hbTte] = tteFromFit(heartbeatTimeoutMs, "up");

      const avail = fast[M.memAvail]!;
      const used = fast[M.memUsed]!;
      const total = avail + used;
      const haveTotal = Number.isFinite(total) && total > 0;
      out[F.memAvailRatio] = haveTotal ? avail / total : FEATURE_MISSING[F.memAvailRatio]!;
      fitOf(c, M.memAvail, tMs, 120_000);
      out[F.memTte] = tteFromFit(0, "down");
      out[F.memSlope] = haveTotal ? orMissing(fit.slopePerS / total, "memSlope") : 0;
      out[F.swapSlope] = haveTotal
        ? orMissing(slope(c, M.swap, tMs, 60_000) / total, "swapSlope")
        : 0;
      out[F.rssSlope] = haveTotal
        ? orMissing(slope(c, M.rss, tMs, 120_000) / total, "rssSlope")
        : 0;

      const fsw = W[M.fsUsed];
      out[F.fsUsed] = fsw && fsw.size > 0 ? fsw.lastValue() : FEATURE_MISSING[F.fsUsed]!;
      fitOf(c, M.fsFree, tMs, 120_000);
      out[F.fsTte] = tteFromFit(0, "down");
      out[F.fsSlope] = orMissing(slope(c, M.fsUsed, tMs, 120_000), "fsSlope");
      fitOf(c, M.fds, tMs, 120_000);
      out[F.fdsTte] = tteFromFit(fdLimit, "up");
      out[F.restartAge] = Number.isNaN(c.restartsChangedMs)
        ? TTE_CAP_LOG
        : logSeconds((tMs - c.restartsChangedMs) / 1000, TTE_CAP_S);

      out[F.tempLevel] = orMissing(fast[M.temp]!, "tempLevel");
      fitOf(c, M.temp, tMs, 60_000);
      out[F.tempSlope] = orMissing(fit.slopePerS, "tempSlope");
      out[F.tempTte] = tteFromFit(criticalTempC, "up");
      out[F.freqRatio] = orMissing(fast[M.freq]!, "freqRatio");

      out[F.lossEwma] = orMissing(fast[M.loss]!, "lossEwma");
      fitOf(c, M.loss, tMs, 60_000);
      out[F.lossSlope] = orMissing(fit.slopePerS, "lossSlope");
      out[F.lossTte] = tteFromFit(lossRatioLimit, "up");
      const drops = fast[M.drops]!;
      out[F.dropsLog] = Number.isFinite(drops) ? Math.log1p(Math.max(0, drops)) : 0;
      out[F.dropsZ] = W[M.drops] ? z(c, M.drops) : 0;
      out[F.rttZ] = W[M.rtt] ? z(c, M.rtt) : 0;

      const fpsBase = c.baselines[M.fps]!;
      const fpsW = W[M.fps];
      if (fpsW !== undefined && fpsBase.mean > 0) {
        out[F.fpsRatio] = fast[M.fps]! / fpsBase.mean;
        out[F.fpsSlope] = orMissing(slope(c, M.fps, tMs, 30_000) / fpsBase.mean, "fpsSlope");
        fitOf(c, M.fps, tMs, 60_000);
        out[F.fpsTte] = tteFromFit(fpsFloorRatio * fpsBase.mean, "down");
      } else {
        out[F.fpsRatio] = FEATURE_MISSING[F.fpsRatio]!;
        out[F.fpsSlope] = FEATURE_MISSING[F.fpsSlope]!;
        out[F.fpsTte] = FEATURE_MISSING[F.fpsTte]!;
      }
      out[F.speedEwma] = orMissing(fast[M.speed]!, "speedEwma");
      out[F.speedSlope] = orMissing(slope(c, M.speed, tMs, 30_000), "speedSlope");
      const dw = W[M.dropped];
      out[F.droppedRate] = dw ? counterRatePerS(dw, tMs, 10_000) : 0;

      out[F.latLog] = orMissing(fast[M.latency]!, "latLog");
      out[F.latZ] = W[M.latency] ? z(c, M.latency) : 0;
      fitOf(c, M.latency, tMs, 60_000);
      out[F.latSlope] = orMissing(fit.slopePerS, "latSlope");
      out[F.latTte] = tteFromFit(latencyLimitLn, "up");
      // Mean ln latency of the last 3 s above the mean of the last 60 s.
      const lw = W[M.latency];
      let rise = Number.NaN;
      if (lw !== undefined && lw.size > 0) {
        windowStats(lw, tMs, 3000, stats);
        const recent = stats.mean;
        windowStats(lw, tMs, 60_000, stats);
        if (stats.n >= 5) rise = recent - stats.mean;
      }
      out[F.latRise] = orMissing(rise, "latRise");
      fitOf(c, M.latency, tMs, 15_000);
      out[F.latSlope15] = orMissing(fit.slopePerS, "latSlope15");
      out[F.latTte15] = tteFromFit(latencyLimitLn, "up");
      out[F.perrEwma] = orMissing(fast[M.perr]!, "perrEwma");
      out[F.perrSlope] = orMissing(slope(c, M.perr, tMs, 60_000), "perrSlope");
      out[F.e5xxEwma] = orMissing(fast[M.e5xx]!, "e5xxEwma");
      out[F.e5xxSlope] = orMissing(slope(c, M.e5xx, tMs, 60_000), "e5xxSlope");
      out[F.e5xxZ] = W[M.e5xx] ? z(c, M.e5xx) : 0;
      out[F.ioWait] = orMissing(fast[M.ioWait]!, "ioWait");
      const upS = Number.isNaN(c.lastObserveMs) ? 0 : (tMs - c.segmentStartMs) / 1000;
      out[F.uptime] = Math.log1p(Math.max(0, upS));
      out[F.minTte] = Math.min(
        out[F.hbTte]!,
        out[F.memTte]!,
        out[F.fsTte]!,
        out[F.fdsTte]!,
        out[F.tempTte]!,
        out[F.lossTte]!,
        out[F.fpsTte]!,
        out[F.latTte]!,
        out[F.latTte15]!,
      );
      return !Number.isNaN(c.lastObserveMs) && tMs - c.segmentStartMs >= segmentWarmupMs;
    },

    resetSegment(componentId, tMs) {
      const c = comps.get(componentId);
      if (c !== undefined) clearSegment(c, tMs);
    },
    has: (id) => comps.has(id),
    roleOf: (id) => comps.get(id)?.role,
    forget(id) {
      comps.delete(id);
    },
    componentIds: () => comps.keys(),
  };
}

/** Neutral feature vector (every input missing); used for explanations and tests. */
export function missingFeatureVector(): Float64Array {
  return Float64Array.from(FEATURE_MISSING);
}
