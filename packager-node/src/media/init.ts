/**
 * CMAF init segment (ftyp+moov) reading: per-track timescale, handler, sample
 * entry, dimensions and the RFC 6381 codec string (for HLS CODECS and DASH
 * @codecs), plus the trex defaults fragments rely on. Pure functions.
 */
import {
  BoxError,
  type BoxRef,
  childBoxes,
  findBox,
  findBoxes,
  fourcc,
  readFullBoxHeader,
  readU32,
} from "./boxes.ts";
import type { TrackDefaults } from "./fragments.ts";

export type TrackKind = "video" | "audio" | "text" | "other";

export interface InitTrackInfo {
  readonly trackId: number;
  /** hdlr handler_type, e.g. "vide", "soun". */
  readonly handlerType: string;
  readonly kind: TrackKind;
  /** mdhd timescale: ticks per second of every time in this track. */
  readonly timescale: number;
  /** Sample entry four-cc, e.g. "avc1", "mp4a". */
  readonly sampleEntry: string;
  /** RFC 6381 codec string ("avc1.42c01e", "mp4a.40.2"); undefined when not derivable. */
  readonly codec: string | undefined;
  readonly width?: number;
  readonly height?: number;
  readonly channelCount?: number;
  readonly sampleRate?: number;
  readonly defaults: TrackDefaults | undefined;
}

export interface InitInfo {
  readonly majorBrand: string | undefined;
  readonly compatibleBrands: readonly string[];
  readonly tracks: readonly InitTrackInfo[];
  /** trex defaults by track id, to pass to parseFragment. */
  readonly defaults: ReadonlyMap<number, TrackDefaults>;
  /** Codec strings of all tracks joined with "," (video first), for HLS CODECS. */
  readonly codecs: string;
}

/** Size of the fixed fields of a VisualSampleEntry / AudioSampleEntry before child boxes. */
const VISUAL_ENTRY_FIELDS = 78;
const AUDIO_ENTRY_FIELDS = 28;

