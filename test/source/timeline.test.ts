import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { parseFragment, parseInit, splitFragments } from "../../packager-node/src/media/index.ts";
import {
  type Assignment,
  buildSegment,
  buildShard,
  type Fixture,
  firstShardOf,
  loadFixture,
  parseShardMap,
  rangeOf,
  type ScheduleEntry,
  sequenceNumberOf,
  shardAt,
  shardPosition,
  targetsFor,
  timelineOf,
} from "../../packager-node/src/source/index.ts";

const ORIGIN = 1_700_000_000_000;

describe("source/timeline", () => {
  let fixture: Fixture;
  before(async () => {
    fixture = await loadFixture();
  });

  it("numbers shards, MSNs and parts from the wall-clock origin", () => {
    const t = timelineOf(fixture, ORIGIN);
    assert.equal(shardAt(t, ORIGIN), 0);
    assert.equal(shardAt(t, ORIGIN + 499), 0);
    assert.equal(shardAt(t, ORIGIN + 500), 1);
    assert.equal(shardAt(t, ORIGIN - 1), -1);
    // msn = floor((now - origin) / segmentDurationMs) for the segment in progress
    const now = ORIGIN + 3_600_000 + 1_234;
    assert.equal(shardPosition(t, shardAt(t, now)).msn, Math.floor((now - ORIGIN) / 2000));
    assert.deepEqual(shardPosition(t, 37), {
      shard: 37,
      msn: 9,
      partIndex: 1,
      loop: 2,
      fixturePart: 5,
      timelineMs: 18_500,
      readyAtMs: ORIGIN + 19_000,
      independent: false,
      lastOfSegment: false,
      segmentDurationMs: 2000,
      partsPerSegment: 4,
    });
    assert.equal(shardPosition(t, 39).lastOfSegment, true);
    assert.equal(shardPosition(t, 40).independent, true);
    assert.throws(() => shardPosition(t, -1), /non-negative integer/);
    assert.equal(sequenceNumberOf(0), 1);
    assert.equal(sequenceNumberOf(0xffffffff), 1, "wraps within uint32 and never yields 0");
  });

  it("keeps tfdt continuous across loop boundaries: each part starts where the last ended", () => {
    const t = timelineOf(fixture, ORIGIN);
    for (const r of fixture.renditions) {
      const defaults = parseInit(r.initBytes).defaults;
      const ends = new Map<number, bigint>();
      for (let n = 10; n <= 50; n++) {
        const info = parseFragment(buildShard(t, r, n), defaults);
        assert.equal(info.sequenceNumber, n + 1);
        assert.equal(info.independent, n % 4 === 0, `${r.id} shard ${n} independence`);
        for (const tr of info.tracks) {
          const prevEnd = ends.get(tr.trackId);
          if (prevEnd !== undefined) {
            assert.equal(tr.baseMediaDecodeTime, prevEnd, `${r.id} track ${tr.trackId} shard ${n}`);
          }
          ends.set(tr.trackId, tr.baseMediaDecodeTime! + BigInt(tr.durationTicks));
        }
        const video = info.tracks.find((x) => x.trackId === 1)!;
        assert.equal(video.baseMediaDecodeTime, BigInt(n * 7680), "video at n * 0.5 s");
      }
    }
  });

  it("builds a segment as its four parts and far-future shards with 64-bit decode times", () => {
    const t = timelineOf(fixture, ORIGIN);
    const r = fixture.renditions[0]!;
    const seg = buildSegment(t, r, 9);
    const frags = splitFragments(seg);
    assert.equal(frags.length, 4);
    for (const [i, f] of frags.entries()) assert.deepEqual(f.bytes, buildShard(t, r, 36 + i));
    // ~100 years of shards: video ticks exceed 2^32 by far; still exact
    const far = 6_400_000_000;
    const info = parseFragment(buildShard(t, r, far), parseInit(r.initBytes).defaults);
    assert.equal(info.tracks[0]!.baseMediaDecodeTime, BigInt(far) * 7680n);
  });

  it("cuts segments by a schedule: numbering continues across each change, independence is the fixture's", () => {
    // 2 s segments (4 parts) to msn 10, 4 s (8 parts) from shard 40 (msn 10), 1 s (2 parts) from shard 64 (msn 13).
    const schedule = [
      { sinceShard: 0, sinceMsn: 0, segmentDurationMs: 2000 },
      { sinceShard: 40, sinceMsn: 10, segmentDurationMs: 4000 },
      { sinceShard: 64, sinceMsn: 13, segmentDurationMs: 1000 },
    ];
    const t = timelineOf(fixture, ORIGIN, schedule);
    // A naive walk: count parts, open a new segment when the count reaches the duration in force.
    let msn = 0;
    let part = 0;
    for (let n = 0; n < 90; n++) {
      const ms = n < 40 ? 2000 : n < 64 ? 4000 : 1000;
      const pos = shardPosition(t, n);
      assert.deepEqual([pos.msn, pos.partIndex], [msn, part], `shard ${n}`);
      assert.equal(pos.segmentDurationMs, ms);
      assert.equal(pos.lastOfSegment, part === ms / 500 - 1);
      assert.equal(pos.timelineMs, n * 500, "media time does not depend on the schedule");
      assert.equal(pos.independent, n % 4 === 0, "keyframes where the fixture has them");
      if (part === 0) assert.equal(firstShardOf(t, msn), n);
      part++;
      if (part === ms / 500) {
        part = 0;
        msn++;
      }
    }
    const r = fixture.renditions[0]!;
    const long = splitFragments(buildSegment(t, r, 11));
    assert.equal(long.length, 8);
    for (const [i, f] of long.entries()) assert.deepEqual(f.bytes, buildShard(t, r, 48 + i));
    assert.equal(splitFragments(buildSegment(t, r, 14)).length, 2);
    // Shards are the same bytes whatever the schedule: segments only group them.
    assert.deepEqual(buildShard(t, r, 50), buildShard(timelineOf(fixture, ORIGIN), r, 50));
  });

  it("refuses schedules it cannot cut, naming the entry", () => {
    const bad: [unknown[], RegExp][] = [
      [[], /needs at least one entry/],
      [
        [{ sinceShard: 0, sinceMsn: 0, segmentDurationMs: 1250 }],
        /schedule\[0\]\.segmentDurationMs: 1250/,
      ],
      [
        [
          { sinceShard: 0, sinceMsn: 0, segmentDurationMs: 2000 },
          { sinceShard: 42, sinceMsn: 10, segmentDurationMs: 4000 },
        ],
        /schedule\[1\]: shard 42 \/ msn 10 is not a segment boundary/,
      ],
      [
        [
          { sinceShard: 0, sinceMsn: 0, segmentDurationMs: 2000 },
          { sinceShard: 40, sinceMsn: 11, segmentDurationMs: 4000 },
        ],
        /schedule\[1\]/,
      ],
      [
        [{ sinceShard: -4, sinceMsn: 0, segmentDurationMs: 2000 }],
        /sinceShard: must be a non-negative/,
      ],
    ];
    for (const [schedule, message] of bad) {
      assert.throws(() => timelineOf(fixture, ORIGIN, schedule as ScheduleEntry[]), message);
    }
    // A schedule pruned of its oldest entries starts later: earlier shards have no number.
    const pruned = timelineOf(fixture, ORIGIN, [
      { sinceShard: 400, sinceMsn: 100, segmentDurationMs: 2000 },
    ]);
    assert.equal(shardPosition(pruned, 401).msn, 100);
    assert.throws(() => shardPosition(pruned, 399), /before the segment schedule/);
  });

  it("produces byte-identical shards from independently loaded fixtures", async () => {
    const other = await loadFixture();
    const a = timelineOf(fixture, ORIGIN);
    const b = timelineOf(other, ORIGIN);
    for (const n of [0, 15, 16, 123]) {
      assert.deepEqual(
        buildShard(a, fixture.renditions[1]!, n),
        buildShard(b, other.renditions[1]!, n),
      );
    }
  });
});

