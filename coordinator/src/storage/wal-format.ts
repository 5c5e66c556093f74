/**
 * The write-ahead log's on-disk format (version 1).
 *
 * A segment file `wal/<seq, 16 decimal digits>.wal` is a 32-byte header
 * followed by records:
 *
 *   header  [magic "USTDYWAL" 8][version u32][flags u32 = 0][seq u64][reserved u32 = 0][crc32c u32 of bytes 0..28]
 *   record  [payload length u32][crc32c u32][type u8][payload]
 *
 * All integers are little-endian. A record's checksum covers its length field,
 * type byte and payload, so a zero-filled region never reads as a valid
 * record (type 0 is not a record type either). Record payloads:
 *
 *   entry (1)       [entry type u8: 0 normal, 1 conf-change][term varint][index varint][data: rest]
 *   hard state (2)  [term varint][commit varint][vote: varint length + UTF-8]
 *   snapshot (3)    [flags u8: bit 0 = resets the log][index varint][term varint]
 *
 * Every segment starts with a preamble: a snapshot record (flags 0) and a
 * hard-state record carrying the state as of the segment's creation, so the
 * segments before it can be deleted without losing term, vote or the
 * snapshot position.
 */
import type { Entry, EntryType, HardState } from "../raft/log-types.ts";
import { ByteReader, ByteWriter, DecodeError } from "./binary.ts";
import { crc32c, crc32cUpdate } from "./crc32c.ts";

export const WAL_DIR = "wal";
export const SEGMENT_SUFFIX = ".wal";
export const SEGMENT_MAGIC = "USTDYWAL";
export const WAL_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 32;
export const RECORD_FRAME_BYTES = 9;
/**
 * Largest record payload the format accepts, on write and on read. A length
 * field above it is treated as damage, not as an instruction to read further.
 */
export const RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;

export const RecordType = { entry: 1, hardState: 2, snapshot: 3 } as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

/** Where a snapshot sits in the log, as the WAL records it. */
export interface SnapshotMarker {
  readonly index: number;
  readonly term: number;
  /**
   * True for a snapshot installed from the leader: it replaces the whole log,
   * so entries recorded before it are void. False for a local compaction
   * snapshot and for segment preambles: the log after the index is kept.
   */
  readonly resetsLog: boolean;
}

export type WalRecord =
  | { readonly kind: "entry"; readonly offset: number; readonly entry: Entry }
  | { readonly kind: "hard-state"; readonly offset: number; readonly hardState: HardState }
  | { readonly kind: "snapshot"; readonly offset: number; readonly marker: SnapshotMarker };

const SEQ_DIGITS = 16;
const magicBytes = new TextEncoder().encode(SEGMENT_MAGIC);

