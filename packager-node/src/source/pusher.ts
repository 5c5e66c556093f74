/**
 * Pushing to one packager target (ingest protocol v1): per rendition a lane
 * that sends the init segment first (and again whenever a reply suggests the
 * packager lost it), then parts and segments in order, one request at a time
 * so the packager never sees a rendition's sequence go backwards.
 *
 * Bounded by construction: each lane holds at most `queueItemsMax` items and
 * `queueBytesMax` bytes (the oldest waiting item is dropped first), an item is
 * tried at most `attemptsMax` times, and an item older than `maxAgeMs` (the
 * live window, measured from when its media became available) is dropped
 * instead of sent: a late part is worthless to a live player, and a dead
 * packager must not make the encoder pile up memory.
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Clock } from "../../../common/clock.ts";
import type { Logger } from "../../../common/log.ts";
import type { Rng } from "../../../common/rng.ts";
import type { Scheduler, TimerHandle } from "./scheduler.ts";

export interface PushLimits {
  readonly requestTimeoutMs: number;
  readonly queueItemsMax: number;
  readonly queueBytesMax: number;
  readonly attemptsMax: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Items whose media became available longer ago than this are dropped (live window). */
  readonly maxAgeMs: number;
}

export const defaultPushLimits: PushLimits = {
  requestTimeoutMs: 2000,
  queueItemsMax: 64,
  queueBytesMax: 16 * 1024 * 1024,
  attemptsMax: 5,
  backoffBaseMs: 100,
  backoffMaxMs: 2000,
  maxAgeMs: 6000,
};

export interface PushItem {
  readonly kind: "part" | "segment";
  readonly rendition: string;
  /** File name under the rendition: "{msn}.{part}.m4s" or "{msn}.m4s". */
  readonly name: string;
  readonly body: Uint8Array;
  /** X-Understudy-* headers (Sha256 and Epoch included). */
  readonly headers: Readonly<Record<string, string>>;
  /** Wall-clock ms when the media became available; age is measured from here. */
  readonly readyAtMs: number;
}

export interface RenditionInit {
  readonly body: Uint8Array;
  readonly sha256: string;
  readonly contentType: string;
}

export interface HttpReply {
  readonly status: number;
  /** First bytes of the body (for error messages). */
  readonly text: string;
}

export interface HttpPut {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  readonly timeoutMs: number;
}

/** Sends one request; rejects on network errors and timeouts. */
export type HttpSend = (req: HttpPut) => Promise<HttpReply>;

export interface HttpClient {
  readonly send: HttpSend;
  close(): void;
}

const replyTextBytesMax = 512;

/**
 * Real HTTP/1.1 PUTs with keep-alive. The timeout runs on the injected
 * scheduler so a manual scheduler can fire it in tests.
 */
export function createHttpClient(scheduler: Scheduler, socketsMax = 8): HttpClient {
  const http = new HttpAgent({ keepAlive: true, maxSockets: socketsMax });
  const https = new HttpsAgent({ keepAlive: true, maxSockets: socketsMax });
  const send: HttpSend = (put) =>
    new Promise<HttpReply>((resolve, reject) => {
      const url = new URL(put.url);
      const secure = url.protocol === "https:";
      const req = (secure ? httpsRequest : httpRequest)(url, {
        method: "PUT",
        agent: secure ? https : http,
        headers: { ...put.headers, "Content-Length": String(put.body.length) },
      });
      let timer: TimerHandle | undefined = scheduler.setTimeout(() => {
        timer = undefined;
        req.destroy(new Error(`no reply within ${put.timeoutMs} ms`));
      }, put.timeoutMs);
      const done = () => {
        timer?.cancel();
        timer = undefined;
      };
      req.on("error", (err) => {
        done();
        reject(err);
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (c: Buffer) => {
          if (kept < replyTextBytesMax) {
            chunks.push(c);
            kept += c.length;
          }
        });
        res.on("error", (err) => {
          done();
          reject(err);
        });
        res.on("end", () => {
          done();
          const text = Buffer.concat(chunks).toString("utf8").slice(0, replyTextBytesMax);
          resolve({ status: res.statusCode ?? 0, text });
        });
      });
      req.end(put.body);
    });
  return {
    send,
    close() {
      http.destroy();
      https.destroy();
    },
  };
}

