import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { cgroupPaths, parseCpuMax, parseMemoryMax } from "../../agent/src/cgroup.ts";
import {
  type AgentSample,
  createCgroupReader,
  createFixedSampler,
  createProcfsSampler,
  createSystemInformationSampler,
  type HostSampler,
  isMetricName,
  unitOf,
} from "../../agent/src/index.ts";
import {
  parseDiskstats,
  parseMeminfo,
  parseNetDev,
  parsePidStat,
  parseProcStat,
  parseStatusRssBytes,
} from "../../agent/src/procfs.ts";
import { systemClock } from "../../common/clock.ts";

const byName = (samples: AgentSample[], name: string) => samples.filter((s) => s.name === name);
const one = (samples: AgentSample[], name: string) => {
  const found = byName(samples, name);
  assert.equal(found.length, 1, `expected one ${name}, got ${found.length}`);
  return found[0]!.value;
};

/** Keeps a core busy for `ms` so a CPU rate cannot be zero. */
function burn(ms: number) {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

/** Writes and fsyncs `bytes` to the filesystem of `dir` so disk write counters move. */
function writeSynced(dir: string, bytes: number) {
  const fd = openSync(join(dir, "load.bin"), "w");
  try {
    writeSync(fd, Buffer.alloc(bytes, 7));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function checkCommon(samples: AgentSample[]) {
  for (const s of samples) {
    assert.ok(isMetricName(s.name), `unknown metric name ${s.name}`);
    assert.ok(Number.isFinite(s.value) && s.value >= 0, `${s.name} = ${s.value}`);
    if (unitOf(s.name) === "ratio" && !s.name.startsWith("encoder.")) {
      assert.ok(s.value <= 1, `${s.name} = ${s.value} is not a ratio`);
    }
  }
  const load = one(samples, "cpu.load");
  assert.ok(load > 0, "cpu.load must see the busy loop");
  const cores = samples.filter((s) => s.name.startsWith("cpu.load.core."));
  assert.equal(cores.length, cpus().length);
  const used = one(samples, "mem.used_bytes");
  const avail = one(samples, "mem.available_bytes");
  assert.ok(used > 0 && avail > 0);
  assert.ok(
    Math.abs(used + avail - totalmem()) / totalmem() < 0.05,
    "used + available ≈ total memory",
  );
  const fsRatio = byName(samples, "fs.used_ratio");
  assert.deepEqual(
    fsRatio.map((s) => s.labels?.mount),
    ["/"],
  );
  assert.ok(fsRatio[0]!.value > 0 && fsRatio[0]!.value < 1);
  assert.ok(one(samples, "fs.free_bytes") > 0);
  for (const name of [
    "net.rx_bytes_per_s",
    "net.tx_bytes_per_s",
    "net.rx_errors_per_s",
    "net.rx_dropped_per_s",
  ]) {
    one(samples, name);
  }
}

describe("agent host sampler (real, this machine)", function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    // Under the repo's git-ignored tmp/, not the system tmpdir: that may be a
    // tmpfs, where writes never reach a disk.
    const root = join(import.meta.dirname, "../../tmp");
    mkdirSync(root, { recursive: true });
    dir = mkdtempSync(join(root, "agent-sampler-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, () => HostSampler][] = [
    [
      "procfs",
      () => createProcfsSampler({ filesystems: ["/"], interfaces: [], clock: systemClock }),
    ],
    [
      "systeminformation",
      () =>
        createSystemInformationSampler({ filesystems: ["/"], interfaces: [], clock: systemClock }),
    ],
  ];
  for (const [name, make] of cases) {
    it(`${name}: static info once, then sane values and rates from the first sample on`, async () => {
      const sampler = make();
      const info = await sampler.start();
      assert.equal(info.cpuCores, cpus().length);
      assert.ok(Math.abs(info.memoryBytes - totalmem()) / totalmem() < 0.01);
      assert.ok(info.kernel.length > 0);

      burn(300);
      writeSynced(dir, 4 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 600));
      const first = await sampler.sample();
      checkCommon(first);

      burn(300);
      await new Promise((r) => setTimeout(r, 600));
      const second = await sampler.sample();
      checkCommon(second);
      if (name === "procfs") {
        // Rates are per second: the 4 MiB written and synced shows up as disk writes.
        assert.ok(one(first, "disk.write_bytes_per_s") > 0, "disk writes must be seen");
        const iowait = one(second, "disk.io_wait");
        assert.ok(iowait >= 0 && iowait <= 1);
      } else {
        assert.equal(
          byName(second, "disk.io_wait").length,
          0,
          "systeminformation cannot see iowait",
        );
      }
    });
  }

  it("procfs and systeminformation agree on memory", async () => {
    const a = createProcfsSampler({ filesystems: ["/"], interfaces: [], clock: systemClock });
    const b = createSystemInformationSampler({
      filesystems: ["/"],
      interfaces: [],
      clock: systemClock,
    });
    await Promise.all([a.start(), b.start()]);
    await new Promise((r) => setTimeout(r, 600));
    const [x, y] = await Promise.all([a.sample(), b.sample()]);
    const ax = one(x, "mem.available_bytes");
    const ay = one(y, "mem.available_bytes");
    assert.ok(Math.abs(ax - ay) / ax < 0.1, `${ax} vs ${ay}`);
    assert.ok(Math.abs(one(x, "fs.used_ratio") - one(y, "fs.used_ratio")) < 0.02);
  });

  it("reports cgroup limits only when limited", async () => {
    const reader = createCgroupReader();
    const lim = await reader.read();
    // Another process's cgroup (the watched service) is read the same way; a
    // service that is down has no limits to report.
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 5000)"], {
      stdio: "ignore",
    });
    try {
      assert.deepEqual(await createCgroupReader(() => child.pid).read(), lim);
    } finally {
      child.kill("SIGKILL");
    }
    assert.deepEqual(await createCgroupReader(() => undefined).read(), {});
    if (lim.memoryMaxBytes !== undefined)
      assert.ok(lim.memoryMaxBytes > 0 && lim.memoryMaxBytes < 2 ** 60);
    if (lim.cpuMaxCores !== undefined) assert.ok(lim.cpuMaxCores > 0);
    const sampler = createProcfsSampler({
      filesystems: [],
      interfaces: [],
      clock: systemClock,
      cgroup: { read: async () => ({ memoryMaxBytes: 2 ** 30, cpuMaxCores: 1.5 }) },
    });
    await sampler.start();
    const s = await sampler.sample();
    assert.equal(one(s, "cgroup.memory_max_bytes"), 2 ** 30);
    assert.equal(one(s, "cgroup.cpu_max_cores"), 1.5);
    const unlimited = createProcfsSampler({
      filesystems: [],
      interfaces: [],
      clock: systemClock,
      cgroup: { read: async () => ({}) },
    });
    await unlimited.start();
    assert.equal(byName(await unlimited.sample(), "cgroup.memory_max_bytes").length, 0);
  });

  it("a fixed sampler returns its values (for tests of the agent loop)", async () => {
    const s = createFixedSampler([{ name: "cpu.load", value: 0.25 }]);
    await s.start();
    assert.deepEqual(await s.sample(), [{ name: "cpu.load", value: 0.25 }]);
  });
});

