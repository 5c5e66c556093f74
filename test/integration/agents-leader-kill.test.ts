/**
 * Issue #4 acceptance, real processes: three `understudy coordinator`
 * processes and five `understudy agent` processes (default reconnect,
 * keepalive and sampling settings, 1 s samples and 250 ms heartbeats). The
 * leader is SIGKILLed (or, second case, SIGSTOPped: a hung leader whose
 * connections stay open and silent, like a host that dropped off the
 * network); then
 *
 * - every agent is streaming to the new leader, and its reports flow there
 *   (first live report after the replay), within 2 s of the kill (within
 *   keepalive interval + timeout + 1 s = 3.5 s of the hang: only the
 *   agent's HTTP/2 keepalive can tell a silent leader from a quiet one), as
 *   the new leader's ComponentService.GetComponent agent_stream shows
 *   (connected_unix_ms, first_live_report_unix_ms; same host, same clock);
 * - no agent's component changes status (the new leader's failure detector
 *   hears from every agent before its grace runs out);
 * - by sequence numbers, the new leader holds every report of every agent
 *   exactly once: sequences 1..last contiguous (reports_ingested = last -
 *   first + 1, no gap), nothing received twice (duplicate_reports = 0: an
 *   agent that replays twice fails here), last at least what the old leader
 *   had before the kill, and no sample of those reports left out of the
 *   metric windows (dropped/late samples = 0);
 * - a scripted agent that does replay its buffer twice to the new leader
 *   (a control, through the same public AgentService) gets every duplicate
 *   dropped and counted: a leader that double-ingests fails here.
 *
 * The machine is shared with other real-process suites: the output prints
 * the load average, when the new leader was seen and every agent's times, so
 * a failure can be told apart from noise (a slow election shows in the new
 * leader's term start, a reconnect bug in one agent's log).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import { createSupervisor, type RoleProcess } from "../../deploy/local-cluster/supervisor.ts";
import { AgentService } from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import type {
  AgentStreamStatus,
  GetComponentResponse,
} from "../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { ComponentService } from "../../proto/gen/understudy/api/v1/component_service_pb.ts";
import { ComponentStatus } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import { raftOnly, sleep, TestCluster } from "../support/cluster.ts";
import { type AgentConn, helloFor, openAgentConn } from "../unit/ingest/agent-conn.ts";

const AGENTS = 5;
/** After a kill (the bound). */
const RESTREAM_MS_MAX = 2000;
/** After a hang: agent keepalive 1 s + 1.5 s (defaults), plus 1 s to re-stream. */
const RESTREAM_AFTER_HANG_MS_MAX = 3500;
const agentIds = Array.from({ length: AGENTS }, (_, i) => `agent-${i + 1}`);

interface View {
  streaming: boolean;
  instanceId: string;
  connectedMs: number;
  firstLiveMs: number;
  streamsWelcomed: number;
  first: number;
  last: number;
  ingested: number;
  replayed: number;
  duplicates: number;
  gaps: number;
  dropped: number;
  late: number;
}

const view = (a: AgentStreamStatus | undefined): View | undefined =>
  a === undefined
    ? undefined
    : {
        streaming: a.streaming,
        instanceId: a.agentInstanceId,
        connectedMs: Number(a.connectedUnixMs),
        firstLiveMs: Number(a.firstLiveReportUnixMs),
        streamsWelcomed: Number(a.streamsWelcomed),
        first: Number(a.firstSequence),
        last: Number(a.lastSequence),
        ingested: Number(a.reportsIngested),
        replayed: Number(a.replayedReports),
        duplicates: Number(a.duplicateReports),
        gaps: Number(a.gapReports),
        dropped: Number(a.droppedSamples),
        late: Number(a.lateSamples),
      };

/** Waits for an Ack at or above `seq` (skipping other messages). */
async function ackedUpTo(conn: AgentConn, seq: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`no Ack for sequence ${seq} within ${timeoutMs} ms`);
    const m = await conn.next(left);
    if (m.body.case === "ack" && Number(m.body.value.sequence) >= seq) return;
  }
}

