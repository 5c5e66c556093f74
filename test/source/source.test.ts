/**
 * The source against a real in-test HTTP receiver, with a manual clock and
 * scheduler so tens of seconds of stream run in well under a second.
 */
import assert from "node:assert/strict";
import { createManualClock, type ManualClock } from "../../common/clock.ts";
import { Code, ConnectError } from "../../common/errors.ts";
import { createRng } from "../../common/rng.ts";
import { parseFragment, parseInit, splitFragments } from "../../packager-node/src/media/index.ts";
import {
  type Assignment,
  buildShard,
  classifyReply,
  createManualScheduler,
  createSource,
  type Fixture,
  type LiveSource,
  loadFixture,
  type ManualScheduler,
  type PushLimits,
  type ShardMap,
  type SourceOptions,
  timelineOf,
} from "../../packager-node/src/source/index.ts";
import { ingestPath, type Received, type Receiver, sha256, startReceiver } from "./receiver.ts";

const ORIGIN = 1_700_000_000_000;
const STREAM = "live1";

interface Harness {
  clock: ManualClock;
  scheduler: ManualScheduler;
  sources: LiveSource[];
  /** Advances time in steps, letting real HTTP finish between steps. */
  run(ms: number, stepMs?: number): Promise<void>;
}

function harness(startMs: number): Harness {
  const clock = createManualClock(startMs);
  const scheduler = createManualScheduler(clock);
  const sources: LiveSource[] = [];
  return {
    clock,
    scheduler,
    sources,
    async run(ms, stepMs = 100) {
      for (let t = 0; t < ms; t += stepMs) {
        scheduler.advance(Math.min(stepMs, ms - t));
        await Promise.all(sources.map((s) => s.settled()));
      }
    },
  };
}

function addSource(
  h: Harness,
  fixture: Fixture,
  encoderId: string,
  assignment: Assignment,
  extra: Partial<SourceOptions> = {},
): LiveSource {
  const source = createSource({
    streamId: STREAM,
    encoderId,
    fixture,
    timelineOriginMs: ORIGIN,
    assignment,
    clock: h.clock,
    scheduler: h.scheduler,
    rng: createRng(encoderId.length),
    authToken: encoderId,
    ...extra,
  });
  h.sources.push(source);
  return source;
}

const staticPool = (
  index: number,
  size: number,
  targets: string[],
  unit: "shard" | "segment" = "shard",
): Assignment => ({ kind: "static", epoch: 1, pool: { index, size, unit }, targets });

/** A coordinator shard map over one target: ranges as [first, last (null = open), encoder]. */
function shardMap(
  target: string,
  epoch: number,
  ranges: readonly (readonly [number, number | null, string])[],
): ShardMap {
  return {
    epoch,
    ranges: ranges.map(([firstShard, lastShard, encoderId]) => ({
      firstShard,
      lastShard,
      encoderId,
      replicaTargets: [target],
    })),
  };
}

/** shard number of a part name "{msn}.{part}.m4s" (4 parts per segment). */
function shardOf(name: string): number {
  const m = /^(\d+)\.(\d+)\.m4s$/.exec(name);
  if (!m) throw new Error(`not a part name: ${name}`);
  return Number(m[1]) * 4 + Number(m[2]);
}

function partsOf(reqs: Received[], rendition: string): Received[] {
  return reqs.filter((r) => {
    const p = ingestPath(r.path);
    return p.rendition === rendition && /^\d+\.\d+\.m4s$/.test(p.name);
  });
}

