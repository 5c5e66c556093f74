/**
 * The leader's placement loop: every round it plans assignments, shard maps
 * and segment granularity for every stream (coordinator/src/plan, pure),
 * proposes what changed (compare-and-set on the stream epoch), and makes the
 * packager-nodes match the committed assignments with idempotent
 * PackagerService.Assign calls carrying the epoch. Streams with an open
 * handover belong to the orchestrator and are left alone.
 */
import type { Logger } from "../../../common/log.ts";
import { ComponentStatus } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { Stream } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import { isHandoverOpen } from "../fsm/fsm.ts";
import { planRound, type RoundStream } from "../plan/plan-round.ts";
import type { HandoverEffects } from "./orchestrator.ts";

export interface PlacementOptions {
  readonly cluster: ClusterHandle;
  readonly effects: Pick<HandoverEffects, "assign">;
  readonly log: Logger;
  /** Period of a planning round. */
  readonly intervalMs?: number;
  /**
   * When the handover orchestrator runs, a stream whose primary just failed
   * is its job (a prepared standby, a switch point, notices); placement waits
   * this long after the primary's status change before replanning it itself
   * (e.g. when no standby could be found). 0 = never wait.
   */
  readonly deferPrimaryFailuresMs?: number;
  /** Viewer sessions per rendition of a stream (client reports), for demand-aware planning. */
  readonly sessionsByRendition?: (streamId: string, nowMs: number) => ReadonlyMap<string, number>;
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

export function createPlacementLoop(opts: PlacementOptions): PlacementLoop {
  const { cluster, log } = opts;
  const fsm = cluster.fsm;
  let caughtUpTerm = -1;
  let stopped = false;
  let running = false;
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
          const sig = `${s.epoch}|${c.statusChangedUnixMs}|${roles[role].join(",")}`;
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

  const round = async () => {
    if (running || !leading()) return;
    running = true;
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
          },
        };
      });
      const plan = planRound({ components: fsm.components(), streams });
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
          log.info("placement committed", {
            stream: sp.streamId,
            kind: cmd.kind,
            status: sp.status,
          });
        }
      }
      await reconcilePackagers();
    } catch (err) {
      log.warn("placement round failed", { err });
    } finally {
      running = false;
    }
  };

  const timer = setInterval(() => void round(), opts.intervalMs ?? 1000);
  const offLeader = cluster.onLeadershipChange((l) => {
    if (!l.isLeader) {
      applied.clear();
      return;
    }
    cluster
      .readBarrier()
      .then(() => {
        if (cluster.leadership().term === l.term) caughtUpTerm = l.term;
        void round();
      })
      .catch(() => undefined);
  });
  const offChange = fsm.onChange((changes) => {
    if (changes.some((c) => c.kind === "stream" || c.kind === "component")) void round();
  });
  return {
    round,
    stop() {
      stopped = true;
      clearInterval(timer);
      offLeader();
      offChange();
    },
  };
}
