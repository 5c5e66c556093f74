import assert from "node:assert/strict";
import fc from "fast-check";
import {
  defaultGranularityOptions,
  entryAtShard,
  entryOfMsn,
  firstShardOfMsn,
  firstShardOfMsnIn,
  type GranularityOptions,
  granularityLevels,
  msnOfShard,
  msnOfShardIn,
  planSegmentDuration,
  type SegmentPolicyInput,
  type SegmentSchedule,
  scheduleChangeProblem,
  segmentUnitMs,
} from "../../../coordinator/src/plan/index.ts";
import { LatencyMode } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

const ll: SegmentPolicyInput = {
  shardDurationMs: 500,
  latencyMode: LatencyMode.LOW_LATENCY,
  segmentDurationTargetMs: 2000,
  segmentDurationMinMs: 1000,
  segmentDurationMaxMs: 6000,
  partDurationMs: 1000,
  keyframeIntervalMs: 1000,
};
const standard: SegmentPolicyInput = {
  ...ll,
  latencyMode: LatencyMode.STANDARD,
  segmentDurationMinMs: 1500,
  partDurationMs: 0,
  keyframeIntervalMs: 500,
};
const since0 = (ms: number): SegmentSchedule => ({
  segmentDurationMs: ms,
  sinceMsn: 0,
  sinceShard: 0,
});
const o: GranularityOptions = {
  lowSessionsEnter: 20,
  lowSessionsExit: 50,
  highSessionsExit: 3000,
  highSessionsEnter: 5000,
  minSegmentsBetweenChanges: 10,
  // These cases switch at the very next boundary; the lead has its own test.
  changeLeadMs: 0,
};

