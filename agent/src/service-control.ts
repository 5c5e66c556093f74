/**
 * Starts and stops the services of the agent's allowlist. Only entries from
 * the agent's own config reach this module: a systemd unit (`systemctl
 * start|stop -- UNIT`) or an exact argv spawned without a shell. Nothing from
 * a directive is ever passed to a command line.
 *
 * argv services are spawned detached in their own process group and tracked
 * by pid plus start time (a recycled pid is never signalled). Without a
 * pidfile, a restarted agent no longer knows a process it started earlier.
 * Under systemd such children live in the agent's cgroup and are killed when
 * the agent restarts unless the unit sets KillMode=process; prefer units.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { Clock } from "../../common/clock.ts";
import type { Logger } from "../../common/log.ts";
import { type CommandRunner, describeFailure } from "./command-runner.ts";
import type { ServiceEntry } from "./config.ts";
import { parsePidStat } from "./procfs.ts";

export interface ServiceControl {
  /** Makes the service run (already running is success). Resolves to a message; throws on failure. */
  start(name: string, entry: ServiceEntry, timeoutMs: number): Promise<string>;
  /** Makes the service stop (already stopped is success). */
  stop(name: string, entry: ServiceEntry, timeoutMs: number): Promise<string>;
}

export interface ServiceControlOptions {
  runner: CommandRunner;
  clock: Clock;
  logger: Logger;
  systemctlPath?: string;
  /** A spawned process that exits within this window is reported as failed to start. */
  startSettleMs?: number;
  procRoot?: string;
}

interface Tracked {
  pid: number;
  startTimeTicks: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createServiceControl(opts: ServiceControlOptions): ServiceControl {
  const systemctl = opts.systemctlPath ?? "systemctl";
  const settleMs = opts.startSettleMs ?? 300;
  const proc = opts.procRoot ?? "/proc";
  const tracked = new Map<string, Tracked>();

  const identity = async (pid: number): Promise<Tracked | undefined> => {
    try {
      const st = parsePidStat(await readFile(`${proc}/${pid}/stat`, "utf8"));
      // A zombie still has a stat file; it is not running.
      return st.state === "Z" ? undefined : { pid, startTimeTicks: st.startTimeTicks };
    } catch {
      return undefined;
    }
  };

  /** The running process of an argv service, from memory or its pidfile. */
  const running = async (name: string, entry: ServiceEntry): Promise<Tracked | undefined> => {
    const t = tracked.get(name);
    if (t) {
      const now = await identity(t.pid);
      if (now && now.startTimeTicks === t.startTimeTicks) return t;
      tracked.delete(name);
    }
    if (entry.pidfile) {
      const pid = Number((await readFile(entry.pidfile, "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 1) return identity(pid);
    }
    return undefined;
  };

  const systemctlVerb = async (verb: "start" | "stop", unit: string, timeoutMs: number) => {
    const r = await opts.runner.run(systemctl, [verb, "--", unit], timeoutMs);
    if (r.code !== 0) throw new Error(describeFailure(`systemctl ${verb} ${unit}`, r));
    return `${verb === "start" ? "started" : "stopped"} ${unit}`;
  };

  return {
    async start(name, entry, timeoutMs) {
      if (entry.unit) return systemctlVerb("start", entry.unit, timeoutMs);
      const argv = entry.argv!;
      const already = await running(name, entry);
      if (already) return `${name} already running (pid ${already.pid})`;
      const child = spawn(argv[0]!, argv.slice(1), {
        detached: true,
        stdio: "ignore",
        shell: false,
      });
      const exited = new Promise<string>((resolve) => {
        child.once("error", (err) => resolve(`could not start ${argv[0]}: ${err.message}`));
        child.once("exit", (code, signal) =>
          resolve(`${name} exited at once (${signal ?? `code ${code}`})`),
        );
      });
      const outcome = await Promise.race([
        exited,
        sleep(Math.min(settleMs, timeoutMs)).then(() => ""),
      ]);
      if (outcome) throw new Error(outcome);
      child.unref();
      const id = await identity(child.pid!);
      if (!id) throw new Error(`${name} (pid ${child.pid}) is gone right after start`);
      tracked.set(name, id);
      opts.logger.info("started allowlisted service", { service: name, pid: id.pid });
      return `started ${name} (pid ${id.pid})`;
    },
    async stop(name, entry, timeoutMs) {
      if (entry.unit) return systemctlVerb("stop", entry.unit, timeoutMs);
      const t = await running(name, entry);
      if (!t) return `${name} not running`;
      // Detached children lead their own process group: signal the whole group.
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(-t.pid, sig);
        } catch {
          try {
            process.kill(t.pid, sig);
          } catch {
            // Already gone.
          }
        }
      };
      signal("SIGTERM");
      const deadline = opts.clock.monotonicMs() + timeoutMs;
      while (opts.clock.monotonicMs() < deadline) {
        const now = await identity(t.pid);
        if (!now || now.startTimeTicks !== t.startTimeTicks) {
          tracked.delete(name);
          return `stopped ${name} (pid ${t.pid})`;
        }
        await sleep(50);
      }
      signal("SIGKILL");
      tracked.delete(name);
      return `killed ${name} (pid ${t.pid}) after ${timeoutMs} ms`;
    },
  };
}
