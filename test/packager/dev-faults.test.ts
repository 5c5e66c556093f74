/**
 * Fault injection exists only behind the explicit dev flag, validates its
 * input, and degrades the node the way the demo relies on: ingest slows down
 * (the reported ingest lag climbs) while playback keeps working.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../common/log.ts";
import { createPackagerNode } from "../../packager-node/src/node.ts";
import { originConfig, partBytes, partHeaders, putInit, startNode } from "./helpers.ts";

describe("packager-node dev fault injection", function () {
  this.timeout(20_000);

  it("does not exist without --dev-fault-injection", async () => {
    const node = await startNode(originConfig());
    try {
      const r = await fetch(`${node.urls.http}/dev/fault`, {
        method: "POST",
        body: '{"kind":"degrade"}',
      });
      assert.equal(r.status, 404);
    } finally {
      await node.stop();
    }
  });

  it("validates the request and ramps ingest delay while serving playback", async () => {
    const node = createPackagerNode(originConfig(), {
      logger: silentLogger,
      devFaultInjection: true,
    });
    await node.start();
    const base = node.urls.http;
    try {
      const bad = await fetch(`${base}/dev/fault`, { method: "POST", body: '{"kind":"explode"}' });
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /kind/);
      const badRamp = await fetch(`${base}/dev/fault`, {
        method: "POST",
        body: '{"kind":"degrade","rampMs":-5}',
      });
      assert.equal(badRamp.status, 400);
      assert.match(await badRamp.text(), /rampMs/);
      assert.equal((await fetch(`${base}/dev/fault`, { method: "PUT" })).status, 405);
      const badShape = await fetch(`${base}/dev/fault`, {
        method: "POST",
        body: '{"kind":"degrade","shape":"cubic"}',
      });
      assert.equal(badShape.status, 400);

      const ok = await fetch(`${base}/dev/fault`, {
        method: "POST",
        body: JSON.stringify({
          kind: "degrade",
          rampMs: 400,
          ingestDelayMaxMs: 300,
          leakBytesMax: 4 * 1024 * 1024,
        }),
      });
      assert.equal(ok.status, 202);
      await new Promise((r) => setTimeout(r, 600));
      const state = (await (await fetch(`${base}/dev/fault`)).json()) as {
        progress: number;
        leakedBytes: number;
      };
      assert.equal(state.progress, 1);
      assert.ok(state.leakedBytes >= 3 * 1024 * 1024, `leaked ${state.leakedBytes}`);

      // Ingest now takes at least the full delay, and still succeeds.
      assert.equal((await putInit(base, "s1")).status, 201);
      const t0 = Date.now();
      const r = await fetch(`${base}/ingest/s1/720p/0.0.m4s`, {
        method: "PUT",
        headers: partHeaders(0, 0),
        body: partBytes("720p", 0, 0),
      });
      assert.ok(r.status === 201 || r.status === 200, `status ${r.status}`);
      assert.ok(Date.now() - t0 >= 290, "ingest was delayed");
      assert.equal(
        (await fetch(`${base}/live/s1/master.m3u8`)).status,
        200,
        "playback still served",
      );

      assert.equal((await fetch(`${base}/dev/fault`, { method: "DELETE" })).status, 200);
      const after = (await (await fetch(`${base}/dev/fault`)).json()) as { fault: unknown };
      assert.equal(after.fault, null);
    } finally {
      await node.stop();
    }
  });
});
