/** ComponentService over real gRPC: listing, paging, reads, metric range queries, drain, errors. */
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { decodeDetails, helloFor } from "./agent-conn.ts";
import { type Harness, report, sample, startHarness, T0, until } from "./harness.ts";

/** Runs a call expected to fail; returns its code and decoded details. */
async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: number; details: string };
    return { code: e.code, details: decodeDetails(e.details) };
  }
  throw new Error("call succeeded, expected an error");
}

describe("api: ComponentService (real gRPC)", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  const seed = () => {
    h.cluster.register("enc-1", ComponentRole.ENCODER);
    h.cluster.register("org-2", ComponentRole.ORIGIN, ComponentStatus.DOWN, "liveness: gone");
    h.cluster.register("org-1", ComponentRole.ORIGIN);
    h.cluster.register("edge-1", ComponentRole.EDGE, ComponentStatus.SUSPECT, "predict");
    h.cluster.register("org-3", ComponentRole.ORIGIN);
  };

  describe("ListComponents", () => {
    it("lists by id with role and status filters", async () => {
      seed();
      const all = await h.api.listComponents({});
      assert.deepEqual(
        all.components.map((c) => c.id),
        ["edge-1", "enc-1", "org-1", "org-2", "org-3"],
      );
      assert.equal(all.nextPageToken, "");
      const origins = await h.api.listComponents({ role: ComponentRole.ORIGIN });
      assert.deepEqual(
        origins.components.map((c) => c.id),
        ["org-1", "org-2", "org-3"],
      );
      const down = await h.api.listComponents({
        role: ComponentRole.ORIGIN,
        status: ComponentStatus.DOWN,
      });
      assert.deepEqual(
        down.components.map((c) => c.id),
        ["org-2"],
      );
    });

    it("pages with an opaque token bound to the request's filters", async () => {
      seed();
      const ids: string[] = [];
      let token = "";
      let pages = 0;
      for (; pages < 10; pages++) {
        const r = await h.api.listComponents({ pageSize: 2, pageToken: token });
        ids.push(...r.components.map((c) => c.id));
        token = r.nextPageToken;
        if (token === "") break;
      }
      assert.equal(pages, 2, "3 pages");
      assert.deepEqual(ids, ["edge-1", "enc-1", "org-1", "org-2", "org-3"]);
      const first = await h.api.listComponents({ pageSize: 2 });
      const e = await failure(
        h.api.listComponents({
          pageSize: 2,
          pageToken: first.nextPageToken,
          role: ComponentRole.EDGE,
        }),
      );
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(
        e.details,
        /^page_token: was issued for a request with a different role or status filter/,
      );
      const bad = await failure(h.api.listComponents({ pageToken: "not-a-token" }));
      assert.match(bad.details, /^page_token: malformed/);
    });

    it("bounds page_size and rejects unknown enum values, naming the field", async () => {
      const e = await failure(h.api.listComponents({ pageSize: 1001 }));
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(e.details, /^page_size: must be 0–1000 \(0 = 100\), got 1001/);
      assert.match(
        (await failure(h.api.listComponents({ role: 42 as ComponentRole }))).details,
        /^role: unknown role 42/,
      );
      assert.match(
        (await failure(h.api.listComponents({ status: 42 as ComponentStatus }))).details,
        /^status: unknown status 42/,
      );
    });
  });

  describe("GetComponent", () => {
    it("NOT_FOUND names the id; a malformed id is INVALID_ARGUMENT", async () => {
      const e = await failure(h.api.getComponent({ componentId: "nope" }));
      assert.equal(e.code, status.NOT_FOUND);
      assert.equal(e.details, 'component "nope" not found');
      const bad = await failure(h.api.getComponent({ componentId: "No Way" }));
      assert.equal(bad.code, status.INVALID_ARGUMENT);
      assert.match(bad.details, /^component_id: must be 1–64 chars/);
      assert.match((await failure(h.api.getComponent({}))).details, /^component_id: required/);
    });

    it("fills last_seen from the leader's ingest, 0 on a follower", async () => {
      const c = h.conn();
      c.hello(helloFor("pkg-1"));
      await c.next();
      h.clock.advance(1500);
      c.report(report(1, h.clock.nowMs()));
      await until(() => h.ingest.stats().reports === 1, "report");
      const got = await h.api.getComponent({ componentId: "pkg-1" });
      assert.equal(got.component?.lastSeenUnixMs, BigInt(T0 + 1500));
      assert.equal(got.component?.role, ComponentRole.PACKAGER);
      h.cluster.setLeadership({ isLeader: false, leaderId: "c2" });
      const f = await h.api.getComponent({ componentId: "pkg-1" });
      assert.equal(f.component?.lastSeenUnixMs, 0n);
    });

    it("agent_stream: the leader's view of the stream and of the reports by sequence (unset on a follower)", async () => {
      h.cluster.register("org-1", ComponentRole.ORIGIN);
      const none = await h.api.getComponent({ componentId: "org-1" });
      assert.equal(none.agentStream, undefined, "never streamed here");

      const a = h.conn();
      a.hello(helloFor("pkg-1", "inst-1"));
      await a.next();
      h.clock.advance(100);
      // A replay of 1..3, one of them sent twice, then live 4 and a jump to 7 (5, 6 lost).
      for (const seq of [1, 2, 2, 3])
        a.report(report(seq, T0 - 5000 + seq, undefined, { replayed: true }));
      await until(() => h.ingest.stats().duplicateReports === 1, "the duplicate");
      h.clock.advance(50);
      a.report(report(4, h.clock.nowMs()));
      a.report(report(7, h.clock.nowMs()));
      await until(() => h.ingest.stats().reports === 5, "5 reports");
      const got = (await h.api.getComponent({ componentId: "pkg-1" })).agentStream;
      assert.deepEqual(
        {
          streaming: got?.streaming,
          instance: got?.agentInstanceId,
          connected: got?.connectedUnixMs,
          firstLive: got?.firstLiveReportUnixMs,
          streams: got?.streamsWelcomed,
          first: got?.firstSequence,
          last: got?.lastSequence,
          ingested: got?.reportsIngested,
          replayed: got?.replayedReports,
          dup: got?.duplicateReports,
          gaps: got?.gapReports,
          dropped: got?.droppedSamples,
          late: got?.lateSamples,
        },
        {
          streaming: true,
          instance: "inst-1",
          connected: BigInt(T0),
          firstLive: BigInt(T0 + 150),
          streams: 1n,
          first: 1n,
          last: 7n,
          ingested: 5n,
          replayed: 3n,
          dup: 1n,
          gaps: 2n,
          dropped: 0n,
          late: 0n,
        },
      );
      // ingested + gaps = last - first + 1
      assert.equal(
        got!.reportsIngested + got!.gapReports,
        got!.lastSequence - got!.firstSequence + 1n,
      );

      // The agent reconnects: a second stream, resumed after 7; no live report on it yet.
      a.cancel();
      await until(() => !h.ingest.isStreaming("pkg-1"), "stream closed");
      const closed = (await h.api.getComponent({ componentId: "pkg-1" })).agentStream;
      assert.equal(closed?.streaming, false);
      h.clock.advance(1000);
      const b = h.conn();
      b.hello(helloFor("pkg-1", "inst-1"));
      const w = await b.next();
      assert.equal(w.body.case === "welcome" && w.body.value.resumeAfterSequence, 7n);
      const again = (await h.api.getComponent({ componentId: "pkg-1" })).agentStream;
      assert.equal(again?.streamsWelcomed, 2n);
      assert.equal(again?.connectedUnixMs, BigInt(T0 + 1150));
      assert.equal(again?.firstLiveReportUnixMs, 0n, "no live report on the new stream yet");
      assert.equal(again?.lastSequence, 7n);

      h.cluster.setLeadership({ isLeader: false, leaderId: "c2" });
      const f = await h.api.getComponent({ componentId: "pkg-1" });
      assert.equal(f.agentStream, undefined, "followers do not hold agent streams");
    });
  });

  describe("GetMetrics", () => {
    const feed = async () => {
      const c = h.conn();
      c.hello(helloFor("pkg-1"));
      await c.next();
      for (let s = 1; s <= 10; s++) {
        c.report(
          report(s, h.clock.nowMs(), [
            sample("cpu.load", s / 10),
            sample("mem.used_bytes", s, { unit: "bytes" }),
          ]),
        );
        await until(() => h.ingest.stats().reports === s, `report ${s}`);
        h.clock.advance(1000);
      }
    };

    it("returns series sorted by name over a range, downsampled to max_points", async () => {
      await feed();
      const all = await h.api.getMetrics({ componentId: "pkg-1" });
      assert.deepEqual(
        all.series.map((s) => s.name),
        ["cpu.load", "heartbeat.interval_ms", "mem.used_bytes"],
      );
      assert.equal(all.heldFromUnixMs, BigInt(T0));
      const mem = all.series[2]!;
      assert.equal(mem.unit, "bytes");
      assert.deepEqual(
        mem.points.map((p) => p.value),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      const range = await h.api.getMetrics({
        componentId: "pkg-1",
        names: ["mem.used_bytes"],
        fromUnixMs: BigInt(T0 + 2000),
        toUnixMs: BigInt(T0 + 6000),
      });
      assert.deepEqual(
        range.series[0]!.points.map((p) => [Number(p.timestampUnixMs) - T0, p.value]),
        [
          [2000, 3],
          [3000, 4],
          [4000, 5],
          [5000, 6],
        ],
      );
      const down = await h.api.getMetrics({
        componentId: "pkg-1",
        names: ["mem.used_bytes"],
        fromUnixMs: BigInt(T0),
        toUnixMs: BigInt(T0 + 10_000),
        maxPoints: 2,
      });
      assert.deepEqual(
        down.series[0]!.points.map((p) => p.value),
        [3, 8],
      );
    });

    const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
      [
        "to before from",
        { fromUnixMs: 5000n, toUnixMs: 4000n },
        /^to_unix_ms: must be > from_unix_ms \(5000\), got 4000/,
      ],
      ["too many points", { maxPoints: 10_001 }, /^max_points: must be 0–10000/],
      ["a bad name", { names: ["cpu.load", "Bad Name"] }, /^names\[1\]: must be a metric name/],
      [
        "too many names",
        { names: Array.from({ length: 65 }, (_, i) => `m${i}`) },
        /^names: at most 64, got 65/,
      ],
    ];
    for (const [what, patch, msg] of invalid) {
      it(`rejects ${what} with INVALID_ARGUMENT naming the field`, async () => {
        h.cluster.register("pkg-1", ComponentRole.PACKAGER);
        const e = await failure(h.api.getMetrics({ componentId: "pkg-1", ...patch }));
        assert.equal(e.code, status.INVALID_ARGUMENT);
        assert.match(e.details, msg);
      });
    }

    it("unknown component is NOT_FOUND; a follower answers UNAVAILABLE naming the leader", async () => {
      const e = await failure(h.api.getMetrics({ componentId: "ghost" }));
      assert.equal(e.code, status.NOT_FOUND);
      assert.equal(e.details, 'component "ghost" not found');
      h.cluster.register("pkg-1", ComponentRole.PACKAGER);
      h.cluster.setLeadership({
        isLeader: false,
        leaderId: "c2",
        leaderApiAddress: "10.0.0.2:7000",
      });
      const f = await failure(h.api.getMetrics({ componentId: "pkg-1" }));
      assert.equal(f.code, status.UNAVAILABLE);
      assert.match(f.details, /leader "c2" at 10\.0\.0\.2:7000/);
    });

    it("a registered component without samples has empty series and held_from 0", async () => {
      h.cluster.register("pkg-1", ComponentRole.PACKAGER);
      const r = await h.api.getMetrics({ componentId: "pkg-1" });
      assert.deepEqual(r.series, []);
      assert.equal(r.heldFromUnixMs, 0n);
    });
  });

  describe("Drain", () => {
    it("proposes DRAINING once (idempotent) and returns no handovers yet", async () => {
      h.cluster.register("org-1", ComponentRole.ORIGIN);
      const before = h.cluster.proposals.length;
      const r = await h.api.drain({
        componentId: "org-1",
        reason: "kernel upgrade",
        requestId: "op-1",
      });
      assert.deepEqual(r.handoverIds, []);
      const c = h.cluster.fsm.component("org-1")!;
      assert.equal(c.status, ComponentStatus.DRAINING);
      assert.equal(c.statusReason, "drain: kernel upgrade");
      await h.api.drain({ componentId: "org-1" });
      assert.equal(h.cluster.proposals.length, before + 1);
    });

    it("validates, NOT_FOUND for unknown ids, UNAVAILABLE on a follower", async () => {
      assert.equal((await failure(h.api.drain({ componentId: "ghost" }))).code, status.NOT_FOUND);
      h.cluster.register("org-1", ComponentRole.ORIGIN);
      const r = await failure(h.api.drain({ componentId: "org-1", reason: "x".repeat(513) }));
      assert.match(r.details, /^reason: at most 512 chars/);
      const q = await failure(h.api.drain({ componentId: "org-1", requestId: "a b" }));
      assert.match(q.details, /^request_id: must be/);
      h.cluster.setLeadership({ isLeader: false, leaderId: "c2" });
      assert.equal((await failure(h.api.drain({ componentId: "org-1" }))).code, status.UNAVAILABLE);
      assert.equal(h.cluster.fsm.component("org-1")!.status, ComponentStatus.HEALTHY);
    });
  });
});
