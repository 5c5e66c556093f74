/**
 * The leader's failure detector: drives the pure DetectorSet with a timer and
 * turns liveness into replicated component status (UpdateComponentStatus).
 *
 * Contracts:
 * - Only the leader proposes. On gaining leadership every registered
 *   component gets a tracker with `graceMs` of grace (agents re-stream to the
 *   new leader); on losing it the timer stops and trackers are dropped.
 * - Level-triggered: the desired status is derived from the tracker state
 *   and the committed status, on every transition and in a periodic sweep,
 *   so a lost proposal or a leader change converges without bookkeeping.
 * - The detector owns only the statuses it wrote: reasons it proposes start
 *   with LIVENESS_REASON_PREFIX, and it moves SUSPECT/DOWN back to HEALTHY
 *   only when the committed reason carries that prefix (a SUSPECT from the
 *   predictor, or a DOWN from failing probes, is not overridden). It never
 *   touches DRAINING/DRAINED: those belong to the drain/handover workflow,
 *   which can read `livenessOf` itself.
 * - At most `proposeConcurrencyMax` proposals in flight; further components
 *   wait in a set (bounded by the number of components).
 */
import type { Clock } from "../../../common/clock.ts";
import { errorMessage } from "../../../common/errors.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type Component,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { ComponentCluster } from "../ingest/index.ts";
import { createDetectorSet, type DetectorSet, type DetectorSetOptions } from "./detector-set.ts";
import type { LivenessState, LivenessVerdict } from "./liveness.ts";

export const LIVENESS_REASON_PREFIX = "liveness: ";

export interface FailureDetectorOptions {
  cluster: ComponentCluster;
  clock: Clock;
  log: Logger;
  detector?: Partial<DetectorSetOptions>;
  /** Grace after gaining leadership before silence counts. Default 3000. */
  graceMs?: number;
  /** Default 32. */
  proposeConcurrencyMax?: number;
  /** Default 2000. */
  proposeTimeoutMs?: number;
  /** Full reconcile sweep period. Default 1000. */
  reconcileIntervalMs?: number;
  /** Run tick() on a timer (default true). Tests pass false and call tick(). */
  autoTick?: boolean;
}

export interface FailureDetectorStats {
  leading: boolean;
  tracked: number;
  stallTotalMs: number;
  proposalsInFlight: number;
  proposalsQueued: number;
  proposed: Record<"healthy" | "suspect" | "down", number>;
  proposalsFailed: number;
  /** Liveness state counts over tracked components. */
  states: Record<LivenessState, number>;
}

export interface FailureDetector {
  /** Subscribes to leadership changes and begins at once if this node leads. */
  start(): void;
  /** Stops the timer and unsubscribes; in-flight proposals finish on their own. */
  close(): void;
  /** A liveness proof for a component (wire ingest's onLiveness here). */
  observe(componentId: string, heartbeatIntervalMs?: number): void;
  /** One evaluation (the timer calls it every tickIntervalMs). */
  tick(): void;
  livenessOf(componentId: string): LivenessVerdict | undefined;
  stats(): FailureDetectorStats;
  /** Resolves when no proposal is in flight or queued (tests, shutdown). */
  idle(): Promise<void>;
}

interface Desired {
  status: ComponentStatus;
  reason: string;
}

/** What the committed status should become for a liveness verdict; undefined = leave it. */
export function desiredStatus(c: Component, v: LivenessVerdict): Desired | undefined {
  const s = c.status;
  if (s === ComponentStatus.DRAINING || s === ComponentStatus.DRAINED) return undefined;
  const mine = c.statusReason.startsWith(LIVENESS_REASON_PREFIX);
  const silence = `${Math.round(v.silenceMs)} ms, phi ${v.phi.toFixed(1)}`;
  switch (v.state) {
    case "down":
      if (s === ComponentStatus.DOWN) return undefined;
      return {
        status: ComponentStatus.DOWN,
        reason: `${LIVENESS_REASON_PREFIX}no heartbeat for ${silence} (${v.missed} missed)`,
      };
    case "suspect":
      if (s !== ComponentStatus.HEALTHY && s !== ComponentStatus.UNKNOWN) return undefined;
      return {
        status: ComponentStatus.SUSPECT,
        reason: `${LIVENESS_REASON_PREFIX}missed ${v.missed} heartbeats (${silence})`,
      };
    case "alive":
      if (s === ComponentStatus.UNKNOWN || s === ComponentStatus.UNSPECIFIED) {
        return { status: ComponentStatus.HEALTHY, reason: `${LIVENESS_REASON_PREFIX}reporting` };
      }
      if ((s === ComponentStatus.DOWN || s === ComponentStatus.SUSPECT) && mine) {
        return {
          status: ComponentStatus.HEALTHY,
          reason: `${LIVENESS_REASON_PREFIX}heartbeats resumed`,
        };
      }
      return undefined;
    case "unknown":
      return undefined;
  }
}

