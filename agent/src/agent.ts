/**
 * The agent: samples the host, its watched service and its probes every
 * sampling interval, appends each report to the replay buffer (which issues
 * its sequence number) and lets the connection send it. Between reports, while
 * a stream is up, it appends heartbeats (reports without samples) so the
 * leader hears from it at least every heartbeat interval. Directives go
 * through the executor and its allowlist.
 *
 * Every dependency with I/O comes in through `AgentDeps`, so tests run the
 * same agent with a fixed sampler, a recording command runner and a real gRPC
 * server.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Clock } from "../../common/clock.ts";
import { errorMessage } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import type { Rng } from "../../common/rng.ts";
import { createBackoff } from "./backoff.ts";
import type { CommandRunner } from "./command-runner.ts";
import type { AgentConfig } from "./config.ts";
import {
  type AgentConnection,
  type ConnectionStats,
  createAgentConnection,
  type HelloContext,
} from "./connection.ts";
import { createDirectiveExecutor, type DirectiveExecutor } from "./directives.ts";
import type { HostInfo, HostSampler } from "./host-sampler.ts";
import { httpRequest } from "./http-request.ts";
import type { AgentSample } from "./metric-names.ts";
import type { ProbeResult, ProbeSet } from "./probes.ts";
import type { ProcessWatcher } from "./process-watch.ts";
import { createReportBuffer, type ReportBuffer, type ReportBufferStats } from "./report-buffer.ts";
import { openReportStore, type ReportStore } from "./report-journal.ts";
import { createServiceControl, type ServiceControl } from "./service-control.ts";
import type { AgentTransport } from "./transport.ts";
import { componentRoles, encodeDirectiveResult, encodeHello, encodeReport } from "./wire.ts";

export interface AgentDeps {
  config: AgentConfig;
  clock: Clock;
  rng: Rng;
  logger: Logger;
  sampler: HostSampler;
  transport: AgentTransport;
  /** Runs systemctl (start/stop/show); never a shell. */
  runner: CommandRunner;
  serviceControl?: ServiceControl;
  processWatcher?: ProcessWatcher;
  probes?: ProbeSet;
  /** Reported in Hello, e.g. "understudy-agent 0.1.0". */
  softwareVersion: string;
  newInstanceId?: () => string;
}

export interface AgentStats {
  instanceId: string;
  samplingIntervalMs: number;
  heartbeatIntervalMs: number;
  reports: number;
  heartbeats: number;
  sampleErrors: number;
  buffer: ReportBufferStats;
  connection: ConnectionStats;
}

export interface Agent {
  readonly instanceId: string;
  readonly host: HostInfo;
  /** Starts sampling, heartbeats and the coordinator stream. */
  start(): void;
  setSamplingIntervalMs(ms: number): void;
  stats(): AgentStats;
  /** Stops loops and the stream; persists the buffer (when a data dir is set). */
  stop(): Promise<void>;
}

