/**
 * `npm run demo` / `understudy demo`: the local demo cluster. On loopback it
 * starts a real nats-server, three coordinators, three packager-nodes and two
 * sources (the encoder pool), each with its agent, plus viewers using the
 * client SDK. It then degrades the primary packager gradually (fault
 * injection behind the packagers' explicit --dev-fault-injection flag), kills
 * it, kills the coordinator leader, and reports what viewers saw. It runs the
 * scenario twice — predictive and reactive (prediction off) — and prints them
 * side by side.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runViewers, type ViewersReport } from "../../client-sdk/src/node-viewers.ts";
import { createGrpcClient } from "../../common/grpc-client.ts";
import { startNatsServer } from "../../common/nats-server.ts";
import { ChainService } from "../../proto/gen/understudy/api/v1/chain_service_pb.ts";
import { ClusterService, NodeRole } from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { StreamService } from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { LatencyMode } from "../../proto/gen/understudy/common/v1/stream_pb.ts";
import { createSupervisor, freePorts, type RoleProcess, type Supervisor } from "./supervisor.ts";

const usage = `Usage: understudy demo [--quick] [--json FILE] [--viewers N] [--keep]

Runs the local demo cluster twice (predictive, then reactive) and prints what
viewers saw side by side.

  --quick       a short run (used in CI)
  --json FILE   also write the report as JSON
  --viewers N   viewers per run (default 50)
  --keep        keep the run directory (configs and logs) afterwards
  --only MODE   run one scenario: predictive or reactive
`;

export interface ScenarioReport {
  readonly mode: "predictive" | "reactive";
  readonly viewers: number;
  readonly stallsTotal: number;
  readonly viewersWithStalls: number;
  readonly stallMsPerViewer: { mean: number; max: number };
  readonly switchesTotal: number;
  readonly handover: {
    reason: string;
    state: string;
    leadTimeMs: number | null;
    switchMsn: number;
  } | null;
  readonly noticeLatencyMs: { p50: number; p99: number; samples: number };
  readonly leaderFailoverMs: number | null;
  readonly continuityViolations: number;
  readonly errors: string[];
}

interface Timing {
  rampMs: number;
  watchMs: number;
  afterKillMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function say(msg: string) {
  process.stdout.write(`[demo ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(100);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (${(lastErr as Error).message})` : ""}`,
  );
}

interface Cluster {
  sup: Supervisor;
  coordinators: { id: string; api: string; proc: RoleProcess }[];
  packagers: { id: string; http: string; proc: RoleProcess }[];
  natsUrl: string;
  stop(): Promise<void>;
}

export async function startCluster(runDir: string, predictive: boolean): Promise<Cluster> {
  const nats = await startNatsServer();
  const sup = createSupervisor({ runDir });
  const ports = await freePorts(3 + 3 + 3 + 3);
  const coord = [0, 1, 2].map((i) => ({
    id: `c${i + 1}`,
    api: `127.0.0.1:${ports[i]}`,
    peer: `127.0.0.1:${ports[3 + i]}`,
  }));
  const bootstrap = coord.map((c) => ({ id: c.id, peerAddress: c.peer, apiAddress: c.api }));
  const coordinators = await Promise.all(
    coord.map(async (c) => ({
      id: c.id,
      api: c.api,
      proc: await sup.start(
        c.id,
        "coordinator",
        {
          nodeId: c.id,
          dataDir: join(runDir, `${c.id}-data`),
          peerListen: c.peer,
          apiListen: c.api,
          bootstrap,
          nats: { servers: [nats.url] },
          placement: { intervalMs: 500 },
          predict: { enabled: predictive },
          handover: { stepDeadlineMs: 8000, switchAheadSegments: 2 },
        },
        { ready: /"event":"listening"/ },
      ),
    })),
  );
  say(`coordinators ${coord.map((c) => `${c.id}@${c.api}`).join(" ")}; nats ${nats.url}`);
  const addresses = coord.map((c) => c.api);
  const zones = ["z1", "z2", "z3"];
  const packagers = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const id = `pkg-${i + 1}`;
      const http = `127.0.0.1:${ports[6 + i]}`;
      const control = `127.0.0.1:${ports[9 + i]}`;
      const proc = await sup.start(
        id,
        "packager",
        { nodeId: id, mode: "origin", listen: http, control, log: { level: "warn" } },
        { ready: /listening on/, extraArgs: ["--dev-fault-injection"] },
      );
      await sup.start(
        `agent-${id}`,
        "agent",
        {
          component: {
            id,
            role: "packager",
            labels: { region: "local", zone: zones[i] },
            capacity: { maxStreams: 10 },
            baseUrl: `http://${http}`,
            controlAddress: control,
          },
          coordinator: { addresses },
          sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
          probes: { packagerStatusUrl: `http://${http}/status` },
          // The agent watches the packager process: if it dies while the
          // agent lives, the coordinator learns it from proc.up.
          watch: { pid: proc.pid() },
          logLevel: "warn",
        },
        { ready: "spawn" },
      );
      return { id, http: `http://${http}`, proc };
    }),
  );
  say(`packagers ${packagers.map((p) => `${p.id}@${p.http}`).join(" ")}`);
  for (const e of ["enc-1", "enc-2"]) {
    await sup.start(
      `agent-${e}`,
      "agent",
      {
        component: { id: e, role: "encoder", labels: { region: "local", zone: "z1" } },
        coordinator: { addresses },
        sampling: { intervalMs: 1000, heartbeatIntervalMs: 250 },
        logLevel: "warn",
      },
      { ready: "spawn" },
    );
  }
  return {
    sup,
    coordinators,
    packagers,
    natsUrl: nats.url,
    async stop() {
      await sup.stopAll();
      await nats.stop();
    },
  };
}

export async function leaderOf(cluster: Cluster): Promise<{ id: string; api: string } | undefined> {
  for (const c of cluster.coordinators) {
    if (!c.proc.running()) continue;
    const client = createGrpcClient(ClusterService, c.api);
    try {
      const st = await client.getStatus({}, { timeoutMs: 500 });
      if (st.node?.role === NodeRole.LEADER) return { id: c.id, api: c.api };
    } catch {
      // down or stopped
    } finally {
      client.close();
    }
  }
  return undefined;
}

/** Creates the demo stream, starts the encoder pool, waits until a packager serves it. */
export async function startStream(cluster: Cluster) {
  const leader = await waitUntil("a coordinator leader", 15_000, () => leaderOf(cluster));
  say(`leader is ${leader.id}`);
  const origin = Math.floor(Date.now() / 2000) * 2000;
  const spec = {
    id: "demo",
    displayName: "understudy demo",
    renditions: [
      {
        id: "360p",
        bandwidthBps: 709_684n,
        width: 640,
        height: 360,
        frameRate: 30,
        codecs: "avc1.42c01e,mp4a.40.2",
      },
      {
        id: "180p",
        bandwidthBps: 292_064n,
        width: 320,
        height: 180,
        frameRate: 30,
        codecs: "avc1.42c01e,mp4a.40.2",
      },
    ],
    shardDurationMs: 500,
    segmentPolicy: {
      segmentDurationTargetMs: 2000,
      segmentDurationMinMs: 500,
      segmentDurationMaxMs: 4000,
      partDurationMs: 500,
    },
    replicationFactor: 2,
    latencyMode: LatencyMode.LOW_LATENCY,
    placement: { zoneAntiAffinity: true },
    timelineOriginUnixMs: BigInt(origin),
  };
  // A write can meet a leader change (the machine is busy starting every
  // process): retry on whichever node leads, with the same request id so it
  // applies once.
  await waitUntil("the stream to be created", 20_000, async () => {
    const l = await leaderOf(cluster);
    if (!l) return undefined;
    const c = createGrpcClient(StreamService, l.api);
    try {
      await c.createStream({ spec, requestId: "demo-create" }, { timeoutMs: 5000 });
      return true;
    } finally {
      c.close();
    }
  });
  const addresses = cluster.coordinators.map((c) => c.api);
  for (const [i, e] of ["enc-1", "enc-2"].entries()) {
    await cluster.sup.start(
      e,
      "source",
      { streamId: "demo", encoderId: e, coordinator: { addresses }, logLevel: "warn" },
      { ready: "spawn" },
    );
    void i;
  }
  // The primary is whoever placement chose (the chain graph names it); wait
  // until it serves playlists.
  const primary = await waitUntil("the stream to be placed and served", 30_000, async () => {
    const l = (await leaderOf(cluster)) ?? leader;
    const c = createGrpcClient(ChainService, l.api);
    let primaryId: string | undefined;
    try {
      const g = (await c.getChain({ streamId: "demo" }, { timeoutMs: 1000 })).graph;
      primaryId = g?.assignments.find(
        (a) => a.renditionId === "360p" && a.lastMsn === undefined,
      )?.primaryPackagerId;
    } finally {
      c.close();
    }
    const p = cluster.packagers.find((x) => x.id === primaryId);
    if (!p) return undefined;
    const r = await fetch(`${p.http}/live/demo/360p/index.m3u8`).catch(() => undefined);
    return r?.ok && (await r.text()).includes("#EXTINF") ? p : undefined;
  });
  return { leader, spec, addresses, primary };
}

