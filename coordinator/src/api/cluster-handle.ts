/**
 * What the coordinator's services (API, agent ingest, detectors, planners'
 * actors) may ask of the local Raft node. The runtime implements it; tests can
 * implement it over a single in-process node. Services never touch Raft or
 * storage directly.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Clock } from "../../../common/clock.ts";
import type { Code } from "../../../common/errors.ts";
import type { CommandSchema } from "../../../proto/gen/understudy/fsm/v1/fsm_pb.ts";
import type { FsmView } from "../fsm/fsm.ts";

export interface Leadership {
  readonly isLeader: boolean;
  /** "" while no leader is known. */
  readonly leaderId: string;
  /** Client/API address of the leader ("" when unknown), for redirects. */
  readonly leaderApiAddress: string;
  readonly term: number;
}

/** The outcome of applying one command, identical on every replica. */
export type ApplyResult =
  | { readonly ok: true; readonly index: number }
  | { readonly ok: false; readonly index: number; readonly code: Code; readonly message: string };

export interface ProposeOptions {
  /** Idempotency key; retries with the same id apply at most once. Generated when absent. */
  requestId?: string;
  /** Give up (DEADLINE_EXCEEDED) if not applied within this time. Default 5000 ms. */
  timeoutMs?: number;
}

export interface ClusterHandle {
  readonly nodeId: string;
  readonly clock: Clock;
  leadership(): Leadership;
  /** Subscribe to leadership changes; returns an unsubscribe function. */
  onLeadershipChange(listener: (l: Leadership) => void): () => void;
  /**
   * Proposes a command through the Raft log. Resolves after it committed and
   * was applied on this node, with the FSM's result. Rejects with a
   * ConnectError: UNAVAILABLE naming the leader when this node is not leader,
   * DEADLINE_EXCEEDED on timeout (the command may still commit later: retry
   * with the same requestId).
   */
  propose(
    command: MessageInitShape<typeof CommandSchema>,
    opts?: ProposeOptions,
  ): Promise<ApplyResult>;
  /**
   * Linearizable read barrier (ReadIndex): resolves once this node has applied
   * everything committed before the call. Rejects with UNAVAILABLE without a leader.
   */
  readBarrier(): Promise<void>;
  /** Read-only view of the replicated state on this node (may lag without readBarrier). */
  readonly fsm: FsmView;
  /** Called after every applied command (index order); returns an unsubscribe function. */
  onApply(listener: (index: number) => void): () => void;
}
