/**
 * The core's read-only view of the durable log, and an in-memory
 * implementation the driver keeps in step with the WAL.
 *
 * Ownership: the core only reads a LogStorage. The driver writes to it (via
 * MemoryStorage's methods) *after* the same data is durable in the WAL and
 * *before* calling `advance` for the Ready that carried it. Entries the core
 * has produced but the driver has not yet persisted live in the core's own
 * unstable buffer, never here.
 */
import {
  type ConfState,
  type Entry,
  emptyHardState,
  emptySnapshot,
  type HardState,
  type RecoveredState,
  type Snapshot,
} from "./log-types.ts";

/** Accounting size of an entry for batching limits: payload plus a fixed header allowance. */
export const entryOverheadBytes = 16;

export function entrySizeBytes(e: Entry): number {
  return e.data.byteLength + entryOverheadBytes;
}

/** The longest prefix of `entries` within `maxBytes`, but always at least one entry. */
export function limitEntriesBytes(entries: readonly Entry[], maxBytes: number): readonly Entry[] {
  if (entries.length === 0) return entries;
  let size = entrySizeBytes(entries[0]!);
  let n = 1;
  while (n < entries.length) {
    size += entrySizeBytes(entries[n]!);
    if (size > maxBytes) break;
    n++;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

export interface InitialState {
  readonly hardState: HardState;
  /** Membership as of the storage's snapshot (conf changes after it are re-applied by the driver). */
  readonly confState: ConfState;
}

/**
 * Contract (all indexes inclusive unless noted):
 * - entries exist for firstIndex() <= i <= lastIndex(); firstIndex() - 1 is the
 *   compaction point, whose term is still known, and snapshot().metadata.index
 *   >= firstIndex() - 1 (a compacted prefix is always covered by a snapshot).
 * - An empty log has firstIndex() = lastIndex() + 1.
 */
export interface LogStorage {
  initialState(): InitialState;
  /**
   * Entries [lo, hi), stopping early once `maxBytes` would be exceeded but
   * always returning at least one entry when lo < hi. Requires
   * firstIndex() <= lo <= hi <= lastIndex() + 1 (throws RangeError otherwise).
   */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** Term of entry i for firstIndex() - 1 <= i <= lastIndex(); undefined outside that range. */
  term(i: number): number | undefined;
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot (the empty snapshot at index 0 if none was taken). */
  snapshot(): Snapshot;
}

export interface MemoryStorage extends LogStorage {
  /**
   * Appends persisted entries (contiguous, ascending). An entry at an index
   * already present replaces it and everything after it (conflict truncation);
   * entries at or below the compaction point are ignored. Requires
   * entries[0].index <= lastIndex() + 1.
   */
  append(entries: readonly Entry[]): void;
  /** Replaces the whole log with a persisted snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void;
  /**
   * Records a snapshot the local FSM took at `index` (<= lastIndex(), newer than
   * the current snapshot) with the membership as of `index`.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot;
  /**
   * Discards entries up to and including `index`. Requires
   * firstIndex() - 1 <= index <= snapshot().metadata.index, so the leader can
   * still catch a follower up from the snapshot.
   */
  compact(index: number): void;
  setHardState(hardState: HardState): void;
}

/**
 * An in-memory LogStorage. Start it from what the WAL recovered (or
 * `bootstrapState(voters)` for a founding member, `emptyRecoveredState` for a
 * joining one).
 */
export function createMemoryStorage(recovered?: RecoveredState): MemoryStorage {
  let hardState: HardState = recovered?.hardState ?? emptyHardState;
  let snap: Snapshot = recovered?.snapshot ?? emptySnapshot;
  // The compaction point: entries[k] has index baseIndex + 1 + k.
  let baseIndex = snap.metadata.index;
  let baseTerm = snap.metadata.term;
  let ents: Entry[] = [];

  const lastIndex = () => baseIndex + ents.length;

  const storage: MemoryStorage = {
    initialState: () => ({ hardState, confState: snap.metadata.conf }),
    firstIndex: () => baseIndex + 1,
    lastIndex,
    snapshot: () => snap,
    term(i) {
      if (i === baseIndex) return baseTerm;
      if (i < baseIndex || i > lastIndex()) return undefined;
      return ents[i - baseIndex - 1]!.term;
    },
    entries(lo, hi, maxBytes) {
      if (!(lo >= baseIndex + 1 && lo <= hi && hi <= lastIndex() + 1)) {
        throw new RangeError(
          `entries [${lo}, ${hi}) outside the stored range [${baseIndex + 1}, ${lastIndex() + 1})`,
        );
      }
      return limitEntriesBytes(ents.slice(lo - baseIndex - 1, hi - baseIndex - 1), maxBytes);
    },
    append(entries) {
      if (entries.length === 0) return;
      checkContiguous(entries);
      const first = entries[0]!.index;
      if (first > lastIndex() + 1) {
        throw new RangeError(`append at ${first} leaves a gap after last index ${lastIndex()}`);
      }
      const fresh = first <= baseIndex ? entries.slice(baseIndex + 1 - first) : entries;
      if (fresh.length === 0) return;
      ents = ents.slice(0, fresh[0]!.index - baseIndex - 1).concat(fresh);
    },
    applySnapshot(s) {
      if (s.metadata.index <= snap.metadata.index) {
        throw new RangeError(
          `snapshot at ${s.metadata.index} is not newer than the stored one at ${snap.metadata.index}`,
        );
      }
      snap = s;
      baseIndex = s.metadata.index;
      baseTerm = s.metadata.term;
      ents = [];
    },
    createSnapshot(index, conf, data) {
      if (index <= snap.metadata.index || index > lastIndex()) {
        throw new RangeError(
          `snapshot index ${index} must be in (${snap.metadata.index}, ${lastIndex()}]`,
        );
      }
      snap = { metadata: { index, term: storage.term(index)!, conf }, data };
      return snap;
    },
    compact(index) {
      if (index < baseIndex || index > snap.metadata.index) {
        throw new RangeError(
          `compact to ${index} must be in [${baseIndex}, ${snap.metadata.index}] (snapshot first)`,
        );
      }
      baseTerm = storage.term(index)!;
      ents = ents.slice(index - baseIndex);
      baseIndex = index;
    },
    setHardState(hs) {
      hardState = hs;
    },
  };
  if (recovered) storage.append(recovered.entries);
  return storage;
}

function checkContiguous(entries: readonly Entry[]): void {
  for (let k = 1; k < entries.length; k++) {
    if (entries[k]!.index !== entries[k - 1]!.index + 1) {
      throw new RangeError(
        `entries must be contiguous: ${entries[k - 1]!.index} is followed by ${entries[k]!.index}`,
      );
    }
  }
}
