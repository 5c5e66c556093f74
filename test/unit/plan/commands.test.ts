/**
 * Plan diffs → FSM commands, applied to the real FSM: epochs chain, stale
 * plans are refused, re-proposals are deduplicated, unchanged plans propose
 * nothing. Then whole planning rounds over FSM state: first placement, a
 * packager failing, an encoder failing, and an open handover.
 */
import assert from "node:assert/strict";
import { Code } from "../../../common/errors.ts";
import {
  type AssignmentRow,
  assignmentRowsFromProto,
  assignmentsCommand,
  defaultGranularityOptions,
  type PlannedCommand,
  planRound,
  planSegmentDuration,
  roundInputFromFsm,
  type ShardRangeRow,
  type StreamRuntime,
  segmentPolicyFromSpec,
  segmentScheduleCommand,
  shardRangesFromProto,
  streamCommands,
} from "../../../coordinator/src/plan/index.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { StreamSpec } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { createFsmHarness, type FsmHarness } from "./fsm-harness.ts";

const ladder = [
  ["720p", 3_000_000n],
  ["360p", 800_000n],
] as const;

const row = (renditionId: string, firstMsn: number, primary: string, replicas: string[]) => ({
  renditionId,
  firstMsn,
  primary,
  replicas,
});

describe("plan commands", () => {
  it("proposes nothing for an unchanged plan and a content-derived request id otherwise", () => {
    const cur: AssignmentRow[] = [row("v", 0, "a", ["b", "c"])];
    assert.equal(
      assignmentsCommand("s", 3, { current: cur, next: [row("v", 0, "a", ["c", "b"])] }),
      undefined,
      "replica order is not a change",
    );
    const next = [row("v", 0, "b", ["c"])];
    const one = assignmentsCommand("s", 3, { current: cur, next });
    const two = assignmentsCommand("s", 3, { current: cur, next: [...next] });
    const other = assignmentsCommand("s", 3, { current: cur, next: [row("v", 0, "c", ["b"])] });
    assert.ok(one && two && other);
    assert.match(one.requestId, /^plan-a-3-[0-9a-f]{16}$/);
    assert.equal(one.requestId, two.requestId, "the same plan is the same request");
    assert.notEqual(one.requestId, other.requestId);
    assert.equal(one.command.op.case, "setAssignments");
    assert.equal(one.command.op.value?.expectedEpoch, 3n);
  });

  it("chains epochs, is refused when stale, and is deduplicated when re-proposed", () => {
    const h = createFsmHarness();
    const { fsm } = h;
    h.createStream("s1", { renditions: ladder, replicationFactor: 2, zoneAntiAffinity: true });
    assert.equal(fsm.stream("s1")?.epoch, 1n);
    const rows: AssignmentRow[] = [row("720p", 0, "a", ["b"]), row("360p", 0, "a", ["b"])];
    const ranges: ShardRangeRow[] = [
      { firstShard: 0, encoderId: "e1", replicaPackagerIds: ["a", "b"] },
    ];
    const cmds = streamCommands({
      streamId: "s1",
      epoch: 1,
      assignments: { current: [], next: rows },
      shardMap: { current: [], next: ranges },
    });
    assert.deepEqual(
      cmds.map((c) => [c.kind, c.expectedEpoch]),
      [
        ["set-assignments", 1],
        ["set-shard-map", 2],
      ],
    );
    const [a, s] = cmds as [PlannedCommand, PlannedCommand];
    assert.ok(h.propose(a).ok);
    assert.deepEqual(h.propose(a), { ok: true }, "a re-proposal is deduplicated");
    assert.equal(fsm.stream("s1")?.epoch, 2n, "applied once");
    assert.ok(h.propose(s).ok);
    assert.deepEqual(
      assignmentRowsFromProto(fsm.assignments("s1")).map((r) => r.primary),
      ["a", "a"],
    );
    assert.deepEqual(shardRangesFromProto(fsm.shardMap("s1")?.ranges), [
      { firstShard: 0, lastShard: undefined, encoderId: "e1", replicaPackagerIds: ["a", "b"] },
    ]);

    const stale = assignmentsCommand("s1", 1, {
      current: rows,
      next: [row("720p", 0, "b", ["a"])],
    });
    const r = h.propose(stale as PlannedCommand);
    assert.equal(!r.ok && r.code, Code.Aborted);
    assert.equal(fsm.stream("s1")?.epoch, 3n, "a refused plan changes nothing");
    assert.throws(
      () => assignmentsCommand("s1", 0, { current: [], next: rows }),
      /expectedEpoch: must be an integer in 1\.\./,
    );
  });
});

