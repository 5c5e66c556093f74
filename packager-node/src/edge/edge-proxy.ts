/**
 * Edge mode: a caching proxy for /live/... in front of origins.
 *
 * - One lru-cache (bytes-bounded) with `fetchMethod`: concurrent requests for
 *   the same object share one upstream fetch (request coalescing), including
 *   blocking playlist reloads (the cache key keeps `_HLS_msn/_HLS_part/_HLS_skip`
 *   and drops everything else, e.g. CMCD).
 * - Non-blocking playlists are fresh for `playlistTtlMs`, then served stale
 *   while one refetch runs (stale-while-revalidate), never staler than
 *   `playlistStaleMaxMs`.
 * - Upstream failures fail over to the next origin (see origin-pool.ts).
 * - After a media playlist is served, its newest parts / the preload hint /
 *   the newest segment are prefetched (at most `prefetchConcurrencyMax` at once),
 *   plus the CMCD `nor` object a player announces.
 *
 * Only 200 answers are cached; any other origin answer is passed to the
 * waiting clients and dropped.
 */
import http from "node:http";
import https from "node:https";
import { LRUCache } from "lru-cache";
import type { Clock } from "../../../common/clock.ts";
import type { Logger } from "../../../common/log.ts";
import { type CmcdData, cmcdFromRequest } from "../cmcd/cmcd.ts";
import { formatCmsdDynamic } from "../cmcd/cmsd.ts";
import type { SessionTable } from "../cmcd/sessions.ts";
import type { EdgeConfig } from "../config.ts";
import type { CmsdHintProvider, Served } from "../http/origin-playback.ts";
import { sendBody, sendText } from "../http/respond.ts";
import type { NodeStats, RouteKind } from "../stats/node-stats.ts";
import { type OriginHealth, OriginPool } from "./origin-pool.ts";

export interface EdgeProxyOptions {
  nodeId: string;
  config: EdgeConfig;
  cacheBytesMax: number;
  /** Largest upstream body accepted (bigger ones are refused, not buffered). */
  bodyBytesMax?: number;
  stats: NodeStats;
  sessions: SessionTable;
  clock: Clock;
  logger: Logger;
  isDraining(): boolean;
  cmsdHint: CmsdHintProvider | undefined;
}

interface CachedObject {
  status: number;
  body: Buffer;
  headers: Record<string, string>;
  origin: string;
  fetchedAtMono: number;
}

interface FetchContext {
  path: string;
  upstreamQuery: string;
  blocking: boolean;
}

export interface EdgeProxy {
  handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    segments: readonly string[],
    query: string | undefined,
  ): Promise<Served>;
  status(): {
    origins: ReturnType<OriginPool["status"]>;
    prefetchActive: number;
    cacheBytes: number;
    cacheEntries: number;
  };
  cacheBytes(): number;
  cacheEntries(): number;
  /** Upstream fetches started (tests and the bench count coalescing with it). */
  upstreamFetches(): number;
  close(): void;
}

const PASS_HEADERS = ["content-type", "cache-control", "etag", "cmsd-static", "retry-after"];
const ENTRY_OVERHEAD_BYTES = 256;
export const EDGE_BODY_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

class UpstreamError extends Error {}

export function classifyRoute(name: string, blocking: boolean): RouteKind {
  if (name === "index.m3u8") return blocking ? "blocking_playlist" : "playlist";
  if (name === "master.m3u8") return "multivariant";
  if (name === "manifest.mpd") return "mpd";
  if (name === "init.mp4") return "init";
  if (/^\d+\.\d+\.m4s$/.test(name)) return "part";
  if (/^\d+\.m4s$/.test(name)) return "segment";
  return "other";
}

