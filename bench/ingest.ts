/**
 * bench:ingest — how many agents one coordinator core keeps up with.
 *
 * Processes (all real, spawned with `node --import tsx`):
 * - one coordinator ingest server (bench/ingest/server.ts "ours"): the real
 *   AgentService + failure detector + history files behind common/rpc-server.ts
 *   wired like the coordinator (grpc-js agents take the raw gRPC route
 *   `ingest.rawGrpc`; connect-node keeps `ingest.rpc` for gRPC-Web/Connect),
 *   with a fake single-node leader ClusterHandle;
 * - 4 agent processes (bench/ingest/agents.ts), each multiplexing a quarter
 *   of the agent streams over grpc-js (50 streams per HTTP/2 connection),
 *   every stream sending a ~30-sample Report at 1 Hz and, like the real
 *   agent, heartbeat-only Reports in between (`--heartbeat-ms`, default 250:
 *   3 per sample report, so 4 messages per agent per second);
 * - in the same run, a decode-only grpc-js baseline server
 *   (bench/ingest/server.ts "baseline") fed the same messages, the
 *   connect-node floor ("connect": the rpc-server's connect-node path with
 *   the frames and decoder, no ingest: what ours cost before the raw route) and, with --raw-floor, a minimal gRPC handler on
 *   node:http2 with the same decoder ("h2raw").
 *
 * The agent count ramps up (stages) within a total time budget. Per stage,
 * after a warm-up: sample reports, heartbeats and samples per second the
 * server sustained, its own CPU (process.cpuUsage, all threads: CPU time, not
 * wall time, so a busy machine lowers throughput but not the cost per
 * report) → sample reports per CPU-second (= agents at 1 Hz, with their
 * heartbeats, per core), ingest-to-window latency (agent send → report in
 * the windows) p50/p99, and RSS per agent (above the idle server's). "keeps
 * up" = received >= 97 % of sent and p99 < 1 s. The server runs the
 * production ingest limits.
 *
 *   npm run bench:ingest [-- --stages 2500,5000,10000,20000 --budget-s 120
 *                            --heartbeat-ms 250 --raw-floor --cpu-prof-dir DIR
 *                            --server-flags "--max-semi-space-size=64"]
 *
 * Prints a table (with the previous run's rows for before/after context) and
 * writes bench/results/ingest.json. `node --import tsx bench/ingest/summarize.ts
 * cpu DIR/<file>.cpuprofile` reads a profile.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const stagesOurs = arg("--stages", "2500,5000,10000,20000").split(",").map(Number);
/** Baseline stages; default: the first and the last stage our server was measured at. */
const baselineStagesArg = arg("--baseline-stages", "");
const budgetMs = Number(arg("--budget-s", "120")) * 1000;
const warmupMs = Number(arg("--warmup-s", "3")) * 1000;
const measureMs = Number(arg("--measure-s", "5")) * 1000;
const agentProcs = Number(arg("--agent-procs", "4"));
const streamsPerConn = Number(arg("--streams-per-conn", "50"));
/** Streams per agent process waiting for their Welcome at once (closed-loop ramp). */
const pendingMax = Number(arg("--pending-max", "500"));
/**
 * Heartbeat-only reports between sample reports, like real agents (default
 * 250 ms: 3 heartbeats per sample report). 0 = sample reports only (what
 * runs before 2026-11-21 measured).
 */
const heartbeatMs = Number(arg("--heartbeat-ms", "250"));
const TARGET_AGENTS_PER_CORE = 20_000;
const here = import.meta.dirname;
const started = performance.now();
const loadAvgAtStart = loadavg();
let phaseDeadline = started + budgetMs;
const left = () => phaseDeadline - performance.now();

type Msg = Record<string, number | string | boolean> & { type: string };

/** --cpu-prof-dir <dir>: the coordinator server writes a V8 CPU profile there. */
const cpuProfDir = arg("--cpu-prof-dir", "");
/** --raw-floor: also measure a minimal gRPC handler on node:http2 (mode h2raw). */
const rawFloor = process.argv.includes("--raw-floor");

/**
 * --server-flags "<node flags>": extra flags for the server processes, e.g.
 * "--max-semi-space-size=32" to see what a larger young generation does.
 */
const serverFlags = arg("--server-flags", "")
  .split(" ")
  .filter((f) => f !== "");

