/**
 * Conversions between FSM proto messages and the planners' plain inputs.
 * 64-bit fields are < 2^53 by contract, so `Number(x)` in and `BigInt(n)` out
 * are exact. Pure: no I/O.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Component,
  ComponentRole,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type RenditionAssignment,
  RenditionAssignmentSchema,
  type ShardRange,
  ShardRangeSchema,
  type StreamAssignments,
} from "../../../proto/gen/understudy/common/v1/placement_pb.ts";
import type { Stream, StreamSpec } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import type { PackagerInput, PackagerLoad, StreamInput } from "./assignment-planner.ts";
import { openRows } from "./assignment-rows.ts";
import type { SegmentPolicyInput } from "./segment-granularity.ts";
import type { EncoderInput } from "./shard-planner.ts";
import { type AssignmentRow, anywhere, type PlacementPolicy, type ShardRangeRow } from "./types.ts";

export function assignmentRowsFromProto(a: StreamAssignments | undefined): AssignmentRow[] {
  return (a?.assignments ?? []).map((x) => ({
    renditionId: x.renditionId,
    firstMsn: Number(x.firstMsn),
    lastMsn: x.lastMsn === undefined ? undefined : Number(x.lastMsn),
    primary: x.primaryPackagerId,
    replicas: [...x.replicaPackagerIds],
  }));
}

export function assignmentRowsToProto(rows: readonly AssignmentRow[]): RenditionAssignment[] {
  return rows.map((r) =>
    create(RenditionAssignmentSchema, {
      renditionId: r.renditionId,
      firstMsn: BigInt(r.firstMsn),
      ...(r.lastMsn === undefined ? {} : { lastMsn: BigInt(r.lastMsn) }),
      primaryPackagerId: r.primary,
      replicaPackagerIds: [...r.replicas],
    }),
  );
}

export function shardRangesFromProto(ranges: readonly ShardRange[] | undefined): ShardRangeRow[] {
  return (ranges ?? []).map((r) => ({
    firstShard: Number(r.firstShard),
    lastShard: r.lastShard === undefined ? undefined : Number(r.lastShard),
    encoderId: r.encoderId,
    replicaPackagerIds: [...r.replicaPackagerIds],
  }));
}

export function shardRangesToProto(ranges: readonly ShardRangeRow[]): ShardRange[] {
  return ranges.map((r) =>
    create(ShardRangeSchema, {
      firstShard: BigInt(r.firstShard),
      ...(r.lastShard === undefined ? {} : { lastShard: BigInt(r.lastShard) }),
      encoderId: r.encoderId,
      replicaPackagerIds: [...r.replicaPackagerIds],
    }),
  );
}

export function placementFromSpec(spec: StreamSpec): PlacementPolicy {
  const p = spec.placement;
  if (!p) return anywhere;
  return {
    allowedRegions: [...p.allowedRegions],
    allowedZones: [...p.allowedZones],
    zoneAntiAffinity: p.zoneAntiAffinity,
  };
}

export function segmentPolicyFromSpec(spec: StreamSpec): SegmentPolicyInput {
  const p = spec.segmentPolicy;
  return {
    shardDurationMs: spec.shardDurationMs,
    latencyMode: spec.latencyMode,
    segmentDurationTargetMs: p?.segmentDurationTargetMs ?? 0,
    segmentDurationMinMs: p?.segmentDurationMinMs ?? 0,
    segmentDurationMaxMs: p?.segmentDurationMaxMs ?? 0,
    partDurationMs: p?.partDurationMs ?? 0,
    keyframeIntervalMs: p?.keyframeIntervalMs ?? 0,
  };
}

const servesMedia = (c: Component) =>
  c.role === ComponentRole.PACKAGER || c.role === ComponentRole.ORIGIN;

/**
 * PACKAGER and ORIGIN components as planner packagers. `baseLoad` is load
 * from work not in the plan (default none).
 */
export function packagersFromComponents(
  components: readonly Component[],
  baseLoad: ReadonlyMap<string, PackagerLoad> = new Map(),
): PackagerInput[] {
  return components.filter(servesMedia).map((c) => ({
    id: c.id,
    region: c.labels?.region ?? "",
    zone: c.labels?.zone ?? "",
    status: c.status,
    maxStreams: c.capacity?.maxStreams ?? 0,
    egressBps: Number(c.capacity?.egressBps ?? 0n),
    baseStreams: baseLoad.get(c.id)?.streams ?? 0,
    baseEgressBps: baseLoad.get(c.id)?.egressBps ?? 0,
  }));
}

/** ENCODER components as shard-planner encoders. */
export function encodersFromComponents(
  components: readonly Component[],
  baseStreams: ReadonlyMap<string, number> = new Map(),
): EncoderInput[] {
  return components
    .filter((c) => c.role === ComponentRole.ENCODER)
    .map((c) => ({
      id: c.id,
      status: c.status,
      maxStreams: c.capacity?.maxStreams ?? 0,
      baseStreams: baseStreams.get(c.id) ?? 0,
    }));
}

/**
 * A stream as assignment-planner input: its ladder with per-rendition demand
 * (missing = 0 sessions) and each rendition's open assignment row.
 */
export function streamInputFromProto(
  stream: Stream,
  assignments: StreamAssignments | undefined,
  runtime: {
    readonly currentMsn: number;
    readonly sessionsByRendition?: ReadonlyMap<string, number>;
    readonly preferredRegions?: readonly string[];
  },
): StreamInput {
  const spec = stream.spec;
  if (!spec) throw new RangeError("stream.spec: required");
  const open = openRows(assignmentRowsFromProto(assignments));
  return {
    id: spec.id,
    replicationFactor: spec.replicationFactor,
    placement: placementFromSpec(spec),
    currentMsn: runtime.currentMsn,
    ...(runtime.preferredRegions ? { preferredRegions: runtime.preferredRegions } : {}),
    renditions: spec.renditions.map((r) => {
      const row = open.get(r.id);
      return {
        id: r.id,
        bandwidthBps: Number(r.bandwidthBps),
        sessions: runtime.sessionsByRendition?.get(r.id) ?? 0,
        current: row
          ? { primary: row.primary, replicas: row.replicas, firstMsn: row.firstMsn }
          : undefined,
      };
    }),
  };
}
