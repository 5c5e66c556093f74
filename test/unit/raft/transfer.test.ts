import assert from "node:assert/strict";
import { bytes, Cluster } from "./harness.ts";

describe("raft leadership transfer", () => {
  it("hands leadership to an up-to-date follower at once", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    const term = c.raw("n1").status().term;
    assert.ok(c.raw("n1").transferLeadership("n2").ok);
    c.deliver();
    assert.deepEqual(c.leaders(), ["n2"]);
    assert.equal(c.raw("n2").status().term, term + 1);
    assert.ok(c.sent.some((m) => m.kind === "TimeoutNow" && m.to === "n2"));
    assert.equal(c.raw("n1").status().leader, "n2");
  });

  it("catches a lagging target up first, refusing proposals meanwhile", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.dropIf = (m) => m.to === "n3";
    for (let k = 0; k < 5; k++) c.propose("n1", `e${k}`);
    c.heal();
    assert.ok(c.raw("n1").transferLeadership("n3").ok);
    const refused = c.raw("n1").propose(bytes("during"));
    assert.ok(!refused.ok && refused.error.kind === "transfer-in-progress");
    assert.ok(
      !refused.ok &&
        refused.error.kind === "transfer-in-progress" &&
        refused.error.transferee === "n3",
    );
    c.deliver();
    assert.deepEqual(c.leaders(), ["n3"]);
    assert.deepEqual(c.appliedData("n3"), ["e0", "e1", "e2", "e3", "e4"]);
    assert.ok(c.propose("n3", "after").ok);
    for (const id of c.ids) assert.deepEqual(c.appliedData(id).at(-1), "after");
  });

  it("is abandoned after an election timeout if the target does not take over", () => {
    const c = new Cluster(["n1", "n2", "n3"], { electionTicks: 10 });
    c.elect("n1");
    c.isolate("n3");
    assert.ok(c.raw("n1").transferLeadership("n3").ok);
    assert.equal(c.raw("n1").status().leadTransferee, "n3");
    c.tickAll(10);
    assert.equal(c.raw("n1").status().leadTransferee, "");
    assert.deepEqual(c.leaders(), ["n1"]);
    assert.ok(c.propose("n1", "ok again").ok);
  });

  it("refuses bad targets as values", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    const self = c.raw("n1").transferLeadership("n1");
    assert.ok(!self.ok && self.error.kind === "already-leader");
    const stranger = c.raw("n1").transferLeadership("n9");
    assert.ok(!stranger.ok && stranger.error.kind === "not-voter");
    const follower = c.raw("n2").transferLeadership("n3");
    assert.ok(!follower.ok && follower.error.kind === "not-leader");
  });
});
