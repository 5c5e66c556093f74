/**
 * Packager assignment planner: which packagers serve each rendition of each
 * stream (a primary plus replicas, replication_factor in total).
 *
 * Pure and deterministic: the same input gives the same plan on every node
 * (no clock, no randomness, candidates ordered with id as the last key).
 *
 * ## Model
 * - A packager may hold a stream when it is placeable (HEALTHY, UNKNOWN or
 *   SUSPECT; never DOWN/DRAINING/DRAINED), its region and zone are allowed by
 *   the stream's placement, and adding the stream keeps it within max_streams.
 *   A packager counts a stream once however many renditions it holds.
 * - Egress: the primary of rendition r carries `sessions_r × bandwidthBps_r`
 *   (viewers are announced the primary first); replicas carry no viewer
 *   egress (they are standbys fed by the encoder's dual push). Failover
 *   headroom is therefore not reserved; see `spares`.
 * - Zone anti-affinity is never violated: when it cannot be met the rendition
 *   gets fewer replicas and the stream is DEGRADED with a reason.
 * - A stream touches at most `packagersPerStreamMax` distinct packagers (the
 *   encoder pushes every shard to all of them and ShardRange allows 1–5).
 *
 * ## Objective (lexicographic; documented so the brute-force test can
 * recompute it independently). For one stream, with every other stream's
 * load fixed, minimise the tuple
 *   1. unplaced:        renditions with no packager at all;
 *   2. overloadBps:     Σ over all packagers of max(0, egress − egress capacity);
 *   3. missingReplicas: Σ_r (replication_factor − members_r);
 *   4. moves:           Σ over renditions with a current row of
 *                         |members \ current members| + [primary ≠ current primary]
 *                         + [primary ∉ current members];
 *                       so keeping a healthy assignment costs 0, promoting a
 *                       replica costs 2 and a cold primary 3;
 *   5. score (integer points), the sum of
 *        balance:        Σ over all packagers of round(w.balance × u²), u = max(streams/maxStreams, egress/egressCap);
 *        primarySpread:  w.primarySpread × (distinct primaries − 1): renditions of a stream
 *                        prefer one primary (rendition reports and sibling playlists stay local);
 *        packagerSpread: w.packagerSpread × (distinct packagers of the stream − 1);
 *        status:         w.suspect / w.unknown per member slot on a SUSPECT / UNKNOWN packager;
 *        locality:       w.locality per member slot outside stream.preferredRegions (if any).
 * Capacity (max_streams), placeability, allowed regions/zones, distinct
 * members, anti-affinity and packagersPerStreamMax are hard constraints.
 * Egress capacity is a soft constraint ranked above everything but coverage:
 * a primary is placed on an overloaded packager only when no placement
 * avoids it, and the stream is then reported DEGRADED.
 *
 * ## Search
 * Per stream, a depth-first branch and bound over (rendition, slot) with
 * candidates ordered by their marginal cost, so the first leaf is the greedy
 * plan and later leaves only replace it when strictly better. The search
 * considers a pool of at most `candidatePoolMax` packagers (the stream's
 * current members, the best packager of every zone, then the emptiest), tries
 * at most `candidatesPerSlotMax` candidates per slot and stops after
 * `searchNodesMax` placements; across all streams of one call it stops
 * after `roundSearchNodesMax`, after which streams get their greedy plan, so
 * one planning round cannot stall the leader's event loop (which also runs
 * Raft). `exhaustive` says whether none of these bounds cut the search, i.e.
 * whether the result is the proven optimum. A stream whose current placement
 * is already optimal (see keepCurrent) costs no search at all. Streams are planned one at a time in id order; each sees the
 * others' load (already planned streams with their new placement, the rest
 * with their current one).
 */
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  byId,
  type Holders,
  isPlaceable,
  type PlacementPolicy,
  requireInt,
  requireUniqueId,
  sameHolders,
  statusRank,
} from "./types.ts";

export interface PackagerInput {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly status: ComponentStatus;
  /** Capacity.max_streams; 0 = not reported (options.defaultMaxStreams). */
  readonly maxStreams: number;
  /** Capacity.egress_bps; 0 = not reported (options.defaultEgressBps). */
  readonly egressBps: number;
  /** Streams carried for work outside this plan (not listed in `streams`). Default 0. */
  readonly baseStreams?: number;
  /** Egress for work outside this plan. Default 0. */
  readonly baseEgressBps?: number;
}

