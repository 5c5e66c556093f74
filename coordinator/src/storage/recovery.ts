/**
 * Reads a data directory and decides what state it holds, without changing
 * anything on disk. `openDurableLog` acts on the result (truncating a torn
 * tail, deleting crash leftovers); `inspectDurableLog` only reports it.
 *
 * The rules that keep acknowledged data safe:
 * - Only the end of the last segment may be damaged, and only if no valid
 *   record follows the damage: that is a write that was never fsynced, so
 *   never acknowledged (a torn tail). Anything else is corruption.
 * - Segments are numbered without gaps from the oldest retained one.
 * - The snapshot the WAL points at must verify; an older one is used only if
 *   the WAL still holds every entry after it.
 * - The recovered log must reach the persisted commit index.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Entry, HardState, RecoveredState, Snapshot } from "../raft/log-types.ts";
import { emptyHardState, emptySnapshot } from "../raft/log-types.ts";
import { TEMP_SUFFIX } from "./disk.ts";
import { StorageCorruptionError } from "./errors.ts";
import {
  decodeSnapshotFile,
  parseSnapshotFileName,
  SNAP_DIR,
  snapshotFileName,
} from "./snapshot-file.ts";
import {
  checkSegmentHeader,
  findValidRecordAfter,
  parseSegmentFileName,
  type SnapshotMarker,
  scanSegment,
  segmentFileName,
  WAL_DIR,
  type WalRecord,
} from "./wal-format.ts";

export interface SegmentAnalysis {
  readonly seq: number;
  readonly path: string;
  readonly fileBytes: number;
  /** End of the valid records; equals fileBytes unless the segment has a torn tail. */
  readonly validEnd: number;
  readonly entryRecords: number;
  readonly hardStateRecords: number;
  readonly snapshotRecords: number;
  /** Lowest and highest entry index recorded in the segment; 0 when it holds no entries. */
  readonly minEntryIndex: number;
  readonly maxEntryIndex: number;
}

export interface SnapshotFileInfo {
  readonly path: string;
  readonly term: number;
  readonly index: number;
  readonly fileBytes: number;
}

export interface DataDirAnalysis {
  readonly walDir: string;
  readonly snapDir: string;
  /** Segments read, oldest first (stops at the first corrupt one). */
  readonly segments: SegmentAnalysis[];
  /** `*.tmp` files: creations interrupted by a crash, safe to delete. */
  readonly tempFiles: string[];
  /** Files in wal/ or snap/ whose names are not part of the format (left alone). */
  readonly strayFiles: string[];
  readonly snapshotFiles: SnapshotFileInfo[];
  /** Damage at the end of the last segment that recovery truncates. */
  tornTail?: {
    readonly path: string;
    readonly offset: number;
    readonly fileBytes: number;
    readonly reason: string;
  };
  /** Set when the directory must not be used; everything below is then partial. */
  corruption?: StorageCorruptionError;
  recovered?: RecoveredState;
  /** The snapshot position recovery settled on (index 0: none). */
  snapshotMarker?: SnapshotMarker;
  /** Newer snapshots the WAL names that could not be used, and why. */
  readonly skippedSnapshots: { readonly path: string; readonly reason: string }[];
  /** Every snapshot position the retained WAL mentions. */
  readonly markers: SnapshotMarker[];
  /** True when there is nothing on disk yet (a new node). */
  fresh: boolean;
}

class Replay {
  hardState: HardState = emptyHardState;
  marker: SnapshotMarker = { index: 0, term: 0, resetsLog: false };
  readonly markers = new Map<string, SnapshotMarker>();
  /** The live log: contiguous entries, `run[0].index` first. */
  run: Entry[] = [];

  get lastIndex(): number {
    return this.run.length === 0 ? 0 : this.run[this.run.length - 1]!.index;
  }

  /** Applies one record; returns a problem if the record cannot follow what came before. */
  apply(rec: WalRecord): string | undefined {
    switch (rec.kind) {
      case "hard-state":
        this.hardState = rec.hardState;
        return undefined;
      case "snapshot":
        this.marker = rec.marker;
        this.markers.set(`${rec.marker.term}-${rec.marker.index}`, rec.marker);
        if (rec.marker.resetsLog) this.run = [];
        return undefined;
      case "entry": {
        const e = rec.entry;
        if (this.run.length === 0) {
          this.run.push(e);
          return undefined;
        }
        const first = this.run[0]!.index;
        const last = this.lastIndex;
        if (e.index > last + 1) {
          return `entry ${e.index} follows entries ending at ${last}: entries ${last + 1}..${e.index - 1} are missing`;
        }
        // A later record at index i replaces everything from i on (a leader overwrote an uncommitted suffix).
        if (e.index < first) this.run = [e];
        else {
          this.run.length = e.index - first;
          this.run.push(e);
        }
        return undefined;
      }
    }
  }
}

