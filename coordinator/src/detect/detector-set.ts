/**
 * Liveness trackers for every component a leader watches, plus the
 * coordinator's own stall accounting.
 *
 * The owner calls `tick(now)` every `tickIntervalMs`. A tick that comes late
 * by more than `stallToleranceMs` means this process's event loop (GC, a sync
 * disk write, CPU starvation) did not run: the lateness is recorded as a
 * stall, and each tracker discounts the longest stall since its last arrival
 * from its silence. Without this, a 200 ms stall of the coordinator looks
 * like 200 ms of silence from every agent at once. The last
 * `stallHistory` stalls are kept (bounded).
 *
 * Pure: time comes in as arguments (monotonic ms); no timers.
 */
import {
  createLivenessTracker,
  defaultLivenessOptions,
  type LivenessOptions,
  type LivenessState,
  type LivenessTracker,
  type LivenessVerdict,
  validateLivenessOptions,
} from "./liveness.ts";

export interface DetectorSetOptions {
  liveness: LivenessOptions;
  /** Period at which the owner calls tick(). */
  tickIntervalMs: number;
  /** Tick lateness up to this is scheduling noise and not counted as stall. */
  stallToleranceMs: number;
  /** Bound on tracked components; arrivals for more are refused. */
  componentsMax: number;
}

export const defaultDetectorSetOptions: Readonly<DetectorSetOptions> = {
  liveness: defaultLivenessOptions,
  tickIntervalMs: 50,
  stallToleranceMs: 15,
  componentsMax: 100_000,
};

export interface LivenessTransition {
  readonly componentId: string;
  readonly from: LivenessState;
  readonly to: LivenessState;
  readonly verdict: LivenessVerdict;
}

export interface DetectorSet {
  readonly size: number;
  /** Milliseconds of coordinator stall seen so far (never decreases). */
  readonly stallTotalMs: number;
  /** Longest stall recorded after monotonic time `sinceMs` (0 if none). */
  longestStallSince(sinceMs: number): number;
  /**
   * Starts watching afresh (new leadership): every listed component gets an
   * unknown tracker with a grace period ending at nowMs + graceMs; earlier
   * trackers are dropped.
   */
  begin(nowMs: number, graceMs: number, componentIds: Iterable<string>): void;
  /**
   * A liveness proof from a component (Hello, live report, directive result).
   * Unknown components get a tracker without grace. False when the set is full.
   */
  arrival(componentId: string, nowMs: number, heartbeatIntervalMs?: number): boolean;
  /** Evaluates every tracker; returns the state changes since the previous tick. */
  tick(nowMs: number): LivenessTransition[];
  /** Stops watching a component (deregistered). */
  remove(componentId: string): void;
  has(componentId: string): boolean;
  /** Verdict of the latest tick (undefined for untracked components). */
  verdict(componentId: string): LivenessVerdict | undefined;
  ids(): IterableIterator<string>;
}

interface Entry {
  readonly id: string;
  readonly tracker: LivenessTracker;
  /** State reported by the previous tick (transitions are relative to it). */
  reported: LivenessState;
  /** The latest tick's verdict, built when asked for (ticks run 20 times a second). */
  verdict: LivenessVerdict | undefined;
}

export function createDetectorSet(opts: Partial<DetectorSetOptions> = {}): DetectorSet {
  const o: DetectorSetOptions = {
    ...defaultDetectorSetOptions,
    ...opts,
    liveness: { ...defaultLivenessOptions, ...opts.liveness },
  };
  validateLivenessOptions(o.liveness);
  if (!(o.tickIntervalMs > 0))
    throw new RangeError(`tickIntervalMs: must be > 0, got ${o.tickIntervalMs}`);
  if (!(o.stallToleranceMs >= 0)) {
    throw new RangeError(`stallToleranceMs: must be >= 0, got ${o.stallToleranceMs}`);
  }
  const entries = new Map<string, Entry>();
  let stallTotal = 0;
  let lastTickMs = Number.NaN;
  // Ring of recent stalls: when each was noticed and how long it was.
  const STALL_HISTORY = 64;
  const stallAt = new Float64Array(STALL_HISTORY);
  const stallLen = new Float64Array(STALL_HISTORY);
  let stallCount = 0;
  let stallNext = 0;
  const longestStallSince = (sinceMs: number): number => {
    let longest = 0;
    for (let k = 1; k <= stallCount; k++) {
      const i = (stallNext - k + STALL_HISTORY) % STALL_HISTORY;
      if (stallAt[i]! <= sinceMs) break;
      if (stallLen[i]! > longest) longest = stallLen[i]!;
    }
    return longest;
  };

  const add = (id: string, graceUntilMs: number, intervalMs?: number): Entry => {
    const liveness =
      intervalMs === undefined ? o.liveness : { ...o.liveness, heartbeatIntervalMs: intervalMs };
    const tracker = createLivenessTracker(liveness, graceUntilMs);
    const e: Entry = { id, tracker, reported: "unknown", verdict: undefined };
    entries.set(id, e);
    return e;
  };

  return {
    get size() {
      return entries.size;
    },
    get stallTotalMs() {
      return stallTotal;
    },
    longestStallSince,
    begin(nowMs, graceMs, componentIds) {
      entries.clear();
      lastTickMs = nowMs;
      for (const id of componentIds) {
        if (entries.size >= o.componentsMax) break;
        add(id, nowMs + graceMs);
      }
    },
    arrival(id, nowMs, heartbeatIntervalMs) {
      let e = entries.get(id);
      if (e === undefined) {
        if (entries.size >= o.componentsMax) return false;
        e = add(id, nowMs, heartbeatIntervalMs);
      } else if (heartbeatIntervalMs !== undefined) {
        e.tracker.setHeartbeatIntervalMs(heartbeatIntervalMs);
      }
      e.tracker.arrival(nowMs, longestStallSince(e.tracker.referenceMs));
      return true;
    },
    tick(nowMs) {
      if (!Number.isNaN(lastTickMs)) {
        const lateMs = nowMs - lastTickMs - o.tickIntervalMs;
        if (lateMs > o.stallToleranceMs) {
          stallTotal += lateMs;
          stallAt[stallNext] = nowMs;
          stallLen[stallNext] = lateMs;
          stallNext = (stallNext + 1) % STALL_HISTORY;
          if (stallCount < STALL_HISTORY) stallCount++;
        }
      }
      lastTickMs = nowMs;
      const out: LivenessTransition[] = [];
      for (const e of entries.values()) {
        const state = e.tracker.evaluateState(
          nowMs,
          stallCount === 0 ? 0 : longestStallSince(e.tracker.referenceMs),
        );
        e.verdict = undefined;
        if (state !== e.reported) {
          const verdict = e.tracker.lastVerdict();
          e.verdict = verdict;
          out.push({ componentId: e.id, from: e.reported, to: state, verdict });
          e.reported = state;
        }
      }
      return out;
    },
    remove(id) {
      entries.delete(id);
    },
    has(id) {
      return entries.has(id);
    },
    verdict(id) {
      const e = entries.get(id);
      if (e === undefined) return undefined;
      e.verdict ??= e.tracker.lastVerdict();
      return e.verdict;
    },
    ids() {
      return entries.keys();
    },
  };
}
