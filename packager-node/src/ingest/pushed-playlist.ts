/**
 * Reads the media playlist an encoder such as ffmpeg pushes next to its
 * segments (`-f hls -method PUT`): which file is which media sequence number,
 * its EXTINF duration and program date-time. Only what the packager needs;
 * the packager writes its own playlists and never serves this one.
 */

export interface PushedEntry {
  msn: number;
  /** Last path component of the segment URI. */
  name: string;
  durationMs: number;
  pdtMs?: number;
  gap: boolean;
}

export interface PushedPlaylist {
  entries: PushedEntry[];
}

export class PushedPlaylistError extends Error {}

/** Throws PushedPlaylistError saying what is wrong (the ingest edge answers 400). */
export function parsePushedPlaylist(text: string): PushedPlaylist {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== "#EXTM3U")
    throw new PushedPlaylistError("playlist does not start with #EXTM3U");
  let msn = 0;
  let duration: number | undefined;
  let pdt: number | undefined;
  let gap = false;
  const entries: PushedEntry[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    if (line.startsWith("#EXT-X-MEDIA-SEQUENCE:")) {
      const v = Number(line.slice(22));
      if (!Number.isSafeInteger(v) || v < 0)
        throw new PushedPlaylistError(`line ${i + 1}: bad EXT-X-MEDIA-SEQUENCE`);
      msn = v;
    } else if (line.startsWith("#EXTINF:")) {
      const v = Number.parseFloat(line.slice(8));
      if (!Number.isFinite(v) || v <= 0)
        throw new PushedPlaylistError(`line ${i + 1}: bad EXTINF duration`);
      duration = Math.round(v * 1000);
    } else if (line.startsWith("#EXT-X-PROGRAM-DATE-TIME:")) {
      const v = Date.parse(line.slice(25));
      if (Number.isNaN(v))
        throw new PushedPlaylistError(`line ${i + 1}: bad EXT-X-PROGRAM-DATE-TIME`);
      pdt = v;
    } else if (line === "#EXT-X-GAP") {
      gap = true;
    } else if (!line.startsWith("#")) {
      if (duration === undefined)
        throw new PushedPlaylistError(`line ${i + 1}: segment URI without EXTINF`);
      const path = line.split("?")[0]!;
      const name = path.slice(path.lastIndexOf("/") + 1);
      entries.push({
        msn,
        name,
        durationMs: duration,
        gap,
        ...(pdt !== undefined ? { pdtMs: pdt } : {}),
      });
      msn++;
      if (pdt !== undefined) pdt += duration;
      duration = undefined;
      gap = false;
    }
  }
  return { entries };
}
