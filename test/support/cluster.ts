/**
 * A real coordinator cluster for tests and benchmarks: N `understudy
 * coordinator` processes on loopback ports, each with its own temp data
 * directory and a stderr log file. Ports are picked up front (bind port 0,
 * read it, close) because every node's config names every peer.
 *
 * Contract: no child outlives the test process. `stopAll()` stops everything
 * (SIGCONT, SIGTERM, then SIGKILL after a grace period) and removes the temp
 * directory; a process 'exit' hook SIGKILLs whatever is still alive if a test
 * fails before reaching `stopAll()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { stringify } from "yaml";
import { Code } from "../../common/errors.ts";
import { createGrpcClient, type GrpcClient } from "../../common/grpc-client.ts";
import { sleep } from "../../deploy/local-cluster/cluster.ts";
import { freePorts, repoRoot, understudyBin } from "../../deploy/local-cluster/supervisor.ts";
import { type RunTokens, writeRunTokens } from "../../deploy/local-cluster/tokens.ts";
import { ClusterService, NodeRole } from "../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import { StreamService } from "../../proto/gen/understudy/api/v1/stream_service_pb.ts";
import { LatencyMode } from "../../proto/gen/understudy/common/v1/stream_pb.ts";

// ------------------------------------------------------------ process hygiene

const liveChildren = new Set<ChildProcess>();
const liveTempDirs = new Set<string>();
let exitHookInstalled = false;

/** Last resort when a test dies before stopAll(): synchronous, so it works inside 'exit'. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of liveChildren) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const d of liveTempDirs) rmSync(d, { recursive: true, force: true });
  });
}

export { sleep } from "../../deploy/local-cluster/cluster.ts";
/** Free loopback TCP ports, all distinct (held open together, then released). */
// One implementation of these, shared with the demo's process launcher.
export { freePorts, repoRoot, understudyBin } from "../../deploy/local-cluster/supervisor.ts";

