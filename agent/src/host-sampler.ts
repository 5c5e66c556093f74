/**
 * Host metrics behind a small interface, so the agent loop can run on a
 * fixed-value sampler in tests and on the real host in production.
 *
 * Two real implementations, same metric names and units:
 * - "procfs" (Linux default): reads /proc and statfs directly. Measured here,
 *   systeminformation's per-second calls spawn shell pipelines (cat | grep,
 *   lsblk | sed | awk, df) costing ~2.5% of a core at 1 Hz, over the agent's
 *   whole 1% budget; direct reads cost a small fraction of that. Static host
 *   facts still come from systeminformation, once at start.
 * - "systeminformation": the portable path (macOS/BSD dev machines), also
 *   usable on Linux. It cannot see CPU iowait, so it omits "disk.io_wait".
 *
 * Both take a warm-up reading in `start()`: rates need two readings (and
 * systeminformation returns null rates on its first call), so the first
 * reading is never reported.
 */
import { statfs } from "node:fs/promises";
import { hostname } from "node:os";
import si from "systeminformation";
import type { Clock } from "../../common/clock.ts";
import type { CgroupReader } from "./cgroup.ts";
import { type AgentSample, cpuCoreMetric } from "./metric-names.ts";
import {
  type CpuTimes,
  type DiskCounters,
  type NetCounters,
  parseDiskstats,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  readKernelDir,
  readKernelFile,
} from "./procfs.ts";

/** Facts about the host read once at start (sent in Hello as the measured capacity). */
export interface HostInfo {
  hostname: string;
  platform: string;
  os: string;
  kernel: string;
  cpuBrand: string;
  cpuCores: number;
  memoryBytes: number;
}

export interface HostSampler {
  /** Reads static host facts and takes the warm-up reading. Call once, before `sample`. */
  start(): Promise<HostInfo>;
  /** Current values; rates cover the time since the previous call (or since `start`). */
  sample(): Promise<AgentSample[]>;
}

export interface HostSamplerOptions {
  /** Mount points reported under fs.* with label `mount`. */
  filesystems: readonly string[];
  /** Interfaces summed into net.*; empty = all but loopback. */
  interfaces: readonly string[];
  clock: Clock;
  cgroup?: CgroupReader;
}

/** A sampler returning the same values every time (tests, simulations). */
export function createFixedSampler(
  samples: readonly AgentSample[],
  info: Partial<HostInfo> = {},
): HostSampler {
  return {
    start: async () => ({
      hostname: "fixed",
      platform: "test",
      os: "test",
      kernel: "",
      cpuBrand: "fixed",
      cpuCores: 1,
      memoryBytes: 1024 ** 3,
      ...info,
    }),
    sample: async () => samples.slice(),
  };
}

async function readStaticInfo(): Promise<HostInfo> {
  const [cpu, os, mem] = await Promise.all([si.cpu(), si.osInfo(), si.mem()]);
  return {
    hostname: hostname(),
    platform: os.platform,
    os: `${os.distro} ${os.release}`.trim(),
    kernel: os.kernel,
    cpuBrand: `${cpu.manufacturer} ${cpu.brand}`.trim(),
    cpuCores: cpu.cores,
    memoryBytes: mem.total,
  };
}

async function cgroupSamples(reader: CgroupReader | undefined): Promise<AgentSample[]> {
  if (!reader) return [];
  const lim = await reader.read();
  const out: AgentSample[] = [];
  if (lim.memoryMaxBytes !== undefined) {
    out.push({ name: "cgroup.memory_max_bytes", value: lim.memoryMaxBytes });
  }
  if (lim.cpuMaxCores !== undefined) {
    out.push({ name: "cgroup.cpu_max_cores", value: lim.cpuMaxCores });
  }
  return out;
}

