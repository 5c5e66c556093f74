/**
 * Runs a real nats-server process on loopback (tests and the local demo).
 * Port 0 picks a free port (nats-server's `-p -1`), read back from its log.
 * Restarting on the same port is supported so tests can simulate an outage.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";

export interface NatsServerOptions {
  /** 0 (default) for a free port. */
  port?: number;
  host?: string;
  /** Extra arguments (e.g. ["--user", "u", "--pass", "p"]). */
  args?: string[];
  /** How long to wait for "Server is ready". */
  startTimeoutMs?: number;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Graceful stop (SIGTERM), resolves when the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL, resolves when the process has exited. */
  kill(): Promise<void>;
}

const candidates = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

export function findNatsServer(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv) return fromEnv;
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      "nats-server is not installed. Install it with `sudo apt-get install -y nats-server` " +
        "(or run `node common/bin/ensure-system-deps.mjs` as root), or set NATS_SERVER_BIN.",
    );
  }
  return found;
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const host = opts.host ?? "127.0.0.1";
  const portArg = opts.port && opts.port > 0 ? String(opts.port) : "-1";
  const child = spawn(bin, ["-a", host, "-p", portArg, ...(opts.args ?? [])], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await waitReady(child, opts.startTimeoutMs ?? 5000);
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  return {
    url: `nats://${host}:${port}`,
    port,
    pid: child.pid ?? -1,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
  };
}

function waitReady(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let log = "";
    let port = 0;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nats-server did not become ready within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const onEarlyExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with code ${code} before it was ready:\n${log}`));
    };
    child.once("exit", onEarlyExit);
    // nats-server logs to stdout or stderr depending on version/flags: read both.
    const onData = (chunk: string) => {
      if (log.length < 64 * 1024) log += chunk;
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) port = Number(m[1]);
      if (port > 0 && log.includes("Server is ready")) {
        clearTimeout(timer);
        child.off("exit", onEarlyExit);
        resolve(port);
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", onData);
    }
  });
}
