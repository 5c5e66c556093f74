/**
 * Liveness of one component from its heartbeat arrivals: phi accrual plus
 * absolute guards, as a small state machine.
 *
 *   unknown ──arrival──▶ alive ──silence──▶ suspect ──silence──▶ down
 *                          ▲  ◀──arrival───────┘                   │
 *                          └──── recoverAfterArrivals arrivals ────┘
 *
 * Rules (silence = time since the last arrival, minus coordinator stall):
 * - suspect when phi >= suspectPhi AND silence >= suspectAfterMissed
 *   expected intervals;
 * - down when (phi >= downPhi AND silence >= downAfterMissed intervals) OR
 *   silence >= downAfterIntervalsMax intervals. The second clause bounds the
 *   detection time whatever jitter the history holds: at the defaults
 *   (250 ms heartbeats) a silent component is down after at most 900 ms of
 *   silence, so within 1 s of a hard stop given a 50 ms evaluation tick.
 * - The missed-heartbeat minimums stop phi alone from tripping on a
 *   near-constant history (tiny std-dev makes phi explode just after the
 *   mean); `minStdDevMs` floors the std-dev for the same reason.
 * - Coordinator stall: the caller passes the longest stall of the
 *   coordinator's own event loop since this tracker's last arrival. It is
 *   not counted as silence (heartbeats that arrived during a stall wait in
 *   the socket and are processed right after it, so they are late, not
 *   missing), nor as interval length. The longest stall, not the sum: a
 *   stall delays an arrival by at most its own length, and arrivals in
 *   between reset the reference, so many short scheduling delays under load
 *   do not add up to a blind spot.
 * - Before the grace deadline (new leader: agents are still reconnecting) a
 *   tracker never becomes suspect or down; a tracker that never heard an
 *   arrival counts silence from the grace deadline.
 * - Recovery from down needs `recoverAfterArrivals` arrivals, so one stray
 *   packet from a dying host does not flap it back to alive. Intervals that
 *   span a down period are not recorded (they are outages, not jitter).
 *
 * Pure: every time is an argument (monotonic milliseconds).
 */
import { createIntervalStats, type IntervalStats, phiOf } from "./phi.ts";

export type LivenessState = "unknown" | "alive" | "suspect" | "down";

export interface LivenessOptions {
  /** Interval at which the agent promises a report (Welcome.heartbeat_interval_ms). */
  heartbeatIntervalMs: number;
  /** Floor of the inter-arrival std-dev used by phi. */
  minStdDevMs: number;
  /** Inter-arrival intervals kept for mean/std-dev. */
  intervalHistory: number;
  /** Below this many recorded intervals, mean/std-dev come from heartbeatIntervalMs. */
  bootstrapIntervals: number;
  suspectPhi: number;
  downPhi: number;
  /** Silence needed for suspect, in expected heartbeat intervals. */
  suspectAfterMissed: number;
  /** Silence needed for down (together with downPhi), in expected intervals. */
  downAfterMissed: number;
  /** Silence that always means down, in expected intervals (bounds detection time). */
  downAfterIntervalsMax: number;
  /** Arrivals needed to leave down. */
  recoverAfterArrivals: number;
}

export const defaultLivenessOptions: Readonly<LivenessOptions> = {
  heartbeatIntervalMs: 250,
  minStdDevMs: 50,
  intervalHistory: 100,
  bootstrapIntervals: 4,
  suspectPhi: 5,
  downPhi: 10,
  suspectAfterMissed: 2,
  downAfterMissed: 3,
  downAfterIntervalsMax: 3.6,
  recoverAfterArrivals: 2,
};

export function validateLivenessOptions(o: LivenessOptions): void {
  const check = (ok: boolean, field: keyof LivenessOptions, want: string) => {
    if (!ok) throw new RangeError(`liveness.${field}: must be ${want}, got ${o[field]}`);
  };
  check(
    o.heartbeatIntervalMs >= 10 && o.heartbeatIntervalMs <= 600_000,
    "heartbeatIntervalMs",
    "10..600000",
  );
  check(o.minStdDevMs > 0, "minStdDevMs", "> 0");
  check(
    Number.isInteger(o.bootstrapIntervals) && o.bootstrapIntervals >= 1,
    "bootstrapIntervals",
    "an integer >= 1",
  );
  check(o.suspectPhi > 0, "suspectPhi", "> 0");
  check(o.downPhi >= o.suspectPhi, "downPhi", `>= suspectPhi (${o.suspectPhi})`);
  check(o.suspectAfterMissed >= 1, "suspectAfterMissed", ">= 1");
  check(
    o.downAfterMissed >= o.suspectAfterMissed,
    "downAfterMissed",
    `>= suspectAfterMissed (${o.suspectAfterMissed})`,
  );
  check(
    o.downAfterIntervalsMax >= o.downAfterMissed,
    "downAfterIntervalsMax",
    `>= downAfterMissed (${o.downAfterMissed})`,
  );
  check(
    Number.isInteger(o.recoverAfterArrivals) && o.recoverAfterArrivals >= 1,
    "recoverAfterArrivals",
    "an integer >= 1",
  );
}

export interface LivenessVerdict {
  readonly state: LivenessState;
  /** Suspicion level at evaluation time (0 when no arrival is expected yet). */
  readonly phi: number;
  /** Silence, stall excluded, in ms. */
  readonly silenceMs: number;
  /** Silence in expected heartbeat intervals, floored. */
  readonly missed: number;
}

