/**
 * The source timeline: how a shard number maps to MSN, part index, media time
 * and bytes. Pure functions (no clock reads; time comes in as arguments).
 *
 * Shard n is the n-th part since the timeline origin: media time n *
 * partDurationMs after the origin, available (complete) at origin + (n + 1)
 * * partDurationMs in wall-clock time. Segments are cut by the stream's
 * segment schedule (the coordinator's Stream.segment_schedule, or the
 * fixture's own segment length from shard 0 for a static pool): a list of
 * entries {sinceShard, sinceMsn, segmentDurationMs}, ascending, each starting
 * at a segment boundary of the one before, and shard n of entry e is
 *   msn = e.sinceMsn + floor((n - e.sinceShard) / partsPerSegment(e)),
 *   partIndex = (n - e.sinceShard) mod partsPerSegment(e).
 * Every encoder and every restart that shares the origin and the schedule
 * agrees on numbering without talking to anyone, and a change renumbers
 * nothing before its sinceShard.
 *
 * Bytes: shard n is fixture part (n mod partsPerLoop) of loop
 * floor(n / partsPerLoop), with each track's tfdt moved forward by
 * loop * loopDurationTicks and mfhd sequence_number set from n. The result
 * depends only on (fixture, n), so a shard made by any encoder of the pool is
 * byte-identical to the same shard made by another: that is why shards from
 * different encoders splice seamlessly, and why a replica can verify them by
 * SHA-256. Independence is the fixture's: a part starts with a keyframe iff
 * its fixture part does (every `keyframeEveryParts` parts), whatever segment
 * it lands in. A schedule whose boundaries miss the fixture's keyframes gives
 * segments that do not start with one (a real encoder would insert one; the
 * fixture cannot), which the source reports truthfully.
 */
import { concatBytes, rewriteFragment } from "../media/index.ts";
import type { Fixture, FixtureRendition } from "./fixture.ts";

/** One entry of a segment schedule (as Stream.segment_schedule, in ms and shard numbers). */
export interface ScheduleEntry {
  readonly sinceShard: number;
  readonly sinceMsn: number;
  readonly segmentDurationMs: number;
}

export interface Timeline {
  /** Wall-clock ms (Unix epoch) of media time 0; shared by the whole pool. */
  readonly originMs: number;
  readonly partDurationMs: number;
  readonly partsPerLoop: number;
  /** The fixture has a keyframe at every part index that is a multiple of this. */
  readonly keyframeEveryParts: number;
  /** Non-empty, ascending by sinceShard, each at a segment boundary of the one before. */
  readonly schedule: readonly ScheduleEntry[];
}

export interface ShardPosition {
  readonly shard: number;
  readonly msn: number;
  readonly partIndex: number;
  readonly loop: number;
  /** Index of the fixture part this shard repeats. */
  readonly fixturePart: number;
  /** Media time of the first sample, ms since the origin. */
  readonly timelineMs: number;
  /** Wall-clock ms at which this shard is complete (its media end time). */
  readonly readyAtMs: number;
  /** The part starts with a keyframe (the fixture part does). */
  readonly independent: boolean;
  /** Last part of its segment: the segment is complete once this shard is. */
  readonly lastOfSegment: boolean;
  /** Duration of the segment this shard belongs to (the schedule entry's). */
  readonly segmentDurationMs: number;
  /** Parts in that segment. */
  readonly partsPerSegment: number;
}

/**
 * The timeline of `fixture` from `originMs`, cut by `schedule` (default: the
 * fixture's own segment duration from shard 0). Throws RangeError naming the
 * entry when the schedule is not usable with this fixture.
 */
export function timelineOf(
  fixture: Fixture,
  originMs: number,
  schedule: readonly ScheduleEntry[] = [
    { sinceShard: 0, sinceMsn: 0, segmentDurationMs: fixture.segmentDurationMs },
  ],
): Timeline {
  checkSchedule(schedule, fixture.partDurationMs);
  return {
    originMs,
    partDurationMs: fixture.partDurationMs,
    partsPerLoop: fixture.partsPerLoop,
    keyframeEveryParts: fixture.partsPerSegment,
    schedule: schedule.map((e) => ({ ...e })),
  };
}

