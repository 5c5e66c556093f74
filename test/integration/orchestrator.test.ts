/**
 * The handover orchestrator on a real single-node coordinator (real Raft
 * commits): the state machine's order, compare-and-set, abort with rollback
 * on a failing step, the reactive path on a DOWN primary, and resuming an
 * open handover from the log after a restart. Effects are recorded, not
 * performed (the end-to-end test drives real packager processes).
 */
import assert from "node:assert/strict";
import type { HandoverEffects } from "../../coordinator/src/act/orchestrator.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { rendition180p, rendition360p, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

type Node = Awaited<ReturnType<typeof startSingleNode>>;

function recordingEffects(opts: { failReplicate?: boolean; edge?: () => number } = {}) {
  const calls: string[] = [];
  let edge = 40;
  const effects: HandoverEffects = {
    async ensureRunning(c) {
      calls.push(`ensure ${c.id}`);
    },
    async assign(c, stream, renditions, role, epoch) {
      calls.push(`assign ${c.id} ${stream.spec?.id} ${renditions.join(",")} ${role} e${epoch}`);
    },
    async unassign(c, streamId) {
      calls.push(`unassign ${c.id} ${streamId}`);
    },
    async replicate(to, from, _s, rendition) {
      calls.push(`replicate ${to.id}<-${from.id} ${rendition}`);
      if (opts.failReplicate) return { latestMsn: edge, verified: false, copied: 3 };
      return { latestMsn: edge, verified: true, copied: 3 };
    },
    async latestMsn() {
      edge += 1; // the live edge advances as the test polls
      return opts.edge ? opts.edge() : edge;
    },
    async drain(c) {
      calls.push(`drain ${c.id}`);
    },
  };
  return { effects, calls };
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function seed(node: Node) {
  const c = node.cluster;
  for (const [id, zone] of [
    ["pkg-a", "z1"],
    ["pkg-b", "z2"],
    ["pkg-c", "z1"],
  ] as const) {
    assert.ok(
      (
        await c.propose({
          op: {
            case: "registerComponent",
            value: {
              componentId: id,
              role: ComponentRole.PACKAGER,
              labels: { region: "eu", zone },
              baseUrl: `http://${id}`,
            },
          },
        })
      ).ok,
    );
  }
  const spec = {
    ...streamSpec("live-1"),
    renditions: [rendition360p, rendition180p],
    replicationFactor: 1,
  };
  assert.ok((await c.propose({ op: { case: "createStream", value: { spec } } })).ok);
  const assignments = spec.renditions.map((r) => ({
    renditionId: r.id,
    primaryPackagerId: "pkg-a",
    replicaPackagerIds: [],
  }));
  assert.ok(
    (
      await c.propose({
        op: { case: "setAssignments", value: { streamId: "live-1", assignments } },
      })
    ).ok,
  );
  assert.ok(
    (
      await c.propose({
        op: {
          case: "setShardMap",
          value: {
            streamId: "live-1",
            ranges: [{ firstShard: 0n, encoderId: "enc-1", replicaPackagerIds: ["pkg-a"] }],
          },
        },
      })
    ).ok,
  );
}

describe("handover orchestrator (real single-node Raft, recorded effects)", function () {
  this.timeout(20_000);
  let node: Node;
  const start = async (effects: HandoverEffects, reuseDir?: string) => {
    node = await startSingleNode(
      { handover: { stepDeadlineMs: 5000 }, placement: { automatic: false } },
      { handoverEffects: effects },
      reuseDir,
    );
    if (!reuseDir) await seed(node);
    return node.controlPlane.orchestrator;
  };
  afterEach(async () => {
    await node.cleanup();
  });

  it("drives a predicted handover through every state to completion", async () => {
    const { effects, calls } = recordingEffects();
    const orch = await start(effects);
    const states: HandoverState[] = [];
    node.cluster.fsm.onChange((changes) => {
      for (const ch of changes)
        if (ch.kind === "handover") states.push(node.cluster.fsm.handover(ch.id)!.state);
    });
    orch.onPrediction("pkg-a", 0.97, "memory leak");
    await waitFor(
      () => node.cluster.fsm.handovers().some((h) => h.state === HandoverState.COMPLETED),
      "completion",
    );
    const h = node.cluster.fsm.handovers()[0]!;
    assert.equal(h.reason, HandoverReason.PREDICTED);
    assert.equal(h.fromComponentId, "pkg-a");
    // pkg-b wins: a different zone from the failing pkg-a, same region.
    assert.equal(h.toComponentId, "pkg-b");
    assert.deepEqual(states, [
      HandoverState.BEGUN,
      HandoverState.STANDBY_READY,
      HandoverState.PRE_STITCHED,
      HandoverState.NOTIFIED,
      HandoverState.SWITCHED,
      HandoverState.COMPLETED,
    ]);
    assert.ok(h.switchMsn > 40n, "switch point is ahead of the live edge");
    assert.ok(calls.includes("ensure pkg-b"));
    assert.ok(calls.some((c) => c.startsWith("assign pkg-b live-1 360p,180p replica")));
    assert.ok(
      calls.includes("replicate pkg-b<-pkg-a 360p") &&
        calls.includes("replicate pkg-b<-pkg-a 180p"),
    );
    // The old primary leaves this stream only; it is not drained as a whole.
    await waitFor(() => calls.includes("unassign pkg-a live-1"), "unassign on the old primary");
    assert.ok(!calls.includes("drain pkg-a"), "a predicted handover does not drain the node");
    const a = node.cluster.fsm.assignments("live-1")!.assignments;
    assert.deepEqual(
      a.map((x) => [x.renditionId, x.primaryPackagerId, x.firstMsn]),
      [
        ["360p", "pkg-b", h.switchMsn],
        ["180p", "pkg-b", h.switchMsn],
      ],
    );
    // Dual ingest moved with the handover: encoders now push to pkg-b only.
    assert.deepEqual(node.cluster.fsm.shardMap("live-1")!.ranges[0]!.replicaPackagerIds, ["pkg-b"]);
  });

  it("aborts and rolls back when pre-stitching fails checksum verification", async () => {
    const { effects, calls } = recordingEffects({ failReplicate: true });
    const orch = await start(effects);
    await orch.begin({
      streamId: "live-1",
      fromComponentId: "pkg-a",
      toComponentId: "pkg-c",
      reason: HandoverReason.OPERATOR,
    });
    await waitFor(() => node.cluster.fsm.handovers()[0]?.state === HandoverState.ABORTED, "abort");
    const h = node.cluster.fsm.handovers()[0]!;
    assert.match(h.error, /STANDBY_READY: .*checksum/);
    await waitFor(() => calls.includes("unassign pkg-c live-1"), "rollback");
    assert.equal(
      node.cluster.fsm.assignments("live-1")!.assignments[0]!.primaryPackagerId,
      "pkg-a",
      "primary unchanged",
    );
  });

  it("starts the reactive path when the primary is declared DOWN", async () => {
    const { effects } = recordingEffects();
    await start(effects);
    await node.cluster.propose({
      op: {
        case: "updateComponentStatus",
        value: { componentId: "pkg-a", status: ComponentStatus.DOWN, reason: "missed heartbeats" },
      },
    });
    await waitFor(
      () => node.cluster.fsm.handovers().some((h) => h.state === HandoverState.COMPLETED),
      "completion",
    );
    assert.equal(node.cluster.fsm.handovers()[0]!.reason, HandoverReason.DETECTED_FAILURE);
  });

  it("after a restart (a new leader term) the open handover resumes from the log", async () => {
    const first = recordingEffects({ edge: () => 10 });
    // The first run stalls in NOTIFIED: the standby never reaches the switch segment.
    const o1 = await start(first.effects);
    await o1.begin({
      streamId: "live-1",
      fromComponentId: "pkg-a",
      toComponentId: "pkg-b",
      reason: HandoverReason.OPERATOR,
    });
    await waitFor(
      () => node.cluster.fsm.handovers()[0]?.state === HandoverState.NOTIFIED,
      "notified",
    );
    const dir = node.dir;
    const termBefore = node.cluster.leadership().term;
    await node.stop();
    const second = recordingEffects();
    await start(second.effects, dir);
    assert.ok(node.cluster.leadership().term > termBefore, "a new term");
    await waitFor(
      () => node.cluster.fsm.handovers()[0]?.state === HandoverState.COMPLETED,
      `completion after restart (${JSON.stringify(node.cluster.fsm.handovers().map((h) => [HandoverState[h.state], h.error]))})`,
    );
    // The successor did not repeat the earlier steps' effects.
    assert.ok(
      !second.calls.some((c) => c.startsWith("assign") || c.startsWith("replicate")),
      second.calls.join("; "),
    );
  });
});
