/**
 * AgentService on the coordinator: the leader's end of every agent stream
 * (protocol in proto/understudy/agent/v1/agent.proto).
 *
 * Contracts:
 * - A follower answers the first message with Redirect and ends the stream
 *   (OK). During an election it first holds a Hello (at most
 *   `redirectHoldMs`) until it knows a leader other than the one the agent
 *   lost (Hello.lost_leader_id), so the agent is sent to the new leader the
 *   moment there is one; if it wins the election itself it welcomes the
 *   agent instead. The leader expects Hello first, validates it, registers or
 *   refreshes the component through the Raft log when something changed, and
 *   answers Welcome. Losing leadership ends every stream with UNAVAILABLE.
 * - One live stream per component. The same agent instance reconnecting
 *   replaces its old stream; a different instance is refused with
 *   ALREADY_EXISTS while the open stream is fresh (a second agent configured
 *   with the same component id), and takes over once the open stream has
 *   been silent for `staleStreamMs` (a half-open TCP connection of a dead
 *   agent).
 * - Dedupe: per (component, agent instance) the leader keeps a watermark, the
 *   highest sequence ingested. Reports arrive in order on a stream, so a
 *   sequence at or below the watermark is a duplicate (replay): dropped,
 *   counted, still acked. A jump above watermark + 1 means the agent's buffer
 *   lost reports (counted as gaps). Watermarks survive reconnects and leader
 *   changes on this node, and are restored from history files at start, so
 *   replays never double-count.
 * - Ack: the watermark is sent at most every `ackIntervalMs` per stream
 *   (immediately when that long has passed since the last one, else by the
 *   maintenance timer), and at once when a replay ends (first live report
 *   after replayed ones). An
 *   Ack means "in this leader's memory window"; history files get the bucket
 *   when it closes (so a restarted leader asks for the rest again).
 * - Clock skew: a live report whose timestamp is more than `clockSkewMaxMs`
 *   from the coordinator clock is flagged (counted) and kept at the
 *   coordinator's receive time; later reports of that instance are shifted
 *   by the same offset. Replayed reports are kept at their (offset) time
 *   unless in the future or older than `replayAgeMaxMs`.
 * - Bad input never crashes the server: every violation ends the stream with
 *   a specific gRPC error (and is counted by reason) or is a counted flag.
 *   Oversized messages are refused by the RPC server (readMaxBytes) with
 *   RESOURCE_EXHAUSTED before they reach this code; served as `rpc`, bytes
 *   the hand-written decoder (wire.ts) refuses end the stream with
 *   INVALID_ARGUMENT ("malformed AgentMessage: ...", unreadable_message).
 * - Cost per message is what bounds agents per core (bench:ingest): served
 *   as `rpc` a report is decoded straight into interned samples, the
 *   handler does no per-report map lookups beyond the detector's, and acks
 *   are batched (above).
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Clock } from "../../../common/clock.ts";
import { Code, ConnectError, errorMessage, invalidArgument } from "../../../common/errors.ts";
import type { Logger } from "../../../common/log.ts";
import type { RawGrpcCall, RawGrpcRoute, ServiceRegistration } from "../../../common/rpc-server.ts";
import {
  type AgentMessage,
  type AgentService,
  CoordinatorMessageSchema,
  type DirectiveResult,
  type DirectiveSchema,
  type Hello,
  ProbeKind,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import type {
  Component,
  ComponentRole,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { ComponentCluster } from "./cluster.ts";
import { notLeaderMessage } from "./cluster.ts";
import {
  createHistoryWriter,
  type HistoryFileLimits,
  type HistoryReadStats,
  type HistoryWriter,
  type HistoryWriterStats,
  readHistory,
} from "./history-files.ts";
import { createOutbox, type Outbox, type OutMessage } from "./outbox.ts";
import {
  type ComponentSeries,
  componentBytesMax,
  createComponentSeries,
  defaultSeriesStoreLimits,
  type MemoryAccount,
  NO_LABELS,
  type SampleLabels,
  type SeriesStoreLimits,
  validateSeriesStoreLimits,
} from "./series-store.ts";
import {
  quote,
  type Rejection,
  type RejectReason,
  rejectReasons,
  roleName,
  validateHello,
  validateReport,
} from "./validate.ts";
import {
  type AgentMessageFrame,
  agentMessageFrameSchema,
  agentServiceFrames,
  type DecodedBody,
  decodeAgentFrame,
  fromProtoReport,
  type IngestReport,
  type IngestSample,
  isAgentMessageFrame,
} from "./wire.ts";

export type { IngestSample } from "./wire.ts";

export interface AgentIngestLimits extends SeriesStoreLimits {
  /** Components whose metrics are held; beyond it the least recently seen non-streaming one is evicted. */
  componentsMax: number;
  samplesPerReportMax: number;
  probesPerReportMax: number;
  /**
   * Largest encoded Report, announced in Welcome. The RPC server serving this
   * service must use readMaxBytes = reportBytesMax + AGENT_MESSAGE_OVERHEAD_BYTES
   * (see `agentIngestReadMaxBytes`), which makes bigger reports fail with
   * RESOURCE_EXHAUSTED.
   */
  reportBytesMax: number;
  clockSkewMaxMs: number;
  replayAgeMaxMs: number;
  /**
   * At most one Ack per stream per interval (plus one at each replay end).
   * Every Ack is a message the server encodes and sends, so this trades
   * server CPU (bench:ingest: ~1/3 more reports per core at 10 s than at
   * 1 s) against how soon agents learn their watermark. Keep it well below
   * the agent's ackTimeoutMs (5000 by default), after which the agent counts
   * an unacked report as lost in probe.loss_ratio.
   */
  ackIntervalMs: number;
  /** Announced in Welcome; the failure detector expects reports this often. */
  heartbeatIntervalMs: number;
  /** 0 = accept the agent's requested sampling interval; else announce this one. */
  samplingIntervalMsOverride: number;
  /** An open stream silent this long may be taken over by another agent instance. */
  staleStreamMs: number;
  /** Watermarks kept (agent instances); oldest dropped beyond it. */
  instancesMax: number;
  /** Queued outbound messages per stream (directives). */
  outboxMessagesMax: number;
  /** Redirect.retry_after_ms when no leader is known. */
  redirectRetryAfterMs: number;
  /**
   * Longest a follower holds a Hello while an election is settling (no
   * leader known, or it still believes in the Hello's lost_leader_id) before
   * it answers Redirect anyway. Keep it well below the agents' helloTimeoutMs
   * (5000 by default), after which they give up on this node. 0 = never hold.
   */
  redirectHoldMs: number;
  /** History files are flushed (written) this often. */
  historyFlushIntervalMs: number;
}

