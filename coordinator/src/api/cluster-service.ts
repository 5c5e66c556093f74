/**
 * ClusterService: per-node Raft status and membership. Membership changes go
 * one voter at a time through the leader: the member's addresses are
 * committed to the replicated address book first, then the Raft conf change.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError, invalidArgument } from "../../../common/errors.ts";
import {
  type ClusterService,
  type MemberStatus,
  MemberStatusSchema,
  NodeRole,
} from "../../../proto/gen/understudy/api/v1/cluster_service_pb.ts";
import type { ClusterHandle } from "./cluster-handle.ts";
import { idPattern } from "./validate-stream.ts";
import { commit, requireLeader } from "./writes.ts";

export interface RaftMemberInfo {
  readonly id: string;
  readonly voter: boolean;
  readonly match: number;
  readonly next: number;
  readonly sinceLastContactMs: number;
}

/** What ClusterService needs beyond ClusterHandle (implemented by the runtime). */
export interface ClusterAdmin {
  readonly softwareVersion: string;
  readonly peerAddress: string;
  readonly apiAddress: string;
  raftStatus(): {
    role: "follower" | "candidate" | "pre-candidate" | "leader";
    term: number;
    leader: string;
    commit: number;
    applied: number;
    lastIndex: number;
    snapshotIndex: number;
    isLearner: boolean;
    members: readonly RaftMemberInfo[];
    confIndex: number;
  };
  addressOf(id: string): { peer: string; api: string } | undefined;
  proposeConfChange(
    type: "add-voter" | "add-learner" | "remove-node",
    nodeId: string,
  ): Promise<number>;
  transferLeadership(target: string): Promise<{ leaderId: string; term: number }>;
}

const hostPort = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

const roleOf = (r: ReturnType<ClusterAdmin["raftStatus"]>): NodeRole => {
  if (r.isLearner) return NodeRole.LEARNER;
  switch (r.role) {
    case "leader":
      return NodeRole.LEADER;
    case "candidate":
      return NodeRole.CANDIDATE;
    case "pre-candidate":
      return NodeRole.PRE_CANDIDATE;
    default:
      return NodeRole.FOLLOWER;
  }
};

export function createClusterService(
  cluster: ClusterHandle,
  admin: ClusterAdmin,
): Partial<ServiceImpl<typeof ClusterService>> {
  const members = (): MemberStatus[] => {
    const st = admin.raftStatus();
    return st.members.map((m) => {
      const a = admin.addressOf(m.id);
      return create(MemberStatusSchema, {
        nodeId: m.id,
        address: a?.peer ?? "",
        apiAddress: a?.api ?? "",
        voter: m.voter,
        matchIndex: BigInt(m.match),
        nextIndex: BigInt(m.next),
        sinceLastContactMs: BigInt(m.sinceLastContactMs),
      });
    });
  };
  // The digest serializes the whole state (hundreds of ms at tens of
  // thousands of streams, blocking the event loop and so the node's
  // heartbeats); the state changes only when appliedIndex does, so pollers
  // at an unchanged index share one computation.
  let hashed = { applied: -1, hash: "" };
  const stateHash = (): string => {
    const applied = cluster.fsm.appliedIndex();
    if (hashed.applied !== applied) hashed = { applied, hash: cluster.fsm.hash() };
    return hashed.hash;
  };
  return {
    getStatus() {
      const st = admin.raftStatus();
      return {
        node: {
          nodeId: cluster.nodeId,
          address: admin.peerAddress,
          apiAddress: admin.apiAddress,
          role: roleOf(st),
          term: BigInt(st.term),
          leaderId: st.leader,
          commitIndex: BigInt(st.commit),
          appliedIndex: BigInt(st.applied),
          lastLogIndex: BigInt(st.lastIndex),
          snapshotIndex: BigInt(st.snapshotIndex),
          softwareVersion: admin.softwareVersion,
          nowUnixMs: BigInt(Math.trunc(cluster.clock.nowMs())),
          stateHash: stateHash(),
        },
        members: members(),
      };
    },
    async listMembers() {
      await cluster.readBarrier();
      return { members: members(), confIndex: BigInt(admin.raftStatus().confIndex) };
    },
    async addMember(req) {
      if (!idPattern.test(req.nodeId))
        throw invalidArgument("node_id", "must be 1–64 chars of [a-z0-9-]");
      if (!hostPort.test(req.address))
        throw invalidArgument("address", `must be "host:port", got "${req.address}"`);
      if (!hostPort.test(req.apiAddress)) {
        throw invalidArgument("api_address", `must be "host:port", got "${req.apiAddress}"`);
      }
      requireLeader(cluster);
      if (
        admin.raftStatus().members.some((m) => m.id === req.nodeId && (m.voter || req.asLearner))
      ) {
        throw new ConnectError(`node "${req.nodeId}" is already a member`, Code.AlreadyExists);
      }
      await commit(cluster, {
        op: {
          case: "addMember",
          value: {
            nodeId: req.nodeId,
            address: req.address,
            apiAddress: req.apiAddress,
            asLearner: req.asLearner,
          },
        },
      });
      const confIndex = await admin.proposeConfChange(
        req.asLearner ? "add-learner" : "add-voter",
        req.nodeId,
      );
      return { members: members(), confIndex: BigInt(confIndex) };
    },
    async removeMember(req) {
      if (!idPattern.test(req.nodeId))
        throw invalidArgument("node_id", "must be 1–64 chars of [a-z0-9-]");
      requireLeader(cluster);
      if (!admin.raftStatus().members.some((m) => m.id === req.nodeId)) {
        throw new ConnectError(`node "${req.nodeId}" is not a member`, Code.NotFound);
      }
      const confIndex = await admin.proposeConfChange("remove-node", req.nodeId);
      // The address book entry goes last: the removed node may still need it
      // to learn of its removal. A leader that removed itself is no longer
      // leader here, so only a remaining leader cleans up.
      if (cluster.leadership().isLeader && cluster.fsm.member(req.nodeId)) {
        await commit(cluster, { op: { case: "removeMember", value: { nodeId: req.nodeId } } });
      }
      return { members: members(), confIndex: BigInt(confIndex) };
    },
    async transferLeadership(req) {
      if (req.targetNodeId && !idPattern.test(req.targetNodeId)) {
        throw invalidArgument("target_node_id", "must be a node id or empty");
      }
      requireLeader(cluster);
      let target = req.targetNodeId;
      if (!target) {
        // The most caught-up other voter.
        const best = admin
          .raftStatus()
          .members.filter((m) => m.voter && m.id !== cluster.nodeId)
          .sort((a, b) => b.match - a.match)[0];
        if (!best)
          throw new ConnectError(
            "no other voter to transfer leadership to",
            Code.FailedPrecondition,
          );
        target = best.id;
      } else if (!admin.raftStatus().members.some((m) => m.id === target && m.voter)) {
        throw new ConnectError(`node "${target}" is not a voter`, Code.NotFound);
      }
      const r = await admin.transferLeadership(target);
      return { leaderId: r.leaderId, term: BigInt(r.term) };
    },
  };
}
