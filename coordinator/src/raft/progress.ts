/**
 * The leader's view of each follower's log (flow control), after etcd's
 * tracker.Progress:
 * - probe: the leader does not know where the follower's log ends; it sends
 *   one AppendEntries at a time and waits for the answer (or a heartbeat
 *   answer) before the next, walking `next` back with the reject hints.
 * - replicate: the follower is known to match up to `match`; the leader
 *   pipelines AppendEntries, advancing `next` optimistically, with at most
 *   `maxInflightMsgs` unacknowledged messages carrying entries.
 * - snapshot: the follower needs entries the leader has compacted; an
 *   InstallSnapshot is on its way and nothing else is sent until it lands.
 */
import { assert } from "../../../common/errors.ts";

export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * A bounded FIFO of the last entry index of each in-flight AppendEntries, in
 * send order. Acknowledging index i frees every message ending at or below i.
 */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity > 0, `inflight capacity ${capacity} must be > 0`);
    this.buffer = new Array<number>(capacity).fill(0);
  }

  add(lastIndex: number): void {
    assert(!this.full(), "cannot add to a full inflights window");
    if (this.count > 0) {
      const newest = this.buffer[(this.start + this.count - 1) % this.capacity]!;
      assert(lastIndex > newest, `inflight ${lastIndex} added out of order after ${newest}`);
    }
    this.buffer[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  size(): number {
    return this.count;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

export class Progress {
  /** Highest index known to match the leader's log. Invariant: match < next. */
  match = 0;
  /** Next index to send. Entries in (match, next) are in flight. */
  next: number;
  state: ProgressState = "probe";
  /** In snapshot state: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round (always true for the leader itself). */
  recentActive = false;
  /** Probe state: one AppendEntries is outstanding; wait for an answer before the next. */
  probeSent = false;
  /** Rejections of `match` itself since the last success (see Raft.handleAppendEntriesResponse). */
  matchRejections = 0;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflightMsgs: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least the snapshot's entries.
    const floor = this.state === "snapshot" ? this.pendingSnapshot : 0;
    this.resetState("probe");
    this.next = Math.max(this.match, floor) + 1;
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records an AppendEntries carrying entries up to lastIndex (count > 0) or none. */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === "replicate" && count > 0) {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex);
    } else if (this.state === "probe") {
      this.probeSent = true;
    }
  }

  /**
   * The follower no longer holds `match` (it lost persisted entries): start
   * over, probing just after `hint`, and let it prove a match again.
   */
  forgetMatch(hint: number): void {
    this.resetState("probe");
    this.match = 0;
    this.matchRejections = 0;
    this.next = Math.max(1, hint + 1);
  }

  /** An acknowledgement of index n; false if it tells us nothing new. */
  maybeUpdate(n: number): boolean {
    this.matchRejections = 0;
    if (n <= this.match) return false;
    this.match = n;
    this.next = Math.max(this.next, n + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * A rejection of the AppendEntries whose prevLogIndex was `rejected`, with the
   * follower's hint that its log may match up to `matchHint`. Returns false for
   * a stale rejection (reordered or duplicated), which changes nothing.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probes go out one at a time, so only a rejection of next - 1 is current.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending new entries is throttled right now. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}