export const defaultAgentIngestLimits: Readonly<AgentIngestLimits> = {
  ...defaultSeriesStoreLimits,
  componentsMax: 25_000,
  samplesPerReportMax: 512,
  probesPerReportMax: 64,
  reportBytesMax: 1024 * 1024,
  clockSkewMaxMs: 30_000,
  replayAgeMaxMs: 6 * 3_600_000,
  ackIntervalMs: 2000,
  heartbeatIntervalMs: 250,
  samplingIntervalMsOverride: 0,
  staleStreamMs: 2000,
  instancesMax: 50_000,
  outboxMessagesMax: 64,
  redirectRetryAfterMs: 1000,
  redirectHoldMs: 2000,
  historyFlushIntervalMs: 1000,
};

/** Bytes an AgentMessage adds around its Report (oneof tag + length varint), rounded up. */
export const AGENT_MESSAGE_OVERHEAD_BYTES = 16;

/** readMaxBytes for the RPC server that serves this AgentService. */
export function agentIngestReadMaxBytes(limits: Partial<AgentIngestLimits> = {}): number {
  return (
    (limits.reportBytesMax ?? defaultAgentIngestLimits.reportBytesMax) +
    AGENT_MESSAGE_OVERHEAD_BYTES
  );
}

export interface IngestedReport {
  readonly componentId: string;
  readonly role: ComponentRole;
  /** Report time after skew handling (coordinator clock, unix ms). */
  readonly tMs: number;
  readonly sequence: number;
  readonly replayed: boolean;
  readonly heartbeatOnly: boolean;
  /** Wire samples, then samples derived from probes and from the arrival interval. */
  readonly samples: readonly IngestSample[];
}

export interface IngestStats {
  activeStreams: number;
  components: number;
  reports: number;
  samples: number;
  replayedReports: number;
  duplicateReports: number;
  /** Reports lost in agents' buffers (sequence jumps). */
  gapReports: number;
  skewedReports: number;
  /** Samples not stored because a component hit seriesPerComponentMax. */
  droppedSamples: number;
  /** Bytes the metric windows and history hold now (grows with what is stored). */
  metricBytes: number;
  /** Their bound: componentsMax × the per-component bound of the series limits. */
  metricBytesMax: number;
  lateSamples: number;
  rejected: Record<RejectReason, number>;
  redirects: number;
  registrations: number;
  streamsReplaced: number;
  componentsEvicted: number;
  directiveResults: number;
  /** Hellos a follower held while an election settled (see redirectHoldMs). */
  heldHellos: number;
  history: HistoryWriterStats | undefined;
  historyLoaded: HistoryReadStats | undefined;
}

export interface AgentIngestOptions {
  cluster: ComponentCluster;
  clock: Clock;
  log: Logger;
  /** Directory for history files; omitted = memory only. */
  historyDir?: string;
  limits?: Partial<AgentIngestLimits>;
  historyFiles?: Partial<HistoryFileLimits>;
  /** Run maintain() on a timer (default true). Tests pass false and call it. */
  autoMaintain?: boolean;
  /** Timeout of RegisterComponent proposals. Default 3000. */
  proposeTimeoutMs?: number;
}

export interface AgentIngest {
  /**
   * The AgentService implementation. `serve(AgentService, ingest.service)`
   * works, but then connect-node decodes every message with protobuf-es's
   * generic decoder; serve `rpc` instead.
   */
  readonly service: Partial<ServiceImpl<typeof AgentService>>;
  /**
   * What the API server should register for AgentService
   * (`startRpcServer({ services: [ingest.rpc, ...] })`): the same
   * implementation behind `agentServiceFrames` (wire.ts), so reports and
   * heartbeats are decoded by the hand-written decoder. Same method path and
   * wire protocol (gRPC, gRPC-Web, Connect, binary and JSON); reflection
   * still describes agent.proto. Needs the router's default
   * readUnknownFields (true).
   */
  readonly rpc: ServiceRegistration;
  /**
   * The same service as a raw gRPC route (`startRpcServer({ rawGrpc: [ingest.rawGrpc] })`)
   * for gRPC clients (agents use grpc-js): no connect-node pipeline, messages
   * handled as they arrive, same semantics and errors as `rpc`. Register
   * `rpc` too, for gRPC-Web and Connect clients. Oversized messages are
   * refused by the server's readMaxBytes as with `rpc`.
   */
  readonly rawGrpc: RawGrpcRoute;
  /** Loads history files, subscribes to leadership changes, starts maintenance. */
  start(): Promise<void>;
  /** Ends all streams (UNAVAILABLE), closes open buckets, flushes and closes history. */
  close(): Promise<void>;
  /** Liveness proofs (Hello, live reports, directive results) for the failure detector. */
  onLiveness(listener: (componentId: string, heartbeatIntervalMs: number) => void): () => void;
  /** Every ingested (non-duplicate) report, after it is in the windows (predictor feed). */
  onReport(listener: (r: IngestedReport) => void): () => void;
  onDirectiveResult(listener: (componentId: string, r: DirectiveResult) => void): () => void;
  /** Metric windows and history of a component (undefined if none held). */
  component(componentId: string): ComponentSeries | undefined;
  componentIds(): IterableIterator<string>;
  /** Last time this node received anything from the component's agent (unix ms, 0 = never). */
  lastSeenUnixMs(componentId: string): number;
  isStreaming(componentId: string): boolean;
  /** The component's latest agent stream and its ingest counters (undefined if it never streamed here). */
  streamStatus(componentId: string): AgentStreamView | undefined;
  /** Queues a directive on the component's live stream; false if none or its queue is full. */
  sendDirective(componentId: string, d: MessageInitShape<typeof DirectiveSchema>): boolean;
  /** Sends due acks, closes idle history buckets, flushes history (the timer calls it). */
  maintain(): void;
  /** Writes pending history records now. */
  flushHistory(): Promise<void>;
  stats(): IngestStats;
}

