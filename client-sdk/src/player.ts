/**
 * A headless live player session: it fetches an HLS/LL-HLS stream in real
 * time exactly as a player would (playlists, init segments, segments or
 * parts, blocking playlist reloads), keeps a modelled playback buffer (no
 * decoding: media time is added as objects arrive and drains in real time),
 * and follows handover notices.
 *
 * Handover: a notice (NOTIFIED or later, switch_msn > 0) whose from_origin is
 * the origin we fetch from makes the session fetch every object of segments
 * < switch_msn from the old origin and every object of segments >= switch_msn
 * from to_origin. The switch happens only at a segment boundary (part 0), the
 * first one >= switch_msn. MSNs must continue +1 across the switch and the
 * program date-time of the first new segment must continue the old timeline;
 * both are checked and counted (`continuityViolations`, `timestampMismatches`).
 * ABORTED cancels a pending switch, or moves back to from_origin at the next
 * boundary if the switch already happened.
 *
 * Without a notice: a request that times out or fails (network error, 5xx) is
 * retried with jittered backoff (`retriesPerOriginMax`), then the session
 * fails over to another known origin (the latest notice's origins, then
 * `alternateOrigins`). A media object that is missing (404/410, or marked
 * GAP) is fetched from the next lower rendition instead, which then stays
 * selected for `downswitchHoldMs`. While the stream looks unstable (a recent
 * notice with probability >= `instabilityProbability`, or a failed request in
 * the last `instabilityWindowMs`) the target buffer rises to
 * `unstableTargetBufferMs` and, below 75% of the target, playback runs at
 * `slowPlaybackRate` to build it. Every request carries CMCD (CTA-5004).
 *
 * All loops are bounded: each request has a timeout, retries are bounded, and
 * the session ends at `durationMs` or `close()`.
 */
import { abortableFetch } from "./abortable-fetch.ts";
import { type BackoffOptions, backoffDelayMs, linkedAbort, sleep } from "./async.ts";
import { createBandwidthEstimator } from "./bandwidth.ts";
import type { UnderstudyClient } from "./client.ts";
import { type Clock, systemClock } from "./clock.ts";
import { type CmcdData, type CmcdObjectType, relativePath, withCmcdQuery } from "./cmcd.ts";
import { HandoverState } from "./gen/understudy/common/v1/handover_pb.ts";
import type { HandoverNotice } from "./gen/understudy/notice/v1/notice_pb.ts";
import {
  findSegment,
  isMultivariant,
  type MediaPlaylist,
  type MediaSegment,
  type Part,
  parseMediaPlaylist,
  parseMultivariantPlaylist,
} from "./m3u8.ts";
import type { PlatformProbe } from "./platform.ts";
import { createPlaybackBuffer, type PlaybackState } from "./playback-buffer.ts";
import { type ClientReporter, createClientReporter } from "./reporter.ts";

export interface PlayerSessionOptions {
  streamId: string;
  /**
   * Where to start: an origin base URL ("http://host:port", the playlist path
   * `/live/<streamId>/master.m3u8` is added) or a playlist URL under it (a
   * multivariant or a media playlist, e.g. `.../live/<stream>/<rendition>/index.m3u8`).
   * Everything from `/live/` on is the path kept when switching origins.
   */
  originUrl: string;
  /** Other origin base URLs to fail over to. */
  alternateOrigins?: readonly string[];
  /** Notice source: the session follows this client's handover events. */
  client?: UnderstudyClient;
  /** Initial rendition id (path segment before index.m3u8); default: chosen by bandwidth. */
  rendition?: string;
  /** Adaptive bitrate switching (default true). */
  abr?: boolean;
  /** Fetch parts of the open segment (LL-HLS) or whole segments only. Default "parts" if listed. */
  mode?: "parts" | "segments";
  fetch?: typeof globalThis.fetch;
  clock?: Clock;
  random?: () => number;
  /** CMCD sid and ClientReport.session_id (1–64 chars of [A-Za-z0-9-]); default random UUID. */
  sessionId?: string;
  /** CMCD cid (default streamId). */
  contentId?: string;
  /** Send CMCD on every request (default true). */
  cmcd?: boolean;
  /** Per request timeout for media and non-blocking playlist requests, ms (default 4000). */
  requestTimeoutMs?: number;
  /** Retries of a failing request on one origin before failing over (default 2). */
  retriesPerOriginMax?: number;
  retryBackoff?: BackoffOptions;
  /** Buffer the session aims for, ms (default 2000). */
  targetBufferMs?: number;
  /** Target while the stream looks unstable, ms (default 2 × targetBufferMs). */
  unstableTargetBufferMs?: number;
  /** Buffer needed to start and to resume after a stall, ms (default min(1000, target/2)). */
  startThresholdMs?: number;
  /** The session stops fetching ahead beyond this buffer, ms (default 30000). */
  maxBufferMs?: number;
  /** Notice probability at or above which the stream counts as unstable (default 0.5). */
  instabilityProbability?: number;
  /** How long a notice or a failed request keeps the stream "unstable", ms (default 30000). */
  instabilityWindowMs?: number;
  /** Drain rate while building buffer (default 0.9). */
  slowPlaybackRate?: number;
  /** A rendition chosen because another was missing is kept this long, ms (default 10000). */
  downswitchHoldMs?: number;
  /** Bandwidth estimate before the first sample, bps (default 2 Mbps). */
  initialBandwidthBps?: number;
  /** Session ends after this long, ms (default: until close()). */
  durationMs?: number;
  onEvent?: (ev: PlayerEvent) => void;
  /**
   * Periodic ClientService.Report of this session (every 5 s unless the
   * server paces otherwise); stopped on close. Pass the entry point's
   * platform probe (createNodePlatformProbe / createBrowserPlatformProbe).
   */
  report?: { coordinatorUrls: readonly string[]; intervalMs?: number; platform?: PlatformProbe };
}

