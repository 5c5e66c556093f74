/**
 * Durable storage for one coordinator node: a segmented write-ahead log plus
 * snapshot files in the node's data directory.
 *
 *   <dir>/LOCK                                 pid of the process that has it open
 *   <dir>/wal/0000000000000001.wal ...         segments, rolled at segmentBytesMax
 *   <dir>/snap/<term>-<index>.snap             the newest snapshotsRetained snapshots
 *
 * Contract with the Raft driver: `save` resolves only after its records are
 * written and fdatasync'ed, so the driver may send messages (votes, append
 * acknowledgements) that depend on them once it resolves. Saves are applied
 * in call order. Saves issued while a sync is in flight are written together
 * by the next single write + sync (group commit).
 *
 * Failure policy: any I/O error while open is fatal to the handle (see
 * StorageFailedError). Damage found at open is fatal to the node unless it is
 * a torn tail (see recovery.ts).
 */

import type { FileHandle } from "node:fs/promises";
import { mkdir, open, readdir, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  errorMessage,
  failedPrecondition,
  invalidArgument,
  resourceExhausted,
} from "../../../common/errors.ts";
import { createLogger, type Logger } from "../../../common/log.ts";
import type { Entry, HardState, RecoveredState, Snapshot } from "../raft/log-types.ts";
import { lockDataDir } from "./dir-lock.ts";
import { Disk, type DiskHooks, type DiskStats } from "./disk.ts";
import { StorageFailedError } from "./errors.ts";
import { analyzeDataDir } from "./recovery.ts";
import {
  encodeSnapshotFile,
  parseSnapshotFileName,
  SNAP_DIR,
  snapshotFileName,
} from "./snapshot-file.ts";
import { checkLocalSnapshot, checkSave, type LogPosition } from "./validate.ts";
import {
  encodeSegmentHeader,
  RecordWriter,
  type SnapshotMarker,
  segmentFileName,
  WAL_DIR,
} from "./wal-format.ts";

const MiB = 1024 * 1024;

export interface DurableLogOptions {
  logger?: Logger;
  /** A new segment is started before a batch that would grow the current one past this. Default 64 MiB. */
  segmentBytesMax?: number;
  /** Most bytes one group commit writes (a single save larger than this is written alone). Default 4 MiB. */
  groupCommitBytesMax?: number;
  /** Most save calls one group commit covers. Default 1024. */
  groupCommitSavesMax?: number;
  /** Encoded bytes that may wait for a write; a save beyond it is rejected (RESOURCE_EXHAUSTED). Default 64 MiB. */
  queueBytesMax?: number;
  /** Snapshot files kept, newest first (the newest is never deleted). Default 2. */
  snapshotsRetained?: number;
  /** Largest snapshot data accepted. Default 1 GiB. */
  snapshotBytesMax?: number;
  /** Fault-injection seams for tests. */
  hooks?: DiskHooks;
}

export interface SaveRequest {
  readonly hardState?: HardState;
  /** Contiguous; the first may overwrite an uncommitted suffix (everything from its index on is replaced). */
  readonly entries?: readonly Entry[];
  /**
   * A snapshot installed from the leader. It replaces the log: entries saved
   * earlier are void, and `entries` in the same call follow it.
   */
  readonly snapshot?: Snapshot;
}

export interface CompactResult {
  /** Segment files deleted. */
  readonly segmentsDeleted: number;
  /** The index the deletion was bounded by: min(requested, newest durable snapshot). */
  readonly compactedThrough: number;
}

export interface DurableLogStats extends DiskStats {
  /** save/saveSnapshot calls that are durable. */
  saves: number;
  /** Group commits written (each one write and one fdatasync). */
  groupCommits: number;
  entriesWritten: number;
  segmentsCreated: number;
  segmentsDeleted: number;
  snapshotsWritten: number;
  queuedSaves: number;
  queuedBytes: number;
  firstSegment: number;
  lastSegment: number;
  /** Durable last log index and snapshot index. */
  lastIndex: number;
  snapshotIndex: number;
}

