/**
 * The assignment planner against a brute-force enumeration of every
 * assignment of one stream (≤ 4 packagers, ≤ 3 renditions): the planner's
 * plan must be feasible, its reported cost must be what the reference
 * evaluator computes for it, and that cost must equal the optimum. Plus
 * invariants on larger multi-stream inputs that brute force cannot cover.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AssignmentOptions,
  type PackagerInput,
  planAssignments,
  type StreamAssignmentPlan,
  type StreamInput,
} from "../../../coordinator/src/plan/index.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { packagersArb, streamArb, tinyOptions } from "./arbitraries.ts";
import { bruteForceOptimum, evaluate, type Members } from "./brute-force.ts";

const membersOf = (s: StreamInput, plan: StreamAssignmentPlan): Members =>
  s.renditions.map((r) => {
    const h = plan.renditions.find((x) => x.renditionId === r.id)?.holders;
    return h ? [h.primary, ...h.replicas] : [];
  });

const optionsArb: fc.Arbitrary<AssignmentOptions> = fc
  .integer({ min: 1, max: 5 })
  .map((packagersPerStreamMax) => ({ ...tinyOptions, packagersPerStreamMax }));

describe("assignment planner vs brute force", () => {
  it("finds a feasible plan whose cost equals the brute-force optimum", () => {
    fc.assert(
      fc.property(packagersArb(4), streamArb("s", 3, 4), optionsArb, (packagers, s, o) => {
        const plan = planAssignments({ packagers, streams: [s] }, o);
        const sp = plan.streams[0] as StreamAssignmentPlan;
        assert.equal(sp.exhaustive, true, "small inputs are searched exhaustively");
        const got = evaluate(s, packagers, membersOf(s, sp), o);
        assert.ok(got, `planner output breaks a hard constraint: ${JSON.stringify(sp)}`);
        assert.deepEqual(got, sp.cost, "reported cost = reference evaluation");
        const opt = bruteForceOptimum(s, packagers, o);
        assert.deepEqual(got, opt.cost, `optimum ${JSON.stringify(opt.members)}`);
        // Full replication whenever any feasible plan achieves it.
        if (opt.cost.unplaced === 0 && opt.cost.missingReplicas === 0) {
          for (const r of sp.renditions) {
            const h = r.holders;
            assert.ok(h);
            assert.equal(new Set([h.primary, ...h.replicas]).size, s.replicationFactor);
          }
          if (opt.cost.overloadBps === 0) assert.equal(sp.status, "active");
        } else {
          assert.equal(sp.status, "degraded");
          assert.ok(sp.reasons.length > 0);
        }
      }),
      { seed: 20260101, numRuns: 250 },
    );
  });

  it("is deterministic and independent of input order", () => {
    fc.assert(
      fc.property(
        packagersArb(6),
        streamArb("a", 3, 6),
        streamArb("b", 3, 6),
        (packagers, a, b) => {
          const one = planAssignments({ packagers, streams: [a, b] }, tinyOptions);
          const two = planAssignments(
            { packagers: [...packagers].reverse(), streams: [b, a] },
            tinyOptions,
          );
          assert.deepEqual(one.streams, two.streams);
          assert.deepEqual([...one.packagerLoads].sort(), [...two.packagerLoads].sort());
        },
      ),
      { seed: 7, numRuns: 150 },
    );
  });

  it("respects every hard constraint on larger multi-stream inputs", () => {
    const o = { ...tinyOptions, defaultMaxStreams: 4, searchNodesMax: 3_000 };
    fc.assert(
      fc.property(
        packagersArb(9),
        fc.tuple(streamArb("s0", 4, 9), streamArb("s1", 4, 9), streamArb("s2", 4, 9)),
        (packagers, streams) => {
          const plan = planAssignments({ packagers, streams }, o);
          const byId = new Map<string, PackagerInput>(packagers.map((p) => [p.id, p]));
          const touched = new Map<string, number>();
          for (const [k, sp] of plan.streams.entries()) {
            const s = streams.find((x) => x.id === sp.streamId) as StreamInput;
            assert.equal(s.id, `s${k}`, "plans come in stream id order");
            const used = new Set<string>();
            for (const r of sp.renditions) {
              if (!r.holders) continue;
              const m = [r.holders.primary, ...r.holders.replicas];
              assert.equal(new Set(m).size, m.length, "distinct members");
              assert.ok(m.length <= s.replicationFactor);
              const zones = m.map((id) => byId.get(id)?.zone);
              if (s.placement.zoneAntiAffinity) assert.equal(new Set(zones).size, zones.length);
              for (const id of m) {
                const p = byId.get(id) as PackagerInput;
                assert.ok(
                  p.status === ComponentStatus.HEALTHY ||
                    p.status === ComponentStatus.SUSPECT ||
                    p.status === ComponentStatus.UNKNOWN,
                );
                if (s.placement.allowedZones.length > 0)
                  assert.ok(s.placement.allowedZones.includes(p.zone));
                if (s.placement.allowedRegions.length > 0)
                  assert.ok(s.placement.allowedRegions.includes(p.region));
                used.add(id);
              }
              if (r.changed) assert.equal(r.firstMsn, s.currentMsn + 1);
              else
                assert.equal(
                  r.firstMsn,
                  s.renditions.find((x) => x.id === r.renditionId)?.current?.firstMsn,
                );
            }
            assert.ok(used.size <= o.packagersPerStreamMax);
            for (const id of used) touched.set(id, (touched.get(id) ?? 0) + 1);
          }
          for (const [id, n] of touched) {
            const p = byId.get(id) as PackagerInput;
            const load = plan.packagerLoads.get(id);
            assert.equal(load?.streams, (p.baseStreams ?? 0) + n);
            assert.ok(
              (load?.streams ?? 0) <= (p.maxStreams || o.defaultMaxStreams),
              `max_streams of ${id}`,
            );
          }
        },
      ),
      { seed: 99, numRuns: 150 },
    );
  });
});
