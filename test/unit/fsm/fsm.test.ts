import assert from "node:assert/strict";
import { Code } from "../../../common/errors.ts";
import { createFsm, encodeCommand, type Fsm } from "../../../coordinator/src/fsm/fsm.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  HandoverReason,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import { LatencyMode } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

type Cmd = Parameters<typeof encodeCommand>[0];
let seq = 0;
function applyTo(fsm: Fsm, command: Cmd, requestId = `r${++seq}`) {
  const data = encodeCommand(command, {
    requestId,
    proposerNodeId: "c1",
    proposedUnixMs: 1_700_000_000_000 + seq,
    proposerTerm: 1,
  });
  return fsm.apply(fsm.appliedIndex() + 1, 1, data);
}

const spec = (id: string, name = "") => ({
  id,
  displayName: name,
  renditions: [
    {
      id: "360p",
      bandwidthBps: 600_000n,
      width: 640,
      height: 360,
      frameRate: 25,
      codecs: "avc1.42c01e",
    },
  ],
  shardDurationMs: 500,
  segmentPolicy: {
    segmentDurationTargetMs: 2000,
    segmentDurationMinMs: 500,
    segmentDurationMaxMs: 4000,
    partDurationMs: 500,
  },
  replicationFactor: 2,
  latencyMode: LatencyMode.LOW_LATENCY,
});

