/**
 * Deterministic whole-cluster simulation (in the spirit of TigerBeetle's VOPR
 * and FoundationDB's simulator): 3 or 5 pure Raft cores in one process, over a
 * simulated network and disk, with crashes, partitions and membership changes,
 * all driven by one seed. Each run has a chaos phase, then heals every fault
 * and requires a leader to commit a probe that every live member applies
 * within `livenessTicks` (liveness), while the checkers (checker.ts) watch
 * safety throughout. The same seed always replays the same run.
 *
 * Time: one tick is 10 time units; messages take 1-4 units (more when
 * delayed), fsyncs 0-3 units (more on a slow disk). Each node ticks on its own
 * phase. Events at the same unit run in the order they were scheduled.
 */
import { createRng, type Rng } from "../../common/rng.ts";
import {
  bootstrapState,
  type ConfState,
  createMemoryStorage,
  createRawNode,
  decodeConfChange,
  emptyConfState,
  type MemoryStorage,
  type NodeId,
  type RaftConfig,
  type RaftMessage,
  type RawNode,
  type Ready,
  type TestingBugs,
} from "../../coordinator/src/raft/index.ts";
import { Checker, type Violation, ViolationError } from "./checker.ts";
import { SimDisk } from "./disk.ts";
import { applyEntry, decodeFsm, encodeFsm, type FsmState, initialFsmState } from "./fsm.ts";

export interface SimOptions {
  readonly seed: number;
  /** Founding voters: 3 or 5 (default: 3 for even seeds, 5 for odd). */
  readonly nodes?: 3 | 5;
  /** Ticks of chaos before everything heals. Default 800. */
  readonly ticks?: number;
  /** Ticks after healing within which a probe must commit everywhere. Default 200. */
  readonly livenessTicks?: number;
  /** Propose membership changes during the chaos phase. Default true. */
  readonly membership?: boolean;
  /** TEST-ONLY: deliberately broken Raft rules (see RaftConfig.testingBugs). */
  readonly testingBugs?: TestingBugs;
  /** Receives a readable trace of the run (faults, elections, violations). */
  readonly trace?: (line: string) => void;
}

export interface SimStats {
  nodes: number;
  ticks: number;
  elections: number;
  committed: number;
  acked: number;
  reads: number;
  crashes: number;
  faults: number;
  confChanges: number;
  snapshotsInstalled: number;
  messages: number;
  dropped: number;
  tornRecords: number;
  /** Ticks from healing to the probe being applied everywhere (-1 if never). */
  recoveryTicks: number;
}

/** The additive part of SimStats (summed over seeds by run.ts). */
export type SimCounters = Omit<SimStats, "nodes" | "recoveryTicks">;

export function zeroCounters(): SimCounters {
  return {
    ticks: 0,
    elections: 0,
    committed: 0,
    acked: 0,
    reads: 0,
    crashes: 0,
    faults: 0,
    confChanges: 0,
    snapshotsInstalled: 0,
    messages: 0,
    dropped: 0,
    tornRecords: 0,
  };
}

export interface SimResult {
  readonly seed: number;
  readonly violation?: Violation;
  readonly stats: SimStats;
}

const UNITS_PER_TICK = 10;
const WHEEL_UNITS = 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface PendingProposal {
  readonly id: string;
  readonly term: number;
}

class SimNode {
  up = false;
  decommissioned = false;
  incarnation = 0;
  raw!: RawNode;
  storage!: MemoryStorage;
  fsm: FsmState = initialFsmState;
  conf: ConfState = emptyConfState;
  persisting = false;
  lastSnapIndex = 0;
  lastSeenCommit = 0;
  checkedLeaderTerm = 0;
  readonly proposals = new Map<number, PendingProposal>();
  /** Pending reads: requestCtx -> highest acknowledged write index when issued. */
  readonly reads = new Map<number, number>();
  /** Extra network delay on every message to or from this node (slow node). */
  linkExtraUnits = 0;
  fsyncExtraUnits = 0;
  /** Tick since which the committed membership has not included this node (-1: it does). */
  outOfConfSince = -1;

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
    readonly rng: Rng,
  ) {}
}

