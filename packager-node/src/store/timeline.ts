/**
 * One rendition's timeline: the init segment, the closed segments of the live
 * window and the segment in progress. No I/O and no clock (arrival times are
 * passed in), so the sequencing rules are unit-testable and deterministic.
 *
 * Contract for every mutation: validate first, then change state. A rejected
 * call (TimelineRejection) leaves the timeline exactly as it was, which is
 * what lets the HTTP edge promise "nothing is stored on any 4xx".
 *
 * Sequencing (source timeline; nothing is ever renumbered):
 * - parts of the segment in progress arrive in index order (a repeat of an
 *   existing part with the same bytes is idempotent);
 * - a part or segment for a later msn closes the segment in progress (its
 *   bytes are the concatenation of its parts) and marks any msn skipped in
 *   between as a gap;
 * - anything for an msn older than the window, or conflicting with stored
 *   bytes, is refused.
 *
 * Segment lengths may vary (segment granularity): a part may declare its
 * segment's duration (MediaMeta.segmentDurationMs, from the source's
 * schedule); the segment then closes once its parts from part 0 reach that
 * duration, and all parts of one segment must declare the same. Without a
 * declaration the stream's configured close rule applies (closeAtMs).
 */
import type {
  OpenSegmentView,
  PartView,
  RenditionReportView,
  SegmentView,
} from "../playlist/model.ts";

export class TimelineRejection extends Error {
  constructor(
    /** HTTP status the ingest edge answers with (400, 409, 413). */
    readonly status: 400 | 409 | 413,
    message: string,
  ) {
    super(message);
    this.name = "TimelineRejection";
  }
}

export interface MediaMeta {
  durationMs?: number;
  independent?: boolean;
  timelineMs?: number;
  pdtMs?: number;
  gap?: boolean;
  /** Duration of the segment this part belongs to, as the source cut it. */
  segmentDurationMs?: number;
}

export interface StoredPart {
  readonly index: number;
  readonly durationMs: number;
  readonly independent: boolean;
  readonly gap: boolean;
  /** After the segment closes, a view into the segment's bytes (no copy kept). */
  bytes: Buffer;
  readonly sha256: string;
  readonly timelineMs?: number;
  readonly availableAtMs: number;
}

export interface StoredSegment {
  readonly msn: number;
  readonly durationMs: number;
  readonly gap: boolean;
  readonly pdtMs?: number;
  readonly timelineMs?: number;
  /** Empty for a gap. */
  readonly bytes: Buffer;
  readonly sha256: string;
  /** Parts we hold for this segment, ascending by index (possibly only a tail). */
  readonly parts: readonly StoredPart[];
  /** Parts start at index 0 and their concatenation is the segment: list them as EXT-X-PART. */
  readonly partsCover: boolean;
  readonly availableAtMs: number;
}

export interface StoredInit {
  readonly bytes: Buffer;
  readonly sha256: string;
  readonly availableAtMs: number;
}

interface OpenSegment {
  readonly msn: number;
  readonly parts: StoredPart[];
  readonly pdtMs?: number;
  readonly timelineMs?: number;
  bytes: number;
  /** The duration its parts declare (undefined: none did). */
  segmentDurationMs?: number;
}

export type PutOutcome = "created" | "repeat";

export interface TimelineOptions {
  windowSegments: number;
  targetSegmentDurationMs: number;
  segmentBytesMax: number;
  /**
   * Close the segment in progress as soon as its parts (from part 0) reach
   * this duration (within 1 ms), instead of when the next segment starts.
   * Undefined = close on the next segment (encoders with variable segments).
   */
  closeAtMs?: number | undefined;
  /** Hex SHA-256 (segments closed from their parts are hashed once, at close). */
  hash: (bytes: Buffer) => string;
  /** Called with each segment that leaves the live window (oldest first). */
  onRetire?: (segment: StoredSegment) => void;
  /** Called with each segment as it closes (for disk persistence). */
  onClose?: (segment: StoredSegment) => void;
}

/** Input for one incoming object: bytes plus their SHA-256 (hex), computed by the caller while streaming. */
export interface IncomingObject {
  bytes: Buffer;
  sha256: string;
  meta: MediaMeta;
  arrivalMs: number;
}

/** Most gap parts padTail adds to one segment (a segment is at most a few seconds of parts). */
const partsTailGapMax = 64;

