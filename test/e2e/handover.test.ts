/**
 * Handover end to end with real processes (issue #7): nats-server, 3
 * coordinators, 3 packager-nodes with agents, 2 sources with agents
 * (deploy/local-cluster), watched by SDK viewers (runViewers: real-time
 * players following handover notices).
 *
 *  1. A stale-epoch notice is ignored, also by clients that have seen no
 *     handover yet: the coordinator tells them the stream's epoch
 *     (GetLatestNotice, the first Watch message), and forged notices at or
 *     below it published on NATS move nobody.
 *  2. A client that missed the notice (NATS stopped before the handover)
 *     still switches, through the coordinator's Watch fallback.
 *  3. A handover survives a coordinator leader kill halfway (at NOTIFIED):
 *     the new leader finishes it from the log.
 *
 * Every viewer must switch (or not) as announced: to the notice's origin, at
 * the announced segment boundary (MSN switch_msn, continuing switch_msn - 1),
 * with no stall, no MSN or timestamp discontinuity, having really played.
 *
 * One cluster serves the three cases (starting it is the expensive part);
 * they run in order and each hands the stream's current primary to the
 * next. About 60 s in all. UNDERSTUDY_E2E_KEEP=1 keeps the run directory
 * (every process's config and log).
 */
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { connect } from "nats";
import { runViewers, type ViewersReport } from "../../client-sdk/src/node-viewers.ts";
import type { PlayerEvent } from "../../client-sdk/src/player.ts";
import { createGrpcClient } from "../../common/grpc-client.ts";
import {
  type Cluster,
  leaderOf,
  sleep,
  startCluster,
  startStream,
  waitUntil,
} from "../../deploy/local-cluster/cluster.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import {
  type Handover,
  HandoverReason,
  HandoverState,
} from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { HandoverNoticeSchema } from "../../proto/gen/understudy/notice/v1/notice_pb.ts";

const streamId = "demo";
const viewerCount = 4;
/** Viewers start, fetch and settle for this long before the case acts. */
const settleMs = 3000;

type Packager = Cluster["packagers"][number];

