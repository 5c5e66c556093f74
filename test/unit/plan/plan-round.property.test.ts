/**
 * Planning rounds driven through the real FSM under random failures,
 * recoveries, demand changes and time: after every round's commands are
 * applied, the replicated state satisfies the placement invariants and
 * replanning it proposes nothing.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Fsm, scheduleOf } from "../../../coordinator/src/fsm/fsm.ts";
import {
  assignmentRowsFromProto,
  firstShardOfMsnIn,
  isPlaceable,
  msnOfShardIn,
  planRound,
  roundInputFromFsm,
  type SegmentSchedule,
  scheduleChangeProblem,
  segmentPolicyFromSpec,
  shardRangesFromProto,
  validateShardRanges,
} from "../../../coordinator/src/plan/index.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { StreamSpec } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { createFsmHarness, type FsmHarness } from "./fsm-harness.ts";

const packagerIds = ["pa", "pb", "pc", "pd", "pe"];
const zoneOf: Record<string, string> = { pa: "z1", pb: "z1", pc: "z2", pd: "z3", pe: "z3" };
const encoderIds = ["e1", "e2"];

function setup(replicationFactors: readonly number[]): FsmHarness {
  const h = createFsmHarness();
  for (const id of packagerIds) {
    h.register(
      id,
      ComponentRole.PACKAGER,
      { region: "eu", zone: zoneOf[id] as string },
      { maxStreams: 10, egressBps: 1_000_000_000n },
    );
  }
  for (const id of encoderIds) h.register(id, ComponentRole.ENCODER, {}, { maxStreams: 4 });
  replicationFactors.forEach((rf, k) => {
    h.createStream(`s${k}`, {
      renditions: ["1080p", "720p", "360p"].map((id, j) => [id, BigInt(4_000_000 >> j)] as const),
      replicationFactor: rf,
      zoneAntiAffinity: k % 2 === 0,
    });
  });
  return h;
}

const eventArb = fc.oneof(
  fc.record({
    kind: fc.constant("status" as const),
    id: fc.constantFrom(...packagerIds, ...encoderIds),
    status: fc.constantFrom(
      ComponentStatus.HEALTHY,
      ComponentStatus.HEALTHY,
      ComponentStatus.DOWN,
      ComponentStatus.DRAINING,
      ComponentStatus.SUSPECT,
    ),
  }),
  fc.record({
    kind: fc.constant("demand" as const),
    sessions: fc.integer({ min: 0, max: 20_000 }),
  }),
  // How many shards behind the live edge the holders' newest media is (an
  // encoder that died leaves them behind), or undefined: not read.
  fc.record({
    kind: fc.constant("received" as const),
    lag: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
  }),
);

/** Owner of shard n in a stored map, or undefined. */
function ownerAt(fsm: Fsm, streamId: string, n: number): string | undefined {
  return shardRangesFromProto(fsm.shardMap(streamId)?.ranges).find(
    (r) => r.firstShard <= n && (r.lastShard === undefined || n <= r.lastShard),
  )?.encoderId;
}

