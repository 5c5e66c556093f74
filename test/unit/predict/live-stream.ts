/**
 * What the coordinator's predict loop receives for one component of the local
 * demo cluster (deploy/local-cluster), one full agent report per second, with
 * the demo's packager fault (packager-node/src/dev-faults.ts) optionally
 * switched on. Shapes and magnitudes come from two recorded demo runs (the
 * leader's raw 1 Hz series via ComponentService.GetMetrics, 2-core host, 20–30
 * viewers), not from the synthetic training traces:
 *
 * - packager.ingest_latency_ms is the packager's `ingest.recentLagMs.p50`: the
 *   median over the last 5 s of per-object ingest lag (arrival − media end).
 *   Objects arrive every 250 ms (two renditions, 500 ms parts). On loopback
 *   the lag is a few ms and wanders with scheduling (recorded: 2–4 ms on an
 *   idle host, 4–25 ms on a busy one). The fault delays each ingest request
 *   by `ingestDelayMs(τ)`, which adds to its lag and to when it is recorded.
 *   The agent reports the status it polled last (0.2–1 s before the report).
 * - packager.error_rate is a 60 s server-error ratio: a fresh packager starts
 *   with errors from requests that came before content (recorded 0.19–0.31),
 *   decaying as the window fills.
 * - proc.rss_bytes grows by the leak (linear to `leakBytesMax`, allocated in
 *   1 MiB chunks every 250 ms); host metrics are the shared machine's
 *   (23.7 GiB, CPU often saturated); heartbeat.interval_ms is, as ingest
 *   derives it, the time since the agent's previous message (heartbeats every
 *   250 ms), so 0–270 ms with a drifting phase (the predict loop replaces it,
 *   see createReportAdapter).
 *
 * Pure and seeded: the same seed gives the same stream.
 */
import { createRng, type Rng } from "../../../common/rng.ts";
import type { MetricSample } from "../../../coordinator/src/predict/index.ts";

export interface DemoFault {
  readonly startMs: number;
  readonly rampMs: number;
  readonly ingestDelayMaxMs: number;
  /** packager-node's shapes: linear from 0, or exponential from 10 ms. */
  readonly shape: "linear" | "exponential";
  readonly leakBytesMax: number;
}

export interface LiveStreamOptions {
  readonly seed: number;
  readonly role: "packager" | "encoder";
  /** Time of the first report (the component's agent just connected). */
  readonly startMs: number;
  readonly fault?: DemoFault;
}

export interface LiveReport {
  /** Samples as ingest hands them to the predict loop (wire + derived). */
  readonly samples: MetricSample[];
  /** When the report reached the coordinator (loopback, busy host: a few ms late, sometimes more). */
  readonly arrivalMs: number;
}