export interface DurableLog {
  /** Appends; resolves once written and fsynced. Rejects (storing nothing) on invalid input. */
  save(req: SaveRequest): Promise<void>;
  /**
   * Stores a local compaction snapshot (entries after it stay): the file is
   * written atomically, then the WAL records it; resolves once both are
   * durable. Older snapshot files beyond `snapshotsRetained` are then deleted.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /**
   * Deletes whole WAL segments all of whose entries are at or below
   * min(index, newest durable snapshot index). The active segment is kept.
   */
  compact(index: number): Promise<CompactResult>;
  stats(): DurableLogStats;
  /** Waits for queued saves, then releases the files. Later calls reject. */
  close(): Promise<void>;
}

export interface OpenedDurableLog {
  /** The state on disk, for the Raft core to start from. */
  readonly recovered: RecoveredState;
  readonly log: DurableLog;
}

interface QueueItem {
  readonly bytes: Uint8Array;
  readonly entries: number;
  readonly minEntryIndex: number;
  readonly maxEntryIndex: number;
  /** State this item leaves the log in; becomes the durable state once written. */
  readonly after: LogPosition;
  readonly marker?: SnapshotMarker;
  /** Work that must be durable before the item's records are (the snapshot file). */
  prepared: boolean;
  prepare?: Promise<void>;
  prepareError?: unknown;
  resolve(): void;
  reject(err: unknown): void;
}

interface SegmentMeta {
  readonly seq: number;
  readonly path: string;
  minEntryIndex: number;
  maxEntryIndex: number;
}

interface ActiveSegment {
  readonly seq: number;
  readonly path: string;
  readonly fh: FileHandle;
  /** Bytes in the file; the next batch is written here. */
  size: number;
  /** Size right after the header and preamble: a segment this size holds no batch yet. */
  readonly preambleEnd: number;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < 1)
    throw invalidArgument(name, `must be a positive integer, got ${v}`);
  return x;
}

function encodePreamble(seq: number, marker: SnapshotMarker, hardState: HardState): Uint8Array {
  const w = new RecordWriter();
  w.snapshot({ index: marker.index, term: marker.term, resetsLog: false });
  w.hardState(hardState);
  const records = w.finish();
  const header = encodeSegmentHeader(seq);
  const out = new Uint8Array(header.length + records.length);
  out.set(header, 0);
  out.set(records, header.length);
  return out;
}

/** Creates `dir` (and parents) and makes each new directory entry durable. */
async function ensureDir(disk: Disk, dir: string): Promise<void> {
  const firstCreated = await mkdir(dir, { recursive: true });
  if (firstCreated === undefined) return;
  // Every directory from firstCreated down to dir is new: sync each parent.
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.push(d);
    if (d === firstCreated || dirname(d) === d) break;
  }
  for (const d of chain) await disk.syncDir(dirname(d));
}

/**
 * Opens (creating if needed) the durable log in `dir` and recovers its state.
 * Throws StorageCorruptionError if the directory holds damage other than a
 * torn tail, and a FAILED_PRECONDITION error if another process has it open.
 */
