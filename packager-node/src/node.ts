/**
 * One packager-node process: the HTTP data plane (origin: ingest + playback;
 * edge: caching proxy), node routes, and the PackagerService control plane
 * when `control` is configured.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Clock, systemClock } from "../../common/clock.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { createHandoverHints, type HandoverHints } from "./cmcd/handover-hint.ts";
import { SessionTable } from "./cmcd/sessions.ts";
import type { PackagerConfig, StreamConfig } from "./config.ts";
import { Fence } from "./control/fence.ts";
import { startPackagerControl } from "./control/packager-service.ts";
import { createFaultInjector } from "./dev-faults.ts";
import { createEdgeProxy, type EdgeProxy } from "./edge/edge-proxy.ts";
import { handleReplica, handleUtc } from "./http/node-routes.ts";
import {
  type Blocking,
  type CmsdHintProvider,
  handlePlayback,
  type PlaybackContext,
  type Served,
} from "./http/origin-playback.ts";
import { sendJson, sendText, splitUrl } from "./http/respond.ts";
import { handleIngest, type IngestContext } from "./ingest/ingest-handler.ts";
import type { SteeringInfo } from "./playlist/model.ts";
import { NodeStats, type RouteKind } from "./stats/node-stats.ts";
import { DiskStore } from "./store/disk-store.ts";
import { MediaStore, type StreamDef } from "./store/media-store.ts";

export interface PackagerNodeDeps {
  clock?: Clock;
  logger?: Logger;
  /** DEVELOPMENT ONLY (`--dev-fault-injection`): serve /dev/fault. */
  devFaultInjection?: boolean;
}

export interface PackagerNodeUrls {
  /** "http://host:port" of the HTTP listener. */
  http: string;
  /** "host:port" of the PackagerService listener, when configured. */
  control?: string;
}

export interface StatusReport {
  nodeId: string;
  mode: "origin" | "edge";
  draining: boolean;
  drainDeadlineUnixMs: number;
  uptimeMs: number;
  http: {
    requestsPerSecond: number;
    errorRatio: number;
    clientErrorRatio: number;
    blockingActive: number;
  };
  ingest: {
    lagMs: { p50: number | null; p99: number | null };
    /** Over the last 5 s (the 60 s figures above react slowly). */
    recentLagMs: { p50: number | null; p99: number | null };
    processingMs: { p50: number | null; p99: number | null };
  };
  cache: {
    bytes: number;
    entries: number;
    capacityBytes: number;
    windowBytes: number;
    hitRatio: number;
  };
  sessions: {
    tracked: number;
    byRendition: Array<{ streamId: string; renditionId: string; sessions: number; stalls: number }>;
  };
  streams: Array<{
    id: string;
    epoch: number;
    latency: string;
    renditions: Array<{
      id: string;
      firstMsn: number | null;
      lastMsn: number | null;
      lastPart: number | null;
      lastIngestUnixMs: number;
      pending: number;
    }>;
  }>;
  edge?: ReturnType<EdgeProxy["status"]>;
}

export interface PackagerNode {
  readonly config: PackagerConfig;
  /** The node's logger (the control port logs auth refusals to it). */
  readonly logger: Logger;
  /** Valid after start(). */
  readonly urls: PackagerNodeUrls;
  /** Origin storage (undefined in edge mode). */
  readonly store: MediaStore | undefined;
  readonly stats: NodeStats;
  readonly sessions: SessionTable;
  readonly fence: Fence;
  readonly edge: EdgeProxy | undefined;
  /** Handover hints set by the coordinator (PackagerService.SetHandoverHint), emitted as CMSD-Dynamic keys. */
  readonly handoverHints: HandoverHints;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stop accepting new sessions (existing ones are served). */
  drain(deadlineUnixMs?: number): void;
  isDraining(): boolean;
  /** Hook for extra CMSD-Dynamic keys per stream, added after the handover hint's. */
  setCmsdHint(provider: CmsdHintProvider | undefined): void;
  /** Hook for content steering: adds EXT-X-CONTENT-STEERING/PATHWAY-ID to a stream's multivariant playlist. */
  setSteering(streamId: string, steering: SteeringInfo | undefined): void;
  defineStream(def: StreamDef): void;
  status(): StatusReport;
}

