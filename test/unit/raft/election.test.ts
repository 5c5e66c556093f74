import assert from "node:assert/strict";
import { createRng } from "../../../common/rng.ts";
import {
  bootstrapState,
  createMemoryStorage,
  createRawNode,
  decodeConfChange,
  type RaftMessage,
  type RequestVote,
} from "../../../coordinator/src/raft/index.ts";
import { Cluster } from "./harness.ts";

describe("raft election", () => {
  it("elects exactly one leader by timeout and every node learns it", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    for (let round = 0; round < 40 && c.leaders().length === 0; round++) c.tickAll(1);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1);
    const leader = leaders[0]!;
    const term = c.raw(leader).status().term;
    assert.ok(term >= 2, `bootstrap is term 1, the first election is later (got ${term})`);
    for (const id of c.ids) {
      assert.equal(c.raw(id).status().leader, leader);
      assert.equal(c.raw(id).status().term, term);
    }
  });

  it("times out after a randomized interval in [electionTicks, 2*electionTicks)", () => {
    const firstCampaignTick = (seed: number) => {
      const node = createRawNode(
        { id: "n1", rng: createRng(seed), electionTicks: 10, preVote: false },
        createMemoryStorage(bootstrapState(["n1", "n2", "n3"])),
      );
      const rd = node.ready();
      for (const e of rd.committedEntries) node.applyConfChange(decodeConfChange(e.data));
      node.advance(rd);
      for (let t = 1; t <= 40; t++) {
        node.tick();
        if (node.status().role === "candidate") return t;
      }
      return -1;
    };
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const t = firstCampaignTick(seed);
      assert.ok(t >= 10 && t < 20, `seed ${seed} campaigned at tick ${t}`);
      seen.add(t);
    }
    assert.ok(seen.size >= 8, `timeouts should spread over the range, saw ${[...seen]}`);
  });

  it("the same seed gives the same election", () => {
    const run = () => {
      const c = new Cluster(["n1", "n2", "n3", "n4", "n5"], {}, 99);
      for (let r = 0; r < 40 && c.leaders().length === 0; r++) c.tickAll(1);
      return [c.leaders()[0], c.raw("n1").status().term];
    };
    assert.deepEqual(run(), run());
  });

  it("a candidate whose log is behind cannot win (§5.4.1)", () => {
    // Without check-quorum, so the voters answer rather than ignore (leader lease).
    const c = new Cluster(["n1", "n2", "n3"], { preVote: false, checkQuorum: false });
    c.elect("n1");
    c.dropIf = (m) => m.to === "n3";
    c.propose("n1", "x");
    c.heal();
    // n3 lacks "x": n1 and n2 must refuse it.
    c.raw("n3").campaign();
    c.deliver();
    assert.notEqual(c.raw("n3").status().role, "leader");
    const refusals = c.sent.filter(
      (m) => m.kind === "RequestVoteResponse" && m.to === "n3" && !m.voteGranted && !m.preVote,
    );
    assert.ok(refusals.length >= 1);
    // n2 (up to date) can win.
    c.tickAll(25);
    assert.equal(c.leaders().length, 1);
    assert.notEqual(c.leaders()[0], "n3");
  });

  it("grants at most one vote per term", () => {
    const c = new Cluster(["n1", "n2", "n3"], { preVote: false, checkQuorum: false });
    const n3 = c.raw("n3");
    const term = n3.status().term + 1;
    const ask = (from: string): RequestVote => ({
      kind: "RequestVote",
      from,
      to: "n3",
      term,
      candidateId: from,
      lastLogIndex: 3,
      lastLogTerm: 1,
      preVote: false,
      leadershipTransfer: false,
    });
    n3.step(ask("n1"));
    n3.step(ask("n2"));
    n3.step(ask("n1")); // a retransmission to the same candidate is granted again
    const answers = n3
      .ready()
      .messages.filter(
        (m): m is Extract<RaftMessage, { kind: "RequestVoteResponse" }> =>
          m.kind === "RequestVoteResponse",
      );
    assert.deepEqual(
      answers.map((m) => [m.to, m.voteGranted]),
      [
        ["n1", true],
        ["n2", false],
        ["n1", true],
      ],
    );
    assert.equal(n3.status().vote, "n1");
  });

  it("a single-node cluster elects itself and commits alone", () => {
    const c = new Cluster(["solo"]);
    c.tickAll(25);
    assert.deepEqual(c.leaders(), ["solo"]);
    const r = c.propose("solo", "a");
    assert.ok(r.ok);
    assert.deepEqual(c.appliedData("solo"), ["a"]);
  });

  it("rejects bad config with a message naming the field", () => {
    const storage = createMemoryStorage(bootstrapState(["n1"]));
    assert.throws(
      () =>
        createRawNode(
          { id: "n1", rng: createRng(1), electionTicks: 2, heartbeatTicks: 2 },
          storage,
        ),
      /heartbeatTicks \(2\) must be < electionTicks \(2\)/,
    );
    assert.throws(
      () => createRawNode({ id: "n1", rng: createRng(1), maxInflightMsgs: 0 }, storage),
      /maxInflightMsgs must be a positive integer/,
    );
    assert.throws(() => createRawNode({ id: "", rng: createRng(1) }, storage), /id must be/);
  });
});
