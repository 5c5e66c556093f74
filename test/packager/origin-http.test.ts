import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PackagerNode } from "../../packager-node/src/node.ts";
import {
  feed,
  originConfig,
  partBytes,
  partHeaders,
  putInit,
  putPart,
  type Reply,
  request,
  startNode,
} from "./helpers.ts";
import { parseStrict } from "./parse-m3u8.ts";

function sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

describe("packager origin: ingest over HTTP", () => {
  let node: PackagerNode;
  let base: string;
  beforeEach(async () => {
    node = await startNode(originConfig());
    base = node.urls.http;
  });
  afterEach(async () => {
    await node.stop();
  });

  const playlist = async () => (await request(`${base}/live/s1/720p/index.m3u8`)).text;

  it("stores init, parts and segments (201), repeats are idempotent (200), and serves the bytes", async () => {
    assert.equal((await putInit(base, "s1")).status, 201);
    assert.equal((await putInit(base, "s1")).status, 200);
    const first = await putPart(base, "s1", { msn: 0, part: 0 });
    assert.equal(first.status, 201, first.text);
    assert.equal(first.headers.get("x-understudy-sha256"), sha(partBytes("720p", 0, 0)));
    assert.equal((await putPart(base, "s1", { msn: 0, part: 0 })).status, 200);
    for (let p = 1; p < 4; p++)
      assert.equal((await putPart(base, "s1", { msn: 0, part: p })).status, 201);
    // The parts reached the 2 s target, so the segment closed; the complete
    // segment pushed afterwards equals their concatenation: an idempotent repeat.
    const whole = Buffer.concat([0, 1, 2, 3].map((p) => partBytes("720p", 0, p)));
    const seg = await request(`${base}/ingest/s1/720p/0.m4s`, {
      method: "PUT",
      body: whole,
      headers: { "content-type": "video/mp4", "x-understudy-duration-ms": "2000" },
    });
    assert.equal(seg.status, 200, seg.text);
    const got = await request(`${base}/live/s1/720p/0.m4s`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, whole);
    assert.equal(got.headers.get("content-type"), "video/mp4");
    assert.match(got.headers.get("cmsd-static") ?? "", /d=2000/);
    const part = await request(`${base}/live/s1/720p/0.2.m4s`);
    assert.deepEqual(part.body, partBytes("720p", 0, 2));
    const init = await request(`${base}/live/s1/720p/init.mp4`);
    assert.equal(init.text, "init-720p");
    // Conditional GET on the ETag.
    const again = await request(`${base}/live/s1/720p/0.m4s`, {
      headers: { "if-none-match": got.headers.get("etag")! },
    });
    assert.equal(again.status, 304);
    const head = await request(`${base}/live/s1/720p/0.m4s`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(whole.length));
  });

  it("accepts a body without Content-Type (typed by extension, as ffmpeg sends it)", async () => {
    const res = await request(`${base}/ingest/s1/720p/init.mp4`, {
      method: "PUT",
      body: Buffer.from("init"),
    });
    assert.equal(res.status, 201, res.text);
  });

  describe("every 4xx says why and stores nothing", () => {
    beforeEach(async () => {
      await feed(base, "s1", ["720p"], 0, 8, 2);
    });

    async function expectRejected(
      reply: Promise<Reply>,
      status: number,
      why: RegExp,
    ): Promise<void> {
      const before = await playlist();
      const r = await reply;
      assert.equal(r.status, status, r.text);
      assert.match(r.text, why);
      assert.equal(await playlist(), before, "the playlist changed after a rejected ingest");
    }

    it("404 for a stream or rendition not assigned here", async () => {
      await expectRejected(
        putPart(base, "nope", { msn: 8, part: 2 }),
        404,
        /stream "nope" is not assigned/,
      );
      await expectRejected(
        putPart(base, "s1", { rendition: "4k", msn: 8, part: 2 }),
        404,
        /rendition "4k"/,
      );
    });

    it("415 for a wrong content type (octet-stream included)", async () => {
      await expectRejected(
        putPart(base, "s1", {
          msn: 8,
          part: 2,
          headers: { "content-type": "application/octet-stream" },
        }),
        415,
        /octet-stream is refused/,
      );
      await expectRejected(
        request(`${base}/ingest/s1/720p/index.m3u8`, {
          method: "PUT",
          body: "#EXTM3U\n",
          headers: { "content-type": "video/mp4" },
        }),
        415,
        /not a playlist type/,
      );
    });

    it("413 for a body over the limit, by Content-Length and while streaming a chunked body", async () => {
      await expectRejected(
        putPart(base, "s1", { msn: 8, part: 2, body: Buffer.alloc(5000, 7) }),
        413,
        /limit is 4096/,
      );
      // Chunked upload with no Content-Length: refused as soon as the limit is passed.
      const url = new URL(`${base}/ingest/s1/720p/8.2.m4s`);
      const before = await playlist();
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(url, {
          method: "PUT",
          headers: { ...partHeaders(8, 2), "transfer-encoding": "chunked" },
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        let sent = 0;
        const pump = () => {
          while (sent < 64 * 1024) {
            sent += 1024;
            if (!req.write(Buffer.alloc(1024, 1))) {
              req.once("drain", pump);
              return;
            }
          }
          req.end();
        };
        pump();
      });
      assert.equal(status, 413);
      assert.equal(await playlist(), before);
    });

    it("409 for sequence going backwards and for conflicting bytes", async () => {
      await expectRejected(
        putPart(base, "s1", { msn: 0, part: 0 }),
        409,
        /goes backwards: msn 0 is older than the live window/,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 6, part: 3, body: Buffer.alloc(100, 9) }),
        409,
        /conflicts with the stored bytes/,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 7, part: 4 }),
        409,
        /segment 7 is already closed/,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 8, part: 0, body: Buffer.alloc(50, 1) }),
        409,
        /conflicts/,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 8, part: 3 }),
        409,
        /skips ahead: expected part 8\.2/,
      );
      await expectRejected(
        request(`${base}/ingest/s1/720p/7.m4s`, {
          method: "PUT",
          body: Buffer.alloc(800, 3),
          headers: { "content-type": "video/mp4", "x-understudy-duration-ms": "2000" },
        }),
        409,
        /segment 7 conflicts/,
      );
      // The same bytes again are fine (200, nothing new).
      assert.equal((await putPart(base, "s1", { msn: 7, part: 1 })).status, 200);
    });

    it("400 for a body that does not match X-Understudy-Sha256, and for malformed headers", async () => {
      await expectRejected(
        putPart(base, "s1", {
          msn: 8,
          part: 2,
          headers: { "x-understudy-sha256": "0".repeat(64) },
        }),
        400,
        /does not match X-Understudy-Sha256/,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 8, part: 2, headers: { "x-understudy-duration-ms": "half" } }),
        400,
        /duration-ms/,
      );
      await expectRejected(
        putPart(base, "s1", {
          msn: 8,
          part: 2,
          headers: { "x-understudy-program-date-time": "yesterday" },
        }),
        400,
        /ISO-8601/,
      );
      await expectRejected(
        request(`${base}/ingest/s1/720p/seg.ts`, {
          method: "PUT",
          body: "x",
          headers: { "content-type": "video/mp4" },
        }),
        400,
        /unrecognised object name/,
      );
      // With the right checksum it goes through.
      const ok = await putPart(base, "s1", {
        msn: 8,
        part: 2,
        headers: { "x-understudy-sha256": sha(partBytes("720p", 8, 2)) },
      });
      assert.equal(ok.status, 201, ok.text);
    });

    it("409 for a stale encoder epoch", async () => {
      assert.equal(
        (await putPart(base, "s1", { msn: 8, part: 2, headers: { "x-understudy-epoch": "5" } }))
          .status,
        201,
      );
      await expectRejected(
        putPart(base, "s1", { msn: 8, part: 3, headers: { "x-understudy-epoch": "4" } }),
        409,
        /stale epoch 4 < 5/,
      );
    });
  });

  it("401 without or with a wrong bearer token when tokens are configured, and stores nothing", async () => {
    await node.stop();
    node = await startNode(
      originConfig({
        ingest: { partBytesMax: 4096, segmentBytesMax: 16384, tokens: ["tok-aaaaaaaaaaaaaaaa"] },
      }),
    );
    base = node.urls.http;
    const none = await putInit(base, "s1");
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /Bearer/);
    const wrong = await request(`${base}/ingest/s1/720p/init.mp4`, {
      method: "PUT",
      body: "x",
      headers: { authorization: "Bearer tok-bbbbbbbbbbbbbbbb", "content-type": "video/mp4" },
    });
    assert.equal(wrong.status, 401);
    assert.equal((await request(`${base}/live/s1/720p/init.mp4`)).status, 404);
    const right = await request(`${base}/ingest/s1/720p/init.mp4`, {
      method: "PUT",
      body: "x",
      headers: { authorization: "Bearer tok-aaaaaaaaaaaaaaaa", "content-type": "video/mp4" },
    });
    assert.equal(right.status, 201);
  });

  it("marks declared and skipped segments with EXT-X-GAP without renumbering, and 404s their URLs", async () => {
    await feed(base, "s1", ["720p"], 0, 2);
    // Segment 2 declared missing by the source.
    const gap = await request(`${base}/ingest/s1/720p/2.m4s`, {
      method: "PUT",
      body: Buffer.alloc(0),
      headers: {
        "content-type": "video/mp4",
        "x-understudy-gap": "1",
        "x-understudy-duration-ms": "2000",
      },
    });
    assert.equal(gap.status, 201, gap.text);
    // Segment 3 never arrives; the source continues at 4.
    for (let p = 0; p < 4; p++)
      assert.equal((await putPart(base, "s1", { msn: 4, part: p })).status, 201);
    assert.equal((await putPart(base, "s1", { msn: 5, part: 0 })).status, 201);
    const text = await playlist();
    assert.ok(
      text.includes("#EXT-X-GAP\n#EXTINF:2.000,\n2.m4s\n#EXT-X-GAP\n#EXTINF:2.000,\n3.m4s\n"),
      text,
    );
    const m = parseStrict(text);
    assert.deepEqual(
      m.segments.map((s) => s.uri),
      ["0.m4s", "1.m4s", "2.m4s", "3.m4s", "4.m4s"],
    );
    const r = await request(`${base}/live/s1/720p/3.m4s`);
    assert.equal(r.status, 404);
    assert.match(r.text, /is a gap/);
  });
});

