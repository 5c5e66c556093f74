/**
 * Periodic client reports (ClientService.Report): bandwidth, buffer, stalls,
 * rendition, origin, CMCD of the latest request, and what the platform
 * exposes (CPU, memory, screen, decodable codecs).
 *
 * Bounded and non-blocking: at most one report is in flight; a tick that
 * finds the previous one still running is skipped (counted); a failed report
 * is dropped (counted), never queued or retried later, which loses nothing
 * because every counter in a report is cumulative. The server paces reports
 * with next_report_interval_ms (clamped to 1–60 s); RESOURCE_EXHAUSTED
 * doubles the interval.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { unrefTimer } from "./async.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { CmcdData } from "./cmcd.ts";
import { type CoordinatorPool, createCoordinatorPool } from "./coordinator.ts";
import {
  type ClientReport,
  ClientReportSchema,
  ClientService,
  type Cmcd,
  CmcdSchema,
} from "./gen/understudy/api/v1/client_service_pb.ts";
import { emptyPlatformProbe, type PlatformInfo, type PlatformProbe } from "./platform.ts";
import type { PlayerStats } from "./player.ts";
import { sdkVersion } from "./version.ts";

export const reportIntervalMinMs = 1000;
export const reportIntervalMaxMs = 60_000;

export interface ClientReporterOptions {
  streamId: string;
  /** What to report (a PlayerSession's `stats`). */
  stats: () => PlayerStats;
  /** Coordinators (or pass a shared `pool`). */
  coordinatorUrls?: readonly string[];
  pool?: CoordinatorPool;
  fetch?: typeof globalThis.fetch;
  platform?: PlatformProbe;
  clock?: Clock;
  /** First interval, until the server says otherwise (default 5000 ms). */
  intervalMs?: number;
  /** Timeout of one Report call, ms (default 2000). */
  timeoutMs?: number;
  random?: () => number;
}

export interface ReporterStats {
  sent: number;
  /** Reports that failed (dropped, not retried). */
  failed: number;
  /** Ticks skipped because the previous report was still in flight. */
  skipped: number;
  intervalMs: number;
}

export interface ClientReporter {
  stats(): ReporterStats;
  /** Sends one report now (resolves true if acknowledged). Skipped while one is in flight. */
  reportNow(): Promise<boolean>;
  stop(): Promise<void>;
}

const u32 = (n: number | undefined) =>
  n === undefined || !Number.isFinite(n) ? 0 : Math.min(0xffffffff, Math.max(0, Math.round(n)));

export function cmcdMessage(d: CmcdData): Cmcd {
  return create(CmcdSchema, {
    encodedBitrateKbps: u32(d.br),
    bufferLengthMs: u32(d.bl),
    bufferStarvation: d.bs ?? false,
    contentId: (d.cid ?? "").slice(0, 128),
    objectDurationMs: u32(d.d),
    deadlineMs: u32(d.dl),
    measuredThroughputKbps: u32(d.mtp),
    nextObjectRequest: (d.nor ?? "").slice(0, 2048),
    objectType: d.ot ?? "",
    playbackRate: d.pr ?? 1,
    requestedMaxThroughputKbps: u32(d.rtp),
    streamingFormat: d.sf ?? "",
    streamType: d.st ?? "",
    startup: d.su ?? false,
    topBitrateKbps: u32(d.tb),
  });
}

/** ClientReport from a session's stats and the platform, within the contract's validation bounds. */
export function buildClientReport(
  streamId: string,
  s: PlayerStats,
  platform: PlatformInfo,
  nowMs: number,
): ClientReport {
  const rendition = s.rendition
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "")
    .slice(0, 32);
  const codecs = (platform.decodableCodecs ?? [])
    .filter((c) => c.length >= 1 && c.length <= 64)
    .slice(0, 32);
  return create(ClientReportSchema, {
    sessionId: s.sessionId,
    streamId,
    renditionId: rendition,
    origin: s.origin.slice(0, 2048),
    bandwidthBps: BigInt(Math.max(0, Math.round(s.bandwidthBps))),
    bufferMs: u32(s.bufferMs),
    stallCount: u32(s.stallCount),
    stallMs: BigInt(Math.max(0, Math.round(s.stallMs))),
    droppedFrames: 0n,
    ...(platform.cpuLoadRatio !== undefined
      ? { cpuLoadRatio: Math.min(1, Math.max(0, platform.cpuLoadRatio)) }
      : {}),
    ...(platform.memoryUsedBytes !== undefined
      ? { memoryUsedBytes: BigInt(Math.max(0, Math.round(platform.memoryUsedBytes))) }
      : {}),
    screenWidth: u32(platform.screenWidth),
    screenHeight: u32(platform.screenHeight),
    decodableCodecs: [...codecs],
    ...(s.lastCmcd ? { cmcd: cmcdMessage(s.lastCmcd) } : {}),
    timestampUnixMs: BigInt(Math.round(nowMs)),
    playingMsn: BigInt(s.playingMsn ?? 0),
    handoverEpoch: BigInt(s.handoverEpoch),
    sdkVersion,
  });
}

export function createClientReporter(opts: ClientReporterOptions): ClientReporter {
  const pool =
    opts.pool ??
    createCoordinatorPool({
      urls: opts.coordinatorUrls ?? [],
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    });
  const clock = opts.clock ?? systemClock;
  const platform = opts.platform ?? emptyPlatformProbe;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const stats: ReporterStats = {
    sent: 0,
    failed: 0,
    skipped: 0,
    intervalMs: clamp(opts.intervalMs ?? 5000),
  };
  const stop = new AbortController();
  let inFlight: Promise<boolean> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const send = async (): Promise<boolean> => {
    try {
      const report = buildClientReport(
        opts.streamId,
        opts.stats(),
        platform.sample(),
        clock.nowMs(),
      );
      const res = await pool.call(
        ({ transport, signal }) =>
          createClient(ClientService, transport).report(
            { report },
            { timeoutMs, ...(signal ? { signal } : {}) },
          ),
        { signal: stop.signal, attemptsMax: 2, timeoutMs },
      );
      stats.sent++;
      if (res.nextReportIntervalMs > 0) stats.intervalMs = clamp(res.nextReportIntervalMs);
      return true;
    } catch (err) {
      if (stop.signal.aborted) return false;
      stats.failed++;
      if (ConnectError.from(err).code === Code.ResourceExhausted) {
        stats.intervalMs = clamp(stats.intervalMs * 2);
      }
      return false;
    }
  };

  const reportNow = (): Promise<boolean> => {
    if (stop.signal.aborted) return Promise.resolve(false);
    if (inFlight) {
      stats.skipped++;
      return Promise.resolve(false);
    }
    inFlight = send().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const schedule = () => {
    if (stop.signal.aborted) return;
    timer = unrefTimer(
      setTimeout(() => {
        void reportNow();
        schedule();
      }, stats.intervalMs),
    );
  };
  if (pool.urls().length > 0) schedule();

  return {
    stats: () => ({ ...stats }),
    reportNow,
    async stop() {
      stop.abort();
      if (timer !== undefined) clearTimeout(timer);
      await inFlight;
    },
  };
}

function clamp(ms: number): number {
  return Math.min(reportIntervalMaxMs, Math.max(reportIntervalMinMs, ms));
}
