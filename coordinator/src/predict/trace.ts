/**
 * Seeded multi-metric host traces at 1 Hz for evaluating failure prediction.
 *
 * Each trace has a few components (encoder, packager, edge hosts). Healthy
 * behaviour: AR(1) noise on every metric, a daily cycle in load and traffic,
 * load spikes, deploys and supervisor restarts (brief heartbeat gaps below the
 * detector timeout, fps dips, latency spikes, restart counter increments), GC
 * saw-tooth in process memory, slow disk growth with log rotation, short
 * packet-loss bursts, 5xx bursts on edges, temperature following load.
 *
 * Each component is given one failure mode and fails 1-3 times. Gradual modes
 * have a precursor of randomised length, shape and strength:
 *   memory-leak        process RSS grows until available memory is gone (OOM kill)
 *   cpu-runaway        own process saturates the CPU, then heartbeats stretch past the timeout
 *   disk-fill          a runaway writer fills the filesystem; the service dies when it is full
 *   thermal            cooling fails; temperature climbs, the CPU throttles, the host shuts down
 *   packet-loss        loss ramps up on the host's link until heartbeats stop arriving
 *   encoder-fps-decay  encoder output fps decays until the encoder stalls (encoders only)
 *   ingest-latency     packager ingest latency grows until ingest stalls (packagers only)
 * and `sudden` failures (crash, power loss) have no precursor at all.
 *
 * Young components: the trace start is a process start, and components are
 * redeployed (the agent silent for 12-45 s, then a fresh process) every two
 * hours or so, churny ones (CHURNY_SHARE) eight times an hour. With
 * `earlyFailureChance`, each start is followed by an extra gradual failure
 * whose precursor begins within two minutes and is steep (tens of seconds,
 * see PRECURSOR_FAST_S); a steep ingest-latency failure may also add its
 * delay evenly (the demo's linear fault) instead of compounding. Without
 * these, every precursor would follow half an hour of healthy uptime and a
 * model would learn that young components never fail, nor fail fast.
 * Fresh packagers show what fresh origins show: an error ratio inflated by
 * requests that came before content, decaying as its window fills. Ingest
 * lag ranges from loopback-fast origins (a few ms, whole ms, with absolute
 * scheduling wander) to remote ingest (hundreds of ms).
 *
 * A failure at `failMs` means: the last sample is at the tick before failMs,
 * the component is silent (down) until `recoverMs`, then restarts clean.
 * The generator is pure: all randomness comes from createRng(seed).
 */
import { createRng, type Rng } from "../../../common/rng.ts";
import type { MetricSample } from "./window.ts";

export const GRADUAL_MODES = [
  "memory-leak",
  "cpu-runaway",
  "disk-fill",
  "thermal",
  "packet-loss",
  "encoder-fps-decay",
  "ingest-latency",
] as const;
export type GradualMode = (typeof GRADUAL_MODES)[number];
export type FailureMode = GradualMode | "sudden";
export const FAILURE_MODES: readonly FailureMode[] = [...GRADUAL_MODES, "sudden"];
export type TraceRole = "encoder" | "packager" | "edge";

export interface TraceOptions {
  /** Components per trace. Default 5. */
  components?: number;
  /** Trace length. Default 6 h. */
  durationMs?: number;
  /** Sampling interval. Default 1000 ms. */
  tickMs?: number;
  /** Time of the first tick. Default 0. */
  startMs?: number;
  /** Most failures per component. Default 3. */
  failuresMax?: number;
  /**
   * Chance that a process start (trace start, recovery, redeploy) is followed
   * by an extra steep gradual failure. Default 0.15.
   */
  earlyFailureChance?: number;
}

export interface TraceFailure {
  readonly mode: FailureMode;
  /** When the precursor starts (== failMs for sudden failures). */
  readonly precursorStartMs: number;
  /** First tick with no sample: the component is down from here. */
  readonly failMs: number;
  /** First tick with samples again. */
  readonly recoverMs: number;
  /** An early failure of a young component (see earlyFailureChance). */
  readonly early: boolean;
}

export interface SimulatedComponent {
  readonly id: string;
  readonly role: TraceRole;
  readonly mode: FailureMode;
  readonly failures: readonly TraceFailure[];
  /** Samples of the last `step`, reused between calls (copy what you keep). */
  readonly samples: readonly MetricSample[];
  /** Advances to tick tMs (call in increasing order); returns false while the component is down. */
  step(tMs: number): boolean;
}

export interface Trace {
  readonly seed: number;
  readonly startMs: number;
  readonly durationMs: number;
  readonly tickMs: number;
  readonly components: readonly SimulatedComponent[];
}