async function filesystemSamples(mounts: readonly string[]): Promise<AgentSample[]> {
  const out: AgentSample[] = [];
  const stats = await Promise.all(mounts.map((m) => statfs(m).catch(() => undefined)));
  mounts.forEach((mount, i) => {
    const st = stats[i];
    if (!st) return;
    // df semantics: reserved root blocks count neither as used nor as available.
    const used = (st.blocks - st.bfree) * st.bsize;
    const avail = st.bavail * st.bsize;
    out.push({
      name: "fs.used_ratio",
      value: used + avail > 0 ? used / (used + avail) : 0,
      labels: { mount },
    });
    out.push({ name: "fs.free_bytes", value: avail, labels: { mount } });
  });
  return out;
}

const ratio = (part: number, whole: number) =>
  whole > 0 ? Math.min(1, Math.max(0, part / whole)) : 0;
const rate = (now: number, prev: number, seconds: number) =>
  seconds > 0 ? Math.max(0, now - prev) / seconds : 0;

interface ProcfsReading {
  atMs: number;
  cpu: CpuTimes;
  cores: (CpuTimes | undefined)[];
  disk: DiskCounters;
  net: NetCounters;
}

/** Block devices that are real disks (have a backing device): no loop, ram, dm or md doubles. */
function wholeDisks(sysRoot: string): Set<string> {
  const names = readKernelDir(`${sysRoot}/block`) ?? [];
  return new Set(names.filter((n) => readKernelDir(`${sysRoot}/block/${n}/device`) !== undefined));
}

export function createProcfsSampler(
  opts: HostSamplerOptions & { procRoot?: string; sysRoot?: string },
): HostSampler {
  const proc = opts.procRoot ?? "/proc";
  const sys = opts.sysRoot ?? "/sys";
  let disks = new Set<string>();
  let prev: ProcfsReading | undefined;

  const read = (): ProcfsReading & { memText: string } => {
    const stat = readKernelFile(`${proc}/stat`);
    const memText = readKernelFile(`${proc}/meminfo`);
    if (stat === undefined || memText === undefined) {
      throw new Error(`cannot read ${proc}/stat or ${proc}/meminfo`);
    }
    const s = parseProcStat(stat);
    return {
      atMs: opts.clock.monotonicMs(),
      cpu: s.all,
      cores: s.cores,
      disk: parseDiskstats(readKernelFile(`${proc}/diskstats`) ?? "", disks),
      net: parseNetDev(readKernelFile(`${proc}/net/dev`) ?? "", opts.interfaces),
      memText,
    };
  };

  return {
    async start() {
      const info = await readStaticInfo();
      disks = wholeDisks(sys);
      prev = read();
      return info;
    },
    async sample() {
      if (!prev) throw new Error("host sampler: call start() before sample()");
      const [fsOut, cgOut] = await Promise.all([
        filesystemSamples(opts.filesystems),
        cgroupSamples(opts.cgroup),
      ]);
      const now = read();
      const p = prev;
      prev = now;
      const seconds = (now.atMs - p.atMs) / 1000;
      const dTotal = now.cpu.total - p.cpu.total;
      const mem = parseMeminfo(now.memText);
      const out: AgentSample[] = [
        { name: "cpu.load", value: ratio(now.cpu.busy - p.cpu.busy, dTotal) },
      ];
      now.cores.forEach((c, i) => {
        const q = p.cores[i];
        if (c && q)
          out.push({ name: cpuCoreMetric(i), value: ratio(c.busy - q.busy, c.total - q.total) });
      });
      out.push(
        { name: "mem.used_bytes", value: Math.max(0, mem.totalBytes - mem.availableBytes) },
        { name: "mem.available_bytes", value: mem.availableBytes },
        { name: "mem.swap_used_bytes", value: Math.max(0, mem.swapTotalBytes - mem.swapFreeBytes) },
        {
          name: "disk.read_bytes_per_s",
          value: rate(now.disk.readBytes, p.disk.readBytes, seconds),
        },
        {
          name: "disk.write_bytes_per_s",
          value: rate(now.disk.writeBytes, p.disk.writeBytes, seconds),
        },
        { name: "disk.io_wait", value: ratio(now.cpu.iowait - p.cpu.iowait, dTotal) },
        ...fsOut,
        { name: "net.rx_bytes_per_s", value: rate(now.net.rxBytes, p.net.rxBytes, seconds) },
        { name: "net.tx_bytes_per_s", value: rate(now.net.txBytes, p.net.txBytes, seconds) },
        { name: "net.rx_errors_per_s", value: rate(now.net.rxErrors, p.net.rxErrors, seconds) },
        { name: "net.rx_dropped_per_s", value: rate(now.net.rxDropped, p.net.rxDropped, seconds) },
        ...cgOut,
      );
      return out;
    },
  };
}

