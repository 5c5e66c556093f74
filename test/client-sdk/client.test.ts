/**
 * The notice client against a real nats-server and a real Connect server:
 * NATS delivery, the epoch rule, catch-up, fallback to Watch/polling while
 * NATS is down and back, leader redirects, bounded queues, close().
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import {
  createUnderstudyClient as createCoreClient,
  createMemoryNoticeBus,
  handoverSubject,
  type NoticeBus,
  type UnderstudyClient,
  type UnderstudyEvent,
} from "../../client-sdk/src/index.ts";
import { createUnderstudyClient } from "../../client-sdk/src/node.ts";
import { type NatsServerHandle, startNatsServer } from "../../common/nats-server.ts";
import {
  type CoordinatorStub,
  notice,
  noticeBytes,
  startCoordinatorStub,
  until,
  waitFor,
} from "./support.ts";

const streamId = "live-1";
const fromOrigin = { componentId: "pkg-1", baseUrl: "http://127.0.0.1:1" };
const toOrigin = { componentId: "pkg-2", baseUrl: "http://127.0.0.1:2" };

const isHandover = (epoch: number) => (ev: UnderstudyEvent) =>
  ev.type === "handover" && ev.notice.epoch === BigInt(epoch);

describe("client-sdk: notice client", function () {
  this.timeout(30_000);
  let nats: NatsServerHandle;
  let pub: NatsConnection;
  let coord: CoordinatorStub;
  const clients: UnderstudyClient[] = [];
  const track = (c: UnderstudyClient) => {
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    nats = await startNatsServer();
    pub = await connect({ servers: nats.url });
    coord = await startCoordinatorStub();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await pub.close().catch(() => {});
    await nats.stop();
    await coord.close();
  });

  const publish = async (init: { epoch: bigint; switchMsn?: bigint; probability?: number }) => {
    pub.publish(
      handoverSubject(streamId),
      noticeBytes({ streamId, fromOrigin, toOrigin, ...init }),
    );
    await pub.flush();
  };

  it("emits a handover event for a HandoverNotice published on NATS", async () => {
    const c = track(
      createUnderstudyClient({ streamId, natsServers: [nats.url], coordinatorUrls: [coord.url] }),
    );
    const ev = c.events();
    await waitFor(
      ev,
      (e) => e.type === "connection" && e.transport === "nats" && e.status === "connected",
    );
    await publish({ epoch: 5n, switchMsn: 120n, probability: 0.8 });
    const got = await waitFor(ev, isHandover(5));
    assert.equal(got.type, "handover");
    if (got.type !== "handover") return;
    assert.equal(got.via, "nats");
    assert.equal(got.notice.switchMsn, 120n);
    assert.equal(got.notice.toOrigin?.baseUrl, toOrigin.baseUrl);
    assert.equal(got.notice.probability, 0.8);
    assert.equal(c.latestNotice()?.epoch, 5n);
    assert.equal(c.stats().transport, "nats");
  });

  it("ignores stale and duplicate epochs, other streams and garbage", async () => {
    const c = track(createUnderstudyClient({ streamId, natsServers: [nats.url] }));
    const ev = c.events();
    await waitFor(ev, (e) => e.type === "connection" && e.status === "connected");
    await publish({ epoch: 5n });
    await waitFor(ev, isHandover(5));
    await publish({ epoch: 4n }); // stale
    await publish({ epoch: 5n }); // duplicate
    pub.publish(handoverSubject(streamId), noticeBytes({ streamId: "other", epoch: 9n }));
    pub.publish(handoverSubject(streamId), new Uint8Array([0xff, 0xff, 0xff]));
    await publish({ epoch: 6n });
    // The next handover event must be epoch 6: 4 and 5 were dropped.
    const next = await waitFor(ev, (e) => e.type === "handover");
    assert.ok(next.type === "handover" && next.notice.epoch === 6n, "stale/duplicate leaked");
    const s = c.stats();
    assert.equal(s.stale, 1);
    assert.equal(s.duplicates, 1);
    assert.equal(s.foreign, 1);
    assert.equal(s.decodeErrors, 1);
    assert.equal(s.accepted, 2);
    assert.equal(s.highestEpoch, 6);
  });

  it("takes the stream epoch from the catch-up as its baseline: an old or conflicting notice is stale before any handover", async () => {
    // No handover yet; the stream is at epoch 10 (placement changes bump it too).
    coord.setStreamEpoch(streamId, 10n);
    const c = track(
      createUnderstudyClient({ streamId, natsServers: [nats.url], coordinatorUrls: [coord.url] }),
    );
    const ev = c.events();
    await waitFor(ev, (e) => e.type === "connection" && e.status === "connected");
    await until(() => c.stats().knownEpoch === 10, 5000, "the catch-up's stream epoch");
    assert.equal(c.latestNotice(), undefined);
    await publish({ epoch: 1n, switchMsn: 5n }); // stale (forged, or very late)
    pub.publish(
      handoverSubject(streamId),
      noticeBytes({ streamId, handoverId: "forged", epoch: 10n, fromOrigin, toOrigin }),
    ); // the stream's own epoch, but no handover is at it
    await pub.flush();
    await publish({ epoch: 11n, switchMsn: 50n });
    const next = await waitFor(ev, (e) => e.type === "handover");
    assert.ok(next.type === "handover" && next.notice.epoch === 11n, "a stale notice leaked");
    const s = c.stats();
    assert.equal(s.stale, 2);
    assert.equal(s.duplicates, 0);
    assert.equal(s.accepted, 1);
    assert.equal(s.knownEpoch, 11);
  });

  it("takes the baseline from the first Watch message too (NATS down, no handover yet)", async () => {
    coord.setStreamEpoch(streamId, 8n);
    const bus = createMemoryNoticeBus({ status: "reconnecting" });
    const c = track(
      createCoreClient({ streamId, bus, coordinatorUrls: [coord.url], fallbackAfterMs: 50 }),
    );
    const ev = c.events();
    await until(() => coord.watchers() === 1, 5000, "the Watch fallback");
    await until(() => c.stats().knownEpoch === 8, 5000, "the Watch baseline");
    // An older transition arriving late over the same Watch.
    coord.setLatest(notice({ streamId, epoch: 7n, fromOrigin, toOrigin, switchMsn: 3n }));
    coord.setLatest(notice({ streamId, epoch: 9n, fromOrigin, toOrigin, switchMsn: 90n }));
    const next = await waitFor(ev, (e) => e.type === "handover");
    assert.ok(next.type === "handover" && next.notice.epoch === 9n && next.via === "watch");
    assert.equal(c.stats().stale, 1);
  });

  it("catches up with GetLatestNotice on start", async () => {
    coord.setLatest(notice({ streamId, epoch: 3n, fromOrigin, toOrigin, switchMsn: 40n }));
    const c = track(
      createUnderstudyClient({ streamId, natsServers: [nats.url], coordinatorUrls: [coord.url] }),
    );
    const got = await waitFor(c.events(), isHandover(3));
    assert.ok(got.type === "handover" && got.via === "poll");
    assert.ok(coord.calls.getLatestNotice >= 1);
  });

  it("falls back to WatchHandovers when NATS stops, and returns to NATS (with catch-up) when it restarts", async () => {
    const port = nats.port;
    const c = track(
      createUnderstudyClient({
        streamId,
        natsServers: [nats.url],
        coordinatorUrls: [coord.url],
        fallbackAfterMs: 100,
      }),
    );
    const ev = c.events();
    await waitFor(
      ev,
      (e) => e.type === "connection" && e.transport === "nats" && e.status === "connected",
    );
    await pub.close();
    await nats.stop();
    await waitFor(
      ev,
      (e) => e.type === "connection" && e.transport === "nats" && e.status !== "connected",
    );
    await waitFor(
      ev,
      (e) => e.type === "connection" && e.status === "fallback" && e.transport === "watch",
    );
    await until(() => coord.watchers() === 1, 5000, "the client's WatchHandovers stream");
    coord.setLatest(notice({ streamId, epoch: 7n, fromOrigin, toOrigin, switchMsn: 70n }));
    const viaWatch = await waitFor(ev, isHandover(7));
    assert.ok(viaWatch.type === "handover" && viaWatch.via === "watch");
    assert.equal(c.stats().transport, "watch");

    // Published while the client is away from NATS: recovered by the reconnect catch-up.
    coord.setLatest(notice({ streamId, epoch: 8n, fromOrigin, toOrigin, switchMsn: 80n }));
    await waitFor(ev, isHandover(8)); // via the still-open watch
    nats = await startNatsServer({ port });
    pub = await connect({ servers: nats.url });
    await waitFor(
      ev,
      (e) => e.type === "connection" && e.transport === "nats" && e.status === "connected",
      10_000,
    );
    await until(() => coord.watchers() === 0, 5000, "the watch to close after NATS is back");
    // The client resubscribed: a notice on NATS arrives via NATS.
    await until(() => c.stats().catchUps >= 2, 5000, "the reconnect catch-up");
    await publish({ epoch: 9n });
    const viaNats = await waitFor(ev, isHandover(9));
    assert.ok(viaNats.type === "handover" && viaNats.via === "nats");
    assert.equal(c.stats().transport, "nats");
    assert.equal(c.stats().fallbacks, 1);
  });

  it("falls back to polling GetLatestNotice when Watch is not served", async () => {
    const noWatch = await startCoordinatorStub({ noWatch: true });
    try {
      noWatch.setLatest(notice({ streamId, epoch: 11n }));
      // No NATS at all: the client starts in the fallback.
      const c = track(
        createCoreClient({ streamId, coordinatorUrls: [noWatch.url], pollIntervalMs: 100 }),
      );
      const ev = c.events();
      const conn = c.events();
      await waitFor(ev, isHandover(11));
      await waitFor(
        conn,
        (e) => e.type === "connection" && e.transport === "poll" && e.status === "fallback",
      );
      noWatch.setLatest(notice({ streamId, epoch: 12n }));
      const polled = await waitFor(ev, isHandover(12));
      assert.ok(polled.type === "handover" && polled.via === "poll");
      assert.equal(c.stats().transport, "poll");
    } finally {
      await noWatch.close();
    }
  });

  it("follows a follower's leader redirect (x-understudy-leader)", async () => {
    const leaderAddr = coord.server.address;
    const follower = await startCoordinatorStub({ redirectTo: leaderAddr });
    try {
      coord.setLatest(notice({ streamId, epoch: 21n }));
      const c = track(createCoreClient({ streamId, coordinatorUrls: [follower.url] }));
      const got = await waitFor(c.events(), isHandover(21));
      assert.ok(got.type === "handover");
      assert.ok(follower.calls.getLatestNotice >= 1, "asked the follower first");
      assert.ok(coord.calls.getLatestNotice >= 1, "then the leader it named");
    } finally {
      await follower.close();
    }
  });

  it("fails over to the next coordinator URL when one is down", async () => {
    coord.setLatest(notice({ streamId, epoch: 31n }));
    const c = track(
      createCoreClient({
        streamId,
        coordinatorUrls: ["http://127.0.0.1:9", coord.url],
        backoff: { initialMs: 10, maxMs: 50 },
      }),
    );
    await waitFor(c.events(), isHandover(31));
  });

  it("keeps each iterator's queue bounded (drop-oldest, counted)", async () => {
    const bus = createMemoryNoticeBus();
    const c = track(createCoreClient({ streamId, bus, eventQueueMax: 3 }));
    const ev = c.events({ replayLatest: false });
    await new Promise((r) => setTimeout(r, 0));
    for (let e = 1; e <= 10; e++) {
      bus.publish(handoverSubject(streamId), noticeBytes({ streamId, epoch: BigInt(e) }));
    }
    await until(() => c.stats().accepted === 10, 2000, "all notices accepted");
    const got: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await ev.next();
      assert.equal(r.done, false);
      if (r.value.type === "handover") got.push(r.value.notice.epoch);
    }
    assert.deepEqual(got, [8n, 9n, 10n]);
    assert.equal(c.stats().eventsDropped, 8); // 7 notices + the start "connection" event
  });

  it("works with a custom bus that only implements subscribe (no listen fast path)", async () => {
    const mem = createMemoryNoticeBus();
    const bus: NoticeBus = {
      subscribe: (subject) => mem.subscribe(subject),
      status: () => mem.status(),
      onStatus: (l) => mem.onStatus(l),
      close: () => mem.close(),
    };
    const c = track(createCoreClient({ streamId, bus }));
    const ev = c.events();
    await new Promise((r) => setTimeout(r, 0));
    mem.publish(handoverSubject(streamId), noticeBytes({ streamId, epoch: 2n }));
    mem.publish(handoverSubject(streamId), noticeBytes({ streamId, epoch: 1n }));
    mem.publish(handoverSubject(streamId), noticeBytes({ streamId, epoch: 3n }));
    await waitFor(ev, isHandover(2));
    const next = await waitFor(ev, (e) => e.type === "handover");
    assert.ok(next.type === "handover" && next.notice.epoch === 3n);
    assert.equal(c.stats().stale, 1);
    await c.close();
    assert.equal(mem.subscriberCount(handoverSubject(streamId)), 0, "unsubscribed on close");
  });

  it("replays the latest notice to a new iterator, and close() ends iteration", async () => {
    const bus = createMemoryNoticeBus();
    const c = createCoreClient({ streamId, bus });
    bus.publish(handoverSubject(streamId), noticeBytes({ streamId, epoch: 4n }));
    await until(() => c.stats().accepted === 1, 2000, "notice accepted");
    const ev = c.events();
    const first = await ev.next();
    assert.ok(!first.done && first.value.type === "handover" && first.value.notice.epoch === 4n);
    const pending = ev.next();
    await c.close();
    assert.equal((await pending).done, true);
    assert.equal(bus.subscriberCount(handoverSubject(streamId)), 0);
  });

  it("rejects bad options with a clear error", () => {
    assert.throws(
      () => createCoreClient({ streamId: "Bad_Id" }),
      /streamId "Bad_Id" must be 1–64 chars/,
    );
    assert.throws(
      () => createCoreClient({ streamId, natsServers: ["nats://127.0.0.1:4222"] }),
      /natsServers needs a NATS transport/,
    );
    assert.throws(
      () => createCoreClient({ streamId, coordinatorUrls: ["127.0.0.1:7000"] }),
      /must be an http\(s\) base URL/,
    );
  });
});
