/**
 * Edge: tree training off the event loop. One worker thread, started on first
 * use, runs `retrainModel` / `trainGbt` (pure, see train.ts and gbt.ts) and
 * returns the result; the caller (the coordinator leader) commits the new
 * model bytes through Raft and every replica loads them with
 * `predictor.loadModel(deserializeModel(bytes))`.
 *
 * At most `pendingMax` jobs may wait; beyond that `retrain` rejects at once
 * rather than queueing unbounded work. A worker that dies fails its jobs and
 * is replaced on the next call.
 */
import type { Worker } from "node:worker_threads";
import type { GbtData, GbtModel, GbtParams } from "./gbt.ts";
import type { GbtWorkerJob } from "./gbt-worker-entry.ts";
import type { TrainingSnapshot } from "./predictor.ts";
import { spawnModuleWorker } from "./worker-thread.ts";

export interface RetrainRequest {
  modelBytes: Uint8Array;
  snapshot: TrainingSnapshot;
  /** Seed for row subsampling; pass something the leader commits (e.g. the log index). */
  seed: number;
  trainedAtMs: number;
  gbt?: GbtParams;
}

export interface GbtTrainer {
  /** Retrains trees + stack from labelled examples; resolves to serialised model bytes. */
  retrain(req: RetrainRequest): Promise<Uint8Array>;
  train(data: GbtData, seed: number, gbt?: GbtParams): Promise<GbtModel>;
  close(): Promise<void>;
}

export interface GbtTrainerOptions {
  pendingMax?: number;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export function createGbtTrainer(opts: GbtTrainerOptions = {}): GbtTrainer {
  const pendingMax = opts.pendingMax ?? 2;
  let worker: Worker | undefined;
  let ready: Promise<Worker> | undefined;
  let nextId = 1;
  const pending = new Map<number, Pending>();

  function failAll(e: Error): void {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  }

  function start(): Promise<Worker> {
    if (ready !== undefined) return ready;
    const w = spawnModuleWorker(new URL("./gbt-worker-entry.ts", import.meta.url));
    worker = w;
    ready = new Promise<Worker>((resolve, reject) => {
      w.on(
        "message",
        (m: {
          ready?: boolean;
          id?: number;
          error?: string;
          bytes?: Uint8Array;
          model?: GbtModel;
        }) => {
          if (m.ready) {
            resolve(w);
            return;
          }
          const p = pending.get(m.id!);
          if (p === undefined) return;
          pending.delete(m.id!);
          if (pending.size === 0) w.unref();
          if (m.error !== undefined) p.reject(new Error(`tree training failed: ${m.error}`));
          else p.resolve(m.bytes ?? m.model);
        },
      );
      const died = (e: Error) => {
        reject(e);
        failAll(e);
        worker = undefined;
        ready = undefined;
      };
      w.on("error", died);
      w.on("exit", (code) => {
        if (worker === w) died(new Error(`tree training worker exited with code ${code}`));
      });
    });
    return ready;
  }

  async function call<T>(req: GbtWorkerJob): Promise<T> {
    if (pending.size >= pendingMax) {
      throw new Error(
        `tree training busy: ${pending.size} jobs pending (pendingMax ${pendingMax})`,
      );
    }
    const id = nextId++;
    const result = new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    try {
      const w = await start();
      w.ref();
      w.postMessage({ ...req, id });
    } catch (e) {
      pending.delete(id);
      throw e;
    }
    return result;
  }

  return {
    retrain: (req) =>
      call<Uint8Array>({
        op: "retrain",
        modelBytes: req.modelBytes,
        snapshot: req.snapshot,
        seed: req.seed,
        trainedAtMs: req.trainedAtMs,
        ...(req.gbt ? { gbt: req.gbt } : {}),
      }),
    train: (data, seed, gbt) =>
      call<GbtModel>({ op: "train", data, seed, ...(gbt ? { gbt } : {}) }),
    async close() {
      const w = worker;
      worker = undefined;
      ready = undefined;
      failAll(new Error("tree trainer closed"));
      if (w !== undefined) await w.terminate();
    },
  };
}