/** URIs worth prefetching after a media playlist: the hint, the newest parts, the newest segment. */
export function prefetchCandidates(playlist: string, depth: number): string[] {
  const parts: string[] = [];
  const segments: string[] = [];
  let hint: string | undefined;
  for (const line of playlist.split("\n")) {
    if (line.startsWith("#EXT-X-PART:")) {
      const m = /URI="([^"]+)"/.exec(line);
      if (m && !line.includes("GAP=YES")) parts.push(m[1]!);
    } else if (line.startsWith("#EXT-X-PRELOAD-HINT:")) {
      const m = /URI="([^"]+)"/.exec(line);
      if (m) hint = m[1]!;
    } else if (line.length > 0 && !line.startsWith("#")) {
      segments.push(line.trim());
    }
  }
  const out: string[] = [];
  if (hint) out.push(hint);
  out.push(...parts.slice(Math.max(0, parts.length - depth)).reverse());
  const lastSegment = segments[segments.length - 1];
  if (lastSegment) out.push(lastSegment);
  return out.slice(0, depth + 2);
}

function upstreamGet(
  url: string,
  agent: { http: http.Agent; https: https.Agent },
  timeoutMs: number,
  bodyBytesMax: number,
  signal: AbortSignal,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.request(u, {
      method: "GET",
      agent: u.protocol === "https:" ? agent.https : agent.http,
      signal,
    });
    const timer = setTimeout(
      () => req.destroy(new UpstreamError(`timeout after ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.once("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > bodyBytesMax) {
          req.destroy(new UpstreamError(`body larger than ${bodyBytesMax} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.once("end", () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 502,
          headers: res.headers,
          body: Buffer.concat(chunks, size),
        });
      });
      res.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

export function createEdgeProxy(opts: EdgeProxyOptions): EdgeProxy {
  const { config, clock, stats, logger } = opts;
  const pool = new OriginPool(config.origins, {
    backoffMs: config.originBackoffMs,
    backoffMaxMs: config.originBackoffMaxMs,
    clock,
  });
  const agent = {
    http: new http.Agent({ keepAlive: true, maxSockets: 256 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 256 }),
  };
  const bodyBytesMax = opts.bodyBytesMax ?? EDGE_BODY_BYTES_MAX_DEFAULT;
  const playlistStaleMaxMs = Math.max(2000, 8 * config.playlistTtlMs);
  let fetches = 0;
  let prefetchActive = 0;

  async function fetchFromOrigins(ctx: FetchContext, signal: AbortSignal): Promise<CachedObject> {
    fetches++;
    const errors: string[] = [];
    let notFound: CachedObject | undefined;
    for (const o of pool.order()) {
      const url = `${o.url}/live/${ctx.path}${ctx.upstreamQuery ? `?${ctx.upstreamQuery}` : ""}`;
      const timeoutMs = ctx.blocking ? config.blockingTimeoutMs : config.upstreamTimeoutMs;
      let up: Awaited<ReturnType<typeof upstreamGet>>;
      try {
        up = await upstreamGet(url, agent, timeoutMs, bodyBytesMax, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        const msg = err instanceof Error ? err.message : String(err);
        pool.failed(o, msg);
        stats.edgeUpstream.inc({ origin: o.url, outcome: "error" });
        errors.push(`${o.url}: ${msg}`);
        continue;
      }
      const obj = toCached(up, o);
      if (up.status >= 500 && up.status !== 503) {
        pool.failed(o, `HTTP ${up.status}`);
        stats.edgeUpstream.inc({ origin: o.url, outcome: `http_${up.status}` });
        errors.push(`${o.url}: HTTP ${up.status}`);
        continue;
      }
      pool.succeeded(o);
      stats.edgeUpstream.inc({ origin: o.url, outcome: `http_${up.status}` });
      // A blocking reload's 503 is the origin's "not yet": final. Otherwise a
      // 404/503 (stream not here, draining) may be served by the next origin.
      if ((up.status === 404 || up.status === 503) && !ctx.blocking) {
        notFound ??= obj;
        continue;
      }
      return obj;
    }
    if (notFound) return notFound;
    throw new UpstreamError(`no origin answered: ${errors.join("; ")}`);
  }

  function toCached(
    up: { status: number; headers: http.IncomingHttpHeaders; body: Buffer },
    o: OriginHealth,
  ): CachedObject {
    const headers: Record<string, string> = {};
    for (const h of [...PASS_HEADERS, "cmsd-dynamic"]) {
      const v = up.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    return {
      status: up.status,
      body: up.body,
      headers,
      origin: o.url,
      fetchedAtMono: clock.monotonicMs(),
    };
  }

  const cache = new LRUCache<string, CachedObject, FetchContext>({
    maxSize: opts.cacheBytesMax,
    sizeCalculation: (v) => v.body.length + ENTRY_OVERHEAD_BYTES,
    ttl: config.mediaTtlMs,
    fetchMethod: async (_key, _stale, { signal, options, context }) => {
      const obj = await fetchFromOrigins(context, signal);
      if (obj.status !== 200) options.ttl = 1;
      return obj;
    },
  });

  function cacheKey(path: string, upstreamQuery: string): string {
    return upstreamQuery ? `${path}?${upstreamQuery}` : path;
  }

  /** Keeps only the delivery directives (sorted) so CMCD and other params never split the cache. */
  function upstreamQueryOf(params: URLSearchParams): string {
    const keep: string[] = [];
    for (const k of ["_HLS_msn", "_HLS_part", "_HLS_skip"]) {
      const v = params.get(k);
      if (v !== null) keep.push(`${k}=${encodeURIComponent(v)}`);
    }
    return keep.join("&");
  }

  function ttlFor(route: RouteKind): { ttl: number; allowStale: boolean } {
    switch (route) {
      case "playlist":
      case "mpd":
        return { ttl: Math.max(1, config.playlistTtlMs), allowStale: true };
      case "multivariant":
        return { ttl: Math.max(1, 5 * config.playlistTtlMs), allowStale: true };
      case "blocking_playlist":
        return { ttl: 10_000, allowStale: false };
      default:
        return { ttl: config.mediaTtlMs, allowStale: false };
    }
  }

  async function get(
    path: string,
    upstreamQuery: string,
    route: RouteKind,
  ): Promise<{ obj: CachedObject | undefined; result: string }> {
    const key = cacheKey(path, upstreamQuery);
    const { ttl, allowStale } = ttlFor(route);
    const context: FetchContext = { path, upstreamQuery, blocking: route === "blocking_playlist" };
    const existing = cache.peek(key, { allowStale: true });
    const tooStale =
      allowStale &&
      existing !== undefined &&
      clock.monotonicMs() - existing.fetchedAtMono > playlistStaleMaxMs;
    const status: LRUCache.Status<string, CachedObject, FetchContext> = {};
    let obj: CachedObject | undefined;
    try {
      obj = await cache.fetch(key, {
        context,
        ttl,
        allowStale: allowStale && !tooStale,
        allowStaleOnFetchRejection: allowStale && !tooStale,
        ...(tooStale ? { forceRefresh: true } : {}),
        status,
      });
    } catch (err) {
      logger.debug("edge upstream failed", { key, err });
      obj = undefined;
    }
    if (obj && obj.status !== 200 && cache.peek(key, { allowStale: true }) === obj)
      cache.delete(key);
    return { obj, result: status.fetch ?? "hit" };
  }

  function prefetch(basePath: string, uris: readonly string[]): void {
    const dir = basePath.slice(0, basePath.lastIndexOf("/") + 1);
    for (const uri of uris) {
      if (uri.includes("://") || uri.startsWith("/") || uri.includes("..")) continue;
      const path = dir + uri.split("?")[0]!;
      const route = classifyRoute(path.slice(path.lastIndexOf("/") + 1), false);
      if (route !== "part" && route !== "segment" && route !== "init") continue;
      if (cache.has(path)) continue;
      if (prefetchActive >= config.prefetchConcurrencyMax) {
        stats.edgePrefetch.inc({ outcome: "skipped_busy" });
        continue;
      }
      prefetchActive++;
      stats.edgePrefetch.inc({ outcome: "started" });
      void get(path, "", route)
        .then(({ obj }) => {
          if (obj?.status !== 200) stats.edgePrefetch.inc({ outcome: "failed" });
        })
        .finally(() => {
          prefetchActive--;
        });
    }
  }

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    segments: readonly string[],
    query: string | undefined,
  ): Promise<Served> {
    const startMono = clock.monotonicMs();
    const params = new URLSearchParams(query ?? "");
    const path = segments.join("/");
    const name = segments[segments.length - 1] ?? "";
    const upstreamQuery = name === "index.m3u8" ? upstreamQueryOf(params) : "";
    const blocking = params.has("_HLS_msn") || params.has("_HLS_part");
    const route = classifyRoute(name, blocking);
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(res, 405, `${req.method} is not supported on /live; use GET or HEAD`, {
        allow: "GET, HEAD",
      });
      return { status: 405, route, bytes: 0 };
    }
    if (segments.length < 2 || segments.some((s) => s === "" || s === "." || s === "..")) {
      sendText(res, 404, `no such resource /live/${path}`);
      return { status: 404, route, bytes: 0 };
    }
    const streamId = segments[0]!;
    const renditionId = segments.length === 3 ? segments[1] : undefined;
    let cmcd: CmcdData | undefined;
    const parsed = cmcdFromRequest(params.get("CMCD") ?? undefined, req.headers);
    if (parsed) {
      if (parsed.errors.length > 0) stats.cmcdErrors.inc(undefined, parsed.errors.length);
      cmcd = parsed.data;
    }
    if (opts.isDraining()) {
      const entry = route === "multivariant" || route === "mpd";
      const isNew = cmcd?.sid !== undefined ? !opts.sessions.has(cmcd.sid) : entry;
      if (isNew) {
        sendText(res, 503, "this edge is draining and accepts no new sessions; try another edge", {
          "retry-after": "1",
        });
        return { status: 503, route, bytes: 0 };
      }
    }
    if (cmcd)
      opts.sessions.record(
        cmcd,
        { streamId, ...(renditionId !== undefined ? { renditionId } : {}) },
        clock.nowMs(),
      );

    const { obj, result } = await get(path, upstreamQuery, route);
    const now = clock.nowMs();
    stats.recordLookup(result === "miss" || result === "refresh" ? "miss" : "hit", now);
    if (!obj) {
      sendText(res, 502, "no origin answered (see /status edge.origins)");
      return { status: 502, route, bytes: 0 };
    }
    const hint = opts.cmsdHint?.({
      streamId,
      ...(renditionId !== undefined ? { renditionId } : {}),
    });
    const own = formatCmsdDynamic({
      n: opts.nodeId,
      rd: Math.max(0, Math.round(clock.monotonicMs() - startMono)),
      ...(opts.isDraining() || hint
        ? { custom: { ...(opts.isDraining() ? { du: true } : {}), ...(hint ?? {}) } }
        : {}),
    });
    const headers: Record<string, string> = { ...obj.headers };
    headers["cmsd-dynamic"] = obj.headers["cmsd-dynamic"]
      ? `${obj.headers["cmsd-dynamic"]}, ${own}`
      : own;
    headers["x-understudy-cache"] = result;
    if (
      obj.status === 200 &&
      obj.headers.etag &&
      req.headers["if-none-match"] === obj.headers.etag
    ) {
      res.writeHead(304, headers);
      res.end();
      return { status: 304, route, bytes: 0 };
    }
    sendBody(req, res, obj.status, obj.body, headers);
    if (obj.status === 200 && config.prefetchDepth > 0) {
      if (route === "playlist" || route === "blocking_playlist") {
        prefetch(path, prefetchCandidates(obj.body.toString("utf8"), config.prefetchDepth));
      }
      if (cmcd?.nor) prefetch(path, [decodeURIComponent(cmcd.nor)]);
    }
    return { status: obj.status, route, bytes: req.method === "HEAD" ? 0 : obj.body.length };
  }

  return {
    handle,
    status: () => ({
      origins: pool.status(),
      prefetchActive,
      cacheBytes: cache.calculatedSize,
      cacheEntries: cache.size,
    }),
    cacheBytes: () => cache.calculatedSize,
    cacheEntries: () => cache.size,
    upstreamFetches: () => fetches,
    close() {
      cache.clear();
      agent.http.destroy();
      agent.https.destroy();
    },
  };
}