async function runScenario(
  mode: "predictive" | "reactive",
  viewers: number,
  t: Timing,
  keep: boolean,
): Promise<ScenarioReport> {
  const runDir = mkdtempSync(join(tmpdir(), `understudy-demo-${mode}-`));
  say(`— ${mode} run — (logs in ${runDir})`);
  const cluster = await startCluster(runDir, mode === "predictive");
  const errors: string[] = [];
  try {
    const { spec, addresses, primary } = await startStream(cluster);
    say(`stream "demo" is live; ${primary.id} serves it`);
    const coordinatorUrls = addresses.map((a) => `http://${a}`);
    const viewing = runViewers({
      streamId: "demo",
      count: viewers,
      originUrl: `${primary.http}/live/demo/master.m3u8`,
      alternateOrigins: cluster.packagers.filter((p) => p !== primary).map((p) => p.http),
      coordinatorUrls,
      natsServers: [cluster.natsUrl],
      durationMs: t.rampMs + t.watchMs + t.afterKillMs + 8000,
    });
    await sleep(4000);
    say(`${viewers} viewers watching; degrading ${primary.id} gradually`);
    await fetch(`${primary.http}/dev/fault`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        kind: "degrade",
        shape: "exponential",
        rampMs: t.rampMs,
        ingestDelayMaxMs: 5000,
      }),
    }).then((r) => {
      if (!r.ok) errors.push(`fault injection refused: ${r.status}`);
    });
    await sleep(t.rampMs);
    const killedAt = Date.now();
    say(`killing ${primary.id} (SIGKILL)`);
    await primary.proc.kill();
    await sleep(t.watchMs);
    const before = await leaderOf(cluster);
    let failoverMs: number | null = null;
    if (before) {
      const victim = cluster.coordinators.find((c) => c.id === before.id);
      say(`killing coordinator leader ${before.id} (SIGKILL)`);
      const t0 = Date.now();
      await victim?.proc.kill();
      // Failover = SIGKILL until a new leader commits a write.
      const survivors = cluster.coordinators.filter((c) => c.id !== before.id);
      const clients = survivors.map((c) => ({
        id: c.id,
        s: createGrpcClient(StreamService, c.api),
      }));
      let attempt = 0;
      const next = await waitUntil("a new leader to commit", 15_000, async () => {
        attempt++;
        const won = await Promise.any(
          clients.map(async (c) => {
            await c.s.updateStream(
              {
                spec: { ...spec, displayName: `failover probe ${attempt}` },
                requestId: `failover-${attempt}-${c.id}`,
              },
              { timeoutMs: 1000 },
            );
            return c.id;
          }),
        ).catch(() => undefined);
        return won;
      });
      for (const c of clients) c.s.close();
      failoverMs = Date.now() - t0;
      say(`${next} committed a write ${failoverMs} ms after the leader was killed`);
    }
    await sleep(t.afterKillMs);
    const report: ViewersReport = await viewing;
    const api = (await leaderOf(cluster))?.api ?? addresses[0]!;
    const hc = createGrpcClient(HandoverService, api);
    const hs =
      (await hc.listHandovers({ streamId: "demo", includeFinished: true }).catch(() => undefined))
        ?.handovers ?? [];
    hc.close();
    const h = hs[0];
    // Lead time: how long before the primary died the handover began (negative: after).
    const begunAt = h ? Number(h.createdUnixMs) : 0;
    const stalls = report.viewers.map((v) => v.stallMs);
    return {
      mode,
      viewers,
      stallsTotal: report.summary.stallsTotal,
      viewersWithStalls: report.summary.viewersWithStalls,
      stallMsPerViewer: {
        mean: stalls.reduce((a, b) => a + b, 0) / Math.max(1, stalls.length),
        max: Math.max(0, ...stalls),
      },
      switchesTotal: report.summary.switchesTotal,
      handover: h
        ? {
            reason: HandoverReason[h.reason] ?? String(h.reason),
            state: HandoverState[h.state] ?? String(h.state),
            leadTimeMs: begunAt ? killedAt - begunAt : null,
            switchMsn: Number(h.switchMsn),
          }
        : null,
      noticeLatencyMs: {
        p50: report.summary.noticeLatencyMs.p50,
        p99: report.summary.noticeLatencyMs.p99,
        samples: report.summary.noticeLatencyMs.samples,
      },
      leaderFailoverMs: failoverMs,
      continuityViolations: report.summary.continuityViolations,
      errors,
    };
  } finally {
    await cluster.stop();
    if (!keep) rmSync(runDir, { recursive: true, force: true });
  }
}

