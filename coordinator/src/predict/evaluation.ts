/**
 * How alarms are scored. One definition, used by `predict eval`, by threshold
 * calibration and by the tests, for the model and the baselines alike.
 *
 * Inputs, per component: a tick grid (startMs + i * tickMs), `up[i]` = the
 * component produced a sample at tick i, `alarm[i]` = the detector's alarm was
 * on at tick i (alarms while down are ignored), and the failure times
 * `failMs` (first tick the component is down).
 *
 * - Alarm episode: a maximal run of consecutive up ticks with the alarm on.
 *   Its start s is the first such tick, its end e the last. Episodes are not
 *   merged across gaps, so flapping is counted, not forgiven.
 * - Failure window of a failure at f: [f - H - slack, f). H is the prediction
 *   horizon (default 30 s), slack a tolerance for early alarms (default 10 s).
 * - A failure is detected (a true positive for recall) when some episode has a
 *   tick inside its window (s < f and e >= f - H - slack).
 * - Lead time of a detected failure = f - s of the earliest such episode.
 *   It is not capped: an episode that starts long before the failure and stays
 *   on until it gets the long lead, and the alarm-time fraction (reported
 *   alongside) shows if alarms were simply left on.
 * - False alarm: an episode that overlaps no failure window, i.e. no failure
 *   follows within H + slack of its last tick. An episode still open at the
 *   end of the trace with no failure after it counts as false.
 * - Precision = detected failures / (detected failures + false alarms). Extra
 *   true episodes for the same failure (flapping) earn nothing.
 * - Recall = detected failures / failures. F1 = 2PR / (P + R).
 * - False alarms per component-day = false alarms / (total up time in days).
 *
 * Sudden failures are scored the same way but reported apart: no detector can
 * see them coming, and mixing them in would hide what gradual failures show.
 * Precision depends on how often failures happen (the generator makes them
 * far more frequent than real hosts do); false alarms per component-day does
 * not, and is the figure to compare with an operator's tolerance.
 */
export interface ScoredFailure {
  readonly failMs: number;
  readonly mode: string;
}

export interface Timeline {
  readonly startMs: number;
  readonly tickMs: number;
  readonly up: Uint8Array;
  readonly alarm: Uint8Array;
  readonly failures: readonly ScoredFailure[];
}

export interface ScoringWindow {
  readonly horizonMs: number;
  readonly slackMs: number;
}

export const DEFAULT_SCORING: ScoringWindow = { horizonMs: 30_000, slackMs: 10_000 };

export interface FailureOutcome {
  readonly mode: string;
  readonly failMs: number;
  readonly detected: boolean;
  /** NaN when not detected. */
  readonly leadMs: number;
}

export interface TimelineScore {
  readonly failures: readonly FailureOutcome[];
  readonly falseAlarms: number;
  readonly episodes: number;
  readonly upMs: number;
  readonly alarmMs: number;
}

export function scoreTimeline(tl: Timeline, w: ScoringWindow = DEFAULT_SCORING): TimelineScore {
  const starts: number[] = [];
  const ends: number[] = [];
  let upMs = 0;
  let alarmMs = 0;
  let open = false;
  const n = tl.up.length;
  for (let i = 0; i < n; i++) {
    const t = tl.startMs + i * tl.tickMs;
    const up = tl.up[i] === 1;
    if (up) upMs += tl.tickMs;
    const on = up && tl.alarm[i] === 1;
    if (on) {
      alarmMs += tl.tickMs;
      if (!open) {
        starts.push(t);
        ends.push(t);
        open = true;
      } else {
        ends[ends.length - 1] = t;
      }
    } else {
      open = false;
    }
  }
  const isTrue = new Uint8Array(starts.length);
  const failures: FailureOutcome[] = [];
  for (const f of tl.failures) {
    const lo = f.failMs - w.horizonMs - w.slackMs;
    let lead = Number.NaN;
    for (let k = 0; k < starts.length; k++) {
      if (starts[k]! < f.failMs && ends[k]! >= lo) {
        isTrue[k] = 1;
        if (Number.isNaN(lead)) lead = f.failMs - starts[k]!;
      }
    }
    failures.push({ mode: f.mode, failMs: f.failMs, detected: !Number.isNaN(lead), leadMs: lead });
  }
  let falseAlarms = 0;
  for (let k = 0; k < isTrue.length; k++) if (isTrue[k] === 0) falseAlarms++;
  return { failures, falseAlarms, episodes: starts.length, upMs, alarmMs };
}

export interface Summary {
  failures: number;
  detected: number;
  falseAlarms: number;
  componentDays: number;
  precision: number;
  recall: number;
  f1: number;
  falseAlarmsPerComponentDay: number;
  leadS: { p10: number; p50: number; p90: number; mean: number };
  /** Fraction of up time spent in alarm. */
  alarmFraction: number;
}

/** Accumulates scores of many components (optionally filtering failures by mode). */
export interface Tally {
  add(score: TimelineScore): void;
  summary(): Summary;
}

export function createTally(): Tally {
  let failures = 0;
  let detected = 0;
  let falseAlarms = 0;
  let upMs = 0;
  let alarmMs = 0;
  const leads: number[] = [];
  return {
    add(s) {
      for (const f of s.failures) {
        failures++;
        if (f.detected) {
          detected++;
          leads.push(f.leadMs / 1000);
        }
      }
      falseAlarms += s.falseAlarms;
      upMs += s.upMs;
      alarmMs += s.alarmMs;
    },
    summary() {
      const precision =
        detected + falseAlarms > 0 ? detected / (detected + falseAlarms) : Number.NaN;
      const recall = failures > 0 ? detected / failures : Number.NaN;
      const f1 =
        precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : Number.NaN;
      const days = upMs / 86_400_000;
      leads.sort((a, b) => a - b);
      return {
        failures,
        detected,
        falseAlarms,
        componentDays: days,
        precision,
        recall,
        f1: Number.isNaN(precision) || Number.isNaN(recall) ? Number.NaN : f1,
        falseAlarmsPerComponentDay: days > 0 ? falseAlarms / days : Number.NaN,
        leadS: {
          p10: quantile(leads, 0.1),
          p50: quantile(leads, 0.5),
          p90: quantile(leads, 0.9),
          mean: leads.length > 0 ? leads.reduce((a, b) => a + b, 0) / leads.length : Number.NaN,
        },
        alarmFraction: upMs > 0 ? alarmMs / upMs : Number.NaN,
      };
    },
  };
}

/** Linear-interpolated quantile of an ascending array; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