interface LinkFault {
  readonly blocks: (from: NodeId, to: NodeId) => boolean;
}

interface Weather {
  drop: number;
  dup: number;
  /** Delayed by up to 4 ticks, so overtaken by later messages. */
  reorder: number;
  /** Stuck for up to 60 ticks (longer than election timeouts), then delivered. */
  stall: number;
}

const calm: Weather = { drop: 0, dup: 0, reorder: 0, stall: 0 };
const drizzle: Weather = { drop: 0.01, dup: 0.01, reorder: 0.02, stall: 0.002 };

export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}

class Simulation {
  private readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly faultRng: Rng;
  private readonly clientRng: Rng;
  private readonly diskRng: Rng;
  private readonly checker: Checker = new Checker();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly founders: NodeId[];
  private readonly maxNodes: number;
  private readonly chaosTicks: number;
  private readonly livenessTicks: number;
  private readonly raftConfig: Omit<RaftConfig, "id" | "rng">;
  private readonly snapshotEvery: number;
  private readonly keepEntries: number;
  private readonly proposalRate: number;
  private readonly faultRate: number;
  private readonly trace: (line: string) => void;

  private now = 0;
  private tick = 0;
  private readonly wheel: (() => void)[][] = Array.from({ length: WHEEL_UNITS }, () => []);
  private readonly agenda = new Map<number, (() => void)[]>();
  private readonly linkFaults = new Set<LinkFault>();
  private blockedLinks = new Set<string>();
  private weather: Weather = drizzle;
  private weatherToken = 0;
  private aggressiveCompaction = false;
  private healed = false;
  private committedConf: ConfState = emptyConfState;
  private committedConfIndex = 0;
  private probe: { node: SimNode; index: number; term: number } | undefined;
  private probeSeq = 0;
  private proposalSeq = 0;
  private readSeq = 0;
  private done = false;
  private readonly stats: SimStats;

  constructor(private readonly opts: SimOptions) {
    this.rng = createRng(opts.seed);
    this.netRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.clientRng = this.rng.fork();
    this.diskRng = this.rng.fork();
    const n = opts.nodes ?? (opts.seed % 2 === 0 ? 3 : 5);
    this.founders = Array.from({ length: n }, (_, k) => `n${k + 1}`);
    this.maxNodes = n + 2;
    this.chaosTicks = opts.ticks ?? 800;
    this.livenessTicks = opts.livenessTicks ?? 200;
    const r = this.rng;
    this.raftConfig = {
      electionTicks: 10,
      heartbeatTicks: r.pick([1, 1, 2, 3]),
      preVote: r.chance(0.85),
      checkQuorum: r.chance(0.85),
      maxSizePerMsgBytes: r.pick([40, 200, 1 << 20]),
      maxInflightMsgs: r.pick([1, 2, 4, 256]),
      maxUncommittedEntriesBytes: r.pick([64, 1 << 20]),
      ...(opts.testingBugs ? { testingBugs: opts.testingBugs } : {}),
    };
    this.snapshotEvery = r.pick([5, 20, 100]);
    this.keepEntries = r.pick([0, 5, 50]);
    this.proposalRate = 0.2 + 0.6 * r.next();
    this.faultRate = 0.02 + 0.06 * r.next();
    this.trace = opts.trace ?? (() => {});
    this.stats = { nodes: n, recoveryTicks: -1, ...zeroCounters() };
  }

