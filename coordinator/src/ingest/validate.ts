/**
 * Validation of agent messages: the "Validation:" comments of
 * proto/understudy/agent/v1/agent.proto, common/v1/component.proto and
 * common/v1/metric.proto are the contract. A violation is a ConnectError whose
 * message starts with the dotted field path, plus a short reason label for
 * the rejected-by-reason counter. Nothing here stores anything.
 *
 * Reports are validated in full before any sample is used, so a report is
 * either ingested whole or not at all.
 */
import { Code, ConnectError, invalidArgument } from "../../../common/errors.ts";
import type { Hello } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { ProbeKind } from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import {
  type Capacity,
  ComponentRole,
  type Labels,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { IngestReport } from "./wire.ts";

export interface Rejection {
  readonly error: ConnectError;
  /** Label for the rejected-by-reason counter (bounded vocabulary). */
  readonly reason: RejectReason;
}

export type RejectReason =
  | "empty_body"
  | "first_not_hello"
  | "second_hello"
  | "hello_invalid"
  | "component_conflict"
  | "role_mismatch"
  | "registration_failed"
  | "too_many_components"
  | "report_invalid"
  | "report_too_large"
  | "unreadable_message"
  | "directive_result_invalid";

export const rejectReasons: readonly RejectReason[] = [
  "empty_body",
  "first_not_hello",
  "second_hello",
  "hello_invalid",
  "component_conflict",
  "role_mismatch",
  "registration_failed",
  "too_many_components",
  "report_invalid",
  "report_too_large",
  "unreadable_message",
  "directive_result_invalid",
];

export const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
const INSTANCE_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;
/** Coordinator node ids (runtime config `nodeId`). */
const NODE_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
const TOPOLOGY_PATTERN = /^[a-z0-9-]{0,64}$/;
const EXTRA_LABEL_KEY_PATTERN = /^[a-z0-9_./-]{1,63}$/;
export const METRIC_NAME_PATTERN = /^[a-z][a-z0-9_.]{0,127}$/;
const UNIT_PATTERN = /^[a-z_]{0,32}$/;
const LABEL_KEY_PATTERN = /^[a-z0-9_]{1,63}$/;
const TWO_POW_53 = 2n ** 53n;

export const SAMPLING_INTERVAL_MS_MIN = 100;
export const SAMPLING_INTERVAL_MS_MAX = 60_000;

const invalid = (field: string, problem: string): Rejection => ({
  error: invalidArgument(field, problem),
  reason: "hello_invalid",
});

/** Shortens user text quoted in an error message. */
export function quote(s: string, max = 80): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

export function roleName(role: ComponentRole): string {
  return ComponentRole[role] ?? String(role);
}

const knownRoles = new Set<number>([
  ComponentRole.ENCODER,
  ComponentRole.PACKAGER,
  ComponentRole.ORIGIN,
  ComponentRole.EDGE,
  ComponentRole.INGEST,
]);

export function isKnownRole(role: number): boolean {
  return knownRoles.has(role);
}

export function validateHello(h: Hello): Rejection | undefined {
  if (h.componentId === "") return invalid("hello.component_id", "required");
  if (!ID_PATTERN.test(h.componentId)) {
    return invalid(
      "hello.component_id",
      `must be 1–64 chars of [a-z0-9-] starting with a letter or digit, got ${quote(h.componentId)}`,
    );
  }
  if (h.role === ComponentRole.UNSPECIFIED)
    return invalid("hello.role", "required (not UNSPECIFIED)");
  if (!knownRoles.has(h.role)) {
    return invalid(
      "hello.role",
      `unknown role ${h.role}; expected ENCODER, PACKAGER, ORIGIN, EDGE or INGEST`,
    );
  }
  if (h.host.length < 1 || h.host.length > 253) {
    return invalid("hello.host", `required, 1–253 chars, got ${h.host.length}`);
  }
  const labels = h.labels === undefined ? undefined : validateLabels(h.labels);
  if (labels) return labels;
  const cap = h.capacity === undefined ? undefined : validateCapacity(h.capacity);
  if (cap) return cap;
  if (h.softwareVersion.length > 128) {
    return invalid("hello.software_version", `at most 128 chars, got ${h.softwareVersion.length}`);
  }
  if (h.agentInstanceId === "") return invalid("hello.agent_instance_id", "required");
  if (!INSTANCE_ID_PATTERN.test(h.agentInstanceId)) {
    return invalid(
      "hello.agent_instance_id",
      `must be 1–64 chars of [A-Za-z0-9-], got ${quote(h.agentInstanceId)}`,
    );
  }
  if (
    h.samplingIntervalMs < SAMPLING_INTERVAL_MS_MIN ||
    h.samplingIntervalMs > SAMPLING_INTERVAL_MS_MAX
  ) {
    return invalid(
      "hello.sampling_interval_ms",
      `must be ${SAMPLING_INTERVAL_MS_MIN}–${SAMPLING_INTERVAL_MS_MAX}, got ${h.samplingIntervalMs}`,
    );
  }
  if (h.lastAckedSequence >= TWO_POW_53) {
    return invalid("hello.last_acked_sequence", "must be < 2^53");
  }
  if (
    h.baseUrl !== "" &&
    (h.baseUrl.length > 256 || !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(h.baseUrl))
  ) {
    return invalid(
      "hello.base_url",
      `must be empty or an http(s) URL of at most 256 chars, got ${quote(h.baseUrl)}`,
    );
  }
  if (
    h.controlAddress !== "" &&
    !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h.controlAddress)
  ) {
    return invalid(
      "hello.control_address",
      `must be empty or "host:port", got ${quote(h.controlAddress)}`,
    );
  }
  if (h.lostLeaderId !== "" && !NODE_ID_PATTERN.test(h.lostLeaderId)) {
    return invalid(
      "hello.lost_leader_id",
      `must be empty or a coordinator node id (1–64 chars of [a-z0-9-]), got ${quote(h.lostLeaderId)}`,
    );
  }
  return undefined;
}