export async function openDurableLog(
  dirArg: string,
  opts: DurableLogOptions = {},
): Promise<OpenedDurableLog> {
  const limits = {
    segmentBytesMax: positiveInt("segmentBytesMax", opts.segmentBytesMax, 64 * MiB),
    groupCommitBytesMax: positiveInt("groupCommitBytesMax", opts.groupCommitBytesMax, 4 * MiB),
    groupCommitSavesMax: positiveInt("groupCommitSavesMax", opts.groupCommitSavesMax, 1024),
    queueBytesMax: positiveInt("queueBytesMax", opts.queueBytesMax, 64 * MiB),
    snapshotsRetained: positiveInt("snapshotsRetained", opts.snapshotsRetained, 2),
    snapshotBytesMax: positiveInt("snapshotBytesMax", opts.snapshotBytesMax, 1024 * MiB),
  };
  const dir = resolve(dirArg);
  const logger = (opts.logger ?? createLogger({ component: "durable-log" })).child({
    dataDir: dir,
  });
  const disk = new Disk(opts.hooks);
  const startedMs = performance.now();

  await ensureDir(disk, dir);
  const walDir = join(dir, WAL_DIR);
  const snapDir = join(dir, SNAP_DIR);
  await ensureDir(disk, walDir);
  await ensureDir(disk, snapDir);
  const unlock = await lockDataDir(dir);
  try {
    const a = await analyzeDataDir(dir);
    if (a.corruption) {
      logger.error("durable log is corrupt; refusing to start", {
        error: a.corruption,
        file: a.corruption.file,
      });
      throw a.corruption;
    }
    const recovered = a.recovered!;
    const marker = a.snapshotMarker!;

    for (const path of a.tempFiles) {
      logger.info("deleting an interrupted file creation", { file: path });
      await unlink(path);
    }
    if (a.tempFiles.length > 0) {
      await disk.syncDir(walDir);
      await disk.syncDir(snapDir);
    }
    for (const s of a.skippedSnapshots) {
      logger.error("snapshot unusable; recovered from an older one the WAL still covers", {
        file: s.path,
        reason: s.reason,
      });
    }
    // Snapshot files newer than any the WAL records were renamed into place but
    // their WAL record never became durable: nothing refers to them.
    const known = new Set(a.markers.map((m) => `${m.term}-${m.index}`));
    const orphans = a.snapshotFiles.filter(
      (f) => f.index > marker.index && !known.has(`${f.term}-${f.index}`),
    );
    for (const f of orphans) {
      logger.warn("deleting a snapshot file the WAL never recorded", { file: f.path });
      await unlink(f.path);
    }
    if (orphans.length > 0) await disk.syncDir(snapDir);

    if (a.tornTail) {
      const t = a.tornTail;
      logger.warn(
        "torn tail in the last WAL segment (a write interrupted by a crash); truncating it",
        {
          file: t.path,
          offset: t.offset,
          bytesDropped: t.fileBytes - t.offset,
          reason: t.reason,
        },
      );
      const fh = await open(t.path, "r+");
      try {
        await fh.truncate(t.offset);
        await disk.syncFile(fh);
      } finally {
        await fh.close();
      }
    }

    const position: LogPosition = {
      hardState: recovered.hardState,
      lastIndex: Math.max(marker.index, recovered.entries.at(-1)?.index ?? 0),
      lastTerm: recovered.entries.at(-1)?.term ?? marker.term,
      snapshotIndex: marker.index,
      snapshotTerm: marker.term,
    };

    let segments: SegmentMeta[];
    let active: ActiveSegment;
    if (a.fresh) {
      const path = join(walDir, segmentFileName(1));
      const content = encodePreamble(1, marker, recovered.hardState);
      const fh = await disk.createFileAtomic(path, content, true);
      segments = [{ seq: 1, path, minEntryIndex: 0, maxEntryIndex: 0 }];
      active = { seq: 1, path, fh, size: content.length, preambleEnd: content.length };
    } else {
      segments = a.segments.map((s) => ({
        seq: s.seq,
        path: s.path,
        minEntryIndex: s.minEntryIndex,
        maxEntryIndex: s.maxEntryIndex,
      }));
      const last = a.segments.at(-1)!;
      const fh = await open(last.path, "r+");
      // Unknown for a reopened segment; any non-empty segment may be rolled.
      active = { seq: last.seq, path: last.path, fh, size: last.validEnd, preambleEnd: 0 };
    }

    logger.info("durable log opened", {
      segments: segments.length,
      firstSegment: segments[0]!.seq,
      snapshotIndex: marker.index,
      lastIndex: position.lastIndex,
      term: recovered.hardState.term,
      commit: recovered.hardState.commit,
      tornTailTruncated: a.tornTail !== undefined,
      openMs: Math.round(performance.now() - startedMs),
    });
    const log = new WalLog({
      dir,
      walDir,
      snapDir,
      logger,
      disk,
      limits,
      position,
      marker,
      segments,
      active,
      unlock,
    });
    return { recovered, log };
  } catch (err) {
    await unlock();
    throw err;
  }
}

