/**
 * Shard map planner: which encoder produces which shards of a stream, and
 * which packagers each shard is pushed to.
 *
 * Shard n covers media time [n × shard_duration_ms, (n + 1) × shard_duration_ms)
 * of the stream's timeline, so shard numbers mean the same thing everywhere.
 * The planner does not rewrite the past: every shard ≤ currentShard keeps its
 * encoder and targets, with one exception (rewind, below). From the next
 * shard boundary b = currentShard + 1 on:
 * - a future range whose encoder is healthy (placeable, known) keeps it
 *   (stability); one whose encoder is DOWN/DRAINING/DRAINED/unknown, and any
 *   gap, goes to a replacement encoder starting exactly at b: an encoder
 *   already producing this stream's future if there is one, else the least
 *   loaded placeable encoder (HEALTHY before UNKNOWN before SUSPECT, then
 *   (streams + 1) / max_streams, then id), never one at max_streams;
 * - every future range pushes to the desired targets: the packagers holding
 *   the stream (from its assignments) plus, for a hot stream, extra replicas
 *   (see below), at most `replicasPerRangeMax` in total, sorted by id.
 * Rewind (encoder loss without losing media): when the caller says which
 * shard the holders have not received yet (firstUnreceivedShard f, from their
 * inventories), the shards of the run ending at currentShard that no usable
 * encoder owns (a lost encoder's, or uncovered) are planned like future
 * shards from r = max(f, b − rewindShardsMax, start of that run) on: they go
 * to the replacement with the current targets, which produces them at once
 * (catch-up) before going on live. Shards before r, and shards a usable
 * encoder owns, stay as stored. Nobody else would ever produce the rewound
 * shards, and a packager takes a segment's parts in order, so starting
 * exactly at the first missing shard loses nothing. Without a replacement
 * nothing is rewound.
 * Output invariant: ranges sorted, non-overlapping, the future [b, ∞) covered
 * contiguously by ranges ending with exactly one open range; adjacent ranges
 * with the same encoder and targets are merged, so replanning an unchanged
 * state returns the same ranges (changed = false).
 *
 * Hot streams: sessions ≥ hotSessionsEnter makes a stream hot; a hot stream
 * (one whose open range already has extra targets) stays hot until sessions
 * drop below hotSessionsExit (hysteresis). A hot stream gets up to
 * hotExtraReplicasMax extra push targets beyond its holders, chosen from the
 * caller's ranked spare packagers (keeping extras it already has first).
 * Extras hold the shards (warm standbys, CDN shielding) without being in the
 * stream's assignments.
 *
 * Streams are planned in id order; each replacement choice sees the load of
 * the choices before it, so the streams of a failed encoder spread out.
 */
import type { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  byId,
  isPlaceable,
  requireInt,
  requireUniqueId,
  type ShardRangeRow,
  sameIds,
  statusRank,
} from "./types.ts";

export interface EncoderInput {
  readonly id: string;
  readonly status: ComponentStatus;
  /** Capacity.max_streams; 0 = not reported (options.defaultEncoderMaxStreams). */
  readonly maxStreams: number;
  /** Streams encoded for work outside this plan. Default 0. */
  readonly baseStreams?: number;
}

export interface ShardStreamInput {
  readonly streamId: string;
  /** Shard being produced now (-1 before the timeline starts); changes start at currentShard + 1. */
  readonly currentShard: number;
  /** The current shard map (may be empty for a new stream). */
  readonly ranges: readonly ShardRangeRow[];
  /**
   * Packagers that must receive every future shard: the holders of the
   * stream's renditions after the assignment plan (primaries first), plus the
   * standby of an open handover if the caller plans during one.
   */
  readonly holderPackagerIds: readonly string[];
  /** Viewer sessions of the whole stream (hot-stream rule). */
  readonly sessions: number;
  /** Ranked placeable packagers outside the stream (StreamAssignmentPlan.spares). */
  readonly spareCandidates: readonly string[];
  /**
   * First shard the holders have not all received (the minimum over holders
   * and renditions of their newest shard, plus one), or undefined when not
   * known. Enables the rewind (see the file comment).
   */
  readonly firstUnreceivedShard?: number | undefined;
}

