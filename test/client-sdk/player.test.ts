/**
 * The player session against real HTTP origins serving identical LL-HLS
 * (test/client-sdk/origin.ts): a handover notice over a real nats-server
 * moves it at switch_msn with contiguous MSNs and no stall; 500s make it fail
 * over; a missing or GAP part makes it fetch the lower rendition; CMCD rides
 * on every request.
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import {
  createPlayerSession,
  handoverSubject,
  type PlayerEvent,
  type PlayerSession,
} from "../../client-sdk/src/index.ts";
import { createUnderstudyClient } from "../../client-sdk/src/node.ts";
import { type NatsServerHandle, startNatsServer } from "../../common/nats-server.ts";
import { HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  createTimeline,
  mediaServed,
  startTestOrigin,
  type TestOrigin,
  type Timeline,
} from "./origin.ts";
import { notice, noticeBytes, until } from "./support.ts";

const streamId = "live-2";

describe("client-sdk: player session", function () {
  this.timeout(30_000);
  let a: TestOrigin;
  let b: TestOrigin;
  const sessions: PlayerSession[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  let timeline: Timeline;

  beforeEach(async () => {
    timeline = createTimeline();
    a = await startTestOrigin(streamId, timeline);
    b = await startTestOrigin(streamId, timeline);
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) await s.close();
    for (const c of cleanups.splice(0).reverse()) await c();
    await a.close();
    await b.close();
  });

  const startSession = (opts: Partial<Parameters<typeof createPlayerSession>[0]> = {}) => {
    const events: PlayerEvent[] = [];
    const s = createPlayerSession({
      streamId,
      originUrl: a.url,
      rendition: "hi",
      initialBandwidthBps: 50_000_000,
      retryBackoff: { initialMs: 50, maxMs: 200 },
      ...opts,
      onEvent: (ev) => events.push(ev),
    });
    sessions.push(s);
    return { s, events };
  };

  const playing = (s: PlayerSession) =>
    until(() => s.stats().state === "playing", 8000, "playback to start");

  it("switches origin at switch_msn on a NATS notice: MSNs contiguous, timestamps continuous, no stall", async () => {
    const nats: NatsServerHandle = await startNatsServer();
    const pub: NatsConnection = await connect({ servers: nats.url });
    cleanups.push(async () => {
      await pub.close();
      await nats.stop();
    });
    const client = createUnderstudyClient({ streamId, natsServers: [nats.url] });
    cleanups.push(() => client.close());
    const { s, events } = startSession({ client });
    await playing(s);
    await until(() => client.stats().transport === "nats", 5000, "the client on NATS");
    const switchMsn = (s.stats().lastMsn ?? 0) + 2;
    pub.publish(
      handoverSubject(streamId),
      noticeBytes({
        streamId,
        handoverId: "h-1",
        epoch: 4n,
        fromOrigin: { componentId: "pkg-a", baseUrl: a.url },
        toOrigin: { componentId: "pkg-b", baseUrl: b.url },
        switchMsn: BigInt(switchMsn),
        probability: 0.9,
      }),
    );
    await until(() => (s.stats().lastMsn ?? 0) >= switchMsn + 1, 10_000, "two segments from B");
    const st = s.stats();
    assert.equal(st.origin, b.url);
    assert.equal(st.switches.length, 1, JSON.stringify(st.switches));
    const sw = st.switches[0]!;
    assert.equal(sw.reason, "notice");
    assert.equal(sw.atMsn, switchMsn);
    assert.equal(sw.previousMsn, switchMsn - 1);
    assert.equal(sw.epoch, 4);
    // Old origin served only segments < switch_msn, the new one only >= switch_msn.
    const fromA = mediaServed(a).map((e) => e.msn!);
    const fromB = mediaServed(b).map((e) => e.msn!);
    assert.ok(fromA.length > 0 && Math.max(...fromA) === switchMsn - 1, `A served ${fromA}`);
    assert.ok(fromB.length > 0 && Math.min(...fromB) === switchMsn, `B served ${fromB}`);
    assert.equal(st.continuityViolations, 0);
    assert.equal(st.timestampMismatches, 0);
    assert.equal(st.stallCount, 0, JSON.stringify(events));
    assert.equal(st.handoverEpoch, 4);
    assert.ok(st.unstable, "probability 0.9 marks the stream unstable");
    assert.equal(st.targetBufferMs, 4000);
  });

  it("counts a timestamp discontinuity when the new origin's timeline differs", async () => {
    // C produces the same MSNs one second later: its program date-times are off by 1 s.
    const c = await startTestOrigin(streamId, { ...timeline, t0Ms: timeline.t0Ms + 1000 });
    cleanups.push(() => c.close());
    const { s } = startSession();
    await playing(s);
    await until(() => s.stats().lastMsn !== undefined, 5000, "a segment");
    const switchMsn = s.stats().lastMsn! + 2;
    s.applyNotice(
      notice({
        streamId,
        handoverId: "h-3",
        epoch: 9n,
        fromOrigin: { baseUrl: a.url },
        toOrigin: { baseUrl: c.url },
        switchMsn: BigInt(switchMsn),
      }),
    );
    await until(() => (s.stats().lastMsn ?? 0) >= switchMsn + 1, 10_000, "segments from C");
    assert.equal(s.stats().switches[0]?.atMsn, switchMsn);
    assert.ok(s.stats().timestampMismatches >= 1, "the 1 s jump went unnoticed");
  });

  it("sends CMCD (CTA-5004) on every request", async () => {
    const { s } = startSession({ sessionId: "sess-1", contentId: "content-9" });
    await playing(s);
    await until(() => mediaServed(a).filter((e) => e.kind === "part").length >= 2, 5000, "parts");
    const all = a.log.filter((e) => e.status === 200);
    assert.ok(
      all.every((e) => e.cmcd !== undefined),
      "a request without CMCD",
    );
    const keys = (c: string) => c.split(",").map((kv) => kv.split("=")[0]!);
    for (const e of all) {
      const k = keys(e.cmcd!);
      assert.deepEqual(k, [...k].sort(), `keys not sorted: ${e.cmcd}`);
      assert.match(e.cmcd!, /sid="sess-1"/);
      assert.match(e.cmcd!, /cid="content-9"/);
    }
    const master = all.find((e) => e.kind === "master")!;
    assert.match(master.cmcd!, /(^|,)ot=m(,|$)/);
    assert.match(master.cmcd!, /(^|,)su(,|$)/, "startup flag on the first request");
    const init = all.find((e) => e.kind === "init")!;
    assert.match(init.cmcd!, /(^|,)ot=i(,|$)/);
    const part = all.filter((e) => e.kind === "part").at(-1)!;
    for (const key of ["br", "bl", "d", "mtp", "tb"]) {
      assert.match(part.cmcd!, new RegExp(`(^|,)${key}=\\d+`), `${key} missing in ${part.cmcd}`);
    }
    assert.match(part.cmcd!, /(^|,)ot=av(,|$)/);
    assert.match(part.cmcd!, /(^|,)br=800(,|$)/);
    assert.match(part.cmcd!, /(^|,)d=250(,|$)/);
    assert.match(part.cmcd!, /(^|,)nor="[^"]+\.m4s"/);
    const bl = Number(/(?:^|,)bl=(\d+)/.exec(part.cmcd!)![1]);
    assert.equal(bl % 100, 0, "bl is rounded to 100 ms");
    assert.ok(s.stats().lastCmcd?.sid === "sess-1");
  });

  it("fails over to an alternate origin when its origin answers 500", async () => {
    const { s, events } = startSession({ alternateOrigins: [b.url] });
    await playing(s);
    const before = s.stats().lastMsn!;
    a.fail500 = true;
    await until(() => (s.stats().lastMsn ?? 0) >= before + 2, 10_000, "progress after the failure");
    const st = s.stats();
    assert.equal(st.origin, b.url);
    assert.ok(st.failovers >= 1);
    assert.equal(st.switches[0]?.reason, "failover");
    assert.ok(st.requestFailures >= 3, "retried before failing over");
    assert.equal(st.continuityViolations, 0);
    assert.equal(st.stallCount, 0, JSON.stringify(events));
    assert.ok(st.unstable, "a recent failure marks the stream unstable");
  });

  it("fails over to the standby named by a notice even before switch_msn is known", async () => {
    const { s } = startSession();
    await playing(s);
    // PRE_STITCHED: no switch yet (switch_msn 0), but the standby is now a known origin.
    s.applyNotice(
      notice({
        streamId,
        handoverId: "h-2",
        epoch: 2n,
        state: HandoverState.PRE_STITCHED,
        fromOrigin: { baseUrl: a.url },
        toOrigin: { baseUrl: b.url },
        switchMsn: 0n,
        probability: 0.95,
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(s.stats().origin, a.url, "must not switch on switch_msn 0");
    const before = s.stats().lastMsn!;
    a.fail500 = true;
    await until(() => (s.stats().lastMsn ?? 0) >= before + 2, 10_000, "progress on the standby");
    assert.equal(s.stats().origin, b.url);
    assert.equal(s.stats().continuityViolations, 0);
  });

  it("fetches a missing part from the lower rendition and stays there", async () => {
    const { s, events } = startSession();
    await playing(s);
    const target = s.stats().lastMsn! + 2;
    a.missing.add(`hi/${target}.2`);
    await until(() => (s.stats().lastMsn ?? 0) >= target + 1, 10_000, "playback past the hole");
    const st = s.stats();
    const ev = events.find((e) => e.type === "rendition" && e.reason === "missing");
    assert.ok(ev && ev.type === "rendition", JSON.stringify(events));
    assert.equal(ev.from, "hi");
    assert.equal(ev.to, "lo");
    assert.equal(ev.atMsn, target);
    assert.equal(st.rendition, "lo");
    assert.ok(a.log.some((e) => e.path.endsWith(`/lo/${target}.2.m4s`) && e.status === 200));
    assert.equal(st.skippedObjects, 0);
    assert.equal(st.continuityViolations, 0);
    assert.equal(st.stallCount, 0);
  });

  it("treats a GAP-marked part as missing and takes it from the lower rendition", async () => {
    const { s, events } = startSession();
    await playing(s);
    const target = s.stats().lastMsn! + 2;
    a.gaps.add(`hi/${target}.1`);
    await until(() => (s.stats().lastMsn ?? 0) >= target + 1, 10_000, "playback past the gap");
    assert.ok(!a.log.some((e) => e.path.endsWith(`/hi/${target}.1.m4s`)), "fetched a GAP part");
    assert.ok(a.log.some((e) => e.path.endsWith(`/lo/${target}.1.m4s`) && e.status === 200));
    assert.ok(events.some((e) => e.type === "rendition" && e.reason === "missing"));
    assert.equal(s.stats().stallCount, 0);
  });
});
