/**
 * The Raft driver: the only place where the pure core meets time, disk and
 * network. Order per Ready (see raft/raw-node.ts): persist (fsync) → mirror
 * into memory storage → send → apply → advance. Only one Ready is processed
 * at a time; proposals that arrive while an fsync is in flight pile up in the
 * core and go to disk together in the next Ready (group commit).
 *
 * Peer RPCs follow the proto contract (each Raft request is an RPC whose reply
 * is the peer's response message). On the receiving side a handler steps the
 * request into the core and waits for the core's response to that peer, which
 * appears in the next Ready after it is durable. A request the core answers
 * with nothing (stale term, duplicate) gets an empty reply (from = "").
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Clock } from "../../../common/clock.ts";
import { Code, ConnectError, unavailable } from "../../../common/errors.ts";
import {
  createGrpcClient,
  type GrpcClient,
  type GrpcClientOptions,
} from "../../../common/grpc-client.ts";
import type { Logger } from "../../../common/log.ts";
import type { Rng } from "../../../common/rng.ts";
import * as pb from "../../../proto/gen/understudy/raft/v1/raft_pb.ts";
import type { Fsm } from "../fsm/fsm.ts";
import {
  type ConfChange,
  createMemoryStorage,
  createRawNode,
  decodeConfChange,
  type MemoryStorage,
  type RaftMessage,
  type RawNode,
  type Ready,
  type RecoveredState,
  type Role,
  type Status,
} from "../raft/index.ts";
import type { DurableLog } from "../storage/index.ts";
import { coalesceAppends } from "./coalesce.ts";
import { assembleSnapshot, snapshotChunks, wire } from "./raft-wire.ts";

export interface PeerAddress {
  /** RaftService listener. */
  readonly peer: string;
  /** Client/API listener (for redirects). */
  readonly api: string;
}

export interface RaftDriverOptions {
  readonly nodeId: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly maxUncommittedEntriesBytes: number;
  readonly snapshotEntries: number;
  readonly rpcTimeoutMs: number;
  readonly durable: DurableLog;
  readonly recovered: RecoveredState;
  readonly fsm: Fsm;
  readonly rng: Rng;
  readonly clock: Clock;
  readonly log: Logger;
  /** Where a member can be reached; undefined when not known yet. */
  readonly addressOf: (id: string) => PeerAddress | undefined;
  /** Extra options of the peer clients (the cluster's peer token). */
  readonly peerClient?: GrpcClientOptions;
}

export interface LeaderInfo {
  readonly role: Role;
  readonly leaderId: string;
  readonly term: number;
}

/** Outcome of a committed proposal on this node. */
export interface Committed {
  readonly index: number;
  readonly result: ReturnType<Fsm["apply"]>;
}

export interface RaftDriver {
  readonly node: RawNode;
  readonly service: Partial<ServiceImpl<typeof pb.RaftService>>;
  start(): void;
  stop(): Promise<void>;
  status(): Status;
  leader(): LeaderInfo;
  onLeaderChange(listener: (info: LeaderInfo) => void): () => void;
  onApplied(listener: (index: number) => void): () => void;
  /** Appends `data` (an encoded CommandEnvelope) and resolves once it is applied here. */
  propose(data: Uint8Array, timeoutMs: number): Promise<Committed>;
  proposeConfChange(cc: ConfChange, timeoutMs: number): Promise<number>;
  /** Linearizable read barrier. */
  readBarrier(timeoutMs: number): Promise<void>;
  transferLeadership(target: string): void;
}

interface Waiter {
  readonly gen: number;
  /** Delayed responses (ReadIndexResponse) are not ended at idle, only by timeout. */
  readonly delayed: boolean;
  resolve(msg: RaftMessage | null): void;
}