// ------------------------------------------------------------ CLI runs

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `understudy <args>` to completion (SIGKILL after `timeoutMs`). */
export function runCli(args: readonly string[], timeoutMs = 20_000): Promise<CliResult> {
  installExitHook();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [understudyBin, ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    liveChildren.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// ------------------------------------------------------------ cluster

export type RoleName = "follower" | "candidate" | "pre-candidate" | "leader" | "learner" | "?";

/** GetStatus with 64-bit fields as numbers. */
export interface NodeStatusView {
  readonly nodeId: string;
  readonly role: RoleName;
  readonly term: number;
  readonly leaderId: string;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly stateHash: string;
  readonly members: readonly { id: string; voter: boolean }[];
}

const roleNames: Record<number, RoleName> = {
  [NodeRole.FOLLOWER]: "follower",
  [NodeRole.CANDIDATE]: "candidate",
  [NodeRole.PRE_CANDIDATE]: "pre-candidate",
  [NodeRole.LEADER]: "leader",
  [NodeRole.LEARNER]: "learner",
};

export type NodeState = "down" | "running" | "stopped";

export interface ClusterNode {
  readonly id: string;
  /** Per-node directory: config.yaml, data/, stderr.log. */
  readonly dir: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly stderrFile: string;
  readonly apiAddress: string;
  readonly peerAddress: string;
  readonly cluster: GrpcClient<typeof ClusterService>;
  readonly streams: GrpcClient<typeof StreamService>;
  /** down: no process; running; stopped: SIGSTOPped. */
  state: NodeState;
  proc?: ChildProcess;
  /** How the last process ended (set when it exits). */
  lastExit?: { code: number | null; signal: NodeJS.Signals | null };
  /** Extra top-level config fields (e.g. join: true). */
  readonly extraConfig: Record<string, unknown>;
}

export interface ClusterOptions {
  /** Voters in the bootstrap list (default 3). */
  size?: number;
  /** Merged into the `raft:` section of every node's config. */
  raft?: Record<string, unknown>;
  /** Merged into the `api:` section. */
  api?: Record<string, unknown>;
  logLevel?: "debug" | "info" | "warn" | "error";
  /** Bound on one node's start (spawn → "listening" line). Default 20 s. */
  startTimeoutMs?: number;
  /** Temp dir name prefix. */
  name?: string;
  /** Extra flags for each node's `node` executable (e.g. ["--cpu-prof", "--cpu-prof-dir=DIR"]). */
  nodeArgs?: readonly string[];
  /** Top-level config sections merged into every node's YAML (e.g. `raftOnly`). */
  config?: Record<string, unknown>;
  /**
   * What each node runs, before `--config FILE` (default: the understudy
   * executable's `coordinator` command). bench/raft.ts runs bench/raft-node.ts.
   */
  command?: readonly string[];
  /**
   * Bearer-token auth on every node (default true): random tokens in
   * `<root>/tokens` (0600), the API taking `tokens.admin` etc. and the peer
   * port the peer token. The cluster's own clients send the admin token.
   */
  auth?: boolean;
}

/**
 * Config that turns off the leader's background proposers (placement rounds,
 * automatic handovers, prediction), so Raft tests and benchmarks see only
 * their own writes: applied indexes and state hashes then move only when the
 * test writes.
 */
export const raftOnly: Record<string, unknown> = {
  placement: { automatic: false },
  handover: { automatic: false },
  predict: { enabled: false },
};

export type Signal = "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGTERM";

export interface WriteOptions {
  /** Give up after this long overall (default 15 s). */
  deadlineMs?: number;
  /** Per-attempt RPC deadline (default 2 s). */
  attemptTimeoutMs?: number;
  /** Node to try first (default: the last leader seen). */
  prefer?: string;
}

export interface WriteOutcome<T> {
  readonly value: T;
  readonly attempts: number;
  readonly nodeId: string;
}

export interface LeaderMonitor {
  stop(): Promise<{
    leadersByTerm: Map<number, Set<string>>;
    samples: number;
    /** Terms in which more than one node claimed leadership (must be empty). */
    conflicts: string[];
  }>;
}

/** Codes after which the same request (same request_id) is retried. */
const retryable = new Set<number>([Code.Unavailable, Code.DeadlineExceeded]);

export function grpcCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "number" ? c : undefined;
}

/** The status message of a grpc-js error (`details`, without the "14 UNAVAILABLE: " prefix). */
export function grpcMessage(err: unknown): string {
  const e = err as { details?: unknown; message?: unknown };
  return typeof e?.details === "string" ? e.details : String(e?.message ?? err);
}

export class TestCluster {
  readonly root: string;
  readonly nodes = new Map<string, ClusterNode>();
  /** Last node seen as leader (a hint for writes). */
  lastLeader = "";
  /** This run's tokens (undefined with `auth: false`); clients send `tokens.tokens.admin` etc. */
  readonly tokens: RunTokens | undefined;
  private readonly opts: Required<Pick<ClusterOptions, "startTimeoutMs" | "logLevel">> &
    ClusterOptions;
  private bootstrapList: { id: string; peerAddress: string; apiAddress: string }[] = [];

  private constructor(opts: ClusterOptions) {
    installExitHook();
    this.opts = { startTimeoutMs: 20_000, logLevel: "info", ...opts };
    this.root = mkdtempSync(join(tmpdir(), `understudy-${opts.name ?? "cluster"}-`));
    liveTempDirs.add(this.root);
    this.tokens = opts.auth === false ? undefined : writeRunTokens(join(this.root, "tokens"));
  }

  /** Client options carrying a token of this run (none with `auth: false`). */
  clientOptions(token: "admin" | "reader" | "agent" | "encoder" = "admin"): {
    bearerToken?: string;
  } {
    return this.tokens ? { bearerToken: this.tokens.tokens[token] } : {};
  }

  /** Creates the configs for `size` bootstrap voters c1..cN and starts them all. */
  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(opts);
    try {
      const size = opts.size ?? 3;
      const ports = await freePorts(size * 2);
      c.bootstrapList = Array.from({ length: size }, (_, i) => ({
        id: `c${i + 1}`,
        peerAddress: `127.0.0.1:${ports[2 * i]}`,
        apiAddress: `127.0.0.1:${ports[2 * i + 1]}`,
      }));
      for (const m of c.bootstrapList) c.define(m.id, m.peerAddress, m.apiAddress, {});
      await Promise.all(c.ids().map((id) => c.start(id)));
    } catch (err) {
      process.stderr.write(c.logTails());
      await c.stopAll();
      throw err;
    }
    return c;
  }

  ids(): string[] {
    return [...this.nodes.keys()];
  }

  node(id: string): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node "${id}" in this cluster`);
    return n;
  }

  running(): string[] {
    return this.ids().filter((id) => this.node(id).state === "running");
  }

  /**
   * Defines a node that is not part of the bootstrap list (`join: true` by
   * default, with every existing node as an address hint). Not started.
   */
  async defineJoiner(id: string, extra: Record<string, unknown> = {}): Promise<ClusterNode> {
    const [peer, api] = await freePorts(2);
    return this.define(id, `127.0.0.1:${peer}`, `127.0.0.1:${api}`, {
      join: true,
      peers: [...this.nodes.values()].map((n) => ({
        id: n.id,
        peerAddress: n.peerAddress,
        apiAddress: n.apiAddress,
      })),
      ...extra,
    });
  }

  private define(
    id: string,
    peerAddress: string,
    apiAddress: string,
    extraConfig: Record<string, unknown>,
  ): ClusterNode {
    const dir = join(this.root, id);
    mkdirSync(dir, { recursive: true });
    const channelOptions = {
      // Tests restart nodes on the same port: reconnect quickly.
      "grpc.initial_reconnect_backoff_ms": 50,
      "grpc.max_reconnect_backoff_ms": 300,
    };
    const node: ClusterNode = {
      id,
      dir,
      dataDir: join(dir, "data"),
      configFile: join(dir, "config.yaml"),
      stderrFile: join(dir, "stderr.log"),
      apiAddress,
      peerAddress,
      cluster: createGrpcClient(ClusterService, apiAddress, {
        channelOptions,
        ...this.clientOptions(),
      }),
      streams: createGrpcClient(StreamService, apiAddress, {
        channelOptions,
        ...this.clientOptions(),
      }),
      state: "down",
      extraConfig,
    };
    this.nodes.set(id, node);
    this.writeConfig(node);
    return node;
  }

  /** (Re)writes a node's YAML config; `patch` fields override the generated ones. */
  writeConfig(node: ClusterNode, patch: Record<string, unknown> = {}): void {
    const join = node.extraConfig.join === true;
    const auth = this.tokens?.coordinatorConfig();
    const cfg: Record<string, unknown> = {
      nodeId: node.id,
      dataDir: node.dataDir,
      peerListen: node.peerAddress,
      apiListen: node.apiAddress,
      ...(join ? {} : { bootstrap: this.bootstrapList }),
      ...(auth ? { auth: auth.auth, packagerControl: auth.packagerControl } : {}),
      raft: { ...auth?.raft, ...this.opts.raft },
      api: { ...this.opts.api },
      log: { level: this.opts.logLevel },
      ...this.opts.config,
      ...node.extraConfig,
      ...patch,
    };
    writeFileSync(node.configFile, `# generated by test/support/cluster.ts\n${stringify(cfg)}`);
  }

  /** Spawns the node's process and waits for its "listening" line. */
  async start(id: string): Promise<void> {
    const node = this.node(id);
    if (node.state !== "down") throw new Error(`node ${id} is already ${node.state}`);
    const errFd = openSync(node.stderrFile, "a");
    let child: ChildProcess;
    try {
      const argv = [
        ...(this.opts.nodeArgs ?? []),
        ...(this.opts.command ?? [understudyBin, "coordinator"]),
        "--config",
        node.configFile,
      ];
      child = spawn(process.execPath, argv, {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", errFd],
      });
    } finally {
      closeSync(errFd);
    }
    liveChildren.add(child);
    node.proc = child;
    node.state = "running";
    node.lastExit = undefined;
    child.once("exit", (code, signal) => {
      liveChildren.delete(child);
      if (node.proc === child) {
        node.state = "down";
        node.lastExit = { code, signal };
        node.proc = undefined;
      }
    });
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      const stdout = child.stdout!;
      stdout.setEncoding("utf8");
      const timer = setTimeout(() => {
        fail(
          new Error(
            `node ${id} did not print its "listening" line within ${this.opts.startTimeoutMs} ms`,
          ),
        );
        child.kill("SIGKILL");
      }, this.opts.startTimeoutMs);
      const onData = (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const ev = JSON.parse(line) as { event?: string; api?: string };
            if (ev.event === "listening") {
              done();
              resolve();
              return;
            }
          } catch {
            // not JSON: ignore
          }
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        fail(
          new Error(
            `node ${id} exited (code ${code}, signal ${signal}) before listening:\n${this.stderrTail(id)}`,
          ),
        );
      const done = () => {
        clearTimeout(timer);
        stdout.off("data", onData);
        child.off("exit", onExit);
        stdout.resume(); // keep draining: a full pipe would block the child
      };
      const fail = (err: Error) => {
        done();
        reject(err);
      };
      stdout.on("data", onData);
      child.once("exit", onExit);
      child.once("error", (err) =>
        fail(new Error(`node ${id} could not be spawned: ${err.message}`)),
      );
    });
  }

  /** Alias of start() for a node that was killed. */
  restart(id: string): Promise<void> {
    return this.start(id);
  }

  /**
   * Sends a signal. SIGKILL/SIGTERM resolve once the process exited (SIGTERM
   * escalates to SIGKILL after 10 s); SIGSTOP/SIGCONT resolve immediately.
   */
  async kill(id: string, signal: Signal): Promise<void> {
    const node = this.node(id);
    const child = node.proc;
    if (!child || node.state === "down") throw new Error(`node ${id} is not running`);
    if (signal === "SIGSTOP" || signal === "SIGCONT") {
      child.kill(signal);
      node.state = signal === "SIGSTOP" ? "stopped" : "running";
      return;
    }
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    if (node.state === "stopped" && signal === "SIGTERM") child.kill("SIGCONT");
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** One node's GetStatus (bounded by `timeoutMs`). */
  async status(id: string, timeoutMs = 1000): Promise<NodeStatusView> {
    const r = await this.node(id).cluster.getStatus({}, { timeoutMs });
    const n = r.node!;
    return {
      nodeId: n.nodeId,
      role: roleNames[n.role] ?? "?",
      term: Number(n.term),
      leaderId: n.leaderId,
      commit: Number(n.commitIndex),
      applied: Number(n.appliedIndex),
      lastIndex: Number(n.lastLogIndex),
      snapshotIndex: Number(n.snapshotIndex),
      stateHash: n.stateHash,
      members: r.members.map((m) => ({ id: m.nodeId, voter: m.voter })),
    };
  }

  /** Statuses of the running nodes that answered (SIGSTOPped and dead nodes are skipped). */
  async statuses(timeoutMs = 1000): Promise<NodeStatusView[]> {
    const got = await Promise.allSettled(this.running().map((id) => this.status(id, timeoutMs)));
    return got.flatMap((g) => (g.status === "fulfilled" ? [g.value] : []));
  }

  /**
   * The leader as the running nodes see it: a node reporting role leader
   * whose term no answering node exceeds. Undefined when there is none.
   */
  async leader(opts: { exclude?: readonly string[] } = {}): Promise<string | undefined> {
    const all = await this.statuses(1000);
    const sts = all.filter((s) => !opts.exclude?.includes(s.nodeId));
    const maxTerm = Math.max(0, ...sts.map((s) => s.term));
    const l = sts.find((s) => s.role === "leader" && s.term === maxTerm);
    if (l) this.lastLeader = l.nodeId;
    return l?.nodeId;
  }

  async waitForLeader(
    timeoutMs = 10_000,
    opts: { exclude?: readonly string[] } = {},
  ): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const l = await this.leader(opts);
      if (l) return l;
      await sleep(25);
    }
    throw new Error(
      `no leader within ${timeoutMs} ms; statuses: ${JSON.stringify(await this.statuses(500))}`,
    );
  }

  /**
   * Waits until every node in `ids` (default: the running ones) reports the
   * same applied index, at least `minApplied`, and the same state hash.
   */
  async waitForConverged(
    timeoutMs = 10_000,
    opts: { ids?: readonly string[]; minApplied?: number } = {},
  ): Promise<NodeStatusView[]> {
    const ids = opts.ids ?? this.running();
    const deadline = performance.now() + timeoutMs;
    let last: NodeStatusView[] = [];
    while (performance.now() < deadline) {
      const got = await Promise.allSettled(ids.map((id) => this.status(id, 1000)));
      last = got.flatMap((g) => (g.status === "fulfilled" ? [g.value] : []));
      if (
        last.length === ids.length &&
        last.every(
          (s) =>
            s.applied === last[0]!.applied &&
            s.stateHash === last[0]!.stateHash &&
            s.applied >= (opts.minApplied ?? 0),
        )
      ) {
        return last;
      }
      await sleep(50);
    }
    throw new Error(
      `nodes ${ids.join(",")} did not converge within ${timeoutMs} ms: ${JSON.stringify(last)}`,
    );
  }

  /**
   * Runs `call` against the leader, following redirects: on UNAVAILABLE or
   * DEADLINE_EXCEEDED it retries (the caller keeps the request_id, so a
   * retry applies at most once) on the node the error names, or the next
   * node. Other errors are thrown at once.
   */
  async write<T>(
    call: (node: ClusterNode, timeoutMs: number) => Promise<T>,
    opts: WriteOptions = {},
  ): Promise<WriteOutcome<T>> {
    const deadline = performance.now() + (opts.deadlineMs ?? 15_000);
    const attemptTimeoutMs = opts.attemptTimeoutMs ?? 2000;
    const ids = this.ids();
    let target = opts.prefer ?? (this.lastLeader || ids[0]!);
    let backoffMs = 10;
    let lastErr: unknown;
    for (let attempt = 1; performance.now() < deadline; attempt++) {
      try {
        const value = await call(this.node(target), attemptTimeoutMs);
        this.lastLeader = target;
        return { value, attempts: attempt, nodeId: target };
      } catch (err) {
        const code = grpcCode(err);
        if (code === undefined || !retryable.has(code)) throw err;
        lastErr = err;
        const hinted = this.leaderHint(err);
        if (hinted && hinted !== target) {
          target = hinted;
          backoffMs = 10;
          continue; // a named leader: go there at once
        }
        target = ids[(ids.indexOf(target) + 1) % ids.length]!;
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 200);
      }
    }
    throw lastErr ?? new Error("write deadline passed before the first attempt");
  }

  /**
   * Polls every running node's GetStatus each `intervalMs` and records which
   * node claimed leadership in which term. Raft's election safety says each
   * term has at most one leader: `stop()` returns the claims for checking.
   */
  monitorLeaders(intervalMs = 50): LeaderMonitor {
    const leadersByTerm = new Map<number, Set<string>>();
    let samples = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        for (const s of await this.statuses(500)) {
          if (s.role !== "leader") continue;
          let set = leadersByTerm.get(s.term);
          if (!set) {
            set = new Set();
            leadersByTerm.set(s.term, set);
          }
          set.add(s.nodeId);
        }
        samples++;
        await sleep(intervalMs);
      }
    })();
    return {
      async stop() {
        running = false;
        await loop;
        const conflicts = [...leadersByTerm]
          .filter(([, set]) => set.size > 1)
          .map(([term, set]) => `term ${term}: ${[...set].join(", ")}`);
        return { leadersByTerm, samples, conflicts };
      },
    };
  }

  /** Creates streams `${prefix}-0` .. `${prefix}-${count - 1}` one at a time through the leader. */
  async createStreams(prefix: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const id = `${prefix}-${i}`;
      await this.write((n, t) =>
        n.streams.createStream({ spec: streamSpec(id), requestId: `r-${id}` }, { timeoutMs: t }),
      );
    }
  }

  /** The node an UNAVAILABLE error redirects to (x-understudy-leader header or message). */
  leaderHint(err: unknown): string | undefined {
    const md = (err as { metadata?: grpc.Metadata }).metadata;
    const addr = md?.get("x-understudy-leader")[0];
    if (typeof addr === "string") {
      for (const n of this.nodes.values()) if (n.apiAddress === addr) return n.id;
    }
    const m = /leader "([a-z0-9-]+)"/.exec(grpcMessage(err));
    return m && this.nodes.has(m[1]!) ? m[1] : undefined;
  }

  /** All stream ids on one node via linearizable (or stale) ListStreams, all pages. */
  async listStreamIds(id: string, opts: { staleOk?: boolean } = {}): Promise<string[]> {
    const out: string[] = [];
    let pageToken = "";
    for (let page = 0; page < 10_000; page++) {
      const r = await this.node(id).streams.listStreams(
        { pageSize: 1000, pageToken, staleOk: opts.staleOk ?? false },
        { timeoutMs: 5000 },
      );
      for (const s of r.streams) out.push(s.spec?.id ?? "");
      if (!r.nextPageToken) return out;
      pageToken = r.nextPageToken;
    }
    throw new Error("ListStreams did not end within 10000 pages");
  }

  stderrTail(id: string, lines = 30): string {
    try {
      const text = readFileSync(this.node(id).stderrFile, "utf8");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no stderr)";
    }
  }

  /** Every node's stderr tail, for a failing test's output. */
  logTails(lines = 30): string {
    return this.ids()
      .map(
        (id) => `----- ${id} stderr (last ${lines} lines) -----\n${this.stderrTail(id, lines)}\n`,
      )
      .join("");
  }

  /** Stops every process (none is left behind) and removes the temp dir unless `keepDir`. */
  async stopAll(opts: { keepDir?: boolean } = {}): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        if (n.state !== "down" && n.proc) await this.kill(n.id, "SIGTERM").catch(() => undefined);
      }),
    );
    for (const n of this.nodes.values()) {
      n.cluster.close();
      n.streams.close();
    }
    if (!opts.keepDir) {
      rmSync(this.root, { recursive: true, force: true });
      liveTempDirs.delete(this.root);
    }
  }
}

