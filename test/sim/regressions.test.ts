import assert from "node:assert/strict";
import { regressionSeeds } from "./regressions.ts";
import { runSimulation } from "./sim.ts";

describe("simulation regression seeds", function () {
  this.timeout(60_000);
  for (const r of regressionSeeds) {
    it(`${r.name} (seed ${r.seed})`, () => {
      const result = runSimulation({ ...r.options, seed: r.seed });
      assert.equal(
        result.violation,
        undefined,
        `${result.violation?.kind}: ${result.violation?.message}\nbug: ${r.bug}`,
      );
    });
  }
});