export interface ShardOptions {
  readonly defaultEncoderMaxStreams: number;
  readonly hotSessionsEnter: number;
  /** <= hotSessionsEnter. */
  readonly hotSessionsExit: number;
  /** Extra push targets of a hot stream, 0–4. */
  readonly hotExtraReplicasMax: number;
  /** ShardRange.replica_packager_ids allows 1–5. */
  readonly replicasPerRangeMax: number;
  /** ShardMap allows 1–1024 ranges; oldest closed ranges are dropped beyond it. */
  readonly rangesMax: number;
  /** Closed ranges ending more than this many shards before currentShard are compacted away. */
  readonly pastShardsRetain: number;
  /**
   * How far back a rewind may reach: at most this many shards up to
   * currentShard (0 = never rewind). Bounds the replacement's catch-up burst;
   * older media is outside what players still fetch.
   */
  readonly rewindShardsMax: number;
}

export const defaultShardOptions: ShardOptions = {
  defaultEncoderMaxStreams: 8,
  hotSessionsEnter: 10_000,
  hotSessionsExit: 7_000,
  hotExtraReplicasMax: 2,
  replicasPerRangeMax: 5,
  rangesMax: 1024,
  // 30 minutes of 0.5 s shards: players far behind the live edge can still find their shards.
  pastShardsRetain: 3600,
  // 8 s of 0.5 s shards: detection plus replanning take about a second.
  rewindShardsMax: 16,
};

export interface ShardPlanInput {
  readonly encoders: readonly EncoderInput[];
  readonly streams: readonly ShardStreamInput[];
}

export interface StreamShardPlan {
  readonly streamId: string;
  /** The full new map (unchanged input ranges when changed = false). */
  readonly ranges: readonly ShardRangeRow[];
  readonly changed: boolean;
  /** Encoders producing shards from currentShard + 1 on. */
  readonly futureEncoderIds: readonly string[];
  /** Extra (hot-stream) push targets in the future ranges. */
  readonly extraReplicaIds: readonly string[];
  readonly hot: boolean;
  /** Why the stream's shard production is DEGRADED; empty when it is not. */
  readonly reasons: readonly string[];
  /** Facts that are not degradation (e.g. fewer hot extras than wanted). */
  readonly notes: readonly string[];
}

export interface ShardPlan {
  /** In stream id order. */
  readonly streams: readonly StreamShardPlan[];
  /** Streams per encoder after the plan (base + future ranges of planned streams). */
  readonly encoderLoads: ReadonlyMap<string, number>;
}

export function validateShardOptions(o: ShardOptions): void {
  requireInt("defaultEncoderMaxStreams", o.defaultEncoderMaxStreams, 1);
  requireInt("hotSessionsEnter", o.hotSessionsEnter, 0);
  requireInt("hotSessionsExit", o.hotSessionsExit, 0, o.hotSessionsEnter);
  requireInt("hotExtraReplicasMax", o.hotExtraReplicasMax, 0, 4);
  requireInt("replicasPerRangeMax", o.replicasPerRangeMax, 1, 5);
  requireInt("rangesMax", o.rangesMax, 2, 1024);
  requireInt("pastShardsRetain", o.pastShardsRetain, 0);
  requireInt("rewindShardsMax", o.rewindShardsMax, 0, 4096);
}