  run(): SimResult {
    let violation: Violation | undefined;
    try {
      this.trace(
        `seed ${this.opts.seed}: ${this.founders.length} nodes, raft ${JSON.stringify({
          ...this.raftConfig,
          testingBugs: undefined,
        })}, snapshotEvery ${this.snapshotEvery}, keep ${this.keepEntries}`,
      );
      for (const id of this.founders) {
        const node = this.addNode(id, new SimDisk(bootstrapState(this.founders)));
        this.restart(node);
      }
      this.committedConf = { voters: [...this.founders].sort(), learners: [], votersOutgoing: [] };
      this.committedConfIndex = this.founders.length;
      const endUnits = (this.chaosTicks + this.livenessTicks + 1) * UNITS_PER_TICK;
      for (this.now = 0; this.now < endUnits && !this.done; this.now++) {
        if (this.now % UNITS_PER_TICK === 0) this.onTick(this.now / UNITS_PER_TICK);
        const bucket = this.wheel[this.now % WHEEL_UNITS]!;
        for (let k = 0; k < bucket.length; k++) bucket[k]!();
        bucket.length = 0;
      }
      if (!this.done) this.livenessFailure();
    } catch (err) {
      violation =
        err instanceof ViolationError
          ? err.violation
          : {
              kind: "core-invariant",
              tick: this.tick,
              message: err instanceof Error ? (err.stack ?? err.message) : String(err),
            };
      this.trace(`VIOLATION ${violation.kind} at tick ${violation.tick}: ${violation.message}`);
    }
    this.stats.ticks = this.tick;
    this.stats.elections = this.checker.elections;
    this.stats.acked = this.checker.acked.length;
    for (const n of this.nodes.values()) this.stats.tornRecords += n.disk.tornRecords;
    return { seed: this.opts.seed, ...(violation ? { violation } : {}), stats: this.stats };
  }

  // ---- scheduling ----

  private schedule(delayUnits: number, fn: () => void): void {
    if (!(delayUnits >= 0 && delayUnits < WHEEL_UNITS)) {
      throw new Error(`sim: delay ${delayUnits} outside the event wheel`);
    }
    this.wheel[(this.now + delayUnits) % WHEEL_UNITS]!.push(fn);
  }

  private atTick(tick: number, fn: () => void): void {
    const list = this.agenda.get(tick);
    if (list) list.push(fn);
    else this.agenda.set(tick, [fn]);
  }

  private onTick(tick: number): void {
    this.tick = tick;
    this.checker.tick = tick;
    const due = this.agenda.get(tick);
    if (due) {
      this.agenda.delete(tick);
      for (const fn of due) fn();
    }
    if (tick < this.chaosTicks) {
      if (this.faultRng.chance(this.faultRate)) this.nemesis();
      if (this.clientRng.chance(this.proposalRate)) this.clientPropose();
      if (this.clientRng.chance(0.1)) this.clientRead();
      this.decommissionRemoved();
    } else if (!this.healed) {
      this.healEverything();
    } else {
      this.livenessStep();
    }
    if (tick % 100 === 0) this.checkLogMatching();
  }

  // ---- nodes ----

  private addNode(id: NodeId, disk: SimDisk): SimNode {
    const node = new SimNode(id, disk, this.rng.fork());
    this.nodes.set(id, node);
    const phase = this.rng.int(0, UNITS_PER_TICK - 1);
    const loop = () => {
      if (node.up) {
        node.raw.tick();
        this.afterEvent(node);
      }
      this.schedule(UNITS_PER_TICK, loop);
    };
    this.schedule(phase, loop);
    return node;
  }

  private restart(node: SimNode): void {
    if (node.up || node.decommissioned) return;
    const recovered = node.disk.recover();
    const snap = recovered.snapshot.metadata;
    node.storage = createMemoryStorage(recovered);
    node.fsm = snap.index > 0 ? decodeFsm(recovered.snapshot.data) : initialFsmState;
    node.conf = snap.conf;
    node.lastSnapIndex = snap.index;
    node.lastSeenCommit = recovered.hardState.commit;
    node.checkedLeaderTerm = 0;
    node.raw = createRawNode(
      { ...this.raftConfig, id: node.id, rng: node.rng.fork(), applied: snap.index },
      node.storage,
    );
    node.up = true;
    node.incarnation++;
    this.checker.onRestore(node.id, snap.index, snap.term, node.fsm.hash);
    this.afterEvent(node);
  }

