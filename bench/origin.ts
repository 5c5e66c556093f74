/**
 * bench:origin — packager-node vs nginx serving the same bytes, side by side.
 *
 * 1. Starts packager-node (origin, its own process) and feeds it the committed
 *    CMAF fixture (360p, 0.5 s parts, 2 s segments) over the ingest API.
 * 2. Copies what it serves (playlist, init, window segments, parts) into a
 *    temp dir and starts nginx on it (installed with apt-get when missing;
 *    temp config, loopback port, `daemon off`, 1 worker — packager-node is one
 *    event loop too).
 * 3. For each scenario (segment GET, part GET, playlist GET) runs a bounded
 *    load loop from a separate process (keep-alive http.Agent, fixed
 *    concurrency, bounded in time and count) against each server, rounds
 *    interleaved, and prints req/s, MB/s and latency with the ratio to nginx.
 * 4. Measures blocking playlist reload: time from the start of the part's
 *    ingest PUT to the held `_HLS_msn/_HLS_part` response, with 1 and with
 *    100 viewers waiting.
 * Writes bench/results/origin.json.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
const FIXTURE = join(ROOT, "packager-node/fixtures/cmaf-ladder");
const MAIN = join(ROOT, "packager-node/src/main.ts");

// ---- bounds (every loop below is bounded by these) ----
const CONCURRENCY = 16;
const RUN_MS = 4000;
const ROUNDS = 3;
const REQUESTS_MAX_PER_RUN = 2_000_000;
const LATENCY_SAMPLES_MAX = 1_000_000;
const BLOCKING_ITERATIONS = 40;
const BLOCKING_FANOUT = 100;
const SEGMENTS_FED = 9;
const STARTUP_TIMEOUT_MS = 30_000;

interface LoadParams {
  urls: string[];
  concurrency: number;
  durationMs: number;
  requestsMax: number;
}

interface LoadResult {
  requests: number;
  errors: number;
  bytes: number;
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

// ---------------------------------------------------------------- worker ----

async function loadWorker(p: LoadParams): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: p.concurrency });
  const lat = new Float64Array(Math.min(LATENCY_SAMPLES_MAX, p.requestsMax));
  let n = 0;
  let errors = 0;
  let bytes = 0;
  let next = 0;
  const start = performance.now();
  const deadline = start + p.durationMs;
  const one = (url: string) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.get(url, { agent }, (res) => {
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) errors++;
          bytes += size;
          if (n < lat.length) lat[n] = performance.now() - t0;
          n++;
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        n++;
        resolve();
      });
    });
  const loop = async () => {
    while (performance.now() < deadline && next < p.requestsMax) {
      const url = p.urls[next++ % p.urls.length]!;
      await one(url);
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, loop));
  const elapsedMs = performance.now() - start;
  agent.destroy();
  const sorted = Array.from(lat.subarray(0, Math.min(n, lat.length))).sort((a, b) => a - b);
  const q = (x: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(x * sorted.length) - 1))] ??
    Number.NaN;
  return {
    requests: n,
    errors,
    bytes,
    elapsedMs,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

function runWorker(p: LoadParams): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(import.meta.url), "--load-worker", JSON.stringify(p)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), p.durationMs + 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`load worker exited ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

// ---------------------------------------------------------------- setup ----

interface FixturePart {
  offset: number;
  size: number;
  durationMs: number;
  independent: boolean;
}

function loadFixture(): { init: Buffer; parts: Buffer[]; meta: FixturePart[] } {
  const manifest = JSON.parse(readFileSync(join(FIXTURE, "manifest.json"), "utf8")) as {
    renditions: Array<{ id: string; parts: FixturePart[] }>;
  };
  const r = manifest.renditions.find((x) => x.id === "360p")!;
  const media = readFileSync(join(FIXTURE, "360p/media.m4s"));
  return {
    init: readFileSync(join(FIXTURE, "360p/init.mp4")),
    parts: r.parts.map((p) => media.subarray(p.offset, p.offset + p.size)),
    meta: r.parts,
  };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function nginxBinary(): string {
  const find = () => {
    for (const c of ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]) {
      if (spawnSync(c, ["-v"], { stdio: "ignore" }).status === 0) return c;
    }
    return undefined;
  };
  let bin = find();
  if (bin) return bin;
  if (process.getuid?.() !== 0)
    throw new Error("nginx is missing; install it: sudo apt-get install -y nginx");
  console.error("installing nginx with apt-get …");
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", timeout: 300_000 });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "nginx"], {
    stdio: "inherit",
    timeout: 600_000,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  bin = find();
  if (!bin) throw new Error("nginx still missing after apt-get install");
  return bin;
}

function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${re}: ${out}`)),
      timeoutMs,
    );
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ${re}: ${out}`));
    });
  });
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}

const T0 = Date.UTC(2024, 0, 1);

// ---------------------------------------------------------------- main ----

async function main(): Promise<void> {
  // Client and servers share the machine: other load skews the ratios, so it is recorded.
  const loadAtStart = os.loadavg();
  const tmp = await mkdtemp(join(os.tmpdir(), "understudy-bench-origin-"));
  const children: ChildProcess[] = [];
  try {
    const fx = loadFixture();
    const pkgPort = await freePort();
    const cfgFile = join(tmp, "packager.yaml");
    await writeFile(
      cfgFile,
      [
        "nodeId: bench-origin",
        "mode: origin",
        `listen: 127.0.0.1:${pkgPort}`,
        "storage: { cacheBytesMax: 268435456 }",
        "ingest: { partBytesMax: 4194304, segmentBytesMax: 16777216 }",
        "playback: { blockingRequestsMax: 100000, sessionsMax: 100000 }",
        "streams:",
        "  - id: s1",
        "    latency: low",
        "    targetSegmentDurationMs: 2000",
        "    targetPartDurationMs: 500",
        "    renditions:",
        "      - { id: 360p, bandwidth: 709684, codecs: 'avc1.42c01e,mp4a.40.2', resolution: 640x360, frameRate: 30 }",
        "",
      ].join("\n"),
    );
    const pkg = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `import(${JSON.stringify(MAIN)}).then(async (m) => { process.exitCode = await m.main(["--config", ${JSON.stringify(cfgFile)}]); })`,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, UNDERSTUDY_LOG_LEVEL: "error" },
      },
    );
    children.push(pkg);
    await waitForLine(pkg, /listening on (http:\/\/[0-9.]+:\d+)/, STARTUP_TIMEOUT_MS);
    const pkgBase = `http://127.0.0.1:${pkgPort}`;

    // Feed the fixture: SEGMENTS_FED full segments + 2 parts of the next.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const put = (path: string, body: Buffer, headers: Record<string, string>) =>
      new Promise<{ status: number; doneAt: number }>((resolve, reject) => {
        const req = http.request(
          `${pkgBase}${path}`,
          { method: "PUT", agent, headers: { ...headers, "content-length": body.length } },
          (res) => {
            res.resume();
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, doneAt: performance.now() }),
            );
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    let seq = 0; // global part sequence; msn = seq / 4
    const pushNext = async () => {
      const msn = Math.floor(seq / 4);
      const part = seq % 4;
      const i = seq % fx.parts.length;
      const timelineMs = seq * 500;
      const r = await put(`/ingest/s1/360p/${msn}.${part}.m4s`, fx.parts[i]!, {
        "content-type": "video/mp4",
        "x-understudy-duration-ms": String(fx.meta[i]!.durationMs),
        "x-understudy-timeline-ms": String(timelineMs),
        "x-understudy-program-date-time": new Date(T0 + timelineMs).toISOString(),
        ...(fx.meta[i]!.independent ? { "x-understudy-independent": "1" } : {}),
      });
      if (r.status !== 201) throw new Error(`ingest ${msn}.${part}: HTTP ${r.status}`);
      seq++;
      return { msn, part, doneAt: r.doneAt };
    };
    const initPut = await put("/ingest/s1/360p/init.mp4", fx.init, { "content-type": "video/mp4" });
    if (initPut.status !== 201) throw new Error(`init: HTTP ${initPut.status}`);
    while (seq < SEGMENTS_FED * 4 + 2) await pushNext();

    // Mirror what the packager serves into nginx's root.
    const www = join(tmp, "www");
    const dir = join(www, "live/s1/360p");
    await mkdir(dir, { recursive: true });
    const get = async (path: string) =>
      Buffer.from(await (await fetch(pkgBase + path)).arrayBuffer());
    const playlist = await get("/live/s1/360p/index.m3u8");
    await writeFile(join(dir, "index.m3u8"), playlist);
    await writeFile(join(dir, "init.mp4"), await get("/live/s1/360p/init.mp4"));
    const segUris = playlist
      .toString()
      .split("\n")
      .filter((l) => /^\d+\.m4s$/.test(l));
    // EXT-X-PART lines only: the preload hint names a part that does not exist yet.
    const partUris = [
      ...playlist.toString().matchAll(/^#EXT-X-PART:.*URI="(\d+\.\d+\.m4s)"/gm),
    ].map((m) => m[1]!);
    for (const u of [...segUris, ...partUris])
      await writeFile(join(dir, u), await get(`/live/s1/360p/${u}`));
    const segBytes = (await get(`/live/s1/360p/${segUris[0]}`)).length;
    const partBytes = (await get(`/live/s1/360p/${partUris[partUris.length - 1]}`)).length;

    const nginx = nginxBinary();
    const ngPort = await freePort();
    const conf = join(tmp, "nginx.conf");
    const temp = (n: string) => `${n}_temp_path ${join(tmp, n)};`;
    await writeFile(
      conf,
      `user root;
worker_processes 1;
daemon off;
pid ${join(tmp, "nginx.pid")};
error_log ${join(tmp, "nginx-error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 65;
  ${temp("client_body")} ${temp("proxy")} ${temp("fastcgi")} ${temp("uwsgi")} ${temp("scgi")}
  types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }
  server { listen 127.0.0.1:${ngPort}; root ${www}; location / { } }
}
`,
    );
    const ng = spawn(nginx, ["-c", conf, "-p", tmp], { stdio: ["ignore", "ignore", "inherit"] });
    children.push(ng);
    const ngBase = `http://127.0.0.1:${ngPort}`;
    await waitForHttp(`${ngBase}/live/s1/360p/index.m3u8`, STARTUP_TIMEOUT_MS);
    const nginxVersion = spawnSync(nginx, ["-v"], { encoding: "utf8" }).stderr.trim();

    // ---- throughput scenarios ----
    const scenarios = [
      {
        name: "segment GET",
        paths: segUris.map((u) => `/live/s1/360p/${u}`),
        objectBytes: segBytes,
      },
      {
        name: "part GET",
        paths: partUris.slice(-8).map((u) => `/live/s1/360p/${u}`),
        objectBytes: partBytes,
      },
      { name: "playlist GET", paths: ["/live/s1/360p/index.m3u8"], objectBytes: playlist.length },
    ];
    const results: Array<{
      scenario: string;
      objectBytes: number;
      packager: LoadResult;
      nginx: LoadResult;
      ratio: number;
    }> = [];
    for (const sc of scenarios) {
      const runs: Record<"packager" | "nginx", LoadResult[]> = { packager: [], nginx: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const [who, base] of [
          ["packager", pkgBase],
          ["nginx", ngBase],
        ] as const) {
          runs[who].push(
            await runWorker({
              urls: sc.paths.map((p) => base + p),
              concurrency: CONCURRENCY,
              durationMs: RUN_MS,
              requestsMax: REQUESTS_MAX_PER_RUN,
            }),
          );
        }
      }
      const best = (rs: LoadResult[]) =>
        rs.reduce((a, b) => (b.requests / b.elapsedMs > a.requests / a.elapsedMs ? b : a));
      const p = best(runs.packager);
      const n = best(runs.nginx);
      results.push({
        scenario: sc.name,
        objectBytes: sc.objectBytes,
        packager: p,
        nginx: n,
        ratio: p.requests / p.elapsedMs / (n.requests / n.elapsedMs),
      });
    }

    // ---- blocking reload: part ingest → held playlist answered ----
    const blocking: Record<
      string,
      { p50Ms: number; p99Ms: number; maxMs: number; iterations: number }
    > = {};
    const getAgent = new http.Agent({ keepAlive: true, maxSockets: BLOCKING_FANOUT + 8 });
    const blockingGet = (url: string) =>
      new Promise<{ status: number; at: number }>((resolve, reject) => {
        http
          .get(url, { agent: getAgent }, (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, at: performance.now() }));
          })
          .on("error", reject);
      });
    for (const fanout of [1, BLOCKING_FANOUT]) {
      const samples: number[] = [];
      for (let i = 0; i < BLOCKING_ITERATIONS; i++) {
        const msn = Math.floor(seq / 4);
        const part = seq % 4;
        const url = `${pkgBase}/live/s1/360p/index.m3u8?_HLS_msn=${msn}&_HLS_part=${part}`;
        const waiting = Array.from({ length: fanout }, () => blockingGet(url));
        await new Promise((r) => setTimeout(r, 30));
        const t0 = performance.now();
        await pushNext();
        const replies = await Promise.all(waiting);
        if (replies.some((r) => r.status !== 200))
          throw new Error(`blocking reload answered ${replies.map((r) => r.status)}`);
        samples.push(Math.max(...replies.map((r) => r.at)) - t0);
      }
      samples.sort((a, b) => a - b);
      const q = (x: number) =>
        samples[Math.min(samples.length - 1, Math.ceil(x * samples.length) - 1)]!;
      blocking[`waiting=${fanout}`] = {
        p50Ms: q(0.5),
        p99Ms: q(0.99),
        maxMs: samples[samples.length - 1]!,
        iterations: samples.length,
      };
    }
    getAgent.destroy();
    agent.destroy();

    // ---- report ----
    const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const rows = [
      ["scenario", "server", "object", "req/s", "MB/s", "p50 ms", "p99 ms", "errors", "vs nginx"],
    ];
    for (const r of results) {
      for (const who of ["packager", "nginx"] as const) {
        const x = r[who];
        const rps = (x.requests / x.elapsedMs) * 1000;
        rows.push([
          r.scenario,
          who === "packager" ? "packager-node" : "nginx",
          `${(r.objectBytes / 1024).toFixed(1)} KiB`,
          f(rps, 0),
          f(x.bytes / x.elapsedMs / 1000, 1),
          f(x.p50Ms, 2),
          f(x.p99Ms, 2),
          String(x.errors),
          who === "packager" ? `${f(r.ratio, 2)}x` : "1.00x",
        ]);
      }
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    const line = (row: string[]) =>
      row.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    console.log(
      `\nbench:origin — ${CONCURRENCY} keep-alive connections, ${RUN_MS} ms per run, best of ${ROUNDS} interleaved rounds`,
    );
    console.log(
      `node ${process.version}, ${nginxVersion}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), load average at start ${loadAtStart.map((x) => x.toFixed(1)).join(" ")}\n`,
    );
    console.log(line(rows[0]!));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    for (const row of rows.slice(1)) console.log(line(row));
    console.log(
      "\nblocking playlist reload (ingest PUT start → last held response), packager-node:",
    );
    for (const [k, v] of Object.entries(blocking)) {
      console.log(
        `  ${k.padEnd(12)} p50 ${f(v.p50Ms, 2)} ms  p99 ${f(v.p99Ms, 2)} ms  max ${f(v.maxMs, 2)} ms  (${v.iterations} parts)`,
      );
    }
    const segmentRatio = results.find((r) => r.scenario === "segment GET")!.ratio;
    console.log(
      `\nsegment GET target >= 0.5x nginx: ${segmentRatio >= 0.5 ? "met" : "NOT met"} (${f(segmentRatio, 2)}x)`,
    );

    await mkdir(join(ROOT, "bench/results"), { recursive: true });
    await writeFile(
      join(ROOT, "bench/results/origin.json"),
      `${JSON.stringify(
        {
          bench: "origin",
          at: new Date().toISOString(),
          env: {
            node: process.version,
            nginx: nginxVersion,
            cpus: os.cpus().length,
            cpuModel: os.cpus()[0]?.model ?? null,
            loadAverageAtStart: loadAtStart,
          },
          params: { concurrency: CONCURRENCY, runMs: RUN_MS, rounds: ROUNDS, nginxWorkers: 1 },
          throughput: results.map((r) => ({
            scenario: r.scenario,
            objectBytes: r.objectBytes,
            packager: {
              ...r.packager,
              requestsPerSecond: (r.packager.requests / r.packager.elapsedMs) * 1000,
            },
            nginx: { ...r.nginx, requestsPerSecond: (r.nginx.requests / r.nginx.elapsedMs) * 1000 },
            ratioToNginx: r.ratio,
          })),
          blockingReload: blocking,
          target: {
            segmentGetRatioMin: 0.5,
            segmentGetRatio: segmentRatio,
            met: segmentRatio >= 0.5,
          },
        },
        null,
        2,
      )}\n`,
    );
    console.log("wrote bench/results/origin.json");
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await rm(tmp, { recursive: true, force: true });
  }
}

const workerAt = process.argv.indexOf("--load-worker");
if (workerAt >= 0) {
  const params = JSON.parse(process.argv[workerAt + 1]!) as LoadParams;
  loadWorker(params).then(
    (r) => {
      process.stdout.write(JSON.stringify(r));
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