interface Instance {
  readonly key: string;
  watermark: number;
  /** Agent clock minus coordinator clock, from the latest skewed live report (0 = none). */
  clockOffsetMs: number;
  /** Lowest sequence ingested by this process (0 = none); the rest are counts since start. */
  firstSeq: number;
  ingested: number;
  replayed: number;
  duplicates: number;
  gaps: number;
}

/** The latest stream of one component on this node (what AgentStreamStatus shows). */
interface Link {
  instanceId: string;
  session: Session | undefined;
  connectedUnixMs: number;
  firstLiveUnixMs: number;
  streamsWelcomed: number;
}

/** One component's agent stream and ingest counters as this node sees them. */
export interface AgentStreamView {
  readonly streaming: boolean;
  readonly instanceId: string;
  /** Unix ms (this node's clock) the latest stream was welcomed. */
  readonly connectedUnixMs: number;
  /** Unix ms of the first live report on the latest stream (0 = none yet). */
  readonly firstLiveReportUnixMs: number;
  readonly streamsWelcomed: number;
  /** Of the latest instance: lowest sequence ingested by this process (0 = none). */
  readonly firstSequence: number;
  /** Of the latest instance: the watermark (highest sequence held). */
  readonly lastSequence: number;
  readonly reportsIngested: number;
  readonly replayedReports: number;
  readonly duplicateReports: number;
  readonly gapReports: number;
  /** Of the component's metric windows (0 when none are held). */
  readonly droppedSamples: number;
  readonly lateSamples: number;
}

interface Session {
  readonly outbox: Outbox;
  componentId: string;
  instanceId: string;
  role: ComponentRole;
  instance: Instance | undefined;
  welcomed: boolean;
  closed: boolean;
  lastArrivalMono: number;
  lastLiveMono: number;
  inReplay: boolean;
  ackedSeq: number;
  lastAckMono: number;
  /** In dirtyAcks (saves a Set lookup per report). */
  ackDirty: boolean;
  heartbeatIntervalMs: number;
  /** Wall time of the latest report (lastSeen is updated from it when the stream closes). */
  lastReportUnixMs: number;
  /** The component's windows and latest link, fixed at Welcome (a streaming component is never evicted). */
  store: ComponentSeries | undefined;
  link: Link | undefined;
}

function labelsEqual(a: Component["labels"], h: Hello["labels"]): boolean {
  const ar = a?.region ?? "";
  const br = h?.region ?? "";
  if (ar !== br || (a?.zone ?? "") !== (h?.zone ?? "") || (a?.rack ?? "") !== (h?.rack ?? ""))
    return false;
  const ae = a?.extra ?? {};
  const be = h?.extra ?? {};
  const ak = Object.keys(ae);
  if (ak.length !== Object.keys(be).length) return false;
  return ak.every((k) => ae[k] === be[k]);
}

function capacityEqual(a: Component["capacity"], h: Hello["capacity"]): boolean {
  return (
    (a?.cpuCores ?? 0) === (h?.cpuCores ?? 0) &&
    (a?.memoryBytes ?? 0n) === (h?.memoryBytes ?? 0n) &&
    (a?.egressBps ?? 0n) === (h?.egressBps ?? 0n) &&
    (a?.maxStreams ?? 0) === (h?.maxStreams ?? 0) &&
    (a?.maxSessions ?? 0) === (h?.maxSessions ?? 0)
  );
}

const probeKindName = (k: ProbeKind) => (ProbeKind[k] ?? String(k)).toLowerCase();

interface ProbeNames {
  readonly latency: string;
  readonly ok: string;
  value(key: string): string;
}

/** Derived-sample names per probe kind, built once (probes arrive with most reports). */
const probeNameCache = new Map<number, ProbeNames>();
function probeNames(kind: number): ProbeNames {
  let n = probeNameCache.get(kind);
  if (n === undefined) {
    const k = probeKindName(kind);
    const values = new Map<string, string>();
    n = {
      latency: `probe.${k}.latency_ms`,
      ok: `probe.${k}.ok`,
      value(key) {
        let v = values.get(key);
        if (v === undefined) {
          v = `probe.${k}.${key}`;
          // Bounded: validation allows 32 keys per probe, but not which ones.
          if (values.size < 1024) values.set(key, v);
        }
        return v;
      },
    };
    // Kinds are validated (a handful of known values) before this runs.
    probeNameCache.set(kind, n);
  }
  return n;
}

/** Shared, frozen {target} label objects (bounded; a miss just allocates). */
const targetLabelCache = new Map<string, SampleLabels>();
function targetLabels(target: string): SampleLabels {
  let l = targetLabelCache.get(target);
  if (l === undefined) {
    l = Object.freeze({ target });
    if (targetLabelCache.size >= 4096) targetLabelCache.clear();
    targetLabelCache.set(target, l);
  }
  return l;
}