  private crash(node: SimNode, why: string): void {
    if (!node.up) return;
    node.up = false;
    node.incarnation++;
    node.persisting = false;
    node.disk.crash(this.diskRng);
    node.proposals.clear();
    node.reads.clear();
    this.stats.crashes++;
    this.trace(`t=${this.tick} ${why} ${node.id}`);
  }

  /** Called after anything happened to a node: observe it, then drive its Ready loop. */
  private afterEvent(node: SimNode): void {
    if (!node.up) return;
    const bs = node.raw.basicStatus();
    if (bs.role === "leader") {
      const before = this.checker.elections;
      this.checker.onLeader(node.id, bs.term);
      if (this.checker.elections !== before)
        this.trace(`t=${this.tick} ${node.id} leads term ${bs.term}`);
      if (bs.commit > node.lastSeenCommit) {
        this.checker.onLeaderCommit(node.lastSeenCommit, bs.commit, bs.term);
      }
    }
    if (bs.commit > node.lastSeenCommit) node.lastSeenCommit = bs.commit;
    this.pump(node);
  }

  private pump(node: SimNode): void {
    if (!node.up || node.persisting || !node.raw.hasReady()) return;
    const rd = node.raw.ready();
    const bs = node.raw.basicStatus();
    const leaderTerm = bs.role === "leader" ? bs.term : 0;
    node.persisting = true;
    node.disk.write(rd.snapshot, rd.entries, rd.hardState);
    const incarnation = node.incarnation;
    const delay = (this.diskRng.chance(0.3) ? 0 : this.diskRng.int(1, 3)) + node.fsyncExtraUnits;
    this.schedule(delay, () => {
      if (node.incarnation === incarnation) this.completeReady(node, rd, leaderTerm);
    });
  }

  /** The fsync finished: mirror, send, apply, advance (the driver's contract). */
  private completeReady(node: SimNode, rd: Ready, leaderTerm: number): void {
    node.disk.sync();
    if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    this.checker.onPersist(node.id, rd.entries);
    for (const m of rd.messages) this.send(node, m);
    if (rd.snapshot) {
      const meta = rd.snapshot.metadata;
      node.fsm = decodeFsm(rd.snapshot.data);
      node.conf = meta.conf;
      node.lastSnapIndex = meta.index;
      this.stats.snapshotsInstalled++;
      this.checker.onRestore(node.id, meta.index, meta.term, node.fsm.hash);
      for (const index of node.proposals.keys())
        if (index <= meta.index) node.proposals.delete(index);
    }
    for (const e of rd.committedEntries) {
      if (e.index !== node.fsm.appliedIndex + 1) {
        this.checker.fail(
          "state-machine-safety",
          `${node.id} was handed entry ${e.index} to apply after ${node.fsm.appliedIndex}`,
        );
      }
      node.fsm = applyEntry(node.fsm, e);
      this.checker.onApply(node.id, e, node.fsm.hash);
      if (e.type === "conf-change") {
        const cc = decodeConfChange(e.data);
        node.conf = node.raw.applyConfChange(cc);
        this.onConfChangeApplied(e.index, cc);
      }
      const p = node.proposals.get(e.index);
      if (p) {
        node.proposals.delete(e.index);
        if (p.term === e.term) {
          if (decoder.decode(e.data) !== p.id) {
            this.checker.fail(
              "state-machine-safety",
              `${node.id} applied other data at (${e.index}, ${e.term}) than it proposed there`,
            );
          }
          this.checker.onAck({ id: p.id, index: e.index, term: e.term });
        }
      }
    }
    for (const rs of rd.readStates) {
      const ackedAtIssue = node.reads.get(rs.requestCtx);
      if (ackedAtIssue === undefined) continue;
      node.reads.delete(rs.requestCtx);
      this.checker.onReadServed(node.id, rs.index, ackedAtIssue);
      this.stats.reads++;
    }
    node.raw.advance(rd);
    node.persisting = false;
    if (leaderTerm > node.checkedLeaderTerm) {
      node.checkedLeaderTerm = leaderTerm;
      this.checker.checkLeaderCompleteness(node.id, leaderTerm, node.storage);
    }
    this.maybeSnapshot(node);
    this.afterEvent(node);
  }

