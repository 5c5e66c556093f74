/**
 * `understudy viewers` core: N headless real-time player sessions of one
 * stream, each with its own SDK client, and a JSON-able report of how they
 * fared (stalls, switches, notice latency). Browser-compatible; the node
 * entry (node-viewers.ts) adds shared NATS connections and the Node
 * platform probe.
 *
 * Notice latency is `receivedAtMs - published_unix_ms` of every handover
 * notice published after the viewer started (older ones are a catch-up, not
 * a delivery); it is only meaningful when viewer and coordinator clocks agree
 * (same host, or NTP).
 */
import { percentile } from "./async.ts";
import type { NoticeBus } from "./bus.ts";
import { createUnderstudyClient, type NoticeVia, type UnderstudyClientOptions } from "./client.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { NatsConnectionLike } from "./nats-bus.ts";
import type { PlatformProbe } from "./platform.ts";
import { createPlayerSession, type PlayerEvent, type PlayerSessionOptions } from "./player.ts";
import { createClientReporter } from "./reporter.ts";

export const viewersCountMax = 20_000;
export const viewersDurationMaxMs = 24 * 3600 * 1000;

export interface ViewersOptions {
  streamId: string;
  /** Number of viewers, 1–20000. */
  count: number;
  /** Origin base URL or playlist URL (see PlayerSessionOptions.originUrl). */
  originUrl: string;
  coordinatorUrls?: readonly string[];
  natsServers?: readonly string[];
  /** How long every viewer watches, ms (1 ms – 24 h). */
  durationMs: number;
  /** Bus for viewer `index` (e.g. shared connections); overrides natsServers. */
  busFor?: (index: number) => NoticeBus | undefined;
  natsConnect?: (servers: readonly string[]) => Promise<NatsConnectionLike>;
  fetch?: typeof globalThis.fetch;
  clock?: Clock;
  random?: () => number;
  /** Viewer starts are spread evenly over this window, ms (default min(2000, durationMs/10)). */
  startSpreadMs?: number;
  /** Send ClientReports (default: when coordinatorUrls are given). */
  report?: boolean;
  reportIntervalMs?: number;
  platform?: PlatformProbe;
  alternateOrigins?: readonly string[];
  /** Every player event of viewer `index` (switches, stalls, skips, errors), e.g. for a log. */
  onPlayerEvent?: (index: number, ev: PlayerEvent) => void;
  /** Extra player options (timeouts, buffer targets, ...). */
  player?: Partial<Omit<PlayerSessionOptions, "streamId" | "originUrl" | "client">>;
  /** Extra client options (fallback, timeouts, ...). */
  client?: Partial<Omit<UnderstudyClientOptions, "streamId">>;
}

export interface ViewerSwitch {
  reason: string;
  from: string;
  to: string;
  atMsn: number;
  previousMsn: number | null;
  switchMsn: number | null;
}

export interface ViewerRecord {
  index: number;
  sessionId: string;
  stallCount: number;
  stallMs: number;
  startupMs: number | null;
  switches: ViewerSwitch[];
  noticesReceived: number;
  noticesVia: Record<NoticeVia, number>;
  /** Notices the viewer's client ignored as stale (late, or forged; see the epoch rule). */
  noticesStale: number;
  noticeLatenciesMs: number[];
  origin: string;
  rendition: string;
  segmentsFetched: number;
  partsFetched: number;
  failovers: number;
  requestFailures: number;
  continuityViolations: number;
  timestampMismatches: number;
  skippedObjects: number;
  reportsSent: number;
  reportsFailed: number;
  errors: string[];
}

export interface ViewersReport {
  streamId: string;
  count: number;
  durationMs: number;
  startedAtUnixMs: number;
  finishedAtUnixMs: number;
  viewers: ViewerRecord[];
  summary: {
    stallsTotal: number;
    stallMsTotal: number;
    viewersWithStalls: number;
    switchesTotal: number;
    viewersSwitched: number;
    noticesReceived: number;
    noticeLatencyMs: { p50: number; p99: number; max: number; samples: number };
    continuityViolations: number;
    timestampMismatches: number;
    viewersWithErrors: number;
  };
}

const errorsPerViewerMax = 20;
const latenciesPerViewerMax = 1000;