describe("handover end to end (real processes, SDK viewers)", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let runDir: string;
  let primary: Packager;
  let coordinatorUrls: string[];

  before(async function () {
    this.timeout(90_000);
    runDir = mkdtempSync(join(tmpdir(), "understudy-e2e-handover-"));
    cluster = await startCluster(runDir, false);
    const s = await startStream(cluster);
    primary = cluster.packagers.find((p) => p.id === s.primary.id)!;
    coordinatorUrls = s.addresses.map((a) => `http://${a}`);
  });
  after(async () => {
    await cluster?.stop();
    if (process.env.UNDERSTUDY_E2E_KEEP === "1") process.stdout.write(`      (kept ${runDir})\n`);
    else rmSync(runDir, { recursive: true, force: true });
  });

  const running = () => cluster.coordinators.filter((c) => c.proc.running());
  /** Calls `fn` on the first running coordinator that answers. */
  const onAnyNode = async <T>(
    fn: (h: ReturnType<typeof createGrpcClient<typeof HandoverService>>) => Promise<T>,
  ): Promise<T> => {
    let last: unknown;
    for (const c of running()) {
      const h = createGrpcClient(HandoverService, c.api, {
        bearerToken: cluster.tokens.tokens.admin,
      });
      try {
        return await fn(h);
      } catch (err) {
        last = err;
      } finally {
        h.close();
      }
    }
    throw last;
  };
  const startHandover = async (from: string): Promise<Handover> => {
    const l = await waitUntil("a leader", 10_000, () => leaderOf(cluster));
    const h = createGrpcClient(HandoverService, l.api, {
      bearerToken: cluster.tokens.tokens.admin,
    });
    try {
      const r = await h.startHandover(
        { streamId, fromComponentId: from, reason: "e2e" },
        { timeoutMs: 10_000 },
      );
      assert.ok(r.handover);
      return r.handover;
    } finally {
      h.close();
    }
  };
  const handover = (id: string) =>
    onAnyNode(async (h) => (await h.getHandover({ handoverId: id }, { timeoutMs: 2000 })).handover);
  const finished = (id: string, timeoutMs: number) =>
    waitUntil(`handover ${id} to finish`, timeoutMs, async () => {
      const s = await handover(id);
      return s && (s.state === HandoverState.COMPLETED || s.state === HandoverState.ABORTED)
        ? s
        : undefined;
    });
  /** Player events, one JSON line each, in the run directory (kept with UNDERSTUDY_E2E_KEEP=1). */
  const eventLog = (what: string) => (index: number, ev: PlayerEvent) =>
    appendFileSync(
      join(runDir, "viewers.log"),
      `${JSON.stringify({ at: new Date().toISOString(), case: what, viewer: index, ...ev })}\n`,
    );
  const viewers = (durationMs: number, origin: Packager, what: string) =>
    runViewers({
      onPlayerEvent: eventLog(what),
      streamId,
      count: viewerCount,
      originUrl: `${origin.http}/live/${streamId}/master.m3u8`,
      alternateOrigins: cluster.packagers.filter((p) => p !== origin).map((p) => p.http),
      coordinatorUrls,
      natsServers: [cluster.natsUrl],
      durationMs,
    });

  /** What a viewer looks like in a failure message (latencies are noise there). */
  const show = (v: ViewersReport["viewers"][number]) =>
    JSON.stringify({ ...v, noticeLatenciesMs: undefined });

  /** Every viewer really played, without a stall or a discontinuity, and ended on time. */
  const assertPlayedWell = (report: ViewersReport) => {
    assert.equal(report.viewers.length, viewerCount);
    // A viewer ends at its duration; closing its client must not hang (a
    // Watch stream that ignores its abort held close() until the server's deadline).
    const tookMs = report.finishedAtUnixMs - report.startedAtUnixMs;
    assert.ok(
      tookMs < report.durationMs + 5000,
      `viewers took ${tookMs} ms for ${report.durationMs} ms`,
    );
    for (const v of report.viewers) {
      assert.ok(v.startupMs !== null, `viewer ${v.index} never started playing: ${show(v)}`);
      assert.ok(
        v.partsFetched + v.segmentsFetched >= 8,
        `viewer ${v.index} fetched little: ${show(v)}`,
      );
      assert.equal(v.stallCount, 0, `viewer ${v.index} stalled: ${show(v)}`);
      assert.equal(v.continuityViolations, 0, `viewer ${v.index} MSN gap: ${show(v)}`);
      assert.equal(v.timestampMismatches, 0, `viewer ${v.index} timeline jump: ${show(v)}`);
      assert.equal(v.skippedObjects, 0, `viewer ${v.index} skipped media: ${show(v)}`);
    }
  };

  /** Every viewer switched once, on the notice, from `from` to `to` exactly at `switchMsn`. */
  const assertSwitchedAsAnnounced = (
    report: ViewersReport,
    from: Packager,
    to: Packager,
    switchMsn: number,
  ) => {
    assert.ok(switchMsn > 0, "the handover announced a switch MSN");
    assertPlayedWell(report);
    for (const v of report.viewers) {
      assert.equal(v.switches.length, 1, `viewer ${v.index} switches: ${show(v)}`);
      const [w] = v.switches;
      assert.deepEqual(
        {
          reason: w!.reason,
          from: w!.from,
          to: w!.to,
          atMsn: w!.atMsn,
          previousMsn: w!.previousMsn,
        },
        {
          reason: "notice",
          from: from.http,
          to: to.http,
          atMsn: switchMsn,
          previousMsn: switchMsn - 1,
        },
        `viewer ${v.index}: ${show(v)}`,
      );
      assert.equal(v.origin, to.http, `viewer ${v.index} ended elsewhere: ${show(v)}`);
    }
  };

  it("ignores stale-epoch notices on NATS, also before any handover (the coordinator gives the baseline)", async () => {
    // No handover yet: the coordinator still tells the stream's epoch.
    const latest = await onAnyNode((h) => h.getLatestNotice({ streamId }, { timeoutMs: 2000 }));
    assert.equal(latest.notice, undefined, "no handover has happened yet");
    assert.ok(latest.streamEpoch >= 1n, `stream epoch ${latest.streamEpoch}`);
    const first = await onAnyNode(async (h) => {
      const ac = new AbortController();
      try {
        for await (const m of h.watchHandovers(
          { streamId, sendLatestFirst: true },
          { signal: ac.signal, timeoutMs: 5000 },
        )) {
          return m;
        }
        throw new Error("the Watch ended without a first message");
      } finally {
        ac.abort();
      }
    });
    assert.equal(first.streamId, streamId);
    assert.equal(first.notice, undefined);
    assert.ok(first.streamEpoch >= latest.streamEpoch, "the first Watch message carries the epoch");

    const watching = viewers(9000, primary, "stale");
    await sleep(settleMs);
    const forged = (handoverId: string, epoch: bigint) =>
      toBinary(
        HandoverNoticeSchema,
        create(HandoverNoticeSchema, {
          streamId,
          handoverId,
          epoch,
          fromOrigin: { componentId: primary.id, baseUrl: primary.http },
          toOrigin: { componentId: "nowhere", baseUrl: "http://127.0.0.1:9" },
          switchMsn: 1n,
          reason: HandoverReason.OPERATOR,
          state: HandoverState.NOTIFIED,
          publishedUnixMs: BigInt(Date.now()),
        }),
      );
    const nc = await connect({ servers: cluster.natsUrl });
    try {
      // Far below the stream's epoch, and exactly at it with no handover there.
      nc.publish(`understudy.v1.handover.${streamId}`, forged("forged-old", 1n));
      nc.publish(`understudy.v1.handover.${streamId}`, forged("forged-equal", latest.streamEpoch));
      await nc.flush();
    } finally {
      await nc.close();
    }
    const report = await watching;
    assertPlayedWell(report);
    for (const v of report.viewers) {
      assert.equal(v.switches.length, 0, `viewer ${v.index} moved: ${show(v)}`);
      assert.equal(v.origin, primary.http);
      assert.equal(v.noticesReceived, 0, `viewer ${v.index} accepted a notice: ${show(v)}`);
      assert.ok(
        v.noticesStale >= 2,
        `viewer ${v.index} did not see both forged notices: ${show(v)}`,
      );
    }
  });

  it("a client that missed the notice (NATS down) still switches at the boundary, and nobody stalls", async () => {
    const watching = viewers(16_000, primary, "nats-down");
    await sleep(settleMs);
    await cluster.stopNats();
    let done: Handover;
    try {
      const h = await startHandover(primary.id);
      done = await finished(h.id, 30_000);
    } finally {
      await cluster.startNats();
    }
    assert.equal(HandoverState[done.state], "COMPLETED", done.error);
    const to = cluster.packagers.find((p) => p.id === done.toComponentId)!;
    const report = await watching;
    assertSwitchedAsAnnounced(report, primary, to, Number(done.switchMsn));
    for (const v of report.viewers) {
      assert.equal(v.noticesVia.nats, 0, `viewer ${v.index} got a notice over NATS: ${show(v)}`);
      assert.ok(v.noticesVia.watch + v.noticesVia.poll > 0, `viewer ${v.index}: ${show(v)}`);
    }
    primary = to;
  });

  it("a handover survives a coordinator leader kill halfway (at NOTIFIED)", async () => {
    const watching = viewers(18_000, primary, "leader-kill");
    await sleep(settleMs);
    const leader = await waitUntil("a leader", 10_000, () => leaderOf(cluster));
    const h = await startHandover(primary.id);
    // Halfway: the standby is ready and clients were told where and when to
    // switch; the switch itself and the completion are the next leader's.
    const atKill = await waitUntil("the handover to be NOTIFIED", 15_000, async () => {
      const s = await handover(h.id);
      return s && s.state >= HandoverState.NOTIFIED ? s : undefined;
    });
    await cluster.coordinators.find((c) => c.id === leader.id)!.proc.kill();
    assert.equal(HandoverState[atKill.state], "NOTIFIED", "killed the leader halfway");

    const done = await finished(h.id, 40_000);
    assert.equal(HandoverState[done.state], "COMPLETED", done.error);
    assert.equal(done.switchMsn, atKill.switchMsn, "the announced boundary held");
    const next = await waitUntil("a new leader", 10_000, () => leaderOf(cluster));
    assert.notEqual(next.id, leader.id);
    const to = cluster.packagers.find((p) => p.id === done.toComponentId)!;

    // The new leader moved the stream: `to` is the primary of every rendition now.
    const chain = createGrpcClient(ChainService, next.api);
    try {
      const g = (await chain.getChain({ streamId }, { timeoutMs: 5000 })).graph;
      const open = g?.assignments.filter((a) => a.lastMsn === undefined) ?? [];
      assert.ok(
        open.length >= 2,
        JSON.stringify(g?.assignments, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
      );
      for (const a of open) assert.equal(a.primaryPackagerId, to.id, `rendition ${a.renditionId}`);
    } finally {
      chain.close();
    }

    const report = await watching;
    assertSwitchedAsAnnounced(report, primary, to, Number(done.switchMsn));
    primary = to;
  });
});
