/**
 * Checks a save against the log it extends, before anything is written. A
 * rejected save stores nothing. The rules are Raft's persistence invariants,
 * so a driver bug surfaces as a clear error instead of a log that recovers
 * into an unsafe state:
 * - terms never go back and a vote never changes within a term;
 * - the commit index never goes back and never passes the last log index;
 * - appended entries are contiguous, leave no gap, and never overwrite a
 *   committed entry or one covered by the snapshot.
 */
import { invalidArgument } from "../../../common/errors.ts";
import type { Entry, HardState, Snapshot } from "../raft/log-types.ts";
import { RECORD_PAYLOAD_BYTES_MAX } from "./wal-format.ts";

/** What the log holds once every accepted save is durable. */
export interface LogPosition {
  readonly hardState: HardState;
  /** Last log index: the last entry's, or the snapshot's if it is further. */
  readonly lastIndex: number;
  /** Term of the entry at lastIndex (or of the snapshot when lastIndex is the snapshot's). */
  readonly lastTerm: number;
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
}

/** Bytes an entry record may add besides its data (entry type, two varints). */
const ENTRY_OVERHEAD_BYTES_MAX = 1 + 8 + 8;

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function checkSnapshotShape(field: string, s: Snapshot, snapshotBytesMax: number): void {
  const m = s?.metadata;
  if (!m || !isCount(m.index) || m.index < 1) {
    throw invalidArgument(`${field}.metadata.index`, `must be an integer >= 1, got ${m?.index}`);
  }
  if (!isCount(m.term) || m.term < 1) {
    throw invalidArgument(`${field}.metadata.term`, `must be an integer >= 1, got ${m.term}`);
  }
  for (const list of ["voters", "learners", "votersOutgoing"] as const) {
    const ids = m.conf?.[list];
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== "string")) {
      throw invalidArgument(
        `${field}.metadata.conf.${list}`,
        "must be an array of node id strings",
      );
    }
  }
  if (!(s.data instanceof Uint8Array))
    throw invalidArgument(`${field}.data`, "must be a Uint8Array");
  if (s.data.length > snapshotBytesMax) {
    throw invalidArgument(
      `${field}.data`,
      `${s.data.length} bytes exceeds snapshotBytesMax ${snapshotBytesMax}`,
    );
  }
}

/**
 * Validates `save({hardState, entries, snapshot})` where `snapshot` is one
 * installed from the leader (it replaces the log up to and including its
 * index, and voids the entries after it). Returns the position after it.
 */
