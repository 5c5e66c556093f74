/**
 * The replicated state machine: every coordinator applies the same committed
 * commands in the same order and so holds the same state. Pure and
 * deterministic: no clock (times come from the command envelope, stamped by
 * the proposing leader), no randomness, no I/O. Iteration orders are sorted
 * so snapshots, hashes and listings are identical on every replica.
 *
 * Results are values: a command that cannot apply (unknown id, version
 * conflict, stale epoch) changes nothing and returns its error, identically
 * on every replica. Requests carry an idempotency key; a retried request
 * returns the first result without applying again (bounded memory, FIFO).
 */
import { clone, create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code } from "../../../common/errors.ts";
import {
  type Component,
  ComponentSchema,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type Handover,
  HandoverSchema,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import {
  type ShardMap,
  ShardMapSchema,
  type StreamAssignments,
  StreamAssignmentsSchema,
} from "../../../proto/gen/understudy/common/v1/placement_pb.ts";
import {
  type SegmentScheduleEntry,
  SegmentScheduleEntrySchema,
  type Stream,
  StreamSchema,
  type StreamSpec,
  StreamSpecSchema,
  StreamStatus,
} from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import {
  type Command,
  type CommandEnvelope,
  CommandEnvelopeSchema,
  type FsmSnapshot,
  FsmSnapshotSchema,
  type Member,
  MemberSchema,
  type ModelParameters,
  ModelParametersSchema,
  type RecentRequest,
} from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";
import { segmentPolicyFromSpec } from "../plan/proto-adapter.ts";
import {
  type SegmentSchedule,
  type SegmentScheduleList,
  scheduleChangeProblem,
} from "../plan/segment-granularity.ts";

export const fsmFormatVersion = 1;
/** How many request ids are remembered for deduplication (FIFO eviction). */
export const recentRequestsMax = 10_000;
/** Bound on Stream.segment_schedule entries. */
export const segmentScheduleEntriesMax = 16;
/**
 * A schedule entry whose successor took effect longer ago than this (on the
 * shard axis) may be dropped: nothing numbers media that old any more (the
 * live window, encoder takeovers and holders' inventories are all recent).
 */
export const segmentScheduleRetainMs = 600_000;
const scheduleReasonCharsMax = 256;

export type FsmResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: Code; readonly message: string };

/** What changed in one apply, for watchers (ChainService, HandoverService, detectors). */
export type FsmChange =
  | { readonly kind: "stream"; readonly id: string; readonly deleted: boolean }
  | { readonly kind: "component"; readonly id: string; readonly deleted: boolean }
  | { readonly kind: "shard-map"; readonly streamId: string }
  | { readonly kind: "assignments"; readonly streamId: string }
  | { readonly kind: "handover"; readonly id: string; readonly streamId: string }
  | { readonly kind: "member"; readonly id: string; readonly removed: boolean }
  | { readonly kind: "model"; readonly id: string };

/** Read-only view used by services. Returned messages must not be mutated. */
export interface FsmView {
  appliedIndex(): number;
  streams(): readonly Stream[];
  stream(id: string): Stream | undefined;
  components(): readonly Component[];
  component(id: string): Component | undefined;
  shardMap(streamId: string): ShardMap | undefined;
  assignments(streamId: string): StreamAssignments | undefined;
  handovers(): readonly Handover[];
  handover(id: string): Handover | undefined;
  members(): readonly Member[];
  member(id: string): Member | undefined;
  model(id: string): ModelParameters | undefined;
  /** Short stable digest of the whole state (compare replicas). */
  hash(): string;
  /** Called after each apply that changed something; returns an unsubscribe function. */
  onChange(listener: (changes: readonly FsmChange[], index: number) => void): () => void;
}

export interface Fsm extends FsmView {
  /** Applies one committed normal entry (encoded CommandEnvelope). Empty data = leader no-op. */
  apply(index: number, term: number, data: Uint8Array): FsmResult;
  /**
   * Records that a committed entry the FSM does not interpret (a Raft
   * conf-change) was applied, so appliedIndex stays in step with the log.
   */
  skip(index: number, term: number): void;
  snapshot(): Uint8Array;
  restore(bytes: Uint8Array): void;
}

const ok: FsmResult = { ok: true };
const fail = (code: Code, message: string): FsmResult => ({ ok: false, code, message });