function kindOf(handler: string): TrackKind {
  if (handler === "vide") return "video";
  if (handler === "soun") return "audio";
  if (handler === "text" || handler === "subt" || handler === "sbtl") return "text";
  return "other";
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** RFC 6381 string for H.264 from an avcC box payload: `${entry}.PPCCLL` in lower-case hex. */
export function avcCodecString(sampleEntry: string, buf: Uint8Array, avcC: BoxRef): string {
  const p = avcC.contentStart;
  if (p + 4 > avcC.end) throw new BoxError("avcC box too short for profile/level");
  if (buf[p] !== 1) throw new BoxError(`avcC configurationVersion ${buf[p]} is not 1`);
  return `${sampleEntry}.${hex2(buf[p + 1]!)}${hex2(buf[p + 2]!)}${hex2(buf[p + 3]!)}`;
}

/** Reads an MPEG-4 descriptor header (tag + expandable size); returns payload bounds. */
function readDescriptor(
  buf: Uint8Array,
  at: number,
  end: number,
): { tag: number; start: number; end: number } {
  if (at >= end) throw new BoxError("esds: descriptor runs past the box");
  const tag = buf[at]!;
  let size = 0;
  let i = at + 1;
  for (let n = 0; n < 4; n++, i++) {
    if (i >= end) throw new BoxError("esds: truncated descriptor size");
    const b = buf[i]!;
    size = (size << 7) | (b & 0x7f);
    if (!(b & 0x80)) {
      i++;
      break;
    }
  }
  if (i + size > end) throw new BoxError(`esds: descriptor tag ${tag} overruns the box`);
  return { tag, start: i, end: i + size };
}

export interface EsdsInfo {
  /** RFC 6381: "mp4a.40.<audioObjectType>" for MPEG-4 audio (OTI 0x40), else "mp4a.<oti>". */
  readonly codec: string;
  readonly objectTypeIndication: number;
  /** From the AudioSpecificConfig (AAC only). */
  readonly audioObjectType?: number;
  readonly sampleRate?: number;
  /** channelConfiguration from the AudioSpecificConfig; the sample entry's field is a template (2). */
  readonly channelCount?: number;
}

const aacSampleRates = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/** Reads the decoder config of an esds box (MPEG-4 audio: codec string, rate, channels). */
export function parseEsds(buf: Uint8Array, esds: BoxRef): EsdsInfo {
  const { payloadStart } = readFullBoxHeader(buf, esds);
  const es = readDescriptor(buf, payloadStart, esds.end);
  if (es.tag !== 0x03) throw new BoxError(`esds: expected ES_Descriptor (tag 3), got ${es.tag}`);
  let at = es.start + 2; // ES_ID
  const esFlags = buf[at]!;
  at += 1;
  if (esFlags & 0x80) at += 2; // dependsOn_ES_ID
  if (esFlags & 0x40) at += 1 + buf[at]!; // URL
  if (esFlags & 0x20) at += 2; // OCR_ES_Id
  const dc = readDescriptor(buf, at, es.end);
  if (dc.tag !== 0x04) {
    throw new BoxError(`esds: expected DecoderConfigDescriptor (tag 4), got ${dc.tag}`);
  }
  const oti = buf[dc.start]!;
  if (oti !== 0x40) return { codec: `mp4a.${hex2(oti)}`, objectTypeIndication: oti };
  const dsiAt = dc.start + 13;
  if (dsiAt >= dc.end) throw new BoxError("esds: AAC without DecoderSpecificInfo");
  const dsi = readDescriptor(buf, dsiAt, dc.end);
  if (dsi.tag !== 0x05 || dsi.end <= dsi.start) {
    throw new BoxError("esds: missing AudioSpecificConfig");
  }
  // AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), read MSB first.
  let bit = dsi.start * 8;
  const bits = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) {
      if (bit >= dsi.end * 8) throw new BoxError("esds: truncated AudioSpecificConfig");
      v = (v << 1) | ((buf[bit >>> 3]! >>> (7 - (bit & 7))) & 1);
    }
    return v;
  };
  let aot = bits(5);
  if (aot === 31) aot = 32 + bits(6);
  const rateIndex = bits(4);
  const sampleRate = rateIndex === 15 ? bits(24) : aacSampleRates[rateIndex];
  const channelConfig = bits(4);
  return {
    codec: `mp4a.40.${aot}`,
    objectTypeIndication: oti,
    audioObjectType: aot,
    ...(sampleRate === undefined ? {} : { sampleRate }),
    ...(channelConfig > 0 && channelConfig < 8
      ? { channelCount: channelConfig === 7 ? 8 : channelConfig }
      : {}),
  };
}

function readTrex(buf: Uint8Array, box: BoxRef): TrackDefaults {
  const { payloadStart: p } = readFullBoxHeader(buf, box);
  if (p + 20 > box.end) throw new BoxError("trex box too short");
  return {
    trackId: readU32(buf, p),
    defaultSampleDescriptionIndex: readU32(buf, p + 4),
    defaultSampleDuration: readU32(buf, p + 8),
    defaultSampleSize: readU32(buf, p + 12),
    defaultSampleFlags: readU32(buf, p + 16),
  };
}

/** mdhd timescale (ticks per second) of a track's mdia. */
export function readMdhdTimescale(buf: Uint8Array, mdhd: BoxRef): number {
  const { version, payloadStart } = readFullBoxHeader(buf, mdhd);
  // v1: creation(8) modification(8); v0: creation(4) modification(4)
  const timescale = readU32(buf, payloadStart + (version === 1 ? 16 : 8));
  if (timescale === 0) throw new BoxError("mdhd timescale is 0");
  return timescale;
}

