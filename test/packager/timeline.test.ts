import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFragmentTiming, readInitTiming } from "../../packager-node/src/ingest/fmp4-timing.ts";
import { parsePushedPlaylist } from "../../packager-node/src/ingest/pushed-playlist.ts";
import {
  type IncomingObject,
  RenditionTimeline,
  type StoredSegment,
  TimelineRejection,
} from "../../packager-node/src/store/timeline.ts";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function obj(tag: string, meta: IncomingObject["meta"] = { durationMs: 500 }): IncomingObject {
  const bytes = Buffer.from(tag);
  return { bytes, sha256: sha(bytes), meta, arrivalMs: 1 };
}

function timeline(retired: StoredSegment[] = [], windowSegments = 3): RenditionTimeline {
  return new RenditionTimeline({
    windowSegments,
    targetSegmentDurationMs: 2000,
    segmentBytesMax: 1000,
    hash: (b) => sha(b),
    onRetire: (s) => retired.push(s),
  });
}

function rejects(fn: () => unknown, status: number, re: RegExp): void {
  assert.throws(
    fn,
    (err: unknown) =>
      err instanceof TimelineRejection && err.status === status && re.test(err.message),
  );
}

describe("packager timeline: sequencing from the source timeline", () => {
  it("closes a segment from its parts when the next one starts (bytes = concatenation, hashed once)", () => {
    const t = timeline();
    for (let i = 0; i < 3; i++)
      t.putPart(5, i, obj(`p5.${i}`, { durationMs: 500, timelineMs: 10_000 + i * 500 }));
    t.putPart(6, 0, obj("p6.0"));
    const s = t.findClosed(5)!;
    assert.equal(s.bytes.toString(), "p5.0p5.1p5.2");
    assert.equal(s.sha256, sha(Buffer.from("p5.0p5.1p5.2")));
    assert.equal(s.durationMs, 1500);
    assert.equal(s.timelineMs, 10_000);
    assert.equal(s.partsCover, true);
    assert.equal(t.findPart(5, 1)!.bytes.toString(), "p5.1");
    // Parts now view the segment's buffer.
    assert.equal(t.findPart(5, 1)!.bytes.buffer, s.bytes.buffer);
  });

  it("with closeAtMs closes a segment as soon as its parts reach the target duration", () => {
    const t = new RenditionTimeline({
      windowSegments: 3,
      targetSegmentDurationMs: 2000,
      segmentBytesMax: 1000,
      closeAtMs: 2000,
      hash: (b) => sha(b),
    });
    for (let i = 0; i < 3; i++) t.putPart(2, i, obj(`2.${i}`, { durationMs: 500 }));
    assert.equal(t.lastClosedMsn(), undefined, "1500 ms of 2000: still open");
    t.putPart(2, 3, obj("2.3", { durationMs: 500 }));
    assert.equal(t.lastClosedMsn(), 2);
    assert.equal(t.open, undefined);
    assert.equal(t.satisfies(2, undefined), true);
    // 1998 ms is short of the target by more than the 1 ms tolerance: the next segment closes it.
    for (let i = 0; i < 3; i++) t.putPart(3, i, obj(`3.${i}`, { durationMs: 666 }));
    assert.equal(t.lastClosedMsn(), 2);
    t.putPart(4, 0, obj("4.0", { durationMs: 500 }));
    assert.equal(t.findClosed(3)?.durationMs, 1998);
  });

  it("closes each segment at the duration its parts declare, whatever the configured target", () => {
    const t = new RenditionTimeline({
      windowSegments: 6,
      targetSegmentDurationMs: 2000,
      segmentBytesMax: 10_000,
      closeAtMs: 2000,
      hash: (b) => sha(b),
    });
    const part = (msn: number, i: number, segmentMs: number, atMs: number) =>
      t.putPart(
        msn,
        i,
        obj(`${msn}.${i}`, { durationMs: 500, timelineMs: atMs, segmentDurationMs: segmentMs }),
      );
    for (let i = 0; i < 4; i++) part(10, i, 2000, 20_000 + i * 500);
    assert.equal(t.lastClosedMsn(), 10, "2 s declared: closed at its 4th part");
    // From msn 11 the source cuts 4 s segments: 8 parts, not closed at the 2 s target.
    for (let i = 0; i < 4; i++) part(11, i, 4000, 22_000 + i * 500);
    assert.equal(t.lastClosedMsn(), 10, "2000 of 4000 ms: still open");
    assert.equal(t.satisfies(11, undefined), false);
    for (let i = 4; i < 8; i++) part(11, i, 4000, 22_000 + i * 500);
    assert.equal(t.lastClosedMsn(), 11);
    assert.equal(t.findClosed(11)?.durationMs, 4000);
    assert.equal(t.findClosed(11)?.parts.length, 8);
    // And back to 1 s (2 parts).
    part(12, 0, 1000, 26_000);
    part(12, 1, 1000, 26_500);
    assert.equal(t.lastClosedMsn(), 12);
    assert.deepEqual(
      t.segmentViews().map((x) => [x.msn, x.durationMs, x.timelineMs]),
      [
        [10, 2000, 20_000],
        [11, 4000, 22_000],
        [12, 1000, 26_000],
      ],
    );
    // Parts of one segment must agree on its length; nothing is stored otherwise.
    part(13, 0, 1000, 27_000);
    const v = t.version;
    rejects(
      () => part(13, 1, 4000, 27_500),
      409,
      /declares a 4000 ms segment, but segment 13 was started as 1000 ms/,
    );
    assert.equal(t.version, v);
    assert.equal(t.open?.parts.length, 1);
  });

  it("marks segments skipped across a duration change as gaps with their own lengths, never renumbered", () => {
    const t = timeline([], 8);
    const seg = (msn: number, ms: number, atMs: number) =>
      t.putSegment(msn, obj(`s${msn}`, { durationMs: ms, timelineMs: atMs }));
    // 2 s to msn 11, then 4 s from msn 12 (timeline 24 s): 11 and 12 never arrive.
    seg(10, 2000, 20_000);
    t.putPart(13, 0, obj("13.0", { durationMs: 500, timelineMs: 28_000, segmentDurationMs: 4000 }));
    assert.deepEqual(
      t.segmentViews().map((x) => [x.msn, x.gap, x.durationMs, x.timelineMs]),
      [
        [10, false, 2000, 20_000],
        [11, true, 2000, 22_000],
        [12, true, 4000, 24_000],
      ],
    );
    assert.equal(t.open?.msn, 13, "the next segment keeps its number");
    // A segment cut short before a hole is padded up to the length its parts declared.
    const u = timeline([], 8);
    for (let i = 0; i < 2; i++)
      u.putPart(
        20,
        i,
        obj(`20.${i}`, { durationMs: 500, timelineMs: 40_000 + i * 500, segmentDurationMs: 4000 }),
      );
    u.putPart(23, 0, obj("23.0", { durationMs: 500, timelineMs: 50_000, segmentDurationMs: 2000 }));
    assert.deepEqual(
      u.segmentViews().map((x) => [x.msn, x.gap, x.durationMs, x.timelineMs]),
      [
        [20, false, 4000, 40_000],
        [21, true, 4000, 44_000],
        [22, true, 2000, 48_000],
      ],
    );
    assert.deepEqual(
      u.findClosed(20)?.parts.map((p) => p.gap),
      [false, false, true, true, true, true, true, true],
      "its lost tail is GAP=YES parts",
    );
  });

  it("validates before it mutates: a rejected put leaves the version and contents unchanged", () => {
    const t = timeline();
    t.putPart(1, 0, obj("a"));
    t.putPart(1, 1, obj("b"));
    const v = t.version;
    rejects(() => t.putPart(1, 3, obj("d")), 409, /skips ahead: expected part 1\.2/);
    rejects(() => t.putPart(1, 1, obj("B")), 409, /conflicts with the stored bytes/);
    rejects(() => t.putPart(0, 0, obj("z")), 409, /goes backwards/);
    rejects(() => t.putPart(1, 2, { ...obj("c"), meta: {} }), 400, /duration unknown/);
    rejects(
      () => t.putSegment(1, { ...obj("xxxx"), meta: { durationMs: 1000 } }),
      409,
      /conflicts with its stored parts/,
    );
    rejects(() => t.putPart(1, 2, { ...obj(""), meta: { durationMs: 500 } }), 400, /empty body/);
    assert.equal(t.version, v);
    assert.equal(t.open!.parts.length, 2);
    assert.equal(t.putPart(1, 1, obj("b")), "repeat");
  });

  it("413 when the parts of one segment would pass segmentBytesMax", () => {
    const t = timeline();
    t.putPart(1, 0, { ...obj("x".repeat(600)) });
    rejects(() => t.putPart(1, 1, obj("y".repeat(500))), 413, /segmentBytesMax 1000/);
  });

  it("fills skipped msns with gaps whose durations split the timeline hole", () => {
    const t = timeline([], 6);
    t.putSegment(1, obj("s1", { durationMs: 2000, timelineMs: 2000 }));
    t.putSegment(4, obj("s4", { durationMs: 2000, timelineMs: 9000 }));
    const views = t.segmentViews();
    assert.deepEqual(
      views.map((s) => [s.msn, s.gap, s.durationMs, s.timelineMs]),
      [
        [1, false, 2000, 2000],
        [2, true, 2500, 4000],
        [3, true, 2500, 6500],
        [4, false, 2000, 9000],
      ],
    );
  });

  it("keeps the window contiguous when more msns were skipped than it holds", () => {
    const retired: StoredSegment[] = [];
    const t = timeline(retired, 3);
    t.putSegment(1, obj("s1", { durationMs: 2000 }));
    t.putSegment(10, obj("s10", { durationMs: 2000 }));
    assert.deepEqual(
      t.segmentViews().map((s) => s.msn),
      [8, 9, 10],
    );
    // 1 and the oldest shown gap leave; the store never caches gaps.
    assert.deepEqual(
      retired.map((s) => [s.msn, s.gap]),
      [
        [1, false],
        [7, true],
      ],
    );
  });

  it("accepts a standby joining mid-segment and checks the complete segment against its tail", () => {
    const t = timeline();
    t.putPart(7, 2, obj("cc", { durationMs: 500, timelineMs: 15_000, pdtMs: 1e12 + 1000 }));
    t.putPart(7, 3, obj("dd"));
    t.putSegment(7, obj("aabbccdd", { durationMs: 2000, timelineMs: 14_000, pdtMs: 1e12 }));
    const s = t.findClosed(7)!;
    assert.equal(s.partsCover, false);
    // Timing is the segment's, not that of the first part this node saw.
    assert.deepEqual([s.timelineMs, s.pdtMs, s.durationMs], [14_000, 1e12, 2000]);
    assert.equal(t.findPart(7, 2)!.bytes.toString(), "cc");
    assert.equal(
      t.segmentViews()[0]!.parts.length,
      0,
      "parts that do not cover the segment are not listed",
    );
    // A sibling's rendition report still names the segment's last part (LL-HLS requires LAST-PART).
    assert.deepEqual(t.report("360p"), { renditionId: "360p", lastMsn: 7, lastPart: 3 });
  });

  it("replication fills the window backwards, newest first, and refuses conflicts", () => {
    const src = timeline([], 6);
    for (let m = 0; m < 4; m++)
      src.putSegment(
        m,
        obj(`seg${m}`, { durationMs: 2000, timelineMs: m * 2000, pdtMs: 1e12 + m * 2000 }),
      );
    const dst = timeline([], 6);
    dst.putPart(4, 0, obj("p4.0"));
    for (const s of [...src.closed].reverse()) assert.equal(dst.importSegment(s, 2), "created");
    assert.deepEqual(
      dst.segmentViews().map((s) => s.msn),
      [0, 1, 2, 3],
    );
    assert.equal(dst.pdtAnchorMs, 1e12);
    assert.equal(dst.importSegment(src.closed[1]!, 3), "repeat");
    rejects(
      () => dst.importSegment({ ...src.closed[2]!, sha256: "f".repeat(64) }, 3),
      409,
      /conflicts/,
    );
  });

  it("answers blocking-reload predicates per rfc8216bis 6.2.5.2", () => {
    const t = timeline();
    for (let i = 0; i < 4; i++) t.putPart(3, i, obj(`3.${i}`));
    t.putPart(4, 0, obj("4.0"));
    assert.equal(t.satisfies(3, undefined), true);
    assert.equal(t.satisfies(4, undefined), false, "segment 4 is not complete");
    assert.equal(t.satisfies(4, 0), true);
    assert.equal(t.satisfies(4, 1), false);
    assert.equal(t.satisfies(3, 9), true, "past the last part of 3 means 4.0, which exists");
    assert.equal(t.satisfies(5, 0), false);
  });
});

