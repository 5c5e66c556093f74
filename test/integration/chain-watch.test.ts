/**
 * ChainService.WatchChain on a real single-node coordinator: the first graph
 * and every later change arrive, including a change committed right after
 * the first graph was sent and before the client asked for the next message
 * (the watch used to subscribe only then, so such a change was lost until an
 * unrelated one came). The generator is driven in-process to hold that
 * window open deterministically; a gRPC client covers the wire path.
 */
import assert from "node:assert/strict";
import type { HandlerContext } from "@connectrpc/connect";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { createChainService } from "../../coordinator/src/api/chain-service.ts";
import {
  ChainService,
  ChainUpdateReason,
  type WatchChainResponse,
} from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

const spec = streamSpec("live-1");

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms),
    ),
  ]);
}

describe("ChainService.WatchChain (real coordinator node)", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  let handovers = 0;

  const beginHandover = async () => {
    handovers++;
    const r = await node.cluster.propose({
      op: {
        case: "handoverBegun",
        value: {
          handoverId: `h${handovers}`,
          streamId: "live-1",
          fromComponentId: "pkg-b",
          toComponentId: "pkg-a",
          reason: HandoverReason.OPERATOR,
        },
      },
    });
    assert.ok(r.ok, r.ok ? "" : r.message);
  };

  before(async () => {
    node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
    for (const [id, url] of [
      ["pkg-a", "http://127.0.0.1:9001"],
      ["pkg-b", "http://127.0.0.1:9002"],
    ] as const) {
      const r = await node.cluster.propose({
        op: {
          case: "registerComponent",
          value: { componentId: id, role: ComponentRole.PACKAGER, baseUrl: url },
        },
      });
      assert.ok(r.ok);
    }
    assert.ok((await node.cluster.propose({ op: { case: "createStream", value: { spec } } })).ok);
  });
  after(async () => {
    await node?.cleanup();
  });

  it("a change committed between the first graph and the next read is delivered", async () => {
    const impl = createChainService(node.cluster);
    const ac = new AbortController();
    const gen = impl.watchChain!(
      { streamId: "live-1" } as Parameters<NonNullable<typeof impl.watchChain>>[0],
      { signal: ac.signal } as HandlerContext,
    ) as AsyncGenerator<Partial<WatchChainResponse>>;
    try {
      const first = await within(gen.next(), 5000, "first graph");
      assert.equal(first.value?.reason, ChainUpdateReason.INITIAL);
      const v0 = first.value?.graph?.version;
      // The client has not asked for the next message yet.
      await beginHandover();
      const next = await within(gen.next(), 3000, "the update committed after the first graph");
      assert.ok(!next.done);
      assert.ok((next.value?.graph?.version ?? 0n) > (v0 ?? 0n), "a newer graph");
      assert.equal(next.value?.graph?.version, node.cluster.fsm.stream("live-1")?.epoch);
      assert.ok(next.value?.graph?.nodes.some((n) => n.componentId === "pkg-a"));
    } finally {
      ac.abort();
      await gen.return(undefined);
    }
  });

  it("over gRPC: the first graph is INITIAL, later ones follow commits; unknown streams are NOT_FOUND", async () => {
    const chain = createGrpcClient(ChainService, node.apiServer.address);
    const ac = new AbortController();
    try {
      const it = chain
        .watchChain({ streamId: "live-1" }, { signal: ac.signal })
        [Symbol.asyncIterator]();
      const first = await within(it.next(), 5000, "first graph");
      assert.equal(first.value.reason, ChainUpdateReason.INITIAL);
      const done = await node.cluster.propose({
        op: {
          case: "handoverAdvanced",
          value: { handoverId: `h${handovers}`, state: HandoverState.ABORTED, error: "test" },
        },
      });
      assert.ok(done.ok, done.ok ? "" : done.message);
      const want = node.cluster.fsm.stream("live-1")?.epoch;
      let got: bigint | undefined;
      for (let i = 0; i < 5 && got !== want; i++) {
        got = (await within(it.next(), 3000, "update")).value.graph?.version;
      }
      assert.equal(got, want);
      await assert.rejects(
        async () => {
          for await (const _ of chain.watchChain({ streamId: "no-such-stream" })) {
            // must not yield
          }
        },
        (e: { code?: number; details?: string }) => e.code === 5 /* NOT_FOUND */,
      );
    } finally {
      ac.abort();
      chain.close();
    }
  });
});
