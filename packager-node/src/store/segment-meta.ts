/**
 * The one serialised description of a closed segment (timing, checksums, and
 * where each part sits inside the segment's bytes). Disk persistence writes it
 * next to the bytes; the /replica inventory sends it to peers; both rebuild a
 * StoredSegment from it with `segmentFromMeta`.
 */
import type { StoredPart, StoredSegment } from "./timeline.ts";

export interface PartMeta {
  index: number;
  durationMs: number;
  independent: boolean;
  gap: boolean;
  sha256: string;
  size: number;
  timelineMs?: number;
}

export interface SegmentPartMeta extends PartMeta {
  /** Byte offset of the part inside its segment. */
  offset: number;
}

export interface SegmentMeta {
  msn: number;
  durationMs: number;
  gap: boolean;
  pdtMs?: number;
  timelineMs?: number;
  sha256: string;
  size: number;
  partsCover: boolean;
  parts: SegmentPartMeta[];
}

function opt<K extends string, T>(key: K, v: T | undefined): { [P in K]?: T } {
  return (v !== undefined ? { [key]: v } : {}) as { [P in K]?: T };
}

export function describePart(p: StoredPart): PartMeta {
  return {
    index: p.index,
    durationMs: p.durationMs,
    independent: p.independent,
    gap: p.gap,
    sha256: p.sha256,
    size: p.bytes.length,
    ...opt("timelineMs", p.timelineMs),
  };
}

export function describeSegment(s: StoredSegment): SegmentMeta {
  return {
    msn: s.msn,
    durationMs: s.durationMs,
    gap: s.gap,
    ...opt("pdtMs", s.pdtMs),
    ...opt("timelineMs", s.timelineMs),
    sha256: s.sha256,
    size: s.bytes.length,
    partsCover: s.partsCover,
    // Parts are views into the segment's bytes, so their offsets follow.
    parts: s.parts.map((p) => ({
      ...describePart(p),
      offset: p.bytes.byteOffset - s.bytes.byteOffset,
    })),
  };
}

export function partFromMeta(p: PartMeta, bytes: Buffer, availableAtMs: number): StoredPart {
  return {
    index: p.index,
    durationMs: p.durationMs,
    independent: p.independent,
    gap: p.gap,
    sha256: p.sha256,
    bytes,
    ...opt("timelineMs", p.timelineMs),
    availableAtMs,
  };
}

/**
 * Rebuilds a segment around `bytes`. With `verify`, each part's view is
 * checked against its size and checksum; undefined means a mismatch.
 */
export function segmentFromMeta(
  meta: SegmentMeta,
  bytes: Buffer,
  availableAtMs: number,
  verify?: (part: Buffer) => string,
): StoredSegment | undefined {
  const parts: StoredPart[] = [];
  for (const p of meta.parts) {
    const view = bytes.subarray(p.offset, p.offset + p.size);
    if (view.length !== p.size) return undefined;
    if (verify && verify(view) !== p.sha256) return undefined;
    parts.push(partFromMeta(p, view, availableAtMs));
  }
  return {
    msn: meta.msn,
    durationMs: meta.durationMs,
    gap: meta.gap,
    ...opt("pdtMs", meta.pdtMs),
    ...opt("timelineMs", meta.timelineMs),
    bytes,
    sha256: meta.sha256,
    parts,
    partsCover: meta.partsCover,
    availableAtMs,
  };
}
