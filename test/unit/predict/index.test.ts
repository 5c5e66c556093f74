import assert from "node:assert/strict";
import * as predict from "../../../coordinator/src/predict/index.ts";

describe("predict/index (public surface)", () => {
  it("exports the predictor, model bytes, demand forecaster, windows and trainer", () => {
    const fns = {
      createPredictor: predict.createPredictor,
      serializeModel: predict.serializeModel,
      deserializeModel: predict.deserializeModel,
      createStabilityOnlyModel: predict.createStabilityOnlyModel,
      retrainModel: predict.retrainModel,
      createDemandForecaster: predict.createDemandForecaster,
      createMetricWindow: predict.createMetricWindow,
      createGbtTrainer: predict.createGbtTrainer,
    };
    for (const [name, fn] of Object.entries(fns)) assert.equal(typeof fn, "function", name);
    assert.equal(predict.MODEL_FORMAT_VERSION, 1);
    assert.ok(predict.FEATURE_NAMES.length > 40);
  });

  it("a fresh cluster can predict with the stability-only model and commit it as bytes", () => {
    const model = predict.deserializeModel(
      predict.serializeModel(predict.createStabilityOnlyModel()),
    );
    const p = predict.createPredictor({ model });
    p.observe("enc-1", "encoder", [{ name: "cpu.load", value: 0.4, unit: "ratio" }], 0);
    const r = p.predict("enc-1", 0);
    assert.equal(r.horizonMs, 30_000);
    assert.ok(r.probability >= 0 && r.probability <= 1);
    assert.equal(r.alarm, false);
  });
});
