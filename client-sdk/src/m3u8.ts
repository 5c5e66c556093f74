/**
 * A small, dependency-free HLS playlist parser (draft-pantos-hls-rfc8216bis),
 * covering what a live player needs: multivariant variants, and for media
 * playlists EXT-X-TARGETDURATION, EXT-X-MEDIA-SEQUENCE, EXTINF, EXT-X-PART,
 * EXT-X-PART-INF, EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL, EXT-X-GAP,
 * EXT-X-MAP, EXT-X-PROGRAM-DATE-TIME, EXT-X-DISCONTINUITY, EXT-X-SKIP,
 * EXT-X-BYTERANGE, EXT-X-RENDITION-REPORT, EXT-X-ENDLIST.
 *
 * Robustness: accepts CRLF, a BOM, blank lines, comments and unknown tags
 * (ignored, as the spec requires). Rejects what a player cannot use with a
 * PlaylistParseError naming the line: a missing #EXTM3U header, a segment
 * URI without EXTINF, a malformed number. Pure: text in, data out.
 */

export class PlaylistParseError extends Error {
  constructor(
    readonly line: number,
    problem: string,
  ) {
    super(`playlist line ${line}: ${problem}`);
    this.name = "PlaylistParseError";
  }
}

export interface ByteRange {
  readonly length: number;
  /** Absent: continues after the previous range of the same resource. */
  readonly offset?: number;
}

export interface MapInfo {
  readonly uri: string;
  readonly byteRange?: ByteRange;
}

export interface Part {
  /** Position of the part within its segment, from 0. */
  readonly index: number;
  readonly uri: string;
  readonly durationMs: number;
  readonly independent: boolean;
  readonly gap: boolean;
  readonly byteRange?: ByteRange;
}

export interface MediaSegment {
  readonly msn: number;
  readonly uri: string;
  readonly durationMs: number;
  readonly title: string;
  /** EXT-X-GAP: the segment is missing; do not load it. */
  readonly gap: boolean;
  readonly discontinuity: boolean;
  /** Discontinuity sequence number of this segment. */
  readonly discontinuitySequence: number;
  readonly map?: MapInfo;
  /** Wall time of the first sample: the segment's own EXT-X-PROGRAM-DATE-TIME or derived from the previous one. */
  readonly programDateTimeMs?: number;
  /** Parts listed for this segment (only recent segments keep them). */
  readonly parts: readonly Part[];
  readonly byteRange?: ByteRange;
}

export interface PreloadHint {
  readonly type: "PART" | "MAP";
  readonly uri: string;
  readonly byteRangeStart?: number;
  readonly byteRangeLength?: number;
}

export interface RenditionReport {
  readonly uri: string;
  readonly lastMsn?: number;
  readonly lastPart?: number;
}

export interface ServerControl {
  readonly canBlockReload: boolean;
  readonly canSkipUntilMs?: number;
  readonly holdBackMs?: number;
  readonly partHoldBackMs?: number;
}

export interface MediaPlaylist {
  readonly kind: "media";
  readonly version?: number;
  readonly targetDurationMs: number;
  /** MSN of the first segment in the playlist (EXT-X-MEDIA-SEQUENCE). */
  readonly mediaSequence: number;
  readonly discontinuitySequence: number;
  readonly endList: boolean;
  readonly playlistType?: "VOD" | "EVENT";
  /** EXT-X-PART-INF PART-TARGET; present for LL-HLS playlists. */
  readonly partTargetMs?: number;
  readonly serverControl: ServerControl;
  /** Segments skipped by a delta update (EXT-X-SKIP). */
  readonly skippedSegments: number;
  /** Complete segments, ascending MSN, contiguous (the first is mediaSequence + skippedSegments). */
  readonly segments: readonly MediaSegment[];
  /** Parts of the segment being produced (after the last complete one), if any are listed. */
  readonly openSegment?: { readonly msn: number; readonly parts: readonly Part[] };
  readonly preloadHints: readonly PreloadHint[];
  readonly renditionReports: readonly RenditionReport[];
}

