/**
 * Worker-thread entry for `predict eval`: runs per-seed work from eval-run.ts
 * on request. Messages: { id, kind: "train" | "calibrate" | "test", seed, cfg,
 * modelBytes? } in, { id, result } or { id, error } out.
 */
import { parentPort } from "node:worker_threads";
import { calibrationSeed, type EvalConfig, testSeed, trainingRows } from "./eval-run.ts";
import { deserializeModel, type PredictorModel } from "./model.ts";

export interface EvalTask {
  id: number;
  kind: "train" | "calibrate" | "test";
  seed: number;
  cfg: EvalConfig;
  modelBytes?: Uint8Array;
}

const port = parentPort;
if (port === null) throw new Error("eval-worker.ts must run in a worker thread");
let cachedBytes: Uint8Array | undefined;
let cachedModel: PredictorModel | undefined;

port.on("message", (task: EvalTask) => {
  try {
    let result: unknown;
    if (task.kind === "train") {
      result = trainingRows(task.seed, task.cfg);
    } else if (task.kind === "calibrate") {
      if (cachedBytes !== task.modelBytes || cachedModel === undefined) {
        cachedModel = deserializeModel(task.modelBytes!);
        cachedBytes = task.modelBytes;
      }
      result = calibrationSeed(task.seed, task.cfg, cachedModel);
    } else {
      result = testSeed(task.seed, task.cfg, task.modelBytes!);
    }
    port.postMessage({ id: task.id, result });
  } catch (e) {
    port.postMessage({
      id: task.id,
      error: e instanceof Error ? (e.stack ?? e.message) : String(e),
    });
  }
});
port.postMessage({ ready: true });
