import assert from "node:assert/strict";
import fc from "fast-check";
import {
  defaultShardOptions,
  type EncoderInput,
  planShardMaps,
  type ShardRangeRow,
  type ShardStreamInput,
  type StreamShardPlan,
  validateShardRanges,
} from "../../../coordinator/src/plan/index.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";

const enc = (id: string, extra: Partial<EncoderInput> = {}): EncoderInput => ({
  id,
  status: ComponentStatus.HEALTHY,
  maxStreams: 4,
  ...extra,
});

const input = (extra: Partial<ShardStreamInput> = {}): ShardStreamInput => ({
  streamId: "s1",
  currentShard: 57,
  ranges: [{ firstShard: 0, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] }],
  holderPackagerIds: ["p1", "p2"],
  sessions: 10,
  spareCandidates: ["p3", "p4", "p5"],
  ...extra,
});

const planOne = (encoders: EncoderInput[], s: ShardStreamInput, o = defaultShardOptions) =>
  planShardMaps({ encoders, streams: [s] }, o).streams[0] as StreamShardPlan;

/** Encoder and targets of shard n, or undefined when no range covers it. */
function at(ranges: readonly ShardRangeRow[], n: number) {
  const r = ranges.find(
    (x) => x.firstShard <= n && (x.lastShard === undefined || n <= x.lastShard),
  );
  return r && { encoderId: r.encoderId, targets: [...r.replicaPackagerIds].sort() };
}

/** The future [from, ∞) is covered exactly once, ending with one open range. */
function assertFutureCovered(ranges: readonly ShardRangeRow[], from: number) {
  validateShardRanges(ranges);
  const future = ranges.filter((r) => r.lastShard === undefined || r.lastShard >= from);
  assert.ok(future.length > 0);
  assert.ok((future[0] as ShardRangeRow).firstShard <= from, "no gap at the boundary");
  for (let i = 1; i < future.length; i++) {
    assert.equal(
      future[i]?.firstShard,
      (future[i - 1]?.lastShard as number) + 1,
      "contiguous, no overlap",
    );
  }
  assert.equal(future[future.length - 1]?.lastShard, undefined, "ends open");
}