describe("plan commands: segment schedule", () => {
  it("turns a granularity change into a compare-and-set on the schedule version, last in the list", () => {
    const h = createFsmHarness();
    h.createStream("s1", { renditions: ladder, replicationFactor: 1, zoneAntiAffinity: false });
    const decision = planSegmentDuration(
      {
        policy: segmentPolicyFromSpec(h.fsm.stream("s1")?.spec as StreamSpec),
        schedule: { segmentDurationMs: 2000, sinceMsn: 0, sinceShard: 0 },
        currentShard: 4001,
        sessions: 6000,
      },
      defaultGranularityOptions,
    );
    assert.equal(decision.kind, "change");
    const cmds = streamCommands({
      streamId: "s1",
      epoch: 1,
      shardMap: {
        current: [],
        next: [{ firstShard: 0, encoderId: "e1", replicaPackagerIds: ["a"] }],
      },
      granularity: { scheduleVersion: 0, decision },
    });
    assert.deepEqual(
      cmds.map((c) => [c.kind, c.expectedEpoch, c.expectedScheduleVersion]),
      [
        ["set-shard-map", 1, undefined],
        ["set-segment-schedule", 2, 0],
      ],
    );
    const g = cmds[1] as PlannedCommand;
    assert.match(g.requestId, /^plan-g-0-[0-9a-f]{16}$/);
    assert.equal(
      segmentScheduleCommand("s1", 0, 1, decision)?.requestId,
      g.requestId,
      "the id does not depend on the epoch: the same change is the same request",
    );
    for (const c of cmds) assert.ok(h.propose(c).ok);
    assert.deepEqual(h.propose(g), { ok: true }, "a re-proposal is deduplicated");
    const s = h.fsm.stream("s1");
    assert.equal(s?.segmentScheduleVersion, 1n, "applied once");
    assert.equal(s?.epoch, 2n, "only the shard map bumped the epoch");
    assert.deepEqual(
      s?.segmentSchedule.map((e) => [e.sinceMsn, e.sinceShard, e.segmentDurationMs]),
      [
        [0n, 0n, 2000],
        [1001n, 4004n, 4000],
      ],
    );
    const keep = planSegmentDuration(
      {
        policy: segmentPolicyFromSpec(s?.spec as StreamSpec),
        schedule: { segmentDurationMs: 4000, sinceMsn: 1001, sinceShard: 4004 },
        currentShard: 4004,
        sessions: 6000,
      },
      defaultGranularityOptions,
    );
    assert.equal(segmentScheduleCommand("s1", 1, 2, keep), undefined, "keep proposes nothing");
  });
});