describe("planning rounds under random events", () => {
  it("keep the replicated placement valid and converge (replanning proposes nothing)", () => {
    let rewound = 0;
    let scheduleChanges = 0;
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(eventArb, fc.integer({ min: 1, max: 30 })), { maxLength: 12 }),
        (rfs, events) => {
          const h = setup(rfs);
          const { fsm, apply } = h;
          let shard = 0;
          let sessions = 100;
          let lag: number | undefined;
          // 0.5 s shards and parts (fsm-harness); segments as the stream's schedule cuts them.
          const newest = (streamId: string) => {
            const st = fsm.stream(streamId);
            if (!st || lag === undefined || shard - lag < 0) return undefined;
            const last = shard - lag;
            const list = scheduleOf(st);
            const msn = msnOfShardIn(list, 500, last);
            return ["pa", "pc"].map((packagerId) => ({
              packagerId,
              renditionId: "720p",
              msn,
              part: last - firstShardOfMsnIn(list, 500, msn),
            }));
          };
          const runtime = (streamId: string) => ({
            currentShard: shard,
            sessionsByRendition: new Map([
              ["1080p", sessions],
              ["720p", sessions >> 1],
              ["360p", sessions >> 2],
            ]),
            holdersNewest: newest(streamId),
          });
          const roundAndApply = () => {
            const plan = planRound(roundInputFromFsm(fsm, runtime));
            for (const s of plan.streams) {
              for (const c of s.commands) {
                const r = apply(c.command, c.requestId);
                assert.ok(r.ok, `${c.kind} of ${s.streamId}: ${JSON.stringify(r)}`);
              }
            }
            return plan;
          };
          for (const [event, advance] of [...events, [{ kind: "demand", sessions }, 1] as const]) {
            if (event.kind === "status") {
              assert.ok(
                apply({
                  op: {
                    case: "updateComponentStatus",
                    value: { componentId: event.id, status: event.status, reason: "test" },
                  },
                }).ok,
              );
            } else if (event.kind === "demand") {
              sessions = event.sessions;
            } else {
              lag = event.lag;
            }
            shard += advance;
            // Only shards no usable encoder produced and the holders lack may be rewritten.
            const usableNow = (id: string | undefined) =>
              id !== undefined &&
              isPlaceable(fsm.component(id)?.status ?? ComponentStatus.UNSPECIFIED);
            const firstUnreceived = lag === undefined ? shard + 1 : shard - lag + 1;
            const before = fsm.streams().map((st) => {
              const id = st.spec?.id ?? "";
              return Array.from({ length: shard + 1 }, (_, n) => ownerAt(fsm, id, n));
            });
            // Segment numbering of every shard already in production is fixed.
            const msnsBefore = fsm
              .streams()
              .map((st) =>
                Array.from({ length: shard + 1 }, (_, n) => msnOfShardIn(scheduleOf(st), 500, n)),
              );
            const plan = roundAndApply();
            fsm.streams().forEach((st, k) => {
              const list = scheduleOf(st);
              for (let n = 0; n <= shard; n++) {
                assert.equal(
                  msnOfShardIn(list, 500, n),
                  msnsBefore[k]?.[n],
                  `${st.spec?.id} shard ${n} ≤ current ${shard} renumbered`,
                );
              }
              for (let i = 1; i < list.length; i++) {
                assert.equal(
                  scheduleChangeProblem(
                    list.slice(0, i),
                    list[i] as SegmentSchedule,
                    segmentPolicyFromSpec(st.spec as StreamSpec),
                  ),
                  undefined,
                );
              }
              if (list.length > 1) scheduleChanges = Math.max(scheduleChanges, list.length - 1);
            });
            fsm.streams().forEach((st, k) => {
              const id = st.spec?.id ?? "";
              for (let n = 0; n <= shard; n++) {
                const was = before[k]?.[n];
                const now = ownerAt(fsm, id, n);
                if (was === now) continue;
                // Compaction may drop old history; it never changes an owner.
                if (now === undefined && n < shard - 3600) continue;
                rewound++;
                assert.ok(
                  !usableNow(was) && n >= firstUnreceived,
                  `${id} shard ${n} ≤ current ${shard} moved from ${was} to ${now} (first unreceived ${firstUnreceived})`,
                );
              }
            });
            const again = planRound(roundInputFromFsm(fsm, runtime));
            for (const s of again.streams)
              assert.deepEqual(s.commands, [], `${s.streamId} converged`);
            check(fsm, shard, plan);
          }
        },
      ),
      { seed: 5150, numRuns: 25 },
    );
    assert.ok(rewound > 0, "no run rewound a lost encoder's shards");
    assert.ok(scheduleChanges > 0, "no run changed a segment duration");
  });
});

function check(fsm: Fsm, shard: number, plan: ReturnType<typeof planRound>) {
  const status = new Map(fsm.components().map((c) => [c.id, c.status]));
  const placeable = packagerIds.filter((id) => isPlaceable(status.get(id) as ComponentStatus));
  const encoderOk = encoderIds.some((id) => isPlaceable(status.get(id) as ComponentStatus));
  for (const stream of fsm.streams()) {
    const spec = stream.spec;
    assert.ok(spec);
    const p = plan.streams.find((x) => x.streamId === spec.id);
    assert.ok(p);
    const rows = assignmentRowsFromProto(fsm.assignments(spec.id));
    const R = spec.replicationFactor;
    const anti = spec.placement?.zoneAntiAffinity ?? false;
    const reachable = anti ? new Set(placeable.map((id) => zoneOf[id])).size : placeable.length;
    for (const r of spec.renditions) {
      const history = rows.filter((x) => x.renditionId === r.id);
      if (placeable.length === 0 && history.length === 0) continue;
      assert.ok(history.length >= 1 && history.length <= 16);
      for (let i = 1; i < history.length; i++) {
        assert.equal(history[i]?.firstMsn, (history[i - 1]?.lastMsn as number) + 1, "no MSN gap");
      }
      const open = history[history.length - 1];
      assert.ok(open && open.lastMsn === undefined, "exactly the last row is open");
      const members = [open.primary, ...open.replicas];
      assert.equal(new Set(members).size, members.length);
      if (placeable.length > 0) {
        for (const m of members) assert.ok(placeable.includes(m), `${m} is placeable`);
        if (anti) assert.equal(new Set(members.map((m) => zoneOf[m])).size, members.length);
        assert.equal(members.length, Math.min(R, reachable), `${spec.id}/${r.id} replicas`);
      }
    }
    if (placeable.length > 0 && placeable.length >= 1 && Math.min(R, reachable) < R) {
      assert.equal(p.status, "degraded");
    }
    if (encoderOk && placeable.length > 0) {
      const ranges = shardRangesFromProto(fsm.shardMap(spec.id)?.ranges);
      validateShardRanges(ranges);
      const future = ranges.filter((x) => x.lastShard === undefined || x.lastShard > shard);
      assert.ok((future[0]?.firstShard ?? Number.POSITIVE_INFINITY) <= shard + 1, "future covered");
      assert.equal(future[future.length - 1]?.lastShard, undefined);
      for (const x of future) {
        assert.ok(isPlaceable(status.get(x.encoderId) as ComponentStatus), "usable encoder");
        const holders = new Set(
          rows.filter((y) => y.lastMsn === undefined).flatMap((y) => [y.primary, ...y.replicas]),
        );
        for (const h of holders) assert.ok(x.replicaPackagerIds.includes(h), `${h} gets pushes`);
      }
    }
  }
}
