/**
 * The agent against a real gRPC coordinator (connect-node on HTTP/2, see
 * coordinator-stub.ts): hello/welcome, replay from the leader's watermark,
 * coordinator restarts, leader changes, redirects, unreachable nodes,
 * directives and agent restarts with a data dir. "No loss, no duplicate" is
 * checked on sequence numbers: what the coordinator accepted must be exactly
 * 1..N, and it must have dropped no duplicate.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Agent,
  type AgentSample,
  createAgent,
  createAgentConnection,
  createBackoff,
  createFixedSampler,
  createGrpcAgentTransport,
  createReportBuffer,
  execFileRunner,
  parseAgentConfig,
} from "../../agent/src/index.ts";
import { systemClock } from "../../common/clock.ts";
import { Code } from "../../common/errors.ts";
import { createLogger, type Logger, silentLogger } from "../../common/log.ts";
import { createRng } from "../../common/rng.ts";
import { DirectiveKind, ProbeKind } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type CoordinatorStub,
  createStubState,
  receivedSeqs,
  type StubState,
  startCoordinatorStub,
} from "./coordinator-stub.ts";

const range = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AgentOpts {
  dataDir?: string;
  samples?: AgentSample[];
  extra?: Record<string, unknown>;
  logger?: Logger;
}

describe("agent stream (real gRPC coordinator)", function () {
  this.timeout(30_000);
  const agents: Agent[] = [];
  const stubs: CoordinatorStub[] = [];
  const cleanups: (() => unknown)[] = [];

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop().catch(() => {});
    for (const s of stubs.splice(0)) await s.close().catch(() => {});
    for (const c of cleanups.splice(0)) await c();
  });

  async function stub(opts: Parameters<typeof startCoordinatorStub>[0] = {}) {
    const s = await startCoordinatorStub(opts);
    stubs.push(s);
    return s;
  }

  async function agent(addresses: string[], o: AgentOpts = {}) {
    const config = parseAgentConfig({
      component: {
        id: "enc-1",
        role: "encoder",
        host: "enc-1.test",
        labels: { region: "eu-west-1", zone: "eu-west-1a", extra: { gpu: "t4" } },
        capacity: { maxStreams: 4 },
      },
      coordinator: {
        addresses,
        backoffInitialMs: 20,
        backoffMaxMs: 200,
        helloTimeoutMs: 1000,
        ackTimeoutMs: 1000,
      },
      sampling: { intervalMs: 100, heartbeatIntervalMs: 50 },
      ...(o.dataDir ? { dataDir: o.dataDir } : {}),
      ...o.extra,
    });
    const a = await createAgent({
      config,
      clock: systemClock,
      rng: createRng(42),
      logger: o.logger ?? silentLogger,
      sampler: createFixedSampler(o.samples ?? [{ name: "cpu.load", value: 0.5 }], {
        cpuCores: 8,
        memoryBytes: 2 ** 34,
      }),
      transport: createGrpcAgentTransport({
        keepaliveIntervalMs: 10_000,
        keepaliveTimeoutMs: 5000,
        backoffInitialMs: 20,
        backoffMaxMs: 200,
      }),
      runner: execFileRunner,
      softwareVersion: "understudy-agent test",
    });
    agents.push(a);
    a.start();
    return a;
  }

  /** Waits until the stub has accepted (and acked) everything the agent issued so far. */
  async function settle(s: CoordinatorStub, a: Agent): Promise<number> {
    const target = a.stats().buffer.lastSeq;
    await s.waitFor(
      `watermark ${target}`,
      () => (s.state.watermarks.get(a.instanceId) ?? 0) >= target,
    );
    return target;
  }

  function assertExactlyOnce(state: StubState, a: Agent) {
    const seqs = receivedSeqs(state, a.instanceId);
    assert.deepEqual(seqs, range(1, seqs.length), "accepted sequences must be exactly 1..N");
    assert.equal(state.gaps, 0, "no gap");
    return seqs.length;
  }

  it("sends Hello first, then contiguous reports and heartbeats; acks advance the watermark", async () => {
    const s = await stub();
    const a = await agent([s.address]);
    await s.waitFor("10 reports", () => receivedSeqs(s.state, a.instanceId).length >= 10);
    await settle(s, a);
    const hello = s.state.hellos[0]!;
    assert.equal(hello.componentId, "enc-1");
    assert.equal(hello.role, ComponentRole.ENCODER);
    assert.equal(hello.host, "enc-1.test");
    assert.equal(hello.labels?.zone, "eu-west-1a");
    assert.equal(hello.labels?.extra.gpu, "t4");
    assert.equal(hello.capacity?.cpuCores, 8, "measured cores when not configured");
    assert.equal(hello.capacity?.memoryBytes, 2n ** 34n);
    assert.equal(hello.capacity?.maxStreams, 4);
    assert.equal(hello.agentInstanceId, a.instanceId);
    assert.equal(hello.samplingIntervalMs, 100);
    assertExactlyOnce(s.state, a);
    const got = s.state.received.get(a.instanceId)!;
    assert.ok(
      got.some((r) => r.heartbeatOnly && r.samples === 0),
      "heartbeats between reports",
    );
    const full = got.find((r) => !r.heartbeatOnly)!;
    assert.equal(full.report.samples[0]?.name, "cpu.load");
    assert.equal(full.report.samples[0]?.unit, "ratio");
    assert.ok(full.report.timestampUnixMs > 0n);
    // Reports sampled before the Welcome are sent as a replay (agent.proto step 3); after that, live.
    const firstLive = got.findIndex((r) => !r.replayed);
    assert.ok(firstLive >= 0 && firstLive <= 2, `first live report at index ${firstLive}`);
    assert.ok(got.slice(firstLive).every((r) => !r.replayed));
    assert.equal(s.state.duplicates, 0);
    assert.equal(a.stats().buffer.ackedSeq, a.stats().buffer.lastSeq);
  });

  it("coordinator restart: reports sampled meanwhile are replayed; nothing lost or duplicated", async () => {
    const state = createStubState();
    const s1 = await stub({ state });
    const a = await agent([s1.address]);
    await s1.waitFor("some reports", () => receivedSeqs(state, a.instanceId).length >= 5);
    await s1.close();
    const beforeOutage = state.watermarks.get(a.instanceId)!;
    await sleep(600);
    assert.ok(
      a.stats().buffer.lastSeq > beforeOutage + 3,
      "the agent keeps sampling while disconnected",
    );
    const s2 = await stub({ state, listen: s1.address });
    const settled = await settle(s2, a);
    await a.stop();
    const n = assertExactlyOnce(state, a);
    assert.ok(n >= settled, `${n} accepted, ${settled} issued before settling`);
    assert.equal(state.duplicates, 0);
    // (A reconnect can still reach the closing server and replay there too, so
    // only the reports sampled after its watermark are counted.)
    const replayed = state.received
      .get(a.instanceId)!
      .filter((r) => r.replayed && r.seq > beforeOutage);
    assert.ok(replayed.length >= 3, "reports from the outage arrive marked replayed");
    assert.ok(a.stats().connection.connects >= 2);
  });

  it("leader change: the new leader gets the whole window (replayed), then live reports", async () => {
    const old = await stub({ leaderId: "c1", term: 1n });
    const next = await stub({ leaderId: "c2", term: 2n });
    const a = await agent([old.address, next.address]);
    await old.waitFor("reports", () => receivedSeqs(old.state, a.instanceId).length >= 5);
    await old.close();
    await next.waitFor(
      "reports at the new leader",
      () => receivedSeqs(next.state, a.instanceId).length >= 20,
    );
    await settle(next, a);
    const got = next.state.received.get(a.instanceId)!;
    assert.deepEqual(
      got.map((r) => r.seq),
      range(1, got.length),
      "the new leader has every report from 1",
    );
    assert.equal(next.state.duplicates, 0);
    const firstLive = got.findIndex((r) => !r.replayed);
    assert.ok(firstLive > 0, "the window comes first, marked replayed");
    assert.equal(
      got[firstLive]?.heartbeatOnly,
      true,
      "a live heartbeat follows the replay at once (appended at Welcome)",
    );
    assert.ok(
      got.slice(firstLive).every((r) => !r.replayed),
      "then only live reports",
    );
    assert.equal(a.stats().connection.leaderId, "c2");
  });

  it("leader loses leadership (stream ends UNAVAILABLE): reconnects and resumes without loss", async () => {
    const s = await stub();
    const a = await agent([s.address]);
    await s.waitFor("reports", () => receivedSeqs(s.state, a.instanceId).length >= 5);
    s.endStreams();
    await s.waitFor("a second stream", () => a.stats().connection.connects >= 2);
    await sleep(300);
    await settle(s, a);
    assertExactlyOnce(s.state, a);
    assert.equal(s.state.duplicates, 0);
  });

  it("follows a Redirect from a follower to the leader", async () => {
    const leader = await stub({ leaderId: "c3" });
    const follower = await stub({ mode: { kind: "follower", leaderAddress: leader.address } });
    const a = await agent([follower.address]);
    await leader.waitFor(
      "reports at the leader",
      () => receivedSeqs(leader.state, a.instanceId).length >= 3,
    );
    assert.equal(follower.state.hellos.length, 1);
    assert.equal(receivedSeqs(follower.state, a.instanceId).length, 0);
    assert.equal(a.stats().connection.leaderId, "c3");
    assert.ok(a.stats().connection.redirects >= 1);
    assertExactlyOnce(leader.state, a);
  });

  it("a Redirect without a leader waits retry_after_ms and tries the next coordinator", async () => {
    const leader = await stub();
    const follower = await stub({
      mode: { kind: "follower", leaderAddress: "", retryAfterMs: 100 },
    });
    const a = await agent([follower.address, leader.address]);
    await leader.waitFor(
      "reports at the leader",
      () => receivedSeqs(leader.state, a.instanceId).length >= 3,
    );
    assert.ok(follower.state.hellos.length >= 1);
  });

  it("skips an unreachable coordinator and one that never answers Hello", async () => {
    const closed = await stub();
    const deadAddress = closed.address;
    await closed.close();
    // Accepts TCP and then says nothing: only the Hello timeout gets the agent out.
    const silent = net.createServer(() => {});
    const sockets = new Set<net.Socket>();
    silent.on("connection", (so) => sockets.add(so));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanups.push(() => {
      for (const so of sockets) so.destroy();
      silent.close();
    });
    const silentAddress = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const leader = await stub();
    const a = await agent([deadAddress, silentAddress, leader.address]);
    await leader.waitFor(
      "reports at the leader",
      () => receivedSeqs(leader.state, a.instanceId).length >= 3,
      10_000,
    );
    assert.ok(a.stats().connection.failures >= 2);
    // Everything sampled while looking for the leader arrives, in order, from 1.
    await settle(leader, a);
    assertExactlyOnce(leader.state, a);
  });

  it("moves on to the next coordinator at once; the backoff waits only after every address failed", async () => {
    const gone = await Promise.all([stub(), stub()]);
    const dead = gone.map((g) => g.address);
    for (const g of gone) await g.close();
    const leader = await stub();
    const t0 = performance.now();
    // A backoff wait (500–1000 ms, then 1000–2000) would show: only a whole
    // round of failures may wait.
    const a = await agent([...dead, leader.address], {
      extra: {
        coordinator: {
          addresses: [...dead, leader.address],
          backoffInitialMs: 1000,
          backoffMaxMs: 2000,
          helloTimeoutMs: 1000,
        },
      },
    });
    await leader.waitFor("welcomed", () => a.stats().connection.connects >= 1, 5000);
    const tookMs = performance.now() - t0;
    assert.ok(tookMs < 500, `welcomed ${Math.round(tookMs)} ms after start, past 2 dead nodes`);
    assert.equal(a.stats().connection.failures, 2);

    // Now every address fails: the lost leader counts as failed in the round
    // already, so after the ended stream's wait come two quick failures (the
    // dead ones), then the round's backoff wait (>= 1000 ms).
    const failuresBefore = a.stats().connection.failures;
    await leader.close();
    await leader.waitFor(
      "the first failure",
      () => a.stats().connection.failures > failuresBefore,
      3000,
    );
    await sleep(400);
    assert.equal(a.stats().connection.failures - failuresBefore, 2, "one round, then a wait");
  });

  it("attempts against unreachable coordinators leave nothing behind (no listener leak over days of retries)", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    let attempts = 0;
    const refused = {
      write: () => true,
      waitDrain: async () => {},
      messages: {
        [Symbol.asyncIterator]: () => ({
          next: () => Promise.reject(new Error("connect ECONNREFUSED")),
        }),
      },
      cancel() {},
    };
    const conn = createAgentConnection({
      addresses: ["127.0.0.1:1", "127.0.0.1:2"],
      transport: {
        connect: () => {
          attempts++;
          return refused;
        },
        close() {},
      },
      buffer: createReportBuffer({ bytesMax: 4096 }),
      hello: () => new Uint8Array(),
      backoff: createBackoff({ initialMs: 1, maxMs: 1 }, createRng(1)),
      helloTimeoutMs: 1000,
      ackTimeoutMs: 1000,
      replayBatchMax: 16,
      retryAfterMsMax: 10,
      clock: systemClock,
      logger: silentLogger,
      onWelcome() {},
      onDirective: async () => new Uint8Array(),
      sleep: () => new Promise((r) => setImmediate(r)),
    });
    conn.start();
    while (attempts < 200) await new Promise((r) => setTimeout(r, 5));
    await conn.stop();
    await new Promise((r) => setTimeout(r, 10));
    process.off("warning", onWarning);
    assert.deepEqual(warnings, []);
    assert.equal(conn.stats().failures >= 200, true);
  });

  it("a stream the leader refuses while leading (ABORTED) is retried there; a lost leader sends the agent to the next node", async () => {
    const first = await stub({ leaderId: "c1" });
    const second = await stub({ leaderId: "c2", term: 2n });
    const a = await agent([first.address, second.address]);
    await first.waitFor("reports", () => receivedSeqs(first.state, a.instanceId).length >= 3);
    first.endStreams(Code.Aborted);
    await first.waitFor("back at the same node", () => first.state.hellos.length >= 2);
    assert.equal(first.state.hellos[1]?.lostLeaderId, "", "it is up and leading: nothing lost");
    assert.equal(second.state.hellos.length, 0);
    await first.waitFor("streaming again", () => first.openStreams === 1);
    first.endStreams(Code.Unavailable);
    await second.waitFor("at the next node", () => second.state.hellos.length >= 1);
    assert.equal(second.state.hellos[0]?.lostLeaderId, "c1");
    assert.equal(first.state.hellos.length, 2, "the lost leader was not asked first");
  });

  it("Hello names the lost leader (ended stream, or unreachable redirect target) until the next Welcome", async () => {
    const old = await stub({ leaderId: "c1" });
    const oldAddress = old.address;
    const follower = await stub({
      mode: { kind: "follower", leaderAddress: oldAddress, leaderId: "c1" },
    });
    const next = await stub({ leaderId: "c2", term: 2n });
    const a = await agent([oldAddress, follower.address, next.address]);
    await old.waitFor("reports", () => receivedSeqs(old.state, a.instanceId).length >= 3);
    assert.equal(old.state.hellos[0]?.lostLeaderId, "");
    await old.close();
    // old is gone; the follower still sends agents there: both count as failed,
    // and the new leader hears which leader was lost.
    await next.waitFor("welcomed by c2", () => a.stats().connection.leaderId === "c2");
    assert.ok(follower.state.hellos.length >= 1);
    assert.equal(follower.state.hellos[0]?.lostLeaderId, "c1");
    assert.equal(next.state.hellos[0]?.lostLeaderId, "c1");
    const connects = a.stats().connection.connects;
    const followerHellos = follower.state.hellos.length;
    next.endStreams();
    await next.waitFor(
      "welcomed again",
      () => a.stats().connection.connects > connects && next.state.hellos.length >= 2,
    );
    // Leadership lost: the agent looks elsewhere first (old is dead, the
    // follower is asked next), naming the leader whose stream ended.
    assert.equal(
      follower.state.hellos[followerHellos]?.lostLeaderId,
      "c2",
      "the leader whose stream ended",
    );
    await settle(next, a);
    const got = next.state.received.get(a.instanceId)!;
    assert.deepEqual(
      got.map((r) => r.seq),
      range(1, got.length),
      "the new leader has every report from 1, once",
    );
    assert.equal(next.state.duplicates, 0);
  });

  it("applies Welcome overrides: sampling/heartbeat interval and max_report_bytes (trimmed, never split)", async () => {
    const many: AgentSample[] = Array.from({ length: 40 }, (_, i) => ({
      name: `cpu.load.core.${i}` as "cpu.load",
      value: i / 40,
    }));
    const s = await stub({
      welcome: { samplingIntervalMs: 300, heartbeatIntervalMs: 100, maxReportBytes: 300 },
    });
    const a = await agent([s.address], { samples: many });
    await s.waitFor(
      "reports",
      () => (s.state.received.get(a.instanceId) ?? []).filter((r) => !r.heartbeatOnly).length >= 3,
    );
    assert.equal(a.stats().samplingIntervalMs, 300);
    assert.equal(a.stats().heartbeatIntervalMs, 100);
    const full = s.state.received.get(a.instanceId)!.filter((r) => !r.heartbeatOnly);
    for (const r of full) {
      assert.ok(r.samples > 0 && r.samples < 40, `trimmed to fit: ${r.samples} samples`);
    }
    assert.ok(a.stats().connection.trimmedReports >= 3);
    assertExactlyOnce(s.state, a);
  });

  it("executes directives from the stream and answers each with a DirectiveResult", async () => {
    let drains = 0;
    const http: Server = createServer((req, res) => {
      drains++;
      req.resume();
      res.writeHead(202).end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => http.close(r)));
    const drainUrl = `http://127.0.0.1:${(http.address() as net.AddressInfo).port}/drain`;
    const s = await stub({ term: 7n });
    const a = await agent([s.address], { extra: { drainUrl } });
    await s.waitFor("stream", () => s.openStreams === 1);
    s.sendDirective({
      directiveId: "iv-1",
      epoch: 0n,
      kind: DirectiveKind.SET_SAMPLING_INTERVAL,
      intervalMs: 250,
    });
    s.sendDirective({
      directiveId: "iv-1",
      epoch: 0n,
      kind: DirectiveKind.SET_SAMPLING_INTERVAL,
      intervalMs: 250,
    });
    s.sendDirective({
      directiveId: "svc-1",
      epoch: 0n,
      kind: DirectiveKind.START_SERVICE,
      service: "sshd.service",
    });
    s.sendDirective({
      directiveId: "dr-1",
      epoch: 3n,
      streamId: "live-1",
      kind: DirectiveKind.DRAIN,
    });
    await s.waitFor("4 results", () => s.state.directiveResults.length >= 4);
    const byId = (id: string) => s.state.directiveResults.filter((r) => r.directiveId === id);
    assert.equal(byId("iv-1").length, 2);
    assert.ok(byId("iv-1").every((r) => r.ok && r.message === byId("iv-1")[0]!.message));
    assert.equal(a.stats().samplingIntervalMs, 250);
    assert.equal(byId("svc-1")[0]!.ok, false);
    assert.match(byId("svc-1")[0]!.message, /not in this agent's allowlist/);
    assert.equal(byId("dr-1")[0]!.ok, true, byId("dr-1")[0]!.message);
    assert.equal(byId("dr-1")[0]!.epoch, 3n);
    assert.equal(drains, 1);
  });

  it("agent restart with a data dir: same instance, sequence continues, nothing lost or duplicated", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "understudy-agent-data-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const state = createStubState();
    const s1 = await stub({ state });
    const a1 = await agent([s1.address], { dataDir });
    await s1.waitFor("reports", () => receivedSeqs(state, a1.instanceId).length >= 5);
    // Coordinator gone: the next reports exist only in the agent's buffer...
    await s1.close();
    await sleep(400);
    const issued = a1.stats().buffer.lastSeq;
    assert.ok(issued > (state.watermarks.get(a1.instanceId) ?? 0), "unacked reports are buffered");
    // ...when the agent restarts too.
    await a1.stop();
    agents.splice(agents.indexOf(a1), 1);
    const s2 = await stub({ state, listen: s1.address });
    const a2 = await agent([s2.address], { dataDir });
    assert.equal(a2.instanceId, a1.instanceId);
    await s2.waitFor(
      "reports after the restart",
      () => (state.watermarks.get(a2.instanceId) ?? 0) > issued + 3,
    );
    await settle(s2, a2);
    assertExactlyOnce(state, a2);
    assert.equal(state.duplicates, 0);
  });

  it("measures the link from acks: RTT and loss towards the coordinator", async () => {
    const s = await stub();
    const a = await agent([s.address]);
    await s.waitFor("reports with link samples", () =>
      (s.state.received.get(a.instanceId) ?? []).some((r) =>
        r.report.samples.some(
          (m) => m.name === "probe.rtt_ms" && m.labels.target === "coordinator",
        ),
      ),
    );
    const r = s.state.received.get(a.instanceId)!.find((x) => x.report.probes.length > 0)!;
    const link = r.report.probes.find((p) => p.kind === ProbeKind.COORDINATOR_RTT)!;
    assert.equal(link.target, "c1");
    assert.equal(link.ok, true);
    assert.ok(link.latencyMs >= 0 && link.latencyMs < 1000);
    const loss = r.report.samples.find((m) => m.name === "probe.loss_ratio")!;
    assert.equal(loss.value, 0);

    // A leader that stops acking: reports time out and count as lost.
    const quiet = await stub({ ackEvery: 1_000_000 });
    const b = await agent([quiet.address], {
      extra: {
        coordinator: {
          addresses: [quiet.address],
          ackTimeoutMs: 100,
          backoffInitialMs: 20,
          backoffMaxMs: 200,
        },
      },
    });
    await quiet.waitFor("loss reported", () =>
      (quiet.state.received.get(b.instanceId) ?? []).some((x) =>
        x.report.samples.some((m) => m.name === "probe.loss_ratio" && m.value > 0.5),
      ),
    );
  });

  it("runs as a real process: SIGTERM exits 0 and a restart resumes the same instance", async () => {
    const dir = mkdtempSync(join(tmpdir(), "understudy-agent-proc-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const s = await stub();
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      [
        "component: { id: enc-9, role: encoder }",
        `coordinator: { addresses: ["${s.address}"] }`,
        "sampling: { intervalMs: 200, heartbeatIntervalMs: 100 }",
        `dataDir: ${join(dir, "data")}`,
        "logLevel: warn",
      ].join("\n"),
    );
    const entry = join(import.meta.dirname, "../../agent/src/standalone.ts");
    const run = async (untilSeq: number) => {
      const child = spawn(process.execPath, ["--import", "tsx", entry, "--config", file], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      cleanups.push(() => child.kill("SIGKILL"));
      await s.waitFor(
        "reports from the agent process",
        () => {
          const id = s.state.hellos.at(-1)?.agentInstanceId ?? "";
          return (s.state.watermarks.get(id) ?? 0) >= untilSeq;
        },
        15_000,
      );
      const code = await new Promise<number | null>((resolve) => {
        child.once("exit", resolve);
        child.kill("SIGTERM");
      });
      assert.equal(code, 0, stderr);
      return s.state.hellos.at(-1)!;
    };
    const first = await run(5);
    const firstSeq = s.state.watermarks.get(first.agentInstanceId)!;
    const second = await run(firstSeq + 5);
    assert.equal(second.agentInstanceId, first.agentInstanceId);
    assert.ok(second.lastAckedSequence >= 5n, "the restarted agent remembers its acked watermark");
    const seqs = receivedSeqs(s.state, first.agentInstanceId);
    assert.deepEqual(seqs, range(1, seqs.length));
    // Real host metrics made it through.
    const names = new Set(
      s.state.received
        .get(first.agentInstanceId)!
        .flatMap((r) => r.report.samples.map((m) => m.name)),
    );
    for (const n of ["cpu.load", "mem.available_bytes", "fs.used_ratio", "net.rx_bytes_per_s"]) {
      assert.ok(names.has(n), `missing ${n}`);
    }
  });

  it("logs why it could not connect, naming the address", async () => {
    const lines: string[] = [];
    const closed = await stub();
    const dead = closed.address;
    await closed.close();
    await agent([dead], { logger: createLogger({}, { write: (l) => lines.push(l) }) });
    await sleep(300);
    const warn = lines.map((l) => JSON.parse(l)).find((r) => r.msg === "coordinator unreachable");
    assert.ok(warn, lines.join(""));
    assert.equal(warn.address, dead);
    assert.ok(warn.retryInMs <= 200);
  });
});
