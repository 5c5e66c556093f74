/**
 * Messages between Raft peers. The kinds and field names follow the Raft paper
 * and map 1:1 onto the understudy.raft.v1 RaftService protobufs, so the
 * transport is a thin field-by-field mapping (no logic).
 *
 * Every message carries the sender's `term` (for RequestVote with preVote set:
 * the term the sender *would* campaign in; for a granted pre-vote response: the
 * term of the request). Indexes and terms are non-negative integers.
 */
import type { Entry, NodeId, Snapshot } from "./log-types.ts";

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * Replicates entries; with `entries` empty it is a heartbeat (Raft §5.2). A
 * heartbeat names the last index the leader knows the follower matches, so it
 * never fails on a healthy follower and lets the follower advance its commit
 * index up to `min(leaderCommit, prevLogIndex)`.
 */
export interface AppendEntries extends Envelope {
  readonly kind: "AppendEntries";
  readonly leaderId: NodeId;
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /**
   * The leader's latest ReadIndex round when this message was sent (0: none).
   * Echoed back in the response: an echo of round r proves the follower still
   * accepted this leader after every read request numbered <= r arrived.
   */
  readonly readContext: number;
}

export interface AppendEntriesResponse extends Envelope {
  readonly kind: "AppendEntriesResponse";
  readonly success: boolean;
  /**
   * On success: the highest index known to match the leader's log.
   * On rejection: the `prevLogIndex` of the rejected request, which lets the
   * leader recognise stale rejections of reordered or duplicated requests.
   */
  readonly matchIndex: number;
  /**
   * On rejection: the follower's best guess at the last index that could match
   * (its last entry at or below prevLogIndex whose term is <= prevLogTerm), so
   * the leader can skip a whole conflicting term in one round trip (§5.3).
   * 0 on success.
   */
  readonly rejectHintIndex: number;
  /** Term of the follower's entry at rejectHintIndex (0: unknown/none). */
  readonly rejectHintTerm: number;
  /** Echo of the request's readContext. */
  readonly readContext: number;
}

export interface RequestVote extends Envelope {
  readonly kind: "RequestVote";
  readonly candidateId: NodeId;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /**
   * Pre-vote (thesis §9.6): asks "would you vote for me in `term`?" without
   * anyone changing term or vote, so a partitioned node cannot inflate terms.
   */
  readonly preVote: boolean;
  /** Sent after TimeoutNow: voters skip the leader-lease check (§3.10). */
  readonly leadershipTransfer: boolean;
}

export interface RequestVoteResponse extends Envelope {
  readonly kind: "RequestVoteResponse";
  readonly voteGranted: boolean;
  readonly preVote: boolean;
}

/** The whole snapshot; the transport may chunk it on the wire. */
export interface InstallSnapshot extends Envelope {
  readonly kind: "InstallSnapshot";
  readonly leaderId: NodeId;
  readonly snapshot: Snapshot;
}

export interface InstallSnapshotResponse extends Envelope {
  readonly kind: "InstallSnapshotResponse";
  /** Highest index the follower now knows to match the leader (its snapshot or commit index). */
  readonly matchIndex: number;
  /** False only if the follower refused the snapshot; the leader then probes again. */
  readonly success: boolean;
}

/** Leadership transfer: the target starts an election at once (thesis §3.10). */
export interface TimeoutNow extends Envelope {
  readonly kind: "TimeoutNow";
  readonly leaderId: NodeId;
}

/**
 * A follower forwarding a linearizable read to its leader (thesis §6.4). Not in
 * the Raft paper's RPC list, but it travels between peers, so the RaftService
 * carries it too.
 */
export interface ReadIndex extends Envelope {
  readonly kind: "ReadIndex";
  /** Opaque to Raft; chosen by the requesting node, unique among its pending reads. */
  readonly requestCtx: number;
}

/** The leader's answer to ReadIndex: the follower may serve the read once it has applied `index`. */
export interface ReadIndexResponse extends Envelope {
  readonly kind: "ReadIndexResponse";
  readonly requestCtx: number;
  readonly index: number;
}

export type RaftMessage =
  | AppendEntries
  | AppendEntriesResponse
  | RequestVote
  | RequestVoteResponse
  | InstallSnapshot
  | InstallSnapshotResponse
  | TimeoutNow
  | ReadIndex
  | ReadIndexResponse;

export type RaftMessageKind = RaftMessage["kind"];