describe("coordinator fsm", () => {
  it("creates, updates with optimistic concurrency, and deletes streams", () => {
    const fsm = createFsm();
    assert.deepEqual(applyTo(fsm, { op: { case: "createStream", value: { spec: spec("s1") } } }), {
      ok: true,
    });
    const dup = applyTo(fsm, { op: { case: "createStream", value: { spec: spec("s1") } } });
    assert.equal(dup.ok, false);
    assert.equal(!dup.ok && dup.code, Code.AlreadyExists);
    assert.equal(fsm.stream("s1")?.version, 1n);

    const stale = applyTo(fsm, {
      op: { case: "updateStream", value: { spec: spec("s1", "x"), expectedVersion: 7n } },
    });
    assert.equal(!stale.ok && stale.code, Code.Aborted);
    assert.equal(fsm.stream("s1")?.spec?.displayName, "", "a failed update changes nothing");

    assert.ok(
      applyTo(fsm, {
        op: { case: "updateStream", value: { spec: spec("s1", "x"), expectedVersion: 1n } },
      }).ok,
    );
    assert.equal(fsm.stream("s1")?.version, 2n);
    assert.equal(fsm.stream("s1")?.spec?.displayName, "x");

    const missing = applyTo(fsm, { op: { case: "deleteStream", value: { streamId: "nope" } } });
    assert.equal(!missing.ok && missing.code, Code.NotFound);
    assert.ok(applyTo(fsm, { op: { case: "deleteStream", value: { streamId: "s1" } } }).ok);
    assert.equal(fsm.streams().length, 0);
  });

  it("deduplicates retried requests by request id and returns the first result", () => {
    const fsm = createFsm();
    const create = { op: { case: "createStream" as const, value: { spec: spec("s1") } } };
    assert.ok(applyTo(fsm, create, "same").ok);
    // A retry of the same request (e.g. after a leader change) must not fail as a duplicate.
    assert.ok(applyTo(fsm, create, "same").ok);
    assert.equal(fsm.streams().length, 1);
    const first = applyTo(fsm, { op: { case: "deleteStream", value: { streamId: "zz" } } }, "del");
    const again = applyTo(fsm, { op: { case: "deleteStream", value: { streamId: "zz" } } }, "del");
    assert.deepEqual(again, first);
  });

  it("tracks component status transitions and refuses unknown components", () => {
    const fsm = createFsm();
    assert.ok(
      applyTo(fsm, {
        op: {
          case: "registerComponent",
          value: { componentId: "pkg-1", role: ComponentRole.PACKAGER, host: "h1" },
        },
      }).ok,
    );
    assert.equal(fsm.component("pkg-1")?.status, ComponentStatus.HEALTHY);
    assert.ok(
      applyTo(fsm, {
        op: {
          case: "updateComponentStatus",
          value: { componentId: "pkg-1", status: ComponentStatus.DOWN, reason: "phi 12" },
        },
      }).ok,
    );
    assert.equal(fsm.component("pkg-1")?.status, ComponentStatus.DOWN);
    const unknown = applyTo(fsm, {
      op: {
        case: "updateComponentStatus",
        value: { componentId: "x", status: ComponentStatus.DOWN },
      },
    });
    assert.equal(!unknown.ok && unknown.code, Code.NotFound);
  });

  it("fences shard maps and handovers by stream epoch and enforces handover transitions", () => {
    const fsm = createFsm();
    applyTo(fsm, { op: { case: "createStream", value: { spec: spec("s1") } } });
    assert.equal(fsm.stream("s1")?.epoch, 1n);
    assert.ok(
      applyTo(fsm, {
        op: {
          case: "setShardMap",
          value: {
            streamId: "s1",
            expectedEpoch: 1n,
            ranges: [{ firstShard: 0n, encoderId: "e1" }],
          },
        },
      }).ok,
    );
    assert.equal(fsm.stream("s1")?.epoch, 2n);
    const stale = applyTo(fsm, {
      op: { case: "setShardMap", value: { streamId: "s1", expectedEpoch: 1n, ranges: [] } },
    });
    assert.equal(!stale.ok && stale.code, Code.Aborted);
    assert.equal(fsm.shardMap("s1")?.ranges.length, 1, "stale epoch changed nothing");

    const begin = (id: string) =>
      applyTo(fsm, {
        op: {
          case: "handoverBegun",
          value: {
            handoverId: id,
            streamId: "s1",
            fromComponentId: "p1",
            toComponentId: "p2",
            reason: HandoverReason.PREDICTED,
          },
        },
      });
    assert.ok(begin("h1").ok);
    assert.equal(!begin("h2").ok && (begin("h2") as { code: Code }).code, Code.FailedPrecondition);
    const skip = applyTo(fsm, {
      op: { case: "handoverAdvanced", value: { handoverId: "h1", state: HandoverState.NOTIFIED } },
    });
    assert.equal(!skip.ok && skip.code, Code.FailedPrecondition);
    assert.ok(
      applyTo(fsm, {
        op: {
          case: "handoverAdvanced",
          value: {
            handoverId: "h1",
            expectedState: HandoverState.BEGUN,
            state: HandoverState.STANDBY_READY,
          },
        },
      }).ok,
    );
    assert.equal(fsm.handover("h1")?.state, HandoverState.STANDBY_READY);
    assert.ok(
      applyTo(fsm, {
        op: {
          case: "handoverAdvanced",
          value: { handoverId: "h1", state: HandoverState.ABORTED, error: "deadline" },
        },
      }).ok,
    );
    assert.ok(begin("h3").ok, "a new handover may begin once the previous one is closed");
  });

  it("snapshot/restore reproduces the state and its hash; replicas agree", () => {
    const a = createFsm();
    const b = createFsm();
    for (const f of [a, b]) {
      seq = 100;
      applyTo(f, { op: { case: "createStream", value: { spec: spec("s1") } } }, "x1");
      applyTo(
        f,
        {
          op: {
            case: "registerComponent",
            value: { componentId: "e1", role: ComponentRole.ENCODER },
          },
        },
        "x2",
      );
    }
    assert.equal(a.hash(), b.hash());
    const c = createFsm();
    c.restore(a.snapshot());
    assert.equal(c.hash(), a.hash());
    assert.equal(c.appliedIndex(), a.appliedIndex());
    seq = 200;
    applyTo(a, { op: { case: "deleteStream", value: { streamId: "s1" } } }, "x3");
    assert.notEqual(a.hash(), c.hash());
  });

  it("treats empty entries as leader no-ops and undecodable bytes as a deterministic refusal", () => {
    const fsm = createFsm();
    assert.deepEqual(fsm.apply(1, 1, new Uint8Array(0)), { ok: true });
    const r = fsm.apply(2, 1, new Uint8Array([0xff, 0xff, 0xff]));
    assert.equal(!r.ok && r.code, Code.InvalidArgument);
    assert.throws(() => fsm.apply(2, 1, new Uint8Array(0)), /invariant/);
  });
});
