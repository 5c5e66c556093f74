/**
 * The Raft state machine (Ongaro & Ousterhout; thesis chapters 3, 4, 6 and
 * 9.6), modelled on etcd-io/raft. Pure: time arrives as tick(), randomness from
 * the injected Rng, messages through step(); output accumulates in `msgs`,
 * `readStates` and the log's unstable part, which RawNode hands to the driver.
 *
 * Role-specific behaviour lives in stepLeader / stepCandidate / stepFollower;
 * `step` does the term bookkeeping every role shares.
 *
 * Broken invariants throw (the process must stop: continuing could corrupt
 * replicated state). Expected failures (not leader, limits hit) are values.
 */
import { assert } from "../../../common/errors.ts";
import type { Rng } from "../../../common/rng.ts";
import { type ConfChange, checkConfChange, encodeConfChange } from "./conf-change.ts";
import type { ConfState, Entry, EntryType, HardState, NodeId } from "./log-types.ts";
import type {
  AppendEntries,
  AppendEntriesResponse,
  InstallSnapshot,
  InstallSnapshotResponse,
  RaftMessage,
  RequestVote,
} from "./messages.ts";
import { Progress } from "./progress.ts";
import { majorityIndex, voteResult } from "./quorum.ts";
import { RaftLog } from "./raft-log.ts";
import type { LogStorage } from "./storage.ts";

export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

/**
 * TEST-ONLY. Deliberately broken rules, so the simulator's tests can prove its
 * checkers catch real protocol bugs. Never set these outside tests.
 */
export interface TestingBugs {
  /**
   * Candidates count votes from earlier rounds: answers from earlier terms are
   * not discarded, and the tally is not cleared when a new round starts (so
   * pre-votes and last term's votes count as votes).
   */
  readonly countStaleVotes?: boolean;
  /** Leaders commit earlier-term entries by counting replicas (violates §5.4.2 / Figure 8). */
  readonly commitPreviousTermEntries?: boolean;
  /** Voters grant votes without the log up-to-date check (violates §5.4.1). */
  readonly skipVoteLogCheck?: boolean;
}

export interface RaftConfig {
  /** This node's id; must be stable for the life of the member. */
  readonly id: NodeId;
  /**
   * Ticks a follower waits without hearing from a leader before campaigning;
   * the actual timeout is drawn uniformly from [electionTicks, 2*electionTicks).
   * Also the check-quorum period and the leadership-transfer deadline. Default 10.
   */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats; must be < electionTicks. Default 1. */
  readonly heartbeatTicks?: number;
  /** Run a pre-vote round before incrementing the term (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /**
   * Leader steps down if it has not heard from a quorum within an election
   * timeout, and followers that heard from a leader within one ignore
   * (pre-)votes (leader lease, thesis §4.2.3). Default true.
   */
  readonly checkQuorum?: boolean;
  /** Upper bound on the entry bytes in one AppendEntries (one entry always fits). Default 1 MiB. */
  readonly maxSizePerMsgBytes?: number;
  /** Maximum unacknowledged AppendEntries carrying entries, per follower. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Maximum payload bytes of proposed-but-uncommitted entries on a leader. Default 32 MiB. */
  readonly maxUncommittedEntriesBytes?: number;
  /** Maximum entry bytes handed out in one Ready's committedEntries (one always fits). Default 16 MiB. */
  readonly maxCommittedBytesPerReady?: number;
  /** Maximum ReadIndex requests a leader holds while confirming leadership. Default 1024. */
  readonly maxPendingReadIndexRequests?: number;
  /**
   * Last index the driver's state machine has already applied (it will not be
   * handed out again). Default: the storage snapshot's index. If larger, the
   * storage's initial ConfState must be the membership as of this index.
   */
  readonly applied?: number;
  /** Source of the randomized election timeouts. */
  readonly rng: Rng;
  /** TEST-ONLY: see TestingBugs. */
  readonly testingBugs?: TestingBugs;
}

export interface Failure<K extends string> {
  readonly kind: K;
  /** What went wrong and what the caller can do about it. */
  readonly message: string;
}

export type ProposeError =
  | (Failure<"not-leader"> & { readonly leader: NodeId })
  | (Failure<"transfer-in-progress"> & { readonly transferee: NodeId })
  | Failure<"uncommitted-bytes-exceeded">
  | Failure<"conf-change-pending">
  | Failure<"invalid-conf-change">;