const COMMON_METRICS = [
  ["cpu.load", "ratio"],
  ["mem.used_bytes", "bytes"],
  ["mem.available_bytes", "bytes"],
  ["mem.swap_used_bytes", "bytes"],
  ["disk.read_bytes_per_s", "bytes/s"],
  ["disk.write_bytes_per_s", "bytes/s"],
  ["disk.io_wait", "ratio"],
  ["fs.used_ratio", "ratio"],
  ["fs.free_bytes", "bytes"],
  ["net.rx_bytes_per_s", "bytes/s"],
  ["net.tx_bytes_per_s", "bytes/s"],
  ["net.rx_errors_per_s", "1/s"],
  ["net.rx_dropped_per_s", "1/s"],
  ["proc.cpu", "ratio"],
  ["proc.rss_bytes", "bytes"],
  ["proc.fds", "count"],
  ["proc.restarts", "count"],
  ["cpu.temp_c", "celsius"],
  ["cpu.freq_ratio", "ratio"],
  ["probe.rtt_ms", "ms"],
  ["probe.loss_ratio", "ratio"],
  ["heartbeat.interval_ms", "ms"],
] as const;
const ROLE_METRICS: Record<TraceRole, readonly (readonly [string, string])[]> = {
  encoder: [
    ["encoder.fps", "fps"],
    ["encoder.speed", "ratio"],
    ["encoder.dropped_frames", "count"],
  ],
  packager: [
    ["packager.ingest_latency_ms", "ms"],
    ["packager.error_rate", "ratio"],
  ],
  edge: [["edge.http_5xx_rate", "ratio"]],
};

const MODES_BY_ROLE: Record<TraceRole, readonly FailureMode[]> = {
  encoder: [
    "memory-leak",
    "cpu-runaway",
    "disk-fill",
    "thermal",
    "packet-loss",
    "encoder-fps-decay",
  ],
  packager: ["memory-leak", "cpu-runaway", "disk-fill", "thermal", "packet-loss", "ingest-latency"],
  edge: ["memory-leak", "cpu-runaway", "disk-fill", "thermal", "packet-loss"],
};

/** Precursor length range per gradual mode, seconds. */
const PRECURSOR_S: Record<GradualMode, readonly [number, number]> = {
  "memory-leak": [300, 1800],
  "cpu-runaway": [120, 360],
  "disk-fill": [240, 1800],
  thermal: [240, 900],
  "packet-loss": [180, 600],
  "encoder-fps-decay": [120, 480],
  "ingest-latency": [180, 600],
};

/**
 * Precursor length range of early (young-component) failures, seconds: a
 * fast leak, a runaway, an origin whose ingest falls behind within seconds.
 */
const PRECURSOR_FAST_S: Record<GradualMode, readonly [number, number]> = {
  "memory-leak": [30, 120],
  "cpu-runaway": [30, 120],
  "disk-fill": [60, 180],
  thermal: [120, 300],
  "packet-loss": [30, 120],
  "encoder-fps-decay": [20, 90],
  "ingest-latency": [10, 45],
};
/** An early failure's precursor starts this long after the segment starts, seconds. */
const EARLY_START_S: readonly [number, number] = [15, 120];
/** Planned process replacements (agent silent 12-45 s, fresh start) per component-hour. */
const REDEPLOYS_PER_HOUR = 0.5;
/**
 * Some components churn (autoscaled, frequently redeployed): most of their
 * life is the first minutes after a start, when windows are short and there
 * is no baseline yet. They give the data young components, healthy and failing.
 */
const CHURNY_SHARE = 0.3;
const CHURNY_REDEPLOYS_PER_HOUR = 8;
/** Room kept between an early failure's recovery and the next scheduled precursor. */
const EARLY_CLEARANCE_MS = 10 * 60_000;

const GIB = 1024 ** 3;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Gaussian noise from a seeded Rng (Box-Muller, second value cached). */
function createGauss(rng: Rng): () => number {
  let spare = Number.NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const s = spare;
      spare = Number.NaN;
      return s;
    }
    const u = 1 - rng.next();
    const v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

const uniform = (rng: Rng, a: number, b: number): number => a + (b - a) * rng.next();

interface Pulse {
  start: number;
  end: number;
  amp: number;
  decayMs: number;
}

/** Poisson-scheduled pulses (load spikes, bursts) over [from, to). */
function schedulePulses(
  rng: Rng,
  from: number,
  to: number,
  perHour: number,
  amp: [number, number],
  durMs: [number, number],
): Pulse[] {
  const out: Pulse[] = [];
  let t = from;
  for (let i = 0; i < 10_000; i++) {
    t += (-Math.log(1 - rng.next()) / perHour) * HOUR;
    if (t >= to) break;
    const d = uniform(rng, durMs[0], durMs[1]);
    out.push({ start: t, end: t + d, amp: uniform(rng, amp[0], amp[1]), decayMs: d / 3 });
  }
  return out;
}

