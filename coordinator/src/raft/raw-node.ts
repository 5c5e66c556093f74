/**
 * RawNode: the driver-facing API of the pure Raft core (after etcd's
 * rawnode.go). The driver owns time, disk and network:
 *
 *   every tick interval:         node.tick()
 *   for each received message:   node.step(msg)
 *   client writes / reads:       node.propose(data) / node.readIndex(ctx)
 *   then, while node.hasReady():
 *     const rd = node.ready();
 *     1. persist rd.snapshot, rd.entries, rd.hardState to the WAL and fsync
 *        (if rd.mustSync) — entries replace any stored suffix from
 *        rd.entries[0].index on;
 *     2. mirror them into the MemoryStorage: applySnapshot(rd.snapshot),
 *        append(rd.entries), setHardState(rd.hardState);
 *     3. only now send rd.messages (they may promise the data is durable);
 *     4. restore the FSM from rd.snapshot if any, then apply
 *        rd.committedEntries in order, calling node.applyConfChange for each
 *        "conf-change" entry; serve rd.readStates once applied >= index;
 *     5. node.advance(rd).
 *
 * tick/step/propose/readIndex may be called between ready() and advance() (for
 * example while an fsync is in flight); their output waits for the next Ready.
 */

import { assert } from "../../../common/errors.ts";
import type { ConfChange } from "./conf-change.ts";
import type { ConfState, Entry, HardState, NodeId, Snapshot } from "./log-types.ts";
import type { RaftMessage } from "./messages.ts";
import type { ProgressState } from "./progress.ts";
import {
  type ProposeResult,
  Raft,
  type RaftConfig,
  type ReadIndexResult,
  type ReadState,
  type Role,
  type TransferResult,
} from "./raft.ts";
import type { LogStorage } from "./storage.ts";

export interface SoftState {
  /** Current leader as this node knows it ("" for none). */
  readonly leader: NodeId;
  readonly role: Role;
}

export interface Ready {
  /** Present when leader or role changed since the previous Ready. Not persisted. */
  readonly softState?: SoftState;
  /** Present when term, vote or commit changed: persist it (with the entries). */
  readonly hardState?: HardState;
  /** Entries to persist, replacing any stored entries from entries[0].index on. */
  readonly entries: readonly Entry[];
  /** A snapshot from the leader: persist it, then restore the FSM from it. */
  readonly snapshot?: Snapshot;
  /** Committed entries to apply, in order (after restoring `snapshot`, if any). */
  readonly committedEntries: readonly Entry[];
  /** Send only after this Ready's state is durable. */
  readonly messages: readonly RaftMessage[];
  /** Confirmed linearizable reads: serve each once the FSM has applied its index. */
  readonly readStates: readonly ReadState[];
  /**
   * Whether the WAL write must be fsynced before sending: true when the term,
   * vote, entries or snapshot changed (a commit-only change may be lazy).
   */
  readonly mustSync: boolean;
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly recentActive: boolean;
  readonly isLearner: boolean;
  /** AppendEntries with entries sent but not acknowledged (<= maxInflightMsgs). */
  readonly inflight: number;
  readonly pendingSnapshot: number;
}

/** The scalar part of Status; cheap enough to call after every event. */
export interface BasicStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
}

export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Leadership transfer target ("" when none). */
  readonly leadTransferee: NodeId;
  readonly conf: ConfState;
  /** Per member, on the leader only (empty map elsewhere). */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

