import assert from "node:assert/strict";
import type { RequestVote } from "../../../coordinator/src/raft/index.ts";
import { Cluster } from "./harness.ts";

describe("raft pre-vote", () => {
  it("a partitioned node does not inflate its term, and rejoining does not depose the leader", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    const term = c.raw("n1").status().term;
    c.isolate("n3");
    c.tickAll(200);
    assert.equal(c.raw("n3").status().term, term, "pre-vote never succeeds, so the term stays");
    assert.equal(c.raw("n3").status().role, "pre-candidate");
    c.heal();
    c.tickAll(30);
    assert.deepEqual(c.leaders(), ["n1"]);
    assert.equal(c.raw("n1").status().term, term);
    assert.equal(c.raw("n3").status().leader, "n1");
  });

  it("without pre-vote the same partition inflates the term and forces a new election", () => {
    const c = new Cluster(["n1", "n2", "n3"], { preVote: false });
    c.elect("n1");
    const term = c.raw("n1").status().term;
    c.isolate("n3");
    c.tickAll(200);
    assert.ok(c.raw("n3").status().term > term + 5, "each timeout bumps the term");
    c.heal();
    c.tickAll(60);
    assert.equal(c.leaders().length, 1);
    assert.ok(c.raw(c.leaders()[0]!).status().term > term, "the old leader was deposed");
  });

  it("a pre-vote is granted without anyone changing term or vote", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    const before = c.raw("n2").status();
    const preVote: RequestVote = {
      kind: "RequestVote",
      from: "n1",
      to: "n2",
      term: before.term + 1,
      candidateId: "n1",
      lastLogIndex: 3,
      lastLogTerm: 1,
      preVote: true,
      leadershipTransfer: false,
    };
    c.raw("n2").step(preVote);
    const answer = c.raw("n2").ready().messages[0];
    assert.equal(answer?.kind, "RequestVoteResponse");
    assert.ok(answer.kind === "RequestVoteResponse" && answer.voteGranted && answer.preVote);
    assert.equal(answer.term, before.term + 1, "a granted pre-vote echoes the proposed term");
    assert.equal(c.raw("n2").status().term, before.term);
    assert.equal(c.raw("n2").status().vote, before.vote);
  });
});

describe("raft check-quorum", () => {
  it("a leader that cannot hear a quorum steps down within an election timeout", () => {
    const c = new Cluster(["n1", "n2", "n3"], { electionTicks: 10 });
    c.elect("n1");
    c.isolate("n1");
    let steppedDownAt = -1;
    for (let t = 1; t <= 25; t++) {
      c.tick("n1");
      if (c.raw("n1").status().role !== "leader") {
        steppedDownAt = t;
        break;
      }
    }
    assert.ok(steppedDownAt > 0 && steppedDownAt <= 20, `stepped down at tick ${steppedDownAt}`);
    assert.equal(c.raw("n1").status().role, "follower");
    // The majority side elects a new leader meanwhile.
    for (let r = 0; r < 40 && !c.leaders().some((id) => id !== "n1"); r++) {
      c.raw("n2").tick();
      c.raw("n3").tick();
      c.deliver();
    }
    assert.ok(c.leaders().some((id) => id === "n2" || id === "n3"));
  });

  it("a leader that hears its quorum keeps leading", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.isolate("n3");
    c.tickAll(100);
    assert.deepEqual(c.leaders(), ["n1"]);
  });

  it("followers with a live leader ignore higher-term votes (leader lease)", () => {
    const c = new Cluster(["n1", "n2", "n3"], { preVote: false });
    c.elect("n1");
    const term = c.raw("n2").status().term;
    const vote: RequestVote = {
      kind: "RequestVote",
      from: "n3",
      to: "n2",
      term: term + 5,
      candidateId: "n3",
      lastLogIndex: 100,
      lastLogTerm: term + 4,
      preVote: false,
      leadershipTransfer: false,
    };
    c.raw("n2").step(vote);
    assert.equal(c.raw("n2").status().term, term, "ignored: no term change");
    assert.equal(c.raw("n2").hasReady(), false, "ignored: no answer");
    // The same request flagged as a leadership transfer bypasses the lease.
    c.raw("n2").step({ ...vote, leadershipTransfer: true });
    assert.equal(c.raw("n2").status().term, term + 5);
    assert.equal(c.raw("n2").status().vote, "n3");
  });

  it("a node with a higher term rejoining gets the stale leader to step down", () => {
    // n3's term runs ahead without pre-vote; its answers to the leader's appends
    // carry that term, so the leader steps down and a fresh election follows.
    const c = new Cluster(["n1", "n2", "n3"], { preVote: false });
    c.elect("n1");
    c.isolate("n3");
    c.tickAll(100);
    c.heal();
    c.tickAll(80);
    assert.equal(c.leaders().length, 1);
    const leader = c.leaders()[0]!;
    for (const id of c.ids) assert.equal(c.raw(id).status().leader, leader);
  });
});