export async function analyzeDataDir(dir: string): Promise<DataDirAnalysis> {
  const walDir = join(dir, WAL_DIR);
  const snapDir = join(dir, SNAP_DIR);
  const a: DataDirAnalysis = {
    walDir,
    snapDir,
    segments: [],
    tempFiles: [],
    strayFiles: [],
    snapshotFiles: [],
    skippedSnapshots: [],
    markers: [],
    fresh: false,
  };

  const segmentSeqs: number[] = [];
  for (const name of await listDir(walDir)) {
    const seq = parseSegmentFileName(name);
    if (seq !== undefined) segmentSeqs.push(seq);
    else if (name.endsWith(TEMP_SUFFIX)) a.tempFiles.push(join(walDir, name));
    else a.strayFiles.push(join(walDir, name));
  }
  segmentSeqs.sort((x, y) => x - y);
  for (const name of await listDir(snapDir)) {
    const id = parseSnapshotFileName(name);
    const path = join(snapDir, name);
    if (id) a.snapshotFiles.push({ path, ...id, fileBytes: (await stat(path)).size });
    else if (name.endsWith(TEMP_SUFFIX)) a.tempFiles.push(path);
    else a.strayFiles.push(path);
  }
  a.snapshotFiles.sort((x, y) => x.index - y.index || x.term - y.term);

  if (segmentSeqs.length === 0) {
    if (a.snapshotFiles.length > 0) {
      a.corruption = new StorageCorruptionError(
        walDir,
        undefined,
        `${a.snapshotFiles.length} snapshot file(s) exist but the WAL has no segments, so term, vote and commit are lost`,
      );
      return a;
    }
    a.fresh = true;
    a.snapshotMarker = { index: 0, term: 0, resetsLog: false };
    a.recovered = { hardState: emptyHardState, snapshot: emptySnapshot, entries: [] };
    return a;
  }

  for (let i = 1; i < segmentSeqs.length; i++) {
    const prev = segmentSeqs[i - 1]!;
    if (segmentSeqs[i] !== prev + 1) {
      a.corruption = new StorageCorruptionError(
        join(walDir, segmentFileName(prev + 1)),
        undefined,
        `segment is missing: the WAL jumps from ${segmentFileName(prev)} to ${segmentFileName(segmentSeqs[i]!)}`,
      );
      return a;
    }
  }

  const replay = new Replay();
  for (let i = 0; i < segmentSeqs.length; i++) {
    const seq = segmentSeqs[i]!;
    const isLast = i === segmentSeqs.length - 1;
    const path = join(walDir, segmentFileName(seq));
    const buf = await readFile(path);
    const headerProblem = checkSegmentHeader(buf, seq);
    if (headerProblem) {
      a.corruption = new StorageCorruptionError(path, 0, `bad segment header: ${headerProblem}`);
      return a;
    }
    const scan = scanSegment(buf);
    if (scan.bad) {
      const { offset, reason } = scan.bad;
      if (!isLast) {
        a.corruption = new StorageCorruptionError(
          path,
          offset,
          `${reason}, and this is not the last segment`,
        );
        return a;
      }
      if (scan.bad.undecodable) {
        a.corruption = new StorageCorruptionError(path, offset, reason);
        return a;
      }
      const later = findValidRecordAfter(buf, offset + 1);
      if (later !== undefined) {
        a.corruption = new StorageCorruptionError(
          path,
          offset,
          `${reason}, followed by a valid record at byte offset ${later}, so this is not a torn tail`,
        );
        return a;
      }
      a.tornTail = { path, offset, fileBytes: buf.length, reason };
    }

    const [first, second] = scan.records;
    if (first?.kind !== "snapshot" || second?.kind !== "hard-state") {
      a.corruption = new StorageCorruptionError(
        path,
        first?.offset ?? scan.validEnd,
        "segment does not start with its state preamble (a snapshot record then a hard-state record)",
      );
      return a;
    }

    let entryRecords = 0;
    let hardStateRecords = 0;
    let snapshotRecords = 0;
    let minEntryIndex = 0;
    let maxEntryIndex = 0;
    for (const rec of scan.records) {
      const problem = replay.apply(rec);
      if (problem) {
        a.corruption = new StorageCorruptionError(path, rec.offset, problem);
        return a;
      }
      if (rec.kind === "entry") {
        entryRecords++;
        const idx = rec.entry.index;
        minEntryIndex = minEntryIndex === 0 ? idx : Math.min(minEntryIndex, idx);
        maxEntryIndex = Math.max(maxEntryIndex, idx);
      } else if (rec.kind === "hard-state") hardStateRecords++;
      else snapshotRecords++;
    }
    a.segments.push({
      seq,
      path,
      fileBytes: buf.length,
      validEnd: scan.validEnd,
      entryRecords,
      hardStateRecords,
      snapshotRecords,
      minEntryIndex,
      maxEntryIndex,
    });
  }

  a.markers.push(...replay.markers.values());
  await chooseSnapshot(a, replay);
  return a;
}