/** A proposal was appended to the leader's log at (index, term); it is durable once applied. */
export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: ProposeError };

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: Failure<"no-leader" | "too-many-pending-reads"> };

export type TransferResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: Failure<"not-leader" | "not-voter" | "already-leader"> };

/** A linearizable read may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: number;
}

interface PendingRead {
  readonly from: NodeId;
  readonly requestCtx: number;
  readonly index: number;
  /** The ReadIndex round whose quorum echo confirms this read. */
  readonly round: number;
}

type CampaignKind = "pre-election" | "election" | "transfer";

const emptyData = new Uint8Array(0);

/** Consecutive rejections of a follower's acknowledged index that mean it lost entries. */
const lostMatchRejections = 3;

interface Settings {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly maxUncommittedEntriesBytes: number;
  readonly maxCommittedBytesPerReady: number;
  readonly maxPendingReadIndexRequests: number;
  readonly bugs: TestingBugs;
}

function settingsOf(config: RaftConfig): Settings {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) {
      throw new RangeError(`raft config ${name} must be a positive integer, got ${v}`);
    }
    return v;
  };
  const positive = (name: string, v: number) => {
    if (!(v > 0)) throw new RangeError(`raft config ${name} must be > 0, got ${v}`);
    return v;
  };
  if (typeof config.id !== "string" || config.id === "") {
    throw new RangeError("raft config id must be a non-empty node id");
  }
  const electionTicks = positiveInt("electionTicks", config.electionTicks ?? 10);
  const heartbeatTicks = positiveInt("heartbeatTicks", config.heartbeatTicks ?? 1);
  if (heartbeatTicks >= electionTicks) {
    throw new RangeError(
      `raft config heartbeatTicks (${heartbeatTicks}) must be < electionTicks (${electionTicks})`,
    );
  }
  return {
    electionTicks,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    maxSizePerMsgBytes: positive("maxSizePerMsgBytes", config.maxSizePerMsgBytes ?? 1 << 20),
    maxInflightMsgs: positiveInt("maxInflightMsgs", config.maxInflightMsgs ?? 256),
    maxUncommittedEntriesBytes: positive(
      "maxUncommittedEntriesBytes",
      config.maxUncommittedEntriesBytes ?? 32 << 20,
    ),
    maxCommittedBytesPerReady: positive(
      "maxCommittedBytesPerReady",
      config.maxCommittedBytesPerReady ?? 16 << 20,
    ),
    maxPendingReadIndexRequests: positiveInt(
      "maxPendingReadIndexRequests",
      config.maxPendingReadIndexRequests ?? 1024,
    ),
    bugs: config.testingBugs ?? {},
  };
}

export class Raft {
  readonly id: NodeId;
  readonly settings: Settings;
  readonly log: RaftLog;
  private readonly rng: Rng;

