/**
 * The agent's side of agent.v1: building AgentMessages and reading
 * CoordinatorMessages. Reports are encoded once, when they are sampled, and
 * kept encoded in the replay buffer (bytes are what the buffer bound counts
 * and what the journal stores); they are decoded again only to mark a replay
 * or to trim one that is over the leader's Welcome.max_report_bytes.
 */
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  AgentMessageSchema,
  type CoordinatorMessage,
  CoordinatorMessageSchema,
  type DirectiveResult,
  type HelloSchema,
  ProbeKind,
  type ReportSchema,
  type RoleProbe,
  RoleProbeSchema,
} from "../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ComponentRole } from "../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type MetricSample,
  MetricSampleSchema,
} from "../../proto/gen/understudy/common/v1/metric_pb.ts";
import type { AgentRole } from "./config.ts";
import { type AgentSample, unitOf } from "./metric-names.ts";
import type { ProbeKindName, ProbeResult } from "./probes.ts";

/** Report.samples and Report.probes bounds from the proto's validation rules. */
export const reportSamplesMax = 512;
export const reportProbesMax = 64;

export const componentRoles: Record<AgentRole, ComponentRole> = {
  encoder: ComponentRole.ENCODER,
  packager: ComponentRole.PACKAGER,
  origin: ComponentRole.ORIGIN,
  edge: ComponentRole.EDGE,
  ingest: ComponentRole.INGEST,
};

const probeKinds: Record<ProbeKindName, ProbeKind> = {
  packager_status: ProbeKind.PACKAGER_STATUS,
  encoder_progress: ProbeKind.ENCODER_PROGRESS,
  http: ProbeKind.HTTP,
  coordinator_rtt: ProbeKind.COORDINATOR_RTT,
};

export function toMetricSample(s: AgentSample): MetricSample {
  const labels: Record<string, string> = {};
  if (s.labels) for (const [k, v] of Object.entries(s.labels)) labels[k] = v.slice(0, 128);
  return create(MetricSampleSchema, { name: s.name, value: s.value, unit: unitOf(s.name), labels });
}

export function toRoleProbe(p: ProbeResult): RoleProbe {
  const values: Record<string, number> = {};
  for (const [k, v] of Object.entries(p.values)) if (Number.isFinite(v)) values[k] = v;
  return create(RoleProbeSchema, {
    kind: probeKinds[p.kind],
    target: p.target.slice(0, 2048),
    ok: p.ok,
    latencyMs: Number.isFinite(p.latencyMs) ? Math.max(0, p.latencyMs) : 0,
    values,
    error: p.error.slice(0, 1024),
  });
}

/** What a sampling tick produced; absent for a heartbeat. */
export interface ReportContent {
  samples: readonly AgentSample[];
  probes: readonly ProbeResult[];
}

/**
 * Encodes a report as a whole AgentMessage. Non-finite values are dropped
 * (the leader rejects them); past the proto bounds the tail is cut, which is
 * where per-core samples and HTTP probes sit.
 */
export function encodeReport(
  seq: number,
  timestampUnixMs: number,
  content: ReportContent | undefined,
): Uint8Array {
  const report: MessageInitShape<typeof ReportSchema> = {
    sequence: BigInt(seq),
    timestampUnixMs: BigInt(Math.round(timestampUnixMs)),
  };
  if (content) {
    report.samples = content.samples
      .filter((s) => Number.isFinite(s.value))
      .slice(0, reportSamplesMax)
      .map(toMetricSample);
    report.probes = content.probes.slice(0, reportProbesMax).map(toRoleProbe);
  }
  report.heartbeatOnly = !content || (report.samples?.length === 0 && report.probes?.length === 0);
  return toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, { body: { case: "report", value: report } }),
  );
}

/**
 * Re-encodes a buffered report for sending: sets `replayed` and, when it is
 * over `maxReportBytes` (0 = no limit), drops samples from the end until it
 * fits. Returns undefined if even an empty report would not fit.
 */
export function prepareBuffered(
  bytes: Uint8Array,
  replayed: boolean,
  maxReportBytes: number,
): Uint8Array | undefined {
  const fits = (b: Uint8Array) => maxReportBytes === 0 || b.length <= maxReportBytes;
  if (!replayed && fits(bytes)) return bytes;
  const msg = fromBinary(AgentMessageSchema, bytes);
  if (msg.body.case !== "report") return bytes;
  const report = msg.body.value;
  report.replayed = replayed;
  let out = toBinary(AgentMessageSchema, msg);
  // Cutting probes first keeps the named samples the predict engine uses.
  while (!fits(out) && report.probes.length > 0) {
    report.probes.pop();
    out = toBinary(AgentMessageSchema, msg);
  }
  while (!fits(out) && report.samples.length > 0) {
    // Halving keeps this O(log n) encodes for a report far over the limit.
    report.samples.length = Math.floor(report.samples.length / 2);
    out = toBinary(AgentMessageSchema, msg);
  }
  return fits(out) ? out : undefined;
}

export function encodeHello(hello: MessageInitShape<typeof HelloSchema>): Uint8Array {
  return toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, { body: { case: "hello", value: hello } }),
  );
}

export function encodeDirectiveResult(result: DirectiveResult): Uint8Array {
  return toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, { body: { case: "directiveResult", value: result } }),
  );
}

export function decodeCoordinatorMessage(bytes: Uint8Array): CoordinatorMessage {
  return fromBinary(CoordinatorMessageSchema, bytes);
}
