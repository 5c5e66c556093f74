/**
 * `understudy predict <eval|train|score>`: the command edge of the predictor.
 *
 *   predict eval [--seeds A..B] [--json] [--workers N] [--hours H]
 *                [--components N] [--no-online] [--strict]
 *       Trains on some seeds of the range, calibrates on others, tests on the
 *       rest (see eval-run.ts for the split and evaluation.ts for how alarms
 *       are scored) and prints per failure mode the model and two baselines.
 *       --strict exits 1 when a target is missed.
 *   predict train [--seeds A..B] --out FILE [--workers N] [--hours H] [--components N]
 *       Fits and calibrates exactly as `predict eval` does on the same range
 *       (its test seeds are left out) and writes the serialised model to
 *       FILE. Deterministic: the same arguments give the same bytes.
 *   predict score --input FILE.csv --output FILE.csv
 *       Adds a causal anomaly_score column (see csv-score.ts for the format).
 *       Streams line by line; the output appears only when all input was good.
 *
 * Exit codes: 0 ok, 1 targets missed under --strict, 2 bad usage or bad input.
 */

import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { createInterface } from "node:readline";
import { CsvInputError, createCsvScorer, OUTPUT_HEADER } from "./csv-score.ts";
import {
  createInProcessRunner,
  type EvalReport,
  formatReport,
  runEvaluation,
  type SeedRunner,
  trainAndCalibrate,
} from "./eval-pipeline.ts";
import { createEvalPool } from "./eval-pool.ts";
import { DEFAULT_EVAL_CONFIG, type EvalConfig } from "./eval-run.ts";
import { writeModelFile } from "./model-file.ts";

export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIo: CommandIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const USAGE = `usage:
  understudy predict eval [--seeds A..B] [--json] [--workers N] [--hours H] [--components N] [--no-online] [--strict]
  understudy predict train [--seeds A..B] --out FILE [--workers N] [--hours H] [--components N]
  understudy predict score --input FILE.csv --output FILE.csv
`;

class UsageError extends Error {}

/** Seeds are bounded so a typo cannot start a day-long run. */
const SEEDS_MAX = 10_000;

export function parseSeedRange(text: string): number[] {
  const m = /^(\d+)\.\.(\d+)$/.exec(text);
  if (m === null)
    throw new UsageError(`--seeds must look like A..B (e.g. 1000..1099), got "${text}"`);
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (b < a) throw new UsageError(`--seeds ${text}: the end is before the start`);
  if (b - a + 1 > SEEDS_MAX) throw new UsageError(`--seeds ${text}: at most ${SEEDS_MAX} seeds`);
  if (b - a + 1 < 3)
    throw new UsageError(`--seeds ${text}: need at least 3 seeds (fit, calibrate, test)`);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

function parseFlags(argv: readonly string[], valued: readonly string[], bare: readonly string[]) {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (valued.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      values.set(name, v);
    } else if (bare.includes(a)) {
      flags.add(a);
    } else {
      throw new UsageError(`unknown argument "${a}"`);
    }
  }
  return { values, flags };
}

function positiveNumber(name: string, text: string | undefined, dflt: number, max: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new UsageError(`${name} must be a number in (0, ${max}], got "${text}"`);
  return n;
}

interface RunSetup {
  seeds: number[];
  workers: number;
  hours: number;
  components: number;
  cfg: EvalConfig;
}

/** Flags shared by eval and train: the same flags build the same pipeline. */
function runSetup(values: Map<string, string>, online: boolean): RunSetup {
  const seeds = parseSeedRange(values.get("--seeds") ?? "1000..1099");
  const workers = Math.floor(
    positiveNumber("--workers", values.get("--workers"), Math.min(2, availableParallelism()), 64),
  );
  const hours = positiveNumber("--hours", values.get("--hours"), 6, 24 * 30);
  if (hours < 0.5) throw new UsageError("--hours must be at least 0.5");
  const components = Math.floor(
    positiveNumber("--components", values.get("--components"), 5, 1000),
  );
  const cfg: EvalConfig = {
    ...DEFAULT_EVAL_CONFIG,
    trace: { ...DEFAULT_EVAL_CONFIG.trace, components, durationMs: Math.round(hours * 3_600_000) },
    online,
  };
  return { seeds, workers, hours, components, cfg };
}

