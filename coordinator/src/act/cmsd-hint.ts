/**
 * Leader-only: while a handover is under way (NOTIFIED or SWITCHED: viewers
 * have been told where to go and from which MSN), the old primary's playback
 * responses carry a CMSD handover hint (PackagerService.SetHandoverHint; keys
 * in packager-node/README.md). At COMPLETED or ABORTED the hint is cleared.
 *
 * - Desired state comes from the committed FSM only, so a new leader (once
 *   caught up with the log: read barrier in its term) re-derives it and
 *   resumes: it re-sets hints of handovers under way and clears those of
 *   handovers that ended recently (a previous leader may have set them).
 * - Every call carries the handover's epoch and the leader's term; the
 *   packager refuses older ones, so a late set cannot undo a clear.
 * - Hints expire on the packager (ttlMs) unless renewed every
 *   renewIntervalMs, so a hint never outlives a leader that stopped acting.
 * - Calls are idempotent; each is retried a bounded number of times with
 *   exponential backoff, and only for errors a retry can fix.
 */

import { Code } from "../../../common/errors.ts";
import type { GrpcClientOptions } from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import type { Component } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import {
  type Handover,
  HandoverReason,
  HandoverState,
} from "../../../proto/gen/understudy/common/v1/handover_pb.ts";
import type { ClusterHandle } from "../api/cluster-handle.ts";
import { createPackagerClients } from "./effects.ts";

export interface HintSet {
  streamId: string;
  handoverId: string;
  epoch: bigint;
  toComponentId: string;
  toBaseUrl: string;
  switchMsn: bigint;
  duress: boolean;
  renditionIds: readonly string[];
  ttlMs: number;
}

export interface HintClear {
  streamId: string;
  handoverId: string;
  epoch: bigint;
}

/** The PackagerService calls (replaceable in tests); `term` is the leader term to send. */
export interface CmsdHintCalls {
  set(c: Component, hint: HintSet, term: bigint, signal: AbortSignal): Promise<void>;
  clear(c: Component, hint: HintClear, term: bigint, signal: AbortSignal): Promise<void>;
  close(): void;
}

export interface CmsdHintOptions {
  readonly cluster: ClusterHandle;
  readonly log: Logger;
  /** Hint lifetime on the packager without renewal (packager bounds: 1000–600000). */
  readonly ttlMs?: number;
  /** Renewal period while a handover is under way; well below ttlMs. */
  readonly renewIntervalMs?: number;
  /** Attempts per call (first try included). */
  readonly attemptsMax?: number;
  /** Backoff before the second attempt; doubles up to backoffMaxMs. */
  readonly backoffMs?: number;
  readonly backoffMaxMs?: number;
  /** Deadline of one RPC. */
  readonly rpcTimeoutMs?: number;
  /** Handovers worked on at once (bound); the rest wait for the next renewal tick. */
  readonly concurrentMax?: number;
  /** Replaces the real PackagerService calls (tests). */
  readonly calls?: CmsdHintCalls;
  /** Options of the real calls' clients (the token the packagers require). */
  readonly packagerClient?: GrpcClientOptions;
}

export interface CmsdHintActor {
  /** Calls that succeeded since start (tests, metrics). */
  applied(): number;
  stop(): void;
}

type Want = { kind: "set"; hint: HintSet } | { kind: "clear"; hint: HintClear };

interface Track {
  busy: boolean;
  /** Re-run once the current run ends (state moved while calling). */
  again: boolean;
  /** Identity of the last successful call (kind|epoch|from) and when, monotonic ms. */
  doneKey: string;
  doneAtMono: number;
}

