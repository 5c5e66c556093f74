/**
 * The notice client: tells an integrator's player when to move a stream's
 * viewers to another origin.
 *
 * Sources, in order of preference:
 * 1. NATS (`understudy.v1.handover.<streamId>`, `understudy.v1.chain.<streamId>`)
 *    through the injected NoticeBus: microseconds, at-most-once.
 * 2. Catch-up: HandoverService.GetLatestNotice on start and after every NATS
 *    (re)connect, so a notice published while we were away is not lost.
 * 3. Fallback while NATS is down (after `fallbackAfterMs`):
 *    HandoverService.WatchHandovers (server stream, `send_latest_first`),
 *    degrading to polling GetLatestNotice every `pollIntervalMs` after
 *    `watchFailuresMax` consecutive Watch failures (Watch is tried again every
 *    `watchRetryAfterMs`). Back on NATS as soon as the bus reconnects.
 *
 * Epoch rule: epochs order the notices of a stream (every committed handover
 * transition increments the stream's epoch). The client keeps the highest
 * epoch it knows: of the notices it accepted, and the stream's current epoch
 * that the coordinator reports with GetLatestNotice and the first Watch
 * message (even when the stream has had no handover yet). It ignores any
 * notice whose epoch is <= it: the notice it holds again is a duplicate (the
 * same transition over NATS and Watch), anything else is stale (an older
 * transition arriving late over a slower path, or a forged one). So whichever
 * path delivers first wins, nothing goes backwards, and a client that has not
 * seen a handover yet is not moved by an old notice. Notices for another
 * stream are ignored. Chain notices are ordered the same way by `chain_version`.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type BackoffOptions, backoffDelayMs, sleep, unrefTimer } from "./async.ts";
import type { BusStatus, NoticeBus } from "./bus.ts";
import { type Clock, systemClock } from "./clock.ts";
import { type CoordinatorPool, createCoordinatorPool } from "./coordinator.ts";
import { type ChainGraph, ChainService } from "./gen/understudy/api/v1/chain_service_pb.ts";
import { HandoverService } from "./gen/understudy/api/v1/handover_service_pb.ts";
import {
  type ChainUpdateNotice,
  ChainUpdateNoticeSchema,
  type HandoverNotice,
  HandoverNoticeSchema,
} from "./gen/understudy/notice/v1/notice_pb.ts";
import { createNatsNoticeBus, type NatsConnectionLike } from "./nats-bus.ts";
import { type BoundedQueue, createBoundedQueue } from "./queue.ts";

/**
 * One decode per payload however many clients share a bus: the bus hands
 * the same Uint8Array to every local subscriber, so the decoded notice is
 * cached per payload object (weakly: it goes when the payload goes). Notices
 * in events are therefore shared between clients: treat them as read-only.
 */
const decodedHandover = new WeakMap<Uint8Array, HandoverNotice>();
const decodedChain = new WeakMap<Uint8Array, ChainUpdateNotice>();

const decodeHandover = (d: Uint8Array) => fromBinary(HandoverNoticeSchema, d);
const decodeChain = (d: Uint8Array) => fromBinary(ChainUpdateNoticeSchema, d);

function decodeCached<T extends HandoverNotice | ChainUpdateNotice>(
  cache: WeakMap<Uint8Array, T>,
  data: Uint8Array,
  decode: (d: Uint8Array) => T,
): T {
  let n = cache.get(data);
  if (!n) {
    n = decode(data);
    cache.set(data, n);
  }
  return n;
}

export const handoverSubject = (streamId: string): string => `understudy.v1.handover.${streamId}`;
export const chainSubject = (streamId: string): string => `understudy.v1.chain.${streamId}`;

/** StreamSpec.id format: one NATS token. */
export const streamIdPattern = /^[a-z0-9-]{1,64}$/;

/** How a notice reached the client. "poll" = GetLatestNotice (catch-up or polling fallback). */
export type NoticeVia = "nats" | "watch" | "poll";
export type NoticeTransport = "nats" | "watch" | "poll";
export type ConnectionStatus = "connected" | "disconnected" | "reconnecting" | "fallback";

export interface HandoverEvent {
  readonly type: "handover";
  readonly notice: HandoverNotice;
  /** clock.nowMs() when the client accepted it. */
  readonly receivedAtMs: number;
  readonly via: NoticeVia;
}

