/**
 * coalesceAppends (coordinator/src/runtime/coalesce.ts): a Ready's one-entry
 * AppendEntries to the same follower go out as one message, which is what
 * the follower would get from receiving them back to back; anything else is
 * sent unchanged and in per-peer order. Pure, so tested directly; the
 * throughput effect is in bench/raft.ts.
 */
import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import type { AppendEntries, Entry, RaftMessage } from "../../../coordinator/src/raft/index.ts";
import { createMemoryStorage, createRawNode } from "../../../coordinator/src/raft/index.ts";
import { coalesceAppends } from "../../../coordinator/src/runtime/coalesce.ts";

const entry = (index: number, term = 3, bytes = 10): Entry => ({
  index,
  term,
  type: "normal",
  data: new Uint8Array(bytes),
});

function append(
  to: string,
  prevLogIndex: number,
  entries: Entry[],
  over: Partial<AppendEntries> = {},
): AppendEntries {
  return {
    kind: "AppendEntries",
    from: "c1",
    to,
    term: 3,
    leaderId: "c1",
    prevLogIndex,
    prevLogTerm: 3,
    entries,
    leaderCommit: 5,
    readContext: 0,
    ...over,
  };
}

const shape = (ms: RaftMessage[]) =>
  ms.map((m) =>
    m.kind === "AppendEntries"
      ? `${m.to}:${m.prevLogIndex}+[${m.entries.map((e) => e.index).join(",")}]c${m.leaderCommit}r${m.readContext}`
      : `${m.to}:${m.kind}`,
  );

describe("runtime/coalesce: batching a Ready's AppendEntries per follower", () => {
  it("joins contiguous one-entry appends to each follower into one message", () => {
    const msgs = [
      append("c2", 10, [entry(11)]),
      append("c3", 10, [entry(11)]),
      append("c2", 11, [entry(12)], { leaderCommit: 6 }),
      append("c3", 11, [entry(12)]),
      append("c2", 12, [entry(13)], { readContext: 4 }),
    ];
    assert.deepEqual(shape(coalesceAppends(msgs, 1 << 20)), [
      "c2:10+[11,12,13]c6r4",
      "c3:10+[11,12]c5r0",
    ]);
  });

  it("folds an empty append inside the merged range, carrying its commit and read round", () => {
    const msgs = [
      append("c2", 10, [entry(11)]),
      append("c2", 11, [entry(12)]),
      append("c2", 12, [], { leaderCommit: 9, readContext: 7 }),
      append("c2", 10, [], { leaderCommit: 8 }),
    ];
    assert.deepEqual(shape(coalesceAppends(msgs, 1 << 20)), ["c2:10+[11,12]c9r7"]);
  });

  it("keeps what does not line up: gaps, older probes, other terms, and other message kinds in order", () => {
    const vote: RaftMessage = {
      kind: "RequestVote",
      from: "c1",
      to: "c2",
      term: 4,
      candidateId: "c1",
      lastLogIndex: 13,
      lastLogTerm: 3,
      preVote: false,
      leadershipTransfer: false,
    };
    const msgs: RaftMessage[] = [
      append("c2", 10, [entry(11)]),
      append("c2", 12, [entry(13)]), // gap: 12 missing
      append("c2", 5, []), // a probe below the open message
      append("c2", 13, [entry(14)], { term: 4, leaderId: "c1" }), // another term
      vote,
      append("c2", 14, [entry(15, 4)], { term: 4 }), // after another kind: not merged across it
    ];
    assert.deepEqual(shape(coalesceAppends(msgs, 1 << 20)), [
      "c2:10+[11]c5r0",
      "c2:12+[13]c5r0",
      "c2:5+[]c5r0",
      "c2:13+[14]c5r0",
      "c2:RequestVote",
      "c2:14+[15]c5r0",
    ]);
  });

  it("does not merge past a prevLogTerm mismatch or the message size bound", () => {
    const termMismatch = [
      append("c2", 10, [entry(11, 2)]),
      append("c2", 11, [entry(12)], { prevLogTerm: 3 }),
    ];
    assert.equal(coalesceAppends(termMismatch, 1 << 20).length, 2);
    const big = [0, 1, 2, 3].map((k) => append("c2", 10 + k, [entry(11 + k, 3, 400)]));
    const out = coalesceAppends(big, 1000) as AppendEntries[];
    assert.deepEqual(
      out.map((m) => m.entries.length),
      [2, 2],
      "each merged message stays within 1000 bytes of entries",
    );
  });

  it("a follower core given the merged message ends where the separate messages take it", () => {
    // Follower c2 holds a snapshot at index 3 (term 1); leader c1 (term 3) sends 4..7.
    const msgs = [4, 5, 6, 7].map((i) =>
      append("c2", i - 1, [entry(i)], { prevLogTerm: i === 4 ? 1 : 3, leaderCommit: i - 1 }),
    );
    const run = (input: RaftMessage[]) => {
      const n = createRawNode(
        { id: "c2", electionTicks: 10, heartbeatTicks: 1, rng: createRng(1) },
        createMemoryStorage({
          hardState: { term: 1, vote: "", commit: 3 },
          snapshot: {
            metadata: {
              index: 3,
              term: 1,
              conf: { voters: ["c1", "c2", "c3"], learners: [], votersOutgoing: [] },
            },
            data: new Uint8Array(0),
          },
          entries: [],
        }),
      );
      for (const m of input) n.step(m);
      const st = n.status();
      const replies = n.hasReady() ? n.ready().messages : [];
      const acked = Math.max(
        0,
        ...replies.map((r) => (r.kind === "AppendEntriesResponse" && r.success ? r.matchIndex : 0)),
      );
      return { last: st.lastIndex, commit: st.commit, term: st.term, acked };
    };
    const merged = coalesceAppends(msgs, 1 << 20);
    assert.equal(merged.length, 1);
    assert.deepEqual(run(merged), run(msgs));
    assert.deepEqual(run(merged), { last: 7, commit: 6, term: 3, acked: 7 });
  });
});
