/**
 * Acceptance ("Live data plane") with real processes on loopback: `understudy
 * source` encoders pushing the looping fixture to `understudy packager`
 * origins, read from outside as a player would (plain and blocking playlist
 * reloads, m3u8-parser as an independent reader).
 *
 * Static pool: two sources (pool size 2, unit shard: even shards from enc-0,
 * odd from enc-1) each push to all three packagers. Replicas fed the same
 * shards must write byte-identical playlists; losing a replica must not
 * disturb the others.
 *
 * Coordinator-driven: 3 coordinators, 3 packagers and 2 coordinator-following
 * sources, each host with its agent; the stream is created over the API and
 * placed by the leader; then an encoder and the primary packager are killed.
 * See test/e2e/README.md for what each test asserts and measured numbers.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { ChainGraph } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ComponentStatus } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { putInit, putPart } from "../packager/helpers.ts";
import { parseStrict } from "../packager/parse-m3u8.ts";
import {
  type CoordinatedCluster,
  createFixtureStream,
  startCoordinatedCluster,
  waitAllComponentsHealthy,
} from "./coordinated-cluster.ts";
import {
  checkNumbering,
  describeUnit,
  gapParts,
  maxInterArrivalMs,
  partsOf,
  playlistsAtSamePart,
  segmentMsns,
  watchPlaylist,
} from "./live-playlists.ts";
import {
  closedSegments,
  createRun,
  type E2ERun,
  freePorts,
  getText,
  type PackagerProc,
  partDurationMs,
  partsPerSegment,
  renditionIds,
  segmentDurationMs,
  sleep,
  startStaticPackager,
  startStaticSource,
  timelineOriginMs,
  waitUntil,
} from "./support.ts";

const streamId = "live";
/** Fed by hand (not by a source) in the takeover test. */
const takeoverStreamId = "takeover";

/** "No gap longer than one part": a new part shows up at least every two part durations. */
const partGapMaxMs = 2 * partDurationMs;

/**
 * DOWN commit → the dead primary's renditions reassigned: within one segment
 * duration (the bound). The reactive handover of a DOWN primary
 * switches at the standby's newest complete segment instead of waiting
 * `handover.switchAheadSegments` ahead (coordinator/src/act/orchestrator.ts).
 */
const packagerMoveMaxMs = segmentDurationMs;

async function sha256Of(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, `${url}: ${res.status}`);
  return createHash("sha256")
    .update(Buffer.from(await res.arrayBuffer()))
    .digest("hex");
}

/** Minimal well-formedness of the MPD (no XML parser is installed): every element closes, in order. */
function checkXmlNesting(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z][\w:.-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (closing) assert.equal(stack.pop(), name, `MPD: </${name}> closes the wrong element`);
    else stack.push(name!);
  }
  assert.deepEqual(stack, [], "MPD: unclosed elements");
}

