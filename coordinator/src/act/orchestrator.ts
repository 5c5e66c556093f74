/**
 * The handover orchestrator (leader only). Each open handover in the FSM is
 * driven through begun → standby ready → pre-stitched → notified → switched →
 * completed, or aborted with rollback. The FSM is the source of truth: every
 * step reads the committed state, performs idempotent side effects carrying
 * the stream epoch (fencing), and proposes the next state with
 * expected_state (compare-and-set). A new leader resumes every open handover
 * from the log; repeating a step repeats only idempotent effects.
 *
 * Every step has a deadline; a failed or late step aborts the handover and
 * rolls back (the standby is unassigned; the primary keeps serving).
 */
import { randomUUID } from "node:crypto";
import { clone } from "@bufbuild/protobuf";
import { Code, ConnectError, errorMessage } from "../../../common/errors.ts";
import type { Logger } from "../../../common/log.ts";
import {
  type Component,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type Handover,
  HandoverReason,
  HandoverSchema,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import type { Stream } from "../../../proto/gen/understudy/common/v1/stream_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import { isHandoverOpen } from "../fsm/fsm.ts";
import { scoreStandbys } from "../plan/standby.ts";

/** Side effects on other processes; each must be idempotent for a given epoch. */
export interface HandoverEffects {
  /** Makes sure the component's service runs (agent START_SERVICE when needed) and it is HEALTHY. */
  ensureRunning(c: Component, epoch: bigint, signal: AbortSignal): Promise<void>;
  assign(
    c: Component,
    stream: Stream,
    renditionIds: readonly string[],
    role: "primary" | "replica",
    epoch: bigint,
    signal: AbortSignal,
  ): Promise<void>;
  unassign(
    c: Component,
    streamId: string,
    renditionIds: readonly string[],
    epoch: bigint,
  ): Promise<void>;
  /** Copies the last N segments of a rendition from `from` to `to`, verifying checksums. */
  replicate(
    to: Component,
    from: Component,
    streamId: string,
    renditionId: string,
    lastN: number,
    epoch: bigint,
    signal: AbortSignal,
  ): Promise<{ latestMsn: number; verified: boolean; copied: number }>;
  /** Latest MSN the component holds for a rendition (-1 when none). */
  latestMsn(
    c: Component,
    streamId: string,
    renditionId: string,
    signal: AbortSignal,
  ): Promise<number>;
  drain(c: Component, epoch: bigint): Promise<void>;
}

export interface OrchestratorOptions {
  readonly cluster: ClusterHandle;
  readonly effects: HandoverEffects;
  readonly log: Logger;
  /** Deadline of each step. */
  readonly stepDeadlineMs?: number;
  /** Whole-handover deadline written into HandoverBegun. */
  readonly handoverDeadlineMs?: number;
  /** Segments copied to the standby before the switch. */
  readonly replicateLastN?: number;
  /** How many segments after the live edge the switch happens (time for the notice to reach players). */
  readonly switchAheadSegments?: number;
  /** Maximum concurrently driven handovers (bound). */
  readonly concurrentMax?: number;
  /**
   * When false the orchestrator neither starts nor drives handovers: the FSM's
   * handover records are then advanced by hand (operators with their own
   * tooling, tests of the notice path). Default true.
   */
  readonly automatic?: boolean;
}

export interface BeginRequest {
  streamId: string;
  fromComponentId: string;
  toComponentId?: string;
  reason: HandoverReason;
  probability?: number;
  detail?: string;
  requestId?: string;
}

export interface Orchestrator {
  begin(req: BeginRequest): Promise<Handover>;
  /** A prediction above threshold for a component: hand its streams over. */
  onPrediction(componentId: string, probability: number, detail: string): void;
  /** Streams for which a component is the primary origin. */
  streamsServedBy(componentId: string): string[];
  stop(): void;
}

const nextState: Partial<Record<HandoverState, HandoverState>> = {
  [HandoverState.BEGUN]: HandoverState.STANDBY_READY,
  [HandoverState.STANDBY_READY]: HandoverState.PRE_STITCHED,
  [HandoverState.PRE_STITCHED]: HandoverState.NOTIFIED,
  [HandoverState.NOTIFIED]: HandoverState.SWITCHED,
  [HandoverState.SWITCHED]: HandoverState.COMPLETED,
};

export function createOrchestrator(opts: OrchestratorOptions): Orchestrator {
  const { cluster, effects, log } = opts;
  const stepDeadlineMs = opts.stepDeadlineMs ?? 10_000;
  const handoverDeadlineMs = opts.handoverDeadlineMs ?? 60_000;
  const replicateLastN = opts.replicateLastN ?? 3;
  const switchAhead = opts.switchAheadSegments ?? 2;
  const concurrentMax = opts.concurrentMax ?? 64;
  const running = new Map<string, AbortController>();
  let stopped = false;

  const fsm = cluster.fsm;
  const automatic = opts.automatic ?? true;
  /**
   * Acting needs more than leadership: the leader must have applied every
   * entry committed before its term (its no-op committed), or it would act on
   * stale state, e.g. redo the first step of a handover that a previous leader
   * already advanced. `caughtUpTerm` is set after a read barrier in that term.
   */
  let caughtUpTerm = -1;
  const isLeader = () => {
    const l = cluster.leadership();
    return l.isLeader && l.term === caughtUpTerm && !stopped && automatic;
  };

  const primaryOf = (streamId: string): string[] => {
    const a = fsm.assignments(streamId)?.assignments ?? [];
    return [...new Set(a.map((x) => x.primaryPackagerId).filter(Boolean))];
  };
  const holders = (streamId: string): Set<string> => {
    const out = new Set<string>();
    for (const a of fsm.assignments(streamId)?.assignments ?? []) {
      if (a.primaryPackagerId) out.add(a.primaryPackagerId);
      for (const r of a.replicaPackagerIds) out.add(r);
    }
    return out;
  };
  const segmentMs = (s: Stream) => s.spec?.segmentPolicy?.segmentDurationTargetMs || 2000;

  const chooseStandby = (stream: Stream, from: Component): Component | undefined => {
    const load = new Map<string, number>();
    for (const s of fsm.streams())
      for (const id of holders(s.spec?.id ?? "")) load.set(id, (load.get(id) ?? 0) + 1);
    const scored = scoreStandbys({
      from,
      candidates: fsm.components(),
      holdingStream: holders(stream.spec?.id ?? ""),
      streamsAssigned: load,
      recentFailures: new Map(),
      viewerRegion: from.labels?.region ?? "",
      viewerZone: "",
    });
    return scored[0]?.component;
  };

  // FSM views are live objects: callers pass the state they acted on, captured
  // before their side effects, so the compare-and-set means something.
  const propose = async (
    h: { readonly id: string; readonly state: HandoverState },
    state: HandoverState,
    extra: { switchMsn?: bigint; error?: string } = {},
  ) => {
    const r = await cluster.propose({
      op: {
        case: "handoverAdvanced",
        value: {
          handoverId: h.id,
          expectedState: h.state,
          state,
          switchMsn: extra.switchMsn ?? 0n,
          error: extra.error ?? "",
        },
      },
    });
    if (!r.ok) throw new ConnectError(r.message, r.code);
  };

  /**
   * Dual ingest: encoders push to every packager listed on a shard range, so
   * adding the standby there makes new shards reach it too (and removing the
   * old primary after the switch stops them). Retries on an epoch race.
   */
  const updateShardTargets = async (
    streamId: string,
    add: string | undefined,
    remove: string | undefined,
  ) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const map = fsm.shardMap(streamId);
      const stream = fsm.stream(streamId);
      if (!map || !stream) return;
      const ranges = map.ranges.map((r) => {
        const ids = new Set(r.replicaPackagerIds);
        if (add) ids.add(add);
        if (remove) ids.delete(remove);
        return { ...r, replicaPackagerIds: [...ids].sort() };
      });
      const same = ranges.every(
        (r, i) => r.replicaPackagerIds.join() === map.ranges[i]?.replicaPackagerIds.join(),
      );
      if (same) return;
      const res = await cluster.propose({
        op: { case: "setShardMap", value: { streamId, expectedEpoch: stream.epoch, ranges } },
      });
      if (res.ok) return;
      if (res.code !== Code.Aborted) throw new ConnectError(res.message, res.code);
    }
    throw new Error(`shard map of ${streamId} kept changing; gave up adding ${add ?? ""}`);
  };

  /** Runs one step of `h` with its deadline. */
  const step = async (live: Handover, signal: AbortSignal): Promise<void> => {
    const h = { ...live, id: live.id, state: live.state };
    const stream = fsm.stream(h.streamId);
    const from = fsm.component(h.fromComponentId);
    const to = fsm.component(h.toComponentId);
    if (!stream || !to || !from) throw new Error("stream or component vanished");
    const renditions =
      h.renditionIds.length > 0 ? h.renditionIds : (stream.spec?.renditions.map((r) => r.id) ?? []);
    switch (h.state) {
      case HandoverState.BEGUN:
        await effects.ensureRunning(to, h.epoch, signal);
        await effects.assign(to, stream, renditions, "replica", h.epoch, signal);
        await updateShardTargets(h.streamId, to.id, undefined);
        await propose(h, HandoverState.STANDBY_READY);
        return;
      case HandoverState.STANDBY_READY: {
        // Pre-stitch from the primary, or from any other healthy holder when
        // the primary is already gone (reactive path).
        const source =
          from.status === ComponentStatus.HEALTHY || from.status === ComponentStatus.SUSPECT
            ? from
            : [...holders(h.streamId)]
                .map((id) => fsm.component(id))
                .find((c) => c && c.id !== to.id && c.status === ComponentStatus.HEALTHY);
        if (source) {
          for (const r of renditions) {
            const res = await effects.replicate(
              to,
              source,
              h.streamId,
              r,
              replicateLastN,
              h.epoch,
              signal,
            );
            if (!res.verified)
              throw new Error(`replication of ${r} from ${source.id} failed checksum verification`);
          }
        } else {
          log.warn("no healthy source to pre-stitch from; the standby relies on encoder pushes", {
            handover: h.id,
          });
        }
        await propose(h, HandoverState.PRE_STITCHED);
        return;
      }
      case HandoverState.PRE_STITCHED: {
        let edge = -1;
        for (const r of renditions)
          edge = Math.max(edge, await effects.latestMsn(to, h.streamId, r, signal));
        if (edge < 0) throw new Error(`standby ${to.id} holds no segment of ${h.streamId} yet`);
        // The switch point lies ahead so players still fed by a live primary
        // can finish where they are and move at a boundary. A DOWN primary
        // feeds nobody: waiting for it only keeps viewers on a dead origin,
        // so switch at the standby's newest complete segment.
        const ahead = from.status === ComponentStatus.DOWN ? 0 : switchAhead;
        await propose(h, HandoverState.NOTIFIED, { switchMsn: BigInt(edge + ahead) });
        return;
      }
      case HandoverState.NOTIFIED: {
        // Switched once the standby holds the switch segment (players asked for it from there).
        const target = Number(h.switchMsn);
        const deadline =
          Date.now() + Math.max(stepDeadlineMs, (switchAhead + 3) * segmentMs(stream));
        for (;;) {
          let edge = Number.POSITIVE_INFINITY;
          for (const r of renditions)
            edge = Math.min(edge, await effects.latestMsn(to, h.streamId, r, signal));
          if (edge >= target) break;
          if (Date.now() > deadline)
            throw new Error(`standby ${to.id} did not reach switch segment ${target}`);
          await sleep(Math.min(250, segmentMs(stream) / 4), signal);
        }
        await propose(h, HandoverState.SWITCHED);
        return;
      }
      case HandoverState.SWITCHED: {
        // The standby becomes primary from the switch segment on; the old
        // primary leaves the stream's replica set.
        const cur = fsm.assignments(h.streamId)?.assignments ?? [];
        const next = renditions.map((rid) => {
          const a = cur.find((x) => x.renditionId === rid);
          const replicas = new Set([
            ...(a?.replicaPackagerIds ?? []),
            ...(a?.primaryPackagerId ? [a.primaryPackagerId] : []),
          ]);
          replicas.delete(to.id);
          replicas.delete(from.id);
          return {
            renditionId: rid,
            firstMsn: h.switchMsn,
            primaryPackagerId: to.id,
            replicaPackagerIds: [...replicas].sort(),
          };
        });
        const keep = cur.filter((a) => !renditions.includes(a.renditionId));
        const r = await cluster.propose({
          op: {
            case: "setAssignments",
            value: {
              streamId: h.streamId,
              expectedEpoch: stream.epoch,
              assignments: [...keep, ...next],
            },
          },
        });
        if (!r.ok && r.code !== Code.Aborted) throw new ConnectError(r.message, r.code);
        if (!r.ok) return; // epoch moved: re-read and retry this step
        await updateShardTargets(h.streamId, undefined, from.id);
        await propose(h, HandoverState.COMPLETED);
        // The old primary stops serving this stream. Only a drain of the
        // component itself empties the whole node: other streams it serves
        // are not this handover's business.
        const epoch = fsm.handover(h.id)?.epoch ?? h.epoch;
        const cleanup =
          h.reason === HandoverReason.DRAIN
            ? effects.drain(from, epoch)
            : effects.unassign(from, h.streamId, renditions, epoch);
        void cleanup.catch((err) =>
          log.warn("cleanup on the old primary failed (it may be down already)", {
            component: from.id,
            err,
          }),
        );
        return;
      }
      default:
        return;
    }
  };

  const abort = async (h: Handover, error: string) => {
    try {
      await propose({ id: h.id, state: h.state }, HandoverState.ABORTED, { error });
    } catch (err) {
      log.warn("could not record abort", { handover: h.id, err });
      return;
    }
    const to = fsm.component(h.toComponentId);
    const stream = fsm.stream(h.streamId);
    if (to && stream) {
      const renditions =
        h.renditionIds.length > 0
          ? h.renditionIds
          : (stream.spec?.renditions.map((r) => r.id) ?? []);
      if (!holders(h.streamId).has(to.id)) {
        await effects.unassign(to, h.streamId, renditions, stream.epoch).catch(() => undefined);
      }
    }
  };

  const drive = (id: string) => {
    if (running.has(id) || !isLeader()) return;
    if (running.size >= concurrentMax) {
      log.warn("handover concurrency bound reached; will resume later", {
        handover: id,
        concurrentMax,
      });
      return;
    }
    const ac = new AbortController();
    running.set(id, ac);
    void (async () => {
      try {
        for (;;) {
          const live = fsm.handover(id);
          if (!live || !isHandoverOpen(live) || !isLeader()) return;
          // FSM views are live objects: act on a copy of the state read now.
          const h = clone(HandoverSchema, live);
          if (
            h.deadlineUnixMs > 0n &&
            BigInt(Math.trunc(cluster.clock.nowMs())) > h.deadlineUnixMs
          ) {
            await abort(h, "handover deadline passed");
            return;
          }
          const stepAc = new AbortController();
          const timer = setTimeout(
            () =>
              stepAc.abort(
                new Error(`step ${HandoverState[h.state]} exceeded ${stepDeadlineMs} ms`),
              ),
            stepDeadlineMs,
          );
          const onStop = () => stepAc.abort(new Error("orchestrator stopped"));
          ac.signal.addEventListener("abort", onStop);
          const stepStartMs = cluster.clock.monotonicMs();
          try {
            await step(h, stepAc.signal);
            const now = fsm.handover(id);
            if (now && now.state !== h.state) {
              // One line per transition this leader committed: with the
              // other nodes' logs it shows who drove which step, and how long it took.
              log.info("handover step done", {
                handover: id,
                from: HandoverState[h.state],
                to: HandoverState[now.state],
                epoch: Number(now.epoch),
                ...(now.switchMsn > 0n ? { switchMsn: Number(now.switchMsn) } : {}),
                stepMs: Math.round(cluster.clock.monotonicMs() - stepStartMs),
              });
            }
          } catch (err) {
            if (!isLeader()) return; // the next leader resumes from the log
            // A compare-and-set that lost means the state moved: re-read, go on.
            if (err instanceof ConnectError && err.code === Code.Aborted) continue;
            const latest = fsm.handover(id);
            if (latest && isHandoverOpen(latest) && latest.state === h.state) {
              log.warn("handover step failed; aborting", {
                handover: id,
                state: HandoverState[h.state],
                err,
              });
              await abort(
                latest,
                `${HandoverState[h.state]}: ${stepAc.signal.aborted ? String(stepAc.signal.reason) : errorMessage(err)}`,
              );
              return;
            }
          } finally {
            clearTimeout(timer);
            ac.signal.removeEventListener("abort", onStop);
          }
          const after = fsm.handover(id);
          if (after && after.state === h.state && nextState[h.state] !== undefined) {
            // Nothing moved (e.g. an epoch conflict); do not spin.
            await sleep(50, ac.signal);
          }
        }
      } catch (err) {
        log.warn("handover driver stopped", { handover: id, err });
      } finally {
        running.delete(id);
      }
    })();
  };

  const resumeAll = () => {
    for (const h of fsm.handovers()) {
      if (!isHandoverOpen(h)) continue;
      log.info("resuming open handover from the log", {
        handover: h.id,
        state: HandoverState[h.state],
      });
      drive(h.id);
    }
  };

  const streamsServedBy = (componentId: string) =>
    fsm
      .streams()
      .map((s) => s.spec?.id ?? "")
      .filter((sid) => primaryOf(sid).includes(componentId));

  const begin = async (req: BeginRequest): Promise<Handover> => {
    if (!isLeader()) throw new ConnectError("not the leader", Code.Unavailable);
    const stream = fsm.stream(req.streamId);
    const from = fsm.component(req.fromComponentId);
    if (!stream) throw new ConnectError(`stream "${req.streamId}" not found`, Code.NotFound);
    if (!from)
      throw new ConnectError(`component "${req.fromComponentId}" not found`, Code.NotFound);
    const to = req.toComponentId ? fsm.component(req.toComponentId) : chooseStandby(stream, from);
    if (!to) {
      throw new ConnectError(
        `no healthy standby for stream "${req.streamId}" (needs a HEALTHY packager/origin other than "${from.id}")`,
        Code.FailedPrecondition,
      );
    }
    const id = `ho-${req.requestId ?? randomUUID()}`.slice(0, 64);
    const r = await cluster.propose(
      {
        op: {
          case: "handoverBegun",
          value: {
            handoverId: id,
            streamId: req.streamId,
            fromComponentId: from.id,
            toComponentId: to.id,
            reason: req.reason,
            probability: req.probability ?? 0,
            expectedEpoch: 0n,
            deadlineUnixMs: BigInt(Math.trunc(cluster.clock.nowMs() + handoverDeadlineMs)),
            renditionIds: [],
            detail: req.detail ?? "",
          },
        },
      },
      req.requestId ? { requestId: `begin-${req.requestId}` } : {},
    );
    if (!r.ok) throw new ConnectError(r.message, r.code);
    const h = fsm.handover(id);
    if (!h) throw new ConnectError(`handover ${id} missing after commit`, Code.Internal);
    log.info("handover begun", {
      handover: id,
      stream: req.streamId,
      from: from.id,
      to: to.id,
      reason: HandoverReason[req.reason],
      probability: req.probability ?? 0,
    });
    drive(id);
    return h;
  };

  const beginFor = (
    componentId: string,
    reason: HandoverReason,
    probability: number,
    detail: string,
  ) => {
    if (!isLeader()) {
      log.info("not handing over yet: this leader has not caught up with the log", {
        component: componentId,
        detail,
      });
      return;
    }
    for (const sid of streamsServedBy(componentId)) {
      const open = fsm.handovers().some((h) => h.streamId === sid && isHandoverOpen(h));
      if (open) continue;
      begin({ streamId: sid, fromComponentId: componentId, reason, probability, detail }).catch(
        (err) => log.warn("could not begin handover", { stream: sid, component: componentId, err }),
      );
    }
  };

  const offChange = fsm.onChange((changes) => {
    if (!isLeader()) return;
    for (const c of changes) {
      if (c.kind === "handover") drive(c.id);
      if (c.kind === "component" && !c.deleted) {
        const comp = fsm.component(c.id);
        // Reactive path: a primary declared DOWN is handed over at once.
        if (comp?.status === ComponentStatus.DOWN)
          beginFor(c.id, HandoverReason.DETECTED_FAILURE, 1, "declared down");
        if (comp?.status === ComponentStatus.DRAINING)
          beginFor(c.id, HandoverReason.DRAIN, 0, "drain requested");
      }
    }
  });
  const catchUp = (term: number) => {
    cluster
      .readBarrier()
      .then(() => {
        const l = cluster.leadership();
        if (!l.isLeader || l.term !== term) {
          log.info("leadership moved on before the orchestrator caught up", { term, now: l.term });
          return;
        }
        caughtUpTerm = term;
        log.info("orchestrator active", { term, automatic });
        resumeAll();
      })
      .catch((err) =>
        log.warn("leader could not confirm it is caught up; handovers wait", { err }),
      );
  };
  const offLeader = cluster.onLeadershipChange((l) => {
    if (l.isLeader) catchUp(l.term);
    else for (const ac of running.values()) ac.abort();
  });
  if (cluster.leadership().isLeader) catchUp(cluster.leadership().term);

  return {
    begin,
    onPrediction(componentId, probability, detail) {
      beginFor(componentId, HandoverReason.PREDICTED, probability, detail);
    },
    streamsServedBy,
    stop() {
      stopped = true;
      offChange();
      offLeader();
      for (const ac of running.values()) ac.abort();
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
