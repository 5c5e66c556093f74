/**
 * The metric names agents report. This file is the single source: the agent
 * emits only these names and the predict engine reads the same constants, so a
 * rename is a compile error on both sides instead of a silently empty window.
 *
 * Units are the `MetricSample.unit` vocabulary of
 * proto/understudy/common/v1/metric.proto. Gauges are values at the report's
 * timestamp; `_per_s` names are rates over the previous sampling interval;
 * counters (restarts, dropped/dup frames) are cumulative as their source
 * reports them, so a consumer derives increases from consecutive samples.
 */
export type MetricUnit =
  | "ratio"
  | "bytes"
  | "bytes_per_second"
  | "count"
  | "count_per_second"
  | "ms";

export interface MetricDefinition {
  readonly unit: MetricUnit;
  /** Labels the sample carries (fixed keys), e.g. ["mount"]. */
  readonly labels: readonly string[];
  readonly help: string;
}

export const metricDefinitions = {
  "cpu.load": { unit: "ratio", labels: [], help: "Host CPU busy share, all cores (0..1)." },
  "mem.used_bytes": { unit: "bytes", labels: [], help: "Memory in use (total - available)." },
  "mem.available_bytes": {
    unit: "bytes",
    labels: [],
    help: "Memory available for new work without swapping (MemAvailable).",
  },
  "mem.swap_used_bytes": { unit: "bytes", labels: [], help: "Swap in use." },
  "disk.read_bytes_per_s": {
    unit: "bytes_per_second",
    labels: [],
    help: "Bytes read from whole disks (partitions not double-counted).",
  },
  "disk.write_bytes_per_s": {
    unit: "bytes_per_second",
    labels: [],
    help: "Bytes written to whole disks.",
  },
  "disk.io_wait": {
    unit: "ratio",
    labels: [],
    help: "Share of CPU time idle while waiting for I/O (0..1, /proc/stat iowait).",
  },
  "fs.used_ratio": {
    unit: "ratio",
    labels: ["mount"],
    help: "Used share of a filesystem as df shows it (used / (used + avail)).",
  },
  "fs.free_bytes": {
    unit: "bytes",
    labels: ["mount"],
    help: "Bytes available to unprivileged users on a filesystem.",
  },
  "net.rx_bytes_per_s": {
    unit: "bytes_per_second",
    labels: [],
    help: "Received bytes, summed over the watched interfaces.",
  },
  "net.tx_bytes_per_s": {
    unit: "bytes_per_second",
    labels: [],
    help: "Transmitted bytes, summed over the watched interfaces.",
  },
  "net.rx_errors_per_s": {
    unit: "count_per_second",
    labels: [],
    help: "Receive errors, summed over the watched interfaces.",
  },
  "net.rx_dropped_per_s": {
    unit: "count_per_second",
    labels: [],
    help: "Received packets dropped, summed over the watched interfaces.",
  },
  "proc.up": {
    unit: "ratio",
    labels: [],
    help: "1 while the watched service's main process exists, 0 when it is gone (only with `watch` configured).",
  },
  "proc.cpu": {
    unit: "count",
    labels: [],
    help: "CPU used by the watched service's main process, in cores (1.5 = one and a half cores).",
  },
  "proc.rss_bytes": { unit: "bytes", labels: [], help: "Resident memory of the watched process." },
  "proc.fds": { unit: "count", labels: [], help: "Open file descriptors of the watched process." },
  "proc.restarts": {
    unit: "count",
    labels: [],
    help: "Restarts of the watched service (systemd NRestarts plus main-PID changes seen by this agent); cumulative.",
  },
  "cgroup.memory_max_bytes": {
    unit: "bytes",
    labels: [],
    help: "memory.max of the watched service's cgroup (the agent's own without `watch`); only when limited.",
  },
  "cgroup.cpu_max_cores": {
    unit: "count",
    labels: [],
    help: "cpu.max quota/period of the watched service's cgroup (the agent's own without `watch`), in cores; only when limited.",
  },
  "encoder.fps": {
    unit: "count_per_second",
    labels: [],
    help: "Frames per second ffmpeg reports in its -progress output.",
  },
  "encoder.speed": {
    unit: "ratio",
    labels: [],
    help: "Encoding speed as a multiple of real time (1 = real time; not bounded by 1).",
  },
  "encoder.dropped_frames": {
    unit: "count",
    labels: [],
    help: "Frames dropped by ffmpeg (drop_frames); cumulative.",
  },
  "encoder.dup_frames": {
    unit: "count",
    labels: [],
    help: "Frames duplicated by ffmpeg (dup_frames); cumulative.",
  },
  "packager.ingest_latency_ms": {
    unit: "ms",
    labels: [],
    help: "Packager-reported delay between a shard's media time and its arrival.",
  },
  "packager.error_rate": {
    unit: "ratio",
    labels: [],
    help: "Share of packager requests answered with an error (0..1).",
  },
  "packager.cache_hit_ratio": {
    unit: "ratio",
    labels: [],
    help: "Share of packager reads served from its cache (0..1).",
  },
  "probe.rtt_ms": {
    unit: "ms",
    labels: ["target"],
    help: 'Round trip of an HTTP probe, or of report→ack towards the coordinator (target "coordinator").',
  },
  "probe.loss_ratio": {
    unit: "ratio",
    labels: ["target"],
    help: "Share of recent probes (or reports awaiting an ack) that failed or timed out (0..1).",
  },
} as const satisfies Record<string, MetricDefinition>;

/** Fixed metric names (per-core names are built with `cpuCoreMetric`). */
export type FixedMetricName = keyof typeof metricDefinitions;

/** Every name an agent may emit: a fixed name or "cpu.load.core.N". */
export type MetricName = FixedMetricName | `cpu.load.core.${number}`;

export const metricNames: readonly FixedMetricName[] = Object.keys(
  metricDefinitions,
) as FixedMetricName[];

/** Per-core load, same unit as "cpu.load"; N counts from 0 as the kernel numbers CPUs. */
export const cpuCoreMetricPrefix = "cpu.load.core.";

export function cpuCoreMetric(core: number): MetricName {
  return `${cpuCoreMetricPrefix}${core}` as MetricName;
}

export function isMetricName(name: string): name is MetricName {
  if (name in metricDefinitions) return true;
  return (
    name.startsWith(cpuCoreMetricPrefix) && /^\d{1,4}$/.test(name.slice(cpuCoreMetricPrefix.length))
  );
}

export function unitOf(name: MetricName): MetricUnit {
  const def = (metricDefinitions as Record<string, MetricDefinition>)[name];
  return def ? def.unit : "ratio";
}

/** One measured value as the agent's samplers produce it (mapped to MetricSample on the wire). */
export interface AgentSample {
  readonly name: MetricName;
  readonly value: number;
  readonly labels?: Readonly<Record<string, string>>;
}
