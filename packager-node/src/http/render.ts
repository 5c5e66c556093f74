/**
 * Store → playlist text, cached per stream version (any ingest into any
 * rendition of the stream bumps it, since rendition reports read siblings).
 */
import { writeDashMpd } from "../playlist/dash-mpd.ts";
import {
  HOLD_BACK_TARGET_DURATIONS,
  targetDurationSec,
  writeMediaPlaylist,
} from "../playlist/hls-media.ts";
import { writeMultivariantPlaylist } from "../playlist/hls-multivariant.ts";
import type { RenditionReportView } from "../playlist/model.ts";
import {
  maxSegmentDurationMs,
  type RenditionState,
  type StreamState,
} from "../store/media-store.ts";

/**
 * Playlist cache entries per stream (renditions × {full, delta} + master +
 * mpd), as the bytes sent, so a hit costs no rendering and no encoding.
 */
function cached(st: StreamState, key: string, render: () => string): Buffer {
  const hit = st.playlistCache.get(key);
  if (hit && hit.version === st.version) return hit.body;
  const body = Buffer.from(render());
  st.playlistCache.set(key, { version: st.version, body });
  return body;
}

export function renditionReports(st: StreamState, self: string): RenditionReportView[] {
  const out: RenditionReportView[] = [];
  for (const [id, r] of st.renditions) {
    if (id === self) continue;
    const rep = r.timeline.report(id);
    if (rep) out.push(rep);
  }
  return out;
}

export function mediaPlaylist(st: StreamState, r: RenditionState, skipRequested: boolean): Buffer {
  const skip = skipRequested && st.def.deltaUpdates && st.def.latency === "low";
  return cached(st, `${r.info.id}|${skip ? "skip" : "full"}`, () => {
    const open = r.timeline.openView();
    return writeMediaPlaylist({
      latency: st.def.latency,
      maxSegmentDurationMs: maxSegmentDurationMs(st.def),
      targetPartDurationMs: st.def.targetPartDurationMs,
      segments: r.timeline.segmentViews(),
      ...(open ? { open } : {}),
      renditionReports: st.def.latency === "low" ? renditionReports(st, r.info.id) : [],
      deltaUpdates: st.def.deltaUpdates,
      skipRequested: skip,
    });
  });
}

/** EXT-X-TARGETDURATION of the rendition's current window, seconds. */
export function currentTargetDurationSec(st: StreamState, r: RenditionState): number {
  return targetDurationSec({
    maxSegmentDurationMs: maxSegmentDurationMs(st.def),
    segments: r.timeline.closed,
  });
}

export function multivariantPlaylist(st: StreamState): Buffer {
  return cached(st, "|master", () =>
    writeMultivariantPlaylist({
      renditions: st.def.renditions,
      ...(st.def.steering ? { steering: st.def.steering } : {}),
    }),
  );
}

/**
 * Wall time of the stream's timeline origin: the first rendition (in ladder
 * order) that knows it. Undefined until some segment carried a program
 * date-time and a timeline position.
 */
export function availabilityStartMs(st: StreamState): number | undefined {
  for (const info of st.def.renditions) {
    const a = st.renditions.get(info.id)?.timeline.pdtAnchorMs;
    if (a !== undefined) return a;
  }
  return undefined;
}

export function dashManifest(st: StreamState): Buffer | undefined {
  const ast = availabilityStartMs(st);
  if (ast === undefined) return undefined;
  return cached(st, "|mpd", () =>
    writeDashMpd({
      renditions: st.def.renditions.flatMap((info) => {
        const r = st.renditions.get(info.id);
        return r ? [{ info, segments: r.timeline.segmentViews() }] : [];
      }),
      availabilityStartTimeMs: ast,
      maxSegmentDurationMs: maxSegmentDurationMs(st.def),
      // The HLS HOLD-BACK of the same stream.
      presentationDelayMs:
        HOLD_BACK_TARGET_DURATIONS * Math.ceil(maxSegmentDurationMs(st.def) / 1000) * 1000,
      utcTimingUri: "/utc",
    }),
  );
}