export interface RenditionInput {
  readonly id: string;
  /** Rendition.bandwidth_bps. */
  readonly bandwidthBps: number;
  /** Viewer sessions on this rendition now (demand). */
  readonly sessions: number;
  /** The rendition's open (current) assignment row, if any. */
  readonly current?: (Holders & { readonly firstMsn: number }) | undefined;
}

export interface StreamInput {
  readonly id: string;
  /** StreamSpec.replication_factor, 1–5. */
  readonly replicationFactor: number;
  readonly placement: PlacementPolicy;
  /** The ladder, 1–16 renditions with unique ids. */
  readonly renditions: readonly RenditionInput[];
  /**
   * MSN of the segment being produced now (-1 before the timeline starts).
   * A changed assignment takes effect from currentMsn + 1: the next segment
   * boundary, at most one segment duration away.
   */
  readonly currentMsn: number;
  /** Regions close to the stream's encoders/viewers; empty = no preference. */
  readonly preferredRegions?: readonly string[];
}

export interface AssignmentWeights {
  readonly balance: number;
  readonly primarySpread: number;
  readonly packagerSpread: number;
  readonly suspect: number;
  readonly unknown: number;
  readonly locality: number;
}

export interface AssignmentOptions {
  /** Used when a packager reports max_streams 0. */
  readonly defaultMaxStreams: number;
  /** Used when a packager reports egress_bps 0. */
  readonly defaultEgressBps: number;
  /** Distinct packagers one stream may touch (ShardRange allows 1–5 push targets). */
  readonly packagersPerStreamMax: number;
  /** Placements tried per stream before the best plan so far is returned. */
  readonly searchNodesMax: number;
  /** Placements tried across all streams of one planAssignments call. */
  readonly roundSearchNodesMax: number;
  /** Candidates tried per slot (best by marginal cost first). */
  readonly candidatesPerSlotMax: number;
  /** Packagers the search considers per stream (see the module comment). */
  readonly candidatePoolMax: number;
  /** Ranked standby candidates returned per stream. */
  readonly sparesMax: number;
  /** Non-negative integers (points); see the objective above. */
  readonly weights: AssignmentWeights;
}

export const defaultAssignmentOptions: AssignmentOptions = {
  defaultMaxStreams: 100,
  defaultEgressBps: 10_000_000_000,
  packagersPerStreamMax: 5,
  searchNodesMax: 5_000,
  roundSearchNodesMax: 100_000,
  candidatesPerSlotMax: 8,
  candidatePoolMax: 24,
  sparesMax: 4,
  weights: {
    balance: 1000,
    primarySpread: 300,
    packagerSpread: 100,
    suspect: 500,
    unknown: 100,
    locality: 200,
  },
};

export interface AssignmentInput {
  readonly packagers: readonly PackagerInput[];
  readonly streams: readonly StreamInput[];
}

/** The objective value of one stream's plan (see the module comment). */
export interface PlanCost {
  readonly unplaced: number;
  readonly overloadBps: number;
  readonly missingReplicas: number;
  readonly moves: number;
  readonly score: number;
}

export interface RenditionPlan {
  readonly renditionId: string;
  /** Undefined when no packager can take the rendition; its current rows are then kept. */
  readonly holders: Holders | undefined;
  /** True when holders differ from the current row (a new row starts at firstMsn). */
  readonly changed: boolean;
  /** First MSN of the open row after this plan (current row's when unchanged). */
  readonly firstMsn: number | undefined;
}

export interface StreamAssignmentPlan {
  readonly streamId: string;
  /** In the order of StreamInput.renditions. */
  readonly renditions: readonly RenditionPlan[];
  readonly status: "active" | "degraded";
  /** Why DEGRADED; empty when active. */
  readonly reasons: readonly string[];
  /** Reasons joined, at most 512 chars (Stream.status_message). */
  readonly statusMessage: string;
  readonly cost: PlanCost;
  /** True when the search proved this is the optimum of the objective. */
  readonly exhaustive: boolean;
  readonly searchNodes: number;
  /**
   * Placeable packagers outside the stream with room for it, best first:
   * standby candidates for handovers and hot-stream extra replicas.
   */
  readonly spares: readonly string[];
}

export interface PackagerLoad {
  readonly streams: number;
  readonly egressBps: number;
}

