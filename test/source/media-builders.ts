/**
 * Hand-made fMP4 boxes for the media tool tests: small fragments whose every
 * field is known, so tests do not depend only on what ffmpeg happens to write.
 */
import {
  concatBytes,
  u8,
  u16,
  u32,
  u64,
  writeBox,
  writeFullBox,
} from "../../packager-node/src/media/index.ts";

export interface HandTraf {
  trackId: number;
  /** Omit to leave the traf without tfdt. */
  tfdt?: { version: 0 | 1; value: bigint };
  /** tfhd flags beyond the ones implied by the defaults below (e.g. 0x20000 default-base-is-moof). */
  tfhdFlags?: number;
  defaultSampleDuration?: number;
  defaultSampleFlags?: number;
  /** Absolute base_data_offset (tfhd flag 0x1). */
  baseDataOffset?: bigint;
  trunVersion?: 0 | 1;
  firstSampleFlags?: number;
  samples: { duration?: number; size: number; flags?: number; cto?: number }[];
  /** Byte value filling this traf's sample data in the mdat. */
  fill: number;
}

function tfhd(t: HandTraf): Uint8Array {
  let flags = t.tfhdFlags ?? 0x20000;
  const fields: Uint8Array[] = [u32(t.trackId)];
  if (t.baseDataOffset !== undefined) {
    flags |= 0x1;
    fields.push(u64(t.baseDataOffset));
  }
  if (t.defaultSampleDuration !== undefined) {
    flags |= 0x8;
    fields.push(u32(t.defaultSampleDuration));
  }
  if (t.defaultSampleFlags !== undefined) {
    flags |= 0x20;
    fields.push(u32(t.defaultSampleFlags));
  }
  return writeFullBox("tfhd", 0, flags, ...fields);
}

function trun(t: HandTraf, dataOffset: number): Uint8Array {
  const hasDur = t.samples.some((s) => s.duration !== undefined);
  const hasFlags = t.samples.some((s) => s.flags !== undefined);
  const hasCto = t.samples.some((s) => s.cto !== undefined);
  let flags = 0x1 | 0x200;
  if (t.firstSampleFlags !== undefined) flags |= 0x4;
  if (hasDur) flags |= 0x100;
  if (hasFlags) flags |= 0x400;
  if (hasCto) flags |= 0x800;
  const fields: Uint8Array[] = [u32(t.samples.length), u32(dataOffset)];
  if (t.firstSampleFlags !== undefined) fields.push(u32(t.firstSampleFlags));
  for (const s of t.samples) {
    if (hasDur) fields.push(u32(s.duration ?? 0));
    fields.push(u32(s.size));
    if (hasFlags) fields.push(u32(s.flags ?? 0));
    if (hasCto) fields.push(u32(s.cto ?? 0));
  }
  return writeFullBox("trun", t.trunVersion ?? 0, flags, ...fields);
}

function traf(t: HandTraf, dataOffset: number): Uint8Array {
  const tfdt = t.tfdt
    ? writeFullBox(
        "tfdt",
        t.tfdt.version,
        0,
        t.tfdt.version === 1 ? u64(t.tfdt.value) : u32(Number(t.tfdt.value)),
      )
    : new Uint8Array(0);
  return writeBox("traf", tfhd(t), tfdt, trun(t, dataOffset));
}

/**
 * moof + mdat with trun data offsets relative to the moof start (correct for
 * default-base-is-moof and for the first traf without base flags).
 */
export function handFragment(sequenceNumber: number, trafs: HandTraf[]): Uint8Array {
  const mfhd = writeFullBox("mfhd", 0, 0, u32(sequenceNumber));
  // First pass with zero offsets to learn the moof size (offsets do not change sizes).
  const moofSize = writeBox("moof", mfhd, ...trafs.map((t) => traf(t, 0))).length;
  let dataAt = moofSize + 8;
  const built: Uint8Array[] = [];
  const data: Uint8Array[] = [];
  for (const t of trafs) {
    built.push(traf(t, dataAt));
    const bytes = t.samples.reduce((n, s) => n + s.size, 0);
    data.push(new Uint8Array(bytes).fill(t.fill));
    dataAt += bytes;
  }
  return concatBytes([writeBox("moof", mfhd, ...built), writeBox("mdat", ...data)]);
}

/** An avcC payload box with the given profile, compatibility and level bytes. */
export function handAvcC(profile: number, compat: number, level: number): Uint8Array {
  return writeBox("avcC", u8(1), u8(profile), u8(compat), u8(level), u8(0xff), u8(0xe0), u8(0));
}

/** An esds with an ES_Descriptor, DecoderConfigDescriptor and optional AudioSpecificConfig. */
export function handEsds(oti: number, asc?: Uint8Array): Uint8Array {
  const desc = (tag: number, body: Uint8Array) => concatBytes([u8(tag), u8(body.length), body]);
  const dsi = asc ? desc(0x05, asc) : new Uint8Array(0);
  const dcd = desc(
    0x04,
    concatBytes([u8(oti), u8(0x15), u8(0), u16(0), u32(128000), u32(128000), dsi]),
  );
  const es = desc(0x03, concatBytes([u16(1), u8(0), dcd]));
  return writeFullBox("esds", 0, 0, es);
}
