/**
 * HTTP ingest (notes/INGEST-PROTOCOL.md): PUT/POST under /ingest/{stream}/{rendition}/.
 *
 * Every check that can be made before the body is made before reading it;
 * the body is then streamed through SHA-256 with the size limit enforced per
 * chunk (never buffered past the limit). Any 4xx stores nothing: the timeline
 * validates before it mutates (see store/timeline.ts).
 *
 * Deviation from the protocol note, on purpose: a request WITHOUT a
 * Content-Type is accepted and typed by its file extension, because ffmpeg's
 * hls muxer (ffmpeg 5.1 here) sends none with -method PUT. A Content-Type that
 * is present must fit the object (application/octet-stream → 415).
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../../../common/clock.ts";
import type { Logger } from "../../../common/log.ts";
import type { Fence } from "../control/fence.ts";
import { sendText } from "../http/respond.ts";
import type { NodeStats } from "../stats/node-stats.ts";
import type { MediaStore, RenditionState, StreamState } from "../store/media-store.ts";
import {
  type IncomingObject,
  type MediaMeta,
  type PutOutcome,
  TimelineRejection,
} from "../store/timeline.ts";
import { readFragmentTiming, readInitTiming } from "./fmp4-timing.ts";
import { PushedPlaylistError, parsePushedPlaylist } from "./pushed-playlist.ts";

export interface IngestLimits {
  partBytesMax: number;
  segmentBytesMax: number;
  playlistBytesMax: number;
  pendingObjectsMax: number;
}

export interface IngestContext {
  store: MediaStore;
  stats: NodeStats;
  fence: Fence;
  clock: Clock;
  logger: Logger;
  limits: IngestLimits;
  /** Accepted bearer tokens; undefined = no authentication. */
  tokens: ReadonlySet<string> | undefined;
}

const MEDIA_TYPES = new Set(["video/mp4", "audio/mp4", "video/iso.segment", "audio/iso.segment"]);
const PLAYLIST_TYPES = new Set([
  "application/vnd.apple.mpegurl",
  "application/x-mpegurl",
  "audio/mpegurl",
  "audio/x-mpegurl",
]);

type ObjectName =
  | { kind: "init" }
  | { kind: "part"; msn: number; index: number }
  | { kind: "segment"; msn: number }
  | { kind: "playlist" }
  | { kind: "named"; name: string };

const PART_RE = /^(\d{1,15})\.(\d{1,6})\.m4s$/;
const SEGMENT_RE = /^(\d{1,15})\.m4s$/;
const NAMED_RE = /^[A-Za-z0-9._-]{1,128}\.(m4s|mp4)$/;
const PLAYLIST_RE = /^[A-Za-z0-9._-]{1,128}\.m3u8$/;

export function classifyName(name: string): ObjectName | undefined {
  if (name === "init.mp4") return { kind: "init" };
  let m = PART_RE.exec(name);
  if (m) return { kind: "part", msn: Number(m[1]), index: Number(m[2]) };
  m = SEGMENT_RE.exec(name);
  if (m) return { kind: "segment", msn: Number(m[1]) };
  if (PLAYLIST_RE.test(name)) return { kind: "playlist" };
  if (NAMED_RE.test(name)) return { kind: "named", name };
  return undefined;
}

class IngestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Answers a rejected ingest. The connection is closed when the body was not
 * read, so an unread (possibly huge) body is never drained or buffered.
 */
function reject(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const close = !req.complete;
  sendText(res, status, message, close ? { ...headers, connection: "close" } : headers);
  if (close) res.once("finish", () => req.socket.destroy());
}

interface Headers {
  durationMs?: number;
  independent?: boolean;
  timelineMs?: number;
  pdtMs?: number;
  gap: boolean;
  epoch?: number;
  sha256?: string;
  segmentDurationMs?: number;
}

