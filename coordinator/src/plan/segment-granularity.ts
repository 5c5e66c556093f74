/**
 * Segment granularity: the segment duration of a stream adapts to its demand
 * within [segment_duration_min_ms, segment_duration_max_ms].
 *
 * Why it is not "shorter is better": a handover switches viewers at a segment
 * boundary, so shorter segments make switches (and startup) faster, but every
 * segment is one more request per viewer (and per edge), one more playlist
 * update, and more per-segment overhead. The rule, with three levels:
 * - high:   sessions ≥ highSessionsEnter → the longest allowed duration
 *           (cut the request rate where it is largest);
 * - low:    LOW_LATENCY and sessions ≤ lowSessionsEnter → the shortest allowed
 *           duration (few viewers: requests are cheap, fast switches matter);
 * - normal: otherwise → the spec's target.
 * Hysteresis: a stream at the high level stays there until sessions drop
 * below highSessionsExit, one at the low level until sessions exceed
 * lowSessionsExit; and no change is made within minSegmentsBetweenChanges
 * segments of the previous one (unless the duration in force is not a valid
 * level any more, e.g. after a spec change).
 *
 * Alignment: durations are multiples of the keyframe interval (the spec's
 * keyframe_interval_ms, itself a multiple of part_duration_ms for
 * LOW_LATENCY, where parts tile segments, or of shard_duration_ms for
 * STANDARD, where segments are built from whole shards; 0 = the target).
 * Every schedule starts at shard 0 with the target, so every boundary then
 * falls on a keyframe: a segment always starts with one. (The interval is
 * fixed at creation: with it unknown, only multiples of the target are
 * safe, so segments can grow but not shrink.)
 *
 * A change takes effect at a segment boundary (the first shard of some
 * segment under the old duration), committed ahead: the first boundary at
 * least `changeLeadMs` after the end of the shard in production, so every
 * encoder has heard of it before it cuts the first shard it applies to (they
 * push a shard when it ends; the replicated FSM refuses a change whose first
 * shard is not in the future, see coordinator/src/fsm/fsm.ts).
 *
 * MSN numbering across changes (SegmentSchedule): from `sinceMsn`, whose
 * first shard is `sinceShard`, segments are `segmentDurationMs` long, so
 * msn(n) = sinceMsn + floor((n − sinceShard) / shardsPerSegment). A stream's
 * schedule is a list of such entries ascending by sinceShard, each starting
 * at a segment boundary of the one before (Stream.segment_schedule); the
 * first is the spec's target from MSN 0 / shard 0. Encoders (the
 * packager-node source) apply the same rule to the same list.
 */
import { LatencyMode } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { requireInt } from "./types.ts";

export interface SegmentSchedule {
  readonly segmentDurationMs: number;
  /** First MSN cut with segmentDurationMs. */
  readonly sinceMsn: number;
  /** First shard of segment sinceMsn. */
  readonly sinceShard: number;
}

export interface SegmentPolicyInput {
  readonly shardDurationMs: number;
  readonly latencyMode: LatencyMode;
  readonly segmentDurationTargetMs: number;
  readonly segmentDurationMinMs: number;
  readonly segmentDurationMaxMs: number;
  /** 0 for STANDARD. */
  readonly partDurationMs: number;
  /** Where encoders can start a segment (their GOP); 0 or absent = the target duration. */
  readonly keyframeIntervalMs?: number;
}

export interface GranularityInput {
  readonly policy: SegmentPolicyInput;
  readonly schedule: SegmentSchedule;
  /** Shard being produced now (>= schedule.sinceShard). */
  readonly currentShard: number;
  /** Viewer sessions of the whole stream. */
  readonly sessions: number;
}

export interface GranularityOptions {
  readonly lowSessionsEnter: number;
  /** >= lowSessionsEnter. */
  readonly lowSessionsExit: number;
  /** > lowSessionsExit. */
  readonly highSessionsExit: number;
  /** >= highSessionsExit. */
  readonly highSessionsEnter: number;
  /** Segments that must pass after a change before the next one. */
  readonly minSegmentsBetweenChanges: number;
  /**
   * A change takes effect at the first segment boundary at least this long
   * after the end of the shard in production (time for the commit to reach
   * every encoder; 0 = the next boundary).
   */
  readonly changeLeadMs: number;
}