  term = 0;
  /** Whom we voted for in `term` ("" for nobody). */
  vote: NodeId = "";
  /** The leader of `term` as far as we know ("" for unknown). */
  lead: NodeId = "";
  role: Role = "follower";

  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  /** Per member (self included); meaningful on the leader only. */
  readonly prs = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  /** Output: messages to send once the current Ready is persisted. */
  msgs: RaftMessage[] = [];
  /** Output: reads confirmed since the last Ready. */
  readStates: ReadState[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  /** Leadership transfer target ("" when none is in progress). */
  leadTransferee: NodeId = "";
  /** Index of the latest conf-change entry proposed by this leader; none more until applied. */
  private pendingConfIndex = 0;
  /** Payload bytes of this leader's entries not yet handed out as committed. */
  private uncommittedBytes = 0;

  /** ReadIndex: latest round, highest round each peer echoed, reads awaiting their quorum. */
  private readRound = 0;
  private readonly readAcks = new Map<NodeId, number>();
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its own term. */
  private readsAwaitingCommit: { from: NodeId; requestCtx: number }[] = [];

  constructor(config: RaftConfig, storage: LogStorage) {
    this.settings = settingsOf(config);
    this.id = config.id;
    this.rng = config.rng;
    const { hardState, confState } = storage.initialState();
    const applied = config.applied ?? storage.snapshot().metadata.index;
    // A snapshot holds only committed state, so its index is committed even if
    // the hard state saying so was lost (a crash between the WAL writing the
    // snapshot and the hard state that followed it).
    const commit = Math.max(hardState.commit, storage.firstIndex() - 1);
    this.log = new RaftLog(storage, commit, applied);
    this.loadConf(confState);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.becomeFollower(this.term, "");
    // becomeFollower keeps the vote only when the term is unchanged, which it is here.
    assert(this.vote === hardState.vote, "restart must keep the persisted vote");
  }

  // ---- public operations (called through RawNode) ----

  tick(): void {
    if (this.role === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timeout fired). */
  campaign(): void {
    this.hup(this.settings.preVote ? "pre-election" : "election");
  }

  propose(data: Uint8Array): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return { ok: false, error: refused };
    return this.appendLocal("normal", data);
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return { ok: false, error: refused };
    if (this.pendingConfIndex > this.log.applied) {
      return {
        ok: false,
        error: {
          kind: "conf-change-pending",
          message: `a membership change at index ${this.pendingConfIndex} is not applied yet; retry after it is`,
        },
      };
    }
    const invalid = checkConfChange(this.confState(), cc);
    if (invalid !== undefined) {
      return { ok: false, error: { kind: "invalid-conf-change", message: invalid } };
    }
    const result = this.appendLocal("conf-change", encodeConfChange(cc));
    if (result.ok) this.pendingConfIndex = result.index;
    return result;
  }

  /**
   * Applies a committed membership change (the driver calls this while
   * applying the entry) and returns the new membership.
   */
  applyConfChange(cc: ConfChange): ConfState {
    if (checkConfChange(this.confState(), cc) === undefined) {
      if (cc.type === "remove-node") {
        this.voters.delete(cc.nodeId);
        this.learners.delete(cc.nodeId);
        this.prs.delete(cc.nodeId);
        this.readAcks.delete(cc.nodeId);
      } else {
        const asLearner = cc.type === "add-learner";
        this.learners.delete(cc.nodeId);
        (asLearner ? this.learners : this.voters).add(cc.nodeId);
        const pr = this.prs.get(cc.nodeId);
        if (pr) {
          pr.isLearner = asLearner;
        } else {
          const fresh = new Progress(
            this.log.lastIndex() + 1,
            this.settings.maxInflightMsgs,
            asLearner,
          );
          // Counts as active so check-quorum does not depose the leader before it answers.
          fresh.recentActive = true;
          this.prs.set(cc.nodeId, fresh);
        }
      }
    }
    if (this.leadTransferee !== "" && !this.voters.has(this.leadTransferee)) {
      this.leadTransferee = "";
    }
    if (this.role === "leader") {
      if (!this.voters.has(this.id)) {
        // Removed (its removal is committed): hand over by letting the rest elect.
        this.becomeFollower(this.term, "");
      } else {
        if (this.maybeCommit()) this.afterCommit();
        this.bcastAppend();
        this.releaseConfirmedReads();
      }
    }
    return this.confState();
  }

  readIndex(requestCtx: number): ReadIndexResult {
    if (this.role === "leader") return this.leaderReadIndex(this.id, requestCtx);
    if (this.lead === "") {
      return {
        ok: false,
        error: { kind: "no-leader", message: "no known leader to confirm the read; retry later" },
      };
    }
    this.send({ kind: "ReadIndex", from: this.id, to: this.lead, term: this.term, requestCtx });
    return { ok: true };
  }

  transferLeadership(target: NodeId): TransferResult {
    if (this.role !== "leader") {
      return {
        ok: false,
        error: {
          kind: "not-leader",
          message: `only the leader can transfer; leader is "${this.lead}"`,
        },
      };
    }
    if (target === this.id) {
      return {
        ok: false,
        error: { kind: "already-leader", message: `${target} is already the leader` },
      };
    }
    const pr = this.prs.get(target);
    if (!this.voters.has(target) || !pr) {
      return { ok: false, error: { kind: "not-voter", message: `${target} is not a voter` } };
    }
    if (this.leadTransferee === target) return { ok: true };
    // Transfer must finish within one election timeout, else it is abandoned (tickHeartbeat).
    this.electionElapsed = 0;
    this.leadTransferee = target;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.maybeSendAppend(target, true);
    return { ok: true };
  }

  reportUnreachable(id: NodeId): void {
    const pr = this.role === "leader" ? this.prs.get(id) : undefined;
    if (pr && pr.state === "replicate") pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.role === "leader" ? this.prs.get(id) : undefined;
    if (pr?.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the next heartbeat answer before probing, as after any probe.
    pr.probeSent = true;
  }

  /** The driver persisted entries up to the log's persistedIndex(). */
  onPersisted(): void {
    if (this.role !== "leader") return;
    const self = this.prs.get(this.id);
    if (self?.maybeUpdate(this.log.persistedIndex()) && this.maybeCommit()) {
      this.afterCommit();
      this.bcastAppend();
    }
  }

  /** Committed entries were handed to the driver: they no longer count as uncommitted. */
  reduceUncommittedSize(entries: readonly Entry[]): void {
    if (this.role !== "leader") return;
    let bytes = 0;
    for (const e of entries) bytes += e.data.byteLength;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  confState(): ConfState {
    return {
      voters: [...this.voters].sort(),
      learners: [...this.learners].sort(),
      votersOutgoing: [],
    };
  }

  promotable(): boolean {
    return this.voters.has(this.id) && !this.log.hasPendingSnapshot();
  }

  // ---- step: term bookkeeping shared by all roles ----

  step(m: RaftMessage): void {
    assert(m.to === this.id, `message for ${m.to} delivered to ${this.id}`);
    if (m.from === this.id) return;
    if (m.term > this.term) {
      if (m.kind === "RequestVote" && !m.leadershipTransfer && this.inLease()) {
        // Leader lease: we heard from a live leader within an election timeout,
        // so this candidate (perhaps a removed or partitioned node) is not needed.
        return;
      }
      const keepTerm =
        (m.kind === "RequestVote" && m.preVote) ||
        // A granted pre-vote carries the term the candidate would use; adopting
        // it would be exactly the term inflation pre-vote exists to prevent.
        (m.kind === "RequestVoteResponse" && m.preVote && m.voteGranted);
      if (!keepTerm) {
        const leader = m.kind === "AppendEntries" || m.kind === "InstallSnapshot" ? m.from : "";
        this.becomeFollower(m.term, leader);
      }
    } else if (m.term < this.term) {
      if (m.kind === "AppendEntries" && (this.settings.checkQuorum || this.settings.preVote)) {
        // A stale leader (or one partitioned away while we moved on): tell it our
        // term so it steps down. Without this, a node whose term ran ahead while
        // it could not win would never rejoin, since the lease makes others
        // ignore its votes.
        this.send({
          kind: "AppendEntriesResponse",
          from: this.id,
          to: m.from,
          term: this.term,
          success: false,
          matchIndex: m.prevLogIndex,
          rejectHintIndex: 0,
          rejectHintTerm: 0,
          readContext: 0,
        });
        return;
      }
      if (m.kind === "RequestVote" && m.preVote) {
        this.send({
          kind: "RequestVoteResponse",
          from: this.id,
          to: m.from,
          term: this.term,
          voteGranted: false,
          preVote: true,
        });
        return;
      }
      if (!(m.kind === "RequestVoteResponse" && this.settings.bugs.countStaleVotes)) return;
    }

    if (m.kind === "RequestVote") {
      this.handleRequestVote(m);
      return;
    }
    if (m.kind === "ReadIndexResponse") {
      // Valid whatever our role now: the leader confirmed this index in m.term.
      this.readStates.push({ index: m.index, requestCtx: m.requestCtx });
      return;
    }
    switch (this.role) {
      case "leader":
        this.stepLeader(m);
        return;
      case "candidate":
      case "pre-candidate":
        this.stepCandidate(m);
        return;
      case "follower":
        this.stepFollower(m);
        return;
    }
  }

  private inLease(): boolean {
    return (
      this.settings.checkQuorum &&
      this.lead !== "" &&
      this.electionElapsed < this.settings.electionTicks
    );
  }

  private handleRequestVote(m: RequestVote): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === "" && this.lead === "") ||
      (m.preVote && m.term > this.term);
    const logOk =
      this.settings.bugs.skipVoteLogCheck || this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (canVote && logOk) {
      this.send({
        kind: "RequestVoteResponse",
        from: this.id,
        to: m.from,
        term: m.term,
        voteGranted: true,
        preVote: m.preVote,
      });
      if (!m.preVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({
        kind: "RequestVoteResponse",
        from: this.id,
        to: m.from,
        term: this.term,
        voteGranted: false,
        preVote: m.preVote,
      });
    }
  }

  // ---- role transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = "";
    }
    this.lead = "";
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.settings.electionTicks + this.rng.int(0, this.settings.electionTicks - 1);
    this.leadTransferee = "";
    this.votes.clear();
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of this.prs) {
      this.prs.set(id, new Progress(next, this.settings.maxInflightMsgs, pr.isLearner));
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readRound = 0;
    this.readAcks.clear();
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = "follower";
  }

