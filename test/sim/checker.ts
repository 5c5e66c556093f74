/**
 * The simulator's safety checkers (Raft paper, Figure 3 properties):
 * - election safety: at most one leader per term;
 * - log matching: two logs that hold an entry with the same index and term
 *   are identical up to it (checked pairwise on persisted logs, and as "one
 *   payload per (index, term)" on every persisted entry);
 * - leader completeness: an entry committed by a leader of term t is in the
 *   log of every leader of a later term;
 * - state machine safety: every node applies the same entry at each index,
 *   and reaches the same FSM hash there (also across snapshots);
 * - durability of acknowledged writes: a proposal acknowledged to its client
 *   stays at its index and is eventually applied everywhere (checked at the
 *   end, after healing), and reads never miss an acknowledged write.
 * The first violation aborts the run (later ones are usually consequences).
 */
import type { Entry, MemoryStorage, NodeId } from "../../coordinator/src/raft/index.ts";
import { entryFingerprint } from "./fsm.ts";

export type ViolationKind =
  | "election-safety"
  | "log-matching"
  | "leader-completeness"
  | "state-machine-safety"
  | "lost-write"
  | "stale-read"
  | "liveness"
  | "core-invariant";

export interface Violation {
  readonly kind: ViolationKind;
  readonly tick: number;
  readonly message: string;
}

export class ViolationError extends Error {
  constructor(readonly violation: Violation) {
    super(`${violation.kind} at tick ${violation.tick}: ${violation.message}`);
  }
}

interface CanonEntry {
  term: number;
  /** Payload fingerprint; -1 when only known through a snapshot. */
  fingerprint: number;
  /** FSM hash after applying this index. */
  hashAfter: number;
}

export interface Ack {
  readonly id: string;
  readonly index: number;
  readonly term: number;
}

export class Checker {
  tick = 0;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Per index: the entry the first node to apply it applied (state machine safety). */
  private readonly canon: (CanonEntry | undefined)[] = [];
  /** Per index: the lowest term of a leader seen committing it. */
  private readonly commitTerm: (number | undefined)[] = [];
  /** Per "index:term": the payload fingerprint first persisted there. */
  private readonly persisted = new Map<string, number>();
  readonly acked: Ack[] = [];
  maxAckedIndex = 0;
  elections = 0;

  fail(kind: ViolationKind, message: string): never {
    throw new ViolationError({ kind, tick: this.tick, message });
  }

  onLeader(id: NodeId, term: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) {
      this.leaderOfTerm.set(term, id);
      this.elections++;
    } else if (known !== id) {
      this.fail("election-safety", `${known} and ${id} are both leaders of term ${term}`);
    }
  }

  onLeaderCommit(from: number, to: number, term: number): void {
    for (let i = from + 1; i <= to; i++) {
      const t = this.commitTerm[i];
      if (t === undefined || term < t) this.commitTerm[i] = term;
    }
  }

  onPersist(id: NodeId, entries: readonly Entry[]): void {
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const fp = entryFingerprint(e);
      const known = this.persisted.get(key);
      if (known === undefined) this.persisted.set(key, fp);
      else if (known !== fp) {
        this.fail(
          "log-matching",
          `${id} persisted a different entry at index ${e.index} term ${e.term} than another node`,
        );
      }
    }
  }

  onApply(id: NodeId, e: Entry, hashAfter: number): void {
    const fp = entryFingerprint(e);
    const c = this.canon[e.index];
    if (!c) {
      this.canon[e.index] = { term: e.term, fingerprint: fp, hashAfter };
      return;
    }
    if (c.term !== e.term || (c.fingerprint !== -1 && c.fingerprint !== fp)) {
      this.fail(
        "state-machine-safety",
        `${id} applied (term ${e.term}) at index ${e.index} where another node applied (term ${c.term}) — different entries`,
      );
    }
    if (c.fingerprint === -1) c.fingerprint = fp;
    if (c.hashAfter !== hashAfter) {
      this.fail(
        "state-machine-safety",
        `${id}'s state after index ${e.index} differs from another node's (the applied sequences diverged earlier)`,
      );
    }
  }

  onRestore(id: NodeId, index: number, term: number, hash: number): void {
    if (index === 0) return;
    const c = this.canon[index];
    if (!c) {
      this.canon[index] = { term, fingerprint: -1, hashAfter: hash };
    } else if (c.term !== term || c.hashAfter !== hash) {
      this.fail(
        "state-machine-safety",
        `${id} restored a snapshot at index ${index} whose state differs from what others applied there`,
      );
    }
  }

  onAck(ack: Ack): void {
    this.acked.push(ack);
    if (ack.index > this.maxAckedIndex) this.maxAckedIndex = ack.index;
  }

  onReadServed(id: NodeId, readIndex: number, maxAckedAtIssue: number): void {
    if (readIndex < maxAckedAtIssue) {
      this.fail(
        "stale-read",
        `${id} got read index ${readIndex}, below write ${maxAckedAtIssue} acknowledged before the read began`,
      );
    }
  }

  /**
   * Leader completeness for `id`, leader of `term`: every entry some leader of
   * an earlier term committed must be in its (persisted) log.
   */
  checkLeaderCompleteness(id: NodeId, term: number, storage: MemoryStorage): void {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    for (let i = Math.max(first - 1, 1); i < this.commitTerm.length; i++) {
      const t = this.commitTerm[i];
      const c = this.canon[i];
      if (t === undefined || t >= term || !c) continue;
      const have = i <= last ? storage.term(i) : undefined;
      if (have !== c.term) {
        this.fail(
          "leader-completeness",
          `${id}, leader of term ${term}, lacks entry ${i} (term ${c.term}) committed in term ${t}`,
        );
      }
    }
  }

  /** Pairwise log matching over the persisted logs of `logs`. */
  checkLogMatching(logs: ReadonlyMap<NodeId, MemoryStorage>): void {
    const ids = [...logs.keys()];
    for (let x = 0; x < ids.length; x++) {
      for (let y = x + 1; y < ids.length; y++) {
        const a = logs.get(ids[x]!)!;
        const b = logs.get(ids[y]!)!;
        const lo = Math.max(a.firstIndex(), b.firstIndex());
        const hi = Math.min(a.lastIndex(), b.lastIndex());
        if (lo > hi) continue;
        let top = hi;
        while (top >= lo && a.term(top) !== b.term(top)) top--;
        if (top < lo) continue;
        const ea = a.entries(lo, top + 1, Number.POSITIVE_INFINITY);
        const eb = b.entries(lo, top + 1, Number.POSITIVE_INFINITY);
        for (let k = 0; k < ea.length; k++) {
          const p = ea[k]!;
          const q = eb[k]!;
          if (p.term !== q.term || entryFingerprint(p) !== entryFingerprint(q)) {
            this.fail(
              "log-matching",
              `${ids[x]} and ${ids[y]} agree at index ${top} (term ${a.term(top)}) but differ at ${p.index}`,
            );
          }
        }
      }
    }
  }

  /** The entry every node applied at `index`, if any node did. */
  canonTerm(index: number): number | undefined {
    return this.canon[index]?.term;
  }
}
