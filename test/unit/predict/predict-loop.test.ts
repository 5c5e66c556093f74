/**
 * The leader's predict loop (coordinator/src/act/predict-loop.ts) over a
 * single-process cluster (real FSM, proposals applied at once): reports in,
 * alarms out, and the model replicated through SetModelParameters.
 */
import assert from "node:assert/strict";
import { createManualClock } from "../../../common/clock.ts";
import { silentLogger } from "../../../common/log.ts";
import {
  createPredictLoop,
  createReportAdapter,
  DEFAULT_MODEL_ID,
  MODEL_PARAMETERS_FORMAT,
  type PredictLoop,
} from "../../../coordinator/src/act/predict-loop.ts";
import { encodeCommand } from "../../../coordinator/src/fsm/fsm.ts";
import type { IngestedReport } from "../../../coordinator/src/ingest/index.ts";
import {
  createPredictor,
  createStabilityOnlyModel,
  DEFAULT_MODEL_FILE,
  type Prediction,
  type PredictorModel,
  readModelFile,
  serializeModel,
} from "../../../coordinator/src/predict/index.ts";
import { ComponentRole } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { createFakeCluster, type FakeCluster } from "../ingest/fake-cluster.ts";
import { createLiveStream } from "./live-stream.ts";

const START_MS = 1_800_000_000_000;
const MIB = 1024 ** 2;

function harness(model: PredictorModel, opts: { leader?: boolean; nodeId?: string } = {}) {
  const clock = createManualClock(START_MS);
  const cluster: FakeCluster = createFakeCluster(clock, opts.nodeId ?? "c1");
  if (opts.leader === false) cluster.setLeadership({ isLeader: false, leaderId: "c9" });
  const predictor = createPredictor({ model });
  const listeners = new Set<(r: IngestedReport) => void>();
  const alarms: { p: Prediction; atMs: number }[] = [];
  const warnings: string[] = [];
  const log = {
    ...silentLogger,
    warn: (msg: string) => warnings.push(msg),
    child: () => log,
  };
  const loop: PredictLoop = createPredictLoop({
    cluster,
    predictor,
    onReport: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    onAlarm: (p) => alarms.push({ p, atMs: clock.nowMs() }),
    log,
    intervalMs: 1000,
    publishIntervalMs: 0,
  });
  const report = (r: IngestedReport) => {
    for (const l of listeners) l(r);
  };
  return { clock, cluster, predictor, loop, report, alarms, warnings };
}

function commitModel(
  cluster: FakeCluster,
  index: number,
  version: number,
  parameters: Uint8Array,
  format = MODEL_PARAMETERS_FORMAT,
) {
  const data = encodeCommand(
    {
      op: {
        case: "setModelParameters",
        value: { modelId: DEFAULT_MODEL_ID, version: BigInt(version), format, parameters },
      },
    },
    { requestId: `m-${index}`, proposerNodeId: "c9", proposedUnixMs: START_MS, proposerTerm: 4 },
  );
  return cluster.fsm.apply(index, 4, data);
}