/** Sum of active pulses at t; `shape` "decay" = jump then exponential decay, "flat" = plateau. */
function pulseLevel(pulses: Pulse[], cursor: { i: number }, t: number, shape: "decay" | "flat") {
  while (cursor.i < pulses.length && pulses[cursor.i]!.end < t) cursor.i++;
  let sum = 0;
  for (let k = cursor.i; k < pulses.length && k < cursor.i + 4; k++) {
    const p = pulses[k]!;
    if (t < p.start || t > p.end) continue;
    sum += shape === "decay" ? p.amp * Math.exp(-(t - p.start) / p.decayMs) : p.amp;
  }
  return sum;
}

interface Redeploy {
  startMs: number;
  endMs: number;
}

interface ModeParams {
  /** Shape exponent of the precursor ramp. */
  gamma: number;
  /** Mode-specific level: failure threshold or target. */
  level: number;
}

class HostSim implements SimulatedComponent {
  readonly samples: { name: string; value: number; unit: string }[];
  readonly failures: TraceFailure[];
  private readonly g: () => number;
  private readonly idx: Record<string, number> = {};
  private readonly modeParams: ModeParams[];
  private failureCursor = 0;
  // host constants
  private readonly memTotal: number;
  private readonly baseUsedFrac: number;
  private readonly rssFrac: number;
  private readonly gcPeriodMs: number;
  private readonly gcAmpFrac: number;
  private readonly fsTotal: number;
  private readonly fsBase: number;
  private readonly fsGrowthPerMs: number;
  private readonly rotateEveryMs: number;
  private readonly baseLoad: number;
  private readonly dailyAmp: number;
  private readonly dailyPhase: number;
  private readonly ambientC: number;
  private readonly tempPerLoad: number;
  private readonly hbSigma: number;
  private readonly baseRtt: number;
  private readonly nominalFps: number;
  private readonly baseLatency: number;
  private readonly base5xx: number;
  private readonly netBytes: number;
  private readonly baseFds: number;
  // confounders
  private readonly loadSpikes: Pulse[];
  private readonly lossBursts: Pulse[];
  private readonly latencySpikes: Pulse[];
  private readonly errBursts: Pulse[];
  private readonly restartsAt: number[];
  private readonly redeploys: Redeploy[];
  private redeployCursor = 0;
  private readonly cur = { load: { i: 0 }, loss: { i: 0 }, lat: { i: 0 }, err: { i: 0 } };
  private restartCursor = 0;
  /** Error ratio right after a start, decaying as 1 / (1 + age / tau) until the window (60 s) forgets it. */
  private readonly startupErr: number;
  private readonly startupErrTauMs: number;
  /** Scheduling wander of ingest lag in absolute ms (dominates on loopback-fast packagers). */
  private readonly latJitterMs: number;
  private latWander = 0;
  /** Ingest lag at which this packager's ingest stalls (ingest-latency failures end there). */
  private readonly stallMs: number;
  /** Noise for behaviour added later, from extraRng (see createTrace). */
  private readonly gx: () => number;
  // dynamic state
  private loadAr = 0;
  private tempC: number;
  private restarts = 0;
  private droppedFrames = 0;
  private lastRestartMs = Number.NEGATIVE_INFINITY;
  /** Last process start: the trace start, a supervisor restart, a redeploy or a recovery. */
  private lastStartMs: number;
  private fsUsedFrac: number;
  private lastRotateMs: number;
  private lastTMs = Number.NaN;

