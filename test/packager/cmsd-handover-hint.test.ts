/**
 * Handover hints: the store's contracts on a manual clock (expiry, per-stream
 * epoch fence, rendition filter, bounds), and PackagerService
 * SetHandoverHint/ClearHandoverHint over real gRPC against a real node whose
 * real HTTP responses carry the hint in CMSD-Dynamic.
 */
import assert from "node:assert/strict";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { createManualClock, type ManualClock } from "../../common/clock.ts";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import { silentLogger } from "../../common/log.ts";
import {
  createHandoverHints,
  HANDOVER_HINT_KEYS,
} from "../../packager-node/src/cmcd/handover-hint.ts";
import { createPackagerNode, type PackagerNode } from "../../packager-node/src/node.ts";
import { PackagerService } from "../../proto/gen/understudy/packager/v1/packager_pb.ts";
import { grpcCode, grpcMessage } from "../support/cluster.ts";
import { feed, originConfig, putPart, request } from "./helpers.ts";

const hint = (
  over: Partial<Parameters<ReturnType<typeof createHandoverHints>["set"]>[0]> = {},
) => ({
  streamId: "s1",
  handoverId: "ho-1",
  epoch: 5,
  toComponentId: "pkg-b",
  toBaseUrl: "http://127.0.0.1:9",
  switchMsn: 12,
  duress: true,
  renditionIds: [] as string[],
  ...over,
});

describe("packager handover hint store", () => {
  let clock: ManualClock;
  beforeEach(() => {
    clock = createManualClock(1_700_000_000_000);
  });

  it("emits the CMSD keys until the TTL passes on the monotonic clock", () => {
    const hints = createHandoverHints({ clock });
    const r = hints.set(hint(), 2000);
    assert.ok(r.ok && !("full" in r));
    assert.equal(r.expiresUnixMs, 1_700_000_002_000);
    assert.deepEqual(hints.keysFor({ streamId: "s1", renditionId: "720p" }), {
      du: true,
      [HANDOVER_HINT_KEYS.handover]: "ho-1",
      [HANDOVER_HINT_KEYS.to]: "pkg-b",
      [HANDOVER_HINT_KEYS.url]: "http://127.0.0.1:9",
      [HANDOVER_HINT_KEYS.msn]: 12,
      [HANDOVER_HINT_KEYS.epoch]: 5,
    });
    assert.equal(hints.keysFor({ streamId: "other" }), undefined);
    // Wall-clock jumps do not matter; only monotonic time does.
    clock.set(1_800_000_000_000);
    assert.ok(hints.keysFor({ streamId: "s1" }));
    clock.advance(1999);
    assert.ok(hints.keysFor({ streamId: "s1" }));
    clock.advance(1);
    assert.equal(hints.keysFor({ streamId: "s1" }), undefined);
    assert.equal(hints.size, 0);
  });

  it("renewing extends the expiry; without duress or URL those keys are absent", () => {
    const hints = createHandoverHints({ clock });
    hints.set(hint({ duress: false, toBaseUrl: "" }), 1000);
    clock.advance(900);
    hints.set(hint({ duress: false, toBaseUrl: "", epoch: 6 }), 1000);
    clock.advance(900);
    const keys = hints.keysFor({ streamId: "s1" });
    assert.ok(keys);
    assert.equal(keys.du, undefined);
    assert.equal(keys[HANDOVER_HINT_KEYS.url], undefined);
    assert.equal(keys[HANDOVER_HINT_KEYS.epoch], 6);
  });

  it("refuses older epochs for set and clear, so a late set cannot undo a clear", () => {
    const hints = createHandoverHints({ clock });
    assert.ok(hints.set(hint({ epoch: 5 }), 5000).ok);
    assert.deepEqual(hints.clear("s1", 7), { ok: true, cleared: true });
    assert.deepEqual(hints.set(hint({ epoch: 6 }), 5000), { ok: false, highestEpoch: 7 });
    assert.deepEqual(hints.clear("s1", 6), { ok: false, highestEpoch: 7 });
    assert.equal(hints.keysFor({ streamId: "s1" }), undefined);
    // An equal epoch is a retry.
    assert.deepEqual(hints.clear("s1", 7), { ok: true, cleared: false });
  });

  it("clears only the named handover's hint when a handover id is given", () => {
    const hints = createHandoverHints({ clock });
    hints.set(hint({ handoverId: "ho-2" }), 5000);
    assert.deepEqual(hints.clear("s1", 5, "ho-1"), { ok: true, cleared: false });
    assert.ok(hints.keysFor({ streamId: "s1" }));
    assert.deepEqual(hints.clear("s1", 5, "ho-2"), { ok: true, cleared: true });
  });

  it("limits the hint to the named renditions (stream-level playlists always carry it)", () => {
    const hints = createHandoverHints({ clock });
    hints.set(hint({ renditionIds: ["720p"] }), 5000);
    assert.ok(hints.keysFor({ streamId: "s1", renditionId: "720p" }));
    assert.equal(hints.keysFor({ streamId: "s1", renditionId: "360p" }), undefined);
    assert.ok(hints.keysFor({ streamId: "s1" }));
  });

  it("holds at most streamsMax hints; expired ones make room", () => {
    const hints = createHandoverHints({ clock, streamsMax: 2, epochsMax: 3 });
    assert.ok(hints.set(hint({ streamId: "a" }), 1000).ok);
    assert.ok(hints.set(hint({ streamId: "b" }), 5000).ok);
    assert.deepEqual(hints.set(hint({ streamId: "c" }), 1000), { ok: false, full: true });
    clock.advance(1000);
    assert.ok(hints.set(hint({ streamId: "c" }), 1000).ok);
    assert.ok(hints.set(hint({ streamId: "c", epoch: 9 }), 1000).ok, "replacing needs no room");
    assert.throws(() => createHandoverHints({ clock, streamsMax: 4, epochsMax: 4 }), /streamsMax/);
  });
});

