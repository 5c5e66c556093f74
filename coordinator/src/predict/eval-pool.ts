/**
 * Edge: a fixed pool of worker threads running eval-worker.ts. Tasks are
 * handed out one at a time to whichever worker is free; results are returned
 * in task order, so the outcome does not depend on scheduling.
 */
import type { Worker } from "node:worker_threads";
import type { SeedRunner } from "./eval-pipeline.ts";
import type { CalibrationSeed, EvalConfig, SeedResult } from "./eval-run.ts";
import type { EvalTask } from "./eval-worker.ts";
import type { LabelledRows } from "./train.ts";
import { spawnModuleWorker } from "./worker-thread.ts";

export interface EvalPool extends SeedRunner {
  close(): Promise<void>;
}

/** Workers are bounded; each runs one seed at a time. */
export const EVAL_WORKERS_MAX = 64;

export async function createEvalPool(workers: number): Promise<EvalPool> {
  if (!Number.isInteger(workers) || workers < 1 || workers > EVAL_WORKERS_MAX) {
    throw new RangeError(`workers must be an integer in 1..${EVAL_WORKERS_MAX}, got ${workers}`);
  }
  const entry = new URL("./eval-worker.ts", import.meta.url);
  const pool: Worker[] = [];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      const w = spawnModuleWorker(entry);
      pool.push(w);
      await new Promise<void>((resolve, reject) => {
        const onMsg = (m: { ready?: boolean }) => {
          if (m.ready) {
            w.off("message", onMsg);
            w.off("error", reject);
            resolve();
          }
        };
        w.on("message", onMsg);
        w.once("error", reject);
      });
    }),
  );

  async function run<T>(tasks: Omit<EvalTask, "id">[]): Promise<T[]> {
    const results = new Array<T>(tasks.length);
    let next = 0;
    await Promise.all(
      pool.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const give = () => {
              if (next >= tasks.length) {
                w.off("message", onMsg);
                w.off("error", onErr);
                resolve();
                return;
              }
              const id = next++;
              w.postMessage({ ...tasks[id]!, id });
            };
            const onMsg = (m: { id: number; result?: T; error?: string }) => {
              if (m.error !== undefined) {
                w.off("message", onMsg);
                w.off("error", onErr);
                reject(new Error(`eval worker failed on seed ${tasks[m.id]!.seed}: ${m.error}`));
                return;
              }
              results[m.id] = m.result as T;
              give();
            };
            const onErr = (e: Error) => {
              w.off("message", onMsg);
              reject(e);
            };
            w.on("message", onMsg);
            w.once("error", onErr);
            give();
          }),
      ),
    );
    return results;
  }

  return {
    trainingRows: (seeds, cfg) =>
      run<LabelledRows>(seeds.map((seed) => ({ kind: "train" as const, seed, cfg }))),
    calibration: (seeds, cfg: EvalConfig, modelBytes) =>
      run<CalibrationSeed>(
        seeds.map((seed) => ({ kind: "calibrate" as const, seed, cfg, modelBytes })),
      ),
    test: (seeds, cfg, modelBytes) =>
      run<SeedResult>(seeds.map((seed) => ({ kind: "test" as const, seed, cfg, modelBytes }))),
    async close() {
      await Promise.all(pool.map((w) => w.terminate()));
    },
  };
}
