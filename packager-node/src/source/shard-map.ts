/**
 * Which encoder of the pool produces which shard, and where it pushes it.
 *
 * Two forms:
 * - static pool `{index, size, unit}`: shard n belongs to the encoder with
 *   index (unit === "shard" ? n : msn(n)) mod size (msn by the timeline's
 *   segment schedule); every encoder pushes to
 *   the same configured targets. "segment" keeps a segment's parts on one
 *   encoder (it can then also push the complete segment from its own parts).
 * - shard map `{epoch, ranges}` (from the coordinator): ranges of shard
 *   numbers, each owned by one encoder and pushed to its replica targets.
 *   Maps are replaced whole at runtime; a newer map takes effect from the next
 *   shard the encoder produces (a shard boundary). The coordinator keeps the
 *   past identical in the new map and moves only future shards, so two
 *   encoders switching at slightly different moments still produce every
 *   shard exactly once.
 */
import { ConfigError, type Infer, parseConfig, s } from "../../../common/config.ts";

/** An http(s) base URL of a packager ingest listener (no query or fragment). */
export const targetUrlSchema = s.string({
  pattern: /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/,
  hint: 'an http(s) base URL such as "http://127.0.0.1:8080"',
});

export const replicaTargetsMax = 16;
export const shardRangesMax = 4096;

const shardNumber = s.number({ integer: true, min: 0, max: Number.MAX_SAFE_INTEGER });

export const shardRangeSchema = s.object({
  firstShard: shardNumber,
  /** Inclusive; null or absent: open-ended (allowed on the last range only). */
  lastShard: s.optional(shardNumber),
  encoderId: s.string({ minLength: 1 }),
  replicaTargets: s.array(targetUrlSchema, { minItems: 1, maxItems: replicaTargetsMax }),
});

export const shardMapSchema = s.object({
  epoch: s.number({ integer: true, min: 1, max: Number.MAX_SAFE_INTEGER }),
  ranges: s.array(shardRangeSchema, { minItems: 1, maxItems: shardRangesMax }),
});

export interface ShardRange {
  readonly firstShard: number;
  /** Inclusive last shard, or null for "and every shard after". */
  readonly lastShard: number | null;
  readonly encoderId: string;
  readonly replicaTargets: readonly string[];
}

export interface ShardMap {
  readonly epoch: number;
  readonly ranges: readonly ShardRange[];
}

export const staticPoolSchema = s.object({
  index: s.number({ integer: true, min: 0, max: 1023 }),
  size: s.number({ integer: true, min: 1, max: 1024 }),
  unit: s.default(s.literal("segment", "shard"), "segment"),
});

export type StaticPool = Infer<typeof staticPoolSchema>;

export type Assignment =
  | {
      readonly kind: "static";
      readonly epoch: number;
      readonly pool: StaticPool;
      readonly targets: readonly string[];
    }
  | { readonly kind: "map"; readonly map: ShardMap };

/**
 * Validates a shard map (shape, then order: ranges sorted by firstShard, not
 * overlapping, lastShard >= firstShard, open-ended only last). Gaps are
 * allowed: nobody in this pool produces those shards. Throws ConfigError
 * naming the field (e.g. "ranges[2].firstShard").
 */
export function parseShardMap(value: unknown): ShardMap {
  return checkShardMap(parseConfig(shardMapSchema, value), "");
}

/** The order checks of parseShardMap on an already shape-checked map; `path` prefixes field names. */
export function checkShardMap(raw: Infer<typeof shardMapSchema>, path: string): ShardMap {
  const at = (field: string) => (path ? `${path}.${field}` : field);
  const ranges: ShardRange[] = raw.ranges.map((r, i) => {
    if (r.lastShard !== undefined && r.lastShard < r.firstShard) {
      throw new ConfigError(
        at(`ranges[${i}].lastShard`),
        `must be >= firstShard (${r.firstShard}), got ${r.lastShard}`,
      );
    }
    return {
      firstShard: r.firstShard,
      lastShard: r.lastShard ?? null,
      encoderId: r.encoderId,
      replicaTargets: r.replicaTargets.map((t) => t.replace(/\/+$/, "")),
    };
  });
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (prev.lastShard === null) {
      throw new ConfigError(
        at(`ranges[${i - 1}].lastShard`),
        "only the last range may be open-ended (lastShard null)",
      );
    }
    if (cur.firstShard <= prev.lastShard) {
      throw new ConfigError(
        at(`ranges[${i}].firstShard`),
        `must be > ranges[${i - 1}].lastShard (${prev.lastShard}); ranges are sorted and do not overlap`,
      );
    }
  }
  return { epoch: raw.epoch, ranges };
}

export function assignmentEpoch(a: Assignment): number {
  return a.kind === "static" ? a.epoch : a.map.epoch;
}

/** The range holding `shard`, if any (binary search; ranges are sorted). */
export function rangeOf(map: ShardMap, shard: number): ShardRange | undefined {
  let lo = 0;
  let hi = map.ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = map.ranges[mid]!;
    if (shard < r.firstShard) hi = mid - 1;
    else if (r.lastShard !== null && shard > r.lastShard) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/**
 * Targets encoder `encoderId` must push shard `shard` (of segment `msn`) to,
 * or undefined when the shard is not this encoder's.
 */
export function targetsFor(
  a: Assignment,
  encoderId: string,
  shard: number,
  msn: number,
): readonly string[] | undefined {
  if (a.kind === "static") {
    const unit = a.pool.unit === "shard" ? shard : msn;
    return unit % a.pool.size === a.pool.index ? a.targets : undefined;
  }
  const range = rangeOf(a.map, shard);
  return range && range.encoderId === encoderId ? range.replicaTargets : undefined;
}