type Client = GrpcClient<typeof PackagerService>;

async function rejectsWith(p: Promise<unknown>, code: number, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(grpcCode(err), code, grpcMessage(err));
    assert.match(grpcMessage(err), re);
    return true;
  });
}

describe("packager SetHandoverHint/ClearHandoverHint over gRPC (real node, real HTTP)", () => {
  let node: PackagerNode;
  let clock: ManualClock;
  let pc: Client;
  let base: string;
  const valid = {
    epoch: 4n,
    coordinatorTerm: 3n,
    streamId: "s1",
    handoverId: "ho-abc",
    toComponentId: "pkg-b",
    toBaseUrl: "http://10.0.0.6:8080",
    switchMsn: 3n,
    ttlMs: 10_000,
    duress: true,
    renditionIds: [] as string[],
  };
  const dyn = async (path: string) =>
    (await request(`${base}/live/s1/${path}`)).headers.get("cmsd-dynamic") ?? "";

  beforeEach(async () => {
    // Wall clock near real time (ingest lag stats), but time only moves when the test says.
    clock = createManualClock(Date.now());
    node = createPackagerNode(originConfig({ nodeId: "pkg-a", control: "127.0.0.1:0" }), {
      logger: silentLogger,
      clock,
    });
    await node.start();
    base = node.urls.http;
    pc = createGrpcClient(PackagerService, node.urls.control!);
    await feed(base, "s1", ["720p", "360p"], 0, 2);
  });
  afterEach(async () => {
    pc.close();
    await node.stop();
  });

  it("puts the hint in CMSD-Dynamic of playlists and media until cleared", async () => {
    assert.doesNotMatch(await dyn("720p/index.m3u8"), /understudy/);
    const r = await pc.setHandoverHint(valid);
    assert.ok(r.expiresUnixMs > BigInt(Math.trunc(clock.nowMs())));
    const expected =
      /^"pkg-a";rd=\d+;du;com\.understudy-ho="ho-abc";com\.understudy-to="pkg-b";com\.understudy-url="http:\/\/10\.0\.0\.6:8080";com\.understudy-msn=3;com\.understudy-ep=4$/;
    assert.match(await dyn("720p/index.m3u8"), expected);
    assert.match(await dyn("master.m3u8"), expected);
    assert.match(await dyn("360p/1.m4s"), expected);
    const media = await request(`${base}/live/s1/360p/1.m4s`);
    assert.doesNotMatch(media.headers.get("cmsd-static") ?? "", /understudy/);
    const cleared = await pc.clearHandoverHint({
      epoch: 6n,
      coordinatorTerm: 3n,
      streamId: "s1",
      handoverId: "ho-abc",
    });
    assert.equal(cleared.cleared, true);
    assert.doesNotMatch(await dyn("720p/index.m3u8"), /understudy/);
    // A retried clear is fine; a late set from before the clear is refused.
    assert.equal(
      (await pc.clearHandoverHint({ epoch: 6n, coordinatorTerm: 3n, streamId: "s1" })).cleared,
      false,
    );
    await rejectsWith(
      pc.setHandoverHint({ ...valid, epoch: 5n }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale epoch 5 < 6 for the handover hint of stream "s1"/,
    );
    assert.doesNotMatch(await dyn("720p/index.m3u8"), /understudy/);
  });

  it("expires the hint when nobody renews it (a coordinator that died)", async () => {
    await pc.setHandoverHint({ ...valid, ttlMs: 1000 });
    clock.advance(999);
    assert.match(await dyn("720p/index.m3u8"), /com\.understudy-to="pkg-b"/);
    clock.advance(1);
    assert.doesNotMatch(await dyn("720p/index.m3u8"), /understudy/);
    assert.equal(node.handoverHints.size, 0);
  });

  it("refuses a stale term or a stream epoch older than the node's fence, changing nothing", async () => {
    await pc.setHandoverHint({ ...valid, coordinatorTerm: 7n });
    await rejectsWith(
      pc.setHandoverHint({ ...valid, coordinatorTerm: 6n, switchMsn: 9n }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale coordinator term 6 < 7/,
    );
    await rejectsWith(
      pc.clearHandoverHint({ epoch: 4n, coordinatorTerm: 6n, streamId: "s1" }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale coordinator term 6 < 7/,
    );
    assert.match(await dyn("720p/index.m3u8"), /com\.understudy-msn=3;/);
    // The node's own fence (raised by Assign/Unassign/...) also applies.
    await node.fence.observe(7, "s1", 20);
    await rejectsWith(
      pc.setHandoverHint({ ...valid, coordinatorTerm: 7n, epoch: 19n }),
      GrpcStatus.FAILED_PRECONDITION,
      /stale epoch 19 < 20 for stream "s1"/,
    );
  });

  it("does not raise the stream's ingest fence (encoders on an older epoch keep pushing)", async () => {
    await pc.setHandoverHint({ ...valid, epoch: 40n });
    assert.equal(node.fence.epochOf("s1"), 0);
    const put = await putPart(base, "s1", {
      rendition: "720p",
      msn: 2,
      part: 0,
      headers: { "x-understudy-epoch": "1" },
    });
    assert.equal(put.status, 201, put.text);
  });

  it("rejects bad input with INVALID_ARGUMENT naming the field, storing nothing", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ streamId: "Bad Id" }, /^stream_id: "Bad Id" is not 1–64 chars/],
      [{ handoverId: "" }, /^handover_id: is required/],
      [{ handoverId: "has space" }, /^handover_id:/],
      [{ toComponentId: "" }, /^to_component_id: is required: the standby's component id/],
      [{ toBaseUrl: "ftp://x" }, /^to_base_url: must be empty or an http\(s\) URL/],
      [{ toBaseUrl: `http://${"a".repeat(600)}` }, /^to_base_url:/],
      [{ switchMsn: 0n }, /^switch_msn: is required \(> 0\)/],
      [{ ttlMs: 999 }, /^ttl_ms: must be 1000–600000 .* got 999/],
      [{ ttlMs: 600_001 }, /^ttl_ms:/],
      [{ renditionIds: ["720p", "BAD"] }, /^rendition_ids\[1\]: "BAD" is not/],
      [
        { renditionIds: Array.from({ length: 17 }, (_, i) => `r${i}`) },
        /^rendition_ids: at most 16/,
      ],
    ];
    for (const [patch, re] of cases) {
      await rejectsWith(
        pc.setHandoverHint({ ...valid, ...patch }),
        GrpcStatus.INVALID_ARGUMENT,
        re,
      );
    }
    await rejectsWith(
      pc.clearHandoverHint({ epoch: 1n, coordinatorTerm: 1n, streamId: "" }),
      GrpcStatus.INVALID_ARGUMENT,
      /^stream_id:/,
    );
    assert.equal(node.handoverHints.size, 0);
    assert.equal(node.fence.highestTerm(), 0, "a refused call records no term");
    assert.doesNotMatch(await dyn("720p/index.m3u8"), /understudy/);
  });

  it("answers NOT_FOUND for a stream this origin does not serve", async () => {
    await rejectsWith(
      pc.setHandoverHint({ ...valid, streamId: "nope" }),
      GrpcStatus.NOT_FOUND,
      /stream "nope" is not served here/,
    );
  });
});