/** Checks the ShardMap ordering rules; throws RangeError naming the offending range. */
export function validateShardRanges(ranges: readonly ShardRangeRow[], path = "ranges"): void {
  for (const [i, r] of ranges.entries()) {
    const f = `${path}[${i}]`;
    requireInt(`${f}.firstShard`, r.firstShard, 0);
    if (r.lastShard !== undefined) requireInt(`${f}.lastShard`, r.lastShard, r.firstShard);
    if (!r.encoderId) throw new RangeError(`${f}.encoderId: required`);
    if (r.lastShard === undefined && i !== ranges.length - 1) {
      throw new RangeError(`${f}.lastShard: only the last range may be open-ended`);
    }
    const prev = ranges[i - 1];
    if (prev && r.firstShard <= (prev.lastShard as number)) {
      throw new RangeError(
        `${f}.firstShard: ${r.firstShard} overlaps or precedes the previous range (ends at ${prev.lastShard})`,
      );
    }
  }
}

interface Piece {
  first: number;
  last: number | undefined;
  encoderId: string | undefined;
  replicas: readonly string[];
  /** Entirely ≤ currentShard: kept exactly as stored, never merged with another past piece. */
  past?: boolean;
}

export function planShardMaps(
  input: ShardPlanInput,
  options: ShardOptions = defaultShardOptions,
): ShardPlan {
  validateShardOptions(options);
  const encoders = new Map<string, EncoderInput>();
  const encoderIds = new Set<string>();
  for (const [i, e] of input.encoders.entries()) {
    requireUniqueId(`encoders[${i}].id`, e.id, encoderIds, "encoder");
    requireInt(`encoders[${i}].maxStreams`, e.maxStreams, 0);
    requireInt(`encoders[${i}].baseStreams`, e.baseStreams ?? 0, 0);
    encoders.set(e.id, e);
  }
  const seen = new Set<string>();
  for (const [i, s] of input.streams.entries()) {
    const f = `streams[${i}]`;
    requireUniqueId(`${f}.streamId`, s.streamId, seen, "stream");
    requireInt(`${f}.currentShard`, s.currentShard, -1);
    requireInt(`${f}.sessions`, s.sessions, 0);
    if (s.firstUnreceivedShard !== undefined)
      requireInt(`${f}.firstUnreceivedShard`, s.firstUnreceivedShard, 0);
    validateShardRanges(s.ranges, `${f}.ranges`);
  }

  const usable = (id: string | undefined) => {
    const e = id === undefined ? undefined : encoders.get(id);
    return e !== undefined && isPlaceable(e.status);
  };
  const load = new Map<string, number>();
  for (const e of encoders.values()) load.set(e.id, e.baseStreams ?? 0);
  const futureEncoders = (s: ShardStreamInput) => {
    const b = s.currentShard + 1;
    const ids = new Set<string>();
    for (const r of s.ranges)
      if (r.lastShard === undefined || r.lastShard >= b) ids.add(r.encoderId);
    return ids;
  };
  const bump = (ids: Iterable<string>, d: number) => {
    for (const id of ids) if (load.has(id)) load.set(id, (load.get(id) as number) + d);
  };
  const streams = [...input.streams].sort((a, b) => byId(a.streamId, b.streamId));
  for (const s of streams) bump(futureEncoders(s), 1);

  const plans: StreamShardPlan[] = [];
  for (const s of streams) {
    bump(futureEncoders(s), -1);
    const plan = planOne(s, encoders, load, usable, options);
    bump(plan.futureEncoderIds, 1);
    plans.push(plan);
  }
  return { streams: plans, encoderLoads: load };
}