describe("packager origin: playlists and blocking reload", () => {
  let node: PackagerNode;
  let base: string;
  before(async () => {
    node = await startNode(
      originConfig({}, { targetSegmentDurationMs: 2000, targetPartDurationMs: 500 }),
    );
    base = node.urls.http;
    await feed(base, "s1", ["720p", "360p"], 0, 8, 2);
  });
  after(async () => {
    await node.stop();
  });

  it("writes playlists every independent parser reads without warnings", async () => {
    for (const path of [
      "/live/s1/master.m3u8",
      "/live/s1/720p/index.m3u8",
      "/live/s1/360p/index.m3u8",
    ]) {
      const r = await request(base + path);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("content-type"), "application/vnd.apple.mpegurl");
      parseStrict(r.text);
    }
    const media = parseStrict((await request(`${base}/live/s1/720p/index.m3u8`)).text);
    assert.equal(media.mediaSequence, 2);
    assert.equal(media.segments.length, 6);
    assert.deepEqual(media.renditionReports, [
      { uri: "../360p/index.m3u8", lastMsn: 8, lastPart: 1 },
    ]);
    const mpd = await request(`${base}/live/s1/manifest.mpd`);
    assert.equal(mpd.status, 200);
    assert.match(mpd.text, /startNumber="2"/);
    assert.match(mpd.text, /availabilityStartTime="2024-01-01T00:00:00.000Z"/);
  });

  it("holds _HLS_msn/_HLS_part until that part arrives, then answers with it", async () => {
    const started = Date.now();
    let answeredAt = 0;
    const pending = request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=8&_HLS_part=2`).then((r) => {
      answeredAt = Date.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(answeredAt, 0, "answered before the part existed");
    const putAt = Date.now();
    assert.equal((await putPart(base, "s1", { msn: 8, part: 2 })).status, 201);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.ok(answeredAt >= putAt, "answered before the part was put");
    assert.ok(r.text.includes('#EXT-X-PART:DURATION=0.500,URI="8.2.m4s"\n'), r.text);
    assert.match(r.headers.get("cmsd-static") ?? "", /ht=\d+/);
    assert.ok(Date.now() - started < 5000);
    // Already satisfied: immediate.
    const now = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=8&_HLS_part=1`);
    assert.equal(now.status, 200);
  });

  it("treats a part index past a closed segment's last part as part 0 of the next segment", async () => {
    // 7 has parts 0..3; asking for 7.4 must wait for 8.0, which exists.
    const r = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=7&_HLS_part=4`);
    assert.equal(r.status, 200);
  });

  it("rejects _HLS_part without _HLS_msn and requests too far ahead with 400", async () => {
    const a = await request(`${base}/live/s1/720p/index.m3u8?_HLS_part=1`);
    assert.equal(a.status, 400);
    assert.match(a.text, /_HLS_part requires _HLS_msn/);
    const b = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=20`);
    assert.equal(b.status, 400);
    assert.match(b.text, /more than two segments past/);
    const c = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=10&_HLS_part=1`);
    assert.equal(c.status, 400);
    assert.match(c.text, /parts past the newest part/);
    const d = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=x`);
    assert.equal(d.status, 400);
  });

  it("holds a request for the hinted part and serves it when it arrives", async () => {
    const pending = request(`${base}/live/s1/360p/8.2.m4s`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await putPart(base, "s1", { rendition: "360p", msn: 8, part: 2 })).status, 201);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, partBytes("360p", 8, 2));
    // Far-future parts are not held.
    assert.equal((await request(`${base}/live/s1/360p/30.0.m4s`)).status, 404);
  });
});

