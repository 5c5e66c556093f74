/**
 * The source timeline: how a shard number maps to MSN, part index, media time
 * and bytes. Pure functions (no clock reads; time comes in as arguments).
 *
 * Shard n is the n-th part since the timeline origin:
 *   msn = floor(n / partsPerSegment), partIndex = n mod partsPerSegment,
 *   media time = n * partDurationMs after the origin, available (complete) at
 *   origin + (n + 1) * partDurationMs in wall-clock time.
 * Therefore msn = floor((now - originMs) / segmentDurationMs) for the segment
 * being produced now: every encoder and every restart that shares the origin
 * agrees on numbering without talking to anyone.
 *
 * Bytes: shard n is fixture part (n mod partsPerLoop) of loop
 * floor(n / partsPerLoop), with each track's tfdt moved forward by
 * loop * loopDurationTicks and mfhd sequence_number set from n. The result
 * depends only on (fixture, n), so a shard made by any encoder of the pool is
 * byte-identical to the same shard made by another: that is why shards from
 * different encoders splice seamlessly, and why a replica can verify them by
 * SHA-256.
 */
import { concatBytes, rewriteFragment } from "../media/index.ts";
import type { Fixture, FixtureRendition } from "./fixture.ts";

export interface Timeline {
  /** Wall-clock ms (Unix epoch) of media time 0; shared by the whole pool. */
  readonly originMs: number;
  readonly partDurationMs: number;
  readonly partsPerSegment: number;
  readonly partsPerLoop: number;
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
  readonly independent: boolean;
  /** Last part of its segment: the segment is complete once this shard is. */
  readonly lastOfSegment: boolean;
}

export function timelineOf(fixture: Fixture, originMs: number): Timeline {
  return {
    originMs,
    partDurationMs: fixture.partDurationMs,
    partsPerSegment: fixture.partsPerSegment,
    partsPerLoop: fixture.partsPerLoop,
  };
}

export function segmentDurationMs(t: Timeline): number {
  return t.partDurationMs * t.partsPerSegment;
}

/** The shard whose media interval contains wall-clock `nowMs` (negative before the origin). */
export function shardAt(t: Timeline, nowMs: number): number {
  return Math.floor((nowMs - t.originMs) / t.partDurationMs);
}

export function shardPosition(t: Timeline, shard: number): ShardPosition {
  if (!Number.isSafeInteger(shard) || shard < 0) {
    throw new RangeError(`shard must be a non-negative integer, got ${shard}`);
  }
  const partIndex = shard % t.partsPerSegment;
  const timelineMs = shard * t.partDurationMs;
  return {
    shard,
    msn: Math.floor(shard / t.partsPerSegment),
    partIndex,
    loop: Math.floor(shard / t.partsPerLoop),
    fixturePart: shard % t.partsPerLoop,
    timelineMs,
    readyAtMs: t.originMs + timelineMs + t.partDurationMs,
    independent: partIndex === 0,
    lastOfSegment: partIndex === t.partsPerSegment - 1,
  };
}

/** First shard of segment `msn`. */
export function firstShardOf(t: Timeline, msn: number): number {
  return msn * t.partsPerSegment;
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
  for (let i = 0; i < t.partsPerSegment; i++) parts.push(buildShard(t, rendition, first + i));
  return concatBytes(parts);
}
