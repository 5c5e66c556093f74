import assert from "node:assert/strict";
import {
  type AssignmentRow,
  applyAssignmentPlan,
  defaultAssignmentOptions,
  type PackagerInput,
  planAssignments,
  type RenditionPlan,
  type StreamAssignmentPlan,
  type StreamInput,
} from "../../../coordinator/src/plan/index.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { pkg, placement, stream } from "./arbitraries.ts";

const only = (packagers: readonly PackagerInput[], s: StreamInput, o = defaultAssignmentOptions) =>
  planAssignments({ packagers, streams: [s] }, o).streams[0] as StreamAssignmentPlan;
const members = (r: RenditionPlan | undefined) =>
  r?.holders ? [r.holders.primary, ...r.holders.replicas] : [];
const rendition = (p: StreamAssignmentPlan, id: string) =>
  p.renditions.find((r) => r.renditionId === id);

/** Feeds a plan back as the current state (what the FSM holds after it commits). */
function committed(s: StreamInput, p: StreamAssignmentPlan): StreamInput {
  return {
    ...s,
    renditions: s.renditions.map((r) => {
      const rp = rendition(p, r.id);
      return rp?.holders && rp.firstMsn !== undefined
        ? { ...r, current: { ...rp.holders, firstMsn: rp.firstMsn } }
        : r;
    }),
  };
}