/**
 * Mocha hooks for one cluster shared by a `describe` block: started (and a
 * leader awaited) before its tests, stderr tails printed after a failing
 * test, stopped after the block. Returns a getter for the cluster.
 */
export function sharedCluster(opts: ClusterOptions): () => TestCluster {
  let current: TestCluster | undefined;
  before(async () => {
    current = await TestCluster.start(opts);
    await current.waitForLeader(10_000);
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed" && current) process.stderr.write(current.logTails(40));
  });
  after(async () => {
    await current?.stopAll();
  });
  return () => {
    if (!current) throw new Error("the shared cluster is not running (its before hook failed?)");
    return current;
  };
}

/**
 * Mocha hooks for tests that each start their own cluster: after every test
 * the cluster's stderr tails are printed if the test failed, and all of its
 * processes are stopped. Call inside `describe`; start clusters with
 * `clusters.start(opts)`.
 */
export function perTestCluster(): { start(opts: ClusterOptions): Promise<TestCluster> } {
  let current: TestCluster | undefined;
  afterEach(async function () {
    if (this.currentTest?.state === "failed" && current) process.stderr.write(current.logTails(40));
    await current?.stopAll();
    current = undefined;
  });
  return {
    async start(opts) {
      current = await TestCluster.start(opts);
      return current;
    },
  };
}