describe("shard map planner", () => {
  it("gives a new stream one open range from the first shard, on the least loaded encoder", () => {
    const p = planOne(
      [enc("e1", { baseStreams: 3 }), enc("e2", { baseStreams: 1 }), enc("e3", { baseStreams: 1 })],
      input({ currentShard: -1, ranges: [], holderPackagerIds: ["p2", "p1"] }),
    );
    assert.equal(p.changed, true);
    assert.deepEqual(p.ranges, [
      { firstShard: 0, lastShard: undefined, encoderId: "e2", replicaPackagerIds: ["p1", "p2"] },
    ]);
  });

  it("changes nothing when the map is healthy (idempotent replanning)", () => {
    const s = input();
    const p = planOne([enc("e1"), enc("e2")], s);
    assert.equal(p.changed, false);
    assert.equal(p.ranges, s.ranges);
    assert.deepEqual(p.futureEncoderIds, ["e1"]);
  });

  it("moves a down encoder's shards to a healthy one at the next shard boundary", () => {
    const p = planOne(
      [enc("e1", { status: ComponentStatus.DOWN }), enc("e2", { baseStreams: 2 }), enc("e3")],
      input(),
    );
    assert.deepEqual(p.ranges, [
      { firstShard: 0, lastShard: 57, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] },
      { firstShard: 58, lastShard: undefined, encoderId: "e3", replicaPackagerIds: ["p1", "p2"] },
    ]);
    assertFutureCovered(p.ranges, 58);
  });

  it("rewinds a lost encoder's shards the holders never received to the replacement", () => {
    const p = planOne(
      [enc("e1", { status: ComponentStatus.DOWN }), enc("e2", { baseStreams: 2 }), enc("e3")],
      input({ firstUnreceivedShard: 55 }),
    );
    assert.deepEqual(p.ranges, [
      { firstShard: 0, lastShard: 54, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] },
      { firstShard: 55, lastShard: undefined, encoderId: "e3", replicaPackagerIds: ["p1", "p2"] },
    ]);
    assert.deepEqual(p.futureEncoderIds, ["e3"]);
    assert.deepEqual(p.notes, ["rewound to shard 55: the holders have not received it"]);
    assertFutureCovered(p.ranges, 55);
    // Replanning the rewound map with the same facts changes nothing.
    const again = planOne(
      [enc("e1", { status: ComponentStatus.DOWN }), enc("e2", { baseStreams: 2 }), enc("e3")],
      input({ ranges: p.ranges, firstUnreceivedShard: 55, currentShard: 58 }),
    );
    assert.equal(again.changed, false);
  });

  it("rewinds only shards no usable encoder owns, within rewindShardsMax, and only with a replacement", () => {
    const down = enc("e1", { status: ComponentStatus.DOWN });
    const ranges: ShardRangeRow[] = [
      { firstShard: 0, lastShard: 49, encoderId: "e2", replicaPackagerIds: ["p1", "p2"] },
      { firstShard: 50, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] },
    ];
    const firsts = (p: StreamShardPlan) => p.ranges.map((r) => [r.firstShard, r.encoderId]);
    // e2's shards stay e2's even though the holders lack them (it still
    // pushes them itself); e1's run 50..57 goes to e2 and merges with its range.
    const usableKept = planOne([down, enc("e2")], input({ ranges, firstUnreceivedShard: 40 }));
    assert.deepEqual(firsts(usableKept), [[0, "e2"]]);
    assert.deepEqual(usableKept.notes, ["rewound to shard 50: the holders have not received it"]);
    // At most rewindShardsMax shards up to currentShard (57): from 54.
    const bounded = planOne([down, enc("e2")], input({ ranges, firstUnreceivedShard: 50 }), {
      ...defaultShardOptions,
      rewindShardsMax: 4,
    });
    assert.deepEqual(firsts(bounded), [
      [0, "e2"],
      [50, "e1"],
      [54, "e2"],
    ]);
    // Everything received: the move happens at the next boundary, as without the facts.
    const received = planOne([down, enc("e2")], input({ ranges, firstUnreceivedShard: 58 }));
    assert.deepEqual(firsts(received), [
      [0, "e2"],
      [50, "e1"],
      [58, "e2"],
    ]);
    // An uncovered past run counts as unproduced, too.
    const holed = planOne(
      [down, enc("e2")],
      input({
        ranges: [
          { firstShard: 0, lastShard: 51, encoderId: "e2", replicaPackagerIds: ["p1"] },
          { firstShard: 56, encoderId: "e1", replicaPackagerIds: ["p1"] },
        ],
        firstUnreceivedShard: 53,
      }),
    );
    assert.deepEqual(firsts(holed), [
      [0, "e2"],
      [53, "e2"],
    ]);
    // No encoder to take over: nothing is rewound, the loss is reported.
    const stuck = planOne(
      [down, enc("e2", { maxStreams: 1, baseStreams: 1 })],
      input({ firstUnreceivedShard: 50 }),
    );
    assert.equal(stuck.changed, false);
    assert.match(stuck.reasons.join(), /encoder e1 is not usable/);
  });

  it("spreads the streams of a failed encoder over the healthy ones", () => {
    const streams = ["a", "b", "c", "d"].map((id) =>
      input({
        streamId: id,
        ranges: [{ firstShard: 0, encoderId: "dead", replicaPackagerIds: ["p1"] }],
      }),
    );
    const plan = planShardMaps({
      encoders: [enc("dead", { status: ComponentStatus.DOWN }), enc("e1"), enc("e2")],
      streams,
    });
    const chosen = plan.streams.map((s) => s.futureEncoderIds.join());
    assert.deepEqual(chosen, ["e1", "e2", "e1", "e2"]);
    assert.equal(plan.encoderLoads.get("e1"), 2);
    assert.equal(plan.encoderLoads.get("e2"), 2);
    assert.equal(plan.encoderLoads.get("dead"), 0);
  });

  it("reassigns DRAINING and unknown encoders but keeps a SUSPECT one", () => {
    const encoders = [
      enc("drain", { status: ComponentStatus.DRAINING }),
      enc("sus", { status: ComponentStatus.SUSPECT }),
      enc("ok"),
    ];
    const r = (encoderId: string) => [
      { firstShard: 0, encoderId, replicaPackagerIds: ["p1", "p2"] },
    ];
    assert.deepEqual(planOne(encoders, input({ ranges: r("drain") })).futureEncoderIds, ["ok"]);
    assert.deepEqual(planOne(encoders, input({ ranges: r("ghost") })).futureEncoderIds, ["ok"]);
    const kept = planOne(encoders, input({ ranges: r("sus") }));
    assert.equal(kept.changed, false);
    // A replacement prefers HEALTHY over SUSPECT even when busier.
    const busy = [
      enc("dead", { status: ComponentStatus.DOWN }),
      enc("sus"),
      enc("ok", { baseStreams: 3 }),
    ];
    busy[1] = { ...busy[1], status: ComponentStatus.SUSPECT } as EncoderInput;
    assert.deepEqual(planOne(busy, input({ ranges: r("dead") })).futureEncoderIds, ["ok"]);
  });

  it("switches push targets at the next shard when the holders change", () => {
    const p = planOne([enc("e1")], input({ holderPackagerIds: ["p2", "p3"] }));
    assert.deepEqual(p.ranges, [
      { firstShard: 0, lastShard: 57, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] },
      { firstShard: 58, lastShard: undefined, encoderId: "e1", replicaPackagerIds: ["p2", "p3"] },
    ]);
  });

  it("keeps planned future ranges of healthy encoders and fills future gaps", () => {
    const ranges: ShardRangeRow[] = [
      { firstShard: 0, lastShard: 99, encoderId: "e1", replicaPackagerIds: ["p1", "p2"] },
      { firstShard: 120, lastShard: 149, encoderId: "e2", replicaPackagerIds: ["p1", "p2"] },
    ];
    const p = planOne([enc("e1"), enc("e2"), enc("e3")], input({ currentShard: 57, ranges }));
    assertFutureCovered(p.ranges, 58);
    assert.deepEqual(
      p.ranges.map((r) => [r.firstShard, r.lastShard, r.encoderId]),
      [
        [0, 119, "e1"],
        [120, 149, "e2"],
        [150, undefined, "e1"],
      ],
    );
  });

  it("gives a hot stream extra replicas up to the bound, with hysteresis", () => {
    const o = { ...defaultShardOptions, hotSessionsEnter: 1000, hotSessionsExit: 600 };
    const hot = planOne([enc("e1")], input({ sessions: 1000 }), o);
    assert.equal(hot.hot, true);
    assert.deepEqual(hot.extraReplicaIds, ["p3", "p4"]);
    assert.deepEqual(hot.ranges[1]?.replicaPackagerIds, ["p1", "p2", "p3", "p4"]);
    assert.equal(hot.ranges[1]?.firstShard, 58);

    const committed = (ranges: readonly ShardRangeRow[], extra: Partial<ShardStreamInput>) =>
      planOne([enc("e1")], input({ ranges, currentShard: 80, ...extra }), o);
    const cooling = committed(hot.ranges, { sessions: 700 });
    assert.equal(cooling.changed, false, "between exit and enter a hot stream stays hot");
    const cooled = committed(hot.ranges, { sessions: 599 });
    assert.equal(cooled.hot, false);
    assert.deepEqual(cooled.ranges[cooled.ranges.length - 1]?.replicaPackagerIds, ["p1", "p2"]);
    assert.equal(cooled.ranges[cooled.ranges.length - 1]?.firstShard, 81);
    const warm = planOne([enc("e1")], input({ sessions: 999 }), o);
    assert.equal(warm.changed, false, "below the enter threshold a cold stream stays cold");

    // Never more than five targets per range.
    const crowded = planOne(
      [enc("e1")],
      input({ sessions: 5000, holderPackagerIds: ["p1", "p2", "p6", "p7"] }),
      o,
    );
    assert.deepEqual(crowded.extraReplicaIds, ["p3"]);
    assert.deepEqual(crowded.notes, ["hot stream: 1/2 extra replicas available"]);
  });

  it("reports instead of inventing when no encoder can take the stream", () => {
    const p = planOne(
      [enc("e1", { status: ComponentStatus.DOWN }), enc("e2", { maxStreams: 1, baseStreams: 1 })],
      input(),
    );
    assert.equal(p.changed, false);
    assert.match(p.reasons.join(), /encoder e1 is not usable and no other encoder has capacity/);
    const none = planOne([], input({ ranges: [], currentShard: -1 }));
    assert.equal(none.changed, false);
    assert.match(none.reasons.join(), /no encoder with capacity/);
  });

  it("compacts closed ranges far in the past when it changes the map", () => {
    const ranges: ShardRangeRow[] = Array.from({ length: 50 }, (_, i) => ({
      firstShard: i * 10,
      lastShard: i === 49 ? undefined : i * 10 + 9,
      encoderId: i % 2 ? "e1" : "e2",
      replicaPackagerIds: ["p1", "p2"],
    }));
    const same = planOne([enc("e1"), enc("e2")], input({ ranges, currentShard: 495 }), {
      ...defaultShardOptions,
      pastShardsRetain: 100,
    });
    assert.equal(same.changed, false, "compaction alone is not worth a command");
    const p = planOne(
      [enc("e1", { status: ComponentStatus.DOWN }), enc("e2")],
      input({ ranges, currentShard: 495 }),
      { ...defaultShardOptions, pastShardsRetain: 100 },
    );
    assert.equal(p.ranges[0]?.firstShard, 390);
    assertFutureCovered(p.ranges, 496);
  });

  it("rejects malformed maps with the offending range", () => {
    assert.throws(
      () =>
        planOne(
          [enc("e1")],
          input({
            ranges: [
              { firstShard: 0, lastShard: 10, encoderId: "e1", replicaPackagerIds: ["p1"] },
              { firstShard: 10, encoderId: "e1", replicaPackagerIds: ["p1"] },
            ],
          }),
        ),
      /streams\[0\]\.ranges\[1\]\.firstShard: 10 overlaps/,
    );
    assert.throws(
      () =>
        planOne(
          [enc("e1")],
          input({
            ranges: [
              { firstShard: 0, encoderId: "e1", replicaPackagerIds: ["p1"] },
              { firstShard: 10, encoderId: "e1", replicaPackagerIds: ["p1"] },
            ],
          }),
        ),
      /ranges\[0\]\.lastShard: only the last range may be open-ended/,
    );
    assert.throws(
      () => planOne([enc("e1"), enc("e1")], input()),
      /encoders\[1\]\.id: duplicate encoder "e1"/,
    );
    assert.throws(
      () => planOne([enc("e1")], input({ firstUnreceivedShard: -3 })),
      /streams\[0\]\.firstUnreceivedShard: must be an integer in 0\.\./,
    );
  });
});

