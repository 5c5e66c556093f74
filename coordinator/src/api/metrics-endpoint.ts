/**
 * Prometheus text exposition (format 0.0.4) of this coordinator node:
 * per-component gauges (status, last-seen age, liveness phi, a fixed set of
 * key host metrics) and the ingest and failure-detector counters.
 *
 * Cardinality is bounded: at most `componentsMax` components (by id order)
 * get per-component series; the rest are dropped from the scrape and counted
 * in understudy_metrics_components_dropped. Key metrics are a fixed list; a
 * labeled metric (fs.used_ratio per mount) is exported as its largest value
 * over label sets, so each component adds a bounded number of series.
 *
 * The runtime mounts `renderPrometheusMetrics` at GET /metrics on the API
 * listener's HTTP fallback (see `handleMetricsRequest`).
 */
import { metricDefinitions } from "../../../agent/src/metric-names.ts";
import type { Clock } from "../../../common/clock.ts";
import type { HttpFallback } from "../../../common/rpc-server.ts";
import {
  type Component,
  ComponentRole,
  ComponentStatus,
} from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { FailureDetector } from "../detect/index.ts";
import type { AgentIngest, ComponentCluster } from "../ingest/index.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Host metrics exported per component (bounded set). */
export const DEFAULT_KEY_METRICS: readonly string[] = [
  "cpu.load",
  "mem.available_bytes",
  "mem.used_bytes",
  "disk.io_wait",
  "fs.used_ratio",
  "net.rx_errors_per_s",
  "net.rx_dropped_per_s",
  "proc.rss_bytes",
  "proc.restarts",
  "encoder.speed",
  "encoder.fps",
  "packager.ingest_latency_ms",
  "packager.error_rate",
  "heartbeat.interval_ms",
];

