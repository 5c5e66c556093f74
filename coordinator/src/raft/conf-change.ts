/**
 * Membership changes, one node at a time (Raft thesis §4.1, as etcd's
 * "simple" changes): a change takes effect on each node when that node applies
 * the committed conf-change entry, and a leader proposes no new change until
 * it has applied the previous one. Any majority of the old and of the new
 * voter set then overlap, so two leaders can never be elected in one term.
 *
 * The entry payload is the core's own small encoding (UTF-8 JSON), produced by
 * `proposeConfChange` and decoded by the driver before `applyConfChange`.
 */
import type { ConfState, Entry, NodeId, RecoveredState } from "./log-types.ts";
import { emptySnapshot } from "./log-types.ts";

export type ConfChangeType = "add-voter" | "add-learner" | "remove-node";

export interface ConfChange {
  /**
   * add-voter: adds a voter, or promotes an existing learner.
   * add-learner: adds a non-voting member that receives the log.
   * remove-node: removes a voter or learner (the leader included: it steps
   * down once it applies its own removal).
   */
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

const confChangeTypes: readonly ConfChangeType[] = ["add-voter", "add-learner", "remove-node"];

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type: cc.type, nodeId: cc.nodeId }));
}

/**
 * Decodes a conf-change entry's payload. Throws on malformed input: these
 * bytes were written by `encodeConfChange` and committed, so garbage here is a
 * corrupted log, not a user error.
 */
export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch (err) {
    throw new Error(`invariant violated: conf-change entry is not valid UTF-8 JSON (${err})`);
  }
  const { type, nodeId } = (parsed ?? {}) as { type?: unknown; nodeId?: unknown };
  if (!confChangeTypes.includes(type as ConfChangeType) || typeof nodeId !== "string" || !nodeId) {
    throw new Error(`invariant violated: malformed conf-change entry ${JSON.stringify(parsed)}`);
  }
  return { type: type as ConfChangeType, nodeId };
}

/** Why a proposed change cannot apply to `conf`, or undefined when it is valid. */
export function checkConfChange(conf: ConfState, cc: ConfChange): string | undefined {
  if (!cc.nodeId) return "nodeId must be a non-empty node id";
  if (!confChangeTypes.includes(cc.type)) {
    return `type must be one of ${confChangeTypes.join(", ")}, got "${cc.type}"`;
  }
  const isVoter = conf.voters.includes(cc.nodeId);
  const isLearner = conf.learners.includes(cc.nodeId);
  switch (cc.type) {
    case "add-voter":
      return isVoter ? `${cc.nodeId} is already a voter` : undefined;
    case "add-learner":
      if (isVoter) return `${cc.nodeId} is a voter; demoting a voter to learner is not supported`;
      return isLearner ? `${cc.nodeId} is already a learner` : undefined;
    case "remove-node":
      if (!isVoter && !isLearner) return `${cc.nodeId} is not a member`;
      if (isVoter && conf.voters.length === 1) return `cannot remove the last voter ${cc.nodeId}`;
      return undefined;
  }
}

/**
 * The membership after applying `cc` to `conf`. Changes that do not fit (see
 * checkConfChange) leave it unchanged: every node applies the same committed
 * entries in the same order, so a no-op here is a no-op everywhere.
 */
export function nextConfState(conf: ConfState, cc: ConfChange): ConfState {
  if (checkConfChange(conf, cc) !== undefined) return conf;
  const voters = conf.voters.filter((id) => id !== cc.nodeId);
  const learners = conf.learners.filter((id) => id !== cc.nodeId);
  if (cc.type === "add-voter") voters.push(cc.nodeId);
  if (cc.type === "add-learner") learners.push(cc.nodeId);
  return { voters, learners, votersOutgoing: [] };
}

/**
 * The initial durable state of every founding member of a new cluster: one
 * committed add-voter entry per voter at term 1 (the same on every founder, so
 * pass the same list everywhere). A node that joins later starts from
 * `emptyRecoveredState` and receives these entries (or a snapshot) from the
 * leader, which is how it learns the membership.
 */
export function bootstrapState(voters: readonly NodeId[]): RecoveredState {
  if (voters.length === 0) throw new RangeError("bootstrapState needs at least one voter");
  if (new Set(voters).size !== voters.length || voters.some((id) => !id)) {
    throw new RangeError(`bootstrapState voters must be distinct non-empty ids, got ${voters}`);
  }
  const entries: Entry[] = voters.map((nodeId, i) => ({
    term: 1,
    index: i + 1,
    type: "conf-change",
    data: encodeConfChange({ type: "add-voter", nodeId }),
  }));
  return {
    hardState: { term: 1, vote: "", commit: entries.length },
    snapshot: emptySnapshot,
    entries,
  };
}
