/**
 * Fragmented MP4 (CMAF) media: split a file into init and (moof+mdat)
 * fragments, read what a packager needs from a fragment (sequence number,
 * decode time, sample durations, whether it starts with a sync sample), and
 * rewrite the decode times and sequence number of a fragment. Pure functions
 * over Uint8Array; inputs are never modified.
 */
import {
  BoxError,
  type BoxRef,
  childBoxes,
  concatBytes,
  findBoxes,
  iterateBoxes,
  readBoxes,
  readFullBoxHeader,
  readU32,
  readU64,
  u32,
  u64,
  writeBox,
  writeFullBox,
  writeU32,
  writeU64,
} from "./boxes.ts";

/** Per-track defaults from the init segment's `trex` (used when tfhd/trun omit a field). */
export interface TrackDefaults {
  readonly trackId: number;
  readonly defaultSampleDescriptionIndex: number;
  readonly defaultSampleDuration: number;
  readonly defaultSampleSize: number;
  readonly defaultSampleFlags: number;
}

export interface SampleInfo {
  readonly duration: number;
  readonly size: number;
  readonly flags: number;
  readonly compositionOffset: number;
}

export interface TrackFragmentInfo {
  readonly trackId: number;
  /** tfdt baseMediaDecodeTime in the track's timescale; undefined when the traf has no tfdt. */
  readonly baseMediaDecodeTime: bigint | undefined;
  /** tfdt version (0: 32-bit, 1: 64-bit); undefined without tfdt. */
  readonly tfdtVersion: number | undefined;
  readonly samples: readonly SampleInfo[];
  /** Sum of sample durations, in the track's timescale. */
  readonly durationTicks: number;
  /** True when the first sample is a sync sample (keyframe); true for an empty run. */
  readonly startsWithSync: boolean;
}

export interface FragmentInfo {
  /** mfhd sequence_number. */
  readonly sequenceNumber: number;
  readonly tracks: readonly TrackFragmentInfo[];
  /** Every track starts with a sync sample: a player can start decoding here. */
  readonly independent: boolean;
}

/** One (leading boxes +) moof + mdat(s) unit inside a media buffer. */
export interface FragmentRef {
  readonly start: number;
  readonly end: number;
  readonly moof: BoxRef;
  /** The fragment's bytes (a view into the input, not a copy). */
  readonly bytes: Uint8Array;
}

// tfhd flags (ISO/IEC 14496-12 8.8.7)
const TFHD_BASE_DATA_OFFSET = 0x1;
const TFHD_SAMPLE_DESCRIPTION_INDEX = 0x2;
const TFHD_DEFAULT_DURATION = 0x8;
const TFHD_DEFAULT_SIZE = 0x10;
const TFHD_DEFAULT_FLAGS = 0x20;
const TFHD_DEFAULT_BASE_IS_MOOF = 0x20000;
// trun flags (8.8.8)
const TRUN_DATA_OFFSET = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTO = 0x800;

/** Boxes that may precede a moof and belong to the same fragment/segment. */
const leadingBoxes = new Set(["styp", "sidx", "ssix", "prft", "emsg", "free", "skip"]);

/** sample_is_non_sync_sample clear and sample_depends_on not "depends on others". */
export function isSyncSampleFlags(flags: number): boolean {
  const nonSync = (flags & 0x00010000) !== 0;
  const dependsOn = (flags >>> 24) & 0x3;
  return !nonSync && dependsOn !== 1;
}

/**
 * Splits a whole fragmented MP4 file into its init part (everything before the
 * first fragment; must contain ftyp/moov) and the offset where media begins.
 */
export function splitInit(buf: Uint8Array): { init: Uint8Array; mediaStart: number } {
  let mediaStart = -1;
  let sawMoov = false;
  for (const box of iterateBoxes(buf)) {
    if (box.type === "moov") sawMoov = true;
    if (box.type === "moof" || (sawMoov && leadingBoxes.has(box.type) && box.type !== "free")) {
      mediaStart = box.start;
      break;
    }
  }
  if (!sawMoov) throw new BoxError("no moov box before the first fragment: not an init segment");
  if (mediaStart < 0) mediaStart = buf.length;
  return { init: buf.subarray(0, mediaStart), mediaStart };
}

/**
 * Splits media (a sequence of fragments) into fragments. Leading boxes such as
 * styp/prft/emsg are attached to the moof that follows them; each moof must be
 * followed by at least one mdat. Throws BoxError on init boxes, on a moof
 * without mdat and on stray boxes between fragments.
 */