export interface LivenessTracker {
  readonly state: LivenessState;
  /** Time of the last arrival (or the grace deadline before any), monotonic ms. */
  readonly referenceMs: number;
  /**
   * Records a heartbeat arrival at `tMs` (monotonic); `stallMs` is the
   * longest coordinator stall since referenceMs.
   */
  arrival(tMs: number, stallMs: number): void;
  /** Evaluates at `tMs` and moves the state; `stallMs` as for arrival(). */
  evaluate(tMs: number, stallMs: number): LivenessVerdict;
  /**
   * The same evaluation without building a verdict (a leader evaluates every
   * tracker 20 times a second); `lastVerdict` returns it on demand.
   */
  evaluateState(tMs: number, stallMs: number): LivenessState;
  /** The verdict of the latest evaluation (unknown with zeros before any). */
  lastVerdict(): LivenessVerdict;
  /** Changes the expected heartbeat interval (a new Welcome); keeps history. */
  setHeartbeatIntervalMs(ms: number): void;
  /** Restarts as unknown with a grace deadline (new leadership), forgetting history. */
  reset(graceUntilMs: number): void;
}

export function createLivenessTracker(
  options: LivenessOptions,
  graceUntilMs: number,
): LivenessTracker {
  return new Tracker({ ...options }, graceUntilMs);
}

/** A class, not closures: one per component, touched on every arrival and tick. */
class Tracker implements LivenessTracker {
  private readonly intervals: IntervalStats;
  state: LivenessState = "unknown";
  /** Reference point for silence: last arrival, or the grace deadline if none. */
  private lastMs: number;
  private graceUntil: number;
  private heard = false;
  private recoverCount = 0;
  // The latest evaluation.
  private evalState: LivenessState = "unknown";
  private evalPhi = 0;
  private evalSilenceMs = 0;
  private evalMissed = 0;

  constructor(
    private readonly o: LivenessOptions,
    graceUntilMs: number,
  ) {
    this.intervals = createIntervalStats(o.intervalHistory);
    this.lastMs = graceUntilMs;
    this.graceUntil = graceUntilMs;
  }

  get referenceMs(): number {
    return this.lastMs;
  }

  private silenceAt(tMs: number, stallMs: number): number {
    return Math.max(0, tMs - this.lastMs - Math.max(0, stallMs));
  }

  private phiAt(silenceMs: number): number {
    const o = this.o;
    let mean: number;
    let sd: number;
    if (this.intervals.count < o.bootstrapIntervals) {
      mean = o.heartbeatIntervalMs;
      sd = Math.max(o.minStdDevMs, o.heartbeatIntervalMs / 4);
    } else {
      mean = this.intervals.mean();
      sd = Math.max(o.minStdDevMs, this.intervals.stdDev());
    }
    return phiOf(silenceMs, mean, sd);
  }

  arrival(tMs: number, stallMs: number): void {
    const o = this.o;
    if (this.heard && tMs >= this.lastMs && this.state !== "down") {
      const interval = this.silenceAt(tMs, stallMs);
      // An interval longer than the down bound is an outage the detector
      // already judged; it would only widen the distribution.
      if (interval < o.downAfterIntervalsMax * o.heartbeatIntervalMs) this.intervals.add(interval);
    }
    if (tMs >= this.lastMs || !this.heard) this.lastMs = tMs;
    this.heard = true;
    if (this.state === "down") {
      this.recoverCount++;
      if (this.recoverCount >= o.recoverAfterArrivals) {
        this.state = "alive";
        this.recoverCount = 0;
        this.intervals.clear();
      }
    } else {
      this.state = "alive";
    }
  }

  evaluateState(tMs: number, stallMs: number): LivenessState {
    const o = this.o;
    const silenceMs = this.silenceAt(tMs, stallMs);
    const missed = Math.floor(silenceMs / o.heartbeatIntervalMs);
    let phi = 0;
    if (!(tMs < this.graceUntil || (!this.heard && tMs < this.lastMs))) {
      const intervalsSilent = silenceMs / o.heartbeatIntervalMs;
      // phi is only computed once silence passes the suspect minimum: below it
      // no transition is possible, and this keeps a sweep over many
      // components cheap.
      phi = intervalsSilent >= o.suspectAfterMissed ? this.phiAt(silenceMs) : 0;
      const down =
        intervalsSilent >= o.downAfterIntervalsMax ||
        (intervalsSilent >= o.downAfterMissed && phi >= o.downPhi);
      if (down) {
        // Arrivals counted towards recovery are stale once silence is back
        // past the down bound.
        this.recoverCount = 0;
        this.state = "down";
      } else if (this.state === "alive" || this.state === "unknown") {
        if (intervalsSilent >= o.suspectAfterMissed && phi >= o.suspectPhi && this.heard) {
          this.state = "suspect";
        }
      }
    }
    this.evalState = this.state;
    this.evalPhi = phi;
    this.evalSilenceMs = silenceMs;
    this.evalMissed = missed;
    return this.state;
  }

  evaluate(tMs: number, stallMs: number): LivenessVerdict {
    this.evaluateState(tMs, stallMs);
    return this.lastVerdict();
  }

  lastVerdict(): LivenessVerdict {
    return {
      state: this.evalState,
      phi: this.evalPhi,
      silenceMs: this.evalSilenceMs,
      missed: this.evalMissed,
    };
  }

  setHeartbeatIntervalMs(ms: number): void {
    this.o.heartbeatIntervalMs = ms;
  }

  reset(graceUntilMs: number): void {
    this.state = "unknown";
    this.lastMs = graceUntilMs;
    this.graceUntil = graceUntilMs;
    this.heard = false;
    this.recoverCount = 0;
    this.intervals.clear();
  }
}