describe("packager ingest: fMP4 timing and pushed playlists", () => {
  const dir = new URL("../../packager-node/fixtures/cmaf-ladder/360p/", import.meta.url);
  const manifest = JSON.parse(readFileSync(new URL("../manifest.json", dir), "utf8")) as {
    renditions: Array<{
      id: string;
      parts: Array<{ offset: number; size: number; durationMs: number; independent: boolean }>;
    }>;
  };
  const init = readFileSync(new URL("init.mp4", dir));
  const media = readFileSync(new URL("media.m4s", dir));

  it("reads the video track's timescale and each part's tfdt, duration and sync flag from the fixture", () => {
    const it0 = readInitTiming(init);
    assert.deepEqual(it0 && { trackId: it0.trackId, timescale: it0.timescale }, {
      trackId: 1,
      timescale: 15360,
    });
    const parts = manifest.renditions.find((r) => r.id === "360p")!.parts;
    for (const [i, p] of parts.entries()) {
      const t = readFragmentTiming(media.subarray(p.offset, p.offset + p.size), it0!);
      assert.deepEqual(
        t,
        { timelineMs: i * 500, durationMs: p.durationMs, independent: p.independent },
        `part ${i}`,
      );
    }
    const whole = readFragmentTiming(media, it0!);
    assert.deepEqual(whole, { timelineMs: 0, durationMs: 8000, independent: true });
  });

  it("returns undefined for garbage instead of throwing", () => {
    assert.equal(readInitTiming(Buffer.from("not an mp4 at all")), undefined);
    assert.equal(
      readFragmentTiming(Buffer.alloc(64, 0xff), {
        trackId: 1,
        timescale: 1000,
        defaultSampleDuration: 0,
        defaultSampleFlags: 0,
      }),
      undefined,
    );
  });

  it("numbers an encoder's pushed playlist entries from EXT-X-MEDIA-SEQUENCE", () => {
    const pl = parsePushedPlaylist(
      '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI="init.mp4"\n' +
        "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\n#EXTINF:2.000000,\nindex3.m4s\n#EXTINF:1.960000,\nsub/index4.m4s\n#EXT-X-ENDLIST\n",
    );
    assert.deepEqual(pl.entries, [
      { msn: 3, name: "index3.m4s", durationMs: 2000, gap: false, pdtMs: Date.UTC(2024, 0, 1) },
      {
        msn: 4,
        name: "index4.m4s",
        durationMs: 1960,
        gap: false,
        pdtMs: Date.UTC(2024, 0, 1) + 2000,
      },
    ]);
    assert.throws(() => parsePushedPlaylist("#EXTM3U\nseg.m4s\n"), /without EXTINF/);
    assert.throws(() => parsePushedPlaylist("hello"), /#EXTM3U/);
  });
});
