/**
 * Plain input/output types shared by the planners.
 *
 * The planners take plain TypeScript values (numbers, strings, readonly
 * arrays) rather than proto messages: 64-bit proto fields are `bigint`, and
 * the planners do arithmetic on loads, MSNs and shard numbers that is simpler
 * and cheaper in `number` (every value is < 2^53 by contract). The proto enums
 * ComponentStatus and LatencyMode are plain TS enums and are used as they are.
 * `proto-adapter.ts` converts FSM messages to these inputs, and `commands.ts`
 * turns plans back into FSM commands, so the leader never converts by hand.
 */
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";

/** Placement constraints of a stream (StreamSpec.placement; absent = all empty/false). */
export interface PlacementPolicy {
  /** Empty = any region. A component with region "" is in region "". */
  readonly allowedRegions: readonly string[];
  /** Empty = any zone. */
  readonly allowedZones: readonly string[];
  /** No two members of one rendition (primary + replicas) share a zone; zone "" counts as a zone. */
  readonly zoneAntiAffinity: boolean;
}

export const anywhere: PlacementPolicy = {
  allowedRegions: [],
  allowedZones: [],
  zoneAntiAffinity: false,
};

/** The packagers holding one rendition: primary first, then the replicas. */
export interface Holders {
  readonly primary: string;
  readonly replicas: readonly string[];
}

/** One row of a rendition's assignment history (RenditionAssignment with numbers). */
export interface AssignmentRow extends Holders {
  readonly renditionId: string;
  /** Inclusive. */
  readonly firstMsn: number;
  /** Inclusive; undefined = open-ended (the current row). */
  readonly lastMsn?: number | undefined;
}

/** One shard range (ShardRange with numbers). */
export interface ShardRangeRow {
  /** Inclusive. */
  readonly firstShard: number;
  /** Inclusive; undefined = open-ended (only the last range). */
  readonly lastShard?: number | undefined;
  readonly encoderId: string;
  readonly replicaPackagerIds: readonly string[];
}

/**
 * Statuses that take no new work and whose current work must move:
 * DOWN (failed), DRAINING (handing over), DRAINED (empty, may stop), and
 * UNSPECIFIED (never valid for a registered component).
 */
export function isPlaceable(status: ComponentStatus): boolean {
  return (
    status === ComponentStatus.HEALTHY ||
    status === ComponentStatus.SUSPECT ||
    status === ComponentStatus.UNKNOWN
  );
}

/** Preference among placeable statuses: HEALTHY 0, UNKNOWN 1, SUSPECT 2. */
export function statusRank(status: ComponentStatus): number {
  if (status === ComponentStatus.HEALTHY) return 0;
  if (status === ComponentStatus.UNKNOWN) return 1;
  return 2;
}

/** Throws a RangeError naming the field; planners reject malformed input instead of guessing. */
export function requireInt(field: string, n: number, min: number, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new RangeError(`${field}: must be an integer in ${min}..${max}, got ${n}`);
  }
}

export function sameIds(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((x, i) => x === sb[i]);
}

export function sameHolders(a: Holders, b: Holders): boolean {
  return a.primary === b.primary && sameIds(a.replicas, b.replicas);
}

/** Deterministic string order (code units, not locale). */
export function byId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Throws a RangeError naming the field when `id` is empty or already in `seen`; else records it. */
export function requireUniqueId(field: string, id: string, seen: Set<string>, what: string): void {
  if (!id) throw new RangeError(`${field}: required`);
  if (seen.has(id)) throw new RangeError(`${field}: duplicate ${what} "${id}"`);
  seen.add(id);
}
