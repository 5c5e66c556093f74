/**
 * Agent footprint: the real agent (`agent/src/standalone.ts`, same code as
 * `understudy agent`) runs as a separate process at 1 Hz with 250 ms
 * heartbeats, a data dir, a watched process and an HTTP probe, streaming to a
 * coordinator stub (real gRPC) in this process. Its CPU (utime+stime of
 * /proc/<pid>/stat, plus children it waited for) and RSS are measured over a
 * steady window after a warm-up, next to baselines measured in the same run:
 * an idle `node` process, and an idle `node --import tsx`.
 *
 * The agent runs three ways at once:
 * - via tsx (procfs sampler): how `understudy agent` runs today;
 * - bundled with esbuild and run by plain node (procfs sampler): the same
 *   code without tsx's module loader (a loader thread and transform caches,
 *   ~35 MB), i.e. what a deployed bundle costs. Skipped if esbuild (a tsx
 *   dependency) is not installed;
 * - via tsx with the systeminformation sampler, for comparison.
 *
 *   npm run bench:agent [-- --seconds 40 --warmup 8]
 *
 * Targets: <= 1% of one core and <= 80 MB RSS. Prints a table and writes
 * bench/results/agent.json.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { startCoordinatorStub } from "../test/agent/coordinator-stub.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const measureSeconds = arg("--seconds", 40);
const warmupSeconds = arg("--warmup", 8);
const targetCpuCores = 0.01;
const targetRssBytes = 80 * 1024 * 1024;
const userHz = 100;
const repo = join(import.meta.dirname, "..");

interface ProcSample {
  cpuTicks: number;
  childTicks: number;
  rssBytes: number;
}

function readProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) * 1024;
  // Fields 14-17 (utime, stime, cutime, cstime); f[0] is field 3.
  return {
    cpuTicks: Number(f[11]) + Number(f[12]),
    childTicks: Number(f[13]) + Number(f[14]),
    rssBytes: rss,
  };
}

interface Subject {
  name: string;
  child: ChildProcess;
  start?: ProcSample;
  end?: ProcSample;
  rss: number[];
}

function spawnSubject(name: string, args: string[]): Subject {
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ["ignore", "ignore", "pipe"] });
  spawned.push(child);
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr = (stderr + String(d)).slice(-4000);
  });
  child.once("exit", (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited early (${signal ?? code}):\n${stderr}\n`);
      process.exitCode = 1;
    }
  });
  return { name, child, rss: [] };
}

/** Bundles the agent into one ESM file with esbuild (installed with tsx); undefined if unavailable. */
function buildBundle(entry: string): string | undefined {
  const esbuild = join(repo, "node_modules/.bin/esbuild");
  if (!existsSync(esbuild)) return undefined;
  // In the repo's git-ignored tmp/, so the bundle finds ../package.json like common/cli.ts does.
  mkdirSync(join(repo, "tmp"), { recursive: true });
  const outfile = join(repo, "tmp", `bench-agent-${process.pid}.mjs`);
  const r = spawnSync(
    esbuild,
    [
      entry,
      "--bundle",
      "--platform=node",
      "--format=esm",
      "--target=node20",
      `--outfile=${outfile}`,
      "--log-level=error",
      // CommonJS dependencies (grpc-js, systeminformation) call require().
      "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) {
    process.stderr.write(`esbuild failed, skipping the bundled agent:\n${r.stderr}\n`);
    return undefined;
  }
  return outfile;
}

let stopping = false;
const spawned: ChildProcess[] = [];
const cleanup: (() => void)[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "understudy-bench-agent-"));
  const results = join(repo, "bench/results");
  mkdirSync(results, { recursive: true });
  const stub = await startCoordinatorStub();
  const http = createServer((_req, res) => res.writeHead(200).end("ok"));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const probeUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz`;

  const idle = spawnSubject("baseline: idle node", ["-e", "setInterval(() => {}, 1000)"]);
  const idleTsx = spawnSubject("baseline: idle node + tsx", [
    "--import",
    "tsx",
    "-e",
    "setInterval(() => {}, 1000)",
  ]);
  const agentConfig = (source: "procfs" | "systeminformation", id: string) => {
    const file = join(dir, `${id}.yaml`);
    writeFileSync(
      file,
      stringify({
        component: { id, role: "origin" },
        coordinator: { addresses: [stub.address] },
        sampling: { intervalMs: 1000, heartbeatIntervalMs: 250, source },
        probes: { http: [{ name: "origin", url: probeUrl }] },
        watch: { pid: idle.child.pid },
        dataDir: join(dir, `${id}-data`),
        logLevel: "warn",
      }),
    );
    return file;
  };
  const standalone = join(repo, "agent/src/standalone.ts");
  const agent = spawnSubject("agent via tsx (procfs)", [
    "--import",
    "tsx",
    standalone,
    "--config",
    agentConfig("procfs", "bench-procfs"),
  ]);
  const bundle = buildBundle(standalone);
  if (bundle) cleanup.push(() => rmSync(bundle, { force: true }));
  const agentBundled = bundle
    ? spawnSubject("agent bundled, plain node (procfs)", [
        bundle,
        "--config",
        agentConfig("procfs", "bench-bundle"),
      ])
    : undefined;
  const agentSi = spawnSubject("agent via tsx (systeminformation)", [
    "--import",
    "tsx",
    standalone,
    "--config",
    agentConfig("systeminformation", "bench-si"),
  ]);
  const subjects = [idle, idleTsx, agent, ...(agentBundled ? [agentBundled] : []), agentSi];

  process.stdout.write(
    `agent bench: warm-up ${warmupSeconds} s, then measuring ${measureSeconds} s at 1 Hz...\n`,
  );
  await sleep(warmupSeconds * 1000);
  const reportsAtStart = [...stub.state.received.values()].reduce((a, l) => a + l.length, 0);
  for (const s of subjects) s.start = readProc(s.child.pid!);
  const t0 = performance.now();
  for (let i = 0; i < measureSeconds; i++) {
    await sleep(1000);
    for (const s of subjects) s.rss.push(readProc(s.child.pid!).rssBytes);
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const s of subjects) s.end = readProc(s.child.pid!);
  const reportsAtEnd = [...stub.state.received.values()].reduce((a, l) => a + l.length, 0);

  stopping = true;
  for (const s of subjects) s.child.kill("SIGTERM");
  await Promise.all(
    subjects.map(
      (s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.once("exit", r))),
    ),
  );
  await stub.close();
  http.close();
  rmSync(dir, { recursive: true, force: true });

  const base = idle;
  const rows = subjects.map((s) => {
    const cpu = (s.end!.cpuTicks - s.start!.cpuTicks) / userHz / seconds;
    const children = (s.end!.childTicks - s.start!.childTicks) / userHz / seconds;
    const rssMean = s.rss.reduce((a, b) => a + b, 0) / s.rss.length;
    const rssMax = Math.max(...s.rss);
    return {
      name: s.name,
      cpuCores: cpu,
      childCpuCores: children,
      rssMeanBytes: rssMean,
      rssMaxBytes: rssMax,
    };
  });
  const baseRow = rows.find((r) => r.name === base.name)!;
  const out = rows.map((r) => ({
    ...r,
    cpuOverBaselineCores: r.cpuCores + r.childCpuCores - (baseRow.cpuCores + baseRow.childCpuCores),
    rssVsBaseline: r.rssMaxBytes / baseRow.rssMaxBytes,
  }));
  const agentCount = subjects.length - 2;
  const perAgentReports = (reportsAtEnd - reportsAtStart) / agentCount;
  const summary = {
    bench: "agent",
    measuredSeconds: seconds,
    warmupSeconds,
    node: process.version,
    samplingIntervalMs: 1000,
    heartbeatIntervalMs: 250,
    reportsPerAgentPerSecond: perAgentReports / seconds,
    stubGaps: stub.state.gaps,
    stubDuplicates: stub.state.duplicates,
    targets: { cpuCores: targetCpuCores, rssBytes: targetRssBytes },
    pass: Object.fromEntries(
      out
        .filter((r) => r.name.includes("(procfs)"))
        .map((r) => [
          r.name,
          {
            cpu: r.cpuCores + r.childCpuCores <= targetCpuCores,
            rss: r.rssMaxBytes <= targetRssBytes,
          },
        ]),
    ),
    results: out,
  };

  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  const pct = (c: number) => `${(c * 100).toFixed(2)}%`;
  const header = [
    "process",
    "CPU (of 1 core)",
    "children",
    "vs idle node",
    "RSS mean MB",
    "RSS max MB",
    "RSS x idle",
  ];
  const lines = out.map((r) => [
    r.name,
    pct(r.cpuCores),
    pct(r.childCpuCores),
    `${r.cpuOverBaselineCores >= 0 ? "+" : ""}${pct(r.cpuOverBaselineCores)}`,
    mb(r.rssMeanBytes),
    mb(r.rssMaxBytes),
    r.rssVsBaseline.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) =>
    cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  process.stdout.write(`\n${fmt(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const l of lines) process.stdout.write(`${fmt(l)}\n`);
  process.stdout.write(
    `\nreports per agent per second: ${summary.reportsPerAgentPerSecond.toFixed(2)} (1 report + heartbeats), stub gaps ${summary.stubGaps}, duplicates ${summary.stubDuplicates}\n` +
      `targets: CPU (self + children) <= ${pct(targetCpuCores)} of a core, RSS <= ${mb(targetRssBytes)} MB\n`,
  );
  for (const [name, p] of Object.entries(summary.pass)) {
    process.stdout.write(
      `  ${name}: CPU ${p.cpu ? "PASS" : "FAIL"}, RSS ${p.rss ? "PASS" : "FAIL"}\n`,
    );
  }
  writeFileSync(join(results, "agent.json"), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write("wrote bench/results/agent.json\n");
}

try {
  await main();
} finally {
  // Never leave a subject running, whatever failed.
  stopping = true;
  for (const c of spawned) if (c.exitCode === null) c.kill("SIGKILL");
  for (const f of cleanup) f();
}