export function createAgentIngest(opts: AgentIngestOptions): AgentIngest {
  const { cluster, clock, log } = opts;
  const limits: AgentIngestLimits = { ...defaultAgentIngestLimits, ...opts.limits };
  validateSeriesStoreLimits(limits);
  const proposeTimeoutMs = opts.proposeTimeoutMs ?? 3000;

  const streams = new Map<string, Session>();
  const metrics = new Map<string, ComponentSeries>();
  const memory: MemoryAccount = { bytes: 0 };
  const metricBytesMax = limits.componentsMax * componentBytesMax(limits);
  const lastSeen = new Map<string, number>();
  /**
   * Latest welcomed stream per component: its agent instance (a different
   * one means an agent restart, which re-registers) and what
   * AgentStreamStatus shows. One entry per component that ever streamed here.
   */
  const links = new Map<string, Link>();
  /** Insertion order = age; refreshed on use (delete + set). */
  const instances = new Map<string, Instance>();
  const dirtyAcks = new Set<Session>();
  const livenessListeners = new Set<(id: string, hbMs: number) => void>();
  const reportListeners = new Set<(r: IngestedReport) => void>();
  const resultListeners = new Set<(id: string, r: DirectiveResult) => void>();
  let history: HistoryWriter | undefined;
  let historyLoaded: HistoryReadStats | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let unsubscribe: (() => void) | undefined;
  let leaderTerm = -1;
  let lastBucketSweepMs = Number.NEGATIVE_INFINITY;
  let lastHistoryFlushMono = Number.NEGATIVE_INFINITY;
  let closing = false;

  const rejected = Object.fromEntries(rejectReasons.map((r) => [r, 0])) as Record<
    RejectReason,
    number
  >;
  const c = {
    reports: 0,
    samples: 0,
    replayedReports: 0,
    duplicateReports: 0,
    gapReports: 0,
    skewedReports: 0,
    redirects: 0,
    registrations: 0,
    streamsReplaced: 0,
    componentsEvicted: 0,
    directiveResults: 0,
    heldHellos: 0,
    evictedDropped: 0,
    evictedLate: 0,
  };

  const reject = (r: Rejection): never => {
    rejected[r.reason]++;
    throw r.error;
  };

  const instanceFor = (componentId: string, instanceId: string): Instance => {
    const key = `${componentId}/${instanceId}`;
    let inst = instances.get(key);
    if (inst !== undefined) {
      instances.delete(key);
    } else {
      inst = {
        key,
        watermark: 0,
        clockOffsetMs: 0,
        firstSeq: 0,
        ingested: 0,
        replayed: 0,
        duplicates: 0,
        gaps: 0,
      };
      while (instances.size >= limits.instancesMax) {
        const oldest = instances.keys().next().value;
        if (oldest === undefined) break;
        instances.delete(oldest);
      }
    }
    instances.set(key, inst);
    return inst;
  };

  const seriesFor = (componentId: string, create: boolean): ComponentSeries | undefined => {
    let s = metrics.get(componentId);
    if (s !== undefined || !create) return s;
    if (metrics.size >= limits.componentsMax) {
      let victim: string | undefined;
      let oldest = Number.POSITIVE_INFINITY;
      for (const id of metrics.keys()) {
        if (streams.has(id)) continue;
        const seen = lastSeen.get(id) ?? 0;
        if (seen < oldest) {
          oldest = seen;
          victim = id;
        }
      }
      if (victim === undefined) return undefined;
      const v = metrics.get(victim)!;
      c.evictedDropped += v.droppedSamples;
      c.evictedLate += v.lateSamples;
      v.release();
      metrics.delete(victim);
      lastSeen.delete(victim);
      c.componentsEvicted++;
    }
    s = createComponentSeries(componentId, limits, memory);
    metrics.set(componentId, s);
    return s;
  };

  const markAckDirty = (s: Session) => {
    if (s.ackDirty) return;
    s.ackDirty = true;
    dirtyAcks.add(s);
  };

  const sendAck = (s: Session) => {
    const wm = s.instance?.watermark ?? 0;
    s.lastAckMono = clock.monotonicMs();
    s.ackDirty = false;
    dirtyAcks.delete(s);
    if (wm === s.ackedSeq) return;
    s.ackedSeq = wm;
    s.outbox.ack(wm);
  };

  const closeSession = (s: Session) => {
    if (s.closed) return;
    s.closed = true;
    s.ackDirty = false;
    dirtyAcks.delete(s);
    if (s.lastReportUnixMs > (lastSeen.get(s.componentId) ?? 0)) {
      lastSeen.set(s.componentId, s.lastReportUnixMs);
    }
    if (streams.get(s.componentId) === s) streams.delete(s.componentId);
  };

  const killSession = (s: Session, err: ConnectError) => {
    closeSession(s);
    s.outbox.fail(err);
  };

  const endAll = (err: ConnectError) => {
    for (const s of [...streams.values()]) killSession(s, err);
  };

  const emitLiveness = (s: Session) => {
    for (const l of livenessListeners) l(s.componentId, s.heartbeatIntervalMs);
  };

  const needsRegister = (existing: Component | undefined, h: Hello): boolean => {
    if (existing === undefined) return true;
    const prev = links.get(h.componentId)?.instanceId;
    return (
      existing.host !== h.host ||
      existing.softwareVersion !== h.softwareVersion ||
      (h.baseUrl !== "" && existing.baseUrl !== h.baseUrl) ||
      (h.controlAddress !== "" && existing.controlAddress !== h.controlAddress) ||
      !labelsEqual(existing.labels, h.labels) ||
      !capacityEqual(existing.capacity, h.capacity) ||
      (prev !== undefined && prev !== h.agentInstanceId)
    );
  };

  const handleHello = async (s: Session, h: Hello) => {
    const bad = validateHello(h);
    if (bad) reject(bad);
    const id = h.componentId;
    s.componentId = id;
    s.instanceId = h.agentInstanceId;
    s.role = h.role;
    const nowMono = clock.monotonicMs();
    const open = streams.get(id);
    if (open !== undefined && open !== s) {
      if (open.instanceId === h.agentInstanceId) {
        killSession(
          open,
          new ConnectError(
            `stream replaced by a newer stream of the same agent instance ${quote(h.agentInstanceId)}`,
            Code.Aborted,
          ),
        );
        c.streamsReplaced++;
      } else if (nowMono - open.lastArrivalMono < limits.staleStreamMs) {
        reject({
          error: new ConnectError(
            `component ${quote(id)} is already streaming from agent instance ${quote(open.instanceId)}; refusing instance ${quote(h.agentInstanceId)} (two agents configured with the same component_id?)`,
            Code.AlreadyExists,
          ),
          reason: "component_conflict",
        });
      } else {
        killSession(
          open,
          new ConnectError(
            `stream replaced: silent for ${Math.round(nowMono - open.lastArrivalMono)} ms and agent instance ${quote(h.agentInstanceId)} connected for component ${quote(id)}`,
            Code.Aborted,
          ),
        );
        c.streamsReplaced++;
      }
    }
    if (seriesFor(id, true) === undefined) {
      reject({
        error: new ConnectError(
          `component ${quote(id)}: this coordinator already holds metrics of ${limits.componentsMax} streaming components (ingest.componentsMax)`,
          Code.ResourceExhausted,
        ),
        reason: "too_many_components",
      });
    }
    // Reserve the component before awaiting, so a racing Hello sees this stream.
    streams.set(id, s);
    s.lastArrivalMono = nowMono;
    lastSeen.set(id, clock.nowMs());

    const existing = cluster.fsm.component(id);
    if (existing !== undefined && existing.role !== h.role) {
      reject({
        error: new ConnectError(
          `hello.role: component ${quote(id)} is registered as ${roleName(existing.role)}, got ${roleName(h.role)}; fix the agent config or deregister the component first`,
          Code.FailedPrecondition,
        ),
        reason: "role_mismatch",
      });
    }
    if (needsRegister(existing, h)) {
      let result: Awaited<ReturnType<ComponentCluster["propose"]>>;
      try {
        result = await cluster.propose(
          {
            op: {
              case: "registerComponent",
              value: {
                componentId: id,
                role: h.role,
                host: h.host,
                labels: h.labels,
                capacity: h.capacity,
                softwareVersion: h.softwareVersion,
                // An agent that does not know them keeps what is registered.
                baseUrl: h.baseUrl || existing?.baseUrl || "",
                controlAddress: h.controlAddress || existing?.controlAddress || "",
                agentInstanceId: h.agentInstanceId,
              },
            },
          },
          { timeoutMs: proposeTimeoutMs },
        );
      } catch (err) {
        const code = err instanceof ConnectError ? err.code : Code.Unavailable;
        reject({
          error: new ConnectError(
            `registering component ${quote(id)} failed: ${errorMessage(err)}`,
            code,
          ),
          reason: "registration_failed",
        });
        return;
      }
      if (!result.ok) {
        reject({
          error: new ConnectError(
            `registering component ${quote(id)} failed: ${result.message}`,
            result.code,
          ),
          reason: "registration_failed",
        });
      }
      c.registrations++;
    }
    if (s.closed) return;
    const l = cluster.leadership();
    if (!l.isLeader) throw new ConnectError(notLeaderMessage(l), Code.Unavailable);
    let link = links.get(id);
    if (link === undefined) {
      link = {
        instanceId: "",
        session: undefined,
        connectedUnixMs: 0,
        firstLiveUnixMs: 0,
        streamsWelcomed: 0,
      };
      links.set(id, link);
    }
    link.instanceId = h.agentInstanceId;
    link.session = s;
    link.connectedUnixMs = clock.nowMs();
    link.firstLiveUnixMs = 0;
    link.streamsWelcomed++;
    s.link = link;
    s.store = metrics.get(id);
    s.instance = instanceFor(id, h.agentInstanceId);
    s.ackedSeq = s.instance.watermark;
    s.lastAckMono = clock.monotonicMs();
    s.welcomed = true;
    s.heartbeatIntervalMs = limits.heartbeatIntervalMs;
    s.outbox.push({
      body: {
        case: "welcome",
        value: {
          leaderId: cluster.nodeId,
          term: BigInt(l.term),
          coordinatorUnixMs: BigInt(Math.round(clock.nowMs())),
          samplingIntervalMs:
            limits.samplingIntervalMsOverride > 0
              ? limits.samplingIntervalMsOverride
              : h.samplingIntervalMs,
          maxReportBytes: limits.reportBytesMax,
          resumeAfterSequence: BigInt(s.instance.watermark),
          heartbeatIntervalMs: limits.heartbeatIntervalMs,
        },
      },
    });
    emitLiveness(s);
    log.debug("agent stream welcomed", {
      componentId: id,
      instance: h.agentInstanceId,
      resumeAfter: s.instance.watermark,
    });
  };

  /** Appends the samples derived from probes and from the arrival interval to r.samples. */
  const appendDerivedSamples = (r: IngestReport, intervalMs: number) => {
    const out = r.samples;
    for (const p of r.probes) {
      const names = probeNames(p.kind);
      const labels = targetLabels(p.target);
      out.push({ name: names.latency, value: p.latencyMs, unit: "ms", labels });
      out.push({ name: names.ok, value: p.ok ? 1 : 0, unit: "ratio", labels });
      for (const k in p.values) {
        out.push({ name: names.value(k), value: p.values[k]!, unit: "", labels });
      }
    }
    if (intervalMs >= 0) {
      out.push({ name: "heartbeat.interval_ms", value: intervalMs, unit: "ms", labels: NO_LABELS });
    }
  };

  const handleReport = (s: Session, r: IngestReport) => {
    const bad = validateReport(r, limits);
    if (bad) reject(bad);
    const inst = s.instance!;
    const nowWall = clock.nowMs();
    const nowMono = clock.monotonicMs();
    s.lastArrivalMono = nowMono;
    s.lastReportUnixMs = nowWall;
    const seq = r.sequence;
    const live = !r.replayed;
    let intervalMs = -1;
    if (live) {
      if (s.lastLiveMono >= 0) intervalMs = nowMono - s.lastLiveMono;
      s.lastLiveMono = nowMono;
    }

    if (seq <= inst.watermark) {
      c.duplicateReports++;
      inst.duplicates++;
      if (live) emitLiveness(s);
      if (nowMono - s.lastAckMono >= limits.ackIntervalMs) sendAck(s);
      else markAckDirty(s);
      return;
    }
    if (inst.watermark > 0 && seq > inst.watermark + 1) {
      c.gapReports += seq - inst.watermark - 1;
      inst.gaps += seq - inst.watermark - 1;
    }

    const ts = r.timestampUnixMs;
    let tMs: number;
    if (live) {
      const off = ts - nowWall;
      if (Math.abs(off) > limits.clockSkewMaxMs) {
        c.skewedReports++;
        inst.clockOffsetMs = off;
      } else {
        inst.clockOffsetMs = 0;
      }
      tMs = ts - inst.clockOffsetMs;
    } else {
      tMs = ts - inst.clockOffsetMs;
      if (tMs > nowWall + limits.clockSkewMaxMs || tMs < nowWall - limits.replayAgeMaxMs) {
        c.skewedReports++;
        tMs = nowWall;
      }
    }

    const wireSamples = r.samples.length;
    appendDerivedSamples(r, intervalMs);
    if (r.samples.length > 0) {
      s.store ??= metrics.get(s.componentId) ?? seriesFor(s.componentId, true);
      const closed = s.store?.addReport(tMs, r.samples, s.instanceId, seq);
      if (closed !== undefined) history?.append(closed);
    }
    c.reports++;
    c.samples += wireSamples;
    if (!live) c.replayedReports++;
    inst.watermark = seq;
    if (inst.firstSeq === 0) inst.firstSeq = seq;
    inst.ingested++;
    if (!live) inst.replayed++;
    if (live) {
      const link = s.link;
      if (link?.session === s && link.firstLiveUnixMs === 0) link.firstLiveUnixMs = nowWall;
    }

    if (!live) {
      s.inReplay = true;
      markAckDirty(s);
    } else if (s.inReplay) {
      s.inReplay = false;
      sendAck(s);
    } else if (nowMono - s.lastAckMono >= limits.ackIntervalMs) {
      sendAck(s);
    } else {
      markAckDirty(s);
    }
    if (live) emitLiveness(s);
    if (reportListeners.size > 0) {
      const ev: IngestedReport = {
        componentId: s.componentId,
        role: s.role,
        tMs,
        sequence: seq,
        replayed: r.replayed,
        heartbeatOnly: r.heartbeatOnly,
        samples: r.samples,
      };
      for (const l of reportListeners) l(ev);
    }
  };

  const handleDirectiveResult = (s: Session, d: DirectiveResult) => {
    if (
      d.directiveId.length < 1 ||
      d.directiveId.length > 64 ||
      !/^[A-Za-z0-9-]+$/.test(d.directiveId)
    ) {
      reject({
        error: invalidArgument(
          "directive_result.directive_id",
          `must be 1–64 chars of [A-Za-z0-9-], got ${quote(d.directiveId)}`,
        ),
        reason: "directive_result_invalid",
      });
    }
    if (d.message.length > 1024) {
      reject({
        error: invalidArgument(
          "directive_result.message",
          `at most 1024 chars, got ${d.message.length}`,
        ),
        reason: "directive_result_invalid",
      });
    }
    s.lastArrivalMono = clock.monotonicMs();
    lastSeen.set(s.componentId, clock.nowMs());
    c.directiveResults++;
    emitLiveness(s);
    for (const l of resultListeners) l(s.componentId, d);
  };

  const handleMessage = (s: Session, b: DecodedBody) => {
    switch (b.case) {
      case "report":
        handleReport(s, b.value);
        return;
      case "directiveResult":
        handleDirectiveResult(s, b.value);
        return;
      case "hello":
        reject({
          error: invalidArgument(
            "hello",
            "a second hello on one stream; open a new stream instead",
          ),
          reason: "second_hello",
        });
        return;
      default:
        reject({
          error: invalidArgument("body", "required: one of hello, report, directive_result"),
          reason: "empty_body",
        });
    }
  };

  const toConnectError = (err: unknown): ConnectError => {
    if (err instanceof ConnectError) return err;
    // A bug, not bad input: log loudly, answer INTERNAL, keep serving others.
    log.error("agent stream handler failed", { err });
    return new ConnectError(`internal error: ${errorMessage(err)}`, Code.Internal);
  };

  /** Streams held by followers while an election settles (released by close()). */
  const holds = new Set<() => void>();

  /**
   * Resolves once this node leads, or knows a leader other than `lostLeaderId`,
   * or after `redirectHoldMs`, or when the agent goes away or ingest closes.
   */
  const settledLeadership = (lostLeaderId: string, signal: AbortSignal): Promise<void> => {
    const settled = () => {
      const l = cluster.leadership();
      return l.isLeader || (l.leaderId !== "" && l.leaderId !== lostLeaderId);
    };
    if (limits.redirectHoldMs <= 0 || settled() || closing || signal.aborted) {
      return Promise.resolve();
    }
    c.heldHellos++;
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let off: (() => void) | undefined;
      const done = () => {
        clearTimeout(timer);
        off?.();
        signal.removeEventListener("abort", done);
        holds.delete(done);
        resolve();
      };
      timer = setTimeout(done, limits.redirectHoldMs);
      off = cluster.onLeadershipChange(() => {
        if (settled()) done();
      });
      signal.addEventListener("abort", done, { once: true });
      holds.add(done);
    });
  };

  /**
   * One agent stream's logic, driven by its transport (connect() below for
   * connect-node, rawGrpc for the raw HTTP/2 route): messages are fed as they
   * arrive, what to send comes out of `outbox`.
   */
  interface StreamCore {
    readonly outbox: Outbox;
    /** Redirected, failed or ended: feed nothing more. */
    readonly finished: boolean;
    /**
     * Feeds the next decoded message. The first one returns a promise
     * (leadership hold, Hello registration) that must settle before the next
     * message or end() is fed; later ones are handled synchronously.
     */
    receive(b: DecodedBody): Promise<void> | undefined;
    /** The request side ended normally: queued messages go out, then OK. */
    end(): void;
    /** Ends the stream with `err` (a bug becomes INTERNAL). */
    fail(err: unknown): void;
    /**
     * The transport ended the request side: RPC-level refusals of a message
     * (above readMaxBytes, not decodable) end the stream with their own code
     * and are counted; cancels and resets are a normal end.
     */
    transportEnded(err: unknown): void;
    /** The response side went away (the client is gone). */
    close(): void;
  }

  const openStream = (signal: AbortSignal): StreamCore => {
    const outbox = createOutbox(limits.outboxMessagesMax);
    let s: Session | undefined;
    let done = false;
    let first = true;
    const fail = (err: unknown) => {
      done = true;
      if (s === undefined) {
        outbox.fail(toConnectError(err));
        return;
      }
      const wasClosed = s.closed;
      closeSession(s);
      if (!wasClosed) outbox.fail(toConnectError(err));
    };
    const end = () => {
      if (done) return;
      done = true;
      if (s !== undefined) closeSession(s);
      outbox.end();
    };
    const receiveFirst = async (b: DecodedBody) => {
      if (!cluster.leadership().isLeader && b.case === "hello") {
        await settledLeadership(b.value.lostLeaderId, signal);
        if (signal.aborted) {
          end();
          return;
        }
      }
      const l = cluster.leadership();
      if (!l.isLeader || closing) {
        c.redirects++;
        outbox.push({
          body: {
            case: "redirect",
            value: {
              leaderId: l.isLeader ? "" : l.leaderId,
              leaderAddress: l.isLeader ? "" : l.leaderApiAddress,
              reason: closing
                ? "coordinator shutting down"
                : l.leaderId === ""
                  ? "no leader elected"
                  : "not leader",
              retryAfterMs: l.leaderApiAddress === "" || closing ? limits.redirectRetryAfterMs : 0,
            },
          },
        });
        end();
        return;
      }
      const session: Session = {
        outbox,
        componentId: "",
        instanceId: "",
        role: 0,
        instance: undefined,
        welcomed: false,
        closed: false,
        lastArrivalMono: clock.monotonicMs(),
        lastLiveMono: -1,
        inReplay: false,
        ackedSeq: 0,
        lastAckMono: 0,
        ackDirty: false,
        heartbeatIntervalMs: limits.heartbeatIntervalMs,
        lastReportUnixMs: 0,
        store: undefined,
        link: undefined,
      };
      s = session;
      try {
        if (b.case !== "hello") {
          if (b.case === undefined) {
            reject({
              error: invalidArgument("body", "required; the first message must be hello"),
              reason: "empty_body",
            });
          }
          reject({
            error: invalidArgument("body", `first message must be hello, got ${b.case}`),
            reason: "first_not_hello",
          });
        }
        await handleHello(session, b.value as Hello);
      } catch (err) {
        fail(err);
      }
    };
    return {
      outbox,
      get finished() {
        return done || s?.closed === true;
      },
      receive(b) {
        if (first) {
          first = false;
          return receiveFirst(b);
        }
        if (done || s === undefined || s.closed) return undefined;
        try {
          handleMessage(s, b);
        } catch (err) {
          fail(err);
        }
        return undefined;
      },
      end,
      fail,
      transportEnded(err) {
        if (done) return;
        if (err instanceof ConnectError && err.code !== Code.Canceled) {
          rejected.unreadable_message++;
          fail(err);
          return;
        }
        log.debug("agent stream closed by the transport", {
          componentId: s?.componentId ?? "",
          err: errorMessage(err),
        });
        end();
      },
      close() {
        if (s !== undefined) closeSession(s);
      },
    };
  };

  const malformed = (err: unknown): ConnectError => {
    rejected.unreadable_message++;
    return new ConnectError(
      `malformed AgentMessage: ${errorMessage(err)}; the stream was ended and the message not stored`,
      Code.InvalidArgument,
    );
  };

  async function* connect(
    requests: AsyncIterable<AgentMessage | AgentMessageFrame>,
    ctx: HandlerContext,
  ): AsyncGenerator<OutMessage> {
    // Frames of a JSON stream carry the decoded message (see wire.ts).
    const json = /json/i.test(ctx.requestHeader?.get("content-type") ?? "");
    const bodyOf = (m: AgentMessage | AgentMessageFrame): DecodedBody => {
      const b = isAgentMessageFrame(m) ? (json ? m.jsonBody : undefined) : m.body;
      if (b === undefined) {
        try {
          return decodeAgentFrame(m as AgentMessageFrame);
        } catch (err) {
          throw malformed(err);
        }
      }
      return b.case === "report" ? { case: "report", value: fromProtoReport(b.value) } : b;
    };
    const it = requests[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) return;
    const firstBody = bodyOf(first.value);
    const core = openStream(ctx.signal);
    const reader = async () => {
      try {
        await core.receive(firstBody);
        // Bounded by the stream: one iteration per received message.
        for (;;) {
          if (core.finished) return;
          let n: IteratorResult<AgentMessage | AgentMessageFrame>;
          try {
            n = await it.next();
          } catch (err) {
            core.transportEnded(err);
            return;
          }
          if (n.done) break;
          core.receive(bodyOf(n.value));
        }
        core.end();
      } catch (err) {
        core.fail(err);
      }
    };
    void reader();
    try {
      yield* core.outbox;
    } finally {
      core.close();
    }
  }

  /** Sends what the core queues on a raw call, respecting its write buffer. */
  const sendOut = async (core: StreamCore, call: RawGrpcCall) => {
    try {
      for await (const m of core.outbox) {
        if (!call.send(toBinary(CoordinatorMessageSchema, create(CoordinatorMessageSchema, m)))) {
          await call.drained();
        }
      }
      call.end();
    } catch (err) {
      call.end(toConnectError(err));
    }
  };

  const rawGrpc: RawGrpcRoute = {
    service: agentServiceFrames,
    method: "Connect",
    start(call) {
      const core = openStream(call.signal);
      void sendOut(core, call);
      return {
        onMessage(bytes) {
          if (core.finished) return;
          let b: DecodedBody;
          try {
            b = decodeAgentFrame(
              fromBinary(agentMessageFrameSchema, bytes) as unknown as AgentMessageFrame,
            );
          } catch (err) {
            core.fail(malformed(err));
            return;
          }
          const pending = core.receive(b);
          if (pending !== undefined) {
            call.pause();
            void pending.then(() => call.resume());
          }
        },
        onEnd: () => core.end(),
        // Cancels, deadlines and shutdown end the stream like a reset; refused
        // messages (size, compression, truncation) are counted as with `rpc`.
        onAbort: (err) =>
          core.transportEnded(
            err.code === Code.DeadlineExceeded || err.code === Code.Unavailable
              ? new ConnectError(err.rawMessage, Code.Canceled)
              : err,
          ),
      };
    },
  };

  const maintain = () => {
    const nowMono = clock.monotonicMs();
    for (const s of [...dirtyAcks]) {
      if (s.closed) {
        s.ackDirty = false;
        dirtyAcks.delete(s);
      } else if (nowMono - s.lastAckMono >= limits.ackIntervalMs) sendAck(s);
    }
    const nowWall = clock.nowMs();
    if (nowWall - lastBucketSweepMs >= limits.historyBucketMs) {
      lastBucketSweepMs = nowWall;
      // A bucket is closed by the next report; this closes the ones of
      // components that went quiet, one bucket after they ended.
      for (const store of metrics.values()) {
        const rec = store.closeIdle(nowWall - limits.historyBucketMs);
        if (rec !== undefined) history?.append(rec);
      }
    }
    if (history !== undefined && nowMono - lastHistoryFlushMono >= limits.historyFlushIntervalMs) {
      lastHistoryFlushMono = nowMono;
      void history.flush();
    }
  };

  const loadHistory = async (dir: string) => {
    const stats: HistoryReadStats = { files: 0, records: 0, badLines: 0 };
    const fromMs = clock.nowMs() - limits.historyBucketsPerSeries * limits.historyBucketMs;
    let n = 0;
    for await (const rec of readHistory(dir, fromMs, stats)) {
      const store = seriesFor(rec.componentId, true);
      store?.loadRecord(rec);
      if (rec.instanceId !== "" && rec.sequenceHigh > 0) {
        const inst = instanceFor(rec.componentId, rec.instanceId);
        if (rec.sequenceHigh > inst.watermark) inst.watermark = rec.sequenceHigh;
      }
      // Let the event loop breathe during a large load.
      if (++n % 2000 === 0) await new Promise((r) => setImmediate(r));
    }
    historyLoaded = stats;
    log.info("metric history loaded", { dir, ...stats, components: metrics.size });
  };

  const service = { connect } as Partial<ServiceImpl<typeof AgentService>>;
  return {
    service,
    rpc: { service: agentServiceFrames, impl: service },
    rawGrpc,
    async start() {
      // The bound an operator sizes the machine by; what is allocated grows
      // with what agents report (stats().metricBytes).
      log.info("agent ingest starting", {
        componentsMax: limits.componentsMax,
        seriesPerComponentMax: limits.seriesPerComponentMax,
        rawSamplesPerSeries: limits.rawSamplesPerSeries,
        historyBucketsPerSeries: limits.historyBucketsPerSeries,
        componentBytesMax: componentBytesMax(limits),
        memoryBytesMax: metricBytesMax,
      });
      if (opts.historyDir !== undefined) {
        await loadHistory(opts.historyDir);
        history = await createHistoryWriter({
          dir: opts.historyDir,
          clock,
          log,
          limits: opts.historyFiles,
        });
      }
      unsubscribe = cluster.onLeadershipChange((l) => {
        if (!l.isLeader || (leaderTerm >= 0 && l.term !== leaderTerm)) {
          if (streams.size > 0) {
            log.info("ending agent streams: leadership changed", { streams: streams.size });
          }
          endAll(
            new ConnectError(
              `leadership lost; reconnect. ${notLeaderMessage(l)}`,
              Code.Unavailable,
            ),
          );
        }
        leaderTerm = l.isLeader ? l.term : -1;
      });
      const l = cluster.leadership();
      leaderTerm = l.isLeader ? l.term : -1;
      if (opts.autoMaintain !== false) {
        timer = setInterval(
          () => {
            try {
              maintain();
            } catch (err) {
              log.error("ingest maintenance failed", { err });
            }
          },
          Math.max(20, Math.min(250, limits.ackIntervalMs / 4)),
        );
        timer.unref();
      }
    },
    async close() {
      closing = true;
      for (const release of [...holds]) release();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      unsubscribe?.();
      endAll(
        new ConnectError(
          "coordinator shutting down; reconnect to another coordinator",
          Code.Unavailable,
        ),
      );
      if (history !== undefined) {
        for (const store of metrics.values()) {
          const rec = store.closeIdle(Number.POSITIVE_INFINITY);
          if (rec !== undefined) history.append(rec);
        }
        await history.close();
      }
    },
    onLiveness(l) {
      livenessListeners.add(l);
      return () => livenessListeners.delete(l);
    },
    onReport(l) {
      reportListeners.add(l);
      return () => reportListeners.delete(l);
    },
    onDirectiveResult(l) {
      resultListeners.add(l);
      return () => resultListeners.delete(l);
    },
    component: (id) => metrics.get(id),
    componentIds: () => metrics.keys(),
    lastSeenUnixMs: (id) => Math.max(lastSeen.get(id) ?? 0, streams.get(id)?.lastReportUnixMs ?? 0),
    isStreaming: (id) => streams.get(id)?.welcomed === true,
    streamStatus(id) {
      const link = links.get(id);
      if (link === undefined) return undefined;
      // Peek without refreshing the instance's age (instanceFor would).
      const inst = instances.get(`${id}/${link.instanceId}`);
      const store = metrics.get(id);
      const open = streams.get(id);
      return {
        streaming: open?.welcomed === true && !open.closed,
        instanceId: link.instanceId,
        connectedUnixMs: link.connectedUnixMs,
        firstLiveReportUnixMs: link.firstLiveUnixMs,
        streamsWelcomed: link.streamsWelcomed,
        firstSequence: inst?.firstSeq ?? 0,
        lastSequence: inst?.watermark ?? 0,
        reportsIngested: inst?.ingested ?? 0,
        replayedReports: inst?.replayed ?? 0,
        duplicateReports: inst?.duplicates ?? 0,
        gapReports: inst?.gaps ?? 0,
        droppedSamples: store?.droppedSamples ?? 0,
        lateSamples: store?.lateSamples ?? 0,
      };
    },
    sendDirective(id, d) {
      const s = streams.get(id);
      if (s === undefined || !s.welcomed || s.closed) return false;
      return s.outbox.push({ body: { case: "directive", value: d } });
    },
    maintain,
    flushHistory: () => history?.flush() ?? Promise.resolve(),
    stats() {
      let dropped = c.evictedDropped;
      let late = c.evictedLate;
      for (const s of metrics.values()) {
        dropped += s.droppedSamples;
        late += s.lateSamples;
      }
      return {
        activeStreams: streams.size,
        components: metrics.size,
        reports: c.reports,
        samples: c.samples,
        replayedReports: c.replayedReports,
        duplicateReports: c.duplicateReports,
        gapReports: c.gapReports,
        skewedReports: c.skewedReports,
        droppedSamples: dropped,
        metricBytes: memory.bytes,
        metricBytesMax,
        lateSamples: late,
        rejected: { ...rejected },
        redirects: c.redirects,
        registrations: c.registrations,
        streamsReplaced: c.streamsReplaced,
        componentsEvicted: c.componentsEvicted,
        directiveResults: c.directiveResults,
        heldHellos: c.heldHellos,
        history: history?.stats(),
        historyLoaded,
      };
    },
  };
}