function checkSchedule(schedule: readonly ScheduleEntry[], partMs: number): void {
  if (schedule.length === 0) throw new RangeError("schedule: needs at least one entry");
  for (const [i, e] of schedule.entries()) {
    const at = `schedule[${i}]`;
    for (const [k, v] of Object.entries(e)) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new RangeError(`${at}.${k}: must be a non-negative integer, got ${v}`);
    }
    if (e.segmentDurationMs <= 0 || e.segmentDurationMs % partMs !== 0) {
      throw new RangeError(
        `${at}.segmentDurationMs: ${e.segmentDurationMs} is not a positive multiple of the ${partMs} ms part`,
      );
    }
    const prev = schedule[i - 1];
    if (!prev) continue;
    const pps = prev.segmentDurationMs / partMs;
    const k = e.sinceShard - prev.sinceShard;
    if (k <= 0 || k % pps !== 0 || e.sinceMsn !== prev.sinceMsn + k / pps) {
      throw new RangeError(
        `${at}: shard ${e.sinceShard} / msn ${e.sinceMsn} is not a segment boundary after schedule[${i - 1}] (${prev.segmentDurationMs} ms from shard ${prev.sinceShard}, msn ${prev.sinceMsn})`,
      );
    }
  }
}

/** Part duration × parts per segment of the schedule's first entry (static pools: the fixture's). */
export function segmentDurationMs(t: Timeline): number {
  return t.schedule[0]!.segmentDurationMs;
}

/** The shard whose media interval contains wall-clock `nowMs` (negative before the origin). */
export function shardAt(t: Timeline, nowMs: number): number {
  return Math.floor((nowMs - t.originMs) / t.partDurationMs);
}

/** The schedule entry in force at `value` of `key` (a shard or an MSN): the last one starting at or before it. */
function entryAt(t: Timeline, key: "sinceShard" | "sinceMsn", value: number): ScheduleEntry {
  const first = t.schedule[0]!;
  if (value < first[key]) {
    const what = key === "sinceShard" ? "shard" : "msn";
    throw new RangeError(
      `${what} ${value} is before the segment schedule (which starts at ${what} ${first[key]})`,
    );
  }
  let found = first;
  for (const e of t.schedule) {
    if (e[key] > value) break;
    found = e;
  }
  return found;
}

export function shardPosition(t: Timeline, shard: number): ShardPosition {
  if (!Number.isSafeInteger(shard) || shard < 0) {
    throw new RangeError(`shard must be a non-negative integer, got ${shard}`);
  }
  const e = entryAt(t, "sinceShard", shard);
  const pps = e.segmentDurationMs / t.partDurationMs;
  const partIndex = (shard - e.sinceShard) % pps;
  const timelineMs = shard * t.partDurationMs;
  const fixturePart = shard % t.partsPerLoop;
  return {
    shard,
    msn: e.sinceMsn + Math.floor((shard - e.sinceShard) / pps),
    partIndex,
    loop: Math.floor(shard / t.partsPerLoop),
    fixturePart,
    timelineMs,
    readyAtMs: t.originMs + timelineMs + t.partDurationMs,
    independent: fixturePart % t.keyframeEveryParts === 0,
    lastOfSegment: partIndex === pps - 1,
    segmentDurationMs: e.segmentDurationMs,
    partsPerSegment: pps,
  };
}

/** First shard of segment `msn`. */
export function firstShardOf(t: Timeline, msn: number): number {
  const e = entryAt(t, "sinceMsn", msn);
  return e.sinceShard + (msn - e.sinceMsn) * (e.segmentDurationMs / t.partDurationMs);
}

/** Parts in segment `msn`. */
export function partsInSegment(t: Timeline, msn: number): number {
  return entryAt(t, "sinceMsn", msn).segmentDurationMs / t.partDurationMs;
}

/** mfhd sequence numbers are uint32 and start at 1; they wrap after 2^32-1 shards (~68 years at 0.5 s). */
export function sequenceNumberOf(shard: number): number {
  return (shard % 0xffffffff) + 1;
}

/** The bytes of shard `shard` of one rendition (deterministic; see the module comment). */
export function buildShard(t: Timeline, rendition: FixtureRendition, shard: number): Uint8Array {
  const pos = shardPosition(t, shard);
  const part = rendition.parts[pos.fixturePart];
  if (!part) throw new RangeError(`rendition ${rendition.id} has no part ${pos.fixturePart}`);
  const shiftByTrack = new Map<number, bigint>();
  for (const track of rendition.tracks) {
    shiftByTrack.set(track.trackId, BigInt(pos.loop) * BigInt(track.loopDurationTicks));
  }
  return rewriteFragment(part.bytes, {
    sequenceNumber: sequenceNumberOf(shard),
    baseMediaDecodeTime: (trackId, current) => current + (shiftByTrack.get(trackId) ?? 0n),
  });
}

/** The complete segment `msn`: the concatenation of its parts' bytes. */
export function buildSegment(t: Timeline, rendition: FixtureRendition, msn: number): Uint8Array {
  const first = firstShardOf(t, msn);
  const parts: Uint8Array[] = [];
  const count = partsInSegment(t, msn);
  for (let i = 0; i < count; i++) parts.push(buildShard(t, rendition, first + i));
  return concatBytes(parts);
}
