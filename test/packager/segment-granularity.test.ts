/**
 * Segment granularity on real packager nodes: two replicas assigned a stream
 * through PackagerService (segment durations bounded by 4 s) take the same
 * pushes, whose segments change from 2 s to 4 s at a boundary as a source
 * following the coordinator's schedule cuts them. Both must number segments
 * by the pushed MSNs, close each at the duration its parts declare, write
 * EXTINF per segment under a target duration that never changes, and serve
 * byte-identical playlists.
 */
import assert from "node:assert/strict";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import { silentLogger } from "../../common/log.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import {
  AssignmentRole,
  PackagerService,
} from "../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { streamSpec } from "../support/cluster.ts";
import { originConfig, originSpecRenditions, partBytes, request, T0 } from "./helpers.ts";
import { parseStrict } from "./parse-m3u8.ts";

const STREAM = "gran";

/** Part headers as an understudy source sends them: its segment's length included. */
function headers(timelineMs: number, independent: boolean, segmentMs: number) {
  return {
    "content-type": "video/mp4",
    "x-understudy-duration-ms": "500",
    "x-understudy-timeline-ms": String(timelineMs),
    "x-understudy-program-date-time": new Date(T0 + timelineMs).toISOString(),
    "x-understudy-independent": independent ? "1" : "0",
    "x-understudy-segment-duration-ms": String(segmentMs),
  };
}

/** Shards 40.. of a schedule with 2 s segments up to msn 12 (shard 52) and 4 s from msn 13. */
function position(shard: number): { msn: number; part: number; segmentMs: number } {
  if (shard < 52) return { msn: Math.floor(shard / 4), part: shard % 4, segmentMs: 2000 };
  return { msn: 13 + Math.floor((shard - 52) / 8), part: (shard - 52) % 8, segmentMs: 4000 };
}

describe("packager: segments whose duration changes at a boundary", () => {
  let nodes: PackagerNode[] = [];
  let clients: GrpcClient<typeof PackagerService>[] = [];

  before(async () => {
    nodes = await Promise.all(
      ["pkg-a", "pkg-b"].map(async (nodeId) => {
        const node = createPackagerNode(
          originConfig({ nodeId, control: "127.0.0.1:0", streams: [] }),
          { logger: silentLogger },
        );
        await node.start();
        return node;
      }),
    );
    clients = nodes.map((n) => createGrpcClient(PackagerService, n.urls.control!));
    const spec = {
      ...streamSpec(STREAM),
      renditions: originSpecRenditions,
      segmentPolicy: {
        segmentDurationTargetMs: 2000,
        segmentDurationMinMs: 2000,
        segmentDurationMaxMs: 4000,
        partDurationMs: 500,
      },
    };
    for (const [k, c] of clients.entries()) {
      await c.assign({
        epoch: 1n,
        coordinatorTerm: 1n,
        stream: spec,
        renditionIds: ["720p", "360p"],
        role: k === 0 ? AssignmentRole.PRIMARY : AssignmentRole.REPLICA,
      });
    }
    // Identical pushes to both: init, then shards 40..77 (msn 10..16, the last one open).
    for (const n of nodes) {
      for (const r of ["720p", "360p"]) {
        const init = await request(`${n.urls.http}/ingest/${STREAM}/${r}/init.mp4`, {
          method: "PUT",
          body: `init-${r}`,
          headers: { "content-type": "video/mp4" },
        });
        assert.equal(init.status, 201, init.text);
      }
      for (let shard = 40; shard < 78; shard++) {
        const p = position(shard);
        for (const r of ["720p", "360p"]) {
          const res = await request(`${n.urls.http}/ingest/${STREAM}/${r}/${p.msn}.${p.part}.m4s`, {
            method: "PUT",
            body: partBytes(r, p.msn, p.part),
            headers: headers(shard * 500, shard % 4 === 0, p.segmentMs),
          });
          assert.equal(res.status, 201, `${r} shard ${shard}: ${res.text}`);
        }
      }
    }
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("lists 2 s then 4 s segments under EXT-X-TARGETDURATION 4, byte-identical on both replicas", async () => {
    const texts = await Promise.all(
      nodes.map(async (n) => (await request(`${n.urls.http}/live/${STREAM}/720p/index.m3u8`)).text),
    );
    assert.equal(texts[0], texts[1], "replicas write the same playlist");
    const text = texts[0]!;
    assert.ok(text.includes("#EXT-X-TARGETDURATION:4\n"), text);
    assert.ok(text.includes("PART-HOLD-BACK=1.500,HOLD-BACK=12.000"));
    assert.ok(text.includes("#EXT-X-PART-INF:PART-TARGET=0.500\n"));
    const m = parseStrict(text);
    assert.equal(m.targetDuration, 4);
    const listed = (m.segments ?? []).map((s) => [s.uri, s.duration]);
    assert.deepEqual(listed.slice(-6), [
      ["10.m4s", 2],
      ["11.m4s", 2],
      ["12.m4s", 2],
      ["13.m4s", 4],
      ["14.m4s", 4],
      ["15.m4s", 4],
    ]);
    // The open segment 16 has the 2 parts pushed so far (shards 76, 77); the hint is 16.2.
    assert.ok(text.includes('URI="16.1.m4s"'));
    assert.ok(text.includes('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="16.2.m4s"'));
    // Part 4 of a 4 s segment starts with a keyframe: INDEPENDENT=YES, as the source declared.
    assert.ok(text.includes('#EXT-X-PART:DURATION=0.500,URI="14.4.m4s",INDEPENDENT=YES\n'), text);
  });

  it("serves the segments at their lengths and answers blocking reloads inside a long segment", async () => {
    const base = `${nodes[1]!.urls.http}/live/${STREAM}/360p`;
    const seg = await request(`${base}/14.m4s`);
    assert.equal(seg.status, 200);
    assert.equal(seg.body.length, 8 * 200, "eight parts");
    const held = await request(`${base}/index.m3u8?_HLS_msn=16&_HLS_part=1`, { timeoutMs: 3000 });
    assert.equal(held.status, 200);
    const mpds = await Promise.all(
      nodes.map(async (n) => (await request(`${n.urls.http}/live/${STREAM}/manifest.mpd`)).text),
    );
    assert.equal(mpds[0], mpds[1]);
    assert.ok(mpds[0]!.includes('<S d="4000" r="2"/>'), mpds[0]);
    assert.ok(mpds[0]!.includes('minimumUpdatePeriod="PT4S"'));
  });

  it("refuses a bad or inconsistent segment-duration declaration and stores nothing", async () => {
    const url = (part: number) => `${nodes[0]!.urls.http}/ingest/${STREAM}/720p/16.${part}.m4s`;
    // Shard 78 would be part 2 of the open 4 s segment 16.
    const before = (await request(`${nodes[0]!.urls.http}/live/${STREAM}/720p/index.m3u8`)).text;
    const bad = await request(url(2), {
      method: "PUT",
      body: partBytes("720p", 16, 2),
      headers: { ...headers(78 * 500, false, 4000), "x-understudy-segment-duration-ms": "0" },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /x-understudy-segment-duration-ms: expected 1–60000 ms, got 0/);
    const other = await request(url(2), {
      method: "PUT",
      body: partBytes("720p", 16, 2),
      headers: headers(78 * 500, false, 2000),
    });
    assert.equal(other.status, 409);
    assert.match(other.text, /declares a 2000 ms segment, but segment 16 was started as 4000 ms/);
    const after = (await request(`${nodes[0]!.urls.http}/live/${STREAM}/720p/index.m3u8`)).text;
    assert.equal(after, before);
  });
});
