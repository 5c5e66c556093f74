/**
 * Metrics of the service this host exists for (the packager, the encoder):
 * CPU, RSS, open fds, restarts, and whether its main process exists.
 *
 * The main pid comes from config (pid), a pidfile, or systemd
 * (`systemctl show -p MainPID,NRestarts UNIT`). systemctl is asked at start,
 * whenever the known process is gone or was replaced, and every
 * `unitRefreshMs` (restarts between two samples still show in NRestarts), not
 * every sample: spawning it each second would cost more than all the other
 * sampling together.
 *
 * A process is identified by pid plus start time, so a recycled pid is a new
 * process. `proc.restarts` is cumulative: systemd's NRestarts (automatic
 * restarts) plus main-process changes this agent saw that NRestarts did not
 * account for (manual restarts, pidfile services).
 */
import { readFile } from "node:fs/promises";
import type { Clock } from "../../common/clock.ts";
import type { CommandRunner } from "./command-runner.ts";
import type { WatchConfig } from "./config.ts";
import type { AgentSample } from "./metric-names.ts";
import {
  parsePidStat,
  parseStatusRssBytes,
  readKernelDir,
  readKernelFile,
  userHz,
} from "./procfs.ts";

export interface ProcessWatcher {
  sample(): Promise<AgentSample[]>;
  /** Main pid seen at the latest sample (undefined while the service is down). */
  currentPid(): number | undefined;
}

export interface ProcessWatcherOptions {
  watch: WatchConfig;
  runner: CommandRunner;
  clock: Clock;
  systemctlPath?: string;
  unitRefreshMs?: number;
  systemctlTimeoutMs?: number;
  procRoot?: string;
}

interface Identity {
  pid: number;
  startTimeTicks: number;
}

/** Parses `systemctl show -p MainPID,NRestarts` output ("Key=value" lines). */
export function parseSystemctlShow(text: string): { mainPid: number; nRestarts: number } {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const num = (k: string) => {
    const n = Number(kv.get(k));
    return Number.isInteger(n) && n >= 0 ? n : 0;
  };
  return { mainPid: num("MainPID"), nRestarts: num("NRestarts") };
}

export function createProcessWatcher(opts: ProcessWatcherOptions): ProcessWatcher {
  const proc = opts.procRoot ?? "/proc";
  const systemctl = opts.systemctlPath ?? "systemctl";
  const unitRefreshMs = opts.unitRefreshMs ?? 10_000;
  const timeoutMs = opts.systemctlTimeoutMs ?? 2000;
  let current: Identity | undefined;
  let lastCpu: { ticks: number; atMs: number } | undefined;
  let unitPid = 0;
  let nRestarts = 0;
  let nRestartsAtLastChange = 0;
  let unseenByNRestarts = 0;
  let unitCheckedAtMs = Number.NEGATIVE_INFINITY;

  const readIdentity = (pid: number): (Identity & { cpuTicks: number }) | undefined => {
    const text = readKernelFile(`${proc}/${pid}/stat`);
    if (text === undefined) return undefined;
    const st = parsePidStat(text);
    // A zombie has exited; only its parent has not collected it yet.
    if (st.state === "Z") return undefined;
    return { pid, startTimeTicks: st.startTimeTicks, cpuTicks: st.utimeTicks + st.stimeTicks };
  };

  const queryUnit = async (unit: string) => {
    const r = await opts.runner.run(
      systemctl,
      ["show", "-p", "MainPID,NRestarts", "--", unit],
      timeoutMs,
    );
    unitCheckedAtMs = opts.clock.monotonicMs();
    if (r.code !== 0) return;
    const s = parseSystemctlShow(r.stdout);
    unitPid = s.mainPid;
    nRestarts = s.nRestarts;
  };

  /** Returns the main pid and whether systemd was asked for it just now. */
  const resolvePid = async (forceRefresh: boolean): Promise<[number, boolean]> => {
    const w = opts.watch;
    if (w.pid !== undefined) return [w.pid, false];
    if (w.pidfile !== undefined) {
      const text = await readFile(w.pidfile, "utf8").catch(() => "");
      const pid = Number(text.trim());
      return [Number.isInteger(pid) && pid > 0 ? pid : 0, false];
    }
    if (w.unit !== undefined) {
      if (forceRefresh || opts.clock.monotonicMs() - unitCheckedAtMs >= unitRefreshMs) {
        await queryUnit(w.unit);
        return [unitPid, true];
      }
      return [unitPid, false];
    }
    return [0, false];
  };

  let alivePid: number | undefined;
  return {
    currentPid: () => alivePid,
    async sample() {
      let [pid, asked] = await resolvePid(false);
      let id = pid > 0 ? readIdentity(pid) : undefined;
      const sameAsCurrent =
        id !== undefined &&
        current !== undefined &&
        id.pid === current.pid &&
        id.startTimeTicks === current.startTimeTicks;
      if (opts.watch.unit !== undefined && !sameAsCurrent && !asked) {
        // Gone or replaced: ask systemd now rather than at the next refresh.
        [pid, asked] = await resolvePid(true);
        id = pid > 0 ? readIdentity(pid) : undefined;
      }
      const now = opts.clock.monotonicMs();
      const out: AgentSample[] = [];
      if (
        id &&
        (!current || id.pid !== current.pid || id.startTimeTicks !== current.startTimeTicks)
      ) {
        if (current) {
          // A restart systemd did not count (NRestarts unchanged since the last change we saw).
          if (nRestarts === nRestartsAtLastChange) unseenByNRestarts++;
        }
        nRestartsAtLastChange = nRestarts;
        current = { pid: id.pid, startTimeTicks: id.startTimeTicks };
        lastCpu = undefined;
      }
      alivePid = id?.pid;
      out.push({ name: "proc.up", value: id ? 1 : 0 });
      out.push({ name: "proc.restarts", value: nRestarts + unseenByNRestarts });
      if (!id) return out;
      if (lastCpu && now > lastCpu.atMs) {
        const cores = (id.cpuTicks - lastCpu.ticks) / userHz / ((now - lastCpu.atMs) / 1000);
        out.push({ name: "proc.cpu", value: Math.max(0, cores) });
      }
      lastCpu = { ticks: id.cpuTicks, atMs: now };
      const status = readKernelFile(`${proc}/${id.pid}/status`);
      // Another user's fd table is unreadable (EACCES) without CAP_SYS_PTRACE: then omitted.
      const fds = readKernelDir(`${proc}/${id.pid}/fd`);
      if (status) out.push({ name: "proc.rss_bytes", value: parseStatusRssBytes(status) });
      if (fds) out.push({ name: "proc.fds", value: fds.length });
      return out;
    },
  };
}
