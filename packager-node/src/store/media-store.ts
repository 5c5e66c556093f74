/**
 * Origin storage: streams → renditions → timelines (the live window, always
 * held: it is what the playlists list, so it is pinned outside any cache),
 * plus a bytes-bounded lru-cache of segments that left the window (late
 * viewers, DVR-ish lookbacks, rfc8216bis availability after removal), plus
 * optional disk persistence. Total memory is therefore bounded by
 * window (windowSegments × segmentBytesMax per rendition) + cacheBytesMax.
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { Logger } from "../../../common/log.ts";
import type { InitTiming } from "../ingest/fmp4-timing.ts";
import type { LatencyMode, RenditionInfo, SteeringInfo } from "../playlist/model.ts";
import type { DiskStore } from "./disk-store.ts";
import { RenditionTimeline, type StoredSegment, type TimelineOptions } from "./timeline.ts";

export interface StreamDef {
  readonly id: string;
  readonly latency: LatencyMode;
  readonly targetSegmentDurationMs: number;
  /**
   * The longest segment the stream may have (the coordinator's
   * segment_duration_max_ms; default: the target). Playlists take their
   * fixed EXT-X-TARGETDURATION from it.
   */
  readonly segmentDurationMaxMs?: number;
  readonly targetPartDurationMs: number;
  readonly windowSegments: number;
  readonly deltaUpdates: boolean;
  /**
   * "duration": a segment closes when its parts reach the duration its parts
   * declare (X-Understudy-Segment-Duration-Ms, as understudy sources send),
   * else targetSegmentDurationMs; "next-segment": when the next segment
   * starts or the complete segment is pushed (unless its parts declare a
   * duration).
   */
  readonly segmentClose: "duration" | "next-segment";
  readonly renditions: readonly RenditionInfo[];
  /** Content steering hook for the multivariant playlist. */
  readonly steering?: SteeringInfo;
}

export interface PendingObject {
  bytes: Buffer;
  sha256: string;
  arrivalMs: number;
}

export interface RenditionState {
  info: RenditionInfo;
  readonly timeline: RenditionTimeline;
  readonly timelineOpts: TimelineOptions;
  initTiming: InitTiming | undefined;
  /** Objects pushed under encoder-chosen names, waiting for the pushed playlist to number them. */
  readonly pending: Map<string, PendingObject>;
  /** Called after every change (blocking reloads and held requests re-check). */
  readonly waiters: Set<() => void>;
}

export interface StreamState {
  def: StreamDef;
  readonly renditions: Map<string, RenditionState>;
  /** Bumped on any change of any rendition (playlist caches key on it). */
  version: number;
  readonly playlistCache: Map<string, { version: number; body: Buffer }>;
}

export interface MediaStoreOptions {
  cacheBytesMax: number;
  segmentBytesMax: number;
  disk?: DiskStore;
  logger: Logger;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** What EXT-X-TARGETDURATION and the MPD's update period are derived from. */
export function maxSegmentDurationMs(def: StreamDef): number {
  return Math.max(def.targetSegmentDurationMs, def.segmentDurationMaxMs ?? 0);
}

function closeAtMs(def: StreamDef): number | undefined {
  return def.segmentClose === "duration" ? def.targetSegmentDurationMs : undefined;
}

function retiredKey(streamId: string, renditionId: string, msn: number): string {
  return `${streamId}/${renditionId}/${msn}`;
}

export class MediaStore {
  readonly streams = new Map<string, StreamState>();
  /** Segments that left the live window, bounded in bytes. */
  readonly retired: LRUCache<string, StoredSegment>;

  constructor(private readonly opts: MediaStoreOptions) {
    this.retired = new LRUCache<string, StoredSegment>({
      maxSize: opts.cacheBytesMax,
      // lru-cache needs a positive size; gaps are never cached.
      sizeCalculation: (s) => Math.max(1, s.bytes.length),
    });
  }

  get disk(): DiskStore | undefined {
    return this.opts.disk;
  }

  /** Creates the stream or updates its definition; keeps the timelines of renditions still defined. */
  defineStream(def: StreamDef): StreamState {
    let st = this.streams.get(def.id);
    if (!st) {
      st = { def, renditions: new Map(), version: 0, playlistCache: new Map() };
      this.streams.set(def.id, st);
    }
    st.def = def;
    for (const info of def.renditions) {
      const existing = st.renditions.get(info.id);
      if (existing) {
        existing.info = info;
        existing.timelineOpts.windowSegments = def.windowSegments;
        existing.timelineOpts.targetSegmentDurationMs = def.targetSegmentDurationMs;
        existing.timelineOpts.closeAtMs = closeAtMs(def);
        continue;
      }
      st.renditions.set(info.id, this.newRendition(st, info));
    }
    st.version++;
    st.playlistCache.clear();
    return st;
  }

