import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import { silentLogger } from "../../common/log.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import { SegmentKind } from "../../proto/gen/understudy/common/v1/segment_pb.ts";
import {
  AssignmentRole,
  NodeMode,
  PackagerService,
} from "../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { grpcCode, grpcMessage, streamSpec } from "../support/cluster.ts";
import { feed, originConfig, originSpecRenditions, request } from "./helpers.ts";

type Client = GrpcClient<typeof PackagerService>;

async function startWithControl(
  over: Record<string, unknown> = {},
  withStreams = true,
): Promise<PackagerNode> {
  const cfg = originConfig({
    control: "127.0.0.1:0",
    ...(withStreams ? {} : { streams: [] }),
    ...over,
  });
  // config.control set: the node serves PackagerService itself.
  const node = createPackagerNode(cfg, { logger: silentLogger });
  await node.start();
  return node;
}

/**
 * The shared test StreamSpec with this file's two-rendition ladder, its
 * segments bounded by the 2 s of originConfig's static stream: the primary
 * here is configured statically, and replicas of one stream must agree on
 * the bound their EXT-X-TARGETDURATION comes from.
 */
const spec = (id = "s1") => {
  const base = streamSpec(id);
  return {
    ...base,
    renditions: originSpecRenditions,
    segmentPolicy: { ...base.segmentPolicy, segmentDurationMaxMs: 2000 },
  };
};

async function rejectsWith(p: Promise<unknown>, code: number, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(grpcCode(err), code, grpcMessage(err));
    assert.match(grpcMessage(err), re);
    return true;
  });
}

