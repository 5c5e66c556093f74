/**
 * Segment granularity end to end, real processes (3 coordinators, 3
 * packagers and 2 coordinator-following sources, each host with its agent):
 * a LOW_LATENCY stream with no viewers, created with 4 s segments and a
 * timeline origin two minutes back (so the planner's dwell after the
 * stream's start is over).
 *
 * 1. An operator lowers segment_duration_min_ms to 2 s (StreamService.
 *    UpdateStream). The leader's planner applies its rule, "LOW_LATENCY with
 *    few sessions: the shortest level", and commits 2 s segments from a
 *    boundary ahead.
 * 2. The operator raises the minimum back to 4 s: 2 s is no longer allowed,
 *    so the planner goes back to 4 s at once (no dwell).
 *
 * On both holders, followed as a player does (blocking reloads): each change
 * lands at a segment boundary (the MSN and first shard the schedule says, at
 * least the planner's lead after the commit), MSNs stay contiguous (nothing
 * renumbered, no gap, no GAP=YES), EXTINF is 4 s, then 2 s from the first
 * changed MSN, then 4 s again, the timeline is continuous (one
 * PROGRAM-DATE-TIME per playlist), EXT-X-TARGETDURATION and the hold-backs
 * never change, and the two holders' playlists in the same state are
 * byte-identical. The numbers measured are printed.
 */
import assert from "node:assert/strict";
import type { ChainGraph } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import type { SegmentScheduleEntry } from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { parseStrict } from "../packager/parse-m3u8.ts";
import {
  type CoordinatedCluster,
  createFixtureStream,
  getStream,
  startCoordinatedCluster,
  updateSegmentPolicy,
  waitAllComponentsHealthy,
} from "./coordinated-cluster.ts";
import {
  closedSegments,
  createRun,
  type E2ERun,
  getText,
  partDurationMs,
  renditionIds,
  sleep,
  waitUntil,
} from "./support.ts";

const sid = "gran";
const path = `/live/${sid}/360p/index.m3u8`;
/** The fixture's keyframes are 2 s apart: segments of 2 s or 4 s all start with one. */
const policy = (minMs: number) => ({
  segmentDurationTargetMs: 4000,
  segmentDurationMinMs: minMs,
  segmentDurationMaxMs: 4000,
  partDurationMs: 500,
  keyframeIntervalMs: 2000,
});

interface Listed {
  readonly msn: number;
  /** EXTINF in ms. */
  readonly durationMs: number;
  /** Indexes of its EXT-X-PART lines (empty when listed without parts). */
  readonly parts: number[];
}

