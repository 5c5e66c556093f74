/**
 * Handover notices end to end on one real coordinator node: committed
 * handover transitions reach a real nats-server subscriber, WatchHandovers
 * and GetLatestNotice serve the same notices, and after a NATS outage the
 * latest notice is republished.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection } from "nats";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { silentLogger } from "../../common/log.ts";
import { type NatsServerHandle, startNatsServer } from "../../common/nats-server.ts";
import { createNatsNoticeBus } from "../../coordinator/src/act/notice-bus.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  type HandoverNotice,
  HandoverNoticeSchema,
} from "../../proto/gen/understudy/notice/v1/notice_pb.ts";
import { rendition360p, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

const spec = { ...streamSpec("live-1"), renditions: [rendition360p] };

async function nextNotice(
  it: AsyncIterator<{ data: Uint8Array }>,
  timeoutMs = 3000,
): Promise<HandoverNotice> {
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("no notice in time")), timeoutMs),
    ),
  ]);
  assert.ok(!r.done);
  return fromBinary(HandoverNoticeSchema, r.value.data);
}

describe("handover notices (real coordinator node, real nats-server)", function () {
  this.timeout(30_000);
  let nats: NatsServerHandle;
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  let sub: NatsConnection;

  before(async () => {
    nats = await startNatsServer();
    const bus = createNatsNoticeBus({ servers: [nats.url], log: silentLogger });
    node = await startSingleNode(
      { handover: { automatic: false }, placement: { automatic: false } },
      { noticeBus: bus },
    );
    const c = node.cluster;
    for (const [id, url] of [
      ["pkg-a", "http://127.0.0.1:9001"],
      ["pkg-b", "http://127.0.0.1:9002"],
    ] as const) {
      const r = await c.propose({
        op: {
          case: "registerComponent",
          value: { componentId: id, role: ComponentRole.PACKAGER, baseUrl: url },
        },
      });
      assert.ok(r.ok);
    }
    assert.ok((await c.propose({ op: { case: "createStream", value: { spec } } })).ok);
    sub = await connect({ servers: nats.url });
  });
  after(async () => {
    await sub?.close();
    await node?.cleanup();
    await nats?.stop();
  });

  it("publishes every committed transition with a growing epoch, and serves it over the API", async () => {
    const it = sub.subscribe("understudy.v1.handover.live-1")[Symbol.asyncIterator]();
    await sub.flush();
    const c = node.cluster;
    assert.ok(
      (
        await c.propose({
          op: {
            case: "handoverBegun",
            value: {
              handoverId: "h1",
              streamId: "live-1",
              fromComponentId: "pkg-a",
              toComponentId: "pkg-b",
              reason: HandoverReason.PREDICTED,
              probability: 0.93,
            },
          },
        })
      ).ok,
    );
    const begun = await nextNotice(it);
    assert.equal(begun.handoverId, "h1");
    assert.equal(begun.state, HandoverState.BEGUN);
    assert.equal(begun.fromOrigin?.baseUrl, "http://127.0.0.1:9001");
    assert.equal(begun.toOrigin?.baseUrl, "http://127.0.0.1:9002");
    assert.equal(begun.probability, 0.93);

    for (const [state, msn] of [
      [HandoverState.STANDBY_READY, 0n],
      [HandoverState.PRE_STITCHED, 0n],
      [HandoverState.NOTIFIED, 120n],
    ] as const) {
      assert.ok(
        (
          await c.propose({
            op: { case: "handoverAdvanced", value: { handoverId: "h1", state, switchMsn: msn } },
          })
        ).ok,
      );
    }
    const seen = [await nextNotice(it), await nextNotice(it), await nextNotice(it)];
    assert.deepEqual(
      seen.map((n) => n.state),
      [HandoverState.STANDBY_READY, HandoverState.PRE_STITCHED, HandoverState.NOTIFIED],
    );
    for (let i = 1; i < seen.length; i++)
      assert.ok(seen[i]!.epoch > seen[i - 1]!.epoch, "epochs grow");
    assert.equal(seen[2]?.switchMsn, 120n);

    const api = createGrpcClient(HandoverService, node.apiServer.address);
    try {
      const latest = await api.getLatestNotice({ streamId: "live-1" });
      assert.equal(latest.notice?.state, HandoverState.NOTIFIED);
      assert.equal(latest.notice?.epoch, seen[2]?.epoch);
      await assert.rejects(
        api.getLatestNotice({ streamId: "nope" }),
        (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
      );
      await assert.rejects(
        api.getLatestNotice({ streamId: "Bad Id" }),
        (e: grpc.ServiceError) =>
          e.code === grpc.status.INVALID_ARGUMENT && /stream_id/.test(e.details),
      );

      // Watch: the latest first, then live transitions.
      const ac = new AbortController();
      const watch = api
        .watchHandovers({ streamId: "live-1", sendLatestFirst: true }, { signal: ac.signal })
        [Symbol.asyncIterator]();
      const first = await watch.next();
      assert.equal(first.value?.notice?.state, HandoverState.NOTIFIED);
      assert.ok(
        (
          await c.propose({
            op: {
              case: "handoverAdvanced",
              value: { handoverId: "h1", state: HandoverState.SWITCHED },
            },
          })
        ).ok,
      );
      const next = await watch.next();
      assert.equal(next.value?.notice?.state, HandoverState.SWITCHED);
      ac.abort();
      assert.equal((await nextNotice(it)).state, HandoverState.SWITCHED);
    } finally {
      api.close();
    }
  });

  it("the chain graph shows the standby while a handover is open", async () => {
    const chain = createGrpcClient(ChainService, node.apiServer.address);
    try {
      assert.ok(
        (
          await node.cluster.propose({
            op: {
              case: "handoverAdvanced",
              value: { handoverId: "h1", state: HandoverState.COMPLETED },
            },
          })
        ).ok,
      );
      assert.ok(
        (
          await node.cluster.propose({
            op: {
              case: "handoverBegun",
              value: {
                handoverId: "h2",
                streamId: "live-1",
                fromComponentId: "pkg-b",
                toComponentId: "pkg-a",
                reason: HandoverReason.OPERATOR,
              },
            },
          })
        ).ok,
      );
      const g = (await chain.getChain({ streamId: "live-1" })).graph;
      assert.ok(g);
      const stages = Object.fromEntries(g.nodes.map((n) => [n.componentId, n.stage]));
      assert.equal(stages["pkg-a"], 2 /* STANDBY */);
      assert.equal(stages["pkg-b"], 3 /* DRAINING */);
      assert.deepEqual(
        g.edges.map((e) => [e.fromComponentId, e.toComponentId]),
        [["pkg-b", "pkg-a"]],
      );
      assert.equal(g.version, node.cluster.fsm.stream("live-1")?.epoch);
    } finally {
      chain.close();
    }
  });

  it("republishes the latest notice after NATS comes back", async () => {
    await nats.kill();
    // While NATS is down the coordinator keeps committing (notices are dropped, not queued).
    assert.ok(
      (
        await node.cluster.propose({
          op: {
            case: "handoverAdvanced",
            value: { handoverId: "h2", state: HandoverState.ABORTED, error: "test" },
          },
        })
      ).ok,
    );
    nats = await startNatsServer({ port: nats.port });
    await sub.close();
    sub = await connect({ servers: nats.url });
    const it = sub.subscribe("understudy.v1.handover.live-1")[Symbol.asyncIterator]();
    await sub.flush();
    // The bus reconnects with a bounded backoff and republishes the latest state.
    const n = await nextNotice(it, 10_000);
    assert.equal(n.handoverId, "h2");
    assert.equal(n.state, HandoverState.ABORTED);
  });
});