  private onConfChangeApplied(index: number, cc: { type: string; nodeId: NodeId }): void {
    if (index <= this.committedConfIndex) return;
    this.committedConfIndex = index;
    const voters = this.committedConf.voters.filter((id) => id !== cc.nodeId);
    const learners = this.committedConf.learners.filter((id) => id !== cc.nodeId);
    if (cc.type === "add-voter") voters.push(cc.nodeId);
    if (cc.type === "add-learner") learners.push(cc.nodeId);
    this.committedConf = { voters: voters.sort(), learners: learners.sort(), votersOutgoing: [] };
    this.stats.confChanges++;
    this.trace(`t=${this.tick} committed ${cc.type} ${cc.nodeId} at ${index}`);
  }

  private maybeSnapshot(node: SimNode): void {
    const applied = node.fsm.appliedIndex;
    if (applied - node.lastSnapIndex < this.snapshotEvery) return;
    if (applied <= node.storage.snapshot().metadata.index) return;
    const snap = node.storage.createSnapshot(applied, node.conf, encodeFsm(node.fsm));
    node.disk.saveSnapshot(snap);
    node.lastSnapIndex = applied;
    const to = this.aggressiveCompaction
      ? applied
      : Math.min(node.raw.compactHint(), applied - this.keepEntries);
    if (to >= node.storage.firstIndex()) {
      node.storage.compact(to);
      node.disk.compact(to);
    }
  }

  // ---- network ----

  private blocked(from: NodeId, to: NodeId): boolean {
    return this.blockedLinks.size > 0 && this.blockedLinks.has(`${from}>${to}`);
  }

  private refreshLinks(): void {
    const ids = [...this.nodes.keys()];
    const blocked = new Set<string>();
    for (const f of this.linkFaults) {
      for (const a of ids)
        for (const b of ids) if (a !== b && f.blocks(a, b)) blocked.add(`${a}>${b}`);
    }
    this.blockedLinks = blocked;
  }

  private send(from: SimNode, m: RaftMessage): void {
    this.stats.messages++;
    const incarnation = from.incarnation;
    if (this.blocked(m.from, m.to) || this.netRng.chance(this.weather.drop)) {
      this.stats.dropped++;
      if (m.kind === "InstallSnapshot") this.reportSnapshot(from, incarnation, m.to, false);
      return;
    }
    const to = this.nodes.get(m.to);
    let delay = this.netRng.int(1, 4) + from.linkExtraUnits + (to?.linkExtraUnits ?? 0);
    if (this.netRng.chance(this.weather.reorder)) delay += this.netRng.int(5, 40);
    else if (this.netRng.chance(this.weather.stall)) delay += this.netRng.int(50, 600);
    this.schedule(delay, () => this.deliver(m, from, incarnation));
    if (this.netRng.chance(this.weather.dup)) {
      this.schedule(delay + this.netRng.int(0, 30), () => this.deliver(m, from, incarnation));
    }
  }

  private deliver(m: RaftMessage, from: SimNode, fromIncarnation: number): void {
    const to = this.nodes.get(m.to);
    if (!to?.up || this.blocked(m.from, m.to)) {
      this.stats.dropped++;
      if (m.kind === "InstallSnapshot") this.reportSnapshot(from, fromIncarnation, m.to, false);
      return;
    }
    to.raw.step(m);
    if (m.kind === "InstallSnapshot") this.reportSnapshot(from, fromIncarnation, m.to, true);
    this.afterEvent(to);
  }

