import assert from "node:assert/strict";
import { Cluster } from "./harness.ts";

describe("raft snapshots", () => {
  it("catches up a follower whose entries the leader compacted away", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.isolate("n3");
    for (let k = 0; k < 20; k++) c.propose("n1", `e${k}`);
    const index = c.compact("n1");
    assert.equal(c.raw("n1").status().firstIndex, index + 1);
    c.heal();
    c.tickAll(5);
    const snaps = c.sent.filter((m) => m.kind === "InstallSnapshot" && m.to === "n3");
    assert.equal(snaps.length, 1);
    assert.equal(c.get("n3").restoredSnapshotIndex, index);
    assert.deepEqual(c.appliedData("n3"), c.appliedData("n1"));
    assert.equal(c.raw("n1").status().progress.get("n3")?.state, "replicate");
    // Replication continues normally after the snapshot.
    c.propose("n1", "after");
    assert.deepEqual(c.appliedData("n3").at(-1), "after");
    // And n3 restarts from its storage with the snapshot as its base.
    c.start("n3", c.get("n3").storage);
    assert.equal(c.raw("n3").status().applied, index);
    c.tickAll(3);
    assert.equal(c.raw("n3").status().commit, c.raw("n1").status().commit);
  });

  it("retries when the transport reports a failed snapshot", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.isolate("n3");
    for (let k = 0; k < 5; k++) c.propose("n1", `e${k}`);
    c.compact("n1");
    let lost = 0;
    c.dropIf = (m) => m.kind === "InstallSnapshot" && lost++ === 0;
    c.tickAll(3);
    assert.equal(lost, 1);
    assert.equal(
      c.raw("n1").status().progress.get("n3")?.state,
      "snapshot",
      "waits for the report",
    );
    c.raw("n1").reportSnapshot("n3", false);
    assert.equal(c.raw("n1").status().progress.get("n3")?.state, "probe");
    c.tickAll(3);
    assert.deepEqual(c.appliedData("n3"), c.appliedData("n1"));
    assert.equal(c.sent.filter((m) => m.kind === "InstallSnapshot").length, 2);
  });

  it("a snapshot the follower already covers only advances its commit index", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "a");
    const snap = c
      .get("n1")
      .storage.createSnapshot(
        c.raw("n1").status().applied,
        c.get("n1").conf,
        new TextEncoder().encode("[]"),
      );
    c.raw("n2").step({
      kind: "InstallSnapshot",
      from: "n1",
      to: "n2",
      term: c.raw("n1").status().term,
      leaderId: "n1",
      snapshot: snap,
    });
    const rd = c.raw("n2").ready();
    assert.equal(rd.snapshot, undefined, "nothing to restore");
    const reply = rd.messages.find((m) => m.kind === "InstallSnapshotResponse");
    assert.ok(reply?.kind === "InstallSnapshotResponse" && reply.success);
    assert.equal(reply.matchIndex, snap.metadata.index);
    c.raw("n2").advance(rd);
  });
});
