/// <reference types="node" />
/**
 * `understudy viewers` for Node: runViewers with viewers grouped on shared
 * NATS connections (`viewersPerConnection`, like a server-side viewer farm)
 * and the Node platform probe for client reports. The CLI command wraps this.
 */
import type { ConnectionOptions } from "nats";
import {
  type NatsConnectionLike,
  type NatsNoticeBus,
  natsNoticeBusFromConnection,
} from "./nats-bus.ts";
import { connectNatsNode, createNodePlatformProbe } from "./node.ts";
import { runViewers as runCore, type ViewersOptions, type ViewersReport } from "./viewers.ts";

export interface NodeViewersOptions extends ViewersOptions {
  /** Viewers per NATS connection (default 50). */
  viewersPerConnection?: number;
  nats?: ConnectionOptions;
}

export async function runViewers(opts: NodeViewersOptions): Promise<ViewersReport> {
  const servers = opts.natsServers ?? [];
  const perConn = Math.max(1, opts.viewersPerConnection ?? 50);
  const connections: NatsConnectionLike[] = [];
  const buses: NatsNoticeBus[] = [];
  try {
    if (servers.length > 0 && !opts.busFor) {
      const n = Math.ceil(opts.count / perConn);
      for (let i = 0; i < n; i++) {
        const nc = await connectNatsNode(servers, opts.nats);
        connections.push(nc);
        buses.push(natsNoticeBusFromConnection(nc));
      }
    }
    return await runCore({
      platform: createNodePlatformProbe(),
      natsConnect: (s) => connectNatsNode(s, opts.nats),
      ...opts,
      ...(buses.length > 0 ? { busFor: (i: number) => buses[Math.floor(i / perConn)] } : {}),
    });
  } finally {
    for (const b of buses) await b.close();
    for (const nc of connections) await nc.close().catch(() => {});
  }
}

export type { ViewerRecord, ViewersReport } from "./viewers.ts";