function readTrack(buf: Uint8Array, trak: BoxRef, defaults: Map<number, TrackDefaults>) {
  const tkhd = findBox(buf, ["tkhd"], trak.contentStart, trak.end);
  const mdhd = findBox(buf, ["mdia", "mdhd"], trak.contentStart, trak.end);
  const hdlr = findBox(buf, ["mdia", "hdlr"], trak.contentStart, trak.end);
  const stsd = findBox(buf, ["mdia", "minf", "stbl", "stsd"], trak.contentStart, trak.end);
  if (!tkhd || !mdhd || !hdlr || !stsd) {
    throw new BoxError(`trak at offset ${trak.start} lacks tkhd, mdhd, hdlr or stsd`);
  }
  const tk = readFullBoxHeader(buf, tkhd);
  const trackId = readU32(buf, tk.payloadStart + (tk.version === 1 ? 16 : 8));
  const timescale = readMdhdTimescale(buf, mdhd);
  const handlerType = fourcc(buf, readFullBoxHeader(buf, hdlr).payloadStart + 4);
  const kind = kindOf(handlerType);
  const entry = childBoxes(buf, stsd)[0];
  if (!entry) throw new BoxError(`track ${trackId}: stsd has no sample entry`);
  const base = { trackId, handlerType, kind, timescale, sampleEntry: entry.type };
  const trackDefaults = defaults.get(trackId);
  if (kind === "video") {
    const f = entry.contentStart;
    const width = (buf[f + 24]! << 8) | buf[f + 25]!;
    const height = (buf[f + 26]! << 8) | buf[f + 27]!;
    const kids = [...childrenAfter(buf, entry, VISUAL_ENTRY_FIELDS)];
    const avcC = kids.find((b) => b.type === "avcC");
    const codec =
      avcC && (entry.type === "avc1" || entry.type === "avc3")
        ? avcCodecString(entry.type, buf, avcC)
        : undefined;
    return { ...base, codec, width, height, defaults: trackDefaults };
  }
  if (kind === "audio") {
    const f = entry.contentStart;
    const soundVersion = (buf[f + 8]! << 8) | buf[f + 9]!;
    const extra = soundVersion === 1 ? 16 : soundVersion === 2 ? 36 : 0;
    const channelCount = (buf[f + 16]! << 8) | buf[f + 17]!;
    const sampleRate = readU32(buf, f + 24) >>> 16;
    const kids = [...childrenAfter(buf, entry, AUDIO_ENTRY_FIELDS + extra)];
    const esdsBox = kids.find((b) => b.type === "esds");
    const esds = esdsBox && entry.type === "mp4a" ? parseEsds(buf, esdsBox) : undefined;
    return {
      ...base,
      codec: esds?.codec,
      channelCount: esds?.channelCount ?? channelCount,
      sampleRate: esds?.sampleRate ?? sampleRate,
      defaults: trackDefaults,
    };
  }
  return { ...base, codec: undefined, defaults: trackDefaults };
}

function* childrenAfter(buf: Uint8Array, entry: BoxRef, fields: number): Generator<BoxRef> {
  const from = entry.contentStart + fields;
  if (from > entry.end) throw new BoxError(`sample entry "${entry.type}" is too short`);
  let at = from;
  while (at + 8 <= entry.end) {
    const size = readU32(buf, at);
    if (size < 8 || at + size > entry.end) return; // trailing padding, not boxes
    yield {
      type: fourcc(buf, at + 4),
      start: at,
      end: at + size,
      size,
      headerSize: 8,
      contentStart: at + 8,
    };
    at += size;
  }
}

/** Parses an init segment (or any buffer holding ftyp+moov). */
export function parseInit(buf: Uint8Array): InitInfo {
  const ftyp = findBox(buf, ["ftyp"]);
  let majorBrand: string | undefined;
  const compatibleBrands: string[] = [];
  if (ftyp) {
    majorBrand = fourcc(buf, ftyp.contentStart);
    for (let at = ftyp.contentStart + 8; at + 4 <= ftyp.end; at += 4) {
      compatibleBrands.push(fourcc(buf, at));
    }
  }
  const moov = findBox(buf, ["moov"]);
  if (!moov) throw new BoxError("init segment has no moov box");
  const defaults = new Map<number, TrackDefaults>();
  for (const trex of findBoxes(buf, ["mvex", "trex"], moov.contentStart, moov.end)) {
    const d = readTrex(buf, trex);
    defaults.set(d.trackId, d);
  }
  const tracks: InitTrackInfo[] = findBoxes(buf, ["trak"], moov.contentStart, moov.end).map((t) =>
    readTrack(buf, t, defaults),
  );
  if (tracks.length === 0) throw new BoxError("moov has no trak");
  const order = (t: InitTrackInfo) => (t.kind === "video" ? 0 : t.kind === "audio" ? 1 : 2);
  const codecs = [...tracks]
    .sort((a, b) => order(a) - order(b))
    .map((t) => t.codec)
    .filter((c): c is string => c !== undefined)
    .join(",");
  return { majorBrand, compatibleBrands, tracks, defaults, codecs };
}
