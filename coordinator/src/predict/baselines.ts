/**
 * The two baselines the evaluation compares against, run on the same samples
 * and judged by the same alarm debouncing (alarm.ts) and scoring.
 *
 * Static thresholds — the alert rules an operator would write first:
 *   mem available < 3% of total, fs.used_ratio > 0.97, cpu.load > 0.97,
 *   cpu.temp_c > 90, probe.loss_ratio > 0.1, heartbeat.interval_ms > 2000,
 *   encoder.speed < 0.9, packager.ingest_latency_ms > 2000,
 *   packager.error_rate > 0.02, edge.http_5xx_rate > 0.05.
 *
 * Prometheus-style `predict_linear(metric[2m], H) <op> limit`: a least-squares
 * line over the last `rangeMs` extrapolated H ahead, for
 *   mem.available_bytes < 0, fs.free_bytes < 0, proc.fds > fdLimit,
 *   cpu.temp_c > 100, probe.loss_ratio > 0.3, heartbeat.interval_ms > 3000,
 *   encoder.speed < 0.5, packager.ingest_latency_ms > 5000.
 * These limits are the generator's own failure points, which favours the
 * baseline: a real operator would have to guess them.
 */
import {
  type AlarmPolicy,
  createAlarmState,
  DEFAULT_ALARM_POLICY,
  resetAlarm,
  stepAlarm,
} from "./alarm.ts";
import { fitLine, type LineFit } from "./features.ts";
import { createMetricWindow, type MetricSample, type MetricWindow } from "./window.ts";

export interface RuleDetector {
  /** One tick of samples; returns the debounced alarm. */
  step(samples: readonly MetricSample[], tMs: number): boolean;
  reset(): void;
}

export function staticRulesFire(samples: readonly MetricSample[]): boolean {
  let used = Number.NaN;
  let avail = Number.NaN;
  for (const s of samples) {
    const v = s.value;
    switch (s.name) {
      case "mem.used_bytes":
        used = v;
        break;
      case "mem.available_bytes":
        avail = v;
        break;
      case "fs.used_ratio":
        if (v > 0.97) return true;
        break;
      case "cpu.load":
        if (v > 0.97) return true;
        break;
      case "cpu.temp_c":
        if (v > 90) return true;
        break;
      case "probe.loss_ratio":
        if (v > 0.1) return true;
        break;
      case "heartbeat.interval_ms":
        if (v > 2000) return true;
        break;
      case "encoder.speed":
        if (v < 0.9) return true;
        break;
      case "packager.ingest_latency_ms":
        if (v > 2000) return true;
        break;
      case "packager.error_rate":
        if (v > 0.02) return true;
        break;
      case "edge.http_5xx_rate":
        if (v > 0.05) return true;
        break;
    }
  }
  return avail + used > 0 && avail / (avail + used) < 0.03;
}

export function createStaticThresholdDetector(
  policy: AlarmPolicy = DEFAULT_ALARM_POLICY,
): RuleDetector {
  const state = createAlarmState();
  return {
    step(samples) {
      const fire = staticRulesFire(samples);
      return stepAlarm(state, fire, !fire, policy);
    },
    reset: () => resetAlarm(state),
  };
}

export interface PredictLinearOptions {
  horizonMs?: number;
  rangeMs?: number;
  fdLimit?: number;
  /** Windows are cleared after a silence longer than this. */
  maxGapMs?: number;
  policy?: AlarmPolicy;
}

export function createPredictLinearDetector(opts: PredictLinearOptions = {}): RuleDetector {
  const horizonS = (opts.horizonMs ?? 30_000) / 1000;
  const rangeMs = opts.rangeMs ?? 120_000;
  const maxGapMs = opts.maxGapMs ?? 10_000;
  const policy = opts.policy ?? DEFAULT_ALARM_POLICY;
  // [metric, limit, "below" | "above"]
  const rules: [string, number, "below" | "above"][] = [
    ["mem.available_bytes", 0, "below"],
    ["fs.free_bytes", 0, "below"],
    ["proc.fds", opts.fdLimit ?? 65_536, "above"],
    ["cpu.temp_c", 100, "above"],
    ["probe.loss_ratio", 0.3, "above"],
    ["heartbeat.interval_ms", 3000, "above"],
    ["encoder.speed", 0.5, "below"],
    ["packager.ingest_latency_ms", 5000, "above"],
  ];
  const index = new Map(rules.map(([name], i) => [name, i]));
  const capacity = Math.max(16, Math.ceil(rangeMs / 1000) + 4);
  const windows: MetricWindow[] = rules.map(() => createMetricWindow(capacity));
  const state = createAlarmState();
  const fit: LineFit = { n: 0, slopePerS: 0, levelAtT: 0 };
  let lastMs = Number.NaN;
  return {
    step(samples, tMs) {
      if (!Number.isNaN(lastMs) && tMs - lastMs > maxGapMs) {
        for (const w of windows) w.clear();
        resetAlarm(state);
      }
      lastMs = tMs;
      for (const s of samples) {
        const i = index.get(s.name);
        if (i !== undefined) windows[i]!.push(tMs, s.value);
      }
      let fire = false;
      for (let i = 0; i < rules.length && !fire; i++) {
        const w = windows[i]!;
        if (w.size < 10) continue;
        fitLine(w, tMs, rangeMs, 10, fit);
        if (Number.isNaN(fit.slopePerS)) continue;
        const predicted = fit.levelAtT + fit.slopePerS * horizonS;
        const [, limit, dir] = rules[i]!;
        fire = dir === "below" ? predicted < limit : predicted > limit;
      }
      return stepAlarm(state, fire, !fire, policy);
    },
    reset() {
      for (const w of windows) w.clear();
      resetAlarm(state);
      lastMs = Number.NaN;
    },
  };
}