export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export class RenditionTimeline {
  init: StoredInit | undefined;
  /** Closed segments of the live window, ascending and contiguous by msn. */
  readonly closed: StoredSegment[] = [];
  open: OpenSegment | undefined;
  /** Wall time of timeline position 0 (program date-time minus timeline), once known. */
  pdtAnchorMs: number | undefined;
  /** Bumped on every change; waiters and playlist caches key on it. */
  version = 0;
  lastIngestMs = 0;

  constructor(private readonly opts: TimelineOptions) {}

  /** Highest msn this timeline has anything for, or undefined when empty. */
  headMsn(): number | undefined {
    if (this.open) return this.open.msn;
    return this.closed[this.closed.length - 1]?.msn;
  }

  lastClosedMsn(): number | undefined {
    return this.closed[this.closed.length - 1]?.msn;
  }

  firstMsn(): number | undefined {
    return this.closed[0]?.msn ?? this.open?.msn;
  }

  isEmpty(): boolean {
    return this.closed.length === 0 && !this.open;
  }

  findClosed(msn: number): StoredSegment | undefined {
    const first = this.closed[0];
    if (!first) return undefined;
    return this.closed[msn - first.msn];
  }

  findPart(msn: number, index: number): StoredPart | undefined {
    const parts = this.open?.msn === msn ? this.open.parts : this.findClosed(msn)?.parts;
    if (!parts) return undefined;
    const first = parts[0];
    return first ? parts[index - first.index] : undefined;
  }

  /** Bytes held by the window and the segment in progress. */
  bytesHeld(): number {
    let n = this.init?.bytes.length ?? 0;
    for (const s of this.closed) n += s.bytes.length;
    if (this.open) n += this.open.bytes;
    return n;
  }

  putInit(obj: IncomingObject): PutOutcome {
    if (obj.bytes.length === 0) throw new TimelineRejection(400, "init segment is empty");
    if (this.init) {
      if (this.init.sha256 === obj.sha256) return "repeat";
      throw new TimelineRejection(
        409,
        `init segment differs from the stored one (sha256 ${obj.sha256.slice(0, 12)}… != ${this.init.sha256.slice(0, 12)}…); a changed init needs a new stream`,
      );
    }
    this.init = { bytes: obj.bytes, sha256: obj.sha256, availableAtMs: obj.arrivalMs };
    this.changed(obj.arrivalMs);
    return "created";
  }

  putPart(msn: number, index: number, obj: IncomingObject): PutOutcome {
    const gap = obj.meta.gap === true;
    if (!gap && obj.bytes.length === 0) {
      throw new TimelineRejection(
        400,
        `part ${msn}.${index} has an empty body (send X-Understudy-Gap: 1 for a missing part)`,
      );
    }
    if (gap && obj.bytes.length > 0) {
      throw new TimelineRejection(400, `gap part ${msn}.${index} must have an empty body`);
    }
    if (obj.meta.durationMs === undefined) {
      throw new TimelineRejection(
        400,
        `part ${msn}.${index}: duration unknown (send X-Understudy-Duration-Ms, or init.mp4 first so it can be read from the fMP4)`,
      );
    }
    const open = this.open;
    if (open && msn === open.msn) {
      const existing = this.findPart(msn, index);
      if (existing)
        return this.repeatOrConflict(existing.sha256, obj.sha256, `part ${msn}.${index}`);
      const declared = obj.meta.segmentDurationMs;
      if (
        declared !== undefined &&
        open.segmentDurationMs !== undefined &&
        declared !== open.segmentDurationMs
      ) {
        throw new TimelineRejection(
          409,
          `part ${msn}.${index} declares a ${declared} ms segment, but segment ${msn} was started as ${open.segmentDurationMs} ms (every part of a segment declares the same duration)`,
        );
      }
      const first = open.parts[0]!;
      const last = open.parts[open.parts.length - 1]!;
      if (index < first.index) {
        throw new TimelineRejection(
          409,
          `part ${msn}.${index} goes backwards: segment ${msn} was joined at part ${first.index}`,
        );
      }
      if (index !== last.index + 1) {
        throw new TimelineRejection(
          409,
          `part ${msn}.${index} skips ahead: expected part ${msn}.${last.index + 1}`,
        );
      }
      if (open.bytes + obj.bytes.length > this.opts.segmentBytesMax) {
        throw new TimelineRejection(
          413,
          `segment ${msn} would exceed segmentBytesMax ${this.opts.segmentBytesMax} with part ${index}`,
        );
      }
      open.parts.push(this.part(index, obj));
      open.bytes += obj.bytes.length;
      if (declared !== undefined) open.segmentDurationMs = declared;
      this.closeIfComplete();
      this.changed(obj.arrivalMs);
      return "created";
    }
    const closed = this.findClosed(msn);
    if (closed) {
      const existing = this.findPart(msn, index);
      if (existing)
        return this.repeatOrConflict(existing.sha256, obj.sha256, `part ${msn}.${index}`);
      throw new TimelineRejection(
        409,
        `segment ${msn} is already closed; part ${msn}.${index} arrives too late`,
      );
    }
    this.checkNotBehind(msn, `part ${msn}.${index}`);
    // A new segment: it starts at part 0, except when it is the first thing
    // this rendition receives (a standby joining mid-segment).
    if (index !== 0 && !this.isEmpty()) {
      throw new TimelineRejection(
        409,
        `part ${msn}.${index} skips ahead: segment ${msn} must start at part 0`,
      );
    }
    this.closeOpen(msn, obj.meta.timelineMs);
    this.fillGaps(msn, obj.meta.timelineMs, obj.meta.segmentDurationMs);
    this.open = {
      msn,
      parts: [this.part(index, obj)],
      bytes: obj.bytes.length,
      ...this.timing(obj.meta),
      ...(obj.meta.segmentDurationMs !== undefined
        ? { segmentDurationMs: obj.meta.segmentDurationMs }
        : {}),
    };
    this.closeIfComplete();
    this.changed(obj.arrivalMs);
    return "created";
  }

  putSegment(msn: number, obj: IncomingObject): PutOutcome {
    const gap = obj.meta.gap === true;
    if (!gap && obj.bytes.length === 0) {
      throw new TimelineRejection(
        400,
        `segment ${msn} has an empty body (send X-Understudy-Gap: 1 for a missing segment)`,
      );
    }
    if (gap && obj.bytes.length > 0)
      throw new TimelineRejection(400, `gap segment ${msn} must have an empty body`);
    const closed = this.findClosed(msn);
    if (closed) {
      if (closed.gap !== gap) {
        throw new TimelineRejection(
          409,
          `segment ${msn} is already stored as ${closed.gap ? "a gap" : "media"}`,
        );
      }
      return this.repeatOrConflict(closed.sha256, obj.sha256, `segment ${msn}`);
    }
    this.checkNotBehind(msn, `segment ${msn}`);
    const open = this.open;
    if (open && open.msn === msn) {
      if (gap)
        throw new TimelineRejection(
          409,
          `segment ${msn} already has parts; it cannot be declared a gap`,
        );
      const offset = partsOffset(open, obj.bytes);
      if (offset < 0) {
        throw new TimelineRejection(
          409,
          `segment ${msn} conflicts with its stored parts ${open.parts[0]!.index}..${open.parts[open.parts.length - 1]!.index} (a segment is the concatenation of its parts)`,
        );
      }
      if (obj.meta.durationMs === undefined) {
        throw new TimelineRejection(
          400,
          `segment ${msn}: duration unknown (send X-Understudy-Duration-Ms)`,
        );
      }
      this.open = undefined;
      const covers = offset === 0 && open.parts[0]!.index === 0 && open.bytes === obj.bytes.length;
      const seg = this.closedFrom(msn, obj, rebase(open.parts, obj.bytes, offset), covers, open);
      this.pushClosed(seg, obj.arrivalMs);
      return "created";
    }
    if (obj.meta.durationMs === undefined) {
      throw new TimelineRejection(
        400,
        `segment ${msn}: duration unknown (send X-Understudy-Duration-Ms, or init.mp4 first so it can be read from the fMP4)`,
      );
    }
    this.closeOpen(msn, obj.meta.timelineMs);
    this.fillGaps(msn, obj.meta.timelineMs, obj.meta.durationMs);
    this.pushClosed(this.closedFrom(msn, obj, [], false, undefined), obj.arrivalMs);
    return "created";
  }

  /**
   * Replication: places a verified closed segment copied from a peer. Unlike
   * ingest it may fill an msn older than the head (a standby catching up), but
   * never one that conflicts, and never more than the window holds.
   */
  importSegment(segment: StoredSegment, arrivalMs: number): PutOutcome {
    const existing = this.findClosed(segment.msn);
    if (existing)
      return this.repeatOrConflict(existing.sha256, segment.sha256, `segment ${segment.msn}`);
    if (this.open && this.open.msn === segment.msn) {
      // The peer closed the segment we are still building: adopt its bytes if our parts are a suffix of them.
      if (partsOffset(this.open, segment.bytes) < 0) {
        throw new TimelineRejection(
          409,
          `segment ${segment.msn} from the peer conflicts with the parts stored here`,
        );
      }
      this.open = undefined;
      this.pushClosed(segment, arrivalMs);
      return "created";
    }
    const head = this.headMsn();
    const first = this.closed[0]?.msn;
    if (head === undefined || segment.msn > head) {
      this.closeOpen();
      this.fillGaps(segment.msn, segment.timelineMs);
      this.pushClosed(segment, arrivalMs);
      return "created";
    }
    if (
      first !== undefined &&
      segment.msn === first - 1 &&
      this.closed.length < this.opts.windowSegments
    ) {
      this.closed.unshift(segment);
      this.anchor(segment);
      this.changed(arrivalMs);
      return "created";
    }
    if (first === undefined && this.open && segment.msn === this.open.msn - 1) {
      this.closed.push(segment);
      this.anchor(segment);
      this.changed(arrivalMs);
      return "created";
    }
    throw new TimelineRejection(
      409,
      `segment ${segment.msn} cannot be placed: the window holds ${first ?? "nothing"}..${head}`,
    );
  }

  /** Replication of the segment in progress: places parts missing before our first one (or after our last). */
  importPart(msn: number, part: StoredPart, arrivalMs: number): PutOutcome {
    const existing = this.findPart(msn, part.index);
    if (existing)
      return this.repeatOrConflict(existing.sha256, part.sha256, `part ${msn}.${part.index}`);
    const open = this.open;
    if (open && open.msn === msn) {
      const first = open.parts[0]!;
      const last = open.parts[open.parts.length - 1]!;
      if (part.index === first.index - 1) open.parts.unshift(part);
      else if (part.index === last.index + 1) open.parts.push(part);
      else
        throw new TimelineRejection(
          409,
          `part ${msn}.${part.index} is not adjacent to the stored parts ${first.index}..${last.index}`,
        );
      open.bytes += part.bytes.length;
      this.changed(arrivalMs);
      return "created";
    }
    const head = this.headMsn();
    if (head === undefined || msn > head) {
      if (head !== undefined && msn !== head + 1) {
        throw new TimelineRejection(
          409,
          `part ${msn}.${part.index} is not next to the head ${head}`,
        );
      }
      this.closeOpen();
      this.open = {
        msn,
        parts: [part],
        bytes: part.bytes.length,
        ...this.timing(part.timelineMs !== undefined ? { timelineMs: part.timelineMs } : {}),
      };
      this.changed(arrivalMs);
      return "created";
    }
    throw new TimelineRejection(
      409,
      `part ${msn}.${part.index} belongs to a closed or evicted segment`,
    );
  }

  /** Drops everything (Unassign). */
  clear(): void {
    this.closed.length = 0;
    this.open = undefined;
    this.init = undefined;
    this.version++;
  }

  // ---- views for the playlist writers ----

  segmentViews(): SegmentView[] {
    return this.closed.map((s) => ({
      msn: s.msn,
      durationMs: s.durationMs,
      gap: s.gap,
      ...(s.pdtMs !== undefined ? { pdtMs: s.pdtMs } : {}),
      ...(s.timelineMs !== undefined ? { timelineMs: s.timelineMs } : {}),
      parts: s.partsCover ? s.parts.map(partView) : [],
    }));
  }

  openView(): OpenSegmentView | undefined {
    const o = this.open;
    if (!o) return undefined;
    return {
      msn: o.msn,
      ...(o.pdtMs !== undefined ? { pdtMs: o.pdtMs } : {}),
      ...(o.timelineMs !== undefined ? { timelineMs: o.timelineMs } : {}),
      parts: o.parts.map(partView),
    };
  }

  /** This rendition's live edge, as a sibling's EXT-X-RENDITION-REPORT sees it. */
  report(renditionId: string): RenditionReportView | undefined {
    if (this.open) {
      return {
        renditionId,
        lastMsn: this.open.msn,
        lastPart: this.open.parts[this.open.parts.length - 1]!.index,
      };
    }
    const last = this.closed[this.closed.length - 1];
    if (!last) return undefined;
    // Also when only the segment's tail was received (a replica that joined
    // mid-segment): its last part is still that segment's last part, and
    // rfc8216bis requires LAST-PART in an LL-HLS rendition report.
    const lastPart = last.parts[last.parts.length - 1]?.index;
    return { renditionId, lastMsn: last.msn, ...(lastPart !== undefined ? { lastPart } : {}) };
  }

  /**
   * Blocking reload (rfc8216bis §6.2.5.2): has the playlist reached segment
   * `msn` (complete) or, with `part`, part `part` of segment `msn` (a part
   * index past the segment's last part means part 0 of the next segment)?
   */
  satisfies(msn: number, part: number | undefined): boolean {
    const lastClosed = this.lastClosedMsn();
    if (part === undefined) return lastClosed !== undefined && lastClosed >= msn;
    if (lastClosed !== undefined && lastClosed > msn) return true;
    if (lastClosed !== undefined && lastClosed === msn) {
      const seg = this.closed[this.closed.length - 1]!;
      const lastIdx = seg.parts[seg.parts.length - 1]?.index ?? -1;
      if (part <= lastIdx) return true;
      // Past the final part: wait for part 0 of msn + 1.
      return (
        this.open !== undefined && this.open.msn === msn + 1 && this.open.parts[0]!.index === 0
      );
    }
    if (this.open && this.open.msn > msn) return true;
    if (this.open && this.open.msn === msn) {
      return this.open.parts[this.open.parts.length - 1]!.index >= part;
    }
    return false;
  }

  // ---- internals ----

  private part(index: number, obj: IncomingObject): StoredPart {
    return {
      index,
      durationMs: obj.meta.durationMs!,
      independent: obj.meta.independent === true,
      gap: obj.meta.gap === true,
      bytes: obj.bytes,
      sha256: obj.sha256,
      ...(obj.meta.timelineMs !== undefined ? { timelineMs: obj.meta.timelineMs } : {}),
      availableAtMs: obj.arrivalMs,
    };
  }

  private timing(meta: MediaMeta): { pdtMs?: number; timelineMs?: number } {
    const out: { pdtMs?: number; timelineMs?: number } = {};
    if (meta.timelineMs !== undefined) out.timelineMs = meta.timelineMs;
    if (meta.pdtMs !== undefined) out.pdtMs = meta.pdtMs;
    else if (meta.timelineMs !== undefined && this.pdtAnchorMs !== undefined) {
      out.pdtMs = this.pdtAnchorMs + meta.timelineMs;
    }
    return out;
  }

  private repeatOrConflict(stored: string, incoming: string, what: string): PutOutcome {
    if (stored === incoming) return "repeat";
    throw new TimelineRejection(
      409,
      `${what} conflicts with the stored bytes (sha256 ${incoming.slice(0, 12)}… != stored ${stored.slice(0, 12)}…)`,
    );
  }

  private checkNotBehind(msn: number, what: string): void {
    const first = this.closed[0]?.msn;
    const head = this.headMsn();
    if (head !== undefined && msn < head) {
      const where =
        first !== undefined && msn < first
          ? `older than the live window (starts at ${first})`
          : `behind the head ${head}`;
      throw new TimelineRejection(409, `${what} goes backwards: msn ${msn} is ${where}`);
    }
  }

  /** Appends gap parts to `open` up to `endTimelineMs` (see closeOpen); at most partsTailGapMax. */
  private padTail(open: OpenSegment, endTimelineMs: number): void {
    if (open.timelineMs === undefined) return;
    const last = open.parts[open.parts.length - 1]!;
    let end = open.timelineMs;
    for (const p of open.parts) end += p.durationMs;
    const hole = endTimelineMs - end;
    // Within a millisecond of rounding is no hole; a hole shorter than a part is not a lost part.
    const count = Math.min(partsTailGapMax, Math.round(hole / last.durationMs));
    if (hole <= 1 || count < 1) return;
    const each = Math.floor(hole / count);
    for (let i = 0; i < count; i++) {
      open.parts.push({
        index: last.index + 1 + i,
        durationMs: i === count - 1 ? hole - each * (count - 1) : each,
        independent: false,
        gap: true,
        bytes: Buffer.alloc(0),
        sha256: EMPTY_SHA256,
        timelineMs: end + i * each,
        availableAtMs: last.availableAtMs,
      });
    }
  }

  /**
   * Closes the segment in progress once its parts from 0 last as long as they
   * declare, else (with `closeAtMs`) that long.
   */
  private closeIfComplete(): void {
    const open = this.open;
    const target = open?.segmentDurationMs ?? this.opts.closeAtMs;
    if (target === undefined || !open || open.parts[0]!.index !== 0) return;
    let sum = 0;
    for (const p of open.parts) sum += p.durationMs;
    if (sum >= target - 1) this.closeOpen();
  }

  /**
   * Closes the segment in progress from its parts (a later msn has started, or
   * it is complete). When segment `nextMsn` = open + 1 starts later on the
   * source timeline than the open segment's last part ends (its tail was
   * never delivered, e.g. the encoder producing it died), the missing tail
   * becomes gap parts (GAP=YES): EXTINF then stays equal to the segment's
   * span on the timeline instead of shrinking to the parts received, which
   * would shift every later segment against its media time and PDT.
   * When msns are skipped in between, the tail is known only if the parts
   * declared their segment's duration: it is padded up to that.
   */
  private closeOpen(nextMsn?: number, nextTimelineMs?: number): void {
    const open = this.open;
    if (!open) return;
    if (nextMsn === open.msn + 1 && nextTimelineMs !== undefined)
      this.padTail(open, nextTimelineMs);
    else if (
      nextMsn !== undefined &&
      nextMsn > open.msn + 1 &&
      nextTimelineMs !== undefined &&
      open.timelineMs !== undefined &&
      open.segmentDurationMs !== undefined &&
      open.parts[0]!.index === 0
    )
      this.padTail(open, Math.min(nextTimelineMs, open.timelineMs + open.segmentDurationMs));
    this.open = undefined;
    const bytes = concatParts(open);
    const durationMs = open.parts.reduce((a, p) => a + p.durationMs, 0);
    const allGap = open.parts.every((p) => p.gap);
    const seg: StoredSegment = {
      msn: open.msn,
      durationMs,
      gap: allGap,
      ...(open.pdtMs !== undefined ? { pdtMs: open.pdtMs } : {}),
      ...(open.timelineMs !== undefined ? { timelineMs: open.timelineMs } : {}),
      bytes,
      sha256: open.parts.length === 1 ? open.parts[0]!.sha256 : this.opts.hash(bytes),
      parts: rebase(open.parts, bytes, 0),
      partsCover: open.parts[0]!.index === 0,
      availableAtMs: open.parts[open.parts.length - 1]!.availableAtMs,
    };
    this.pushClosed(seg, seg.availableAtMs, false);
  }

  private closedFrom(
    msn: number,
    obj: IncomingObject,
    parts: StoredPart[],
    covers: boolean,
    open: OpenSegment | undefined,
  ): StoredSegment {
    const meta = obj.meta;
    // The complete segment's own headers describe its start. Without them,
    // the parts' timing does too, but only if they start at part 0 (a
    // standby that joined mid-segment holds the timing of a later part).
    const fromParts =
      open && open.parts[0]!.index === 0
        ? dropUndefined({ pdtMs: open.pdtMs, timelineMs: open.timelineMs })
        : {};
    const timing = { ...fromParts, ...this.timing(meta) };
    return {
      msn,
      durationMs: meta.durationMs!,
      gap: meta.gap === true,
      ...timing,
      bytes: obj.bytes,
      sha256: obj.sha256,
      parts,
      partsCover: covers,
      availableAtMs: obj.arrivalMs,
    };
  }

  /**
   * Marks msns skipped between the head and `msn` as gaps (numbers are kept,
   * never reassigned). Their durations split the timeline hole when both
   * ends are known, else one target each. Across a segment duration change
   * the split is exact when the hole is a run of segments as long as the
   * last closed one followed by a run as long as the next one declares
   * (`nextSegmentMs`); otherwise it is even.
   */
  private fillGaps(
    msn: number,
    nextTimelineMs: number | undefined,
    nextSegmentMs?: number | undefined,
  ): void {
    const last = this.closed[this.closed.length - 1];
    if (!last || msn <= last.msn + 1) return;
    const missing = msn - last.msn - 1;
    const missingShown = Math.min(missing, this.opts.windowSegments);
    const prevEnd = last.timelineMs !== undefined ? last.timelineMs + last.durationMs : undefined;
    const hole =
      prevEnd !== undefined && nextTimelineMs !== undefined ? nextTimelineMs - prevEnd : undefined;
    const durations = gapDurations(
      missing,
      hole,
      last.durationMs,
      nextSegmentMs,
      this.opts.targetSegmentDurationMs,
    );
    let offset = 0;
    for (let i = 0; i < missing; i++) {
      const gapMsn = last.msn + 1 + i;
      const durationMs = durations(i);
      const timelineMs = prevEnd !== undefined ? prevEnd + offset : undefined;
      offset += durationMs;
      // Only the newest `windowSegments` gaps can still be in the window.
      if (i < missing - missingShown) continue;
      const seg: StoredSegment = {
        msn: gapMsn,
        durationMs,
        gap: true,
        ...(timelineMs !== undefined ? this.timing({ timelineMs }) : {}),
        bytes: Buffer.alloc(0),
        sha256: EMPTY_SHA256,
        parts: [],
        partsCover: false,
        availableAtMs: last.availableAtMs,
      };
      if (i === missing - missingShown && missingShown < missing) {
        // More msns were skipped than the window holds: the window restarts
        // at the first gap it can still show, keeping it contiguous.
        this.retireAll();
      }
      this.pushClosed(seg, last.availableAtMs, false);
    }
  }

  private retireAll(): void {
    while (this.closed.length > 0) this.opts.onRetire?.(this.closed.shift()!);
  }

  private anchor(s: { pdtMs?: number; timelineMs?: number }): void {
    if (this.pdtAnchorMs === undefined && s.pdtMs !== undefined && s.timelineMs !== undefined) {
      this.pdtAnchorMs = s.pdtMs - s.timelineMs;
    }
  }

  private pushClosed(seg: StoredSegment, arrivalMs: number, bump = true): void {
    this.closed.push(seg);
    this.anchor(seg);
    this.opts.onClose?.(seg);
    while (this.closed.length > this.opts.windowSegments)
      this.opts.onRetire?.(this.closed.shift()!);
    if (bump) this.changed(arrivalMs);
    else this.version++;
  }

  private changed(arrivalMs: number): void {
    this.version++;
    if (arrivalMs > this.lastIngestMs) this.lastIngestMs = arrivalMs;
  }
}