describe("source/shard-map", () => {
  const target = "http://127.0.0.1:9";

  it("assigns static pools per shard or per segment", () => {
    const pool = (index: number, unit: "shard" | "segment"): Assignment => ({
      kind: "static",
      epoch: 1,
      pool: { index, size: 2, unit },
      targets: [target],
    });
    const owners = (unit: "shard" | "segment") =>
      Array.from({ length: 10 }, (_, n) =>
        targetsFor(pool(0, unit), "x", n, Math.floor(n / 4))
          ? 0
          : targetsFor(pool(1, unit), "x", n, Math.floor(n / 4))
            ? 1
            : -1,
      );
    assert.deepEqual(owners("shard"), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    assert.deepEqual(owners("segment"), [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]);
  });

  it("finds the owning range and its replica targets", () => {
    const map = parseShardMap({
      epoch: 2,
      ranges: [
        { firstShard: 0, lastShard: 9, encoderId: "a", replicaTargets: [`${target}/`] },
        {
          firstShard: 20,
          lastShard: null,
          encoderId: "b",
          replicaTargets: [target, "https://x:1"],
        },
      ],
    });
    assert.equal(map.ranges[0]!.replicaTargets[0], target, "trailing slash removed");
    assert.equal(rangeOf(map, 9)!.encoderId, "a");
    assert.equal(rangeOf(map, 10), undefined, "gap: nobody in this pool");
    assert.equal(rangeOf(map, 1e12)!.encoderId, "b");
    const a: Assignment = { kind: "map", map };
    assert.deepEqual(targetsFor(a, "a", 3, 0), [target]);
    assert.equal(targetsFor(a, "b", 3, 0), undefined);
    assert.deepEqual(targetsFor(a, "b", 25, 6), [target, "https://x:1"]);
  });

  it("rejects malformed maps naming the field", () => {
    const range = (first: number, last: number | null, enc = "a") => ({
      firstShard: first,
      lastShard: last,
      encoderId: enc,
      replicaTargets: [target],
    });
    const field = (value: unknown) => {
      try {
        parseShardMap(value);
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return `${err.field}: ${err.problem}`;
      }
      assert.fail("expected a ConfigError");
    };
    assert.match(field({ epoch: 0, ranges: [range(0, null)] }), /^epoch: expected an integer in 1/);
    assert.match(field({ epoch: 1, ranges: [] }), /^ranges: needs at least 1/);
    assert.match(
      field({ epoch: 1, ranges: [range(5, 4)] }),
      /^ranges\[0\]\.lastShard: must be >= firstShard/,
    );
    assert.match(
      field({ epoch: 1, ranges: [range(0, 10), range(10, null)] }),
      /^ranges\[1\]\.firstShard: must be > ranges\[0\]\.lastShard \(10\)/,
    );
    assert.match(
      field({ epoch: 1, ranges: [range(0, null), range(10, null)] }),
      /^ranges\[0\]\.lastShard: only the last range may be open-ended/,
    );
    assert.match(
      field({ epoch: 1, ranges: [{ ...range(0, null), replicaTargets: ["ftp://x"] }] }),
      /^ranges\[0\]\.replicaTargets\[0\]: expected an http\(s\) base URL/,
    );
    assert.match(
      field({ epoch: 1, ranges: [{ ...range(0, null), extra: 1 }] }),
      /^ranges\[0\]\.extra: unknown field/,
    );
  });
});
