/**
 * Membership through ClusterService on real processes: a 4th node started
 * with `join: true` is added (as a learner, then promoted), catches up to the
 * same state hash, and is removed again; leadership moves to a named node;
 * removing the leader itself lets the remaining voters elect a new one.
 */
import assert from "node:assert/strict";
import { Code } from "../../../common/errors.ts";
import {
  grpcCode,
  grpcMessage,
  perTestCluster,
  raftOnly,
  streamSpec,
} from "../../support/cluster.ts";

describe("coordinator: membership changes and leadership transfer (real processes)", function () {
  this.timeout(60_000);
  const clusters = perTestCluster();

  it("adds a joining 4th node, which catches up; removes it; transfers and removes the leader", async () => {
    const cluster = await clusters.start({ name: "members", config: raftOnly });
    const write = (id: string) =>
      cluster.write((n, t) =>
        n.streams.createStream({ spec: streamSpec(id), requestId: `r-${id}` }, { timeoutMs: t }),
      );
    const leader = async () => cluster.node(await cluster.waitForLeader(10_000));
    for (let i = 0; i < 5; i++) await write(`m-${i}`);

    // ---- add c4: learner first, then voter ----
    const c4 = await cluster.defineJoiner("c4");
    await cluster.start("c4");
    const learner = await (await leader()).cluster.addMember(
      { nodeId: "c4", address: c4.peerAddress, apiAddress: c4.apiAddress, asLearner: true },
      { timeoutMs: 10_000 },
    );
    assert.ok(learner.members.some((m) => m.nodeId === "c4" && !m.voter));
    await cluster.waitForConverged(15_000, { ids: ["c1", "c2", "c3", "c4"] });
    assert.equal((await cluster.status("c4")).role, "learner");
    const voter = await (await leader()).cluster.addMember(
      { nodeId: "c4", address: c4.peerAddress, apiAddress: c4.apiAddress, asLearner: false },
      { timeoutMs: 10_000 },
    );
    assert.ok(voter.members.some((m) => m.nodeId === "c4" && m.voter));
    await assert.rejects(
      (await leader()).cluster.addMember(
        { nodeId: "c4", address: c4.peerAddress, apiAddress: c4.apiAddress },
        { timeoutMs: 10_000 },
      ),
      (err) => grpcCode(err) === Code.AlreadyExists,
    );
    for (let i = 5; i < 10; i++) await write(`m-${i}`);
    const four = await cluster.waitForConverged(15_000, { ids: ["c1", "c2", "c3", "c4"] });
    assert.equal(new Set(four.map((s) => s.stateHash)).size, 1, "c4 holds the same state");
    assert.equal((await cluster.listStreamIds("c4")).length, 10);
    const listed = await cluster.node("c1").cluster.listMembers({}, { timeoutMs: 5000 });
    assert.deepEqual(listed.members.map((m) => `${m.nodeId}:${m.voter}`).sort(), [
      "c1:true",
      "c2:true",
      "c3:true",
      "c4:true",
    ]);

    // ---- remove c4 ----
    const removed = await (await leader()).cluster.removeMember(
      { nodeId: "c4" },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(removed.members.map((m) => m.nodeId).sort(), ["c1", "c2", "c3"]);
    await cluster.kill("c4", "SIGTERM");
    await assert.rejects(
      (await leader()).cluster.removeMember({ nodeId: "c4" }, { timeoutMs: 10_000 }),
      (err) => grpcCode(err) === Code.NotFound && /not a member/.test(grpcMessage(err)),
    );
    await write("after-remove");

    // ---- transfer leadership to a named node ----
    const from = (await leader()).id;
    const target = ["c1", "c2", "c3"].find((id) => id !== from)!;
    const moved = await cluster
      .node(from)
      .cluster.transferLeadership({ targetNodeId: target }, { timeoutMs: 10_000 });
    assert.equal(moved.leaderId, target);
    assert.equal(await cluster.waitForLeader(5000), target);
    await write("after-transfer");

    // ---- remove the leader itself ----
    const doomed = await cluster.waitForLeader(10_000);
    const before = await cluster.status(doomed);
    await cluster.node(doomed).cluster.removeMember({ nodeId: doomed }, { timeoutMs: 10_000 });
    const successor = await cluster.waitForLeader(10_000, { exclude: [doomed] });
    assert.notEqual(successor, doomed);
    const after = await cluster.status(successor);
    assert.ok(after.term > before.term, "a new term began");
    assert.deepEqual(
      after.members.map((m) => m.id).sort(),
      ["c1", "c2", "c3"].filter((id) => id !== doomed),
    );
    await cluster.kill(doomed, "SIGTERM");
    await write("after-leader-removed");
    const rest = ["c1", "c2", "c3"].filter((id) => id !== doomed);
    await cluster.waitForConverged(10_000, { ids: rest });
    for (const id of rest) {
      const ids = await cluster.listStreamIds(id);
      assert.equal(
        ids.length,
        13,
        `${id}: 10 + after-remove, after-transfer, after-leader-removed`,
      );
    }
  });
});
