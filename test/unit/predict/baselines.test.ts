import assert from "node:assert/strict";
import {
  createPredictLinearDetector,
  createStaticThresholdDetector,
  staticRulesFire,
} from "../../../coordinator/src/predict/baselines.ts";

describe("predict/baselines", () => {
  it("static rules fire on any crossed threshold", () => {
    assert.equal(staticRulesFire([{ name: "cpu.load", value: 0.5 }]), false);
    assert.equal(staticRulesFire([{ name: "cpu.load", value: 0.99 }]), true);
    assert.equal(staticRulesFire([{ name: "cpu.temp_c", value: 91 }]), true);
    assert.equal(staticRulesFire([{ name: "encoder.speed", value: 0.85 }]), true);
    assert.equal(
      staticRulesFire([
        { name: "mem.used_bytes", value: 98 },
        { name: "mem.available_bytes", value: 2 },
      ]),
      true,
    );
    assert.equal(
      staticRulesFire([
        { name: "mem.used_bytes", value: 90 },
        { name: "mem.available_bytes", value: 10 },
      ]),
      false,
    );
  });

  it("the static detector is debounced like the model", () => {
    const d = createStaticThresholdDetector();
    const hot = [{ name: "cpu.load", value: 0.99 }];
    assert.equal(d.step(hot, 0), false);
    assert.equal(d.step(hot, 1000), true);
  });

  it("predict_linear alarms when the 2 min trend crosses the limit within H", () => {
    const d = createPredictLinearDetector({ horizonMs: 30_000 });
    let first = -1;
    // free bytes fall 100 per second from 10_000: zero at t = 100 s
    for (let s = 0; s < 100; s++) {
      if (d.step([{ name: "fs.free_bytes", value: 10_000 - 100 * s }], s * 1000) && first < 0)
        first = s;
    }
    // predicted value at t + 30 s goes below 0 from t = 71 s; debounce adds a tick
    assert.equal(first, 72);
  });

  it("predict_linear forgets its windows after a gap", () => {
    const d = createPredictLinearDetector({ horizonMs: 30_000 });
    for (let s = 0; s < 95; s++)
      d.step([{ name: "fs.free_bytes", value: 10_000 - 100 * s }], s * 1000);
    assert.equal(d.step([{ name: "fs.free_bytes", value: 9000 }], 200_000), false);
  });
});
