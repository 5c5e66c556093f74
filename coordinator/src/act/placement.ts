/**
 * The leader's placement loop: every round it plans assignments, shard maps
 * and segment granularity for every stream (coordinator/src/plan, pure),
 * proposes what changed (compare-and-set on the stream epoch; a segment
 * duration change on the schedule version, for a boundary ahead), and makes
 * the packager-nodes match the committed assignments with idempotent
 * PackagerService.Assign calls carrying the epoch. Streams with an open
 * handover belong to the orchestrator and are left alone.
 *
 * A committed segment duration change reaches the encoders through
 * ChainService.WatchChain (a stream change) and StreamService.GetStream (the
 * schedule); packagers need nothing: they number segments by the MSNs the
 * encoders push and close each at the duration its parts declare.
 *
 * Rounds run on a timer and at once on every change that can call for a new
 * plan (a stream or component change, a handover closing). A change that
 * arrives while a round runs is not dropped: one more round follows.
 *
 * Encoder loss: when the encoder of the shard being produced now is not
 * usable, the round first reads the holders' newest media of the stream
 * (PackagerService.Inventory, bounded by `inventoryTimeoutMs`) so the shard
 * planner can start the replacement at the first shard they lack rather than
 * at the next boundary (see plan/shard-planner.ts, rewind). Holders that do
 * not answer in time are left out; with no answer the map moves at the next
 * boundary as before.
 */
import {
  createGrpcClient,
  type GrpcClient,
  type GrpcClientOptions,
} from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type Component,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import { SegmentKind } from "../../../proto/gen/understudy/common/v1/segment_pb.ts";
import type { Stream } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import { PackagerService } from "../../../proto/gen/understudy/packager/v1/packager_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import { isHandoverOpen } from "../fsm/fsm.ts";
import {
  defaultRoundOptions,
  type NewestMedia,
  planRound,
  type RoundStream,
} from "../plan/plan-round.ts";
import { shardRangesFromProto } from "../plan/proto-adapter.ts";
import type { GranularityOptions } from "../plan/segment-granularity.ts";
import { isPlaceable } from "../plan/types.ts";
import type { HandoverEffects } from "./orchestrator.ts";

/**
 * The newest object a packager holds of each of a stream's renditions
 * (renditions it holds nothing of are absent). Rejects when the packager
 * cannot be asked.
 */
export type NewestMediaReader = (
  packager: Component,
  streamId: string,
  renditionIds: readonly string[],
  signal: AbortSignal,
) => Promise<readonly NewestMedia[]>;

export interface PlacementOptions {
  readonly cluster: ClusterHandle;
  readonly effects: Pick<HandoverEffects, "assign">;
  readonly log: Logger;
  /** Period of a planning round. */
  readonly intervalMs?: number;
  /** Segment granularity thresholds and timing (config placement.granularity). */
  readonly granularity?: GranularityOptions;
  /**
   * When the handover orchestrator runs, a stream whose primary just failed
   * is its job (a prepared standby, a switch point, notices); placement waits
   * this long after the primary's status change before replanning it itself
   * (e.g. when no standby could be found). 0 = never wait.
   */
  readonly deferPrimaryFailuresMs?: number;
  /** Viewer sessions per rendition of a stream (client reports), for demand-aware planning. */
  readonly sessionsByRendition?: (streamId: string, nowMs: number) => ReadonlyMap<string, number>;
  /** Reads a holder's newest media on encoder loss; default: PackagerService.Inventory. */
  readonly newestMedia?: NewestMediaReader;
  /** Bound on waiting for the holders' inventories in one round. */
  readonly inventoryTimeoutMs?: number;
}

export interface PlacementLoop {
  /** One round now (tests; the timer calls it). */
  round(): Promise<void>;
  stop(): void;
}

export function currentShardOf(stream: Stream, nowMs: number): number {
  const origin = Number(stream.spec?.timelineOriginUnixMs || stream.createdUnixMs);
  const shardMs = stream.spec?.shardDurationMs || 500;
  return Math.floor((nowMs - origin) / shardMs);
}

/**
 * PackagerService.Inventory for the newest object of each rendition (one
 * entry each: the newest part of the segment in progress, else the newest
 * complete segment). One client per control address, closed by `close()`.
 */
