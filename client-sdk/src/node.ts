/// <reference types="node" />
/**
 * @understudy/client-sdk/node — the Node entry: NATS over TCP (`nats`) and a
 * platform probe reading device CPU and process memory. The only SDK module
 * (with node-viewers.ts) that may use node:* modules.
 *
 * Re-exports what a Node integrator uses most; everything else comes from
 * "@understudy/client-sdk".
 */
import os from "node:os";
import { type ConnectionOptions, connect } from "nats";
import type { UnderstudyClient, UnderstudyClientOptions } from "./client.ts";
import { createNatsEntry } from "./entry.ts";
import type { PlatformProbe } from "./platform.ts";

/** Reconnect policy for SDK connections: forever, 0.5 s apart plus jitter, fast dead-peer detection. */
export const defaultNodeNatsOptions: ConnectionOptions = {
  name: "understudy-client-sdk",
  maxReconnectAttempts: -1,
  reconnectTimeWait: 500,
  reconnectJitter: 500,
  timeout: 2000,
  pingInterval: 10_000,
  maxPingOut: 2,
};

const entry = createNatsEntry(connect, defaultNodeNatsOptions);

/** Opens a NATS connection with the SDK's reconnect policy (`nats` over TCP (nats://host:port)). */
export const connectNatsNode = entry.connectNats;
/** A NoticeBus that owns one NATS connection (share it between SDK clients with `bus`). */
export const createNodeNatsBus = entry.createNatsBus;
export type NodeClientOptions = UnderstudyClientOptions & { nats?: ConnectionOptions };
/** createUnderstudyClient with `natsServers` served by `nats` over TCP (nats://host:port). */
export const createUnderstudyClient: (opts: NodeClientOptions) => UnderstudyClient =
  entry.createUnderstudyClient;

/**
 * Device CPU load (all cores, over the interval since the previous sample)
 * and this process's resident memory. No screen, no codec list in Node.
 */
export function createNodePlatformProbe(): PlatformProbe {
  const totals = () => {
    let idle = 0;
    let total = 0;
    for (const c of os.cpus()) {
      const t = c.times;
      idle += t.idle;
      total += t.user + t.nice + t.sys + t.idle + t.irq;
    }
    return { idle, total };
  };
  let last = totals();
  return {
    sample() {
      const now = totals();
      const dTotal = now.total - last.total;
      const dIdle = now.idle - last.idle;
      last = now;
      return {
        ...(dTotal > 0 ? { cpuLoadRatio: Math.min(1, Math.max(0, 1 - dIdle / dTotal)) } : {}),
        memoryUsedBytes: process.memoryUsage().rss,
      };
    },
  };
}

export type {
  ClientStats,
  ConnectionEvent,
  HandoverEvent,
  UnderstudyClient,
  UnderstudyClientOptions,
  UnderstudyEvent,
} from "./client.ts";
export { HandoverReason, HandoverState } from "./gen/understudy/common/v1/handover_pb.ts";
export type { HandoverNotice } from "./gen/understudy/notice/v1/notice_pb.ts";
export { type NatsNoticeBus, natsNoticeBusFromConnection } from "./nats-bus.ts";
export {
  createPlayerSession,
  type PlayerEvent,
  type PlayerSession,
  type PlayerSessionOptions,
  type PlayerStats,
} from "./player.ts";
export { createClientReporter } from "./reporter.ts";