type Outcome = "ok" | "retry" | "reject";

/**
 * What a reply means for the sender. `lostInit`: the packager may have lost
 * (or never had) this rendition's init segment, so send it again first.
 */
export function classifyReply(status: number): { outcome: Outcome; lostInit: boolean } {
  if (status >= 200 && status < 300) return { outcome: "ok", lostInit: false };
  if (status === 404 || status === 400 || status === 410 || status === 412 || status === 428) {
    return { outcome: "retry", lostInit: true };
  }
  if (status === 429 || status === 408) return { outcome: "retry", lostInit: false };
  if (status >= 500) return { outcome: "retry", lostInit: true };
  // 401/403 (auth), 409 (stale epoch, conflicting bytes, going backwards), 413, 415: retrying cannot help.
  return { outcome: "reject", lostInit: false };
}

const latencySamplesMax = 128;

export interface TargetStatus {
  readonly baseUrl: string;
  readonly queuedItems: number;
  readonly queuedBytes: number;
  readonly inFlight: number;
  readonly pushed: { init: number; part: number; segment: number };
  readonly attempts: number;
  readonly retries: number;
  readonly errors: number;
  readonly dropped: { expired: number; overflow: number; attempts: number; rejected: number };
  readonly latencyMs: { last: number; p50: number; p95: number; max: number; samples: number };
  readonly lastOkAtMs: number | undefined;
  readonly lastError: { atMs: number; message: string; status?: number } | undefined;
  /** Renditions whose init must be (re)sent before their next item. */
  readonly initPending: readonly string[];
}

export interface PushTarget {
  readonly baseUrl: string;
  /** Queues an item (dropping the oldest waiting items if over the bounds). */
  enqueue(item: PushItem, epoch: number): void;
  status(): TargetStatus;
  /** True when nothing is queued or in flight. */
  idle(): boolean;
  /** Resolves once no request is in flight (lanes may still wait on backoff timers). */
  quiescent(): Promise<void>;
  /** Stops sending; queued items are discarded, in-flight requests are aborted. */
  close(): void;
}

export interface PushTargetOptions {
  readonly baseUrl: string;
  readonly streamId: string;
  readonly limits: PushLimits;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly send: HttpSend;
  readonly initFor: (rendition: string) => RenditionInit;
  readonly authToken?: string;
  /**
   * Called when the packager refuses a push as a stale epoch: it has seen a
   * newer shard map than this encoder, so the encoder's view is behind and
   * should be re-read now rather than when its watch happens to deliver.
   */
  readonly onStaleEpoch?: () => void;
}

interface QueuedItem {
  readonly item: PushItem;
  readonly epoch: number;
  attempts: number;
}

