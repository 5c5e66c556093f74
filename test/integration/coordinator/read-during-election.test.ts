/**
 * Linearizable reads issued on followers right after the leader dies (3 real
 * processes, SIGKILL). A follower forwards the read to the leader it knows,
 * which is gone; the read must complete once a new leader is in place (well
 * under a second or two), not wait out its whole timeout (5 s) as it did:
 * an encoder's chain watch reconnecting then missed a handover's epoch
 * change and its pushes were fenced off (test/e2e/handover.test.ts).
 */
import assert from "node:assert/strict";
import { grpcMessage, perTestCluster, raftOnly, sleep, streamSpec } from "../../support/cluster.ts";

describe("coordinator: reads on followers during an election (3 real processes)", function () {
  this.timeout(60_000);
  const clusters = perTestCluster();

  it("complete once the new leader is in place, not after the read timeout", async () => {
    const cluster = await clusters.start({ name: "read-election", config: raftOnly });
    const leader = await cluster.waitForLeader(10_000);
    await cluster.write((n, t) =>
      n.streams.createStream({ spec: streamSpec("s1"), requestId: "r-s1" }, { timeoutMs: t }),
    );
    const followers = ["c1", "c2", "c3"].filter((id) => id !== leader);
    // Make sure both followers know the leader (their reads go to it).
    for (const id of followers) {
      await cluster.node(id).streams.getStream({ streamId: "s1" }, { timeoutMs: 5000 });
    }

    await cluster.kill(leader, "SIGKILL");
    await sleep(20);
    const t0 = Date.now();
    /**
     * One read, as a client does it: a refusal at once ("no known leader ...
     * retry shortly", when the follower already knows the leader is gone) is
     * retried; a read that hangs is the bug.
     */
    const read = async (id: string) => {
      for (;;) {
        try {
          const r = await cluster
            .node(id)
            .streams.getStream({ streamId: "s1" }, { timeoutMs: 8000 });
          return { id, ok: r.stream?.spec?.id === "s1", ms: Date.now() - t0, err: "" };
        } catch (err) {
          const msg = grpcMessage(err);
          if (!/not possible now/.test(msg) || Date.now() - t0 > 8000) {
            return { id, ok: false, ms: Date.now() - t0, err: msg };
          }
          await sleep(50);
        }
      }
    };
    const outcomes = await Promise.all(followers.map(read));
    const next = await cluster.waitForLeader(10_000, { exclude: [leader] });
    assert.notEqual(next, leader);
    for (const o of outcomes) {
      assert.ok(o.ok, `read on ${o.id} failed after ${o.ms} ms: ${o.err}`);
      assert.ok(o.ms < 3000, `read on ${o.id} took ${o.ms} ms (the election is ~0.3–0.6 s)`);
    }
  });
});
