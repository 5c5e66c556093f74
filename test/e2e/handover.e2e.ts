/**
 * Handover end to end with real processes (nats-server, 3 coordinators,
 * 3 packager-nodes with agents, 2 sources with agents) and SDK viewers:
 *  - a client that missed the notice (NATS stopped) still switches, through
 *    the coordinator's Watch/poll fallback;
 *  - a handover survives a coordinator leader kill halfway: the new leader
 *    finishes it from the log, and viewers switch without a stall;
 *  - a stale-epoch notice published on NATS is ignored by clients.
 *
 * Run with `npm run test:handover` (not yet part of `npm test`): at the time
 * of writing the NATS-down case counts one long stall per viewer after the
 * switch (the viewers keep fetching parts; the stall accounting or the switch
 * over the Watch path is suspect), and the stale-epoch case moves viewers
 * (a client that has seen no notice accepts any epoch). Both are open work.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { connect } from "nats";
import { runViewers } from "../../client-sdk/src/node-viewers.ts";
import { createGrpcClient } from "../../common/grpc-client.ts";
import {
  type Cluster,
  leaderOf,
  startCluster,
  startStream,
  waitUntil,
} from "../../deploy/local-cluster/cluster.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { HandoverNoticeSchema } from "../../proto/gen/understudy/notice/v1/notice_pb.ts";

describe("handover end to end (real processes, SDK viewers)", function () {
  this.timeout(240_000);
  let cluster: Cluster;
  let runDir: string;
  let primary: { id: string; http: string };
  let coordinatorUrls: string[];

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), "understudy-e2e-handover-"));
    cluster = await startCluster(runDir, false);
    const s = await startStream(cluster);
    primary = s.primary;
    coordinatorUrls = s.addresses.map((a) => `http://${a}`);
  });
  after(async () => {
    await cluster?.stop();
    rmSync(runDir, { recursive: true, force: true });
  });

  const startHandover = async (from: string) => {
    const l = await waitUntil("a leader", 10_000, () => leaderOf(cluster));
    const h = createGrpcClient(HandoverService, l.api);
    try {
      const r = await h.startHandover(
        { streamId: "demo", fromComponentId: from, reason: "e2e" },
        { timeoutMs: 10_000 },
      );
      assert.ok(r.handover);
      return r.handover;
    } finally {
      h.close();
    }
  };
  const handoverState = async (id: string) => {
    for (const c of cluster.coordinators.filter((x) => x.proc.running())) {
      const h = createGrpcClient(HandoverService, c.api);
      try {
        return (await h.getHandover({ handoverId: id }, { timeoutMs: 2000 })).handover;
      } catch {
        // try the next node
      } finally {
        h.close();
      }
    }
    return undefined;
  };
  const viewers = (count: number, durationMs: number, origin: string) =>
    runViewers({
      streamId: "demo",
      count,
      originUrl: `${origin}/live/demo/master.m3u8`,
      alternateOrigins: cluster.packagers.filter((p) => p.http !== origin).map((p) => p.http),
      coordinatorUrls,
      natsServers: [cluster.natsUrl],
      durationMs,
    });

  it("a client that missed the notice (NATS down) still switches, and nobody stalls", async () => {
    const watching = viewers(4, 16_000, primary.http);
    await new Promise((r) => setTimeout(r, 3000));
    await cluster.stopNats();
    try {
      const h = await startHandover(primary.id);
      await waitUntil("the handover to complete", 30_000, async () =>
        (await handoverState(h.id))?.state === HandoverState.COMPLETED ? true : undefined,
      );
      const report = await watching;
      assert.equal(report.summary.viewersSwitched, 4, JSON.stringify(report.summary));
      assert.equal(
        report.summary.stallsTotal,
        0,
        JSON.stringify({
          summary: report.summary,
          first: { ...report.viewers[0], noticeLatenciesMs: undefined },
        }),
      );
      assert.equal(report.summary.continuityViolations, 0);
      const via = report.viewers.flatMap((v) =>
        Object.entries(v.noticesVia)
          .filter(([, n]) => n > 0)
          .map(([k]) => k),
      );
      assert.ok(!via.includes("nats"), `notices came over NATS while it was down: ${via}`);
      primary = cluster.packagers.find((p) => p.id === h.toComponentId)!;
    } finally {
      await cluster.startNats();
    }
  });

  it("a handover survives a coordinator leader kill halfway", async () => {
    const watching = viewers(4, 20_000, primary.http);
    await new Promise((r) => setTimeout(r, 3000));
    const h = await startHandover(primary.id);
    // Kill the leader while the handover is in flight.
    const leader = await leaderOf(cluster);
    await cluster.coordinators.find((c) => c.id === leader?.id)?.proc.kill();
    const done = await waitUntil("the new leader to finish the handover", 40_000, async () => {
      const s = await handoverState(h.id);
      return s && (s.state === HandoverState.COMPLETED || s.state === HandoverState.ABORTED)
        ? s
        : undefined;
    });
    assert.equal(HandoverState[done.state], "COMPLETED", done.error);
    const report = await watching;
    assert.equal(report.summary.viewersSwitched, 4, JSON.stringify(report.summary));
    assert.equal(report.summary.stallsTotal, 0, JSON.stringify(report.summary));
    assert.equal(report.summary.continuityViolations, 0);
  });
  it("ignores a stale-epoch notice published on NATS (after real handovers)", async () => {
    const watching = viewers(4, 9000, primary.http);
    await new Promise((r) => setTimeout(r, 3000));
    const nc = await connect({ servers: cluster.natsUrl });
    // The clients catch up with the latest notice (the handovers above) on
    // start, so epoch 1 is older than what they hold.
    const stale = create(HandoverNoticeSchema, {
      streamId: "demo",
      handoverId: "forged",
      epoch: 1n,
      fromOrigin: { componentId: primary.id, baseUrl: primary.http },
      toOrigin: { componentId: "nowhere", baseUrl: "http://127.0.0.1:9" },
      switchMsn: 1n,
      reason: HandoverReason.OPERATOR,
      state: HandoverState.NOTIFIED,
    });
    nc.publish("understudy.v1.handover.demo", toBinary(HandoverNoticeSchema, stale));
    await nc.flush();
    await nc.close();
    const report = await watching;
    assert.equal(report.summary.switchesTotal, 0, "nobody moved to the forged origin");
    assert.equal(report.summary.stallsTotal, 0);
  });
});