export interface RawNode {
  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void;
  /** Feeds a message received from a peer. Stale or irrelevant messages are ignored. */
  step(msg: RaftMessage): void;
  /** Starts an election now, if this node may (a voter with applied membership). */
  campaign(): void;
  /**
   * Proposes an FSM command. On success the entry sits at (index, term); it is
   * committed when an entry with that index *and term* is applied. Fails (as a
   * value) when not leader, during a leadership transfer, or when
   * maxUncommittedEntriesBytes would be exceeded.
   */
  propose(data: Uint8Array): ProposeResult;
  /** Proposes a membership change (one at a time; see conf-change.ts). */
  proposeConfChange(cc: ConfChange): ProposeResult;
  /** Applies a committed membership change; call it when applying the entry. */
  applyConfChange(cc: ConfChange): ConfState;
  /**
   * Requests a linearizable read. The answer arrives as a ReadState with the
   * same requestCtx in a later Ready, or never (leader change, lost message):
   * callers time out and retry. Followers forward the request to the leader.
   */
  readIndex(requestCtx: number): ReadIndexResult;
  /** Leader only: hands leadership to a voter (proposals are refused meanwhile). */
  transferLeadership(target: NodeId): TransferResult;
  /** Whether ready() has anything. False while a Ready is outstanding (before advance). */
  hasReady(): boolean;
  ready(): Ready;
  /** The driver has done everything `rd` asked (persisted, sent, applied). */
  advance(rd: Ready): void;
  status(): Status;
  basicStatus(): BasicStatus;
  /** The transport could not reach `id`: stop pipelining to it (leader only). */
  reportUnreachable(id: NodeId): void;
  /** The transport finished (ok) or gave up (!ok) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void;
  /**
   * The highest index the driver may compact to (after snapshotting at or above
   * it) without forcing any recently active follower onto a snapshot: the
   * applied index, lowered on a leader to the lowest match of active peers.
   * Compacting further is always safe, only costlier for slow followers.
   */
  compactHint(): number;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function createRawNode(config: RaftConfig, storage: LogStorage): RawNode {
  const raft = new Raft(config, storage);
  let prevSoft: SoftState = { leader: raft.lead, role: raft.role };
  let prevHard: HardState = storage.initialState().hardState;
  let outstanding = false;

  const softChanged = () => raft.lead !== prevSoft.leader || raft.role !== prevSoft.role;

  return {
    tick: () => raft.tick(),
    step: (msg) => raft.step(msg),
    campaign: () => raft.campaign(),
    propose: (data) => raft.propose(data),
    proposeConfChange: (cc) => raft.proposeConfChange(cc),
    applyConfChange: (cc) => raft.applyConfChange(cc),
    readIndex: (ctx) => raft.readIndex(ctx),
    transferLeadership: (target) => raft.transferLeadership(target),
    reportUnreachable: (id) => raft.reportUnreachable(id),
    reportSnapshot: (id, ok) => raft.reportSnapshot(id, ok),

    hasReady() {
      if (outstanding) return false;
      const unstable = raft.log.unstable();
      return (
        raft.msgs.length > 0 ||
        unstable.entries.length > 0 ||
        unstable.snapshot !== undefined ||
        raft.log.hasNextCommittedEntries() ||
        raft.readStates.length > 0 ||
        softChanged() ||
        !sameHardState(raft.hardState(), prevHard)
      );
    },

    ready() {
      assert(!outstanding, "ready() called again before advance() of the previous Ready");
      outstanding = true;
      const unstable = raft.log.unstable();
      const hardState = raft.hardState();
      const hardChanged = !sameHardState(hardState, prevHard);
      const committedEntries = raft.log.nextCommittedEntries(
        raft.settings.maxCommittedBytesPerReady,
      );
      raft.reduceUncommittedSize(committedEntries);
      const rd: Ready = {
        ...(softChanged() ? { softState: { leader: raft.lead, role: raft.role } } : {}),
        ...(hardChanged ? { hardState } : {}),
        ...(unstable.snapshot ? { snapshot: unstable.snapshot } : {}),
        entries: unstable.entries.slice(),
        committedEntries,
        messages: raft.msgs,
        readStates: raft.readStates,
        mustSync:
          unstable.entries.length > 0 ||
          unstable.snapshot !== undefined ||
          hardState.term !== prevHard.term ||
          hardState.vote !== prevHard.vote,
      };
      raft.msgs = [];
      raft.readStates = [];
      return rd;
    },

    advance(rd) {
      assert(outstanding, "advance() without an outstanding Ready");
      outstanding = false;
      if (rd.softState) prevSoft = rd.softState;
      if (rd.hardState) prevHard = rd.hardState;
      if (rd.snapshot) {
        raft.log.stableSnapTo(rd.snapshot.metadata.index);
        if (rd.snapshot.metadata.index > raft.log.applied) {
          raft.log.appliedTo(rd.snapshot.metadata.index);
        }
      }
      const lastApplied = rd.committedEntries.at(-1);
      if (lastApplied) raft.log.appliedTo(lastApplied.index);
      const lastPersisted = rd.entries.at(-1);
      if (lastPersisted) {
        raft.log.stableTo(lastPersisted.index, lastPersisted.term);
        raft.onPersisted();
      }
    },

    status() {
      const progress = new Map<NodeId, ProgressStatus>();
      if (raft.role === "leader") {
        for (const [id, pr] of raft.prs) {
          progress.set(id, {
            match: pr.match,
            next: pr.next,
            state: pr.state,
            recentActive: id === raft.id || pr.recentActive,
            isLearner: pr.isLearner,
            inflight: pr.inflights.size(),
            pendingSnapshot: pr.pendingSnapshot,
          });
        }
      }
      return {
        id: raft.id,
        role: raft.role,
        term: raft.term,
        vote: raft.vote,
        leader: raft.lead,
        commit: raft.log.committed,
        applied: raft.log.applied,
        firstIndex: raft.log.firstIndex(),
        lastIndex: raft.log.lastIndex(),
        leadTransferee: raft.leadTransferee,
        conf: raft.confState(),
        progress,
      };
    },

    basicStatus: () => ({
      id: raft.id,
      role: raft.role,
      term: raft.term,
      leader: raft.lead,
      commit: raft.log.committed,
      applied: raft.log.applied,
    }),

    compactHint() {
      let hint = raft.log.applied;
      if (raft.role === "leader") {
        for (const [id, pr] of raft.prs) {
          if (id !== raft.id && pr.recentActive) hint = Math.min(hint, pr.match);
        }
      }
      return Math.max(hint, raft.log.firstIndex() - 1);
    },
  };
}
