/**
 * The durable vocabulary shared by the pure Raft core (coordinator/src/raft)
 * and the on-disk storage (coordinator/src/storage). Terms and indexes are
 * plain numbers: 2^53 entries is far beyond any coordinator's lifetime.
 */

/** A node id, e.g. "c1". Stable for the life of a member; never reused. */
export type NodeId = string;

export type EntryType = "normal" | "conf-change";

export interface Entry {
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** Position in the log, starting at 1. */
  readonly index: number;
  readonly type: EntryType;
  /**
   * Opaque payload: for "normal", an encoded FSM command (empty for the no-op a
   * new leader appends); for "conf-change", an encoded ConfChange.
   */
  readonly data: Uint8Array;
}

/** State that must be on stable storage before a node answers any message. */
export interface HardState {
  readonly term: number;
  /** Candidate voted for in `term`, or "" for none. */
  readonly vote: NodeId;
  /** Highest index known committed (persisting it avoids re-applying on restart). */
  readonly commit: number;
}

/** Cluster membership. `votersOutgoing` is non-empty only inside a joint configuration. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
}

export interface SnapshotMetadata {
  /** Last log index the snapshot covers (inclusive). */
  readonly index: number;
  readonly term: number;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The FSM's serialized state at `metadata.index`. */
  readonly data: Uint8Array;
}

export const emptyHardState: HardState = { term: 0, vote: "", commit: 0 };
export const emptyConfState: ConfState = { voters: [], learners: [], votersOutgoing: [] };
export const emptySnapshot: Snapshot = {
  metadata: { index: 0, term: 0, conf: emptyConfState },
  data: new Uint8Array(0),
};

/**
 * What a durable log hands back at start: everything needed to rebuild the
 * core's in-memory view. `entries` are contiguous and start at
 * `snapshot.metadata.index + 1`.
 */
export interface RecoveredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot;
  readonly entries: readonly Entry[];
}

/** What a node that has never stored anything starts from (e.g. a member about to join). */
export const emptyRecoveredState: RecoveredState = {
  hardState: emptyHardState,
  snapshot: emptySnapshot,
  entries: [],
};
