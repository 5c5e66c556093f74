/**
 * `understudy viewers` core: headless real-time viewers on shared NATS
 * connections, a handover mid-run, and the JSON report.
 */
import assert from "node:assert/strict";
import { connect } from "nats";
import { handoverSubject } from "../../client-sdk/src/index.ts";
import { runViewers } from "../../client-sdk/src/node-viewers.ts";
import { startNatsServer } from "../../common/nats-server.ts";
import { createTimeline, startTestOrigin } from "./origin.ts";
import { noticeBytes, startCoordinatorStub } from "./support.ts";

const streamId = "live-4";

describe("client-sdk: runViewers", function () {
  this.timeout(30_000);

  it("runs N real-time viewers and records stalls, switches and notice latency", async () => {
    const timeline = createTimeline();
    const a = await startTestOrigin(streamId, timeline);
    const b = await startTestOrigin(streamId, timeline);
    const nats = await startNatsServer();
    const coord = await startCoordinatorStub();
    const pub = await connect({ servers: nats.url });
    try {
      const count = 4;
      let switchMsn = 0;
      const publishLater = (async () => {
        await new Promise((r) => setTimeout(r, 1500));
        const openMsn =
          timeline.firstMsn + Math.floor((Date.now() - timeline.t0Ms) / timeline.segmentMs);
        switchMsn = openMsn + 1;
        pub.publish(
          handoverSubject(streamId),
          noticeBytes({
            streamId,
            handoverId: "h-9",
            epoch: 12n,
            fromOrigin: { baseUrl: a.url },
            toOrigin: { baseUrl: b.url },
            switchMsn: BigInt(switchMsn),
            publishedUnixMs: BigInt(Date.now()),
          }),
        );
        await pub.flush();
      })();
      const report = await runViewers({
        streamId,
        count,
        originUrl: a.url,
        natsServers: [nats.url],
        coordinatorUrls: [coord.url],
        durationMs: 5000,
        viewersPerConnection: 2,
        startSpreadMs: 200,
        reportIntervalMs: 1000,
        player: { rendition: "hi", initialBandwidthBps: 50_000_000 },
      });
      await publishLater;
      const json = JSON.parse(JSON.stringify(report));
      assert.equal(json.count, count);
      assert.equal(report.viewers.length, count);
      for (const v of report.viewers) {
        assert.equal(v.switches.length, 1, JSON.stringify(v));
        assert.equal(v.switches[0]!.atMsn, switchMsn);
        assert.equal(v.switches[0]!.previousMsn, switchMsn - 1);
        assert.equal(v.origin, b.url);
        assert.equal(v.noticesReceived, 1);
        assert.equal(v.noticesVia.nats, 1);
        assert.ok(
          v.noticeLatenciesMs[0]! >= 0 && v.noticeLatenciesMs[0]! < 500,
          `${v.noticeLatenciesMs}`,
        );
        assert.equal(v.continuityViolations, 0);
        assert.equal(v.stallCount, 0, JSON.stringify(v));
        assert.ok(v.reportsSent >= 1, "client reports were sent");
      }
      assert.equal(report.summary.viewersSwitched, count);
      assert.equal(report.summary.noticeLatencyMs.samples, count);
      assert.equal(report.summary.stallsTotal, 0);
      assert.ok(coord.reports.length >= count);
      await assert.rejects(
        runViewers({ streamId, count: 0, originUrl: a.url, durationMs: 10 }),
        /count must be an integer in 1\.\.20000/,
      );
    } finally {
      await pub.close();
      await nats.stop();
      await coord.close();
      await a.close();
      await b.close();
    }
  });
});
