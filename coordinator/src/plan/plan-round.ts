/**
 * One planning round for the leader's control loop: assignments, then shard
 * maps from the new holders, then segment granularity, then the FSM commands
 * for what changed. Pure: the leader gathers the inputs (FSM state, with each
 * stream's replicated segment schedule, plus per-stream runtime facts: the
 * shard being produced now and the viewer sessions) and proposes the
 * returned commands.
 *
 * Streams with an open handover are not replanned (the handover orchestrator
 * owns their assignments and shard targets until it finishes); their current
 * placement still counts as load so other streams are planned around it.
 */
import type { Component } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type {
  ShardMap,
  StreamAssignments,
} from "../../../proto/gen/understudy/common/v1/placement_pb.ts";
import type { Stream } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { type FsmView, isHandoverOpen, scheduleOf } from "../fsm/fsm.ts";
import {
  type AssignmentOptions,
  defaultAssignmentOptions,
  type PackagerLoad,
  planAssignments,
  type StreamAssignmentPlan,
  statusMessageCharsMax,
  validateStreamInput,
} from "./assignment-planner.ts";
import { applyAssignmentPlan, openRows } from "./assignment-rows.ts";
import { type PlannedCommand, streamCommands } from "./commands.ts";
import {
  assignmentRowsFromProto,
  encodersFromComponents,
  packagersFromComponents,
  segmentPolicyFromSpec,
  shardRangesFromProto,
  streamInputFromProto,
} from "./proto-adapter.ts";
import {
  defaultGranularityOptions,
  entryOfMsn,
  firstShardOfMsnIn,
  type GranularityDecision,
  type GranularityOptions,
  granularityLevels,
  msnOfShardIn,
  planSegmentDuration,
  type SegmentSchedule,
} from "./segment-granularity.ts";
import {
  defaultShardOptions,
  planShardMaps,
  type ShardOptions,
  type ShardStreamInput,
  type StreamShardPlan,
  validateShardRanges,
} from "./shard-planner.ts";
import { type AssignmentRow, byId, requireInt } from "./types.ts";

/** What the leader knows about a stream at run time (not replicated). */
export interface StreamRuntime {
  /** Shard being produced now: floor((now − timeline origin) / shard_duration_ms); -1 before the origin. */
  readonly currentShard: number;
  /** Viewer sessions per rendition id (missing = 0). */
  readonly sessionsByRendition?: ReadonlyMap<string, number> | undefined;
  /** Regions close to the stream's encoders/viewers. */
  readonly preferredRegions?: readonly string[] | undefined;
  /**
   * The newest media each holder has of each rendition (its inventory), read
   * by the leader when the encoder of the current shard is lost; undefined =
   * not read. The replacement then starts at the first shard some holder
   * lacks (see shard-planner.ts, rewind).
   */
  readonly holdersNewest?: readonly NewestMedia[] | undefined;
}

/** The newest object a packager holds of one rendition. */
export interface NewestMedia {
  readonly packagerId: string;
  readonly renditionId: string;
  readonly msn: number;
  /** Part index; undefined when the newest object is a complete segment. */
  readonly part?: number | undefined;
}

export interface RoundStream {
  readonly stream: Stream;
  readonly assignments: StreamAssignments | undefined;
  readonly shardMap: ShardMap | undefined;
  /** True while a handover of the stream is open: the stream is not replanned. */
  readonly handoverOpen: boolean;
  /** Undefined when the leader has no run-time facts yet: the stream is not replanned. */
  readonly runtime: StreamRuntime | undefined;
}

export interface RoundInput {
  readonly components: readonly Component[];
  readonly streams: readonly RoundStream[];
  /** Packager load from work outside understudy's streams (default none). */
  readonly packagerBaseLoad?: ReadonlyMap<string, PackagerLoad>;
  /** Encoder streams from work outside understudy's streams (default none). */
  readonly encoderBaseStreams?: ReadonlyMap<string, number>;
}

