/**
 * The SDK's pure parts: m3u8 parser (also against m3u8-parser as an
 * independent oracle on generated playlists), CMCD encoding, the playback
 * buffer model (manual clock), bandwidth EWMA, bounded queue, backoff and
 * leader-redirect parsing.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { Parser } from "m3u8-parser";
import {
  backoffDelayMs,
  createBandwidthEstimator,
  createBoundedQueue,
  createPlaybackBuffer,
  encodeCmcd,
  leaderUrlFromError,
  PlaylistParseError,
  parseMediaPlaylist,
  parseMultivariantPlaylist,
  parsePlaylist,
  splitOriginUrl,
  withCmcdQuery,
} from "../../client-sdk/src/index.ts";

const llhls = `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000
#EXT-X-PART-INF:PART-TARGET=0.500
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z
#EXTINF:2.000,
41.m4s
#EXT-X-GAP
#EXTINF:2.000,
42.m4s
#EXT-X-PART:DURATION=0.500,URI="43.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="43.1.m4s"
#EXT-X-PART:DURATION=0.500,URI="43.2.m4s",GAP=YES
#EXT-X-PART:DURATION=0.500,URI="43.3.m4s"
#EXTINF:2.000,
43.m4s
#EXT-X-PART:DURATION=0.500,URI="44.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="44.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../lo/index.m3u8",LAST-MSN=44,LAST-PART=0
`;

describe("client-sdk: m3u8 parser", () => {
  it("parses an LL-HLS media playlist: MSNs, parts, GAP, MAP, PDT, hints, reports", () => {
    const pl = parseMediaPlaylist(llhls);
    assert.equal(pl.targetDurationMs, 2000);
    assert.equal(pl.partTargetMs, 500);
    assert.equal(pl.mediaSequence, 41);
    assert.deepEqual(pl.serverControl, {
      canBlockReload: true,
      holdBackMs: 6000,
      partHoldBackMs: 1500,
    });
    assert.deepEqual(
      pl.segments.map((s) => [s.msn, s.uri, s.durationMs, s.gap]),
      [
        [41, "41.m4s", 2000, false],
        [42, "42.m4s", 2000, true],
        [43, "43.m4s", 2000, false],
      ],
    );
    assert.equal(pl.segments[0]!.map?.uri, "init.mp4");
    assert.equal(pl.segments[2]!.map?.uri, "init.mp4", "EXT-X-MAP applies until replaced");
    assert.equal(pl.segments[0]!.programDateTimeMs, Date.parse("2025-01-01T00:00:00Z"));
    assert.equal(pl.segments[2]!.programDateTimeMs, Date.parse("2025-01-01T00:00:04Z"));
    assert.deepEqual(
      pl.segments[2]!.parts.map((p) => [p.index, p.uri, p.durationMs, p.independent, p.gap]),
      [
        [0, "43.0.m4s", 500, true, false],
        [1, "43.1.m4s", 500, false, false],
        [2, "43.2.m4s", 500, false, true],
        [3, "43.3.m4s", 500, false, false],
      ],
    );
    assert.deepEqual(pl.openSegment?.msn, 44);
    assert.deepEqual(
      pl.openSegment?.parts.map((p) => p.uri),
      ["44.0.m4s"],
    );
    assert.deepEqual(pl.preloadHints, [{ type: "PART", uri: "44.1.m4s" }]);
    assert.deepEqual(pl.renditionReports, [{ uri: "../lo/index.m3u8", lastMsn: 44, lastPart: 0 }]);
  });

  it("accepts CRLF, a BOM, blank lines, comments and unknown tags", () => {
    const text = `\uFEFF${llhls.replace(/\n/g, "\r\n").replace("#EXTINF:2.000,\r\n41", "# a comment\r\n#EXT-X-FUTURE-TAG:X=1\r\n\r\n#EXTINF:2.000,\r\n41")}`;
    const pl = parseMediaPlaylist(text);
    assert.equal(pl.segments.length, 3);
    assert.equal(pl.segments[0]!.msn, 41);
  });

  it("handles EXT-X-SKIP (delta updates) and discontinuities", () => {
    const pl = parseMediaPlaylist(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n" +
        "#EXTINF:2,\n13.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,\n14.m4s\n",
    );
    assert.deepEqual(
      pl.segments.map((s) => [s.msn, s.discontinuity, s.discontinuitySequence, s.durationMs]),
      [
        [13, false, 0, 2000],
        [14, true, 1, 1500],
      ],
    );
  });

  it("parses a multivariant playlist with quoted, comma-containing attributes", () => {
    const mv = parseMultivariantPlaylist(
      '#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="/steer?x=1",PATHWAY-ID="a"\n' +
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,URI="a/index.m3u8"\n' +
        '#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=700000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="aud"\n' +
        "720p/index.m3u8\n",
    );
    assert.equal(mv.variants.length, 1);
    const v = mv.variants[0]!;
    assert.deepEqual(v.codecs, ["avc1.64001f", "mp4a.40.2"]);
    assert.deepEqual(v.resolution, { width: 1280, height: 720 });
    assert.equal(v.bandwidth, 800000);
    assert.equal(v.averageBandwidth, 700000);
    assert.equal(v.audioGroup, "aud");
    assert.deepEqual(mv.contentSteering, { serverUri: "/steer?x=1", pathwayId: "a" });
    assert.equal(mv.media[0]?.uri, "a/index.m3u8");
    assert.equal(parsePlaylist(llhls).kind, "media");
  });

  it("rejects what a player cannot use, naming the line", () => {
    const bad: [string, RegExp][] = [
      ["#EXT-X-TARGETDURATION:2\n", /line 1: not an HLS playlist/],
      ["#EXTM3U\n#EXT-X-TARGETDURATION:2\n1.m4s\n", /line 3: segment URI "1.m4s" has no EXTINF/],
      [
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:abc,\n1.m4s\n",
        /line 3: EXTINF duration must be a decimal/,
      ],
      ["#EXTM3U\n#EXTINF:2,\n1.m4s\n", /no EXT-X-TARGETDURATION/],
      [
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5\n",
        /line 3: EXT-X-PART needs URI/,
      ],
      [
        '#EXTM3U\n#EXT-X-STREAM-INF:CODECS="x"\nv/index.m3u8\n',
        /line 2: EXT-X-STREAM-INF needs BANDWIDTH/,
      ],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parsePlaylist(text),
        (e: unknown) => e instanceof PlaylistParseError && re.test(e.message),
      );
    }
  });

  it("agrees with m3u8-parser on generated media playlists", () => {
    const segArb = fc.record({
      durMs: fc.integer({ min: 100, max: 6000 }),
      parts: fc.array(fc.integer({ min: 50, max: 1000 }), { maxLength: 4 }),
      gap: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.array(segArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 50, max: 1000 }), { maxLength: 3 }),
        (seq, segs, open) => {
          const lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            "#EXT-X-TARGETDURATION:6",
            "#EXT-X-PART-INF:PART-TARGET=1.000",
            `#EXT-X-MEDIA-SEQUENCE:${seq}`,
          ];
          const part = (msn: number, j: number, ms: number) =>
            `#EXT-X-PART:DURATION=${(ms / 1000).toFixed(3)},URI="${msn}.${j}.m4s"`;
          for (const [i, s] of segs.entries()) {
            for (const [j, p] of s.parts.entries()) lines.push(part(seq + i, j, p));
            if (s.gap) lines.push("#EXT-X-GAP");
            lines.push(`#EXTINF:${(s.durMs / 1000).toFixed(3)},`, `${seq + i}.m4s`);
          }
          for (const [j, p] of open.entries()) lines.push(part(seq + segs.length, j, p));
          const text = `${lines.join("\n")}\n`;
          const ours = parseMediaPlaylist(text);
          const parser = new Parser();
          parser.push(text);
          parser.end();
          const theirs = parser.manifest;
          assert.equal(ours.mediaSequence, theirs.mediaSequence);
          assert.equal(ours.segments.length, theirs.segments.length);
          ours.segments.forEach((s, i) => {
            const t = theirs.segments[i]!;
            assert.equal(s.uri, t.uri);
            assert.equal(s.durationMs, Math.round(t.duration * 1000));
            assert.deepEqual(
              s.parts.map((p) => p.uri),
              (t.parts ?? []).map((p) => p.uri),
            );
          });
          assert.deepEqual(
            ours.openSegment?.parts.map((p) => p.uri) ?? [],
            (theirs.preloadSegment?.parts ?? []).map((p) => p.uri),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("splits a start URL into origin base and the path kept across origins", () => {
    assert.deepEqual(splitOriginUrl("http://h:8080", "s1"), {
      base: "http://h:8080",
      path: "/live/s1/master.m3u8",
    });
    assert.deepEqual(splitOriginUrl("http://h:8080/edge/live/s1/720p/index.m3u8", "s1"), {
      base: "http://h:8080/edge",
      path: "/live/s1/720p/index.m3u8",
    });
  });
});

describe("client-sdk: CMCD", () => {
  it("serialises keys alphabetically with CTA-5004 types and rounding", () => {
    const payload = encodeCmcd({
      sid: 'a"b\\c',
      br: 800.4,
      bl: 2149,
      mtp: 12_345,
      ot: "av",
      bs: true,
      su: false,
      d: 500,
      v: 1,
      pr: 1,
      cid: "x".repeat(70),
      nor: "../lo/44.1.m4s",
      tb: 3000,
    });
    assert.equal(
      payload,
      `bl=2100,br=800,bs,cid="${"x".repeat(64)}",d=500,mtp=12300,nor="../lo/44.1.m4s",ot=av,sid="a\\"b\\\\c",tb=3000`,
    );
    assert.equal(encodeCmcd({ v: 2, pr: 0.9 }), "pr=0.9,v=2");
  });

  it("adds the CMCD query parameter, URL-encoded, keeping other parameters", () => {
    const u = withCmcdQuery("http://h/live/s/hi/index.m3u8?_HLS_msn=5", { ot: "m", sid: "s 1" });
    const q = new URL(u).searchParams;
    assert.equal(q.get("_HLS_msn"), "5");
    assert.equal(q.get("CMCD"), 'ot=m,sid="s 1"');
    assert.equal(withCmcdQuery("http://h/a", {}), "http://h/a");
  });
});

describe("client-sdk: playback buffer model", () => {
  const manual = () => {
    let t = 0;
    return {
      clock: { nowMs: () => 1e12 + t, monotonicMs: () => t },
      advance: (ms: number) => (t += ms),
    };
  };

  it("starts at the threshold, drains in real time, counts stalls and stall time", () => {
    const m = manual();
    const b = createPlaybackBuffer({
      clock: m.clock,
      startThresholdMs: 1000,
      resumeThresholdMs: 500,
    });
    b.add(500, 1);
    m.advance(300);
    assert.equal(b.state(), "startup");
    assert.equal(b.levelMs(), 500, "no drain before the first frame");
    b.add(500, 1);
    assert.equal(b.state(), "playing");
    assert.equal(b.snapshot().startupMs, 300);
    m.advance(400);
    assert.equal(b.levelMs(), 600);
    assert.equal(b.playingMsn(), 1);
    b.add(1000, 2);
    m.advance(1700); // runs dry after 1600 ms
    const s = b.snapshot();
    assert.equal(s.state, "stalled");
    assert.equal(s.stallCount, 1);
    assert.equal(s.stallMs, 100);
    assert.equal(b.takeStarvation(), true);
    m.advance(200);
    b.add(400, 3);
    assert.equal(b.state(), "stalled", "below the resume threshold");
    m.advance(100);
    b.add(400, 3);
    assert.equal(b.state(), "playing");
    assert.equal(b.snapshot().stallMs, 400);
    assert.equal(b.snapshot().stallCount, 1);
    assert.equal(b.takeStarvation(), false, "starvation reported once");
  });

  it("stops modelling when playback ends: no drain, no stall counted afterwards", () => {
    const m = manual();
    const b = createPlaybackBuffer({
      clock: m.clock,
      startThresholdMs: 500,
      resumeThresholdMs: 500,
    });
    b.add(2000, 1);
    m.advance(500);
    b.end();
    assert.equal(b.levelMs(), 1500);
    m.advance(10_000); // a caller reading stats long after the session ended
    const s = b.snapshot();
    assert.equal(s.levelMs, 1500, "the level is frozen at the end");
    assert.equal(s.state, "playing");
    assert.equal(s.stallCount, 0, "no stall after the end");
    assert.equal(s.stallMs, 0);
    b.add(500, 2);
    assert.equal(b.snapshot().addedMs, 2000, "media after the end is not added");
  });

  it("drains at the playback rate", () => {
    const m = manual();
    const b = createPlaybackBuffer({
      clock: m.clock,
      startThresholdMs: 100,
      resumeThresholdMs: 100,
    });
    b.add(2000, 1);
    b.setPlaybackRate(0.5);
    m.advance(1000);
    assert.equal(b.levelMs(), 1500);
  });
});

describe("client-sdk: small parts", () => {
  it("bandwidth EWMA ignores tiny samples", () => {
    const e = createBandwidthEstimator({ initialBps: 1000, alpha: 0.5, minSampleBytes: 1000 });
    e.sample(10, 1);
    assert.equal(e.estimateBps(), 1000);
    e.sample(125_000, 1000); // 1 Mbps
    assert.equal(e.estimateBps(), 1_000_000);
    e.sample(250_000, 1000); // 2 Mbps
    assert.equal(e.estimateBps(), 1_500_000);
  });

  it("bounded queue drops the oldest and counts it", async () => {
    const q = createBoundedQueue<number>(2);
    q.push(1);
    q.push(2);
    q.push(3);
    assert.equal(q.droppedCount, 1);
    assert.deepEqual([(await q.next()).value, (await q.next()).value], [2, 3]);
    const waiting = q.next();
    q.push(4);
    assert.equal((await waiting).value, 4);
    q.end();
    assert.equal((await q.next()).done, true);
    assert.throws(() => createBoundedQueue(0), /capacity must be an integer >= 1/);
    // Grows from a small ring up to its bound, keeping order across the wrap.
    const big = createBoundedQueue<number>(100);
    for (let i = 0; i < 3; i++) big.push(i);
    await big.next();
    for (let i = 3; i < 150; i++) big.push(i);
    assert.equal(big.size, 100);
    assert.equal(big.droppedCount, 49);
    assert.equal((await big.next()).value, 50);
  });

  it("backoff grows, is capped and jittered within [d/2, d]", () => {
    const o = { initialMs: 100, maxMs: 1000 };
    assert.equal(
      backoffDelayMs(1, o, () => 0),
      50,
    );
    assert.equal(
      backoffDelayMs(1, o, () => 1),
      100,
    );
    assert.equal(
      backoffDelayMs(3, o, () => 1),
      400,
    );
    assert.equal(
      backoffDelayMs(30, o, () => 1),
      1000,
    );
  });

  it("reads the leader's address from a redirect (header first, then message)", () => {
    const e1 = new ConnectError("not the leader", Code.Unavailable);
    e1.metadata.set("x-understudy-leader", "127.0.0.1:7001");
    assert.equal(leaderUrlFromError(e1, "https://10.0.0.1:7000"), "https://127.0.0.1:7001");
    const e2 = new ConnectError(
      'node "c2" is not the leader; send writes to leader "c1" at 10.0.0.3:7000',
      Code.Unavailable,
    );
    assert.equal(leaderUrlFromError(e2, "http://10.0.0.2:7000"), "http://10.0.0.3:7000");
    const e3 = new ConnectError("leader: c1 at (address unknown)", Code.Unavailable);
    assert.equal(leaderUrlFromError(e3, "http://x:1"), undefined);
    const e4 = new ConnectError("at 1.2.3.4:5", Code.InvalidArgument);
    assert.equal(leaderUrlFromError(e4, "http://x:1"), undefined, "only UNAVAILABLE redirects");
  });
});
