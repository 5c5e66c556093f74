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
  const bySubject = new Map<string, Set<BoundedQueue<Uint8Array>>>();
  const remove = (subject: string, q: BoundedQueue<Uint8Array>) => {
    const set = bySubject.get(subject);
    if (!set?.delete(q)) return;
    if (set.size === 0) {
      bySubject.delete(subject);
      opts.onLast?.(subject);
    }
  };
  return {
    add(subject) {
      let set = bySubject.get(subject);
      const first = set === undefined;
      if (!set) {
        set = new Set();
        bySubject.set(subject, set);
      }
      const q: BoundedQueue<Uint8Array> = createBoundedQueue<Uint8Array>(opts.queueMax, {
        onReturn: () => remove(subject, q),
      });
      set.add(q);
      if (first) opts.onFirst?.(subject);
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
        for (const q of set) q.end();
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