/** One media playlist, read line by line (m3u8-parser checks the syntax separately). */
function readPlaylist(text: string) {
  const header = (re: RegExp) => re.exec(text)?.[1];
  const segments: Listed[] = [];
  let pending: { msn: number; part: number }[] = [];
  let duration: number | undefined;
  for (const line of text.split("\n")) {
    const part = /^#EXT-X-PART:.*URI="(\d+)\.(\d+)\.m4s"/.exec(line);
    if (part) pending.push({ msn: Number(part[1]), part: Number(part[2]) });
    const inf = /^#EXTINF:([\d.]+),/.exec(line);
    if (inf) duration = Math.round(Number(inf[1]) * 1000);
    const seg = /^(\d+)\.m4s$/.exec(line);
    if (seg && duration !== undefined) {
      const msn = Number(seg[1]);
      segments.push({
        msn,
        durationMs: duration,
        parts: pending.filter((p) => p.msn === msn).map((p) => p.part),
      });
      pending = [];
      duration = undefined;
    }
  }
  return {
    targetDuration: header(/^#EXT-X-TARGETDURATION:(\d+)$/m),
    serverControl: header(/^#EXT-X-SERVER-CONTROL:(.*)$/m),
    partInf: header(/^#EXT-X-PART-INF:(.*)$/m),
    mediaSequence: Number(header(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m)),
    pdts: [...text.matchAll(/^#EXT-X-PROGRAM-DATE-TIME:(.*)$/gm)].map((m) => Date.parse(m[1]!)),
    gaps: /#EXT-X-GAP|GAP=YES/.test(text),
    segments,
    /** The open segment's parts. */
    open: pending,
  };
}

/** The part a player asks for next: after the newest listed part (past a segment's end = part 0 of the next). */
function nextWanted(text: string): { msn: number; part: number } | undefined {
  const p = readPlaylist(text);
  const open = p.open.at(-1);
  if (open) return { msn: open.msn, part: open.part + 1 };
  const last = p.segments.at(-1);
  if (!last) return undefined;
  const lastPart = last.parts.at(-1);
  return lastPart === undefined
    ? { msn: last.msn + 1, part: 0 }
    : { msn: last.msn, part: lastPart + 1 };
}

interface Recorder {
  /** EXTINF (ms) of every closed segment seen, by MSN. */
  readonly durations: Map<number, number>;
  /** Wall ms when each MSN was first seen closed. */
  readonly closedAt: Map<number, number>;
  /** PROGRAM-DATE-TIME (ms) of each MSN, from the playlist's single anchor. */
  readonly pdtOf: Map<number, number>;
  readonly headers: Set<string>;
  readonly errors: string[];
  playlists: number;
  stop(): Promise<void>;
}

/**
 * Follows one holder's media playlist with blocking reloads and checks every
 * playlist: contiguous MSNs from EXT-X-MEDIA-SEQUENCE, one PROGRAM-DATE-TIME
 * (a continuous timeline), no gap, each closed segment's listed parts
 * 0..n-1 adding up to its EXTINF, the open segment's parts from 0, and no
 * MSN ever listed with another duration.
 */
function record(baseUrl: string): Recorder {
  const r: Recorder = {
    durations: new Map(),
    closedAt: new Map(),
    pdtOf: new Map(),
    headers: new Set(),
    errors: [],
    playlists: 0,
    stop: async () => undefined,
  };
  const abort = new AbortController();
  let stopped = false;
  const loop = (async () => {
    let want: { msn: number; part: number } | undefined;
    while (!stopped) {
      const q = want ? `?_HLS_msn=${want.msn}&_HLS_part=${want.part}` : "";
      let text: string;
      try {
        const res = await getText(`${baseUrl}${path}${q}`, 8000, abort.signal);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
        text = res.text;
      } catch (err) {
        if (!stopped) r.errors.push(`${baseUrl}: ${(err as Error).message}`);
        await sleep(100);
        continue;
      }
      const now = Date.now();
      r.playlists++;
      const p = readPlaylist(text);
      const fail = (what: string) => r.errors.push(`${baseUrl}: ${what}\n${text}`);
      r.headers.add(`${p.targetDuration}|${p.serverControl}|${p.partInf}`);
      if (p.gaps) fail("a gap");
      if (p.pdts.length !== 1) fail(`${p.pdts.length} PROGRAM-DATE-TIME tags`);
      let pdt = p.pdts[0] ?? 0;
      p.segments.forEach((s, i) => {
        if (s.msn !== p.mediaSequence + i) fail(`msn ${s.msn} at position ${i}`);
        if (s.parts.length > 0) {
          const want = Array.from({ length: s.durationMs / partDurationMs }, (_, k) => k);
          if (s.parts.join() !== want.join()) fail(`msn ${s.msn}: parts ${s.parts.join()}`);
        }
        const known = r.durations.get(s.msn);
        if (known !== undefined && known !== s.durationMs)
          fail(`msn ${s.msn} was ${known} ms, now ${s.durationMs} ms`);
        if (known === undefined) {
          r.durations.set(s.msn, s.durationMs);
          r.closedAt.set(s.msn, now);
        }
        r.pdtOf.set(s.msn, pdt);
        pdt += s.durationMs;
      });
      const lastMsn = p.segments.at(-1)?.msn;
      if (p.open.length > 0) {
        if (lastMsn !== undefined && p.open[0]!.msn !== lastMsn + 1) fail("open segment not next");
        if (lastMsn !== undefined && p.open.some((o, k) => o.part !== k)) fail("open parts");
      }
      want = nextWanted(text);
    }
  })();
  r.stop = async () => {
    stopped = true;
    abort.abort();
    await loop;
  };
  return r;
}

/** The holders' playlists in the same state: each answers a blocking reload for the same next part. */
async function sameState(urls: readonly string[]): Promise<string[]> {
  const first = await getText(`${urls[0]}${path}`);
  const want = nextWanted(first.text);
  assert.ok(want, first.text);
  return Promise.all(
    urls.map(async (u) => {
      const r = await getText(`${u}${path}?_HLS_msn=${want.msn}&_HLS_part=${want.part}`, 10_000);
      assert.equal(r.status, 200, r.text);
      return r.text;
    }),
  );
}

function openRange(g: ChainGraph) {
  const r = g.shardMap.at(-1);
  return r && r.lastShard === undefined ? r : undefined;
}

/** Waits for the schedule's entry number `n` (0 = the creation one); returns it with what GetStream said first. */
async function scheduleEntry(cluster: CoordinatedCluster, n: number) {
  return waitUntil(`segment schedule entry ${n}`, 15_000, async () => {
    const res = await getStream(cluster, sid);
    const e = res.stream?.segmentSchedule[n];
    if (!e) return undefined;
    const g = res.segmentGranularity;
    return { entry: e, seenAsNext: g?.next?.sinceShard === e.sinceShard, granularity: g };
  });
}

describe("segment granularity under the coordinator: a stream's segment duration changes at a boundary (real processes)", function () {
  this.timeout(120_000);
  let run: E2ERun;
  let cluster: CoordinatedCluster;
  let originMs: number;
  let holders: string[];

  before(async () => {
    run = createRun("granularity");
    cluster = await startCoordinatedCluster(run, sid);
    await waitAllComponentsHealthy(cluster);
    // Two minutes of timeline already behind (30 segments of 4 s): past the
    // planner's dwell of 15 segments after the stream's first schedule entry.
    const now = Date.now();
    originMs = Math.floor((now - 120_000) / 4000) * 4000;
    await createFixtureStream(cluster, sid, now, { originMs, segmentPolicy: policy(4000) });
    const g = await waitUntil(
      "a primary and a replica per rendition, and a shard map",
      20_000,
      async () => {
        const graph = await cluster.chain(sid);
        const open = graph.assignments.filter((a) => a.lastMsn === undefined);
        return open.length === renditionIds.length &&
          openRange(graph)?.replicaPackagerIds.length === 2
          ? graph
          : undefined;
      },
    );
    holders = openRange(g)!.replicaPackagerIds.map(
      (id) => cluster.packagers.find((p) => p.id === id)!.url,
    );
    await waitUntil("both holders serving a closed segment", 20_000, async () => {
      for (const u of holders) {
        const r = await getText(`${u}${path}`);
        if (r.status !== 200 || closedSegments(r.text) < 1) return undefined;
      }
      return true;
    });
  });

  after(async () => {
    await run?.cleanup();
  });

  it("4 s → 2 s (few viewers, lower minimum) → 4 s (minimum raised): boundary-exact, contiguous, identical, fixed target duration", async () => {
    const recorders = holders.map(record);
    const identical: string[][] = [];
    const closedOnBoth = (msn: number) =>
      waitUntil(`msn ${msn} closed on both holders`, 20_000, async () =>
        recorders.every((r) => r.durations.has(msn)) ? true : undefined,
      );
    const entry0 = (await getStream(cluster, sid)).stream!.segmentSchedule[0]!;
    assert.equal(entry0.segmentDurationMs, 4000);
    assert.equal(entry0.sinceShard, 0n);
    identical.push(await sameState(holders));

    // 1. The operator allows 2 s: the planner picks it (few sessions, LOW_LATENCY).
    const update1At = Date.now();
    const s1 = await updateSegmentPolicy(cluster, sid, policy(2000));
    assert.equal(s1.segmentSchedule.length, 1, "the update itself changes no schedule");
    const c1 = await scheduleEntry(cluster, 1);
    const e1 = c1.entry;
    assert.equal(e1.segmentDurationMs, 2000);
    assert.match(e1.reason, /normal → low \(4000 → 2000 ms\)/);
    await closedOnBoth(Number(e1.sinceMsn) + 2);
    identical.push(await sameState(holders));

    // 2. The operator raises the minimum back: 2 s is no level any more, 4 s at once.
    const update2At = Date.now();
    await updateSegmentPolicy(cluster, sid, policy(4000));
    const c2 = await scheduleEntry(cluster, 2);
    const e2 = c2.entry;
    assert.equal(e2.segmentDurationMs, 4000);
    assert.match(e2.reason, /no longer a level/);
    await closedOnBoth(Number(e2.sinceMsn) + 1);
    identical.push(await sameState(holders));
    await Promise.all(recorders.map((r) => r.stop()));

    // Each change: at a boundary of the schedule before it (8 shards per 4 s
    // segment, 4 per 2 s), its MSN continuing the numbering, committed ahead.
    const at = (e: SegmentScheduleEntry) => originMs + Number(e.sinceShard) * partDurationMs;
    assert.equal(Number(e1.sinceShard) % 8, 0);
    assert.equal(Number(e1.sinceMsn), Number(e1.sinceShard) / 8);
    assert.equal((Number(e2.sinceShard) - Number(e1.sinceShard)) % 4, 0);
    assert.equal(
      Number(e2.sinceMsn),
      Number(e1.sinceMsn) + (Number(e2.sinceShard) - Number(e1.sinceShard)) / 4,
    );
    const leads = [c1, c2].map(({ entry }) => at(entry) - Number(entry.decidedUnixMs));
    for (const [i, lead] of leads.entries()) {
      assert.ok(lead >= 1000, `change ${i + 1} committed only ${lead} ms before it applied`);
      assert.ok(lead <= 1000 + 4000 + partDurationMs, `change ${i + 1} applied ${lead} ms later`);
    }
    assert.ok(c1.seenAsNext || c2.seenAsNext, "GetStream showed a coming change as `next`");
    for (const c of [c1, c2]) {
      if (c.seenAsNext) assert.equal(Number(c.granularity?.nextEffectiveUnixMs), at(c.entry));
    }

    // What the holders served.
    const m1 = Number(e1.sinceMsn);
    const m2 = Number(e2.sinceMsn);
    const expected = (msn: number) => (msn < m1 || msn >= m2 ? 4000 : 2000);
    const lines: string[] = [];
    for (const [i, r] of recorders.entries()) {
      assert.deepEqual(r.errors, [], `${holders[i]}: playlist checks`);
      assert.deepEqual(
        [...r.headers],
        ["4|CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=12.000|PART-TARGET=0.500"],
        `${holders[i]}: target duration and hold-backs never change`,
      );
      const msns = [...r.durations.keys()].sort((a, b) => a - b);
      assert.deepEqual(
        msns,
        Array.from({ length: msns.length }, (_, k) => msns[0]! + k),
        "contiguous MSNs",
      );
      const from = Math.max(msns[0]! + 1, m1 - 2); // the first may be a joined-midway partial
      assert.ok(msns[0]! < m1 && msns.at(-1)! > m2, `${holders[i]} saw ${msns[0]}..${msns.at(-1)}`);
      for (const msn of msns.filter((x) => x >= from)) {
        assert.equal(r.durations.get(msn), expected(msn), `${holders[i]} msn ${msn}`);
      }
      // Boundary-exact on the media timeline: the first changed MSN starts at its first shard.
      assert.equal(r.pdtOf.get(m1), at(e1), "msn m1 starts at since_shard 1");
      assert.equal(r.pdtOf.get(m2), at(e2), "msn m2 starts at since_shard 2");
      lines.push(
        `${holders[i]}: ${r.playlists} playlists, msn ${from}..${msns.at(-1)} EXTINF ${[m1 - 1, m1, m2 - 1, m2].map((m) => `${m}:${(r.durations.get(m) ?? 0) / 1000}`).join(" ")}`,
      );
    }
    // Both holders saw the same durations for every MSN both saw.
    for (const [msn, d] of recorders[0]!.durations) {
      const other = recorders[1]!.durations.get(msn);
      if (other !== undefined) assert.equal(other, d, `msn ${msn} differs between holders`);
    }
    for (const texts of identical) {
      assert.equal(texts[1], texts[0], "holders' playlists in the same state differ");
      parseStrict(texts[0]!);
    }
    const late = identical[2]![0]!;
    assert.ok(late.includes("#EXTINF:2.000,") || late.includes("#EXTINF:4.000,"));
    // DASH: the same SegmentTimeline runs of d="4000" and d="2000" on both holders.
    const mpd = await waitUntil("identical MPDs on the holders", 10_000, async () => {
      const texts = await Promise.all(
        holders.map(async (u) => (await getText(`${u}/live/${sid}/manifest.mpd`)).text),
      );
      return texts[0] === texts[1] ? texts[0] : undefined;
    });
    assert.ok(/d="2000"/.test(mpd!) && /d="4000"/.test(mpd!), mpd);

    process.stdout.write(
      `      change 1 (min 4 s → 2 s): update → committed ${Number(e1.decidedUnixMs) - update1At} ms, effective from msn ${m1} (shard ${e1.sinceShard}) ${leads[0]} ms after the commit; ` +
        `change 2 (min back to 4 s): update → committed ${Number(e2.decidedUnixMs) - update2At} ms, effective from msn ${m2} (shard ${e2.sinceShard}) ${leads[1]} ms after; ` +
        `seen as next: ${c1.seenAsNext}/${c2.seenAsNext}; ${lines.join("; ")}; same-state playlists identical ${identical.length}/${identical.length}\n`,
    );
  });
});
