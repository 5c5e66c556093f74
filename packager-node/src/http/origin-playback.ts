/**
 * Origin playback under /live/{streamId}/...: playlists written from the
 * timeline (LL-HLS blocking reload per rfc8216bis §6.2.5.2), media objects
 * from the window / retired cache / disk, CMCD in, CMSD out.
 *
 * Holds are bounded in time (3 × target duration, then 503 for playlists and
 * 404 for media) and in count (`blockingRequestsMax`, then 503).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Clock } from "../../../common/clock.ts";
import type { Logger } from "../../../common/log.ts";
import { type CmcdData, cmcdFromRequest } from "../cmcd/cmcd.ts";
import { type CmsdStatic, formatCmsdDynamic, formatCmsdStatic } from "../cmcd/cmsd.ts";
import type { SessionTable } from "../cmcd/sessions.ts";
import { targetDurationSec } from "../playlist/hls-media.ts";
import type { NodeStats, RouteKind } from "../stats/node-stats.ts";
import {
  type MediaStore,
  maxSegmentDurationMs,
  type RenditionState,
  type StreamState,
} from "../store/media-store.ts";
import type { StoredSegment } from "../store/timeline.ts";
import { dashManifest, mediaPlaylist, multivariantPlaylist } from "./render.ts";
import { sendBody, sendText } from "./respond.ts";

/** Extra CMSD-Dynamic keys the control plane wants on responses of a stream (e.g. a handover hint). */
export type CmsdHintProvider = (where: {
  streamId: string;
  renditionId?: string;
}) => Record<string, string | number | boolean> | undefined;

export interface Blocking {
  active: number;
  readonly max: number;
}

export interface PlaybackContext {
  nodeId: string;
  store: MediaStore;
  stats: NodeStats;
  sessions: SessionTable;
  clock: Clock;
  logger: Logger;
  blocking: Blocking;
  isDraining(): boolean;
  cmsdHint: CmsdHintProvider | undefined;
}

export interface Served {
  status: number;
  route: RouteKind;
  bytes: number;
}

export const PLAYLIST_TYPE = "application/vnd.apple.mpegurl";
export const MEDIA_CACHE_CONTROL = "public, max-age=300, immutable";

const PART_RE = /^(\d{1,15})\.(\d{1,6})\.m4s$/;
const SEGMENT_RE = /^(\d{1,15})\.m4s$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

interface RequestCtx {
  req: IncomingMessage;
  res: ServerResponse;
  params: URLSearchParams;
  cmcd: CmcdData | undefined;
  startMono: number;
  streamId: string;
}

/** Parses CMCD, records the session, and applies the drain rule (no new sessions). */
function admit(
  ctx: PlaybackContext,
  rc: RequestCtx,
  where: { streamId: string; renditionId?: string },
  entryPoint: boolean,
): void {
  const parsed = cmcdFromRequest(rc.params.get("CMCD") ?? undefined, rc.req.headers);
  if (parsed) {
    if (parsed.errors.length > 0) ctx.stats.cmcdErrors.inc(undefined, parsed.errors.length);
    rc.cmcd = parsed.data;
  }
  const sid = rc.cmcd?.sid;
  if (ctx.isDraining()) {
    const isNew = sid !== undefined ? !ctx.sessions.has(sid) : entryPoint;
    if (isNew) {
      throw new HttpError(
        503,
        "this node is draining and accepts no new sessions; try another origin",
        {
          "retry-after": "1",
        },
      );
    }
  }
  if (rc.cmcd) ctx.sessions.record(rc.cmcd, where, ctx.clock.nowMs());
}

