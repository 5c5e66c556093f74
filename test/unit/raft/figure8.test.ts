/**
 * Raft paper, Figure 8: a leader must not commit an entry from an earlier term
 * by counting replicas, because a later leader can still overwrite it.
 * Indexes are shifted by the 5 bootstrap entries and the first no-op: the
 * paper's index 2 is our index 7.
 */
import assert from "node:assert/strict";
import type { NodeId, TestingBugs } from "../../../coordinator/src/raft/index.ts";
import { bytes, Cluster } from "./harness.ts";

const contested = 7;

function runFigure8(testingBugs: TestingBugs) {
  const ids = ["s1", "s2", "s3", "s4", "s5"];
  // One entry per message, and no lease, so every step is under the test's control.
  const c = new Cluster(ids, {
    preVote: false,
    checkQuorum: false,
    maxSizePerMsgBytes: 1,
    testingBugs,
  });
  const split = (side: readonly NodeId[]) => {
    c.dropIf = (m) => side.includes(m.from) !== side.includes(m.to);
  };

  // (a) s1 leads term 2 and gets "A" (index 7) only onto s2.
  c.elect("s1");
  split(["s1", "s2"]);
  assert.ok(c.raw("s1").propose(bytes("A")).ok);
  c.deliver();
  assert.equal(c.get("s2").storage.term(contested), 2);

  // (b) s5 wins term 3 with s3 and s4, appends its no-op at index 7, then is cut off.
  c.raw("s5").campaign();
  c.deliverOneRound();
  c.deliverOneRound();
  assert.equal(c.raw("s5").status().role, "leader");
  c.isolate("s5");
  c.deliver();
  assert.equal(c.get("s5").storage.term(contested), 3);

  // (c) s1 restarts, wins term 4 (s2, s3, s4) and replicates "A" to s3 but not its own
  // term-4 no-op (index 8) to s3 or s4: "A" is now on a majority.
  c.dropIf = (m) =>
    m.from === "s5" ||
    m.to === "s5" ||
    (m.kind === "AppendEntries" &&
      (m.to === "s3" || m.to === "s4") &&
      m.entries.some((e) => e.index > contested));
  c.start("s1", c.get("s1").storage);
  for (let k = 0; k < 3 && c.raw("s1").status().role !== "leader"; k++) {
    c.raw("s1").campaign();
    c.deliver();
  }
  assert.equal(c.raw("s1").status().term, 4);
  for (let k = 0; k < 3; k++) {
    c.tick("s1");
    c.deliver();
  }
  const withA = ids.filter((id) => c.get(id).storage.term(contested) === 2);
  assert.ok(withA.length >= 3, `"A" is on a majority (${withA})`);
  const s1Commit = c.raw("s1").status().commit;

  // (d) s1 crashes; s5 restarts, wins term 5 (s3, s4) and overwrites index 7.
  // Bounded delivery: with the rule broken, s2 holds a "committed" entry the
  // new leader lacks, and the two can argue forever.
  const rounds = (n: number) => {
    for (let k = 0; k < n; k++) c.deliverOneRound();
  };
  c.isolate("s1");
  c.start("s5", c.get("s5").storage);
  for (let k = 0; k < 3 && c.raw("s5").status().role !== "leader"; k++) {
    c.raw("s5").campaign();
    rounds(10);
  }
  assert.equal(c.raw("s5").status().role, "leader");
  for (let k = 0; k < 3; k++) {
    c.tick("s5");
    rounds(10);
  }

  const appliedAt = (id: NodeId) => c.get(id).applied.find((e) => e.index === contested)?.term;
  return { s1Commit, appliedTerms: Object.fromEntries(ids.map((id) => [id, appliedAt(id)])) };
}

describe("raft commits only current-term entries by counting (Figure 8)", () => {
  it("a leader does not commit an earlier-term entry replicated on a majority", () => {
    const { s1Commit, appliedTerms } = runFigure8({});
    assert.ok(
      s1Commit < contested,
      `s1 must not have committed index ${contested} (commit ${s1Commit})`,
    );
    // Only s5's entry was ever applied at the contested index.
    const terms = new Set(Object.values(appliedTerms).filter((t) => t !== undefined));
    assert.deepEqual([...terms], [3]);
  });

  it("with the rule broken (test-only hook), two nodes apply different entries at one index", () => {
    const { s1Commit, appliedTerms } = runFigure8({ commitPreviousTermEntries: true });
    assert.ok(s1Commit >= contested);
    assert.equal(appliedTerms.s1, 2, "s1 applied its term-2 entry");
    assert.equal(appliedTerms.s5, 3, "s5 applied its own term-3 entry at the same index");
  });
});