interface WalLogInit {
  dir: string;
  walDir: string;
  snapDir: string;
  logger: Logger;
  disk: Disk;
  limits: {
    segmentBytesMax: number;
    groupCommitBytesMax: number;
    groupCommitSavesMax: number;
    queueBytesMax: number;
    snapshotsRetained: number;
    snapshotBytesMax: number;
  };
  position: LogPosition;
  marker: SnapshotMarker;
  segments: SegmentMeta[];
  active: ActiveSegment;
  unlock: () => Promise<void>;
}

class WalLog implements DurableLog {
  private readonly init: WalLogInit;
  private readonly logger: Logger;
  private readonly disk: Disk;
  /** State after every accepted save (validated against, updated at call time). */
  private accepted: LogPosition;
  /** State after every durable save. */
  private written: LogPosition;
  /** Newest durable snapshot position (recorded in each new segment's preamble). */
  private writtenMarker: SnapshotMarker;
  private readonly segments: SegmentMeta[];
  private active: ActiveSegment;
  private readonly queue: QueueItem[] = [];
  private queuedBytes = 0;
  private flushing = false;
  private flushDone: Promise<void> = Promise.resolve();
  private failure: StorageFailedError | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Serialises snapshot-file retention and segment deletion (background file removal). */
  private housekeeping: Promise<unknown> = Promise.resolve();
  private readonly counters = {
    saves: 0,
    groupCommits: 0,
    entriesWritten: 0,
    segmentsCreated: 0,
    segmentsDeleted: 0,
    snapshotsWritten: 0,
  };

  constructor(init: WalLogInit) {
    this.init = init;
    this.logger = init.logger;
    this.disk = init.disk;
    this.accepted = init.position;
    this.written = init.position;
    this.writtenMarker = init.marker;
    this.segments = init.segments;
    this.active = init.active;
  }

  private usable(): Error | undefined {
    if (this.failure) return this.failure;
    if (this.closed) return failedPrecondition("durable log is closed");
    return undefined;
  }

  async save(req: SaveRequest): Promise<void> {
    const unusable = this.usable();
    if (unusable) throw unusable;
    if (typeof req !== "object" || req === null)
      throw invalidArgument("request", "must be an object");
    const after = checkSave(req, this.accepted, this.init.limits.snapshotBytesMax);
    const w = new RecordWriter();
    let marker: SnapshotMarker | undefined;
    if (req.snapshot) {
      marker = {
        index: req.snapshot.metadata.index,
        term: req.snapshot.metadata.term,
        resetsLog: true,
      };
      w.snapshot(marker);
    }
    const entries = req.entries ?? [];
    for (const e of entries) w.entry(e);
    if (req.hardState) w.hardState(after.hardState);
    const snapshot = req.snapshot;
    await this.enqueue(w.finish(), after, {
      entries: entries.length,
      minEntryIndex: entries[0]?.index ?? 0,
      maxEntryIndex: entries.at(-1)?.index ?? 0,
      marker,
      prepare: snapshot ? () => this.writeSnapshotFile(snapshot) : undefined,
    });
    if (snapshot) await this.retainSnapshots();
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    const unusable = this.usable();
    if (unusable) throw unusable;
    const after = checkLocalSnapshot(snapshot, this.accepted, this.init.limits.snapshotBytesMax);
    const marker: SnapshotMarker = {
      index: after.snapshotIndex,
      term: after.snapshotTerm,
      resetsLog: false,
    };
    const w = new RecordWriter();
    w.snapshot(marker);
    await this.enqueue(w.finish(), after, {
      entries: 0,
      minEntryIndex: 0,
      maxEntryIndex: 0,
      marker,
      prepare: () => this.writeSnapshotFile(snapshot),
    });
    await this.retainSnapshots();
  }

