/**
 * What the playlist writers read: a snapshot of one rendition's timeline.
 * Everything here comes from the source timeline (sequence numbers, media
 * durations, program date-times), never from arrival times or the local
 * clock, so two replicas holding the same parts write byte-identical text.
 */

export type LatencyMode = "low" | "standard";

export interface PartView {
  /** Part index inside its parent segment, from 0. */
  readonly index: number;
  readonly durationMs: number;
  /** The part starts with an independent (key) frame. */
  readonly independent: boolean;
  /** The source declared this part missing (EXT-X-PART ...,GAP=YES). */
  readonly gap: boolean;
}

export interface SegmentView {
  /** Media sequence number (MSN) from the source timeline. */
  readonly msn: number;
  readonly durationMs: number;
  /** The source declared the segment missing, or it was skipped by the timeline (EXT-X-GAP). */
  readonly gap: boolean;
  /** Wall time of the first sample, ms since the Unix epoch, when the source gave one. */
  readonly pdtMs?: number;
  /** Media time of the first sample, ms since the stream's timeline origin. */
  readonly timelineMs?: number;
  /**
   * Parts of this segment, ascending by index. Empty when the segment was not
   * ingested as parts or its parts do not cover it (then no EXT-X-PART lines).
   */
  readonly parts: readonly PartView[];
}

/** The segment still being produced: parts so far, no EXTINF yet. */
export interface OpenSegmentView {
  readonly msn: number;
  readonly pdtMs?: number;
  readonly timelineMs?: number;
  /** Ascending, contiguous by index, at least one. */
  readonly parts: readonly PartView[];
}

export interface RenditionReportView {
  /** Sibling rendition id; the report URI is "../{id}/index.m3u8". */
  readonly renditionId: string;
  readonly lastMsn: number;
  /** Index of the last part of lastMsn; absent when that segment has no parts. */
  readonly lastPart?: number;
}

export interface MediaPlaylistInput {
  readonly latency: LatencyMode;
  /**
   * The longest segment the stream may have (its segment granularity's
   * upper bound). EXT-X-TARGETDURATION is its ceiling in seconds, the same
   * for the stream's whole life however segment durations vary
   * (rfc8216bis §6.2.2: it must not change); a segment longer than that (an
   * encoder overrunning its bounds) raises it rather than be mislabelled.
   */
  readonly maxSegmentDurationMs: number;
  /** Configured part target (low latency only). */
  readonly targetPartDurationMs: number;
  /** Closed segments in the live window, ascending and contiguous by msn. */
  readonly segments: readonly SegmentView[];
  /** The in-progress segment (low latency only; ignored for standard). */
  readonly open?: OpenSegmentView;
  /** Sibling renditions' live edges (low latency only). */
  readonly renditionReports: readonly RenditionReportView[];
  /** Advertise delta updates (CAN-SKIP-UNTIL = 6 × target duration). */
  readonly deltaUpdates: boolean;
  /** The request asked for a delta update (`_HLS_skip=YES|v2`). */
  readonly skipRequested: boolean;
}

export type RenditionKind = "video" | "audio";

export interface RenditionInfo {
  readonly id: string;
  readonly kind: RenditionKind;
  /** Peak bits per second, as BANDWIDTH. */
  readonly bandwidth: number;
  readonly averageBandwidth?: number;
  /** RFC 6381 codecs string, e.g. "avc1.64001f" or "mp4a.40.2". */
  readonly codecs: string;
  /** "WIDTHxHEIGHT" (video). */
  readonly resolution?: string;
  readonly frameRate?: number;
  /** Human name (audio EXT-X-MEDIA NAME); defaults to the id. */
  readonly name?: string;
  /** BCP 47 language (audio). */
  readonly language?: string;
}

/**
 * Content steering hook: when set, the multivariant playlist carries
 * EXT-X-CONTENT-STEERING and every variant a PATHWAY-ID.
 */
export interface SteeringInfo {
  readonly serverUri: string;
  readonly pathwayId: string;
}

export interface MultivariantInput {
  readonly renditions: readonly RenditionInfo[];
  readonly steering?: SteeringInfo;
}
