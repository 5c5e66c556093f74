/**
 * Everything /status and /metrics report about one packager-node. Counters
 * are cumulative (Prometheus); the rolling windows (60 s) feed /status and
 * PackagerService.GetStatus.
 */
import {
  Counter,
  Gauge,
  Histogram,
  LATENCY_BUCKETS_MS,
  RateWindow,
  Registry,
  SampleWindow,
} from "./metrics.ts";

export type RouteKind =
  | "ingest"
  | "playlist"
  | "blocking_playlist"
  | "multivariant"
  | "mpd"
  | "segment"
  | "part"
  | "init"
  | "status"
  | "replica"
  | "other";

export class NodeStats {
  readonly registry = new Registry();
  readonly requests = this.registry.add(
    new Counter(
      "understudy_packager_http_requests_total",
      "HTTP requests by route and status code.",
    ),
  );
  readonly latency = this.registry.add(
    new Histogram(
      "understudy_packager_http_response_ms",
      "Time from request to response end, ms (blocking reloads include the hold).",
      LATENCY_BUCKETS_MS,
    ),
  );
  readonly bytesSent = this.registry.add(
    new Counter("understudy_packager_http_sent_bytes_total", "Response body bytes by route."),
  );
  readonly ingestObjects = this.registry.add(
    new Counter(
      "understudy_packager_ingest_objects_total",
      "Ingested objects by kind and outcome (created, repeat, rejected_<status>).",
    ),
  );
  readonly ingestBytes = this.registry.add(
    new Counter("understudy_packager_ingest_bytes_total", "Accepted ingest body bytes."),
  );
  readonly ingestLagHist = this.registry.add(
    new Histogram(
      "understudy_packager_ingest_lag_ms",
      "Arrival wall time minus the media end time (program date-time + duration) of a part or segment, ms.",
      [...LATENCY_BUCKETS_MS, 30000],
    ),
  );
  readonly cacheLookups = this.registry.add(
    new Counter(
      "understudy_packager_cache_lookups_total",
      "Media object lookups by result (hit, miss, disk).",
    ),
  );
  readonly cmcdErrors = this.registry.add(
    new Counter(
      "understudy_packager_cmcd_errors_total",
      "CMCD keys dropped because they were malformed.",
    ),
  );
  readonly blockingTimeouts = this.registry.add(
    new Counter(
      "understudy_packager_blocking_timeouts_total",
      "Blocking playlist reloads answered 503 after the hold limit.",
    ),
  );
  readonly edgeUpstream = this.registry.add(
    new Counter(
      "understudy_packager_edge_upstream_total",
      "Edge requests to origins by origin and outcome.",
    ),
  );
  readonly edgePrefetch = this.registry.add(
    new Counter(
      "understudy_packager_edge_prefetch_total",
      "Edge prefetches by outcome (started, skipped_busy, failed).",
    ),
  );

  /** Rolling 60 s windows. */
  readonly requestWindow = new RateWindow(60);
  readonly serverErrorWindow = new RateWindow(60);
  readonly clientErrorWindow = new RateWindow(60);
  readonly lookupWindow = new RateWindow(60);
  readonly hitWindow = new RateWindow(60);
  readonly ingestLag = new SampleWindow(2048, 60_000);
  /**
   * The last 5 s of ingest lag: what the agent reports each second, so a
   * degrading ingest path shows within seconds (the 60 s median would hide it
   * for half a minute).
   */
  readonly ingestLagRecent = new SampleWindow(256, 5_000);
  readonly ingestProcessing = new SampleWindow(2048, 60_000);

  addGauge(name: string, help: string, read: ConstructorParameters<typeof Gauge>[2]): void {
    this.registry.add(new Gauge(name, help, read));
  }

  recordRequest(
    route: RouteKind,
    status: number,
    elapsedMs: number,
    bytes: number,
    nowMs: number,
  ): void {
    const keys = this.keysFor(route, status);
    this.requests.incKey(keys.routeCode);
    this.latency.observeKey(elapsedMs, keys.route);
    if (bytes > 0) this.bytesSent.incKey(keys.route, bytes);
    this.requestWindow.add(nowMs);
    if (status >= 500) this.serverErrorWindow.add(nowMs);
    else if (status >= 400) this.clientErrorWindow.add(nowMs);
  }

  recordLookup(result: "hit" | "miss" | "disk", nowMs: number): void {
    this.cacheLookups.inc({ result });
    this.lookupWindow.add(nowMs);
    if (result === "hit") this.hitWindow.add(nowMs);
  }

  recordIngestLag(lagMs: number, nowMs: number): void {
    this.ingestLag.add(nowMs, lagMs);
    this.ingestLagRecent.add(nowMs, lagMs);
    this.ingestLagHist.observe(lagMs);
  }

  /** Rendered label sets of the request counters, reused on the hot path (bounded: routes × status codes). */
  private readonly requestKeys = new Map<string, { routeCode: string; route: string }>();
  private keysFor(route: RouteKind, status: number): { routeCode: string; route: string } {
    const k = `${route}|${status}`;
    let keys = this.requestKeys.get(k);
    if (!keys) {
      keys = {
        routeCode: Counter.key({ route, code: String(status) }),
        route: Counter.key({ route }),
      };
      if (this.requestKeys.size < 1000) this.requestKeys.set(k, keys);
    }
    return keys;
  }

  /** Numbers shared by /status and GetStatus. */
  summary(nowMs: number): {
    requestsPerSecond: number;
    errorRatio: number;
    clientErrorRatio: number;
    cacheHitRatio: number;
    ingestLagP50Ms: number;
    ingestLagP99Ms: number;
    ingestLagRecentP50Ms: number;
    ingestLagRecentP99Ms: number;
    ingestProcessingP50Ms: number;
    ingestProcessingP99Ms: number;
  } {
    const total = this.requestWindow.sum(nowMs);
    const lookups = this.lookupWindow.sum(nowMs);
    const [lag50, lag99] = this.ingestLag.quantiles(nowMs, [0.5, 0.99]);
    const [proc50, proc99] = this.ingestProcessing.quantiles(nowMs, [0.5, 0.99]);
    const [recent50, recent99] = this.ingestLagRecent.quantiles(nowMs, [0.5, 0.99]);
    return {
      requestsPerSecond: total / 60,
      errorRatio: total > 0 ? this.serverErrorWindow.sum(nowMs) / total : 0,
      clientErrorRatio: total > 0 ? this.clientErrorWindow.sum(nowMs) / total : 0,
      cacheHitRatio: lookups > 0 ? this.hitWindow.sum(nowMs) / lookups : 0,
      ingestLagP50Ms: lag50!,
      ingestLagP99Ms: lag99!,
      ingestLagRecentP50Ms: recent50!,
      ingestLagRecentP99Ms: recent99!,
      ingestProcessingP50Ms: proc50!,
      ingestProcessingP99Ms: proc99!,
    };
  }
}
