/**
 * Parsers for the Linux procfs files the host sampler reads. Pure functions
 * of the file text, so they are tested on fixed text as well as on this
 * machine's real files. Counters are returned raw; rates are computed by the
 * sampler from two readings.
 */
import { readdirSync, readFileSync } from "node:fs";

/**
 * Reads a procfs/sysfs/cgroupfs file synchronously; undefined if it cannot be
 * read. Only for those kernel filesystems: their contents are generated from
 * kernel memory, so a read never waits on a disk, and a synchronous read is
 * one open/read/close instead of four thread-pool round trips (measured: the
 * async reads were the largest CPU cost of sampling).
 */
export function readKernelFile(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Directory entries of a kernel filesystem directory (see `readKernelFile`). */
export function readKernelDir(path: string): string[] | undefined {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
}

/** Jiffies per CPU line of /proc/stat ("cpu" = all cores, then "cpu0", "cpu1", ...). */
export interface CpuTimes {
  /** Everything except idle and iowait. */
  busy: number;
  idle: number;
  iowait: number;
  total: number;
}

export interface ProcStat {
  all: CpuTimes;
  /** Index = kernel CPU number. Offline CPUs are missing from /proc/stat and left undefined. */
  cores: (CpuTimes | undefined)[];
}

export function parseProcStat(text: string): ProcStat {
  let all: CpuTimes | undefined;
  const cores: (CpuTimes | undefined)[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("cpu")) continue;
    const parts = line.trim().split(/\s+/);
    const name = parts[0]!;
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already included in user/nice, so it is not added again.
    const v = parts.slice(1, 9).map(Number);
    if (v.length < 4 || v.some((x) => !Number.isFinite(x))) continue;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
      v;
    const busy = user + nice + system + irq + softirq + steal;
    const t: CpuTimes = { busy, idle, iowait, total: busy + idle + iowait };
    if (name === "cpu") all = t;
    else {
      const n = Number(name.slice(3));
      if (Number.isInteger(n) && n >= 0 && n < 4096) cores[n] = t;
    }
  }
  if (!all) throw new Error('/proc/stat has no "cpu" line');
  return { all, cores };
}

export interface MemInfo {
  totalBytes: number;
  availableBytes: number;
  swapTotalBytes: number;
  swapFreeBytes: number;
}

export function parseMeminfo(text: string): MemInfo {
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]));
  }
  const total = kb.get("MemTotal");
  if (total === undefined) throw new Error("/proc/meminfo has no MemTotal");
  // MemAvailable exists since Linux 3.14; older kernels get the classic estimate.
  const available =
    kb.get("MemAvailable") ??
    (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return {
    totalBytes: total * 1024,
    availableBytes: available * 1024,
    swapTotalBytes: (kb.get("SwapTotal") ?? 0) * 1024,
    swapFreeBytes: (kb.get("SwapFree") ?? 0) * 1024,
  };
}

export interface DiskCounters {
  readBytes: number;
  writeBytes: number;
}

/** Sums sectors read/written over `devices` (whole disks); /proc/diskstats sectors are 512 bytes. */
export function parseDiskstats(text: string, devices: ReadonlySet<string>): DiskCounters {
  let readBytes = 0;
  let writeBytes = 0;
  for (const line of text.split("\n")) {
    const p = line.trim().split(/\s+/);
    if (p.length < 10 || !devices.has(p[2]!)) continue;
    readBytes += Number(p[5]) * 512;
    writeBytes += Number(p[9]) * 512;
  }
  return { readBytes, writeBytes };
}

export interface NetCounters {
  rxBytes: number;
  txBytes: number;
  rxErrors: number;
  rxDropped: number;
  interfaces: string[];
}

/**
 * Sums /proc/net/dev counters over `interfaces` (all but loopback when empty).
 */
export function parseNetDev(text: string, interfaces: readonly string[]): NetCounters {
  const want = new Set(interfaces);
  const out: NetCounters = { rxBytes: 0, txBytes: 0, rxErrors: 0, rxDropped: 0, interfaces: [] };
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.includes("|")) continue;
    const name = line.slice(0, colon).trim();
    if (want.size > 0 ? !want.has(name) : name === "lo") continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 16) continue;
    out.rxBytes += f[0]!;
    out.rxErrors += f[2]!;
    out.rxDropped += f[3]!;
    out.txBytes += f[8]!;
    out.interfaces.push(name);
  }
  return out;
}

/**
 * Clock ticks per second of /proc times (USER_HZ). The kernel fixes it at 100
 * in the user ABI on every mainstream architecture; Node cannot query sysconf.
 */
export const userHz = 100;

export interface ProcPidStat {
  /** One letter: R running, S sleeping, D disk sleep, Z zombie, ... */
  state: string;
  /** Clock ticks since boot when the process started: with the pid, identifies one process. */
  startTimeTicks: number;
  utimeTicks: number;
  stimeTicks: number;
}

/** /proc/<pid>/stat; the command name may hold spaces and parentheses, so parse after the last ")". */
export function parsePidStat(text: string): ProcPidStat {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new Error("malformed /proc/<pid>/stat");
  const f = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // f[0] is field 3 (state); field n is f[n - 3].
  const num = (field: number) => Number(f[field - 3]);
  return {
    state: f[0] ?? "",
    utimeTicks: num(14),
    stimeTicks: num(15),
    startTimeTicks: num(22),
  };
}

/** Resident set size from /proc/<pid>/status (VmRSS, kB; absent for kernel threads). */
export function parseStatusRssBytes(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}