  constructor(
    readonly id: string,
    readonly role: TraceRole,
    readonly mode: FailureMode,
    rng: Rng,
    startMs: number,
    durationMs: number,
    failuresMax: number,
    earlyChance: number,
    /** Draws for behaviour added later (early failures, startup errors), so older draws stay put. */
    extraRng: Rng,
  ) {
    this.g = createGauss(rng);
    this.lastStartMs = startMs;
    const metrics = [...COMMON_METRICS, ...ROLE_METRICS[role]];
    this.samples = metrics.map(([name, unit], i) => {
      this.idx[name] = i;
      return { name, value: 0, unit };
    });
    const hot = rng.chance(0.25);
    this.memTotal = rng.pick([8, 16, 32, 64]) * GIB;
    this.baseUsedFrac = hot ? uniform(rng, 0.7, 0.88) : uniform(rng, 0.3, 0.7);
    this.rssFrac = uniform(rng, 0.3, 0.7);
    this.gcPeriodMs = uniform(rng, 60_000, 300_000);
    this.gcAmpFrac = uniform(rng, 0.005, 0.04);
    this.fsTotal = rng.pick([100, 250, 500, 1000, 2000]) * GIB;
    this.fsBase = hot ? uniform(rng, 0.8, 0.93) : uniform(rng, 0.2, 0.75);
    this.fsGrowthPerMs = uniform(rng, 0.002, 0.02) / HOUR;
    this.rotateEveryMs = uniform(rng, 1, 3) * HOUR;
    this.fsUsedFrac = this.fsBase;
    this.lastRotateMs = startMs - uniform(rng, 0, this.rotateEveryMs);
    this.baseLoad = hot ? uniform(rng, 0.5, 0.75) : uniform(rng, 0.1, 0.5);
    this.dailyAmp = uniform(rng, 0.1, 0.35);
    this.dailyPhase = uniform(rng, 0, 2 * Math.PI);
    this.ambientC = hot ? uniform(rng, 40, 50) : uniform(rng, 28, 42);
    this.tempPerLoad = uniform(rng, 20, 35);
    this.tempC = this.ambientC + this.tempPerLoad * this.baseLoad;
    this.hbSigma = uniform(rng, 3, 15);
    this.baseRtt = uniform(rng, 0.5, 25);
    this.nominalFps = rng.pick([25, 30, 50, 60]);
    // Log-uniform: loopback origins lag a few ms, remote ingest a few hundred.
    this.baseLatency = Math.exp(uniform(rng, Math.log(2), Math.log(400)));
    this.base5xx = uniform(rng, 0.0005, 0.005);
    this.netBytes = uniform(rng, 2e6, 1.2e8);
    this.baseFds = rng.int(80, 3000);

    this.failures = this.scheduleFailures(rng, startMs, durationMs, failuresMax);
    this.modeParams = this.failures.map(() => ({
      gamma: uniform(rng, 1, 1.8),
      level: rng.next(),
    }));
    const end = startMs + durationMs;
    this.loadSpikes = schedulePulses(rng, startMs, end, 3, [0.15, 0.5], [20_000, 150_000]);
    this.lossBursts = schedulePulses(rng, startMs, end, 1, [0.01, 0.15], [10_000, 60_000]);
    this.latencySpikes = schedulePulses(rng, startMs, end, 2, [0.5, 1.5], [8_000, 40_000]);
    this.errBursts = schedulePulses(rng, startMs, end, 1.5, [0.01, 0.08], [10_000, 60_000]);
    this.startupErr = extraRng.chance(0.7) ? uniform(extraRng, 0.02, 0.4) : 0;
    this.startupErrTauMs = uniform(extraRng, 500, 15_000);
    this.latJitterMs = uniform(extraRng, 0.5, 6);
    this.stallMs = uniform(extraRng, 6000, 10_000);
    this.gx = createGauss(extraRng);
    // Supervisor restarts: brief, below the detector timeout, never inside a failure.
    const restarts: number[] = [];
    let t = startMs;
    for (let i = 0; i < 1000; i++) {
      t += (-Math.log(1 - rng.next()) / 0.6) * HOUR;
      if (t >= end) break;
      restarts.push(t);
    }
    this.redeploys = this.scheduleRedeploys(extraRng, startMs, end);
    this.addEarlyFailures(extraRng, startMs, end, earlyChance);
    const clash = (t: number) =>
      this.failures.some((f) => t > f.precursorStartMs - 2 * MIN && t < f.recoverMs + MIN) ||
      this.redeploys.some((r) => t > r.startMs - MIN && t < r.endMs + MIN);
    this.restartsAt = restarts.filter((r) => !clash(r));
  }

  /**
   * Redeploys: the process is replaced and its agent is silent for longer
   * than a segment gap (12-45 s), then it starts fresh. Planned, not failures;
   * they give the data young, healthy components.
   */
  private scheduleRedeploys(rng: Rng, startMs: number, endMs: number): Redeploy[] {
    const out: Redeploy[] = [];
    const perHour = rng.chance(CHURNY_SHARE) ? CHURNY_REDEPLOYS_PER_HOUR : REDEPLOYS_PER_HOUR;
    let t = startMs;
    for (let i = 0; i < 1000; i++) {
      t += (-Math.log(1 - rng.next()) / perHour) * HOUR;
      const at = startMs + Math.round((t - startMs) / 1000) * 1000;
      const endT = at + Math.round(uniform(rng, 12, 45)) * 1000;
      if (endT >= endMs - 2 * MIN) break;
      const clash = this.failures.some(
        (f) => endT > f.precursorStartMs - 5 * MIN && at < f.recoverMs + 2 * MIN,
      );
      // At least a minute of life between redeploys.
      const prev = out[out.length - 1];
      if (!clash && (prev === undefined || at >= prev.endMs + MIN))
        out.push({ startMs: at, endMs: endT });
    }
    return out;
  }

