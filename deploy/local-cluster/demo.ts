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
import { HandoverService } from "../../proto/gen/understudy/api/v1/handover_service_pb.ts";
import { StreamService } from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { HandoverReason, HandoverState } from "../../proto/gen/understudy/common/v1/handover_pb.ts";
import { leaderOf, say, sleep, startCluster, startStream, waitUntil } from "./cluster.ts";

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
        // Ingest lag climbs evenly to 0.9 s: viewers of this origin are not
        // hurt yet, the predictor sees it within ~10 s, and the kill at the
        // end of the ramp is the failure it had to see coming.
        shape: "linear",
        rampMs: t.rampMs,
        ingestDelayMaxMs: 900,
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
        s: createGrpcClient(StreamService, c.api, { bearerToken: cluster.tokens.tokens.admin }),
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
    const hc = createGrpcClient(HandoverService, api, {
      bearerToken: cluster.tokens.tokens.reader,
    });
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
