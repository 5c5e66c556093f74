/**
 * Per-peer batching of one Ready's AppendEntries before they go on the wire.
 *
 * The core emits one AppendEntries per proposal (every propose broadcasts),
 * so under load a single Ready holds dozens of one-entry messages to the
 * same follower, plus empty ones (commit updates, probes after acks). Each
 * would be its own gRPC call. Sending them as one message is what the
 * follower would see if it received them back to back:
 *
 * - contiguous appends (next.prevLogIndex = end of the previous one, same
 *   term and leader, matching prevLogTerm) become one message with the
 *   entries concatenated;
 * - an empty append whose position lies inside the merged range adds
 *   nothing but its leaderCommit and readContext, which are carried over.
 *
 * Carrying the larger leaderCommit is safe because a follower commits at most
 * min(leaderCommit, last index of the message). Carrying the larger
 * readContext is safe because the merged message is sent after every read
 * round it names began, so its echo proves the same as theirs. Anything that
 * does not fit these rules is sent unchanged and in order; dropping a
 * redundant message is always safe in Raft (it tolerates loss).
 * Merged messages stay within `maxBytes` of entry data.
 */
import { type AppendEntries, entrySizeBytes, type RaftMessage } from "../raft/index.ts";

export function coalesceAppends(messages: readonly RaftMessage[], maxBytes: number): RaftMessage[] {
  const out: RaftMessage[] = [];
  /** Index in `out` of the append to each peer that later messages may merge into. */
  const open = new Map<string, { at: number; bytes: number }>();
  for (const m of messages) {
    if (m.kind !== "AppendEntries") {
      open.delete(m.to); // keep per-peer order around other messages
      out.push(m);
      continue;
    }
    const o = open.get(m.to);
    const prev = o ? (out[o.at] as AppendEntries) : undefined;
    const mBytes = m.entries.reduce((n, e) => n + entrySizeBytes(e), 0);
    if (prev && o && sameLeader(prev, m)) {
      const end = prev.prevLogIndex + prev.entries.length;
      const endTerm = prev.entries.at(-1)?.term ?? prev.prevLogTerm;
      if (m.entries.length === 0 && m.prevLogIndex >= prev.prevLogIndex && m.prevLogIndex <= end) {
        out[o.at] = carry(prev, m, prev.entries);
        continue;
      }
      if (m.prevLogIndex === end && m.prevLogTerm === endTerm && o.bytes + mBytes <= maxBytes) {
        out[o.at] = carry(prev, m, [...prev.entries, ...m.entries]);
        o.bytes += mBytes;
        continue;
      }
    }
    open.set(m.to, { at: out.length, bytes: mBytes });
    out.push(m);
  }
  return out;
}

function sameLeader(a: AppendEntries, b: AppendEntries): boolean {
  return a.term === b.term && a.leaderId === b.leaderId && a.from === b.from;
}

function carry(
  base: AppendEntries,
  later: AppendEntries,
  entries: AppendEntries["entries"],
): AppendEntries {
  return {
    ...base,
    entries,
    leaderCommit: Math.max(base.leaderCommit, later.leaderCommit),
    readContext: Math.max(base.readContext, later.readContext),
  };
}