  private scheduleFailures(rng: Rng, startMs: number, durationMs: number, max: number) {
    const count = rng.int(1, max);
    const earliest = startMs + 35 * MIN;
    const latest = startMs + durationMs - 2 * MIN;
    const times: number[] = [];
    for (let attempt = 0; attempt < 200 && times.length < count; attempt++) {
      const t = Math.round(uniform(rng, earliest, latest) / 1000) * 1000;
      if (times.every((u) => Math.abs(u - t) >= 45 * MIN)) times.push(t);
    }
    times.sort((a, b) => a - b);
    return times.map((failMs): TraceFailure => {
      const d = this.precursorMs(rng);
      return {
        mode: this.mode,
        precursorStartMs: failMs - d,
        failMs,
        recoverMs: failMs + Math.round(uniform(rng, 60, 300)) * 1000,
        early: false,
      };
    });
  }

  /**
   * For each start of the process (trace start, recovery, redeploy), with
   * probability `chance`, an extra failure whose steep precursor starts within
   * minutes of that start, if it ends well before the next failure or redeploy.
   */
  private addEarlyFailures(rng: Rng, startMs: number, endMs: number, chance: number): void {
    if (this.mode === "sudden" || chance <= 0) return;
    const [lo, hi] = PRECURSOR_FAST_S[this.mode];
    const starts = [
      startMs,
      ...this.failures.map((f) => f.recoverMs),
      ...this.redeploys.map((r) => r.endMs),
    ].sort((a, b) => a - b);
    const blocks = [
      ...this.failures.map((f) => f.precursorStartMs),
      ...this.redeploys.map((r) => r.startMs),
    ].sort((a, b) => a - b);
    const extra: { failure: TraceFailure; params: ModeParams }[] = [];
    for (const segStart of starts) {
      const take = rng.chance(chance);
      const offset = Math.round(uniform(rng, EARLY_START_S[0], EARLY_START_S[1])) * 1000;
      const d = Math.round(uniform(rng, lo, hi)) * 1000;
      const down = Math.round(uniform(rng, 60, 300)) * 1000;
      const params: ModeParams = { gamma: uniform(rng, 1, 1.8), level: rng.next() };
      if (!take) continue;
      const failMs = segStart + offset + d;
      const recoverMs = failMs + down;
      const next = blocks.find((b) => b > segStart);
      const limit = next === undefined ? endMs - 2 * MIN : next - EARLY_CLEARANCE_MS;
      if (recoverMs > limit) continue;
      extra.push({
        failure: {
          mode: this.mode,
          precursorStartMs: segStart + offset,
          failMs,
          recoverMs,
          early: true,
        },
        params,
      });
    }
    if (extra.length === 0) return;
    const all = [
      ...this.failures.map((failure, i) => ({ failure, params: this.modeParams[i]! })),
      ...extra,
    ].sort((a, b) => a.failure.failMs - b.failure.failMs);
    this.failures.splice(0, this.failures.length, ...all.map((e) => e.failure));
    this.modeParams.splice(0, this.modeParams.length, ...all.map((e) => e.params));
  }

  private precursorMs(rng: Rng): number {
    if (this.mode === "sudden") return 0; // no draw: keeps every seed's trace as it was
    const [lo, hi] = PRECURSOR_S[this.mode];
    return Math.round(uniform(rng, lo, hi)) * 1000;
  }

  private set(name: string, v: number): void {
    this.samples[this.idx[name]!]!.value = v;
  }

