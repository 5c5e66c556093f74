/**
 * NoticeBus over a NATS connection, written against the few members that
 * `nats` (Node, TCP) and `nats.ws` (browsers, WebSocket) share, so this file
 * imports neither: the entry points pass their `connect` in.
 *
 * Two shapes:
 * - `createNatsNoticeBus({ connect })`: owns its connection. Connects in the
 *   background (the first connect may fail: it retries with jittered backoff
 *   for as long as the bus is open) and lets the NATS client reconnect.
 * - `natsNoticeBusFromConnection(nc)`: shares a connection the caller owns
 *   (many SDK clients on one connection, as a server-side viewer farm or the
 *   bench groups them); `close()` only drops this bus's subscriptions.
 * Either way one NATS subscription per subject serves every local subscriber.
 */
import { type BackoffOptions, backoffDelayMs, sleep } from "./async.ts";
import {
  type BusStatus,
  createStatusCell,
  createSubjectFanout,
  defaultSubscriptionQueueMax,
  type NoticeBus,
} from "./bus.ts";

export interface NatsMsgLike {
  readonly data: Uint8Array;
}

export interface NatsSubscriptionLike {
  unsubscribe(): void;
}

export interface NatsStatusLike {
  readonly type: string;
  readonly data?: unknown;
}

/** The part of nats/nats.ws `NatsConnection` the bus uses. */
export interface NatsConnectionLike {
  subscribe(
    subject: string,
    opts: { callback: (err: Error | null, msg: NatsMsgLike) => void },
  ): NatsSubscriptionLike;
  status(): AsyncIterable<NatsStatusLike>;
  closed(): Promise<unknown>;
  /** Resolves once the server has processed everything sent so far (a PING/PONG round trip). */
  flush(): Promise<void>;
  close(): Promise<void>;
  isClosed(): boolean;
}

export interface NatsBusStats {
  /** Payloads received from NATS (before local fan-out). */
  received: number;
  /** Connections established (first connect and every later one). */
  connects: number;
  /** Failed connect attempts. */
  connectFailures: number;
}

export interface NatsNoticeBus extends NoticeBus {
  stats(): NatsBusStats;
}

export interface NatsBusOptions {
  /** Opens a connection (entry points wrap nats/nats.ws `connect`). */
  connect: () => Promise<NatsConnectionLike>;
  /** Backoff between failed connect attempts. */
  connectBackoff?: BackoffOptions;
  subscriptionQueueMax?: number;
  random?: () => number;
  /** Called with connection errors (for logging); never required. */
  onError?: (err: unknown) => void;
}

/** nats status event types → bus status (others, e.g. "update", "pingTimer", change nothing). */
function mapStatus(type: string): BusStatus | undefined {
  switch (type) {
    case "disconnect":
    case "staleConnection":
      return "disconnected";
    case "reconnecting":
      return "reconnecting";
    case "reconnect":
      return "connected";
    default:
      return undefined;
  }
}

interface Binding {
  readonly nc: NatsConnectionLike;
  readonly subs: Map<string, NatsSubscriptionLike>;
}

function createBusCore(queueMax: number) {
  const status = createStatusCell("disconnected");
  const stats: NatsBusStats = { received: 0, connects: 0, connectFailures: 0 };
  let binding: Binding | undefined;
  const subscribeUpstream = (b: Binding, subject: string) => {
    if (b.subs.has(subject) || b.nc.isClosed()) return;
    b.subs.set(
      subject,
      b.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          stats.received++;
          fanout.deliver(subject, msg.data);
        },
      }),
    );
  };
  const fanout = createSubjectFanout({
    queueMax,
    onFirst: (subject) => {
      if (binding) subscribeUpstream(binding, subject);
    },
    onLast: (subject) => {
      const sub = binding?.subs.get(subject);
      binding?.subs.delete(subject);
      try {
        if (!binding?.nc.isClosed()) sub?.unsubscribe();
      } catch {
        // The connection went away meanwhile: nothing left to unsubscribe.
      }
    },
  });
  return {
    status,
    stats,
    fanout,
    /** Attaches a live connection: subscribes every known subject and follows its status. */
    bind(nc: NatsConnectionLike) {
      const b: Binding = { nc, subs: new Map() };
      binding = b;
      stats.connects++;
      for (const subject of fanout.subjects()) subscribeUpstream(b, subject);
      // "connected" promises that our subscriptions are live on the server:
      // report it after a round trip, so a notice published right after is received.
      nc.flush().then(
        () => {
          if (binding === b && !nc.isClosed()) status.set("connected");
        },
        () => {},
      );
      void (async () => {
        try {
          for await (const s of nc.status()) {
            if (binding !== b) break;
            const mapped = mapStatus(s.type);
            if (mapped) status.set(mapped);
          }
        } catch {
          // Status iteration ends with the connection; closed() handles that.
        }
      })();
      return b;
    },
    unbind(b: Binding) {
      if (binding === b) binding = undefined;
    },
  };
}

export function createNatsNoticeBus(opts: NatsBusOptions): NatsNoticeBus {
  const core = createBusCore(opts.subscriptionQueueMax ?? defaultSubscriptionQueueMax);
  const backoff = opts.connectBackoff ?? { initialMs: 250, maxMs: 5000 };
  const random = opts.random ?? Math.random;
  const stop = new AbortController();
  let current: NatsConnectionLike | undefined;

  const run = async () => {
    let failures = 0;
    while (!stop.signal.aborted) {
      let nc: NatsConnectionLike;
      try {
        nc = await opts.connect();
      } catch (err) {
        failures++;
        core.stats.connectFailures++;
        opts.onError?.(err);
        core.status.set(failures > 1 ? "reconnecting" : "disconnected");
        await sleep(backoffDelayMs(failures, backoff, random), stop.signal);
        continue;
      }
      if (stop.signal.aborted) {
        await nc.close().catch(() => {});
        break;
      }
      failures = 0;
      current = nc;
      const b = core.bind(nc);
      // The NATS client reconnects by itself; closed() resolves only when it
      // gives up (or we close), and then this loop opens a new connection.
      const reason = await nc.closed();
      core.unbind(b);
      current = undefined;
      if (reason instanceof Error) opts.onError?.(reason);
      if (!stop.signal.aborted) core.status.set("disconnected");
    }
  };
  const running = run();

  return {
    subscribe: (subject) => core.fanout.add(subject),
    listen: (subject, onMessage) => core.fanout.listen(subject, onMessage),
    status: () => core.status.get(),
    onStatus: (l) => core.status.on(l),
    stats: () => ({ ...core.stats }),
    async close() {
      stop.abort();
      core.fanout.endAll();
      await current?.close().catch(() => {});
      await running;
      core.status.set("disconnected");
    },
  };
}

export function natsNoticeBusFromConnection(
  nc: NatsConnectionLike,
  opts: { subscriptionQueueMax?: number } = {},
): NatsNoticeBus {
  const core = createBusCore(opts.subscriptionQueueMax ?? defaultSubscriptionQueueMax);
  const b = core.bind(nc);
  void nc.closed().then(() => {
    core.unbind(b);
    core.status.set("disconnected");
  });
  return {
    subscribe: (subject) => core.fanout.add(subject),
    listen: (subject, onMessage) => core.fanout.listen(subject, onMessage),
    status: () => core.status.get(),
    onStatus: (l) => core.status.on(l),
    stats: () => ({ ...core.stats }),
    async close() {
      // endAll first: it unsubscribes upstream while the binding is still known.
      core.fanout.endAll();
      core.unbind(b);
    },
  };
}
