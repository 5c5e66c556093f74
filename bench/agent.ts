/**
 * bench:agent — the host agent's own footprint at 1 Hz, run the way it is
 * developed (tsx) and the way hosts run it (the bundle), in the same run.
 *
 * Builds the bundle with common/bin/build-agent.mjs into a temp dir outside
 * the repository (no node_modules, no package.json beside it, as on a host),
 * then runs, side by side, each as its own process:
 *   - baselines: an idle `node`, and an idle `node --import tsx`;
 *   - the agent via tsx: `node common/bin/understudy.mjs agent` (development);
 *   - the bundle exactly as deploy/systemd/understudy-agent.service runs it
 *     (`node --enable-source-maps understudy-agent.mjs`), and without source maps;
 *   - the bundle with `sampling.source: systeminformation` (the portable
 *     sampler; for comparison, it is not the Linux default).
 * Every agent samples at 1 Hz with 250 ms heartbeats, watches a process,
 * probes an HTTP endpoint, persists to a data dir, and streams to a real gRPC
 * receiver in this process (test/agent/coordinator-stub.ts, connect-node over
 * HTTP/2, acking every report). Half-way through the warm-up the receiver
 * ends every stream once, as a leader change does, so the agents have been
 * through a reconnect (and the source map through its first use).
 *
 * After a warm-up, each process is read once a second from /proc:
 * CPU = utime+stime (+ cutime+cstime of children it waited for) of
 * /proc/<pid>/stat over the window, as a share of one core, plus the busiest
 * second; memory = VmRSS (mean, max) and VmHWM (peak RSS since exec, which
 * includes start-up) of /proc/<pid>/status.
 *
 *   npm run bench:agent [-- --seconds 60 --warmup 10]
 *
 * Targets per agent: CPU <= 1% of one core, RSS <= 80 MB (judged on the
 * window's max VmRSS, and separately on VmHWM). Prints a table and writes
 * bench/results/agent.json. Exit 1 if an agent stopped or streamed nothing,
 * since then the numbers mean nothing; a missed target is reported, not an error.
 * CPU on a shared machine is noisy (±0.2% between runs); RSS is stable.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { startCoordinatorStub } from "../test/agent/coordinator-stub.ts";

function numberArg(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min || v > max) {
    process.stderr.write(`bench:agent: ${name} must be an integer in ${min}..${max}\n`);
    process.exit(2);
  }
  return v;
}
const measureSeconds = numberArg("--seconds", 60, 5, 3600);
const warmupSeconds = numberArg("--warmup", 10, 3, 600);
const targetCpuCores = 0.01;
const targetRssBytes = 80 * 1024 * 1024;
const samplingIntervalMs = 1000;
const heartbeatIntervalMs = 250;
const repo = join(import.meta.dirname, "..");
const clockTicksPerSecond = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const v = Number(r.stdout?.trim());
  return Number.isInteger(v) && v > 0 ? v : 100;
})();

interface ProcReading {
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** cutime + cstime: children the process waited for (e.g. `systemctl show`). */
  childTicks: number;
  rssBytes: number;
  hwmBytes: number;
}

function readProc(pid: number): ProcReading {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after "(comm) ": f[0] is field 3 (state); utime..cstime are fields 14..17.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return {
    cpuTicks: Number(f[11]) + Number(f[12]),
    childTicks: Number(f[13]) + Number(f[14]),
    rssBytes: kb("VmRSS") * 1024,
    hwmBytes: kb("VmHWM") * 1024,
  };
}

interface Subject {
  name: string;
  kind: "baseline" | "tsx" | "bundle";
  /** component.id in its config, to find its reports at the receiver; undefined for baselines. */
  componentId?: string;
  child: ChildProcess;
  readings: ProcReading[];
  stderr: string;
}

let stopping = false;
const spawned: ChildProcess[] = [];