function planOne(
  s: ShardStreamInput,
  encoders: ReadonlyMap<string, EncoderInput>,
  load: ReadonlyMap<string, number>,
  usable: (id: string | undefined) => boolean,
  o: ShardOptions,
): StreamShardPlan {
  const b = s.currentShard + 1;
  const reasons: string[] = [];
  const notes: string[] = [];
  const capOf = (e: EncoderInput) => e.maxStreams || o.defaultEncoderMaxStreams;

  // Targets: holders first (deduplicated), then hot extras.
  const holders = [...new Set(s.holderPackagerIds)];
  if (holders.length > o.replicasPerRangeMax) {
    reasons.push(
      `${holders.length} packagers hold the stream but a shard range takes ${o.replicasPerRangeMax}: ${holders.slice(o.replicasPerRangeMax).join(", ")} get no pushes`,
    );
  }
  const base = holders.slice(0, o.replicasPerRangeMax);
  const open = s.ranges[s.ranges.length - 1];
  const currentExtras =
    open && open.lastShard === undefined
      ? open.replicaPackagerIds.filter((id) => !holders.includes(id))
      : [];
  const hot =
    s.sessions >= o.hotSessionsEnter ||
    (currentExtras.length > 0 && s.sessions >= o.hotSessionsExit);
  const room = Math.min(o.hotExtraReplicasMax, o.replicasPerRangeMax - base.length);
  const spares = s.spareCandidates.filter((id) => !holders.includes(id));
  const extras = hot
    ? [
        ...currentExtras.filter((id) => spares.includes(id)),
        ...spares.filter((id) => !currentExtras.includes(id)),
      ].slice(0, Math.max(0, room))
    : [];
  if (hot && extras.length < o.hotExtraReplicasMax) {
    notes.push(`hot stream: ${extras.length}/${o.hotExtraReplicasMax} extra replicas available`);
  }
  const targets = [...base, ...extras].sort(byId);

  if (targets.length === 0) {
    notes.push("no packager holds the stream yet: shard map left unchanged");
    return unchanged(s, hot, reasons, notes);
  }

  // Past (before `from`) stays; pieces from `from` on are replanned, gaps included.
  const split = (from: number) => {
    const past: Piece[] = [];
    const future: Piece[] = [];
    let cursor = from;
    for (const r of s.ranges) {
      const last = r.lastShard;
      if (last !== undefined && last < from) {
        past.push({
          first: r.firstShard,
          last,
          encoderId: r.encoderId,
          replicas: r.replicaPackagerIds,
          past: true,
        });
        continue;
      }
      if (r.firstShard < from) {
        past.push({
          first: r.firstShard,
          last: from - 1,
          encoderId: r.encoderId,
          replicas: r.replicaPackagerIds,
          past: true,
        });
      }
      const first = Math.max(r.firstShard, from);
      if (first > cursor)
        future.push({ first: cursor, last: first - 1, encoderId: undefined, replicas: targets });
      future.push({ first, last, encoderId: r.encoderId, replicas: targets });
      cursor = last === undefined ? Number.POSITIVE_INFINITY : last + 1;
    }
    if (cursor !== Number.POSITIVE_INFINITY) {
      future.push({ first: cursor, last: undefined, encoderId: undefined, replicas: targets });
    }
    return { past, future };
  };

  // Replacement encoder for pieces without a usable one. Rewound pieces have
  // no usable encoder by construction, so they do not change the choice.
  let { past, future } = split(b);
  const keptEncoders = future.filter((p) => usable(p.encoderId)).map((p) => p.encoderId as string);
  let replacement: string | undefined = keptEncoders.sort(byId)[0];
  if (replacement === undefined && future.some((p) => !usable(p.encoderId))) {
    const ranked = [...encoders.values()]
      .filter((e) => isPlaceable(e.status) && (load.get(e.id) as number) + 1 <= capOf(e))
      .sort(
        (x, y) =>
          statusRank(x.status) - statusRank(y.status) ||
          ((load.get(x.id) as number) + 1) / capOf(x) -
            ((load.get(y.id) as number) + 1) / capOf(y) ||
          byId(x.id, y.id),
      );
    replacement = ranked[0]?.id;
  }
  const from = replacement === undefined ? b : rewindFrom(s, usable, o);
  if (from < b) {
    ({ past, future } = split(from));
    notes.push(`rewound to shard ${from}: the holders have not received it`);
  }
  for (const p of future) {
    if (usable(p.encoderId)) continue;
    if (replacement === undefined) {
      if (p.encoderId === undefined) {
        reasons.push("no encoder with capacity: the stream's future shards have no producer");
        return unchanged(s, hot, reasons, notes);
      }
      reasons.push(`encoder ${p.encoderId} is not usable and no other encoder has capacity`);
      continue;
    }
    p.encoderId = replacement;
  }

  const merged = merge([...past, ...future]);
  const changed = !sameRanges(merged, s.ranges);
  let ranges = merged;
  if (changed) ranges = compact(merged, s.currentShard, o);
  return {
    streamId: s.streamId,
    ranges: changed ? ranges : s.ranges,
    changed,
    futureEncoderIds: [
      ...new Set(future.map((p) => p.encoderId).filter((x): x is string => x !== undefined)),
    ].sort(byId),
    extraReplicaIds: [...extras].sort(byId),
    hot,
    reasons,
    notes,
  };
}