export interface AssignmentPlan {
  /** In stream id order. */
  readonly streams: readonly StreamAssignmentPlan[];
  /** Load of every input packager after the plan (base + planned streams). */
  readonly packagerLoads: ReadonlyMap<string, PackagerLoad>;
}

export const statusMessageCharsMax = 512;
const renditionsMax = 16;

export function validateAssignmentOptions(o: AssignmentOptions): void {
  requireInt("defaultMaxStreams", o.defaultMaxStreams, 1);
  requireInt("defaultEgressBps", o.defaultEgressBps, 1);
  requireInt("packagersPerStreamMax", o.packagersPerStreamMax, 1, 5);
  requireInt("searchNodesMax", o.searchNodesMax, 1, 10_000_000);
  requireInt("roundSearchNodesMax", o.roundSearchNodesMax, 1, 1_000_000_000);
  requireInt("candidatesPerSlotMax", o.candidatesPerSlotMax, 1, 1000);
  requireInt("candidatePoolMax", o.candidatePoolMax, 1, 100_000);
  requireInt("sparesMax", o.sparesMax, 0, 100);
  for (const [k, v] of Object.entries(o.weights)) requireInt(`weights.${k}`, v, 0, 1_000_000);
}

function validateInput(input: AssignmentInput): void {
  const ids = new Set<string>();
  for (const [i, p] of input.packagers.entries()) {
    const f = `packagers[${i}]`;
    requireUniqueId(`${f}.id`, p.id, ids, "packager");
    requireInt(`${f}.maxStreams`, p.maxStreams, 0);
    requireInt(`${f}.egressBps`, p.egressBps, 0);
    requireInt(`${f}.baseStreams`, p.baseStreams ?? 0, 0);
    requireInt(`${f}.baseEgressBps`, p.baseEgressBps ?? 0, 0);
  }
  const streamIds = new Set<string>();
  for (const [i, s] of input.streams.entries()) {
    requireUniqueId(`streams[${i}].id`, s.id, streamIds, "stream");
    validateStreamInput(s, `streams[${i}]`);
  }
}

/** Throws a RangeError naming the field (under `path`) when one stream's input is malformed. */
export function validateStreamInput(s: StreamInput, path = "stream"): void {
  const f = path;
  if (!s.id) throw new RangeError(`${f}.id: required`);
  requireInt(`${f}.replicationFactor`, s.replicationFactor, 1, 5);
  requireInt(`${f}.currentMsn`, s.currentMsn, -1);
  if (s.renditions.length < 1 || s.renditions.length > renditionsMax) {
    throw new RangeError(`${f}.renditions: needs 1–${renditionsMax}, got ${s.renditions.length}`);
  }
  const rids = new Set<string>();
  for (const [j, r] of s.renditions.entries()) {
    const rf = `${f}.renditions[${j}]`;
    requireUniqueId(`${rf}.id`, r.id, rids, "rendition");
    requireInt(`${rf}.bandwidthBps`, r.bandwidthBps, 1);
    requireInt(`${rf}.sessions`, r.sessions, 0);
    if (!Number.isSafeInteger(r.sessions * r.bandwidthBps)) {
      throw new RangeError(`${rf}: sessions × bandwidthBps exceeds 2^53`);
    }
    if (r.current) requireInt(`${rf}.current.firstMsn`, r.current.firstMsn, 0);
  }
}

export function compareCost(a: PlanCost, b: PlanCost): number {
  return (
    a.unplaced - b.unplaced ||
    a.overloadBps - b.overloadBps ||
    a.missingReplicas - b.missingReplicas ||
    a.moves - b.moves ||
    a.score - b.score
  );
}

/** The balance term of one packager (shared by the planner and its reports). */
export function balancePoints(
  weight: number,
  streams: number,
  maxStreams: number,
  egressBps: number,
  egressCapBps: number,
): number {
  const u = Math.max(streams / maxStreams, egressBps / egressCapBps);
  return Math.round(weight * u * u);
}

interface Pkg {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly status: ComponentStatus;
  readonly maxStreams: number;
  readonly egressCap: number;
}

