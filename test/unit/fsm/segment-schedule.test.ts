/**
 * The replicated segment schedule (Stream.segment_schedule, command
 * SetSegmentSchedule): validation at apply time, compare-and-set on its
 * version, the bound on entries, immutable spec fields that keep numbering
 * and EXT-X-TARGETDURATION stable, and snapshot round trips.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "../../../common/errors.ts";
import { segmentGranularityOf } from "../../../coordinator/src/api/stream-service.ts";
import { validateStreamSpec } from "../../../coordinator/src/api/validate-stream.ts";
import {
  createFsm,
  encodeCommand,
  type Fsm,
  type FsmChange,
  scheduleOf,
  segmentScheduleEntriesMax,
  segmentScheduleRetainMs,
} from "../../../coordinator/src/fsm/fsm.ts";
import { msnOfShardIn } from "../../../coordinator/src/plan/index.ts";
import {
  LatencyMode,
  StreamSchema,
  StreamSpecSchema,
} from "../../../proto/gen/understudy/common/v1/stream_pb.ts";

type Cmd = Parameters<typeof encodeCommand>[0];

/** Timeline origin of the test stream; shard n is in production during [origin + 500 n, origin + 500 (n+1)). */
const origin = 1_700_000_000_000;
const shardStartMs = (n: number) => origin + 500 * n;

function driver(fsm: Fsm = createFsm()) {
  let seq = 0;
  return {
    fsm,
    /** Applies `command` as proposed at wall time `atMs`. */
    at(atMs: number, command: Cmd, requestId = `r${++seq}`) {
      return fsm.apply(
        fsm.appliedIndex() + 1,
        1,
        encodeCommand(command, {
          requestId,
          proposerNodeId: "c1",
          proposedUnixMs: atMs,
          proposerTerm: 1,
        }),
      );
    },
  };
}

const spec = (policy: Partial<ReturnType<typeof basePolicy>> = {}) => ({
  id: "s1",
  renditions: [
    { id: "v", bandwidthBps: 1_000_000n, width: 640, height: 360, frameRate: 30, codecs: "avc1" },
  ],
  shardDurationMs: 500,
  segmentPolicy: { ...basePolicy(), ...policy },
  replicationFactor: 1,
  latencyMode: LatencyMode.LOW_LATENCY,
  timelineOriginUnixMs: BigInt(origin),
});
function basePolicy() {
  return {
    segmentDurationTargetMs: 2000,
    segmentDurationMinMs: 1000,
    segmentDurationMaxMs: 4000,
    partDurationMs: 500,
    // A keyframe at every part: any part boundary can start a segment.
    keyframeIntervalMs: 500,
  };
}

const change = (
  sinceMsn: number,
  sinceShard: number,
  segmentDurationMs: number,
  expectedScheduleVersion: number,
): Cmd => ({
  op: {
    case: "setSegmentSchedule",
    value: {
      streamId: "s1",
      expectedScheduleVersion: BigInt(expectedScheduleVersion),
      sinceMsn: BigInt(sinceMsn),
      sinceShard: BigInt(sinceShard),
      segmentDurationMs,
      reason: "test",
    },
  },
});

function created(policy: Partial<ReturnType<typeof basePolicy>> = {}) {
  const d = driver();
  assert.ok(
    d.at(origin - 1000, { op: { case: "createStream", value: { spec: spec(policy) } } }).ok,
  );
  return d;
}

const codeOf = (r: ReturnType<Fsm["apply"]>) => (r.ok ? "ok" : r.code);