function cmsdHeaders(
  ctx: PlaybackContext,
  rc: RequestCtx,
  fields: CmsdStatic,
  renditionId?: string,
): OutgoingHttpHeaders {
  const hint = ctx.cmsdHint?.({
    streamId: rc.streamId,
    ...(renditionId !== undefined ? { renditionId } : {}),
  });
  const rd = Math.max(0, Math.round(ctx.clock.monotonicMs() - rc.startMono));
  const sid = rc.cmcd?.sid;
  const etp = sid !== undefined ? ctx.sessions.get(sid)?.deliveredKbps : undefined;
  // Hints describe this server now (duress, a handover under way), so they go
  // in CMSD-Dynamic: CMSD-Static describes the object and is cached with it
  // (media for 300 s), which would outlive the handover.
  const draining = ctx.isDraining();
  return {
    "cmsd-static": formatCmsdStatic({ ...fields, n: ctx.nodeId, st: "l" }),
    "cmsd-dynamic": formatCmsdDynamic({
      n: ctx.nodeId,
      rd,
      ...(etp !== undefined ? { etp } : {}),
      ...(draining || hint ? { custom: { ...(draining ? { du: true } : {}), ...hint } } : {}),
    }),
  };
}

function intParam(params: URLSearchParams, name: string): number | undefined {
  const v = params.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,15}$/.test(v))
    throw new HttpError(400, `${name} must be a non-negative integer, got "${v}"`);
  return Number(v);
}

/** Waits until `ready()` (or the rendition disappears) within `timeoutMs`; false on timeout or client gone. */
function hold(
  ctx: PlaybackContext,
  rc: RequestCtx,
  r: RenditionState,
  ready: () => boolean,
  timeoutMs: number,
): Promise<boolean> {
  if (ready()) return Promise.resolve(true);
  if (ctx.blocking.active >= ctx.blocking.max) {
    throw new HttpError(503, `too many held requests (${ctx.blocking.max}); retry`, {
      "retry-after": "1",
    });
  }
  ctx.blocking.active++;
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.waiters.delete(check);
      rc.res.off("close", onClose);
      ctx.blocking.active--;
      resolve(ok);
    };
    const check = () => {
      const st = ctx.store.streams.get(rc.streamId);
      if (!st || st.renditions.get(r.info.id) !== r) done(true);
      else if (ready()) done(true);
    };
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    r.waiters.add(check);
    rc.res.once("close", onClose);
  });
}

/** rfc8216bis §6.2.5.2 Advance Part Limit: 3 / part target (s) when under 1 s, else 3. */
export function advancePartLimit(partTargetMs: number): number {
  return partTargetMs < 1000 ? Math.floor(3000 / partTargetMs) : 3;
}

/** How many parts (msn, part) lies past the newest part of the rendition (≤ 0: not in the future). */
function partsAhead(st: StreamState, r: RenditionState, msn: number, part: number): number {
  const t = r.timeline;
  let lastMsn: number;
  let lastIdx: number;
  if (t.open) {
    lastMsn = t.open.msn;
    lastIdx = t.open.parts[t.open.parts.length - 1]!.index;
  } else {
    const last = t.closed[t.closed.length - 1];
    if (!last) return 1;
    lastMsn = last.msn;
    lastIdx = last.parts[last.parts.length - 1]?.index ?? -1;
  }
  const perSegment = Math.max(
    1,
    Math.round(st.def.targetSegmentDurationMs / st.def.targetPartDurationMs),
  );
  return (msn - lastMsn) * perSegment + (part - lastIdx);
}

function holdLimitMs(st: StreamState, r: RenditionState): number {
  return (
    3 *
    1000 *
    targetDurationSec({
      maxSegmentDurationMs: maxSegmentDurationMs(st.def),
      segments: r.timeline.closed,
    })
  );
}