/** Plans every stream; see the module comment for the contract. Throws RangeError on malformed input. */
export function planAssignments(
  input: AssignmentInput,
  options: AssignmentOptions = defaultAssignmentOptions,
): AssignmentPlan {
  validateAssignmentOptions(options);
  validateInput(input);
  const pkgs: Pkg[] = [...input.packagers]
    .sort((a, b) => byId(a.id, b.id))
    .map((p) => ({
      id: p.id,
      region: p.region,
      zone: p.zone,
      status: p.status,
      maxStreams: p.maxStreams || options.defaultMaxStreams,
      egressCap: p.egressBps || options.defaultEgressBps,
    }));
  const index = new Map(pkgs.map((p, i) => [p.id, i]));
  const byIdInput = new Map(input.packagers.map((p) => [p.id, p]));
  const streamsLoad = pkgs.map((p) => byIdInput.get(p.id)?.baseStreams ?? 0);
  const egressLoad = pkgs.map((p) => byIdInput.get(p.id)?.baseEgressBps ?? 0);

  // Every stream's current placement counts as load until that stream is replanned.
  const streams = [...input.streams].sort((a, b) => byId(a.id, b.id));
  const contribution = (s: StreamInput, holders: (r: RenditionInput) => Holders | undefined) => {
    const touched = new Set<number>();
    const egress = new Map<number, number>();
    for (const r of s.renditions) {
      const h = holders(r);
      if (!h) continue;
      for (const id of [h.primary, ...h.replicas]) {
        const i = index.get(id);
        if (i !== undefined) touched.add(i);
      }
      const pi = index.get(h.primary);
      if (pi !== undefined) egress.set(pi, (egress.get(pi) ?? 0) + r.sessions * r.bandwidthBps);
    }
    return { touched, egress };
  };
  const addLoad = (c: ReturnType<typeof contribution>, sign: 1 | -1) => {
    for (const i of c.touched) streamsLoad[i] = (streamsLoad[i] as number) + sign;
    for (const [i, e] of c.egress) egressLoad[i] = (egressLoad[i] as number) + sign * e;
  };
  for (const s of streams)
    addLoad(
      contribution(s, (r) => r.current),
      1,
    );

  const plans: StreamAssignmentPlan[] = [];
  let roundNodesLeft = options.roundSearchNodesMax;
  for (const s of streams) {
    addLoad(
      contribution(s, (r) => r.current),
      -1,
    );
    const budget = Math.max(1, Math.min(options.searchNodesMax, roundNodesLeft));
    const plan = planOneStream(s, pkgs, index, streamsLoad, egressLoad, options, budget);
    roundNodesLeft -= plan.searchNodes;
    const planned = new Map(plan.renditions.map((r) => [r.renditionId, r.holders]));
    addLoad(
      contribution(s, (r) => planned.get(r.id)),
      1,
    );
    plans.push(plan);
  }
  const packagerLoads = new Map<string, PackagerLoad>();
  for (const [i, p] of pkgs.entries()) {
    packagerLoads.set(p.id, {
      streams: streamsLoad[i] as number,
      egressBps: egressLoad[i] as number,
    });
  }
  return { streams: plans, packagerLoads };
}

interface SlotUndo {
  readonly p: number;
  readonly primary: boolean;
  readonly firstTouch: boolean;
  readonly firstPrimary: boolean;
  readonly overload: number;
  readonly balance: number;
  readonly penalty: number;
  readonly moves: number;
}

