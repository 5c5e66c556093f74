/**
 * HLS media playlist writer (draft-pantos-hls-rfc8216bis): LL-HLS for
 * low-latency streams (EXT-X-PART, EXT-X-PRELOAD-HINT, blocking reload,
 * rendition reports, optional delta updates), classic HLS otherwise.
 *
 * Pure: the output is a function of the input only (no clock, no I/O), and
 * every URI is relative, so replicas fed the same parts write the same bytes.
 *
 * Segments may differ in duration (segment granularity changes at segment
 * boundaries): each EXTINF is its own segment's media duration, while
 * EXT-X-TARGETDURATION, HOLD-BACK (3 × target duration) and CAN-SKIP-UNTIL
 * (6 ×) follow the stream's maximum segment duration and so never change;
 * PART-TARGET and PART-HOLD-BACK (3 × part target) follow the parts.
 */
import type { MediaPlaylistInput, OpenSegmentView, PartView, SegmentView } from "./model.ts";

/** rfc8216bis §6.2.2: EXT-X-PART tags are removed once further than this many target durations from the end. */
export const PART_RETENTION_TARGET_DURATIONS = 3;
/** rfc8216bis §4.4.3.8: HOLD-BACK is at least three target durations. */
export const HOLD_BACK_TARGET_DURATIONS = 3;
/** rfc8216bis §4.4.3.8: PART-HOLD-BACK is at least three part targets (2× allowed, 3× recommended). */
export const PART_HOLD_BACK_PART_TARGETS = 3;
/** rfc8216bis §4.4.3.8: CAN-SKIP-UNTIL is at least six target durations. */
export const SKIP_UNTIL_TARGET_DURATIONS = 6;

export const INIT_URI = "init.mp4";

export function segmentUri(msn: number): string {
  return `${msn}.m4s`;
}

export function partUri(msn: number, index: number): string {
  return `${msn}.${index}.m4s`;
}

