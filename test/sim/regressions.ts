/**
 * Seeds that once exposed a bug, kept as named regression runs (executed by
 * regressions.test.ts). A seed replays its scenario only as long as the
 * simulator consumes randomness the same way; when sim.ts changes that, check
 * the seeds still reach the situation they describe (replay with --verbose)
 * and re-pick them from a fresh failing run of the reverted fix if not.
 */
import type { RunOptions } from "./run.ts";

export interface RegressionSeed {
  readonly name: string;
  readonly seed: number;
  readonly options?: RunOptions;
  /** What went wrong, and where it was fixed. */
  readonly bug: string;
}

const probeBug =
  "A follower in probe state whose last probe was lost stayed paused forever: the leader had " +
  "compacted past its match, so heartbeats fell back to prevLogIndex 0 and their answers " +
  "(carrying the follower's commit index, below match) never unpaused the probe. Likewise a " +
  "follower in replicate state whose in-flight AppendEntries were all lost was never resent " +
  "anything, because the loss-detecting empty append was only sent for a heartbeat answer " +
  "naming exactly `match`. Fixed in raft.ts onAck: every heartbeat answer unpauses a probe, " +
  "and any one re-checks an outstanding pipeline, as in etcd.";

const snapshotCommitBug =
  "A crash between the WAL writing a snapshot received from the leader and the hard state " +
  "after it left the durable commit index below the snapshot index; the restart threw 'hard " +
  "state commit outside the stored log'. Fixed in the raft.ts constructor: a snapshot's index " +
  "counts as committed.";

export const regressionSeeds: readonly RegressionSeed[] = [
  { name: "lost-probe-after-compaction-5-nodes", seed: 239, bug: probeBug },
  { name: "lost-probe-after-compaction-with-removed-node", seed: 351, bug: probeBug },
  { name: "lost-probe-after-compaction-5-nodes-b", seed: 387, bug: probeBug },
  { name: "lost-probe-after-compaction-3-nodes", seed: 408, bug: probeBug },
  { name: "lost-probe-after-compaction-3-nodes-b", seed: 898, bug: probeBug },
  { name: "snapshot-durable-before-its-hard-state", seed: 1853, bug: snapshotCommitBug },
  { name: "snapshot-durable-before-its-hard-state-b", seed: 2324, bug: snapshotCommitBug },
  { name: "snapshot-durable-before-its-hard-state-c", seed: 2729, bug: snapshotCommitBug },
];