function planOneStream(
  s: StreamInput,
  pkgs: readonly Pkg[],
  index: ReadonlyMap<string, number>,
  streamsLoad: number[],
  egressLoad: number[],
  o: AssignmentOptions,
  /** Placements this stream may try (its share of the round budget). */
  searchNodesMax: number,
): StreamAssignmentPlan {
  const w = o.weights;
  const R = s.replicationFactor;
  const n = pkgs.length;
  const regions = new Set(s.placement.allowedRegions);
  const zones = new Set(s.placement.allowedZones);
  const preferred = new Set(s.preferredRegions ?? []);
  const anti = s.placement.zoneAntiAffinity;
  const eligible = pkgs.map(
    (p) =>
      isPlaceable(p.status) &&
      (regions.size === 0 || regions.has(p.region)) &&
      (zones.size === 0 || zones.has(p.zone)),
  );
  const slotPenalty = pkgs.map(
    (p) =>
      (p.status === ComponentStatus.SUSPECT ? w.suspect : 0) +
      (p.status === ComponentStatus.UNKNOWN ? w.unknown : 0) +
      (preferred.size > 0 && !preferred.has(p.region) ? w.locality : 0),
  );
  const overOf = (i: number) => Math.max(0, (egressLoad[i] as number) - (pkgs[i] as Pkg).egressCap);
  const qOf = (i: number) =>
    balancePoints(
      w.balance,
      streamsLoad[i] as number,
      (pkgs[i] as Pkg).maxStreams,
      egressLoad[i] as number,
      (pkgs[i] as Pkg).egressCap,
    );

  // Renditions in placement order: heaviest egress first, then id.
  const egressOf = (r: RenditionInput) => r.sessions * r.bandwidthBps;
  const order = [...s.renditions].sort((a, b) => egressOf(b) - egressOf(a) || byId(a.id, b.id));
  const curMembers = order.map((r) =>
    r.current ? new Set([r.current.primary, ...r.current.replicas]) : undefined,
  );

  // The search pool: current members, then the best packager of each zone
  // (anti-affinity needs zones), then the emptiest; full packagers are
  // useless unless they already hold the stream. Built only when a search runs.
  const currentIds = new Set(curMembers.flatMap((m) => (m ? [...m] : [])));
  const utilization = (i: number, extraStream: number) => {
    const p = pkgs[i] as Pkg;
    return Math.max(
      ((streamsLoad[i] as number) + extraStream) / p.maxStreams,
      (egressLoad[i] as number) / p.egressCap,
    );
  };
  let pool: number[] = [];
  let truncated = false;
  const buildPool = () => {
    const ranked = pkgs
      .map((_, i) => i)
      .filter(
        (i) =>
          eligible[i] &&
          (currentIds.has((pkgs[i] as Pkg).id) ||
            (streamsLoad[i] as number) + 1 <= (pkgs[i] as Pkg).maxStreams),
      )
      .sort(
        (a, b) =>
          Number(currentIds.has((pkgs[b] as Pkg).id)) -
            Number(currentIds.has((pkgs[a] as Pkg).id)) ||
          statusRank((pkgs[a] as Pkg).status) - statusRank((pkgs[b] as Pkg).status) ||
          utilization(a, 1) - utilization(b, 1) ||
          byId((pkgs[a] as Pkg).id, (pkgs[b] as Pkg).id),
      );
    const inPool = new Set<number>(ranked.filter((i) => currentIds.has((pkgs[i] as Pkg).id)));
    const zoneSeen = new Set<string>();
    for (const i of ranked) {
      const zone = (pkgs[i] as Pkg).zone;
      if (!zoneSeen.has(zone) && inPool.size < o.candidatePoolMax) inPool.add(i);
      zoneSeen.add(zone);
    }
    for (const i of ranked) if (inPool.size < o.candidatePoolMax) inPool.add(i);
    pool = [...inPool].sort((x, y) => x - y);
    truncated = pool.length < ranked.length;
  };

  // Admissible lower bounds for the renditions not yet placed (suffix sums),
  // over the packagers a plan may use (`among`).
  const missingLb = new Array<number>(order.length + 1).fill(0);
  const movesLb = new Array<number>(order.length + 1).fill(0);
  const setBounds = (among: readonly number[]) => {
    const membersMax = Math.min(
      R,
      among.length,
      anti ? new Set(among.map((i) => (pkgs[i] as Pkg).zone)).size : Number.POSITIVE_INFINITY,
      o.packagersPerStreamMax,
    );
    for (let k = order.length - 1; k >= 0; k--) {
      const r = order[k] as RenditionInput;
      const ci = r.current ? index.get(r.current.primary) : undefined;
      const primaryMustChange = r.current !== undefined && (ci === undefined || !eligible[ci]);
      missingLb[k] = (missingLb[k + 1] as number) + (R - membersMax);
      movesLb[k] = (movesLb[k + 1] as number) + (primaryMustChange ? 1 : 0);
    }
  };

  // Search state.
  let overload = 0;
  let balance = 0;
  for (let i = 0; i < n; i++) {
    overload += overOf(i);
    balance += qOf(i);
  }
  const touch = new Array<number>(n).fill(0);
  const primCount = new Array<number>(n).fill(0);
  let distinctPackagers = 0;
  let distinctPrimaries = 0;
  let penalty = 0;
  let moves = 0;
  let missing = 0;
  let unplaced = 0;
  const chosen: number[][] = order.map(() => []);
  let nodes = 0;
  let budgetHit = false;
  let best: { cost: PlanCost; members: number[][] } | undefined;

  const spreadScore = () =>
    w.primarySpread * Math.max(0, distinctPrimaries - 1) +
    w.packagerSpread * Math.max(0, distinctPackagers - 1);
  /**
   * Cost so far plus admissible bounds for what is not decided yet: renditions
   * from `missingFrom` on are unfinished, and those from `movesFrom` on have no
   * primary yet (a chosen primary has already paid its forced move).
   */
  const costNow = (missingFrom: number, movesFrom = missingFrom): PlanCost => ({
    unplaced,
    overloadBps: overload,
    missingReplicas: missing + (missingLb[missingFrom] as number),
    moves: moves + (movesLb[movesFrom] as number),
    score: balance + spreadScore() + penalty,
  });

  const feasible = (i: number, members: readonly number[]): boolean => {
    if (!eligible[i] || members.includes(i)) return false;
    if (anti && members.some((m) => (pkgs[m] as Pkg).zone === (pkgs[i] as Pkg).zone)) return false;
    if (touch[i] === 0) {
      if ((streamsLoad[i] as number) + 1 > (pkgs[i] as Pkg).maxStreams) return false;
      if (distinctPackagers + 1 > o.packagersPerStreamMax) return false;
    }
    return true;
  };

  const apply = (k: number, i: number, primary: boolean): SlotUndo => {
    nodes++;
    const r = order[k] as RenditionInput;
    const cur = curMembers[k];
    const before = { overload: overOf(i), balance: qOf(i) };
    const firstTouch = touch[i] === 0;
    const firstPrimary = primary && primCount[i] === 0;
    if (firstTouch) {
      streamsLoad[i] = (streamsLoad[i] as number) + 1;
      distinctPackagers++;
    }
    touch[i] = (touch[i] as number) + 1;
    if (primary) {
      egressLoad[i] = (egressLoad[i] as number) + egressOf(r);
      if (firstPrimary) distinctPrimaries++;
      primCount[i] = (primCount[i] as number) + 1;
    }
    const dOver = overOf(i) - before.overload;
    const dBal = qOf(i) - before.balance;
    const id = (pkgs[i] as Pkg).id;
    let dMoves = 0;
    if (cur && r.current) {
      if (!cur.has(id)) dMoves++;
      if (primary && id !== r.current.primary) dMoves++;
      if (primary && !cur.has(id)) dMoves++;
    }
    const dPen = slotPenalty[i] as number;
    overload += dOver;
    balance += dBal;
    moves += dMoves;
    penalty += dPen;
    (chosen[k] as number[]).push(i);
    return {
      p: i,
      primary,
      firstTouch,
      firstPrimary,
      overload: dOver,
      balance: dBal,
      penalty: dPen,
      moves: dMoves,
    };
  };

  const undo = (k: number, u: SlotUndo) => {
    const r = order[k] as RenditionInput;
    (chosen[k] as number[]).pop();
    overload -= u.overload;
    balance -= u.balance;
    moves -= u.moves;
    penalty -= u.penalty;
    if (u.primary) {
      egressLoad[u.p] = (egressLoad[u.p] as number) - egressOf(r);
      primCount[u.p] = (primCount[u.p] as number) - 1;
      if (u.firstPrimary) distinctPrimaries--;
    }
    touch[u.p] = (touch[u.p] as number) - 1;
    if (u.firstTouch) {
      streamsLoad[u.p] = (streamsLoad[u.p] as number) - 1;
      distinctPackagers--;
    }
  };

  /** Marginal cost of adding slot i, used only to order candidates. */
  const marginal = (k: number, i: number, primary: boolean): PlanCost => {
    const u = apply(k, i, primary);
    nodes--;
    const c: PlanCost = {
      unplaced: 0,
      overloadBps: u.overload,
      missingReplicas: 0,
      moves: u.moves,
      score:
        u.balance +
        u.penalty +
        (u.firstTouch ? w.packagerSpread : 0) +
        (u.firstPrimary ? w.primarySpread : 0),
    };
    undo(k, u);
    return c;
  };

  const candidates = (k: number, primary: boolean): number[] => {
    const members = chosen[k] as number[];
    const all: { i: number; c: PlanCost }[] = [];
    for (const i of pool) {
      if (feasible(i, members)) all.push({ i, c: marginal(k, i, primary) });
    }
    all.sort((a, b) => compareCost(a.c, b.c) || byId((pkgs[a.i] as Pkg).id, (pkgs[b.i] as Pkg).id));
    if (all.length > o.candidatesPerSlotMax) truncated = true;
    return all.slice(0, o.candidatesPerSlotMax).map((x) => x.i);
  };

  const stop = () => best !== undefined && nodes >= searchNodesMax;
  const promising = (missingFrom: number, movesFrom = missingFrom) =>
    best === undefined || compareCost(costNow(missingFrom, movesFrom), best.cost) < 0;

  const placeRendition = (k: number): void => {
    if (stop()) {
      budgetHit = true;
      return;
    }
    if (k === order.length) {
      const cost = costNow(k);
      if (!best || compareCost(cost, best.cost) < 0) {
        best = { cost, members: chosen.map((c) => [...c]) };
      }
      return;
    }
    for (const p of candidates(k, true)) {
      const u = apply(k, p, true);
      if (promising(k, k + 1)) placeReplicas(k, candidates(k, false), 0);
      undo(k, u);
      if (stop()) {
        budgetHit = true;
        return;
      }
    }
    unplaced++;
    missing += R;
    if (promising(k + 1)) placeRendition(k + 1);
    missing -= R;
    unplaced--;
  };

  const placeReplicas = (k: number, pool: readonly number[], from: number): void => {
    const members = chosen[k] as number[];
    if (members.length < R) {
      for (let j = from; j < pool.length; j++) {
        const q = pool[j] as number;
        if (!feasible(q, members)) continue;
        const u = apply(k, q, false);
        if (promising(k, k + 1)) placeReplicas(k, pool, j + 1);
        undo(k, u);
        if (stop()) {
          budgetHit = true;
          return;
        }
      }
    }
    // Finish this rendition with the members chosen so far.
    const short = R - members.length;
    missing += short;
    if (promising(k + 1)) placeRendition(k + 1);
    missing -= short;
  };

  /**
   * Fast path, exact: when the current placement is feasible, places every
   * rendition, reaches the least possible missing replicas and adds no
   * overload, it attains the lower bound of the first three objective terms
   * with 0 moves, and any other plan moves something. It is the optimum, so
   * a stable stream costs no search.
   */
  const keepCurrent = (): boolean => {
    const floor = costNow(0);
    if (floor.moves > 0) return false;
    const applied: [number, SlotUndo][] = [];
    const missingBefore = missing;
    let ok = true;
    for (const [k, r] of order.entries()) {
      const cur = r.current;
      const ids = cur ? [cur.primary, ...cur.replicas.filter((x) => x !== cur.primary)] : [];
      ok = ids.length > 0 && ids.length <= R && new Set(ids).size === ids.length;
      for (const [j, id] of ids.entries()) {
        const i = index.get(id);
        ok = ok && i !== undefined && feasible(i, chosen[k] as number[]);
        if (!ok) break;
        applied.push([k, apply(k, i as number, j === 0)]);
      }
      if (!ok) break;
      missing += R - ids.length;
    }
    const cost = costNow(order.length);
    if (
      ok &&
      cost.overloadBps === floor.overloadBps &&
      cost.missingReplicas === floor.missingReplicas
    ) {
      best = { cost, members: chosen.map((c) => [...c]) };
    }
    missing = missingBefore;
    for (const [k, u] of applied.reverse()) undo(k, u);
    return best !== undefined;
  };

  setBounds(pkgs.map((_, i) => i).filter((i) => eligible[i]));
  if (!keepCurrent()) {
    buildPool();
    setBounds(pool);
    placeRendition(0);
  }
  const result = best as unknown as { cost: PlanCost; members: number[][] };

  // Results in the order of the input ladder.
  const byRendition = new Map<string, number[]>();
  for (const [k, r] of order.entries()) byRendition.set(r.id, result.members[k] as number[]);
  const renditions: RenditionPlan[] = s.renditions.map((r) => {
    const m = byRendition.get(r.id) as number[];
    if (m.length === 0) {
      return {
        renditionId: r.id,
        holders: undefined,
        changed: false,
        firstMsn: r.current?.firstMsn,
      };
    }
    const holders: Holders = {
      primary: (pkgs[m[0] as number] as Pkg).id,
      replicas: m
        .slice(1)
        .map((i) => (pkgs[i] as Pkg).id)
        .sort(byId),
    };
    const changed = !r.current || !sameHolders(holders, r.current);
    return {
      renditionId: r.id,
      holders,
      changed,
      firstMsn: changed ? s.currentMsn + 1 : r.current?.firstMsn,
    };
  });

  // Apply the chosen plan to the loads before computing reports and spares.
  const used = new Set<number>();
  for (const [k, members] of result.members.entries()) {
    for (const [j, i] of members.entries()) {
      if (!used.has(i)) streamsLoad[i] = (streamsLoad[i] as number) + 1;
      used.add(i);
      if (j === 0) egressLoad[i] = (egressLoad[i] as number) + egressOf(order[k] as RenditionInput);
    }
  }
  const reasons = degradedReasons(s, pkgs, eligible, renditions, used, egressLoad, o);
  // Top sparesMax by insertion into a short sorted list: O(n × sparesMax), no full sort.
  const spareRank = (a: number, b: number) =>
    statusRank((pkgs[a] as Pkg).status) - statusRank((pkgs[b] as Pkg).status) ||
    utilization(a, 1) - utilization(b, 1) ||
    byId((pkgs[a] as Pkg).id, (pkgs[b] as Pkg).id);
  const top: number[] = [];
  for (let i = 0; i < n && o.sparesMax > 0; i++) {
    if (!eligible[i] || used.has(i)) continue;
    if ((streamsLoad[i] as number) + 1 > (pkgs[i] as Pkg).maxStreams) continue;
    if (top.length === o.sparesMax && spareRank(i, top[top.length - 1] as number) >= 0) continue;
    let at = top.length;
    while (at > 0 && spareRank(i, top[at - 1] as number) < 0) at--;
    top.splice(at, 0, i);
    if (top.length > o.sparesMax) top.pop();
  }
  const spares = top.map((i) => (pkgs[i] as Pkg).id);
  // Undo the provisional load: the caller adds the plan's contribution itself.
  for (const [k, members] of result.members.entries()) {
    for (const [j, i] of members.entries()) {
      if (j === 0) egressLoad[i] = (egressLoad[i] as number) - egressOf(order[k] as RenditionInput);
    }
  }
  for (const i of used) streamsLoad[i] = (streamsLoad[i] as number) - 1;

  return {
    streamId: s.id,
    renditions,
    status: reasons.length === 0 ? "active" : "degraded",
    reasons,
    statusMessage: truncate(reasons.join("; "), statusMessageCharsMax),
    cost: result.cost,
    exhaustive: !truncated && !budgetHit,
    searchNodes: nodes,
    spares,
  };
}