/** Bound on a declared segment duration (the coordinator's maximum is 15 s). */
const segmentDurationMsMax = 60_000;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseHeaders(req: IncomingMessage): Headers {
  const out: Headers = { gap: false };
  const num = (name: string): number | undefined => {
    const v = header(req, name);
    if (v === undefined) return undefined;
    if (!/^\d{1,15}(\.\d{1,6})?$/.test(v.trim()))
      throw new IngestError(
        400,
        `${name}: expected a non-negative decimal number of ms, got "${v}"`,
      );
    return Math.round(Number(v));
  };
  const flag = (name: string): boolean | undefined => {
    const v = header(req, name)?.trim().toLowerCase();
    if (v === undefined) return undefined;
    if (v === "1" || v === "true") return true;
    if (v === "0" || v === "false") return false;
    throw new IngestError(400, `${name}: expected 1 or 0, got "${v}"`);
  };
  const d = num("x-understudy-duration-ms");
  if (d !== undefined) out.durationMs = d;
  const t = num("x-understudy-timeline-ms");
  if (t !== undefined) out.timelineMs = t;
  const seg = num("x-understudy-segment-duration-ms");
  if (seg !== undefined) {
    if (seg < 1 || seg > segmentDurationMsMax)
      throw new IngestError(
        400,
        `x-understudy-segment-duration-ms: expected 1–${segmentDurationMsMax} ms, got ${seg}`,
      );
    out.segmentDurationMs = seg;
  }
  const ind = flag("x-understudy-independent");
  if (ind !== undefined) out.independent = ind;
  out.gap = flag("x-understudy-gap") === true;
  const pdt = header(req, "x-understudy-program-date-time");
  if (pdt !== undefined) {
    const ms = Date.parse(pdt);
    if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(pdt)) {
      throw new IngestError(
        400,
        `x-understudy-program-date-time: expected ISO-8601 (2024-01-01T00:00:00.000Z), got "${pdt}"`,
      );
    }
    out.pdtMs = ms;
  }
  const epoch = header(req, "x-understudy-epoch");
  if (epoch !== undefined) {
    if (!/^\d{1,15}$/.test(epoch.trim()))
      throw new IngestError(
        400,
        `x-understudy-epoch: expected a non-negative integer, got "${epoch}"`,
      );
    out.epoch = Number(epoch);
  }
  const sha = header(req, "x-understudy-sha256");
  if (sha !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(sha.trim()))
      throw new IngestError(400, "x-understudy-sha256: expected 64 hex characters");
    out.sha256 = sha.trim().toLowerCase();
  }
  return out;
}

function checkContentType(req: IncomingMessage, kind: ObjectName["kind"]): void {
  const raw = header(req, "content-type");
  if (raw === undefined || raw.trim() === "") return; // typed by extension (ffmpeg sends none)
  const base = raw.split(";")[0]!.trim().toLowerCase();
  if (kind === "playlist") {
    if (!PLAYLIST_TYPES.has(base)) {
      throw new IngestError(
        415,
        `content-type "${base}" is not a playlist type; send application/vnd.apple.mpegurl (or no content-type)`,
      );
    }
    return;
  }
  if (!MEDIA_TYPES.has(base)) {
    throw new IngestError(
      415,
      `content-type "${base}" is not accepted for media; send video/mp4, audio/mp4 or video/iso.segment (application/octet-stream is refused: say what you send)`,
    );
  }
}

function authorize(ctx: IngestContext, req: IncomingMessage): void {
  if (!ctx.tokens) return;
  const auth = header(req, "authorization");
  if (!auth)
    throw new IngestError(401, "ingest requires Authorization: Bearer <token>", {
      "www-authenticate": 'Bearer realm="ingest"',
    });
  const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  if (!m || !ctx.tokens.has(m[1]!)) {
    throw new IngestError(401, "ingest token not accepted", {
      "www-authenticate": 'Bearer realm="ingest", error="invalid_token"',
    });
  }
}

/** Streams the body through SHA-256, refusing (413) as soon as it passes `limit`. */
function readBody(
  req: IncomingMessage,
  limit: number,
  what: string,
): Promise<{ bytes: Buffer; sha256: string }> {
  const declared = header(req, "content-length");
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(
      new IngestError(413, `${what} is ${declared} bytes; the limit is ${limit}`),
    );
  }
  return new Promise((resolve, rejectBody) => {
    const hash = createHash("sha256");
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      req.off("data", onData);
      req.pause();
      rejectBody(err);
    };
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        fail(new IngestError(413, `${what} exceeds the limit of ${limit} bytes`));
        return;
      }
      hash.update(chunk);
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      if (done) return;
      done = true;
      resolve({
        bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size),
        sha256: hash.digest("hex"),
      });
    });
    req.once("error", (err) => fail(err));
    req.once("aborted", () => fail(new IngestError(400, "request body aborted")));
  });
}

function limitFor(ctx: IngestContext, kind: ObjectName["kind"]): number {
  switch (kind) {
    case "part":
      return ctx.limits.partBytesMax;
    case "playlist":
      return ctx.limits.playlistBytesMax;
    default:
      return ctx.limits.segmentBytesMax;
  }
}

/** Fills timing the encoder did not send from the fMP4 boxes (needs init.mp4 first). */
function resolveMeta(r: RenditionState, h: Headers, bytes: Buffer): MediaMeta {
  const meta: MediaMeta = { gap: h.gap };
  if (h.durationMs !== undefined) meta.durationMs = h.durationMs;
  if (h.timelineMs !== undefined) meta.timelineMs = h.timelineMs;
  if (h.independent !== undefined) meta.independent = h.independent;
  if (h.pdtMs !== undefined) meta.pdtMs = h.pdtMs;
  if (h.segmentDurationMs !== undefined) meta.segmentDurationMs = h.segmentDurationMs;
  const needs =
    meta.durationMs === undefined ||
    meta.timelineMs === undefined ||
    meta.independent === undefined;
  if (needs && !h.gap && r.initTiming) {
    const t = readFragmentTiming(bytes, r.initTiming);
    if (t) {
      meta.durationMs ??= t.durationMs;
      meta.timelineMs ??= t.timelineMs;
      meta.independent ??= t.independent;
    }
  }
  return meta;
}

