/**
 * Client reports (ClientService.Report over Connect to a real server): what a
 * report carries, server pacing, and that failures are dropped and counted
 * without blocking playback.
 */
import assert from "node:assert/strict";
import {
  createClientReporter,
  createPlayerSession,
  type PlayerSession,
} from "../../client-sdk/src/index.ts";
import { createNodePlatformProbe } from "../../client-sdk/src/node.ts";
import { Code } from "../../common/errors.ts";
import { createTimeline, startTestOrigin, type TestOrigin } from "./origin.ts";
import { type CoordinatorStub, startCoordinatorStub, until } from "./support.ts";

const streamId = "live-3";

describe("client-sdk: client reports", function () {
  this.timeout(20_000);
  let origin: TestOrigin;
  let session: PlayerSession;
  let coord: CoordinatorStub;

  before(async () => {
    origin = await startTestOrigin(streamId, createTimeline());
    session = createPlayerSession({
      streamId,
      originUrl: origin.url,
      rendition: "hi",
      initialBandwidthBps: 50_000_000,
    });
    await until(() => session.stats().state === "playing", 8000, "playback");
  });
  after(async () => {
    await session.close();
    await origin.close();
  });
  beforeEach(async () => {
    coord = await startCoordinatorStub({ nextReportIntervalMs: 1000 });
  });
  afterEach(async () => {
    await coord.close();
  });

  it("reports bandwidth, buffer, stalls, rendition, origin, CMCD and the platform", async () => {
    const r = createClientReporter({
      streamId,
      stats: session.stats,
      coordinatorUrls: [coord.url],
      platform: createNodePlatformProbe(),
      intervalMs: 60_000,
    });
    try {
      assert.equal(await r.reportNow(), true);
      const rep = coord.reports[0]!;
      assert.equal(rep.sessionId, session.sessionId);
      assert.equal(rep.streamId, streamId);
      assert.equal(rep.renditionId, "hi");
      assert.equal(rep.origin, origin.url);
      assert.ok(rep.bandwidthBps > 0n);
      assert.ok(rep.bufferMs > 0);
      assert.equal(rep.stallCount, 0);
      assert.ok(rep.playingMsn >= 100n);
      assert.match(rep.sdkVersion, /^understudy-client-sdk\/\d+\.\d+\.\d+$/);
      assert.ok(rep.memoryUsedBytes !== undefined && rep.memoryUsedBytes > 0n);
      assert.ok(Math.abs(Number(rep.timestampUnixMs) - Date.now()) < 5000);
      assert.equal(rep.cmcd?.contentId, streamId);
      assert.equal(rep.cmcd?.streamingFormat, "h");
      assert.ok(rep.cmcd?.objectType);
      assert.equal(r.stats().intervalMs, 1000, "the server's pacing is used");
    } finally {
      await r.stop();
    }
  });

  it("a session created with `report` reports itself until closed", async () => {
    const s = createPlayerSession({
      streamId,
      originUrl: origin.url,
      report: { coordinatorUrls: [coord.url], intervalMs: 1000 },
    });
    try {
      await until(() => coord.reports.some((r) => r.sessionId === s.sessionId), 5000, "a report");
    } finally {
      await s.close();
    }
    const n = coord.reports.length;
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(coord.reports.length, n, "reports continued after close");
  });

  it("sends on its own every interval", async () => {
    const r = createClientReporter({
      streamId,
      stats: session.stats,
      coordinatorUrls: [coord.url],
      intervalMs: 1000,
    });
    try {
      await until(() => coord.reports.length >= 2, 5000, "two periodic reports");
    } finally {
      await r.stop();
    }
  });

  it("drops and counts failed reports; RESOURCE_EXHAUSTED doubles the interval", async () => {
    const shedding = await startCoordinatorStub({ reportError: Code.ResourceExhausted });
    try {
      const r = createClientReporter({
        streamId,
        stats: session.stats,
        coordinatorUrls: [shedding.url],
        intervalMs: 5000,
      });
      assert.equal(await r.reportNow(), false);
      assert.equal(r.stats().failed, 1);
      assert.equal(r.stats().intervalMs, 10_000);
      await r.stop();
    } finally {
      await shedding.close();
    }
    const unreachable = createClientReporter({
      streamId,
      stats: session.stats,
      coordinatorUrls: ["http://127.0.0.1:9"],
    });
    const t0 = Date.now();
    assert.equal(await unreachable.reportNow(), false);
    assert.ok(Date.now() - t0 < 3000, "a failed report returns promptly");
    assert.equal(unreachable.stats().failed, 1);
    await unreachable.stop();
  });

  it("keeps at most one report in flight (a tick during one is skipped)", async () => {
    const r = createClientReporter({
      streamId,
      stats: session.stats,
      coordinatorUrls: [coord.url],
      intervalMs: 60_000,
    });
    const first = r.reportNow();
    assert.equal(await r.reportNow(), false);
    assert.equal(await first, true);
    assert.equal(r.stats().skipped, 1);
    assert.equal(r.stats().sent, 1);
    await r.stop();
  });
});