function table(rows: ScenarioReport[]): string {
  const f = (n: number | null | undefined, d = 0) =>
    n === null || n === undefined ? "—" : n.toFixed(d);
  const lines: [string, ...string[]][] = [
    ["", ...rows.map((r) => r.mode)],
    ["viewers", ...rows.map((r) => String(r.viewers))],
    ["stalls (total)", ...rows.map((r) => String(r.stallsTotal))],
    ["viewers that stalled", ...rows.map((r) => String(r.viewersWithStalls))],
    [
      "stall ms per viewer (mean / max)",
      ...rows.map((r) => `${f(r.stallMsPerViewer.mean)} / ${f(r.stallMsPerViewer.max)}`),
    ],
    ["origin switches", ...rows.map((r) => String(r.switchesTotal))],
    [
      "handover",
      ...rows.map((r) => (r.handover ? `${r.handover.reason} → ${r.handover.state}` : "none")),
    ],
    ["handover lead time (ms, before the kill)", ...rows.map((r) => f(r.handover?.leadTimeMs))],
    [
      "notice latency p50 / p99 (ms)",
      ...rows.map((r) => `${f(r.noticeLatencyMs.p50, 1)} / ${f(r.noticeLatencyMs.p99, 1)}`),
    ],
    ["leader failover (ms)", ...rows.map((r) => f(r.leaderFailoverMs))],
    ["MSN continuity violations", ...rows.map((r) => String(r.continuityViolations))],
  ];
  const w = lines[0].map((_, i) => Math.max(...lines.map((l) => (l[i] ?? "").length)));
  return lines.map((l) => l.map((c, i) => c.padEnd(w[i] ?? 0)).join("  ")).join("\n");
}