describe("planning rounds over the FSM", () => {
  function cluster(): FsmHarness {
    const h = createFsmHarness();
    const capacity = { maxStreams: 10, egressBps: 10_000_000_000n };
    h.register("pkg-a", ComponentRole.PACKAGER, { region: "eu", zone: "z1" }, capacity);
    h.register("pkg-b", ComponentRole.PACKAGER, { region: "eu", zone: "z2" }, capacity);
    h.register("pkg-c", ComponentRole.PACKAGER, { region: "eu", zone: "z3" }, capacity);
    h.register("enc-1", ComponentRole.ENCODER, { zone: "z1" });
    h.register("enc-2", ComponentRole.ENCODER, { zone: "z2" });
    h.createStream("s1", { renditions: ladder, replicationFactor: 2, zoneAntiAffinity: true });
    return h;
  }
  const runtimeAt = (currentShard: number) => (): StreamRuntime => ({
    currentShard,
    sessionsByRendition: new Map([
      ["720p", 40],
      ["360p", 10],
    ]),
  });
  const round = (h: FsmHarness, currentShard: number) =>
    planRound(roundInputFromFsm(h.fsm, runtimeAt(currentShard))).streams[0];
  const proposeAll = (h: FsmHarness, cmds: readonly PlannedCommand[]) => {
    for (const c of cmds) assert.deepEqual(h.propose(c), { ok: true }, c.kind);
  };

  it("places a new stream, then replans to nothing, then heals a packager failure and an encoder failure", () => {
    const h = cluster();
    const { fsm } = h;
    // Shard 41 of a 4-shard (2 s) segment schedule is in MSN 10.
    const first = round(h, 41);
    assert.ok(first);
    assert.deepEqual(
      first.commands.map((c) => c.kind),
      ["set-assignments", "set-shard-map"],
    );
    proposeAll(h, first.commands);
    const rows = assignmentRowsFromProto(fsm.assignments("s1"));
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.equal(r.firstMsn, 11);
      assert.equal(r.lastMsn, undefined);
      assert.equal(r.replicas.length, 1);
    }
    const primary = rows[0]?.primary as string;
    const replica = rows[0]?.replicas[0] as string;
    assert.equal(rows[1]?.primary, primary, "renditions share the primary");
    const map1 = shardRangesFromProto(fsm.shardMap("s1")?.ranges);
    assert.deepEqual(map1, [
      {
        firstShard: 42,
        lastShard: undefined,
        encoderId: "enc-1",
        replicaPackagerIds: [primary, replica].sort(),
      },
    ]);

    assert.deepEqual(round(h, 60)?.commands, [], "replanning the same state proposes nothing");

    // The primary packager fails at shard 90 (MSN 22).
    h.setStatus(primary, ComponentStatus.DOWN);
    const healed = round(h, 90);
    assert.ok(healed);
    assert.deepEqual(
      healed.commands.map((c) => [c.kind, c.expectedEpoch]),
      [
        ["set-assignments", 3],
        ["set-shard-map", 4],
      ],
    );
    proposeAll(h, healed.commands);
    const spare = ["pkg-a", "pkg-b", "pkg-c"].find((x) => x !== primary && x !== replica) as string;
    const after = assignmentRowsFromProto(fsm.assignments("s1"));
    for (const rid of ["720p", "360p"]) {
      assert.deepEqual(
        after.filter((r) => r.renditionId === rid),
        [
          { renditionId: rid, firstMsn: 11, lastMsn: 22, primary, replicas: [replica] },
          {
            renditionId: rid,
            firstMsn: 23,
            lastMsn: undefined,
            primary: replica,
            replicas: [spare],
          },
        ],
      );
    }
    assert.deepEqual(shardRangesFromProto(fsm.shardMap("s1")?.ranges), [
      {
        firstShard: 42,
        lastShard: 90,
        encoderId: "enc-1",
        replicaPackagerIds: map1[0]?.replicaPackagerIds,
      },
      {
        firstShard: 91,
        lastShard: undefined,
        encoderId: "enc-1",
        replicaPackagerIds: [replica, spare].sort(),
      },
    ]);
    assert.deepEqual(round(h, 95)?.commands, []);

    // The encoder fails at shard 130: only the shard map changes, from shard 131.
    h.setStatus("enc-1", ComponentStatus.DOWN);
    const moved = round(h, 130);
    assert.deepEqual(
      moved?.commands.map((c) => c.kind),
      ["set-shard-map"],
    );
    proposeAll(h, moved?.commands ?? []);
    const map3 = shardRangesFromProto(fsm.shardMap("s1")?.ranges);
    assert.deepEqual(
      map3.map((r) => [r.firstShard, r.lastShard, r.encoderId]),
      [
        [42, 90, "enc-1"],
        [91, 130, "enc-1"],
        [131, undefined, "enc-2"],
      ],
    );
    assert.deepEqual(round(h, 140)?.commands, []);
    assert.equal(round(h, 140)?.status, "active");
  });

  it("skips a stream whose stored state is malformed and still plans the others", () => {
    const h = cluster();
    h.createStream("broken", { renditions: ladder, replicationFactor: 0, zoneAntiAffinity: false });
    const plan = planRound(roundInputFromFsm(h.fsm, runtimeAt(10)));
    const broken = plan.streams.find((s) => s.streamId === "broken");
    assert.equal(broken?.skipped, "invalid");
    assert.equal(broken?.status, "degraded");
    assert.match(
      broken?.statusMessage ?? "",
      /^not planned: stream "broken"\.replicationFactor: must be an integer in 1\.\.5, got 0$/,
    );
    assert.deepEqual(broken?.commands, []);
    const ok = plan.streams.find((s) => s.streamId === "s1");
    assert.equal(ok?.commands.length, 2);
  });

  it("reports DEGRADED with a reason and does not replan a stream during a handover", () => {
    const h = cluster();
    proposeAll(h, round(h, 10)?.commands ?? []);
    h.setStatus("pkg-c", ComponentStatus.DRAINING);
    h.setStatus("pkg-b", ComponentStatus.DRAINED);
    const degraded = round(h, 20);
    assert.equal(degraded?.status, "degraded");
    assert.match(degraded?.statusMessage ?? "", /720p: 1\/2 replicas/);

    assert.ok(
      h.apply({
        op: {
          case: "handoverBegun",
          value: {
            handoverId: "h1",
            streamId: "s1",
            fromComponentId: "pkg-a",
            toComponentId: "pkg-b",
            expectedEpoch: 0n,
          },
        },
      }).ok,
    );
    const during = round(h, 20);
    assert.equal(during?.skipped, "handover-open");
    assert.deepEqual(during?.commands, []);
  });
});
