/**
 * AgentService over real gRPC (connect-node server, grpc-js client): the
 * stream protocol, every validation rule with its gRPC code and message,
 * dedupe/watermark/ack, skew, replacement and leadership.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { Code, ConnectError } from "../../../common/errors.ts";
import { createLogger } from "../../../common/log.ts";
import { AgentMessageSchema } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import {
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { type AgentConn, helloFor } from "./agent-conn.ts";
import { type Harness, report, sample, startHarness, T0, until } from "./harness.ts";

async function welcomed(c: AgentConn, hello = helloFor("pkg-1")) {
  c.hello(hello);
  const m = await c.next();
  assert.equal(m.body.case, "welcome", `expected welcome, got ${m.body.case}`);
  return m.body.value as Extract<typeof m.body, { case: "welcome" }>["value"];
}

describe("ingest: agent stream protocol (real gRPC)", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness({
      limits: { reportBytesMax: 64 * 1024, samplesPerReportMax: 40, redirectHoldMs: 300 },
    });
  });
  afterEach(async () => {
    await h.close();
  });

  describe("leadership", () => {
    it("a follower answers Redirect with the leader id and API address, then ends OK", async () => {
      h.cluster.setLeadership({
        isLeader: false,
        leaderId: "c2",
        leaderApiAddress: "10.0.0.2:7000",
      });
      const c = h.conn();
      c.hello();
      const m = await c.next();
      assert.equal(m.body.case, "redirect");
      if (m.body.case !== "redirect") return;
      assert.equal(m.body.value.leaderId, "c2");
      assert.equal(m.body.value.leaderAddress, "10.0.0.2:7000");
      assert.equal(m.body.value.retryAfterMs, 0);
      assert.equal((await c.ended()).code, status.OK);
      assert.equal(h.ingest.stats().redirects, 1);
      assert.equal(h.cluster.proposals.length, 0);
    });

    it("without a known leader the Redirect says retry after, once the hold (redirectHoldMs) ran out", async () => {
      h.cluster.setLeadership({ isLeader: false, leaderId: "", leaderApiAddress: "" });
      const c = h.conn();
      const t0 = performance.now();
      c.hello();
      const m = await c.next();
      const heldMs = performance.now() - t0;
      assert.equal(m.body.case, "redirect");
      if (m.body.case !== "redirect") return;
      assert.equal(m.body.value.leaderAddress, "");
      assert.ok(m.body.value.retryAfterMs > 0);
      assert.match(m.body.value.reason, /no leader/);
      assert.ok(heldMs >= 290 && heldMs < 2000, `held ${Math.round(heldMs)} ms, bound 300`);
      assert.equal(h.ingest.stats().heldHellos, 1);
    });

    it("during an election a follower holds the Hello and redirects to the new leader the moment it is known", async () => {
      h.cluster.setLeadership({ isLeader: false, leaderId: "", leaderApiAddress: "" });
      const c = h.conn();
      c.hello();
      await until(() => h.ingest.stats().heldHellos === 1, "the hello is held");
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(c.buffered.length, 0, "nothing answered while no leader is known");
      const t0 = performance.now();
      h.cluster.setLeadership({ leaderId: "c2", leaderApiAddress: "10.0.0.2:7000", term: 4 });
      const m = await c.next();
      assert.ok(performance.now() - t0 < 150, "answered as soon as the leader was known");
      assert.equal(m.body.case, "redirect");
      if (m.body.case !== "redirect") return;
      assert.equal(m.body.value.leaderId, "c2");
      assert.equal(m.body.value.leaderAddress, "10.0.0.2:7000");
      assert.equal(m.body.value.retryAfterMs, 0);
    });

    it("a follower that still believes in the leader the agent lost holds until leadership moves", async () => {
      h.cluster.setLeadership({
        isLeader: false,
        leaderId: "c2",
        leaderApiAddress: "10.0.0.2:7000",
      });
      const lost = h.conn();
      lost.hello(helloFor("pkg-1", "inst-1", { lostLeaderId: "c2" }));
      // Another agent that lost nothing is redirected at once.
      const other = h.conn();
      other.hello(helloFor("pkg-2", "inst-2"));
      const m0 = await other.next();
      assert.equal(m0.body.case === "redirect" && m0.body.value.leaderId, "c2");
      await until(() => h.ingest.stats().heldHellos === 1, "the hello naming c2 is held");
      assert.equal(lost.buffered.length, 0);
      h.cluster.setLeadership({ leaderId: "", leaderApiAddress: "" });
      h.cluster.setLeadership({ leaderId: "c3", leaderApiAddress: "10.0.0.3:7000", term: 4 });
      const m = await lost.next();
      assert.equal(m.body.case === "redirect" && m.body.value.leaderAddress, "10.0.0.3:7000");
    });

    it("a follower that wins the election while holding a Hello welcomes the agent itself", async () => {
      h.cluster.setLeadership({ isLeader: false, leaderId: "", leaderApiAddress: "" });
      const c = h.conn();
      c.hello(helloFor("pkg-1", "inst-1", { lostLeaderId: "c2" }));
      await until(() => h.ingest.stats().heldHellos === 1, "the hello is held");
      h.cluster.setLeadership({
        isLeader: true,
        leaderId: "c1",
        leaderApiAddress: "127.0.0.1:1",
        term: 4,
      });
      const m = await c.next();
      assert.equal(m.body.case, "welcome");
      assert.equal(m.body.case === "welcome" && m.body.value.term, 4n);
      assert.equal(h.ingest.isStreaming("pkg-1"), true);
      assert.equal(h.ingest.stats().redirects, 0);
    });

    it("a held Hello is released when the agent goes away or the coordinator shuts down", async () => {
      h.cluster.setLeadership({ isLeader: false, leaderId: "", leaderApiAddress: "" });
      const gone = h.conn();
      gone.hello();
      const staying = h.conn();
      staying.hello(helloFor("pkg-2", "inst-2"));
      await until(() => h.ingest.stats().heldHellos === 2, "both hellos held");
      gone.cancel();
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await h.ingest.close();
      const m = await staying.next();
      assert.ok(performance.now() - t0 < 250, "close does not wait out the hold");
      assert.equal(m.body.case, "redirect");
      assert.match(m.body.case === "redirect" ? m.body.value.reason : "", /shutting down/);
      assert.equal(h.ingest.stats().redirects, 1, "the cancelled stream got no answer");
    });

    it("losing leadership ends open streams with UNAVAILABLE naming the new leader", async () => {
      const c = h.conn();
      await welcomed(c);
      h.cluster.setLeadership({
        isLeader: false,
        leaderId: "c3",
        leaderApiAddress: "10.0.0.3:7000",
      });
      const end = await c.ended();
      assert.equal(end.code, status.UNAVAILABLE);
      assert.match(end.details, /leader: c3 at 10\.0\.0\.3:7000/);
      assert.equal(h.ingest.stats().activeStreams, 0);
    });
  });

  describe("hello", () => {
    it("registers a new component through the log and answers Welcome", async () => {
      const c = h.conn();
      const w = await welcomed(
        c,
        helloFor("pkg-eu-1", "a1", {
          labels: { region: "eu-west-1", zone: "eu-west-1a", extra: { gpu: "t4" } },
          capacity: { cpuCores: 8, memoryBytes: 16n << 30n, maxStreams: 50 },
          samplingIntervalMs: 500,
        }),
      );
      assert.equal(w.leaderId, "c1");
      assert.equal(w.term, 3n);
      assert.equal(w.coordinatorUnixMs, BigInt(T0));
      assert.equal(w.samplingIntervalMs, 500);
      assert.equal(w.maxReportBytes, 64 * 1024);
      assert.equal(w.resumeAfterSequence, 0n);
      assert.equal(w.heartbeatIntervalMs, 250);
      assert.equal(h.cluster.proposals.length, 1);
      assert.equal(h.cluster.proposals[0]?.op?.case, "registerComponent");
      const comp = h.cluster.fsm.component("pkg-eu-1");
      assert.equal(comp?.role, ComponentRole.PACKAGER);
      assert.equal(comp?.labels?.zone, "eu-west-1a");
      assert.equal(comp?.capacity?.maxStreams, 50);
      assert.equal(h.ingest.isStreaming("pkg-eu-1"), true);
    });

    it("an unchanged component reconnecting is not re-registered; a changed one is", async () => {
      const a = h.conn();
      await welcomed(a);
      a.cancel();
      await until(() => h.ingest.stats().activeStreams === 0, "stream closed");
      const b = h.conn();
      await welcomed(b);
      assert.equal(h.cluster.proposals.length, 1);
      b.cancel();
      await until(() => h.ingest.stats().activeStreams === 0, "stream closed");
      const c = h.conn();
      await welcomed(c, helloFor("pkg-1", "inst-1", { softwareVersion: "understudy-agent 0.2.0" }));
      assert.equal(h.cluster.proposals.length, 2);
      assert.equal(h.cluster.fsm.component("pkg-1")?.softwareVersion, "understudy-agent 0.2.0");
    });

    it("an agent restart (new instance id) re-registers", async () => {
      const a = h.conn();
      await welcomed(a);
      a.cancel();
      await until(() => h.ingest.stats().activeStreams === 0, "stream closed");
      await welcomed(h.conn(), helloFor("pkg-1", "inst-2"));
      assert.equal(h.cluster.proposals.length, 2);
    });

    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ["missing component id", { componentId: "" }, /^hello\.component_id: required/],
      [
        "malformed component id",
        { componentId: "Pkg_1" },
        /^hello\.component_id: must be 1–64 chars of \[a-z0-9-\].*"Pkg_1"/,
      ],
      [
        "component id too long",
        { componentId: "a".repeat(65) },
        /^hello\.component_id: must be 1–64/,
      ],
      [
        "unspecified role",
        { role: ComponentRole.UNSPECIFIED },
        /^hello\.role: required \(not UNSPECIFIED\)/,
      ],
      ["unknown role", { role: 9 }, /^hello\.role: unknown role 9/],
      ["empty host", { host: "" }, /^hello\.host: required, 1–253 chars/],
      ["missing instance id", { agentInstanceId: "" }, /^hello\.agent_instance_id: required/],
      [
        "bad instance id",
        { agentInstanceId: "a b" },
        /^hello\.agent_instance_id: must be 1–64 chars of \[A-Za-z0-9-\]/,
      ],
      [
        "sampling interval too small",
        { samplingIntervalMs: 50 },
        /^hello\.sampling_interval_ms: must be 100–60000, got 50/,
      ],
      [
        "reserved extra label",
        { labels: { extra: { zone: "x" } } },
        /^hello\.labels\.extra\["zone"\]: use hello\.labels\.zone/,
      ],
      ["bad zone", { labels: { zone: "EU" } }, /^hello\.labels\.zone: must be 0–64 chars/],
      [
        "cpu cores out of range",
        { capacity: { cpuCores: 5000 } },
        /^hello\.capacity\.cpu_cores: must be 0–4096, got 5000/,
      ],
      [
        "version too long",
        { softwareVersion: "v".repeat(129) },
        /^hello\.software_version: at most 128 chars/,
      ],
      [
        "bad lost leader id",
        { lostLeaderId: "C 1" },
        /^hello\.lost_leader_id: must be empty or a coordinator node id/,
      ],
    ];
    for (const [what, patch, msg] of cases) {
      it(`rejects ${what} with INVALID_ARGUMENT naming the field, storing nothing`, async () => {
        const c = h.conn();
        c.hello(helloFor("pkg-1", "inst-1", patch));
        const end = await c.ended();
        assert.equal(end.code, status.INVALID_ARGUMENT, end.details);
        assert.match(end.details, msg);
        assert.equal(h.cluster.proposals.length, 0);
        assert.equal(h.ingest.stats().rejected.hello_invalid, 1);
        assert.equal(h.ingest.stats().activeStreams, 0);
      });
    }

    it("first message must be hello", async () => {
      const c = h.conn();
      c.report(report(1, T0));
      const end = await c.ended();
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.match(end.details, /first message must be hello, got report/);
      assert.equal(h.ingest.stats().rejected.first_not_hello, 1);
    });

    it("an empty message is INVALID_ARGUMENT", async () => {
      const c = h.conn();
      c.send({});
      const end = await c.ended();
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.match(end.details, /^body: required; the first message must be hello/);
    });

    it("a second hello ends the stream", async () => {
      const c = h.conn();
      await welcomed(c);
      c.hello();
      const end = await c.ended();
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.match(end.details, /^hello: a second hello on one stream/);
    });

    it("a component already live from another agent instance is ALREADY_EXISTS naming the id", async () => {
      await welcomed(h.conn(), helloFor("pkg-1", "first"));
      const c = h.conn();
      c.hello(helloFor("pkg-1", "second"));
      const end = await c.ended();
      assert.equal(end.code, status.ALREADY_EXISTS);
      assert.match(
        end.details,
        /component "pkg-1" is already streaming from agent instance "first"/,
      );
      assert.equal(h.ingest.stats().rejected.component_conflict, 1);
    });

    it("a silent stream (half-open connection) is taken over by a new instance", async () => {
      const a = h.conn();
      await welcomed(a, helloFor("pkg-1", "first"));
      h.clock.advance(2500);
      await welcomed(h.conn(), helloFor("pkg-1", "second"));
      const end = await a.ended();
      assert.equal(end.code, status.ABORTED);
      assert.match(end.details, /silent for 2500 ms/);
    });

    it("the same instance reconnecting replaces its old stream", async () => {
      const a = h.conn();
      await welcomed(a);
      await welcomed(h.conn());
      const end = await a.ended();
      assert.equal(end.code, status.ABORTED);
      assert.match(end.details, /replaced by a newer stream of the same agent instance/);
      assert.equal(h.ingest.stats().activeStreams, 1);
      assert.equal(h.ingest.stats().streamsReplaced, 1);
    });

    it("a role different from the registered one is FAILED_PRECONDITION", async () => {
      h.cluster.register("pkg-1", ComponentRole.ENCODER);
      const c = h.conn();
      c.hello();
      const end = await c.ended();
      assert.equal(end.code, status.FAILED_PRECONDITION);
      assert.match(end.details, /component "pkg-1" is registered as ENCODER, got PACKAGER/);
    });

    it("a failed registration ends the stream with the proposal's code", async () => {
      h.cluster.failNextPropose(new ConnectError("deadline", Code.DeadlineExceeded));
      const c = h.conn();
      c.hello();
      const end = await c.ended();
      assert.equal(end.code, status.DEADLINE_EXCEEDED);
      assert.match(end.details, /registering component "pkg-1" failed/);
      assert.equal(h.ingest.stats().activeStreams, 0);
    });

    it("keeps a drained component drained on re-registration", async () => {
      h.cluster.register("pkg-1", ComponentRole.PACKAGER, ComponentStatus.DRAINED);
      await welcomed(h.conn(), helloFor("pkg-1", "x", { host: "moved.example" }));
      assert.equal(h.cluster.fsm.component("pkg-1")?.status, ComponentStatus.DRAINED);
    });
  });

  describe("reports", () => {
    const bad: Array<[string, Parameters<typeof report>, number, RegExp]> = [
      [
        "a NaN value",
        [1, T0, [sample("cpu.load", 0.1), sample("mem.used_bytes", Number.NaN)]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[1\]\.value: must be finite, got NaN for "mem\.used_bytes" \(report sequence 1\)/,
      ],
      [
        "an infinite value",
        [1, T0, [sample("cpu.load", Number.POSITIVE_INFINITY)]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.value: must be finite, got Infinity/,
      ],
      [
        "an upper-case name",
        [1, T0, [sample("CPU.load", 1)]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.name: must be 1–128 chars of \[a-z0-9_\.\] starting with a letter, got "CPU\.load"/,
      ],
      [
        "a name with a space",
        [1, T0, [sample("cpu load", 1)]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.name/,
      ],
      [
        "an empty name",
        [1, T0, [sample("", 1)]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.name/,
      ],
      [
        "a bad unit",
        [1, T0, [sample("cpu.load", 1, { unit: "Bytes" })]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.unit/,
      ],
      [
        "a bad label key",
        [1, T0, [sample("fs.used_ratio", 1, { labels: { "Mount Point": "/" } })]],
        status.INVALID_ARGUMENT,
        /^report\.samples\[0\]\.labels\["Mount Point"\]: key must be/,
      ],
      [
        "too many samples",
        [1, T0, Array.from({ length: 41 }, (_, i) => sample(`m.x${i}`, i))],
        status.RESOURCE_EXHAUSTED,
        /^report\.samples: at most 40 per report, got 41/,
      ],
      ["sequence 0", [0, T0], status.INVALID_ARGUMENT, /^report\.sequence: must be >= 1/],
      ["timestamp 0", [1, 0], status.INVALID_ARGUMENT, /^report\.timestamp_unix_ms: must be > 0/],
      [
        "heartbeat_only with samples",
        [1, T0, [sample("cpu.load", 1)], { heartbeatOnly: true }],
        status.INVALID_ARGUMENT,
        /^report\.heartbeat_only: set on a report that carries samples/,
      ],
      [
        "an empty non-heartbeat report",
        [1, T0, []],
        status.INVALID_ARGUMENT,
        /^report\.samples: empty; an empty report must set heartbeat_only/,
      ],
      [
        "a probe without kind",
        [1, T0, [], { probes: [{ target: "http://x", latencyMs: 1 }] }],
        status.INVALID_ARGUMENT,
        /^report\.probes\[0\]\.kind: required/,
      ],
      [
        "a negative probe latency",
        [1, T0, [], { probes: [{ kind: 3, target: "http://x", latencyMs: -1 }] }],
        status.INVALID_ARGUMENT,
        /^report\.probes\[0\]\.latency_ms: must be finite and >= 0/,
      ],
    ];
    for (const [what, args, code, msg] of bad) {
      it(`rejects ${what} (code ${code}) and stores nothing`, async () => {
        const c = h.conn();
        await welcomed(c);
        c.report(report(...args));
        const end = await c.ended();
        assert.equal(end.code, code, end.details);
        assert.match(end.details, msg);
        const st = h.ingest.stats();
        assert.equal(st.reports, 0);
        assert.equal(st.samples, 0);
        assert.equal(st.rejected.report_invalid + st.rejected.report_too_large, 1);
        assert.equal(h.ingest.component("pkg-1")?.seriesCount ?? 0, 0);
      });
    }

    it("an oversized message is RESOURCE_EXHAUSTED from the server's readMaxBytes", async () => {
      const c = h.conn();
      await welcomed(c);
      c.report(
        report(1, T0, [sample("cpu.load", 1, { labels: { big: "x".repeat(128) } })], {
          probes: [{ kind: 3, target: "http://x", latencyMs: 1, error: "e".repeat(70_000) }],
        }),
      );
      const end = await c.ended();
      assert.equal(end.code, status.RESOURCE_EXHAUSTED);
      assert.match(end.details, /message size .* is larger than configured readMaxBytes/);
      assert.equal(h.ingest.stats().reports, 0);
      assert.equal(h.ingest.stats().rejected.unreadable_message, 1);
    });

    it("stores samples in per-series windows and history, derives probe and heartbeat series", async () => {
      const c = h.conn();
      await welcomed(c);
      const got: string[] = [];
      h.ingest.onReport((r) => got.push(`${r.componentId}:${r.sequence}:${r.samples.length}`));
      c.report(
        report(
          1,
          T0,
          [sample("cpu.load", 0.25), sample("fs.used_ratio", 0.5, { labels: { mount: "/data" } })],
          {
            probes: [
              {
                kind: 3,
                target: "http://origin/",
                ok: true,
                latencyMs: 12,
                values: { http_status: 200 },
              },
            ],
          },
        ),
      );
      await until(() => h.ingest.stats().reports === 1, "report 1");
      h.clock.advance(1000);
      c.report(report(2, T0 + 1000, [sample("cpu.load", 0.75)]));
      await until(() => h.ingest.stats().reports === 2, "report 2");
      const store = h.ingest.component("pkg-1")!;
      const keys = store
        .series()
        .map((s) => s.key)
        .sort();
      assert.deepEqual(keys, [
        "cpu.load",
        'fs.used_ratio{mount="/data"}',
        "heartbeat.interval_ms",
        'probe.http.http_status{target="http://origin/"}',
        'probe.http.latency_ms{target="http://origin/"}',
        'probe.http.ok{target="http://origin/"}',
      ]);
      const cpu = store.series().find((s) => s.key === "cpu.load")!;
      assert.equal(cpu.raw.size, 2);
      assert.equal(cpu.raw.lastValue(), 0.75);
      assert.equal(cpu.raw.lastTimeMs(), T0 + 1000);
      const hb = store.series().find((s) => s.key === "heartbeat.interval_ms")!;
      assert.equal(hb.raw.lastValue(), 1000);
      assert.deepEqual(got, ["pkg-1:1:5", "pkg-1:2:2"]);
      assert.equal(h.ingest.stats().samples, 3);
      assert.equal(h.ingest.lastSeenUnixMs("pkg-1"), T0 + 1000);
    });

    it("acks the watermark periodically, drops duplicates (still acked) and counts gaps", async () => {
      const c = h.conn();
      await welcomed(c);
      for (let s = 1; s <= 3; s++) c.report(report(s, T0));
      await until(() => h.ingest.stats().reports === 3, "3 reports");
      assert.equal(c.buffered.length, 0, "no ack before ackIntervalMs");
      h.clock.advance(1000);
      h.ingest.maintain();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(c.buffered.length, 0, "still none at half the ack interval (2000 ms)");
      h.clock.advance(1000);
      h.ingest.maintain();
      const ack = await c.next();
      assert.deepEqual(ack.body, { case: "ack", value: ack.body.value });
      assert.equal(ack.body.case === "ack" && ack.body.value.sequence, 3n);
      // Duplicate then a jump: 2 is dropped, 6 leaves a gap of 4 and 5.
      c.report(report(2, T0));
      c.report(report(6, T0));
      await until(() => h.ingest.stats().reports === 4, "report 6");
      const st = h.ingest.stats();
      assert.equal(st.duplicateReports, 1);
      assert.equal(st.gapReports, 2);
      assert.equal(
        h.ingest
          .component("pkg-1")!
          .series()
          .find((s) => s.name === "cpu.load")!.raw.size,
        4,
      );
      h.clock.advance(2000);
      h.ingest.maintain();
      const ack2 = await c.next();
      assert.equal(ack2.body.case === "ack" && ack2.body.value.sequence, 6n);
    });

    it("replays after a reconnect resume after the watermark, never double-count, ack at replay end", async () => {
      const a = h.conn();
      await welcomed(a);
      for (let s = 1; s <= 5; s++) a.report(report(s, T0 + s * 1000));
      await until(() => h.ingest.stats().reports === 5, "5 reports");
      a.cancel();
      await until(() => h.ingest.stats().activeStreams === 0, "closed");
      h.clock.advance(10_000);
      const b = h.conn();
      const w = await welcomed(b);
      assert.equal(w.resumeAfterSequence, 5n);
      // An agent that replays more than asked (3..8) then goes live with 9.
      for (let s = 3; s <= 8; s++)
        b.report(report(s, T0 + s * 1000, undefined, { replayed: true }));
      b.report(report(9, T0 + 9000));
      const ack = await b.next();
      assert.equal(ack.body.case === "ack" && ack.body.value.sequence, 9n, "ack at replay end");
      const st = h.ingest.stats();
      assert.equal(st.duplicateReports, 3);
      assert.equal(st.reports, 9);
      assert.equal(st.replayedReports, 3);
      const cpu = h.ingest
        .component("pkg-1")!
        .series()
        .find((s) => s.name === "cpu.load")!;
      assert.equal(cpu.raw.size, 9);
    });

    it("flags clock skew, keeps the report at receive time and shifts later ones", async () => {
      const c = h.conn();
      await welcomed(c);
      c.report(report(1, T0 + 120_000));
      await until(() => h.ingest.stats().reports === 1, "report");
      h.clock.advance(1000);
      c.report(report(2, T0 + 121_000));
      await until(() => h.ingest.stats().reports === 2, "report 2");
      assert.equal(h.ingest.stats().skewedReports, 2);
      const cpu = h.ingest
        .component("pkg-1")!
        .series()
        .find((s) => s.name === "cpu.load")!;
      assert.deepEqual([cpu.raw.timeAt(0), cpu.raw.timeAt(1)], [T0, T0 + 1000]);
    });

    it("heartbeat-only reports prove liveness; replayed ones do not", async () => {
      const c = h.conn();
      const live: string[] = [];
      h.ingest.onLiveness((id, hb) => live.push(`${id}/${hb}`));
      await welcomed(c);
      c.report(report(1, T0, [], { heartbeatOnly: true, replayed: true }));
      c.report(report(2, T0, [], { heartbeatOnly: true }));
      await until(() => h.ingest.stats().reports === 2, "2 reports");
      assert.deepEqual(live, ["pkg-1/250", "pkg-1/250"], "hello + live heartbeat");
    });

    it("an agent that goes away mid-stream is a quiet end, not a handler error", async () => {
      const lines: string[] = [];
      const quiet = await startHarness({
        log: createLogger({}, { level: "debug", write: (l) => lines.push(l) }),
      });
      try {
        const c = quiet.conn();
        c.hello();
        await c.next();
        c.report(report(1, T0));
        await until(() => quiet.ingest.stats().reports === 1, "report");
        c.cancel();
        await until(() => quiet.ingest.stats().activeStreams === 0, "stream closed");
        // And a connection torn down without RST_STREAM (a killed process).
        const sock = net.connect(quiet.server.port, "127.0.0.1");
        const session = http2.connect(`http://${quiet.server.address}`, {
          createConnection: () => sock,
        });
        const req = session.request({
          ":method": "POST",
          ":path": "/understudy.agent.v1.AgentService/Connect",
          "content-type": "application/grpc+proto",
          te: "trailers",
        });
        const hello = toBinary(
          AgentMessageSchema,
          create(AgentMessageSchema, { body: { case: "hello", value: helloFor("pkg-2") } }),
        );
        const frame = Buffer.alloc(5 + hello.length);
        frame.writeUInt32BE(hello.length, 1);
        frame.set(hello, 5);
        req.write(frame);
        await until(() => quiet.ingest.isStreaming("pkg-2"), "pkg-2 welcomed");
        sock.destroy();
        await until(() => quiet.ingest.stats().activeStreams === 0, "stream closed");
        assert.deepEqual(
          lines.filter((l) => JSON.parse(l).level === "error"),
          [],
        );
      } finally {
        await quiet.close();
      }
    });

    it("delivers directives and their results", async () => {
      const c = h.conn();
      await welcomed(c);
      const results: string[] = [];
      h.ingest.onDirectiveResult((id, r) => results.push(`${id}:${r.directiveId}:${r.ok}`));
      assert.equal(
        h.ingest.sendDirective("pkg-1", { directiveId: "d-1", kind: 1, service: "x.service" }),
        true,
      );
      assert.equal(h.ingest.sendDirective("nope", { directiveId: "d-2" }), false);
      const d = await c.next();
      assert.equal(d.body.case, "directive");
      c.send({ body: { case: "directiveResult", value: { directiveId: "d-1", ok: true } } });
      await until(() => results.length === 1, "result");
      assert.deepEqual(results, ["pkg-1:d-1:true"]);
      c.send({ body: { case: "directiveResult", value: { directiveId: "bad id!" } } });
      const end = await c.ended();
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.match(end.details, /^directive_result\.directive_id/);
    });
  });
});
