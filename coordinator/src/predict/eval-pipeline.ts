/**
 * Orchestrates `predict eval`: split seeds, fit, calibrate, test, aggregate.
 * Pure apart from the injected runner, which executes per-seed work either
 * in-process (tests) or on worker threads (the CLI).
 */
import { createRng } from "../../../common/rng.ts";
import {
  type CalibrationSeed,
  calibrationSeed,
  DETECTORS,
  type DetectorName,
  type EvalConfig,
  type Explanation,
  type SeedResult,
  seedRole,
  testSeed,
  trainingRows,
} from "./eval-run.ts";
import { createTally, type Summary } from "./evaluation.ts";
import { deserializeModel, type PredictorModel, serializeModel } from "./model.ts";
import { GRADUAL_MODES } from "./trace.ts";
import {
  type CalibrationComponent,
  chooseThresholds,
  concatRows,
  fitStack,
  type LabelledRows,
  type ThresholdChoice,
  trainBaseModels,
} from "./train.ts";

export interface SeedRunner {
  trainingRows(seeds: readonly number[], cfg: EvalConfig): Promise<LabelledRows[]>;
  calibration(
    seeds: readonly number[],
    cfg: EvalConfig,
    modelBytes: Uint8Array,
  ): Promise<CalibrationSeed[]>;
  test(seeds: readonly number[], cfg: EvalConfig, modelBytes: Uint8Array): Promise<SeedResult[]>;
}

export interface ReportRow {
  readonly mode: string;
  readonly detector: DetectorName;
  readonly summary: Summary;
}

export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly actual: number;
  readonly met: boolean;
}

export interface EvalReport {
  readonly seeds: { fit: number[]; calibrate: number[]; test: number[] };
  readonly horizonMs: number;
  readonly slackMs: number;
  readonly trainingRows: number;
  readonly trainingPositives: number;
  readonly thresholds: Record<string, ThresholdChoice>;
  readonly rows: ReportRow[];
  readonly targets: TargetCheck[];
  readonly explanations: Explanation[];
  readonly modelBytes: number;
  /** The serialised model that was tested (not part of the JSON report). */
  readonly model: Uint8Array;
}

export const GRADUAL = "gradual (all)";

/** A model produced by the fit + calibrate stages, with what the report says about them. */
export interface TrainedModel {
  readonly seeds: { fit: number[]; calibrate: number[]; test: number[] };
  readonly trainingRows: number;
  readonly trainingPositives: number;
  readonly thresholds: Record<string, ThresholdChoice>;
  readonly model: PredictorModel;
  readonly bytes: Uint8Array;
}

/**
 * Fits the base models on the range's fit seeds, then the stack and the
 * per-role thresholds on its calibration seeds; test seeds are not touched.
 * `predict train` ships exactly this model and `predict eval` tests exactly
 * this model on the same range's held-out seeds, so an eval of a range
 * describes the model `predict train` writes for that range.
 */
export async function trainAndCalibrate(
  seeds: readonly number[],
  cfg: EvalConfig,
  runner: Pick<SeedRunner, "trainingRows" | "calibration">,
  progress: (msg: string) => void = () => {},
): Promise<TrainedModel> {
  const fit = seeds.filter((_, i) => seedRole(i) === "fit");
  const calibrate = seeds.filter((_, i) => seedRole(i) === "calibrate");
  const test = seeds.filter((_, i) => seedRole(i) === "test");
  if (fit.length === 0 || calibrate.length === 0 || test.length === 0) {
    throw new RangeError(`need at least 3 seeds (fit, calibrate, test); got ${seeds.length}`);
  }
  progress(`fitting on ${fit.length} seeds`);
  const data = concatRows(await runner.trainingRows(fit, cfg));
  let positives = 0;
  for (let r = 0; r < data.rows; r++) positives += data.y[r]!;
  const rng = createRng(seeds[0]! * 7919 + 17);
  const base = trainBaseModels(data, rng, { horizonMs: cfg.scoring.horizonMs, gbt: cfg.gbt });

  progress(`calibrating on ${calibrate.length} seeds`);
  const cal = await runner.calibration(calibrate, cfg, serializeModel(base));
  const rows = cal.reduce((a, c) => a + c.stackY.length, 0);
  const parts = new Float64Array(rows * 3);
  const ys = new Uint8Array(rows);
  const ws = new Float64Array(rows);
  let r = 0;
  for (const c of cal) {
    parts.set(c.stackParts, r * 3);
    ys.set(c.stackY, r);
    ws.set(c.stackWeight, r);
    r += c.stackY.length;
  }
  const stack = fitStack(parts, ys, ws, rows);
  const comps: CalibrationComponent[] = cal.flatMap((c) => c.components);
  const { thresholds, choices } = chooseThresholds(comps, stack, {
    scoring: cfg.scoring,
    falseAlarmsPerDayBudget: cfg.falseAlarmsPerDayBudget,
  });
  const model: PredictorModel = { ...base, stack, thresholds };
  return {
    seeds: { fit, calibrate, test },
    trainingRows: data.rows,
    trainingPositives: positives,
    thresholds: choices,
    model,
    bytes: serializeModel(model),
  };
}

