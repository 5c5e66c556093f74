import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildSegment,
  defaultFixtureDir,
  type Fixture,
  FixtureError,
  loadFixture,
  timelineOf,
} from "../../packager-node/src/source/index.ts";

const ORIGIN = 1_700_000_000_000;

describe("source/fixture", () => {
  let fixture: Fixture;
  let tmp: string;
  before(async () => {
    fixture = await loadFixture();
    tmp = mkdtempSync(join(tmpdir(), "understudy-fixture-"));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("is the small 8 s ladder the source and packager rely on", () => {
    assert.equal(fixture.partDurationMs, 500);
    assert.equal(fixture.segmentDurationMs, 2000);
    assert.equal(fixture.partsPerSegment, 4);
    assert.equal(fixture.partsPerLoop, 16);
    assert.equal(fixture.loopDurationMs, 8000);
    assert.deepEqual(
      fixture.renditions.map((r) => [r.id, r.width, r.height, r.codecs, r.frameRate]),
      [
        ["360p", 640, 360, "avc1.42c01e,mp4a.40.2", 30],
        ["180p", 320, 180, "avc1.42c01e,mp4a.40.2", 30],
      ],
    );
    let bytes = 0;
    for (const r of fixture.renditions) {
      bytes += statSync(join(defaultFixtureDir, r.init)).size;
      bytes += statSync(join(defaultFixtureDir, r.media)).size;
      assert.ok(r.bandwidth >= r.averageBandwidth);
    }
    assert.ok(bytes < 3 * 1024 * 1024, `fixture is ${bytes} bytes`);
  });

  it("refuses a manifest that no longer matches the media, naming the field", async () => {
    const dir = join(tmp, "tampered");
    cpSync(defaultFixtureDir, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    manifest.renditions[1].parts[3].size += 1;
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    await assert.rejects(loadFixture(dir), (e: unknown) => {
      assert.ok(e instanceof FixtureError);
      assert.match(e.message, /renditions\.1\.parts\.3\.size/);
      return true;
    });
    await assert.rejects(loadFixture(join(tmp, "missing")), /cannot read .*manifest\.json/);
  });

  it("rebuilt segments across a loop boundary play with ffprobe/ffmpeg at their timeline position", () => {
    // Segments 3, 4, 5 of a stream: 4 is the first of loop 1 (shard 16).
    const timeline = timelineOf(fixture, ORIGIN);
    const r = fixture.renditions[1]!;
    const file = join(tmp, "rebuilt.mp4");
    writeFileSync(
      file,
      Buffer.concat([r.initBytes, ...[3, 4, 5].map((m) => buildSegment(timeline, r, m))]),
    );
    const probe = JSON.parse(
      execFileSync(
        "ffprobe",
        ["-v", "error", "-show_entries", "packet=stream_index,pts,duration", "-of", "json", file],
        { encoding: "utf8" },
      ),
    ) as { packets: { stream_index: number; pts: number; duration: number }[] };
    // Video parts are cut on exact 0.5 s boundaries; audio (1024-sample AAC
    // frames) falls into parts by decode time, so it may be up to one frame off.
    const streams = [
      { timescale: 15360, slack: 0 },
      { timescale: 48000, slack: 1024 },
    ];
    for (const [index, { timescale, slack }] of streams.entries()) {
      const packets = probe.packets.filter((p) => p.stream_index === index);
      const near = (got: number, want: number, what: string) =>
        assert.ok(Math.abs(got - want) <= slack, `stream ${index} ${what}: ${got} vs ${want}`);
      near(packets[0]!.pts, 6 * timescale, "starts at msn 3 * 2 s");
      for (let i = 1; i < packets.length; i++) {
        const prev = packets[i - 1]!;
        assert.equal(packets[i]!.pts, prev.pts + prev.duration, `stream ${index} packet ${i}`);
      }
      const last = packets.at(-1)!;
      near(last.pts + last.duration, 12 * timescale, "ends after msn 5");
    }
    // Decoding reports no timestamp problems (non-monotonic DTS, gaps) at the loop boundary.
    const decode = spawnSync("ffmpeg", ["-v", "warning", "-i", file, "-f", "null", "-"], {
      encoding: "utf8",
    });
    assert.equal(decode.status, 0, decode.stderr);
    assert.equal(decode.stderr.trim(), "");
  });
});