interface Lane {
  readonly rendition: string;
  readonly queue: QueuedItem[];
  queuedBytes: number;
  needInit: boolean;
  running: boolean;
  /** The request currently in flight, if any. */
  inFlight: Promise<unknown> | undefined;
  sleeper: { timer: TimerHandle; wake: () => void } | undefined;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function createPushTarget(opts: PushTargetOptions): PushTarget {
  const { limits, clock, scheduler, logger } = opts;
  const base = opts.baseUrl.replace(/\/+$/, "");
  const log = logger.child({ target: base });
  const lanes = new Map<string, Lane>();
  const latencies: number[] = [];
  let closed = false;
  const counters = {
    pushed: { init: 0, part: 0, segment: 0 },
    attempts: 0,
    retries: 0,
    errors: 0,
    dropped: { expired: 0, overflow: 0, attempts: 0, rejected: 0 },
    lastLatencyMs: 0,
    lastOkAtMs: undefined as number | undefined,
    lastError: undefined as TargetStatus["lastError"],
  };

  const urlFor = (rendition: string, name: string) =>
    `${base}/ingest/${encodeURIComponent(opts.streamId)}/${encodeURIComponent(rendition)}/${name}`;

  const laneFor = (rendition: string): Lane => {
    let lane = lanes.get(rendition);
    if (!lane) {
      lane = {
        rendition,
        queue: [],
        queuedBytes: 0,
        needInit: true,
        running: false,
        inFlight: undefined,
        sleeper: undefined,
      };
      lanes.set(rendition, lane);
    }
    return lane;
  };

  const drop = (lane: Lane, q: QueuedItem, why: keyof TargetStatus["dropped"]) => {
    counters.dropped[why]++;
    log.warn("push dropped", {
      rendition: lane.rendition,
      name: q.item.name,
      why,
      attempts: q.attempts,
    });
  };

  const removeItem = (lane: Lane, q: QueuedItem) => {
    const at = lane.queue.indexOf(q);
    if (at < 0) return;
    lane.queue.splice(at, 1);
    lane.queuedBytes -= q.item.body.length;
  };

  /** One PUT; returns the classified outcome. Never throws. */
  const put = async (
    lane: Lane,
    name: string,
    body: Uint8Array,
    headers: Record<string, string>,
  ): Promise<{ outcome: Outcome; lostInit: boolean }> => {
    counters.attempts++;
    const startedMs = clock.monotonicMs();
    const allHeaders = opts.authToken
      ? { ...headers, Authorization: `Bearer ${opts.authToken}` }
      : headers;
    const request = opts.send({
      url: urlFor(lane.rendition, name),
      headers: allHeaders,
      body,
      timeoutMs: limits.requestTimeoutMs,
    });
    lane.inFlight = request;
    try {
      const reply = await request;
      const latency = clock.monotonicMs() - startedMs;
      counters.lastLatencyMs = latency;
      latencies.push(latency);
      if (latencies.length > latencySamplesMax) latencies.shift();
      const verdict = classifyReply(reply.status);
      if (verdict.outcome === "ok") {
        counters.lastOkAtMs = clock.nowMs();
      } else {
        counters.errors++;
        counters.lastError = {
          atMs: clock.nowMs(),
          status: reply.status,
          message: reply.text.trim() || `HTTP ${reply.status}`,
        };
        log.warn("push refused", {
          rendition: lane.rendition,
          name,
          status: reply.status,
          reply: reply.text.trim(),
        });
        if (reply.status === 409 && /stale epoch/i.test(reply.text)) opts.onStaleEpoch?.();
      }
      return verdict;
    } catch (err) {
      counters.errors++;
      const message = err instanceof Error ? err.message : String(err);
      counters.lastError = { atMs: clock.nowMs(), message };
      log.warn("push failed", { rendition: lane.rendition, name, error: message });
      // Connection refused / reset / timeout: the packager may have restarted.
      return { outcome: "retry", lostInit: true };
    } finally {
      lane.inFlight = undefined;
    }
  };

  const sleep = (lane: Lane, ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        lane.sleeper = undefined;
        resolve();
      };
      lane.sleeper = { timer: scheduler.setTimeout(wake, ms), wake };
    });

  const backoffMs = (attempt: number) => {
    const exp = Math.min(limits.backoffMaxMs, limits.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(exp * (0.5 + 0.5 * opts.rng.next()));
  };

  const pump = async (lane: Lane) => {
    if (lane.running) return;
    lane.running = true;
    try {
      while (!closed && lane.queue.length > 0) {
        const q = lane.queue[0]!;
        if (clock.nowMs() - q.item.readyAtMs > limits.maxAgeMs) {
          removeItem(lane, q);
          drop(lane, q, "expired");
          continue;
        }
        if (q.attempts >= limits.attemptsMax) {
          removeItem(lane, q);
          drop(lane, q, "attempts");
          continue;
        }
        q.attempts++;
        if (q.attempts > 1) counters.retries++;
        let verdict: { outcome: Outcome; lostInit: boolean } | undefined;
        if (lane.needInit) {
          const init = opts.initFor(lane.rendition);
          verdict = await put(lane, "init.mp4", init.body, {
            "Content-Type": init.contentType,
            "X-Understudy-Sha256": init.sha256,
            "X-Understudy-Epoch": String(q.epoch),
          });
          if (verdict.outcome === "ok") {
            lane.needInit = false;
            counters.pushed.init++;
          }
        }
        if (!lane.needInit && !closed) {
          verdict = await put(lane, q.item.name, q.item.body, {
            ...q.item.headers,
            "X-Understudy-Epoch": String(q.epoch),
          });
          if (verdict.outcome === "ok") {
            removeItem(lane, q);
            counters.pushed[q.item.kind]++;
            continue;
          }
        }
        if (closed || !verdict) break;
        if (verdict.lostInit) lane.needInit = true;
        if (verdict.outcome === "reject") {
          // An init rejected for good (401, 409...) fails its item as well.
          removeItem(lane, q);
          drop(lane, q, "rejected");
          continue;
        }
        if (verdict.outcome === "retry") await sleep(lane, backoffMs(q.attempts));
      }
    } finally {
      lane.running = false;
    }
  };

  return {
    baseUrl: base,
    enqueue(item, epoch) {
      if (closed) return;
      const lane = laneFor(item.rendition);
      lane.queue.push({ item, epoch, attempts: 0 });
      lane.queuedBytes += item.body.length;
      // Drop the oldest waiting item; the head stays while the lane works on it
      // (in flight or backing off), so the bytes bound may be exceeded by that one item.
      const firstEvictable = lane.running ? 1 : 0;
      while (
        lane.queue.length > firstEvictable &&
        (lane.queue.length > limits.queueItemsMax || lane.queuedBytes > limits.queueBytesMax)
      ) {
        const victim = lane.queue[firstEvictable]!;
        removeItem(lane, victim);
        drop(lane, victim, "overflow");
      }
      void pump(lane);
    },
    status() {
      const sorted = [...latencies].sort((a, b) => a - b);
      let queuedItems = 0;
      let queuedBytes = 0;
      let inFlight = 0;
      const initPending: string[] = [];
      for (const lane of lanes.values()) {
        queuedItems += lane.queue.length;
        queuedBytes += lane.queuedBytes;
        if (lane.inFlight) inFlight++;
        if (lane.needInit) initPending.push(lane.rendition);
      }
      return {
        baseUrl: base,
        queuedItems,
        queuedBytes,
        inFlight,
        pushed: { ...counters.pushed },
        attempts: counters.attempts,
        retries: counters.retries,
        errors: counters.errors,
        dropped: { ...counters.dropped },
        latencyMs: {
          last: counters.lastLatencyMs,
          p50: percentile(sorted, 0.5),
          p95: percentile(sorted, 0.95),
          max: sorted.at(-1) ?? 0,
          samples: sorted.length,
        },
        lastOkAtMs: counters.lastOkAtMs,
        lastError: counters.lastError,
        initPending,
      };
    },
    idle() {
      for (const lane of lanes.values()) {
        if (lane.queue.length > 0 || lane.inFlight) return false;
      }
      return true;
    },
    async quiescent() {
      for (let round = 0; round < 10_000; round++) {
        const busy = [...lanes.values()].map((l) => l.inFlight).filter((p) => p !== undefined);
        if (busy.length === 0) {
          // Let continuations of just-finished requests start their next request.
          await new Promise<void>((r) => setImmediate(r));
          if ([...lanes.values()].every((l) => !l.inFlight)) return;
          continue;
        }
        await Promise.allSettled(busy);
      }
      throw new Error(`push target ${base} never became quiescent`);
    },
    close() {
      closed = true;
      for (const lane of lanes.values()) {
        lane.queue.length = 0;
        lane.queuedBytes = 0;
        if (lane.sleeper) {
          lane.sleeper.timer.cancel();
          lane.sleeper.wake();
        }
      }
    },
  };
}
