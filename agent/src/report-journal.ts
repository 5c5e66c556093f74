/**
 * Makes the report buffer survive an agent restart: an append-only journal
 * file in the data dir, rewritten (compacted) from memory when it grows past
 * twice the buffer bound.
 *
 * Durability contract:
 * - Every appended report is handed to the kernel right away (in order, one
 *   writer), so an agent crash or restart loses nothing written.
 * - fdatasync runs at most once per `fsyncIntervalMs`, so a host power loss
 *   loses at most that much.
 * - Acks are not written on their own: the latest one rides along with the
 *   next report write (or the close). A lost ack costs only a resend that the
 *   coordinator drops as a duplicate.
 * - The instance id lives in the journal: sequences continue under the same
 *   id after a restart, so they stay strictly increasing per instance id.
 * - The disk never blocks sampling: writes are queued; if the queue exceeds
 *   `bytesMax` (a stuck disk) further records are not queued and the next
 *   compaction rewrites the file from memory.
 * - A torn or corrupt tail (crash mid-write) is cut at the last whole record.
 *
 * Record: u32le bodyLength | u32le crc32(body) | body, where body is
 * u8 type | f64le seq | payload.
 */
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { type FileHandle, open, rename } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Logger } from "../../common/log.ts";
import {
  type BufferedReport,
  createReportBuffer,
  type ReportBuffer,
  type ReportBufferState,
  type ReportJournal,
} from "./report-buffer.ts";

const RecordType = {
  Instance: 0,
  Report: 1,
  Ack: 2,
  /** Highest sequence issued; written at compaction. */
  Issued: 3,
  /** Running count of reports lost to overflow; written at compaction. */
  Dropped: 4,
} as const;
type RecordType = (typeof RecordType)[keyof typeof RecordType];

const headerBytes = 8;
const bodyHeaderBytes = 9;
/** A record larger than this is treated as corruption (reports are far smaller). */
const recordBytesMax = 16 * 1024 * 1024;
export const journalFileName = "reports.journal";

export interface ReportStoreOptions {
  dir: string;
  bytesMax: number;
  /** Used when the journal is new (or unreadable): a fresh instance id. */
  newInstanceId: () => string;
  fsyncIntervalMs?: number;
  logger: Logger;
}

