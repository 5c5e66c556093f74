import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentSample,
  type CommandRunner,
  createProbeSet,
  createProcessWatcher,
  type ProbeSet,
  parseEncoderProgress,
  parsePackagerStatus,
} from "../../agent/src/index.ts";
import { parseSystemctlShow } from "../../agent/src/process-watch.ts";
import { systemClock } from "../../common/clock.ts";

const value = (samples: AgentSample[], name: string, target?: string) =>
  samples.find((s) => s.name === name && (target === undefined || s.labels?.target === target))
    ?.value;

const ffmpegBlock = (frame: number, extra: Record<string, string> = {}) =>
  `${Object.entries({
    frame: String(frame),
    fps: "29.97",
    stream_0_0_q: "28.0",
    bitrate: "2500.1kbits/s",
    total_size: "1234567",
    out_time_us: "4100000",
    out_time_ms: "4100000",
    out_time: "00:00:04.100000",
    dup_frames: "2",
    drop_frames: "5",
    speed: "1.01x",
    progress: "continue",
    ...extra,
  })
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;

async function runOnce(set: ProbeSet) {
  set.launch();
  await set.settle();
  return set.collect();
}

describe("agent probes", () => {
  let dir: string;
  let server: Server | undefined;
  let base = "";
  let status = 200;
  let delayMs = 0;
  let statusDoc: unknown = {};

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "understudy-agent-probe-"));
    status = 200;
    delayMs = 0;
    server = createServer((req, res) => {
      setTimeout(() => {
        if (req.url === "/status") {
          res
            .writeHead(status, { "content-type": "application/json" })
            .end(JSON.stringify(statusDoc));
        } else res.writeHead(status).end("ok");
      }, delayMs);
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("parses the last complete ffmpeg -progress block, skipping N/A values", () => {
    const text = `${ffmpegBlock(100) + ffmpegBlock(130, { speed: "N/A", drop_frames: "7" })}frame=131\nfps=30`;
    const p = parseEncoderProgress(text)!;
    assert.equal(p.frame, 130);
    assert.equal(p.fps, 29.97);
    assert.equal(p.speed, undefined);
    assert.equal(p.dropFrames, 7);
    assert.equal(p.dupFrames, 2);
    assert.equal(p.outTimeMs, 4100);
    assert.equal(p.progress, "continue");
    assert.equal(parseEncoderProgress("frame=1\nfps=2\n"), undefined, "no complete block yet");
  });

  it("reads the encoder progress file; stale or ended progress fails the probe", async () => {
    const file = join(dir, "progress");
    writeFileSync(file, ffmpegBlock(1) + ffmpegBlock(2));
    const set = createProbeSet({
      encoderProgressFile: file,
      encoderProgressStaleMs: 5000,
      packagerStatusTimeoutMs: 1000,
      http: [],
      clock: systemClock,
    });
    const ok = await runOnce(set);
    assert.equal(value(ok.samples, "encoder.fps"), 29.97);
    assert.equal(value(ok.samples, "encoder.speed"), 1.01);
    assert.equal(value(ok.samples, "encoder.dropped_frames"), 5);
    assert.equal(value(ok.samples, "encoder.dup_frames"), 2);
    assert.equal(ok.probes[0]!.ok, true);
    assert.equal(ok.probes[0]!.kind, "encoder_progress");

    const old = (Date.now() - 60_000) / 1000;
    utimesSync(file, old, old);
    const stale = await runOnce(set);
    assert.equal(stale.samples.length, 0);
    assert.equal(stale.probes[0]!.ok, false);
    assert.match(stale.probes[0]!.error, /stale/);

    writeFileSync(file, ffmpegBlock(3, { progress: "end" }));
    const ended = await runOnce(set);
    assert.match(ended.probes[0]!.error, /progress=end/);

    rmSync(file);
    const missing = await runOnce(set);
    assert.equal(missing.probes[0]!.ok, false);
    assert.match(missing.probes[0]!.error, /ENOENT/);
  });

  it("reads packager status JSON (proto JSON names or snake_case)", async () => {
    statusDoc = {
      ingestLatencyP50Ms: 120,
      ingestLatencyP99Ms: 480,
      errorRatio: 0.01,
      cacheHitRatio: 0.97,
      draining: false,
    };
    const set = createProbeSet({
      packagerStatusUrl: `${base}/status`,
      packagerStatusTimeoutMs: 1000,
      encoderProgressStaleMs: 5000,
      http: [],
      clock: systemClock,
    });
    const out = await runOnce(set);
    assert.equal(value(out.samples, "packager.ingest_latency_ms"), 120);
    assert.equal(value(out.samples, "packager.error_rate"), 0.01);
    assert.equal(value(out.samples, "packager.cache_hit_ratio"), 0.97);
    assert.equal(out.probes[0]!.ok, true);
    assert.equal(out.probes[0]!.values.ingest_latency_p99_ms, 480);
    assert.equal(out.probes[0]!.values.draining, 0);
    assert.deepEqual(
      parsePackagerStatus({
        ingest_latency_p50_ms: 5,
        error_ratio: 0,
        cache_hit_ratio: 1,
      }).samples.map((s) => s.value),
      [5, 0, 1],
    );
    status = 503;
    const down = await runOnce(set);
    assert.equal(down.probes[0]!.ok, false);
    assert.match(down.probes[0]!.error, /HTTP 503/);
    assert.equal(down.samples.length, 0);
  });

  it("HTTP probes: RTT on answers, loss ratio over the window, timeouts count as loss", async () => {
    const set = createProbeSet({
      http: [
        {
          name: "origin",
          url: `${base}/healthz`,
          expectedStatus: 200,
          timeoutMs: 200,
          lossWindow: 4,
        },
      ],
      packagerStatusTimeoutMs: 1000,
      encoderProgressStaleMs: 5000,
      clock: systemClock,
    });
    const a = await runOnce(set);
    assert.ok(value(a.samples, "probe.rtt_ms", "origin")! >= 0);
    assert.equal(value(a.samples, "probe.loss_ratio", "origin"), 0);
    assert.equal(a.probes[0]!.values.http_status, 200);
    status = 500;
    const b = await runOnce(set);
    assert.equal(value(b.samples, "probe.loss_ratio", "origin"), 0.5);
    assert.match(b.probes[0]!.error, /HTTP 500, expected 200/);
    status = 200;
    delayMs = 500;
    const c = await runOnce(set);
    assert.equal(value(c.samples, "probe.rtt_ms", "origin"), undefined, "no RTT without an answer");
    assert.ok(Math.abs(value(c.samples, "probe.loss_ratio", "origin")! - 2 / 3) < 1e-9);
    assert.match(c.probes[0]!.error, /timed out after 200 ms/);
  });

  it("does not start a probe that is still running, and never blocks collect", async () => {
    delayMs = 300;
    const set = createProbeSet({
      http: [
        { name: "slow", url: `${base}/x`, expectedStatus: 200, timeoutMs: 2000, lossWindow: 4 },
      ],
      packagerStatusTimeoutMs: 1000,
      encoderProgressStaleMs: 5000,
      clock: systemClock,
    });
    set.launch();
    set.launch();
    assert.deepEqual(set.collect(), { samples: [], probes: [] });
    await set.settle();
    assert.equal(set.collect().probes.length, 1);
  });
});

describe("agent process watch", () => {
  let child: ChildProcess | undefined;
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-agent-watch-"));
  });
  afterEach(() => {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  /** SIGKILL is delivered asynchronously: wait until the process is really gone. */
  const killAndWait = (c: ChildProcess) =>
    new Promise((r) => {
      c.once("exit", r);
      c.kill("SIGKILL");
    });

  const startChild = () =>
    spawn(
      process.execPath,
      [
        "-e",
        "const b=[];setInterval(()=>{b.push(Buffer.alloc(1e6,1));for(let i=0;i<2e6;i++);},20)",
      ],
      { stdio: "ignore" },
    );

  it("measures CPU, RSS, fds of a real process by pid", async () => {
    child = startChild();
    const w = createProcessWatcher({
      watch: { pid: child.pid! },
      runner: { run: async () => assert.fail("no systemctl for pid") },
      clock: systemClock,
    });
    await w.sample();
    await new Promise((r) => setTimeout(r, 500));
    const s = await w.sample();
    assert.equal(value(s, "proc.up"), 1);
    assert.ok(value(s, "proc.cpu")! > 0.05, `proc.cpu ${value(s, "proc.cpu")}`);
    assert.ok(value(s, "proc.rss_bytes")! > 20 * 1024 * 1024);
    assert.ok(value(s, "proc.fds")! >= 3);
    assert.equal(value(s, "proc.restarts"), 0);
    await killAndWait(child);
    const gone = await w.sample();
    assert.equal(value(gone, "proc.up"), 0);
    assert.equal(value(gone, "proc.cpu"), undefined);
  });

  it("counts a pid change in the pidfile as a restart", async () => {
    const pidfile = join(dir, "svc.pid");
    child = startChild();
    writeFileSync(pidfile, String(child.pid));
    const w = createProcessWatcher({
      watch: { pidfile },
      runner: { run: async () => assert.fail("no systemctl for pidfile") },
      clock: systemClock,
    });
    assert.equal(value(await w.sample(), "proc.restarts"), 0);
    await killAndWait(child);
    child = startChild();
    writeFileSync(pidfile, `${child.pid}\n`);
    const s = await w.sample();
    assert.equal(value(s, "proc.restarts"), 1);
    assert.equal(value(s, "proc.up"), 1);
  });

  it("asks systemd for a unit's MainPID/NRestarts only at start, on a change, and on refresh", async () => {
    child = startChild();
    let mainPid = child.pid!;
    let nRestarts = 2;
    const calls: string[][] = [];
    const runner: CommandRunner = {
      async run(file, args) {
        calls.push([file, ...args]);
        return { code: 0, stdout: `MainPID=${mainPid}\nNRestarts=${nRestarts}\n`, stderr: "" };
      },
    };
    const w = createProcessWatcher({
      watch: { unit: "understudy-packager.service" },
      runner,
      clock: systemClock,
      unitRefreshMs: 60_000,
    });
    assert.equal(value(await w.sample(), "proc.restarts"), 2);
    await w.sample();
    await w.sample();
    assert.equal(calls.length, 1, "no systemctl while the same process runs");
    assert.deepEqual(calls[0], [
      "systemctl",
      "show",
      "-p",
      "MainPID,NRestarts",
      "--",
      "understudy-packager.service",
    ]);
    // systemd restarts it: NRestarts and the pid change together — one restart, not two.
    await killAndWait(child);
    child = startChild();
    mainPid = child.pid!;
    nRestarts = 3;
    const s = await w.sample();
    assert.equal(value(s, "proc.restarts"), 3);
    assert.equal(
      calls.length,
      2,
      `the vanished pid triggers a fresh systemctl query: ${JSON.stringify(calls)}`,
    );
    assert.deepEqual(parseSystemctlShow("MainPID=0\nNRestarts=\n"), { mainPid: 0, nRestarts: 0 });
  });
});
