/**
 * Read-only report on a data directory for operators (`understudy coordinator
 * --check-data`): what open would recover, what it would truncate, and what
 * stops it. Changes nothing on disk and takes no lock, so it can run next to
 * a live node (whose last segment may then show an in-progress write as a
 * torn tail).
 */
import { resolve } from "node:path";
import { analyzeDataDir, type SegmentAnalysis, type SnapshotFileInfo } from "./recovery.ts";

export interface DurableLogInspection {
  readonly dir: string;
  /** True when open would succeed (possibly after truncating a torn tail). */
  readonly ok: boolean;
  /** Nothing on disk yet. */
  readonly fresh: boolean;
  readonly segments: readonly SegmentAnalysis[];
  readonly snapshots: readonly SnapshotFileInfo[];
  readonly tornTail?: {
    readonly file: string;
    readonly offset: number;
    readonly bytesDropped: number;
    readonly reason: string;
  };
  readonly corruption?: {
    readonly file: string;
    readonly offset: number | undefined;
    readonly message: string;
  };
  readonly recovered?: {
    readonly term: number;
    readonly vote: string;
    readonly commit: number;
    readonly snapshotIndex: number;
    readonly snapshotTerm: number;
    /** First and last entry index after the snapshot (0 and snapshotIndex when there are none). */
    readonly firstIndex: number;
    readonly lastIndex: number;
    readonly entries: number;
  };
  readonly skippedSnapshots: readonly { readonly path: string; readonly reason: string }[];
  readonly tempFiles: readonly string[];
  readonly strayFiles: readonly string[];
}

export async function inspectDurableLog(dirArg: string): Promise<DurableLogInspection> {
  const dir = resolve(dirArg);
  const a = await analyzeDataDir(dir);
  const r = a.recovered;
  const m = a.snapshotMarker;
  return {
    dir,
    ok: a.corruption === undefined,
    fresh: a.fresh,
    segments: a.segments,
    snapshots: a.snapshotFiles,
    ...(a.tornTail && {
      tornTail: {
        file: a.tornTail.path,
        offset: a.tornTail.offset,
        bytesDropped: a.tornTail.fileBytes - a.tornTail.offset,
        reason: a.tornTail.reason,
      },
    }),
    ...(a.corruption && {
      corruption: {
        file: a.corruption.file,
        offset: a.corruption.offset,
        message: a.corruption.message,
      },
    }),
    ...(r &&
      m && {
        recovered: {
          term: r.hardState.term,
          vote: r.hardState.vote,
          commit: r.hardState.commit,
          snapshotIndex: m.index,
          snapshotTerm: m.term,
          firstIndex: r.entries[0]?.index ?? 0,
          lastIndex: r.entries.at(-1)?.index ?? m.index,
          entries: r.entries.length,
        },
      }),
    skippedSnapshots: a.skippedSnapshots,
    tempFiles: a.tempFiles,
    strayFiles: a.strayFiles,
  };
}

/** Plain-text rendering of an inspection, one fact per line. */
export function formatInspection(i: DurableLogInspection): string {
  const lines = [
    `data directory ${i.dir}: ${i.ok ? (i.fresh ? "empty (a new node)" : "OK") : "CORRUPT"}`,
  ];
  for (const s of i.segments) {
    const range =
      s.entryRecords > 0 ? `entries ${s.minEntryIndex}..${s.maxEntryIndex}` : "no entries";
    lines.push(
      `  segment ${s.path}: ${s.fileBytes} bytes, ${s.entryRecords} entry / ${s.hardStateRecords} hard-state / ${s.snapshotRecords} snapshot records, ${range}`,
    );
  }
  for (const s of i.snapshots)
    lines.push(`  snapshot ${s.path}: term ${s.term} index ${s.index}, ${s.fileBytes} bytes`);
  if (i.recovered) {
    const r = i.recovered;
    lines.push(
      `  recovers: term ${r.term} vote "${r.vote}" commit ${r.commit}; snapshot at ${r.snapshotIndex} (term ${r.snapshotTerm}); ${r.entries} entries ${r.entries > 0 ? `${r.firstIndex}..${r.lastIndex}` : ""}`.trimEnd(),
    );
  }
  if (i.tornTail) {
    lines.push(
      `  torn tail: ${i.tornTail.file} at byte ${i.tornTail.offset} (${i.tornTail.bytesDropped} bytes would be truncated): ${i.tornTail.reason}`,
    );
  }
  for (const s of i.skippedSnapshots) lines.push(`  unusable snapshot ${s.path}: ${s.reason}`);
  for (const f of i.tempFiles) lines.push(`  leftover temporary file ${f} (deleted at open)`);
  for (const f of i.strayFiles) lines.push(`  unexpected file ${f} (ignored)`);
  if (i.corruption) lines.push(`  ${i.corruption.message}`);
  return `${lines.join("\n")}\n`;
}
