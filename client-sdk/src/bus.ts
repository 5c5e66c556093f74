/**
 * NoticeBus: the SDK's only view of NATS. The core owns this small interface;
 * the node entry supplies one over `nats` (TCP), the browser entry one over
 * `nats.ws` (WebSocket), tests and integrators may use the in-memory bus.
 *
 * Contract:
 * - `subscribe(subject)` returns an async iterable of raw payloads (the
 *   binary protobuf of a notice). Each subscription has its own bounded
 *   queue (drop-oldest); a dropped notice is recovered by the client's
 *   catch-up, so a bus never blocks or grows without bound.
 * - `status()` is the current connection state; `onStatus` reports changes
 *   (only real changes: the same status is never reported twice in a row).
 *   Subscriptions survive reconnects (the bus re-establishes them).
 * - `close()` ends every subscription's iteration.
 * - `listen(subject, onMessage)` is an optional fast path with the same
 *   delivery but no queue and no async hop (the SDK's own buses have it; the
 *   client uses it when present, which matters with thousands of clients on
 *   one bus). `onMessage` must not throw and must return quickly.
 */
import { type BoundedQueue, createBoundedQueue } from "./queue.ts";

export type BusStatus = "connected" | "disconnected" | "reconnecting";

export interface BusSubscription extends AsyncIterable<Uint8Array> {
  /** Stops delivery and ends the iteration. Idempotent. */
  unsubscribe(): void;
  /** Payloads dropped because this subscriber's queue was full. */
  readonly droppedCount: number;
}

export interface NoticeBus {
  subscribe(subject: string): BusSubscription;
  /** Optional fast path: synchronous delivery; returns a function that stops it. */
  listen?(subject: string, onMessage: (data: Uint8Array) => void): () => void;
  status(): BusStatus;
  /** Listener for status changes; returns a function that removes it. */
  onStatus(listener: (status: BusStatus) => void): () => void;
  close(): Promise<void>;
}

/** Per-subscription queue bound used when none is given. */
export const defaultSubscriptionQueueMax = 64;

/**
 * Subject → local subscribers, shared by the bus implementations: one
 * upstream subscription per subject however many local subscribers there
 * are (so many SDK clients can share one NATS connection cheaply).
 */
export interface SubjectFanout {
  add(subject: string): BusSubscription;
  listen(subject: string, onMessage: (data: Uint8Array) => void): () => void;
  deliver(subject: string, data: Uint8Array): void;
  subjects(): string[];
  count(subject: string): number;
  endAll(): void;
}

export function createSubjectFanout(opts: {
  queueMax: number;
  /** First local subscriber of a subject arrived. */
  onFirst?: (subject: string) => void;
  /** Last local subscriber of a subject left. */
  onLast?: (subject: string) => void;
}): SubjectFanout {
  /** A local subscriber: a bounded queue (subscribe) or a callback (listen). */
  type Sink = { push(data: Uint8Array): void; end?(): void };
  const bySubject = new Map<string, Set<Sink>>();
  const remove = (subject: string, sink: Sink) => {
    const set = bySubject.get(subject);
    if (!set?.delete(sink)) return;
    if (set.size === 0) {
      bySubject.delete(subject);
      opts.onLast?.(subject);
    }
  };
  const attach = (subject: string, sink: Sink) => {
    let set = bySubject.get(subject);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      bySubject.set(subject, set);
    }
    set.add(sink);
    if (first) opts.onFirst?.(subject);
  };
  return {
    listen(subject, onMessage) {
      const sink: Sink = { push: onMessage };
      attach(subject, sink);
      return () => remove(subject, sink);
    },
    add(subject) {
      const q: BoundedQueue<Uint8Array> = createBoundedQueue<Uint8Array>(opts.queueMax, {
        onReturn: () => remove(subject, q),
      });
      attach(subject, q);
      return {
        unsubscribe() {
          q.end();
          remove(subject, q);
        },
        get droppedCount() {
          return q.droppedCount;
        },
        [Symbol.asyncIterator]: () => q,
      };
    },
    deliver(subject, data) {
      const set = bySubject.get(subject);
      if (set) for (const q of set) q.push(data);
    },
    subjects: () => [...bySubject.keys()],
    count: (subject) => bySubject.get(subject)?.size ?? 0,
    endAll() {
      for (const [subject, set] of bySubject) {
        for (const q of set) q.end?.();
        opts.onLast?.(subject);
      }
      bySubject.clear();
    },
  };
}

/** Status holder that reports only real changes. */
export function createStatusCell(initial: BusStatus): {
  get(): BusStatus;
  set(s: BusStatus): void;
  on(listener: (s: BusStatus) => void): () => void;
} {
  let current = initial;
  const listeners = new Set<(s: BusStatus) => void>();
  return {
    get: () => current,
    set(s) {
      if (s === current) return;
      current = s;
      for (const l of [...listeners]) l(s);
    },
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export interface MemoryNoticeBus extends NoticeBus {
  /** Delivers `data` to every subscriber of `subject` (exact subject match). */
  publish(subject: string, data: Uint8Array): void;
  /** Simulates a connection change. */
  setStatus(status: BusStatus): void;
  subscriberCount(subject: string): number;
}

/** In-memory bus for tests and for integrators wiring their own transport. */
export function createMemoryNoticeBus(
  opts: { status?: BusStatus; subscriptionQueueMax?: number } = {},
): MemoryNoticeBus {
  const status = createStatusCell(opts.status ?? "connected");
  const fanout = createSubjectFanout({
    queueMax: opts.subscriptionQueueMax ?? defaultSubscriptionQueueMax,
  });
  return {
    subscribe: (subject) => fanout.add(subject),
    listen: (subject, onMessage) => fanout.listen(subject, onMessage),
    status: () => status.get(),
    onStatus: (l) => status.on(l),
    async close() {
      fanout.endAll();
    },
    publish(subject, data) {
      // Like core NATS: nothing is delivered while disconnected.
      if (status.get() === "connected") fanout.deliver(subject, data);
    },
    setStatus: (s) => status.set(s),
    subscriberCount: (subject) => fanout.count(subject),
  };
}
