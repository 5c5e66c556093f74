/**
 * Per-viewer-session stats from CMCD, bounded (LRU of `sessionsMax`). The
 * coordinator reads sessions per stream/rendition as demand, so only
 * sessions heard from within `sessionIdleMs` count as active.
 */
import { LRUCache } from "lru-cache";
import type { CmcdData } from "./cmcd.ts";

export interface SessionStats {
  readonly sid: string;
  streamId: string;
  /** Rendition of the last media/playlist request that named one. */
  renditionId: string | undefined;
  contentId: string | undefined;
  /** Last reported encoded bitrate (br), kbps. */
  bitrateKbps: number | undefined;
  /** Last reported buffer length (bl), ms. */
  bufferLengthMs: number | undefined;
  /** Last reported measured throughput (mtp), kbps. */
  throughputKbps: number | undefined;
  /** Top bitrate the player may use (tb), kbps. */
  topBitrateKbps: number | undefined;
  streamingFormat: string | undefined;
  streamType: string | undefined;
  /** Throughput this node last achieved to the session on a large object, kbps (CMSD etp). */
  deliveredKbps: number | undefined;
  requests: number;
  /** Requests reporting buffer starvation (bs) since the session began. */
  stalls: number;
  firstSeenMs: number;
  lastSeenMs: number;
}

export interface SessionTableOptions {
  sessionsMax: number;
  sessionIdleMs: number;
}

export interface DemandRow {
  streamId: string;
  renditionId: string;
  sessions: number;
  stalls: number;
}

export class SessionTable {
  private readonly lru: LRUCache<string, SessionStats>;
  constructor(private readonly opts: SessionTableOptions) {
    this.lru = new LRUCache<string, SessionStats>({ max: opts.sessionsMax });
  }

  has(sid: string): boolean {
    return this.lru.has(sid);
  }

  get(sid: string): SessionStats | undefined {
    return this.lru.peek(sid);
  }

  get size(): number {
    return this.lru.size;
  }

  /** Records one request of session `cmcd.sid` (no-op without a sid). */
  record(
    cmcd: CmcdData,
    where: { streamId: string; renditionId?: string },
    nowMs: number,
  ): SessionStats | undefined {
    const sid = cmcd.sid;
    if (!sid) return undefined;
    let s = this.lru.get(sid);
    if (!s) {
      s = {
        sid,
        streamId: where.streamId,
        renditionId: undefined,
        contentId: undefined,
        bitrateKbps: undefined,
        bufferLengthMs: undefined,
        throughputKbps: undefined,
        topBitrateKbps: undefined,
        streamingFormat: undefined,
        streamType: undefined,
        deliveredKbps: undefined,
        requests: 0,
        stalls: 0,
        firstSeenMs: nowMs,
        lastSeenMs: nowMs,
      };
      this.lru.set(sid, s);
    }
    s.streamId = where.streamId;
    if (where.renditionId !== undefined) s.renditionId = where.renditionId;
    if (cmcd.cid !== undefined) s.contentId = cmcd.cid;
    if (cmcd.br !== undefined) s.bitrateKbps = cmcd.br;
    if (cmcd.bl !== undefined) s.bufferLengthMs = cmcd.bl;
    if (cmcd.mtp !== undefined) s.throughputKbps = cmcd.mtp;
    if (cmcd.tb !== undefined) s.topBitrateKbps = cmcd.tb;
    if (cmcd.sf !== undefined) s.streamingFormat = cmcd.sf;
    if (cmcd.st !== undefined) s.streamType = cmcd.st;
    if (cmcd.bs === true) s.stalls++;
    s.requests++;
    s.lastSeenMs = nowMs;
    return s;
  }

  /** Active sessions per stream/rendition (rendition "" when none named yet). */
  demand(nowMs: number): DemandRow[] {
    const rows = new Map<string, DemandRow>();
    for (const s of this.lru.values()) {
      if (nowMs - s.lastSeenMs > this.opts.sessionIdleMs) continue;
      const renditionId = s.renditionId ?? "";
      const key = `${s.streamId}\u0000${renditionId}`;
      let row = rows.get(key);
      if (!row) {
        row = { streamId: s.streamId, renditionId, sessions: 0, stalls: 0 };
        rows.set(key, row);
      }
      row.sessions++;
      row.stalls += s.stalls;
    }
    return [...rows.values()].sort((a, b) =>
      a.streamId === b.streamId
        ? a.renditionId.localeCompare(b.renditionId)
        : a.streamId.localeCompare(b.streamId),
    );
  }
}