export function segmentFileName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, "0")}${SEGMENT_SUFFIX}`;
}

/** The sequence number in a segment file name, or undefined if the name is not one. */
export function parseSegmentFileName(name: string): number | undefined {
  const m = /^(\d{16})\.wal$/.exec(name);
  if (!m) return undefined;
  const seq = Number(m[1]);
  return Number.isSafeInteger(seq) && seq >= 1 ? seq : undefined;
}

export function encodeSegmentHeader(seq: number): Uint8Array {
  const b = new Uint8Array(SEGMENT_HEADER_BYTES);
  const v = new DataView(b.buffer);
  b.set(magicBytes, 0);
  v.setUint32(8, WAL_FORMAT_VERSION, true);
  v.setUint32(12, 0, true);
  v.setBigUint64(16, BigInt(seq), true);
  v.setUint32(24, 0, true);
  v.setUint32(28, crc32c(b, 0, 28), true);
  return b;
}

/** Checks a segment header; returns a problem description, or undefined if it is valid for `seq`. */
export function checkSegmentHeader(buf: Uint8Array, seq: number): string | undefined {
  if (buf.length < SEGMENT_HEADER_BYTES) {
    return `file is ${buf.length} bytes, shorter than the ${SEGMENT_HEADER_BYTES}-byte segment header`;
  }
  const v = new DataView(buf.buffer, buf.byteOffset, SEGMENT_HEADER_BYTES);
  for (let i = 0; i < magicBytes.length; i++) {
    if (buf[i] !== magicBytes[i]) return `bad magic number (not an understudy WAL segment)`;
  }
  const stored = v.getUint32(28, true);
  const actual = crc32c(buf, 0, 28);
  if (stored !== actual)
    return `header checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`;
  const version = v.getUint32(8, true);
  if (version !== WAL_FORMAT_VERSION) {
    return `unsupported WAL format version ${version} (this build reads version ${WAL_FORMAT_VERSION})`;
  }
  const headerSeq = Number(v.getBigUint64(16, true));
  if (headerSeq !== seq) return `header names segment ${headerSeq} but the file name says ${seq}`;
  return undefined;
}

export function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

// ---------------------------------------------------------------- encoding

/** Appends framed records to one buffer; a save's records are written with a single write. */
export class RecordWriter {
  private readonly w = new ByteWriter(512);
  private frameStart = -1;

  get length(): number {
    return this.w.length;
  }

  private begin(type: RecordTypeCode): void {
    this.frameStart = this.w.length;
    this.w.u32(0);
    this.w.u32(0);
    this.w.u8(type);
  }

  private end(): void {
    const start = this.frameStart;
    const payloadBytes = this.w.length - start - RECORD_FRAME_BYTES;
    if (payloadBytes > RECORD_PAYLOAD_BYTES_MAX) {
      throw new RangeError(
        `record payload of ${payloadBytes} bytes exceeds the format limit of ${RECORD_PAYLOAD_BYTES_MAX} bytes`,
      );
    }
    this.w.u32At(start, payloadBytes);
    const bytes = this.w.peek();
    const crc = crc32cUpdate(crc32c(bytes, start, start + 4), bytes, start + 8, bytes.length);
    this.w.u32At(start + 4, crc);
  }

  entry(e: Entry): void {
    this.begin(RecordType.entry);
    this.w.u8(e.type === "conf-change" ? 1 : 0);
    this.w.varint(e.term);
    this.w.varint(e.index);
    this.w.bytes(e.data);
    this.end();
  }

  hardState(hs: HardState): void {
    this.begin(RecordType.hardState);
    this.w.varint(hs.term);
    this.w.varint(hs.commit);
    this.w.string(hs.vote);
    this.end();
  }

  snapshot(m: SnapshotMarker): void {
    this.begin(RecordType.snapshot);
    this.w.u8(m.resetsLog ? 1 : 0);
    this.w.varint(m.index);
    this.w.varint(m.term);
    this.end();
  }

  finish(): Uint8Array {
    return this.w.finish();
  }
}

// ---------------------------------------------------------------- decoding

export type FrameCheck =
  | {
      readonly ok: true;
      readonly type: RecordTypeCode;
      readonly payloadStart: number;
      readonly next: number;
    }
  | { readonly ok: false; readonly reason: string };

function isRecordType(t: number): t is RecordTypeCode {
  return t === RecordType.entry || t === RecordType.hardState || t === RecordType.snapshot;
}

/** Validates the record frame at `offset` (length bounds, type, checksum) without decoding the payload. */
export function checkFrame(buf: Uint8Array, offset: number): FrameCheck {
  const left = buf.length - offset;
  if (left < RECORD_FRAME_BYTES) {
    return {
      ok: false,
      reason: `incomplete record header (${left} of ${RECORD_FRAME_BYTES} bytes)`,
    };
  }
  const type = buf[offset + 8]!;
  const v = new DataView(buf.buffer, buf.byteOffset + offset, RECORD_FRAME_BYTES);
  const len = v.getUint32(0, true);
  if (!isRecordType(type))
    return { ok: false, reason: `unknown record type ${type} (length field ${len})` };
  if (len > RECORD_PAYLOAD_BYTES_MAX) {
    return {
      ok: false,
      reason: `record length ${len} exceeds the format limit ${RECORD_PAYLOAD_BYTES_MAX}`,
    };
  }
  const next = offset + RECORD_FRAME_BYTES + len;
  if (next > buf.length) {
    return {
      ok: false,
      reason: `incomplete record (needs ${len} payload bytes, ${left - RECORD_FRAME_BYTES} present)`,
    };
  }
  const stored = v.getUint32(4, true);
  const actual = crc32cUpdate(crc32c(buf, offset, offset + 4), buf, offset + 8, next);
  if (stored !== actual) {
    return {
      ok: false,
      reason: `record checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`,
    };
  }
  return { ok: true, type, payloadStart: offset + RECORD_FRAME_BYTES, next };
}

/** Decodes a payload whose frame checked out; throws DecodeError if the payload breaks the format. */
export function decodeRecord(
  buf: Uint8Array,
  offset: number,
  frame: FrameCheck & { ok: true },
): WalRecord {
  const r = new ByteReader(buf, frame.payloadStart, frame.next);
  switch (frame.type) {
    case RecordType.entry: {
      const t = r.u8();
      if (t > 1) throw new DecodeError(`unknown entry type ${t}`);
      const type: EntryType = t === 1 ? "conf-change" : "normal";
      const term = r.varint();
      const index = r.varint();
      if (index < 1) throw new DecodeError("entry index 0");
      return { kind: "entry", offset, entry: { term, index, type, data: r.rest() } };
    }
    case RecordType.hardState: {
      const term = r.varint();
      const commit = r.varint();
      const vote = r.string();
      r.expectEnd("hard state");
      return { kind: "hard-state", offset, hardState: { term, vote, commit } };
    }
    case RecordType.snapshot: {
      const flags = r.u8();
      if (flags > 1) throw new DecodeError(`unknown snapshot record flags ${flags}`);
      const index = r.varint();
      const term = r.varint();
      r.expectEnd("snapshot record");
      return { kind: "snapshot", offset, marker: { index, term, resetsLog: flags === 1 } };
    }
  }
}

export interface SegmentScan {
  readonly records: WalRecord[];
  /** End of the valid record prefix (where the next record would be written). */
  readonly validEnd: number;
  /** The first bad record, if the valid prefix does not reach the end of the file. */
  readonly bad?: {
    readonly offset: number;
    readonly reason: string;
    readonly undecodable: boolean;
  };
}

/** Reads records from just after the header until the end of the buffer or the first bad record. */
export function scanSegment(buf: Uint8Array): SegmentScan {
  const records: WalRecord[] = [];
  let offset = SEGMENT_HEADER_BYTES;
  while (offset < buf.length) {
    const frame = checkFrame(buf, offset);
    if (!frame.ok)
      return {
        records,
        validEnd: offset,
        bad: { offset, reason: frame.reason, undecodable: false },
      };
    try {
      records.push(decodeRecord(buf, offset, frame));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      return {
        records,
        validEnd: offset,
        bad: {
          offset,
          reason: `record passes its checksum but cannot be decoded: ${err.message}`,
          undecodable: true,
        },
      };
    }
    offset = frame.next;
  }
  return { records, validEnd: offset };
}

/**
 * The offset of the first complete, checksum-valid record starting after
 * `from`, or undefined. A valid record after a bad one means the bad bytes are
 * not a torn tail: data that was once acknowledged follows them.
 */
export function findValidRecordAfter(buf: Uint8Array, from: number): number | undefined {
  for (let o = from; o + RECORD_FRAME_BYTES <= buf.length; o++) {
    // Cheap rejections first: zero fill and random bytes rarely pass the type test.
    if (!isRecordType(buf[o + 8]!)) continue;
    if (checkFrame(buf, o).ok) return o;
  }
  return undefined;
}