describe("packager PackagerService over gRPC", () => {
  let primary: PackagerNode;
  let standby: PackagerNode;
  let pc: Client;
  let sc: Client;
  beforeEach(async () => {
    primary = await startWithControl({ nodeId: "pkg-a" });
    standby = await startWithControl({ nodeId: "pkg-b" }, false);
    pc = createGrpcClient(PackagerService, primary.urls.control!);
    sc = createGrpcClient(PackagerService, standby.urls.control!);
  });
  afterEach(async () => {
    pc.close();
    sc.close();
    await primary.stop();
    await standby.stop();
  });

  it("Assign serves a new stream, is idempotent per epoch, and fences older epochs and terms", async () => {
    const res = await sc.assign({
      epoch: 3n,
      coordinatorTerm: 2n,
      stream: spec("live-2"),
      renditionIds: ["720p"],
      role: AssignmentRole.REPLICA,
    });
    assert.equal(res.epoch, 3n);
    assert.equal(res.ingestBaseUrl, `${standby.urls.http}/ingest/live-2`);
    const put = await request(`${res.ingestBaseUrl}/720p/init.mp4`, {
      method: "PUT",
      body: "i",
      headers: { "content-type": "video/mp4" },
    });
    assert.equal(put.status, 201);
    // Same epoch again: a retry, fine.
    await sc.assign({
      epoch: 3n,
      coordinatorTerm: 2n,
      stream: spec("live-2"),
      renditionIds: ["720p"],
      role: AssignmentRole.REPLICA,
    });
    await rejectsWith(
      sc.assign({
        epoch: 2n,
        coordinatorTerm: 2n,
        stream: spec("live-2"),
        renditionIds: ["360p"],
        role: AssignmentRole.REPLICA,
      }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale epoch 2 < 3 for stream "live-2"/,
    );
    await rejectsWith(
      sc.assign({
        epoch: 4n,
        coordinatorTerm: 1n,
        stream: spec("live-2"),
        renditionIds: ["360p"],
        role: AssignmentRole.REPLICA,
      }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale coordinator term 1 < 2/,
    );
    // The refused calls changed nothing: 360p is still not served.
    assert.equal((await request(`${standby.urls.http}/live/live-2/360p/index.m3u8`)).status, 404);
    // Ingest with an older encoder epoch than the coordinator's is refused too.
    const stale = await request(`${res.ingestBaseUrl}/720p/0.0.m4s`, {
      method: "PUT",
      body: "x",
      headers: {
        "content-type": "video/mp4",
        "x-understudy-duration-ms": "500",
        "x-understudy-epoch": "2",
      },
    });
    assert.equal(stale.status, 409);
  });

  it("Assign validates the request field by field", async () => {
    await rejectsWith(
      sc.assign({
        epoch: 1n,
        coordinatorTerm: 1n,
        renditionIds: ["720p"],
        role: AssignmentRole.PRIMARY,
      }),
      GrpcStatus.INVALID_ARGUMENT,
      /^stream: is required/,
    );
    await rejectsWith(
      sc.assign({
        epoch: 1n,
        coordinatorTerm: 1n,
        stream: spec(),
        renditionIds: ["4k"],
        role: AssignmentRole.PRIMARY,
      }),
      GrpcStatus.INVALID_ARGUMENT,
      /rendition_ids\[0\]: "4k" is not in stream.renditions/,
    );
    await rejectsWith(
      sc.assign({ epoch: 1n, coordinatorTerm: 1n, stream: spec(), renditionIds: ["720p"] }),
      GrpcStatus.INVALID_ARGUMENT,
      /^role: is required/,
    );
    await rejectsWith(
      sc.assign({
        epoch: 1n,
        coordinatorTerm: 1n,
        stream: { ...spec(), id: "Bad_Id" },
        renditionIds: ["720p"],
        role: AssignmentRole.PRIMARY,
      }),
      GrpcStatus.INVALID_ARGUMENT,
      /stream.id/,
    );
  });

  it("Replicate copies the last segments and parts with verified checksums; the standby then serves identical playlists", async () => {
    await feed(primary.urls.http, "s1", ["720p", "360p"], 0, 9, 2);
    await sc.assign({
      epoch: 1n,
      coordinatorTerm: 1n,
      stream: spec(),
      renditionIds: ["720p", "360p"],
      role: AssignmentRole.REPLICA,
    });
    for (const renditionId of ["720p", "360p"]) {
      const res = await sc.replicate({
        epoch: 1n,
        coordinatorTerm: 1n,
        streamId: "s1",
        renditionId,
        peerBaseUrl: primary.urls.http,
        lastNSegments: 6,
        includeParts: true,
      });
      assert.equal(res.verified, true);
      assert.deepEqual(res.mismatches, []);
      assert.equal(res.segmentsCopied, 6);
      assert.equal(res.segments.filter((s) => s.kind === SegmentKind.INIT).length, 1);
      assert.equal(res.segments.filter((s) => s.kind === SegmentKind.PART).length, 2);
      for (const s of res.segments) assert.equal(s.sha256.length, 32);
    }
    for (const path of [
      "/live/s1/720p/index.m3u8",
      "/live/s1/360p/index.m3u8",
      "/live/s1/manifest.mpd",
    ]) {
      const a = await request(primary.urls.http + path);
      const b = await request(standby.urls.http + path);
      assert.equal(b.status, 200, b.text);
      assert.equal(b.text, a.text, path);
    }
    // Running it again copies nothing new and is still verified.
    const again = await sc.replicate({
      epoch: 1n,
      coordinatorTerm: 1n,
      streamId: "s1",
      renditionId: "720p",
      peerBaseUrl: primary.urls.http,
      lastNSegments: 6,
      includeParts: true,
    });
    assert.equal(again.verified, true);
    assert.equal(again.segmentsCopied, 0);
  });

  it("Replicate refuses objects whose bytes do not match the peer's inventory checksum", async () => {
    await feed(primary.urls.http, "s1", ["720p"], 0, 5);
    await sc.assign({
      epoch: 1n,
      coordinatorTerm: 1n,
      stream: spec(),
      renditionIds: ["720p"],
      role: AssignmentRole.REPLICA,
    });
    // A peer in the middle that corrupts segment 2.
    const upstream = primary.urls.http;
    const liar = http.createServer((req, res) => {
      void fetch(upstream + req.url).then(async (r) => {
        let body = Buffer.from(await r.arrayBuffer());
        if (req.url?.endsWith("/720p/2.m4s")) body = Buffer.from(body.map((x) => x ^ 0xff));
        res.writeHead(r.status, {
          "content-type": r.headers.get("content-type") ?? "application/octet-stream",
        });
        res.end(body);
      });
    });
    await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
    try {
      const port = (liar.address() as AddressInfo).port;
      const res = await sc.replicate({
        epoch: 1n,
        coordinatorTerm: 1n,
        streamId: "s1",
        renditionId: "720p",
        peerBaseUrl: `http://127.0.0.1:${port}`,
        lastNSegments: 6,
        includeParts: false,
      });
      assert.equal(res.verified, false);
      assert.equal(res.mismatches.length, 1);
      assert.equal(res.mismatches[0]!.expected?.msn, 2n);
      assert.match(res.mismatches[0]!.detail, /segment 2: .*sha256 differs/);
      // 4 and 3 were copied (newest first); 2 was refused, and older ones cannot sit behind that hole.
      assert.equal((await request(`${standby.urls.http}/live/s1/720p/2.m4s`)).status, 404);
      assert.equal((await request(`${standby.urls.http}/live/s1/720p/3.m4s`)).status, 200);
    } finally {
      liar.closeAllConnections();
      await new Promise<void>((r) => liar.close(() => r()));
    }
  });

  it("Inventory lists objects newest first with checksums and truncates at max_entries", async () => {
    await feed(primary.urls.http, "s1", ["720p"], 0, 3, 1);
    const inv = await pc.inventory({ streamId: "s1", renditionId: "720p" });
    assert.equal(inv.truncated, false);
    const kinds = inv.segments.map((s) => `${SegmentKind[s.kind]}:${s.msn}.${s.partIndex}`);
    assert.deepEqual(kinds.slice(0, 6), [
      "PART:3.0",
      "SEGMENT:2.0",
      "PART:2.3",
      "PART:2.2",
      "PART:2.1",
      "PART:2.0",
    ]);
    assert.equal(kinds[kinds.length - 1], "INIT:0.0");
    const cut = await pc.inventory({ streamId: "s1", maxEntries: 2 });
    assert.equal(cut.segments.length, 2);
    assert.equal(cut.truncated, true);
    await rejectsWith(
      pc.inventory({ renditionId: "720p" }),
      GrpcStatus.INVALID_ARGUMENT,
      /rendition_id: requires stream_id/,
    );
  });

  it("Drain and GetStatus report the node; Unassign stops serving", async () => {
    await feed(primary.urls.http, "s1", ["720p", "360p"], 0, 3);
    const before = await pc.getStatus({});
    assert.equal(before.nodeId, "pkg-a");
    assert.equal(before.mode, NodeMode.ORIGIN);
    assert.equal(before.draining, false);
    assert.equal(before.streams[0]?.streamId, "s1");
    assert.equal(before.streams[0]?.lastMsn, 2n);
    const drained = await pc.drain({ coordinatorTerm: 5n, deadlineUnixMs: 0n });
    assert.equal(drained.ok, true);
    assert.equal(drained.streamsRemaining, 1);
    const after = await pc.getStatus({});
    assert.equal(after.draining, true);
    assert.equal(after.coordinatorTerm, 5n);
    await rejectsWith(
      pc.drain({ coordinatorTerm: 4n }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale coordinator term 4 < 5/,
    );
    const un = await pc.unassign({
      epoch: 1n,
      coordinatorTerm: 5n,
      streamId: "s1",
      renditionIds: ["360p"],
    });
    assert.deepEqual(un.remainingRenditionIds, ["720p"]);
    assert.equal((await request(`${primary.urls.http}/live/s1/360p/index.m3u8`)).status, 404);
    const all = await pc.unassign({
      epoch: 1n,
      coordinatorTerm: 5n,
      streamId: "s1",
      renditionIds: [],
    });
    assert.deepEqual(all.remainingRenditionIds, []);
    assert.equal((await request(`${primary.urls.http}/live/s1/720p/index.m3u8`)).status, 404);
    // A deadline in the past: playback stops altogether.
    await pc.drain({ coordinatorTerm: 5n, deadlineUnixMs: BigInt(Date.now() - 1) });
    const drained2 = await request(`${primary.urls.http}/live/s1/master.m3u8`);
    assert.equal(drained2.status, 503);
    assert.match(drained2.text, /deadline passed/);
  });
});