/** Errors a retry cannot fix: the request is wrong, refused by the fence, or the stream is gone. */
const FINAL_CODES = new Set<number>([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.NotFound,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);

const UNDER_WAY = new Set([HandoverState.NOTIFIED, HandoverState.SWITCHED]);
const TERMINAL = new Set([HandoverState.COMPLETED, HandoverState.ABORTED]);

export function createRealHintCalls(
  rpcTimeoutMs: number,
  clientOptions: GrpcClientOptions = {},
): CmsdHintCalls {
  const clients = createPackagerClients(clientOptions);
  return {
    async set(c, h, term, signal) {
      await clients.client(c).setHandoverHint(
        {
          epoch: h.epoch,
          coordinatorTerm: term,
          streamId: h.streamId,
          handoverId: h.handoverId,
          toComponentId: h.toComponentId,
          toBaseUrl: h.toBaseUrl,
          switchMsn: h.switchMsn,
          ttlMs: h.ttlMs,
          duress: h.duress,
          renditionIds: [...h.renditionIds],
        },
        { timeoutMs: rpcTimeoutMs, signal },
      );
    },
    async clear(c, h, term, signal) {
      await clients
        .client(c)
        .clearHandoverHint(
          { epoch: h.epoch, coordinatorTerm: term, streamId: h.streamId, handoverId: h.handoverId },
          { timeoutMs: rpcTimeoutMs, signal },
        );
    },
    close: () => clients.close(),
  };
}

export function createCmsdHintActor(opts: CmsdHintOptions): CmsdHintActor {
  const { cluster, log } = opts;
  const fsm = cluster.fsm;
  const ttlMs = opts.ttlMs ?? 10_000;
  const renewIntervalMs = opts.renewIntervalMs ?? Math.floor(ttlMs / 3);
  const attemptsMax = opts.attemptsMax ?? 4;
  const backoffMs = opts.backoffMs ?? 200;
  const backoffMaxMs = opts.backoffMaxMs ?? 2000;
  const concurrentMax = opts.concurrentMax ?? 64;
  const calls = opts.calls ?? createRealHintCalls(opts.rpcTimeoutMs ?? 2000, opts.packagerClient);
  if (!(renewIntervalMs > 0 && renewIntervalMs < ttlMs))
    throw new Error(`cmsd hint: renewIntervalMs ${renewIntervalMs} must be in (0, ttlMs ${ttlMs})`);

  const tracks = new Map<string, Track>();
  let busy = 0;
  let applied = 0;
  let stopped = false;
  let caughtUpTerm = -1;
  /** Aborted when this node stops leading (or the actor stops): in-flight retries end. */
  let termAc = new AbortController();

  const leading = () => {
    const l = cluster.leadership();
    return !stopped && l.isLeader && l.term === caughtUpTerm;
  };

  /** What the packager should hold for this handover now, or undefined (nothing to do). */
  const want = (h: Handover): Want | undefined => {
    if (UNDER_WAY.has(h.state)) {
      const to = fsm.component(h.toComponentId);
      const url = to?.baseUrl ?? "";
      return {
        kind: "set",
        hint: {
          streamId: h.streamId,
          handoverId: h.id,
          epoch: h.epoch,
          toComponentId: h.toComponentId,
          toBaseUrl: /^https?:\/\/\S+$/.test(url) ? url : "",
          switchMsn: h.switchMsn,
          // The origin is failing or leaving; an operator's move says nothing about its health.
          duress: h.reason !== HandoverReason.OPERATOR,
          renditionIds: [...h.renditionIds],
          ttlMs,
        },
      };
    }
    if (TERMINAL.has(h.state)) {
      // Only while a hint set before the end could still be alive on the packager.
      const endedAgoMs = cluster.clock.nowMs() - Number(h.updatedUnixMs);
      if (endedAgoMs > ttlMs && !tracks.get(h.id)?.doneKey.startsWith("set|")) return undefined;
      return { kind: "clear", hint: { streamId: h.streamId, handoverId: h.id, epoch: h.epoch } };
    }
    return undefined;
  };

  const sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });

  /**
   * One call with bounded retries: "ok" when it took effect, "final" when the
   * packager refused it for good (not retried until the desired state moves),
   * "later" when the attempts ran out (the next renewal tick tries again).
   */
  const callWithRetries = async (
    from: Component,
    w: Want,
    signal: AbortSignal,
  ): Promise<"ok" | "final" | "later"> => {
    let delayMs = backoffMs;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted || !leading()) return "later";
      const term = BigInt(cluster.leadership().term);
      // A child signal per call: the gRPC client never removes the listener it
      // adds, and the term's signal lives for the whole term.
      const callAc = new AbortController();
      const onAbort = () => callAc.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        if (w.kind === "set") await calls.set(from, w.hint, term, callAc.signal);
        else await calls.clear(from, w.hint, term, callAc.signal);
        return "ok";
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        const final = typeof code === "number" && FINAL_CODES.has(code);
        if (final || attempt >= attemptsMax) {
          log[final ? "info" : "warn"](`could not ${w.kind} the CMSD handover hint`, {
            handover: w.hint.handoverId,
            packager: from.id,
            attempts: attempt,
            err,
          });
          return final ? "final" : "later";
        }
        await sleep(delayMs, signal);
        delayMs = Math.min(delayMs * 2, backoffMaxMs);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
  };

  const run = async (id: string, t: Track, signal: AbortSignal) => {
    t.busy = true;
    busy++;
    try {
      do {
        t.again = false;
        const h = fsm.handover(id);
        const w = h && want(h);
        if (!h || !w) return;
        const key = `${w.kind}|${w.hint.epoch}|${h.fromComponentId}`;
        // A set made within half a renewal period needs no renewal yet; the
        // tick comes every period, so a hint under way is renewed about once
        // per period (plus call latency), well within its TTL.
        const fresh = cluster.clock.monotonicMs() - t.doneAtMono < renewIntervalMs / 2;
        if (key === t.doneKey && (w.kind === "clear" || fresh)) continue;
        const from = fsm.component(h.fromComponentId);
        if (!from?.controlAddress) {
          log.debug("old primary has no control address; no CMSD hint", {
            handover: id,
            packager: h.fromComponentId,
          });
          return;
        }
        const outcome = await callWithRetries(from, w, signal);
        if (outcome === "ok") {
          applied++;
          t.doneKey = key;
          t.doneAtMono = cluster.clock.monotonicMs();
          log.debug(`CMSD handover hint ${w.kind}`, { handover: id, packager: from.id });
        } else if (outcome === "final") {
          t.doneKey = key;
          t.doneAtMono = Number.POSITIVE_INFINITY; // "fresh" until the desired state moves
        }
      } while (t.again && leading());
    } finally {
      t.busy = false;
      busy--;
    }
  };

  const poke = (id: string) => {
    if (!leading()) return;
    let t = tracks.get(id);
    if (t?.busy) {
      t.again = true;
      return;
    }
    if (busy >= concurrentMax) return; // the next renewal tick comes back to it
    if (!t) {
      t = { busy: false, again: false, doneKey: "", doneAtMono: Number.NEGATIVE_INFINITY };
      tracks.set(id, t);
    }
    void run(id, t, termAc.signal).catch((err) =>
      log.warn("CMSD hint actor failed on a handover", { handover: id, err }),
    );
  };

  /** Renews hints under way, retries what failed, and forgets handovers with nothing left to do. */
  const sweep = () => {
    if (!leading()) return;
    for (const h of fsm.handovers()) if (want(h)) poke(h.id);
    for (const [id, t] of tracks) {
      const h = fsm.handover(id);
      if (!t.busy && (!h || !want(h))) tracks.delete(id);
    }
  };

  const offChange = fsm.onChange((changes) => {
    for (const c of changes) if (c.kind === "handover") poke(c.id);
  });
  const catchUp = (term: number) => {
    cluster
      .readBarrier()
      .then(() => {
        if (stopped || cluster.leadership().term !== term || !cluster.leadership().isLeader) return;
        caughtUpTerm = term;
        sweep();
      })
      .catch((err) => log.debug("CMSD hint actor waits: leader not caught up", { err }));
  };
  const offLeader = cluster.onLeadershipChange((l) => {
    termAc.abort();
    termAc = new AbortController();
    tracks.clear();
    if (l.isLeader) catchUp(l.term);
  });
  if (cluster.leadership().isLeader) catchUp(cluster.leadership().term);
  const timer = setInterval(sweep, renewIntervalMs);

  return {
    applied: () => applied,
    stop() {
      stopped = true;
      clearInterval(timer);
      offChange();
      offLeader();
      termAc.abort();
      if (!opts.calls) calls.close();
    },
  };
}