export interface RoundOptions {
  readonly assignment: AssignmentOptions;
  readonly shard: ShardOptions;
  readonly granularity: GranularityOptions;
}

export const defaultRoundOptions: RoundOptions = {
  assignment: defaultAssignmentOptions,
  shard: defaultShardOptions,
  granularity: defaultGranularityOptions,
};

export interface StreamRoundPlan {
  readonly streamId: string;
  /** Set when the stream was not replanned. */
  readonly skipped?: "handover-open" | "no-runtime" | "invalid";
  readonly assignment?: StreamAssignmentPlan;
  readonly assignmentRows?: readonly AssignmentRow[];
  readonly shard?: StreamShardPlan;
  /** Undefined before the timeline starts (currentShard < 0). */
  readonly granularity?: GranularityDecision;
  readonly status: "active" | "degraded";
  readonly statusMessage: string;
  /** Propose in order; stop at the first failure and replan. Empty = nothing to do. */
  readonly commands: readonly PlannedCommand[];
}

export interface RoundPlan {
  /** In stream id order. */
  readonly streams: readonly StreamRoundPlan[];
}

function currentMsnOf(s: Stream, runtime: StreamRuntime): number {
  const list = scheduleOf(s);
  const first = list[0] as SegmentSchedule;
  if (runtime.currentShard < first.sinceShard) return first.sinceMsn - 1;
  return msnOfShardIn(list, s.spec?.shardDurationMs ?? 0, runtime.currentShard);
}

/**
 * First shard some holder has not received: the minimum over the reported
 * newest objects of their last shard, plus one. Undefined without reports,
 * or when parts are not shards (part duration ≠ shard duration), since the
 * packagers count parts and the map counts shards.
 */
export function firstUnreceivedShard(s: Stream, runtime: StreamRuntime): number | undefined {
  const spec = s.spec;
  const reports = runtime.holdersNewest;
  if (!spec || !reports || reports.length === 0) return undefined;
  const shardMs = spec.shardDurationMs;
  const partMs = spec.segmentPolicy?.partDurationMs ?? 0;
  if (shardMs <= 0 || (partMs !== 0 && partMs !== shardMs)) return undefined;
  const list = scheduleOf(s);
  if (list.some((e) => e.segmentDurationMs <= 0 || e.segmentDurationMs % shardMs !== 0))
    return undefined;
  const first = list[0] as SegmentSchedule;
  let min = Number.POSITIVE_INFINITY;
  for (const r of reports) {
    if (!Number.isSafeInteger(r.msn) || r.msn < first.sinceMsn) continue;
    // Segments have the length of the schedule entry that numbers them.
    const perSegment = entryOfMsn(list, r.msn).segmentDurationMs / shardMs;
    if (
      r.part !== undefined &&
      !(Number.isSafeInteger(r.part) && r.part >= 0 && r.part < perSegment)
    )
      continue;
    const last =
      r.part === undefined
        ? firstShardOfMsnIn(list, shardMs, r.msn + 1) - 1
        : firstShardOfMsnIn(list, shardMs, r.msn) + r.part;
    min = Math.min(min, last);
  }
  return Number.isFinite(min) ? min + 1 : undefined;
}

/** Holders of a stream in push order: primaries (ladder order), then replicas. */
function holdersOf(rows: readonly AssignmentRow[], renditionIds: readonly string[]): string[] {
  const open = openRows(rows);
  const out: string[] = [];
  for (const id of renditionIds) {
    const row = open.get(id);
    if (row && !out.includes(row.primary)) out.push(row.primary);
  }
  for (const id of renditionIds) {
    for (const r of [...(open.get(id)?.replicas ?? [])].sort(byId))
      if (!out.includes(r)) out.push(r);
  }
  return out;
}