export function createFailureDetector(opts: FailureDetectorOptions): FailureDetector {
  const { cluster, clock, log } = opts;
  const graceMs = opts.graceMs ?? 3000;
  const concurrencyMax = opts.proposeConcurrencyMax ?? 32;
  const proposeTimeoutMs = opts.proposeTimeoutMs ?? 2000;
  const reconcileIntervalMs = opts.reconcileIntervalMs ?? 1000;
  const set: DetectorSet = createDetectorSet(opts.detector);
  const tickIntervalMs = opts.detector?.tickIntervalMs ?? 50;

  let leading = false;
  let term = -1;
  let unsubscribe: (() => void) | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastSweepMs = Number.NEGATIVE_INFINITY;
  const inFlight = new Set<string>();
  const queued = new Set<string>();
  const idleWaiters: Array<() => void> = [];
  const proposed = { healthy: 0, suspect: 0, down: 0 };
  let proposalsFailed = 0;

  const notifyIdle = () => {
    if (inFlight.size > 0 || queued.size > 0) return;
    for (const w of idleWaiters.splice(0)) w();
  };

  const begin = (newTerm: number) => {
    leading = true;
    term = newTerm;
    queued.clear();
    set.begin(
      clock.monotonicMs(),
      graceMs,
      cluster.fsm.components().map((c) => c.id),
    );
    lastSweepMs = clock.monotonicMs();
    if (opts.autoTick !== false && timer === undefined) {
      timer = setInterval(() => tickSafe(), tickIntervalMs);
      timer.unref();
    }
    log.info("failure detector started", { term, tracked: set.size, graceMs });
  };

  const end = () => {
    if (!leading) return;
    leading = false;
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    queued.clear();
    set.begin(clock.monotonicMs(), graceMs, []);
    notifyIdle();
    log.info("failure detector stopped", { term });
  };

  const pump = () => {
    for (const id of [...queued]) {
      if (inFlight.size >= concurrencyMax) return;
      // Still in flight: stays queued and is retried when that one settles.
      if (inFlight.has(id)) continue;
      queued.delete(id);
      reconcile(id);
    }
    notifyIdle();
  };

  const reconcile = (id: string) => {
    if (!leading) return;
    if (inFlight.has(id)) {
      queued.add(id);
      return;
    }
    const v = set.verdict(id);
    const c = cluster.fsm.component(id);
    if (v === undefined) return;
    if (c === undefined) {
      set.remove(id);
      return;
    }
    const want = desiredStatus(c, v);
    if (want === undefined) return;
    if (inFlight.size >= concurrencyMax) {
      queued.add(id);
      return;
    }
    inFlight.add(id);
    const proposedTerm = term;
    let committed = false;
    cluster
      .propose(
        {
          op: {
            case: "updateComponentStatus",
            value: {
              componentId: id,
              status: want.status,
              reason: want.reason,
              atUnixMs: BigInt(Math.round(clock.nowMs())),
            },
          },
        },
        { timeoutMs: proposeTimeoutMs },
      )
      .then(
        (r) => {
          committed = r.ok;
          if (r.ok) {
            const key =
              want.status === ComponentStatus.DOWN
                ? "down"
                : want.status === ComponentStatus.SUSPECT
                  ? "suspect"
                  : "healthy";
            proposed[key]++;
            log.info("component status proposed", {
              componentId: id,
              status: key,
              reason: want.reason,
            });
          } else {
            proposalsFailed++;
            log.warn("component status rejected", {
              componentId: id,
              code: r.code,
              message: r.message,
            });
          }
        },
        (err: unknown) => {
          proposalsFailed++;
          // Expected around leader changes; the next sweep (or the next
          // leader's detector) retries.
          log.warn("component status proposal failed", { componentId: id, err: errorMessage(err) });
        },
      )
      .finally(() => {
        inFlight.delete(id);
        // After a commit the state may have moved on meanwhile: look again.
        // After a failure only the periodic sweep retries (no hot loop).
        if (committed && leading && term === proposedTerm && set.has(id)) queued.add(id);
        pump();
      });
  };

  const tick = () => {
    if (!leading) return;
    const now = clock.monotonicMs();
    for (const tr of set.tick(now)) reconcile(tr.componentId);
    if (now - lastSweepMs >= reconcileIntervalMs) {
      lastSweepMs = now;
      for (const id of set.ids()) if (!inFlight.has(id)) reconcile(id);
    }
  };

  const tickSafe = () => {
    try {
      tick();
    } catch (err) {
      log.error("failure detector tick failed", { err });
    }
  };

  return {
    start() {
      if (unsubscribe !== undefined) return;
      unsubscribe = cluster.onLeadershipChange((l) => {
        if (l.isLeader && (!leading || l.term !== term)) begin(l.term);
        else if (!l.isLeader) end();
      });
      const l = cluster.leadership();
      if (l.isLeader) begin(l.term);
    },
    close() {
      unsubscribe?.();
      unsubscribe = undefined;
      end();
    },
    observe(componentId, heartbeatIntervalMs) {
      if (!leading) return;
      set.arrival(componentId, clock.monotonicMs(), heartbeatIntervalMs);
    },
    tick,
    livenessOf: (id) => set.verdict(id),
    stats() {
      const states: Record<LivenessState, number> = { unknown: 0, alive: 0, suspect: 0, down: 0 };
      for (const id of set.ids()) {
        const v = set.verdict(id);
        if (v) states[v.state]++;
      }
      return {
        leading,
        tracked: set.size,
        stallTotalMs: set.stallTotalMs,
        proposalsInFlight: inFlight.size,
        proposalsQueued: queued.size,
        proposed: { ...proposed },
        proposalsFailed,
        states,
      };
    },
    idle() {
      if (inFlight.size === 0 && queued.size === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