export const defaultGranularityOptions: GranularityOptions = {
  lowSessionsEnter: 20,
  lowSessionsExit: 50,
  highSessionsExit: 3_000,
  highSessionsEnter: 5_000,
  minSegmentsBetweenChanges: 15,
  changeLeadMs: 1_000,
};

export type GranularityDecision =
  | { readonly kind: "keep"; readonly segmentDurationMs: number; readonly reason: string }
  | {
      readonly kind: "change";
      readonly segmentDurationMs: number;
      readonly effectiveMsn: number;
      readonly effectiveShard: number;
      /** The schedule in force from effectiveMsn on. */
      readonly schedule: SegmentSchedule;
      readonly reason: string;
    };

export type GranularityLevel = "low" | "normal" | "high";

export function validateGranularityOptions(o: GranularityOptions): void {
  requireInt("lowSessionsEnter", o.lowSessionsEnter, 0);
  requireInt("lowSessionsExit", o.lowSessionsExit, o.lowSessionsEnter);
  requireInt("highSessionsExit", o.highSessionsExit, o.lowSessionsExit + 1);
  requireInt("highSessionsEnter", o.highSessionsEnter, o.highSessionsExit);
  requireInt("minSegmentsBetweenChanges", o.minSegmentsBetweenChanges, 0, 1_000_000);
  requireInt("changeLeadMs", o.changeLeadMs, 0, 60_000);
}

/** What segments are built of: part duration for LOW_LATENCY, shard duration otherwise. */
export function segmentUnitMs(p: SegmentPolicyInput): number {
  return p.latencyMode === LatencyMode.LOW_LATENCY ? p.partDurationMs : p.shardDurationMs;
}

function validatePolicy(p: SegmentPolicyInput): void {
  requireInt("policy.shardDurationMs", p.shardDurationMs, 200, 500);
  requireInt("policy.segmentDurationMinMs", p.segmentDurationMinMs, p.shardDurationMs);
  requireInt("policy.segmentDurationTargetMs", p.segmentDurationTargetMs, p.segmentDurationMinMs);
  requireInt("policy.segmentDurationMaxMs", p.segmentDurationMaxMs, p.segmentDurationTargetMs);
  if (p.latencyMode === LatencyMode.LOW_LATENCY) {
    requireInt("policy.partDurationMs", p.partDurationMs, p.shardDurationMs);
    if (p.partDurationMs % p.shardDurationMs !== 0) {
      throw new RangeError(
        `policy.partDurationMs: ${p.partDurationMs} is not a multiple of shardDurationMs ${p.shardDurationMs}`,
      );
    }
  } else if (p.latencyMode !== LatencyMode.STANDARD) {
    throw new RangeError(
      `policy.latencyMode: must be LOW_LATENCY or STANDARD, got ${p.latencyMode}`,
    );
  }
  const unit = segmentUnitMs(p);
  if (p.segmentDurationTargetMs % unit !== 0) {
    throw new RangeError(
      `policy.segmentDurationTargetMs: ${p.segmentDurationTargetMs} is not a multiple of ${unit} ms`,
    );
  }
  const k = p.keyframeIntervalMs ?? 0;
  if (
    k !== 0 &&
    (!Number.isSafeInteger(k) || k % unit !== 0 || p.segmentDurationTargetMs % k !== 0)
  ) {
    throw new RangeError(
      `policy.keyframeIntervalMs: ${k} is not a multiple of ${unit} ms dividing the target ${p.segmentDurationTargetMs} ms`,
    );
  }
}

/** What segment durations are multiples of: the keyframe interval, or the target when it is 0. */
export function segmentAlignmentMs(p: SegmentPolicyInput): number {
  return p.keyframeIntervalMs || p.segmentDurationTargetMs;
}

/** The durations of the three levels (all multiples of the keyframe interval, within [min, max]). */
export function granularityLevels(p: SegmentPolicyInput): Record<GranularityLevel, number> {
  validatePolicy(p);
  const unit = segmentAlignmentMs(p);
  return {
    low: Math.ceil(p.segmentDurationMinMs / unit) * unit,
    normal: p.segmentDurationTargetMs,
    high: Math.floor(p.segmentDurationMaxMs / unit) * unit,
  };
}