export interface Variant {
  readonly uri: string;
  readonly bandwidth: number;
  readonly averageBandwidth?: number;
  readonly codecs: readonly string[];
  readonly resolution?: { readonly width: number; readonly height: number };
  readonly frameRate?: number;
  readonly audioGroup?: string;
  readonly pathwayId?: string;
}

export interface AlternateRendition {
  readonly type: string;
  readonly groupId: string;
  readonly name: string;
  readonly uri?: string;
  readonly language?: string;
  readonly isDefault: boolean;
}

export interface MultivariantPlaylist {
  readonly kind: "multivariant";
  readonly version?: number;
  readonly variants: readonly Variant[];
  readonly media: readonly AlternateRendition[];
  readonly contentSteering?: { readonly serverUri: string; readonly pathwayId?: string };
}

export type Playlist = MediaPlaylist | MultivariantPlaylist;

/**
 * Parses an attribute list (`KEY=value,KEY="quoted, with commas"`). Quoted
 * values are returned without quotes; keys are kept as written.
 */
export function parseAttributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && (text[i] === "," || text[i] === " ")) i++;
    const eq = text.indexOf("=", i);
    if (eq < 0) break;
    const key = text.slice(i, eq).trim();
    i = eq + 1;
    let value: string;
    if (text[i] === '"') {
      const close = text.indexOf('"', i + 1);
      const end = close < 0 ? n : close;
      value = text.slice(i + 1, end);
      i = end + 1;
    } else {
      const comma = text.indexOf(",", i);
      const end = comma < 0 ? n : comma;
      value = text.slice(i, end).trim();
      i = end;
    }
    if (key) out[key] = value;
  }
  return out;
}

function tagOf(line: string): { name: string; value: string } {
  const colon = line.indexOf(":");
  return colon < 0
    ? { name: line, value: "" }
    : { name: line.slice(0, colon), value: line.slice(colon + 1) };
}

function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
}

function decimalSeconds(value: string, line: number, what: string): number {
  const v = value.trim();
  if (!/^\d+(\.\d+)?$/.test(v)) {
    throw new PlaylistParseError(line, `${what} must be a decimal number of seconds (got "${v}")`);
  }
  return Math.round(Number(v) * 1000);
}

function integer(value: string, line: number, what: string): number {
  const v = value.trim();
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new PlaylistParseError(line, `${what} must be a non-negative integer (got "${v}")`);
  }
  return Number(v);
}

function optionalInteger(
  attrs: Record<string, string>,
  key: string,
  line: number,
): number | undefined {
  const v = attrs[key];
  return v === undefined ? undefined : integer(v, line, key);
}

function optionalSeconds(
  attrs: Record<string, string>,
  key: string,
  line: number,
): number | undefined {
  const v = attrs[key];
  return v === undefined ? undefined : decimalSeconds(v, line, key);
}

function byteRange(value: string, line: number): ByteRange {
  const m = /^(\d+)(?:@(\d+))?$/.exec(value.trim());
  if (!m) throw new PlaylistParseError(line, `BYTERANGE must be <n>[@<o>] (got "${value}")`);
  return m[2] === undefined
    ? { length: Number(m[1]) }
    : { length: Number(m[1]), offset: Number(m[2]) };
}

function checkHeader(lines: readonly string[]): void {
  if (lines[0]?.trim() !== "#EXTM3U") {
    throw new PlaylistParseError(1, "not an HLS playlist: the first line must be #EXTM3U");
  }
}

/** True when the text is a multivariant playlist (has EXT-X-STREAM-INF). */
export function isMultivariant(text: string): boolean {
  return /^#EXT-X-STREAM-INF:/m.test(text);
}

export function parsePlaylist(text: string): Playlist {
  return isMultivariant(text) ? parseMultivariantPlaylist(text) : parseMediaPlaylist(text);
}