  private becomePreCandidate(): void {
    assert(this.role !== "leader", "a leader cannot become a pre-candidate");
    // Neither term nor vote changes: that is the point of pre-vote.
    this.votes.clear();
    this.lead = "";
    this.role = "pre-candidate";
  }

  private becomeCandidate(): void {
    assert(this.role !== "leader", "a leader cannot become a candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  private becomeLeader(): void {
    assert(this.role === "candidate", `only a candidate can become leader (was ${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    const self = this.prs.get(this.id)!;
    self.becomeReplicate();
    self.match = this.log.persistedIndex();
    self.next = this.log.lastIndex() + 1;
    self.recentActive = true;
    // Entries before lastIndex may hold an unapplied conf change: allow no new
    // one until everything up to here is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op lets the leader commit (and so learn the commit point of) the
    // entries of earlier terms (§5.4.2), and is what ReadIndex waits for.
    const noop = this.appendLocal("normal", emptyData);
    assert(noop.ok, "a new leader must be able to append its no-op");
  }

  private hup(kind: CampaignKind): void {
    if (this.role === "leader" || !this.promotable()) return;
    // Our membership may be stale until committed conf changes are applied.
    if (this.hasUnappliedConfChanges()) return;
    this.campaignAs(kind);
  }

  private campaignAs(kind: CampaignKind): void {
    const carried = this.settings.bugs.countStaleVotes ? new Map(this.votes) : undefined;
    let voteTerm: number;
    if (kind === "pre-election") {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (carried) for (const [id, granted] of carried) this.votes.set(id, granted);
    if (this.poll(this.id, true) === "won") {
      if (kind === "pre-election") this.campaignAs("election");
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({
        kind: "RequestVote",
        from: this.id,
        to: id,
        term: voteTerm,
        candidateId: this.id,
        lastLogIndex,
        lastLogTerm,
        preVote: kind === "pre-election",
        leadershipTransfer: kind === "transfer",
      });
    }
  }

  private poll(from: NodeId, granted: boolean) {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return voteResult(this.voters, this.votes);
  }

  private hasUnappliedConfChanges(): boolean {
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (this.log.committed < lo) return false;
    for (const e of this.log.slice(lo, this.log.committed + 1, Number.POSITIVE_INFINITY)) {
      if (e.type === "conf-change") return true;
    }
    return false;
  }

  // ---- ticks ----

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.settings.electionTicks) {
      this.electionElapsed = 0;
      if (this.settings.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, "");
        return;
      }
      // Abandon a transfer that did not finish within an election timeout.
      this.leadTransferee = "";
    }
    if (this.heartbeatElapsed >= this.settings.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /** Whether a quorum was heard from since the last check; starts a new period. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === this.id || this.prs.get(id)?.recentActive) active++;
    }
    for (const [id, pr] of this.prs) pr.recentActive = id === this.id;
    return active >= Math.floor(this.voters.size / 2) + 1;
  }

  // ---- leader ----

  private refuseProposal(): ProposeError | undefined {
    if (this.role !== "leader") {
      return {
        kind: "not-leader",
        leader: this.lead,
        message:
          this.lead === ""
            ? "no leader is known; retry later"
            : `not the leader; send the proposal to ${this.lead}`,
      };
    }
    if (this.leadTransferee !== "") {
      return {
        kind: "transfer-in-progress",
        transferee: this.leadTransferee,
        message: `leadership is moving to ${this.leadTransferee}; retry there shortly`,
      };
    }
    return undefined;
  }

  private appendLocal(type: EntryType, data: Uint8Array): ProposeResult {
    const bytes = data.byteLength;
    const max = this.settings.maxUncommittedEntriesBytes;
    if (this.uncommittedBytes > 0 && bytes > 0 && this.uncommittedBytes + bytes > max) {
      return {
        ok: false,
        error: {
          kind: "uncommitted-bytes-exceeded",
          message: `${this.uncommittedBytes} bytes are proposed but not committed (limit ${max}); retry once they commit`,
        },
      };
    }
    this.uncommittedBytes += bytes;
    const index = this.log.lastIndex() + 1;
    this.log.append([{ term: this.term, index, type, data }]);
    this.bcastAppend();
    return { ok: true, index, term: this.term };
  }

  private stepLeader(m: RaftMessage): void {
    if (m.kind === "ReadIndex") {
      this.leaderReadIndex(m.from, m.requestCtx);
      return;
    }
    const pr = this.prs.get(m.from);
    if (!pr) return; // not (or no longer) a member
    switch (m.kind) {
      case "AppendEntriesResponse":
        this.handleAppendEntriesResponse(m, pr);
        return;
      case "InstallSnapshotResponse":
        this.handleInstallSnapshotResponse(m, pr);
        return;
      default:
        // Vote answers after winning, or messages only a follower acts on.
        return;
    }
  }

  private handleAppendEntriesResponse(m: AppendEntriesResponse, pr: Progress): void {
    pr.recentActive = true;
    if (m.readContext > 0) this.onReadAck(m.from, m.readContext);
    if (!m.success) {
      let hint = m.rejectHintIndex;
      if (m.rejectHintTerm > 0) {
        hint = this.log.findConflictByTerm(m.rejectHintIndex, m.rejectHintTerm).index;
      }
      if (m.matchIndex === pr.match && m.rejectHintIndex < pr.match && pr.match > 0) {
        // The follower rejects the very index it acknowledged. Once, that can
        // be a reordered answer to an optimistic append; again and again, it
        // lost entries it had persisted (a disk that lied about fsync, a torn
        // synced record). Raft assumes that never happens; rather than wait
        // forever on a match that is gone, forget it and probe from the hint.
        if (++pr.matchRejections >= lostMatchRejections) {
          pr.forgetMatch(hint);
          this.maybeSendAppend(m.from, true);
          return;
        }
      }
      if (pr.maybeDecrTo(m.matchIndex, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    this.onAck(m.from, pr, m.matchIndex);
  }

  private handleInstallSnapshotResponse(m: InstallSnapshotResponse, pr: Progress): void {
    pr.recentActive = true;
    if (m.success) {
      this.onAck(m.from, pr, m.matchIndex);
    } else if (pr.state === "snapshot") {
      pr.pendingSnapshot = 0;
      pr.becomeProbe();
    }
  }

  /** A follower confirmed its log matches ours up to matchIndex. */
  private onAck(id: NodeId, pr: Progress, matchIndex: number): void {
    const wasPaused = pr.isPaused();
    const advanced = pr.maybeUpdate(matchIndex);
    if (advanced || (matchIndex === pr.match && pr.state === "probe")) {
      if (pr.state === "probe") {
        pr.becomeReplicate();
      } else if (pr.state === "snapshot") {
        if (pr.match + 1 >= this.log.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe(); // caught up to that snapshot but we compacted further since
        }
      } else {
        pr.inflights.freeLE(pr.match);
      }
      if (this.maybeCommit()) {
        this.afterCommit();
        this.bcastAppend();
      } else if (wasPaused) {
        this.maybeSendAppend(id, true);
      }
      while (this.maybeSendAppend(id, false)) {
        // keep the pipeline full up to the inflight bound
      }
      if (id === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.sendTimeoutNow(id);
      }
    } else if (pr.state === "probe") {
      // A heartbeat's answer (which names the follower's commit index when the
      // leader no longer knows the term at `match`): probe again, once per
      // heartbeat, in case the previous probe was lost.
      pr.probeSent = false;
      this.maybeSendAppend(id, true);
    } else if (pr.state === "replicate" && pr.match < this.log.lastIndex()) {
      // A heartbeat's answer while entries are outstanding. If every entry is
      // already in flight, an empty append at next-1 either gets acknowledged
      // or rejected, so lost AppendEntries are detected and resent.
      this.maybeSendAppend(id, true);
    }
  }

  private maybeCommit(): boolean {
    const mci = majorityIndex(this.voters, (id) => this.prs.get(id)?.match ?? 0);
    if (mci <= this.log.committed) return false;
    // Only entries of the current term commit by counting replicas (§5.4.2).
    if (!this.settings.bugs.commitPreviousTermEntries && this.log.term(mci) !== this.term) {
      return false;
    }
    this.log.commitTo(mci);
    return true;
  }

  private afterCommit(): void {
    if (this.readsAwaitingCommit.length === 0 || !this.committedInCurrentTerm()) return;
    // One heartbeat round confirms all of them.
    this.readRound++;
    for (const r of this.readsAwaitingCommit) {
      this.pendingReads.push({ ...r, index: this.log.committed, round: this.readRound });
    }
    this.readsAwaitingCommit = [];
    this.bcastHeartbeat();
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /**
   * Sends `to` the entries it lacks (or a snapshot when they are compacted).
   * With sendIfEmpty, sends an empty AppendEntries when there is nothing new,
   * which carries the commit index and detects lost messages.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || to === this.id) return false;
    if (pr.state === "snapshot" || (pr.state === "probe" && pr.probeSent)) return false;
    const windowFull = pr.state === "replicate" && pr.inflights.full();
    if (windowFull && !sendIfEmpty) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) return this.sendSnapshot(to, pr);
    const last = this.log.lastIndex();
    let entries: readonly Entry[] = [];
    if (!windowFull && pr.next <= last) {
      entries = this.log.slice(pr.next, last + 1, this.settings.maxSizePerMsgBytes);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      kind: "AppendEntries",
      from: this.id,
      to,
      term: this.term,
      leaderId: this.id,
      prevLogIndex,
      prevLogTerm,
      entries,
      leaderCommit: this.log.committed,
      readContext: this.readRound,
    });
    pr.sentEntries(entries.length, prevLogIndex + entries.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // A follower we have not heard from recently probably cannot take it now.
    if (!pr.recentActive) return false;
    const snapshot = this.log.storageSnapshot();
    assert(
      snapshot.metadata.index >= this.log.firstIndex() - 1,
      `storage snapshot at ${snapshot.metadata.index} does not cover the compacted log (first index ${this.log.firstIndex()})`,
    );
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send({
      kind: "InstallSnapshot",
      from: this.id,
      to,
      term: this.term,
      leaderId: this.id,
      snapshot,
    });
    return true;
  }

  private sendHeartbeat(to: NodeId, pr: Progress): void {
    // Names an index the follower is known to hold, so it never fails and may
    // advance the follower's commit index up to it.
    let prevLogIndex = pr.match;
    let prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      prevLogIndex = 0;
      prevLogTerm = 0;
    }
    this.send({
      kind: "AppendEntries",
      from: this.id,
      to,
      term: this.term,
      leaderId: this.id,
      prevLogIndex,
      prevLogTerm,
      entries: [],
      leaderCommit: this.log.committed,
      readContext: this.readRound,
    });
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, true);
    }
  }

  private bcastHeartbeat(): void {
    for (const [id, pr] of this.prs) {
      if (id !== this.id) this.sendHeartbeat(id, pr);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ kind: "TimeoutNow", from: this.id, to, term: this.term, leaderId: this.id });
  }

  // ---- ReadIndex (thesis §6.4) ----

  private leaderReadIndex(from: NodeId, requestCtx: number): ReadIndexResult {
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.respondRead(from, this.log.committed, requestCtx);
      return { ok: true };
    }
    const pending = this.pendingReads.length + this.readsAwaitingCommit.length;
    if (pending >= this.settings.maxPendingReadIndexRequests) {
      return {
        ok: false,
        error: {
          kind: "too-many-pending-reads",
          message: `${pending} reads are already waiting for leadership confirmation; retry shortly`,
        },
      };
    }
    if (!this.committedInCurrentTerm()) {
      // Until our no-op commits we do not know the full commit index (§6.4 step 1).
      this.readsAwaitingCommit.push({ from, requestCtx });
      return { ok: true };
    }
    this.readRound++;
    this.pendingReads.push({ from, requestCtx, index: this.log.committed, round: this.readRound });
    this.bcastHeartbeat();
    return { ok: true };
  }

  private onReadAck(from: NodeId, round: number): void {
    if (round <= (this.readAcks.get(from) ?? 0)) return;
    this.readAcks.set(from, round);
    this.releaseConfirmedReads();
  }

  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    const confirmed = majorityIndex(this.voters, (id) =>
      id === this.id ? this.readRound : (this.readAcks.get(id) ?? 0),
    );
    let k = 0;
    while (k < this.pendingReads.length && this.pendingReads[k]!.round <= confirmed) {
      const r = this.pendingReads[k]!;
      this.respondRead(r.from, r.index, r.requestCtx);
      k++;
    }
    if (k > 0) this.pendingReads = this.pendingReads.slice(k);
  }

  private respondRead(to: NodeId, index: number, requestCtx: number): void {
    if (to === this.id) {
      this.readStates.push({ index, requestCtx });
      return;
    }
    this.send({ kind: "ReadIndexResponse", from: this.id, to, term: this.term, index, requestCtx });
  }

  // ---- candidate ----

  private stepCandidate(m: RaftMessage): void {
    switch (m.kind) {
      case "AppendEntries":
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case "InstallSnapshot":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "RequestVoteResponse": {
        // Pre-vote answers count only in the pre-vote round, and vice versa.
        if (m.preVote !== (this.role === "pre-candidate")) return;
        const result = this.poll(m.from, m.voteGranted);
        if (result === "won") {
          if (this.role === "pre-candidate") {
            this.campaignAs("election");
          } else {
            this.becomeLeader();
          }
        } else if (result === "lost") {
          this.becomeFollower(this.term, "");
        }
        return;
      }
      default:
        return;
    }
  }

  // ---- follower ----

  private stepFollower(m: RaftMessage): void {
    switch (m.kind) {
      case "AppendEntries":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case "InstallSnapshot":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "TimeoutNow":
        this.hup("transfer");
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: AppendEntries): void {
    const reply = (success: boolean, matchIndex: number, hintIndex: number, hintTerm: number) =>
      this.send({
        kind: "AppendEntriesResponse",
        from: this.id,
        to: m.from,
        term: this.term,
        success,
        matchIndex,
        rejectHintIndex: hintIndex,
        rejectHintTerm: hintTerm,
        readContext: m.readContext,
      });
    if (m.prevLogIndex < this.log.committed) {
      // Everything up to our commit index matches any current leader.
      reply(true, this.log.committed, 0, 0);
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevLogIndex, m.prevLogTerm, m.leaderCommit, m.entries);
    if (lastNew !== undefined) {
      reply(true, lastNew, 0, 0);
      return;
    }
    const hint = this.log.findConflictByTerm(
      Math.min(m.prevLogIndex, this.log.lastIndex()),
      m.prevLogTerm,
    );
    reply(false, m.prevLogIndex, hint.index, hint.term);
  }

  private handleSnapshot(m: InstallSnapshot): void {
    const restored = this.restore(m);
    this.send({
      kind: "InstallSnapshotResponse",
      from: this.id,
      to: m.from,
      term: this.term,
      matchIndex: restored ? this.log.lastIndex() : this.log.committed,
      success: true,
    });
  }

  private restore(m: InstallSnapshot): boolean {
    const { index, term, conf } = m.snapshot.metadata;
    if (index <= this.log.committed) return false;
    assert(this.role === "follower", `${this.role} asked to restore a snapshot`);
    if (this.log.matchTerm(index, term)) {
      // We already hold that entry: just learn that it is committed.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(m.snapshot);
    this.loadConf(conf);
    return true;
  }

  private loadConf(conf: ConfState): void {
    assert(conf.votersOutgoing.length === 0, "joint configurations are not supported");
    this.voters.clear();
    this.learners.clear();
    this.prs.clear();
    const next = this.log.lastIndex() + 1;
    for (const id of conf.voters) {
      this.voters.add(id);
      this.prs.set(id, new Progress(next, this.settings.maxInflightMsgs, false));
    }
    for (const id of conf.learners) {
      this.learners.add(id);
      this.prs.set(id, new Progress(next, this.settings.maxInflightMsgs, true));
    }
  }

  private send(m: RaftMessage): void {
    this.msgs.push(m);
  }
}
