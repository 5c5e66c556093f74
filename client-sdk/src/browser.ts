/**
 * @understudy/client-sdk/browser — the browser entry: NATS over WebSocket
 * (`nats.ws`; servers are ws:// or wss:// URLs of a nats-server `websocket`
 * listener) and a platform probe reading what browsers expose
 * (performance.memory where available, screen size in device pixels,
 * MediaSource.isTypeSupported for a short codec list). Browser globals are
 * read defensively, so importing this module elsewhere does not throw.
 *
 * Re-exports what a browser integrator uses most; everything else comes from
 * "@understudy/client-sdk".
 */
import { type ConnectionOptions, connect } from "nats.ws";
import type { UnderstudyClient, UnderstudyClientOptions } from "./client.ts";
import { createNatsEntry } from "./entry.ts";
import { type PlatformProbe, probedCodecs } from "./platform.ts";

export const defaultBrowserNatsOptions: ConnectionOptions = {
  name: "understudy-client-sdk",
  maxReconnectAttempts: -1,
  reconnectTimeWait: 500,
  reconnectJitter: 500,
  timeout: 3000,
  pingInterval: 10_000,
  maxPingOut: 2,
};

const entry = createNatsEntry(connect, defaultBrowserNatsOptions);

/** Opens a NATS connection with the SDK's reconnect policy (`nats.ws` over WebSocket (ws:// or wss://)). */
export const connectNatsWs = entry.connectNats;
/** A NoticeBus that owns one NATS connection (share it between SDK clients with `bus`). */
export const createBrowserNatsBus = entry.createNatsBus;
export type BrowserClientOptions = UnderstudyClientOptions & { nats?: ConnectionOptions };
/** createUnderstudyClient with `natsServers` served by `nats.ws` over WebSocket (ws:// or wss://). */
export const createUnderstudyClient: (opts: BrowserClientOptions) => UnderstudyClient =
  entry.createUnderstudyClient;

interface BrowserGlobals {
  performance?: { memory?: { usedJSHeapSize?: number } };
  screen?: { width?: number; height?: number };
  devicePixelRatio?: number;
  MediaSource?: { isTypeSupported?: (type: string) => boolean };
}

/** Memory (Chromium's performance.memory), screen and decodable codecs; no CPU API in browsers. */
export function createBrowserPlatformProbe(
  codecs: readonly string[] = probedCodecs,
): PlatformProbe {
  const g = globalThis as unknown as BrowserGlobals;
  // Codec support does not change during a session: ask once.
  const isSupported = g.MediaSource?.isTypeSupported;
  const decodable = isSupported
    ? codecs.filter((c) => {
        const container = /^(mp4a|ac-3|ec-3|opus|flac)/.test(c) ? "audio/mp4" : "video/mp4";
        try {
          return isSupported.call(g.MediaSource, `${container}; codecs="${c}"`);
        } catch {
          return false;
        }
      })
    : undefined;
  return {
    sample() {
      const used = g.performance?.memory?.usedJSHeapSize;
      const dpr = g.devicePixelRatio ?? 1;
      const w = g.screen?.width;
      const h = g.screen?.height;
      return {
        ...(used !== undefined ? { memoryUsedBytes: used } : {}),
        ...(w !== undefined && h !== undefined
          ? { screenWidth: Math.round(w * dpr), screenHeight: Math.round(h * dpr) }
          : {}),
        ...(decodable ? { decodableCodecs: decodable } : {}),
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
export {
  createPlayerSession,
  type PlayerEvent,
  type PlayerSession,
  type PlayerSessionOptions,
  type PlayerStats,
} from "./player.ts";
export { createClientReporter } from "./reporter.ts";
