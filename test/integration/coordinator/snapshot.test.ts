/**
 * Snapshots and compaction on real processes (raft.snapshotEntries: 10, so
 * they happen every few writes): a follower that was down while the leader
 * compacted past it catches up (InstallSnapshot or log tail), and a full
 * cluster restart recovers from snapshot + WAL with every write present.
 *
 * Also guards the runtime's choice not to fsync commit-only hard states: a
 * snapshot may only cover durably committed entries, so the driver writes
 * the hard state before each snapshot; without that a node exits at its
 * first snapshot (the stderr tail then shows "raft driver failed").
 */
import assert from "node:assert/strict";
import { perTestCluster, raftOnly } from "../../support/cluster.ts";

describe("coordinator: snapshots, compaction and catch-up (3 real processes)", function () {
  this.timeout(60_000);
  const clusters = perTestCluster();

  it("a lagging follower catches up past compaction; a full restart recovers every write", async () => {
    const cluster = await clusters.start({
      name: "snap",
      config: raftOnly,
      raft: { snapshotEntries: 10 },
    });
    const leader = await cluster.waitForLeader(10_000);
    await cluster.createStreams("a", 25);
    let sts = await cluster.waitForConverged(10_000);
    for (const s of sts)
      assert.ok(s.snapshotIndex > 0, `${s.nodeId} took a snapshot: ${JSON.stringify(s)}`);

    const follower = cluster.ids().find((id) => id !== leader)!;
    const followerLast = (await cluster.status(follower)).lastIndex;
    await cluster.kill(follower, "SIGKILL");
    await cluster.createStreams("b", 40);
    const leaderNow = await cluster.waitForLeader(10_000);
    const ls = await cluster.status(leaderNow);
    assert.ok(
      ls.snapshotIndex > followerLast,
      `the leader compacted past ${follower}'s log (${followerLast}) while it was down: ${JSON.stringify(ls)}`,
    );
    await cluster.restart(follower);
    sts = await cluster.waitForConverged(15_000, { ids: cluster.ids() });

    // Everyone restarts (graceful), then recovers from its snapshot + WAL.
    for (const id of cluster.ids()) await cluster.kill(id, "SIGTERM");
    await Promise.all(cluster.ids().map((id) => cluster.restart(id)));
    await cluster.waitForLeader(10_000);
    await cluster.createStreams("c", 5);
    sts = await cluster.waitForConverged(15_000, { ids: cluster.ids() });
    for (const id of cluster.ids()) {
      const ids = new Set(await cluster.listStreamIds(id));
      for (const [p, n] of [
        ["a", 25],
        ["b", 40],
        ["c", 5],
      ] as const) {
        for (let i = 0; i < n; i++) assert.ok(ids.has(`${p}-${i}`), `${id} has ${p}-${i}`);
      }
      assert.equal(ids.size, 70);
    }
  });
});