  step(tMs: number): boolean {
    const g = this.g;
    const dtMs = Number.isNaN(this.lastTMs) ? 1000 : tMs - this.lastTMs;
    this.lastTMs = tMs;
    while (
      this.failureCursor < this.failures.length &&
      this.failures[this.failureCursor]!.recoverMs <= tMs
    ) {
      this.onRecovered(this.failures[this.failureCursor]!.recoverMs);
      this.failureCursor++;
    }
    const f = this.failures[this.failureCursor];
    if (f !== undefined && tMs >= f.failMs) return false;
    while (
      this.redeployCursor < this.redeploys.length &&
      this.redeploys[this.redeployCursor]!.endMs <= tMs
    ) {
      const at = this.redeploys[this.redeployCursor]!.endMs;
      this.restarts++;
      this.lastRestartMs = at;
      this.lastStartMs = at;
      this.redeployCursor++;
    }
    const rd = this.redeploys[this.redeployCursor];
    if (rd !== undefined && tMs >= rd.startMs) return false;
    // precursor progress p in [0, 1) when a gradual failure is under way
    let p = -1;
    let mp: ModeParams | undefined;
    if (f !== undefined && f.mode !== "sudden" && tMs >= f.precursorStartMs) {
      p = (tMs - f.precursorStartMs) / (f.failMs - f.precursorStartMs);
      mp = this.modeParams[this.failureCursor]!;
    }
    const mode = p >= 0 ? this.mode : undefined;
    const ramp = mp ? p ** mp.gamma : 0;

    // deploys / supervisor restarts
    let restartAge = tMs - this.lastRestartMs;
    while (
      this.restartCursor < this.restartsAt.length &&
      this.restartsAt[this.restartCursor]! <= tMs
    ) {
      this.lastRestartMs = this.restartsAt[this.restartCursor]!;
      this.lastStartMs = this.lastRestartMs;
      this.restartCursor++;
      this.restarts++;
      restartAge = tMs - this.lastRestartMs;
    }
    const justRestarted = restartAge < 8000;

    // load
    const daily = 1 + this.dailyAmp * Math.sin((2 * Math.PI * tMs) / DAY + this.dailyPhase);
    this.loadAr = 0.97 * this.loadAr + 0.012 * g();
    let load =
      this.baseLoad * daily +
      this.loadAr +
      pulseLevel(this.loadSpikes, this.cur.load, tMs, "decay");
    let procCpu = load * 0.7 + 0.01 * g();
    if (justRestarted) procCpu += 0.3 * Math.exp(-restartAge / 3000);
    if (mode === "cpu-runaway") {
      const rampUp = Math.min(1, p / 0.6);
      procCpu = procCpu + (0.98 - procCpu) * rampUp;
      load = Math.max(load, procCpu + 0.02);
    }
    load = clamp(load + 0.01 * g(), 0, 1);
    procCpu = clamp(procCpu, 0, 1);

    // temperature: first-order lag towards ambient + k*load; thermal mode overrides
    const target = this.ambientC + this.tempPerLoad * load;
    this.tempC += (target - this.tempC) * (1 - Math.exp(-dtMs / 60_000));
    let temp = this.tempC + 0.3 * g();
    if (mode === "thermal") {
      const shutdownC = 100 + 5 * mp!.level;
      temp = this.tempC + (shutdownC - this.tempC) * ramp + 0.3 * g();
    }
    const freq =
      temp > 90 ? clamp(1 - (temp - 90) * 0.03, 0.4, 1) : clamp(1 - 0.002 * Math.abs(g()), 0, 1);
    if (temp > 90) load = clamp(load + (temp - 90) * 0.02, 0, 1);

    // memory
    const gcPhase = ((tMs % this.gcPeriodMs) / this.gcPeriodMs) * this.gcAmpFrac;
    let rss =
      this.memTotal * this.baseUsedFrac * this.rssFrac * (1 + 0.002 * g()) +
      this.memTotal * gcPhase;
    if (justRestarted) rss *= 0.6 + 0.4 * (restartAge / 8000);
    const other = this.memTotal * this.baseUsedFrac * (1 - this.rssFrac) * (1 + 0.001 * g());
    let used = Math.min(this.memTotal, other + rss);
    let avail = Math.max(this.memTotal * 0.001, this.memTotal - used);
    if (mode === "memory-leak") {
      // The leak eats what is free: available converges on the OOM point at failMs.
      const oomAvail = this.memTotal * (0.002 + 0.01 * mp!.level);
      const leaked = (avail - oomAvail) * ramp;
      rss += leaked;
      avail -= leaked;
      used = this.memTotal - avail;
    }
    const swap = avail < this.memTotal * 0.05 ? (this.memTotal * 0.05 - avail) * 0.5 : 0;

    // filesystem
    if (tMs - this.lastRotateMs >= this.rotateEveryMs) {
      this.lastRotateMs = tMs;
      this.fsUsedFrac = Math.max(this.fsBase - 0.01, this.fsUsedFrac - uniform2(g, 0.01, 0.03));
    }
    this.fsUsedFrac += this.fsGrowthPerMs * dtMs;
    let fsUsed = this.fsUsedFrac;
    let writeRate = 2e6 * (0.5 + load) * (1 + 0.2 * g());
    if (mode === "disk-fill") {
      const fullAt = 1 - (0.001 + 0.004 * mp!.level);
      fsUsed = this.fsUsedFrac + (fullAt - this.fsUsedFrac) * ramp;
      writeRate +=
        ((this.fsTotal * (fullAt - this.fsUsedFrac)) / (f!.failMs - f!.precursorStartMs)) * 1000;
    }
    fsUsed = clamp(fsUsed + 1e-6 * g(), 0, 1);
    const ioWait = clamp(
      0.02 + 0.05 * load + (mode === "disk-fill" ? 0.1 * ramp : 0) + 0.01 * g(),
      0,
      1,
    );

    // network
    let loss = clamp(
      0.0005 * Math.abs(g()) +
        pulseLevel(this.lossBursts, this.cur.loss, tMs, "flat") * (0.8 + 0.4 * this.g01()),
      0,
      1,
    );
    if (mode === "packet-loss") {
      const failLoss = 0.25 + 0.25 * mp!.level;
      loss = clamp(loss + failLoss * ramp + 0.01 * g() * ramp, 0, 1);
    }
    const pps = this.netBytes / 1200;
    const rxDropped = Math.max(
      0,
      loss * pps * 0.01 + (this.g01() < 0.02 ? 1 : 0) * Math.abs(g()) * 3,
    );
    const rxErrors = Math.max(
      0,
      loss * pps * 0.002 + (this.g01() < 0.01 ? 1 : 0) * Math.abs(g()) * 2,
    );
    const rtt = Math.max(
      0.1,
      this.baseRtt * (1 + 3 * loss + 0.5 * (load > 0.9 ? load - 0.9 : 0) * 10) +
        0.05 * this.baseRtt * g(),
    );

    // heartbeat interval
    let hb = 1000 + this.hbSigma * g() + (load > 0.8 ? (load - 0.8) * 400 * Math.abs(g()) : 0);
    if (justRestarted && restartAge < 1000) hb = 1500 + 1100 * this.g01();
    if (mode === "cpu-runaway" && p > 0.6) {
      const q = ((p - 0.6) / 0.4) ** mp!.gamma;
      hb += 2100 * q + 150 * q * Math.abs(g());
    }
    if (mode === "packet-loss") hb += loss * 1000 * Math.abs(g());
    if (mode === "thermal" && temp > 90) hb += (temp - 90) * 10 * Math.abs(g());
    hb = Math.max(900, hb);

    this.set("cpu.load", load);
    this.set("mem.used_bytes", used);
    this.set("mem.available_bytes", avail);
    this.set("mem.swap_used_bytes", swap);
    this.set("disk.read_bytes_per_s", Math.max(0, 1e6 * (0.5 + load) * (1 + 0.3 * g())));
    this.set("disk.write_bytes_per_s", Math.max(0, writeRate));
    this.set("disk.io_wait", ioWait);
    this.set("fs.used_ratio", fsUsed);
    this.set("fs.free_bytes", this.fsTotal * (1 - fsUsed));
    this.set("net.rx_bytes_per_s", Math.max(0, this.netBytes * daily * (1 + 0.05 * g())));
    this.set("net.tx_bytes_per_s", Math.max(0, this.netBytes * 1.5 * daily * (1 + 0.05 * g())));
    this.set("net.rx_errors_per_s", rxErrors);
    this.set("net.rx_dropped_per_s", rxDropped);
    this.set("proc.cpu", procCpu);
    this.set("proc.rss_bytes", rss);
    this.set("proc.fds", Math.round(this.baseFds * (1 + 0.02 * g())));
    this.set("proc.restarts", this.restarts);
    this.set("cpu.temp_c", temp);
    this.set("cpu.freq_ratio", freq);
    this.set("probe.rtt_ms", rtt);
    this.set("probe.loss_ratio", loss);
    this.set("heartbeat.interval_ms", hb);

    if (this.role === "encoder") {
      let fps = this.nominalFps * (1 + 0.003 * g());
      let speed = 1 + 0.004 * g();
      if (load > 0.9) speed -= (load - 0.9) * 0.5 * Math.abs(g());
      if (justRestarted) {
        fps *= clamp(restartAge / 5000, 0, 1);
        speed *= clamp(restartAge / 5000, 0.2, 1);
      }
      if (mode === "encoder-fps-decay") {
        fps *= 1 - 0.56 * ramp;
        speed = Math.min(speed, 1 - 0.5 * ramp + 0.01 * g());
      }
      if (mode === "cpu-runaway") speed -= 0.3 * Math.min(1, p / 0.6) * this.g01();
      if (mode === "thermal" && temp > 90) {
        speed = Math.min(speed, freq + 0.05);
        fps *= Math.min(1, freq + 0.1);
      }
      let dropRate =
        (speed < 0.98 ? (1 - speed) * this.nominalFps : 0) + (this.g01() < 0.005 ? 1 : 0);
      if (mode === "encoder-fps-decay") dropRate += this.nominalFps * 0.56 * ramp;
      this.droppedFrames += Math.round(dropRate * (dtMs / 1000));
      this.set("encoder.fps", Math.max(0, fps));
      this.set("encoder.speed", Math.max(0, speed));
      this.set("encoder.dropped_frames", this.droppedFrames);
    } else if (this.role === "packager") {
      let lat =
        this.baseLatency *
        Math.exp(0.08 * g()) *
        (1 + pulseLevel(this.latencySpikes, this.cur.lat, tMs, "flat"));
      if (justRestarted) lat *= 3;
      if (load > 0.9) lat *= 1 + (load - 0.9) * 5;
      this.latWander = 0.8 * this.latWander + 0.6 * this.gx();
      lat += this.latJitterMs * Math.abs(this.latWander);
      if (mode === "ingest-latency") {
        const stallMs = this.stallMs;
        // A backlog that compounds (geometric); a steep early failure may
        // instead add a delay that grows evenly (additive, fastest in log
        // terms at the start, like the demo's linear fault).
        if (f!.early && mp!.level >= 0.5) lat += (stallMs - this.baseLatency) * ramp;
        else lat *= Math.exp(Math.log(stallMs / this.baseLatency) * ramp);
      }
      if (mode === "cpu-runaway") lat *= 1 + Math.min(1, p / 0.6);
      if (mode === "packet-loss") lat *= 1 + 4 * loss;
      // Packagers report whole milliseconds (a quantile of integer lags).
      lat = Math.round(lat);
      const startAge = tMs - this.lastStartMs;
      const startupErr =
        startAge < 60_000 ? this.startupErr / (1 + startAge / this.startupErrTauMs) : 0;
      const err = clamp(
        0.0005 +
          0.0003 * g() +
          startupErr +
          (lat > this.stallMs / 4 ? (lat - this.stallMs / 4) / (12 * this.stallMs) : 0),
        0,
        1,
      );
      this.set("packager.ingest_latency_ms", lat);
      this.set("packager.error_rate", err);
    } else {
      let r5xx =
        this.base5xx * (1 + 0.2 * g()) + pulseLevel(this.errBursts, this.cur.err, tMs, "flat");
      if (mode === "packet-loss") r5xx += loss * 0.3;
      if (mode === "cpu-runaway") r5xx += 0.02 * Math.min(1, p / 0.6) * this.g01();
      if (mode === "memory-leak" && avail < this.memTotal * 0.03) r5xx += 0.02 * this.g01();
      if (mode === "disk-fill" && fsUsed > 0.99) r5xx += 0.02 * this.g01();
      this.set("edge.http_5xx_rate", clamp(r5xx, 0, 1));
    }
    return true;
  }

