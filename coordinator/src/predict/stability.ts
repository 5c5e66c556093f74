/**
 * The stability score: 100 means nothing of concern, 0 means several signals
 * are at their worst. It is a weighted sum of penalties, each a piecewise
 * linear ramp over one feature between a "fine" and a "bad" value, so an
 * operator can read why a component scored low ("fs.free_bytes:tte_ln_s
 * costs 15 points"). Groups combine related features by taking the worst
 * penalty in the group, so the same problem is not counted twice.
 *
 * Weights and ramps are set by hand from the meaning of each signal, not
 * learned; the learned models sit beside this score, and the stack learns how
 * much to trust it.
 */
import { FEATURE_INDEX as F, type FeatureKey } from "./extractor.ts";

interface Ramp {
  readonly feature: FeatureKey;
  /** Penalty 0 at `fine`, 1 at `bad`, linear between (either direction). */
  readonly fine: number;
  readonly bad: number;
}

interface Group {
  readonly name: string;
  readonly weight: number;
  readonly ramps: readonly Ramp[];
}

const ln = Math.log;

export const STABILITY_GROUPS: readonly Group[] = [
  {
    name: "memory",
    weight: 15,
    ramps: [
      { feature: "memTte", fine: ln(600), bad: ln(30) },
      { feature: "memAvailRatio", fine: 0.05, bad: 0.005 },
    ],
  },
  {
    name: "disk",
    weight: 15,
    ramps: [
      { feature: "fsTte", fine: ln(600), bad: ln(30) },
      { feature: "fsUsed", fine: 0.97, bad: 0.998 },
    ],
  },
  {
    name: "heartbeat",
    weight: 12,
    ramps: [
      { feature: "hbTte", fine: ln(300), bad: ln(20) },
      { feature: "hbMax", fine: 1500, bad: 2800 },
    ],
  },
  {
    name: "thermal",
    weight: 10,
    ramps: [
      { feature: "tempTte", fine: ln(600), bad: ln(30) },
      { feature: "tempLevel", fine: 85, bad: 98 },
    ],
  },
  { name: "cpu", weight: 5, ramps: [{ feature: "cpuLoadEwma", fine: 0.9, bad: 1 }] },
  { name: "process-cpu", weight: 3, ramps: [{ feature: "procCpuEwma", fine: 0.9, bad: 1 }] },
  {
    name: "network",
    weight: 10,
    ramps: [
      { feature: "lossEwma", fine: 0.02, bad: 0.25 },
      { feature: "lossTte", fine: ln(300), bad: ln(30) },
    ],
  },
  { name: "encoder-fps", weight: 10, ramps: [{ feature: "fpsRatio", fine: 0.95, bad: 0.6 }] },
  { name: "encoder-speed", weight: 5, ramps: [{ feature: "speedEwma", fine: 0.97, bad: 0.7 }] },
  {
    name: "ingest-latency",
    weight: 10,
    ramps: [
      { feature: "latLog", fine: ln(1000), bad: ln(5000) },
      { feature: "latTte", fine: ln(300), bad: ln(30) },
    ],
  },
  { name: "packager-errors", weight: 5, ramps: [{ feature: "perrEwma", fine: 0.01, bad: 0.1 }] },
  { name: "edge-5xx", weight: 5, ramps: [{ feature: "e5xxEwma", fine: 0.01, bad: 0.1 }] },
];

export function rampPenalty(x: number, fine: number, bad: number): number {
  const t = (x - fine) / (bad - fine);
  return t <= 0 ? 0 : Math.min(t, 1);
}

/**
 * Stability in [0, 100]. When `contributions` is given, each group's lost
 * points are added to the entry of the feature that set the group's penalty.
 */
export function stabilityScore(x: ArrayLike<number>, contributions?: Float64Array): number {
  let lost = 0;
  for (const grp of STABILITY_GROUPS) {
    let worst = 0;
    let worstFeature = -1;
    for (const r of grp.ramps) {
      const p = rampPenalty(x[F[r.feature]]!, r.fine, r.bad);
      if (p > worst) {
        worst = p;
        worstFeature = F[r.feature];
      }
    }
    if (worst > 0) {
      lost += grp.weight * worst;
      if (contributions !== undefined) contributions[worstFeature]! += grp.weight * worst;
    }
  }
  return Math.max(0, 100 - lost);
}
