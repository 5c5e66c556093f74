/**
 * The agent's packager probe against a real packager-node's /status: the
 * document the packager actually serves (nested) must yield the ingest
 * latency, error and cache samples the predictor uses.
 */
import assert from "node:assert/strict";
import { parsePackagerStatus } from "../../agent/src/probes.ts";
import { originConfig, partBytes, partHeaders, putInit, startNode } from "../packager/helpers.ts";

describe("agent probe ↔ packager-node /status (real HTTP)", () => {
  it("reads ingest lag, error ratio and cache hit ratio from the packager's own document", async () => {
    const node = await startNode(originConfig());
    try {
      assert.equal((await putInit(node.urls.http, "s1")).status, 201);
      const r = await fetch(`${node.urls.http}/ingest/s1/720p/0.0.m4s`, {
        method: "PUT",
        headers: partHeaders(0, 0),
        body: partBytes("720p", 0, 0),
      });
      assert.equal(r.status, 201);
      await fetch(`${node.urls.http}/live/s1/master.m3u8`);
      const doc = await (await fetch(`${node.urls.http}/status`)).json();
      const { samples, values } = parsePackagerStatus(doc);
      const names = samples.map((s) => s.name);
      assert.ok(names.includes("packager.ingest_latency_ms"), names.join(","));
      assert.ok(names.includes("packager.error_rate"), names.join(","));
      assert.ok(names.includes("packager.cache_hit_ratio"), names.join(","));
      assert.ok(Number.isFinite(values.ingest_latency_p50_ms));
      assert.equal(values.draining, 0);
    } finally {
      await node.stop();
    }
  });
});