function kindLabel(n: ObjectName): string {
  return n.kind;
}

export async function handleIngest(
  ctx: IngestContext,
  req: IncomingMessage,
  res: ServerResponse,
  pathSegments: readonly string[],
): Promise<number> {
  const startMono = ctx.clock.monotonicMs();
  let label = "unknown";
  try {
    if (req.method !== "PUT" && req.method !== "POST") {
      throw new IngestError(
        405,
        `${req.method} is not supported on /ingest; use PUT or POST (the packager manages retention itself)`,
        {
          allow: "PUT, POST",
        },
      );
    }
    authorize(ctx, req);
    if (pathSegments.length !== 3) {
      throw new IngestError(400, "ingest path must be /ingest/{streamId}/{renditionId}/{object}");
    }
    const [streamId, renditionId, name] = pathSegments as [string, string, string];
    const parsed = classifyName(name);
    if (!parsed) {
      throw new IngestError(
        400,
        `unrecognised object name "${name}": expected init.mp4, {msn}.m4s, {msn}.{part}.m4s, or an encoder's *.m4s/*.mp4/*.m3u8`,
      );
    }
    label = kindLabel(parsed);
    const stream = ctx.store.streams.get(streamId);
    if (!stream)
      throw new IngestError(404, `stream "${streamId}" is not assigned to this packager`);
    const r = stream.renditions.get(renditionId);
    if (!r)
      throw new IngestError(
        404,
        `rendition "${renditionId}" is not assigned for stream "${streamId}"`,
      );
    checkContentType(req, parsed.kind);
    const h = parseHeaders(req);
    if (h.epoch !== undefined) {
      const highest = ctx.fence.epochOf(streamId);
      if (h.epoch < highest)
        throw new IngestError(409, `stale epoch ${h.epoch} < ${highest} for stream "${streamId}"`);
    }
    const { bytes, sha256 } = await readBody(
      req,
      limitFor(ctx, parsed.kind),
      `${parsed.kind} ${name}`,
    );
    if (h.sha256 !== undefined && h.sha256 !== sha256) {
      throw new IngestError(
        400,
        `body SHA-256 ${sha256} does not match X-Understudy-Sha256 ${h.sha256}`,
      );
    }
    const arrivalMs = ctx.clock.nowMs();
    let status: number;
    let text: string;
    if (parsed.kind === "playlist") {
      ({ status, text } = commitPushedPlaylist(ctx, stream, r, bytes, arrivalMs));
    } else if (parsed.kind === "named") {
      ({ status, text } = holdNamed(ctx, r, parsed.name, { bytes, sha256, arrivalMs }));
    } else {
      const obj: IncomingObject = { bytes, sha256, meta: {}, arrivalMs };
      let outcome: PutOutcome;
      if (parsed.kind === "init") {
        outcome = r.timeline.putInit(obj);
        if (outcome === "created") {
          r.initTiming = readInitTiming(bytes);
          ctx.store.disk?.writeInit(streamId, renditionId, r.timeline.init!);
        }
      } else {
        obj.meta = resolveMeta(r, h, bytes);
        if (h.gap && obj.meta.durationMs === undefined) {
          obj.meta.durationMs =
            parsed.kind === "part"
              ? stream.def.targetPartDurationMs
              : stream.def.targetSegmentDurationMs;
        }
        outcome =
          parsed.kind === "part"
            ? r.timeline.putPart(parsed.msn, parsed.index, obj)
            : r.timeline.putSegment(parsed.msn, obj);
        if (outcome === "created") recordLag(ctx, r, obj.meta, arrivalMs);
      }
      status = outcome === "created" ? 201 : 200;
      text = `${outcome === "created" ? "stored" : "already stored (same bytes)"} ${name} sha256=${sha256}`;
      if (outcome === "created") ctx.store.changed(streamId, renditionId);
    }
    if (h.epoch !== undefined && status < 300) await ctx.fence.observe(0, streamId, h.epoch);
    if (status < 300) {
      ctx.stats.ingestBytes.inc(undefined, bytes.length);
      ctx.stats.ingestProcessing.add(ctx.clock.nowMs(), ctx.clock.monotonicMs() - startMono);
    }
    ctx.stats.ingestObjects.inc({
      kind: label,
      outcome: status === 201 ? "created" : status === 200 ? "repeat" : "accepted",
    });
    sendText(res, status, text, { "x-understudy-sha256": sha256 });
    return status;
  } catch (err) {
    let status = 500;
    let message = "internal error";
    let headers: Record<string, string> = {};
    if (err instanceof IngestError) {
      status = err.status;
      message = err.message;
      headers = err.headers;
    } else if (err instanceof TimelineRejection) {
      status = err.status;
      message = err.message;
    } else {
      ctx.logger.error("ingest failed", { err, url: req.url });
    }
    ctx.stats.ingestObjects.inc({ kind: label, outcome: `rejected_${status}` });
    reject(req, res, status, message, headers);
    return status;
  }
}