describe("agents re-stream to a new leader when the leader is SIGKILLed (3 coordinators, 5 agents, real processes)", function () {
  this.timeout(90_000);
  let cluster: TestCluster | undefined;
  let supervisor: ReturnType<typeof createSupervisor> | undefined;
  const apis = new Map<string, GrpcClient<typeof ComponentService>>();
  const agents: RoleProcess[] = [];
  const conns: AgentConn[] = [];
  /** The control's AgentService clients, sending the cluster's agent token. */
  const agentClients: GrpcClient<typeof AgentService>[] = [];
  const agentClient = (c: TestCluster, id: string) => {
    const client = createGrpcClient(AgentService, c.node(id).apiAddress, c.clientOptions("agent"));
    agentClients.push(client);
    return client;
  };

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      if (cluster) process.stderr.write(cluster.logTails(25));
      for (const a of agents) process.stderr.write(`----- ${a.name} -----\n${a.tail(15)}\n`);
    }
    for (const c of conns.splice(0)) c.close();
    for (const c of agentClients.splice(0)) c.close();
    await supervisor?.stopAll();
    for (const c of apis.values()) c.close();
    apis.clear();
    await cluster?.stopAll();
    cluster = undefined;
    supervisor = undefined;
    agents.length = 0;
  });

  it("SIGKILLed leader: every agent streams to the new leader within 2 s; it holds every report exactly once", async () => {
    await leaderLoss("SIGKILL", RESTREAM_MS_MAX);
  });

  it("hung leader (SIGSTOP): every agent streams to the new leader within 3.5 s, nobody is marked down, every report held once", async () => {
    await leaderLoss("SIGSTOP", RESTREAM_AFTER_HANG_MS_MAX);
  });

  async function leaderLoss(signal: "SIGKILL" | "SIGSTOP", restreamMsMax: number): Promise<void> {
    cluster = await TestCluster.start({ name: "agents-kill", config: raftOnly });
    const c = cluster;
    await c.waitForLeader(15_000);
    for (const id of c.ids()) {
      apis.set(
        id,
        createGrpcClient(ComponentService, c.node(id).apiAddress, c.clientOptions("reader")),
      );
    }
    const addresses = c.ids().map((id) => c.node(id).apiAddress);
    const streamOn = async (nodeId: string, componentId: string, timeoutMs = 1000) =>
      view((await apis.get(nodeId)!.getComponent({ componentId }, { timeoutMs })).agentStream);

    supervisor = createSupervisor({ runDir: join(c.root, "agents") });
    const sup = supervisor;
    agents.push(
      ...(await Promise.all(
        agentIds.map((id, i) =>
          sup.start(
            id,
            "agent",
            {
              component: { id, role: i % 2 === 0 ? "packager" : "encoder", host: "127.0.0.1" },
              // Rotated, so agents start at different nodes (some at the leader,
              // some redirected) and lose different first addresses.
              coordinator: {
                addresses: [...addresses.slice(i % 3), ...addresses.slice(0, i % 3)],
                tokenFile: c.tokens?.files.agent,
              },
              sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
              dataDir: join(c.root, "agents", `${id}-data`),
              logLevel: "info",
            },
            { ready: "spawn" },
          ),
        ),
      )),
    );

    // The control: a scripted agent that will replay its buffer twice.
    const probeReports = 20;
    const sample = (seq: number) => ({ name: "cpu.load", value: seq, unit: "ratio", labels: {} });
    const t0Probe = Date.now() - probeReports * 100;
    const probeReport = (seq: number, replayed: boolean) => ({
      sequence: BigInt(seq),
      timestampUnixMs: BigInt(t0Probe + seq * 100),
      samples: [sample(seq)],
      replayed,
    });

    // All registered and streaming to the leader, with a few seconds of
    // reports; the control's reports acked by that leader. A machine busy
    // enough can move leadership on its own meanwhile: then start over with
    // the leader of the moment (a fresh control component each time).
    let oldLeader = "";
    let probeHello = helloFor("dup-probe-1", "probe-instance-1");
    const before = new Map<string, View>();
    const preparedBy = performance.now() + 45_000;
    for (let attempt = 1; oldLeader === ""; attempt++) {
      if (performance.now() > preparedBy) throw new Error("no stable leader to kill within 45 s");
      const l = await c.waitForLeader(10_000);
      const streamingBy = performance.now() + 30_000;
      let vs: (View | undefined)[] = [];
      while (performance.now() < streamingBy) {
        vs = await Promise.all(agentIds.map((id) => streamOn(l, id).catch(() => undefined)));
        if (vs.every((v) => v?.streaming && v.ingested > 0)) break;
        await sleep(200);
      }
      if (!vs.every((v) => v?.streaming && v.ingested > 0)) {
        throw new Error(`agents not all streaming to ${l}: ${JSON.stringify(vs)}`);
      }
      probeHello = helloFor(`dup-probe-${attempt}`, "probe-instance-1");
      const first = openAgentConn(c.node(l).apiAddress, agentClient(c, l));
      conns.push(first);
      first.hello(probeHello);
      if ((await first.next(5000)).body.case !== "welcome") continue;
      for (let seq = 1; seq <= probeReports; seq++) first.report(probeReport(seq, false));
      await ackedUpTo(first, probeReports, 5000);
      await sleep(3000);
      before.clear();
      for (const id of agentIds) {
        const v = await streamOn(l, id).catch(() => undefined);
        if (v?.streaming) before.set(id, v);
      }
      if (before.size === AGENTS && (await c.leader()) === l) oldLeader = l;
    }

    const load = loadavg().map((l) => l.toFixed(1));
    const killAt = Date.now();
    await c.kill(oldLeader, signal);

    // Watch from the survivors: who leads, and each agent's stream there.
    const survivors = c.ids().filter((id) => id !== oldLeader);
    let newLeader: string | undefined;
    let leaderSeenMs = 0;
    const after = new Map<string, View>();
    const watchBy = performance.now() + 15_000;
    while (performance.now() < watchBy) {
      if (newLeader === undefined) {
        newLeader = await c.leader({ exclude: [oldLeader] });
        if (newLeader !== undefined) leaderSeenMs = Date.now() - killAt;
      }
      if (newLeader !== undefined) {
        const nl = newLeader;
        await Promise.all(
          agentIds
            .filter((id) => !(after.get(id)?.firstLiveMs ?? 0))
            .map(async (id) => {
              const v = await streamOn(nl, id).catch(() => undefined);
              if (v) after.set(id, v);
            }),
        );
        if (agentIds.every((id) => (after.get(id)?.firstLiveMs ?? 0) > 0)) break;
      }
      await sleep(25);
    }
    assert.ok(newLeader, `no new leader among ${survivors.join(", ")} within 15 s`);
    assert.ok(survivors.includes(newLeader));

    // The control replays its whole buffer twice to the new leader, then goes live.
    const second = openAgentConn(c.node(newLeader).apiAddress, agentClient(c, newLeader));
    conns.push(second);
    second.hello(probeHello);
    const w = await second.next(5000);
    assert.equal(w.body.case, "welcome", `new leader answered ${w.body.case}`);
    assert.equal(w.body.case === "welcome" && Number(w.body.value.resumeAfterSequence), 0);
    for (let round = 0; round < 2; round++) {
      for (let seq = 1; seq <= probeReports; seq++) second.report(probeReport(seq, true));
    }
    const probeLive = 5;
    for (let seq = probeReports + 1; seq <= probeReports + probeLive; seq++) {
      second.report({
        sequence: BigInt(seq),
        timestampUnixMs: BigInt(Date.now()),
        samples: [sample(seq)],
      });
    }
    await ackedUpTo(second, probeReports + probeLive, 5000);

    // Let live reports run on the new leader for a while, then read the final state.
    await sleep(1500);
    const final = new Map<string, View>();
    for (const id of agentIds) final.set(id, (await streamOn(newLeader, id, 3000))!);
    const probe = (await streamOn(newLeader, probeHello.componentId!, 3000))!;

    const rows = agentIds.map((id) => {
      const a = after.get(id);
      const f = final.get(id)!;
      return {
        agent: id,
        connectedMs: a?.connectedMs ? a.connectedMs - killAt : -1,
        reportsFlowMs: a?.firstLiveMs ? a.firstLiveMs - killAt : -1,
        beforeKill: `1..${before.get(id)!.last}`,
        newLeader: `${f.first}..${f.last}`,
        ingested: f.ingested,
        replayed: f.replayed,
        dup: f.duplicates,
        gaps: f.gaps,
        streams: f.streamsWelcomed,
      };
    });
    // When the new leader took office, from its own log: the Raft election's
    // share of each agent's time (slow elections are load, not agents).
    let electedMs = -1;
    for (const line of readFileSync(c.node(newLeader).stderrFile, "utf8").split("\n")) {
      if (!line.includes('"leadership"') || !line.includes('"isLeader":true')) continue;
      const at = Date.parse(String((JSON.parse(line) as { ts?: string }).ts)) - killAt;
      if (at >= 0) {
        electedMs = at;
        break;
      }
    }
    console.log(
      `    ${signal} leader ${oldLeader} (load average ${load.join(" ")}); ${newLeader} elected after ${electedMs} ms (seen by the test after ${leaderSeenMs} ms)`,
    );
    console.table(rows);
    // Each agent's own account of the reconnect (its log, ms after the kill).
    const nodeOf = new Map(c.ids().map((id) => [c.node(id).apiAddress, id]));
    const paths = agents.map((a) => {
      const steps: string[] = [];
      for (const line of readFileSync(a.logFile, "utf8").split("\n")) {
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const at = Date.parse(String(rec.ts)) - killAt;
        if (!(at >= -50) || at > 5000) continue;
        const addr = (k: string) => nodeOf.get(String(rec[k])) ?? String(rec[k]);
        if (rec.msg === "coordinator stream ended" || rec.msg === "coordinator unreachable")
          steps.push(
            `+${at} ${rec.msg === "coordinator unreachable" ? "unreachable" : "ended"} ${addr("address")}, retry in ${rec.retryInMs}`,
          );
        else if (rec.msg === "redirected")
          steps.push(`+${at} ${addr("from")} redirects to ${addr("to") || "-"} (${rec.reason})`);
        else if (rec.msg === "connected to coordinator leader")
          steps.push(`+${at} welcomed by ${rec.leaderId}`);
      }
      return `${a.name}: ${steps.join("; ")}`;
    });
    console.log(`    ${paths.join("\n    ")}`);
    const diag = () =>
      `election took ${electedMs} ms of it (load average ${load.join(" ")})\n${paths.join("\n")}`;

    for (const r of rows) {
      assert.ok(
        r.connectedMs >= 0 && r.connectedMs <= restreamMsMax,
        `${r.agent}: stream to the new leader after ${r.connectedMs} ms (max ${restreamMsMax})\n${diag()}`,
      );
      assert.ok(
        r.reportsFlowMs >= 0 && r.reportsFlowMs <= restreamMsMax,
        `${r.agent}: live reports on the new leader after ${r.reportsFlowMs} ms (max ${restreamMsMax})\n${diag()}`,
      );
    }
    for (const id of agentIds) {
      const b = before.get(id)!;
      const f = final.get(id)!;
      const what: string = `${id} on the new leader ${newLeader}: ${JSON.stringify(f)}`;
      assert.equal(f.instanceId, b.instanceId, `${what}: same agent instance as before the kill`);
      assert.equal(f.streaming, true, what);
      assert.equal(f.streamsWelcomed, 1, `${what}: one stream, no flapping`);
      assert.equal(f.first, 1, `${what}: holds the agent's reports from sequence 1`);
      assert.ok(f.last > b.last, `${what}: holds more than the old leader had (${b.last})`);
      assert.equal(f.gaps, 0, `${what}: no sequence skipped`);
      assert.equal(f.duplicates, 0, `${what}: nothing received twice`);
      assert.equal(f.ingested, f.last - f.first + 1, `${what}: every sequence ingested once`);
      assert.ok(f.replayed >= b.last, `${what}: the replay covered the old leader's reports`);
      assert.equal(f.dropped + f.late, 0, `${what}: every sample of those reports is held`);
    }
    const total = probeReports + probeLive;
    assert.deepEqual(
      {
        first: probe.first,
        last: probe.last,
        ingested: probe.ingested,
        duplicates: probe.duplicates,
        gaps: probe.gaps,
        late: probe.late,
      },
      { first: 1, last: total, ingested: total, duplicates: probeReports, gaps: 0, late: 0 },
      "the control's second replay is dropped and counted, not ingested",
    );
    for (const id of agentIds) {
      const got: GetComponentResponse = await apis
        .get(newLeader)!
        .getComponent({ componentId: id });
      const comp = got.component!;
      assert.equal(comp.status, ComponentStatus.HEALTHY, `${id}: ${comp.statusReason}`);
      assert.ok(
        Number(comp.statusChangedUnixMs) < killAt,
        `${id}: status changed at +${Number(comp.statusChangedUnixMs) - killAt} ms (${comp.statusReason})`,
      );
    }
  }
});