async function servePlaylist(
  ctx: PlaybackContext,
  rc: RequestCtx,
  st: StreamState,
  r: RenditionState,
): Promise<Served> {
  const low = st.def.latency === "low";
  const msn = intParam(rc.params, "_HLS_msn");
  const part = intParam(rc.params, "_HLS_part");
  const skipParam = rc.params.get("_HLS_skip");
  if (skipParam !== null && skipParam !== "YES" && skipParam !== "v2") {
    throw new HttpError(400, `_HLS_skip must be YES or v2, got "${skipParam}"`);
  }
  let heldMs = 0;
  let blocking = false;
  if (low && (msn !== undefined || part !== undefined)) {
    if (msn === undefined)
      throw new HttpError(400, "_HLS_part requires _HLS_msn (rfc8216bis §6.2.5.2)");
    blocking = true;
    const head = r.timeline.headMsn();
    if (head !== undefined && msn > head + 2) {
      throw new HttpError(
        400,
        `_HLS_msn=${msn} is more than two segments past the last segment ${head}`,
      );
    }
    if (part !== undefined && head !== undefined) {
      const ahead = partsAhead(st, r, msn, part);
      const limit = advancePartLimit(st.def.targetPartDurationMs);
      if (ahead > limit) {
        throw new HttpError(
          400,
          `_HLS_msn=${msn}&_HLS_part=${part} is ${ahead} parts past the newest part (limit ${limit})`,
        );
      }
    }
    const t0 = ctx.clock.monotonicMs();
    const ok = await hold(ctx, rc, r, () => r.timeline.satisfies(msn, part), holdLimitMs(st, r));
    heldMs = ctx.clock.monotonicMs() - t0;
    if (rc.res.destroyed) return { status: 499, route: "blocking_playlist", bytes: 0 };
    if (!ok) {
      ctx.stats.blockingTimeouts.inc();
      throw new HttpError(
        503,
        `playlist did not reach msn ${msn}${part !== undefined ? ` part ${part}` : ""} within ${Math.round(heldMs)} ms (3 × target duration)`,
        { "retry-after": "1" },
      );
    }
    const still = ctx.store.rendition(st.def.id, r.info.id);
    if (!still)
      throw new HttpError(
        404,
        `rendition "${r.info.id}" of stream "${st.def.id}" is no longer served here`,
      );
  }
  if (r.timeline.isEmpty()) {
    throw new HttpError(503, `no media ingested yet for ${st.def.id}/${r.info.id}`, {
      "retry-after": "1",
    });
  }
  const body = mediaPlaylist(st, r, skipParam !== null);
  const td = targetDurationSec({
    maxSegmentDurationMs: maxSegmentDurationMs(st.def),
    segments: r.timeline.closed,
  });
  const cacheControl = blocking
    ? `public, max-age=${td}`
    : low
      ? "public, max-age=1"
      : `public, max-age=${Math.max(1, Math.floor(td / 2))}`;
  sendBody(rc.req, rc.res, 200, body, {
    "content-type": PLAYLIST_TYPE,
    "cache-control": cacheControl,
    ...cmsdHeaders(
      ctx,
      rc,
      { ot: "m", ...(blocking ? { ht: Math.round(heldMs) } : {}) },
      r.info.id,
    ),
  });
  return { status: 200, route: blocking ? "blocking_playlist" : "playlist", bytes: body.length };
}

function mediaType(r: RenditionState): string {
  return r.info.kind === "audio" ? "audio/mp4" : "video/mp4";
}

function objectType(r: RenditionState): "a" | "v" {
  return r.info.kind === "audio" ? "a" : "v";
}

function sendMedia(
  ctx: PlaybackContext,
  rc: RequestCtx,
  r: RenditionState,
  route: RouteKind,
  bytes: Buffer,
  sha256: string,
  fields: CmsdStatic,
): Served {
  const etag = `"${sha256.slice(0, 32)}"`;
  const headers: OutgoingHttpHeaders = {
    "content-type": mediaType(r),
    "cache-control": MEDIA_CACHE_CONTROL,
    etag,
    ...cmsdHeaders(
      ctx,
      rc,
      { ot: objectType(r), br: Math.round(r.info.bandwidth / 1000), ...fields },
      r.info.id,
    ),
  };
  if (rc.req.headers["if-none-match"] === etag) {
    rc.res.writeHead(304, headers);
    rc.res.end();
    return { status: 304, route, bytes: 0 };
  }
  sendBody(rc.req, rc.res, 200, bytes, headers);
  measureDelivery(ctx, rc, bytes.length);
  return { status: 200, route, bytes: rc.req.method === "HEAD" ? 0 : bytes.length };
}

/** Objects this large say something about the path's throughput (smaller ones fit in socket buffers). */
export const ETP_SAMPLE_BYTES_MIN = 64 * 1024;

/**
 * CMSD `etp` source: the throughput this node achieved to the session on its
 * last large object (bytes over the time from response start until the last
 * byte left for the kernel), sent back on the session's next responses.
 */