export function splitFragments(buf: Uint8Array, start = 0, end = buf.length): FragmentRef[] {
  const out: FragmentRef[] = [];
  let fragStart = -1;
  let moof: BoxRef | undefined;
  let mdats = 0;
  const close = (at: number) => {
    if (!moof) return;
    if (mdats === 0) throw new BoxError(`moof at offset ${moof.start} is not followed by an mdat`);
    out.push({ start: fragStart, end: at, moof, bytes: buf.subarray(fragStart, at) });
    moof = undefined;
    fragStart = -1;
    mdats = 0;
  };
  for (const box of iterateBoxes(buf, start, end)) {
    if (box.type === "mdat") {
      if (!moof) throw new BoxError(`mdat at offset ${box.start} has no moof before it`);
      mdats++;
    } else if (box.type === "moof") {
      if (moof) close(box.start);
      if (fragStart < 0) fragStart = box.start;
      moof = box;
    } else if (leadingBoxes.has(box.type)) {
      if (moof) close(box.start);
      if (fragStart < 0) fragStart = box.start;
    } else if (box.type === "ftyp" || box.type === "moov") {
      throw new BoxError(`"${box.type}" at offset ${box.start}: init boxes in media (split first)`);
    } else if (box.type === "mfra") {
      break; // random-access trailer, not media
    } else {
      throw new BoxError(`unexpected "${box.type}" box at offset ${box.start} in media`);
    }
  }
  close(end);
  if (fragStart >= 0) throw new BoxError("media ends with boxes that belong to no fragment");
  return out;
}

interface TfhdFields {
  trackId: number;
  flags: number;
  baseDataOffset?: bigint;
  sampleDescriptionIndex?: number;
  defaultSampleDuration?: number;
  defaultSampleSize?: number;
  defaultSampleFlags?: number;
}

function readTfhd(buf: Uint8Array, box: BoxRef): TfhdFields {
  const { flags, payloadStart } = readFullBoxHeader(buf, box);
  let at = payloadStart;
  const next32 = () => {
    const v = readU32(buf, at);
    at += 4;
    return v;
  };
  const fields: TfhdFields = { trackId: next32(), flags };
  if (flags & TFHD_BASE_DATA_OFFSET) {
    fields.baseDataOffset = readU64(buf, at);
    at += 8;
  }
  if (flags & TFHD_SAMPLE_DESCRIPTION_INDEX) fields.sampleDescriptionIndex = next32();
  if (flags & TFHD_DEFAULT_DURATION) fields.defaultSampleDuration = next32();
  if (flags & TFHD_DEFAULT_SIZE) fields.defaultSampleSize = next32();
  if (flags & TFHD_DEFAULT_FLAGS) fields.defaultSampleFlags = next32();
  if (at > box.end) throw new BoxError(`tfhd at offset ${box.start} is shorter than its flags say`);
  return fields;
}

/** Reads a tfdt box: version and baseMediaDecodeTime. */
export function readTfdt(buf: Uint8Array, box: BoxRef): { version: number; value: bigint } {
  const { version, payloadStart } = readFullBoxHeader(buf, box);
  if (version === 1) return { version, value: readU64(buf, payloadStart) };
  if (version === 0) return { version, value: BigInt(readU32(buf, payloadStart)) };
  throw new BoxError(`tfdt at offset ${box.start} has unknown version ${version}`);
}

function readTrun(
  buf: Uint8Array,
  box: BoxRef,
  tfhd: TfhdFields,
  trex: TrackDefaults | undefined,
): SampleInfo[] {
  const { version, flags, payloadStart } = readFullBoxHeader(buf, box);
  let at = payloadStart;
  const sampleCount = readU32(buf, at);
  at += 4;
  if (flags & TRUN_DATA_OFFSET) at += 4;
  let firstSampleFlags: number | undefined;
  if (flags & TRUN_FIRST_SAMPLE_FLAGS) {
    firstSampleFlags = readU32(buf, at);
    at += 4;
  }
  const perSample =
    4 *
    (Number(!!(flags & TRUN_DURATION)) +
      Number(!!(flags & TRUN_SIZE)) +
      Number(!!(flags & TRUN_FLAGS)) +
      Number(!!(flags & TRUN_CTO)));
  if (at + perSample * sampleCount > box.end) {
    throw new BoxError(
      `trun at offset ${box.start} declares ${sampleCount} samples but is only ${box.size} bytes`,
    );
  }
  const defaultDuration = tfhd.defaultSampleDuration ?? trex?.defaultSampleDuration;
  const defaultSize = tfhd.defaultSampleSize ?? trex?.defaultSampleSize ?? 0;
  const defaultFlags = tfhd.defaultSampleFlags ?? trex?.defaultSampleFlags ?? 0;
  const samples: SampleInfo[] = [];
  for (let i = 0; i < sampleCount; i++) {
    let duration = defaultDuration;
    let size = defaultSize;
    let sampleFlags = i === 0 && firstSampleFlags !== undefined ? firstSampleFlags : defaultFlags;
    let compositionOffset = 0;
    if (flags & TRUN_DURATION) {
      duration = readU32(buf, at);
      at += 4;
    }
    if (flags & TRUN_SIZE) {
      size = readU32(buf, at);
      at += 4;
    }
    if (flags & TRUN_FLAGS) {
      const f = readU32(buf, at);
      at += 4;
      if (!(i === 0 && firstSampleFlags !== undefined)) sampleFlags = f;
    }
    if (flags & TRUN_CTO) {
      const raw = readU32(buf, at);
      compositionOffset = version === 0 ? raw : raw | 0;
      at += 4;
    }
    if (duration === undefined) {
      throw new BoxError(
        `track ${tfhd.trackId}: no sample duration in trun, tfhd or trex (pass the init's trex defaults)`,
      );
    }
    samples.push({ duration, size, flags: sampleFlags, compositionOffset });
  }
  return samples;
}