export function streamDefFromConfig(sc: StreamConfig, defaultWindowSegments: number): StreamDef {
  return {
    id: sc.id,
    latency: sc.latency,
    targetSegmentDurationMs: sc.targetSegmentDurationMs,
    targetPartDurationMs: sc.targetPartDurationMs,
    windowSegments: sc.windowSegments ?? defaultWindowSegments,
    deltaUpdates: sc.deltaUpdates,
    segmentClose: sc.segmentClose,
    renditions: sc.renditions.map((r) => ({ ...r })),
  };
}

/** Starts the PackagerService listener (default: control/packager-service.ts on config.control). */
export type ControlStarter = (
  node: PackagerNode,
) => Promise<{ address: string; close(): Promise<void> }>;

export function createPackagerNode(
  config: PackagerConfig,
  deps: PackagerNodeDeps & { startControl?: ControlStarter } = {},
): PackagerNode {
  const clock = deps.clock ?? systemClock;
  const logger =
    deps.logger ??
    createLogger(
      { component: "packager", node: config.nodeId },
      config.log.level ? { level: config.log.level } : {},
    );
  const stats = new NodeStats();
  const faults = deps.devFaultInjection ? createFaultInjector(clock, logger) : undefined;
  const sessions = new SessionTable({
    sessionsMax: config.playback.sessionsMax,
    sessionIdleMs: config.playback.sessionIdleMs,
  });
  const diskDir = config.storage.diskDir;
  const fence = new Fence(diskDir ? join(diskDir, "fence.json") : undefined);
  const origin = config.mode === "origin";
  const disk =
    origin && diskDir
      ? new DiskStore({
          dir: diskDir,
          retainSegments: config.storage.diskRetainSegments,
          queueMax: config.storage.diskQueueMax,
          logger,
        })
      : undefined;
  const store = origin
    ? new MediaStore({
        cacheBytesMax: config.storage.cacheBytesMax,
        segmentBytesMax: config.ingest.segmentBytesMax,
        ...(disk ? { disk } : {}),
        logger,
      })
    : undefined;
  let draining = false;
  let drainDeadlineUnixMs = 0;
  let extraCmsdHint: CmsdHintProvider | undefined;
  const handoverHints = createHandoverHints({ clock });
  const cmsdHint: CmsdHintProvider = (w) => {
    const own = handoverHints.keysFor(w);
    const extra = extraCmsdHint?.(w);
    return own && extra ? { ...own, ...extra } : (own ?? extra);
  };
  const steering = new Map<string, SteeringInfo>();
  const blocking: Blocking = { active: 0, max: config.playback.blockingRequestsMax };
  const startedMono = clock.monotonicMs();

  const edge = config.edge
    ? createEdgeProxy({
        nodeId: config.nodeId,
        config: config.edge,
        cacheBytesMax: config.storage.cacheBytesMax,
        stats,
        sessions,
        clock,
        logger,
        isDraining: () => draining,
        cmsdHint,
      })
    : undefined;

  const ingestCtx: IngestContext | undefined = store
    ? {
        store,
        stats,
        fence,
        clock,
        logger,
        limits: {
          partBytesMax: config.ingest.partBytesMax,
          segmentBytesMax: config.ingest.segmentBytesMax,
          playlistBytesMax: config.ingest.playlistBytesMax,
          pendingObjectsMax: config.ingest.pendingObjectsMax,
        },
        tokens: config.ingest.tokens ? new Set(config.ingest.tokens) : undefined,
      }
    : undefined;
  const playbackCtx: PlaybackContext | undefined = store
    ? {
        nodeId: config.nodeId,
        store,
        stats,
        sessions,
        clock,
        logger,
        blocking,
        isDraining: () => draining,
        cmsdHint,
      }
    : undefined;

  const defineStream = (def: StreamDef) => {
    if (!store) throw new Error("edge nodes do not define streams");
    const s = steering.get(def.id);
    store.defineStream(s ? { ...def, steering: s } : def);
  };

  const status = (): StatusReport => {
    const now = clock.nowMs();
    const sum = stats.summary(now);
    const nn = (v: number) => (Number.isNaN(v) ? null : v);
    return {
      nodeId: config.nodeId,
      mode: config.mode,
      draining,
      drainDeadlineUnixMs,
      uptimeMs: Math.round(clock.monotonicMs() - startedMono),
      http: {
        requestsPerSecond: sum.requestsPerSecond,
        errorRatio: sum.errorRatio,
        clientErrorRatio: sum.clientErrorRatio,
        blockingActive: blocking.active,
      },
      ingest: {
        lagMs: { p50: nn(sum.ingestLagP50Ms), p99: nn(sum.ingestLagP99Ms) },
        recentLagMs: { p50: nn(sum.ingestLagRecentP50Ms), p99: nn(sum.ingestLagRecentP99Ms) },
        processingMs: { p50: nn(sum.ingestProcessingP50Ms), p99: nn(sum.ingestProcessingP99Ms) },
      },
      cache: store
        ? {
            bytes: store.retired.calculatedSize,
            entries: store.retired.size,
            capacityBytes: config.storage.cacheBytesMax,
            windowBytes: store.windowBytes(),
            hitRatio: sum.cacheHitRatio,
          }
        : {
            bytes: edge!.cacheBytes(),
            entries: edge!.cacheEntries(),
            capacityBytes: config.storage.cacheBytesMax,
            windowBytes: 0,
            hitRatio: sum.cacheHitRatio,
          },
      sessions: { tracked: sessions.size, byRendition: sessions.demand(now) },
      streams: store
        ? [...store.streams.values()].map((st) => ({
            id: st.def.id,
            epoch: fence.epochOf(st.def.id),
            latency: st.def.latency,
            renditions: [...st.renditions.values()].map((r) => {
              const rep = r.timeline.report(r.info.id);
              return {
                id: r.info.id,
                firstMsn: r.timeline.firstMsn() ?? null,
                lastMsn: rep?.lastMsn ?? null,
                lastPart: rep?.lastPart ?? null,
                lastIngestUnixMs: r.timeline.lastIngestMs,
                pending: r.pending.size,
              };
            }),
          }))
        : [],
      ...(edge ? { edge: edge.status() } : {}),
    };
  };

  registerGauges();

  function registerGauges(): void {
    stats.addGauge(
      "understudy_packager_cache_bytes",
      "Bytes in the cache (origin: segments that left the window).",
      () => (store ? store.retired.calculatedSize : (edge?.cacheBytes() ?? 0)),
    );
    stats.addGauge("understudy_packager_cache_entries", "Objects in the cache.", () =>
      store ? store.retired.size : (edge?.cacheEntries() ?? 0),
    );
    stats.addGauge(
      "understudy_packager_cache_capacity_bytes",
      "Configured cache bound.",
      () => config.storage.cacheBytesMax,
    );
    stats.addGauge(
      "understudy_packager_window_bytes",
      "Bytes pinned by live windows (origin).",
      () => store?.windowBytes() ?? 0,
    );
    stats.addGauge(
      "understudy_packager_blocking_requests",
      "Held blocking reloads and part requests.",
      () => blocking.active,
    );
    stats.addGauge("understudy_packager_draining", "1 while draining.", () => (draining ? 1 : 0));
    stats.addGauge(
      "understudy_packager_sessions",
      "Active CMCD sessions per stream and rendition.",
      () =>
        sessions.demand(clock.nowMs()).map((d) => ({
          labels: { stream: d.streamId, rendition: d.renditionId },
          value: d.sessions,
        })),
    );
    stats.addGauge(
      "understudy_packager_ingest_lag_p99_ms",
      "p99 ingest lag over 60 s (arrival vs media timeline).",
      () => {
        const v = stats.summary(clock.nowMs()).ingestLagP99Ms;
        return Number.isNaN(v) ? 0 : v;
      },
    );
    stats.addGauge("understudy_packager_last_msn", "Newest msn per rendition (origin).", () =>
      store
        ? [...store.streams.values()].flatMap((st) =>
            [...st.renditions.values()].map((r) => ({
              labels: { stream: st.def.id, rendition: r.info.id },
              value: r.timeline.headMsn() ?? -1,
            })),
          )
        : [],
    );
    stats.addGauge(
      "understudy_packager_disk_dropped_writes",
      "Disk writes dropped because the queue was full.",
      () => disk?.dropped ?? 0,
    );
  }

  async function dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = clock.monotonicMs();
    const { path, query } = splitUrl(req.url ?? "/");
    if (faults && (await faults.handle(req, res, path))) return;
    const segs = path.split("/").slice(1);
    const head = segs[0];
    let route: RouteKind = "other";
    let code = 200;
    let bytes = 0;
    try {
      if (head === "live") {
        res.setHeader("access-control-allow-origin", "*");
        res.setHeader("access-control-expose-headers", "CMSD-Static, CMSD-Dynamic, ETag");
        if (draining && drainDeadlineUnixMs > 0 && clock.nowMs() >= drainDeadlineUnixMs) {
          code = 503;
          sendText(
            res,
            503,
            "this node was drained (deadline passed) and serves no playback; use another origin",
            {
              "retry-after": "1",
            },
          );
        } else if (req.method === "OPTIONS") {
          res.writeHead(204, {
            "access-control-allow-methods": "GET, HEAD",
            "access-control-allow-headers":
              "CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session, If-None-Match",
            "access-control-max-age": "86400",
          });
          res.end();
          code = 204;
        } else {
          const served: Served = playbackCtx
            ? await handlePlayback(playbackCtx, req, res, segs.slice(1), query)
            : await edge!.handle(req, res, segs.slice(1), query);
          ({ status: code, route, bytes } = served);
        }
      } else if (head === "ingest") {
        route = "ingest";
        const delayMs = faults?.ingestDelayMs() ?? 0;
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        if (ingestCtx) code = await handleIngest(ingestCtx, req, res, segs.slice(1));
        else {
          sendText(res, 404, "edge nodes do not ingest; push to an origin");
          code = 404;
        }
      } else if (path === "/status") {
        route = "status";
        sendJson(res, 200, status());
      } else if (path === "/metrics") {
        route = "status";
        const body = stats.registry.render();
        res.writeHead(200, {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
        });
        res.end(body);
      } else if (path === "/healthz") {
        route = "status";
        sendText(res, 200, draining ? "ok (draining)" : "ok");
      } else if (path === "/readyz") {
        route = "status";
        code = draining ? 503 : 200;
        sendText(res, code, draining ? "draining: not accepting new sessions" : "ready");
      } else if (path === "/utc") {
        res.setHeader("access-control-allow-origin", "*");
        code = handleUtc(req, res, clock.nowMs());
      } else if (head === "replica") {
        route = "replica";
        code = handleReplica(store, req, res, segs.slice(1), query);
      } else {
        code = 404;
        sendText(res, 404, `no route for ${path}`);
      }
    } catch (err) {
      logger.error("request failed", { err, url: req.url });
      code = 500;
      sendText(res, 500, "internal error");
    }
    stats.recordRequest(route, code, clock.monotonicMs() - t0, bytes, clock.nowMs());
  }

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    void dispatch(req, res);
  });
  server.requestTimeout = config.ingest.requestTimeoutMs;
  server.headersTimeout = Math.min(config.ingest.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = 65_000;
  let urls: PackagerNodeUrls = { http: "" };
  let control: { address: string; close(): Promise<void> } | undefined;

  const node: PackagerNode = {
    config,
    logger,
    get urls() {
      return urls;
    },
    store,
    stats,
    sessions,
    fence,
    edge,
    handoverHints,
    async start() {
      await fence.load();
      if (store) {
        for (const sc of config.streams) {
          defineStream(streamDefFromConfig(sc, config.playback.windowSegments));
          const st = store.streams.get(sc.id)!;
          const restored = await store.restoreFromDisk(st, clock.nowMs());
          if (restored > 0)
            logger.info("restored segments from disk", { stream: sc.id, segments: restored });
        }
      }
      const [host, portText] = splitHostPort(config.listen);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(Number(portText), host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const addr = server.address() as AddressInfo;
      const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      urls = { http: `http://${shownHost}:${addr.port}` };
      if (config.control) {
        control = await (deps.startControl ?? startPackagerControl)(node);
        urls = { ...urls, control: control.address };
      }
      logger.info("packager-node started", {
        mode: config.mode,
        http: urls.http,
        control: urls.control,
      });
    },
    async stop() {
      faults?.stop();
      await control?.close();
      edge?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await disk?.flush();
    },
    drain(deadlineUnixMs = 0) {
      draining = true;
      drainDeadlineUnixMs = deadlineUnixMs;
      logger.info("draining", { deadlineUnixMs });
    },
    isDraining: () => draining,
    setCmsdHint(provider) {
      extraCmsdHint = provider;
    },
    setSteering(streamId, s) {
      if (s) steering.set(streamId, s);
      else steering.delete(streamId);
      const st = store?.streams.get(streamId);
      if (st) {
        const { steering: _old, ...rest } = st.def;
        store!.defineStream(s ? { ...rest, steering: s } : rest);
      }
    },
    defineStream,
    status,
  };
  return node;
}

export function splitHostPort(addr: string): [string, string] {
  const i = addr.lastIndexOf(":");
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return [host, addr.slice(i + 1)];
}
