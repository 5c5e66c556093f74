/**
 * A tiny synchronous cluster for the Raft unit tests: nodes persist into their
 * MemoryStorage immediately, messages wait in one FIFO until `deliver()` and a
 * filter can drop them. (The deterministic simulator in test/sim/ models
 * real disks and networks; this harness only makes scenarios easy to write.)
 */
import { createRng } from "../../../common/rng.ts";
import {
  bootstrapState,
  type ConfState,
  createMemoryStorage,
  createRawNode,
  decodeConfChange,
  type Entry,
  emptyRecoveredState,
  type MemoryStorage,
  type NodeId,
  type RaftConfig,
  type RaftMessage,
  type RawNode,
  type ReadState,
} from "../../../coordinator/src/raft/index.ts";

export interface TestNode {
  readonly id: NodeId;
  storage: MemoryStorage;
  node: RawNode;
  /** Normal entries applied (including leaders' empty no-ops). */
  applied: Entry[];
  /** Membership as of the applied index. */
  conf: ConfState;
  readStates: ReadState[];
  /** Index of the last snapshot restored from a leader (0 if none). */
  restoredSnapshotIndex: number;
  /** Command strings the restored snapshot held (its FSM state). */
  snapshotData: string[];
}

export type ConfigOverrides = Partial<Omit<RaftConfig, "id" | "rng">>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array): string => decoder.decode(b);

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in send order. */
  queue: RaftMessage[] = [];
  /** Every message ever sent (for assertions about traffic). */
  sent: RaftMessage[] = [];
  /** Messages for which this returns true are dropped at delivery. */
  dropIf: (m: RaftMessage) => boolean = () => false;
  /** Observes every delivery attempt (for scenario traces). */
  onDeliver: (m: RaftMessage, dropped: boolean) => void = () => {};
  private readonly rng;

  constructor(
    readonly ids: readonly NodeId[],
    readonly overrides: ConfigOverrides = {},
    seed = 1,
    voters: readonly NodeId[] = ids,
  ) {
    this.rng = createRng(seed);
    for (const id of ids) {
      this.start(id, voters.includes(id) ? createMemoryStorage(bootstrapState(voters)) : undefined);
    }
    this.settle();
  }

  /** (Re)starts a node on `storage` (a fresh empty one by default) with a new RawNode. */
  start(
    id: NodeId,
    storage = createMemoryStorage(emptyRecoveredState),
    extra: ConfigOverrides = {},
  ) {
    const node = createRawNode({ id, rng: this.rng.fork(), ...this.overrides, ...extra }, storage);
    const n: TestNode = {
      id,
      storage,
      node,
      applied: [],
      conf: storage.initialState().confState,
      readStates: [],
      restoredSnapshotIndex: 0,
      snapshotData: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raw(id: NodeId): RawNode {
    return this.get(id).node;
  }

  /** Handles every node's Ready until none has one. */
  settle(): void {
    for (let round = 0; round < 1000; round++) {
      let any = false;
      for (const n of this.nodes.values()) {
        while (n.node.hasReady()) {
          any = true;
          this.handleReady(n);
        }
      }
      if (!any) return;
    }
    throw new Error("settle did not converge");
  }

  private handleReady(n: TestNode): void {
    const rd = n.node.ready();
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.conf = rd.snapshot.metadata.conf;
      n.restoredSnapshotIndex = rd.snapshot.metadata.index;
      n.applied = [];
      n.snapshotData = JSON.parse(text(rd.snapshot.data)) as string[];
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) {
      this.queue.push(m);
      this.sent.push(m);
    }
    for (const e of rd.committedEntries) {
      if (e.type === "conf-change") n.conf = n.node.applyConfChange(decodeConfChange(e.data));
      else n.applied.push(e);
    }
    n.readStates.push(...rd.readStates);
    n.node.advance(rd);
  }

  /** Delivers queued messages (and the ones they cause) until quiet. */
  deliver(maxMessages = 100_000): void {
    let count = 0;
    this.settle();
    while (this.queue.length > 0) {
      const m = this.queue.shift()!;
      if (++count > maxMessages) throw new Error("deliver: message limit hit");
      const to = this.nodes.get(m.to);
      const dropped = !to || this.dropIf(m);
      this.onDeliver(m, dropped);
      if (!to || dropped) continue;
      to.node.step(m);
      this.settle();
    }
  }

  /** Delivers only the messages currently queued (not the ones they cause). */
  deliverOneRound(): void {
    this.settle();
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) {
      const to = this.nodes.get(m.to);
      const dropped = !to || this.dropIf(m);
      this.onDeliver(m, dropped);
      if (!to || dropped) continue;
      to.node.step(m);
    }
    this.settle();
  }

  tick(id: NodeId, times = 1): void {
    for (let k = 0; k < times; k++) this.raw(id).tick();
    this.settle();
  }

  /** Ticks every node once per round, delivering after each round. */
  tickAll(rounds: number): void {
    for (let k = 0; k < rounds; k++) {
      for (const n of this.nodes.values()) n.node.tick();
      this.deliver();
    }
  }

  /** Makes `id` campaign and delivers until the election settles. */
  elect(id: NodeId): void {
    this.raw(id).campaign();
    this.deliver();
    const s = this.raw(id).status();
    if (s.role !== "leader") throw new Error(`${id} did not win (role ${s.role}, term ${s.term})`);
  }

  /** Ticks everyone (delivering) until one of `among` leads; returns it. */
  awaitLeader(among: readonly NodeId[] = this.ids, maxRounds = 200): NodeId {
    for (let r = 0; r < maxRounds; r++) {
      const leader = this.leaders().find((id) => among.includes(id));
      if (leader) return leader;
      this.tickAll(1);
    }
    throw new Error(`no leader among ${among} after ${maxRounds} rounds`);
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()]
      .filter((n) => n.node.status().role === "leader")
      .map((n) => n.id);
  }

  /** Drops every message to or from `id`. */
  isolate(id: NodeId): void {
    this.dropIf = (m) => m.to === id || m.from === id;
  }

  heal(): void {
    this.dropIf = () => false;
  }

  propose(id: NodeId, data: string) {
    const r = this.raw(id).propose(bytes(data));
    this.deliver();
    return r;
  }

  /** The commands `id` has applied, including those it got through a snapshot. */
  appliedData(id: NodeId): string[] {
    const n = this.get(id);
    return n.snapshotData.concat(
      n.applied.filter((e) => e.data.byteLength > 0).map((e) => text(e.data)),
    );
  }

  /** Snapshots `id`'s state machine at its applied index and compacts its log to it. */
  compact(id: NodeId): number {
    const n = this.get(id);
    const index = n.node.status().applied;
    n.storage.createSnapshot(index, n.conf, bytes(JSON.stringify(this.appliedData(id))));
    n.storage.compact(index);
    return index;
  }
}