export type SwitchReason = "notice" | "failover" | "abort";

export interface SwitchRecord {
  readonly reason: SwitchReason;
  readonly from: string;
  readonly to: string;
  /** First MSN fetched from `to`. */
  readonly atMsn: number;
  /** Last MSN started from `from` (atMsn - 1 when continuous). */
  readonly previousMsn: number | undefined;
  readonly atMs: number;
  /** Epoch of the notice that caused it (notice/abort). */
  readonly epoch?: number;
  readonly switchMsn?: number;
}

export type PlayerEvent =
  | { type: "switch"; record: SwitchRecord }
  | { type: "rendition"; from: string; to: string; reason: "abr" | "missing"; atMsn: number }
  | { type: "stall"; atMs: number }
  | { type: "skip"; msn: number; part?: number; reason: string }
  | { type: "error"; message: string };

export interface PlayerStats {
  readonly sessionId: string;
  readonly state: PlaybackState | "ended";
  readonly origin: string;
  readonly rendition: string;
  readonly renditionBandwidthBps: number;
  readonly bufferMs: number;
  readonly targetBufferMs: number;
  readonly stallCount: number;
  readonly stallMs: number;
  readonly startupMs?: number;
  readonly playingMsn?: number;
  /** Last MSN whose first object was fetched. */
  readonly lastMsn?: number;
  readonly bandwidthBps: number;
  readonly segmentsFetched: number;
  readonly partsFetched: number;
  readonly playlistsFetched: number;
  readonly bytesFetched: number;
  readonly requestFailures: number;
  readonly failovers: number;
  readonly switches: readonly SwitchRecord[];
  readonly renditionSwitches: number;
  readonly missingObjects: number;
  readonly skippedObjects: number;
  /** MSN did not continue +1 (outside a jump to the live window, which is counted in `liveJumps`). */
  readonly continuityViolations: number;
  readonly liveJumps: number;
  /** Program date-time of a new origin's segment did not continue the old timeline. */
  readonly timestampMismatches: number;
  /** Highest handover epoch acted on. */
  readonly handoverEpoch: number;
  readonly unstable: boolean;
  readonly lastCmcd?: CmcdData;
}

export interface PlayerSession {
  readonly sessionId: string;
  /** Applies a handover notice (the session does this itself for `client`'s events). */
  applyNotice(notice: HandoverNotice): void;
  stats(): PlayerStats;
  /** Resolves when the session has ended (close, durationMs, or a fatal start error). */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

interface Rendition {
  readonly id: string;
  /** Media playlist path (from /live/ on, or absolute URL if the playlist is elsewhere). */
  readonly path: string;
  readonly bandwidth: number;
  readonly codecs: readonly string[];
}

interface Position {
  msn: number;
  part: number;
}

type FetchFailed = { kind: "failed"; reason: string };
type FetchResult =
  | { kind: "ok"; bytes: number; elapsedMs: number; body?: string }
  | { kind: "missing"; status: number }
  | FetchFailed;

/** Splits a start URL into origin base and path (from "/live/" on). */
export function splitOriginUrl(url: string, streamId: string): { base: string; path: string } {
  const u = new URL(url);
  const i = u.pathname.indexOf("/live/");
  if (i >= 0) {
    return {
      base: `${u.origin}${u.pathname.slice(0, i)}`,
      path: `${u.pathname.slice(i)}${u.search}`,
    };
  }
  return {
    base: `${u.origin}${u.pathname}`.replace(/\/+$/, ""),
    path: `/live/${streamId}/master.m3u8`,
  };
}

/** Normalised origin base URL ("http://h:p[/prefix]", no trailing slash). */
export function normalizeBase(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`.replace(/\/+$/, "");
}

const absoluteUrl = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Resolves `ref` against the path of the document it appeared in; absolute URLs stay absolute. */
function resolvePath(ref: string, documentPath: string): string {
  if (absoluteUrl.test(ref)) return ref;
  const u = new URL(ref, `http://origin.invalid${documentPath}`);
  return `${u.pathname}${u.search}`;
}

function renditionIdOf(path: string): string {
  const parts = path.split("?")[0]!.split("/").filter(Boolean);
  return parts.length >= 2 ? parts[parts.length - 2]! : (parts[0] ?? "default");
}

function objectType(codecs: readonly string[]): CmcdObjectType {
  const video = codecs.some((c) => /^(avc|hvc|hev|av01|vp0|vp8|vp9|dvh)/i.test(c));
  const audio = codecs.some((c) => /^(mp4a|ac-3|ec-3|opus|flac)/i.test(c));
  if (video && audio) return "av";
  if (audio) return "a";
  return "v";
}

function randomSessionId(random: () => number): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  let s = "";
  for (let i = 0; i < 32; i++) s += Math.floor(random() * 16).toString(16);
  return s;
}

