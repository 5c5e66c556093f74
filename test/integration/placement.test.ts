/**
 * The leader's placement loop on a real single-node coordinator: a new
 * stream gets committed assignments (replication factor, distinct packagers)
 * and a shard map from the pure planners, the packagers receive Assign calls
 * carrying the epoch, and replanning an unchanged state proposes nothing.
 */
import assert from "node:assert/strict";
import type { HandoverEffects } from "../../coordinator/src/act/orchestrator.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { LatencyMode, StreamStatus } from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { startSingleNode } from "../support/single-node.ts";

async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("placement loop (real single-node Raft, recorded Assign calls)", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  const assigns: string[] = [];
  const effects: HandoverEffects = {
    async ensureRunning() {},
    async assign(c, stream, renditions, role, epoch) {
      assigns.push(`${c.id} ${stream.spec?.id} ${role} ${renditions.join(",")} e${epoch}`);
    },
    async unassign() {},
    async replicate() {
      return { latestMsn: 0, verified: true, copied: 0 };
    },
    async latestMsn() {
      return 0;
    },
    async drain() {},
  };
  before(async () => {
    node = await startSingleNode(
      { handover: { automatic: false }, placement: { intervalMs: 100 } },
      { handoverEffects: effects },
    );
  });
  after(async () => {
    await node.cleanup();
  });

  it("places a new stream, pushes assignments to packagers, and is idempotent", async () => {
    const c = node.cluster;
    for (const [id, role, zone] of [
      ["pkg-a", ComponentRole.PACKAGER, "z1"],
      ["pkg-b", ComponentRole.PACKAGER, "z2"],
      ["pkg-c", ComponentRole.PACKAGER, "z3"],
      ["enc-1", ComponentRole.ENCODER, "z1"],
      ["enc-2", ComponentRole.ENCODER, "z2"],
    ] as const) {
      const r = await c.propose({
        op: {
          case: "registerComponent",
          value: {
            componentId: id,
            role,
            labels: { region: "eu", zone },
            controlAddress: "127.0.0.1:1",
            baseUrl: `http://${id}`,
          },
        },
      });
      assert.ok(r.ok);
    }
    const spec = {
      id: "live-1",
      renditions: [
        {
          id: "360p",
          bandwidthBps: 700_000n,
          width: 640,
          height: 360,
          frameRate: 30,
          codecs: "avc1.42c01e",
        },
        {
          id: "180p",
          bandwidthBps: 300_000n,
          width: 320,
          height: 180,
          frameRate: 30,
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
      placement: { zoneAntiAffinity: true },
    };
    assert.ok((await c.propose({ op: { case: "createStream", value: { spec } } })).ok);
    await waitFor(() => (c.fsm.shardMap("live-1")?.ranges.length ?? 0) > 0, "a shard map");
    const rows = c.fsm.assignments("live-1")!.assignments.filter((a) => a.lastMsn === undefined);
    assert.equal(rows.length, 2);
    for (const r of rows) {
      const holders = [r.primaryPackagerId, ...r.replicaPackagerIds];
      assert.equal(new Set(holders).size, 2, "replication factor 2 on distinct packagers");
      const zones = holders.map((h) => c.fsm.component(h)?.labels?.zone);
      assert.equal(new Set(zones).size, 2, "zone anti-affinity");
    }
    assert.equal(c.fsm.stream("live-1")?.status, StreamStatus.ACTIVE);
    const ranges = c.fsm.shardMap("live-1")!.ranges;
    assert.ok(ranges.every((r) => ["enc-1", "enc-2"].includes(r.encoderId)));
    await waitFor(() => assigns.length >= 2, "Assign calls");
    const epoch = c.fsm.stream("live-1")!.epoch;
    assert.ok(assigns.every((a) => a.includes("live-1")));
    // Quiet rounds: nothing new is proposed and nothing re-sent.
    const applied = c.fsm.appliedIndex();
    const sent = assigns.length;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(c.fsm.appliedIndex(), applied, "replanning the same state proposes nothing");
    assert.equal(assigns.length, sent, "Assign is not repeated for the same epoch");
    assert.equal(c.fsm.stream("live-1")!.epoch, epoch);
  });
});