export function checkSave(
  req: { hardState?: HardState; entries?: readonly Entry[]; snapshot?: Snapshot },
  pos: LogPosition,
  snapshotBytesMax: number,
): LogPosition {
  let { lastIndex, lastTerm, snapshotIndex, snapshotTerm } = pos;
  const commit = pos.hardState.commit;

  if (req.snapshot !== undefined) {
    checkSnapshotShape("snapshot", req.snapshot, snapshotBytesMax);
    const { index, term } = req.snapshot.metadata;
    if (index <= snapshotIndex) {
      throw invalidArgument(
        "snapshot.metadata.index",
        `${index} is not after the current snapshot index ${snapshotIndex}`,
      );
    }
    if (index < commit) {
      throw invalidArgument(
        "snapshot.metadata.index",
        `${index} is below the commit index ${commit}: installing it would discard committed entries`,
      );
    }
    snapshotIndex = index;
    snapshotTerm = term;
    lastIndex = index;
    lastTerm = term;
  }

  const entries = req.entries ?? [];
  if (!Array.isArray(entries)) throw invalidArgument("entries", "must be an array");
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const f = `entries[${i}]`;
    if (!isCount(e?.index) || e.index < 1)
      throw invalidArgument(`${f}.index`, `must be an integer >= 1, got ${e?.index}`);
    if (!isCount(e.term) || e.term < 1)
      throw invalidArgument(`${f}.term`, `must be an integer >= 1, got ${e.term}`);
    if (e.type !== "normal" && e.type !== "conf-change") {
      throw invalidArgument(
        `${f}.type`,
        `must be "normal" or "conf-change", got ${JSON.stringify(e.type)}`,
      );
    }
    if (!(e.data instanceof Uint8Array)) throw invalidArgument(`${f}.data`, "must be a Uint8Array");
    if (e.data.length + ENTRY_OVERHEAD_BYTES_MAX > RECORD_PAYLOAD_BYTES_MAX) {
      throw invalidArgument(
        `${f}.data`,
        `${e.data.length} bytes exceeds the record limit of ${RECORD_PAYLOAD_BYTES_MAX - ENTRY_OVERHEAD_BYTES_MAX}`,
      );
    }
    if (i === 0) {
      if (e.index <= snapshotIndex) {
        throw invalidArgument(
          `${f}.index`,
          `${e.index} is covered by the snapshot at index ${snapshotIndex}`,
        );
      }
      if (e.index <= commit) {
        throw invalidArgument(
          `${f}.index`,
          `${e.index} would overwrite a committed entry (commit index is ${commit})`,
        );
      }
      if (e.index > lastIndex + 1) {
        throw invalidArgument(
          `${f}.index`,
          `${e.index} leaves a gap after the last index ${lastIndex}`,
        );
      }
      if (e.index === lastIndex + 1 && e.term < lastTerm) {
        throw invalidArgument(
          `${f}.term`,
          `${e.term} is below the term ${lastTerm} of the entry before it`,
        );
      }
    } else {
      const prev = entries[i - 1]!;
      if (e.index !== prev.index + 1) {
        throw invalidArgument(
          `${f}.index`,
          `${e.index} does not follow ${prev.index}: entries must be contiguous`,
        );
      }
      if (e.term < prev.term) {
        throw invalidArgument(
          `${f}.term`,
          `${e.term} is below the term ${prev.term} of the entry before it`,
        );
      }
    }
  }
  if (entries.length > 0) {
    const last = entries[entries.length - 1]!;
    lastIndex = last.index;
    lastTerm = last.term;
  }

  let hardState = pos.hardState;
  if (req.hardState !== undefined) {
    const hs = req.hardState;
    if (!isCount(hs?.term))
      throw invalidArgument("hardState.term", `must be an integer >= 0, got ${hs?.term}`);
    if (!isCount(hs.commit))
      throw invalidArgument("hardState.commit", `must be an integer >= 0, got ${hs.commit}`);
    if (typeof hs.vote !== "string")
      throw invalidArgument("hardState.vote", 'must be a string ("" for none)');
    const prev = pos.hardState;
    if (hs.term < prev.term) {
      throw invalidArgument(
        "hardState.term",
        `${hs.term} is below the persisted term ${prev.term}; terms never go back`,
      );
    }
    if (hs.term === prev.term && prev.vote !== "" && hs.vote !== prev.vote) {
      throw invalidArgument(
        "hardState.vote",
        `cannot change the vote from "${prev.vote}" to "${hs.vote}" within term ${hs.term}`,
      );
    }
    if (hs.commit < prev.commit) {
      throw invalidArgument(
        "hardState.commit",
        `${hs.commit} is below the persisted commit ${prev.commit}`,
      );
    }
    if (hs.commit > lastIndex) {
      throw invalidArgument(
        "hardState.commit",
        `${hs.commit} is beyond the last log index ${lastIndex}`,
      );
    }
    hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  return { hardState, lastIndex, lastTerm, snapshotIndex, snapshotTerm };
}

/**
 * Validates a local compaction snapshot: it records FSM state the node has
 * applied, so it can only cover committed entries, and the log after it stays.
 */
export function checkLocalSnapshot(
  s: Snapshot,
  pos: LogPosition,
  snapshotBytesMax: number,
): LogPosition {
  checkSnapshotShape("snapshot", s, snapshotBytesMax);
  const { index, term } = s.metadata;
  if (index <= pos.snapshotIndex) {
    throw invalidArgument(
      "snapshot.metadata.index",
      `${index} is not after the current snapshot index ${pos.snapshotIndex}`,
    );
  }
  if (index > pos.hardState.commit) {
    throw invalidArgument(
      "snapshot.metadata.index",
      `${index} is beyond the commit index ${pos.hardState.commit}: a snapshot may only cover committed entries`,
    );
  }
  return { ...pos, snapshotIndex: index, snapshotTerm: term };
}