function measureDelivery(ctx: PlaybackContext, rc: RequestCtx, size: number): void {
  const sid = rc.cmcd?.sid;
  if (sid === undefined || size < ETP_SAMPLE_BYTES_MIN || rc.req.method === "HEAD") return;
  const t0 = ctx.clock.monotonicMs();
  rc.res.once("finish", () => {
    const ms = Math.max(1, ctx.clock.monotonicMs() - t0);
    const s = ctx.sessions.get(sid);
    if (s) s.deliveredKbps = Math.round((size * 8) / ms);
  });
}

async function lookupSegment(
  ctx: PlaybackContext,
  st: StreamState,
  r: RenditionState,
  msn: number,
): Promise<StoredSegment | undefined> {
  const now = ctx.clock.nowMs();
  const mem = ctx.store.segmentInMemory(st.def.id, r.info.id, msn);
  if (mem) {
    ctx.stats.recordLookup("hit", now);
    return mem;
  }
  const disk = await ctx.store.segmentFromDisk(st.def.id, r.info.id, msn);
  ctx.stats.recordLookup(disk ? "disk" : "miss", now);
  return disk;
}

async function serveSegment(
  ctx: PlaybackContext,
  rc: RequestCtx,
  st: StreamState,
  r: RenditionState,
  msn: number,
): Promise<Served> {
  let seg = await lookupSegment(ctx, st, r, msn);
  if (!seg) {
    const t = r.timeline;
    const next = t.open?.msn ?? (t.lastClosedMsn() ?? Number.NaN) + 1;
    if (msn === next) {
      // The segment in production: answer when it closes rather than 404 a slightly early client.
      await hold(ctx, rc, r, () => t.findClosed(msn) !== undefined, holdLimitMs(st, r));
      if (rc.res.destroyed) return { status: 499, route: "segment", bytes: 0 };
      seg = ctx.store.segmentInMemory(st.def.id, r.info.id, msn);
    }
  }
  if (!seg)
    throw new HttpError(404, `segment ${msn} of ${st.def.id}/${r.info.id} is not available here`);
  if (seg.gap)
    throw new HttpError(404, `segment ${msn} of ${st.def.id}/${r.info.id} is a gap (EXT-X-GAP)`);
  return sendMedia(ctx, rc, r, "segment", seg.bytes, seg.sha256, {
    d: seg.durationMs,
    at: seg.availableAtMs,
  });
}

async function servePart(
  ctx: PlaybackContext,
  rc: RequestCtx,
  st: StreamState,
  r: RenditionState,
  msn: number,
  index: number,
): Promise<Served> {
  const find = () => {
    const p = r.timeline.findPart(msn, index);
    if (p) return p;
    const seg = ctx.store.segmentInMemory(st.def.id, r.info.id, msn);
    const first = seg?.parts[0];
    return first ? seg.parts[index - first.index] : undefined;
  };
  let p = find();
  if (p) ctx.stats.recordLookup("hit", ctx.clock.nowMs());
  if (!p) {
    const ahead = partsAhead(st, r, msn, index);
    // A hinted or nearly-due part is held until it exists (rfc8216bis §6.2.6).
    if (ahead > 0 && ahead <= advancePartLimit(st.def.targetPartDurationMs)) {
      await hold(ctx, rc, r, () => find() !== undefined, holdLimitMs(st, r));
      if (rc.res.destroyed) return { status: 499, route: "part", bytes: 0 };
      p = find();
    } else {
      const seg = await ctx.store.segmentFromDisk(st.def.id, r.info.id, msn);
      const first = seg?.parts[0];
      p = first ? seg.parts[index - first.index] : undefined;
    }
    ctx.stats.recordLookup(p ? "disk" : "miss", ctx.clock.nowMs());
  }
  if (!p)
    throw new HttpError(
      404,
      `part ${msn}.${index} of ${st.def.id}/${r.info.id} is not available here`,
    );
  if (p.gap)
    throw new HttpError(
      404,
      `part ${msn}.${index} of ${st.def.id}/${r.info.id} is a gap (GAP=YES)`,
    );
  return sendMedia(ctx, rc, r, "part", p.bytes, p.sha256, { d: p.durationMs, at: p.availableAtMs });
}

