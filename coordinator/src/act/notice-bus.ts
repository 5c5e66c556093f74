/**
 * Where notices go. The coordinator owns this small interface; production
 * uses NATS (core, at-most-once fan-out), tests may use the in-memory bus.
 */
import { type ConnectionOptions, connect, type NatsConnection } from "nats";
import type { Logger } from "../../../common/log.ts";

export interface NoticeBus {
  /** Best effort: never throws; a notice lost here is recovered by clients via the API. */
  publish(subject: string, data: Uint8Array): void;
  /** Called after every (re)connect, so the publisher can republish the latest state. */
  onConnected(listener: () => void): () => void;
  connected(): boolean;
  close(): Promise<void>;
}

export interface NatsBusOptions {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** NATS decentralized-auth credentials file (JWT + nkey seed). */
  credsFile?: string;
  name?: string;
  log: Logger;
}

/**
 * Connects in the background and keeps reconnecting forever (bounded wait
 * between attempts), so a NATS outage never stops the coordinator: while
 * disconnected, publishes are dropped and counted.
 */
export function createNatsNoticeBus(opts: NatsBusOptions): NoticeBus & { dropped(): number } {
  let nc: NatsConnection | undefined;
  let closed = false;
  let dropped = 0;
  const listeners = new Set<() => void>();
  const fire = () => {
    for (const l of listeners) l();
  };

  const connOpts: ConnectionOptions = {
    servers: opts.servers,
    name: opts.name ?? "understudy-coordinator",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    timeout: 2000,
    ...(opts.user ? { user: opts.user, pass: opts.pass } : {}),
    ...(opts.token ? { token: opts.token } : {}),
  };

  const run = async () => {
    let backoffMs = 250;
    while (!closed) {
      try {
        if (opts.credsFile) {
          const { credsAuthenticator } = await import("nats");
          const { readFile } = await import("node:fs/promises");
          connOpts.authenticator = credsAuthenticator(await readFile(opts.credsFile));
        }
        const c = await connect(connOpts);
        nc = c;
        backoffMs = 250;
        opts.log.info("nats connected", { server: c.getServer() });
        fire();
        for await (const s of c.status()) {
          if (s.type === "reconnect") {
            opts.log.info("nats reconnected", { server: c.getServer() });
            fire();
          } else if (s.type === "disconnect") {
            opts.log.warn("nats disconnected; notices are dropped until it returns");
          }
        }
        await c.closed();
        nc = undefined;
      } catch (err) {
        nc = undefined;
        if (closed) return;
        opts.log.warn("nats unreachable; retrying", { err, retryMs: backoffMs });
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  };
  void run();

  return {
    publish(subject, data) {
      const c = nc;
      if (!c || c.isClosed() || c.isDraining()) {
        dropped++;
        return;
      }
      try {
        c.publish(subject, data);
      } catch {
        dropped++;
      }
    },
    onConnected(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    connected: () => !!nc && !nc.isClosed(),
    dropped: () => dropped,
    async close() {
      closed = true;
      await nc?.close();
    },
  };
}