describe("assignment planner", () => {
  it("places every rendition on replication_factor distinct packagers, sharing one primary", () => {
    const p = only(
      [pkg("a", "z1"), pkg("b", "z2"), pkg("c", "z3")],
      stream("s1", ["1080p", "720p", "360p"], { replicationFactor: 2 }),
    );
    assert.equal(p.status, "active");
    assert.equal(p.exhaustive, true);
    const primaries = new Set(p.renditions.map((r) => r.holders?.primary));
    assert.equal(primaries.size, 1, "renditions of one stream prefer the same primary");
    for (const r of p.renditions) {
      assert.equal(new Set(members(r)).size, 2);
      assert.equal(r.changed, true);
      assert.equal(r.firstMsn, 101, "a new assignment starts at currentMsn + 1");
    }
  });

  it("uses only placeable packagers in the allowed regions and zones", () => {
    const packagers = [
      pkg("down", "z1", { status: ComponentStatus.DOWN }),
      pkg("draining", "z1", { status: ComponentStatus.DRAINING }),
      pkg("drained", "z1", { status: ComponentStatus.DRAINED }),
      pkg("us", "z1", { region: "us" }),
      pkg("eu-z9", "z9"),
      pkg("ok1", "z1"),
      pkg("ok2", "z2"),
    ];
    const p = only(
      packagers,
      stream("s1", ["720p", "360p"], {
        replicationFactor: 3,
        placement: placement({ allowedRegions: ["eu"], allowedZones: ["z1", "z2"] }),
      }),
    );
    for (const r of p.renditions) assert.deepEqual(members(r).sort(), ["ok1", "ok2"]);
    assert.equal(p.status, "degraded");
    assert.match(p.statusMessage, /720p: 2\/3 replicas \(only 2 placeable packager/);
  });

  it("degrades rather than breaking zone anti-affinity", () => {
    const packagers = [pkg("a", "z1"), pkg("b", "z1"), pkg("c", "z2"), pkg("d", "z2")];
    const s = stream("s1", ["720p"], {
      replicationFactor: 3,
      placement: placement({ zoneAntiAffinity: true }),
    });
    const p = only(packagers, s);
    const m = members(rendition(p, "720p"));
    assert.equal(m.length, 2);
    const zoneOf = new Map(packagers.map((x) => [x.id, x.zone]));
    assert.equal(new Set(m.map((id) => zoneOf.get(id))).size, 2, "one member per zone");
    assert.equal(p.status, "degraded");
    assert.deepEqual(p.reasons, [
      "rendition 720p: 2/3 replicas (zone anti-affinity: only 2 zone(s) available)",
    ]);
    // Without the rule the same cluster gives full replication.
    const free = only(packagers, { ...s, placement: placement() });
    assert.equal(members(rendition(free, "720p")).length, 3);
    assert.equal(free.status, "active");
  });

  it("never exceeds max_streams and avoids egress overload when it can", () => {
    const packagers = [
      pkg("full", "z1", { maxStreams: 2, baseStreams: 2 }),
      pkg("small", "z2", { egressBps: 5_000_000 }),
      pkg("big", "z3", { egressBps: 100_000_000 }),
    ];
    const s = stream("s1", ["720p"], {
      replicationFactor: 2,
      renditions: [{ id: "720p", bandwidthBps: 3_000_000, sessions: 10 }],
    });
    const p = only(packagers, s);
    const r = rendition(p, "720p");
    assert.equal(r?.holders?.primary, "big", "30 Mbit/s of viewers need the big egress");
    assert.deepEqual(r?.holders?.replicas, ["small"], "a full packager takes no new stream");
    assert.equal(p.cost.overloadBps, 0);
    assert.equal(p.status, "active");
  });

  it("places an over-capacity primary anyway and reports the overload", () => {
    const p = only(
      [pkg("a", "z1", { egressBps: 1_000_000 })],
      stream("s1", ["720p"], {
        replicationFactor: 1,
        renditions: [{ id: "720p", bandwidthBps: 1_000_000, sessions: 3 }],
      }),
    );
    assert.equal(rendition(p, "720p")?.holders?.primary, "a");
    assert.equal(p.cost.overloadBps, 2_000_000);
    assert.equal(p.status, "degraded");
    assert.match(p.statusMessage, /packager a: egress 3000000 bps over capacity 1000000 bps/);
  });

  it("reports a rendition it cannot place at all and keeps its current first MSN", () => {
    const s = stream("s1", ["720p"], {
      renditions: [
        {
          id: "720p",
          bandwidthBps: 1000,
          sessions: 1,
          current: { primary: "a", replicas: [], firstMsn: 7 },
        },
      ],
    });
    const p = only([pkg("a", "z1", { status: ComponentStatus.DOWN })], s);
    const r = rendition(p, "720p");
    assert.equal(r?.holders, undefined);
    assert.equal(r?.changed, false);
    assert.equal(r?.firstMsn, 7);
    assert.match(p.statusMessage, /720p: no packager available/);
  });

  it("is stable: replanning its own committed plan moves nothing, even when load shifts", () => {
    const packagers = [pkg("a", "z1"), pkg("b", "z2"), pkg("c", "z3"), pkg("d", "z1")];
    const s = stream("s1", ["1080p", "720p", "360p"], { replicationFactor: 2 });
    const first = only(packagers, s);
    const again = only(packagers, committed(s, first));
    assert.equal(again.cost.moves, 0);
    for (const r of again.renditions) {
      assert.equal(r.changed, false);
      assert.equal(r.firstMsn, 101);
      assert.deepEqual(r.holders, rendition(first, r.renditionId)?.holders);
    }
    // The primary becomes the busiest packager by far: still healthy and within capacity, so it stays.
    const primary = first.renditions[0]?.holders?.primary as string;
    const busier = packagers.map((x) =>
      x.id === primary ? { ...x, baseStreams: 8, baseEgressBps: 900_000_000 } : x,
    );
    const shifted = only(busier, { ...committed(s, first), currentMsn: 500 });
    assert.ok(shifted.renditions.every((r) => !r.changed));
    assert.equal(shifted.cost.moves, 0);
  });

  it("moves a healthy assignment when capacity forces it", () => {
    const packagers = [
      pkg("a", "z1", { egressBps: 10_000_000 }),
      pkg("b", "z2", { egressBps: 100_000_000 }),
    ];
    const s = stream("s1", ["720p"], {
      replicationFactor: 1,
      renditions: [
        {
          id: "720p",
          bandwidthBps: 1_000_000,
          sessions: 50,
          current: { primary: "a", replicas: [], firstMsn: 0 },
        },
      ],
    });
    const p = only(packagers, s);
    assert.equal(rendition(p, "720p")?.holders?.primary, "b");
    assert.equal(rendition(p, "720p")?.firstMsn, 101);
  });

  it("after a packager goes down, promotes a replica and adds a new one from currentMsn + 1", () => {
    const packagers = [pkg("a", "z1"), pkg("b", "z2"), pkg("c", "z3")];
    const current = { primary: "a", replicas: ["b"], firstMsn: 40 };
    const s = stream("s1", ["720p", "360p"], {
      replicationFactor: 2,
      currentMsn: 250,
      renditions: [
        { id: "720p", bandwidthBps: 3_000_000, sessions: 20, current },
        { id: "360p", bandwidthBps: 800_000, sessions: 5, current },
      ],
    });
    const down = packagers.map((x) => (x.id === "a" ? { ...x, status: ComponentStatus.DOWN } : x));
    const p = only(down, s);
    for (const r of p.renditions) {
      assert.deepEqual(r.holders, { primary: "b", replicas: ["c"] }, "replica b promoted, c added");
      assert.equal(r.changed, true);
      assert.equal(r.firstMsn, 251);
    }
    assert.equal(p.cost.moves, 2 * 2, "promotion (1) + one new member (1) per rendition");

    const rows: AssignmentRow[] = [
      { renditionId: "720p", firstMsn: 0, lastMsn: 39, primary: "c", replicas: ["a"] },
      { renditionId: "720p", firstMsn: 40, primary: "a", replicas: ["b"] },
      { renditionId: "360p", firstMsn: 40, primary: "a", replicas: ["b"] },
    ];
    assert.deepEqual(applyAssignmentPlan(rows, p), [
      { renditionId: "720p", firstMsn: 0, lastMsn: 39, primary: "c", replicas: ["a"] },
      { renditionId: "720p", firstMsn: 40, lastMsn: 250, primary: "a", replicas: ["b"] },
      { renditionId: "720p", firstMsn: 251, lastMsn: undefined, primary: "b", replicas: ["c"] },
      { renditionId: "360p", firstMsn: 40, lastMsn: 250, primary: "a", replicas: ["b"] },
      { renditionId: "360p", firstMsn: 251, lastMsn: undefined, primary: "b", replicas: ["c"] },
    ]);
  });

  it("prefers HEALTHY over SUSPECT and UNKNOWN packagers for new placements", () => {
    const p = only(
      [
        pkg("a", "z1", { status: ComponentStatus.SUSPECT }),
        pkg("b", "z2", { status: ComponentStatus.UNKNOWN }),
        pkg("c", "z3"),
      ],
      stream("s1", ["720p"], { replicationFactor: 2 }),
    );
    assert.deepEqual(rendition(p, "720p")?.holders, { primary: "c", replicas: ["b"] });
  });

  it("keeps a stream on at most packagersPerStreamMax packagers", () => {
    const packagers = ["a", "b", "c", "d", "e", "f"].map((id, i) => pkg(id, `z${i}`));
    const s = stream("s1", ["v0", "v1", "v2", "v3"], {
      replicationFactor: 2,
      renditions: ["v0", "v1", "v2", "v3"].map((id) => ({
        id,
        bandwidthBps: 1_000_000,
        sessions: 0,
        current: {
          primary: id === "v0" || id === "v1" ? "a" : "c",
          replicas: [id === "v0" ? "b" : "d"],
          firstMsn: 0,
        },
      })),
    });
    const p = only(packagers, s, { ...defaultAssignmentOptions, packagersPerStreamMax: 3 });
    const used = new Set(p.renditions.flatMap(members));
    assert.ok(used.size <= 3, `used ${[...used]}`);
    assert.equal(p.status, "active");
  });

  it("spreads streams over packagers and ranks spares by headroom", () => {
    const packagers = [pkg("a", "z1"), pkg("b", "z2"), pkg("c", "z3"), pkg("d", "z4")];
    const plan = planAssignments({
      packagers,
      streams: [
        stream("s1", ["720p"], { replicationFactor: 1 }),
        stream("s2", ["720p"], { replicationFactor: 1 }),
      ],
    });
    const [p1, p2] = plan.streams as [StreamAssignmentPlan, StreamAssignmentPlan];
    assert.notEqual(p1.renditions[0]?.holders?.primary, p2.renditions[0]?.holders?.primary);
    assert.equal(plan.packagerLoads.get("a")?.streams, 1);
    assert.equal(plan.packagerLoads.get("b")?.streams, 1);
    assert.deepEqual(p2.spares, ["c", "d", "a"], "emptiest packagers first, then by id");
    assert.ok(p1.spares.length <= defaultAssignmentOptions.sparesMax);
  });

  it("bounds the search on large inputs and still returns a feasible plan", () => {
    const packagers = Array.from({ length: 60 }, (_, i) =>
      pkg(`p${String(i).padStart(2, "0")}`, `z${i % 6}`, { baseStreams: i % 5 }),
    );
    const streams = Array.from({ length: 20 }, (_, k) =>
      stream(
        `s${k}`,
        Array.from({ length: 16 }, (_, j) => `v${j}`),
        { replicationFactor: 3, placement: placement({ zoneAntiAffinity: true }) },
      ),
    );
    const o = { ...defaultAssignmentOptions, searchNodesMax: 5_000 };
    const plan = planAssignments({ packagers, streams }, o);
    for (const p of plan.streams) {
      assert.ok(p.searchNodes <= o.searchNodesMax + 16 * 3 * o.candidatesPerSlotMax);
      assert.equal(p.status, "active");
      for (const r of p.renditions) assert.equal(members(r).length, 3);
    }
  });

  it("bounds a whole round: after roundSearchNodesMax later streams get their greedy plan", () => {
    const packagers = Array.from({ length: 30 }, (_, i) => pkg(`p${i}`, `z${i % 5}`));
    const streams = Array.from({ length: 40 }, (_, k) =>
      stream(`s${String(k).padStart(2, "0")}`, ["v0", "v1", "v2", "v3"], {
        replicationFactor: 3,
        placement: placement({ zoneAntiAffinity: true }),
      }),
    );
    const o = { ...defaultAssignmentOptions, searchNodesMax: 2_000, roundSearchNodesMax: 5_000 };
    const plan = planAssignments({ packagers, streams }, o);
    const total = plan.streams.reduce((sum, p) => sum + p.searchNodes, 0);
    // Past the budget each stream stops at its first (greedy) leaf: 4 renditions × 3 slots.
    assert.ok(total <= o.roundSearchNodesMax + 40 * 4 * 3, `total ${total}`);
    assert.ok(plan.streams.every((p) => p.status === "active"));
    assert.equal(plan.streams.at(-1)?.searchNodes, 4 * 3);
  });

  it("rejects malformed input with the offending field", () => {
    const s = stream("s1", ["720p"]);
    assert.throws(
      () => planAssignments({ packagers: [pkg("a", "z1"), pkg("a", "z2")], streams: [s] }),
      /packagers\[1\]\.id: duplicate packager "a"/,
    );
    assert.throws(
      () => planAssignments({ packagers: [], streams: [{ ...s, replicationFactor: 6 }] }),
      /streams\[0\]\.replicationFactor: must be an integer in 1\.\.5, got 6/,
    );
    assert.throws(
      () =>
        planAssignments({
          packagers: [],
          streams: [{ ...s, renditions: [{ id: "x", bandwidthBps: 0, sessions: 1 }] }],
        }),
      /streams\[0\]\.renditions\[0\]\.bandwidthBps/,
    );
    assert.throws(
      () =>
        planAssignments(
          { packagers: [], streams: [s] },
          { ...defaultAssignmentOptions, searchNodesMax: 0 },
        ),
      /searchNodesMax/,
    );
  });
});

describe("assignment rows", () => {
  const plan = (renditions: RenditionPlan[]): StreamAssignmentPlan => ({
    streamId: "s",
    renditions,
    status: "active",
    reasons: [],
    statusMessage: "",
    cost: { unplaced: 0, overloadBps: 0, missingReplicas: 0, moves: 0, score: 0 },
    exhaustive: true,
    searchNodes: 0,
    spares: [],
  });

  it("supersedes a switch not reached yet and drops renditions no longer in the ladder", () => {
    const rows: AssignmentRow[] = [
      { renditionId: "v", firstMsn: 0, primary: "a", replicas: [] },
      { renditionId: "gone", firstMsn: 0, primary: "a", replicas: [] },
    ];
    const once = applyAssignmentPlan(
      rows,
      plan([
        { renditionId: "v", holders: { primary: "b", replicas: [] }, changed: true, firstMsn: 10 },
      ]),
    );
    const twice = applyAssignmentPlan(
      once,
      plan([
        { renditionId: "v", holders: { primary: "c", replicas: [] }, changed: true, firstMsn: 10 },
      ]),
    );
    assert.deepEqual(twice, [
      { renditionId: "v", firstMsn: 0, lastMsn: 9, primary: "a", replicas: [] },
      { renditionId: "v", firstMsn: 10, lastMsn: undefined, primary: "c", replicas: [] },
    ]);
  });

  it("keeps at most 16 rows per rendition, oldest dropped", () => {
    let rows: AssignmentRow[] = [];
    for (let k = 0; k < 20; k++) {
      rows = applyAssignmentPlan(
        rows,
        plan([
          {
            renditionId: "v",
            holders: { primary: `p${k % 2}`, replicas: [] },
            changed: true,
            firstMsn: k * 10,
          },
        ]),
      );
    }
    assert.equal(rows.length, 16);
    assert.equal(rows[0]?.firstMsn, 40);
    assert.equal(rows[15]?.lastMsn, undefined);
    for (let i = 1; i < rows.length; i++) {
      assert.equal(rows[i]?.firstMsn, (rows[i - 1]?.lastMsn as number) + 1, "contiguous history");
    }
  });
});
