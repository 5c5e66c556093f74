import assert from "node:assert/strict";
import {
  createInProcessRunner,
  formatReport,
  runEvaluation,
} from "../../../coordinator/src/predict/eval-pipeline.ts";
import { createEvalPool } from "../../../coordinator/src/predict/eval-pool.ts";
import {
  DEFAULT_EVAL_CONFIG,
  type EvalConfig,
  seedRole,
} from "../../../coordinator/src/predict/eval-run.ts";
import { main, parseSeedRange } from "../../../coordinator/src/predict/main.ts";

const small: EvalConfig = {
  ...DEFAULT_EVAL_CONFIG,
  trace: { components: 3, durationMs: 3_600_000 },
  gbt: { ...DEFAULT_EVAL_CONFIG.gbt, trees: 20 },
};

describe("predict eval (end to end, small)", function () {
  this.timeout(120_000);

  it("splits seeds into fit / calibrate / held-out test", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(seedRole), [
      "fit",
      "calibrate",
      "test",
      "test",
      "test",
      "fit",
      "calibrate",
    ]);
    assert.deepEqual(parseSeedRange("5..9"), [5, 6, 7, 8, 9]);
    assert.throws(() => parseSeedRange("9..5"), /before the start/);
    assert.throws(() => parseSeedRange("1..2"), /at least 3/);
    assert.throws(() => parseSeedRange("abc"), /A\.\.B/);
  });

  it("gives the same report in-process and on two worker threads", async () => {
    const seeds = [11, 12, 13, 14];
    const local = await runEvaluation(seeds, small, createInProcessRunner());
    const pool = await createEvalPool(2);
    let pooled: Awaited<ReturnType<typeof runEvaluation>>;
    try {
      pooled = await runEvaluation(seeds, small, pool);
    } finally {
      await pool.close();
    }
    assert.deepEqual(pooled.rows, local.rows);
    assert.deepEqual(pooled.model, local.model);
    assert.deepEqual(local.seeds, { fit: [11], calibrate: [12], test: [13, 14] });
    const modes = new Set(local.rows.map((r) => r.mode));
    assert.ok(modes.has("gradual (all)"));
    for (const r of local.rows)
      assert.ok(["model", "static-threshold", "predict-linear"].includes(r.detector));
    const text = formatReport(local);
    assert.match(text, /precision >= 0\.9/);
    assert.match(text, /FA\/comp-day/);
  });

  it("`predict eval --json` prints the report; bad flags exit 2", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
    const code = await main(
      [
        "eval",
        "--seeds",
        "21..23",
        "--hours",
        "1",
        "--components",
        "3",
        "--workers",
        "1",
        "--json",
      ],
      io,
    );
    assert.equal(code, 0);
    const rep = JSON.parse(out.join(""));
    assert.deepEqual(rep.seeds, { fit: [21], calibrate: [22], test: [23] });
    assert.equal(rep.config.hours, 1);
    assert.ok(Array.isArray(rep.rows) && rep.rows.length > 0);
    assert.equal(rep.model, undefined, "model bytes are not dumped into the JSON");
    assert.equal(await main(["eval", "--seeds", "1..2"], io), 2);
    assert.equal(await main(["eval", "--bogus"], io), 2);
    assert.match(err.join(""), /unknown argument "--bogus"/);
  });
});
