/**
 * The core's view of its log: durable entries (read through LogStorage) plus
 * an "unstable" tail of entries, or a snapshot, that the core has accepted but
 * the driver has not yet persisted. The driver receives the unstable part in a
 * Ready, persists it, copies it into its MemoryStorage and then calls advance,
 * which drops it here (stableTo / stableSnapTo).
 */

import { assert } from "../../../common/errors.ts";
import type { Entry, Snapshot } from "./log-types.ts";
import { type LogStorage, limitEntriesBytes } from "./storage.ts";

export interface IndexTerm {
  readonly index: number;
  readonly term: number;
}

export class RaftLog {
  /** Highest index known committed. Never decreases. */
  committed: number;
  /** Highest index the driver has applied (advanced past). applied <= committed. */
  applied: number;
  private unstableSnapshot: Snapshot | undefined;
  /** Not-yet-persisted entries; unstableEntries[k] has index unstableOffset + k. */
  private unstableEntries: Entry[] = [];
  private unstableOffset: number;

  constructor(
    private readonly storage: LogStorage,
    committed: number,
    applied: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    assert(
      committed >= first - 1 && committed <= last,
      `hard state commit ${committed} outside the stored log [${first - 1}, ${last}]`,
    );
    assert(
      applied >= first - 1 && applied <= committed,
      `applied ${applied} must be in [${first - 1}, commit ${committed}]`,
    );
    this.committed = committed;
    this.applied = applied;
    this.unstableOffset = last + 1;
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) {
      return this.unstableOffset + this.unstableEntries.length - 1;
    }
    if (this.unstableSnapshot) return this.unstableSnapshot.metadata.index;
    return this.storage.lastIndex();
  }

  /** Term of entry i, or undefined if i is compacted or beyond the last index. */
  term(i: number): number | undefined {
    const snap = this.unstableSnapshot;
    if (snap && i === snap.metadata.index) return snap.metadata.term;
    if (this.unstableEntries.length > 0 && i >= this.unstableOffset) {
      return this.unstableEntries[i - this.unstableOffset]?.term;
    }
    if (i > this.lastIndex()) return undefined;
    if (snap) return undefined;
    return this.storage.term(i);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, `term of the last index ${this.lastIndex()} is unknown`);
    return t;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up-to-date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Highest index that is durable on this node (the driver has persisted and advanced it). */
  persistedIndex(): number {
    if (this.unstableSnapshot) return 0;
    return this.unstableEntries.length > 0 ? this.unstableOffset - 1 : this.lastIndex();
  }

  /**
   * Entries [lo, hi) within maxBytes (at least one when lo < hi). Requires
   * firstIndex() <= lo <= hi <= lastIndex() + 1.
   */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    assert(
      lo >= this.firstIndex() && lo <= hi && hi <= this.lastIndex() + 1,
      `slice [${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`,
    );
    if (lo === hi) return [];
    let stored: readonly Entry[] = [];
    if (lo < this.unstableOffset) {
      const storedHi = Math.min(hi, this.unstableOffset);
      stored = this.storage.entries(lo, storedHi, maxBytes);
      if (stored.length < storedHi - lo || hi <= this.unstableOffset) return stored;
    }
    const from = Math.max(lo, this.unstableOffset) - this.unstableOffset;
    const fresh = this.unstableEntries.slice(from, hi - this.unstableOffset);
    return limitEntriesBytes(stored.length > 0 ? stored.concat(fresh) : fresh, maxBytes);
  }

  /**
   * Follower side of AppendEntries: if our log matches at (prevIndex, prevTerm),
   * adopts `entries` (truncating a conflicting suffix), advances the commit
   * index to min(leaderCommit, last new index) and returns that last new index.
   * Returns undefined when the logs do not match at prevIndex.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(
        conflict > this.committed,
        `entry ${conflict} conflicts with committed entry (commit ${this.committed})`,
      );
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Appends (or overwrites from entries[0].index on) entries that are not committed. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index;
    assert(
      after - 1 >= this.committed,
      `append at ${after} would overwrite committed entries (commit ${this.committed})`,
    );
    assert(
      after <= this.lastIndex() + 1,
      `append at ${after} leaves a gap after ${this.lastIndex()}`,
    );
    const end = this.unstableOffset + this.unstableEntries.length;
    if (after === end) {
      for (const e of entries) this.unstableEntries.push(e);
    } else if (after <= this.unstableOffset) {
      // Replaces durable entries too; the driver truncates them when it persists these.
      this.unstableOffset = after;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries
        .slice(0, after - this.unstableOffset)
        .concat(entries);
    }
    return this.lastIndex();
  }

  /** First index in `entries` whose term differs from ours (or that we lack); 0 if none. */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The last index <= `index` whose term is <= `term`: no entry between it and
   * `index` can match a log whose entry at `index` has term `term`. Stops at the
   * compaction point (returning its index with term 0 when the term is unknown).
   */
  findConflictByTerm(index: number, term: number): IndexTerm {
    for (let i = Math.min(index, this.lastIndex()); i > 0; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(
      index <= this.lastIndex(),
      `commit ${index} beyond last index ${this.lastIndex()}: the log is missing entries`,
    );
    this.committed = index;
  }

  appliedTo(index: number): void {
    assert(
      index <= this.committed && index >= this.applied,
      `applied ${index} must be in [${this.applied}, commit ${this.committed}]`,
    );
    this.applied = index;
  }

  /** Entries committed but not yet handed to the driver for applying, within maxBytes. */
  nextCommittedEntries(maxBytes: number): readonly Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed < lo) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  hasNextCommittedEntries(): boolean {
    return this.committed >= Math.max(this.applied + 1, this.firstIndex());
  }

  unstable(): { readonly entries: readonly Entry[]; readonly snapshot: Snapshot | undefined } {
    return { entries: this.unstableEntries, snapshot: this.unstableSnapshot };
  }

  /** Replaces the log with a snapshot received from the leader (not yet persisted). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstableSnapshot = snapshot;
    this.unstableEntries = [];
    this.unstableOffset = snapshot.metadata.index + 1;
  }

  /** The driver persisted entries up to (index, term): drop them from the unstable tail. */
  stableTo(index: number, term: number): void {
    const k = index - this.unstableOffset;
    if (k < 0 || k >= this.unstableEntries.length) return;
    // A newer leader may have overwritten the entry since the Ready was taken.
    if (this.unstableEntries[k]!.term !== term) return;
    this.unstableEntries = this.unstableEntries.slice(k + 1);
    this.unstableOffset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.unstableSnapshot?.metadata.index === index) this.unstableSnapshot = undefined;
  }

  /** The driver's latest snapshot, for a follower that needs compacted entries. */
  storageSnapshot(): Snapshot {
    return this.storage.snapshot();
  }

  hasPendingSnapshot(): boolean {
    return this.unstableSnapshot !== undefined;
  }
}