export interface ReportStore {
  readonly buffer: ReportBuffer;
  readonly instanceId: string;
  /** What recovery found: reports loaded and bytes cut from a torn tail. */
  readonly recovered: { reports: number; tornBytes: number };
  /** Resolves when everything recorded so far is written and synced. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

function encodeRecord(type: RecordType, seq: number, payload?: Uint8Array): Buffer {
  const bodyLen = bodyHeaderBytes + (payload?.length ?? 0);
  const out = Buffer.allocUnsafe(headerBytes + bodyLen);
  out.writeUInt32LE(bodyLen, 0);
  out.writeUInt8(type, headerBytes);
  out.writeDoubleLE(seq, headerBytes + 1);
  if (payload) out.set(payload, headerBytes + bodyHeaderBytes);
  out.writeUInt32LE(crc32(out.subarray(headerBytes)), 4);
  return out;
}

interface Recovery {
  instanceId: string | undefined;
  state: ReportBufferState;
  goodBytes: number;
  tornBytes: number;
  gapDropped: number;
}

function recover(data: Buffer): Recovery {
  let off = 0;
  let instanceId: string | undefined;
  let lastSeq = 0;
  let ackedSeq = 0;
  let droppedUnacked = 0;
  let reports: BufferedReport[] = [];
  let gapDropped = 0;
  while (off + headerBytes <= data.length) {
    const bodyLen = data.readUInt32LE(off);
    if (bodyLen < bodyHeaderBytes || bodyLen > recordBytesMax) break;
    if (off + headerBytes + bodyLen > data.length) break;
    const body = data.subarray(off + headerBytes, off + headerBytes + bodyLen);
    if (crc32(body) !== data.readUInt32LE(off + 4)) break;
    const type = body.readUInt8(0) as RecordType;
    const seq = body.readDoubleLE(1);
    const payload = body.subarray(bodyHeaderBytes);
    if (type === RecordType.Instance) {
      instanceId = payload.toString("utf8");
    } else if (type === RecordType.Report) {
      const last = reports.at(-1);
      if (last && seq !== last.seq + 1) {
        // A gap (records skipped while the disk was stuck): only the newest
        // contiguous run can be held, the older run is lost.
        gapDropped += reports.filter((r) => r.seq > ackedSeq).length;
        reports = [];
      }
      reports.push({ seq, bytes: Uint8Array.from(payload) });
      lastSeq = Math.max(lastSeq, seq);
    } else if (type === RecordType.Ack) {
      ackedSeq = Math.max(ackedSeq, seq);
    } else if (type === RecordType.Issued) {
      lastSeq = Math.max(lastSeq, seq);
    } else if (type === RecordType.Dropped) {
      droppedUnacked = Math.max(droppedUnacked, seq);
    }
    off += headerBytes + bodyLen;
  }
  const tail = reports.at(-1);
  if (tail && tail.seq !== lastSeq) {
    // The newest reports never reached the disk; the held run cannot be
    // contiguous with the sequences issued after it.
    gapDropped += reports.filter((r) => r.seq > ackedSeq).length;
    reports = [];
  }
  return {
    instanceId,
    state: { lastSeq, ackedSeq, droppedUnacked: droppedUnacked + gapDropped, reports },
    goodBytes: off,
    tornBytes: data.length - off,
    gapDropped,
  };
}

/**
 * Opens (or creates) the journal in `dir`, recovers the buffer from it and
 * attaches the journal to the buffer.
 */
export async function openReportStore(opts: ReportStoreOptions): Promise<ReportStore> {
  const { dir, bytesMax, logger } = opts;
  const fsyncIntervalMs = opts.fsyncIntervalMs ?? 1000;
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const file = join(dir, journalFileName);
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    data = Buffer.alloc(0);
  }
  const rec = recover(data);
  if (rec.tornBytes > 0) {
    logger.warn("report journal had a torn tail; cut at the last whole record", {
      file,
      tornBytes: rec.tornBytes,
    });
    const fd = openSync(file, "r+");
    try {
      ftruncateSync(fd, rec.goodBytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  if (rec.gapDropped > 0) {
    logger.warn("report journal had a gap; older reports are lost", { dropped: rec.gapDropped });
  }
  const instanceId = rec.instanceId ?? opts.newInstanceId();
  const buffer = createReportBuffer({ bytesMax, initial: rec.state });

  let handle: FileHandle = await open(file, "a");
  let fileBytes = rec.goodBytes;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** Records were skipped (queue over bound): the file no longer matches memory. */
  let diverged = rec.instanceId === undefined;
  let pumping: Promise<void> | undefined;
  let lastSyncMono = performance.now();
  let unsynced = false;
  let syncTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let failure: unknown;
  /** Latest ack watermark, and the latest one written to the file. */
  let ackToWrite = rec.state.ackedSeq;
  let ackWritten = rec.state.ackedSeq;

  const compactAtBytes = 2 * bytesMax + 64 * 1024;

  const compact = async (snap: ReportBufferState) => {
    const parts = [
      encodeRecord(RecordType.Instance, 0, Buffer.from(instanceId, "utf8")),
      encodeRecord(RecordType.Issued, snap.lastSeq),
      encodeRecord(RecordType.Ack, snap.ackedSeq),
      encodeRecord(RecordType.Dropped, snap.droppedUnacked),
      ...snap.reports.map((r) => encodeRecord(RecordType.Report, r.seq, r.bytes)),
    ];
    const tmp = `${file}.tmp`;
    const out = await open(tmp, "w");
    try {
      const all = Buffer.concat(parts);
      await out.write(all);
      await out.datasync();
      fileBytes = all.length;
    } finally {
      await out.close();
    }
    // The old handle may already be broken (that is often why we compact).
    await handle.close().catch(() => {});
    await rename(tmp, file);
    const dirFd = openSync(dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    handle = await open(file, "a");
  };

  const sync = async () => {
    if (!unsynced) return;
    unsynced = false;
    lastSyncMono = performance.now();
    await handle.datasync();
  };

  const pump = async () => {
    while (
      pending.length > 0 ||
      diverged ||
      fileBytes > compactAtBytes ||
      ackToWrite > ackWritten
    ) {
      if (diverged || fileBytes > compactAtBytes) {
        // The snapshot already holds everything queued so far, so the queue is
        // dropped in the same tick; records queued from now on follow the
        // snapshot in the new file. A failed rewrite sets `diverged` again.
        pending = [];
        pendingBytes = 0;
        diverged = false;
        const snap = buffer.snapshot();
        ackWritten = snap.ackedSeq;
        await compact(snap);
        continue;
      }
      if (ackToWrite > ackWritten) {
        pending.push(encodeRecord(RecordType.Ack, ackToWrite));
        ackWritten = ackToWrite;
      }
      const batch = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      await handle.write(batch);
      fileBytes += batch.length;
      unsynced = true;
    }
    if (unsynced) {
      const dueInMs = fsyncIntervalMs - (performance.now() - lastSyncMono);
      if (dueInMs <= 0) await sync();
      else if (!syncTimer && !closed) {
        syncTimer = setTimeout(() => {
          syncTimer = undefined;
          kick();
        }, dueInMs);
        syncTimer.unref();
      }
    }
  };

  const kick = () => {
    if (pumping || closed) return;
    pumping = pump()
      .catch((err: unknown) => {
        failure = err;
        diverged = true;
        logger.error("report journal write failed; will rewrite it from memory", { err });
      })
      .finally(() => {
        pumping = undefined;
        // Only new records re-run the pump; a pending sync has its own timer.
        if ((pending.length > 0 || diverged) && !closed && failure === undefined) kick();
      });
  };

  const enqueue = (rec: Buffer) => {
    if (diverged) {
      kick();
      return;
    }
    if (pendingBytes + rec.length > bytesMax) {
      logger.warn("report journal is not keeping up (disk stuck?); will rewrite it from memory", {
        pendingBytes,
      });
      diverged = true;
    } else {
      pending.push(rec);
      pendingBytes += rec.length;
    }
    kick();
  };

  const journal: ReportJournal = {
    appended: (r) => enqueue(encodeRecord(RecordType.Report, r.seq, r.bytes)),
    // Acks ride along with the next write (or the close) instead of costing a
    // write each: a lost ack only means a resend the leader drops.
    acked: (seq) => {
      ackToWrite = seq;
    },
    advanced: (seq) => {
      enqueue(encodeRecord(RecordType.Issued, seq));
      enqueue(encodeRecord(RecordType.Ack, seq));
    },
  };
  buffer.setJournal(journal);
  if (diverged) kick();

  const drain = async () => {
    // A failed write is retried once per drain: the rewrite path reopens the file.
    failure = undefined;
    while (pumping) await pumping;
    if (pending.length > 0 || diverged || ackToWrite > ackWritten) {
      kick();
      while (pumping) await pumping;
    }
  };

  return {
    buffer,
    instanceId,
    recovered: { reports: rec.state.reports.length, tornBytes: rec.tornBytes },
    async flush() {
      await drain();
      if (failure !== undefined) throw failure;
      unsynced = true;
      await sync();
    },
    async close() {
      buffer.setJournal(undefined);
      await drain();
      closed = true;
      if (syncTimer) clearTimeout(syncTimer);
      unsynced = true;
      try {
        await sync();
      } finally {
        await handle.close();
      }
    },
  };
}