function degradedReasons(
  s: StreamInput,
  pkgs: readonly Pkg[],
  eligible: readonly boolean[],
  renditions: readonly RenditionPlan[],
  used: ReadonlySet<number>,
  egressLoad: readonly number[],
  o: AssignmentOptions,
): string[] {
  const R = s.replicationFactor;
  const eligibleCount = eligible.filter(Boolean).length;
  const zoneCount = new Set(pkgs.filter((_, i) => eligible[i]).map((p) => p.zone)).size;
  const why = (): string => {
    // Name the tighter of the two limits.
    if (s.placement.zoneAntiAffinity && zoneCount < R && zoneCount < eligibleCount) {
      return `zone anti-affinity: only ${zoneCount} zone(s) available`;
    }
    if (eligibleCount < R) {
      return `only ${eligibleCount} placeable packager(s) in the allowed regions/zones`;
    }
    if (s.placement.zoneAntiAffinity && zoneCount < R) {
      return `zone anti-affinity: only ${zoneCount} zone(s) available`;
    }
    if (o.packagersPerStreamMax < R) {
      return `at most ${o.packagersPerStreamMax} packagers per stream`;
    }
    return "no capacity (max_streams, egress or packagers per stream)";
  };
  const reasons: string[] = [];
  for (const r of renditions) {
    if (!r.holders) {
      reasons.push(`rendition ${r.renditionId}: no packager available (${why()})`);
      continue;
    }
    const have = 1 + r.holders.replicas.length;
    if (have < R) reasons.push(`rendition ${r.renditionId}: ${have}/${R} replicas (${why()})`);
  }
  for (const i of [...used].sort((a, b) => a - b)) {
    const p = pkgs[i] as Pkg;
    const load = egressLoad[i] as number;
    if (load > p.egressCap) {
      reasons.push(`packager ${p.id}: egress ${load} bps over capacity ${p.egressCap} bps`);
    }
  }
  return reasons;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