export function planRound(
  input: RoundInput,
  options: RoundOptions = defaultRoundOptions,
): RoundPlan {
  // A stream whose stored state the planners reject is skipped with the
  // reason, so one bad stream cannot stop the round for the others.
  const invalid = new Map<RoundStream, string>();
  for (const s of input.streams) {
    if (!s.stream.spec || s.handoverOpen || !s.runtime) continue;
    const problem = validateRoundStream(s as RoundStream & { runtime: StreamRuntime });
    if (problem) invalid.set(s, problem);
  }
  const isPlanned = (s: RoundStream): s is RoundStream & { runtime: StreamRuntime } =>
    s.stream.spec !== undefined && !s.handoverOpen && s.runtime !== undefined && !invalid.has(s);
  const planned = input.streams
    .filter(isPlanned)
    .sort((a, b) => byId(a.stream.spec?.id ?? "", b.stream.spec?.id ?? ""));
  const skipped = input.streams.filter((s) => s.stream.spec && !isPlanned(s));

  // Skipped streams keep their placement: it is load the planners must see.
  const pkgLoad = new Map(input.packagerBaseLoad ?? []);
  const encLoad = new Map(input.encoderBaseStreams ?? []);
  for (const s of skipped) {
    const spec = s.stream.spec;
    if (!spec) continue;
    const open = openRows(assignmentRowsFromProto(s.assignments));
    const touched = new Set<string>();
    for (const r of spec.renditions) {
      const row = open.get(r.id);
      if (!row) continue;
      for (const id of [row.primary, ...row.replicas]) touched.add(id);
      const egress = (s.runtime?.sessionsByRendition?.get(r.id) ?? 0) * Number(r.bandwidthBps);
      const cur = pkgLoad.get(row.primary) ?? { streams: 0, egressBps: 0 };
      pkgLoad.set(row.primary, { ...cur, egressBps: cur.egressBps + egress });
    }
    for (const id of touched) {
      const cur = pkgLoad.get(id) ?? { streams: 0, egressBps: 0 };
      pkgLoad.set(id, { ...cur, streams: cur.streams + 1 });
    }
    const future = new Set(
      shardRangesFromProto(s.shardMap?.ranges)
        .filter((r) => r.lastShard === undefined || r.lastShard > (s.runtime?.currentShard ?? -1))
        .map((r) => r.encoderId),
    );
    for (const id of future) encLoad.set(id, (encLoad.get(id) ?? 0) + 1);
  }

  const assignmentPlan = planAssignments(
    {
      packagers: packagersFromComponents(input.components, pkgLoad),
      streams: planned.map((s) =>
        streamInputFromProto(s.stream, s.assignments, {
          currentMsn: currentMsnOf(s.stream, s.runtime),
          sessionsByRendition: s.runtime.sessionsByRendition,
          preferredRegions: s.runtime.preferredRegions,
        }),
      ),
    },
    options.assignment,
  );

  const rowsById = new Map<string, { current: AssignmentRow[]; next: AssignmentRow[] }>();
  const shardInputs: ShardStreamInput[] = [];
  for (const [k, s] of planned.entries()) {
    const spec = s.stream.spec;
    const a = assignmentPlan.streams[k] as StreamAssignmentPlan;
    if (!spec) continue;
    const current = assignmentRowsFromProto(s.assignments);
    const next = applyAssignmentPlan(current, a);
    rowsById.set(spec.id, { current, next });
    const sessions = spec.renditions.reduce(
      (sum, r) => sum + (s.runtime.sessionsByRendition?.get(r.id) ?? 0),
      0,
    );
    shardInputs.push({
      streamId: spec.id,
      currentShard: s.runtime.currentShard,
      ranges: shardRangesFromProto(s.shardMap?.ranges),
      holderPackagerIds: holdersOf(
        next,
        spec.renditions.map((r) => r.id),
      ),
      sessions,
      spareCandidates: a.spares,
      firstUnreceivedShard: firstUnreceivedShard(s.stream, s.runtime),
    });
  }
  const shardPlan = planShardMaps(
    { encoders: encodersFromComponents(input.components, encLoad), streams: shardInputs },
    options.shard,
  );

  const out: StreamRoundPlan[] = [];
  for (const [k, s] of planned.entries()) {
    const spec = s.stream.spec;
    if (!spec) continue;
    const a = assignmentPlan.streams[k] as StreamAssignmentPlan;
    const sh = shardPlan.streams[k] as StreamShardPlan;
    const rows = rowsById.get(spec.id) as { current: AssignmentRow[]; next: AssignmentRow[] };
    // The newest entry may lie in the future (a committed change not yet in
    // force): plan from it, as if at its start, so a change follows it.
    const latest = scheduleOf(s.stream).at(-1) as SegmentSchedule;
    const granularity =
      s.runtime.currentShard < 0
        ? undefined
        : planSegmentDuration(
            {
              policy: segmentPolicyFromSpec(spec),
              schedule: latest,
              currentShard: Math.max(s.runtime.currentShard, latest.sinceShard),
              sessions: shardInputs[k]?.sessions ?? 0,
            },
            options.granularity,
          );
    const reasons = [...a.reasons, ...sh.reasons];
    const message = reasons.join("; ");
    out.push({
      streamId: spec.id,
      assignment: a,
      assignmentRows: rows.next,
      shard: sh,
      ...(granularity ? { granularity } : {}),
      status: reasons.length === 0 ? "active" : "degraded",
      statusMessage:
        message.length <= statusMessageCharsMax
          ? message
          : `${message.slice(0, statusMessageCharsMax - 1)}…`,
      commands: streamCommands({
        streamId: spec.id,
        epoch: Number(s.stream.epoch),
        assignments: rows,
        shardMap: { current: shardRangesFromProto(s.shardMap?.ranges), next: sh.ranges },
        granularity: granularity && {
          scheduleVersion: Number(s.stream.segmentScheduleVersion),
          decision: granularity,
        },
      }),
    });
  }
  for (const s of skipped) {
    const problem = invalid.get(s);
    out.push({
      streamId: s.stream.spec?.id ?? "",
      skipped: s.handoverOpen ? "handover-open" : problem ? "invalid" : "no-runtime",
      status: problem ? "degraded" : "active",
      statusMessage: problem ? `not planned: ${problem}`.slice(0, statusMessageCharsMax) : "",
      commands: [],
    });
  }
  return { streams: out.sort((x, y) => byId(x.streamId, y.streamId)) };
}

