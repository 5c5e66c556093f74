/**
 * ISO BMFF (MP4) box primitives: iterate, find and build boxes over a
 * Uint8Array. Pure functions, no I/O; every read is bounds-checked and a
 * malformed box raises a BoxError that says where and what is wrong, because
 * these bytes come from encoders over the network.
 */

export class BoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BoxError";
  }
}

/** Where one box lies in a buffer. Offsets are absolute into that buffer. */
export interface BoxRef {
  /** Four-character code, e.g. "moof". */
  readonly type: string;
  /** Offset of the box's first byte (its size field). */
  readonly start: number;
  /** Offset one past the box's last byte. */
  readonly end: number;
  /** Total size in bytes, header included. */
  readonly size: number;
  /** 8, or 16 for a 64-bit size (`largesize`). */
  readonly headerSize: number;
  /** Offset of the first byte after the header (after the version/flags of a full box, too). */
  readonly contentStart: number;
}

/** Boxes whose payload is only child boxes. */
const plainContainers = new Set([
  "moov",
  "trak",
  "mdia",
  "minf",
  "dinf",
  "stbl",
  "mvex",
  "moof",
  "traf",
  "edts",
  "udta",
  "mfra",
  "sinf",
  "schi",
]);

/**
 * Bytes to skip after the header before children start, for boxes that hold
 * children after some fields of their own.
 */
const childOffset: Record<string, number> = {
  stsd: 8, // version/flags + entry_count
  dref: 8,
  meta: 4, // full box (ISO; QuickTime's plain `meta` is not supported)
};

export function fourcc(buf: Uint8Array, offset: number): string {
  return String.fromCharCode(buf[offset]!, buf[offset + 1]!, buf[offset + 2]!, buf[offset + 3]!);
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function readU32(buf: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > buf.length) {
    throw new BoxError(`read of 4 bytes at offset ${offset} is past the end (${buf.length} bytes)`);
  }
  return view(buf).getUint32(offset);
}

export function readU64(buf: Uint8Array, offset: number): bigint {
  if (offset < 0 || offset + 8 > buf.length) {
    throw new BoxError(`read of 8 bytes at offset ${offset} is past the end (${buf.length} bytes)`);
  }
  return view(buf).getBigUint64(offset);
}

export function writeU32(buf: Uint8Array, offset: number, value: number): void {
  view(buf).setUint32(offset, value >>> 0);
}

export function writeU64(buf: Uint8Array, offset: number, value: bigint): void {
  view(buf).setBigUint64(offset, value);
}

/** Reads the header of the box starting at `start`; the box must fit in `[start, limit)`. */
export function readBoxHeader(buf: Uint8Array, start: number, limit = buf.length): BoxRef {
  if (start + 8 > limit) {
    throw new BoxError(`truncated box header at offset ${start} (${limit - start} bytes left)`);
  }
  let size = readU32(buf, start);
  const type = fourcc(buf, start + 4);
  let headerSize = 8;
  if (size === 1) {
    if (start + 16 > limit) throw new BoxError(`truncated 64-bit size of "${type}" at ${start}`);
    const large = readU64(buf, start + 8);
    if (large > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new BoxError(`box "${type}" at ${start} claims ${large} bytes`);
    }
    size = Number(large);
    headerSize = 16;
  } else if (size === 0) {
    // Size 0 means "extends to the end of the enclosing space" (only legal last).
    size = limit - start;
  }
  if (type === "uuid") headerSize += 16;
  if (size < headerSize) {
    throw new BoxError(`box "${type}" at offset ${start} has size ${size} < header ${headerSize}`);
  }
  if (start + size > limit) {
    throw new BoxError(
      `box "${type}" at offset ${start} has size ${size} but only ${limit - start} bytes remain`,
    );
  }
  return {
    type,
    start,
    end: start + size,
    size,
    headerSize,
    contentStart: start + headerSize,
  };
}