export function createInventoryReader(clientOptions: GrpcClientOptions = {}): {
  read: NewestMediaReader;
  close(): void;
} {
  const clients = new Map<string, GrpcClient<typeof PackagerService>>();
  const clientFor = (address: string) => {
    let c = clients.get(address);
    if (!c) {
      c = createGrpcClient(PackagerService, address, clientOptions);
      clients.set(address, c);
    }
    return c;
  };
  return {
    async read(packager, streamId, renditionIds, signal) {
      const client = clientFor(packager.controlAddress);
      const answers = await Promise.all(
        renditionIds.map((renditionId) =>
          client.inventory({ streamId, renditionId, maxEntries: 1 }, { signal }),
        ),
      );
      const out: NewestMedia[] = [];
      for (const [k, a] of answers.entries()) {
        const ref = a.segments[0];
        if (!ref || (ref.kind !== SegmentKind.PART && ref.kind !== SegmentKind.SEGMENT)) continue;
        out.push({
          packagerId: packager.id,
          renditionId: renditionIds[k] as string,
          msn: Number(ref.msn),
          part: ref.kind === SegmentKind.PART ? ref.partIndex : undefined,
        });
      }
      return out;
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

export function createPlacementLoop(opts: PlacementOptions): PlacementLoop {
  const { cluster, log } = opts;
  const fsm = cluster.fsm;
  const inventoryTimeoutMs = opts.inventoryTimeoutMs ?? 500;
  const ownReader = opts.newestMedia ? undefined : createInventoryReader();
  const newestMedia = opts.newestMedia ?? (ownReader as { read: NewestMediaReader }).read;
  let caughtUpTerm = -1;
  let stopped = false;
  let running = false;
  /** A round was asked for while one ran: run once more when it ends. */
  let again = false;
  /** `${packager}|${stream}` → signature of the last Assign that succeeded. */
  const applied = new Map<string, string>();

  const leading = () => {
    const l = cluster.leadership();
    return l.isLeader && l.term === caughtUpTerm && !stopped;
  };

  const reconcilePackagers = async () => {
    for (const s of fsm.streams()) {
      const id = s.spec?.id ?? "";
      if (fsm.handovers().some((h) => h.streamId === id && isHandoverOpen(h))) continue;
      const rows = fsm.assignments(id)?.assignments ?? [];
      const byPackager = new Map<string, { primary: string[]; replica: string[] }>();
      for (const r of rows) {
        if (r.lastMsn !== undefined) continue; // closed history row
        const add = (pkg: string, role: "primary" | "replica") => {
          if (!pkg) return;
          let e = byPackager.get(pkg);
          if (!e) {
            e = { primary: [], replica: [] };
            byPackager.set(pkg, e);
          }
          e[role].push(r.renditionId);
        };
        add(r.primaryPackagerId, "primary");
        for (const p of r.replicaPackagerIds) add(p, "replica");
      }
      for (const [pkg, roles] of byPackager) {
        const c = fsm.component(pkg);
        if (!c || c.status !== ComponentStatus.HEALTHY || !c.controlAddress) continue;
        for (const role of ["primary", "replica"] as const) {
          if (roles[role].length === 0) continue;
          const key = `${pkg}|${id}|${role}`;
          // The spec version too: an operator's update (e.g. a new segment
          // target) reaches the packagers without waiting for an epoch bump.
          const sig = `${s.epoch}|${s.version}|${c.statusChangedUnixMs}|${roles[role].join(",")}`;
          if (applied.get(key) === sig) continue;
          try {
            await opts.effects.assign(c, s, roles[role], role, s.epoch, AbortSignal.timeout(5000));
            applied.set(key, sig);
          } catch (err) {
            log.warn("assign to packager failed; retrying next round", {
              packager: pkg,
              stream: id,
              err,
            });
          }
        }
      }
    }
  };

  /**
   * The holders' newest media of a stream whose current shard's encoder is
   * lost, or undefined when its encoder is fine (nothing to read).
   */
  const holdersNewestOf = async (
    stream: Stream,
    currentShard: number,
  ): Promise<NewestMedia[] | undefined> => {
    const id = stream.spec?.id ?? "";
    const lost = shardRangesFromProto(fsm.shardMap(id)?.ranges).filter(
      (r) =>
        (r.lastShard === undefined || r.lastShard >= currentShard) &&
        !isPlaceable(fsm.component(r.encoderId)?.status ?? ComponentStatus.UNSPECIFIED),
    );
    if (currentShard < 0 || lost.length === 0) return undefined;
    const holders = [...new Set(lost.flatMap((r) => r.replicaPackagerIds))]
      .map((pid) => fsm.component(pid))
      .filter(
        (c): c is Component =>
          c !== undefined && c.status === ComponentStatus.HEALTHY && c.controlAddress !== "",
      );
    const renditionIds = stream.spec?.renditions.map((r) => r.id) ?? [];
    const signal = AbortSignal.timeout(inventoryTimeoutMs);
    const answers = await Promise.allSettled(
      holders.map((c) => newestMedia(c, id, renditionIds, signal)),
    );
    const out: NewestMedia[] = [];
    for (const [k, a] of answers.entries()) {
      if (a.status === "fulfilled") out.push(...a.value);
      else
        log.warn("holder inventory unavailable; its media is not counted for the rewind", {
          stream: id,
          packager: holders[k]?.id,
          err: a.reason,
        });
    }
    return out;
  };

  const round = async (): Promise<void> => {
    if (!leading()) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    try {
      const now = cluster.clock.nowMs();
      const deferMs = opts.deferPrimaryFailuresMs ?? 0;
      const primaryJustFailed = (id: string) => {
        if (deferMs <= 0) return false;
        for (const a of fsm.assignments(id)?.assignments ?? []) {
          if (a.lastMsn !== undefined) continue;
          const p = fsm.component(a.primaryPackagerId);
          if (
            p &&
            (p.status === ComponentStatus.DOWN || p.status === ComponentStatus.DRAINING) &&
            now - Number(p.statusChangedUnixMs) < deferMs
          ) {
            return true;
          }
        }
        return false;
      };
      const newest = await Promise.all(
        fsm.streams().map((stream) => holdersNewestOf(stream, currentShardOf(stream, now))),
      );
      if (!leading()) return;
      // The inventories were read from the state before the await; plan from the state now.
      const byStream = new Map(fsm.streams().map((st, k) => [st.spec?.id ?? "", newest[k]]));
      const streams: RoundStream[] = fsm.streams().map((stream) => {
        const id = stream.spec?.id ?? "";
        return {
          stream,
          assignments: fsm.assignments(id),
          shardMap: fsm.shardMap(id),
          // Leave it to the orchestrator while it hands the stream over.
          handoverOpen:
            fsm.handovers().some((h) => h.streamId === id && isHandoverOpen(h)) ||
            primaryJustFailed(id),
          runtime: {
            currentShard: currentShardOf(stream, now),
            sessionsByRendition: opts.sessionsByRendition?.(id, now),
            holdersNewest: byStream.get(id),
          },
        };
      });
      const plan = planRound(
        { components: fsm.components(), streams },
        opts.granularity ? { ...defaultRoundOptions, granularity: opts.granularity } : undefined,
      );
      for (const sp of plan.streams) {
        for (const cmd of sp.commands) {
          if (!leading()) return;
          const r = await cluster.propose(cmd.command, { requestId: cmd.requestId });
          if (!r.ok) {
            log.debug("placement command refused; replanning next round", {
              stream: sp.streamId,
              err: r.message,
            });
            break;
          }
          const g = sp.granularity;
          log.info("placement committed", {
            stream: sp.streamId,
            kind: cmd.kind,
            status: sp.status,
            ...(cmd.kind === "set-shard-map" && sp.shard?.notes.length
              ? { notes: sp.shard.notes }
              : {}),
            ...(cmd.kind === "set-segment-schedule" && g?.kind === "change"
              ? {
                  segmentDurationMs: g.segmentDurationMs,
                  sinceMsn: g.effectiveMsn,
                  sinceShard: g.effectiveShard,
                  reason: g.reason,
                }
              : {}),
          });
        }
      }
      await reconcilePackagers();
    } catch (err) {
      log.warn("placement round failed", { err });
    } finally {
      running = false;
      if (again && !stopped) void round();
    }
  };

  const timer = setInterval(() => void round(), opts.intervalMs ?? 1000);
  // Acting needs the predecessors' log applied (the no-op of this term committed).
  const catchUp = (term: number) => {
    cluster
      .readBarrier()
      .then(() => {
        if (cluster.leadership().term === term) caughtUpTerm = term;
        void round();
      })
      .catch(() => undefined);
  };
  const offLeader = cluster.onLeadershipChange((l) => {
    if (!l.isLeader) {
      applied.clear();
      return;
    }
    catchUp(l.term);
  });
  // Started on a node that already leads (no change event will come).
  if (cluster.leadership().isLeader) catchUp(cluster.leadership().term);
  const offChange = fsm.onChange((changes) => {
    const replan = changes.some(
      (c) =>
        c.kind === "stream" ||
        c.kind === "component" ||
        // A closed handover hands the stream back: restore its replicas now.
        (c.kind === "handover" && !isOpen(c.id)),
    );
    if (replan) void round();
  });
  const isOpen = (handoverId: string) => {
    const h = fsm.handover(handoverId);
    return h !== undefined && isHandoverOpen(h);
  };
  return {
    round,
    stop() {
      stopped = true;
      clearInterval(timer);
      offLeader();
      offChange();
      ownReader?.close();
    },
  };
}