describe("act/predict-loop", function () {
  this.timeout(30_000);
  const loops: PredictLoop[] = [];
  afterEach(() => {
    for (const l of loops.splice(0)) l.stop();
  });

  it("the report adapter gives heartbeat.interval_ms as the interval between full reports", () => {
    const a = createReportAdapter();
    const hb = (xs: readonly { name: string; value: number }[]) =>
      xs.find((x) => x.name === "heartbeat.interval_ms")?.value;
    const phase = [
      { name: "cpu.load", value: 0.5 },
      { name: "heartbeat.interval_ms", value: 17 },
    ];
    assert.equal(hb(a.adapt("c", phase, 1000, true)), undefined, "none on the first report");
    assert.equal(a.adapt("c", phase, 1000, true).length, 1);
    assert.equal(hb(a.adapt("c", phase, 2010, true)), 1010);
    assert.equal(hb(a.adapt("c", phase, 5000, false)), undefined, "replays carry no interval");
    assert.equal(hb(a.adapt("c", phase, 6000, true)), undefined, "and restart the count");
    assert.equal(hb(a.adapt("c", phase, 7200, true)), 1200);
    a.forget("c");
    assert.equal(hb(a.adapt("c", phase, 8200, true)), undefined);
  });

  it("alarms on the demo's packager fault through the loop, on the report that shows it", () => {
    const h = harness(readModelFile(DEFAULT_MODEL_FILE));
    loops.push(h.loop);
    h.cluster.register("pkg-1", ComponentRole.PACKAGER);
    h.cluster.register("enc-1", ComponentRole.ENCODER);
    const faultStartMs = START_MS + 30_000;
    const pkg = createLiveStream({
      seed: 3,
      role: "packager",
      startMs: START_MS,
      fault: {
        startMs: faultStartMs,
        rampMs: 20_000,
        ingestDelayMaxMs: 900,
        shape: "linear",
        leakBytesMax: 256 * MIB,
      },
    });
    const enc = createLiveStream({ seed: 4, role: "encoder", startMs: START_MS });
    let seq = 0;
    for (let t = START_MS; t < faultStartMs + 20_000; t += 1000) {
      for (const [id, role, s] of [
        ["pkg-1", ComponentRole.PACKAGER, pkg],
        ["enc-1", ComponentRole.ENCODER, enc],
      ] as const) {
        const r = s.report(t);
        h.clock.advance(Math.max(0, r.arrivalMs - h.clock.nowMs()));
        // Heartbeats between full reports are skipped by the loop.
        for (const heartbeatOnly of [true, false]) {
          h.report({
            componentId: id,
            role,
            tMs: t,
            sequence: ++seq,
            replayed: false,
            heartbeatOnly,
            samples: heartbeatOnly
              ? []
              : r.samples.map((x) => ({ ...x, unit: x.unit ?? "", labels: {} })),
          });
        }
      }
    }
    assert.equal(h.alarms.length, 1, `alarms: ${h.alarms.map((a) => a.p.componentId)}`);
    const a = h.alarms[0]!;
    assert.equal(a.p.componentId, "pkg-1");
    const afterMs = a.atMs - faultStartMs;
    assert.ok(afterMs > 0 && afterMs <= 8100, `alarm ${afterMs} ms after the fault started`);
    assert.equal(h.loop.latest().get("enc-1")?.alarm, false);
    assert.ok(
      a.p.topFeatures.some(
        (f) => f.name.startsWith("packager.ingest_latency_ms") || f.name === "any:min_tte_ln_s",
      ),
      a.p.topFeatures.map((f) => f.name).join(", "),
    );
  });

  it("the leader commits its model as SetModelParameters and does not repeat an unchanged one", async () => {
    const h = harness(readModelFile(DEFAULT_MODEL_FILE));
    loops.push(h.loop);
    assert.equal(h.loop.loadedModelVersion(), 0);
    await h.loop.publishModel();
    assert.equal(h.cluster.proposals.length, 1);
    const op = h.cluster.proposals[0]!.op!;
    assert.equal(op.case, "setModelParameters");
    const m = h.cluster.fsm.model(DEFAULT_MODEL_ID)!;
    assert.equal(m.version, 1n);
    assert.equal(m.format, MODEL_PARAMETERS_FORMAT);
    assert.ok(m.parameters.length > 1000 && m.parameters.length < 1024 * 1024);
    assert.equal(h.loop.loadedModelVersion(), 1, "its own commit counts as loaded");
    await h.loop.publishModel();
    assert.equal(h.cluster.proposals.length, 1, "nothing learned since: no new version");
    // A follower never proposes.
    h.cluster.setLeadership({ isLeader: false });
    h.predictor.loadModel(createStabilityOnlyModel());
    await h.loop.publishModel();
    assert.equal(h.cluster.proposals.length, 1);
  });

  it("every node loads a newer committed model and ignores one it cannot use", () => {
    const h = harness(readModelFile(DEFAULT_MODEL_FILE), { leader: false, nodeId: "c2" });
    loops.push(h.loop);
    const next: PredictorModel = {
      ...createStabilityOnlyModel(),
      thresholds: { default: 0.42, byRole: { packager: 0.37 } },
    };
    assert.notEqual(h.predictor.thresholdFor("packager"), 0.37);
    assert.equal(commitModel(h.cluster, 1, 5, serializeModel(next)).ok, true);
    assert.equal(h.loop.loadedModelVersion(), 5);
    assert.ok(Math.abs(h.predictor.thresholdFor("packager") - 0.37) < 1e-9);
    // Corrupt bytes and an unknown format are logged and skipped; the model stays.
    assert.equal(commitModel(h.cluster, 2, 6, Uint8Array.of(1, 2, 3)).ok, true);
    assert.equal(commitModel(h.cluster, 3, 7, serializeModel(next), "json").ok, true);
    assert.equal(h.loop.loadedModelVersion(), 7);
    assert.ok(Math.abs(h.predictor.thresholdFor("packager") - 0.37) < 1e-9);
    assert.deepEqual(h.warnings, [
      "committed model ignored: this build cannot use it",
      "committed model ignored: unknown format",
    ]);
  });

  it("a node that starts with a committed model in its state loads it at once", () => {
    const clock = createManualClock(START_MS);
    const cluster = createFakeCluster(clock, "c3");
    const next = {
      ...createStabilityOnlyModel(),
      thresholds: { default: 0.5, byRole: { edge: 0.33 } },
    };
    commitModel(cluster, 1, 2, serializeModel(next));
    const predictor = createPredictor({ model: readModelFile(DEFAULT_MODEL_FILE) });
    const loop = createPredictLoop({
      cluster,
      predictor,
      onReport: () => () => {},
      onAlarm: () => {},
      log: silentLogger,
      publishIntervalMs: 0,
    });
    loops.push(loop);
    assert.equal(loop.loadedModelVersion(), 2);
    assert.ok(Math.abs(predictor.thresholdFor("edge") - 0.33) < 1e-9);
  });
});