/** Iterates the sibling boxes in `[start, end)`; throws BoxError on malformed sizes. */
export function* iterateBoxes(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
): Generator<BoxRef, void, undefined> {
  let at = start;
  while (at < end) {
    const box = readBoxHeader(buf, at, end);
    yield box;
    at = box.end;
  }
}

export function readBoxes(buf: Uint8Array, start = 0, end = buf.length): BoxRef[] {
  return [...iterateBoxes(buf, start, end)];
}

/** Where the children of `box` begin, or undefined when it is not a known container. */
export function childrenStart(box: BoxRef): number | undefined {
  if (plainContainers.has(box.type)) return box.contentStart;
  const skip = childOffset[box.type];
  return skip === undefined ? undefined : box.contentStart + skip;
}

/** The child boxes of a container box (moov, trak, moof, traf, stsd, ...). */
export function childBoxes(buf: Uint8Array, box: BoxRef): BoxRef[] {
  const from = childrenStart(box);
  if (from === undefined) throw new BoxError(`box "${box.type}" is not a container`);
  return readBoxes(buf, from, box.end);
}

/**
 * Finds the first box along `path` (e.g. ["moov", "trak", "mdia", "mdhd"]),
 * descending through containers; searches `[start, end)` at the top level.
 */
export function findBox(
  buf: Uint8Array,
  path: readonly string[],
  start = 0,
  end = buf.length,
): BoxRef | undefined {
  return findBoxes(buf, path, start, end)[0];
}

/** All boxes matching `path`, in file order (e.g. every ["moov", "trak"]). */
export function findBoxes(
  buf: Uint8Array,
  path: readonly string[],
  start = 0,
  end = buf.length,
): BoxRef[] {
  const [head, ...rest] = path;
  if (head === undefined) return [];
  const out: BoxRef[] = [];
  for (const box of iterateBoxes(buf, start, end)) {
    if (box.type !== head) continue;
    if (rest.length === 0) {
      out.push(box);
      continue;
    }
    const from = childrenStart(box);
    if (from !== undefined) out.push(...findBoxes(buf, rest, from, box.end));
  }
  return out;
}

/** Version and 24-bit flags of a full box. */
export function readFullBoxHeader(
  buf: Uint8Array,
  box: BoxRef,
): { version: number; flags: number; payloadStart: number } {
  if (box.contentStart + 4 > box.end) throw new BoxError(`full box "${box.type}" is too short`);
  const vf = readU32(buf, box.contentStart);
  return { version: vf >>> 24, flags: vf & 0xffffff, payloadStart: box.contentStart + 4 };
}

function encodeType(type: string): Uint8Array {
  if (type.length !== 4) throw new BoxError(`box type must be 4 characters, got "${type}"`);
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const c = type.charCodeAt(i);
    if (c > 0xff) throw new BoxError(`box type "${type}" is not 8-bit`);
    out[i] = c;
  }
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Builds a box from its type and payload parts (32-bit size; payloads must total < 4 GiB). */
export function writeBox(type: string, ...payload: Uint8Array[]): Uint8Array {
  const body = concatBytes(payload);
  const size = 8 + body.length;
  if (size > 0xffffffff) throw new BoxError(`box "${type}" too large (${size} bytes)`);
  const out = new Uint8Array(size);
  writeU32(out, 0, size);
  out.set(encodeType(type), 4);
  out.set(body, 8);
  return out;
}

/** Builds a full box: version (0..255) and flags (24 bits) precede the payload. */
export function writeFullBox(
  type: string,
  version: number,
  flags: number,
  ...payload: Uint8Array[]
): Uint8Array {
  const vf = new Uint8Array(4);
  writeU32(vf, 0, ((version & 0xff) << 24) | (flags & 0xffffff));
  return writeBox(type, vf, ...payload);
}

/** Big-endian unsigned integer fields, for building payloads in tests and tools. */
export function u8(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff);
}
export function u16(value: number): Uint8Array {
  return Uint8Array.of((value >>> 8) & 0xff, value & 0xff);
}
export function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  writeU32(out, 0, value);
  return out;
}
export function u64(value: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(out, 0, BigInt(value));
  return out;
}
