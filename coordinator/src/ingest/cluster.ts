/**
 * The part of `ClusterHandle` (coordinator/src/api/cluster-handle.ts) that
 * ingest, detection and the component API use, so tests can provide just
 * that and these components depend only on what they call. The runtime's
 * ClusterHandle satisfies it as is.
 */
import type { Component } from "../../../proto/gen/understudy/common/v1/component_pb.ts";
import type { ClusterHandle, Leadership } from "../api/cluster-handle.ts";

/** Read access to the replicated component table (FsmView subset). */
export interface ComponentTable {
  /** Every registered component. */
  components(): readonly Component[];
  component(id: string): Component | undefined;
}

export type ComponentCluster = Pick<
  ClusterHandle,
  "nodeId" | "leadership" | "onLeadershipChange" | "propose"
> & { readonly fsm: ComponentTable };

/**
 * Message of the UNAVAILABLE answer a follower gives: contains
 * "leader: <node_id> at <api_address>" or "no leader" (API-wide rule in
 * proto/understudy/api/v1/cluster_service.proto).
 */
export function notLeaderMessage(l: Leadership): string {
  if (l.leaderId === "") return "this coordinator is not the leader (no leader)";
  return `this coordinator is not the leader (leader: ${l.leaderId} at ${l.leaderApiAddress})`;
}