/** The first reason the planners would reject this stream's stored state, or undefined. */
function validateRoundStream(s: RoundStream & { runtime: StreamRuntime }): string | undefined {
  const spec = s.stream.spec;
  if (!spec) return "spec: required";
  try {
    requireInt("runtime.currentShard", s.runtime.currentShard, -1);
    validateStreamInput(
      streamInputFromProto(s.stream, s.assignments, {
        currentMsn: currentMsnOf(s.stream, s.runtime),
        sessionsByRendition: s.runtime.sessionsByRendition,
      }),
      `stream "${spec.id}"`,
    );
    validateShardRanges(shardRangesFromProto(s.shardMap?.ranges), "shard_map.ranges");
    granularityLevels(segmentPolicyFromSpec(spec));
    return undefined;
  } catch (err) {
    if (err instanceof RangeError) return err.message;
    throw err;
  }
}

/**
 * Gathers a round's input from the FSM: every stream with its assignments,
 * shard map and open-handover flag, and `runtime(streamId)` for what only the
 * leader knows (undefined = not known yet: the stream is skipped but its
 * placement still counts as load).
 */
export function roundInputFromFsm(
  view: FsmView,
  runtime: (streamId: string) => StreamRuntime | undefined,
): RoundInput {
  const open = new Set(
    view
      .handovers()
      .filter(isHandoverOpen)
      .map((h) => h.streamId),
  );
  const streams: RoundStream[] = [];
  for (const stream of view.streams()) {
    const id = stream.spec?.id;
    if (!id) continue;
    const rt = runtime(id);
    streams.push({
      stream,
      assignments: view.assignments(id),
      shardMap: view.shardMap(id),
      handoverOpen: open.has(id),
      runtime: rt,
    });
  }
  return { components: view.components(), streams };
}