  /** The transport's report to the sender, arriving a little later (like an RPC reply). */
  private reportSnapshot(from: SimNode, incarnation: number, to: NodeId, ok: boolean): void {
    this.schedule(this.netRng.int(1, 4), () => {
      if (!from.up || from.incarnation !== incarnation) return;
      from.raw.reportSnapshot(to, ok);
      this.afterEvent(from);
    });
  }

  // ---- clients ----

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  private clientPropose(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    let target = this.clientRng.pick(up);
    const hint = this.nodes.get(target.raw.basicStatus().leader);
    if (hint?.up && this.clientRng.chance(0.9)) target = hint;
    const id = `c${++this.proposalSeq}`;
    const r = target.raw.propose(encoder.encode(id));
    if (r.ok) target.proposals.set(r.index, { id, term: r.term });
    this.afterEvent(target);
  }

  private clientRead(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const node = this.clientRng.pick(up);
    const ctx = ++this.readSeq;
    if (node.raw.readIndex(ctx).ok) node.reads.set(ctx, this.checker.maxAckedIndex);
    this.afterEvent(node);
  }

  // ---- faults ----

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (!n.up) continue;
      const bs = n.raw.basicStatus();
      if (bs.role === "leader" && bs.term > bestTerm) {
        best = n;
        bestTerm = bs.term;
      }
    }
    return best;
  }

  private healLater(minTicks: number, maxTicks: number, heal: () => void): void {
    this.atTick(this.tick + this.faultRng.int(minTicks, maxTicks), heal);
  }

  private addLinkFault(label: string, fault: LinkFault, minTicks: number, maxTicks: number): void {
    this.linkFaults.add(fault);
    this.refreshLinks();
    this.trace(`t=${this.tick} ${label}`);
    this.healLater(minTicks, maxTicks, () => {
      this.linkFaults.delete(fault);
      this.refreshLinks();
      this.trace(`t=${this.tick} heal: ${label}`);
    });
  }

  private nemesis(): void {
    const r = this.faultRng;
    const live = [...this.nodes.values()].filter((n) => !n.decommissioned);
    const ids = live.map((n) => n.id);
    this.stats.faults++;
    const action = r.pick([
      "crash",
      "crash",
      "partition",
      "partition",
      "one-way",
      "isolate-leader",
      "isolate-leader",
      "weather",
      "slow-node",
      "slow-disk",
      "transfer",
      "compaction",
      ...(this.opts.membership === false ? [] : ["membership", "membership"]),
    ]);
    switch (action) {
      case "crash": {
        const up = live.filter((n) => n.up);
        if (up.length === 0) return;
        // Prefer a node with an fsync in flight: that is where torn tails happen.
        const writing = up.filter((n) => n.persisting);
        const node = r.pick(writing.length > 0 && r.chance(0.5) ? writing : up);
        // Strike at a random moment within the tick, not only on its boundary.
        this.schedule(r.int(0, UNITS_PER_TICK - 1), () => this.crash(node, "crash"));
        this.healLater(1, 80, () => {
          this.restart(node);
          if (node.up) this.trace(`t=${this.tick} restart ${node.id}`);
        });
        return;
      }
      case "partition": {
        const shuffled = [...ids].sort(() => r.next() - 0.5);
        const side = new Set(shuffled.slice(0, r.int(1, Math.max(1, shuffled.length - 1))));
        this.addLinkFault(
          `partition {${[...side].join(",")}} | rest`,
          { blocks: (a, b) => side.has(a) !== side.has(b) },
          10,
          150,
        );
        return;
      }
      case "one-way": {
        if (ids.length < 2) return;
        const a = r.pick(ids);
        const b = r.pick(ids.filter((id) => id !== a));
        this.addLinkFault(
          `one-way ${a} -/-> ${b}`,
          { blocks: (x, y) => x === a && y === b },
          10,
          100,
        );
        return;
      }
      case "isolate-leader": {
        const leader = this.currentLeader();
        if (!leader) return;
        const id = leader.id;
        this.addLinkFault(
          `isolate leader ${id}`,
          { blocks: (x, y) => x === id || y === id },
          10,
          100,
        );
        return;
      }
      case "weather": {
        const token = ++this.weatherToken;
        this.weather = {
          drop: r.next() * 0.2,
          dup: r.next() * 0.1,
          reorder: r.next() * 0.3,
          stall: r.next() * 0.05,
        };
        this.trace(`t=${this.tick} weather ${JSON.stringify(this.weather)}`);
        this.healLater(30, 200, () => {
          if (this.weatherToken === token) this.weather = drizzle;
        });
        return;
      }
      case "slow-node": {
        const node = r.pick(live);
        node.linkExtraUnits = r.int(10, 40);
        this.trace(`t=${this.tick} slow links ${node.id} +${node.linkExtraUnits}`);
        this.healLater(30, 150, () => {
          node.linkExtraUnits = 0;
        });
        return;
      }
      case "slow-disk": {
        const node = r.pick(live);
        node.fsyncExtraUnits = r.int(5, 30);
        this.trace(`t=${this.tick} slow disk ${node.id} +${node.fsyncExtraUnits}`);
        this.healLater(20, 100, () => {
          node.fsyncExtraUnits = 0;
        });
        return;
      }
      case "transfer": {
        const leader = this.currentLeader();
        if (!leader) return;
        const target = r.pick(ids);
        this.trace(`t=${this.tick} transfer ${leader.id} -> ${target}`);
        leader.raw.transferLeadership(target);
        this.afterEvent(leader);
        return;
      }
      case "compaction": {
        this.aggressiveCompaction = true;
        this.trace(`t=${this.tick} aggressive compaction`);
        this.healLater(50, 200, () => {
          this.aggressiveCompaction = false;
        });
        return;
      }
      case "membership":
        this.changeMembership();
        return;
    }
  }

  private changeMembership(): void {
    const r = this.faultRng;
    const leader = this.currentLeader();
    if (!leader) return;
    const conf = leader.raw.status().conf;
    const maxVoters = this.founders.length + 1;
    const choices: (() => void)[] = [];
    if (this.nodes.size < this.maxNodes) {
      choices.push(() => {
        const id = `n${this.nodes.size + 1}`;
        const node = this.addNode(id, new SimDisk());
        this.restart(node);
        this.propose(leader, "add-learner", id);
      });
    }
    const promotable = conf.learners.filter((id) => this.nodes.get(id)?.up);
    if (promotable.length > 0 && conf.voters.length < maxVoters) {
      choices.push(() => this.propose(leader, "add-voter", r.pick(promotable)));
    }
    const removable = [...(conf.voters.length > 3 ? conf.voters : []), ...conf.learners];
    if (removable.length > 0) {
      choices.push(() => this.propose(leader, "remove-node", r.pick(removable)));
    }
    if (choices.length > 0) r.pick(choices)();
  }

  private propose(leader: SimNode, type: "add-voter" | "add-learner" | "remove-node", id: NodeId) {
    const result = leader.raw.proposeConfChange({ type, nodeId: id });
    this.trace(
      `t=${this.tick} ${leader.id} proposes ${type} ${id}: ${result.ok ? "ok" : result.error.kind}`,
    );
    this.afterEvent(leader);
  }

  /** Nodes outside the committed membership for a while are shut down for good. */
  private decommissionRemoved(): void {
    for (const node of this.nodes.values()) {
      if (node.decommissioned) continue;
      const member =
        this.committedConf.voters.includes(node.id) ||
        this.committedConf.learners.includes(node.id);
      if (member) {
        node.outOfConfSince = -1;
      } else if (node.outOfConfSince < 0) {
        node.outOfConfSince = this.tick;
      } else if (this.tick - node.outOfConfSince > 100) {
        this.crash(node, "decommission");
        node.decommissioned = true;
      }
    }
  }

  private healEverything(): void {
    this.healed = true;
    this.linkFaults.clear();
    this.refreshLinks();
    this.weather = calm;
    this.aggressiveCompaction = false;
    this.agenda.clear();
    for (const node of this.nodes.values()) {
      node.linkExtraUnits = 0;
      node.fsyncExtraUnits = 0;
      this.restart(node);
    }
    this.trace(
      `t=${this.tick} heal everything; committed conf ${JSON.stringify(this.committedConf)}`,
    );
  }

  // ---- liveness ----

  private livenessStep(): void {
    const sinceHeal = this.tick - this.chaosTicks;
    if (sinceHeal > this.livenessTicks) {
      this.livenessFailure();
      return;
    }
    if (this.probe) {
      const p = this.probe;
      const canonTerm = this.checker.canonTerm(p.index);
      if (canonTerm === p.term) {
        if (this.membersApplied(p.node, p.index)) {
          this.finish(sinceHeal);
          return;
        }
      } else {
        // Overwritten, or its proposer is no longer leading that term: propose again.
        const bs = p.node.up ? p.node.raw.basicStatus() : undefined;
        if (canonTerm !== undefined || bs?.role !== "leader" || bs.term !== p.term) {
          this.probe = undefined;
        }
      }
    }
    if (!this.probe) {
      const leader = this.currentLeader();
      if (!leader) return;
      const id = `probe${++this.probeSeq}`;
      const r = leader.raw.propose(encoder.encode(id));
      if (r.ok) {
        leader.proposals.set(r.index, { id, term: r.term });
        this.probe = { node: leader, index: r.index, term: r.term };
      }
      this.afterEvent(leader);
    }
  }

  private membersApplied(leader: SimNode, index: number): boolean {
    if (!leader.up) return false;
    const conf = leader.raw.status().conf;
    for (const id of [...conf.voters, ...conf.learners]) {
      const n = this.nodes.get(id);
      if (n?.up && n.fsm.appliedIndex < index) return false;
    }
    return true;
  }

  private finish(sinceHeal: number): void {
    this.stats.recoveryTicks = sinceHeal;
    this.checkLogMatching();
    const leader = this.currentLeader();
    const conf = leader?.raw.status().conf ?? this.committedConf;
    for (const id of [...conf.voters, ...conf.learners]) {
      const n = this.nodes.get(id);
      if (n?.up && n.fsm.appliedIndex < this.checker.maxAckedIndex) {
        this.checker.fail(
          "lost-write",
          `${id} applied only up to ${n.fsm.appliedIndex}, below acknowledged write ${this.checker.maxAckedIndex}`,
        );
      }
    }
    this.stats.committed = Math.max(...[...this.nodes.values()].map((n) => n.fsm.appliedIndex));
    this.trace(`t=${this.tick} recovered ${sinceHeal} ticks after healing`);
    this.done = true;
  }

  private livenessFailure(): never {
    const states = [...this.nodes.values()]
      .map((n) => {
        if (!n.up) return `${n.id}: ${n.decommissioned ? "decommissioned" : "down"}`;
        const s = n.raw.basicStatus();
        return `${n.id}: ${s.role} term ${s.term} leader "${s.leader}" commit ${s.commit} applied ${s.applied}`;
      })
      .join("; ");
    const leader = this.currentLeader();
    const progress = leader
      ? [...leader.raw.status().progress]
          .map(
            ([id, p]) => `${id} ${p.state} match ${p.match} next ${p.next} inflight ${p.inflight}`,
          )
          .join(", ")
      : "no leader";
    this.checker.fail(
      "liveness",
      `no probe committed and applied everywhere within ${this.livenessTicks} ticks of healing (${states}; leader's view: ${progress})`,
    );
  }

  private checkLogMatching(): void {
    const logs = new Map<NodeId, MemoryStorage>();
    for (const n of this.nodes.values()) if (n.up) logs.set(n.id, n.storage);
    this.checker.checkLogMatching(logs);
  }
}
