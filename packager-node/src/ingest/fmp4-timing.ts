/**
 * Minimal fMP4 reader for ingest: timescales (mdhd) and default sample
 * durations (trex) from an init segment, and decode time (tfdt), duration
 * (trun/tfhd/trex) and first-sample sync flag from a media segment or part.
 * Used only when an encoder does not send X-Understudy-* timing headers
 * (e.g. ffmpeg). Reads the first track of the init segment (the one the
 * timeline follows). Bounds-checked: malformed input yields undefined, never
 * a throw or an out-of-range read.
 */

export interface InitTiming {
  trackId: number;
  timescale: number;
  defaultSampleDuration: number;
  defaultSampleFlags: number;
}

export interface FragmentTiming {
  /** Decode time of the first sample, ms since the track's time zero. */
  timelineMs: number;
  durationMs: number;
  /** First sample is a sync sample. */
  independent: boolean;
}

interface Box {
  type: string;
  start: number;
  /** Offset of the payload. */
  body: number;
  end: number;
}

function* boxes(buf: Uint8Array, start: number, end: number): Generator<Box> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = start;
  while (off + 8 <= end) {
    let size = view.getUint32(off);
    const type = String.fromCharCode(buf[off + 4]!, buf[off + 5]!, buf[off + 6]!, buf[off + 7]!);
    let body = off + 8;
    if (size === 1) {
      if (off + 16 > end) return;
      const big = view.getBigUint64(off + 8);
      if (big > BigInt(end - off)) return;
      size = Number(big);
      body = off + 16;
    } else if (size === 0) {
      size = end - off;
    }
    if (size < body - off || off + size > end) return;
    yield { type, start: off, body, end: off + size };
    off += size;
  }
}

function child(
  buf: Uint8Array,
  parent: { body: number; end: number },
  type: string,
): Box | undefined {
  for (const b of boxes(buf, parent.body, parent.end)) if (b.type === type) return b;
  return undefined;
}

function path(
  buf: Uint8Array,
  root: { body: number; end: number },
  ...types: string[]
): Box | undefined {
  let cur: { body: number; end: number } | undefined = root;
  let found: Box | undefined;
  for (const t of types) {
    if (!cur) return undefined;
    found = child(buf, cur, t);
    cur = found;
  }
  return found;
}

export function readInitTiming(buf: Uint8Array): InitTiming | undefined {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const whole = { body: 0, end: buf.length };
  const moov = child(buf, whole, "moov");
  if (!moov) return undefined;
  const trak = child(buf, moov, "trak");
  if (!trak) return undefined;
  const tkhd = child(buf, trak, "tkhd");
  const mdhd = path(buf, trak, "mdia", "mdhd");
  if (!tkhd || !mdhd) return undefined;
  const tkhdV = buf[tkhd.body]!;
  const trackIdAt = tkhd.body + 4 + (tkhdV === 1 ? 16 : 8);
  const mdhdV = buf[mdhd.body]!;
  const tsAt = mdhd.body + 4 + (mdhdV === 1 ? 16 : 8);
  if (trackIdAt + 4 > tkhd.end || tsAt + 4 > mdhd.end) return undefined;
  const trackId = view.getUint32(trackIdAt);
  const timescale = view.getUint32(tsAt);
  if (timescale === 0) return undefined;
  let defaultSampleDuration = 0;
  let defaultSampleFlags = 0;
  const mvex = child(buf, moov, "mvex");
  if (mvex) {
    for (const b of boxes(buf, mvex.body, mvex.end)) {
      if (b.type !== "trex" || b.body + 24 > b.end) continue;
      if (view.getUint32(b.body + 4) !== trackId) continue;
      defaultSampleDuration = view.getUint32(b.body + 12);
      defaultSampleFlags = view.getUint32(b.body + 20);
    }
  }
  return { trackId, timescale, defaultSampleDuration, defaultSampleFlags };
}

const NON_SYNC = 0x10000;

export function readFragmentTiming(buf: Uint8Array, init: InitTiming): FragmentTiming | undefined {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let firstDecode: number | undefined;
  let total = 0;
  let independent: boolean | undefined;
  for (const moof of boxes(buf, 0, buf.length)) {
    if (moof.type !== "moof") continue;
    for (const traf of boxes(buf, moof.body, moof.end)) {
      if (traf.type !== "traf") continue;
      const tfhd = child(buf, traf, "tfhd");
      if (!tfhd || tfhd.body + 8 > tfhd.end) return undefined;
      const tfhdFlags = view.getUint32(tfhd.body) & 0xffffff;
      if (view.getUint32(tfhd.body + 4) !== init.trackId) continue;
      let p = tfhd.body + 8;
      if (tfhdFlags & 0x01) p += 8; // base-data-offset
      if (tfhdFlags & 0x02) p += 4; // sample-description-index
      let defDur = init.defaultSampleDuration;
      let defFlags = init.defaultSampleFlags;
      if (tfhdFlags & 0x08) {
        if (p + 4 > tfhd.end) return undefined;
        defDur = view.getUint32(p);
        p += 4;
      }
      if (tfhdFlags & 0x10) p += 4; // default-sample-size
      if (tfhdFlags & 0x20) {
        if (p + 4 > tfhd.end) return undefined;
        defFlags = view.getUint32(p);
      }
      const tfdt = child(buf, traf, "tfdt");
      if (tfdt && firstDecode === undefined) {
        const v = buf[tfdt.body]!;
        if (tfdt.body + (v === 1 ? 12 : 8) > tfdt.end) return undefined;
        firstDecode =
          v === 1 ? Number(view.getBigUint64(tfdt.body + 4)) : view.getUint32(tfdt.body + 4);
      }
      for (const trun of boxes(buf, traf.body, traf.end)) {
        if (trun.type !== "trun" || trun.body + 8 > trun.end) continue;
        const flags = view.getUint32(trun.body) & 0xffffff;
        const count = view.getUint32(trun.body + 4);
        let q = trun.body + 8;
        if (flags & 0x001) q += 4;
        let firstFlags: number | undefined;
        if (flags & 0x004) {
          if (q + 4 > trun.end) return undefined;
          firstFlags = view.getUint32(q);
          q += 4;
        }
        const perSample =
          (flags & 0x100 ? 4 : 0) +
          (flags & 0x200 ? 4 : 0) +
          (flags & 0x400 ? 4 : 0) +
          (flags & 0x800 ? 4 : 0);
        if (q + perSample * count > trun.end) return undefined;
        for (let i = 0; i < count; i++) {
          let r = q + i * perSample;
          let dur = defDur;
          if (flags & 0x100) {
            dur = view.getUint32(r);
            r += 4;
          }
          if (flags & 0x200) r += 4;
          let sampleFlags = defFlags;
          if (flags & 0x400) sampleFlags = view.getUint32(r);
          if (i === 0 && firstFlags !== undefined) sampleFlags = firstFlags;
          if (independent === undefined) independent = (sampleFlags & NON_SYNC) === 0;
          total += dur;
        }
      }
    }
  }
  if (firstDecode === undefined || total === 0) return undefined;
  // Rounding both ends (not the difference) keeps consecutive fragments
  // contiguous in ms: timelineMs + durationMs is the next timelineMs.
  const startMs = Math.round((firstDecode * 1000) / init.timescale);
  const endMs = Math.round(((firstDecode + total) * 1000) / init.timescale);
  return {
    timelineMs: startMs,
    durationMs: endMs - startMs,
    independent: independent ?? false,
  };
}