/** Opens the buffer (recovering it from the data dir) and warms the sampler up. */
export async function createAgent(deps: AgentDeps): Promise<Agent> {
  const { config, clock, logger } = deps;
  const newInstanceId = deps.newInstanceId ?? randomUUID;
  let store: ReportStore | undefined;
  let buffer: ReportBuffer;
  let instanceId: string;
  if (config.dataDir) {
    store = await openReportStore({
      dir: config.dataDir,
      bytesMax: config.bufferBytesMax,
      newInstanceId,
      logger,
    });
    buffer = store.buffer;
    instanceId = store.instanceId;
    logger.info("report buffer recovered", {
      dataDir: config.dataDir,
      instanceId,
      reports: store.recovered.reports,
      lastSeq: buffer.lastSeq,
      ackedSeq: buffer.ackedSeq,
    });
  } else {
    buffer = createReportBuffer({ bytesMax: config.bufferBytesMax });
    instanceId = newInstanceId();
  }
  const host = await deps.sampler.start();

  let samplingIntervalMs = config.sampling.intervalMs;
  let heartbeatIntervalMs = config.sampling.heartbeatIntervalMs;
  let lastAppendMono = Number.NEGATIVE_INFINITY;
  let reports = 0;
  let heartbeats = 0;
  let sampleErrors = 0;
  let sampleTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sampling: Promise<void> | undefined;
  let stopped = false;

  const control =
    deps.serviceControl ?? createServiceControl({ runner: deps.runner, clock, logger });

  const append = (content: Parameters<typeof encodeReport>[2]) => {
    buffer.append((seq) => encodeReport(seq, clock.nowMs(), content));
    lastAppendMono = clock.monotonicMs();
    connection.notifyAppended();
  };

  const capacity = () => {
    const c = config.component.capacity;
    return {
      cpuCores: c.cpuCores || host.cpuCores,
      memoryBytes: BigInt(c.memoryBytes || host.memoryBytes),
      egressBps: BigInt(c.egressBps),
      maxStreams: c.maxStreams,
      maxSessions: c.maxSessions,
    };
  };

  const hello = (ctx: HelloContext) =>
    encodeHello({
      lostLeaderId: ctx.lostLeaderId,
      componentId: config.component.id,
      role: componentRoles[config.component.role],
      host: config.component.host,
      labels: config.component.labels,
      capacity: capacity(),
      softwareVersion: deps.softwareVersion.slice(0, 128),
      lastAckedSequence: BigInt(buffer.ackedSeq),
      agentInstanceId: instanceId,
      samplingIntervalMs,
      baseUrl: config.component.baseUrl,
      controlAddress: config.component.controlAddress,
    });

  const executor: DirectiveExecutor = createDirectiveExecutor({
    services: config.services,
    control,
    clock,
    logger,
    intervalMsMin: config.directiveIntervalMsMin,
    intervalMsMax: config.directiveIntervalMsMax,
    hooks: {
      setSamplingIntervalMs: (ms) => agent.setSamplingIntervalMs(ms),
      drain: (deadlineAgentMs, timeoutMs) => drain(deadlineAgentMs, timeoutMs),
    },
  });

  const drain = async (deadlineAgentMs: number | undefined, timeoutMs: number) => {
    if (!config.drainUrl) throw new Error("no drain action configured on this agent (drainUrl)");
    const res = await httpRequest(config.drainUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ deadlineUnixMs: deadlineAgentMs ?? 0 }),
      timeoutMs,
      bodyBytesMax: 4096,
    });
    if (res.status < 200 || res.status > 299) {
      throw new Error(`drain endpoint answered HTTP ${res.status}: ${res.body.slice(0, 200)}`);
    }
    return `drain requested (HTTP ${res.status})`;
  };

  const connection: AgentConnection = createAgentConnection({
    addresses: config.coordinator.addresses,
    transport: deps.transport,
    buffer,
    hello,
    backoff: createBackoff(
      { initialMs: config.coordinator.backoffInitialMs, maxMs: config.coordinator.backoffMaxMs },
      deps.rng,
    ),
    helloTimeoutMs: config.coordinator.helloTimeoutMs,
    ackTimeoutMs: config.coordinator.ackTimeoutMs,
    replayBatchMax: config.coordinator.replayBatchMax,
    retryAfterMsMax: config.coordinator.backoffMaxMs,
    clock,
    logger,
    onWelcome(welcome) {
      executor.observeTerm(welcome.term);
      const ms = welcome.samplingIntervalMs;
      if (ms >= 100 && ms <= 60_000 && ms !== samplingIntervalMs) agent.setSamplingIntervalMs(ms);
      const hb = welcome.heartbeatIntervalMs;
      if (hb >= 50 && hb <= 60_000 && hb !== heartbeatIntervalMs) {
        heartbeatIntervalMs = hb;
        scheduleHeartbeat();
      }
      // A live heartbeat at once, queued behind the replay: the (new) leader
      // sees live reports flow as soon as the replay is through, instead of
      // up to a heartbeat interval later.
      if (!stopped) {
        append(undefined);
        heartbeats++;
      }
    },
    async onDirective(d, ctx) {
      const result = await executor.execute(d, ctx);
      return encodeDirectiveResult(result);
    },
  });

  const sampleOnce = async () => {
    const startedMono = clock.monotonicMs();
    const samples: AgentSample[] = [];
    const probes: ProbeResult[] = [];
    const [hostOut, procOut] = await Promise.allSettled([
      deps.sampler.sample(),
      deps.processWatcher ? deps.processWatcher.sample() : Promise.resolve([]),
    ]);
    for (const r of [hostOut, procOut]) {
      if (r.status === "fulfilled") samples.push(...r.value);
      else {
        sampleErrors++;
        // Logged on the first failure and then every 60th, so a broken source cannot flood logs.
        if (sampleErrors % 60 === 1)
          logger.warn("sampling failed", { err: errorMessage(r.reason) });
      }
    }
    if (deps.probes) {
      const p = deps.probes.collect();
      samples.push(...p.samples);
      probes.push(...p.probes);
      deps.probes.launch();
    }
    const link = connection.takeLinkProbe();
    samples.push(...link.samples);
    probes.push(...link.probes);
    if (stopped) return;
    append({ samples, probes });
    reports++;
    const tookMs = clock.monotonicMs() - startedMono;
    if (tookMs > samplingIntervalMs) {
      logger.warn("sampling took longer than the interval", { tookMs, samplingIntervalMs });
    }
  };

  const scheduleSample = (delayMs: number) => {
    if (stopped) return;
    clearTimeout(sampleTimer);
    sampleTimer = setTimeout(() => {
      const started = clock.monotonicMs();
      sampling = sampleOnce()
        .catch((err: unknown) => logger.error("report failed", { err }))
        .finally(() => {
          sampling = undefined;
          // Fixed-rate schedule: a slow tick shortens the next wait, never below zero.
          scheduleSample(Math.max(0, samplingIntervalMs - (clock.monotonicMs() - started)));
        });
    }, delayMs);
  };

  /**
   * The watched service's death must reach the leader within about a
   * heartbeat, not a sampling interval: each heartbeat tick checks the last
   * seen pid cheaply and, when it is gone, samples at once (proc.up = 0).
   */
  const watchedGone = (): boolean => {
    const pid = deps.processWatcher?.currentPid();
    if (pid === undefined) return false;
    try {
      // Field 3 of /proc/<pid>/stat is the state; a zombie has exited.
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
    } catch {
      return true;
    }
  };

  const scheduleHeartbeat = () => {
    clearTimeout(heartbeatTimer);
    if (stopped) return;
    heartbeatTimer = setTimeout(() => {
      if (sampling === undefined && watchedGone()) scheduleSample(0);
      // Heartbeats only prove liveness to a leader that is listening; while
      // disconnected they would only fill the buffer.
      const quietMs = clock.monotonicMs() - lastAppendMono;
      if (connection.state === "connected" && quietMs >= heartbeatIntervalMs * 0.9) {
        append(undefined);
        heartbeats++;
      }
      scheduleHeartbeat();
    }, heartbeatIntervalMs);
  };

  const agent: Agent = {
    instanceId,
    host,
    start() {
      connection.start();
      scheduleSample(samplingIntervalMs);
      scheduleHeartbeat();
      logger.info("agent started", {
        componentId: config.component.id,
        role: config.component.role,
        instanceId,
        coordinators: config.coordinator.addresses,
        samplingIntervalMs,
        heartbeatIntervalMs,
      });
    },
    setSamplingIntervalMs(ms) {
      if (ms === samplingIntervalMs) return;
      logger.info("sampling interval changed", { fromMs: samplingIntervalMs, toMs: ms });
      samplingIntervalMs = ms;
      if (!sampling) scheduleSample(ms);
    },
    stats: () => ({
      instanceId,
      samplingIntervalMs,
      heartbeatIntervalMs,
      reports,
      heartbeats,
      sampleErrors,
      buffer: buffer.stats(),
      connection: connection.stats(),
    }),
    async stop() {
      stopped = true;
      clearTimeout(sampleTimer);
      clearTimeout(heartbeatTimer);
      await sampling;
      await connection.stop();
      await deps.probes?.settle();
      deps.transport.close();
      await store?.close();
    },
  };
  return agent;
}
