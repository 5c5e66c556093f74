import assert from "node:assert/strict";
import { parsePackagerConfig } from "../../packager-node/src/config.ts";
import type { PackagerNode } from "../../packager-node/src/node.ts";
import {
  eventually,
  feed,
  originConfig,
  partBytes,
  putPart,
  request,
  startNode,
} from "./helpers.ts";
import { parseStrict } from "./parse-m3u8.ts";

function edgeConfig(origins: string[], over: Record<string, unknown> = {}) {
  return parsePackagerConfig({
    nodeId: "edge-test",
    mode: "edge",
    listen: "127.0.0.1:0",
    edge: {
      origins,
      prefetchDepth: 0,
      upstreamTimeoutMs: 1000,
      blockingTimeoutMs: 10_000,
      playlistTtlMs: 100,
      originBackoffMs: 200,
      originBackoffMaxMs: 1000,
      ...over,
    },
  });
}

function originCount(node: PackagerNode, route: string, code = "200"): number {
  return node.stats.requests.get({ route, code });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("packager edge mode", () => {
  let a: PackagerNode;
  let b: PackagerNode;
  let edge: PackagerNode | undefined;
  beforeEach(async () => {
    a = await startNode(originConfig({ nodeId: "pkg-a" }));
    b = await startNode(originConfig({ nodeId: "pkg-b" }));
    await feed(a.urls.http, "s1", ["720p", "360p"], 0, 4, 2);
    await feed(b.urls.http, "s1", ["720p", "360p"], 0, 4, 2);
  });
  afterEach(async () => {
    await edge?.stop();
    edge = undefined;
    await a.stop();
    await b.stop();
  });

  it("coalesces concurrent requests: N blocking reloads and N segment GETs cost one origin fetch each", async () => {
    edge = await startNode(edgeConfig([a.urls.http, b.urls.http]));
    const url = `${edge.urls.http}/live/s1/720p/index.m3u8?_HLS_msn=4&_HLS_part=2`;
    const waiting = Array.from({ length: 20 }, (_, i) =>
      request(`${url}&CMCD=${encodeURIComponent(`sid="v${i}"`)}`),
    );
    await sleep(200);
    assert.equal(originCount(a, "blocking_playlist"), 0, "answered before the part existed");
    assert.equal((await putPart(a.urls.http, "s1", { msn: 4, part: 2 })).status, 201);
    const replies = await Promise.all(waiting);
    for (const r of replies) {
      assert.equal(r.status, 200);
      assert.equal(r.text, replies[0]!.text);
    }
    assert.ok(replies[0]!.text.includes('URI="4.2.m4s"'));
    assert.equal(originCount(a, "blocking_playlist"), 1);
    assert.equal(originCount(b, "blocking_playlist"), 0);

    const segs = await Promise.all(
      Array.from({ length: 20 }, () => request(`${edge!.urls.http}/live/s1/720p/2.m4s`)),
    );
    const expected = Buffer.concat([0, 1, 2, 3].map((p) => partBytes("720p", 2, p)));
    for (const s of segs) assert.deepEqual(s.body, expected);
    assert.equal(originCount(a, "segment"), 1);
    // The edge appends its own CMSD-Dynamic entry after the origin's.
    assert.match(
      segs[0]!.headers.get("cmsd-dynamic") ?? "",
      /^"pkg-a";rd=\d+, "edge-test";rd=\d+$/,
    );
    const status = JSON.parse((await request(`${edge.urls.http}/status`)).text) as {
      sessions: { tracked: number };
      cache: { entries: number; hitRatio: number };
    };
    assert.equal(status.sessions.tracked, 20);
    assert.ok(status.cache.hitRatio > 0.8, JSON.stringify(status.cache));
  });

  it("fails over to the next origin when one dies, and backs off the dead one", async () => {
    edge = await startNode(edgeConfig([a.urls.http, b.urls.http]));
    const first = await request(`${edge.urls.http}/live/s1/720p/1.m4s`);
    assert.equal(first.status, 200);
    assert.match(first.headers.get("cmsd-static") ?? "", /n="pkg-a"/);
    await a.stop();
    const after = await request(`${edge.urls.http}/live/s1/720p/2.m4s`);
    assert.equal(after.status, 200);
    assert.match(after.headers.get("cmsd-static") ?? "", /n="pkg-b"/);
    assert.deepEqual(after.body, Buffer.concat([0, 1, 2, 3].map((p) => partBytes("720p", 2, p))));
    const pl = await request(`${edge.urls.http}/live/s1/360p/index.m3u8`);
    assert.equal(pl.status, 200);
    parseStrict(pl.text);
    const status = JSON.parse((await request(`${edge.urls.http}/status`)).text) as {
      edge: { origins: Array<{ url: string; healthy: boolean; consecutiveFailures: number }> };
    };
    assert.equal(status.edge.origins[0]!.healthy, false);
    assert.ok(status.edge.origins[0]!.consecutiveFailures >= 1);
    assert.equal(status.edge.origins[1]!.healthy, true);
    // Both gone: a clear 502 for what is not cached, cached objects still served.
    await b.stop();
    const none = await request(`${edge.urls.http}/live/s1/720p/3.m4s`);
    assert.equal(none.status, 502);
    assert.equal((await request(`${edge.urls.http}/live/s1/720p/2.m4s`)).status, 200);
    // Restart stubs so afterEach can stop them again.
    a = await startNode(originConfig({ nodeId: "pkg-a" }));
    b = await startNode(originConfig({ nodeId: "pkg-b" }));
  });

  it("serves a stale playlist while one refetch runs (stale-while-revalidate)", async () => {
    edge = await startNode(edgeConfig([a.urls.http]));
    const url = `${edge.urls.http}/live/s1/720p/index.m3u8`;
    const first = await request(url);
    assert.equal(first.headers.get("x-understudy-cache"), "miss");
    assert.equal((await request(url)).headers.get("x-understudy-cache"), "hit");
    await putPart(a.urls.http, "s1", { msn: 4, part: 2 });
    await sleep(150);
    const stale = await request(url);
    assert.equal(stale.headers.get("x-understudy-cache"), "stale");
    assert.equal(stale.text, first.text);
    // The refetch started by the stale hit lands in the background.
    await eventually(
      async () => (await request(url)).text.includes('URI="4.2.m4s"'),
      "refreshed playlist",
    );
  });

  it("prefetches the newest parts and the hinted part after serving a playlist", async () => {
    edge = await startNode(edgeConfig([a.urls.http], { prefetchDepth: 2 }));
    const partsBefore = originCount(a, "part");
    const pl = await request(`${edge.urls.http}/live/s1/720p/index.m3u8`);
    assert.equal(pl.status, 200);
    await eventually(() => originCount(a, "part") - partsBefore === 2, "4.1 and 4.0 prefetched");
    const p = await request(`${edge.urls.http}/live/s1/720p/4.1.m4s`);
    assert.equal(p.headers.get("x-understudy-cache"), "hit");
    assert.equal(originCount(a, "part") - partsBefore, 2, "served from the prefetched copy");
    // The hinted part 4.2 is being held at the origin; it lands in the edge cache when it arrives.
    await putPart(a.urls.http, "s1", { msn: 4, part: 2 });
    await eventually(() => originCount(a, "part") - partsBefore === 3, "hinted part fetched");
    const hinted = await request(`${edge.urls.http}/live/s1/720p/4.2.m4s`);
    assert.equal(hinted.headers.get("x-understudy-cache"), "hit");
    assert.deepEqual(hinted.body, partBytes("720p", 4, 2));
  });

  it("passes origin errors through without caching them and refuses ingest", async () => {
    edge = await startNode(edgeConfig([a.urls.http]));
    const bad = await request(`${edge.urls.http}/live/s1/720p/index.m3u8?_HLS_part=1`);
    assert.equal(bad.status, 400);
    assert.match(bad.text, /_HLS_part requires _HLS_msn/);
    const missing = await request(`${edge.urls.http}/live/s1/720p/99.m4s`);
    assert.equal(missing.status, 404);
    assert.equal(
      (await request(`${edge.urls.http}/ingest/s1/720p/init.mp4`, { method: "PUT", body: "x" }))
        .status,
      404,
    );
    const status = JSON.parse((await request(`${edge.urls.http}/status`)).text) as {
      cache: { entries: number };
    };
    assert.equal(status.cache.entries, 0);
  });
});