export async function runViewers(opts: ViewersOptions): Promise<ViewersReport> {
  if (!(Number.isInteger(opts.count) && opts.count >= 1 && opts.count <= viewersCountMax)) {
    throw new RangeError(`count must be an integer in 1..${viewersCountMax} (got ${opts.count})`);
  }
  if (!(opts.durationMs >= 1 && opts.durationMs <= viewersDurationMaxMs)) {
    throw new RangeError(
      `durationMs must be in 1..${viewersDurationMaxMs} (got ${opts.durationMs})`,
    );
  }
  const clock = opts.clock ?? systemClock;
  const spreadMs = opts.startSpreadMs ?? Math.min(2000, opts.durationMs / 10);
  const startedAtUnixMs = clock.nowMs();
  const startMono = clock.monotonicMs();
  const endMono = startMono + opts.durationMs;
  const report = opts.report ?? (opts.coordinatorUrls?.length ?? 0) > 0;

  const runOne = async (index: number): Promise<ViewerRecord> => {
    const delayMs = opts.count > 1 ? (spreadMs * index) / opts.count : 0;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const errors: string[] = [];
    const addError = (m: string) => {
      if (errors.length < errorsPerViewerMax) errors.push(m);
    };
    const bus = opts.busFor?.(index);
    const client = createUnderstudyClient({
      streamId: opts.streamId,
      ...(opts.coordinatorUrls ? { coordinatorUrls: opts.coordinatorUrls } : {}),
      ...(bus
        ? { bus }
        : opts.natsServers
          ? {
              natsServers: opts.natsServers,
              ...(opts.natsConnect ? { natsConnect: opts.natsConnect } : {}),
            }
          : {}),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      clock,
      ...opts.client,
    });
    const viewerStartUnixMs = clock.nowMs();
    const latencies: number[] = [];
    const via: Record<NoticeVia, number> = { nats: 0, watch: 0, poll: 0 };
    let notices = 0;
    const events = client.events({ replayLatest: false });
    const consuming = (async () => {
      for await (const ev of events) {
        if (ev.type !== "handover") continue;
        const published = Number(ev.notice.publishedUnixMs);
        if (published < viewerStartUnixMs) continue;
        notices++;
        via[ev.via]++;
        if (latencies.length < latenciesPerViewerMax) latencies.push(ev.receivedAtMs - published);
      }
    })();
    const session = createPlayerSession({
      streamId: opts.streamId,
      originUrl: opts.originUrl,
      client,
      clock,
      durationMs: Math.max(1, endMono - clock.monotonicMs()),
      ...(opts.alternateOrigins ? { alternateOrigins: opts.alternateOrigins } : {}),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      ...opts.player,
      onEvent: (ev) => {
        if (ev.type === "error") addError(ev.message);
        opts.onPlayerEvent?.(index, ev);
        opts.player?.onEvent?.(ev);
      },
    });
    const reporter = report
      ? createClientReporter({
          streamId: opts.streamId,
          stats: session.stats,
          coordinatorUrls: opts.coordinatorUrls ?? [],
          clock,
          ...(opts.fetch ? { fetch: opts.fetch } : {}),
          ...(opts.platform ? { platform: opts.platform } : {}),
          ...(opts.reportIntervalMs ? { intervalMs: opts.reportIntervalMs } : {}),
        })
      : undefined;
    await session.done;
    // The session's numbers as it ended (its playback model stops there too).
    const s = session.stats();
    await reporter?.stop();
    await client.close();
    await consuming;
    const cs = client.stats();
    const rs = reporter?.stats();
    return {
      index,
      sessionId: s.sessionId,
      stallCount: s.stallCount,
      stallMs: s.stallMs,
      startupMs: s.startupMs ?? null,
      switches: s.switches.map((w) => ({
        reason: w.reason,
        from: w.from,
        to: w.to,
        atMsn: w.atMsn,
        previousMsn: w.previousMsn ?? null,
        switchMsn: w.switchMsn ?? null,
      })),
      noticesReceived: notices,
      noticesVia: via,
      noticesStale: cs.stale,
      noticeLatenciesMs: latencies,
      origin: s.origin,
      rendition: s.rendition,
      segmentsFetched: s.segmentsFetched,
      partsFetched: s.partsFetched,
      failovers: s.failovers,
      requestFailures: s.requestFailures,
      continuityViolations: s.continuityViolations,
      timestampMismatches: s.timestampMismatches,
      skippedObjects: s.skippedObjects,
      reportsSent: rs?.sent ?? 0,
      reportsFailed: rs?.failed ?? 0,
      errors,
    };
  };

  const viewers = await Promise.all(Array.from({ length: opts.count }, (_, i) => runOne(i)));
  const allLatencies = viewers.flatMap((v) => v.noticeLatenciesMs).sort((a, b) => a - b);
  return {
    streamId: opts.streamId,
    count: opts.count,
    durationMs: opts.durationMs,
    startedAtUnixMs,
    finishedAtUnixMs: clock.nowMs(),
    viewers,
    summary: {
      stallsTotal: sum(viewers.map((v) => v.stallCount)),
      stallMsTotal: sum(viewers.map((v) => v.stallMs)),
      viewersWithStalls: viewers.filter((v) => v.stallCount > 0).length,
      switchesTotal: sum(viewers.map((v) => v.switches.length)),
      viewersSwitched: viewers.filter((v) => v.switches.length > 0).length,
      noticesReceived: sum(viewers.map((v) => v.noticesReceived)),
      noticeLatencyMs: {
        p50: percentile(allLatencies, 50),
        p99: percentile(allLatencies, 99),
        max: allLatencies[allLatencies.length - 1] ?? 0,
        samples: allLatencies.length,
      },
      continuityViolations: sum(viewers.map((v) => v.continuityViolations)),
      timestampMismatches: sum(viewers.map((v) => v.timestampMismatches)),
      viewersWithErrors: viewers.filter((v) => v.errors.length > 0).length,
    },
  };
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
