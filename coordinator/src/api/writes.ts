/**
 * Shared write path for API services: leader check with a redirect hint, then
 * propose and turn the FSM's result into the RPC outcome.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "../../../common/errors.ts";
import type { CommandSchema } from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";
import type { ClusterHandle } from "./cluster-handle.ts";

/** Response header naming the leader's API address on a redirect. */
export const leaderHeader = "x-understudy-leader";

export function notLeaderError(cluster: ClusterHandle): ConnectError {
  const l = cluster.leadership();
  const msg = l.leaderId
    ? `node "${cluster.nodeId}" is not the leader; send writes to leader "${l.leaderId}" at ${l.leaderApiAddress || "(address unknown)"}`
    : `node "${cluster.nodeId}" is not the leader and no leader is known (election in progress); retry shortly`;
  const err = new ConnectError(msg, Code.Unavailable);
  if (l.leaderApiAddress) err.metadata.set(leaderHeader, l.leaderApiAddress);
  return err;
}

export function requireLeader(cluster: ClusterHandle): void {
  if (!cluster.leadership().isLeader) throw notLeaderError(cluster);
}

/** Proposes and waits; an FSM refusal becomes a ConnectError with its code. */
export async function commit(
  cluster: ClusterHandle,
  command: MessageInitShape<typeof CommandSchema>,
  requestId?: string,
): Promise<number> {
  const r = await cluster.propose(command, requestId ? { requestId } : {});
  if (!r.ok) throw new ConnectError(r.message, r.code);
  return r.index;
}
