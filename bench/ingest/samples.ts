/** Sample sets for bench:ingest: names from agent/src/metric-names.ts, as a packager host reports them. */
import { metricNames, unitOf } from "../../agent/src/metric-names.ts";
import type { Rng } from "../../common/rng.ts";

/** A realistic packager-host sample set: 29 host/role samples with random values. */
export function sampleSet(rng: Rng): {
  name: string;
  value: number;
  unit: string;
  labels?: Record<string, string>;
}[] {
  const r = () => rng.next();
  const out: { name: string; value: number; unit: string; labels?: Record<string, string> }[] = [];
  const skip = new Set([
    "cgroup.memory_max_bytes",
    "cgroup.cpu_max_cores",
    "encoder.fps",
    "encoder.speed",
  ]);
  for (const n of metricNames) {
    if (skip.has(n) || n.startsWith("fs.") || n.startsWith("probe.")) continue;
    out.push({ name: n, value: r() * 1000, unit: unitOf(n) });
  }
  for (const mount of ["/", "/data"]) {
    out.push({ name: "fs.used_ratio", value: r(), unit: "ratio", labels: { mount } });
    out.push({ name: "fs.free_bytes", value: r() * 1e11, unit: "bytes", labels: { mount } });
  }
  out.push({ name: "probe.rtt_ms", value: r() * 5, unit: "ms", labels: { target: "coordinator" } });
  for (let c = 0; c < 4; c++) out.push({ name: `cpu.load.core.${c}`, value: r(), unit: "ratio" });
  return out.slice(0, 29);
}
