/**
 * Handover notice fan-out: how long from publish until the last of N
 * subscribers has a HandoverNotice, with a real nats-server on loopback.
 *
 * Subscribers are grouped as a viewer farm or edge would group players:
 * `connections` NATS connections spread over `workers` child processes, many
 * subscribers per connection. Modes, all measured in the same run:
 *   raw         baseline: one plain nats.js subscription per subscriber
 *               (callback + protobuf decode), no SDK
 *   sdk         one SDK client per subscriber, each with its own bus (its own
 *               NATS subscription) on the shared connection: same server
 *               fan-out as raw, plus the SDK's decode/epoch filter/bounded
 *               queue/async iteration
 *   sdk-shared  SDK clients on one shared bus per connection (one NATS
 *               subscription per connection, local fan-out)
 * A subscriber "has" a notice when its code sees it (for the SDK: when the
 * event comes out of `client.events()`). Times are CLOCK_MONOTONIC
 * (process.hrtime), which is shared by every process on the host.
 *
 *   npm run bench:notify [-- --notices 30 --interval-ms 100 --workers 2 --sizes 1000,10000]
 *
 * Prints a table and writes bench/results/notify.json. Target: p99 of the
 * last-subscriber latency <= 50 ms for 10,000 SDK subscribers grouped as
 * sdk-shared. Latency on a host shared with other work is dominated by CPU
 * contention; the CPU-per-notice columns are the load-insensitive part.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "nats";
import {
  createUnderstudyClient,
  handoverSubject,
  type NoticeBus,
  natsNoticeBusFromConnection,
  HandoverNoticeSchema as SdkNoticeSchema,
  type UnderstudyClient,
} from "../client-sdk/src/index.ts";
import { startNatsServer } from "../common/nats-server.ts";
import { HandoverState } from "../proto/gen/understudy/common/v1/handover_pb.ts";
import { HandoverNoticeSchema } from "../proto/gen/understudy/notice/v1/notice_pb.ts";

type Mode = "raw" | "sdk" | "sdk-shared";
const modes: Mode[] = ["raw", "sdk", "sdk-shared"];
const streamId = "bench-stream";
const readyTimeoutMs = 120_000;
const noticesMax = 1000;
const targetP99Ms = 50;
const warmupNotices = 5;
const settleMaxMs = 20_000;

interface WorkerConfig {
  servers: string[];
  mode: Mode;
  connections: number;
  perConnection: number;
}

type ToWorker = { type: "count" } | { type: "collect" } | { type: "exit" };
type FromWorker =
  | { type: "ready"; subscribers: number; setupMs: number }
  | { type: "count"; received: number }
  | { type: "result"; received: Record<string, number[]>; dropped: number; cpuMs: number };

// ---------------------------------------------------------------- worker

async function worker(cfg: WorkerConfig): Promise<void> {
  const t0 = performance.now();
  const received = new Map<number, number[]>();
  const record = (epoch: number) => {
    const now = Number(process.hrtime.bigint());
    let arr = received.get(epoch);
    if (!arr) {
      arr = [];
      received.set(epoch, arr);
    }
    arr.push(now);
  };
  const conns: NatsConnection[] = [];
  const clients: UnderstudyClient[] = [];
  const buses: NoticeBus[] = [];
  let subscribers = 0;
  for (let c = 0; c < cfg.connections; c++) {
    const nc = await connect({ servers: cfg.servers, name: `bench-${cfg.mode}-${c}` });
    conns.push(nc);
    const shared = cfg.mode === "sdk-shared" ? natsNoticeBusFromConnection(nc) : undefined;
    if (shared) buses.push(shared);
    for (let s = 0; s < cfg.perConnection; s++) {
      subscribers++;
      if (cfg.mode === "raw") {
        nc.subscribe(handoverSubject(streamId), {
          callback: (err, msg) => {
            if (err) return;
            record(Number(fromBinary(SdkNoticeSchema, msg.data).epoch));
          },
        });
        continue;
      }
      const bus = shared ?? natsNoticeBusFromConnection(nc);
      if (!shared) buses.push(bus);
      const client = createUnderstudyClient({ streamId, bus });
      clients.push(client);
      void (async () => {
        for await (const ev of client.events({ replayLatest: false })) {
          if (ev.type === "handover") record(Number(ev.notice.epoch));
        }
      })();
    }
    await nc.flush();
  }
  const send = (m: FromWorker) => process.send?.(m);
  const cpuAtReady = process.cpuUsage();
  send({ type: "ready", subscribers, setupMs: performance.now() - t0 });
  process.on("message", async (m: ToWorker) => {
    if (m.type === "count") {
      let n = 0;
      for (const arr of received.values()) n += arr.length;
      send({ type: "count", received: n });
    } else if (m.type === "collect") {
      const dropped = clients.reduce((a, c) => a + c.stats().eventsDropped, 0);
      const cpu = process.cpuUsage(cpuAtReady);
      send({
        type: "result",
        received: Object.fromEntries(received),
        dropped,
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    } else if (m.type === "exit") {
      for (const c of clients) await c.close();
      for (const b of buses) await b.close();
      for (const nc of conns) await nc.close();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- parent

interface Args {
  notices: number;
  intervalMs: number;
  workers: number;
  sizes: number[];
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const notices = Number(get("notices") ?? 30);
  const intervalMs = Number(get("interval-ms") ?? 100);
  const workers = Number(get("workers") ?? Math.max(2, Math.min(4, cpus().length)));
  const sizes = (get("sizes") ?? "1000,10000").split(",").map(Number);
  if (!(Number.isInteger(notices) && notices >= 1 && notices <= noticesMax)) {
    throw new Error(`--notices must be an integer in 1..${noticesMax}`);
  }
  if (!(intervalMs >= 10 && intervalMs <= 10_000))
    throw new Error("--interval-ms must be in 10..10000");
  if (!(Number.isInteger(workers) && workers >= 1 && workers <= 16))
    throw new Error("--workers must be in 1..16");
  if (sizes.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 50_000))) {
    throw new Error("--sizes must be integers in 1..50000");
  }
  return { notices, intervalMs, workers, sizes };
}

/** Connections for N subscribers: 100 for small farms, up to 200 (50+ subscribers each) for large. */
function connectionsFor(n: number): number {
  return Math.min(n, n <= 1000 ? 100 : 200);
}