/** Handles GET/HEAD /live/...; `segments` are the path segments after "live". */
export async function handlePlayback(
  ctx: PlaybackContext,
  req: IncomingMessage,
  res: ServerResponse,
  segments: readonly string[],
  query: string | undefined,
): Promise<Served> {
  const rc: RequestCtx = {
    req,
    res,
    params: new URLSearchParams(query ?? ""),
    cmcd: undefined,
    startMono: ctx.clock.monotonicMs(),
    streamId: segments[0] ?? "",
  };
  let route: RouteKind = "other";
  try {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new HttpError(405, `${req.method} is not supported on /live; use GET or HEAD`, {
        allow: "GET, HEAD",
      });
    }
    const st = ctx.store.streams.get(rc.streamId);
    if (!st) throw new HttpError(404, `stream "${rc.streamId}" is not served here`);
    if (segments.length === 2) {
      const name = segments[1];
      if (name === "master.m3u8") {
        route = "multivariant";
        admit(ctx, rc, { streamId: st.def.id }, true);
        const body = multivariantPlaylist(st);
        sendBody(req, res, 200, body, {
          "content-type": PLAYLIST_TYPE,
          "cache-control": "public, max-age=5",
          ...cmsdHeaders(ctx, rc, { ot: "m" }),
        });
        return { status: 200, route, bytes: body.length };
      }
      if (name === "manifest.mpd") {
        route = "mpd";
        admit(ctx, rc, { streamId: st.def.id }, true);
        const mpd = dashManifest(st);
        if (mpd === undefined) {
          throw new HttpError(
            503,
            `no segment with a program date-time yet for ${st.def.id}; DASH needs one to anchor availabilityStartTime`,
            {
              "retry-after": "1",
            },
          );
        }
        const body = mpd;
        sendBody(req, res, 200, body, {
          "content-type": "application/dash+xml",
          "cache-control": "public, max-age=1",
          ...cmsdHeaders(ctx, rc, { ot: "m" }),
        });
        return { status: 200, route, bytes: body.length };
      }
      throw new HttpError(404, `no such resource /live/${segments.join("/")}`);
    }
    if (segments.length !== 3)
      throw new HttpError(404, `no such resource /live/${segments.join("/")}`);
    const [, renditionId, name] = segments as [string, string, string];
    const r = st.renditions.get(renditionId);
    if (!r)
      throw new HttpError(
        404,
        `rendition "${renditionId}" of stream "${st.def.id}" is not served here`,
      );
    if (name === "index.m3u8") {
      route = "playlist";
      admit(ctx, rc, { streamId: st.def.id, renditionId }, false);
      return await servePlaylist(ctx, rc, st, r);
    }
    if (name === "init.mp4") {
      route = "init";
      admit(ctx, rc, { streamId: st.def.id, renditionId }, false);
      const init = r.timeline.init;
      if (!init) throw new HttpError(404, `no init segment yet for ${st.def.id}/${renditionId}`);
      return sendMedia(ctx, rc, r, "init", init.bytes, init.sha256, { at: init.availableAtMs });
    }
    let m = PART_RE.exec(name);
    if (m) {
      route = "part";
      admit(ctx, rc, { streamId: st.def.id, renditionId }, false);
      return await servePart(ctx, rc, st, r, Number(m[1]), Number(m[2]));
    }
    m = SEGMENT_RE.exec(name);
    if (m) {
      route = "segment";
      admit(ctx, rc, { streamId: st.def.id, renditionId }, false);
      return await serveSegment(ctx, rc, st, r, Number(m[1]));
    }
    throw new HttpError(404, `no such resource /live/${segments.join("/")}`);
  } catch (err) {
    if (err instanceof HttpError) {
      sendText(res, err.status, err.message, err.headers as Record<string, string>);
      return { status: err.status, route, bytes: 0 };
    }
    ctx.logger.error("playback failed", { err, url: req.url });
    sendText(res, 500, "internal error");
    return { status: 500, route, bytes: 0 };
  }
}
