/**
 * Reading live LL-HLS playlists from outside, as a player does: the newest
 * part, the part the next blocking reload asks for, the numbering invariants
 * every replica must keep, and a watcher that follows one replica with
 * blocking reloads and records when each part appeared.
 */
import assert from "node:assert/strict";
import { getText, partsPerSegment } from "./support.ts";

export interface PartRef {
  readonly msn: number;
  readonly part: number;
}

/** Parts on one timeline axis: msn × partsPerSegment + part. */
export const partIndex = (p: PartRef) => p.msn * partsPerSegment + p.part;

export function nextPart(p: PartRef): PartRef {
  return p.part + 1 < partsPerSegment
    ? { msn: p.msn, part: p.part + 1 }
    : { msn: p.msn + 1, part: 0 };
}

/** Every EXT-X-PART of a media playlist, in order. */
export function partsOf(playlist: string): PartRef[] {
  return [...playlist.matchAll(/^#EXT-X-PART:.*URI="(\d+)\.(\d+)\.m4s"/gm)].map((m) => ({
    msn: Number(m[1]),
    part: Number(m[2]),
  }));
}

export function lastPart(playlist: string): PartRef | undefined {
  return partsOf(playlist).at(-1);
}

/** Closed segment MSNs listed (#EXTINF then "{msn}.m4s"). */
export function segmentMsns(playlist: string): number[] {
  return [...playlist.matchAll(/^#EXTINF:[^\n]*\n(\d+)\.m4s$/gm)].map((m) => Number(m[1]));
}

export function mediaSequence(playlist: string): number {
  const m = /^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(playlist);
  assert.ok(m, `no EXT-X-MEDIA-SEQUENCE in\n${playlist}`);
  return Number(m[1]);
}

/**
 * Numbering invariants of one media playlist: EXT-X-MEDIA-SEQUENCE is the
 * MSN of the first listed segment, closed segments are consecutive, listed
 * parts are consecutive and continue into the open segment, no EXT-X-GAP, and
 * every URI is relative (so replicas can be byte-identical).
 */
export function checkNumbering(playlist: string, where: string): void {
  const seq = mediaSequence(playlist);
  const msns = segmentMsns(playlist);
  assert.ok(msns.length > 0, `${where}: no closed segment\n${playlist}`);
  assert.equal(msns[0], seq, `${where}: EXT-X-MEDIA-SEQUENCE ${seq} but first segment ${msns[0]}`);
  msns.forEach((m, i) => {
    assert.equal(m, seq + i, `${where}: segment MSNs not consecutive: ${msns.join(",")}`);
  });
  const parts = partsOf(playlist);
  for (let i = 1; i < parts.length; i++) {
    assert.equal(
      partIndex(parts[i]!),
      partIndex(parts[i - 1]!) + 1,
      `${where}: parts not consecutive at ${parts[i]!.msn}.${parts[i]!.part}`,
    );
  }
  assert.ok(!/EXT-X-GAP/.test(playlist), `${where}: EXT-X-GAP in\n${playlist}`);
  assert.ok(!/(?:URI="|^)[a-z]+:\/\//im.test(playlist), `${where}: absolute URI in\n${playlist}`);
}

/**
 * The playlists of several replicas in the same state: asks each for the
 * same not-yet-published part with a blocking reload, so they answer when
 * that part arrives and not at whatever moment a plain GET would catch.
 */
export async function playlistsAtSamePart(
  baseUrls: readonly string[],
  path: string,
): Promise<{ at: PartRef; texts: string[] }> {
  const first = await getText(`${baseUrls[0]}${path}`);
  assert.equal(first.status, 200, `${baseUrls[0]}${path}: ${first.status} ${first.text}`);
  const last = lastPart(first.text);
  assert.ok(last, `no parts in\n${first.text}`);
  const at = nextPart(last);
  const texts = await Promise.all(
    baseUrls.map(async (b) => {
      const r = await getText(`${b}${path}?_HLS_msn=${at.msn}&_HLS_part=${at.part}`, 8000);
      assert.equal(r.status, 200, `${b}${path} blocking: ${r.status} ${r.text}`);
      return r.text;
    }),
  );
  return { at, texts };
}

export interface Arrival extends PartRef {
  /** Wall ms when a blocking reload first returned a playlist listing this part. */
  readonly atMs: number;
}

export interface Watcher {
  readonly arrivals: Arrival[];
  readonly errors: string[];
  /** Media sequence values seen, in order (must never go down). */
  readonly mediaSequences: number[];
  stop(): Promise<void>;
}

/**
 * Follows one replica's media playlist the way an LL-HLS player does
 * (blocking reload for the next part, in a loop) and records every part as
 * it appears, checking numbering on each playlist. Bounded: one request at a
 * time, each with a timeout, until stop().
 */
export function watchPlaylist(baseUrl: string, path: string, blockTimeoutMs = 4000): Watcher {
  const arrivals: Arrival[] = [];
  const errors: string[] = [];
  const mediaSequences: number[] = [];
  let stopped = false;
  const abort = new AbortController();
  const loop = (async () => {
    let want: PartRef | undefined;
    while (!stopped) {
      const q = want ? `?_HLS_msn=${want.msn}&_HLS_part=${want.part}` : "";
      let text: string;
      try {
        const r = await getText(`${baseUrl}${path}${q}`, blockTimeoutMs, abort.signal);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
        text = r.text;
      } catch (err) {
        if (!stopped) errors.push(`${new Date().toISOString()} ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const now = Date.now();
      try {
        checkNumbering(text, baseUrl);
      } catch (err) {
        errors.push((err as Error).message);
      }
      mediaSequences.push(mediaSequence(text));
      const prev = arrivals.at(-1);
      for (const p of partsOf(text)) {
        if (!prev || partIndex(p) > partIndex(prev)) {
          if (arrivals.length > 0 && partIndex(p) !== partIndex(arrivals.at(-1)!) + 1) {
            errors.push(
              `${baseUrl}: part ${p.msn}.${p.part} follows ${arrivals.at(-1)!.msn}.${arrivals.at(-1)!.part}`,
            );
          }
          arrivals.push({ ...p, atMs: now });
        }
      }
      const last = arrivals.at(-1);
      want = last ? nextPart(last) : undefined;
    }
  })();
  return {
    arrivals,
    errors,
    mediaSequences,
    async stop() {
      stopped = true;
      abort.abort();
      await loop;
    },
  };
}

/** Longest wall time between two consecutive new parts at or after `sinceMs`. */
export function maxInterArrivalMs(arrivals: readonly Arrival[], sinceMs = 0): number {
  let max = 0;
  for (let i = 1; i < arrivals.length; i++) {
    if (arrivals[i]!.atMs < sinceMs) continue;
    max = Math.max(max, arrivals[i]!.atMs - arrivals[i - 1]!.atMs);
  }
  return max;
}