function recordLag(
  ctx: IngestContext,
  r: RenditionState,
  meta: MediaMeta,
  arrivalMs: number,
): void {
  const anchor = r.timeline.pdtAnchorMs;
  const pdt =
    meta.pdtMs ??
    (anchor !== undefined && meta.timelineMs !== undefined ? anchor + meta.timelineMs : undefined);
  if (pdt === undefined || meta.durationMs === undefined) return;
  ctx.stats.recordIngestLag(arrivalMs - (pdt + meta.durationMs), arrivalMs);
}

function holdNamed(
  ctx: IngestContext,
  r: RenditionState,
  name: string,
  obj: { bytes: Buffer; sha256: string; arrivalMs: number },
): { status: number; text: string } {
  if (obj.bytes.length === 0) throw new IngestError(400, `${name} has an empty body`);
  const existing = r.pending.get(name);
  if (existing && existing.sha256 === obj.sha256)
    return { status: 200, text: `already waiting: ${name}` };
  if (!existing && r.pending.size >= ctx.limits.pendingObjectsMax) {
    throw new IngestError(
      429,
      `${r.pending.size} objects already wait for a pushed playlist to number them (limit ${ctx.limits.pendingObjectsMax}); push the media playlist`,
    );
  }
  r.pending.set(name, obj);
  return { status: 202, text: `accepted ${name}; it is published when a pushed playlist names it` };
}

/**
 * Numbers waiting objects from an encoder's pushed playlist. Conflicts are
 * checked for every entry before anything is committed.
 */
function commitPushedPlaylist(
  ctx: IngestContext,
  stream: StreamState,
  r: RenditionState,
  bytes: Buffer,
  arrivalMs: number,
): { status: number; text: string } {
  let entries: ReturnType<typeof parsePushedPlaylist>["entries"];
  try {
    entries = parsePushedPlaylist(bytes.toString("utf8")).entries;
  } catch (err) {
    if (err instanceof PushedPlaylistError)
      throw new IngestError(400, `pushed playlist: ${err.message}`);
    throw err;
  }
  const t = r.timeline;
  const todo: Array<{ entry: (typeof entries)[number]; obj: { bytes: Buffer; sha256: string } }> =
    [];
  for (const entry of entries) {
    const obj = r.pending.get(entry.name);
    if (!obj) continue;
    const stored = t.findClosed(entry.msn);
    if (stored) {
      if (stored.sha256 !== obj.sha256) {
        throw new IngestError(
          409,
          `${entry.name} would be segment ${entry.msn}, which is stored with different bytes`,
        );
      }
      continue;
    }
    const last = t.lastClosedMsn();
    if (last !== undefined && entry.msn <= last) continue; // older than the window: nothing to publish
    todo.push({ entry, obj });
  }
  let committed = 0;
  for (const { entry, obj } of todo) {
    const meta = resolveMeta(
      r,
      {
        gap: false,
        durationMs: entry.durationMs,
        ...(entry.pdtMs !== undefined ? { pdtMs: entry.pdtMs } : {}),
      },
      obj.bytes,
    );
    const outcome = t.putSegment(entry.msn, {
      bytes: obj.bytes,
      sha256: obj.sha256,
      meta,
      arrivalMs,
    });
    r.pending.delete(entry.name);
    if (outcome === "created") {
      committed++;
      recordLag(ctx, r, meta, arrivalMs);
    }
  }
  for (const e of entries)
    if (t.findClosed(e.msn)?.sha256 === r.pending.get(e.name)?.sha256) r.pending.delete(e.name);
  // Objects a playlist never named are dropped after ten target durations.
  const staleMs = 10 * stream.def.targetSegmentDurationMs;
  for (const [name, p] of r.pending) if (arrivalMs - p.arrivalMs > staleMs) r.pending.delete(name);
  if (committed > 0) ctx.store.changed(stream.def.id, r.info.id);
  return committed > 0
    ? { status: 201, text: `published ${committed} segment(s) from the pushed playlist` }
    : { status: 200, text: "pushed playlist named no new segments" };
}
