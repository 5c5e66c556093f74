/**
 * Naive reference versions of the planners' objectives, written from the
 * documented contracts (not from the planner code): enumerate every
 * assignment of one stream, check the hard constraints, evaluate the
 * objective, keep the minimum. Only for tiny inputs.
 */
import type {
  AssignmentOptions,
  PackagerInput,
  PlanCost,
  StreamInput,
} from "../../../coordinator/src/plan/index.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";

/** Members of each rendition (in StreamInput.renditions order): primary first; [] = unplaced. */
export type Members = readonly (readonly string[])[];

const placeable = (s: ComponentStatus) =>
  s === ComponentStatus.HEALTHY || s === ComponentStatus.SUSPECT || s === ComponentStatus.UNKNOWN;

function lexLess(a: PlanCost, b: PlanCost): boolean {
  const ka = [a.unplaced, a.overloadBps, a.missingReplicas, a.moves, a.score];
  const kb = [b.unplaced, b.overloadBps, b.missingReplicas, b.moves, b.score];
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) return (ka[i] as number) < (kb[i] as number);
  }
  return false;
}

/** Undefined when a hard constraint is broken; otherwise the objective value. */
export function evaluate(
  s: StreamInput,
  packagers: readonly PackagerInput[],
  members: Members,
  o: AssignmentOptions,
): PlanCost | undefined {
  const byId = new Map(packagers.map((p) => [p.id, p]));
  const R = s.replicationFactor;
  const used = new Set<string>();
  for (const m of members) {
    if (m.length > R || new Set(m).size !== m.length) return undefined;
    const zones = m.map((id) => byId.get(id)?.zone);
    if (s.placement.zoneAntiAffinity && new Set(zones).size !== zones.length) return undefined;
    for (const id of m) {
      const p = byId.get(id);
      if (!p || !placeable(p.status)) return undefined;
      if (s.placement.allowedRegions.length > 0 && !s.placement.allowedRegions.includes(p.region))
        return undefined;
      if (s.placement.allowedZones.length > 0 && !s.placement.allowedZones.includes(p.zone))
        return undefined;
      used.add(id);
    }
  }
  if (used.size > o.packagersPerStreamMax) return undefined;
  let overloadBps = 0;
  let balance = 0;
  for (const p of packagers) {
    const maxStreams = p.maxStreams || o.defaultMaxStreams;
    const cap = p.egressBps || o.defaultEgressBps;
    const streams = (p.baseStreams ?? 0) + (used.has(p.id) ? 1 : 0);
    if (used.has(p.id) && streams > maxStreams) return undefined;
    let egress = p.baseEgressBps ?? 0;
    s.renditions.forEach((r, i) => {
      if (members[i]?.[0] === p.id) egress += r.sessions * r.bandwidthBps;
    });
    overloadBps += Math.max(0, egress - cap);
    const u = Math.max(streams / maxStreams, egress / cap);
    balance += Math.round(o.weights.balance * u * u);
  }
  let unplaced = 0;
  let missingReplicas = 0;
  let moves = 0;
  let penalty = 0;
  const primaries = new Set<string>();
  const preferred = s.preferredRegions ?? [];
  s.renditions.forEach((r, i) => {
    const m = members[i] as readonly string[];
    if (m.length === 0) unplaced++;
    missingReplicas += R - m.length;
    if (m.length > 0) {
      primaries.add(m[0] as string);
      if (r.current) {
        const cur = new Set([r.current.primary, ...r.current.replicas]);
        moves += m.filter((id) => !cur.has(id)).length;
        if (m[0] !== r.current.primary) moves++;
        if (!cur.has(m[0] as string)) moves++;
      }
    }
    for (const id of m) {
      const p = byId.get(id) as PackagerInput;
      if (p.status === ComponentStatus.SUSPECT) penalty += o.weights.suspect;
      if (p.status === ComponentStatus.UNKNOWN) penalty += o.weights.unknown;
      if (preferred.length > 0 && !preferred.includes(p.region)) penalty += o.weights.locality;
    }
  });
  const score =
    balance +
    o.weights.primarySpread * Math.max(0, primaries.size - 1) +
    o.weights.packagerSpread * Math.max(0, used.size - 1) +
    penalty;
  return { unplaced, overloadBps, missingReplicas, moves, score };
}

/** Every member list of one rendition: [] or a primary followed by a replica subset (sorted). */
function renditionOptions(ids: readonly string[], R: number): string[][] {
  const out: string[][] = [[]];
  for (const primary of ids) {
    const others = ids.filter((x) => x !== primary);
    for (let mask = 0; mask < 1 << others.length; mask++) {
      const reps = others.filter((_, i) => mask & (1 << i));
      if (reps.length + 1 <= R) out.push([primary, ...reps]);
    }
  }
  return out;
}

/** The optimum over all assignments of one stream, and how many were feasible. */
export function bruteForceOptimum(
  s: StreamInput,
  packagers: readonly PackagerInput[],
  o: AssignmentOptions,
): { cost: PlanCost; members: Members; feasible: number } {
  const options = renditionOptions(
    packagers.map((p) => p.id),
    s.replicationFactor,
  );
  let best: { cost: PlanCost; members: Members } | undefined;
  let feasible = 0;
  const pick: string[][] = [];
  const rec = (i: number) => {
    if (i === s.renditions.length) {
      const cost = evaluate(s, packagers, pick, o);
      if (!cost) return;
      feasible++;
      if (!best || lexLess(cost, best.cost)) best = { cost, members: pick.map((m) => [...m]) };
      return;
    }
    for (const opt of options) {
      pick.push(opt);
      rec(i + 1);
      pick.pop();
    }
  };
  rec(0);
  // All-unplaced is always feasible, so best exists.
  const b = best as unknown as { cost: PlanCost; members: Members };
  return { ...b, feasible };
}