/** Runs `fn` with an in-process runner (1 worker) or a worker pool, closing the pool after. */
async function withRunner<T>(workers: number, fn: (runner: SeedRunner) => Promise<T>): Promise<T> {
  if (workers <= 1) return fn(createInProcessRunner());
  const pool = await createEvalPool(workers);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

async function runEval(argv: readonly string[], io: CommandIo): Promise<number> {
  const { values, flags } = parseFlags(
    argv,
    ["--seeds", "--workers", "--hours", "--components"],
    ["--json", "--no-online", "--strict"],
  );
  const { seeds, workers, hours, components, cfg } = runSetup(values, !flags.has("--no-online"));
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const progress = (msg: string) =>
    io.stderr(`predict eval: ${msg} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  const report: EvalReport = await withRunner(workers, (runner) =>
    runEvaluation(seeds, cfg, runner, progress),
  );
  const runtimeMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  // All threads of this process (workers included), so it does not depend on machine load.
  const cpuMs = (cpu.user + cpu.system) / 1000;
  if (flags.has("--json")) {
    const { model: _model, ...rest } = report;
    io.stdout(
      `${JSON.stringify(
        {
          ...rest,
          config: {
            seeds: `${seeds[0]}..${seeds[seeds.length - 1]}`,
            hours,
            components,
            workers,
            online: cfg.online,
          },
          runtimeMs: Math.round(runtimeMs),
          cpuMs: Math.round(cpuMs),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    io.stdout(`${formatReport(report, runtimeMs, cpuMs)}\n`);
  }
  const missed = report.targets.filter((t) => !t.met);
  return flags.has("--strict") && missed.length > 0 ? 1 : 0;
}

async function runTrain(argv: readonly string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(
    argv,
    ["--seeds", "--workers", "--hours", "--components", "--out"],
    [],
  );
  const out = values.get("--out");
  if (out === undefined) throw new UsageError("train needs --out FILE");
  const { seeds, workers, cfg } = runSetup(values, true);
  const started = performance.now();
  const progress = (msg: string) =>
    io.stderr(`predict train: ${msg} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  const trained = await withRunner(workers, (runner) =>
    trainAndCalibrate(seeds, cfg, runner, progress),
  );
  try {
    writeModelFile(out, trained.bytes);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EACCES" || code === "EISDIR" || code === "ENOTDIR") {
      io.stderr(`predict train: cannot write ${out}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
  const sha256 = createHash("sha256").update(trained.bytes).digest("hex");
  const th = Object.entries(trained.thresholds)
    .map(([role, c]) => `${role} ${c.threshold.toFixed(3)}`)
    .join(", ");
  io.stdout(
    `predict train: seeds ${seeds[0]}..${seeds[seeds.length - 1]} ` +
      `(fit ${trained.seeds.fit.length}, calibrate ${trained.seeds.calibrate.length}); ` +
      `${trained.trainingRows} rows (${trained.trainingPositives} positive); thresholds ${th}\n` +
      `wrote ${out}: ${trained.bytes.length} bytes, sha256 ${sha256}\n`,
  );
  return 0;
}

async function runScore(argv: readonly string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, ["--input", "--output"], []);
  const input = values.get("--input");
  const output = values.get("--output");
  if (input === undefined || output === undefined)
    throw new UsageError("score needs --input FILE and --output FILE");
  const tmp = `${output}.partial-${process.pid}`;
  const scorer = createCsvScorer();
  const inStream = createReadStream(input, { encoding: "utf8" });
  const out = createWriteStream(tmp, { encoding: "utf8" });
  const outError = once(out, "error").then(([e]) => {
    throw e;
  });
  outError.catch(() => {});
  const write = async (text: string) => {
    if (!out.write(text)) await Promise.race([once(out, "drain"), outError]);
  };
  let lineNo = 0;
  try {
    const lines = createInterface({ input: inStream, crlfDelay: Number.POSITIVE_INFINITY });
    await write(`${OUTPUT_HEADER}\n`);
    for await (const text of lines) {
      lineNo++;
      const row = scorer.line(text, lineNo);
      if (row !== undefined) await write(`${row}\n`);
    }
    scorer.finish(lineNo);
    out.end();
    await Promise.race([once(out, "finish"), outError]);
    await rename(tmp, output);
  } catch (e) {
    inStream.destroy();
    out.destroy();
    await rm(tmp, { force: true });
    if (e instanceof CsvInputError) {
      io.stderr(`predict score: ${input}:${e.line}: ${e.message.replace(/^line \d+: /, "")}\n`);
      return 2;
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EACCES" || code === "EISDIR") {
      io.stderr(`predict score: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
  io.stderr(
    `predict score: ${scorer.rows} rows scored (timestamps: ${scorer.format ?? "none"}) -> ${output}\n`,
  );
  return 0;
}

export async function main(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === "eval") return await runEval(rest, io);
    if (sub === "train") return await runTrain(rest, io);
    if (sub === "score") return await runScore(rest, io);
    if (sub === "help" || sub === "--help" || sub === "-h") {
      io.stdout(USAGE);
      return 0;
    }
    throw new UsageError(sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`predict: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