/**
 * Duration of the i-th of `missing` skipped segments. With the hole known:
 * `a` segments of the previous length then `missing - a` of the next one
 * when that fills it exactly (a change of segment duration inside the hole),
 * else an even split with the remainder on the last. Without: the target.
 */
function gapDurations(
  missing: number,
  hole: number | undefined,
  prevMs: number,
  nextMs: number | undefined,
  targetMs: number,
): (i: number) => number {
  if (hole === undefined || hole <= 0) return () => targetMs;
  if (nextMs !== undefined && nextMs > 0 && nextMs !== prevMs && prevMs > 0) {
    const a = (hole - missing * nextMs) / (prevMs - nextMs);
    if (Number.isInteger(a) && a >= 0 && a <= missing) return (i) => (i < a ? prevMs : nextMs);
  }
  const each = Math.floor(hole / missing);
  return (i) => (i === missing - 1 ? hole - each * (missing - 1) : each);
}

function partView(p: StoredPart): PartView {
  return { index: p.index, durationMs: p.durationMs, independent: p.independent, gap: p.gap };
}

/** Points parts at views of the segment's bytes so the part buffers can be freed. */
function rebase(parts: readonly StoredPart[], segment: Buffer, startOffset: number): StoredPart[] {
  let off = startOffset;
  return parts.map((p) => {
    const len = p.bytes.length;
    const rebased = { ...p, bytes: segment.subarray(off, off + len) };
    off += len;
    return rebased;
  });
}

function concatParts(open: OpenSegment): Buffer {
  return open.parts.length === 1
    ? open.parts[0]!.bytes
    : Buffer.concat(
        open.parts.map((p) => p.bytes),
        open.bytes,
      );
}

/**
 * Where the open segment's parts sit inside `bytes`: 0 when they are its
 * start (a segment joined at part 0), else anywhere (joined mid-segment);
 * -1 when they are not in it, i.e. conflicting bytes.
 */
function partsOffset(open: OpenSegment, bytes: Buffer): number {
  if (open.bytes > bytes.length) return -1;
  const concat = concatParts(open);
  if (open.parts[0]!.index === 0) return bytes.subarray(0, concat.length).equals(concat) ? 0 : -1;
  return bytes.indexOf(concat);
}

function dropUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
