import assert from "node:assert/strict";
import { writeDashMpd } from "../../packager-node/src/playlist/dash-mpd.ts";
import { writeMediaPlaylist } from "../../packager-node/src/playlist/hls-media.ts";
import { writeMultivariantPlaylist } from "../../packager-node/src/playlist/hls-multivariant.ts";
import type {
  MediaPlaylistInput,
  PartView,
  RenditionInfo,
  SegmentView,
} from "../../packager-node/src/playlist/model.ts";
import { parseStrict } from "./parse-m3u8.ts";

const T0 = Date.UTC(2024, 0, 1); // 2024-01-01T00:00:00.000Z

function parts(count: number, durationMs = 500): PartView[] {
  return Array.from({ length: count }, (_, index) => ({
    index,
    durationMs,
    independent: index === 0,
    gap: false,
  }));
}

function segs(firstMsn: number, count: number, opts: { pdt?: boolean } = {}): SegmentView[] {
  return Array.from({ length: count }, (_, i) => ({
    msn: firstMsn + i,
    durationMs: 2000,
    gap: false,
    timelineMs: (firstMsn + i) * 2000,
    ...(opts.pdt ? { pdtMs: T0 + i * 2000 } : {}),
    parts: parts(4),
  }));
}

function llInput(over: Partial<MediaPlaylistInput> = {}): MediaPlaylistInput {
  return {
    latency: "low",
    maxSegmentDurationMs: 2000,
    targetPartDurationMs: 500,
    segments: segs(10, 6, { pdt: true }),
    open: { msn: 16, parts: parts(2) },
    renditionReports: [{ renditionId: "480p", lastMsn: 16, lastPart: 1 }],
    deltaUpdates: false,
    skipRequested: false,
    ...over,
  };
}

const segmentBlock = (msn: number) => `#EXTINF:2.000,\n${msn}.m4s\n`;
const partBlock = (msn: number, n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      `#EXT-X-PART:DURATION=0.500,URI="${msn}.${i}.m4s"${i === 0 ? ",INDEPENDENT=YES" : ""}\n`,
  ).join("");