export interface LiveStream {
  /** The full report taken at tMs (call with increasing tMs, one per second). */
  report(tMs: number): LiveReport;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const HOST_MEM_BYTES = 23.7 * GIB;
const OBJECT_INTERVAL_MS = 250;
const RECENT_LAG_WINDOW_MS = 5000;
const ERROR_WINDOW_MS = 60_000;

/** The fault's added ingest delay τ ms after it started (packager-node/src/dev-faults.ts). */
export function ingestDelayMs(f: DemoFault, tMs: number): number {
  if (tMs < f.startMs) return 0;
  const p = Math.min(1, (tMs - f.startMs) / f.rampMs);
  if (f.shape === "linear") return Math.round(p * f.ingestDelayMaxMs);
  const from = Math.min(10, f.ingestDelayMaxMs);
  return Math.round(from * (f.ingestDelayMaxMs / from) ** p);
}

function gauss(rng: Rng): number {
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function createLiveStream(opts: LiveStreamOptions): LiveStream {
  const rng = createRng(opts.seed);
  const u = (a: number, b: number) => a + (b - a) * rng.next();
  const fault = opts.fault;
  // Packager ingest: per-object lag samples, recorded at arrival (+ injected delay).
  const baseLagMs = u(3, 8);
  let lagWander = 0; // ms, scheduling on a busy host, AR(1) per object
  const lagWanderSigma = u(0.6, 1.6);
  const lagSamples: { atMs: number; lagMs: number }[] = [];
  let nextObjectMs = opts.startMs - 30_000 + u(0, OBJECT_INTERVAL_MS);
  // The agent reports the /status it polled last, some time before the report.
  const statusAgeMs = u(200, 1000);
  // Startup server errors over a filling 60 s window: e0 / (1 + age / tau).
  const startupErrorRatio = u(0.05, 0.35);
  const startupErrorTauMs = u(500, 10_000);
  // Process and host.
  let rss = u(105, 125) * MIB;
  let hostLoad = u(0.6, 0.95);
  let availBytes = u(21.5, 22.8) * GIB;
  const viewersStartMs = opts.startMs + u(5_000, 20_000);
  let hbPhaseMs = u(0, 250);
  const hbDriftMsPerS = u(-6, 6);
  const fsTotal = 250 * GIB;
  const fsUsed = u(0.3, 0.6);
  let lastT = opts.startMs - 1000;

  function ingestUntil(tMs: number): void {
    for (let i = 0; i < 100 && nextObjectMs <= tMs; i++) {
      const arrival = nextObjectMs;
      nextObjectMs += OBJECT_INTERVAL_MS;
      lagWander = 0.95 * lagWander + lagWanderSigma * gauss(rng);
      const delay = fault ? ingestDelayMs(fault, arrival) : 0;
      const lag = Math.max(
        0,
        Math.round(baseLagMs + Math.abs(lagWander) * 2 + Math.abs(gauss(rng))),
      );
      lagSamples.push({ atMs: arrival + delay, lagMs: lag + delay });
    }
    while (lagSamples.length > 0 && lagSamples[0]!.atMs <= tMs - 60_000) lagSamples.shift();
  }

  function recentP50(tMs: number): number | undefined {
    const xs = lagSamples
      .filter((s) => s.atMs <= tMs && tMs - s.atMs <= RECENT_LAG_WINDOW_MS)
      .map((s) => s.lagMs)
      .sort((a, b) => a - b);
    if (xs.length === 0) return undefined;
    return xs[Math.max(0, Math.ceil(0.5 * xs.length) - 1)]!;
  }

  return {
    report(tMs) {
      const dtS = Math.max(0.001, (tMs - lastT) / 1000);
      lastT = tMs;
      const ageMs = tMs - opts.startMs;
      const out: MetricSample[] = [];
      const add = (name: string, value: number, unit = "") => out.push({ name, value, unit });

      // Host, shared by every component on the machine.
      hostLoad = Math.min(1, Math.max(0.3, hostLoad + 0.1 * (0.85 - hostLoad) + 0.05 * gauss(rng)));
      // Viewers starting up take memory for a few seconds, then it settles.
      const viewerRamp = tMs > viewersStartMs && tMs < viewersStartMs + 15_000 ? 60 * MIB : 0;
      availBytes = availBytes - viewerRamp * dtS + 2 * MIB * gauss(rng);
      if (fault && tMs >= fault.startMs) {
        const leakRate = fault.leakBytesMax / fault.rampMs;
        if (tMs < fault.startMs + fault.rampMs) availBytes -= leakRate * 1000 * dtS;
      }
      add("cpu.load", hostLoad >= 0.995 ? 1 : hostLoad, "ratio");
      add("mem.used_bytes", HOST_MEM_BYTES - availBytes, "bytes");
      add("mem.available_bytes", availBytes, "bytes");
      add("mem.swap_used_bytes", 0, "bytes");
      add("disk.read_bytes_per_s", Math.max(0, 2e4 * (1 + gauss(rng))), "bytes_per_second");
      add("disk.write_bytes_per_s", Math.max(0, 4e5 * (1 + 0.5 * gauss(rng))), "bytes_per_second");
      add("disk.io_wait", Math.max(0, 0.01 + 0.005 * gauss(rng)), "ratio");
      add("fs.used_ratio", fsUsed, "ratio");
      add("fs.free_bytes", fsTotal * (1 - fsUsed), "bytes");
      add("net.rx_bytes_per_s", Math.max(0, 3e6 * (1 + 0.2 * gauss(rng))), "bytes_per_second");
      add("net.tx_bytes_per_s", Math.max(0, 3e6 * (1 + 0.2 * gauss(rng))), "bytes_per_second");
      add("net.rx_errors_per_s", 0, "count_per_second");
      add("net.rx_dropped_per_s", 0, "count_per_second");
      // The agent's link to the coordinator (loopback) and its message timing.
      add("probe.loss_ratio", 0, "ratio");
      if (rng.chance(0.5)) add("probe.rtt_ms", Math.max(0.3, 1.2 + 0.4 * gauss(rng)), "ms");
      hbPhaseMs = (((hbPhaseMs + hbDriftMsPerS * dtS) % 250) + 250) % 250;
      add("heartbeat.interval_ms", Math.max(0.1, hbPhaseMs + 8 * gauss(rng)), "ms");

      if (opts.role === "packager") {
        const polledMs = tMs - statusAgeMs - u(0, 50);
        ingestUntil(polledMs);
        const p50 = recentP50(polledMs);
        if (p50 !== undefined) add("packager.ingest_latency_ms", p50, "ms");
        const startup =
          ageMs < ERROR_WINDOW_MS ? startupErrorRatio / (1 + ageMs / startupErrorTauMs) : 0;
        const rare = rng.chance(0.02) ? 0.001 * rng.next() : 0;
        add("packager.error_rate", startup + rare, "ratio");
        add("packager.cache_hit_ratio", Math.min(1, 0.9 + 0.03 * gauss(rng)), "ratio");
        // The packager process the agent watches.
        rss += 0.05 * MIB * dtS + 0.3 * MIB * gauss(rng);
        let leaked = 0;
        if (fault && tMs >= fault.startMs) {
          const p = Math.min(1, (tMs - fault.startMs) / fault.rampMs);
          leaked = Math.floor((p * fault.leakBytesMax) / MIB) * MIB;
        }
        add("proc.up", 1);
        add("proc.restarts", 0, "count");
        add("proc.cpu", Math.max(0, 0.04 + 0.02 * gauss(rng)), "ratio");
        add("proc.rss_bytes", rss + leaked, "bytes");
        add("proc.fds", 40 + Math.round(2 * rng.next()), "count");
      }
      const late = rng.chance(0.03) ? u(50, 300) : Math.abs(8 * gauss(rng));
      return { samples: out, arrivalMs: tMs + 2 + late };
    },
  };
}