function validateLabels(l: Labels): Rejection | undefined {
  for (const key of ["region", "zone", "rack"] as const) {
    if (!TOPOLOGY_PATTERN.test(l[key])) {
      return invalid(
        `hello.labels.${key}`,
        `must be 0–64 chars of [a-z0-9-], got ${quote(l[key])}`,
      );
    }
  }
  const entries = Object.entries(l.extra);
  if (entries.length > 32)
    return invalid("hello.labels.extra", `at most 32 entries, got ${entries.length}`);
  for (const [k, v] of entries) {
    if (!EXTRA_LABEL_KEY_PATTERN.test(k)) {
      return invalid(`hello.labels.extra[${quote(k)}]`, "key must be 1–63 chars of [a-z0-9_.-/]");
    }
    if (k === "region" || k === "zone" || k === "rack") {
      return invalid(`hello.labels.extra[${quote(k)}]`, `use hello.labels.${k} instead`);
    }
    if (v.length > 256) {
      return invalid(`hello.labels.extra[${quote(k)}]`, `value at most 256 chars, got ${v.length}`);
    }
  }
  return undefined;
}

function validateCapacity(c: Capacity): Rejection | undefined {
  if (!Number.isFinite(c.cpuCores) || c.cpuCores < 0 || c.cpuCores > 4096) {
    return invalid("hello.capacity.cpu_cores", `must be 0–4096, got ${c.cpuCores}`);
  }
  if (c.memoryBytes >= TWO_POW_53) return invalid("hello.capacity.memory_bytes", "must be < 2^53");
  if (c.egressBps >= TWO_POW_53) return invalid("hello.capacity.egress_bps", "must be < 2^53");
  if (c.maxStreams > 100_000) {
    return invalid("hello.capacity.max_streams", `must be 0–100000, got ${c.maxStreams}`);
  }
  if (c.maxSessions > 100_000_000) {
    return invalid("hello.capacity.max_sessions", `must be 0–10^8, got ${c.maxSessions}`);
  }
  return undefined;
}

export interface ReportLimits {
  /** Most samples in one report (proto bound 512). Above: RESOURCE_EXHAUSTED. */
  samplesPerReportMax: number;
  /** Most probes in one report (proto bound 64). Above: RESOURCE_EXHAUSTED. */
  probesPerReportMax: number;
}

/**
 * Memo of metric names and units already found valid: a fleet reports a few
 * dozen distinct names, so the regex runs once per name, not per sample.
 * Bounded: when full it is cleared and refilled.
 */
const validNames = new Set<string>();
const validUnits = new Set<string>();
const MEMO_MAX = 4096;

function nameOk(name: string): boolean {
  if (validNames.has(name)) return true;
  if (!METRIC_NAME_PATTERN.test(name)) return false;
  if (validNames.size >= MEMO_MAX) validNames.clear();
  validNames.add(name);
  return true;
}

function unitOk(unit: string): boolean {
  if (unit === "" || validUnits.has(unit)) return true;
  if (!UNIT_PATTERN.test(unit)) return false;
  if (validUnits.size >= MEMO_MAX) validUnits.clear();
  validUnits.add(unit);
  return true;
}

const badReport = (field: string, problem: string, seq: number | bigint): Rejection => ({
  error: invalidArgument(field, `${problem} (report sequence ${seq}); the report was not stored`),
  reason: "report_invalid",
});

const TWO_POW_53_NUMBER = 2 ** 53;

/** Label objects already found valid (interned, shared ones from the decoder hit this). */
const validLabels = new WeakSet<object>();

