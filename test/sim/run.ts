/**
 * Runs ranges of seeds, optionally spread over worker threads, and folds the
 * results into one summary. Each seed's run is independent and deterministic,
 * so splitting the range changes nothing but the wall time.
 */

import { fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import {
  runSimulation,
  type SimCounters,
  type SimOptions,
  type SimResult,
  zeroCounters,
} from "./sim.ts";

export type RunOptions = Omit<SimOptions, "seed" | "trace">;

export interface SeedFailure {
  readonly seed: number;
  readonly kind: string;
  readonly tick: number;
  readonly message: string;
}

export interface Summary {
  readonly from: number;
  readonly to: number;
  readonly seeds: number;
  readonly failures: readonly SeedFailure[];
  readonly seconds: number;
  readonly seedsPerSecond: number;
  readonly totals: SimCounters;
  readonly recoveryTicks: { readonly median: number; readonly p99: number; readonly max: number };
}

export function runRange(from: number, to: number, opts: RunOptions): SimResult[] {
  const results: SimResult[] = [];
  for (let seed = from; seed <= to; seed++) results.push(runSimulation({ ...opts, seed }));
  return results;
}

/** Runs seeds from..to on `workers` child processes (1 = in this process). */
export async function runSeeds(
  from: number,
  to: number,
  opts: RunOptions,
  workers = Math.min(2, availableParallelism()),
): Promise<Summary> {
  const started = performance.now();
  const count = to - from + 1;
  let results: SimResult[];
  if (workers <= 1 || count < 8) {
    results = runRange(from, to, opts);
  } else {
    // Interleave seeds over the workers so slow seeds spread evenly.
    const parts = Array.from({ length: workers }, (_, w) =>
      runInWorker(from + w, to, workers, opts),
    );
    results = (await Promise.all(parts)).flat().sort((a, b) => a.seed - b.seed);
  }
  const seconds = (performance.now() - started) / 1000;
  return summarize(from, to, results, seconds);
}

function runInWorker(
  first: number,
  last: number,
  step: number,
  opts: RunOptions,
): Promise<SimResult[]> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL("./worker.ts", import.meta.url)), [], {
      execArgv: ["--import", "tsx"],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let results: SimResult[] | undefined;
    child.once("message", (m) => {
      results = m as SimResult[];
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0 && results) resolve(results);
      else reject(new Error(`sim worker for seeds ${first}..${last} exited with code ${code}`));
    });
    child.send({ first, last, step, opts });
  });
}

function summarize(from: number, to: number, results: SimResult[], seconds: number): Summary {
  const totals = zeroCounters();
  const recovery: number[] = [];
  const failures: SeedFailure[] = [];
  for (const r of results) {
    for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += r.stats[key];
    if (r.stats.recoveryTicks >= 0) recovery.push(r.stats.recoveryTicks);
    if (r.violation) failures.push({ seed: r.seed, ...r.violation });
  }
  recovery.sort((a, b) => a - b);
  const at = (q: number) =>
    recovery[Math.min(recovery.length - 1, Math.floor(q * recovery.length))] ?? 0;
  return {
    from,
    to,
    seeds: results.length,
    failures,
    seconds,
    seedsPerSecond: results.length / seconds,
    totals,
    recoveryTicks: { median: at(0.5), p99: at(0.99), max: recovery.at(-1) ?? 0 },
  };
}
