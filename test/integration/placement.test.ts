/**
 * The leader's placement loop on a real single-node coordinator: a new
 * stream gets committed assignments (replication factor, distinct packagers)
 * and a shard map from the pure planners, the packagers receive Assign calls
 * carrying the epoch, and replanning an unchanged state proposes nothing.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../common/log.ts";
import type { HandoverEffects } from "../../coordinator/src/act/orchestrator.ts";
import {
  createInventoryReader,
  createPlacementLoop,
  type NewestMediaReader,
  type PlacementLoop,
} from "../../coordinator/src/act/placement.ts";
import type { NewestMedia } from "../../coordinator/src/plan/index.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import {
  type Component,
  ComponentRole,
  ComponentStatus,
} from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { StreamStatus } from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { feed, originConfig, originSpecRenditions } from "../packager/helpers.ts";
import { rendition180p, rendition360p, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

async function register(
  node: Awaited<ReturnType<typeof startSingleNode>>,
  id: string,
  role: ComponentRole,
  zone: string,
  controlAddress = "127.0.0.1:1",
) {
  const r = await node.cluster.propose({
    op: {
      case: "registerComponent",
      value: {
        componentId: id,
        role,
        labels: { region: "eu", zone },
        controlAddress,
        baseUrl: `http://${id}`,
      },
    },
  });
  assert.ok(r.ok, `register ${id}`);
}

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
      await register(node, id, role, zone);
    }
    const spec = {
      ...streamSpec("live-1"),
      renditions: [rendition360p, rendition180p],
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

/** Components and a two-rendition stream (720p/360p, as test/packager's origin config) on a node. */
async function setUpStream(
  node: Awaited<ReturnType<typeof startSingleNode>>,
  controls: Record<string, string>,
  originMs: number,
) {
  for (const [id, role] of [
    ["pkg-a", ComponentRole.PACKAGER],
    ["pkg-b", ComponentRole.PACKAGER],
    ["enc-1", ComponentRole.ENCODER],
    ["enc-2", ComponentRole.ENCODER],
  ] as const) {
    await register(node, id, role, id, controls[id]);
  }
  const spec = {
    ...streamSpec("s1"),
    renditions: originSpecRenditions,
    timelineOriginUnixMs: BigInt(originMs),
  };
  assert.ok((await node.cluster.propose({ op: { case: "createStream", value: { spec } } })).ok);
}

const openRangeOf = (node: Awaited<ReturnType<typeof startSingleNode>>) => {
  const r = node.cluster.fsm.shardMap("s1")?.ranges.at(-1);
  return r && r.lastShard === undefined ? r : undefined;
};

async function markDown(node: Awaited<ReturnType<typeof startSingleNode>>, id: string) {
  const r = await node.cluster.propose({
    op: {
      case: "updateComponentStatus",
      value: { componentId: id, status: ComponentStatus.DOWN, reason: "test" },
    },
  });
  assert.ok(r.ok);
}

describe("placement loop on encoder loss (real single-node Raft)", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  let loop: PlacementLoop | undefined;
  const packagers: PackagerNode[] = [];
  const effects = { async assign() {} };
  beforeEach(async () => {
    node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
  });
  afterEach(async () => {
    loop?.stop();
    loop = undefined;
    await Promise.all(packagers.splice(0).map((p) => p.stop()));
    await node.cleanup();
  });

  it("moves the map from the first shard the holders lack, read from their real inventories", async () => {
    for (const id of ["pkg-a", "pkg-b"]) {
      const p = createPackagerNode(originConfig({ nodeId: id, control: "127.0.0.1:0" }), {
        logger: silentLogger,
      });
      await p.start();
      packagers.push(p);
    }
    const [a, b] = packagers as [PackagerNode, PackagerNode];
    // Now is in shard 20: the first map starts at 21.
    const originMs = Date.now() - 10_250;
    await setUpStream(node, { "pkg-a": a.urls.control!, "pkg-b": b.urls.control! }, originMs);
    loop = createPlacementLoop({
      cluster: node.cluster,
      effects,
      log: silentLogger,
      intervalMs: 60_000,
    });
    await waitFor(() => openRangeOf(node) !== undefined, "a shard map");
    const first = openRangeOf(node)!;
    assert.equal(first.firstShard, 21n);
    const lost = first.encoderId;
    const other = lost === "enc-1" ? "enc-2" : "enc-1";
    // The encoder delivered up to 5.1 (shard 21) to pkg-a and 5.2 to pkg-b, then
    // died; it is declared DOWN in shard 23.
    await feed(a.urls.http, "s1", ["720p", "360p"], 0, 5, 2);
    await feed(b.urls.http, "s1", ["720p", "360p"], 0, 5, 3);
    await new Promise((r) => setTimeout(r, Math.max(0, originMs + 11_600 - Date.now())));
    await markDown(node, lost);
    await waitFor(() => openRangeOf(node)?.encoderId === other, `the map to move to ${other}`);
    const ranges = node.cluster.fsm.shardMap("s1")!.ranges;
    assert.deepEqual(
      ranges.map((r) => [r.firstShard, r.lastShard, r.encoderId]),
      [
        [21n, 21n, lost],
        [22n, undefined, other],
      ],
    );
  });

  it("reads the newest part, else the newest complete segment, per rendition", async () => {
    const p = createPackagerNode(originConfig({ nodeId: "pkg-a", control: "127.0.0.1:0" }), {
      logger: silentLogger,
    });
    await p.start();
    packagers.push(p);
    await feed(p.urls.http, "s1", ["720p"], 3, 5, 3);
    await feed(p.urls.http, "s1", ["360p"], 3, 5);
    const reader = createInventoryReader();
    try {
      const pkg = { id: "pkg-a", controlAddress: p.urls.control! } as Component;
      const got = await reader.read(pkg, "s1", ["720p", "360p"], AbortSignal.timeout(2000));
      assert.deepEqual(got, [
        { packagerId: "pkg-a", renditionId: "720p", msn: 5, part: 2 },
        { packagerId: "pkg-a", renditionId: "360p", msn: 4, part: undefined },
      ] satisfies NewestMedia[]);
    } finally {
      reader.close();
    }
  });

  it("a change that arrives while a round runs gets its own round", async () => {
    let release: (() => void) | undefined;
    const blocked = new Promise<void>((r) => {
      release = r;
    });
    let assigns = 0;
    const slowEffects = {
      async assign() {
        assigns++;
        await blocked; // the first round stays busy pushing assignments
      },
    };
    const reads: string[] = [];
    const newestMedia: NewestMediaReader = async (c) => {
      reads.push(c.id);
      return [];
    };
    await setUpStream(node, {}, Date.now() - 10_250);
    loop = createPlacementLoop({
      cluster: node.cluster,
      effects: slowEffects,
      log: silentLogger,
      intervalMs: 60_000, // no timer round during the test
      newestMedia,
    });
    await waitFor(() => assigns > 0, "the first round to push an assignment");
    const lost = openRangeOf(node)!.encoderId;
    await markDown(node, lost);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(openRangeOf(node)?.encoderId, lost, "nothing replanned while the round is busy");
    release?.();
    await waitFor(
      () => openRangeOf(node)?.encoderId !== lost,
      "the deferred round to move the map",
    );
    assert.ok(reads.length >= 1, "the holders were asked what they have");
  });
});
