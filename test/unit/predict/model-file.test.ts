import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../../common/config.ts";
import {
  createInProcessRunner,
  runEvaluation,
} from "../../../coordinator/src/predict/eval-pipeline.ts";
import { DEFAULT_EVAL_CONFIG, type EvalConfig } from "../../../coordinator/src/predict/eval-run.ts";
import {
  createPredictor,
  createStabilityOnlyModel,
  DEFAULT_MODEL_FILE,
  deserializeModel,
  FEATURE_SET_VERSION,
  ModelFileError,
  readModelFile,
  serializeModel,
  writeModelFile,
} from "../../../coordinator/src/predict/index.ts";
import { main } from "../../../coordinator/src/predict/main.ts";
import { loadCoordinatorConfig } from "../../../coordinator/src/runtime/config.ts";

describe("predict/model-file: the shipped model and model files", function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "us-model-file-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("ships a small default model for this build's features, thresholds for every role", () => {
    const bytes = readFileSync(DEFAULT_MODEL_FILE);
    assert.ok(bytes.length < 2 * 1024 * 1024, `${bytes.length} bytes`);
    const m = readModelFile(DEFAULT_MODEL_FILE);
    assert.equal(m.featureSetVersion, FEATURE_SET_VERSION);
    assert.equal(m.horizonMs, 30_000);
    assert.ok(m.gbt.trees.length > 0, "trained trees");
    for (const role of ["encoder", "packager", "edge"]) {
      const th = m.thresholds.byRole[role]!;
      assert.ok(th > 0.02 && th < 0.995, `${role} threshold ${th}`);
    }
    // Unchanged through a serialisation round trip (what Raft replicates).
    assert.deepEqual(serializeModel(deserializeModel(bytes)), new Uint8Array(bytes));
    const p = createPredictor({ model: m });
    p.observe("e1", "encoder", [{ name: "cpu.load", value: 0.3 }], 0);
    assert.equal(p.predict("e1", 0).alarm, false);
  });

  it("refuses missing, non-file, corrupt and other-feature-set models, saying which", () => {
    assert.throws(() => readModelFile(join(dir, "nope.uspm")), {
      name: "ModelFileError",
      message: /no such file/,
    });
    assert.throws(() => readModelFile(dir), /is a directory/);
    const bytes = Uint8Array.from(readFileSync(DEFAULT_MODEL_FILE));
    bytes[200] = bytes[200]! ^ 0xff;
    writeFileSync(join(dir, "corrupt.uspm"), bytes);
    assert.throws(() => readModelFile(join(dir, "corrupt.uspm")), /not a usable model.*corrupt/);
    writeFileSync(join(dir, "text.uspm"), "hello, not a model");
    assert.throws(() => readModelFile(join(dir, "text.uspm")), /bad magic/);
    const old = { ...createStabilityOnlyModel(), featureSetVersion: FEATURE_SET_VERSION - 1 };
    writeFileSync(join(dir, "old.uspm"), serializeModel(old));
    assert.throws(
      () => readModelFile(join(dir, "old.uspm")),
      (e: unknown) => {
        assert.ok(e instanceof ModelFileError);
        assert.match(e.message, /does not fit this build: model uses feature set v/);
        return true;
      },
    );
  });

  it("writes model files whole (no partial file left behind)", () => {
    const path = join(dir, "m.uspm");
    const bytes = serializeModel(createStabilityOnlyModel());
    writeModelFile(path, bytes);
    writeModelFile(path, bytes);
    assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
    assert.deepEqual(readdirSync(dir), ["m.uspm"]);
    assert.throws(() => writeModelFile(join(dir, "missing", "m.uspm"), bytes), /ENOENT/);
  });

  describe("coordinator config predict.modelFile", () => {
    const base = (extra: string) => `nodeId: c1
dataDir: /tmp/us-never-created
peerListen: 127.0.0.1:0
apiListen: 127.0.0.1:0
bootstrap: [{ id: c1, peerAddress: "127.0.0.1:7101", apiAddress: "127.0.0.1:7001" }]
${extra}`;
    const write = (text: string) => {
      const f = join(dir, "c.yaml");
      writeFileSync(f, text);
      return f;
    };

    it("defaults to the shipped model and accepts a trained file", () => {
      const cfg = loadCoordinatorConfig(write(base("")));
      assert.equal(cfg.predict.modelFile, undefined);
      const model = join(dir, "m.uspm");
      writeFileSync(model, readFileSync(DEFAULT_MODEL_FILE));
      const cfg2 = loadCoordinatorConfig(write(base(`predict: { modelFile: ${model} }`)));
      assert.equal(cfg2.predict.modelFile, model);
    });

    it("names predict.modelFile when the file is missing or bad, predict.horizonMs on a mismatch", () => {
      const missing = join(dir, "missing.uspm");
      assert.throws(
        () => loadCoordinatorConfig(write(base(`predict: { modelFile: ${missing} }`))),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.equal(e.field, "predict.modelFile");
          assert.match(
            e.message,
            /c\.yaml: predict\.modelFile: cannot read model file .*no such file/,
          );
          return true;
        },
      );
      writeFileSync(join(dir, "bad.uspm"), "x".repeat(64));
      assert.throws(
        () =>
          loadCoordinatorConfig(write(base(`predict: { modelFile: ${join(dir, "bad.uspm")} }`))),
        { field: "predict.modelFile" },
      );
      assert.throws(() => loadCoordinatorConfig(write(base("predict: { horizonMs: 60000 }"))), {
        field: "predict.horizonMs",
        message: /predicts failures within 30000 ms/,
      });
      // Prediction off: the model is not needed.
      const off = loadCoordinatorConfig(
        write(base(`predict: { enabled: false, modelFile: ${missing} }`)),
      );
      assert.equal(off.predict.enabled, false);
    });

    it("`understudy coordinator` exits 2 naming predict.modelFile", () => {
      const f = write(base(`predict: { modelFile: ${join(dir, "missing.uspm")} }`));
      const r = spawnSync(
        process.execPath,
        ["common/bin/understudy.mjs", "coordinator", "--config", f],
        { encoding: "utf8", timeout: 30_000 },
      );
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /predict\.modelFile: cannot read model file/);
    });
  });

  describe("`understudy predict train`", () => {
    const small = ["--seeds", "21..23", "--hours", "1", "--components", "3", "--workers", "1"];
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return {
        out,
        err,
        io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) },
      };
    };

    it("writes a usable model, byte for byte the same on a rerun", async () => {
      const a = join(dir, "a.uspm");
      const b = join(dir, "b.uspm");
      const r1 = io();
      assert.equal(await main(["train", ...small, "--out", a], r1.io), 0, r1.err.join(""));
      assert.match(r1.out.join(""), /wrote .*a\.uspm: \d+ bytes, sha256 [0-9a-f]{64}/);
      const r2 = io();
      assert.equal(await main(["train", ...small, "--out", b], r2.io), 0);
      assert.deepEqual(readFileSync(a), readFileSync(b));
      const m = readModelFile(a);
      assert.ok(m.gbt.trees.length > 0);
      assert.ok(statSync(a).size < 2 * 1024 * 1024);
      // `predict eval` on the same range tests exactly this model.
      const cfg: EvalConfig = {
        ...DEFAULT_EVAL_CONFIG,
        trace: { ...DEFAULT_EVAL_CONFIG.trace, components: 3, durationMs: 3_600_000 },
      };
      const report = await runEvaluation([21, 22, 23], cfg, createInProcessRunner());
      assert.deepEqual(report.model, new Uint8Array(readFileSync(a)));
    });

    it("exits 2 on bad usage or an unwritable output", async () => {
      const r1 = io();
      assert.equal(await main(["train", ...small], r1.io), 2);
      assert.match(r1.err.join(""), /train needs --out FILE/);
      const r2 = io();
      assert.equal(await main(["train", "--seeds", "9..1", "--out", "x"], r2.io), 2);
      const r3 = io();
      assert.equal(
        await main(["train", ...small, "--out", join(dir, "no", "such", "dir.uspm")], r3.io),
        2,
      );
      assert.match(r3.err.join(""), /cannot write/);
    });
  });
});
