/**
 * A paused leader (SIGSTOP) on 3 real processes: the others elect a new
 * leader and keep committing; when the old leader resumes (SIGCONT) it must
 * not commit anything as leader of its old term, a write sent to it fails or
 * is redirected, it steps down to follow the new leader, and no write
 * acknowledged by anyone is lost. Throughout, no two nodes claim leadership
 * of the same term.
 */
import assert from "node:assert/strict";
import { Code } from "../../../common/errors.ts";
import {
  grpcCode,
  grpcMessage,
  type NodeStatusView,
  perTestCluster,
  raftOnly,
  sleep,
  streamSpec,
} from "../../support/cluster.ts";

describe("coordinator: a SIGSTOPped leader resumes as a stale leader (3 real processes)", function () {
  this.timeout(60_000);
  const clusters = perTestCluster();

  it("cannot accept writes after SIGCONT, steps down, and loses nothing", async () => {
    const cluster = await clusters.start({ name: "stale", config: raftOnly });
    const create = (nodeId: string, id: string, timeoutMs = 5000) =>
      cluster
        .node(nodeId)
        .streams.createStream({ spec: streamSpec(id), requestId: `r-${id}` }, { timeoutMs });

    const old = await cluster.waitForLeader(10_000);
    const monitor = cluster.monitorLeaders(25);
    await create(old, "before-stop");
    const oldTerm = (await cluster.status(old)).term;

    await cluster.kill(old, "SIGSTOP");
    const next = await cluster.waitForLeader(10_000, { exclude: [old] });
    assert.notEqual(next, old);
    const nextTerm = (await cluster.status(next)).term;
    assert.ok(nextTerm > oldTerm, `new term ${nextTerm} > old ${oldTerm}`);
    for (let i = 0; i < 5; i++) {
      const id = `during-stop-${i}`;
      await cluster.write(
        (n, t) =>
          n.streams.createStream({ spec: streamSpec(id), requestId: `r-${id}` }, { timeoutMs: t }),
        { prefer: next },
      );
    }

    // Send the old leader a write while it is still stopped, then resume it:
    // the request waits in its socket next to the new leader's heartbeats, so
    // it may reach the node while it still believes it leads `oldTerm` (it
    // then appends the write in its old term and must fail it on stepping
    // down) or just after it stepped down (a redirect). Both must fail.
    const staleWrite = create(old, "to-stale-leader", 3000).then(
      () => "acknowledged",
      (err) => `${grpcCode(err)}: ${grpcMessage(err)}`,
    );
    await sleep(50);
    await cluster.kill(old, "SIGCONT");
    const stale = await staleWrite;
    assert.notEqual(stale, "acknowledged", "a stale leader must not acknowledge a write");
    assert.match(
      stale,
      new RegExp(`^(${Code.Unavailable}|${Code.DeadlineExceeded}): `),
      "the failure is retryable (UNAVAILABLE or DEADLINE_EXCEEDED)",
    );

    // It steps down and follows a leader of a newer term (bounded wait).
    const follows = (x: NodeStatusView) =>
      x.role === "follower" && x.leaderId !== "" && x.leaderId !== old && x.term > oldTerm;
    let st = await cluster.status(old, 2000);
    for (let i = 0; i < 100 && !follows(st); i++) {
      await sleep(20);
      st = await cluster.status(old, 2000);
    }
    assert.ok(follows(st), `${old} stepped down and follows the new leader: ${JSON.stringify(st)}`);
    assert.ok(st.term >= nextTerm);

    // A write sent to it now is redirected (to whichever node leads by then:
    // on a loaded machine another election may already have happened).
    await assert.rejects(create(old, "redirected"), (err) => {
      assert.equal(grpcCode(err), Code.Unavailable, grpcMessage(err));
      assert.match(
        grpcMessage(err),
        new RegExp(
          `^node "${old}" is not the leader(; send writes to leader "c\\d"| and no leader is known)`,
        ),
      );
      return true;
    });
    await cluster.write((n, t) =>
      n.streams.createStream(
        { spec: streamSpec("after-resume"), requestId: "r-after-resume" },
        { timeoutMs: t },
      ),
    );

    const { conflicts, leadersByTerm } = await monitor.stop();
    assert.deepEqual(conflicts, [], "at most one leader per term");
    assert.ok(leadersByTerm.get(oldTerm)?.has(old), "the monitor saw the old leader");
    assert.ok(leadersByTerm.get(nextTerm)?.has(next), "the monitor saw the new leader");

    await cluster.waitForConverged(10_000, { ids: cluster.ids() });
    const expected = [
      "before-stop",
      ...[0, 1, 2, 3, 4].map((i) => `during-stop-${i}`),
      "after-resume",
    ];
    for (const id of cluster.ids()) {
      const ids = await cluster.listStreamIds(id);
      for (const s of expected) assert.ok(ids.includes(s), `${id} has ${s}`);
      // The write the stale leader appended in its old term was never
      // committed: the new leader's log replaced it.
      assert.ok(!ids.includes("to-stale-leader"), `${id} must not have the stale leader's write`);
      assert.ok(!ids.includes("redirected"), `${id} must not have the redirected write`);
    }
  });
});