describe("packager origin: blocking reload timeout", () => {
  it("answers 503 after about three target durations when the part never comes", async () => {
    const node = await startNode(
      originConfig({}, { targetSegmentDurationMs: 1000, targetPartDurationMs: 250 }),
    );
    try {
      const base = node.urls.http;
      await putInit(base, "s1");
      for (let p = 0; p < 4; p++) {
        assert.equal((await putPart(base, "s1", { msn: 0, part: p, durationMs: 250 })).status, 201);
      }
      const t0 = Date.now();
      const r = await request(`${base}/live/s1/720p/index.m3u8?_HLS_msn=1&_HLS_part=0`);
      const held = Date.now() - t0;
      assert.equal(r.status, 503);
      assert.match(r.text, /did not reach msn 1 part 0/);
      assert.ok(held >= 2900 && held < 4500, `held ${held} ms`);
    } finally {
      await node.stop();
    }
  });
});

describe("packager origin: replicas fed the same parts", () => {
  it("serve byte-identical playlists, multivariant playlists and MPDs", async () => {
    const a = await startNode(originConfig({ nodeId: "pkg-a" }));
    const b = await startNode(originConfig({ nodeId: "pkg-b" }));
    try {
      await feed(a.urls.http, "s1", ["720p", "360p"], 10, 19, 3);
      await feed(b.urls.http, "s1", ["720p", "360p"], 10, 19, 3);
      for (const path of [
        "/live/s1/720p/index.m3u8",
        "/live/s1/360p/index.m3u8",
        "/live/s1/720p/index.m3u8?_HLS_msn=19&_HLS_part=1",
        "/live/s1/master.m3u8",
        "/live/s1/manifest.mpd",
      ]) {
        const ra = await request(a.urls.http + path);
        const rb = await request(b.urls.http + path);
        assert.equal(ra.status, 200, `${path}: ${ra.text}`);
        assert.equal(ra.text, rb.text, path);
      }
      const sa = await request(`${a.urls.http}/live/s1/720p/15.m4s`);
      const sb = await request(`${b.urls.http}/live/s1/720p/15.m4s`);
      assert.deepEqual(sa.body, sb.body);
      assert.equal(sa.headers.get("etag"), sb.headers.get("etag"));
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("packager origin: CMCD, CMSD, status, drain", () => {
  let node: PackagerNode;
  let base: string;
  beforeEach(async () => {
    node = await startNode(originConfig());
    base = node.urls.http;
    await feed(base, "s1", ["720p", "360p"], 0, 3, 1);
  });
  afterEach(async () => {
    await node.stop();
  });

  it("counts CMCD sessions per rendition (query and headers) and sends CMSD", async () => {
    const q = encodeURIComponent('bl=12000,br=3000,bs,mtp=25000,ot=v,sid="viewer-1",su');
    const r = await request(`${base}/live/s1/720p/1.m4s?CMCD=${q}`);
    assert.equal(r.status, 200);
    assert.match(
      r.headers.get("cmsd-static") ?? "",
      /^at=\d+,br=3000,d=2000,n="pkg-test",ot=v,st=l$/,
    );
    assert.match(r.headers.get("cmsd-dynamic") ?? "", /^"pkg-test";rd=\d+$/);
    await request(`${base}/live/s1/360p/1.m4s`, {
      headers: {
        "cmcd-session": 'sid="viewer-2",st=l',
        "cmcd-object": "br=800,ot=v",
        "cmcd-request": "bl=4000",
      },
    });
    await request(`${base}/live/s1/360p/2.m4s`, {
      headers: { "cmcd-session": 'sid="viewer-2"', "cmcd-status": "bs" },
    });
    const status = (await request(`${base}/status`)).body;
    const s = JSON.parse(status.toString("utf8")) as {
      sessions: {
        tracked: number;
        byRendition: Array<{
          streamId: string;
          renditionId: string;
          sessions: number;
          stalls: number;
        }>;
      };
      cache: { hitRatio: number };
    };
    assert.equal(s.sessions.tracked, 2);
    assert.deepEqual(s.sessions.byRendition, [
      { streamId: "s1", renditionId: "360p", sessions: 1, stalls: 1 },
      { streamId: "s1", renditionId: "720p", sessions: 1, stalls: 1 },
    ]);
    assert.ok(s.cache.hitRatio > 0);
    const metrics = (await request(`${base}/metrics`)).text;
    assert.match(metrics, /understudy_packager_sessions\{rendition="720p",stream="s1"\} 1/);
    assert.match(
      metrics,
      /understudy_packager_http_requests_total\{code="200",route="segment"\} 3/,
    );
    assert.equal((await request(`${base}/healthz`)).status, 200);
  });

  it("reports the throughput achieved to a session on its next response as CMSD etp", async () => {
    const big = await startNode(
      originConfig({
        nodeId: "pkg-etp",
        ingest: { partBytesMax: 1 << 20, segmentBytesMax: 1 << 22 },
      }),
    );
    try {
      const b = big.urls.http;
      await putInit(b, "s1");
      for (let p = 0; p < 4; p++) {
        assert.equal(
          (await putPart(b, "s1", { msn: 0, part: p, body: partBytes("720p", 0, p, 100_000) }))
            .status,
          201,
        );
      }
      const cmcd = `CMCD=${encodeURIComponent('sid="fast"')}`;
      const first = await request(`${b}/live/s1/720p/0.m4s?${cmcd}`);
      assert.doesNotMatch(first.headers.get("cmsd-dynamic") ?? "", /etp=/);
      const second = await request(`${b}/live/s1/720p/0.m4s?${cmcd}`);
      assert.match(second.headers.get("cmsd-dynamic") ?? "", /^"pkg-etp";etp=\d+;rd=\d+$/);
    } finally {
      await big.stop();
    }
  });

  it("adds keys from the CMSD hint hook", async () => {
    node.setCmsdHint(({ streamId }) =>
      streamId === "s1" ? { "com.understudy-switch": "pkg-b@20" } : undefined,
    );
    const r = await request(`${base}/live/s1/720p/1.m4s`);
    assert.match(r.headers.get("cmsd-dynamic") ?? "", /;com\.understudy-switch="pkg-b@20"/);
    assert.doesNotMatch(r.headers.get("cmsd-static") ?? "", /understudy-switch/);
  });

  it("while draining refuses new sessions (503) and keeps serving known ones", async () => {
    await request(`${base}/live/s1/master.m3u8?CMCD=${encodeURIComponent('sid="old"')}`);
    node.drain();
    const fresh = await request(`${base}/live/s1/master.m3u8`);
    assert.equal(fresh.status, 503);
    assert.match(fresh.text, /draining/);
    const newSid = await request(
      `${base}/live/s1/720p/1.m4s?CMCD=${encodeURIComponent('sid="new"')}`,
    );
    assert.equal(newSid.status, 503);
    const known = await request(
      `${base}/live/s1/720p/1.m4s?CMCD=${encodeURIComponent('sid="old"')}`,
    );
    assert.equal(known.status, 200);
    assert.match(known.headers.get("cmsd-dynamic") ?? "", /;du/);
    assert.equal((await request(`${base}/readyz`)).status, 503);
    const s = JSON.parse((await request(`${base}/status`)).text) as { draining: boolean };
    assert.equal(s.draining, true);
  });
});

describe("packager origin: disk persistence", () => {
  it("reloads the live window after a restart from temp-then-renamed files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "understudy-pkg-"));
    try {
      const cfg = originConfig({ storage: { diskDir: dir } });
      const a = await startNode(cfg);
      await feed(a.urls.http, "s1", ["720p"], 0, 9);
      const before = (await request(`${a.urls.http}/live/s1/720p/index.m3u8`)).text;
      const seg = (await request(`${a.urls.http}/live/s1/720p/4.m4s`)).body;
      await a.stop();
      const b = await startNode(cfg);
      try {
        const after = await request(`${b.urls.http}/live/s1/720p/index.m3u8`);
        assert.equal(after.status, 200);
        // Every segment was closed (its parts reached the target), so the
        // restored window, parts included, is exactly what was served before.
        assert.equal(after.text, before);
        parseStrict(after.text);
        assert.deepEqual((await request(`${b.urls.http}/live/s1/720p/4.m4s`)).body, seg);
      } finally {
        await b.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