describe("packager playlist writer: LL-HLS media playlist", () => {
  it("writes the hand-checked LL-HLS playlist (parts of the last 3 target durations, hint, report)", () => {
    const expected =
      "#EXTM3U\n" +
      "#EXT-X-VERSION:6\n" +
      "#EXT-X-TARGETDURATION:2\n" +
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000\n" +
      "#EXT-X-PART-INF:PART-TARGET=0.500\n" +
      "#EXT-X-MEDIA-SEQUENCE:10\n" +
      "#EXT-X-INDEPENDENT-SEGMENTS\n" +
      '#EXT-X-MAP:URI="init.mp4"\n' +
      "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\n" +
      segmentBlock(10) +
      segmentBlock(11) +
      segmentBlock(12) +
      segmentBlock(13) +
      partBlock(14, 4) +
      segmentBlock(14) +
      partBlock(15, 4) +
      segmentBlock(15) +
      partBlock(16, 2) +
      '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="16.2.m4s"\n' +
      '#EXT-X-RENDITION-REPORT:URI="../480p/index.m3u8",LAST-MSN=16,LAST-PART=1\n';
    const text = writeMediaPlaylist(llInput());
    assert.equal(text, expected);
    const m = parseStrict(text);
    assert.equal(m.mediaSequence, 10);
    assert.equal(m.segments.length, 6);
    assert.deepEqual(
      m.preloadSegment?.parts?.map((p) => p.uri),
      ["16.0.m4s", "16.1.m4s"],
    );
    assert.equal(m.segments[5]!.parts?.length, 4);
  });

  it("hints part 0 of the next segment when the last segment is closed and nothing is open", () => {
    const text = writeMediaPlaylist(llInput({ open: undefined, renditionReports: [] }));
    assert.match(text, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="16\.0\.m4s"\n$/);
    parseStrict(text);
  });

  it("raises TARGETDURATION to the ceiling of the longest segment and PART-TARGET to the longest part", () => {
    const segments = segs(0, 3).map((s, i) =>
      i === 1
        ? { ...s, durationMs: 2040, parts: [...parts(3), { ...parts(4)[3]!, durationMs: 540 }] }
        : s,
    );
    const text = writeMediaPlaylist(llInput({ segments, open: undefined }));
    assert.match(text, /#EXT-X-TARGETDURATION:3\n/);
    assert.match(text, /#EXT-X-PART-INF:PART-TARGET=0\.540\n/);
    assert.match(text, /PART-HOLD-BACK=1\.620,HOLD-BACK=9\.000/);
    parseStrict(text);
  });

  it("marks gap segments and gap parts and never renumbers around them", () => {
    const segments = segs(20, 4, { pdt: true }).map((s) =>
      s.msn === 22 ? { ...s, gap: true, parts: [] } : s,
    );
    const open = {
      msn: 24,
      parts: [parts(1)[0]!, { index: 1, durationMs: 500, independent: false, gap: true }],
    };
    const text = writeMediaPlaylist(llInput({ segments, open, renditionReports: [] }));
    assert.ok(text.includes("#EXT-X-GAP\n#EXTINF:2.000,\n22.m4s\n"), text);
    assert.ok(text.includes('#EXT-X-PART:DURATION=0.500,URI="24.1.m4s",GAP=YES\n'), text);
    const m = parseStrict(text);
    assert.deepEqual(
      m.segments.slice(0, 4).map((s) => s.uri),
      ["20.m4s", "21.m4s", "22.m4s", "23.m4s"],
    );
  });

  it("repeats EXT-X-PROGRAM-DATE-TIME only where the wall clock jumps", () => {
    const segments = segs(0, 3, { pdt: true }).map((s) =>
      s.msn === 2 ? { ...s, pdtMs: T0 + 60_000 } : s,
    );
    const text = writeMediaPlaylist(llInput({ segments, open: undefined }));
    const pdts = text.split("\n").filter((l) => l.startsWith("#EXT-X-PROGRAM-DATE-TIME"));
    assert.deepEqual(pdts, [
      "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z",
      "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:01:00.000Z",
    ]);
  });

  it("writes a parts-only playlist before the first segment closes", () => {
    const text = writeMediaPlaylist(
      llInput({ segments: [], open: { msn: 7, pdtMs: T0, parts: parts(1) }, renditionReports: [] }),
    );
    assert.ok(text.includes("#EXT-X-MEDIA-SEQUENCE:7\n"), text);
    assert.ok(
      text.endsWith(
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\n#EXT-X-PART:DURATION=0.500,URI="7.0.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="7.1.m4s"\n',
      ),
      text,
    );
    parseStrict(text);
  });

  it("answers a delta update with EXT-X-SKIP for segments older than CAN-SKIP-UNTIL", () => {
    const input = llInput({
      segments: segs(100, 10, { pdt: true }),
      open: undefined,
      deltaUpdates: true,
    });
    const full = writeMediaPlaylist(input);
    assert.match(full, /#EXT-X-VERSION:9\n/);
    assert.match(full, /#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12\.000,CAN-BLOCK-RELOAD=YES/);
    assert.ok(!full.includes("EXT-X-SKIP:"));
    const delta = writeMediaPlaylist({ ...input, skipRequested: true });
    // 10 × 2 s; segments starting more than 12 s before the end (100..103) are skipped.
    assert.ok(
      delta.includes(
        '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:08.000Z\n#EXTINF:2.000,\n104.m4s\n',
      ),
      delta,
    );
    assert.ok(delta.includes("#EXT-X-MEDIA-SEQUENCE:100\n"));
    assert.equal(parseStrict(delta).skip?.skippedSegments, 4);
    // Without CAN-SKIP-UNTIL advertised, _HLS_skip is ignored (rfc8216bis §6.2.5.1).
    const ignored = writeMediaPlaylist({ ...input, deltaUpdates: false, skipRequested: true });
    assert.ok(!ignored.includes("EXT-X-SKIP"));
  });

  it("refuses non-contiguous segments (a caller bug, never renumbered silently)", () => {
    const segments = [segs(1, 1)[0]!, segs(3, 1)[0]!];
    assert.throws(() => writeMediaPlaylist(llInput({ segments, open: undefined })), /contiguous/);
  });
});

describe("packager playlist writer: segment durations that change (segment granularity)", () => {
  /** 2 s segments (4 parts) up to msn 12, then 4 s (8 parts) from msn 13: the schedule's change. */
  const varying = (from: number, to: number): SegmentView[] =>
    Array.from({ length: to - from + 1 }, (_, i) => {
      const msn = from + i;
      const long = msn >= 13;
      return {
        msn,
        durationMs: long ? 4000 : 2000,
        gap: false,
        timelineMs: long ? 26_000 + (msn - 13) * 4000 : msn * 2000,
        pdtMs: T0 + (long ? 26_000 + (msn - 13) * 4000 : msn * 2000),
        parts: parts(long ? 8 : 4),
      };
    });

  it("writes each EXTINF from its segment; target duration and hold-backs from the stream's maximum", () => {
    const text = writeMediaPlaylist(
      llInput({
        maxSegmentDurationMs: 4000,
        segments: varying(10, 14),
        open: { msn: 15, parts: parts(3) },
      }),
    );
    const head =
      "#EXTM3U\n" +
      "#EXT-X-VERSION:6\n" +
      "#EXT-X-TARGETDURATION:4\n" +
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=12.000\n" +
      "#EXT-X-PART-INF:PART-TARGET=0.500\n" +
      "#EXT-X-MEDIA-SEQUENCE:10\n";
    assert.ok(text.startsWith(head), text);
    const extinf = [...text.matchAll(/#EXTINF:([\d.]+),\n(\d+)\.m4s/g)].map((m) => [m[2], m[1]]);
    assert.deepEqual(extinf, [
      ["10", "2.000"],
      ["11", "2.000"],
      ["12", "2.000"],
      ["13", "4.000"],
      ["14", "4.000"],
    ]);
    // Parts of the last 3 target durations (12 s): 12, 13, 14 and the open 15.
    assert.ok(!text.includes('URI="11.0.m4s"'));
    assert.ok(text.includes('#EXT-X-PART:DURATION=0.500,URI="12.0.m4s",INDEPENDENT=YES\n'));
    assert.ok(text.includes('URI="13.7.m4s"'));
    // One PROGRAM-DATE-TIME: the timeline is continuous across the change.
    assert.equal(text.match(/#EXT-X-PROGRAM-DATE-TIME/g)?.length, 1);
    const m = parseStrict(text);
    assert.equal(m.targetDuration, 4);
    assert.deepEqual(
      m.segments?.map((x) => x.duration),
      [2, 2, 2, 4, 4],
    );
    assert.equal(m.partTargetDuration, 0.5);
  });

  it("never changes the target duration or hold-backs while the window slides across the change", () => {
    const headers = new Set<string>();
    for (let last = 12; last <= 24; last++) {
      const text = writeMediaPlaylist(
        llInput({
          maxSegmentDurationMs: 4000,
          segments: varying(Math.max(6, last - 5), last),
          open: { msn: last + 1, parts: parts(1) },
        }),
      );
      headers.add(text.split("\n").slice(0, 5).join("\n"));
      parseStrict(text);
    }
    assert.deepEqual(
      [...headers],
      [
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n" +
          "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=12.000\n" +
          "#EXT-X-PART-INF:PART-TARGET=0.500",
      ],
    );
    // Only a segment longer than the stream allows (an encoder out of bounds) raises it.
    const over = writeMediaPlaylist(
      llInput({
        maxSegmentDurationMs: 4000,
        segments: [{ ...varying(13, 13)[0]!, durationMs: 4600 }],
        open: undefined,
      }),
    );
    assert.ok(over.includes("#EXT-X-TARGETDURATION:5\n"));
  });

  it("lists varying durations in the DASH SegmentTimeline with $Number$ still the MSN", () => {
    const text = writeDashMpd({
      renditions: [{ info: video720, segments: varying(11, 15) }],
      availabilityStartTimeMs: T0,
      maxSegmentDurationMs: 4000,
      presentationDelayMs: 12_000,
    });
    assert.ok(text.includes('startNumber="11"'));
    assert.ok(
      text.includes(
        '            <S t="22000" d="2000" r="1"/>\n            <S d="4000" r="2"/>\n          </SegmentTimeline>',
      ),
      text,
    );
    assert.ok(text.includes('minimumUpdatePeriod="PT4S" minBufferTime="PT4S"'));
    assert.ok(text.includes('timeShiftBufferDepth="PT16S" suggestedPresentationDelay="PT12S"'));
    assert.ok(text.includes('publishTime="2024-01-01T00:00:38.000Z"'));
  });
});

describe("packager playlist writer: classic HLS media playlist", () => {
  it("writes the hand-checked classic playlist with a gap and no LL tags", () => {
    const segments: SegmentView[] = [
      { msn: 1, durationMs: 4000, gap: false, parts: [] },
      { msn: 2, durationMs: 4500, gap: false, parts: [] },
      { msn: 3, durationMs: 4000, gap: true, parts: [] },
      { msn: 4, durationMs: 4000, gap: false, parts: parts(2) },
    ];
    const text = writeMediaPlaylist({
      latency: "standard",
      maxSegmentDurationMs: 4000,
      targetPartDurationMs: 1000,
      segments,
      open: { msn: 5, parts: parts(1) },
      renditionReports: [{ renditionId: "x", lastMsn: 5 }],
      deltaUpdates: true,
      skipRequested: true,
    });
    assert.equal(
      text,
      "#EXTM3U\n" +
        "#EXT-X-VERSION:6\n" +
        "#EXT-X-TARGETDURATION:5\n" +
        "#EXT-X-MEDIA-SEQUENCE:1\n" +
        "#EXT-X-INDEPENDENT-SEGMENTS\n" +
        '#EXT-X-MAP:URI="init.mp4"\n' +
        "#EXTINF:4.000,\n1.m4s\n" +
        "#EXTINF:4.500,\n2.m4s\n" +
        "#EXT-X-GAP\n#EXTINF:4.000,\n3.m4s\n" +
        "#EXTINF:4.000,\n4.m4s\n",
    );
    parseStrict(text);
  });
});

const video720: RenditionInfo = {
  id: "720p",
  kind: "video",
  bandwidth: 3_000_000,
  averageBandwidth: 2_500_000,
  codecs: "avc1.64001f",
  resolution: "1280x720",
  frameRate: 30,
};
const video360: RenditionInfo = {
  id: "360p",
  kind: "video",
  bandwidth: 800_000,
  codecs: "avc1.42c01e",
  resolution: "640x360",
  frameRate: 29.97,
};
const aac: RenditionInfo = {
  id: "aac",
  kind: "audio",
  bandwidth: 128_000,
  codecs: "mp4a.40.2",
  language: "en",
  name: "English",
};

describe("packager playlist writer: multivariant playlist", () => {
  it("writes variants with BANDWIDTH, CODECS, RESOLUTION, FRAME-RATE and an audio group", () => {
    const text = writeMultivariantPlaylist({ renditions: [video720, video360, aac] });
    assert.equal(
      text,
      "#EXTM3U\n" +
        "#EXT-X-VERSION:6\n" +
        "#EXT-X-INDEPENDENT-SEGMENTS\n" +
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="aac/index.m3u8"\n' +
        '#EXT-X-STREAM-INF:BANDWIDTH=3128000,AVERAGE-BANDWIDTH=2628000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="audio"\n' +
        "720p/index.m3u8\n" +
        '#EXT-X-STREAM-INF:BANDWIDTH=928000,CODECS="avc1.42c01e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO="audio"\n' +
        "360p/index.m3u8\n",
    );
    const m = parseStrict(text);
    assert.equal(m.playlists?.length, 2);
    assert.equal(m.playlists?.[0]?.attributes.BANDWIDTH, 3_128_000);
  });

  it("adds EXT-X-CONTENT-STEERING and PATHWAY-ID through the steering hook", () => {
    const text = writeMultivariantPlaylist({
      renditions: [video720],
      steering: { serverUri: "/steering/s1.json", pathwayId: "pkg-a" },
    });
    assert.ok(
      text.includes('#EXT-X-CONTENT-STEERING:SERVER-URI="/steering/s1.json",PATHWAY-ID="pkg-a"\n'),
    );
    assert.ok(text.includes(',PATHWAY-ID="pkg-a"\n720p/index.m3u8\n'));
    const m = parseStrict(text);
    assert.equal(m.contentSteering?.serverUri, "/steering/s1.json");
  });

  it("lists audio-only renditions as variants", () => {
    const text = writeMultivariantPlaylist({ renditions: [aac] });
    assert.ok(
      text.endsWith('#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"\naac/index.m3u8\n'),
    );
    parseStrict(text);
  });
});

describe("packager playlist writer: DASH MPD", () => {
  it("writes the hand-checked dynamic MPD with $Number$ equal to the HLS MSN", () => {
    const segments = segs(10, 3);
    const withGapJump: SegmentView[] = [
      ...segments,
      { msn: 13, durationMs: 2000, gap: false, timelineMs: 30_000, parts: [] },
    ];
    const text = writeDashMpd({
      renditions: [
        { info: video720, segments },
        { info: video360, segments: withGapJump },
        { info: aac, segments },
      ],
      availabilityStartTimeMs: T0,
      maxSegmentDurationMs: 2000,
      presentationDelayMs: 6000,
      utcTimingUri: "/utc",
    });
    const expected = `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2024-01-01T00:00:00.000Z" publishTime="2024-01-01T00:00:32.000Z" minimumUpdatePeriod="PT2S" minBufferTime="PT2S" timeShiftBufferDepth="PT6S" suggestedPresentationDelay="PT6S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="720p" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720" frameRate="30">
        <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="10">
          <SegmentTimeline>
            <S t="20000" d="2000" r="2"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
      <Representation id="360p" bandwidth="800000" codecs="avc1.42c01e" width="640" height="360" frameRate="30000/1001">
        <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="10">
          <SegmentTimeline>
            <S t="20000" d="2000" r="2"/>
            <S t="30000" d="2000"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en" segmentAlignment="true" startWithSAP="1">
      <Representation id="aac" bandwidth="128000" codecs="mp4a.40.2">
        <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="10">
          <SegmentTimeline>
            <S t="20000" d="2000" r="2"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/utc"/>
</MPD>
`;
    assert.equal(text, expected);
  });
});
