/**
 * A simulated disk with the durability model of the real WAL: writes are
 * appended as records to a page cache and become durable only at sync().
 * A crash keeps the durable state plus a random prefix of the unsynced
 * records (the WAL's CRC check cuts a torn record and everything after it),
 * so unsynced writes may be lost, entirely or partly, but never reordered.
 */
import type { Rng } from "../../common/rng.ts";
import {
  type Entry,
  emptyHardState,
  emptySnapshot,
  type HardState,
  type RecoveredState,
  type Snapshot,
} from "../../coordinator/src/raft/index.ts";

type DiskRecord =
  | { readonly kind: "snapshot"; readonly snapshot: Snapshot }
  | { readonly kind: "entry"; readonly entry: Entry }
  | { readonly kind: "hard-state"; readonly hardState: HardState };

export class SimDisk {
  private hardState: HardState = emptyHardState;
  private snapshot: Snapshot = emptySnapshot;
  /** Durable entries, contiguous, all above `compactedTo`. */
  private entries: Entry[] = [];
  /** Entries at or below this index were compacted away. */
  private compactedTo = 0;
  private pending: DiskRecord[] = [];
  /** Records written in total and torn away by crashes (for the summary). */
  tornRecords = 0;

  constructor(initial?: RecoveredState) {
    if (initial) {
      this.hardState = initial.hardState;
      this.snapshot = initial.snapshot;
      this.compactedTo = initial.snapshot.metadata.index;
      this.entries = [...initial.entries];
    }
  }

  /** Buffers a Ready's writes, in the WAL's order: snapshot, entries, hard state. */
  write(snapshot: Snapshot | undefined, entries: readonly Entry[], hardState?: HardState): void {
    if (snapshot) this.pending.push({ kind: "snapshot", snapshot });
    for (const entry of entries) this.pending.push({ kind: "entry", entry });
    if (hardState) this.pending.push({ kind: "hard-state", hardState });
  }

  sync(): void {
    for (const r of this.pending) this.apply(r);
    this.pending = [];
  }

  /** Loses the page cache except a random prefix of it (the torn tail is cut). */
  crash(rng: Rng): void {
    const kept = this.pending.length === 0 ? 0 : rng.int(0, this.pending.length);
    for (let k = 0; k < kept; k++) this.apply(this.pending[k]!);
    this.tornRecords += this.pending.length - kept;
    this.pending = [];
  }

  /** A snapshot the node took of its own FSM: written and fsynced on its own. */
  saveSnapshot(snapshot: Snapshot): void {
    if (snapshot.metadata.index > this.snapshot.metadata.index) this.snapshot = snapshot;
  }

  /** Durably drops entries up to `index` (never beyond the durable snapshot). */
  compact(index: number): void {
    const to = Math.min(index, this.snapshot.metadata.index);
    if (to <= this.compactedTo) return;
    this.entries = this.entries.filter((e) => e.index > to);
    this.compactedTo = to;
  }

  /** What the WAL's recovery would hand back after a restart. */
  recover(): RecoveredState {
    const snapIndex = this.snapshot.metadata.index;
    const entries = this.entries.filter((e) => e.index > snapIndex);
    if (entries.length > 0 && entries[0]!.index !== snapIndex + 1) {
      throw new Error(
        `disk model broken: entries start at ${entries[0]!.index} after snapshot ${snapIndex}`,
      );
    }
    return { hardState: this.hardState, snapshot: this.snapshot, entries };
  }

  private apply(r: DiskRecord): void {
    switch (r.kind) {
      case "snapshot":
        this.snapshot = r.snapshot;
        this.entries = [];
        this.compactedTo = r.snapshot.metadata.index;
        return;
      case "entry": {
        const e = r.entry;
        if (e.index <= this.compactedTo) return;
        const keep = e.index - this.compactedTo - 1;
        if (keep < this.entries.length) this.entries.length = keep;
        if (this.entries.length !== keep) {
          throw new Error(`disk model broken: entry ${e.index} leaves a gap`);
        }
        this.entries.push(e);
        return;
      }
      case "hard-state":
        this.hardState = r.hardState;
        return;
    }
  }
}
