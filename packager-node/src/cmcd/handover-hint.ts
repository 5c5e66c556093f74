/**
 * Handover hints: while the coordinator moves a stream's viewers away from
 * this node (PackagerService.SetHandoverHint), playback responses for the
 * stream carry CTA-5006 CMSD-Dynamic keys naming the standby and the switch
 * MSN, so a player or CDN that reads CMSD learns of the move from the very
 * responses it already fetches.
 *
 * Contracts:
 * - A hint lives `ttlMs` on the monotonic clock unless renewed, so a hint
 *   never outlives a coordinator that stopped renewing it, and wall-clock
 *   skew between coordinator and node cannot stretch or cut it.
 * - Per stream the highest epoch seen by set/clear is remembered: an older
 *   set or clear is refused (a deposed or delayed caller cannot resurrect a
 *   cleared hint). This is separate from the node's ingest/assignment fence
 *   on purpose: a hint must not make encoders' pushes look stale.
 * - Bounded: at most `streamsMax` hints and `epochsMax` remembered epochs.
 */
import type { Clock } from "../../../common/clock.ts";

/** CMSD-Dynamic custom keys (CTA-5006: a hyphenated, reverse-DNS prefix). */
export const HANDOVER_HINT_KEYS = {
  /** String: the handover's id. */
  handover: "com.understudy-ho",
  /** String: the standby's component id (its Content Steering PATHWAY-ID). */
  to: "com.understudy-to",
  /** String: the standby's base URL (omitted when unknown). */
  url: "com.understudy-url",
  /** Integer: first MSN to fetch from the standby (switch at the segment boundary >= it). */
  msn: "com.understudy-msn",
  /** Integer: the stream epoch of the hint, as in handover notices (ignore older). */
  epoch: "com.understudy-ep",
} as const;

export interface HandoverHint {
  streamId: string;
  handoverId: string;
  epoch: number;
  toComponentId: string;
  /** Empty when unknown. */
  toBaseUrl: string;
  switchMsn: number;
  /** Adds the standard CMSD `du` (duress) key. */
  duress: boolean;
  /** Empty = every rendition and the stream-level playlists. */
  renditionIds: readonly string[];
}

export type HintKeys = Record<string, string | number | boolean>;

export type HintResult =
  | { ok: true; expiresMonoMs: number; expiresUnixMs: number }
  | { ok: false; highestEpoch: number };

export interface HandoverHints {
  /** Sets (replaces) the stream's hint unless `hint.epoch` is older than one seen for the stream. */
  set(hint: HandoverHint, ttlMs: number): HintResult | { ok: false; full: true };
  /** Removes the stream's hint (only `handoverId`'s when given) unless `epoch` is older. */
  clear(
    streamId: string,
    epoch: number,
    handoverId?: string,
  ): { ok: true; cleared: boolean } | { ok: false; highestEpoch: number };
  /** The live hint of a stream (expired hints are dropped on read). */
  get(streamId: string): (HandoverHint & { expiresMonoMs: number }) | undefined;
  /** CMSD-Dynamic keys for a response about `where`, or undefined. */
  keysFor(where: { streamId: string; renditionId?: string }): HintKeys | undefined;
  readonly size: number;
}

export interface HandoverHintsOptions {
  clock: Clock;
  streamsMax?: number;
  epochsMax?: number;
}

export function createHandoverHints(opts: HandoverHintsOptions): HandoverHints {
  const { clock } = opts;
  const streamsMax = opts.streamsMax ?? 1024;
  const epochsMax = opts.epochsMax ?? 4096;
  if (!(streamsMax >= 1 && epochsMax > streamsMax))
    throw new Error(
      `handover hints: need 1 <= streamsMax < epochsMax, got ${streamsMax}, ${epochsMax}`,
    );
  const hints = new Map<string, HandoverHint & { expiresMonoMs: number }>();
  /** Highest hint epoch per stream, oldest-touched first (evicted past epochsMax). */
  const epochs = new Map<string, number>();

  const stale = (streamId: string, epoch: number): number | undefined => {
    const highest = epochs.get(streamId) ?? 0;
    return epoch < highest ? highest : undefined;
  };
  const observe = (streamId: string, epoch: number) => {
    const highest = Math.max(epoch, epochs.get(streamId) ?? 0);
    epochs.delete(streamId);
    epochs.set(streamId, highest);
    if (epochs.size > epochsMax) {
      // Forget the least recently touched stream without a live hint (there
      // is one: streamsMax < epochsMax); its ingest fence still holds.
      for (const id of epochs.keys()) {
        if (!hints.has(id)) {
          epochs.delete(id);
          break;
        }
      }
    }
  };
  const live = (streamId: string) => {
    const h = hints.get(streamId);
    if (!h) return undefined;
    if (clock.monotonicMs() >= h.expiresMonoMs) {
      hints.delete(streamId);
      return undefined;
    }
    return h;
  };

  return {
    set(hint, ttlMs) {
      const highest = stale(hint.streamId, hint.epoch);
      if (highest !== undefined) return { ok: false, highestEpoch: highest };
      if (!hints.has(hint.streamId)) {
        for (const id of [...hints.keys()]) live(id); // drop expired ones first
        if (hints.size >= streamsMax) return { ok: false, full: true };
      }
      const expiresMonoMs = clock.monotonicMs() + ttlMs;
      hints.set(hint.streamId, {
        ...hint,
        renditionIds: [...hint.renditionIds],
        expiresMonoMs,
      });
      observe(hint.streamId, hint.epoch);
      return { ok: true, expiresMonoMs, expiresUnixMs: clock.nowMs() + ttlMs };
    },
    clear(streamId, epoch, handoverId) {
      const highest = stale(streamId, epoch);
      if (highest !== undefined) return { ok: false, highestEpoch: highest };
      observe(streamId, epoch);
      const h = live(streamId);
      if (!h || (handoverId && h.handoverId !== handoverId)) return { ok: true, cleared: false };
      hints.delete(streamId);
      return { ok: true, cleared: true };
    },
    get: live,
    keysFor(where) {
      const h = live(where.streamId);
      if (!h) return undefined;
      if (
        h.renditionIds.length > 0 &&
        where.renditionId !== undefined &&
        !h.renditionIds.includes(where.renditionId)
      ) {
        return undefined;
      }
      const k = HANDOVER_HINT_KEYS;
      return {
        ...(h.duress ? { du: true } : {}),
        [k.handover]: h.handoverId,
        [k.to]: h.toComponentId,
        ...(h.toBaseUrl ? { [k.url]: h.toBaseUrl } : {}),
        [k.msn]: h.switchMsn,
        [k.epoch]: h.epoch,
      };
    },
    get size() {
      return hints.size;
    },
  };
}