/** Attempts to load the first playlists before the session gives up. */
const startAttemptsMax = 5;

const switchStates: ReadonlySet<HandoverState> = new Set([
  HandoverState.NOTIFIED,
  HandoverState.SWITCHED,
  HandoverState.COMPLETED,
]);

export function createPlayerSession(opts: PlayerSessionOptions): PlayerSession {
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  // Request timeouts and close() must abort for sure, also after a GC (see abortable-fetch.ts).
  const doFetch = abortableFetch(opts.fetch ?? globalThis.fetch.bind(globalThis));
  const sessionId = opts.sessionId ?? randomSessionId(random);
  if (!/^[A-Za-z0-9-]{1,64}$/.test(sessionId)) {
    throw new TypeError(`sessionId "${sessionId}" must be 1–64 chars of [A-Za-z0-9-]`);
  }
  const contentId = opts.contentId ?? opts.streamId;
  const cmcdOn = opts.cmcd ?? true;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 4000;
  const retriesPerOriginMax = opts.retriesPerOriginMax ?? 2;
  const retryBackoff = opts.retryBackoff ?? { initialMs: 100, maxMs: 1000 };
  const baseTargetMs = opts.targetBufferMs ?? 2000;
  const unstableTargetMs = opts.unstableTargetBufferMs ?? 2 * baseTargetMs;
  const startThresholdMs = opts.startThresholdMs ?? Math.min(1000, baseTargetMs / 2);
  const maxBufferMs = opts.maxBufferMs ?? 30_000;
  const instabilityProbability = opts.instabilityProbability ?? 0.5;
  const instabilityWindowMs = opts.instabilityWindowMs ?? 30_000;
  const slowRate = opts.slowPlaybackRate ?? 0.9;
  const downswitchHoldMs = opts.downswitchHoldMs ?? 10_000;
  const abrOn = opts.abr ?? true;
  const emit = opts.onEvent ?? (() => {});

  const start = splitOriginUrl(opts.originUrl, opts.streamId);
  let origin = start.base;
  const alternates = (opts.alternateOrigins ?? []).map(normalizeBase);

  const buffer = createPlaybackBuffer({
    clock,
    startThresholdMs,
    resumeThresholdMs: startThresholdMs,
  });
  const bandwidth = createBandwidthEstimator({
    ...(opts.initialBandwidthBps ? { initialBps: opts.initialBandwidthBps } : {}),
  });
  const stop = new AbortController();
  const startedMs = clock.monotonicMs();
  const deadlineMs = opts.durationMs !== undefined ? startedMs + opts.durationMs : Infinity;

  let renditions: Rendition[] = [];
  let rendition: Rendition | undefined;
  let pinnedUntilMs = 0;
  const initFetched = new Set<string>();
  /** Latest media playlist per origin|rendition. */
  const playlists = new Map<string, MediaPlaylist>();
  const plKey = (o: string, r: Rendition) => `${o}|${r.id}`;

  // Handover state.
  let pending:
    | {
        to: string;
        msn: number;
        epoch: number;
        switchMsn: number;
        reason: SwitchReason;
        handoverId: string;
      }
    | undefined;
  let appliedEpoch = -1;
  let lastNotice: HandoverNotice | undefined;
  let lastNoticeAtMs = -Infinity;
  let lastFailureAtMs = -Infinity;
  /** handoverId → origin we switched away from (for ABORTED). */
  const switchedFor = new Map<string, string>();

  // Counters.
  const switches: SwitchRecord[] = [];
  const switchesMax = 256;
  let segmentsFetched = 0;
  let partsFetched = 0;
  let playlistsFetched = 0;
  let bytesFetched = 0;
  let requestFailures = 0;
  let failovers = 0;
  let renditionSwitches = 0;
  let missingObjects = 0;
  let skippedObjects = 0;
  let continuityViolations = 0;
  let liveJumps = 0;
  let timestampMismatches = 0;
  let lastMsn: number | undefined;
  let lastSegmentEnd: { msn: number; pdtEndMs: number } | undefined;
  let lastCmcd: CmcdData | undefined;
  let ended = false;
  let stallsSeen = 0;

  const unstable = (): boolean => {
    const now = clock.monotonicMs();
    if (now - lastFailureAtMs < instabilityWindowMs) return true;
    if (!lastNotice || now - lastNoticeAtMs >= instabilityWindowMs) return false;
    const terminal =
      lastNotice.state === HandoverState.COMPLETED || lastNotice.state === HandoverState.ABORTED;
    return !terminal && lastNotice.probability >= instabilityProbability;
  };
  const targetBufferMs = () => (unstable() ? unstableTargetMs : baseTargetMs);

  const topBitrateKbps = () =>
    Math.round(Math.max(0, ...renditions.map((r) => r.bandwidth)) / 1000);

  const cmcdFor = (
    ot: CmcdObjectType,
    extra: { d?: number; nor?: string; br?: number } = {},
  ): CmcdData | undefined => {
    if (!cmcdOn) return undefined;
    const snap = buffer.snapshot();
    const media = ot !== "m";
    const data: CmcdData = {
      cid: contentId,
      sid: sessionId,
      sf: "h",
      st: "l",
      ot,
      mtp: Math.round(bandwidth.estimateBps() / 1000),
      ...(snap.playbackRate !== 1 ? { pr: snap.playbackRate } : {}),
      ...(snap.state !== "playing" ? { su: true } : {}),
      ...(buffer.takeStarvation() ? { bs: true } : {}),
    };
    if (media) {
      data.bl = snap.levelMs;
      data.tb = topBitrateKbps();
      if (extra.br !== undefined) data.br = extra.br;
      if (extra.d !== undefined) data.d = extra.d;
      if (extra.nor) data.nor = extra.nor;
      if (snap.state === "playing") data.dl = snap.levelMs / snap.playbackRate;
    }
    lastCmcd = data;
    return data;
  };

  /** One HTTP GET with a timeout; classifies the outcome. */
  const get = async (
    url: string,
    timeoutMs: number,
    cmcd: CmcdData | undefined,
    wantText: boolean,
  ): Promise<FetchResult> => {
    const full = cmcd ? withCmcdQuery(url, cmcd) : url;
    const link = linkedAbort([stop.signal], timeoutMs);
    const t0 = clock.monotonicMs();
    try {
      const res = await doFetch(full, { signal: link.signal });
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel().catch(() => {});
        return { kind: "missing", status: res.status };
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return { kind: "failed", reason: `HTTP ${res.status}` };
      }
      if (wantText) {
        const body = await res.text();
        return { kind: "ok", bytes: body.length, elapsedMs: clock.monotonicMs() - t0, body };
      }
      const buf = await res.arrayBuffer();
      return { kind: "ok", bytes: buf.byteLength, elapsedMs: clock.monotonicMs() - t0 };
    } catch (err) {
      if (link.timedOut()) return { kind: "failed", reason: `timeout after ${timeoutMs} ms` };
      return { kind: "failed", reason: err instanceof Error ? err.message : String(err) };
    } finally {
      link.dispose();
    }
  };

  const urlOf = (o: string, path: string) => (absoluteUrl.test(path) ? path : `${o}${path}`);

  const knownOrigins = (): string[] => {
    const out: string[] = [];
    const add = (u: string | undefined) => {
      if (!u) return;
      try {
        const n = normalizeBase(u);
        if (!out.includes(n)) out.push(n);
      } catch {
        // Not a URL: ignore.
      }
    };
    add(origin);
    add(pending?.to);
    add(lastNotice?.toOrigin?.baseUrl);
    for (const a of alternates) add(a);
    add(lastNotice?.fromOrigin?.baseUrl);
    return out;
  };

  const recordSwitch = (rec: SwitchRecord) => {
    switches.push(rec);
    if (switches.length > switchesMax) switches.shift();
    emit({ type: "switch", record: rec });
  };

  /**
   * Runs `attempt` against the current origin with retries, then against the
   * other known origins (each failure there is a failover). Returns the result,
   * or a "failed" result when every origin failed.
   */
  const withFailover = async <R extends FetchResult>(
    attempt: (o: string) => Promise<R>,
  ): Promise<R | FetchFailed> => {
    let last: R | FetchFailed = { kind: "failed", reason: "no origin" };
    const tried = new Set<string>();
    for (let round = 0; round < 8; round++) {
      const o = origin;
      if (tried.has(o)) break;
      tried.add(o);
      for (let retry = 0; retry <= retriesPerOriginMax; retry++) {
        if (stop.signal.aborted) return { kind: "failed", reason: "closed" };
        last = await attempt(o);
        if (last.kind !== "failed") return last;
        requestFailures++;
        lastFailureAtMs = clock.monotonicMs();
        if (retry < retriesPerOriginMax) {
          await sleep(backoffDelayMs(retry + 1, retryBackoff, random), stop.signal);
        }
      }
      const next = knownOrigins().find((c) => !tried.has(c));
      if (!next) break;
      failovers++;
      origin = next;
      if (pending && pending.to === next) pending = undefined;
      recordSwitch({
        reason: "failover",
        from: o,
        to: next,
        atMsn: (lastMsn ?? -1) + 1,
        previousMsn: lastMsn,
        atMs: clock.nowMs(),
      });
    }
    return last;
  };

  // ---- playlists

  const loadMultivariant = async (): Promise<void> => {
    const r = await withFailover((o) =>
      get(urlOf(o, start.path), requestTimeoutMs, cmcdFor("m"), true),
    );
    if (r.kind !== "ok") throw new Error(`cannot load ${start.path}: ${describe(r)}`);
    playlistsFetched++;
    const text = r.body ?? "";
    if (!isMultivariant(text)) {
      const id = renditionIdOf(start.path);
      renditions = [{ id, path: start.path, bandwidth: 0, codecs: [] }];
      remember(playlists, `${origin}|${id}`, parseMediaPlaylist(text));
      return;
    }
    const mv = parseMultivariantPlaylist(text);
    renditions = mv.variants
      .map((v) => {
        const path = resolvePath(v.uri, start.path);
        return { id: renditionIdOf(path), path, bandwidth: v.bandwidth, codecs: v.codecs };
      })
      .sort((a, b) => a.bandwidth - b.bandwidth);
    if (renditions.length === 0) throw new Error(`${start.path} lists no variants`);
  };

  /**
   * Loads the media playlist of `r` from origin `o`. With `until`, asks for a
   * blocking reload (LL-HLS `_HLS_msn`/`_HLS_part`) if the server supports it.
   */
  const loadMedia = async (
    o: string,
    r: Rendition,
    until?: Position,
    partsMode = true,
  ): Promise<FetchResult & { playlist?: MediaPlaylist }> => {
    const known = playlists.get(plKey(o, r));
    let path = r.path;
    let timeoutMs = requestTimeoutMs;
    if (until && known?.serverControl.canBlockReload) {
      const q =
        partsMode && known.partTargetMs !== undefined
          ? `_HLS_msn=${until.msn}&_HLS_part=${until.part}`
          : `_HLS_msn=${until.msn}`;
      path += `${path.includes("?") ? "&" : "?"}${q}`;
      timeoutMs = Math.max(requestTimeoutMs, 3 * known.targetDurationMs + 1000);
    }
    const res = await get(urlOf(o, path), timeoutMs, cmcdFor("m"), true);
    if (res.kind !== "ok") return res;
    playlistsFetched++;
    try {
      const pl = parseMediaPlaylist(res.body ?? "");
      remember(playlists, plKey(o, r), pl);
      return { ...res, playlist: pl };
    } catch (err) {
      return { kind: "failed", reason: err instanceof Error ? err.message : String(err) };
    }
  };

  const fetchInit = async (r: Rendition, pl: MediaPlaylist, msn: number) => {
    const seg = findSegment(pl, msn) ?? pl.segments[pl.segments.length - 1];
    const map = seg?.map;
    if (!map) return;
    const key = `${r.id}|${map.uri}`;
    if (initFetched.has(key)) return;
    const path = resolvePath(map.uri, r.path);
    const res = await withFailover((oo) =>
      get(
        urlOf(oo, path),
        requestTimeoutMs,
        cmcdFor("i", { br: Math.round(r.bandwidth / 1000) }),
        false,
      ),
    );
    if (res.kind === "ok") {
      initFetched.add(key);
      bytesFetched += res.bytes;
    }
  };

  // ---- choosing where to start and what to fetch

  const chooseRendition = (): Rendition => {
    if (!abrOn || renditions.length === 1) {
      return rendition ?? renditions[renditions.length - 1]!;
    }
    const budget = 0.8 * bandwidth.estimateBps();
    let best = renditions[0]!;
    for (const r of renditions) if (r.bandwidth <= budget) best = r;
    return best;
  };

  const startPosition = (pl: MediaPlaylist, partsMode: boolean): Position => {
    const hold = partsMode
      ? (pl.serverControl.partHoldBackMs ?? 0)
      : (pl.serverControl.holdBackMs ?? 0);
    const offsetMs = Math.max(targetBufferMs(), hold);
    let total = 0;
    if (partsMode && pl.openSegment) {
      for (const p of pl.openSegment.parts) total += p.durationMs;
      if (total >= offsetMs) return { msn: pl.openSegment.msn, part: 0 };
    }
    for (let i = pl.segments.length - 1; i >= 0; i--) {
      total += pl.segments[i]!.durationMs;
      if (total >= offsetMs) return { msn: pl.segments[i]!.msn, part: 0 };
    }
    return { msn: pl.segments[0]?.msn ?? pl.openSegment?.msn ?? pl.mediaSequence, part: 0 };
  };

  /** Origin to fetch segment `msn` from (handover switch applies at a boundary). */
  const applySwitchAtBoundary = (pos: Position) => {
    if (!pending || pos.part !== 0 || pos.msn < pending.msn) return;
    const p = pending;
    pending = undefined;
    if (p.to === origin) return;
    const from = origin;
    origin = p.to;
    if (p.reason === "notice") remember(switchedFor, p.handoverId, from);
    recordSwitch({
      reason: p.reason,
      from,
      to: p.to,
      atMsn: pos.msn,
      previousMsn: lastMsn,
      atMs: clock.nowMs(),
      epoch: p.epoch,
      switchMsn: p.switchMsn,
    });
  };

  /** MSN continuity: every segment started is the previous one + 1 (except after a live-window jump). */
  const beginSegment = (msn: number, jumped: boolean) => {
    if (lastMsn !== undefined && msn !== lastMsn + 1 && !jumped) {
      continuityViolations++;
      emit({ type: "error", message: `MSN went from ${lastMsn} to ${msn}` });
    }
    lastMsn = msn;
  };

  /**
   * Timestamp continuity, checked when a segment is fully buffered (its
   * program date-time is known then, also for segments fetched as parts):
   * it must start where the previous one ended, whichever origin served it.
   */
  const endSegment = (seg: MediaSegment | undefined) => {
    if (seg?.programDateTimeMs === undefined) return;
    if (
      lastSegmentEnd?.msn === seg.msn - 1 &&
      Math.abs(seg.programDateTimeMs - lastSegmentEnd.pdtEndMs) > 2
    ) {
      timestampMismatches++;
      emit({
        type: "error",
        message: `segment ${seg.msn} starts at ${seg.programDateTimeMs}, previous ended at ${lastSegmentEnd.pdtEndMs}`,
      });
    }
    lastSegmentEnd = { msn: seg.msn, pdtEndMs: seg.programDateTimeMs + seg.durationMs };
  };

  const added = (durationMs: number, msn: number) => {
    buffer.add(durationMs, msn);
    const snap = buffer.snapshot();
    if (snap.stallCount > stallsSeen) {
      stallsSeen = snap.stallCount;
      emit({ type: "stall", atMs: clock.nowMs() });
    }
  };

  /**
   * Fetches the object (segment or part) from rendition `r`, falling back to
   * lower renditions when it is missing. Returns the rendition that served
   * it, or undefined when no rendition had it.
   */
  const fetchObject = async (
    r: Rendition,
    pos: Position,
    whole: boolean,
  ): Promise<
    | { kind: "ok"; durationMs: number; seg?: MediaSegment }
    | { kind: "missing" }
    | { kind: "failed" }
  > => {
    const candidates = [r, ...renditions.filter((x) => x.bandwidth < r.bandwidth).reverse()];
    for (const cand of candidates) {
      let pl = playlists.get(plKey(origin, cand));
      if (!pl || (whole ? !findSegment(pl, pos.msn) : !partOf(pl, pos))) {
        const lr = await withFailover((o) => loadMedia(o, cand, pos, !whole));
        pl = lr.kind === "ok" ? playlists.get(plKey(origin, cand)) : undefined;
      }
      if (!pl) continue;
      const seg = findSegment(pl, pos.msn);
      const part = whole ? undefined : partOf(pl, pos);
      const obj: { uri: string; durationMs: number; gap: boolean } | undefined = whole
        ? seg && { uri: seg.uri, durationMs: seg.durationMs, gap: seg.gap }
        : part && { uri: part.uri, durationMs: part.durationMs, gap: part.gap || !!seg?.gap };
      if (!obj) continue;
      if (obj.gap) {
        missingObjects++;
        continue;
      }
      await fetchInit(cand, pl, pos.msn);
      const path = resolvePath(obj.uri, cand.path);
      const nor = nextObjectPath(pl, pos, whole, cand);
      const res = await withFailover((o) =>
        get(
          urlOf(o, path),
          requestTimeoutMs,
          cmcdFor(objectType(cand.codecs), {
            br: Math.round(cand.bandwidth / 1000),
            d: obj.durationMs,
            ...(nor ? { nor: relativePath(urlOf(o, path), urlOf(o, nor)) } : {}),
          }),
          false,
        ),
      );
      if (res.kind === "missing") {
        missingObjects++;
        continue;
      }
      if (res.kind !== "ok") return { kind: "failed" };
      bytesFetched += res.bytes;
      bandwidth.sample(res.bytes, res.elapsedMs);
      if (cand !== r) {
        renditionSwitches++;
        pinnedUntilMs = clock.monotonicMs() + downswitchHoldMs;
        emit({ type: "rendition", from: r.id, to: cand.id, reason: "missing", atMsn: pos.msn });
        rendition = cand;
      }
      return { kind: "ok", durationMs: obj.durationMs, ...(seg ? { seg } : {}) };
    }
    return { kind: "missing" };
  };

  const partOf = (pl: MediaPlaylist, pos: Position): Part | undefined => {
    const seg = findSegment(pl, pos.msn);
    if (seg) return seg.parts[pos.part];
    if (pl.openSegment?.msn === pos.msn) return pl.openSegment.parts[pos.part];
    return undefined;
  };

  const nextObjectPath = (
    pl: MediaPlaylist,
    pos: Position,
    whole: boolean,
    r: Rendition,
  ): string | undefined => {
    const next = whole ? { msn: pos.msn + 1, part: 0 } : { msn: pos.msn, part: pos.part + 1 };
    if (whole) {
      const s = findSegment(pl, next.msn);
      if (s) return resolvePath(s.uri, r.path);
    } else {
      const p = partOf(pl, next) ?? partOf(pl, { msn: pos.msn + 1, part: 0 });
      if (p) return resolvePath(p.uri, r.path);
    }
    const hint = pl.preloadHints.find((h) => h.type === "PART");
    return hint ? resolvePath(hint.uri, r.path) : undefined;
  };

  // ---- the loop

  /** Playlists to start from; retried (bounded) since every origin may be briefly down. */
  const startUp = async (): Promise<MediaPlaylist> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await loadMultivariant();
        rendition = renditions.find((r) => r.id === opts.rendition) ?? chooseRendition();
        const first = await withFailover((o) => loadMedia(o, rendition!));
        if (first.kind !== "ok") {
          throw new Error(`cannot load ${rendition.path}: ${describe(first)}`);
        }
        return playlists.get(plKey(origin, rendition))!;
      } catch (err) {
        if (attempt >= startAttemptsMax || stop.signal.aborted) throw err;
        emit({ type: "error", message: err instanceof Error ? err.message : String(err) });
        await sleep(backoffDelayMs(attempt + 2, retryBackoff, random), stop.signal);
      }
    }
  };

  const run = async () => {
    const firstPl = await startUp();
    if (stop.signal.aborted) return;
    const partsMode = (opts.mode ?? "parts") === "parts" && firstPl.partTargetMs !== undefined;
    const pos = startPosition(firstPl, partsMode);
    /** Media of segment pos.msn already buffered from its parts, ms. */
    let partsBufferedMs = 0;
    let jumped = true;

    while (!stop.signal.aborted && clock.monotonicMs() < deadlineMs) {
      // Pace: a live player does not run further ahead than its buffer cap.
      const level = buffer.levelMs();
      if (level >= maxBufferMs) {
        await sleep(Math.min(1000, level - maxBufferMs + 50), stop.signal);
        continue;
      }
      const target = targetBufferMs();
      buffer.setPlaybackRate(level < 0.75 * target && buffer.state() === "playing" ? slowRate : 1);

      if (pos.part === 0) {
        applySwitchAtBoundary(pos);
        if (abrOn && renditions.length > 1 && clock.monotonicMs() >= pinnedUntilMs) {
          const want = chooseRendition();
          const cur: Rendition = rendition!;
          const up = want.bandwidth > cur.bandwidth;
          if (want !== cur && (!up || (!unstable() && level >= target))) {
            renditionSwitches++;
            emit({ type: "rendition", from: cur.id, to: want.id, reason: "abr", atMsn: pos.msn });
            rendition = want;
          }
        }
      }
      const r = rendition!;
      const pl = playlists.get(plKey(origin, r));
      if (!pl) {
        // First request to this origin/rendition (after a switch): no blocking reload yet.
        const lr = await withFailover((o) => loadMedia(o, r));
        if (lr.kind !== "ok") await sleep(backoffDelayMs(2, retryBackoff, random), stop.signal);
        continue;
      }
      const firstListed = pl.mediaSequence + pl.skippedSegments;
      if (pos.msn < firstListed && pl.segments.length > 0) {
        // Fell out of the live window (long outage): jump to the oldest listed segment.
        liveJumps++;
        emit({
          type: "skip",
          msn: pos.msn,
          reason: `behind the live window (oldest is ${firstListed})`,
        });
        pos.msn = firstListed;
        pos.part = 0;
        partsBufferedMs = 0;
        jumped = true;
        continue;
      }
      const seg = findSegment(pl, pos.msn);
      if (seg && pos.part > 0 && seg.parts.length > 0 && pos.part >= seg.parts.length) {
        // Every part of this now-complete segment is buffered.
        endSegment(seg);
        pos.msn++;
        pos.part = 0;
        partsBufferedMs = 0;
        continue;
      }
      const whole = seg !== undefined && (pos.part === 0 || seg.parts.length === 0 || !partsMode);
      const part = partsMode && !whole ? partOf(pl, pos) : undefined;
      if (!whole && !part) {
        // Nothing to fetch yet: wait for the playlist to move (a blocking
        // reload when the server supports it; otherwise rfc8216bis §6.3.4:
        // reload after half a target duration).
        const lr = await withFailover((o) => loadMedia(o, r, pos, partsMode));
        const fresh = lr.kind === "ok" ? lr.playlist : undefined;
        if (!fresh) {
          await sleep(backoffDelayMs(2, retryBackoff, random), stop.signal);
        } else if (!findSegment(fresh, pos.msn) && !(partsMode && partOf(fresh, pos))) {
          const halfMs = (partsMode ? (fresh.partTargetMs ?? 0) : fresh.targetDurationMs) / 2;
          await sleep(Math.max(50, halfMs), stop.signal);
        }
        continue;
      }
      const got = await fetchObject(r, pos, whole);
      if (stop.signal.aborted) break;
      if (got.kind === "failed") {
        // Every known origin failed: wait, then try again (the loop is bounded by durationMs/close).
        await sleep(backoffDelayMs(3, retryBackoff, random), stop.signal);
        continue;
      }
      if (pos.part === 0) beginSegment(pos.msn, jumped);
      jumped = false;
      if (got.kind === "missing") {
        skippedObjects++;
        emit({ type: "skip", msn: pos.msn, part: pos.part, reason: "missing in every rendition" });
      } else if (whole) {
        segmentsFetched++;
        added(Math.max(0, got.durationMs - partsBufferedMs), pos.msn);
      } else {
        partsFetched++;
        partsBufferedMs += got.durationMs;
        added(got.durationMs, pos.msn);
      }
      if (whole) {
        if (got.kind === "ok") endSegment(got.seg);
        pos.msn++;
        pos.part = 0;
        partsBufferedMs = 0;
      } else {
        pos.part++;
      }
    }
  };

  // ---- notices

  const applyNotice = (n: HandoverNotice) => {
    const epoch = Number(n.epoch);
    if (n.streamId !== opts.streamId || epoch <= appliedEpoch) return;
    appliedEpoch = epoch;
    lastNotice = n;
    lastNoticeAtMs = clock.monotonicMs();
    const to = n.toOrigin?.baseUrl ? safeBase(n.toOrigin.baseUrl) : undefined;
    const from = n.fromOrigin?.baseUrl ? safeBase(n.fromOrigin.baseUrl) : undefined;
    if (n.state === HandoverState.ABORTED) {
      if (pending?.handoverId === n.handoverId) pending = undefined;
      const back = switchedFor.get(n.handoverId);
      if (back && origin === to) {
        pending = {
          to: back,
          msn: 0, // next boundary
          epoch,
          switchMsn: 0,
          reason: "abort",
          handoverId: n.handoverId,
        };
      }
      return;
    }
    if (!switchStates.has(n.state) || n.switchMsn === 0n || !to) return;
    // Only viewers of the origin being left move (viewers behind edges stay).
    if (from && from !== origin && pending?.to !== from) return;
    if (to === origin) return;
    pending = {
      to,
      msn: Number(n.switchMsn),
      epoch,
      switchMsn: Number(n.switchMsn),
      reason: "notice",
      handoverId: n.handoverId,
    };
  };

  if (opts.client) {
    const events = opts.client.events();
    stop.signal.addEventListener("abort", () => void events.return(), { once: true });
    void (async () => {
      for await (const ev of events) if (ev.type === "handover") applyNotice(ev.notice);
    })();
  }

  let reporter: ClientReporter | undefined;
  const done = run()
    .catch((err: unknown) => {
      if (!stop.signal.aborted) {
        emit({ type: "error", message: err instanceof Error ? err.message : String(err) });
      }
    })
    .finally(async () => {
      buffer.end();
      ended = true;
      await reporter?.stop();
    });

  const session: PlayerSession = {
    sessionId,
    applyNotice,
    done,
    stats() {
      const snap = buffer.snapshot();
      const playing = buffer.playingMsn();
      return {
        sessionId,
        state: ended ? "ended" : snap.state,
        origin,
        rendition: rendition?.id ?? "",
        renditionBandwidthBps: rendition?.bandwidth ?? 0,
        bufferMs: Math.round(snap.levelMs),
        targetBufferMs: targetBufferMs(),
        stallCount: snap.stallCount,
        stallMs: Math.round(snap.stallMs),
        ...(snap.startupMs !== undefined ? { startupMs: Math.round(snap.startupMs) } : {}),
        ...(playing !== undefined ? { playingMsn: playing } : {}),
        ...(lastMsn !== undefined ? { lastMsn } : {}),
        bandwidthBps: Math.round(bandwidth.estimateBps()),
        segmentsFetched,
        partsFetched,
        playlistsFetched,
        bytesFetched,
        requestFailures,
        failovers,
        switches: [...switches],
        renditionSwitches,
        missingObjects,
        skippedObjects,
        continuityViolations,
        liveJumps,
        timestampMismatches,
        handoverEpoch: Math.max(0, appliedEpoch),
        unstable: unstable(),
        ...(lastCmcd ? { lastCmcd: { ...lastCmcd } } : {}),
      };
    },
    async close() {
      stop.abort();
      await done;
    },
  };
  if (opts.report && opts.report.coordinatorUrls.length > 0) {
    reporter = createClientReporter({
      streamId: opts.streamId,
      stats: session.stats,
      coordinatorUrls: opts.report.coordinatorUrls,
      clock,
      random,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.report.intervalMs ? { intervalMs: opts.report.intervalMs } : {}),
      ...(opts.report.platform ? { platform: opts.report.platform } : {}),
    });
  }
  return session;
}

/** Bound on remembered playlists (origin × rendition) and handovers; the oldest entry goes first. */
const rememberedMax = 32;

function remember<K, V>(m: Map<K, V>, key: K, value: V): void {
  m.delete(key);
  m.set(key, value);
  while (m.size > rememberedMax) m.delete(m.keys().next().value as K);
}

function safeBase(u: string): string | undefined {
  try {
    return normalizeBase(u);
  } catch {
    return undefined;
  }
}

function describe(r: FetchResult): string {
  return r.kind === "failed" ? r.reason : r.kind === "missing" ? `HTTP ${r.status}` : "ok";
}