export interface ChainEvent {
  readonly type: "chain";
  readonly notice: ChainUpdateNotice;
  readonly receivedAtMs: number;
  readonly via: "nats";
}

export interface ConnectionEvent {
  readonly type: "connection";
  /** Which path the status is about. */
  readonly transport: NoticeTransport;
  /**
   * connected/disconnected/reconnecting: that path's state; fallback: NATS is
   * down and the client now listens on `transport` (watch or poll).
   */
  readonly status: ConnectionStatus;
  readonly atMs: number;
  readonly detail?: string;
}

export type UnderstudyEvent = HandoverEvent | ChainEvent | ConnectionEvent;

export interface UnderstudyClientOptions {
  /** Stream to follow (StreamSpec.id: 1–64 chars of [a-z0-9-]). */
  streamId: string;
  /**
   * NATS servers (nats://host:port for the node entry, ws(s)://host:port for
   * the browser entry). The client opens its own connection through
   * `natsConnect` (which the entry points supply) and closes it on `close()`.
   */
  natsServers?: readonly string[];
  /** Opens a NATS connection; set by the node/browser entry points. */
  natsConnect?: (servers: readonly string[]) => Promise<NatsConnectionLike>;
  /**
   * A NoticeBus to use instead of `natsServers` (e.g. one shared NATS
   * connection for many clients). Not closed by the client unless `ownsBus`.
   * Without a bus and without natsServers the client relies on the coordinator only.
   */
  bus?: NoticeBus;
  /** Close `bus` on `close()`. Default false. */
  ownsBus?: boolean;
  /** Connect base URLs of coordinator API listeners. Empty: NATS only, no catch-up. */
  coordinatorUrls?: readonly string[];
  fetch?: typeof globalThis.fetch;
  /** Overrides the Connect transport per coordinator URL. */
  coordinatorTransport?: (baseUrl: string) => Transport;
  clock?: Clock;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Per-attempt RPC timeout, ms (default 3000). */
  rpcTimeoutMs?: number;
  /** Attempts per RPC operation over all coordinator URLs (default max(3, 2·urls)). */
  rpcAttemptsMax?: number;
  /** Backoff between failed rounds (default 200 ms doubling to 5 s, equal jitter). */
  backoff?: BackoffOptions;
  /** Fallback while NATS is down: Watch then polling (default), or polling only. */
  fallback?: "watch" | "poll";
  /** How long NATS may be down (or not yet up) before the fallback starts, ms (default 500). */
  fallbackAfterMs?: number;
  /** Consecutive Watch failures before polling (default 3). */
  watchFailuresMax?: number;
  /** While polling, try Watch again after this long, ms (default 30000). */
  watchRetryAfterMs?: number;
  /** A Watch stream is reopened after this long, ms (default 30000): bounds a silently dead stream. */
  watchMaxDurationMs?: number;
  /** Polling period, ms (default 2000, ±10% jitter). */
  pollIntervalMs?: number;
  /** Per-iterator event queue bound (default 256, drop-oldest). */
  eventQueueMax?: number;
  /** Also follow chain notices (default true). */
  subscribeChain?: boolean;
  /** Errors the client recovered from (for logging). */
  onError?: (err: unknown, context: string) => void;
}

export interface ClientStats {
  /** Handover notices accepted (emitted). */
  accepted: number;
  /**
   * Ignored as stale: epoch below `knownEpoch`, or equal to it but not the
   * notice the client holds (late, or forged).
   */
  stale: number;
  /** Ignored: the notice the client holds, again (same epoch and handover). */
  duplicates: number;
  /** Ignored: notice for another stream. */
  foreign: number;
  /** Payloads that were not a valid notice. */
  decodeErrors: number;
  chainAccepted: number;
  chainIgnored: number;
  /** Events dropped by full iterator queues. */
  eventsDropped: number;
  catchUps: number;
  catchUpFailures: number;
  /** Times the client entered the fallback. */
  fallbacks: number;
  /** Where notices come from now. */
  transport: NoticeTransport | "none";
  /** Highest accepted epoch (0 before any). */
  highestEpoch: number;
  /**
   * The stream epoch the client knows: the highest of accepted notices and
   * the stream epoch the coordinator reported (catch-up, Watch). A notice
   * must be above it to be accepted (0 before any).
   */
  knownEpoch: number;
}