interface Spawned {
  child: ChildProcess;
  ready: Promise<Extract<FromWorker, { type: "ready" }>>;
  next: () => Promise<FromWorker>;
}

function spawnWorker(cfg: WorkerConfig): Spawned {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "--worker", JSON.stringify(cfg)],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const inbox: FromWorker[] = [];
  let waiter: ((m: FromWorker) => void) | undefined;
  child.on("message", (m: FromWorker) => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(m);
    } else inbox.push(m);
  });
  const next = () =>
    new Promise<FromWorker>((resolve, reject) => {
      const m = inbox.shift();
      if (m) return resolve(m);
      const timer = setTimeout(() => reject(new Error("worker did not answer")), readyTimeoutMs);
      child.once("exit", (code) => reject(new Error(`worker exited with ${code}`)));
      waiter = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
    });
  const ready = next().then((m) => {
    if (m.type !== "ready") throw new Error(`expected ready, got ${m.type}`);
    return m;
  });
  return { child, ready, next };
}

/** CPU time (user + system) of another process, ms, from /proc; undefined where there is no procfs. */
function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of stat (utime, stime), in clock ticks (USER_HZ = 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

interface CaseResult {
  subscribers: number;
  mode: Mode;
  connections: number;
  workers: number;
  notices: number;
  setupMs: number;
  deliveryRatio: number;
  eventsDropped: number;
  /** Per (notice, subscriber) latency. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Per notice: until the last subscriber had it. */
  lastSubscriberMs: { p50: number; p99: number; max: number };
  /**
   * CPU per notice (warm-up included): subscriber processes, and the
   * nats-server. Unlike latency, this barely depends on other load on the host.
   */
  cpuMsPerNotice: { subscribers: number; natsServer?: number };
  p99VsRaw?: number;
}

async function runCase(
  servers: string[],
  natsPid: number,
  n: number,
  mode: Mode,
  args: Args,
): Promise<CaseResult> {
  const connections = connectionsFor(n);
  const perConnection = Math.ceil(n / connections);
  const workers = Math.min(args.workers, connections);
  const spawned: Spawned[] = [];
  let assigned = 0;
  for (let w = 0; w < workers; w++) {
    const conns = Math.floor(connections / workers) + (w < connections % workers ? 1 : 0);
    spawned.push(spawnWorker({ servers, mode, connections: conns, perConnection }));
    assigned += conns;
  }
  const subscribersTotal = assigned * perConnection;
  try {
    const t0 = performance.now();
    const readies = await Promise.all(spawned.map((s) => s.ready));
    const setupMs = performance.now() - t0;
    const subscribers = readies.reduce((a, r) => a + r.subscribers, 0);
    const pub = await connect({ servers });
    const natsCpuBefore = processCpuMs(natsPid);
    const published = new Map<number, number>();
    // Warm-up notices (JIT, first-use allocations in every worker) are not measured.
    for (let i = 1; i <= warmupNotices + args.notices; i++) {
      const bytes = toBinary(
        HandoverNoticeSchema,
        create(HandoverNoticeSchema, {
          streamId,
          handoverId: "h-bench",
          epoch: BigInt(i),
          state: HandoverState.NOTIFIED,
          switchMsn: BigInt(1000 + i),
          fromOrigin: { componentId: "pkg-1", baseUrl: "http://127.0.0.1:1" },
          toOrigin: { componentId: "pkg-2", baseUrl: "http://127.0.0.1:2" },
          publishedUnixMs: BigInt(Date.now()),
        }),
      );
      if (i > warmupNotices) published.set(i, Number(process.hrtime.bigint()));
      pub.publish(handoverSubject(streamId), bytes);
      await pub.flush();
      await new Promise((r) => setTimeout(r, args.intervalMs));
    }
    // Let stragglers arrive: until every subscriber has every notice, or no
    // progress for 1 s, or settleMaxMs (a backlog is latency, not loss).
    const expected = subscribersTotal * (warmupNotices + args.notices);
    const settleEnd = performance.now() + settleMaxMs;
    let lastTotal = -1;
    let lastChange = performance.now();
    while (performance.now() < settleEnd) {
      let total = 0;
      for (const s of spawned) {
        s.child.send({ type: "count" } satisfies ToWorker);
        const m = await s.next();
        if (m.type === "count") total += m.received;
      }
      if (total >= expected) break;
      if (total !== lastTotal) {
        lastTotal = total;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > 1000) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await pub.close();
    const natsCpuAfter = processCpuMs(natsPid);
    const perNotice = new Map<number, number[]>();
    let dropped = 0;
    let workerCpuMs = 0;
    for (const s of spawned) {
      s.child.send({ type: "collect" } satisfies ToWorker);
      const m = await s.next();
      if (m.type !== "result") throw new Error(`expected result, got ${m.type}`);
      dropped += m.dropped;
      workerCpuMs += m.cpuMs;
      for (const [epoch, times] of Object.entries(m.received)) {
        if (!published.has(Number(epoch))) continue;
        const arr = perNotice.get(Number(epoch)) ?? [];
        for (const t of times) arr.push(t);
        perNotice.set(Number(epoch), arr);
      }
    }
    const all: number[] = [];
    const last: number[] = [];
    let delivered = 0;
    for (const [epoch, pubNs] of published) {
      const times = perNotice.get(epoch) ?? [];
      delivered += times.length;
      let max = 0;
      for (const t of times) {
        const ms = (t - pubNs) / 1e6;
        all.push(ms);
        if (ms > max) max = ms;
      }
      if (times.length > 0) last.push(max);
    }
    all.sort((a, b) => a - b);
    last.sort((a, b) => a - b);
    return {
      subscribers,
      mode,
      connections: assigned,
      workers,
      notices: args.notices,
      setupMs,
      deliveryRatio: delivered / (subscribersTotal * args.notices),
      eventsDropped: dropped,
      latencyMs: { p50: pct(all, 50), p99: pct(all, 99), max: all[all.length - 1] ?? Number.NaN },
      lastSubscriberMs: {
        p50: pct(last, 50),
        p99: pct(last, 99),
        max: last[last.length - 1] ?? Number.NaN,
      },
      cpuMsPerNotice: {
        subscribers: workerCpuMs / (warmupNotices + args.notices),
        ...(natsCpuBefore !== undefined && natsCpuAfter !== undefined
          ? { natsServer: (natsCpuAfter - natsCpuBefore) / (warmupNotices + args.notices) }
          : {}),
      },
    };
  } finally {
    for (const s of spawned) {
      if (s.child.connected) s.child.send({ type: "exit" } satisfies ToWorker);
    }
    await Promise.all(
      spawned.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.child.exitCode !== null) return resolve();
            const timer = setTimeout(() => s.child.kill("SIGKILL"), 10_000);
            s.child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const loadBefore = loadavg()[0]!;
  const nats = await startNatsServer();
  const results: CaseResult[] = [];
  try {
    for (const n of args.sizes) {
      for (const mode of modes) {
        const r = await runCase([nats.url], nats.pid, n, mode, args);
        results.push(r);
        process.stderr.write(
          `  ${n} ${mode}: last-subscriber p99 ${r.lastSubscriberMs.p99.toFixed(1)} ms, delivery ${(r.deliveryRatio * 100).toFixed(2)}%\n`,
        );
      }
    }
  } finally {
    await nats.stop();
  }
  for (const r of results) {
    const raw = results.find((x) => x.subscribers === r.subscribers && x.mode === "raw");
    if (raw && r.mode !== "raw") r.p99VsRaw = r.lastSubscriberMs.p99 / raw.lastSubscriberMs.p99;
  }
  const f = (n: number | undefined, d = 1) => (n === undefined ? "" : n.toFixed(d)).padStart(9);
  console.log(
    `notice fan-out, nats-server on loopback, ${args.notices} notices ${args.intervalMs} ms apart (+${warmupNotices} warm-up), ${cpus().length} cores, load average ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log(
    `${"subs".padStart(6)} ${"mode".padEnd(11)}${"conns".padStart(6)}${"wrk".padStart(4)}${"deliv%".padStart(9)}${"p50".padStart(9)}${"p99".padStart(9)}${"last p50".padStart(9)}${"last p99".padStart(9)}${"last max".padStart(9)}${"p99/raw".padStart(9)}${"cpu/ntc".padStart(9)}${"nats cpu".padStart(9)}`,
  );
  for (const r of results) {
    console.log(
      `${String(r.subscribers).padStart(6)} ${r.mode.padEnd(11)}${String(r.connections).padStart(6)}${String(r.workers).padStart(4)}${f(r.deliveryRatio * 100, 2)}${f(r.latencyMs.p50)}${f(r.latencyMs.p99)}${f(r.lastSubscriberMs.p50)}${f(r.lastSubscriberMs.p99)}${f(r.lastSubscriberMs.max)}${f(r.p99VsRaw, 2)}${f(r.cpuMsPerNotice.subscribers)}${f(r.cpuMsPerNotice.natsServer)}`,
    );
  }
  // The target is for the recommended grouping (SDK clients sharing a bus per connection).
  const big = results.filter((r) => r.subscribers >= 10_000 && r.mode === "sdk-shared");
  const meets = big.length > 0 ? big.every((r) => r.lastSubscriberMs.p99 <= targetP99Ms) : null;
  console.log(
    `latencies in ms (last = until the last subscriber had the notice); cpu/ntc = subscriber-process CPU ms per notice, nats cpu = nats-server CPU ms per notice\n` +
      `target last p99 <= ${targetP99Ms} ms at 10,000 SDK subscribers (sdk-shared): ${meets === null ? "not measured" : meets ? "met" : "NOT met"}`,
  );
  await mkdir(join(import.meta.dirname, "results"), { recursive: true });
  await writeFile(
    join(import.meta.dirname, "results", "notify.json"),
    `${JSON.stringify(
      {
        bench: "notify",
        node: process.version,
        cores: cpus().length,
        // Other work on the host inflates tail latency: compare runs at similar load.
        loadAverage1m: { before: loadBefore, after: loadavg()[0] },
        warmupNotices,
        notices: args.notices,
        intervalMs: args.intervalMs,
        targetLastSubscriberP99Ms: targetP99Ms,
        targetMet: meets,
        results,
      },
      null,
      2,
    )}\n`,
  );
}

const workerArg = process.argv.indexOf("--worker");
if (workerArg >= 0) await worker(JSON.parse(process.argv[workerArg + 1]!) as WorkerConfig);
else await main();