/**
 * First shard of the rewind: the run of shards ending at currentShard that no
 * usable encoder owns, cut at firstUnreceivedShard and at rewindShardsMax
 * shards. currentShard + 1 when there is nothing to rewind.
 */
function rewindFrom(
  s: ShardStreamInput,
  usable: (id: string | undefined) => boolean,
  o: ShardOptions,
): number {
  const b = s.currentShard + 1;
  if (s.firstUnreceivedShard === undefined || s.currentShard < 0) return b;
  const floor = Math.max(0, s.firstUnreceivedShard, b - o.rewindShardsMax);
  let k = s.currentShard;
  while (k >= floor && !usable(ownerOf(s.ranges, k))) k--;
  return k + 1;
}

/** Encoder of shard n, or undefined when no range covers it. */
function ownerOf(ranges: readonly ShardRangeRow[], n: number): string | undefined {
  for (let i = ranges.length - 1; i >= 0; i--) {
    const r = ranges[i] as ShardRangeRow;
    if (r.firstShard > n) continue;
    return r.lastShard === undefined || n <= r.lastShard ? r.encoderId : undefined;
  }
  return undefined;
}

function unchanged(
  s: ShardStreamInput,
  hot: boolean,
  reasons: string[],
  notes: string[],
): StreamShardPlan {
  const b = s.currentShard + 1;
  const future = s.ranges.filter((r) => r.lastShard === undefined || r.lastShard >= b);
  return {
    streamId: s.streamId,
    ranges: s.ranges,
    changed: false,
    futureEncoderIds: [...new Set(future.map((r) => r.encoderId))].sort(byId),
    extraReplicaIds: [],
    hot,
    reasons,
    notes,
  };
}

/** Joins adjacent pieces with the same encoder and targets (as sets). */
function merge(pieces: readonly Piece[]): ShardRangeRow[] {
  const out: ShardRangeRow[] = [];
  let prevPast = false;
  for (const p of pieces) {
    const prev = out[out.length - 1];
    const bothPast = prevPast && p.past === true;
    prevPast = p.past === true;
    if (
      prev &&
      !bothPast &&
      prev.lastShard !== undefined &&
      prev.lastShard + 1 === p.first &&
      prev.encoderId === p.encoderId &&
      sameIds(prev.replicaPackagerIds, p.replicas)
    ) {
      out[out.length - 1] = { ...prev, lastShard: p.last };
      continue;
    }
    out.push({
      firstShard: p.first,
      lastShard: p.last,
      encoderId: p.encoderId as string,
      replicaPackagerIds: p.replicas,
    });
  }
  return out;
}

/** Drops closed ranges far in the past, then the oldest beyond rangesMax. */
function compact(ranges: ShardRangeRow[], currentShard: number, o: ShardOptions): ShardRangeRow[] {
  const horizon = currentShard - o.pastShardsRetain;
  let out = ranges.filter((r) => r.lastShard === undefined || r.lastShard >= horizon);
  if (out.length > o.rangesMax) out = out.slice(out.length - o.rangesMax);
  return out;
}

export function sameRanges(a: readonly ShardRangeRow[], b: readonly ShardRangeRow[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as ShardRangeRow;
      return (
        x.firstShard === y.firstShard &&
        x.lastShard === y.lastShard &&
        x.encoderId === y.encoderId &&
        sameIds(x.replicaPackagerIds, y.replicaPackagerIds)
      );
    })
  );
}