function spawnSubject(
  name: string,
  kind: Subject["kind"],
  args: string[],
  cwd: string,
  componentId?: string,
): Subject {
  const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  spawned.push(child);
  const s: Subject = {
    name,
    kind,
    child,
    readings: [],
    stderr: "",
    ...(componentId ? { componentId } : {}),
  };
  child.stderr?.on("data", (d) => {
    s.stderr = (s.stderr + String(d)).slice(-4000);
  });
  child.once("exit", (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited early (${signal ?? code}):\n${s.stderr}\n`);
      process.exitCode = 1;
    }
  });
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function buildBundle(outdir: string): { file: string; bytes: number; buildMs: number } {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [join(repo, "common/bin/build-agent.mjs"), "--outdir", outdir],
    { encoding: "utf8" },
  );
  if (r.status !== 0) {
    throw new Error(`common/bin/build-agent.mjs failed (${r.status}):\n${r.stderr}${r.stdout}`);
  }
  const file = join(outdir, "understudy-agent.mjs");
  return { file, bytes: statSync(file).size, buildMs: performance.now() - t0 };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "understudy-bench-agent-"));
  try {
    await run(dir);
  } finally {
    stopping = true;
    // Never leave a subject running, whatever failed.
    for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(dir: string) {
  const bundleDir = join(dir, "opt-understudy");
  const bundle = buildBundle(bundleDir);
  const stub = await startCoordinatorStub();
  const http = createServer((_req, res) => res.writeHead(200).end("ok"));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const probeUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz`;

  const idle = spawnSubject(
    "baseline: idle node",
    "baseline",
    ["-e", "setInterval(() => {}, 1000)"],
    dir,
  );
  const idleTsx = spawnSubject(
    "baseline: idle node + tsx",
    "baseline",
    ["--import", "tsx", "-e", "setInterval(() => {}, 1000)"],
    repo,
  );
  const agentConfig = (id: string, source: "procfs" | "systeminformation") => {
    const file = join(dir, `${id}.yaml`);
    writeFileSync(
      file,
      stringify({
        component: { id, role: "origin" },
        coordinator: { addresses: [stub.address] },
        sampling: { intervalMs: samplingIntervalMs, heartbeatIntervalMs, source },
        probes: { http: [{ name: "origin", url: probeUrl }] },
        watch: { pid: idle.child.pid },
        dataDir: join(dir, `${id}-data`),
        logLevel: "warn",
      }),
    );
    return file;
  };
  const cli = join(repo, "common/bin/understudy.mjs");
  const subjects = [
    idle,
    idleTsx,
    spawnSubject(
      "agent via tsx (understudy agent)",
      "tsx",
      [cli, "agent", "--config", agentConfig("bench-tsx", "procfs")],
      repo,
      "bench-tsx",
    ),
    spawnSubject(
      "agent bundle, as the unit runs it",
      "bundle",
      ["--enable-source-maps", bundle.file, "--config", agentConfig("bench-unit", "procfs")],
      bundleDir,
      "bench-unit",
    ),
    spawnSubject(
      "agent bundle, no source maps",
      "bundle",
      [bundle.file, "--config", agentConfig("bench-bundle", "procfs")],
      bundleDir,
      "bench-bundle",
    ),
    spawnSubject(
      "agent bundle, systeminformation sampler",
      "bundle",
      [
        "--enable-source-maps",
        bundle.file,
        "--config",
        agentConfig("bench-si", "systeminformation"),
      ],
      bundleDir,
      "bench-si",
    ),
  ];

  process.stdout.write(
    `agent bench: bundle ${(bundle.bytes / 1024 / 1024).toFixed(2)} MB built in ${(bundle.buildMs / 1000).toFixed(1)} s; ` +
      `warm-up ${warmupSeconds} s, then reading /proc once a second for ${measureSeconds} s...\n`,
  );
  // Half-way through the warm-up every stream ends once, as on a leader
  // change: each agent reconnects and formats an error stack, which is when
  // `--enable-source-maps` parses the map; that cost belongs in the numbers.
  await sleep((warmupSeconds * 1000) / 2);
  stub.endStreams();
  await sleep((warmupSeconds * 1000) / 2);

  /** Reports accepted by the receiver per component id (through its Hellos' instance ids). */
  const reportsOf = (componentId: string) => {
    const instances = new Set(
      stub.state.hellos.filter((h) => h.componentId === componentId).map((h) => h.agentInstanceId),
    );
    let reports = 0;
    let heartbeats = 0;
    for (const id of instances) {
      for (const r of stub.state.received.get(id) ?? []) {
        if (r.heartbeatOnly) heartbeats++;
        else reports++;
      }
    }
    return { reports, heartbeats };
  };
  const countsAtStart = new Map(
    subjects.filter((s) => s.componentId).map((s) => [s.name, reportsOf(s.componentId!)]),
  );
  for (const s of subjects) s.readings.push(readProc(s.child.pid!));
  const t0 = performance.now();
  for (let i = 0; i < measureSeconds && !process.exitCode; i++) {
    await sleep(1000);
    for (const s of subjects) s.readings.push(readProc(s.child.pid!));
  }
  const seconds = (performance.now() - t0) / 1000;
  const countsAtEnd = new Map(
    subjects.filter((s) => s.componentId).map((s) => [s.name, reportsOf(s.componentId!)]),
  );

  stopping = true;
  for (const s of subjects) s.child.kill("SIGTERM");
  const exitCodes = await Promise.all(
    subjects.map(
      (s) =>
        new Promise<number | null>((r) =>
          s.child.exitCode !== null ? r(s.child.exitCode) : s.child.once("exit", (c) => r(c)),
        ),
    ),
  );
  await stub.close();
  http.close();
  if (process.exitCode) throw new Error("a subject exited during the run; no numbers written");

  const rows = subjects.map((s, i) => {
    const first = s.readings[0]!;
    const last = s.readings.at(-1)!;
    const totalTicks = (r: ProcReading) => r.cpuTicks + r.childTicks;
    const perSecond = s.readings
      .slice(1)
      .map((r, j) => (totalTicks(r) - totalTicks(s.readings[j]!)) / clockTicksPerSecond);
    const rss = s.readings.map((r) => r.rssBytes);
    const start = countsAtStart.get(s.name);
    const end = countsAtEnd.get(s.name);
    return {
      name: s.name,
      kind: s.kind,
      cpuCores: (last.cpuTicks - first.cpuTicks) / clockTicksPerSecond / seconds,
      childCpuCores: (last.childTicks - first.childTicks) / clockTicksPerSecond / seconds,
      cpuCoresMax1s: Math.max(...perSecond),
      rssMeanBytes: rss.reduce((a, b) => a + b, 0) / rss.length,
      rssMaxBytes: Math.max(...rss),
      hwmBytes: last.hwmBytes,
      ...(start && end
        ? {
            reportsPerSecond: (end.reports - start.reports) / seconds,
            heartbeatsPerSecond: (end.heartbeats - start.heartbeats) / seconds,
          }
        : {}),
      exitCodeOnSigterm: exitCodes[i],
    };
  });
  const idleRow = rows[0]!;
  const tsxRow = rows.find((r) => r.kind === "tsx")!;
  const results = rows.map((r) => {
    const cpuTotal = r.cpuCores + r.childCpuCores;
    const judged = r.kind !== "baseline";
    return {
      ...r,
      rssOverIdleNodeBytes: r.rssMaxBytes - idleRow.rssMaxBytes,
      rssVsTsxAgent: r.rssMaxBytes / tsxRow.rssMaxBytes,
      hwmVsTsxAgent: r.hwmBytes / tsxRow.hwmBytes,
      ...(judged
        ? {
            pass: {
              cpu: cpuTotal <= targetCpuCores,
              rss: r.rssMaxBytes <= targetRssBytes,
              hwm: r.hwmBytes <= targetRssBytes,
            },
          }
        : {}),
    };
  });
  const silent = results.filter((r) => r.kind !== "baseline" && !((r.reportsPerSecond ?? 0) > 0.5));
  const summary = {
    bench: "agent",
    node: process.version,
    measuredSeconds: seconds,
    warmupSeconds,
    samplingIntervalMs,
    heartbeatIntervalMs,
    clockTicksPerSecond,
    bundle: { bytes: bundle.bytes, buildMs: bundle.buildMs },
    receiverGaps: stub.state.gaps,
    receiverDuplicates: stub.state.duplicates,
    targets: { cpuCores: targetCpuCores, rssBytes: targetRssBytes },
    results,
  };

  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  const pct = (c: number) => `${(c * 100).toFixed(2)}%`;
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? "PASS" : "FAIL");
  const header = [
    "process",
    "CPU",
    "CPU max 1 s",
    "RSS mean MB",
    "RSS max MB",
    "HWM MB",
    "RSS - idle node",
    "RSS / tsx agent",
    "reports/s",
    "CPU <= 1%",
    "RSS <= 80 MB",
    "HWM <= 80 MB",
  ];
  const lines = results.map((r) => [
    r.name,
    pct(r.cpuCores + r.childCpuCores),
    pct(r.cpuCoresMax1s),
    mb(r.rssMeanBytes),
    mb(r.rssMaxBytes),
    mb(r.hwmBytes),
    `${r.rssOverIdleNodeBytes >= 0 ? "+" : ""}${mb(r.rssOverIdleNodeBytes)}`,
    r.rssVsTsxAgent.toFixed(2),
    r.reportsPerSecond === undefined
      ? ""
      : `${r.reportsPerSecond.toFixed(2)}+${r.heartbeatsPerSecond!.toFixed(1)}hb`,
    verdict(r.pass?.cpu),
    verdict(r.pass?.rss),
    verdict(r.pass?.hwm),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) =>
    cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  process.stdout.write(`\n${fmt(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const l of lines) process.stdout.write(`${fmt(l)}\n`);
  process.stdout.write(
    `\nCPU = utime+stime (+ waited-for children) over ${seconds.toFixed(1)} s, share of one core; ` +
      `HWM = VmHWM, peak RSS since start (start-up included).\n` +
      `receiver: gaps ${summary.receiverGaps}, duplicates ${summary.receiverDuplicates}; ` +
      `exit codes on SIGTERM: ${results
        .filter((r) => r.kind !== "baseline")
        .map((r) => r.exitCodeOnSigterm)
        .join(", ")}\n`,
  );
  writeFileSync(join(repo, "bench/results/agent.json"), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write("wrote bench/results/agent.json\n");
  if (silent.length > 0) {
    process.stderr.write(
      `no reports from: ${silent.map((r) => r.name).join(", ")}; the numbers do not describe a working agent\n`,
    );
    process.exitCode = 1;
  }
}

mkdirSync(join(repo, "bench/results"), { recursive: true });
await main();
