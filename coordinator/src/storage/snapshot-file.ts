/**
 * Snapshot files (format version 1): `snap/<term>-<index>.snap`, both numbers
 * as 16 decimal digits so names sort by term then index.
 *
 *   header  [magic "USTDYSNP" 8][version u32][flags u32 = 0][body length u64][body crc32c u32][crc32c u32 of bytes 0..28]
 *   body    [index varint][term varint][voters][learners][votersOutgoing][data: rest]
 *           (each id list: varint count, then varint-length UTF-8 strings)
 *
 * The body checksum covers the FSM data too: a snapshot that silently lost
 * bytes would replace the state machine with garbage on every restart.
 */
import type { ConfState, Snapshot } from "../raft/log-types.ts";
import { ByteReader, ByteWriter, DecodeError } from "./binary.ts";
import { crc32c } from "./crc32c.ts";
import { hex } from "./wal-format.ts";

export const SNAP_DIR = "snap";
export const SNAPSHOT_MAGIC = "USTDYSNP";
export const SNAPSHOT_FORMAT_VERSION = 1;
export const SNAPSHOT_HEADER_BYTES = 32;

const magicBytes = new TextEncoder().encode(SNAPSHOT_MAGIC);
const DIGITS = 16;

export function snapshotFileName(term: number, index: number): string {
  return `${String(term).padStart(DIGITS, "0")}-${String(index).padStart(DIGITS, "0")}.snap`;
}

export function parseSnapshotFileName(name: string): { term: number; index: number } | undefined {
  const m = /^(\d{16})-(\d{16})\.snap$/.exec(name);
  if (!m) return undefined;
  const term = Number(m[1]);
  const index = Number(m[2]);
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(index) || index < 1) return undefined;
  return { term, index };
}

export function encodeSnapshotFile(s: Snapshot): Uint8Array {
  const body = new ByteWriter(64 + s.data.length);
  body.varint(s.metadata.index);
  body.varint(s.metadata.term);
  writeIds(body, s.metadata.conf.voters);
  writeIds(body, s.metadata.conf.learners);
  writeIds(body, s.metadata.conf.votersOutgoing);
  body.bytes(s.data);
  const bodyBytes = body.finish();

  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES + bodyBytes.length);
  const v = new DataView(out.buffer);
  out.set(magicBytes, 0);
  v.setUint32(8, SNAPSHOT_FORMAT_VERSION, true);
  v.setUint32(12, 0, true);
  v.setBigUint64(16, BigInt(bodyBytes.length), true);
  v.setUint32(24, crc32c(bodyBytes), true);
  v.setUint32(28, crc32c(out, 0, 28), true);
  out.set(bodyBytes, SNAPSHOT_HEADER_BYTES);
  return out;
}

export type SnapshotDecode =
  | { readonly ok: true; readonly snapshot: Snapshot }
  | { readonly ok: false; readonly offset: number; readonly reason: string };

/** Verifies and decodes a snapshot file; `expected` is what its name (and the WAL) says it holds. */
export function decodeSnapshotFile(
  buf: Uint8Array,
  expected: { term: number; index: number },
): SnapshotDecode {
  if (buf.length < SNAPSHOT_HEADER_BYTES) {
    return {
      ok: false,
      offset: 0,
      reason: `file is ${buf.length} bytes, shorter than the snapshot header`,
    };
  }
  for (let i = 0; i < magicBytes.length; i++) {
    if (buf[i] !== magicBytes[i])
      return { ok: false, offset: 0, reason: "bad magic number (not a snapshot file)" };
  }
  const v = new DataView(buf.buffer, buf.byteOffset, SNAPSHOT_HEADER_BYTES);
  const headerCrc = v.getUint32(28, true);
  if (headerCrc !== crc32c(buf, 0, 28))
    return { ok: false, offset: 0, reason: "header checksum mismatch" };
  const version = v.getUint32(8, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    return { ok: false, offset: 8, reason: `unsupported snapshot format version ${version}` };
  }
  const bodyBytes = Number(v.getBigUint64(16, true));
  if (SNAPSHOT_HEADER_BYTES + bodyBytes !== buf.length) {
    return {
      ok: false,
      offset: Math.min(buf.length, SNAPSHOT_HEADER_BYTES + bodyBytes),
      reason: `header says ${bodyBytes} body bytes but the file holds ${buf.length - SNAPSHOT_HEADER_BYTES}`,
    };
  }
  const stored = v.getUint32(24, true);
  const actual = crc32c(buf, SNAPSHOT_HEADER_BYTES);
  if (stored !== actual) {
    return {
      ok: false,
      offset: SNAPSHOT_HEADER_BYTES,
      reason: `body checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`,
    };
  }
  try {
    const r = new ByteReader(buf, SNAPSHOT_HEADER_BYTES);
    const index = r.varint();
    const term = r.varint();
    const conf: ConfState = {
      voters: readIds(r),
      learners: readIds(r),
      votersOutgoing: readIds(r),
    };
    if (index !== expected.index || term !== expected.term) {
      return {
        ok: false,
        offset: SNAPSHOT_HEADER_BYTES,
        reason: `holds term ${term} index ${index} but should hold term ${expected.term} index ${expected.index}`,
      };
    }
    return { ok: true, snapshot: { metadata: { index, term, conf }, data: r.rest() } };
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return {
      ok: false,
      offset: SNAPSHOT_HEADER_BYTES,
      reason: `body passes its checksum but cannot be decoded: ${err.message}`,
    };
  }
}

function writeIds(w: ByteWriter, ids: readonly string[]): void {
  w.varint(ids.length);
  for (const id of ids) w.string(id);
}

function readIds(r: ByteReader): string[] {
  const n = r.varint();
  if (n > r.remaining)
    throw new DecodeError(`id list claims ${n} ids with ${r.remaining} bytes left`);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(r.string());
  return ids;
}