/** Allowed handover transitions; ABORTED is reachable from every open state. */
const handoverNext: Record<number, readonly HandoverState[]> = {
  [HandoverState.BEGUN]: [HandoverState.STANDBY_READY, HandoverState.ABORTED],
  [HandoverState.STANDBY_READY]: [HandoverState.PRE_STITCHED, HandoverState.ABORTED],
  [HandoverState.PRE_STITCHED]: [HandoverState.NOTIFIED, HandoverState.ABORTED],
  [HandoverState.NOTIFIED]: [HandoverState.SWITCHED, HandoverState.ABORTED],
  [HandoverState.SWITCHED]: [HandoverState.COMPLETED, HandoverState.ABORTED],
  [HandoverState.COMPLETED]: [],
  [HandoverState.ABORTED]: [],
};

export function isHandoverOpen(h: Handover): boolean {
  return h.state !== HandoverState.COMPLETED && h.state !== HandoverState.ABORTED;
}

export function createFsm(): Fsm {
  let applied = 0;
  let appliedTerm = 0;
  const streams = new Map<string, Stream>();
  const components = new Map<string, Component>();
  const shardMaps = new Map<string, ShardMap>();
  const assignments = new Map<string, StreamAssignments>();
  const handovers = new Map<string, Handover>();
  const members = new Map<string, Member>();
  const models = new Map<string, ModelParameters>();
  const recent = new Map<string, RecentRequest>();
  const listeners = new Set<(c: readonly FsmChange[], index: number) => void>();

  const sorted = <T>(m: Map<string, T>): T[] => [...m.keys()].sort().map((k) => m.get(k) as T);

  const bumpEpoch = (s: Stream, atMs: bigint) => {
    s.epoch += 1n;
    s.updatedUnixMs = atMs;
  };

  const execute = (env: CommandEnvelope, cmd: Command, changes: FsmChange[]): FsmResult => {
    const at = env.proposedUnixMs;
    const op = cmd.op;
    switch (op.case) {
      case "createStream": {
        const spec = op.value.spec;
        if (!spec?.id) return fail(Code.InvalidArgument, "spec.id: required");
        if (streams.has(spec.id))
          return fail(Code.AlreadyExists, `stream "${spec.id}" already exists`);
        // The timeline origin is fixed at creation (the proposer's clock),
        // so every replica and encoder numbers segments the same way.
        const fixed = clone(StreamSpecSchema, spec);
        if (fixed.timelineOriginUnixMs === 0n) fixed.timelineOriginUnixMs = at;
        // Where segments may start is fixed too: 0 means the target's boundaries.
        if (fixed.segmentPolicy && fixed.segmentPolicy.keyframeIntervalMs === 0)
          fixed.segmentPolicy.keyframeIntervalMs = fixed.segmentPolicy.segmentDurationTargetMs;
        // Segments start at the spec's target from MSN 0 / shard 0; written
        // down now so a later spec update cannot renumber the past.
        const target = fixed.segmentPolicy?.segmentDurationTargetMs ?? 0;
        streams.set(
          spec.id,
          create(StreamSchema, {
            spec: fixed,
            version: 1n,
            epoch: 1n,
            createdUnixMs: at,
            updatedUnixMs: at,
            status: StreamStatus.PENDING,
            segmentSchedule:
              target > 0
                ? [
                    create(SegmentScheduleEntrySchema, {
                      segmentDurationMs: target,
                      decidedUnixMs: at,
                      reason: "created: the spec's target",
                    }),
                  ]
                : [],
          }),
        );
        changes.push({ kind: "stream", id: spec.id, deleted: false });
        return ok;
      }
      case "updateStream": {
        const spec = op.value.spec;
        const cur = spec ? streams.get(spec.id) : undefined;
        if (!spec || !cur) return fail(Code.NotFound, `stream "${spec?.id ?? ""}" not found`);
        const expected = op.value.expectedVersion;
        if (expected !== 0n && expected !== cur.version) {
          return fail(
            Code.Aborted,
            `stream "${spec.id}" is at version ${cur.version}, not ${expected}: re-read it and retry`,
          );
        }
        const origin = cur.spec?.timelineOriginUnixMs ?? 0n;
        if (spec.timelineOriginUnixMs !== 0n && spec.timelineOriginUnixMs !== origin) {
          return fail(
            Code.InvalidArgument,
            `spec.timeline_origin_unix_ms: immutable after creation (is ${origin}); omit it or send the same value`,
          );
        }
        const keyframeMs = keyframeIntervalOf(cur.spec);
        const immutable = immutableSpecChange(cur.spec, spec, keyframeMs);
        if (immutable) return fail(Code.InvalidArgument, immutable);
        pinSchedule(cur, at);
        cur.spec = clone(StreamSpecSchema, spec);
        cur.spec.timelineOriginUnixMs = origin;
        if (cur.spec.segmentPolicy) cur.spec.segmentPolicy.keyframeIntervalMs = keyframeMs;
        cur.version += 1n;
        cur.updatedUnixMs = at;
        changes.push({ kind: "stream", id: spec.id, deleted: false });
        return ok;
      }
      case "deleteStream": {
        const id = op.value.streamId;
        const cur = streams.get(id);
        if (!cur) return fail(Code.NotFound, `stream "${id}" not found`);
        const expected = op.value.expectedVersion;
        if (expected !== 0n && expected !== cur.version) {
          return fail(Code.Aborted, `stream "${id}" is at version ${cur.version}, not ${expected}`);
        }
        streams.delete(id);
        shardMaps.delete(id);
        assignments.delete(id);
        changes.push({ kind: "stream", id, deleted: true });
        return ok;
      }
      case "registerComponent": {
        const r = op.value;
        if (!r.componentId) return fail(Code.InvalidArgument, "component_id: required");
        const prev = components.get(r.componentId);
        const next = create(ComponentSchema, {
          id: r.componentId,
          role: r.role,
          host: r.host,
          labels: r.labels,
          capacity: r.capacity,
          softwareVersion: r.softwareVersion,
          baseUrl: r.baseUrl,
          controlAddress: r.controlAddress,
          // A (re)registering agent is alive; a drained component stays drained.
          status:
            prev &&
            (prev.status === ComponentStatus.DRAINING || prev.status === ComponentStatus.DRAINED)
              ? prev.status
              : ComponentStatus.HEALTHY,
          statusChangedUnixMs:
            prev?.status === ComponentStatus.HEALTHY ? prev.statusChangedUnixMs : at,
          statusReason: prev ? prev.statusReason : "registered",
          lastSeenUnixMs: at,
        });
        if (prev?.status !== next.status) next.statusReason = "registered";
        components.set(r.componentId, next);
        changes.push({ kind: "component", id: r.componentId, deleted: false });
        return ok;
      }
      case "deregisterComponent": {
        const id = op.value.componentId;
        if (!components.delete(id)) return fail(Code.NotFound, `component "${id}" not found`);
        changes.push({ kind: "component", id, deleted: true });
        return ok;
      }
      case "updateComponentStatus": {
        const u = op.value;
        const c = components.get(u.componentId);
        if (!c) return fail(Code.NotFound, `component "${u.componentId}" not found`);
        if (u.status === ComponentStatus.UNSPECIFIED)
          return fail(Code.InvalidArgument, "status: required");
        if (c.status !== u.status) {
          c.status = u.status;
          c.statusChangedUnixMs = u.atUnixMs || at;
        }
        c.statusReason = u.reason;
        // biome-ignore lint/complexity/useMathMinMax: bigint operands; Math.max does not take them.
        c.lastSeenUnixMs = u.atUnixMs > c.lastSeenUnixMs ? u.atUnixMs : c.lastSeenUnixMs;
        changes.push({ kind: "component", id: c.id, deleted: false });
        return ok;
      }
      case "addMember": {
        // The replicated address book. Voting membership itself is Raft's
        // (conf-change entries); ClusterService.AddMember commits this entry
        // first so every node can reach the new member once it votes.
        const m = op.value;
        if (!m.nodeId) return fail(Code.InvalidArgument, "node_id: required");
        members.set(
          m.nodeId,
          create(MemberSchema, {
            nodeId: m.nodeId,
            address: m.address,
            apiAddress: m.apiAddress,
            learner: m.asLearner,
          }),
        );
        changes.push({ kind: "member", id: m.nodeId, removed: false });
        return ok;
      }
      case "removeMember": {
        if (!members.delete(op.value.nodeId)) {
          return fail(Code.NotFound, `member "${op.value.nodeId}" not found`);
        }
        changes.push({ kind: "member", id: op.value.nodeId, removed: true });
        return ok;
      }
      case "setShardMap": {
        const s = streams.get(op.value.streamId);
        if (!s) return fail(Code.NotFound, `stream "${op.value.streamId}" not found`);
        const stale = staleEpoch(s, op.value.expectedEpoch);
        if (stale) return stale;
        shardMaps.set(
          s.spec?.id ?? op.value.streamId,
          create(ShardMapSchema, { streamId: op.value.streamId, ranges: op.value.ranges }),
        );
        bumpEpoch(s, at);
        changes.push({ kind: "shard-map", streamId: op.value.streamId });
        return ok;
      }
      case "setAssignments": {
        const s = streams.get(op.value.streamId);
        if (!s) return fail(Code.NotFound, `stream "${op.value.streamId}" not found`);
        const stale = staleEpoch(s, op.value.expectedEpoch);
        if (stale) return stale;
        assignments.set(
          op.value.streamId,
          create(StreamAssignmentsSchema, {
            streamId: op.value.streamId,
            assignments: op.value.assignments,
          }),
        );
        if (s.status === StreamStatus.PENDING) s.status = StreamStatus.ACTIVE;
        bumpEpoch(s, at);
        changes.push({ kind: "assignments", streamId: op.value.streamId });
        return ok;
      }
      case "setSegmentSchedule": {
        const c = op.value;
        const s = streams.get(c.streamId);
        const spec = s?.spec;
        if (!s || !spec) return fail(Code.NotFound, `stream "${c.streamId}" not found`);
        if (c.expectedScheduleVersion !== s.segmentScheduleVersion) {
          return fail(
            Code.Aborted,
            `stream "${c.streamId}" segment schedule is at version ${s.segmentScheduleVersion}, command expected ${c.expectedScheduleVersion}: replan and retry`,
          );
        }
        const list = scheduleOf(s);
        const next: SegmentSchedule = {
          sinceMsn: Number(c.sinceMsn),
          sinceShard: Number(c.sinceShard),
          segmentDurationMs: c.segmentDurationMs,
        };
        const problem = scheduleChangeProblem(list, next, segmentPolicyFromSpec(spec));
        if (problem) return fail(Code.InvalidArgument, problem);
        const shardMs = spec.shardDurationMs;
        const shardNow = Math.floor(
          Number(at - (spec.timelineOriginUnixMs || s.createdUnixMs)) / shardMs,
        );
        if (next.sinceShard <= shardNow) {
          return fail(
            Code.FailedPrecondition,
            `since_shard: ${next.sinceShard} is not in the future (shard ${shardNow} is in production at ${at}): a change never renumbers media already cut`,
          );
        }
        pinSchedule(s, at);
        // Drop entries entirely in the past once their successor is old, or
        // when room is needed; never the entry in force or a future one.
        const retainShards = Math.ceil(segmentScheduleRetainMs / shardMs);
        const entries = s.segmentSchedule;
        while (entries.length > 1) {
          const successor = Number((entries[1] as SegmentScheduleEntry).sinceShard);
          if (successor > shardNow) break;
          if (entries.length < segmentScheduleEntriesMax && successor > shardNow - retainShards)
            break;
          entries.shift();
        }
        if (entries.length >= segmentScheduleEntriesMax) {
          return fail(
            Code.ResourceExhausted,
            `stream "${c.streamId}" already has ${entries.length} segment schedule entries in force or pending (at most ${segmentScheduleEntriesMax})`,
          );
        }
        entries.push(
          create(SegmentScheduleEntrySchema, {
            sinceMsn: c.sinceMsn,
            sinceShard: c.sinceShard,
            segmentDurationMs: c.segmentDurationMs,
            decidedUnixMs: at,
            reason: c.reason.slice(0, scheduleReasonCharsMax),
          }),
        );
        s.segmentScheduleVersion += 1n;
        s.updatedUnixMs = at;
        changes.push({ kind: "stream", id: c.streamId, deleted: false });
        return ok;
      }
      case "handoverBegun": {
        const b = op.value;
        if (!b.handoverId) return fail(Code.InvalidArgument, "handover_id: required");
        if (handovers.has(b.handoverId)) {
          return fail(Code.AlreadyExists, `handover "${b.handoverId}" already exists`);
        }
        const s = streams.get(b.streamId);
        if (!s) return fail(Code.NotFound, `stream "${b.streamId}" not found`);
        const stale = staleEpoch(s, b.expectedEpoch);
        if (stale) return stale;
        for (const h of handovers.values()) {
          if (h.streamId === b.streamId && isHandoverOpen(h)) {
            return fail(
              Code.FailedPrecondition,
              `stream "${b.streamId}" already has open handover "${h.id}"`,
            );
          }
        }
        bumpEpoch(s, at);
        handovers.set(
          b.handoverId,
          create(HandoverSchema, {
            id: b.handoverId,
            streamId: b.streamId,
            fromComponentId: b.fromComponentId,
            toComponentId: b.toComponentId,
            reason: b.reason,
            state: HandoverState.BEGUN,
            epoch: s.epoch,
            probability: b.probability,
            createdUnixMs: at,
            updatedUnixMs: at,
            deadlineUnixMs: b.deadlineUnixMs,
            renditionIds: b.renditionIds,
            detail: b.detail,
          }),
        );
        changes.push({ kind: "handover", id: b.handoverId, streamId: b.streamId });
        return ok;
      }
      case "handoverAdvanced": {
        const a = op.value;
        const h = handovers.get(a.handoverId);
        if (!h) return fail(Code.NotFound, `handover "${a.handoverId}" not found`);
        if (a.expectedState !== HandoverState.UNSPECIFIED && a.expectedState !== h.state) {
          return fail(
            Code.Aborted,
            `handover "${h.id}" is ${HandoverState[h.state]}, not ${HandoverState[a.expectedState]}`,
          );
        }
        if (!(handoverNext[h.state] ?? []).includes(a.state)) {
          return fail(
            Code.FailedPrecondition,
            `handover "${h.id}" cannot go from ${HandoverState[h.state]} to ${HandoverState[a.state]}`,
          );
        }
        const s = streams.get(h.streamId);
        if (s) {
          bumpEpoch(s, at);
          h.epoch = s.epoch;
        }
        h.state = a.state;
        if (a.switchMsn !== 0n) h.switchMsn = a.switchMsn;
        if (a.error) h.error = a.error;
        h.updatedUnixMs = at;
        changes.push({ kind: "handover", id: h.id, streamId: h.streamId });
        return ok;
      }
      case "setModelParameters": {
        const m = op.value;
        const prev = models.get(m.modelId);
        if (prev && m.version <= prev.version) {
          return fail(
            Code.Aborted,
            `model "${m.modelId}" is at version ${prev.version}; version ${m.version} is not newer`,
          );
        }
        models.set(
          m.modelId,
          create(ModelParametersSchema, {
            modelId: m.modelId,
            version: m.version,
            format: m.format,
            parameters: m.parameters,
            updatedUnixMs: at,
          }),
        );
        changes.push({ kind: "model", id: m.modelId });
        return ok;
      }
      case undefined:
        return fail(Code.InvalidArgument, "command: empty");
    }
  };

  const remember = (requestId: string, index: number, env: CommandEnvelope, r: FsmResult) => {
    if (!requestId) return;
    recent.set(requestId, {
      $typeName: "understudy.fsm.v1.RecentRequest",
      requestId,
      appliedIndex: BigInt(index),
      proposedUnixMs: env.proposedUnixMs,
      ok: r.ok,
      error: r.ok ? "" : `${r.code}:${r.message}`,
    });
    while (recent.size > recentRequestsMax) {
      const oldest = recent.keys().next().value as string;
      recent.delete(oldest);
    }
  };

  const notify = (changes: FsmChange[], index: number) => {
    if (changes.length === 0) return;
    for (const l of listeners) l(changes, index);
  };

  const snapshotMessage = (): FsmSnapshot =>
    create(FsmSnapshotSchema, {
      formatVersion: fsmFormatVersion,
      appliedIndex: BigInt(applied),
      appliedTerm: BigInt(appliedTerm),
      streams: sorted(streams),
      components: sorted(components),
      shardMaps: sorted(shardMaps),
      assignments: sorted(assignments),
      handovers: sorted(handovers),
      models: sorted(models),
      members: sorted(members),
      // Insertion (FIFO) order is part of the state: eviction depends on it.
      recentRequests: [...recent.values()],
    });

  const fsm: Fsm = {
    appliedIndex: () => applied,
    streams: () => sorted(streams),
    stream: (id) => streams.get(id),
    components: () => sorted(components),
    component: (id) => components.get(id),
    shardMap: (id) => shardMaps.get(id),
    assignments: (id) => assignments.get(id),
    handovers: () => sorted(handovers),
    handover: (id) => handovers.get(id),
    members: () => sorted(members),
    member: (id) => members.get(id),
    model: (id) => models.get(id),
    hash: () => digest(toBinary(FsmSnapshotSchema, snapshotMessage())),

    apply(index, term, data) {
      if (index <= applied) {
        throw new Error(`invariant violated: apply index ${index} <= applied ${applied}`);
      }
      applied = index;
      appliedTerm = term;
      if (data.length === 0) return ok; // a new leader's no-op
      let env: CommandEnvelope;
      try {
        env = fromBinary(CommandEnvelopeSchema, data);
      } catch (err) {
        // Identical bytes fail identically everywhere: refusing is deterministic.
        return fail(Code.InvalidArgument, `undecodable command: ${(err as Error).message}`);
      }
      const seen = env.requestId ? recent.get(env.requestId) : undefined;
      if (seen) {
        if (seen.ok) return ok;
        const [code, ...rest] = seen.error.split(":");
        return fail(Number(code) as Code, rest.join(":"));
      }
      if (!env.command) return fail(Code.InvalidArgument, "command: required");
      const changes: FsmChange[] = [];
      const result = execute(env, env.command, changes);
      remember(env.requestId, index, env, result);
      notify(changes, index);
      return result;
    },

    skip(index, term) {
      if (index <= applied) {
        throw new Error(`invariant violated: apply index ${index} <= applied ${applied}`);
      }
      applied = index;
      appliedTerm = term;
    },

    snapshot: () => toBinary(FsmSnapshotSchema, snapshotMessage()),

    restore(bytes) {
      const snap = fromBinary(FsmSnapshotSchema, bytes);
      if (snap.formatVersion !== fsmFormatVersion) {
        throw new Error(
          `FSM snapshot format ${snap.formatVersion} is not supported (this build reads ${fsmFormatVersion})`,
        );
      }
      const fill = <T>(m: Map<string, T>, items: T[], key: (t: T) => string) => {
        m.clear();
        for (const it of items) m.set(key(it), it);
      };
      applied = Number(snap.appliedIndex);
      appliedTerm = Number(snap.appliedTerm);
      fill(streams, snap.streams, (s) => s.spec?.id ?? "");
      fill(components, snap.components, (c) => c.id);
      fill(shardMaps, snap.shardMaps, (s) => s.streamId);
      fill(assignments, snap.assignments, (a) => a.streamId);
      fill(handovers, snap.handovers, (h) => h.id);
      fill(models, snap.models, (m) => m.modelId);
      fill(members, snap.members, (m) => m.nodeId);
      fill(recent, snap.recentRequests, (r) => r.requestId);
      const changes: FsmChange[] = [
        ...[...streams.keys()].map((id) => ({ kind: "stream" as const, id, deleted: false })),
        ...[...components.keys()].map((id) => ({ kind: "component" as const, id, deleted: false })),
      ];
      notify(changes, applied);
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return fsm;
}

/** A stream's segment schedule as planner entries (the implied one for a stream stored before schedules existed). */
export function scheduleOf(s: Stream): SegmentScheduleList {
  if (s.segmentSchedule.length === 0) {
    return [
      {
        sinceMsn: 0,
        sinceShard: 0,
        segmentDurationMs: s.spec?.segmentPolicy?.segmentDurationTargetMs ?? 0,
      },
    ];
  }
  return s.segmentSchedule.map((e) => ({
    sinceMsn: Number(e.sinceMsn),
    sinceShard: Number(e.sinceShard),
    segmentDurationMs: e.segmentDurationMs,
  }));
}

/**
 * A stream stored before schedules existed numbers segments by its spec's
 * target from shard 0: write that down before anything could change it.
 */
function pinSchedule(s: Stream, at: bigint): void {
  const target = s.spec?.segmentPolicy?.segmentDurationTargetMs ?? 0;
  if (s.segmentSchedule.length > 0 || target <= 0) return;
  s.segmentSchedule.push(
    create(SegmentScheduleEntrySchema, {
      segmentDurationMs: target,
      decidedUnixMs: at,
      reason: "pinned: the spec's target before the first change",
    }),
  );
}

/** EXT-X-TARGETDURATION of a stream's playlists: ceil(max segment duration / 1 s). */
export function targetDurationSecOf(spec: StreamSpec | undefined): number {
  return Math.max(1, Math.ceil((spec?.segmentPolicy?.segmentDurationMaxMs ?? 0) / 1000));
}

/** A stored spec's keyframe interval (streams stored before it existed: their target). */
function keyframeIntervalOf(spec: StreamSpec | undefined): number {
  const p = spec?.segmentPolicy;
  return p?.keyframeIntervalMs || p?.segmentDurationTargetMs || 0;
}

/**
 * Spec fields an update may not change: shards are numbered by the shard
 * duration, segments may only start where the encoders put keyframes (the
 * keyframe interval; the target must stay a multiple of it), and the
 * playlists' EXT-X-TARGETDURATION (from the maximum segment duration) must
 * not change during a stream (rfc8216bis §6.2.2).
 */
function immutableSpecChange(
  cur: StreamSpec | undefined,
  next: StreamSpec,
  keyframeMs: number,
): string | undefined {
  if (!cur) return undefined;
  if (cur.shardDurationMs !== next.shardDurationMs) {
    return `spec.shard_duration_ms: immutable after creation (is ${cur.shardDurationMs}; shards are numbered by it)`;
  }
  const np = next.segmentPolicy;
  if (np && np.keyframeIntervalMs !== 0 && np.keyframeIntervalMs !== keyframeMs) {
    return `spec.segment_policy.keyframe_interval_ms: immutable after creation (is ${keyframeMs}); omit it or send the same value`;
  }
  if (keyframeMs > 0 && (np?.segmentDurationTargetMs ?? 0) % keyframeMs !== 0) {
    return `spec.segment_policy.segment_duration_target_ms: must be a multiple of the stream's keyframe interval ${keyframeMs} ms, got ${np?.segmentDurationTargetMs ?? 0}`;
  }
  const td = targetDurationSecOf(cur);
  if (targetDurationSecOf(next) !== td) {
    return `spec.segment_policy.segment_duration_max_ms: must stay in ${(td - 1) * 1000 + 1}..${td * 1000} (got ${next.segmentPolicy?.segmentDurationMaxMs ?? 0}): it sets EXT-X-TARGETDURATION (${td} s), which must not change during a stream (rfc8216bis); create a new stream for another maximum`;
  }
  return undefined;
}

function staleEpoch(s: Stream, expected: bigint): FsmResult | undefined {
  if (expected !== 0n && expected !== s.epoch) {
    return fail(
      Code.Aborted,
      `stream "${s.spec?.id}" is at epoch ${s.epoch}, command expected ${expected}: replan and retry`,
    );
  }
  return undefined;
}

/** Encodes a command for proposal (the leader stamps time and term). */
export function encodeCommand(
  command: MessageInitShape<typeof CommandEnvelopeSchema>["command"],
  meta: { requestId: string; proposerNodeId: string; proposedUnixMs: number; proposerTerm: number },
): Uint8Array {
  return toBinary(
    CommandEnvelopeSchema,
    create(CommandEnvelopeSchema, {
      requestId: meta.requestId,
      proposerNodeId: meta.proposerNodeId,
      proposedUnixMs: BigInt(Math.trunc(meta.proposedUnixMs)),
      proposerTerm: BigInt(meta.proposerTerm),
      command,
    }),
  );
}

/** 64-bit FNV-1a as two 32-bit lanes: cheap, stable, for comparing replicas. */
export function digest(bytes: Uint8Array): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    h1 = Math.imul(h1 ^ b, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ b ^ (i & 0xff), 0x01000193) >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}

/** Deep copy for callers that need to mutate (views return shared objects). */
export function cloneStream(s: Stream): Stream {
  return clone(StreamSchema, s);
}