describe("fsm: segment schedule", () => {
  it("starts a stream at its target from MSN 0 / shard 0, version 0", () => {
    const { fsm } = created();
    const s = fsm.stream("s1");
    assert.equal(s?.segmentScheduleVersion, 0n);
    assert.deepEqual(scheduleOf(s!), [{ sinceMsn: 0, sinceShard: 0, segmentDurationMs: 2000 }]);
  });

  it("appends a change at a future segment boundary, continuing the numbering", () => {
    const d = created();
    const changes: FsmChange[] = [];
    d.fsm.onChange((c) => changes.push(...c));
    const epoch = d.fsm.stream("s1")?.epoch;
    // Shard 41 is in production (MSN 10: shards 40..43); MSN 11 starts at shard 44.
    assert.deepEqual(d.at(shardStartMs(41) + 10, change(11, 44, 4000, 0)), { ok: true });
    const s = d.fsm.stream("s1")!;
    assert.equal(s.segmentScheduleVersion, 1n);
    assert.equal(s.epoch, epoch, "a schedule change fences nothing");
    assert.equal(s.version, 1n, "nor is it a spec update");
    assert.equal(s.segmentSchedule[1]?.decidedUnixMs, BigInt(shardStartMs(41) + 10));
    assert.deepEqual(changes, [{ kind: "stream", id: "s1", deleted: false }]);
    const list = scheduleOf(s);
    assert.deepEqual(
      [43, 44, 51, 52].map((n) => msnOfShardIn(list, 500, n)),
      [10, 11, 11, 12],
    );
  });

  it("refuses what would rewrite the past, break numbering or leave the bounds; nothing changes", () => {
    const d = created();
    const t = shardStartMs(41) + 10;
    const hashBefore = d.fsm.hash();
    const refused: [Cmd, Code, RegExp][] = [
      // MSN 10 started at shard 40: a real boundary, but already cut.
      [change(10, 40, 4000, 0), Code.FailedPrecondition, /40 is not in the future/],
      [
        change(0, 0, 4000, 0),
        Code.InvalidArgument,
        /must be after the last change's first shard 0/,
      ],
      [change(11, 45, 4000, 0), Code.InvalidArgument, /45 is not a segment boundary/],
      [change(12, 44, 4000, 0), Code.InvalidArgument, /shard 44 starts MSN 11, not 12/],
      [change(11, 44, 1250, 0), Code.InvalidArgument, /not a multiple of the 500 ms keyframe/],
      [change(11, 44, 500, 0), Code.InvalidArgument, /outside the policy's \[1000, 4000\]/],
      [change(11, 44, 4500, 0), Code.InvalidArgument, /outside the policy's \[1000, 4000\]/],
      [change(11, 44, 2000, 0), Code.InvalidArgument, /already the duration in force/],
      [change(11, 44, 4000, 3), Code.Aborted, /version 0, command expected 3/],
    ];
    for (const [cmd, code, message] of refused) {
      const r = d.at(t, cmd);
      assert.equal(codeOf(r), code, String(message));
      assert.match(r.ok ? "" : r.message, message);
    }
    // A boundary that exists but is in production (or past) when the command applies.
    const late = d.at(shardStartMs(44), change(11, 44, 4000, 0));
    assert.equal(codeOf(late), Code.FailedPrecondition);
    assert.match(late.ok ? "" : late.message, /not in the future \(shard 44 is in production/);
    const unknown = d.at(t, {
      op: { case: "setSegmentSchedule", value: { streamId: "nope", segmentDurationMs: 4000 } },
    });
    assert.equal(codeOf(unknown), Code.NotFound);
    // Only request ids were recorded: the streams are as before.
    assert.deepEqual(
      toBinary(StreamSchema, d.fsm.stream("s1")!),
      toBinary(StreamSchema, created().fsm.stream("s1")!),
    );
    assert.notEqual(d.fsm.hash(), hashBefore, "request ids are state too");
  });

  it("compare-and-set: two planners racing from the same version, only the first applies", () => {
    const d = created();
    const t = shardStartMs(41);
    assert.ok(d.at(t, change(11, 44, 4000, 0)).ok);
    const second = d.at(t, change(11, 44, 1000, 0));
    assert.equal(codeOf(second), Code.Aborted);
    // A follow-up planned from version 1 continues from the new entry (4 s = 8 shards).
    assert.equal(codeOf(d.at(t, change(13, 60, 1000, 1))), "ok");
    assert.equal(d.fsm.stream("s1")?.segmentScheduleVersion, 2n);
    assert.deepEqual(
      scheduleOf(d.fsm.stream("s1")!).map((e) => e.sinceShard),
      [0, 44, 60],
      "two pending changes, both in the future",
    );
  });

  it("keeps at most 16 entries: drops old past ones, never the one in force or a pending one", () => {
    const d = created({ segmentDurationMinMs: 1000, segmentDurationMaxMs: 2000 });
    // Alternate 1 s / 2 s every 20 shards, each committed just before it applies.
    let shard = 0;
    let msn = 0;
    let ms = 2000;
    let version = 0;
    const step = () => {
      const next = shard + 20;
      msn += 20 / (ms / 500);
      ms = ms === 2000 ? 1000 : 2000;
      const r = d.at(shardStartMs(next - 1), change(msn, next, ms, version));
      assert.equal(codeOf(r), "ok", r.ok ? "" : r.message);
      version++;
      shard = next;
    };
    for (let k = 0; k < 40; k++) step();
    const list = scheduleOf(d.fsm.stream("s1")!);
    assert.equal(list.length, segmentScheduleEntriesMax);
    assert.equal(list.at(-1)?.sinceShard, shard);
    // Entries dropped were entirely in the past; what is left still numbers the window.
    assert.equal(msnOfShardIn(list, 500, shard), msn);

    // Pending entries alone can fill it: then a change is refused rather than dropping one.
    const e = created({ segmentDurationMinMs: 1000, segmentDurationMaxMs: 2000 });
    const t = shardStartMs(1);
    let lastShard = 0;
    let lastMsn = 0;
    let lastMs = 2000;
    for (let v = 0; v < segmentScheduleEntriesMax - 1; v++) {
      const nextShard = lastShard + 4;
      lastMsn += 4 / (lastMs / 500);
      lastMs = lastMs === 2000 ? 1000 : 2000;
      assert.ok(e.at(t, change(lastMsn, nextShard, lastMs, v)).ok);
      lastShard = nextShard;
    }
    const full = e.at(
      t,
      change(lastMsn + 4 / (lastMs / 500), lastShard + 4, lastMs === 2000 ? 1000 : 2000, 15),
    );
    assert.equal(codeOf(full), Code.ResourceExhausted);
  });

  it("drops a past entry once its successor is older than the retention", () => {
    const d = created();
    assert.ok(d.at(shardStartMs(41), change(11, 44, 4000, 0)).ok);
    const retainShards = segmentScheduleRetainMs / 500;
    // Shard 44 + retain: the first entry is entirely past and old.
    const n = 44 + retainShards + 3; // in MSN 11 + floor((retain + 3) / 8)
    const m = 11 + Math.ceil((retainShards + 4) / 8);
    const boundary = 44 + (m - 11) * 8;
    assert.ok(d.at(shardStartMs(n), change(m, boundary, 2000, 1)).ok);
    assert.deepEqual(
      scheduleOf(d.fsm.stream("s1")!).map((e) => e.sinceShard),
      [44, boundary],
    );
  });

  it("pins a schedule-less stream (stored before schedules) before its spec or schedule changes", () => {
    const d = created();
    // As a stream restored from an older snapshot: no schedule entries.
    const snap = d.fsm.snapshot();
    const old = createFsm();
    old.restore(snap);
    const s = old.stream("s1")!;
    s.segmentSchedule.length = 0;
    const legacy = driver(old);
    assert.deepEqual(scheduleOf(s), [{ sinceMsn: 0, sinceShard: 0, segmentDurationMs: 2000 }]);
    const update = legacy.at(shardStartMs(10), {
      op: {
        case: "updateStream",
        value: { spec: spec({ segmentDurationTargetMs: 3000 }), expectedVersion: 1n },
      },
    });
    assert.ok(update.ok);
    assert.deepEqual(
      scheduleOf(old.stream("s1")!),
      [{ sinceMsn: 0, sinceShard: 0, segmentDurationMs: 2000 }],
      "the past keeps the old target's numbering",
    );
  });

  it("refuses spec updates that would renumber shards or change EXT-X-TARGETDURATION", () => {
    const d = created();
    const update = (s: ReturnType<typeof spec>, v: bigint) =>
      d.at(shardStartMs(10), {
        op: { case: "updateStream", value: { spec: s, expectedVersion: v } },
      });
    const shard = update({ ...spec(), shardDurationMs: 250 }, 1n);
    assert.equal(codeOf(shard), Code.InvalidArgument);
    assert.match(shard.ok ? "" : shard.message, /shard_duration_ms: immutable/);
    const td = update(spec({ segmentDurationMaxMs: 6000 }), 1n);
    assert.equal(codeOf(td), Code.InvalidArgument);
    assert.match(
      td.ok ? "" : td.message,
      /must stay in 3001\.\.4000 .*EXT-X-TARGETDURATION \(4 s\)/,
    );
    // Same whole seconds, other bounds and target: fine, and the schedule is untouched.
    assert.ok(
      update(
        spec({
          segmentDurationMaxMs: 3500,
          segmentDurationTargetMs: 3000,
          segmentDurationMinMs: 3000,
        }),
        1n,
      ).ok,
    );
    assert.deepEqual(scheduleOf(d.fsm.stream("s1")!), [
      { sinceMsn: 0, sinceShard: 0, segmentDurationMs: 2000 },
    ]);
  });

  it("GetStream's segment_granularity: the duration in force, the next change and when it lands", () => {
    const d = created();
    assert.ok(d.at(shardStartMs(41), change(11, 44, 4000, 0)).ok);
    const s = d.fsm.stream("s1")!;
    const before = segmentGranularityOf(s, shardStartMs(43) + 499);
    assert.equal(before.currentShard, 43n);
    assert.equal(before.current?.segmentDurationMs, 2000);
    assert.equal(before.next?.segmentDurationMs, 4000);
    assert.equal(before.next?.sinceMsn, 11n);
    assert.equal(before.nextEffectiveUnixMs, BigInt(shardStartMs(44)));
    assert.equal(before.targetDurationS, 4);
    const after = segmentGranularityOf(s, shardStartMs(44));
    assert.equal(after.current?.segmentDurationMs, 4000);
    assert.equal(after.next, undefined);
    assert.equal(after.nextEffectiveUnixMs, 0n);
  });

  it("fixes the keyframe interval at creation (0 = the target) and keeps durations on it", () => {
    const d = created({ keyframeIntervalMs: 0 });
    const policy = () => d.fsm.stream("s1")?.spec?.segmentPolicy;
    assert.equal(policy()?.keyframeIntervalMs, 2000, "unknown: the target's boundaries");
    // 1 s would start segments between the encoder's keyframes; 4 s is fine.
    const t = shardStartMs(41);
    assert.match(
      (d.at(t, change(11, 44, 1000, 0)) as { message: string }).message,
      /1000 is not a multiple of the 2000 ms keyframe interval/,
    );
    assert.ok(d.at(t, change(11, 44, 4000, 0)).ok);
    const update = (p: Partial<ReturnType<typeof basePolicy>>) =>
      d.at(t, {
        op: {
          case: "updateStream",
          value: { spec: spec(p), expectedVersion: d.fsm.stream("s1")!.version },
        },
      });
    const other = update({ keyframeIntervalMs: 1000 });
    assert.equal(codeOf(other), Code.InvalidArgument);
    assert.match(
      other.ok ? "" : other.message,
      /keyframe_interval_ms: immutable after creation \(is 2000\)/,
    );
    const target = update({ keyframeIntervalMs: 0, segmentDurationTargetMs: 3000 });
    assert.match(
      target.ok ? "" : target.message,
      /multiple of the stream's keyframe interval 2000 ms, got 3000/,
    );
    // Omitted (0) keeps it; a new target on it is fine.
    assert.ok(update({ keyframeIntervalMs: 0, segmentDurationTargetMs: 4000 }).ok);
    assert.equal(policy()?.keyframeIntervalMs, 2000);
    assert.equal(policy()?.segmentDurationTargetMs, 4000);
  });

  it("CreateStream/UpdateStream validation: keyframe_interval_ms on the parts, dividing the target", () => {
    const check = (p: Partial<ReturnType<typeof basePolicy>>) =>
      validateStreamSpec(create(StreamSpecSchema, spec(p)))?.rawMessage;
    assert.equal(check({ keyframeIntervalMs: 0 }), undefined);
    assert.equal(check({ keyframeIntervalMs: 1000 }), undefined);
    assert.match(
      check({ keyframeIntervalMs: 750 }) ?? "",
      /spec\.segment_policy\.keyframe_interval_ms: must be 0 \(the target\) or a multiple of the part duration \(500\) that divides the target \(2000\), got 750/,
    );
    assert.match(check({ keyframeIntervalMs: 1500 }) ?? "", /keyframe_interval_ms: .*got 1500/);
  });

  it("snapshot/restore carries the schedule and its version; replicas agree", () => {
    const a = created();
    const b = created();
    for (const x of [a, b]) {
      assert.ok(x.at(shardStartMs(41), change(11, 44, 4000, 0), "same-id").ok);
    }
    assert.equal(a.fsm.hash(), b.fsm.hash());
    const c = createFsm();
    c.restore(a.fsm.snapshot());
    assert.equal(c.hash(), a.fsm.hash());
    assert.deepEqual(scheduleOf(c.stream("s1")!), scheduleOf(a.fsm.stream("s1")!));
    assert.equal(c.stream("s1")?.segmentScheduleVersion, 1n);
    // The restored replica goes on applying exactly like the others.
    const next = change(13, 60, 1000, 1);
    const rc = driver(c);
    assert.ok(rc.at(shardStartMs(50), next, "n").ok);
    assert.ok(a.at(shardStartMs(50), next, "n").ok);
    assert.equal(c.hash(), a.fsm.hash());
    // A retried request id answers as the first time and applies nothing more.
    assert.ok(a.at(shardStartMs(50), next, "n").ok);
    assert.equal(a.fsm.stream("s1")?.segmentScheduleVersion, 2n);
  });
});