const demoOptions = {
  quick: { type: "boolean" },
  json: { type: "string" },
  viewers: { type: "string" },
  keep: { type: "boolean" },
  only: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: typeof demoOptions }>>;
  try {
    args = parseArgs({ args: argv, options: demoOptions, strict: true });
  } catch (err) {
    process.stderr.write(`understudy demo: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const viewers = args.values.viewers === undefined ? 50 : Number(args.values.viewers);
  if (!Number.isInteger(viewers) || viewers < 1 || viewers > 2000) {
    process.stderr.write(
      `understudy demo: --viewers must be an integer in 1..2000, got ${args.values.viewers}\n`,
    );
    return 2;
  }
  const timing: Timing = args.values.quick
    ? { rampMs: 20_000, watchMs: 6000, afterKillMs: 6000 }
    : { rampMs: 45_000, watchMs: 10_000, afterKillMs: 10_000 };
  const results: ScenarioReport[] = [];
  const only = args.values.only;
  if (only !== undefined && only !== "predictive" && only !== "reactive") {
    process.stderr.write(`understudy demo: --only must be predictive or reactive, got ${only}\n`);
    return 2;
  }
  for (const mode of ["predictive", "reactive"] as const) {
    if (only && mode !== only) continue;
    results.push(await runScenario(mode, viewers, timing, !!args.values.keep));
  }
  process.stdout.write(`\n${table(results)}\n`);
  if (args.values.json)
    writeFileSync(args.values.json, `${JSON.stringify({ scenarios: results }, null, 2)}\n`);
  const predictive = results.find((r) => r.mode === "predictive");
  if (predictive && predictive.stallsTotal > 0) {
    process.stdout.write(
      `\npredictive run: ${predictive.stallsTotal} stall(s) — the promise is zero\n`,
    );
    return 1;
  }
  return 0;
}