function onlyMoof(buf: Uint8Array): BoxRef {
  const moofs = readBoxes(buf).filter((b) => b.type === "moof");
  if (moofs.length !== 1) {
    throw new BoxError(`expected exactly one moof in a fragment, found ${moofs.length}`);
  }
  return moofs[0]!;
}

/**
 * Reads sequence number, per-track decode time and samples of one fragment.
 * `defaults` (from the init's trex boxes, see parseInit) fill fields the
 * fragment leaves out; without them a fragment relying on trex fails clearly.
 */
export function parseFragment(
  buf: Uint8Array,
  defaults?: ReadonlyMap<number, TrackDefaults>,
): FragmentInfo {
  const moof = onlyMoof(buf);
  let sequenceNumber: number | undefined;
  const tracks: TrackFragmentInfo[] = [];
  for (const child of childBoxes(buf, moof)) {
    if (child.type === "mfhd") {
      sequenceNumber = readU32(buf, readFullBoxHeader(buf, child).payloadStart);
    } else if (child.type === "traf") {
      tracks.push(parseTraf(buf, child, defaults));
    }
  }
  if (sequenceNumber === undefined) throw new BoxError("moof has no mfhd");
  if (tracks.length === 0) throw new BoxError("moof has no traf");
  return { sequenceNumber, tracks, independent: tracks.every((t) => t.startsWithSync) };
}

function parseTraf(
  buf: Uint8Array,
  traf: BoxRef,
  defaults: ReadonlyMap<number, TrackDefaults> | undefined,
): TrackFragmentInfo {
  const children = childBoxes(buf, traf);
  const tfhdBox = children.find((b) => b.type === "tfhd");
  if (!tfhdBox) throw new BoxError(`traf at offset ${traf.start} has no tfhd`);
  const tfhd = readTfhd(buf, tfhdBox);
  const trex = defaults?.get(tfhd.trackId);
  const tfdtBox = children.find((b) => b.type === "tfdt");
  const tfdt = tfdtBox ? readTfdt(buf, tfdtBox) : undefined;
  const samples: SampleInfo[] = [];
  for (const trun of children.filter((b) => b.type === "trun")) {
    samples.push(...readTrun(buf, trun, tfhd, trex));
  }
  let durationTicks = 0;
  for (const s of samples) durationTicks += s.duration;
  return {
    trackId: tfhd.trackId,
    baseMediaDecodeTime: tfdt?.value,
    tfdtVersion: tfdt?.version,
    samples,
    durationTicks,
    startsWithSync: samples.length === 0 || isSyncSampleFlags(samples[0]!.flags),
  };
}

export interface RewriteOptions {
  /** New mfhd sequence_number (uint32). Unchanged when omitted. */
  readonly sequenceNumber?: number;
  /**
   * New tfdt baseMediaDecodeTime for a track, given its current one; return
   * the current value to leave it. A version-0 tfdt that must hold a value
   * >= 2^32 is widened to version 1 and trun data offsets are adjusted.
   */
  readonly baseMediaDecodeTime?: (trackId: number, current: bigint) => bigint;
}

const U32_LIMIT = 0x1_0000_0000n;
const U64_LIMIT = 0x1_0000_0000_0000_0000n;

/**
 * Returns a copy of one fragment with its sequence number and decode times
 * rewritten. Byte-identical output for identical input and options, which is
 * what lets several encoders produce interchangeable shards.
 */
