/**
 * Worker-thread entry for gbt-worker.ts. Messages in:
 *   { id, op: "retrain", modelBytes, snapshot, seed, trainedAtMs, gbt? }
 *   { id, op: "train", data, seed, gbt? }
 * out: { id, bytes } / { id, model } or { id, error }.
 */
import { parentPort } from "node:worker_threads";
import { createRng } from "../../../common/rng.ts";
import { type GbtData, type GbtParams, trainGbt } from "./gbt.ts";
import { deserializeModel, serializeModel } from "./model.ts";
import type { TrainingSnapshot } from "./predictor.ts";
import { retrainModel } from "./train.ts";

export type GbtWorkerJob =
  | {
      op: "retrain";
      modelBytes: Uint8Array;
      snapshot: TrainingSnapshot;
      seed: number;
      trainedAtMs: number;
      gbt?: GbtParams;
    }
  | { op: "train"; data: GbtData; seed: number; gbt?: GbtParams };
export type GbtWorkerRequest = GbtWorkerJob & { id: number };

const port = parentPort;
if (port === null) throw new Error("gbt-worker-entry.ts must run in a worker thread");

port.on("message", (req: GbtWorkerRequest) => {
  try {
    if (req.op === "retrain") {
      const next = retrainModel(
        deserializeModel(req.modelBytes),
        req.snapshot,
        createRng(req.seed),
        {
          trainedAtMs: req.trainedAtMs,
          ...(req.gbt ? { gbt: req.gbt } : {}),
        },
      );
      const bytes = serializeModel(next);
      port.postMessage({ id: req.id, bytes }, [bytes.buffer as ArrayBuffer]);
    } else {
      port.postMessage({ id: req.id, model: trainGbt(req.data, createRng(req.seed), req.gbt) });
    }
  } catch (e) {
    port.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) });
  }
});
port.postMessage({ ready: true });