function validateSchedule(s: SegmentSchedule, shardDurationMs: number): void {
  requireInt("schedule.sinceMsn", s.sinceMsn, 0);
  requireInt("schedule.sinceShard", s.sinceShard, 0);
  requireInt("schedule.segmentDurationMs", s.segmentDurationMs, shardDurationMs);
  if (s.segmentDurationMs % shardDurationMs !== 0) {
    throw new RangeError(
      `schedule.segmentDurationMs: ${s.segmentDurationMs} is not a multiple of the shard duration ${shardDurationMs}`,
    );
  }
}

/** MSN of the segment containing `shard` (shard >= schedule.sinceShard). */
export function msnOfShard(s: SegmentSchedule, shardDurationMs: number, shard: number): number {
  validateSchedule(s, shardDurationMs);
  requireInt("shard", shard, s.sinceShard);
  const perSegment = s.segmentDurationMs / shardDurationMs;
  return s.sinceMsn + Math.floor((shard - s.sinceShard) / perSegment);
}

/** First shard of segment `msn` (msn >= schedule.sinceMsn). */
export function firstShardOfMsn(s: SegmentSchedule, shardDurationMs: number, msn: number): number {
  validateSchedule(s, shardDurationMs);
  requireInt("msn", msn, s.sinceMsn);
  const perSegment = s.segmentDurationMs / shardDurationMs;
  return s.sinceShard + (msn - s.sinceMsn) * perSegment;
}

/** The level a duration corresponds to; undefined if it is none of them (spec changed). */
function levelOf(
  levels: Record<GranularityLevel, number>,
  ms: number,
): GranularityLevel | undefined {
  if (ms === levels.normal) return "normal";
  if (ms === levels.high) return "high";
  if (ms === levels.low) return "low";
  return undefined;
}

export function desiredLevel(
  current: GranularityLevel | undefined,
  sessions: number,
  lowLatency: boolean,
  o: GranularityOptions,
): GranularityLevel {
  if (current === "high" && sessions >= o.highSessionsExit) return "high";
  if (current === "low" && lowLatency && sessions <= o.lowSessionsExit) return "low";
  if (sessions >= o.highSessionsEnter) return "high";
  if (lowLatency && sessions <= o.lowSessionsEnter) return "low";
  return "normal";
}

export function planSegmentDuration(
  input: GranularityInput,
  options: GranularityOptions = defaultGranularityOptions,
): GranularityDecision {
  validateGranularityOptions(options);
  const p = input.policy;
  const levels = granularityLevels(p);
  requireInt("sessions", input.sessions, 0);
  const curMs = input.schedule.segmentDurationMs;
  const currentMsn = msnOfShard(input.schedule, p.shardDurationMs, input.currentShard);
  const curLevel = levelOf(levels, curMs);
  const lowLatency = p.latencyMode === LatencyMode.LOW_LATENCY;
  const want = desiredLevel(curLevel, input.sessions, lowLatency, options);
  const wantMs = levels[want];
  if (wantMs === curMs) {
    return { kind: "keep", segmentDurationMs: curMs, reason: `${want} level (${curMs} ms) holds` };
  }
  const perSegment = curMs / p.shardDurationMs;
  const leadShards = Math.ceil(options.changeLeadMs / p.shardDurationMs);
  // The first boundary whose first shard is >= currentShard + 1 + leadShards.
  const earliest = input.currentShard + 1 + leadShards;
  const effectiveMsn = Math.max(
    currentMsn + 1,
    input.schedule.sinceMsn + Math.ceil((earliest - input.schedule.sinceShard) / perSegment),
  );
  const sinceChange = effectiveMsn - input.schedule.sinceMsn;
  if (curLevel !== undefined && sinceChange < options.minSegmentsBetweenChanges) {
    return {
      kind: "keep",
      segmentDurationMs: curMs,
      reason: `would change to ${wantMs} ms but the last change was ${sinceChange} segment(s) ago (< ${options.minSegmentsBetweenChanges})`,
    };
  }
  const effectiveShard = firstShardOfMsn(input.schedule, p.shardDurationMs, effectiveMsn);
  return {
    kind: "change",
    segmentDurationMs: wantMs,
    effectiveMsn,
    effectiveShard,
    schedule: { segmentDurationMs: wantMs, sinceMsn: effectiveMsn, sinceShard: effectiveShard },
    reason:
      curLevel === undefined
        ? `${curMs} ms is no longer a level of the policy: ${want} level ${wantMs} ms`
        : `${input.sessions} sessions: ${curLevel} → ${want} (${curMs} → ${wantMs} ms)`,
  };
}