export function rewriteFragment(buf: Uint8Array, opts: RewriteOptions): Uint8Array {
  const moof = onlyMoof(buf);
  if (opts.sequenceNumber !== undefined) {
    const n = opts.sequenceNumber;
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new BoxError(`sequence number must be a uint32, got ${n}`);
    }
  }
  const out = buf.slice();
  let widen = false;
  const newTimes = new Map<number, bigint>(); // tfdt box start -> new value
  for (const child of childBoxes(out, moof)) {
    if (child.type === "mfhd" && opts.sequenceNumber !== undefined) {
      writeU32(out, readFullBoxHeader(out, child).payloadStart, opts.sequenceNumber);
    }
    if (child.type !== "traf" || !opts.baseMediaDecodeTime) continue;
    const kids = childBoxes(out, child);
    const tfhdBox = kids.find((b) => b.type === "tfhd");
    const tfdtBox = kids.find((b) => b.type === "tfdt");
    if (!tfhdBox || !tfdtBox) continue;
    const trackId = readTfhd(out, tfhdBox).trackId;
    const { version, value } = readTfdt(out, tfdtBox);
    const next = opts.baseMediaDecodeTime(trackId, value);
    if (next < 0n || next >= U64_LIMIT) {
      throw new BoxError(`track ${trackId}: baseMediaDecodeTime ${next} is outside 0..2^64-1`);
    }
    newTimes.set(tfdtBox.start, next);
    const at = tfdtBox.contentStart + 4;
    if (version === 1) writeU64(out, at, next);
    else if (next < U32_LIMIT) writeU32(out, at, Number(next));
    else widen = true;
  }
  if (!widen) return out;
  return widenTfdts(out, moof, newTimes);
}

/** Rebuilds the moof with every tfdt at version 1, shifting trun data offsets by the growth. */
function widenTfdts(buf: Uint8Array, moof: BoxRef, newTimes: Map<number, bigint>): Uint8Array {
  const rebuilt: Uint8Array[] = [];
  const trafMeta: { baseIsMoof: boolean; first: boolean }[] = [];
  for (const child of childBoxes(buf, moof)) {
    if (child.type !== "traf") {
      rebuilt.push(buf.subarray(child.start, child.end));
      continue;
    }
    const parts: Uint8Array[] = [];
    let tfhd: TfhdFields | undefined;
    for (const kid of childBoxes(buf, child)) {
      if (kid.type === "saio") {
        throw new BoxError("cannot widen tfdt in a moof with saio (aux info offsets would break)");
      }
      if (kid.type === "tfhd") tfhd = readTfhd(buf, kid);
      if (kid.type === "tfdt") {
        const value = newTimes.get(kid.start) ?? readTfdt(buf, kid).value;
        parts.push(writeFullBox("tfdt", 1, 0, u64(value)));
      } else {
        parts.push(buf.subarray(kid.start, kid.end));
      }
    }
    if (tfhd && tfhd.flags & TFHD_BASE_DATA_OFFSET) {
      throw new BoxError("cannot widen tfdt when tfhd carries an absolute base_data_offset");
    }
    trafMeta.push({
      baseIsMoof: !!tfhd && (tfhd.flags & TFHD_DEFAULT_BASE_IS_MOOF) !== 0,
      first: trafMeta.length === 0,
    });
    rebuilt.push(writeBox("traf", ...parts));
  }
  const newMoof = writeBox("moof", ...rebuilt);
  const delta = newMoof.length - moof.size;
  // Data offsets are relative to the moof start when default-base-is-moof is set,
  // or for the first traf when no base flag is set (8.8.7.1); mdat moved by delta.
  findBoxes(newMoof, ["moof", "traf"]).forEach((traf, i) => {
    const meta = trafMeta[i]!;
    if (!meta.baseIsMoof && !meta.first) return;
    for (const trun of childBoxes(newMoof, traf).filter((b) => b.type === "trun")) {
      const { flags, payloadStart } = readFullBoxHeader(newMoof, trun);
      if (!(flags & TRUN_DATA_OFFSET)) continue;
      const at = payloadStart + 4;
      writeU32(newMoof, at, (readU32(newMoof, at) | 0) + delta);
    }
  });
  return concatBytes([buf.subarray(0, moof.start), newMoof, buf.subarray(moof.end)]);
}

/** Builds a minimal mfhd (for tests and tools). */
export function buildMfhd(sequenceNumber: number): Uint8Array {
  return writeFullBox("mfhd", 0, 0, u32(sequenceNumber));
}
