import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import {
  FEATURE_INDEX as F,
  FEATURE_COUNT,
  missingFeatureVector,
} from "../../../coordinator/src/predict/extractor.ts";
import { gbtMargin, trainGbt } from "../../../coordinator/src/predict/gbt.ts";
import { createGbtTrainer } from "../../../coordinator/src/predict/gbt-worker.ts";
import { deserializeModel, serializeModel } from "../../../coordinator/src/predict/model.ts";
import { trainBaseModels } from "../../../coordinator/src/predict/train.ts";

function data(n: number, seed: number) {
  const rng = createRng(seed);
  const X = new Float32Array(n * FEATURE_COUNT);
  const y = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const x = missingFeatureVector();
    x[F.fsTte] = rng.next() * 10;
    X.set(x, r * FEATURE_COUNT);
    y[r] = x[F.fsTte]! < 3 ? 1 : 0;
  }
  return { X, y, rows: n, dim: FEATURE_COUNT };
}

describe("predict/gbt-worker (real worker thread)", function () {
  this.timeout(30_000);

  it("trains the same trees off the event loop as in-process", async () => {
    const trainer = createGbtTrainer();
    try {
      const d = data(1000, 1);
      const remote = await trainer.train(d, 7, { trees: 5 });
      const local = trainGbt(d, createRng(7), { trees: 5 });
      const x = missingFeatureVector();
      x[F.fsTte] = 1;
      assert.equal(gbtMargin(remote, x), gbtMargin(local, x));
    } finally {
      await trainer.close();
    }
  });

  it("retrains a model into committed bytes and bounds the queue", async () => {
    const trainer = createGbtTrainer({ pendingMax: 1 });
    try {
      const base = trainBaseModels(data(1000, 2), createRng(3), {
        horizonMs: 30_000,
        gbt: { trees: 5 },
      });
      const snap = { ...data(800, 4), negativeWeight: 1 };
      const job = trainer.retrain({
        modelBytes: serializeModel(base),
        snapshot: snap,
        seed: 9,
        trainedAtMs: 42,
        gbt: { trees: 5 },
      });
      await assert.rejects(
        trainer.retrain({
          modelBytes: serializeModel(base),
          snapshot: snap,
          seed: 9,
          trainedAtMs: 42,
        }),
        /busy: 1 jobs pending/,
      );
      const bytes = await job;
      assert.equal(deserializeModel(bytes).trainedAtMs, 42);
      await assert.rejects(
        trainer.retrain({ modelBytes: new Uint8Array(3), snapshot: snap, seed: 1, trainedAtMs: 0 }),
        /tree training failed: model bytes too short/,
      );
    } finally {
      await trainer.close();
    }
  });
});
