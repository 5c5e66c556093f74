import assert from "node:assert/strict";
import {
  decodeConfChange,
  encodeConfChange,
  nextConfState,
} from "../../../coordinator/src/raft/index.ts";
import { Cluster } from "./harness.ts";

describe("raft membership changes", () => {
  it("adds a learner that replicates but does not count, then promotes it", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "before");
    assert.ok(c.raw("n1").proposeConfChange({ type: "add-learner", nodeId: "n4" }).ok);
    c.deliver();
    c.start("n4");
    c.tickAll(3);
    assert.deepEqual(c.get("n4").conf.learners, ["n4"]);
    assert.deepEqual(c.appliedData("n4"), ["before"]);
    assert.equal(c.raw("n1").status().progress.get("n4")?.isLearner, true);
    // A learner never campaigns.
    c.tick("n4", 100);
    assert.equal(c.raw("n4").status().role, "follower");
    // Its acknowledgement does not make a majority: n1 + n4 of {n1, n2, n3}.
    c.dropIf = (m) => m.to === "n2" || m.to === "n3";
    c.propose("n1", "needs-a-voter");
    assert.deepEqual(c.appliedData("n1"), ["before"]);
    c.heal();
    c.tickAll(2);
    assert.deepEqual(c.appliedData("n1"), ["before", "needs-a-voter"]);
    // Promotion.
    assert.ok(c.raw("n1").proposeConfChange({ type: "add-voter", nodeId: "n4" }).ok);
    c.deliver();
    for (const id of ["n1", "n2", "n3", "n4"]) {
      assert.deepEqual(c.get(id).conf.voters, ["n1", "n2", "n3", "n4"], id);
      assert.deepEqual(c.get(id).conf.learners, [], id);
    }
  });

  it("removes a follower: the rest commit without it", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    assert.ok(c.raw("n1").proposeConfChange({ type: "remove-node", nodeId: "n3" }).ok);
    c.deliver();
    assert.deepEqual(c.get("n1").conf.voters, ["n1", "n2"]);
    assert.equal(c.raw("n1").status().progress.has("n3"), false);
    c.isolate("n3");
    c.propose("n1", "two-of-two");
    assert.deepEqual(c.appliedData("n2"), ["two-of-two"]);
    // The removed node, if it never hears of its removal, cannot disrupt: the
    // lease makes the others ignore it.
    c.tickAll(100);
    assert.deepEqual(
      c.leaders().filter((id) => id !== "n3"),
      ["n1"],
    );
  });

  it("removes the leader: it steps down once the removal commits and the rest elect", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    const term = c.raw("n1").status().term;
    assert.ok(c.raw("n1").proposeConfChange({ type: "remove-node", nodeId: "n1" }).ok);
    c.deliver();
    assert.equal(c.raw("n1").status().role, "follower");
    assert.deepEqual(c.get("n1").conf.voters, ["n2", "n3"]);
    const leader = c.awaitLeader(["n2", "n3"]);
    assert.ok(c.raw(leader).status().term > term);
    c.propose(leader, "after");
    assert.deepEqual(c.appliedData(leader === "n2" ? "n3" : "n2"), ["after"]);
    c.tickAll(100);
    assert.notEqual(c.raw("n1").status().role, "leader", "a removed node never campaigns");
  });

  it("allows one change at a time and refuses invalid ones as values", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.dropIf = () => true; // nothing commits
    assert.ok(c.raw("n1").proposeConfChange({ type: "add-learner", nodeId: "n4" }).ok);
    const second = c.raw("n1").proposeConfChange({ type: "add-learner", nodeId: "n5" });
    assert.ok(!second.ok && second.error.kind === "conf-change-pending");
    c.heal();
    c.tickAll(2);
    const dup = c.raw("n1").proposeConfChange({ type: "add-voter", nodeId: "n2" });
    assert.ok(!dup.ok && dup.error.kind === "invalid-conf-change");
    assert.match(!dup.ok ? dup.error.message : "", /n2 is already a voter/);
    const ghost = c.raw("n1").proposeConfChange({ type: "remove-node", nodeId: "n9" });
    assert.ok(!ghost.ok && /not a member/.test(ghost.error.message));
    const notLeader = c.raw("n2").proposeConfChange({ type: "add-learner", nodeId: "n5" });
    assert.ok(!notLeader.ok && notLeader.error.kind === "not-leader");
  });

  it("a new leader proposes no change until it has applied its predecessor's entries", () => {
    const c = new Cluster(["n1", "n2", "n3"], { checkQuorum: false });
    c.elect("n1");
    // n2 and n3 get the change but nobody learns it committed.
    c.dropIf = (m) => m.from === "n2" || m.from === "n3";
    assert.ok(c.raw("n1").proposeConfChange({ type: "add-learner", nodeId: "n4" }).ok);
    c.deliver();
    c.isolate("n1");
    c.raw("n2").campaign();
    for (let k = 0; k < 6 && c.raw("n2").status().role !== "leader"; k++) c.deliverOneRound();
    assert.equal(c.raw("n2").status().role, "leader");
    const early = c.raw("n2").proposeConfChange({ type: "add-learner", nodeId: "n5" });
    assert.ok(!early.ok && early.error.kind === "conf-change-pending");
    c.deliver();
    assert.deepEqual(c.get("n2").conf.learners, ["n4"]);
    assert.ok(c.raw("n2").proposeConfChange({ type: "add-learner", nodeId: "n5" }).ok);
  });

  it("encodes conf changes and computes the next membership", () => {
    const cc = { type: "add-learner", nodeId: "n-ü" } as const;
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
    assert.throws(() => decodeConfChange(new TextEncoder().encode("{}")), /malformed/);
    const conf = { voters: ["a"], learners: [], votersOutgoing: [] };
    assert.deepEqual(
      nextConfState(conf, { type: "remove-node", nodeId: "a" }),
      conf,
      "last voter stays",
    );
    assert.deepEqual(nextConfState(conf, { type: "add-voter", nodeId: "b" }).voters, ["a", "b"]);
  });
});
