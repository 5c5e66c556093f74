/**
 * Aborts that must work after a garbage collection. Node's fetch (undici)
 * links the caller's AbortSignal to a running request only weakly
 * (nodejs/undici#3644): after a GC an abort can do nothing, and a long-lived
 * response (a WatchHandovers stream) stays open until the server ends it.
 * These tests force a GC between starting a stream and aborting it, against
 * real Connect servers, and check that the stream ends at once and the server
 * sees it go.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { abortableFetch } from "../../client-sdk/src/abortable-fetch.ts";
import { HandoverService } from "../../client-sdk/src/gen/understudy/api/v1/handover_service_pb.ts";
import { createMemoryNoticeBus, createUnderstudyClient } from "../../client-sdk/src/index.ts";
import { serve, startRpcServer } from "../../common/rpc-server.ts";
import { notice, startCoordinatorStub, until } from "./support.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** A full collection, twice with a turn of the event loop between (WeakRefs clear after a turn). */
async function collect(): Promise<void> {
  gc();
  await new Promise((r) => setTimeout(r, 10));
  gc();
}

describe("client-sdk: aborts survive garbage collection", function () {
  this.timeout(20_000);

  it("a Connect server stream over the SDK's fetch ends as soon as its signal aborts", async () => {
    let serverSawEnd = false;
    const server = await startRpcServer({
      listen: "127.0.0.1:0",
      services: [
        serve(HandoverService, {
          async *watchHandovers(_req, ctx) {
            yield { notice: { streamId: "live-1", epoch: 1n } };
            await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r()));
            serverSawEnd = true;
          },
        }),
      ],
    });
    try {
      const transport = createConnectTransport({
        baseUrl: `http://${server.address}`,
        useBinaryFormat: true,
        fetch: abortableFetch(globalThis.fetch.bind(globalThis)),
      });
      const ac = new AbortController();
      const it = createClient(HandoverService, transport)
        .watchHandovers({ streamId: "live-1" }, { signal: ac.signal, timeoutMs: 8000 })
        [Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.notice?.epoch, 1n);
      const next = it.next().then(
        () => "ended",
        (err: unknown) => ConnectError.from(err).code,
      );
      await collect();
      const t0 = Date.now();
      ac.abort();
      assert.equal(await next, Code.Canceled);
      assert.ok(Date.now() - t0 < 500, `the stream ended ${Date.now() - t0} ms after the abort`);
      await until(() => serverSawEnd, 2000, "the server to see the stream end");
    } finally {
      await server.close(200);
    }
  });

  it("a client in the Watch fallback closes at once, and its Watch stream ends on the server", async () => {
    const coord = await startCoordinatorStub();
    try {
      const client = createUnderstudyClient({
        streamId: "live-1",
        bus: createMemoryNoticeBus({ status: "reconnecting" }),
        coordinatorUrls: [coord.url],
        fallbackAfterMs: 50,
        watchMaxDurationMs: 8000,
      });
      await until(() => coord.watchers() === 1, 5000, "the client's WatchHandovers stream");
      coord.setLatest(notice({ streamId: "live-1", epoch: 3n }));
      await until(() => client.stats().highestEpoch === 3, 5000, "the notice via Watch");
      await collect();
      const t0 = Date.now();
      await client.close();
      const closeMs = Date.now() - t0;
      assert.ok(closeMs < 1000, `close() took ${closeMs} ms (the Watch stream did not abort)`);
      await until(() => coord.watchers() === 0, 2000, "the server to see the Watch stream end");
    } finally {
      await coord.close();
    }
  });
});