describe("shard map planner vs a naive per-shard rule", () => {
  const encoderArb = fc.record({
    id: fc.constantFrom("e0", "e1", "e2", "e3"),
    status: fc.constantFrom(
      ComponentStatus.HEALTHY,
      ComponentStatus.HEALTHY,
      ComponentStatus.SUSPECT,
      ComponentStatus.DOWN,
      ComponentStatus.DRAINING,
    ),
    maxStreams: fc.integer({ min: 0, max: 3 }),
    baseStreams: fc.integer({ min: 0, max: 3 }),
  });
  const rangesArb = fc
    .array(
      fc.record({
        gap: fc.integer({ min: 0, max: 3 }),
        length: fc.integer({ min: 1, max: 20 }),
        encoderId: fc.constantFrom("e0", "e1", "e2", "e3", "gone"),
        replicaPackagerIds: fc.uniqueArray(fc.constantFrom("p1", "p2", "p3"), {
          minLength: 1,
          maxLength: 3,
        }),
      }),
      { maxLength: 5 },
    )
    .chain((pieces) =>
      fc.boolean().map((openEnd) => {
        const out: ShardRangeRow[] = [];
        let next = 0;
        for (const [i, p] of pieces.entries()) {
          const first = next + p.gap;
          const last = openEnd && i === pieces.length - 1 ? undefined : first + p.length - 1;
          out.push({
            firstShard: first,
            lastShard: last,
            encoderId: p.encoderId,
            replicaPackagerIds: p.replicaPackagerIds,
          });
          next = (last ?? first) + 1;
        }
        return out;
      }),
    );

  const usableIn = (encoders: readonly EncoderInput[]) => (id: string | undefined) =>
    encoders.some(
      (e) =>
        e.id === id &&
        [ComponentStatus.HEALTHY, ComponentStatus.SUSPECT, ComponentStatus.UNKNOWN].includes(
          e.status,
        ),
    );

  /** Naive replacement: scan the next 200 shards for a usable producer, else rank every encoder. */
  function naiveReplacement(encoders: readonly EncoderInput[], s: ShardStreamInput) {
    const usable = usableIn(encoders);
    const futureUsable = new Set<string>();
    for (let k = s.currentShard + 1; k <= s.currentShard + 200; k++) {
      const e = at(s.ranges, k)?.encoderId;
      if (e && usable(e)) futureUsable.add(e);
    }
    if (futureUsable.size > 0) return [...futureUsable].sort()[0];
    const rank = (st: ComponentStatus) =>
      st === ComponentStatus.HEALTHY ? 0 : st === ComponentStatus.UNKNOWN ? 1 : 2;
    const cap = (e: EncoderInput) => e.maxStreams || defaultShardOptions.defaultEncoderMaxStreams;
    return encoders
      .filter((e) => usable(e.id) && (e.baseStreams ?? 0) + 1 <= cap(e))
      .sort(
        (a, b) =>
          rank(a.status) - rank(b.status) ||
          ((a.baseStreams ?? 0) + 1) / cap(a) - ((b.baseStreams ?? 0) + 1) / cap(b) ||
          (a.id < b.id ? -1 : 1),
      )[0]?.id;
  }

  /**
   * Naive rewind start: the lowest n ≥ max(f, currentShard + 1 − bound) such
   * that no shard of [n, currentShard] has a usable owner (needs a replacement).
   */
  function naiveRewindFrom(
    encoders: readonly EncoderInput[],
    s: ShardStreamInput,
    replacement: string | undefined,
  ) {
    const b = s.currentShard + 1;
    const f = s.firstUnreceivedShard;
    if (replacement === undefined || f === undefined) return b;
    const usable = usableIn(encoders);
    for (let n = Math.max(0, f, b - defaultShardOptions.rewindShardsMax); n < b; n++) {
      let none = true;
      for (let k = n; k < b; k++) if (usable(at(s.ranges, k)?.encoderId)) none = false;
      if (none) return n;
    }
    return b;
  }

  /** Naive: the documented rule applied shard by shard. */
  function expectedAt(
    encoders: readonly EncoderInput[],
    s: ShardStreamInput,
    n: number,
    targets: readonly string[],
    replacement: string | undefined,
  ) {
    if (n <= s.currentShard) {
      const rewound = n >= naiveRewindFrom(encoders, s, replacement);
      return rewound ? { encoderId: replacement as string, targets } : at(s.ranges, n);
    }
    const cur = at(s.ranges, n);
    if (cur && usableIn(encoders)(cur.encoderId)) return { encoderId: cur.encoderId, targets };
    return replacement ? { encoderId: replacement, targets } : cur;
  }

  it("maps every shard as the naive rule does, covers the future exactly once, and is idempotent", () => {
    let rewinds = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(encoderArb, { selector: (e) => e.id, maxLength: 4 }),
        rangesArb,
        fc.integer({ min: -1, max: 80 }),
        fc.uniqueArray(fc.constantFrom("p1", "p2", "p3", "p4"), { minLength: 1, maxLength: 4 }),
        fc.option(fc.integer({ min: 0, max: 90 }), { nil: undefined }),
        (encoders, ranges, currentShard, holders, firstUnreceivedShard) => {
          const s = input({
            ranges,
            currentShard,
            holderPackagerIds: holders,
            sessions: 0,
            firstUnreceivedShard,
          });
          const p = planOne(encoders, s);
          const targets = [...holders].sort();
          const anyProducer = p.reasons.length === 0;
          const replacement = naiveReplacement(encoders, s);
          const from = anyProducer ? naiveRewindFrom(encoders, s, replacement) : currentShard + 1;
          if (from <= currentShard) rewinds++;
          if (anyProducer) assertFutureCovered(p.ranges, from);
          else validateShardRanges(p.ranges);
          for (let n = 0; n <= currentShard + 120; n++) {
            const want = expectedAt(encoders, s, n, targets, replacement);
            if (!anyProducer && n > currentShard) continue;
            assert.deepEqual(at(p.ranges, n), want, `shard ${n}`);
          }
          const again = planOne(encoders, { ...s, ranges: p.ranges });
          assert.equal(again.changed, false, "replanning the planned map changes nothing");
        },
      ),
      { seed: 424242, numRuns: 400 },
    );
    assert.ok(rewinds >= 20, `only ${rewinds} of 400 runs exercised a rewind`);
  });
});