interface PendingProposal {
  readonly term: number;
  resolve(c: Committed): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface PendingRead {
  index: number;
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const responseKind = {
  AppendEntries: "AppendEntriesResponse",
  RequestVote: "RequestVoteResponse",
  InstallSnapshot: "InstallSnapshotResponse",
  ReadIndex: "ReadIndexResponse",
} as const;

export function createRaftDriver(opts: RaftDriverOptions): RaftDriver {
  const { nodeId, fsm, durable, log } = opts;
  const storage: MemoryStorage = createMemoryStorage(opts.recovered);
  const snapIndex = opts.recovered.snapshot.metadata.index;
  if (snapIndex > 0) fsm.restore(opts.recovered.snapshot.data);
  const node = createRawNode(
    {
      id: nodeId,
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks,
      preVote: opts.preVote,
      checkQuorum: opts.checkQuorum,
      maxSizePerMsgBytes: opts.maxSizePerMsgBytes,
      maxInflightMsgs: opts.maxInflightMsgs,
      maxUncommittedEntriesBytes: opts.maxUncommittedEntriesBytes,
      applied: snapIndex,
      rng: opts.rng,
    },
    storage,
  );

  let stopped = false;
  let ticker: NodeJS.Timeout | undefined;
  let pumping = false;
  let readyGen = 0;
  let lastSnapshotIndex = snapIndex;
  let snapshotting = false;
  let leaderInfo: LeaderInfo = {
    role: "follower",
    leaderId: "",
    term: opts.recovered.hardState.term,
  };
  const leaderListeners = new Set<(i: LeaderInfo) => void>();
  const appliedListeners = new Set<(index: number) => void>();
  const waiters = new Map<string, Waiter[]>();
  const proposals = new Map<number, PendingProposal>();
  const confProposals = new Map<number, PendingProposal>();
  const reads = new Map<number, PendingRead>();
  let readCtx = 0;
  let ticks = 0;
  /**
   * A follower forwards a read to the leader it knows. If that leader has
   * just died (or the message was lost), nothing ever answers, and a read
   * issued during an election waited out its whole timeout (5 s) although a
   * new leader was there after ~0.5 s: chain watches of the encoders, for
   * one, then missed a handover's epoch change and their pushes were fenced
   * off. Like etcd's read loop (readIndexRetryTime), reads not yet confirmed
   * are asked again when a leader becomes known and every election timeout.
   * A duplicate answer is harmless (the first one settles the read).
   */
  const retryReads = () => {
    if (stopped) return;
    let asked = false;
    for (const [ctx, r] of reads) {
      // No leader known: the next leader change or period asks again.
      if (r.index === 0 && node.readIndex(ctx).ok) asked = true;
    }
    if (asked) pump();
  };
  const clients = new Map<string, { address: string; client: GrpcClient<typeof pb.RaftService> }>();

  // ---------- receiving side ----------

  const waitFor = (peer: string, kind: string, delayed: boolean): Promise<RaftMessage | null> =>
    new Promise((resolve) => {
      const key = `${peer}|${kind}`;
      let list = waiters.get(key);
      if (!list) {
        list = [];
        waiters.set(key, list);
      }
      const w: Waiter = {
        gen: readyGen,
        delayed,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        const l = waiters.get(key);
        const i = l?.indexOf(w) ?? -1;
        if (l && i >= 0) l.splice(i, 1);
        resolve(null);
      }, opts.rpcTimeoutMs);
      list.push(w);
    });

  /** Steps a request from a peer and returns the core's response to it (or null). */
  const exchange = async (msg: RaftMessage, kind: string, delayed = false) => {
    if (stopped) throw unavailable(`node ${nodeId} is stopping`);
    if (msg.to !== nodeId) {
      throw new ConnectError(
        `message for "${msg.to}" reached node "${nodeId}"`,
        Code.FailedPrecondition,
      );
    }
    const reply = waitFor(msg.from, kind, delayed);
    node.step(msg);
    pump();
    return reply;
  };

  const service: Partial<ServiceImpl<typeof pb.RaftService>> = {
    async appendEntries(req) {
      const r = await exchange(wire.appendEntriesFrom(req), responseKind.AppendEntries);
      return r?.kind === "AppendEntriesResponse"
        ? create(pb.AppendEntriesResponseSchema, wire.appendEntriesResponse(r))
        : create(pb.AppendEntriesResponseSchema);
    },
    async requestVote(req) {
      const r = await exchange(wire.requestVoteFrom(req), responseKind.RequestVote);
      return r?.kind === "RequestVoteResponse"
        ? create(pb.RequestVoteResponseSchema, wire.requestVoteResponse(r))
        : create(pb.RequestVoteResponseSchema);
    },
    async installSnapshot(chunks) {
      let assembled: Awaited<ReturnType<typeof assembleSnapshot>>;
      try {
        assembled = await assembleSnapshot(chunks);
      } catch (err) {
        throw new ConnectError((err as Error).message, Code.FailedPrecondition);
      }
      const r = await exchange(assembled.msg, responseKind.InstallSnapshot);
      return r?.kind === "InstallSnapshotResponse"
        ? create(pb.InstallSnapshotResponseSchema, wire.installSnapshotResponse(r))
        : create(pb.InstallSnapshotResponseSchema);
    },
    async timeoutNow(req) {
      const msg = wire.timeoutNowFrom(req);
      if (msg.to !== nodeId) {
        throw new ConnectError(
          `message for "${msg.to}" reached node "${nodeId}"`,
          Code.FailedPrecondition,
        );
      }
      node.step(msg);
      pump();
      return create(pb.TimeoutNowResponseSchema, {
        from: nodeId,
        to: msg.from,
        term: BigInt(node.status().term),
        accepted: true,
      });
    },
    async readIndex(req) {
      const r = await exchange(wire.readIndexFrom(req), responseKind.ReadIndex, true);
      return r?.kind === "ReadIndexResponse"
        ? create(pb.ReadIndexResponseSchema, wire.readIndexResponse(r))
        : create(pb.ReadIndexResponseSchema);
    },
  };

  // ---------- sending side ----------

  const clientFor = (id: string): GrpcClient<typeof pb.RaftService> | undefined => {
    const addr = opts.addressOf(id)?.peer;
    if (!addr) return undefined;
    const have = clients.get(id);
    if (have && have.address === addr) return have.client;
    have?.client.close();
    const client = createGrpcClient(pb.RaftService, addr, {
      ...opts.peerClient,
      keepaliveMs: 10_000,
      channelOptions: {
        // Reconnect fast after a peer restarts: failover time depends on it.
        "grpc.initial_reconnect_backoff_ms": 50,
        "grpc.max_reconnect_backoff_ms": 500,
      },
    });
    clients.set(id, { address: addr, client });
    return client;
  };

  const deliverReply = (m: RaftMessage | null) => {
    if (stopped || !m || m.from === "") return;
    node.step(m);
    pump();
  };

  const send = (m: RaftMessage) => {
    // Responses answer an RPC that is waiting for them.
    if (
      m.kind === "AppendEntriesResponse" ||
      m.kind === "RequestVoteResponse" ||
      m.kind === "InstallSnapshotResponse" ||
      m.kind === "ReadIndexResponse"
    ) {
      const list = waiters.get(`${m.to}|${m.kind}`);
      const w = list?.shift();
      w?.resolve(m);
      return;
    }
    const client = clientFor(m.to);
    if (!client) {
      if (m.kind === "AppendEntries" || m.kind === "InstallSnapshot") node.reportUnreachable(m.to);
      if (m.kind === "InstallSnapshot") node.reportSnapshot(m.to, false);
      return;
    }
    const callOpts = { timeoutMs: opts.rpcTimeoutMs };
    const failed = (err: unknown) => {
      if (stopped) return;
      log.debug("peer rpc failed", { peer: m.to, kind: m.kind, err });
      if (m.kind === "AppendEntries" || m.kind === "InstallSnapshot") node.reportUnreachable(m.to);
      if (m.kind === "InstallSnapshot") node.reportSnapshot(m.to, false);
      pump();
    };
    switch (m.kind) {
      case "AppendEntries":
        client
          .appendEntries(wire.appendEntries(m), callOpts)
          .then((r) => deliverReply(r.from ? wire.appendEntriesResponseFrom(r) : null), failed);
        return;
      case "RequestVote":
        client
          .requestVote(wire.requestVote(m), callOpts)
          .then((r) => deliverReply(r.from ? wire.requestVoteResponseFrom(r) : null), failed);
        return;
      case "TimeoutNow":
        client.timeoutNow(wire.timeoutNow(m), callOpts).then(() => undefined, failed);
        return;
      case "ReadIndex":
        client
          .readIndex(wire.readIndex(m), callOpts)
          .then((r) => deliverReply(r.from ? wire.readIndexResponseFrom(r) : null), failed);
        return;
      case "InstallSnapshot": {
        const addresses: Record<string, string> = {};
        for (const id of [
          ...m.snapshot.metadata.conf.voters,
          ...m.snapshot.metadata.conf.learners,
        ]) {
          const a = opts.addressOf(id);
          if (a) addresses[id] = a.peer;
        }
        client
          .installSnapshot(snapshotChunks(m, addresses), {
            timeoutMs: Math.max(opts.rpcTimeoutMs, 30_000),
          })
          .then((r) => {
            if (stopped) return;
            node.reportSnapshot(m.to, r.success);
            deliverReply(r.from ? wire.installSnapshotResponseFrom(r) : null);
          }, failed);
        return;
      }
    }
  };

  // ---------- the Ready loop ----------

  const setLeader = (info: LeaderInfo) => {
    const changed =
      info.role !== leaderInfo.role ||
      info.leaderId !== leaderInfo.leaderId ||
      info.term !== leaderInfo.term;
    const lostLeadership = leaderInfo.role === "leader" && info.role !== "leader";
    leaderInfo = info;
    if (lostLeadership) {
      const err = unavailable(
        `node ${nodeId} lost leadership before the write committed; it may or may not apply: retry with the same request id`,
      );
      for (const p of [...proposals.values(), ...confProposals.values()]) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      proposals.clear();
      confProposals.clear();
    }
    if (changed) for (const l of leaderListeners) l(info);
    // Outside this Ready's processing: the retry is a new step of the node.
    if (changed && info.leaderId !== "" && reads.size > 0) queueMicrotask(retryReads);
  };

  const applyEntries = (rd: Ready) => {
    if (rd.snapshot && rd.snapshot.metadata.index > fsm.appliedIndex()) {
      fsm.restore(rd.snapshot.data);
      lastSnapshotIndex = rd.snapshot.metadata.index;
    }
    for (const e of rd.committedEntries) {
      if (e.index <= fsm.appliedIndex()) continue;
      if (e.type === "conf-change") {
        node.applyConfChange(decodeConfChange(e.data));
        fsm.skip(e.index, e.term);
        settle(confProposals, e.index, e.term, { ok: true });
      } else {
        const result = fsm.apply(e.index, e.term, e.data);
        settle(proposals, e.index, e.term, result);
      }
    }
    for (const rs of rd.readStates) {
      const r = reads.get(rs.requestCtx);
      if (r) r.index = rs.index;
    }
    const applied = fsm.appliedIndex();
    for (const [ctx, r] of reads) {
      if (r.index > 0 && applied >= r.index) {
        clearTimeout(r.timer);
        reads.delete(ctx);
        r.resolve();
      }
    }
    if (rd.committedEntries.length > 0) for (const l of appliedListeners) l(applied);
  };

  const settle = (
    table: Map<number, PendingProposal>,
    index: number,
    term: number,
    result: ReturnType<Fsm["apply"]>,
  ) => {
    const p = table.get(index);
    if (!p) return;
    table.delete(index);
    clearTimeout(p.timer);
    if (p.term === term) p.resolve({ index, result });
    else {
      p.reject(
        unavailable(
          `write at index ${index} was replaced after a leader change: it did not apply; retry`,
        ),
      );
    }
  };

  /**
   * Takes a snapshot once `snapshotEntries` more entries are applied. The
   * state is captured synchronously (consistent at `applied`); writing it
   * (snapshot file, fsyncs, WAL marker) and compacting run in the background
   * so the Ready loop keeps going: a leader that stopped processing Readies
   * for the length of a snapshot write sends no heartbeats and, with a
   * 300–600 ms election timeout, loses its leadership every `snapshotEntries`
   * writes once the state is large or the disk is slow.
   */
  const maybeSnapshot = () => {
    const applied = fsm.appliedIndex();
    if (snapshotting || applied - lastSnapshotIndex < opts.snapshotEntries) return;
    const snap = storage.createSnapshot(applied, node.status().conf, fsm.snapshot());
    snapshotting = true;
    // Commit-only hard states are not written (see processReady), so the
    // durable commit index may trail `applied`; a snapshot may only cover
    // durably committed entries, so the current hard state goes first. Both
    // are queued in this turn, so no Ready's save lands between them.
    const saved = Promise.all([
      durable.save({ hardState: storage.initialState().hardState }),
      durable.saveSnapshot(snap),
    ]);
    void (async () => {
      try {
        await saved;
        lastSnapshotIndex = Math.max(lastSnapshotIndex, applied);
        // Keep a tail for recently active followers; they catch up from
        // entries rather than a whole snapshot. compactHint never exceeds
        // applied.
        const compactTo = Math.min(node.compactHint(), applied);
        if (compactTo >= storage.firstIndex()) storage.compact(compactTo);
        await durable.compact(compactTo);
      } catch (err) {
        if (!stopped) fatal(err);
      } finally {
        snapshotting = false;
      }
    })();
  };

  /**
   * A failed fsync or a broken invariant: continuing could acknowledge what
   * is not durable. Stop the process; the supervisor restarts it and
   * recovery replays the WAL.
   */
  const fatal = (err: unknown) => {
    log.error("raft driver failed; exiting", { err });
    process.exitCode = 70;
    setImmediate(() => process.exit(70));
  };

  const processReady = async (rd: Ready) => {
    readyGen++;
    if (rd.softState) {
      const st = node.status();
      setLeader({ role: rd.softState.role, leaderId: rd.softState.leader, term: st.term });
    } else if (rd.hardState && rd.hardState.term !== leaderInfo.term) {
      setLeader({ ...leaderInfo, term: rd.hardState.term });
    }
    // A Ready that only advances the commit index (mustSync false) is not
    // written: the commit index is volatile in Raft (a restarted node learns
    // it again from the leader), and an fsync here would sit on every
    // write's commit path. Term, vote, entries and snapshots are always
    // durable before any message that depends on them is sent.
    if (rd.snapshot || rd.entries.length > 0 || (rd.hardState && rd.mustSync)) {
      await durable.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
    }
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    for (const m of coalesceAppends(rd.messages, opts.maxSizePerMsgBytes)) send(m);
    applyEntries(rd);
    node.advance(rd);
  };

  const endIdleWaiters = () => {
    for (const [key, list] of waiters) {
      const keep = list.filter((w) => w.delayed);
      for (const w of list) if (!w.delayed) w.resolve(null);
      if (keep.length > 0) waiters.set(key, keep);
      else waiters.delete(key);
    }
  };

  const pump = () => {
    if (pumping || stopped) return;
    pumping = true;
    void (async () => {
      try {
        while (!stopped && node.hasReady()) {
          await processReady(node.ready());
        }
        if (!stopped) {
          // Every request stepped so far has had its Ready: those without a
          // response get an empty reply now.
          endIdleWaiters();
          maybeSnapshot();
        }
      } catch (err) {
        fatal(err);
      } finally {
        pumping = false;
      }
      if (!stopped && node.hasReady()) pump();
    })();
  };

  const driver: RaftDriver = {
    node,
    service,
    start() {
      ticker = setInterval(() => {
        node.tick();
        if (++ticks % opts.electionTicks === 0 && reads.size > 0) retryReads();
        pump();
      }, opts.tickMs);
      pump();
    },
    async stop() {
      stopped = true;
      if (ticker) clearInterval(ticker);
      for (const list of waiters.values()) for (const w of list) w.resolve(null);
      waiters.clear();
      const err = unavailable(`node ${nodeId} is shutting down`);
      for (const p of [...proposals.values(), ...confProposals.values()]) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      for (const r of reads.values()) {
        clearTimeout(r.timer);
        r.reject(err);
      }
      for (const c of clients.values()) c.client.close();
      clients.clear();
      // Let an in-flight fsync or snapshot write finish before the caller closes the WAL.
      while (pumping || snapshotting) await new Promise((r) => setTimeout(r, 5));
    },
    status: () => node.status(),
    leader: () => leaderInfo,
    onLeaderChange(l) {
      leaderListeners.add(l);
      return () => leaderListeners.delete(l);
    },
    onApplied(l) {
      appliedListeners.add(l);
      return () => appliedListeners.delete(l);
    },
    propose(data, timeoutMs) {
      return new Promise<Committed>((resolve, reject) => {
        if (stopped) return reject(unavailable(`node ${nodeId} is shutting down`));
        const r = node.propose(data);
        if (!r.ok) return reject(proposeError(r.error.kind, r.error.message));
        const timer = setTimeout(() => {
          proposals.delete(r.index);
          reject(
            new ConnectError(
              `write not applied within ${timeoutMs} ms; it may still apply: retry with the same request id`,
              Code.DeadlineExceeded,
            ),
          );
        }, timeoutMs);
        proposals.set(r.index, { term: r.term, resolve, reject, timer });
        pump();
      });
    },
    proposeConfChange(cc, timeoutMs) {
      return new Promise<number>((resolve, reject) => {
        const r = node.proposeConfChange(cc);
        if (!r.ok) return reject(proposeError(r.error.kind, r.error.message));
        const timer = setTimeout(() => {
          confProposals.delete(r.index);
          reject(
            new ConnectError(
              `membership change not applied within ${timeoutMs} ms`,
              Code.DeadlineExceeded,
            ),
          );
        }, timeoutMs);
        confProposals.set(r.index, {
          term: r.term,
          resolve: (c) => resolve(c.index),
          reject,
          timer,
        });
        pump();
      });
    },
    readBarrier(timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        if (stopped) return reject(unavailable(`node ${nodeId} is shutting down`));
        const ctx = ++readCtx;
        const r = node.readIndex(ctx);
        if (!r.ok) {
          return reject(
            unavailable(`linearizable read not possible now (${r.error.message}); retry shortly`),
          );
        }
        const timer = setTimeout(() => {
          reads.delete(ctx);
          reject(
            unavailable(
              `could not confirm leadership for a linearizable read within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        reads.set(ctx, { index: 0, resolve, reject, timer });
        pump();
      });
    },
    transferLeadership(target) {
      const r = node.transferLeadership(target);
      if (!r.ok) throw new ConnectError(r.error.message, Code.FailedPrecondition);
      pump();
    },
  };
  return driver;
}

function proposeError(kind: string, message: string): ConnectError {
  switch (kind) {
    case "not-leader":
    case "transfer-in-progress":
      return new ConnectError(message, Code.Unavailable);
    case "uncommitted-bytes-exceeded":
      return new ConnectError(message, Code.ResourceExhausted);
    default:
      return new ConnectError(message, Code.FailedPrecondition);
  }
}