export interface MetricsEndpointDeps {
  cluster: Pick<ComponentCluster, "nodeId" | "leadership" | "fsm">;
  ingest: Pick<AgentIngest, "stats" | "component" | "lastSeenUnixMs">;
  detector?: Pick<FailureDetector, "stats" | "livenessOf">;
  clock: Clock;
  /** Components with per-component series; default 1000. */
  componentsMax?: number;
  keyMetrics?: readonly string[];
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

/** Accumulates families so HELP/TYPE appear once, before their samples. */
class Exposition {
  private readonly lines: string[] = [];
  private readonly families = new Map<string, string[]>();
  private readonly order: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string): void {
    if (this.families.has(name)) return;
    this.families.set(name, [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`]);
    this.order.push(name);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const fam = this.families.get(name);
    if (fam === undefined) throw new Error(`metric family ${name} not declared`);
    let l = "";
    for (const k in labels) l += `${l ? "," : ""}${k}="${escapeLabelValue(labels[k]!)}"`;
    fam.push(`${name}${l ? `{${l}}` : ""} ${formatValue(value)}`);
  }

  text(): string {
    for (const n of this.order) this.lines.push(...this.families.get(n)!);
    return `${this.lines.join("\n")}\n`;
  }
}

const promName = (metric: string) => `understudy_component_${metric.replace(/\./g, "_")}`;

const lower = (e: Record<number, string>, v: number) => (e[v] ?? String(v)).toLowerCase();

export function renderPrometheusMetrics(deps: MetricsEndpointDeps): string {
  const { cluster, ingest, detector, clock } = deps;
  const max = deps.componentsMax ?? 1000;
  const keys = deps.keyMetrics ?? DEFAULT_KEY_METRICS;
  const x = new Exposition();
  const now = clock.nowMs();
  const leader = cluster.leadership().isLeader;

  x.family("understudy_node_is_leader", "gauge", "1 if this coordinator is the Raft leader.");
  x.sample("understudy_node_is_leader", { node: cluster.nodeId }, leader ? 1 : 0);

  // Per-component series, bounded.
  const all = cluster.fsm.components();
  const shown: Component[] = [...all].sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, max);
  x.family(
    "understudy_metrics_components_dropped",
    "gauge",
    "Components left out of this scrape by the per-component series cap.",
  );
  x.sample("understudy_metrics_components_dropped", {}, all.length - shown.length);
  x.family(
    "understudy_component_status",
    "gauge",
    "Replicated status of a component (1 for its current status).",
  );
  x.family(
    "understudy_component_last_seen_age_seconds",
    "gauge",
    "Seconds since this node last received anything from the component's agent (leader only).",
  );
  x.family(
    "understudy_component_liveness_phi",
    "gauge",
    "Phi-accrual suspicion level of the component's heartbeats (leader only).",
  );
  const defs = metricDefinitions as Record<string, { help: string } | undefined>;
  for (const m of keys) {
    const help =
      m === "heartbeat.interval_ms"
        ? "Interval between the last two live reports, ms (measured by the leader)."
        : (defs[m]?.help ?? m);
    x.family(promName(m), "gauge", `${help} Latest value; largest over label sets.`);
  }
  for (const c of shown) {
    const role = lower(ComponentRole, c.role);
    x.sample(
      "understudy_component_status",
      { component: c.id, role, status: lower(ComponentStatus, c.status) },
      1,
    );
    const seen = ingest.lastSeenUnixMs(c.id);
    if (leader && seen > 0) {
      x.sample(
        "understudy_component_last_seen_age_seconds",
        { component: c.id },
        Math.max(0, now - seen) / 1000,
      );
    }
    const v = leader ? detector?.livenessOf(c.id) : undefined;
    if (v !== undefined) x.sample("understudy_component_liveness_phi", { component: c.id }, v.phi);
    const store = ingest.component(c.id);
    if (store === undefined) continue;
    for (const m of keys) {
      const latest = store.latest(m);
      if (latest !== undefined) x.sample(promName(m), { component: c.id }, latest.value);
    }
  }

  const s = ingest.stats();
  const counter = (
    name: string,
    help: string,
    value: number,
    labels: Record<string, string> = {},
  ) => {
    x.family(name, "counter", help);
    x.sample(name, labels, value);
  };
  const gauge = (
    name: string,
    help: string,
    value: number,
    labels: Record<string, string> = {},
  ) => {
    x.family(name, "gauge", help);
    x.sample(name, labels, value);
  };
  gauge("understudy_ingest_active_streams", "Open agent streams on this node.", s.activeStreams);
  gauge(
    "understudy_ingest_components",
    "Components whose metric windows this node holds.",
    s.components,
  );
  counter("understudy_ingest_reports_total", "Reports ingested (duplicates excluded).", s.reports);
  counter("understudy_ingest_samples_total", "Metric samples ingested from reports.", s.samples);
  counter(
    "understudy_ingest_replayed_reports_total",
    "Ingested reports that agents replayed from their buffer.",
    s.replayedReports,
  );
  counter(
    "understudy_ingest_duplicate_reports_total",
    "Reports at or below the watermark, dropped (and acked).",
    s.duplicateReports,
  );
  counter(
    "understudy_ingest_gap_reports_total",
    "Reports lost in agents' buffers (sequence jumps).",
    s.gapReports,
  );
  counter(
    "understudy_ingest_skewed_reports_total",
    "Reports whose timestamp was too far from this node's clock.",
    s.skewedReports,
  );
  counter(
    "understudy_ingest_dropped_samples_total",
    "Samples not stored: a component hit its series cap.",
    s.droppedSamples,
  );
  counter(
    "understudy_ingest_late_samples_total",
    "Samples older than their series' newest (not stored).",
    s.lateSamples,
  );
  counter(
    "understudy_ingest_redirects_total",
    "Agent streams redirected to the leader.",
    s.redirects,
  );
  counter(
    "understudy_ingest_held_hellos_total",
    "Agent Hellos this follower held while an election settled, then redirected to the new leader.",
    s.heldHellos,
  );
  counter(
    "understudy_ingest_registrations_total",
    "RegisterComponent commands proposed for agents.",
    s.registrations,
  );
  counter(
    "understudy_ingest_streams_replaced_total",
    "Agent streams replaced by a newer stream.",
    s.streamsReplaced,
  );
  x.family(
    "understudy_ingest_rejected_total",
    "counter",
    "Agent streams ended for bad input, by reason.",
  );
  for (const [reason, n] of Object.entries(s.rejected))
    x.sample("understudy_ingest_rejected_total", { reason }, n);
  if (s.history !== undefined) {
    gauge("understudy_ingest_history_bytes", "Bytes in metric history files.", s.history.bytes);
    counter(
      "understudy_ingest_history_records_written_total",
      "History records written.",
      s.history.recordsWritten,
    );
    counter(
      "understudy_ingest_history_records_dropped_total",
      "History records dropped (slow disk).",
      s.history.recordsDropped,
    );
    counter(
      "understudy_ingest_history_write_errors_total",
      "Failed history writes.",
      s.history.writeErrors,
    );
  }

  if (detector !== undefined) {
    const d = detector.stats();
    gauge(
      "understudy_detector_leading",
      "1 while this node's failure detector runs (leader).",
      d.leading ? 1 : 0,
    );
    gauge(
      "understudy_detector_tracked_components",
      "Components the failure detector watches.",
      d.tracked,
    );
    counter(
      "understudy_detector_stall_seconds_total",
      "Event-loop stall of this node not counted against agents.",
      d.stallTotalMs / 1000,
    );
    counter(
      "understudy_detector_proposal_failures_total",
      "Status proposals that failed or were refused.",
      d.proposalsFailed,
    );
    x.family(
      "understudy_detector_status_proposals_total",
      "counter",
      "Status changes the failure detector committed.",
    );
    for (const [status, n] of Object.entries(d.proposed)) {
      x.sample("understudy_detector_status_proposals_total", { status }, n);
    }
    x.family("understudy_detector_components", "gauge", "Watched components by liveness state.");
    for (const [state, n] of Object.entries(d.states))
      x.sample("understudy_detector_components", { state }, n);
  }
  return x.text();
}

/**
 * HTTP fallback piece: answers GET/HEAD /metrics and returns true, or returns
 * false for other paths so the caller can go on routing.
 */
export function handleMetricsRequest(
  req: Parameters<HttpFallback>[0],
  response: Parameters<HttpFallback>[1],
  deps: MetricsEndpointDeps,
): boolean {
  const path = (req.url ?? "").split("?")[0];
  if (path !== "/metrics") return false;
  // Both HTTP/1.1 and HTTP/2 compat responses have these two methods.
  const res = response as unknown as {
    writeHead(status: number, headers: Record<string, string>): unknown;
    end(body?: string): unknown;
  };
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    res.end("use GET /metrics\n");
    return true;
  }
  const body = renderPrometheusMetrics(deps);
  res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}