/**
 * Picks the newest snapshot the WAL names whose file verifies and after which
 * the WAL holds every entry; sets `recovered` or `corruption`.
 */
async function chooseSnapshot(a: DataDirAnalysis, replay: Replay): Promise<void> {
  const current = replay.marker;
  const candidates = [current, ...a.markers.filter((m) => m.index < current.index)].sort(
    (x, y) => y.index - x.index,
  );
  if (current.index > 0 && !candidates.some((m) => m.index === 0)) {
    candidates.push({ index: 0, term: 0, resetsLog: false });
  }
  const run = replay.run;
  const lastSegment = a.segments[a.segments.length - 1]!;
  let firstProblem: { path: string; offset: number | undefined; reason: string } | undefined;

  for (const m of candidates) {
    let snapshot: Snapshot;
    let path: string;
    if (m.index === 0) {
      snapshot = emptySnapshot;
      path = a.snapDir;
    } else {
      path = join(a.snapDir, snapshotFileName(m.term, m.index));
      const loaded = await loadSnapshot(path, m);
      if (!loaded.ok) {
        firstProblem ??= { path, offset: loaded.offset, reason: loaded.reason };
        a.skippedSnapshots.push({ path, reason: loaded.reason });
        continue;
      }
      snapshot = loaded.snapshot;
    }
    const firstRunIndex = run.length === 0 ? undefined : run[0]!.index;
    if (firstRunIndex !== undefined && firstRunIndex > m.index + 1) {
      const reason = `the WAL holds entries from ${firstRunIndex} only, so entries ${m.index + 1}..${firstRunIndex - 1} after this snapshot are gone`;
      if (m.index === 0) {
        firstProblem ??= { path: lastSegment.path, offset: undefined, reason };
      } else {
        firstProblem ??= { path, offset: undefined, reason };
        a.skippedSnapshots.push({ path, reason });
      }
      continue;
    }
    const entries = run.filter((e) => e.index > m.index);
    const lastIndex = Math.max(m.index, replay.lastIndex);
    if (replay.hardState.commit > lastIndex) {
      a.corruption = new StorageCorruptionError(
        lastSegment.path,
        lastSegment.validEnd,
        `the hard state says entries up to ${replay.hardState.commit} are committed but the log ends at ${lastIndex}: committed entries are missing`,
      );
      return;
    }
    a.snapshotMarker = m;
    a.recovered = { hardState: replay.hardState, snapshot, entries };
    return;
  }
  const p = firstProblem!;
  a.corruption = new StorageCorruptionError(
    p.path,
    p.offset,
    current.index === 0
      ? p.reason
      : `the snapshot the WAL points at (term ${current.term}, index ${current.index}) cannot be used (${p.reason}) and no older snapshot covers the log`,
  );
}

async function loadSnapshot(
  path: string,
  m: SnapshotMarker,
): Promise<
  { ok: true; snapshot: Snapshot } | { ok: false; offset: number | undefined; reason: string }
> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return { ok: false, offset: undefined, reason: "the snapshot file is missing" };
    }
    throw err;
  }
  return decodeSnapshotFile(buf, m);
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}