/** Polls `cond` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

// ------------------------------------------------------------ request builders

/** A valid video rendition (720p H.264 + AAC). */
export const testRendition = {
  id: "v720",
  bandwidthBps: 3_000_000n,
  width: 1280,
  height: 720,
  frameRate: 30,
  codecs: "avc1.64001f,mp4a.40.2",
};

/** A 360p H.264 rendition, for tests that name renditions "360p"/"180p". */
export const rendition360p = {
  id: "360p",
  bandwidthBps: 700_000n,
  width: 640,
  height: 360,
  frameRate: 30,
  codecs: "avc1.42c01e",
};
export const rendition180p = {
  id: "180p",
  bandwidthBps: 300_000n,
  width: 320,
  height: 180,
  frameRate: 30,
  codecs: "avc1.42c01e",
};

/** A valid low-latency StreamSpec init (a plain object, so tests can spread and patch it). */
export function streamSpec(id: string) {
  return {
    id,
    displayName: `test stream ${id}`,
    renditions: [testRendition],
    shardDurationMs: 500,
    segmentPolicy: {
      segmentDurationTargetMs: 2000,
      segmentDurationMinMs: 500,
      segmentDurationMaxMs: 4000,
      partDurationMs: 500,
    },
    replicationFactor: 2,
    latencyMode: LatencyMode.LOW_LATENCY,
  };
}
