/**
 * Applying an assignment plan to a stream's assignment history
 * (StreamAssignments rows): the timeline part of a reassignment.
 *
 * Contract: a rendition whose holders changed gets a new open row starting
 * at the plan's firstMsn (currentMsn + 1, the next segment boundary); its
 * previous open row is closed at firstMsn − 1, so the old holders serve up
 * to the boundary and the new ones from it, on the same MSN timeline (no
 * re-numbering: a promoted replica already holds identical segments). Rows
 * starting at or after firstMsn (a switch planned but not reached yet) are
 * superseded. Unchanged renditions keep their rows as they are; renditions
 * no longer in the plan (removed from the ladder) lose theirs. At most
 * `rowsPerRenditionMax` rows are kept per rendition (oldest dropped first).
 */
import type { StreamAssignmentPlan } from "./assignment-planner.ts";
import { type AssignmentRow, byId, requireInt, sameIds } from "./types.ts";

/** StreamAssignments validation allows at most 16 rows per rendition. */
export const assignmentRowsPerRenditionMax = 16;

export function applyAssignmentPlan(
  current: readonly AssignmentRow[],
  plan: StreamAssignmentPlan,
  rowsPerRenditionMax = assignmentRowsPerRenditionMax,
): AssignmentRow[] {
  requireInt("rowsPerRenditionMax", rowsPerRenditionMax, 1, assignmentRowsPerRenditionMax);
  const out: AssignmentRow[] = [];
  for (const r of plan.renditions) {
    let rows = current
      .filter((row) => row.renditionId === r.renditionId)
      .sort((a, b) => a.firstMsn - b.firstMsn);
    if (r.changed && r.holders && r.firstMsn !== undefined) {
      const first = r.firstMsn;
      rows = rows
        .filter((row) => row.firstMsn < first)
        .map((row) =>
          row.lastMsn === undefined || row.lastMsn >= first ? { ...row, lastMsn: first - 1 } : row,
        );
      rows.push({
        renditionId: r.renditionId,
        firstMsn: first,
        lastMsn: undefined,
        primary: r.holders.primary,
        replicas: [...r.holders.replicas].sort(byId),
      });
    }
    out.push(...rows.slice(Math.max(0, rows.length - rowsPerRenditionMax)));
  }
  return out;
}

/** Row lists equal as stored (same order; replicas compared as sets). */
export function sameAssignmentRows(a: readonly AssignmentRow[], b: readonly AssignmentRow[]) {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as AssignmentRow;
      return (
        x.renditionId === y.renditionId &&
        x.firstMsn === y.firstMsn &&
        x.lastMsn === y.lastMsn &&
        x.primary === y.primary &&
        sameIds(x.replicas, y.replicas)
      );
    })
  );
}

/** The open row of each rendition (the holders serving now and from when). */
export function openRows(rows: readonly AssignmentRow[]): Map<string, AssignmentRow> {
  const open = new Map<string, AssignmentRow>();
  for (const row of rows) {
    if (row.lastMsn !== undefined) continue;
    const prev = open.get(row.renditionId);
    if (!prev || row.firstMsn > prev.firstMsn) open.set(row.renditionId, row);
  }
  return open;
}