describe("data plane: a static encoder pool feeding three packager replicas (real processes)", function () {
  this.timeout(60_000);
  let run: E2ERun;
  let packagers: PackagerProc[];

  before(async () => {
    run = createRun("static-pool");
    const ports = await freePorts(3);
    packagers = await Promise.all(
      ports.map((port, i) =>
        startStaticPackager(run, `pkg-${i + 1}`, port, streamId, [takeoverStreamId]),
      ),
    );
    const originMs = timelineOriginMs();
    const targets = packagers.map((p) => p.url);
    await Promise.all(
      [0, 1].map((index) =>
        startStaticSource(run, {
          encoderId: `enc-${index}`,
          streamId,
          originMs,
          index,
          size: 2,
          unit: "shard",
          targets,
        }),
      ),
    );
    await waitUntil("3 closed segments of every rendition on every replica", 30_000, async () => {
      for (const p of packagers)
        for (const r of renditionIds) {
          const res = await getText(`${p.url}/live/${streamId}/${r}/index.m3u8`);
          if (res.status !== 200 || closedSegments(res.text) < 3) return undefined;
        }
      return true;
    });
  });

  after(async () => {
    await run?.cleanup();
  });

  it("(a) replicas write byte-identical playlists and segments that m3u8-parser reads without warnings", async () => {
    const urls = packagers.map((p) => p.url);
    // Multivariant: identical, relative URIs, both renditions.
    const masters = await Promise.all(
      urls.map((u) => getText(`${u}/live/${streamId}/master.m3u8`)),
    );
    for (const m of masters)
      assert.equal(m.text, masters[0]!.text, "multivariant playlists differ");
    const master = parseStrict(masters[0]!.text);
    assert.deepEqual(
      master.playlists?.map((p) => p.uri),
      renditionIds.map((r) => `${r}/index.m3u8`),
    );

    // Media playlists in the same state (blocking reload on the same part) are byte-identical.
    const rounds = 4;
    let identical = 0;
    for (const r of renditionIds) {
      for (let i = 0; i < rounds; i++) {
        const { at, texts } = await playlistsAtSamePart(urls, `/live/${streamId}/${r}/index.m3u8`);
        texts.forEach((t, k) => {
          assert.equal(
            t,
            texts[0],
            `${r} at ${at.msn}.${at.part}: ${urls[k]} differs from ${urls[0]}`,
          );
          checkNumbering(t, `${urls[k]} ${r}`);
        });
        identical++;
        const m = parseStrict(texts[0]!);
        assert.equal(m.targetDuration, segmentDurationMs / 1000);
        assert.equal(m.partTargetDuration, partDurationMs / 1000);
        assert.ok(m.segments.length >= 3, texts[0]);
        for (const s of m.segments) assert.equal(s.duration, segmentDurationMs / 1000);
        // The open segment: its published parts and the preload hint for the next one.
        assert.equal(m.preloadSegment?.preloadHints?.length, 1, texts[0]);
        assert.equal(m.renditionReports?.length, 1, texts[0]);
      }
    }

    // Closed segments and parts: the same bytes on every replica.
    const media = (await getText(`${urls[0]}/live/${streamId}/360p/index.m3u8`)).text;
    const msn = segmentMsns(media).at(-1)!;
    const part = partsOf(media).at(-1)!;
    for (const path of [
      `360p/${msn}.m4s`,
      `180p/${msn}.m4s`,
      `360p/${part.msn}.${part.part}.m4s`,
      "360p/init.mp4",
    ]) {
      const sums = await Promise.all(urls.map((u) => sha256Of(`${u}/live/${streamId}/${path}`)));
      for (const s of sums) assert.equal(s, sums[0], `${path} differs between replicas`);
    }

    // DASH: the MPD of every replica is the same document (it changes only when a segment
    // closes: retry a concurrent fetch that straddled one), and numbers segments as HLS does.
    const mpds = await waitUntil("identical MPDs from the three replicas", 5000, async () => {
      const t = await Promise.all(urls.map((u) => getText(`${u}/live/${streamId}/manifest.mpd`)));
      return t.every((x) => x.status === 200 && x.text === t[0]!.text) ? t : undefined;
    });
    const mpd = mpds[0]!.text;
    checkXmlNesting(mpd);
    assert.ok(!/https?:\/\//.test(mpd), `MPD URLs must be relative:\n${mpd}`);
    const hls = (await getText(`${urls[0]}/live/${streamId}/360p/index.m3u8`)).text;
    const rep =
      /<Representation id="360p"[\s\S]*?startNumber="(\d+)"[\s\S]*?<S t="(\d+)" d="(\d+)"(?: r="(\d+)")?\/>/.exec(
        mpd,
      );
    assert.ok(rep, mpd);
    const [startNumber, t, d, r] = [
      Number(rep[1]),
      Number(rep[2]),
      Number(rep[3]),
      Number(rep[4] ?? 0),
    ];
    assert.equal(d, segmentDurationMs, "DASH segment duration");
    assert.equal(
      t,
      startNumber * segmentDurationMs,
      "DASH S@t is the segment's media time since the origin",
    );
    const lastDash = startNumber + r;
    const hlsMsns = segmentMsns(hls);
    assert.ok(
      hlsMsns.includes(lastDash) || hlsMsns.at(-1)! + 1 === lastDash,
      `DASH last $Number$ ${lastDash} vs HLS segments ${hlsMsns.join(",")}`,
    );
    assert.equal(
      await sha256Of(`${urls[0]}/live/${streamId}/360p/${startNumber}.m4s`),
      await sha256Of(`${urls[1]}/live/${streamId}/360p/${startNumber}.m4s`),
    );
    process.stdout.write(
      `      ${identical} rounds of 3 byte-identical media playlists (2 renditions); MPD identical, startNumber ${startNumber}\n`,
    );
  });

  it("a segment cut short by the next one keeps its place on the timeline (missing parts declared GAP=YES)", async () => {
    // What an encoder takeover leaves behind: the old owner delivered 4.0 and
    // died; the new owner's 4.3 was refused (parts arrive in order) and it
    // goes on with 5.0. Segment 4 must still last 2 s, its lost parts marked
    // as gaps, so EXTINF sums stay on the source timeline and players see a
    // declared gap instead of a hole in the buffer.
    const base = packagers[0]!.url;
    assert.equal((await putInit(base, takeoverStreamId, "360p")).status, 201);
    for (const [msn, part] of [
      [3, 0],
      [3, 1],
      [3, 2],
      [3, 3],
      [4, 0],
    ] as const) {
      const r = await putPart(base, takeoverStreamId, { rendition: "360p", msn, part });
      assert.equal(r.status, 201, `${msn}.${part}: ${r.text}`);
    }
    const refused = await putPart(base, takeoverStreamId, { rendition: "360p", msn: 4, part: 3 });
    assert.equal(refused.status, 409, refused.text);
    const next = await putPart(base, takeoverStreamId, { rendition: "360p", msn: 5, part: 0 });
    assert.equal(next.status, 201, next.text);
    const text = (await getText(`${base}/live/${takeoverStreamId}/360p/index.m3u8`)).text;
    const m = parseStrict(text);
    const seg4 = m.segments.find((s) => s.uri === "4.m4s");
    assert.ok(seg4, text);
    assert.equal(seg4.duration, 2, `segment 4 must keep its 2 s on the timeline:\n${text}`);
    assert.match(
      text,
      /URI="4\.0\.m4s",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0\.500,URI="4\.1\.m4s",GAP=YES\n/,
    );
    assert.match(text, /URI="4\.3\.m4s",GAP=YES\n#EXTINF:2\.000,\n4\.m4s\n/);
    // One PROGRAM-DATE-TIME: the timeline never jumps, so no re-anchoring.
    assert.equal(text.match(/EXT-X-PROGRAM-DATE-TIME/g)?.length, 1, text);
    assert.equal((await getText(`${base}/live/${takeoverStreamId}/360p/4.2.m4s`)).status, 404);
  });

  it("(b) SIGKILL one replica: the others keep numbering and never miss more than one part", async () => {
    const path = `/live/${streamId}/360p/index.m3u8`;
    const watchers = packagers.map((p) => watchPlaylist(p.url, path));
    await sleep(3000);
    const victim = packagers[2]!;
    const killedAt = Date.now();
    await victim.proc.kill();
    await sleep(5000);
    await Promise.all(watchers.map((w) => w.stop()));
    const survivors = [0, 1];
    const lines: string[] = [];
    for (const i of survivors) {
      const w = watchers[i]!;
      const who = packagers[i]!.id;
      assert.deepEqual(w.errors, [], `${who} watcher`);
      const after = w.arrivals.filter((a) => a.atMs > killedAt);
      assert.ok(after.length >= 8, `${who}: only ${after.length} new parts in 5 s after the kill`);
      const gap = maxInterArrivalMs(w.arrivals);
      assert.ok(gap <= partGapMaxMs, `${who}: ${gap} ms without a new part (max ${partGapMaxMs})`);
      for (let k = 1; k < w.mediaSequences.length; k++)
        assert.ok(
          w.mediaSequences[k]! >= w.mediaSequences[k - 1]!,
          `${who}: media sequence went down`,
        );
      assert.deepEqual(gapParts(w.arrivals).map(describeUnit), [], `${who}: declared gaps`);
      const first = w.arrivals[0]!;
      const last = w.arrivals.at(-1)!;
      lines.push(
        `${who}: ${describeUnit(first)}..${describeUnit(last)} contiguous, ${after.length} parts after the kill, longest wait for a new part ${gap} ms`,
      );
    }
    // The two survivors still agree byte for byte.
    const { texts } = await playlistsAtSamePart(
      survivors.map((i) => packagers[i]!.url),
      path,
    );
    assert.equal(texts[1], texts[0], "survivors' playlists differ after the kill");
    process.stdout.write(`      ${lines.join("; ")}\n`);
  });
});

/** Open (current) assignment per rendition. */
function openAssignments(g: ChainGraph) {
  return g.assignments.filter((a) => a.lastMsn === undefined);
}

/** The open-ended shard range (who produces the future). */
function openRange(g: ChainGraph) {
  const r = g.shardMap.at(-1);
  return r && r.lastShard === undefined ? r : undefined;
}

function statusOf(g: ChainGraph, id: string): ComponentStatus | undefined {
  return g.nodes.find((n) => n.componentId === id)?.status;
}

describe("data plane under the coordinator: placement, encoder loss and packager loss (real processes)", function () {
  this.timeout(90_000);
  const sid = "coord";
  let run: E2ERun;
  let cluster: CoordinatedCluster;
  let originMs: number;
  const urlOf = (id: string) => cluster.packagers.find((p) => p.id === id)!.url;

  before(async () => {
    run = createRun("coordinated");
    cluster = await startCoordinatedCluster(run, sid);
    // Every agent registered and healthy first, so the first placement sees all packagers.
    await waitAllComponentsHealthy(cluster);
    originMs = await createFixtureStream(cluster, sid);
    await waitUntil(
      "placement: a primary and a replica per rendition, and a shard map",
      20_000,
      async () => {
        const g = await cluster.chain(sid);
        const open = openAssignments(g);
        const range = openRange(g);
        return open.length === renditionIds.length &&
          open.every((a) => a.replicaPackagerIds.length === 1) &&
          range?.replicaPackagerIds.length === 2
          ? true
          : undefined;
      },
    );
    const g = await cluster.chain(sid);
    await waitUntil("both holders serving a closed segment", 20_000, async () => {
      for (const id of openRange(g)!.replicaPackagerIds) {
        const r = await getText(`${urlOf(id)}/live/${sid}/360p/index.m3u8`);
        if (r.status !== 200 || closedSegments(r.text) < 1) return undefined;
      }
      return true;
    });
  });

  after(async () => {
    await run?.cleanup();
  });

  it("(c1) an encoder dies: DOWN, its shards move to the other encoder from the first one the holders lack, and no part is lost", async () => {
    const g0 = await cluster.chain(sid);
    const range0 = openRange(g0)!;
    const active = cluster.encoders.find((e) => e.id === range0.encoderId)!;
    const other = cluster.encoders.find((e) => e.id !== active.id)!;
    const holders = range0.replicaPackagerIds.map(urlOf);
    const path = `/live/${sid}/360p/index.m3u8`;
    const watchers = holders.map((u) => watchPlaylist(u, path));
    await sleep(2000);
    const killedAt = Date.now();
    await Promise.all([active.proc.kill(), active.agent.kill()]);
    let downAt: number | undefined;
    const moved = await waitUntil(
      `${active.id}'s shards to move to ${other.id}`,
      10_000,
      async () => {
        const g = await cluster.chain(sid);
        if (downAt === undefined && statusOf(g, active.id) === ComponentStatus.DOWN)
          downAt = Date.now();
        return openRange(g)?.encoderId === other.id ? { g, at: Date.now() } : undefined;
      },
    );
    await sleep(4000);
    await Promise.all(watchers.map((w) => w.stop()));

    // The coordinator: the encoder is DOWN, the past of the map is kept up to
    // the last shard the holders received, the rest moved.
    assert.equal(statusOf(moved.g, active.id), ComponentStatus.DOWN);
    const newRange = openRange(moved.g)!;
    const oldPiece = moved.g.shardMap.find((r) => r.encoderId === active.id);
    assert.ok(oldPiece?.lastShard !== undefined, "the dead encoder's past range stays, closed");
    assert.equal(Number(newRange.firstShard), Number(oldPiece.lastShard) + 1);
    const reassignMs = moved.at - killedAt;
    assert.ok(reassignMs < 5000, `reassignment took ${reassignMs} ms`);
    // Shards already complete when the map moved went to the replacement too (rewind).
    const shardAtMove = Math.floor((moved.at - originMs) / partDurationMs);
    const rewound = shardAtMove - Number(newRange.firstShard) + 1;

    // The data plane: both holders got every part, in order, none declared missing;
    // the wait for new media is the detection and reassignment plus the catch-up.
    const lines: string[] = [];
    for (const [i, w] of watchers.entries()) {
      assert.deepEqual(w.errors, [], `${holders[i]} watcher (a hole in the timeline)`);
      assert.deepEqual(gapParts(w.arrivals).map(describeUnit), [], `${holders[i]}: lost parts`);
      const after = w.arrivals.filter((a) => a.atMs > moved.at);
      assert.ok(
        after.length >= 6,
        `${holders[i]}: ${after.length} new parts in 4 s after the move`,
      );
      const wait = maxInterArrivalMs(w.arrivals);
      // One part that was due when the encoder died, detection and reassignment, one part for the catch-up push.
      const waitMaxMs = partDurationMs + reassignMs + partDurationMs;
      assert.ok(
        wait <= waitMaxMs,
        `${holders[i]}: waited ${wait} ms for new media (max ${waitMaxMs})`,
      );
      lines.push(`${holders[i]}: 0 parts lost, longest wait for new media ${wait} ms`);
    }
    const { texts } = await playlistsAtSamePart(holders, path);
    assert.equal(texts[1], texts[0], "the two holders' playlists differ after the encoder change");

    // Fencing: a late push under the dead encoder's epoch is refused.
    const late = await putPart(holders[0]!, sid, {
      rendition: "360p",
      msn: Math.floor(shardAtMove / partsPerSegment) + 20,
      part: 0,
      headers: { "x-understudy-epoch": String(g0.epoch) },
    });
    assert.equal(late.status, 409, late.text);
    assert.match(late.text, /stale epoch/);
    process.stdout.write(
      `      ${active.id} killed: DOWN after ${downAt === undefined ? "?" : downAt - killedAt} ms, shard map moved to ${other.id} after ${reassignMs} ms from shard ${newRange.firstShard} (${rewound} shard(s) already complete, produced by the catch-up); ${lines.join("; ")}; a late epoch-${g0.epoch} push: ${late.status}\n`,
    );
  });

  it("(c2) the primary packager dies: its renditions move, the stream continues on the others without renumbering", async () => {
    const g0 = await cluster.chain(sid);
    const a0 = openAssignments(g0).find((a) => a.renditionId === "360p")!;
    const primary = cluster.packagers.find((p) => p.id === a0.primaryPackagerId)!;
    const survivor = a0.replicaPackagerIds[0]!;
    const path = `/live/${sid}/360p/index.m3u8`;
    const w = watchPlaylist(urlOf(survivor), path);
    const chain = await cluster.watchChain(sid);
    await sleep(1500);
    const killedAt = Date.now();
    await Promise.all([primary.proc.kill(), primary.agent.kill()]);
    const movedOff = (g: ChainGraph) => {
      const open = openAssignments(g);
      return (
        open.length === renditionIds.length &&
        open.every(
          (a) => a.primaryPackagerId !== primary.id && !a.replicaPackagerIds.includes(primary.id),
        )
      );
    };
    const moved = await waitUntil(`${primary.id}'s renditions to move`, 20_000, async () => {
      const g = await cluster.chain(sid);
      return movedOff(g) ? { g, at: Date.now() } : undefined;
    });
    await sleep(3000);
    await w.stop();
    chain.stop();

    const after = openAssignments(moved.g);
    const lastSeen = w.arrivals.at(-1)!;
    for (const a of after) {
      assert.notEqual(a.primaryPackagerId, primary.id);
      // The new assignment continues the source timeline: it starts at or after
      // the last MSN served before the kill and not beyond what was served since.
      assert.ok(Number(a.firstMsn) <= lastSeen.msn, `${a.renditionId} firstMsn ${a.firstMsn}`);
    }
    assert.deepEqual(w.errors, [], `${survivor} watcher`);
    const gap = maxInterArrivalMs(w.arrivals);
    assert.ok(
      gap <= partGapMaxMs,
      `${survivor}: ${gap} ms without a new part (max ${partGapMaxMs})`,
    );
    assert.deepEqual(gapParts(w.arrivals).map(describeUnit), [], `${survivor} lost parts`);
    assert.ok(
      w.arrivals.filter((x) => x.atMs > moved.at).length >= 4,
      `${survivor} stopped growing after the move`,
    );
    // DOWN commit → new assignment, both as ChainService.WatchChain delivered them.
    assert.deepEqual(chain.errors, [], "chain watch");
    const downAt = chain.firstAt((g) => statusOf(g, primary.id) === ComponentStatus.DOWN, killedAt);
    const movedAt = chain.firstAt(movedOff, killedAt);
    assert.ok(downAt !== undefined && movedAt !== undefined, "the watch saw DOWN and the move");
    const downToMoveMs = movedAt - downAt;
    assert.ok(
      downToMoveMs <= packagerMoveMaxMs,
      `renditions moved ${downToMoveMs} ms after ${primary.id} was declared DOWN (max ${packagerMoveMaxMs})`,
    );
    const ids = after.map(
      (a) =>
        `${a.renditionId}: ${a.primaryPackagerId}+${a.replicaPackagerIds.join("+")} from MSN ${a.firstMsn}`,
    );
    process.stdout.write(
      `      ${primary.id} killed: DOWN after ${downAt - killedAt} ms, renditions moved ${downToMoveMs} ms after DOWN (${ids.join("; ")}); ${survivor} served ${describeUnit(w.arrivals[0]!)}..${describeUnit(lastSeen)} contiguous, longest wait ${gap} ms\n`,
    );
  });
});
