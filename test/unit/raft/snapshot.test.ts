import assert from "node:assert/strict";
import { createMemoryStorage } from "../../../coordinator/src/raft/index.ts";
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

describe("raft restart edge cases found by the simulator", () => {
  it("treats a durable snapshot as committed even if the hard state saying so was lost", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    for (let k = 0; k < 5; k++) c.propose("n1", `e${k}`);
    const n2 = c.get("n2");
    const applied = n2.node.status().applied;
    const snap = n2.storage.createSnapshot(applied, n2.conf, new TextEncoder().encode("[]"));
    // The WAL kept the snapshot but lost the hard state written after it.
    const storage = createMemoryStorage({
      hardState: { term: snap.metadata.term, vote: "", commit: 2 },
      snapshot: snap,
      entries: [],
    });
    const restarted = c.start("n2", storage);
    assert.equal(restarted.node.status().commit, applied);
    assert.equal(restarted.node.status().applied, applied);
    c.tickAll(3);
    assert.equal(c.raw("n2").status().commit, c.raw("n1").status().commit);
  });

  it("re-probes a follower whose probe was lost after the leader compacted past its match", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "e0");
    // n3 acknowledges e1 but never learns it committed.
    c.dropIf = (m) => m.to === "n3" && m.kind === "AppendEntries" && m.entries.length === 0;
    c.propose("n1", "e1");
    assert.ok(c.raw("n3").status().commit < c.raw("n1").status().progress.get("n3")!.match);
    c.isolate("n3");
    c.raw("n1").reportUnreachable("n3");
    c.propose("n1", "f"); // its probe to n3 is lost
    assert.equal(c.raw("n1").status().progress.get("n3")?.state, "probe");
    c.compact("n1");
    c.heal();
    // Heartbeats now name index 0 (the term at n3's match is compacted away), so
    // their answers carry n3's commit index, not its match.
    c.tickAll(4);
    assert.deepEqual(c.appliedData("n3"), c.appliedData("n1"));
  });
});
