import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePackagerConfig } from "../../packager-node/src/config.ts";
import type { PackagerNode } from "../../packager-node/src/node.ts";
import { request, startNode } from "./helpers.ts";
import { parseStrict } from "./parse-m3u8.ts";

const SOURCE_MAIN = new URL("../../packager-node/src/source/main.ts", import.meta.url).pathname;

/** The contract between `understudy source` (a separate process) and the origin, end to end. */
describe("packager origin fed by a real `understudy source` process", () => {
  let node: PackagerNode;
  let source: ChildProcess | undefined;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-src-"));
    node = await startNode(
      parsePackagerConfig({
        nodeId: "pkg-src",
        mode: "origin",
        listen: "127.0.0.1:0",
        streams: [
          {
            id: "demo",
            renditions: [
              {
                id: "360p",
                bandwidth: 709684,
                codecs: "avc1.42c01e,mp4a.40.2",
                resolution: "640x360",
                frameRate: 30,
              },
              {
                id: "180p",
                bandwidth: 292064,
                codecs: "avc1.42c01e,mp4a.40.2",
                resolution: "320x180",
                frameRate: 30,
              },
            ],
          },
        ],
      }),
    );
  });
  after(async () => {
    if (source && source.exitCode === null) {
      source.kill("SIGTERM");
      await new Promise((r) => source!.once("exit", r));
    }
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves LL-HLS from the source's parts, and a blocking reload wakes on the next part", async () => {
    const cfg = join(dir, "source.yaml");
    await writeFile(
      cfg,
      [
        "streamId: demo",
        "encoderId: enc-0",
        `timelineOriginMs: ${Date.now() - 60_000}`,
        "pool: { index: 0, size: 1, unit: segment }",
        `targets: [${node.urls.http}]`,
        "logLevel: error",
        "",
      ].join("\n"),
    );
    source = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `import(${JSON.stringify(SOURCE_MAIN)}).then(async (m) => { process.exitCode = await m.main(["--config", ${JSON.stringify(cfg)}]); })`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    // Wait (bounded) for two closed segments.
    const deadline = Date.now() + 20_000;
    let text = "";
    while (Date.now() < deadline) {
      const r = await request(`${node.urls.http}/live/demo/360p/index.m3u8`);
      text = r.text;
      if (r.status === 200 && (text.match(/^#EXTINF/gm)?.length ?? 0) >= 2) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const m = parseStrict(text);
    assert.ok(m.segments.length >= 2, text);
    for (const s of m.segments) assert.equal(s.duration, 2);
    const hint = /PRELOAD-HINT:TYPE=PART,URI="(\d+)\.(\d+)\.m4s"/.exec(text);
    assert.ok(hint, text);
    const t0 = Date.now();
    const held = await request(
      `${node.urls.http}/live/demo/360p/index.m3u8?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}`,
    );
    assert.equal(held.status, 200);
    assert.ok(
      Date.now() - t0 < 1500,
      `a 0.5 s part took ${Date.now() - t0} ms to unblock the reload`,
    );
    assert.ok(held.text.includes(`URI="${hint[1]}.${hint[2]}.m4s"`));
    const seg = await request(
      `${node.urls.http}/live/demo/180p/${m.segments[m.segments.length - 1]!.uri}`,
    );
    assert.equal(seg.status, 200);
    const status = JSON.parse((await request(`${node.urls.http}/status`)).text) as {
      ingest: { lagMs: { p50: number | null } };
    };
    assert.ok(
      status.ingest.lagMs.p50 !== null && status.ingest.lagMs.p50 < 1000,
      JSON.stringify(status.ingest),
    );
  });
});