export async function runEvaluation(
  seeds: readonly number[],
  cfg: EvalConfig,
  runner: SeedRunner,
  progress: (msg: string) => void = () => {},
): Promise<EvalReport> {
  const trained = await trainAndCalibrate(seeds, cfg, runner, progress);
  const bytes = trained.bytes;
  progress(`testing on ${trained.seeds.test.length} held-out seeds`);
  const results = await runner.test(trained.seeds.test, cfg, bytes);
  const report = aggregate(results);
  return {
    seeds: trained.seeds,
    horizonMs: cfg.scoring.horizonMs,
    slackMs: cfg.scoring.slackMs,
    trainingRows: trained.trainingRows,
    trainingPositives: trained.trainingPositives,
    thresholds: trained.thresholds,
    rows: report.rows,
    targets: report.targets,
    explanations: report.explanations,
    modelBytes: bytes.length,
    model: bytes,
  };
}

export function aggregate(
  results: readonly SeedResult[],
): Pick<EvalReport, "rows" | "targets" | "explanations"> {
  const sorted = [...results].sort((a, b) => a.seed - b.seed);
  const groups = [...GRADUAL_MODES, GRADUAL, "sudden"];
  const rows: ReportRow[] = [];
  for (const mode of groups) {
    for (const det of DETECTORS) {
      const tally = createTally();
      let any = false;
      for (const s of sorted) {
        for (const c of s.components) {
          const match = mode === GRADUAL ? c.mode !== "sudden" : c.mode === mode;
          if (!match) continue;
          any = true;
          tally.add(c.scores[det]);
        }
      }
      if (any) rows.push({ mode, detector: det, summary: tally.summary() });
    }
  }
  const g = rows.find((x) => x.mode === GRADUAL && x.detector === "model")?.summary;
  const targets: TargetCheck[] = g
    ? [
        { name: "precision", target: ">= 0.9", actual: g.precision, met: g.precision >= 0.9 },
        { name: "recall", target: ">= 0.8", actual: g.recall, met: g.recall >= 0.8 },
        { name: "median lead (s)", target: ">= 10", actual: g.leadS.p50, met: g.leadS.p50 >= 10 },
        {
          name: "false alarms per component-day",
          target: "<= 1",
          actual: g.falseAlarmsPerComponentDay,
          met: g.falseAlarmsPerComponentDay <= 1,
        },
      ]
    : [];
  const explanations: Explanation[] = [];
  const perMode = new Map<string, number>();
  for (const s of sorted) {
    for (const e of s.explanations) {
      const k = perMode.get(e.mode) ?? 0;
      if (k >= 2) continue;
      perMode.set(e.mode, k + 1);
      explanations.push(e);
    }
  }
  return { rows, targets, explanations };
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : "-");

export function formatReport(rep: EvalReport, runtimeMs?: number, cpuMs?: number): string {
  const lines: string[] = [];
  lines.push(
    `predict eval: fit seeds ${rep.seeds.fit.length}, calibration seeds ${rep.seeds.calibrate.length}, ` +
      `held-out test seeds ${rep.seeds.test.length}; H = ${rep.horizonMs / 1000} s, slack = ${rep.slackMs / 1000} s`,
  );
  lines.push(
    `training rows ${rep.trainingRows} (${rep.trainingPositives} positive); thresholds: ` +
      Object.entries(rep.thresholds)
        .map(([r, c]) => `${r} ${fmt(c.threshold, 3)}`)
        .join(", "),
  );
  const header = [
    "mode",
    "detector",
    "fail",
    "det",
    "prec",
    "recall",
    "F1",
    "lead p10/p50/p90 s",
    "FA/comp-day",
    "comp-days",
    "alarm%",
  ];
  const table: string[][] = [header];
  for (const r of rep.rows) {
    const s = r.summary;
    table.push([
      r.mode,
      r.detector,
      String(s.failures),
      String(s.detected),
      fmt(s.precision),
      fmt(s.recall),
      fmt(s.f1),
      `${fmt(s.leadS.p10, 0)}/${fmt(s.leadS.p50, 0)}/${fmt(s.leadS.p90, 0)}`,
      fmt(s.falseAlarmsPerComponentDay),
      fmt(s.componentDays, 1),
      fmt(s.alarmFraction * 100, 2),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const [k, row] of table.entries()) {
    lines.push(
      row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "),
    );
    if (k === 0) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
  }
  lines.push("targets (gradual failures, model, held-out seeds):");
  for (const t of rep.targets) {
    lines.push(`  ${t.met ? "MET   " : "MISSED"} ${t.name} ${t.target}: ${fmt(t.actual, 3)}`);
  }
  if (rep.explanations.length > 0) {
    lines.push("why (first alarm before some detected failures):");
    for (const e of rep.explanations) {
      const why = e.topFeatures
        .map((f) => `${f.name}=${fmt(f.value, 3)} (+${fmt(f.contribution, 2)})`)
        .join(", ");
      lines.push(
        `  ${e.mode} ${e.componentId} lead ${fmt(e.leadS, 0)} s p=${fmt(e.probability, 3)}: ${why}`,
      );
    }
  }
  if (runtimeMs !== undefined) {
    const cpu = cpuMs === undefined ? "" : `, ${(cpuMs / 1000).toFixed(1)} s CPU (all threads)`;
    lines.push(`runtime ${(runtimeMs / 1000).toFixed(1)} s wall${cpu}`);
  }
  return lines.join("\n");
}

/** In-process runner (tests, and `--workers 0`). */
export function createInProcessRunner(): SeedRunner {
  return {
    trainingRows: async (seeds, cfg) => seeds.map((s) => trainingRows(s, cfg)),
    calibration: async (seeds, cfg, bytes) => {
      const model = deserializeModel(bytes);
      return seeds.map((s) => calibrationSeed(s, cfg, model));
    },
    test: async (seeds, cfg, bytes) => seeds.map((s) => testSeed(s, cfg, bytes)),
  };
}
