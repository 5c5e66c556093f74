/**
 * The source's chain follower against real gRPC servers (connect-node over
 * HTTP/2 on loopback) standing in for two coordinators: it stays on the
 * address that works, moves to the next one at once when a watch breaks
 * (no backoff while untried addresses remain), and `refresh()` (called
 * when a push is refused as a stale epoch) re-reads the chain right away,
 * at most once per second.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../../common/log.ts";
import { type RpcServer, serve, startRpcServer } from "../../common/rpc-server.ts";
import { followChain } from "../../packager-node/src/source/follow.ts";
import type { ShardMap } from "../../packager-node/src/source/shard-map.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";

interface FakeCoordinator {
  server: RpcServer;
  /** WatchChain calls received. */
  watches: number;
  /** Epoch the next watch's graph carries. */
  epoch: number;
  /** When set, a watch fails at once with UNAVAILABLE. */
  down: boolean;
  /** Ends every open watch with UNAVAILABLE. */
  breakWatches(): void;
}

async function startFake(name: string, epoch: number): Promise<FakeCoordinator> {
  const breakers = new Set<() => void>();
  const fake: FakeCoordinator = {
    server: undefined as unknown as RpcServer,
    watches: 0,
    epoch,
    down: false,
    breakWatches: () => {
      for (const b of breakers) b();
    },
  };
  fake.server = await startRpcServer({
    listen: "127.0.0.1:0",
    services: [
      serve(ChainService, {
        async *watchChain(req, ctx) {
          fake.watches++;
          if (fake.down) throw new ConnectError(`${name} is down`, Code.Unavailable);
          yield {
            graph: {
              streamId: req.streamId,
              epoch: BigInt(fake.epoch),
              nodes: [{ componentId: "pkg-1", baseUrl: `http://${name}.invalid` }],
              shardMap: [{ firstShard: 0n, encoderId: "enc-0", replicaPackagerIds: ["pkg-1"] }],
            },
          };
          // Held open like a real watch until broken or cancelled.
          await new Promise<void>((resolve, reject) => {
            const b = () => reject(new ConnectError(`${name} stream broken`, Code.Unavailable));
            breakers.add(b);
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          }).finally(() => breakers.clear());
        },
      }),
    ],
  });
  return fake;
}

async function until(what: string, ms: number, ok: () => boolean): Promise<number> {
  const t0 = performance.now();
  while (!ok()) {
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - t0;
}

describe("source: chain follower (real gRPC)", function () {
  this.timeout(20_000);
  let a: FakeCoordinator;
  let b: FakeCoordinator;
  beforeEach(async () => {
    a = await startFake("a", 1);
    b = await startFake("b", 2);
  });
  const follow = () => {
    const maps: ShardMap[] = [];
    const f = followChain(
      [a.server.address, b.server.address],
      "s1",
      (m) => maps.push(m),
      silentLogger,
    );
    return { maps, f };
  };
  afterEach(async () => {
    await a.server.close(100);
    await b.server.close(100);
  });

  it("a broken watch moves to the next coordinator at once and stays there while it works", async () => {
    const { maps, f } = follow();
    try {
      await until("first map from a", 5000, () => maps.length === 1);
      assert.equal(maps[0]?.epoch, 1);
      a.down = true;
      a.breakWatches();
      const ms = await until("map from b", 2000, () => maps.length === 2);
      assert.equal(maps[1]?.epoch, 2);
      assert.ok(ms < 1000, `moved to b after ${Math.round(ms)} ms`);
      // Still on b: no further watch on either side while b's stream is open.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(b.watches, 1);
      assert.equal(a.watches, 1);
      // b breaks while a is still down: a is tried, fails, then b again.
      b.epoch = 3;
      b.breakWatches();
      await until("map from b again", 5000, () => maps.length === 3);
      assert.equal(maps[2]?.epoch, 3);
      assert.equal(a.watches, 2, "a tried once in between");
    } finally {
      f.stop();
    }
  });

  it("refresh() re-reads the chain now (next coordinator), at most once per second", async () => {
    const { maps, f } = follow();
    try {
      await until("first map", 5000, () => maps.length === 1);
      f.refresh();
      const ms = await until("re-read after refresh", 2000, () => maps.length === 2);
      assert.ok(ms < 1000, `re-read after ${Math.round(ms)} ms`);
      assert.equal(maps[1]?.epoch, 2, "from the next coordinator");
      f.refresh(); // within a second of the previous one: ignored
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(maps.length, 2);
      assert.equal(a.watches + b.watches, 2);
    } finally {
      f.stop();
    }
  });
});