function spawnChild(file: string, args: string[], server = false): ChildProcess {
  return fork(join(here, "ingest", file), args, {
    execArgv: [
      "--import",
      "tsx",
      ...(server && cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : []),
      ...(server ? serverFlags : []),
    ],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

function nextMessage(child: ChildProcess, type: string, timeoutMs: number): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      child.off("message", on);
      reject(new Error(`no "${type}" from child ${child.pid} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (m: Msg) => {
      if (m.type !== type) return;
      clearTimeout(t);
      child.off("message", on);
      resolve(m);
    };
    child.on("message", on);
  });
}

async function ask(
  child: ChildProcess,
  type: string,
  extra: Record<string, unknown> = {},
  timeoutMs = 10_000,
  reply = type,
) {
  const p = nextMessage(child, reply, timeoutMs);
  child.send({ type, ...extra });
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StageResult {
  mode: Mode;
  agents: number;
  streamsOpen: number;
  seconds: number;
  /** Sample reports the agents sent per second. */
  sentPerS: number;
  /** Sample reports (not heartbeats) the server took in per second. */
  reportsPerS: number;
  heartbeatsPerS: number;
  /** All AgentMessages: sample reports + heartbeats. */
  messagesPerS: number;
  samplesPerS: number;
  serverCores: number;
  /** Sample reports per server CPU-second = agents (1 Hz, with their heartbeats) per core. */
  reportsPerCoreS: number;
  messagesPerCoreS: number;
  samplesPerCoreS: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  agentCores: number;
  serverRssMb: number;
  /** (RSS now − RSS of the idle server at start) / open streams. */
  rssKbPerAgent: number;
  keepsUp: boolean;
  streamErrors: number;
  detail: Record<string, unknown>;
}

const sum = (xs: Msg[], k: string) => xs.reduce((a, m) => a + Number(m[k] ?? 0), 0);

/**
 * ours: the real ingest; baseline: a decode-only grpc-js server (protobuf-es
 * decode of every message); connect: the floor of ours, the same rpc-server
 * and frames registration with the hand-written decoder and no ingest;
 * h2raw (with --raw-floor): a minimal gRPC handler on node:http2 with the
 * same decoder, what the transport could cost without connect-node.
 */
type Mode = "ours" | "baseline" | "connect" | "h2raw";

async function runPhase(mode: Mode, stages: number[]): Promise<StageResult[]> {
  const out: StageResult[] = [];
  const server = spawnChild("server.ts", [mode, String(heartbeatMs)], true);
  const ready = await nextMessage(server, "ready", 30_000);
  const address = String(ready.address);
  const idleRssBytes = Number(ready.rssBytes);
  const agents = Array.from({ length: agentProcs }, (_, i) =>
    spawnChild("agents.ts", [
      String(i),
      String(streamsPerConn),
      String(pendingMax),
      String(heartbeatMs),
    ]),
  );
  await Promise.all(agents.map((a) => nextMessage(a, "ready", 30_000)));
  try {
    // Welcomes per second seen in the previous stage: estimates the next ramp.
    let rampRatePerS = 1000;
    let open = 0;
    for (const count of stages) {
      // A stage needs ramp + warm-up + measurement; skip what no longer fits.
      const rampMs = ((count - open) / rampRatePerS) * 1000;
      if (left() < rampMs + warmupMs + measureMs + 2000) {
        process.stderr.write(`skipping ${mode} at ${count} agents: time budget used up\n`);
        break;
      }
      const per = Math.ceil(count / agentProcs);
      await Promise.all(
        agents.map((a) => ask(a, "target", { address, count: per }, 10_000, "opening")),
      );
      // Wait (bounded by the budget) for the Welcomes; measure what opened.
      const rampStart = performance.now();
      const welcomeDeadline =
        rampStart + Math.max(1000, Math.min(30_000, left() - warmupMs - measureMs - 1000));
      let welcomed = 0;
      while (performance.now() < welcomeDeadline) {
        const st = await Promise.all(agents.map((a) => ask(a, "stats")));
        welcomed = sum(st, "welcomed");
        if (welcomed >= per * agentProcs * 0.99) break;
        await sleep(250);
      }
      rampRatePerS = Math.max(100, ((welcomed - open) / (performance.now() - rampStart)) * 1000);
      open = welcomed;
      await sleep(warmupMs);
      const [s1, a1] = await Promise.all([
        ask(server, "stats"),
        Promise.all(agents.map((a) => ask(a, "stats"))),
      ]);
      await sleep(measureMs);
      const [s2, a2] = await Promise.all([
        ask(server, "stats"),
        Promise.all(agents.map((a) => ask(a, "stats"))),
      ]);
      const secs = (Number(s2.atMs) - Number(s1.atMs)) / 1000;
      const cpuS = (Number(s2.cpuUs) - Number(s1.cpuUs)) / 1e6;
      const reports = Number(s2.reports) - Number(s1.reports);
      const heartbeats = Number(s2.heartbeats) - Number(s1.heartbeats);
      const samples = Number(s2.samples) - Number(s1.samples);
      const sent = sum(a2, "sent") - sum(a1, "sent");
      const r: StageResult = {
        mode,
        agents: count,
        streamsOpen: welcomed,
        seconds: secs,
        sentPerS: sent / secs,
        reportsPerS: reports / secs,
        heartbeatsPerS: heartbeats / secs,
        messagesPerS: (reports + heartbeats) / secs,
        samplesPerS: samples / secs,
        serverCores: cpuS / secs,
        reportsPerCoreS: reports / cpuS,
        messagesPerCoreS: (reports + heartbeats) / cpuS,
        samplesPerCoreS: samples / cpuS,
        latencyP50Ms: Number(s2.latencyP50Ms),
        latencyP99Ms: Number(s2.latencyP99Ms),
        latencyMaxMs: Number(s2.latencyMaxMs),
        agentCores: (sum(a2, "cpuUs") - sum(a1, "cpuUs")) / 1e6 / secs,
        serverRssMb: Number(s2.rssBytes) / 1048576,
        rssKbPerAgent: (Number(s2.rssBytes) - idleRssBytes) / 1024 / Math.max(1, welcomed),
        keepsUp: false,
        streamErrors: sum(a2, "errors"),
        detail: Object.fromEntries(
          Object.entries(s2).filter(([k]) =>
            [
              "activeStreams",
              "duplicates",
              "rejected",
              "historyRecords",
              "historyDropped",
              "statusProposals",
              "stallMs",
              "down",
              "suspect",
              "heapUsedBytes",
              "externalBytes",
              "arrayBuffersBytes",
              "metricBytes",
            ].includes(k),
          ),
        ),
      };
      r.keepsUp =
        r.reportsPerS >= 0.97 * r.sentPerS &&
        r.sentPerS >= 0.97 * welcomed &&
        r.latencyP99Ms < 1000;
      out.push(r);
      process.stderr.write(
        `${mode} ${count} agents: ${r.reportsPerS.toFixed(0)} reports/s + ${r.heartbeatsPerS.toFixed(0)} heartbeats/s on ${r.serverCores.toFixed(2)} cores, p99 ${r.latencyP99Ms.toFixed(1)} ms\n`,
      );
      if (mode === "ours" && r.reportsPerS < 0.8 * r.sentPerS) {
        // Far past saturation: a growing backlog, more agents measure nothing new.
        break;
      }
    }
  } finally {
    await Promise.all(
      agents.map((a) => ask(a, "stop", {}, 5000, "stopped").catch(() => a.kill("SIGKILL"))),
    );
    server.send({ type: "stop" });
    await new Promise((r) => {
      const t = setTimeout(() => {
        server.kill("SIGKILL");
        r(undefined);
      }, 5000);
      server.once("exit", () => {
        clearTimeout(t);
        r(undefined);
      });
    });
    for (const a of agents) if (a.exitCode === null) a.kill("SIGKILL");
  }
  return out;
}

// Budget: our server's ramp ~50 %, the baseline up to ~70 %, the connect
// floor up to ~88 %, the in-process split the rest.
phaseDeadline = started + budgetMs * 0.5;
const ours = await runPhase("ours", stagesOurs);
phaseDeadline = started + budgetMs * 0.7;
const stagesBaseline =
  baselineStagesArg !== ""
    ? baselineStagesArg.split(",").map(Number)
    : [...new Set([ours[0]?.agents, ours[ours.length - 1]?.agents].filter((n) => n !== undefined))];
const baseline = await runPhase("baseline", stagesBaseline);
phaseDeadline = started + budgetMs * (rawFloor ? 0.8 : 0.88);
const floor = await runPhase("connect", stagesBaseline);
phaseDeadline = started + budgetMs * 0.9;
const raw = rawFloor ? await runPhase("h2raw", stagesBaseline) : [];

/** In-process cost split (no transport), see bench/ingest/inproc.ts: per-core rates by name. */
type InprocResult = Record<string, number | string>;
let inproc: InprocResult | undefined;
{
  const seconds = Math.max(
    1,
    Math.min(3, Math.floor((budgetMs - (performance.now() - started) - 4000) / 4000)),
  );
  const child = spawnChild("inproc.ts", ["2000", String(seconds)]);
  try {
    inproc = (await nextMessage(child, "inproc", 90_000)) as unknown as InprocResult;
  } catch (err) {
    process.stderr.write(`in-process split failed: ${String(err)}\n`);
    child.kill("SIGKILL");
  }
}

/** Series store heap per agent (bench/ingest/memory.ts): just started, and windows full. */
const memory: Record<string, number> = {};
for (const fill of ["fresh", "full"]) {
  const child = fork(join(here, "ingest", "memory.ts"), ["500", fill], {
    execArgv: ["--expose-gc", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    const m = await nextMessage(child, "memory", 60_000);
    memory[`${fill}HeapBytesPerAgent`] = Number(m.heapBytesPerComponent);
  } catch (err) {
    process.stderr.write(`memory measurement failed: ${String(err)}\n`);
    child.kill("SIGKILL");
  }
}
const { componentBytesMax, defaultAgentIngestLimits } = await import(
  "../coordinator/src/ingest/index.ts"
);
memory.boundBytesPerAgent = componentBytesMax(defaultAgentIngestLimits);
memory.componentsMax = defaultAgentIngestLimits.componentsMax;

const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "-");
const rows = [...ours, ...baseline, ...floor, ...raw];
const header = [
  "mode",
  "agents",
  "reports/s",
  "hb/s",
  "samples/s",
  "srv cores",
  "agents/core",
  "msgs/core-s",
  "samples/core-s",
  "p50 ms",
  "p99 ms",
  "rss MB",
  "KB/agent",
  "keeps up",
];
const resultsFile = join(here, "results", "ingest.json");
/** The previous run, for before/after context (its settings are printed with it). */
const previous = (() => {
  try {
    return JSON.parse(readFileSync(resultsFile, "utf8")) as {
      at?: string;
      commit?: string;
      host?: { loadAvgAtStart?: number[] };
      config?: { heartbeatMs?: number };
      stages?: Partial<StageResult>[];
    };
  } catch {
    return undefined;
  }
})();
const commit = (() => {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: here }).toString().trim();
  } catch {
    return "";
  }
})();
console.log(
  `load average at start: ${loadAvgAtStart.map((x) => x.toFixed(1)).join(" ")} on ${cpus().length} CPUs; ` +
    `agents send a ~30-sample report at 1 Hz${heartbeatMs > 0 ? ` and a heartbeat-only report every ${heartbeatMs} ms between reports (${fmt(1000 / heartbeatMs - 1)} per report, like the real agent's default)` : " and no heartbeats"}`,
);
console.log(header.join("\t"));
const line = (r: Partial<StageResult>, label = r.mode ?? "") =>
  [
    label,
    r.agents,
    fmt(r.reportsPerS ?? Number.NaN),
    fmt(r.heartbeatsPerS ?? Number.NaN),
    fmt(r.samplesPerS ?? Number.NaN),
    fmt(r.serverCores ?? Number.NaN, 2),
    fmt(r.reportsPerCoreS ?? Number.NaN),
    fmt(r.messagesPerCoreS ?? Number.NaN),
    fmt(r.samplesPerCoreS ?? Number.NaN),
    fmt(r.latencyP50Ms ?? Number.NaN, 1),
    fmt(r.latencyP99Ms ?? Number.NaN, 1),
    fmt(r.serverRssMb ?? Number.NaN),
    fmt(r.rssKbPerAgent ?? Number.NaN),
    r.keepsUp === undefined ? "-" : r.keepsUp ? "yes" : "no",
  ].join("\t");
for (const r of rows) console.log(line(r));
if (previous?.stages !== undefined) {
  const hb = previous.config?.heartbeatMs ?? 0;
  console.log(
    `previous run (${previous.at ?? "?"}${previous.commit ? `, ${previous.commit}` : ""}, load ${previous.host?.loadAvgAtStart?.map((x) => x.toFixed(1)).join(" ") ?? "?"}, heartbeats ${hb > 0 ? `every ${hb} ms` : "none"}${hb !== heartbeatMs ? ": other settings, not comparable row by row" : ""}):`,
  );
  for (const r of previous.stages) console.log(line(r, `prev ${r.mode ?? ""}`));
}

// Ratio against the baseline at the same agent count (CPU per sample report,
// same message mix).
const ratios = baseline.map((b) => {
  const o = ours.find((x) => x.agents === b.agents);
  return {
    agents: b.agents,
    oursReportsPerCoreS: o?.reportsPerCoreS ?? Number.NaN,
    baselineReportsPerCoreS: b.reportsPerCoreS,
    oursOverBaseline: o ? o.reportsPerCoreS / b.reportsPerCoreS : Number.NaN,
    connectFloorReportsPerCoreS:
      floor.find((x) => x.agents === b.agents)?.reportsPerCoreS ?? Number.NaN,
  };
});
for (const r of ratios) {
  const f = floor.find((x) => x.agents === r.agents);
  console.log(
    `ratio at ${r.agents} agents: ours ${fmt(r.oursReportsPerCoreS)} vs decode-only grpc-js ${fmt(r.baselineReportsPerCoreS)} agents/core = ${fmt(r.oursOverBaseline, 2)}x` +
      (f
        ? `; connect-node floor (no ingest) ${fmt(f.reportsPerCoreS)} = ${fmt(r.oursReportsPerCoreS / f.reportsPerCoreS, 2)}x of it`
        : ""),
  );
}
if (inproc !== undefined) {
  const us = (k: string) => {
    const v = Number(inproc?.[k]);
    return `${fmt(v)}/core-s (${fmt(1e6 / v, 1)} us)`;
  };
  const lines = Object.keys(inproc)
    .filter((k) => k.endsWith("PerCoreS"))
    .map((k) => `  ${k.replace(/PerCoreS$/, "")}: ${us(k)}`);
  console.log(`in-process, no transport (${inproc.streams} streams):\n${lines.join("\n")}`);
}
const kb = (b: number | undefined) => fmt((b ?? Number.NaN) / 1024);
console.log(
  `series store heap per agent (31 series, default limits): ${kb(memory.freshHeapBytesPerAgent)} KB just started, ` +
    `${kb(memory.fullHeapBytesPerAgent)} KB with full windows (1 h of 10 s buckets + 120 raw samples) ` +
    `= ${fmt(((memory.fullHeapBytesPerAgent ?? Number.NaN) * 20_000) / 2 ** 30, 1)} GB at 20,000 agents; ` +
    `bound ${kb(memory.boundBytesPerAgent)} KB per component (64 series) × componentsMax ${memory.componentsMax}`,
);
const keptUp = ours.filter((r) => r.keepsUp);
const best = keptUp[keptUp.length - 1];
const perCore = Math.max(...ours.map((r) => r.reportsPerCoreS));
const verdict = {
  targetAgentsPerCore: TARGET_AGENTS_PER_CORE,
  heartbeatMs,
  largestStageKeptUp: best?.agents ?? 0,
  measuredAgentsPerCoreAt1Hz: Math.round(perCore),
  meetsTarget: perCore >= TARGET_AGENTS_PER_CORE,
};
console.log(
  `one coordinator core: ~${verdict.measuredAgentsPerCoreAt1Hz} agents at 1 Hz${heartbeatMs > 0 ? ` with ${heartbeatMs} ms heartbeats` : ""} (target ${TARGET_AGENTS_PER_CORE}): ${verdict.meetsTarget ? "meets" : "falls short"}; largest stage kept up: ${verdict.largestStageKeptUp}`,
);

mkdirSync(join(here, "results"), { recursive: true });
writeFileSync(
  resultsFile,
  `${JSON.stringify(
    {
      bench: "ingest",
      at: new Date().toISOString(),
      commit,
      host: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? "",
        node: process.version,
        // Other work on the machine skews keeps-up and latency (not CPU per report).
        loadAvgAtStart,
        loadAvgAtEnd: loadavg(),
      },
      config: {
        stagesOurs,
        stagesBaseline,
        warmupMs,
        measureMs,
        agentProcs,
        streamsPerConn,
        serverFlags,
        reportHz: 1,
        heartbeatMs,
        samplesPerReport: 30,
      },
      stages: rows,
      ratios,
      inproc,
      memory,
      verdict,
      elapsedS: (performance.now() - started) / 1000,
    },
    null,
    2,
  )}\n`,
);
