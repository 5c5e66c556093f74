/**
 * Majority arithmetic over one voter set (no joint configurations: membership
 * changes go one node at a time).
 */
import type { NodeId } from "./log-types.ts";

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of `voters` has acknowledged, where
 * `acked(id)` is voter id's acknowledged index: the quorum-th largest value.
 * Used for the commit index (acked = match) and for ReadIndex rounds
 * (acked = highest round echoed). 0 for an empty voter set.
 */
export function majorityIndex(voters: ReadonlySet<NodeId>, acked: (id: NodeId) => number): number {
  const n = voters.size;
  if (n === 0) return 0;
  const values = new Array<number>(n);
  let k = 0;
  for (const id of voters) values[k++] = acked(id);
  values.sort((a, b) => b - a);
  return values[quorumSize(n) - 1]!;
}

export type VoteResult = "won" | "lost" | "pending";

/** Tally of an election: only answers from current voters count. */
export function voteResult(
  voters: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const q = quorumSize(voters.size);
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  if (granted >= q) return "won";
  if (rejected > voters.size - q) return "lost";
  return "pending";
}
