/**
 * Reading live LL-HLS playlists from outside, as a player does: the newest
 * part, the part the next blocking reload asks for, the numbering invariants
 * every replica must keep, and a watcher that follows one replica with
 * blocking reloads and records when each piece of media appeared.
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

/**
 * What a media playlist lists, in order: a part (EXT-X-PART, `gap` for
 * GAP=YES) or a closed segment listed without its parts (`part` null, `gap`
 * for EXT-X-GAP). A closed segment whose parts are listed appears as its parts.
 */
export interface Unit {
  readonly msn: number;
  readonly part: number | null;
  readonly gap: boolean;
}

/** Position of a unit on the part axis: [from, to). */
export function span(u: Unit): { from: number; to: number } {
  const from = u.msn * partsPerSegment + (u.part ?? 0);
  return { from, to: u.part === null ? from + partsPerSegment : from + 1 };
}

export function unitsOf(playlist: string): Unit[] {
  const units: Unit[] = [];
  let pending: Unit[] = [];
  let segmentGap = false;
  for (const line of playlist.split("\n")) {
    const part = /^#EXT-X-PART:.*URI="(\d+)\.(\d+)\.m4s"(.*)$/.exec(line);
    if (part) {
      pending.push({ msn: Number(part[1]), part: Number(part[2]), gap: /GAP=YES/.test(part[3]!) });
      continue;
    }
    if (line === "#EXT-X-GAP") segmentGap = true;
    const seg = /^(\d+)\.m4s$/.exec(line);
    if (seg) {
      const msn = Number(seg[1]);
      const own = pending.filter((p) => p.msn === msn);
      units.push(...(own.length > 0 ? pending : [{ msn, part: null, gap: segmentGap }]));
      pending = [];
      segmentGap = false;
    }
  }
  units.push(...pending); // the open segment's parts
  return units;
}

/** Every EXT-X-PART of a media playlist, in order. */
export function partsOf(playlist: string): (PartRef & { gap: boolean })[] {
  return unitsOf(playlist).flatMap((u) =>
    u.part === null ? [] : [{ msn: u.msn, part: u.part, gap: u.gap }],
  );
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
 * MSN of the first listed segment; what is listed (closed segments, parts of
 * closed segments, parts of the segment in progress) covers the timeline
 * without a hole or a step back, a segment's parts start at part 0 unless it
 * is the first listed (a replica joined mid-segment); and every URI is
 * relative (so replicas can be byte-identical). Gaps are allowed here; callers
 * count them (gapCount).
 */
export function checkNumbering(playlist: string, where: string): void {
  const seq = mediaSequence(playlist);
  const units = unitsOf(playlist);
  assert.ok(units.length > 0, `${where}: nothing listed\n${playlist}`);
  assert.equal(
    units[0]!.msn,
    seq,
    `${where}: EXT-X-MEDIA-SEQUENCE ${seq}, first listed ${units[0]!.msn}`,
  );
  const msns = segmentMsns(playlist);
  msns.forEach((m, i) => {
    assert.equal(
      m,
      seq + i,
      `${where}: segment MSNs not consecutive: ${msns.join(",")}\n${playlist}`,
    );
  });
  for (let i = 1; i < units.length; i++) {
    const prev = span(units[i - 1]!);
    const cur = span(units[i]!);
    assert.equal(
      cur.from,
      prev.to,
      `${where}: ${units[i]!.msn}.${units[i]!.part ?? "*"} does not follow ${units[i - 1]!.msn}.${units[i - 1]!.part ?? "*"}\n${playlist}`,
    );
  }
  assert.ok(!/(?:URI="|^)[a-z]+:\/\//im.test(playlist), `${where}: absolute URI in\n${playlist}`);
}

/** Parts declared missing: a GAP=YES part counts 1, an EXT-X-GAP segment a whole segment. */
export function gapCount(units: readonly Unit[]): number {
  return units.reduce((n, u) => n + (u.gap ? span(u).to - span(u).from : 0), 0);
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

export interface Arrival extends Unit {
  /** Wall ms when a blocking reload first returned a playlist listing this unit. */
  readonly atMs: number;
}

export interface Watcher {
  /** New units in timeline order, each once. */
  readonly arrivals: Arrival[];
  readonly errors: string[];
  /** Media sequence values seen, in order (must never go down). */
  readonly mediaSequences: number[];
  stop(): Promise<void>;
}

/**
 * Follows one replica's media playlist the way an LL-HLS player does
 * (blocking reload for the next part, in a loop) and records every part or
 * segment as it appears, checking numbering on each playlist and that each
 * new unit starts no later than where the last one ended. Bounded: one request
 * at a time, each with a timeout, until stop().
 */
export function watchPlaylist(baseUrl: string, path: string, blockTimeoutMs = 4000): Watcher {
  const arrivals: Arrival[] = [];
  const errors: string[] = [];
  const mediaSequences: number[] = [];
  let stopped = false;
  const abort = new AbortController();
  const loop = (async () => {
    let reach: number | undefined;
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
      for (const u of unitsOf(text)) {
        const s = span(u);
        if (reach !== undefined && s.to <= reach) continue;
        // Overlap is fine (a segment first listed as parts may later be listed whole); a hole is not.
        if (reach !== undefined && s.from > reach) {
          errors.push(
            `${baseUrl}: ${u.msn}.${u.part ?? "*"} starts at part ${s.from}, the last one ended at ${reach}\n${text}`,
          );
        }
        arrivals.push({ ...u, atMs: now });
        reach = s.to;
      }
      const last = lastPart(text);
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

/** Longest wall time between two consecutive new media (not gap) units arriving at or after `sinceMs`. */
export function maxInterArrivalMs(arrivals: readonly Arrival[], sinceMs = 0): number {
  const media = arrivals.filter((a) => !a.gap);
  let max = 0;
  for (let i = 1; i < media.length; i++) {
    if (media[i]!.atMs < sinceMs) continue;
    max = Math.max(max, media[i]!.atMs - media[i - 1]!.atMs);
  }
  return max;
}

/** Units declared missing (GAP=YES parts, EXT-X-GAP segments) among the arrivals. */
export function gapParts(arrivals: readonly Arrival[]): Arrival[] {
  return arrivals.filter((a) => a.gap);
}

export const describeUnit = (u: Unit) => `${u.msn}.${u.part ?? "*"}`;
