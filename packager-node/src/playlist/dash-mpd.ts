/**
 * DASH MPD writer (ISO/IEC 23009-1, isoff-live profile): one dynamic Period,
 * SegmentTemplate with $Number$ equal to the HLS media sequence number and a
 * SegmentTimeline in milliseconds of the source timeline, so DASH and HLS
 * viewers of any replica address the same objects.
 *
 * Pure. availabilityStartTime is the wall time of the source timeline origin
 * (program date-time minus timeline position), and publishTime is the wall
 * time of the newest segment's end, so replicas fed the same parts write the
 * same bytes. Assumes the fMP4 decode times match the source timeline (the
 * understudy source guarantees it); segments without a timeline position
 * continue from the previous one. Segments of different durations (segment
 * granularity) are runs of `S` elements with their own `d`.
 */
import { formatSeconds } from "./hls-media.ts";
import type { RenditionInfo, SegmentView } from "./model.ts";

export interface DashRenditionInput {
  readonly info: RenditionInfo;
  /** Closed segments in the live window, ascending by msn. */
  readonly segments: readonly SegmentView[];
}

export interface DashInput {
  readonly renditions: readonly DashRenditionInput[];
  /** Wall time (ms since epoch) of timeline position 0. */
  readonly availabilityStartTimeMs: number;
  /**
   * The stream's longest allowed segment (minimumUpdatePeriod and
   * minBufferTime), so the MPD's header is as stable as the HLS target duration.
   */
  readonly maxSegmentDurationMs: number;
  /** suggestedPresentationDelay, e.g. the HLS HOLD-BACK. */
  readonly presentationDelayMs: number;
  /** UTCTiming http-iso source, path-absolute so it is the same on every replica. */
  readonly utcTimingUri?: string;
}

/** ISO 8601 duration with millisecond precision: PT2S, PT0.5S. */
export function isoDuration(ms: number): string {
  const s = formatSeconds(Math.max(0, ms)).replace(/\.?0+$/, "");
  return `PT${s === "" ? "0" : s}S`;
}

/** DASH FrameRateType: an integer or a fraction ("30000/1001"). */
export function dashFrameRate(fps: number): string {
  if (Number.isInteger(fps)) return String(fps);
  const ntsc = Math.round(fps * 1.001);
  if (Math.abs((ntsc * 1000) / 1001 - fps) < 0.001) return `${ntsc * 1000}/1001`;
  return `${Math.round(fps * 1000)}/1000`;
}

function attr(name: string, value: string | number): string {
  const v = String(value).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  return ` ${name}="${v}"`;
}

interface TimelineEntry {
  t: number;
  d: number;
  r: number;
  /** True when t must be written (first entry, or a jump in the timeline). */
  explicitT: boolean;
}

export function segmentTimeline(segments: readonly SegmentView[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  let nextT = 0;
  for (const s of segments) {
    const t = s.timelineMs ?? nextT;
    const last = out[out.length - 1];
    if (last && t === nextT && s.durationMs === last.d) {
      last.r++;
    } else {
      out.push({ t, d: s.durationMs, r: 0, explicitT: !last || t !== nextT });
    }
    nextT = t + s.durationMs;
  }
  return out;
}

function representation(r: DashRenditionInput, indent: string): string[] {
  const i = r.info;
  let open = `${indent}<Representation${attr("id", i.id)}${attr("bandwidth", i.bandwidth)}${attr("codecs", i.codecs)}`;
  if (i.resolution) {
    const [w, h] = i.resolution.split("x");
    open += `${attr("width", w!)}${attr("height", h!)}`;
  }
  if (i.frameRate !== undefined) open += attr("frameRate", dashFrameRate(i.frameRate));
  open += ">";
  const lines = [open];
  const startNumber = r.segments[0]?.msn ?? 0;
  lines.push(
    `${indent}  <SegmentTemplate${attr("timescale", 1000)}${attr("initialization", "$RepresentationID$/init.mp4")}${attr("media", "$RepresentationID$/$Number$.m4s")}${attr("startNumber", startNumber)}>`,
  );
  lines.push(`${indent}    <SegmentTimeline>`);
  for (const e of segmentTimeline(r.segments)) {
    let s = `${indent}      <S`;
    if (e.explicitT) s += attr("t", e.t);
    s += attr("d", e.d);
    if (e.r > 0) s += attr("r", e.r);
    lines.push(`${s}/>`);
  }
  lines.push(`${indent}    </SegmentTimeline>`);
  lines.push(`${indent}  </SegmentTemplate>`);
  lines.push(`${indent}</Representation>`);
  return lines;
}

export function writeDashMpd(input: DashInput): string {
  let newestEndMs = 0;
  let shortestWindowMs = Number.POSITIVE_INFINITY;
  for (const r of input.renditions) {
    const entries = segmentTimeline(r.segments);
    const last = entries[entries.length - 1];
    if (last) newestEndMs = Math.max(newestEndMs, last.t + last.d * (last.r + 1));
    const windowMs = r.segments.reduce((a, s) => a + s.durationMs, 0);
    shortestWindowMs = Math.min(shortestWindowMs, windowMs);
  }
  if (!Number.isFinite(shortestWindowMs)) shortestWindowMs = 0;
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>'];
  lines.push(
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"${attr("profiles", "urn:mpeg:dash:profile:isoff-live:2011")}${attr("type", "dynamic")}` +
      `${attr("availabilityStartTime", new Date(input.availabilityStartTimeMs).toISOString())}` +
      `${attr("publishTime", new Date(input.availabilityStartTimeMs + newestEndMs).toISOString())}` +
      `${attr("minimumUpdatePeriod", isoDuration(input.maxSegmentDurationMs))}` +
      `${attr("minBufferTime", isoDuration(input.maxSegmentDurationMs))}` +
      `${attr("timeShiftBufferDepth", isoDuration(shortestWindowMs))}` +
      `${attr("suggestedPresentationDelay", isoDuration(input.presentationDelayMs))}>`,
  );
  lines.push(`  <Period${attr("id", "0")}${attr("start", "PT0S")}>`);
  const kinds = [
    { kind: "video", mime: "video/mp4" },
    { kind: "audio", mime: "audio/mp4" },
  ] as const;
  let setId = 0;
  for (const k of kinds) {
    const reps = input.renditions.filter((r) => r.info.kind === k.kind);
    if (reps.length === 0) continue;
    let set = `    <AdaptationSet${attr("id", setId++)}${attr("contentType", k.kind)}${attr("mimeType", k.mime)}`;
    const lang = reps.find((r) => r.info.language)?.info.language;
    if (lang) set += attr("lang", lang);
    set += `${attr("segmentAlignment", "true")}${attr("startWithSAP", 1)}>`;
    lines.push(set);
    for (const r of reps) lines.push(...representation(r, "      "));
    lines.push("    </AdaptationSet>");
  }
  lines.push("  </Period>");
  if (input.utcTimingUri) {
    lines.push(
      `  <UTCTiming${attr("schemeIdUri", "urn:mpeg:dash:utc:http-iso:2014")}${attr("value", input.utcTimingUri)}/>`,
    );
  }
  lines.push("</MPD>");
  return `${lines.join("\n")}\n`;
}
