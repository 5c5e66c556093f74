import assert from "node:assert/strict";
import { Cluster } from "./harness.ts";

describe("raft ReadIndex (linearizable reads)", () => {
  it("the leader confirms leadership with a heartbeat round, then answers with its commit index", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "w");
    const commit = c.raw("n1").status().commit;
    const before = c.sent.length;
    assert.ok(c.raw("n1").readIndex(7).ok);
    assert.deepEqual(c.get("n1").readStates, [], "not before a quorum answered");
    c.deliver();
    assert.deepEqual(c.get("n1").readStates, [{ index: commit, requestCtx: 7 }]);
    const round = c.sent
      .slice(before)
      .filter((m) => m.kind === "AppendEntries" && m.readContext > 0 && m.entries.length === 0);
    assert.equal(round.length, 2, "one heartbeat per follower carries the read round");
  });

  it("a follower forwards the read to the leader and gets the index back", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "w");
    assert.ok(c.raw("n2").readIndex(42).ok);
    c.deliver();
    assert.deepEqual(c.get("n2").readStates, [
      { index: c.raw("n1").status().commit, requestCtx: 42 },
    ]);
    assert.ok(c.sent.some((m) => m.kind === "ReadIndex" && m.from === "n2" && m.to === "n1"));
  });

  it("a leader cut off from its quorum never confirms a read", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.isolate("n1");
    assert.ok(c.raw("n1").readIndex(1).ok);
    c.tickAll(30);
    assert.deepEqual(c.get("n1").readStates, []);
  });

  it("a new leader waits until its own no-op commits before answering", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.dropIf = (m) => m.kind === "AppendEntriesResponse";
    c.raw("n1").campaign();
    c.deliver();
    assert.equal(c.raw("n1").status().role, "leader");
    const noopIndex = c.raw("n1").status().lastIndex;
    assert.ok(c.raw("n1").status().commit < noopIndex);
    assert.ok(c.raw("n1").readIndex(5).ok);
    c.deliver();
    assert.deepEqual(c.get("n1").readStates, []);
    c.heal();
    c.tickAll(2);
    assert.deepEqual(c.get("n1").readStates, [{ index: noopIndex, requestCtx: 5 }]);
  });

  it("answers each of several reads, keeping their contexts apart", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.raw("n1").readIndex(1);
    c.raw("n2").readIndex(1); // the same ctx on another node is a different read
    c.raw("n1").readIndex(2);
    c.deliver();
    assert.deepEqual(
      c.get("n1").readStates.map((r) => r.requestCtx),
      [1, 2],
    );
    assert.deepEqual(
      c.get("n2").readStates.map((r) => r.requestCtx),
      [1],
    );
  });

  it("refuses as values: no leader known, too many pending", () => {
    const c = new Cluster(["n1", "n2", "n3"], { maxPendingReadIndexRequests: 2 });
    const none = c.raw("n2").readIndex(1);
    assert.ok(!none.ok && none.error.kind === "no-leader");
    c.elect("n1");
    c.isolate("n1");
    assert.ok(c.raw("n1").readIndex(1).ok);
    assert.ok(c.raw("n1").readIndex(2).ok);
    const third = c.raw("n1").readIndex(3);
    assert.ok(!third.ok && third.error.kind === "too-many-pending-reads");
  });

  it("a single-voter cluster answers at once", () => {
    const c = new Cluster(["solo"]);
    c.tickAll(25);
    c.raw("solo").readIndex(9);
    c.settle();
    assert.equal(c.get("solo").readStates[0]?.requestCtx, 9);
  });
});