  private newRendition(st: StreamState, info: RenditionInfo): RenditionState {
    const streamId = st.def.id;
    const disk = this.opts.disk;
    const timelineOpts: TimelineOptions = {
      windowSegments: st.def.windowSegments,
      targetSegmentDurationMs: st.def.targetSegmentDurationMs,
      segmentBytesMax: this.opts.segmentBytesMax,
      closeAtMs: closeAtMs(st.def),
      hash: sha256Hex,
      onRetire: (seg) => {
        if (!seg.gap) this.retired.set(retiredKey(streamId, info.id, seg.msn), seg);
      },
      ...(disk
        ? { onClose: (seg: StoredSegment) => disk.writeSegment(streamId, info.id, seg) }
        : {}),
    };
    return {
      info,
      timeline: new RenditionTimeline(timelineOpts),
      timelineOpts,
      initTiming: undefined,
      pending: new Map(),
      waiters: new Set(),
    };
  }

  /** Stops serving renditions (all when `renditionIds` is empty); their bytes are dropped. */
  removeRenditions(streamId: string, renditionIds: readonly string[]): string[] {
    const st = this.streams.get(streamId);
    if (!st) return [];
    const ids = renditionIds.length === 0 ? [...st.renditions.keys()] : renditionIds;
    for (const id of ids) {
      const r = st.renditions.get(id);
      if (!r) continue;
      r.timeline.clear();
      st.renditions.delete(id);
      for (const key of [...this.retired.keys()]) {
        if (key.startsWith(`${streamId}/${id}/`)) this.retired.delete(key);
      }
      for (const w of [...r.waiters]) w();
    }
    const remaining = [...st.renditions.keys()];
    if (remaining.length === 0) this.streams.delete(streamId);
    else {
      st.def = { ...st.def, renditions: st.def.renditions.filter((r) => st.renditions.has(r.id)) };
      st.version++;
      st.playlistCache.clear();
    }
    return remaining;
  }

  rendition(streamId: string, renditionId: string): RenditionState | undefined {
    return this.streams.get(streamId)?.renditions.get(renditionId);
  }

  /** Call after changing a rendition: bumps versions and wakes waiters. */
  changed(streamId: string, renditionId: string): void {
    const st = this.streams.get(streamId);
    if (!st) return;
    st.version++;
    const r = st.renditions.get(renditionId);
    if (!r) return;
    for (const w of [...r.waiters]) w();
  }

  /** A closed segment from the window, else the retired cache (memory only). */
  segmentInMemory(streamId: string, renditionId: string, msn: number): StoredSegment | undefined {
    const r = this.rendition(streamId, renditionId);
    return r?.timeline.findClosed(msn) ?? this.retired.get(retiredKey(streamId, renditionId, msn));
  }

  /** Falls back to disk; a segment read from disk is cached again. */
  async segmentFromDisk(
    streamId: string,
    renditionId: string,
    msn: number,
  ): Promise<StoredSegment | undefined> {
    const disk = this.opts.disk;
    if (!disk) return undefined;
    const seg = await disk.readSegment(streamId, renditionId, msn);
    if (seg && !seg.gap) this.retired.set(retiredKey(streamId, renditionId, msn), seg);
    return seg;
  }

  /** Bytes pinned by live windows (not counted in the retired cache). */
  windowBytes(): number {
    let n = 0;
    for (const st of this.streams.values())
      for (const r of st.renditions.values()) n += r.timeline.bytesHeld();
    return n;
  }

  /** Reloads init segments and the newest window of each rendition from disk (restart). */
  async restoreFromDisk(st: StreamState, nowMs: number): Promise<number> {
    const disk = this.opts.disk;
    if (!disk) return 0;
    let restored = 0;
    for (const [rid, r] of st.renditions) {
      if (!r.timeline.isEmpty()) continue;
      const init = await disk.readInit(st.def.id, rid);
      if (init)
        r.timeline.putInit({ bytes: init, sha256: sha256Hex(init), meta: {}, arrivalMs: nowMs });
      const segs = await disk.loadWindow(st.def.id, rid, st.def.windowSegments);
      // Restored segments are already on disk: do not write them again.
      const onClose = r.timelineOpts.onClose;
      r.timelineOpts.onClose = undefined;
      try {
        for (const seg of segs) r.timeline.importSegment(seg, seg.availableAtMs);
      } finally {
        r.timelineOpts.onClose = onClose;
      }
      restored += segs.length;
      this.changed(st.def.id, rid);
    }
    return restored;
  }
}