  private g01(): number {
    return 0.5 + 0.5 * Math.tanh(this.g());
  }

  private onRecovered(atMs: number): void {
    this.restarts++;
    this.lastRestartMs = atMs;
    this.lastStartMs = atMs;
    this.tempC = this.ambientC + this.tempPerLoad * this.baseLoad;
    if (this.mode === "disk-fill") this.fsUsedFrac = this.fsBase;
  }
}

function uniform2(g: () => number, a: number, b: number): number {
  return a + (b - a) * (0.5 + 0.5 * Math.tanh(g()));
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : Math.min(x, hi);
}

/**
 * Builds a trace. Component modes cycle through FAILURE_MODES starting at a
 * seed-dependent offset, so every seed covers several modes and a range of
 * seeds covers all of them about equally. Roles follow the mode (encoder-only
 * and packager-only modes) or are random.
 */
export function createTrace(seed: number, opts: TraceOptions = {}): Trace {
  const components = opts.components ?? 5;
  const durationMs = opts.durationMs ?? 6 * HOUR;
  const tickMs = opts.tickMs ?? 1000;
  const startMs = opts.startMs ?? 0;
  const failuresMax = opts.failuresMax ?? 3;
  const earlyChance = opts.earlyFailureChance ?? 0.15;
  if (!(earlyChance >= 0 && earlyChance <= 1)) {
    throw new RangeError(`earlyFailureChance must be in [0, 1], got ${earlyChance}`);
  }
  if (!Number.isInteger(components) || components < 1 || components > 100_000) {
    throw new RangeError(`components must be an integer in 1..100000, got ${components}`);
  }
  if (!(durationMs >= 10 * MIN))
    throw new RangeError(`durationMs must be >= 10 min, got ${durationMs}`);
  const rng = createRng(seed);
  // Independent of `rng`, so adding behaviour here leaves the older draws (and traces) as they were.
  const extraRng = createRng((Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x5eed5eed) >>> 0);
  const offset = rng.int(0, FAILURE_MODES.length - 1);
  const comps: SimulatedComponent[] = [];
  for (let i = 0; i < components; i++) {
    const mode = FAILURE_MODES[(offset + i) % FAILURE_MODES.length]!;
    const roles = (Object.keys(MODES_BY_ROLE) as TraceRole[]).filter((r) =>
      mode === "sudden" ? true : MODES_BY_ROLE[r].includes(mode),
    );
    const role = rng.pick(roles);
    comps.push(
      new HostSim(
        `s${seed}-c${i}-${role}`,
        role,
        mode,
        rng.fork(),
        startMs,
        durationMs,
        failuresMax,
        earlyChance,
        extraRng.fork(),
      ),
    );
  }
  return { seed, startMs, durationMs, tickMs, components: comps };
}