describe("source (manual clock, real HTTP receiver)", function () {
  this.timeout(20_000);
  let fixture: Fixture;
  let receiver: Receiver;
  let h: Harness;

  before(async () => {
    fixture = await loadFixture();
  });
  beforeEach(async () => {
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await Promise.all(h.sources.map((s) => s.stop()));
    await receiver.close();
  });

  /** enc-a and enc-b at shard 20, following a map that gives enc-a everything (epoch 1). */
  const twoFollowers = () => {
    h = harness(ORIGIN + 10_000);
    const initial: Assignment = {
      kind: "map",
      map: shardMap(receiver.url, 1, [[0, null, "enc-a"]]),
    };
    const a = addSource(h, fixture, "enc-a", initial);
    const b = addSource(h, fixture, "enc-b", initial);
    a.start();
    b.start();
    return { a, b, initial };
  };

  it("pushes init first, then every part in real time with a continuous timeline across loops", async () => {
    // Start inside shard 12 (msn 3, part 0); run past two loop boundaries (shards 16 and 32).
    h = harness(ORIGIN + 6_200);
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]));
    source.start();
    await h.run(12_000);
    const reqs = receiver.accepted();
    for (const r of fixture.renditions) {
      const mine = reqs.filter((x) => ingestPath(x.path).rendition === r.id);
      assert.equal(ingestPath(mine[0]!.path).name, "init.mp4", "init precedes media");
      assert.equal(mine.filter((x) => x.path.endsWith("/init.mp4")).length, 1, "init once");
      const parts = partsOf(reqs, r.id);
      const shards = parts.map((p) => shardOf(ingestPath(p.path).name));
      assert.deepEqual(
        shards,
        Array.from({ length: shards.length }, (_, i) => 12 + i),
        "contiguous",
      );
      assert.ok(shards.at(-1)! >= 35, `reached shard ${shards.at(-1)}`);
      const defaults = parseInit(r.initBytes).defaults;
      const ends = new Map<number, bigint>();
      for (const p of parts) {
        const n = shardOf(ingestPath(p.path).name);
        const info = parseFragment(new Uint8Array(p.body), defaults);
        assert.equal(info.sequenceNumber, n + 1);
        for (const tr of info.tracks) {
          const end = ends.get(tr.trackId);
          if (end !== undefined) {
            assert.equal(tr.baseMediaDecodeTime, end, `track ${tr.trackId} gap/overlap at ${n}`);
          }
          ends.set(tr.trackId, tr.baseMediaDecodeTime! + BigInt(tr.durationTicks));
        }
        assert.equal(p.headers["x-understudy-timeline-ms"], String(n * 500));
        assert.equal(p.headers["x-understudy-duration-ms"], "500");
        assert.equal(p.headers["x-understudy-independent"], n % 4 === 0 ? "1" : "0");
        assert.equal(
          p.headers["x-understudy-program-date-time"],
          new Date(ORIGIN + n * 500).toISOString(),
        );
        assert.equal(p.headers["x-understudy-epoch"], "1");
        assert.equal(p.headers["content-type"], "video/mp4");
        assert.equal(p.headers.authorization, "Bearer enc-a");
      }
      // complete segments 3..8 (segment 3's last shard 15 is the first one completed here)
      const segs = reqs.filter(
        (x) => /\/\d+\.m4s$/.test(x.path) && ingestPath(x.path).rendition === r.id,
      );
      const msns = segs.map((s) => Number(ingestPath(s.path).name.split(".")[0]));
      assert.deepEqual(msns.slice(0, 6), [3, 4, 5, 6, 7, 8]);
      for (const s of segs) {
        const frags = splitFragments(new Uint8Array(s.body));
        assert.equal(frags.length, 4);
        assert.equal(s.headers["x-understudy-duration-ms"], "2000");
        assert.equal(s.headers["x-understudy-independent"], "1");
      }
    }
    // every body matches its SHA-256 header
    for (const r of reqs) assert.equal(r.headers["x-understudy-sha256"], sha256(r.body), r.path);
    const st = source.status();
    assert.equal(st.targets[0]!.errors, 0);
    assert.equal(st.targets[0]!.dropped.expired, 0);
    assert.equal(st.shards.produced, st.lastShard! - 12 + 1);
  });

  it("follows a segment schedule change: MSNs and parts continue from the boundary, each push says its segment's length", async () => {
    h = harness(ORIGIN + 10_000); // shard 20 = msn 5 part 0
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]));
    source.start();
    await h.run(3_000); // shards 20..25
    // Committed ahead, as the coordinator does: 4 s segments from shard 32 (msn 8).
    const changed = [
      { sinceShard: 0, sinceMsn: 0, segmentDurationMs: 2000 },
      { sinceShard: 32, sinceMsn: 8, segmentDurationMs: 4000 },
    ];
    assert.deepEqual(source.setSegmentSchedule(changed), { renumberedShards: [] });
    await h.run(9_000); // to shard 43
    const st = source.status();
    assert.equal(st.timeline.segmentDurationMs, 4000);
    assert.equal(st.nextMsn, 9 + Math.floor((st.nextShard - 40) / 8));
    for (const r of fixture.renditions) {
      const parts = partsOf(receiver.accepted(), r.id).map((p) => ({
        name: ingestPath(p.path).name,
        segmentMs: p.headers["x-understudy-segment-duration-ms"],
        timelineMs: Number(p.headers["x-understudy-timeline-ms"]),
        independent: p.headers["x-understudy-independent"],
      }));
      const expected = Array.from({ length: 24 }, (_, i) => {
        const n = 20 + i;
        const name =
          n < 32
            ? `${Math.floor(n / 4)}.${n % 4}.m4s`
            : `${8 + Math.floor((n - 32) / 8)}.${(n - 32) % 8}.m4s`;
        return {
          name,
          segmentMs: n < 32 ? "2000" : "4000",
          timelineMs: n * 500,
          independent: n % 4 === 0 ? "1" : "0",
        };
      });
      assert.deepEqual(parts.slice(0, 24), expected);
      const segs = receiver
        .accepted()
        .filter((x) => /\/\d+\.m4s$/.test(x.path) && ingestPath(x.path).rendition === r.id);
      assert.deepEqual(
        segs.map((x) => [ingestPath(x.path).name, x.headers["x-understudy-duration-ms"]]),
        [
          ["5.m4s", "2000"],
          ["6.m4s", "2000"],
          ["7.m4s", "2000"],
          ["8.m4s", "4000"],
        ],
      );
      const eight = segs[3]!;
      assert.equal(splitFragments(new Uint8Array(eight.body)).length, 8);
      assert.equal(eight.headers["x-understudy-timeline-ms"], String(32 * 500));
    }
    // A change learned after it should have applied is reported, not hidden.
    const late = source.setSegmentSchedule([
      ...changed,
      { sinceShard: 40, sinceMsn: 9, segmentDurationMs: 1000 },
    ]);
    // 40, 41 were 9.0, 9.1 either way; 42, 43 went out as 9.2, 9.3 and would now be 10.0, 10.1.
    assert.deepEqual(late.renumberedShards, [42, 43]);
    assert.throws(
      () => source.setSegmentSchedule([{ sinceShard: 0, sinceMsn: 0, segmentDurationMs: 1250 }]),
      (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument,
    );
  });

  it("two pool members with complementary shards push every shard exactly once, byte-identical", async () => {
    h = harness(ORIGIN + 20_000);
    const a = addSource(h, fixture, "enc-a", staticPool(0, 2, [receiver.url]));
    const b = addSource(h, fixture, "enc-b", staticPool(1, 2, [receiver.url]));
    a.start();
    b.start();
    await h.run(10_000);
    const timeline = timelineOf(fixture, ORIGIN);
    for (const r of fixture.renditions) {
      const parts = partsOf(receiver.accepted(), r.id);
      const shards = parts.map((p) => shardOf(ingestPath(p.path).name)).sort((x, y) => x - y);
      assert.deepEqual(
        shards,
        Array.from({ length: 20 }, (_, i) => 40 + i),
        "each once, no gaps",
      );
      for (const p of parts) {
        const n = shardOf(ingestPath(p.path).name);
        assert.equal(p.headers.authorization, n % 2 === 0 ? "Bearer enc-a" : "Bearer enc-b");
        assert.deepEqual(new Uint8Array(p.body), buildShard(timeline, r, n));
        assert.equal(p.headers["x-understudy-sha256"], sha256(p.body));
      }
      // shard 4m+3 is odd: enc-b owns every segment's last shard and pushes the segment
      const segs = receiver
        .accepted()
        .filter((x) => /\/\d+\.m4s$/.test(x.path) && ingestPath(x.path).rendition === r.id);
      assert.deepEqual(
        segs.map((s) => ingestPath(s.path).name),
        ["10.m4s", "11.m4s", "12.m4s", "13.m4s", "14.m4s"],
      );
      assert.ok(segs.every((s) => s.headers.authorization === "Bearer enc-b"));
      // a segment equals the parts both encoders pushed, concatenated
      for (const s of segs) {
        const msn = Number(ingestPath(s.path).name.split(".")[0]);
        const own = parts
          .filter((p) => Math.floor(shardOf(ingestPath(p.path).name) / 4) === msn)
          .sort((x, y) => shardOf(ingestPath(x.path).name) - shardOf(ingestPath(y.path).name));
        assert.deepEqual(s.body, Buffer.concat(own.map((p) => p.body)));
      }
    }
  });

  it("a shard map change at a boundary moves shards to the other encoder without gaps or duplicates", async () => {
    const { a, b } = twoFollowers();
    await h.run(3_000); // shards 20..25 by enc-a
    // The coordinator keeps the past and hands shards >= 30 to enc-b; the two
    // encoders learn about it at different moments, both before shard 30.
    const next = shardMap(receiver.url, 2, [
      [0, 29, "enc-a"],
      [30, null, "enc-b"],
    ]);
    assert.deepEqual(a.setShardMap(next), { epoch: 2, effectiveFromShard: 26, takenOver: [] });
    await h.run(1_000);
    assert.deepEqual(b.setShardMap(next), { epoch: 2, effectiveFromShard: 28, takenOver: [] });
    await h.run(4_000);
    for (const r of fixture.renditions) {
      const parts = partsOf(receiver.accepted(), r.id);
      const byShard = new Map<number, Received[]>();
      for (const p of parts) {
        const n = shardOf(ingestPath(p.path).name);
        byShard.set(n, [...(byShard.get(n) ?? []), p]);
      }
      const shards = [...byShard.keys()].sort((x, y) => x - y);
      assert.deepEqual(
        shards,
        Array.from({ length: 16 }, (_, i) => 20 + i),
      );
      for (const [n, list] of byShard) {
        assert.equal(list.length, 1, `shard ${n} pushed ${list.length} times`);
        const p = list[0]!;
        assert.equal(
          p.headers.authorization,
          n < 30 ? "Bearer enc-a" : "Bearer enc-b",
          `shard ${n}`,
        );
        assert.equal(p.headers["x-understudy-epoch"], n < 26 ? "1" : "2", `epoch of shard ${n}`);
      }
    }
    // stale and malformed maps are refused with codes the coordinator can act on
    assert.throws(
      () => a.setShardMap(next),
      (e: unknown) => e instanceof ConnectError && e.code === Code.FailedPrecondition,
    );
    assert.throws(
      () => a.setShardMap({ ...next, epoch: 3, ranges: [...next.ranges].reverse() }),
      (e: unknown) =>
        e instanceof ConnectError &&
        e.code === Code.InvalidArgument &&
        /ranges\[0\]\.lastShard: only the last range may be open-ended/.test(e.message),
    );
    assert.equal(a.status().epoch, 2);
  });

  it("takes over a lost encoder's shards from the first one never delivered: at once, in order, under the new epoch", async () => {
    const { a, b } = twoFollowers();
    await h.run(3_000); // enc-a pushes shards 20..25
    await a.stop(); // enc-a dies; shards 26 and 27 complete with nobody producing them
    await h.run(1_200);
    const before = receiver.accepted().length;
    // The coordinator learnt that the packagers have everything up to 25.
    const next = shardMap(receiver.url, 2, [
      [0, 25, "enc-a"],
      [26, null, "enc-b"],
    ]);
    assert.deepEqual(b.setShardMap(next), {
      epoch: 2,
      effectiveFromShard: 28,
      takenOver: [26, 27],
    });
    await b.settled(); // no time passes
    // Pushed right away, before any live shard: 26, 27 and segment 6 (shards 24..27), per rendition.
    const burst = receiver.accepted().slice(before);
    for (const r of fixture.renditions) {
      const mine = burst.filter((x) => ingestPath(x.path).rendition === r.id);
      assert.deepEqual(
        mine.map((x) => ingestPath(x.path).name),
        ["init.mp4", "6.2.m4s", "6.3.m4s", "6.m4s"],
      );
      assert.ok(mine.every((x) => x.headers["x-understudy-epoch"] === "2"));
      assert.ok(mine.every((x) => x.headers.authorization === "Bearer enc-b"));
    }
    await h.run(2_000);
    for (const r of fixture.renditions) {
      const shards = partsOf(receiver.accepted(), r.id).map((p) =>
        shardOf(ingestPath(p.path).name),
      );
      assert.deepEqual(
        shards,
        Array.from({ length: 12 }, (_, i) => 20 + i),
        "every shard once, in order",
      );
    }
    assert.equal(b.status().shards.takenOver, 2);
    // A newer map that hands over nothing new produces nothing again.
    assert.deepEqual(b.setShardMap({ ...next, epoch: 3 }).takenOver, []);
    // A source has no media from before it started: nothing to take over there.
    const c = addSource(h, fixture, "enc-c", {
      kind: "map",
      map: shardMap(receiver.url, 1, [[0, null, "enc-a"]]),
    });
    c.start();
    assert.deepEqual(c.setShardMap(shardMap(receiver.url, 4, [[20, null, "enc-c"]])).takenOver, []);
  });

  it("takes over at most takeoverShardsMax past shards", async () => {
    h = harness(ORIGIN + 10_000);
    const b = addSource(
      h,
      fixture,
      "enc-b",
      { kind: "map", map: shardMap(receiver.url, 1, [[0, null, "enc-a"]]) },
      { takeoverShardsMax: 3 },
    );
    b.start();
    await h.run(4_000); // shards 20..27 complete, none of them enc-b's
    const all = shardMap(receiver.url, 2, [[0, null, "enc-b"]]);
    assert.deepEqual(b.setShardMap(all).takenOver, [25, 26, 27]);
  });

  it("retries a failing packager with backoff, drops what falls out of the live window, re-sends init", async () => {
    receiver.setRespond(() => 500);
    h = harness(ORIGIN + 4_000);
    const limits: Partial<PushLimits> = {
      attemptsMax: 100,
      backoffBaseMs: 100,
      backoffMaxMs: 400,
      maxAgeMs: 1_500,
      queueItemsMax: 4,
    };
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]), {
      limits,
      renditions: ["180p"],
    });
    source.start();
    let maxQueued = 0;
    for (let i = 0; i < 60; i++) {
      await h.run(100);
      maxQueued = Math.max(maxQueued, source.status().targets[0]?.queuedItems ?? 0);
    }
    const failing = receiver.requests.length;
    const st = source.status().targets[0]!;
    assert.ok(failing >= 15, `retried (${failing} requests in 6 s)`);
    assert.ok(failing <= 60, `backoff bounds the request rate (${failing} requests in 6 s)`);
    assert.ok(
      receiver.requests.every((r) => r.path.endsWith("/init.mp4")),
      "init first, always",
    );
    assert.ok(st.dropped.expired >= 5, `old parts dropped (${JSON.stringify(st.dropped)})`);
    assert.ok(st.retries > 0);
    assert.ok(maxQueued <= 4, `queue bounded (saw ${maxQueued})`);
    assert.equal(st.lastError?.status, 500);
    assert.deepEqual(st.initPending, ["180p"]);

    // The packager recovers (empty, as after a restart): init goes first, then fresh parts only.
    receiver.setRespond(() => 201);
    const from = receiver.requests.length;
    await h.run(3_000);
    const after = receiver.requests.slice(from);
    assert.equal(ingestPath(after[0]!.path).name, "init.mp4");
    assert.ok(after.slice(1).every((r) => !r.path.endsWith("/init.mp4")));
    const nowShard = Math.floor((h.clock.nowMs() - ORIGIN) / 500);
    for (const p of partsOf(after, "180p")) {
      const n = shardOf(ingestPath(p.path).name);
      assert.ok(ORIGIN + (n + 1) * 500 >= h.clock.nowMs() - 3_000 - 1_500, `stale shard ${n} sent`);
      assert.ok(n < nowShard);
    }
    const final = source.status().targets[0]!;
    assert.deepEqual(final.initPending, []);
    assert.ok(final.pushed.part >= 5);
  });

  it("a 404 (packager lost the stream) makes the next push re-send init first", async () => {
    h = harness(ORIGIN + 1_000);
    let lose = false;
    receiver.setRespond((req) => {
      if (!lose || req.path.endsWith("/init.mp4")) return 201;
      lose = false;
      return 404;
    });
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]), {
      renditions: ["360p"],
      segmentPush: "never",
    });
    source.start();
    await h.run(1_000);
    lose = true;
    await h.run(1_500);
    const names = receiver.requests.map((r) => `${ingestPath(r.path).name}:${r.status}`);
    const lost = names.findIndex((n) => n.endsWith(":404"));
    assert.ok(lost > 0, names.join(" "));
    assert.equal(names[lost + 1], "init.mp4:201", names.join(" "));
    assert.equal(names[lost + 2], names[lost]!.replace(":404", ":201"), "the refused part again");
    assert.ok(
      names.every((n) => !/^\d+\.m4s/.test(n)),
      "segmentPush never: parts only",
    );
  });

  it("times out a packager that never answers (on the scheduler), retries and stays bounded", async () => {
    receiver.setRespond((req) => (req.path.endsWith("/init.mp4") ? 201 : 0));
    h = harness(ORIGIN + 2_000);
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]), {
      renditions: ["180p"],
      limits: { requestTimeoutMs: 300, backoffBaseMs: 50, backoffMaxMs: 50, maxAgeMs: 2_000 },
    });
    source.start();
    // settled() would wait for the hung requests: step the scheduler and let sockets move instead
    let maxInFlight = 0;
    for (let i = 0; i < 45; i++) {
      h.scheduler.advance(100);
      await new Promise((r) => setTimeout(r, 5));
      maxInFlight = Math.max(maxInFlight, source.status().targets[0]?.inFlight ?? 0);
    }
    assert.equal(maxInFlight, 1, "one request at a time per rendition");
    const st = source.status().targets[0]!;
    assert.match(st.lastError?.message ?? "", /no reply within 300 ms/);
    assert.ok(st.retries >= 3, JSON.stringify(st));
    assert.ok(st.dropped.expired >= 1, JSON.stringify(st.dropped));
    assert.ok(receiver.requests.length <= 4 * 15, `${receiver.requests.length} requests in 4.5 s`);
  });

  it("drops an item the packager refuses for good (409) after one attempt", async () => {
    receiver.setRespond((req) => (req.path.endsWith("/init.mp4") ? 201 : 409));
    h = harness(ORIGIN);
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]), {
      renditions: ["360p"],
      segmentPush: "never",
    });
    source.start();
    await h.run(2_000);
    const st = source.status().targets[0]!;
    assert.equal(st.dropped.rejected, 4);
    assert.equal(st.retries, 0);
    assert.equal(receiver.requests.filter((r) => r.status === 409).length, 4);
    assert.equal(st.pushed.init, 1, "409 does not mean the init was lost");
  });

  it("a push refused as a stale epoch asks for the shard map to be re-read; other 409s do not", async () => {
    let staleEpochCalls = 0;
    let refusal = "stale epoch 3 < 4 for stream s (the coordinator moved this shard)";
    receiver.setRespond((req) =>
      req.path.endsWith("/init.mp4") ? 201 : { status: 409, text: refusal },
    );
    h = harness(ORIGIN);
    const source = addSource(h, fixture, "enc-a", staticPool(0, 1, [receiver.url]), {
      renditions: ["360p"],
      segmentPush: "never",
      onStaleEpoch: () => staleEpochCalls++,
    });
    source.start();
    await h.run(1_000);
    const refused = receiver.requests.filter((r) => r.status === 409).length;
    assert.ok(refused >= 1);
    assert.equal(staleEpochCalls, refused);
    refusal = "conflicting bytes for part 3.1";
    await h.run(1_000);
    assert.ok(receiver.requests.filter((r) => r.status === 409).length > refused);
    assert.equal(staleEpochCalls, refused, "a conflict is not a stale view");
  });
});

describe("source/pusher reply classification", () => {
  it("retries transient failures, re-sends init when the packager may have lost it, gives up on refusals", () => {
    const table = [200, 201, 400, 401, 404, 409, 413, 415, 429, 500, 503].map((s) => {
      const c = classifyReply(s);
      return `${s}:${c.outcome}${c.lostInit ? "+init" : ""}`;
    });
    assert.deepEqual(table, [
      "200:ok",
      "201:ok",
      "400:retry+init",
      "401:reject",
      "404:retry+init",
      "409:reject",
      "413:reject",
      "415:reject",
      "429:retry",
      "500:retry+init",
      "503:retry+init",
    ]);
  });
});