export function parseMultivariantPlaylist(text: string): MultivariantPlaylist {
  const lines = splitLines(text);
  checkHeader(lines);
  const variants: Variant[] = [];
  const media: AlternateRendition[] = [];
  let version: number | undefined;
  let steering: MultivariantPlaylist["contentSteering"];
  let pending: { attrs: Record<string, string>; line: number } | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const lineNo = i + 1;
    if (line === "") continue;
    if (!line.startsWith("#")) {
      if (!pending) continue; // a URI with no EXT-X-STREAM-INF before it: not a variant
      const a = pending.attrs;
      const bw = a.BANDWIDTH;
      if (bw === undefined) {
        throw new PlaylistParseError(pending.line, "EXT-X-STREAM-INF needs BANDWIDTH");
      }
      const res = a.RESOLUTION ? /^(\d+)x(\d+)$/.exec(a.RESOLUTION) : null;
      variants.push({
        uri: line,
        bandwidth: integer(bw, pending.line, "BANDWIDTH"),
        ...(a["AVERAGE-BANDWIDTH"] !== undefined
          ? { averageBandwidth: integer(a["AVERAGE-BANDWIDTH"], pending.line, "AVERAGE-BANDWIDTH") }
          : {}),
        codecs: a.CODECS
          ? a.CODECS.split(",")
              .map((c) => c.trim())
              .filter(Boolean)
          : [],
        ...(res ? { resolution: { width: Number(res[1]), height: Number(res[2]) } } : {}),
        ...(a["FRAME-RATE"] !== undefined && Number.isFinite(Number(a["FRAME-RATE"]))
          ? { frameRate: Number(a["FRAME-RATE"]) }
          : {}),
        ...(a.AUDIO ? { audioGroup: a.AUDIO } : {}),
        ...(a["PATHWAY-ID"] ? { pathwayId: a["PATHWAY-ID"] } : {}),
      });
      pending = undefined;
      continue;
    }
    const { name, value } = tagOf(line);
    switch (name) {
      case "#EXT-X-VERSION":
        version = integer(value, lineNo, "EXT-X-VERSION");
        break;
      case "#EXT-X-STREAM-INF":
        pending = { attrs: parseAttributes(value), line: lineNo };
        break;
      case "#EXT-X-MEDIA": {
        const a = parseAttributes(value);
        media.push({
          type: a.TYPE ?? "",
          groupId: a["GROUP-ID"] ?? "",
          name: a.NAME ?? "",
          ...(a.URI ? { uri: a.URI } : {}),
          ...(a.LANGUAGE ? { language: a.LANGUAGE } : {}),
          isDefault: a.DEFAULT === "YES",
        });
        break;
      }
      case "#EXT-X-CONTENT-STEERING": {
        const a = parseAttributes(value);
        if (a["SERVER-URI"]) {
          steering = {
            serverUri: a["SERVER-URI"],
            ...(a["PATHWAY-ID"] ? { pathwayId: a["PATHWAY-ID"] } : {}),
          };
        }
        break;
      }
      default:
        break;
    }
  }
  return {
    kind: "multivariant",
    ...(version !== undefined ? { version } : {}),
    variants,
    media,
    ...(steering ? { contentSteering: steering } : {}),
  };
}