export function createSystemInformationSampler(opts: HostSamplerOptions): HostSampler {
  let ifaces = "";
  let prevNet: { atMs: number; rxErrors: number; rxDropped: number } | undefined;

  const readAll = () =>
    Promise.all([si.currentLoad(), si.mem(), si.fsStats(), si.fsSize(), si.networkStats(ifaces)]);

  return {
    async start() {
      const info = await readStaticInfo();
      if (opts.interfaces.length > 0) ifaces = opts.interfaces.join(",");
      else {
        const list = await si.networkInterfaces();
        ifaces = (Array.isArray(list) ? list : [list])
          .filter((i) => !i.internal)
          .map((i) => i.iface)
          .join(",");
      }
      // Warm-up: systeminformation keeps the previous counters internally and
      // answers null rates until it has two readings.
      const [, , , , net] = await readAll();
      prevNet = {
        atMs: opts.clock.monotonicMs(),
        rxErrors: net.reduce((a, n) => a + n.rx_errors, 0),
        rxDropped: net.reduce((a, n) => a + n.rx_dropped, 0),
      };
      return info;
    },
    async sample() {
      if (!prevNet) throw new Error("host sampler: call start() before sample()");
      const [[load, mem, fsStats, fsSize, net], cgOut] = await Promise.all([
        readAll(),
        cgroupSamples(opts.cgroup),
      ]);
      const atMs = opts.clock.monotonicMs();
      const seconds = (atMs - prevNet.atMs) / 1000;
      const rxErrors = net.reduce((a, n) => a + n.rx_errors, 0);
      const rxDropped = net.reduce((a, n) => a + n.rx_dropped, 0);
      const out: AgentSample[] = [{ name: "cpu.load", value: ratio(load.currentLoad, 100) }];
      load.cpus.forEach((c, i) => {
        out.push({ name: cpuCoreMetric(i), value: ratio(c.load, 100) });
      });
      out.push(
        { name: "mem.used_bytes", value: Math.max(0, mem.total - mem.available) },
        { name: "mem.available_bytes", value: mem.available },
        { name: "mem.swap_used_bytes", value: mem.swapused },
      );
      if (fsStats && fsStats.rx_sec !== null && fsStats.wx_sec !== null) {
        out.push(
          { name: "disk.read_bytes_per_s", value: Math.max(0, fsStats.rx_sec) },
          { name: "disk.write_bytes_per_s", value: Math.max(0, fsStats.wx_sec) },
        );
      }
      for (const mount of opts.filesystems) {
        const fs = fsSize.find((f) => f.mount === mount);
        if (!fs) continue;
        const avail = fs.available;
        out.push(
          { name: "fs.used_ratio", value: ratio(fs.used, fs.used + avail), labels: { mount } },
          { name: "fs.free_bytes", value: avail, labels: { mount } },
        );
      }
      out.push(
        {
          name: "net.rx_bytes_per_s",
          value: net.reduce((a, n) => a + Math.max(0, n.rx_sec ?? 0), 0),
        },
        {
          name: "net.tx_bytes_per_s",
          value: net.reduce((a, n) => a + Math.max(0, n.tx_sec ?? 0), 0),
        },
        { name: "net.rx_errors_per_s", value: rate(rxErrors, prevNet.rxErrors, seconds) },
        { name: "net.rx_dropped_per_s", value: rate(rxDropped, prevNet.rxDropped, seconds) },
        ...cgOut,
      );
      prevNet = { atMs, rxErrors, rxDropped };
      return out;
    },
  };
}
