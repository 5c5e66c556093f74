import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parsePackagerConfig } from "../../packager-node/src/config.ts";
import type { PackagerNode } from "../../packager-node/src/node.ts";
import { request, startNode } from "./helpers.ts";
import { parseStrict } from "./parse-m3u8.ts";

const execFileP = promisify(execFile);

/** Runs ffmpeg to completion (bounded in time); resolves with its stderr. */
function ffmpeg(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ffmpeg did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stderr);
      else reject(new Error(`ffmpeg exited ${code}: ${stderr}`));
    });
  });
}

describe("packager ingest from a real ffmpeg (-f hls -method PUT)", () => {
  let node: PackagerNode;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-ffmpeg-"));
    node = await startNode(
      parsePackagerConfig({
        nodeId: "pkg-ffmpeg",
        mode: "origin",
        listen: "127.0.0.1:0",
        streams: [
          {
            id: "s",
            latency: "standard",
            targetSegmentDurationMs: 1000,
            renditions: [
              {
                id: "r",
                bandwidth: 500000,
                codecs: "avc1.640015",
                resolution: "320x240",
                frameRate: 25,
              },
            ],
          },
        ],
      }),
    );
  });
  after(async () => {
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("takes init.mp4, ffmpeg-named segments and its pushed playlist, and serves a playable stream", async () => {
    await ffmpeg(
      [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_flags",
        "program_date_time",
        "-method",
        "PUT",
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        `${node.urls.http}/ingest/s/r/index.m3u8`,
      ],
      30_000,
    );
    const pl = await request(`${node.urls.http}/live/s/r/index.m3u8`);
    assert.equal(pl.status, 200, pl.text);
    const m = parseStrict(pl.text);
    assert.equal(m.mediaSequence, 0);
    assert.deepEqual(
      m.segments.map((s) => s.uri),
      ["0.m4s", "1.m4s", "2.m4s", "3.m4s"],
    );
    for (const s of m.segments)
      assert.ok(Math.abs(s.duration - 1) < 0.05, `duration ${s.duration}`);
    assert.ok(m.segments[0]!.dateTimeString, "program date-time taken from ffmpeg's playlist");
    // DASH needs the program date-time anchor, which ffmpeg's playlist gave.
    const mpd = await request(`${node.urls.http}/live/s/manifest.mpd`);
    assert.equal(mpd.status, 200, mpd.text);
    assert.match(mpd.text, /<S t="0" d="1000" r="3"\/>/);

    // The served objects are a valid fragmented MP4 of the 4 s.
    const parts = [await request(`${node.urls.http}/live/s/r/init.mp4`)];
    for (const s of m.segments) parts.push(await request(`${node.urls.http}/live/s/r/${s.uri}`));
    for (const p of parts) assert.equal(p.status, 200);
    const file = join(dir, "joined.mp4");
    await writeFile(file, Buffer.concat(parts.map((p) => p.body)));
    const probe = await execFileP(
      "ffprobe",
      ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file],
      {
        timeout: 20_000,
      },
    );
    assert.ok(Math.abs(Number(probe.stdout.trim()) - 4) < 0.1, `ffprobe duration ${probe.stdout}`);
    const status = JSON.parse((await request(`${node.urls.http}/status`)).text) as {
      streams: Array<{ renditions: Array<{ pending: number }> }>;
    };
    assert.equal(status.streams[0]!.renditions[0]!.pending, 0, "every pushed segment was numbered");
  });
});