describe("segment granularity", () => {
  it("derives three aligned levels within [min, max]", () => {
    assert.deepEqual(granularityLevels(ll), { low: 1000, normal: 2000, high: 6000 });
    assert.deepEqual(granularityLevels(standard), { low: 1500, normal: 2000, high: 6000 });
    const odd: SegmentPolicyInput = {
      ...ll,
      shardDurationMs: 400,
      partDurationMs: 800,
      segmentDurationMinMs: 1000,
      segmentDurationTargetMs: 3200,
      segmentDurationMaxMs: 5000,
      keyframeIntervalMs: 800,
    };
    assert.deepEqual(granularityLevels(odd), { low: 1600, normal: 3200, high: 4800 });
    // A 2 s GOP: only whole 2 s multiples start with a keyframe.
    assert.deepEqual(granularityLevels({ ...ll, keyframeIntervalMs: 2000 }), {
      low: 2000,
      normal: 2000,
      high: 6000,
    });
    // Unknown (0): only the target's multiples are safe; segments can grow, never shrink.
    assert.deepEqual(granularityLevels({ ...ll, keyframeIntervalMs: 0 }), {
      low: 2000,
      normal: 2000,
      high: 6000,
    });
    assert.deepEqual(
      granularityLevels({ ...ll, keyframeIntervalMs: 0, segmentDurationMaxMs: 5000 }),
      { low: 2000, normal: 2000, high: 4000 },
    );
    assert.throws(
      () => granularityLevels({ ...ll, keyframeIntervalMs: 1500 }),
      /keyframeIntervalMs: 1500 is not a multiple of 1000 ms dividing the target 2000 ms/,
    );
  });

  it("lengthens segments under high demand from the next segment boundary", () => {
    // 4 shards per 2 s segment: shard 4001 is in MSN 1000, whose successor starts at shard 4004.
    const d = planSegmentDuration(
      { policy: ll, schedule: since0(2000), currentShard: 4001, sessions: 5000 },
      o,
    );
    assert.equal(d.kind, "change");
    assert.ok(d.kind === "change");
    assert.equal(d.segmentDurationMs, 6000);
    assert.equal(d.effectiveMsn, 1001);
    assert.equal(d.effectiveShard, 4004);
    assert.deepEqual(d.schedule, { segmentDurationMs: 6000, sinceMsn: 1001, sinceShard: 4004 });
    // Numbering continues across the boundary.
    assert.equal(msnOfShard(since0(2000), 500, 4003), 1000);
    assert.equal(msnOfShard(d.schedule, 500, 4004), 1001);
    assert.equal(msnOfShard(d.schedule, 500, 4004 + 12), 1002);
  });

  it("shortens LOW_LATENCY segments for few viewers but not STANDARD ones", () => {
    const low = planSegmentDuration(
      { policy: ll, schedule: since0(2000), currentShard: 100, sessions: 3 },
      o,
    );
    assert.equal(low.segmentDurationMs, 1000);
    assert.equal(low.kind, "change");
    const std = planSegmentDuration(
      { policy: standard, schedule: since0(2000), currentShard: 100, sessions: 3 },
      o,
    );
    assert.deepEqual(std, {
      kind: "keep",
      segmentDurationMs: 2000,
      reason: "normal level (2000 ms) holds",
    });
  });

  it("has hysteresis: stays at a level inside the band and leaves it only past the exit threshold", () => {
    const high: SegmentSchedule = { segmentDurationMs: 6000, sinceMsn: 100, sinceShard: 400 };
    const at = (sessions: number) =>
      planSegmentDuration({ policy: ll, schedule: high, currentShard: 1000, sessions }, o);
    assert.equal(at(3000).kind, "keep");
    assert.equal(at(4999).kind, "keep");
    const down = at(2999);
    assert.ok(down.kind === "change");
    assert.equal(down.segmentDurationMs, 2000);
    const low: SegmentSchedule = { segmentDurationMs: 1000, sinceMsn: 100, sinceShard: 400 };
    const fromLow = (sessions: number) =>
      planSegmentDuration({ policy: ll, schedule: low, currentShard: 1000, sessions }, o);
    assert.equal(fromLow(50).kind, "keep");
    assert.equal(fromLow(51).segmentDurationMs, 2000);
    // From normal, the band between enter and exit changes nothing.
    const normal = (sessions: number) =>
      planSegmentDuration({ policy: ll, schedule: since0(2000), currentShard: 1000, sessions }, o);
    assert.equal(normal(30).kind, "keep");
    assert.equal(normal(4000).kind, "keep");
  });

  it("waits minSegmentsBetweenChanges after a change, except when the spec moved the levels", () => {
    const recent: SegmentSchedule = { segmentDurationMs: 6000, sinceMsn: 100, sinceShard: 400 };
    // Shard 430 is MSN 102 (12 shards per segment): the change would be 3 segments after the last.
    const d = planSegmentDuration(
      { policy: ll, schedule: recent, currentShard: 430, sessions: 100 },
      o,
    );
    assert.equal(d.kind, "keep");
    assert.match(d.reason, /last change was 3 segment\(s\) ago \(< 10\)/);
    const stale: SegmentSchedule = { segmentDurationMs: 3000, sinceMsn: 100, sinceShard: 400 };
    const forced = planSegmentDuration(
      { policy: ll, schedule: stale, currentShard: 405, sessions: 100 },
      o,
    );
    assert.ok(forced.kind === "change");
    assert.equal(forced.segmentDurationMs, 2000);
    assert.equal(forced.effectiveShard, 406);
    assert.match(forced.reason, /no longer a level/);
  });

  it("commits a change ahead: the first boundary at least changeLeadMs after the shard in production", () => {
    // 2 s segments of 0.5 s shards; shard 4001 ends at shard 4002's start.
    const at = (currentShard: number, changeLeadMs: number) => {
      const d = planSegmentDuration(
        { policy: ll, schedule: since0(2000), currentShard, sessions: 5000 },
        { ...o, changeLeadMs },
      );
      assert.ok(d.kind === "change");
      return [d.effectiveMsn, d.effectiveShard];
    };
    assert.deepEqual(at(4001, 0), [1001, 4004]);
    assert.deepEqual(at(4001, 1000), [1001, 4004]); // 4004 >= 4001 + 1 + 2
    assert.deepEqual(at(4002, 1000), [1002, 4008]); // 4004 < 4002 + 1 + 2
    assert.deepEqual(at(4003, 0), [1001, 4004]);
    assert.deepEqual(at(4003, 500), [1002, 4008]);
    assert.deepEqual(at(4003, 2000), [1002, 4008]); // 4008 >= 4003 + 1 + 4
    assert.deepEqual(at(4003, 2500), [1003, 4012]); // 4008 < 4003 + 1 + 5
  });

  it("numbers shards across a whole schedule and checks a change against it", () => {
    const list: SegmentSchedule[] = [
      since0(2000),
      { segmentDurationMs: 1000, sinceMsn: 25, sinceShard: 100 },
      { segmentDurationMs: 4000, sinceMsn: 40, sinceShard: 130 },
    ];
    assert.equal(entryAtShard(list, 99), list[0]);
    assert.equal(entryAtShard(list, 100), list[1]);
    assert.equal(entryAtShard(list, 10_000), list[2]);
    assert.equal(entryOfMsn(list, 24), list[0]);
    assert.equal(entryOfMsn(list, 39), list[1]);
    // Naive walk: every shard's MSN, and every MSN's first shard.
    let msn = 0;
    let inSegment = 0;
    for (let n = 0; n < 200; n++) {
      const e = entryAtShard(list, n);
      if (n === e.sinceShard) assert.equal(inSegment, 0, `shard ${n} is a boundary`);
      assert.equal(msnOfShardIn(list, 500, n), msn, `shard ${n}`);
      if (inSegment === 0) assert.equal(firstShardOfMsnIn(list, 500, msn), n, `msn ${msn}`);
      inSegment++;
      if (inSegment === e.segmentDurationMs / 500) {
        inSegment = 0;
        msn++;
      }
    }
    const last = list[2] as SegmentSchedule;
    const ok = { segmentDurationMs: 2000, sinceMsn: 43, sinceShard: 154 };
    assert.equal(scheduleChangeProblem(list, ok, ll), undefined);
    const cases: [Partial<SegmentSchedule>, RegExp][] = [
      [{ segmentDurationMs: 1500 }, /1500 is not a multiple of the 1000 ms keyframe interval/],
      [{ segmentDurationMs: 7000 }, /7000 is outside the policy's \[1000, 6000\] ms/],
      [{ segmentDurationMs: 4000 }, /already the duration in force/],
      [{ sinceShard: 130, sinceMsn: 40 }, /must be after the last change's first shard 130/],
      [{ sinceShard: 152 }, /152 is not a segment boundary .*4000 ms segments from shard 130/],
      [{ sinceMsn: 44 }, /shard 154 starts MSN 43, not 44/],
    ];
    for (const [change, problem] of cases) {
      assert.match(scheduleChangeProblem(list, { ...ok, ...change }, ll) ?? "", problem);
    }
    assert.equal(last.sinceShard, 130);
    assert.match(
      scheduleChangeProblem(list, { ...ok, segmentDurationMs: 1000 }, standard) ?? "",
      /1000 is outside the policy's \[1500, 6000\] ms/,
    );
    assert.equal(
      scheduleChangeProblem(list, { ...ok, segmentDurationMs: 2500 }, standard),
      undefined,
      "STANDARD aligns to shards",
    );
  });

  it("rejects inconsistent options, policies and positions", () => {
    const base = { policy: ll, schedule: since0(2000), currentShard: 10, sessions: 1 };
    assert.throws(
      () => planSegmentDuration(base, { ...o, highSessionsExit: 6000 }),
      /highSessionsEnter: must be an integer in 6000\.\./,
    );
    assert.throws(
      () => planSegmentDuration({ ...base, policy: { ...ll, partDurationMs: 700 } }, o),
      /policy\.partDurationMs: 700 is not a multiple of shardDurationMs 500/,
    );
    assert.throws(
      () => planSegmentDuration({ ...base, schedule: { ...since0(2000), sinceShard: 20 } }, o),
      /shard: must be an integer in 20\.\./,
    );
    assert.throws(
      () => firstShardOfMsn(since0(1200), 500, 3),
      /not a multiple of the shard duration 500/,
    );
  });

  it("under any demand trace: aligned, bounded, boundary-only changes, continuous numbering, no flapping", () => {
    const policyArb = fc
      .record({
        shard: fc.constantFrom(200, 250, 400, 500),
        partMul: fc.integer({ min: 1, max: 4 }),
        targetParts: fc.integer({ min: 1, max: 6 }),
        lowLatency: fc.boolean(),
        minFrac: fc.double({ min: 0, max: 1, noNaN: true }),
        maxExtra: fc.integer({ min: 0, max: 8000 }),
        keyframeDiv: fc.integer({ min: 0, max: 12 }),
      })
      .map(
        ({
          shard,
          partMul,
          targetParts,
          lowLatency,
          minFrac,
          maxExtra,
          keyframeDiv,
        }): SegmentPolicyInput => {
          const part = shard * partMul;
          const target = Math.max(1000, part * targetParts);
          const aligned = Math.ceil(target / part) * part;
          const min = Math.max(shard, Math.round(shard + (aligned - shard) * minFrac));
          // A keyframe interval: a multiple of the unit dividing the target (0 = the target).
          const unit = lowLatency ? part : shard;
          const units = aligned / unit;
          const divisors = Array.from({ length: units }, (_, i) => i + 1).filter(
            (d) => units % d === 0,
          );
          const k = keyframeDiv === 0 ? 0 : unit * (divisors[keyframeDiv % divisors.length] ?? 1);
          return {
            shardDurationMs: shard,
            latencyMode: lowLatency ? LatencyMode.LOW_LATENCY : LatencyMode.STANDARD,
            segmentDurationTargetMs: aligned,
            segmentDurationMinMs: min,
            segmentDurationMaxMs: Math.min(15000, aligned + maxExtra),
            partDurationMs: lowLatency ? part : 0,
            keyframeIntervalMs: k,
          };
        },
      )
      .filter((p) => p.segmentDurationMaxMs >= p.segmentDurationTargetMs);
    fc.assert(
      fc.property(
        policyArb,
        fc.array(fc.integer({ min: 0, max: 8000 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 40 }),
        (policy, trace, stepShards) => {
          const levels = granularityLevels(policy);
          const unit = policy.keyframeIntervalMs || policy.segmentDurationTargetMs;
          assert.equal(unit % segmentUnitMs(policy), 0, "keyframes fall on part/shard boundaries");
          let schedule = since0(policy.segmentDurationTargetMs);
          const history: SegmentSchedule[] = [schedule];
          let shard = 0;
          let lastChangeMsn = 0;
          for (const sessions of trace) {
            shard += stepShards;
            // As planRound does: a committed change may still lie ahead; plan from its start.
            shard = Math.max(shard, schedule.sinceShard);
            const d = planSegmentDuration(
              { policy, schedule, currentShard: shard, sessions },
              defaultGranularityOptions,
            );
            assert.ok(d.segmentDurationMs % unit === 0, "aligned to keyframes");
            assert.ok(
              d.segmentDurationMs >= policy.segmentDurationMinMs &&
                d.segmentDurationMs <= policy.segmentDurationMaxMs,
            );
            assert.ok(Object.values(levels).includes(d.segmentDurationMs));
            if (d.kind === "change") {
              const curMsn = msnOfShard(schedule, policy.shardDurationMs, shard);
              const perSegment = schedule.segmentDurationMs / policy.shardDurationMs;
              const leadShards = Math.ceil(
                defaultGranularityOptions.changeLeadMs / policy.shardDurationMs,
              );
              assert.ok(d.effectiveMsn > curMsn, "a later segment");
              assert.ok(d.effectiveShard > shard + leadShards, "never in the past, with the lead");
              assert.equal(
                msnOfShard(schedule, policy.shardDurationMs, d.effectiveShard - 1),
                d.effectiveMsn - 1,
                "at a boundary",
              );
              assert.ok(
                d.effectiveShard - perSegment <= shard + leadShards,
                "the first boundary past the lead",
              );
              assert.ok(
                d.effectiveMsn - lastChangeMsn >=
                  defaultGranularityOptions.minSegmentsBetweenChanges,
              );
              lastChangeMsn = d.effectiveMsn;
              schedule = d.schedule;
              history.push(schedule);
            }
          }
          // Naive numbering: walk every shard, cutting segments with the duration in force.
          let msn = 0;
          let inSegment = 0;
          let h = 0;
          for (let n = 0; n <= shard + 50; n++) {
            const nextSchedule = history[h + 1];
            if (nextSchedule && n === nextSchedule.sinceShard) {
              assert.equal(inSegment, 0, "a change lands on a segment boundary");
              h++;
            }
            const cur = history[h] as SegmentSchedule;
            const perSegment = cur.segmentDurationMs / policy.shardDurationMs;
            if (inSegment === 0) {
              assert.equal(
                (n * policy.shardDurationMs) % unit,
                0,
                `segment at shard ${n} starts on a keyframe`,
              );
            }
            assert.equal(msnOfShard(cur, policy.shardDurationMs, n), msn, `shard ${n}`);
            inSegment++;
            if (inSegment === perSegment) {
              inSegment = 0;
              msn++;
            }
          }
          // A steady demand settles: replaying its last value changes nothing more after one change.
          const last = trace[trace.length - 1] as number;
          let steady = schedule;
          let changes = 0;
          for (let k = 1; k <= 40; k++) {
            const d = planSegmentDuration(
              { policy, schedule: steady, currentShard: shard + k * 200, sessions: last },
              defaultGranularityOptions,
            );
            if (d.kind === "change") {
              changes++;
              steady = d.schedule;
            }
          }
          assert.ok(changes <= 1, `steady demand changed ${changes} times`);
        },
      ),
      { seed: 31337, numRuns: 200 },
    );
  });
});
