import assert from "node:assert/strict";
import fc from "fast-check";
import {
  defaultGranularityOptions,
  firstShardOfMsn,
  type GranularityOptions,
  granularityLevels,
  msnOfShard,
  planSegmentDuration,
  type SegmentPolicyInput,
  type SegmentSchedule,
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
};
const standard: SegmentPolicyInput = {
  ...ll,
  latencyMode: LatencyMode.STANDARD,
  segmentDurationMinMs: 1500,
  partDurationMs: 0,
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
    };
    assert.deepEqual(granularityLevels(odd), { low: 1600, normal: 3200, high: 4800 });
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
      })
      .map(({ shard, partMul, targetParts, lowLatency, minFrac, maxExtra }): SegmentPolicyInput => {
        const part = shard * partMul;
        const target = Math.max(1000, part * targetParts);
        const aligned = Math.ceil(target / part) * part;
        const min = Math.max(shard, Math.round(shard + (aligned - shard) * minFrac));
        return {
          shardDurationMs: shard,
          latencyMode: lowLatency ? LatencyMode.LOW_LATENCY : LatencyMode.STANDARD,
          segmentDurationTargetMs: aligned,
          segmentDurationMinMs: min,
          segmentDurationMaxMs: Math.min(15000, aligned + maxExtra),
          partDurationMs: lowLatency ? part : 0,
        };
      })
      .filter((p) => p.segmentDurationMaxMs >= p.segmentDurationTargetMs);
    fc.assert(
      fc.property(
        policyArb,
        fc.array(fc.integer({ min: 0, max: 8000 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 40 }),
        (policy, trace, stepShards) => {
          const levels = granularityLevels(policy);
          const unit = segmentUnitMs(policy);
          let schedule = since0(policy.segmentDurationTargetMs);
          const history: SegmentSchedule[] = [schedule];
          let shard = 0;
          let lastChangeMsn = 0;
          for (const sessions of trace) {
            shard += stepShards;
            const d = planSegmentDuration(
              { policy, schedule, currentShard: shard, sessions },
              defaultGranularityOptions,
            );
            assert.ok(d.segmentDurationMs % unit === 0, "aligned to parts/shards");
            assert.ok(
              d.segmentDurationMs >= policy.segmentDurationMinMs &&
                d.segmentDurationMs <= policy.segmentDurationMaxMs,
            );
            assert.ok(Object.values(levels).includes(d.segmentDurationMs));
            if (d.kind === "change") {
              const curMsn = msnOfShard(schedule, policy.shardDurationMs, shard);
              assert.equal(d.effectiveMsn, curMsn + 1, "the next segment");
              assert.ok(d.effectiveShard > shard, "never in the past");
              assert.equal(
                msnOfShard(schedule, policy.shardDurationMs, d.effectiveShard - 1),
                curMsn,
              );
              assert.ok(
                d.effectiveShard - shard <= schedule.segmentDurationMs / policy.shardDurationMs,
                "within one segment duration",
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