/** Seconds with millisecond precision, fixed format so every replica prints the same text. */
export function formatSeconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** ISO-8601 with milliseconds and Z, as rfc8216bis §4.4.4.6 shows. */
export function formatDateTime(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * EXT-X-TARGETDURATION: whole seconds, the ceiling of the stream's maximum
 * segment duration, so it stays put while segment durations vary within
 * their bounds; never below a listed segment (rfc8216bis §4.4.3.1: EXTINF
 * rounded to the nearest integer must not exceed it).
 */
export function targetDurationSec(input: {
  maxSegmentDurationMs: number;
  segments: readonly SegmentView[];
}): number {
  let max = input.maxSegmentDurationMs;
  for (const s of input.segments) if (s.durationMs > max) max = s.durationMs;
  return Math.max(1, Math.ceil(max / 1000));
}

/** PART-TARGET in ms: the configured target, raised to the longest part listed so the tag stays truthful. */
export function partTargetMs(input: MediaPlaylistInput): number {
  let max = input.targetPartDurationMs;
  for (const s of input.segments)
    for (const p of s.parts) if (p.durationMs > max) max = p.durationMs;
  for (const p of input.open?.parts ?? []) if (p.durationMs > max) max = p.durationMs;
  return max;
}

/**
 * The part the next blocking reload or preload hint points at: the part after
 * the newest one, or part 0 of the segment after the last closed one.
 */
export function nextPart(input: {
  segments: readonly SegmentView[];
  open?: OpenSegmentView;
}): { msn: number; index: number } | undefined {
  const open = input.open;
  if (open && open.parts.length > 0) {
    return { msn: open.msn, index: open.parts[open.parts.length - 1]!.index + 1 };
  }
  const last = input.segments[input.segments.length - 1];
  return last ? { msn: last.msn + 1, index: 0 } : undefined;
}

function partLine(msn: number, p: PartView): string {
  let line = `#EXT-X-PART:DURATION=${formatSeconds(p.durationMs)},URI="${partUri(msn, p.index)}"`;
  if (p.independent) line += ",INDEPENDENT=YES";
  if (p.gap) line += ",GAP=YES";
  return line;
}

/**
 * Writes a media playlist. Throws only on a broken invariant (segments not
 * contiguous/ascending), which is a bug in the caller.
 */
export function writeMediaPlaylist(input: MediaPlaylistInput): string {
  const low = input.latency === "low";
  const segments = input.segments;
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.msn !== segments[i - 1]!.msn + 1) {
      throw new Error(
        `invariant violated: playlist segments must be contiguous (msn ${segments[i - 1]!.msn} then ${segments[i]!.msn})`,
      );
    }
  }
  const open = low ? input.open : undefined;
  if (open && segments.length > 0 && open.msn !== segments[segments.length - 1]!.msn + 1) {
    throw new Error(
      `invariant violated: open segment ${open.msn} must follow the last closed segment ${segments[segments.length - 1]!.msn}`,
    );
  }
  const td = targetDurationSec(input);
  const tdMs = td * 1000;
  const partTarget = partTargetMs(input);
  const canSkip = low && input.deltaUpdates;
  const lines: string[] = [
    "#EXTM3U",
    `#EXT-X-VERSION:${canSkip ? 9 : 6}`,
    `#EXT-X-TARGETDURATION:${td}`,
  ];
  if (low) {
    const attrs: string[] = [];
    if (canSkip) attrs.push(`CAN-SKIP-UNTIL=${formatSeconds(SKIP_UNTIL_TARGET_DURATIONS * tdMs)}`);
    attrs.push("CAN-BLOCK-RELOAD=YES");
    attrs.push(`PART-HOLD-BACK=${formatSeconds(PART_HOLD_BACK_PART_TARGETS * partTarget)}`);
    attrs.push(`HOLD-BACK=${formatSeconds(HOLD_BACK_TARGET_DURATIONS * tdMs)}`);
    lines.push(`#EXT-X-SERVER-CONTROL:${attrs.join(",")}`);
    lines.push(`#EXT-X-PART-INF:PART-TARGET=${formatSeconds(partTarget)}`);
  }
  const firstMsn = segments[0]?.msn ?? open?.msn ?? 0;
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${firstMsn}`);
  lines.push("#EXT-X-INDEPENDENT-SEGMENTS");
  lines.push(`#EXT-X-MAP:URI="${INIT_URI}"`);

  // Offsets from the start of the first listed segment decide which segments
  // keep their EXT-X-PART lines and which a delta update may skip.
  const starts: number[] = [];
  let closedEndMs = 0;
  for (const s of segments) {
    starts.push(closedEndMs);
    closedEndMs += s.durationMs;
  }
  let playlistEndMs = closedEndMs;
  for (const p of open?.parts ?? []) playlistEndMs += p.durationMs;

  let skipped = 0;
  if (canSkip && input.skipRequested) {
    const skipUntilMs = SKIP_UNTIL_TARGET_DURATIONS * tdMs;
    while (skipped < segments.length && closedEndMs - starts[skipped]! > skipUntilMs) skipped++;
    if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
  }

  const partWindowMs = PART_RETENTION_TARGET_DURATIONS * tdMs;
  let prev: SegmentView | undefined;
  for (let i = skipped; i < segments.length; i++) {
    const s = segments[i]!;
    if (s.pdtMs !== undefined) {
      const continuous =
        prev?.pdtMs !== undefined && prev.pdtMs + prev.durationMs === s.pdtMs && i > skipped;
      if (!continuous) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${formatDateTime(s.pdtMs)}`);
    }
    if (low && !s.gap && playlistEndMs - starts[i]! <= partWindowMs) {
      for (const p of s.parts) lines.push(partLine(s.msn, p));
    }
    if (s.gap) lines.push("#EXT-X-GAP");
    lines.push(`#EXTINF:${formatSeconds(s.durationMs)},`);
    lines.push(segmentUri(s.msn));
    prev = s;
  }
  if (open) {
    if (open.pdtMs !== undefined && segments.length === 0) {
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${formatDateTime(open.pdtMs)}`);
    }
    for (const p of open.parts) lines.push(partLine(open.msn, p));
  }
  if (low) {
    const next = nextPart(input);
    if (next) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${partUri(next.msn, next.index)}"`);
    for (const r of input.renditionReports) {
      let line = `#EXT-X-RENDITION-REPORT:URI="../${r.renditionId}/index.m3u8",LAST-MSN=${r.lastMsn}`;
      if (r.lastPart !== undefined) line += `,LAST-PART=${r.lastPart}`;
      lines.push(line);
    }
  }
  return `${lines.join("\n")}\n`;
}