export function validateReport(r: IngestReport, limits: ReportLimits): Rejection | undefined {
  const seq = r.sequenceBig ?? r.sequence;
  if (r.sequenceBig === undefined && r.sequence < 1) {
    return badReport("report.sequence", "must be >= 1", seq);
  }
  if (r.sequenceBig !== undefined || r.sequence >= TWO_POW_53_NUMBER) {
    return badReport("report.sequence", "must be < 2^53", seq);
  }
  const ts = r.timestampBig ?? r.timestampUnixMs;
  if (r.timestampBig !== undefined || !(ts > 0) || ts >= TWO_POW_53_NUMBER) {
    return badReport("report.timestamp_unix_ms", `must be > 0 and < 2^53, got ${ts}`, seq);
  }
  if (r.samples.length > limits.samplesPerReportMax) {
    return {
      error: new ConnectError(
        `report.samples: at most ${limits.samplesPerReportMax} per report, got ${r.samples.length} (sequence ${seq}); split the report`,
        Code.ResourceExhausted,
      ),
      reason: "report_too_large",
    };
  }
  if (r.probes.length > limits.probesPerReportMax) {
    return {
      error: new ConnectError(
        `report.probes: at most ${limits.probesPerReportMax} per report, got ${r.probes.length} (sequence ${seq})`,
        Code.ResourceExhausted,
      ),
      reason: "report_too_large",
    };
  }
  const empty = r.samples.length === 0 && r.probes.length === 0;
  if (r.heartbeatOnly && !empty) {
    return badReport(
      "report.heartbeat_only",
      "set on a report that carries samples or probes",
      seq,
    );
  }
  if (!r.heartbeatOnly && empty) {
    return badReport("report.samples", "empty; an empty report must set heartbeat_only", seq);
  }
  for (let i = 0; i < r.samples.length; i++) {
    const s = r.samples[i]!;
    if (!nameOk(s.name)) {
      return badReport(
        `report.samples[${i}].name`,
        `must be 1–128 chars of [a-z0-9_.] starting with a letter, got ${quote(s.name)}`,
        seq,
      );
    }
    if (!Number.isFinite(s.value)) {
      return badReport(
        `report.samples[${i}].value`,
        `must be finite, got ${s.value} for ${quote(s.name)}`,
        seq,
      );
    }
    if (!unitOk(s.unit)) {
      return badReport(
        `report.samples[${i}].unit`,
        `must be 0–32 chars of [a-z_], got ${quote(s.unit)}`,
        seq,
      );
    }
    if (!validLabels.has(s.labels) && hasKeys(s.labels)) {
      const bad = checkLabels(s.labels, 8, 128);
      if (bad) return badReport(`report.samples[${i}].labels${bad.at}`, bad.problem, seq);
      // Only frozen (shared) objects: a mutable one could change after this check.
      if (Object.isFrozen(s.labels)) validLabels.add(s.labels);
    }
  }
  for (let i = 0; i < r.probes.length; i++) {
    const p = r.probes[i]!;
    const at = `report.probes[${i}]`;
    if (p.kind === ProbeKind.UNSPECIFIED || ProbeKind[p.kind] === undefined) {
      return badReport(`${at}.kind`, `required, a known ProbeKind, got ${p.kind}`, seq);
    }
    if (p.target.length < 1 || p.target.length > 2048) {
      return badReport(`${at}.target`, `must be 1–2048 chars, got ${p.target.length}`, seq);
    }
    if (!Number.isFinite(p.latencyMs) || p.latencyMs < 0) {
      return badReport(`${at}.latency_ms`, `must be finite and >= 0, got ${p.latencyMs}`, seq);
    }
    const entries = Object.entries(p.values);
    if (entries.length > 32)
      return badReport(`${at}.values`, `at most 32 entries, got ${entries.length}`, seq);
    for (const [k, v] of entries) {
      if (!LABEL_KEY_PATTERN.test(k)) {
        return badReport(`${at}.values[${quote(k)}]`, "key must be 1–63 chars of [a-z0-9_]", seq);
      }
      if (!Number.isFinite(v))
        return badReport(`${at}.values[${quote(k)}]`, `must be finite, got ${v}`, seq);
    }
    if (p.error.length > 1024)
      return badReport(`${at}.error`, `at most 1024 chars, got ${p.error.length}`, seq);
  }
  return undefined;
}

/** Cheaper than Object.keys(o).length for the common empty map. */
function hasKeys(o: Record<string, string>): boolean {
  for (const _ in o) return true;
  return false;
}

function checkLabels(
  labels: Record<string, string>,
  entriesMax: number,
  valueCharsMax: number,
): { at: string; problem: string } | undefined {
  const keys = Object.keys(labels);
  if (keys.length > entriesMax)
    return { at: "", problem: `at most ${entriesMax} entries, got ${keys.length}` };
  for (const k of keys) {
    if (!LABEL_KEY_PATTERN.test(k))
      return { at: `[${quote(k)}]`, problem: "key must be 1–63 chars of [a-z0-9_]" };
    const v = labels[k]!;
    if (v.length > valueCharsMax) {
      return {
        at: `[${quote(k)}]`,
        problem: `value at most ${valueCharsMax} chars, got ${v.length}`,
      };
    }
  }
  return undefined;
}