/**
 * A stream's schedule (Stream.segment_schedule): entries ascending by
 * sinceShard, each starting at a segment boundary of the one before.
 */
export type SegmentScheduleList = readonly SegmentSchedule[];

/** The entry in force for `shard`: the last one starting at or before it (the first one before them all). */
export function entryAtShard(list: SegmentScheduleList, shard: number): SegmentSchedule {
  if (list.length === 0) throw new RangeError("schedule: empty");
  let found = list[0] as SegmentSchedule;
  for (const e of list) {
    if (e.sinceShard > shard) break;
    found = e;
  }
  return found;
}

/** The entry that numbers `msn`: the last one whose sinceMsn is at or before it (the first one before them all). */
export function entryOfMsn(list: SegmentScheduleList, msn: number): SegmentSchedule {
  if (list.length === 0) throw new RangeError("schedule: empty");
  let found = list[0] as SegmentSchedule;
  for (const e of list) {
    if (e.sinceMsn > msn) break;
    found = e;
  }
  return found;
}

/** MSN of the segment containing `shard` under a whole schedule (shard >= the first entry's sinceShard). */
export function msnOfShardIn(
  list: SegmentScheduleList,
  shardDurationMs: number,
  shard: number,
): number {
  return msnOfShard(entryAtShard(list, shard), shardDurationMs, shard);
}

/** First shard of segment `msn` under a whole schedule (msn >= the first entry's sinceMsn). */
export function firstShardOfMsnIn(
  list: SegmentScheduleList,
  shardDurationMs: number,
  msn: number,
): number {
  return firstShardOfMsn(entryOfMsn(list, msn), shardDurationMs, msn);
}

/**
 * Why `next` cannot be appended to `list` under `policy`, or undefined when
 * it can: its duration must be a level-compatible duration (a multiple of
 * the keyframe interval within [min, max]) other than the one in force
 * before it, and it
 * must start at a segment boundary of the last entry, after that entry's
 * start, with the MSN that boundary has, so numbering continues with no gap
 * and no overlap. Whether it lies in the future is the caller's to check
 * (it needs the clock).
 */
export function scheduleChangeProblem(
  list: SegmentScheduleList,
  next: SegmentSchedule,
  policy: SegmentPolicyInput,
): string | undefined {
  try {
    validatePolicy(policy);
  } catch (err) {
    return `the stream's segment policy is not usable: ${(err as Error).message}`;
  }
  const unit = segmentAlignmentMs(policy);
  const ms = next.segmentDurationMs;
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms % unit !== 0) {
    return `segment_duration_ms: ${ms} is not a multiple of the ${unit} ms keyframe interval${policy.keyframeIntervalMs ? "" : " (the target: keyframe_interval_ms is 0)"}`;
  }
  if (ms < policy.segmentDurationMinMs || ms > policy.segmentDurationMaxMs) {
    return `segment_duration_ms: ${ms} is outside the policy's [${policy.segmentDurationMinMs}, ${policy.segmentDurationMaxMs}] ms`;
  }
  const last = list[list.length - 1];
  if (!last) return undefined;
  if (!Number.isSafeInteger(next.sinceShard) || next.sinceShard <= last.sinceShard) {
    return `since_shard: ${next.sinceShard} must be after the last change's first shard ${last.sinceShard}`;
  }
  const perSegment = last.segmentDurationMs / policy.shardDurationMs;
  if (!Number.isInteger(perSegment) || (next.sinceShard - last.sinceShard) % perSegment !== 0) {
    return `since_shard: ${next.sinceShard} is not a segment boundary of the schedule in force (${last.segmentDurationMs} ms segments from shard ${last.sinceShard})`;
  }
  const msn = last.sinceMsn + (next.sinceShard - last.sinceShard) / perSegment;
  if (next.sinceMsn !== msn) {
    return `since_msn: shard ${next.sinceShard} starts MSN ${msn}, not ${next.sinceMsn} (numbering must continue)`;
  }
  if (ms === last.segmentDurationMs) {
    return `segment_duration_ms: ${ms} is already the duration in force before shard ${next.sinceShard}`;
  }
  return undefined;
}