export interface EventStreamOptions {
  /** Start with the latest accepted handover notice, if any (default true). */
  replayLatest?: boolean;
  /** Queue bound for this iterator (default: the client's eventQueueMax). */
  queueMax?: number;
}

export interface UnderstudyClient extends AsyncIterable<UnderstudyEvent> {
  readonly streamId: string;
  /**
   * A new event iterator (each has its own bounded queue, so several
   * consumers can listen). Ends when the client closes; `break` unregisters.
   */
  events(opts?: EventStreamOptions): BoundedQueue<UnderstudyEvent>;
  /** The handover notice with the highest epoch accepted so far. */
  latestNotice(): HandoverNotice | undefined;
  stats(): ClientStats;
  /** Runs a GetLatestNotice catch-up now (resolves when done; never rejects). */
  refresh(): Promise<void>;
  /** ChainService.GetChain for this stream (with coordinator failover). */
  getChain(): Promise<ChainGraph>;
  /** Stops everything and ends every iterator. */
  close(): Promise<void>;
}

export function createUnderstudyClient(opts: UnderstudyClientOptions): UnderstudyClient {
  const { streamId } = opts;
  if (!streamIdPattern.test(streamId)) {
    throw new TypeError(`streamId "${streamId}" must be 1–64 chars of [a-z0-9-]`);
  }
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const backoff = opts.backoff ?? { initialMs: 200, maxMs: 5000 };
  const mode = opts.fallback ?? "watch";
  const fallbackAfterMs = opts.fallbackAfterMs ?? 500;
  const watchFailuresMax = Math.max(1, opts.watchFailuresMax ?? 3);
  const watchRetryAfterMs = opts.watchRetryAfterMs ?? 30_000;
  const watchMaxDurationMs = opts.watchMaxDurationMs ?? 30_000;
  const pollIntervalMs = opts.pollIntervalMs ?? 2000;
  const rpcTimeoutMs = opts.rpcTimeoutMs ?? 3000;
  const eventQueueMax = opts.eventQueueMax ?? 256;
  const onError = opts.onError ?? (() => {});
  // The pool first: it validates the URLs, and nothing may connect before a bad option throws.
  const pool: CoordinatorPool | undefined =
    opts.coordinatorUrls && opts.coordinatorUrls.length > 0
      ? createCoordinatorPool({
          urls: opts.coordinatorUrls,
          random,
          rpcTimeoutMs,
          backoff,
          ...(opts.fetch ? { fetch: opts.fetch } : {}),
          ...(opts.coordinatorTransport ? { transport: opts.coordinatorTransport } : {}),
          ...(opts.rpcAttemptsMax ? { attemptsMax: opts.rpcAttemptsMax } : {}),
        })
      : undefined;

  const natsConnect = opts.natsConnect;
  const servers = [...(opts.natsServers ?? [])];
  if (!opts.bus && servers.length > 0 && !natsConnect) {
    throw new TypeError(
      "natsServers needs a NATS transport: import createUnderstudyClient from " +
        '"@understudy/client-sdk/node" or "@understudy/client-sdk/browser", or pass `bus`',
    );
  }
  const ownsBus = opts.bus ? (opts.ownsBus ?? false) : servers.length > 0;
  const bus: NoticeBus | undefined =
    opts.bus ??
    (servers.length > 0 && natsConnect
      ? createNatsNoticeBus({
          connect: () => natsConnect(servers),
          random,
          onError: (err) => onError(err, "NATS connect"),
        })
      : undefined);

  const stats: ClientStats = {
    accepted: 0,
    stale: 0,
    duplicates: 0,
    foreign: 0,
    decodeErrors: 0,
    chainAccepted: 0,
    chainIgnored: 0,
    eventsDropped: 0,
    catchUps: 0,
    catchUpFailures: 0,
    fallbacks: 0,
    transport: "none",
    highestEpoch: 0,
    knownEpoch: 0,
  };
  const stop = new AbortController();
  let closed = false;
  /** Epoch floor: highest accepted notice epoch or coordinator-reported stream epoch. */
  let knownEpoch: bigint | undefined;
  let latest: HandoverNotice | undefined;
  let chainVersion: bigint | undefined;
  const queues = new Set<BoundedQueue<UnderstudyEvent>>();
  let droppedByClosedQueues = 0;

  const emit = (ev: UnderstudyEvent) => {
    for (const q of queues) q.push(ev);
  };
  const connection = (transport: NoticeTransport, status: ConnectionStatus, detail?: string) => {
    emit({
      type: "connection",
      transport,
      status,
      atMs: clock.nowMs(),
      ...(detail ? { detail } : {}),
    });
  };

  const acceptHandover = (notice: HandoverNotice, via: NoticeVia) => {
    if (closed) return;
    if (notice.streamId !== streamId) {
      stats.foreign++;
      return;
    }
    if (knownEpoch !== undefined && notice.epoch <= knownEpoch) {
      if (notice.epoch === latest?.epoch && notice.handoverId === latest.handoverId) {
        stats.duplicates++;
      } else {
        stats.stale++;
      }
      return;
    }
    knownEpoch = notice.epoch;
    latest = notice;
    stats.accepted++;
    stats.highestEpoch = Number(notice.epoch);
    stats.knownEpoch = Number(notice.epoch);
    emit({ type: "handover", notice, receivedAtMs: clock.nowMs(), via });
  };

  /**
   * The coordinator's word on the stream's current epoch (read together with
   * the latest notice, which the caller accepts first): every later handover
   * transition has a higher epoch, so anything at or below it that is not
   * the notice we hold is stale, even before we have seen any handover.
   */
  const acceptStreamEpoch = (sid: string, epoch: bigint) => {
    if (closed || sid !== streamId || epoch === 0n) return;
    if (knownEpoch === undefined || epoch > knownEpoch) {
      knownEpoch = epoch;
      stats.knownEpoch = Number(epoch);
    }
  };

  const acceptChain = (notice: ChainUpdateNotice) => {
    if (closed) return;
    if (
      notice.streamId !== streamId ||
      (chainVersion !== undefined && notice.chainVersion <= chainVersion)
    ) {
      stats.chainIgnored++;
      return;
    }
    chainVersion = notice.chainVersion;
    stats.chainAccepted++;
    emit({ type: "chain", notice, receivedAtMs: clock.nowMs(), via: "nats" });
  };

  // ---- catch-up (GetLatestNotice), coalesced: at most one running plus one queued.
  let catchUpRunning: Promise<void> | undefined;
  let catchUpAgain = false;
  const catchUpOnce = async () => {
    if (!pool) return;
    stats.catchUps++;
    try {
      const res = await pool.call(
        ({ transport, timeoutMs, signal }) =>
          createClient(HandoverService, transport).getLatestNotice(
            { streamId },
            { timeoutMs, ...(signal ? { signal } : {}) },
          ),
        { signal: stop.signal },
      );
      if (res.notice) acceptHandover(res.notice, "poll");
      acceptStreamEpoch(streamId, res.streamEpoch);
    } catch (err) {
      if (closed) return;
      stats.catchUpFailures++;
      onError(err, "catch-up GetLatestNotice");
    }
  };
  const catchUp = (): Promise<void> => {
    if (!pool || closed) return Promise.resolve();
    if (catchUpRunning) {
      catchUpAgain = true;
      return catchUpRunning;
    }
    catchUpRunning = (async () => {
      do {
        catchUpAgain = false;
        await catchUpOnce();
      } while (catchUpAgain && !closed);
      catchUpRunning = undefined;
    })();
    return catchUpRunning;
  };

  // ---- fallback (Watch, then polling) while NATS is down.
  let fallback: { ctl: AbortController; done: Promise<void> } | undefined;
  let fallbackTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * One WatchHandovers stream, until it ends, fails, or reaches
   * watchMaxDurationMs (then the caller reopens it; send_latest_first makes
   * the reopen a catch-up). With send_latest_first the coordinator answers at
   * once (the stream's epoch, and its latest notice if any), but an older
   * coordinator stays silent for a stream without handovers (connect-node
   * sends headers with the first message): no "first byte" timeout is
   * possible, and watchMaxDurationMs is what bounds a stream to a
   * coordinator that went silent.
   */
  const watchOnce = async (signal: AbortSignal): Promise<{ ok: boolean; code?: Code }> => {
    const p = pool!;
    const baseUrl = p.preferred()!;
    let answered = false;
    try {
      const stream = createClient(HandoverService, p.transportFor(baseUrl)).watchHandovers(
        { streamId, sendLatestFirst: true },
        {
          signal,
          timeoutMs: watchMaxDurationMs,
          onHeader: () => {
            answered = true;
            stats.transport = "watch";
            connection("watch", "connected", baseUrl);
          },
        },
      );
      for await (const res of stream) {
        if (res.notice) acceptHandover(res.notice, "watch");
        acceptStreamEpoch(res.streamId, res.streamEpoch);
      }
      return { ok: true };
    } catch (err) {
      if (signal.aborted) return { ok: true };
      const ce = ConnectError.from(err);
      if (ce.code === Code.DeadlineExceeded) {
        // Our own bound on the stream's life, not a failure; a stream that
        // never said anything moves on to the next coordinator (any node serves watches).
        if (!answered) p.reportFailure(baseUrl, err);
        return { ok: true };
      }
      onError(err, `WatchHandovers ${baseUrl}`);
      p.reportFailure(baseUrl, err);
      return { ok: false, code: ce.code };
    }
  };

  const pollOnce = async (signal: AbortSignal): Promise<boolean> => {
    try {
      const res = await pool!.call(
        ({ transport, timeoutMs }) =>
          createClient(HandoverService, transport).getLatestNotice(
            { streamId },
            { timeoutMs, signal },
          ),
        { signal },
      );
      if (res.notice) acceptHandover(res.notice, "poll");
      acceptStreamEpoch(streamId, res.streamEpoch);
      return true;
    } catch (err) {
      if (!signal.aborted) onError(err, "poll GetLatestNotice");
      return false;
    }
  };

  const runFallback = async (signal: AbortSignal) => {
    let failures = 0;
    let pollingSinceMs: number | undefined = mode === "poll" ? clock.monotonicMs() : undefined;
    let pollOk: boolean | undefined;
    while (!signal.aborted) {
      const retryWatch =
        pollingSinceMs !== undefined && clock.monotonicMs() - pollingSinceMs >= watchRetryAfterMs;
      if (mode === "watch" && (pollingSinceMs === undefined || retryWatch)) {
        if (retryWatch) {
          pollingSinceMs = undefined;
          failures = watchFailuresMax - 1;
        }
        const startedMs = clock.monotonicMs();
        const r = await watchOnce(signal);
        if (signal.aborted) break;
        if (r.ok) {
          failures = 0;
          // A stream the server ended at once must not become a busy loop.
          if (clock.monotonicMs() - startedMs < 1000) {
            await sleep(backoffDelayMs(1, backoff, random), signal);
          }
          continue;
        }
        failures = r.code === Code.Unimplemented ? watchFailuresMax : failures + 1;
        if (failures >= watchFailuresMax) {
          pollingSinceMs = clock.monotonicMs();
          pollOk = undefined;
          stats.transport = "poll";
          connection("poll", "fallback", `WatchHandovers failed ${failures} times`);
          continue;
        }
        connection("watch", "reconnecting");
        await sleep(backoffDelayMs(failures, backoff, random), signal);
      } else {
        const ok = await pollOnce(signal);
        if (signal.aborted) break;
        if (ok !== pollOk) connection("poll", ok ? "connected" : "reconnecting");
        pollOk = ok;
        const jitter = pollIntervalMs * 0.1 * (2 * random() - 1);
        await sleep(pollIntervalMs + jitter, signal);
      }
    }
  };

  const startFallback = () => {
    if (fallback || closed || !pool) return;
    stats.fallbacks++;
    stats.transport = mode;
    connection(mode, "fallback", "NATS unavailable");
    const ctl = new AbortController();
    const onStop = () => ctl.abort();
    stop.signal.addEventListener("abort", onStop, { once: true });
    const done = runFallback(ctl.signal).finally(() =>
      stop.signal.removeEventListener("abort", onStop),
    );
    fallback = { ctl, done };
  };
  const stopFallback = () => {
    if (fallbackTimer !== undefined) clearTimeout(fallbackTimer);
    fallbackTimer = undefined;
    if (!fallback) return;
    fallback.ctl.abort();
    fallback = undefined;
  };
  const scheduleFallback = () => {
    if (fallback || fallbackTimer !== undefined || closed || !pool) return;
    fallbackTimer = unrefTimer(
      setTimeout(() => {
        fallbackTimer = undefined;
        if (bus?.status() !== "connected") startFallback();
      }, fallbackAfterMs),
    );
  };

  // ---- NATS.
  const unsubscribers: (() => void)[] = [];
  let offStatus: (() => void) | undefined;
  /** Uses the bus's synchronous fast path when it has one, else iterates its subscription. */
  const follow = (b: NoticeBus, subject: string, handle: (data: Uint8Array) => void) => {
    if (b.listen) {
      unsubscribers.push(b.listen(subject, handle));
      return;
    }
    const sub = b.subscribe(subject);
    unsubscribers.push(() => sub.unsubscribe());
    void (async () => {
      for await (const data of sub) handle(data);
    })();
  };
  const onHandoverData = (data: Uint8Array) => {
    let notice: HandoverNotice;
    try {
      notice = decodeCached(decodedHandover, data, decodeHandover);
    } catch (err) {
      stats.decodeErrors++;
      onError(err, "decode HandoverNotice");
      return;
    }
    acceptHandover(notice, "nats");
  };
  const onChainData = (data: Uint8Array) => {
    let notice: ChainUpdateNotice;
    try {
      notice = decodeCached(decodedChain, data, decodeChain);
    } catch (err) {
      stats.decodeErrors++;
      onError(err, "decode ChainUpdateNotice");
      return;
    }
    acceptChain(notice);
  };
  const onBusStatus = (s: BusStatus) => {
    if (closed) return;
    connection("nats", s);
    if (s === "connected") {
      stopFallback();
      stats.transport = "nats";
      void catchUp();
    } else {
      if (stats.transport === "nats") stats.transport = "none";
      scheduleFallback();
    }
  };
  if (bus) {
    follow(bus, handoverSubject(streamId), onHandoverData);
    if (opts.subscribeChain ?? true) follow(bus, chainSubject(streamId), onChainData);
    offStatus = bus.onStatus(onBusStatus);
  }

  // ---- start: report where we stand, catch up, and fall back if NATS is not there.
  // Deferred one microtask so an iterator created right after construction sees these events.
  queueMicrotask(() => {
    if (closed) return;
    if (bus) {
      const s = bus.status();
      connection("nats", s);
      if (s === "connected") stats.transport = "nats";
      else scheduleFallback();
    } else {
      startFallback();
    }
    void catchUp();
  });

  const client: UnderstudyClient = {
    streamId,
    events(evOpts = {}) {
      const q: BoundedQueue<UnderstudyEvent> = createBoundedQueue<UnderstudyEvent>(
        evOpts.queueMax ?? eventQueueMax,
        {
          onReturn: () => {
            if (queues.delete(q)) droppedByClosedQueues += q.droppedCount;
          },
        },
      );
      if (closed) {
        q.end();
        return q;
      }
      if ((evOpts.replayLatest ?? true) && latest) {
        q.push({ type: "handover", notice: latest, receivedAtMs: clock.nowMs(), via: "poll" });
      }
      queues.add(q);
      return q;
    },
    [Symbol.asyncIterator]() {
      return client.events();
    },
    latestNotice: () => latest,
    stats() {
      let dropped = droppedByClosedQueues;
      for (const q of queues) dropped += q.droppedCount;
      return { ...stats, eventsDropped: dropped };
    },
    refresh: () => catchUp(),
    async getChain() {
      if (!pool) throw new ConnectError("no coordinator URLs configured", Code.FailedPrecondition);
      const res = await pool.call(
        ({ transport, timeoutMs, signal }) =>
          createClient(ChainService, transport).getChain(
            { streamId },
            { timeoutMs, ...(signal ? { signal } : {}) },
          ),
        { signal: stop.signal },
      );
      if (!res.graph) throw new ConnectError("GetChain answered without a graph", Code.Internal);
      return res.graph;
    },
    async close() {
      if (closed) return;
      closed = true;
      const running = fallback?.done;
      stopFallback();
      stop.abort();
      offStatus?.();
      for (const u of unsubscribers) u();
      if (bus && ownsBus) await bus.close();
      await running;
      await catchUpRunning;
      for (const q of queues) {
        droppedByClosedQueues += q.droppedCount;
        q.end();
      }
      queues.clear();
    },
  };
  return client;
}