export function parseMediaPlaylist(text: string): MediaPlaylist {
  const lines = splitLines(text);
  checkHeader(lines);
  let version: number | undefined;
  let targetDurationMs: number | undefined;
  let mediaSequence = 0;
  let discontinuitySequence = 0;
  let endList = false;
  let playlistType: MediaPlaylist["playlistType"];
  let partTargetMs: number | undefined;
  let serverControl: ServerControl = { canBlockReload: false };
  let skipped = 0;
  const segments: MediaSegment[] = [];
  const preloadHints: PreloadHint[] = [];
  const renditionReports: RenditionReport[] = [];

  // State that applies to the next segment.
  let inf: { durationMs: number; title: string } | undefined;
  let gap = false;
  let discontinuity = false;
  let map: MapInfo | undefined;
  let pdtMs: number | undefined;
  let range: ByteRange | undefined;
  let parts: Part[] = [];
  let discSeq = 0;
  let sawSegmentOrPart = false;

  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const lineNo = i + 1;
    if (line === "") continue;
    if (!line.startsWith("#")) {
      if (!inf)
        throw new PlaylistParseError(lineNo, `segment URI "${line}" has no EXTINF before it`);
      const prev = segments[segments.length - 1];
      let pdt = pdtMs;
      if (pdt === undefined && prev?.programDateTimeMs !== undefined && !discontinuity) {
        pdt = prev.programDateTimeMs + prev.durationMs;
      }
      if (discontinuity) discSeq++;
      segments.push({
        msn: mediaSequence + skipped + segments.length,
        uri: line,
        durationMs: inf.durationMs,
        title: inf.title,
        gap,
        discontinuity,
        discontinuitySequence: discontinuitySequence + discSeq,
        ...(map ? { map } : {}),
        ...(pdt !== undefined ? { programDateTimeMs: pdt } : {}),
        parts,
        ...(range ? { byteRange: range } : {}),
      });
      inf = undefined;
      gap = false;
      discontinuity = false;
      pdtMs = undefined;
      range = undefined;
      parts = [];
      continue;
    }
    const { name, value } = tagOf(line);
    switch (name) {
      case "#EXT-X-VERSION":
        version = integer(value, lineNo, "EXT-X-VERSION");
        break;
      case "#EXT-X-TARGETDURATION":
        targetDurationMs = integer(value, lineNo, "EXT-X-TARGETDURATION") * 1000;
        break;
      case "#EXT-X-MEDIA-SEQUENCE":
        if (sawSegmentOrPart) {
          throw new PlaylistParseError(
            lineNo,
            "EXT-X-MEDIA-SEQUENCE must come before the first segment",
          );
        }
        mediaSequence = integer(value, lineNo, "EXT-X-MEDIA-SEQUENCE");
        break;
      case "#EXT-X-DISCONTINUITY-SEQUENCE":
        discontinuitySequence = integer(value, lineNo, "EXT-X-DISCONTINUITY-SEQUENCE");
        break;
      case "#EXT-X-ENDLIST":
        endList = true;
        break;
      case "#EXT-X-PLAYLIST-TYPE":
        if (value === "VOD" || value === "EVENT") playlistType = value;
        break;
      case "#EXT-X-PART-INF": {
        const a = parseAttributes(value);
        if (a["PART-TARGET"] === undefined) {
          throw new PlaylistParseError(lineNo, "EXT-X-PART-INF needs PART-TARGET");
        }
        partTargetMs = decimalSeconds(a["PART-TARGET"], lineNo, "PART-TARGET");
        break;
      }
      case "#EXT-X-SERVER-CONTROL": {
        const a = parseAttributes(value);
        const canSkipUntilMs = optionalSeconds(a, "CAN-SKIP-UNTIL", lineNo);
        const holdBackMs = optionalSeconds(a, "HOLD-BACK", lineNo);
        const partHoldBackMs = optionalSeconds(a, "PART-HOLD-BACK", lineNo);
        serverControl = {
          canBlockReload: a["CAN-BLOCK-RELOAD"] === "YES",
          ...(canSkipUntilMs !== undefined ? { canSkipUntilMs } : {}),
          ...(holdBackMs !== undefined ? { holdBackMs } : {}),
          ...(partHoldBackMs !== undefined ? { partHoldBackMs } : {}),
        };
        break;
      }
      case "#EXT-X-SKIP": {
        const a = parseAttributes(value);
        skipped = integer(a["SKIPPED-SEGMENTS"] ?? "", lineNo, "SKIPPED-SEGMENTS");
        break;
      }
      case "#EXTINF": {
        const comma = value.indexOf(",");
        const dur = comma < 0 ? value : value.slice(0, comma);
        inf = {
          durationMs: decimalSeconds(dur, lineNo, "EXTINF duration"),
          title: comma < 0 ? "" : value.slice(comma + 1),
        };
        sawSegmentOrPart = true;
        break;
      }
      case "#EXT-X-GAP":
        gap = true;
        break;
      case "#EXT-X-DISCONTINUITY":
        discontinuity = true;
        break;
      case "#EXT-X-BYTERANGE":
        range = byteRange(value, lineNo);
        break;
      case "#EXT-X-PROGRAM-DATE-TIME": {
        const t = Date.parse(value.trim());
        if (!Number.isFinite(t)) {
          throw new PlaylistParseError(
            lineNo,
            `EXT-X-PROGRAM-DATE-TIME is not an ISO-8601 date ("${value}")`,
          );
        }
        pdtMs = t;
        break;
      }
      case "#EXT-X-MAP": {
        const a = parseAttributes(value);
        if (!a.URI) throw new PlaylistParseError(lineNo, "EXT-X-MAP needs URI");
        map = { uri: a.URI, ...(a.BYTERANGE ? { byteRange: byteRange(a.BYTERANGE, lineNo) } : {}) };
        break;
      }
      case "#EXT-X-PART": {
        const a = parseAttributes(value);
        if (!a.URI) throw new PlaylistParseError(lineNo, "EXT-X-PART needs URI");
        if (a.DURATION === undefined)
          throw new PlaylistParseError(lineNo, "EXT-X-PART needs DURATION");
        sawSegmentOrPart = true;
        parts.push({
          index: parts.length,
          uri: a.URI,
          durationMs: decimalSeconds(a.DURATION, lineNo, "DURATION"),
          independent: a.INDEPENDENT === "YES",
          gap: a.GAP === "YES",
          ...(a.BYTERANGE ? { byteRange: byteRange(a.BYTERANGE, lineNo) } : {}),
        });
        break;
      }
      case "#EXT-X-PRELOAD-HINT": {
        const a = parseAttributes(value);
        if (!a.URI || (a.TYPE !== "PART" && a.TYPE !== "MAP")) {
          throw new PlaylistParseError(lineNo, "EXT-X-PRELOAD-HINT needs TYPE=PART|MAP and URI");
        }
        const start = optionalInteger(a, "BYTERANGE-START", lineNo);
        const length = optionalInteger(a, "BYTERANGE-LENGTH", lineNo);
        preloadHints.push({
          type: a.TYPE,
          uri: a.URI,
          ...(start !== undefined ? { byteRangeStart: start } : {}),
          ...(length !== undefined ? { byteRangeLength: length } : {}),
        });
        break;
      }
      case "#EXT-X-RENDITION-REPORT": {
        const a = parseAttributes(value);
        if (!a.URI) break;
        const lastMsn = optionalInteger(a, "LAST-MSN", lineNo);
        const lastPart = optionalInteger(a, "LAST-PART", lineNo);
        renditionReports.push({
          uri: a.URI,
          ...(lastMsn !== undefined ? { lastMsn } : {}),
          ...(lastPart !== undefined ? { lastPart } : {}),
        });
        break;
      }
      default:
        break; // Unknown tags and comments are ignored (rfc8216bis §4.1).
    }
  }
  if (targetDurationMs === undefined) {
    throw new PlaylistParseError(lines.length, "media playlist has no EXT-X-TARGETDURATION");
  }
  const openMsn = mediaSequence + skipped + segments.length;
  return {
    kind: "media",
    ...(version !== undefined ? { version } : {}),
    targetDurationMs,
    mediaSequence,
    discontinuitySequence,
    endList,
    ...(playlistType ? { playlistType } : {}),
    ...(partTargetMs !== undefined ? { partTargetMs } : {}),
    serverControl,
    skippedSegments: skipped,
    segments,
    ...(parts.length > 0 ? { openSegment: { msn: openMsn, parts } } : {}),
    preloadHints,
    renditionReports,
  };
}

/** MSN one past the newest complete segment (the segment being produced next). */
export function nextMsn(pl: MediaPlaylist): number {
  return pl.mediaSequence + pl.skippedSegments + pl.segments.length;
}

/** The complete segment `msn`, if listed. */
export function findSegment(pl: MediaPlaylist, msn: number): MediaSegment | undefined {
  const first = pl.mediaSequence + pl.skippedSegments;
  return msn >= first ? pl.segments[msn - first] : undefined;
}