describe("agent procfs and cgroup parsers", () => {
  it("/proc/stat: busy excludes idle and iowait; guest is not counted twice", () => {
    const s = parseProcStat(
      "cpu  100 5 50 800 40 3 2 0 30 0\ncpu0 60 5 25 400 20 3 1 0 30 0\ncpu1 40 0 25 400 20 0 1 0 0 0\nintr 1 2\n",
    );
    assert.deepEqual(s.all, { busy: 160, idle: 800, iowait: 40, total: 1000 });
    assert.equal(s.cores.length, 2);
    assert.equal(s.cores[1]!.busy, 66);
    assert.throws(() => parseProcStat("intr 1\n"), /no "cpu" line/);
  });

  it("/proc/meminfo, with and without MemAvailable", () => {
    const m = parseMeminfo(
      "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n",
    );
    assert.deepEqual(m, {
      totalBytes: 1024000,
      availableBytes: 614400,
      swapTotalBytes: 51200,
      swapFreeBytes: 20480,
    });
    const old = parseMeminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 90 kB\n");
    assert.equal(old.availableBytes, 200 * 1024);
  });

  it("/proc/diskstats: only the given whole disks, 512-byte sectors", () => {
    const text = [
      " 253 0 vda 100 0 2000 0 50 0 4000 0 0 0 0",
      " 253 1 vda1 100 0 2000 0 50 0 4000 0 0 0 0",
      "   7 0 loop0 9 0 999 0 9 0 999 0 0 0 0",
    ].join("\n");
    assert.deepEqual(parseDiskstats(text, new Set(["vda"])), {
      readBytes: 2000 * 512,
      writeBytes: 4000 * 512,
    });
  });

  it("/proc/net/dev: all but loopback by default, or the listed interfaces", () => {
    const text = [
      "Inter-|   Receive                                                |  Transmit",
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
      "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0",
      "  eth0: 5000 50 2 3 0 0 0 0 7000 70 0 0 0 0 0 0",
      "  eth1: 100 1 1 1 0 0 0 0 200 2 0 0 0 0 0 0",
    ].join("\n");
    const all = parseNetDev(text, []);
    assert.deepEqual(all, {
      rxBytes: 5100,
      txBytes: 7200,
      rxErrors: 3,
      rxDropped: 4,
      interfaces: ["eth0", "eth1"],
    });
    assert.equal(parseNetDev(text, ["eth1"]).rxBytes, 100);
  });

  it("/proc/<pid>/stat with spaces and parentheses in the command name", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = "S";
    const st = parsePidStat(`1234 (my (weird) proc) ${fields.join(" ")}`);
    assert.equal(st.state, "S");
    assert.equal(st.utimeTicks, 14);
    assert.equal(st.stimeTicks, 15);
    assert.equal(st.startTimeTicks, 22);
    assert.equal(parseStatusRssBytes("Name: x\nVmRSS:\t  2048 kB\n"), 2048 * 1024);
    assert.equal(parseStatusRssBytes("Name: kthread\n"), 0);
  });

  it("cgroup v2 and v1 limit files and values", () => {
    const v2 = cgroupPaths("0::/system.slice/understudy-agent.service\n", true, "/sys/fs/cgroup");
    assert.equal(
      v2.memoryMaxFile,
      "/sys/fs/cgroup/system.slice/understudy-agent.service/memory.max",
    );
    assert.equal(v2.cpuMaxFile, "/sys/fs/cgroup/system.slice/understudy-agent.service/cpu.max");
    const v1 = cgroupPaths("4:memory:/a/b\n3:cpu,cpuacct:/a/b\n0::/\n", false, "/sys/fs/cgroup");
    assert.equal(v1.memoryMaxFile, "/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes");
    assert.equal(v1.cpuMaxFile, "/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us");
    assert.equal(parseMemoryMax("max\n"), undefined);
    assert.equal(parseMemoryMax("536870912\n"), 536870912);
    assert.equal(parseMemoryMax("9223372036854771712\n"), undefined, "v1 'unlimited'");
    assert.equal(parseCpuMax("max 100000\n"), undefined);
    assert.equal(parseCpuMax("150000 100000\n"), 1.5);
    assert.equal(parseCpuMax("-1\n", "100000\n"), undefined);
    assert.equal(parseCpuMax("50000\n", "100000\n"), 0.5);
  });
});
