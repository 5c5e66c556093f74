/**
 * Runs understudy roles as real child processes on loopback for the local
 * demo cluster: each role gets its config file and log file in a run
 * directory, can be SIGKILLed, SIGSTOPped and restarted, and no child outlives
 * the supervisor (a synchronous 'exit' hook kills stragglers).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const understudyBin = join(repoRoot, "common/bin/understudy.mjs");

const live = new Set<ChildProcess>();
let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch {
        // gone
      }
    }
  });
}

/** Distinct free loopback ports (all bound together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export interface RoleProcess {
  readonly name: string;
  readonly logFile: string;
  pid(): number;
  running(): boolean;
  /** Resolves when the process has exited. */
  signal(sig: NodeJS.Signals): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Last lines of the log, for error reports. */
  tail(lines?: number): string;
}

export interface SupervisorOptions {
  runDir: string;
  /** Extra environment for every child (e.g. UNDERSTUDY_LOG_LEVEL). */
  env?: Record<string, string>;
}

export interface Supervisor {
  readonly runDir: string;
  /**
   * Writes `config` as YAML to <runDir>/<name>.yaml and runs
   * `understudy <command> --config FILE [...extraArgs]`. Resolves once the
   * process printed a line matching `ready` (default: any first line) or
   * rejects if it exits first / after `readyTimeoutMs`.
   */
  start(
    name: string,
    command: string,
    config: unknown,
    opts?: { extraArgs?: string[]; ready?: RegExp | "spawn"; readyTimeoutMs?: number },
  ): Promise<RoleProcess>;
  stopAll(): Promise<void>;
}

export function createSupervisor(opts: SupervisorOptions): Supervisor {
  hookExit();
  mkdirSync(opts.runDir, { recursive: true });
  const roles: RoleProcess[] = [];

  const start: Supervisor["start"] = async (name, command, config, o = {}) => {
    const configFile = join(opts.runDir, `${name}.yaml`);
    const logFile = join(opts.runDir, `${name}.log`);
    writeFileSync(configFile, stringify(config));
    let child: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();

    const launch = () =>
      new Promise<void>((resolve, reject) => {
        const fd = openSync(logFile, "a");
        const c = spawn(
          process.execPath,
          [understudyBin, command, "--config", configFile, ...(o.extraArgs ?? [])],
          {
            cwd: repoRoot,
            stdio: ["ignore", "pipe", fd],
            env: { ...process.env, ...opts.env },
          },
        );
        closeSync(fd);
        child = c;
        live.add(c);
        exited = new Promise<void>((r) => c.once("exit", () => r()));
        void exited.then(() => live.delete(c));
        let buf = "";
        let ready = false;
        if (o.ready === "spawn") {
          ready = true;
          c.once("spawn", () => resolve());
        }
        const timer = setTimeout(() => {
          if (!ready)
            reject(
              new Error(
                `${name} did not get ready within ${o.readyTimeoutMs ?? 20_000} ms\n${tail(logFile)}`,
              ),
            );
        }, o.readyTimeoutMs ?? 20_000);
        c.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
          writeFileSync(logFile, chunk, { flag: "a" });
          if (ready) return;
          buf += chunk;
          const lines = buf.split("\n");
          const re = o.ready instanceof RegExp ? o.ready : undefined;
          if (lines.some((l) => (re ? re.test(l) : l.trim() !== ""))) {
            ready = true;
            clearTimeout(timer);
            resolve();
          }
        });
        c.once("exit", (code, sig) => {
          clearTimeout(timer);
          if (!ready)
            reject(
              new Error(`${name} exited (${code ?? sig}) before it was ready\n${tail(logFile)}`),
            );
        });
      });

    await launch();
    const role: RoleProcess = {
      name,
      logFile,
      pid: () => child?.pid ?? -1,
      running: () => !!child && child.exitCode === null && child.signalCode === null,
      async signal(sig) {
        if (role.running()) child?.kill(sig);
        if (sig === "SIGKILL" || sig === "SIGTERM" || sig === "SIGINT") await exited;
      },
      kill: () => role.signal("SIGKILL"),
      async restart() {
        if (role.running()) await role.signal("SIGKILL");
        await launch();
      },
      tail: (n) => tail(logFile, n),
    };
    roles.push(role);
    return role;
  };

  return {
    runDir: opts.runDir,
    start,
    async stopAll() {
      await Promise.all(
        roles.map(async (r) => {
          if (!r.running()) return;
          r.signal("SIGCONT").catch(() => undefined);
          const done = r.signal("SIGTERM");
          const timeout = new Promise<void>((res) => setTimeout(res, 3000));
          await Promise.race([done, timeout]);
          if (r.running()) await r.kill();
        }),
      );
    },
  };
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
