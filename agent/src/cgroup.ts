/**
 * Cgroup limits (systemd MemoryMax= / CPUQuota=, or a container's limits):
 * "memory close to memory.max" predicts an OOM kill better than host memory
 * does. Read for the watched service's main process when the agent watches
 * one (the agent's own unit has limits of its own that say nothing about the
 * service), else for the agent itself (a container it shares with the
 * component). Supports cgroup v2 (unified) and v1 (memory + cpu
 * controllers). Unlimited values are not reported.
 */
import { join } from "node:path";
import { readKernelFile } from "./procfs.ts";

export interface CgroupLimits {
  memoryMaxBytes?: number;
  cpuMaxCores?: number;
}

export interface CgroupPaths {
  memoryMaxFile?: string;
  cpuMaxFile?: string;
  /** v1 splits quota and period into two files. */
  cpuPeriodFile?: string;
  version: 1 | 2;
}

/** v1 reports "no limit" as a page-rounded 2^63-1; anything above 2^60 is treated as unlimited. */
const unlimitedAbove = 2 ** 60;

/**
 * Maps /proc/self/cgroup to limit files. `hasUnifiedControllers` tells whether
 * /sys/fs/cgroup is a cgroup v2 mount with controllers (pure v2 host).
 */
export function cgroupPaths(
  procSelfCgroup: string,
  hasUnifiedControllers: boolean,
  root = "/sys/fs/cgroup",
): CgroupPaths {
  const lines = procSelfCgroup
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (hasUnifiedControllers) {
    const v2 = lines.find((l) => l.startsWith("0::"));
    const path = v2 ? v2.slice(3) : "/";
    return {
      version: 2,
      memoryMaxFile: join(root, path, "memory.max"),
      cpuMaxFile: join(root, path, "cpu.max"),
    };
  }
  const out: CgroupPaths = { version: 1 };
  for (const l of lines) {
    const [, controllers = "", path = "/"] = l.split(":");
    const list = controllers.split(",");
    if (list.includes("memory")) {
      out.memoryMaxFile = join(root, "memory", path, "memory.limit_in_bytes");
    }
    if (list.includes("cpu")) {
      // The hierarchy directory is named after its controller list ("cpu" or "cpu,cpuacct").
      out.cpuMaxFile = join(root, controllers, path, "cpu.cfs_quota_us");
      out.cpuPeriodFile = join(root, controllers, path, "cpu.cfs_period_us");
    }
  }
  return out;
}

/** "max" or a byte count (v2 memory.max), or a byte count (v1 limit_in_bytes). */
export function parseMemoryMax(text: string): number | undefined {
  const t = text.trim();
  if (t === "max") return undefined;
  const n = Number(t);
  return Number.isFinite(n) && n > 0 && n < unlimitedAbove ? n : undefined;
}

/** v2 cpu.max "QUOTA PERIOD" ("max 100000" = unlimited), or v1 quota (-1 = unlimited) and period. */
export function parseCpuMax(text: string, v1PeriodText?: string): number | undefined {
  const [q = "", p = ""] = text.trim().split(/\s+/);
  const quota = Number(q);
  const period = Number(v1PeriodText !== undefined ? v1PeriodText.trim() : p);
  if (q === "max" || !(quota > 0) || !(period > 0)) return undefined;
  return quota / period;
}

export interface CgroupReader {
  read(): Promise<CgroupLimits>;
}

/**
 * `pid()` names the process whose cgroup is read, looked up at every read
 * (the watched service's pid changes on restarts); "self" = the agent;
 * undefined = nothing to read (the watched service is down).
 */
export function createCgroupReader(
  pid: () => number | "self" | undefined = () => "self",
  root = "/sys/fs/cgroup",
): CgroupReader {
  const unified = (readKernelFile(join(root, "cgroup.controllers")) ?? "") !== "";
  return {
    async read() {
      const who = pid();
      const membership = who === undefined ? undefined : readKernelFile(`/proc/${who}/cgroup`);
      if (membership === undefined) return {};
      const paths = cgroupPaths(membership, unified, root);
      const readOpt = (f: string | undefined) => (f === undefined ? undefined : readKernelFile(f));
      const mem = readOpt(paths.memoryMaxFile);
      const cpu = readOpt(paths.cpuMaxFile);
      const period = readOpt(paths.cpuPeriodFile);
      const out: CgroupLimits = {};
      const m = mem === undefined ? undefined : parseMemoryMax(mem);
      if (m !== undefined) out.memoryMaxBytes = m;
      const c =
        cpu === undefined
          ? undefined
          : parseCpuMax(cpu, paths.version === 1 ? (period ?? "") : undefined);
      if (c !== undefined) out.cpuMaxCores = c;
      return out;
    },
  };
}
