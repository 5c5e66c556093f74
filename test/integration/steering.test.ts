/**
 * HLS Content Steering manifests over real HTTP from a real coordinator node:
 * the primary leads while all is well; once a handover is NOTIFIED the
 * standby leads and the TTL drops so players re-read sooner; a DOWN origin
 * sinks to the end. Bad requests get a status that says what is wrong.
 */
import assert from "node:assert/strict";
import {
  ComponentRole,
  ComponentStatus,
} from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { rendition360p, streamSpec } from "../support/cluster.ts";
import { startSingleNode } from "../support/single-node.ts";

describe("content steering manifest (real coordinator, real HTTP)", function () {
  this.timeout(20_000);
  let node: Awaited<ReturnType<typeof startSingleNode>>;
  const get = (path: string, method = "GET") =>
    fetch(`http://${node.apiServer.address}${path}`, { method });
  before(async () => {
    node = await startSingleNode({
      handover: { automatic: false },
      placement: { automatic: false },
    });
    const c = node.cluster;
    for (const id of ["pkg-a", "pkg-b", "pkg-c"]) {
      await c.propose({
        op: { case: "registerComponent", value: { componentId: id, role: ComponentRole.PACKAGER } },
      });
    }
    await c.propose({
      op: {
        case: "createStream",
        value: {
          spec: { ...streamSpec("live-1"), renditions: [rendition360p] },
        },
      },
    });
    await c.propose({
      op: {
        case: "setAssignments",
        value: {
          streamId: "live-1",
          assignments: [
            { renditionId: "360p", primaryPackagerId: "pkg-a", replicaPackagerIds: ["pkg-c"] },
          ],
        },
      },
    });
  });
  after(async () => {
    await node.cleanup();
  });

  it("orders pathways primary first while all is well", async () => {
    const res = await get("/steering/live-1");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.deepEqual(await res.json(), {
      VERSION: 1,
      TTL: 30,
      "RELOAD-URI": "/steering/live-1",
      "PATHWAY-PRIORITY": ["pkg-a", "pkg-c"],
    });
  });

  it("puts a notified standby first with a short TTL, and a DOWN origin last", async () => {
    const c = node.cluster;
    await c.propose({
      op: {
        case: "handoverBegun",
        value: {
          handoverId: "h1",
          streamId: "live-1",
          fromComponentId: "pkg-a",
          toComponentId: "pkg-b",
          reason: HandoverReason.PREDICTED,
        },
      },
    });
    let m = (await (await get("/steering/live-1")).json()) as {
      TTL: number;
      "PATHWAY-PRIORITY": string[];
    };
    assert.deepEqual(
      m["PATHWAY-PRIORITY"],
      ["pkg-a", "pkg-c"],
      "a standby being prepared gets no viewers yet",
    );
    for (const state of [
      HandoverState.STANDBY_READY,
      HandoverState.PRE_STITCHED,
      HandoverState.NOTIFIED,
    ]) {
      await c.propose({
        op: { case: "handoverAdvanced", value: { handoverId: "h1", state, switchMsn: 10n } },
      });
    }
    m = (await (await get("/steering/live-1")).json()) as typeof m;
    assert.equal(m.TTL, 2);
    assert.deepEqual(m["PATHWAY-PRIORITY"], ["pkg-b", "pkg-c", "pkg-a"]);
    await c.propose({
      op: {
        case: "updateComponentStatus",
        value: { componentId: "pkg-c", status: ComponentStatus.DOWN },
      },
    });
    m = (await (await get("/steering/live-1")).json()) as typeof m;
    assert.deepEqual(m["PATHWAY-PRIORITY"], ["pkg-b", "pkg-a", "pkg-c"]);
  });

  it("offers the other origins as clones of the player's current pathway", async () => {
    const c = node.cluster;
    for (const [id, host] of [
      ["pkg-a", "10.0.0.1"],
      ["pkg-b", "10.0.0.2"],
      ["pkg-c", "10.0.0.3"],
    ]) {
      await c.propose({
        op: {
          case: "registerComponent",
          value: {
            componentId: id as string,
            role: ComponentRole.PACKAGER,
            baseUrl: `http://${host}:8080`,
          },
        },
      });
    }
    const m = (await (
      await get("/steering/live-1?_HLS_pathway=pkg-a&_HLS_throughput=5000000")
    ).json()) as {
      "PATHWAY-CLONES": { "BASE-ID": string; ID: string; "URI-REPLACEMENT": { HOST: string } }[];
    };
    assert.deepEqual(
      m["PATHWAY-CLONES"].map((x) => [x["BASE-ID"], x.ID, x["URI-REPLACEMENT"].HOST]).sort(),
      [
        ["pkg-a", "pkg-b", "10.0.0.2"],
        ["pkg-a", "pkg-c", "10.0.0.3"],
      ],
    );
    const none = (await (await get("/steering/live-1")).json()) as Record<string, unknown>;
    assert.equal(none["PATHWAY-CLONES"], undefined, "no clones without a known current pathway");
  });

  it("answers unknown streams, bad ids and wrong methods with a clear status", async () => {
    const missing = await get("/steering/nope");
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /no stream "nope"/);
    const bad = await get("/steering/BAD!");
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /not a stream id/);
    assert.equal((await get("/steering/live-1", "POST")).status, 405);
    assert.equal((await get("/elsewhere")).status, 404);
  });
});