  /**
   * Queues encoded records. Everything up to the push runs synchronously in
   * the caller's turn, so queue order is call order.
   */
  private enqueue(
    bytes: Uint8Array,
    after: LogPosition,
    extra: {
      entries: number;
      minEntryIndex: number;
      maxEntryIndex: number;
      marker: SnapshotMarker | undefined;
      prepare: (() => Promise<void>) | undefined;
    },
  ): Promise<void> {
    const { queueBytesMax } = this.init.limits;
    if (this.queuedBytes > 0 && this.queuedBytes + bytes.length > queueBytesMax) {
      return Promise.reject(
        resourceExhausted(
          `durable log queue holds ${this.queuedBytes} bytes and this save adds ${bytes.length} (queueBytesMax ${queueBytesMax}): saves are arriving faster than the disk syncs them`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const item: QueueItem = {
        bytes,
        entries: extra.entries,
        minEntryIndex: extra.minEntryIndex,
        maxEntryIndex: extra.maxEntryIndex,
        after,
        marker: extra.marker,
        prepared: extra.prepare === undefined,
        resolve,
        reject,
      };
      if (extra.prepare) {
        item.prepare = extra.prepare().then(
          () => {
            item.prepared = true;
          },
          (err: unknown) => {
            item.prepareError = err;
            item.prepared = true;
          },
        );
      }
      this.accepted = after;
      this.queue.push(item);
      this.queuedBytes += bytes.length;
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.flushDone = this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failure) {
        const head = this.queue[0]!;
        if (!head.prepared) {
          await head.prepare;
          continue;
        }
        const batch = this.takeBatch();
        const failed = batch.find((it) => it.prepareError !== undefined);
        if (failed) {
          this.fail(
            `writing snapshot file failed: ${errorMessage(failed.prepareError)}`,
            failed.prepareError,
            batch,
          );
          break;
        }
        try {
          await this.writeBatch(batch);
        } catch (err) {
          this.fail(`appending to ${this.active.path} failed: ${errorMessage(err)}`, err, batch);
          break;
        }
        for (const it of batch) it.resolve();
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Takes the longest ready prefix of the queue within the group-commit bounds (at least one item). */
  private takeBatch(): QueueItem[] {
    const { groupCommitBytesMax, groupCommitSavesMax } = this.init.limits;
    const batch: QueueItem[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < groupCommitSavesMax) {
      const it = this.queue[0]!;
      if (!it.prepared) break;
      if (batch.length > 0 && bytes + it.bytes.length > groupCommitBytesMax) break;
      this.queue.shift();
      this.queuedBytes -= it.bytes.length;
      bytes += it.bytes.length;
      batch.push(it);
    }
    return batch;
  }

  private async writeBatch(batch: QueueItem[]): Promise<void> {
    let bytes = 0;
    for (const it of batch) bytes += it.bytes.length;
    if (bytes > 0) {
      const a = this.active;
      if (a.size > a.preambleEnd && a.size + bytes > this.init.limits.segmentBytesMax)
        await this.roll();
      const buf = new Uint8Array(bytes);
      let at = 0;
      for (const it of batch) {
        buf.set(it.bytes, at);
        at += it.bytes.length;
      }
      const active = this.active;
      await this.disk.appendWal(active.fh, buf, active.size);
      active.size += bytes;
      await this.disk.syncWal(active.fh, active.path);
      this.counters.groupCommits++;
    }
    const meta = this.segments.at(-1)!;
    for (const it of batch) {
      if (it.entries > 0) {
        meta.minEntryIndex =
          meta.minEntryIndex === 0
            ? it.minEntryIndex
            : Math.min(meta.minEntryIndex, it.minEntryIndex);
        meta.maxEntryIndex = Math.max(meta.maxEntryIndex, it.maxEntryIndex);
        this.counters.entriesWritten += it.entries;
      }
      if (it.marker) {
        this.writtenMarker = { index: it.marker.index, term: it.marker.term, resetsLog: false };
        this.counters.snapshotsWritten++;
      }
      this.written = it.after;
      this.counters.saves++;
    }
  }

  /**
   * Starts the next segment. The current one is already synced (every batch
   * is), and the new one is complete with its preamble before it gets its
   * final name, so a crash leaves either no new segment or a valid one.
   */
  private async roll(): Promise<void> {
    const prev = this.active;
    const seq = prev.seq + 1;
    const path = join(this.init.walDir, segmentFileName(seq));
    const content = encodePreamble(seq, this.writtenMarker, this.written.hardState);
    const fh = await this.disk.createFileAtomic(path, content, true);
    this.active = { seq, path, fh, size: content.length, preambleEnd: content.length };
    this.segments.push({ seq, path, minEntryIndex: 0, maxEntryIndex: 0 });
    this.counters.segmentsCreated++;
    await prev.fh.close();
    this.logger.debug("WAL segment rolled", { file: path, previousBytes: prev.size });
  }

  private fail(message: string, cause: unknown, batch: QueueItem[]): void {
    this.failure = new StorageFailedError(message, { cause });
    this.logger.error("durable log failed", { error: this.failure });
    const pending = [...batch, ...this.queue.splice(0)];
    this.queuedBytes = 0;
    for (const it of pending) it.reject(this.failure);
  }

  private async writeSnapshotFile(s: Snapshot): Promise<void> {
    const path = join(this.init.snapDir, snapshotFileName(s.metadata.term, s.metadata.index));
    await this.disk.createFileAtomic(path, encodeSnapshotFile(s));
  }

  /**
   * Deletes snapshot files beyond the newest `snapshotsRetained` at or below
   * the durable snapshot (newer files may belong to saves still in flight).
   * A failure here loses nothing, so it is logged, not thrown.
   */
  private retainSnapshots(): Promise<void> {
    const run = async () => {
      const keepThrough = this.writtenMarker.index;
      const files = (await readdir(this.init.snapDir))
        .map((name) => ({ name, id: parseSnapshotFileName(name) }))
        .filter((f) => f.id !== undefined && f.id.index <= keepThrough)
        .sort((x, y) => y.id!.index - x.id!.index || y.id!.term - x.id!.term);
      const doomed = files.slice(this.init.limits.snapshotsRetained);
      for (const f of doomed) await unlink(join(this.init.snapDir, f.name));
      if (doomed.length > 0) await this.disk.syncDir(this.init.snapDir);
    };
    const p = this.housekeeping.then(run).catch((err: unknown) => {
      this.logger.warn("deleting old snapshot files failed", { error: err });
    });
    this.housekeeping = p;
    return p;
  }

  compact(index: number): Promise<CompactResult> {
    const unusable = this.usable();
    if (unusable) return Promise.reject(unusable);
    if (!Number.isSafeInteger(index) || index < 0) {
      return Promise.reject(invalidArgument("index", `must be an integer >= 0, got ${index}`));
    }
    const run = async (): Promise<CompactResult> => {
      const through = Math.min(index, this.writtenMarker.index);
      const doomed: SegmentMeta[] = [];
      // A prefix only, never the active segment: what remains stays gap-free.
      while (this.segments.length > 1 && this.segments[0]!.maxEntryIndex <= through) {
        doomed.push(this.segments.shift()!);
      }
      let deleted = 0;
      try {
        // Oldest first, one at a time: a crash part-way leaves a contiguous suffix.
        for (const seg of doomed) {
          await unlink(seg.path);
          deleted++;
        }
      } finally {
        this.segments.unshift(...doomed.slice(deleted));
        if (deleted > 0) await this.disk.syncDir(this.init.walDir);
        this.counters.segmentsDeleted += deleted;
      }
      if (deleted > 0) {
        this.logger.info("WAL compacted", {
          through,
          segmentsDeleted: deleted,
          firstSegment: this.segments[0]!.seq,
        });
      }
      return { segmentsDeleted: deleted, compactedThrough: through };
    };
    const p = this.housekeeping.then(run);
    this.housekeeping = p.catch(() => {});
    return p;
  }

  stats(): DurableLogStats {
    return {
      ...this.disk.stats,
      ...this.counters,
      queuedSaves: this.queue.length,
      queuedBytes: this.queuedBytes,
      firstSegment: this.segments[0]!.seq,
      lastSegment: this.active.seq,
      lastIndex: this.written.lastIndex,
      snapshotIndex: this.writtenMarker.index,
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      await this.flushDone;
      await this.housekeeping.catch(() => {});
      await this.active.fh.close().catch(() => {});
      await this.init.unlock();
      this.logger.info("durable log closed", { lastIndex: this.written.lastIndex });
    })();
    return this.closing;
  }
}
