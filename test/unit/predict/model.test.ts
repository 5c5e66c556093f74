import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import { FEATURE_COUNT } from "../../../coordinator/src/predict/extractor.ts";
import { trainGbt } from "../../../coordinator/src/predict/gbt.ts";
import {
  crc32,
  deserializeModel,
  MODEL_FORMAT_VERSION,
  ModelFormatError,
  type PredictorModel,
  serializeModel,
} from "../../../coordinator/src/predict/model.ts";
import { createStabilityOnlyModel } from "../../../coordinator/src/predict/train.ts";

function sampleModel(): PredictorModel {
  const rng = createRng(4);
  const rows = 300;
  const X = new Float32Array(rows * FEATURE_COUNT);
  const y = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < FEATURE_COUNT; j++) X[r * FEATURE_COUNT + j] = rng.next();
    y[r] = X[r * FEATURE_COUNT + 3]! > 0.5 ? 1 : 0;
  }
  const base = createStabilityOnlyModel(30_000);
  return {
    ...base,
    trainedAtMs: 1_700_000_000_000,
    logistic: {
      weights: Float64Array.from({ length: FEATURE_COUNT }, (_, i) => i / 10 - 1),
      bias: -0.5,
    },
    gbt: trainGbt({ X, y, rows, dim: FEATURE_COUNT }, rng, { trees: 4 }),
    stack: { bias: -3, stability: 1.5, logistic: 0.7, trees: 0.9 },
    thresholds: { default: 0.4, byRole: { packager: 0.2, edge: 0.3, encoder: 0.25 } },
  };
}

describe("predict/model serialisation", () => {
  it("round-trips every field", () => {
    const m = sampleModel();
    const back = deserializeModel(serializeModel(m));
    assert.deepEqual(back.featureNames, m.featureNames);
    assert.deepEqual(back.logistic, m.logistic);
    assert.deepEqual(back.standardizer, m.standardizer);
    assert.deepEqual(back.gbt, m.gbt);
    assert.deepEqual(back.stack, m.stack);
    assert.deepEqual(back.thresholds, m.thresholds);
    assert.equal(back.horizonMs, 30_000);
    assert.equal(back.trainedAtMs, 1_700_000_000_000);
  });

  it("is deterministic: equal models give equal bytes, whatever the key order of thresholds", () => {
    const m = sampleModel();
    const reordered = {
      ...m,
      thresholds: { default: 0.4, byRole: { encoder: 0.25, packager: 0.2, edge: 0.3 } },
    };
    assert.deepEqual(serializeModel(m), serializeModel(reordered));
    assert.deepEqual(serializeModel(deserializeModel(serializeModel(m))), serializeModel(m));
  });

  it("starts with the magic and format version", () => {
    const b = serializeModel(sampleModel());
    assert.equal(new TextDecoder().decode(b.subarray(0, 4)), "USPM");
    assert.equal(new DataView(b.buffer, b.byteOffset).getUint16(4, true), MODEL_FORMAT_VERSION);
  });

  it("rejects bad bytes with a clear ModelFormatError", () => {
    const good = serializeModel(sampleModel());
    const flipped = good.slice();
    flipped[100]! ^= 0xff;
    assert.throws(
      () => deserializeModel(flipped),
      (e: unknown) => e instanceof ModelFormatError && /CRC-32/.test(String(e)),
    );
    const future = good.slice();
    new DataView(future.buffer).setUint16(4, 99, true);
    assert.throws(() => deserializeModel(future), /format version 99 is not supported/);
    assert.throws(() => deserializeModel(good.slice(0, 8)), /too short/);
    assert.throws(() => deserializeModel(new Uint8Array(64)), /bad magic/);
    // truncated body with a recomputed CRC: ends early
    const body = good.subarray(0, 200);
    const truncated = new Uint8Array(body.length + 4);
    truncated.set(body);
    new DataView(truncated.buffer).setUint32(body.length, crc32(body), true);
    assert.throws(() => deserializeModel(truncated), /end early/);
  });

  it("rejects trees whose children would loop", () => {
    const m = sampleModel();
    const t = m.gbt.trees[0]!;
    const split = [...t.feature].findIndex((f) => f >= 0);
    assert.ok(split >= 0);
    t.left[split] = split; // self loop
    assert.throws(() => deserializeModel(serializeModel(m)), /children out of range/);
  });

  it("crc32 matches the standard check value", () => {
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  });
});
