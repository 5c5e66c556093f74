import assert from "node:assert/strict";
import type { AppendEntries, RaftMessage } from "../../../coordinator/src/raft/index.ts";
import { createMemoryStorage, entrySizeBytes } from "../../../coordinator/src/raft/index.ts";
import { Cluster } from "./harness.ts";

const appendsTo = (msgs: readonly RaftMessage[], to: string) =>
  msgs.filter((m): m is AppendEntries => m.kind === "AppendEntries" && m.to === to);

describe("raft log replication", () => {
  it("commits once a majority has the entry, and only then", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.dropIf = (m) => m.from === "n1";
    const r = c.propose("n1", "a");
    assert.ok(r.ok);
    assert.deepEqual(c.appliedData("n1"), [], "no follower has it: not committed");
    c.heal();
    c.tickAll(2);
    for (const id of c.ids) assert.deepEqual(c.appliedData(id), ["a"]);
  });

  it("repairs a follower's conflicting uncommitted suffix", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "committed");
    c.isolate("n1");
    for (const d of ["lost-a", "lost-b", "lost-c"])
      c.raw("n1").propose(new TextEncoder().encode(d));
    c.deliver();
    const leader = c.awaitLeader(["n2", "n3"]);
    c.propose(leader, "x");
    c.propose(leader, "y");
    c.heal();
    c.tickAll(30);
    assert.deepEqual(c.leaders(), [leader]);
    for (const id of c.ids) assert.deepEqual(c.appliedData(id), ["committed", "x", "y"]);
    const last = c.raw(leader).status().lastIndex;
    assert.equal(c.raw("n1").status().lastIndex, last);
    for (let i = 1; i <= last; i++) {
      assert.equal(c.get("n1").storage.term(i), c.get(leader).storage.term(i), `term at ${i}`);
    }
  });

  it("reject hints skip a whole conflicting term instead of one entry per round trip", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.isolate("n1");
    for (let k = 0; k < 50; k++) c.raw("n1").propose(new TextEncoder().encode(`stale-${k}`));
    c.deliver();
    const second = c.awaitLeader(["n2", "n3"]);
    for (let k = 0; k < 50; k++) c.propose(second, `fresh-${k}`);
    // A third leader starts probing n1 at its own last index, far beyond where
    // n1's log (50 entries of an older term) diverges.
    const third = second === "n2" ? "n3" : "n2";
    assert.ok(c.raw(second).transferLeadership(third).ok);
    c.deliver();
    const leader = c.raw(third).status();
    assert.equal(leader.role, "leader");
    const n1 = c.raw("n1").status();
    assert.equal(n1.lastIndex, 54);
    const staleTerm = c.get("n1").storage.term(54)!;
    const pr = leader.progress.get("n1")!;
    assert.equal(pr.state, "probe");
    const probe: AppendEntries = {
      kind: "AppendEntries",
      from: third,
      to: "n1",
      term: leader.term,
      leaderId: third,
      prevLogIndex: pr.next - 1,
      prevLogTerm: c.get(third).storage.term(pr.next - 1)!,
      entries: [],
      leaderCommit: leader.commit,
      readContext: 0,
    };
    c.queue = [];
    c.raw("n1").step(probe);
    c.settle();
    const reply = c.queue.find((m) => m.kind === "AppendEntriesResponse" && m.from === "n1");
    assert.ok(reply?.kind === "AppendEntriesResponse" && !reply.success);
    assert.deepEqual([reply.rejectHintIndex, reply.rejectHintTerm], [54, staleTerm]);
    // The leader skips every entry of its log newer than the hinted term at once.
    c.queue = [];
    c.raw(third).step(reply);
    c.settle();
    const next = c.queue.find((m) => m.kind === "AppendEntries" && m.to === "n1");
    assert.ok(next?.kind === "AppendEntries");
    assert.equal(next.prevLogIndex, 4, "the last index both logs share (n1's first no-op)");
    c.heal();
    c.tickAll(5);
    assert.equal(c.appliedData("n1").length, 50);
    assert.ok(c.appliedData("n1").every((d) => d.startsWith("fresh-")));
  });

  it("batches entries up to maxSizePerMsgBytes per AppendEntries", () => {
    const entryBytes = entrySizeBytes({
      term: 1,
      index: 1,
      type: "normal",
      data: new Uint8Array(10),
    });
    const c = new Cluster(["n1", "n2", "n3"], { maxSizePerMsgBytes: 3 * entryBytes });
    c.elect("n1");
    c.dropIf = (m) => m.to === "n3";
    for (let k = 0; k < 20; k++) c.propose("n1", `payload-${String(k).padStart(2, "0")}`);
    c.heal();
    const before = c.sent.length;
    c.tickAll(5);
    const batches = appendsTo(c.sent.slice(before), "n3").filter((m) => m.entries.length > 0);
    assert.ok(batches.length >= 7, `20 entries at <= 3 per message: ${batches.length} messages`);
    for (const m of batches) assert.ok(m.entries.length <= 3, `${m.entries.length} entries`);
    assert.equal(c.appliedData("n3").length, 20);
  });

  it("bounds AppendEntries in flight to a follower by maxInflightMsgs, then recovers", () => {
    const c = new Cluster(["n1", "n2", "n3"], { maxInflightMsgs: 3 });
    c.elect("n1");
    c.propose("n1", "warm-up");
    assert.equal(c.raw("n1").status().progress.get("n2")?.state, "replicate");
    // n2's acknowledgements are lost: the leader must stop after 3 messages.
    c.dropIf = (m) => m.from === "n2" && m.kind === "AppendEntriesResponse";
    const before = c.sent.length;
    for (let k = 0; k < 10; k++) c.propose("n1", `e${k}`);
    const withEntries = appendsTo(c.sent.slice(before), "n2").filter((m) => m.entries.length > 0);
    assert.equal(withEntries.length, 3);
    const pr = c.raw("n1").status().progress.get("n2")!;
    assert.equal(pr.inflight, 3);
    assert.equal(pr.state, "replicate");
    // n3 still acknowledges, so everything commits meanwhile.
    assert.equal(c.appliedData("n1").length, 11);
    c.heal();
    c.tickAll(5);
    assert.equal(c.appliedData("n2").length, 11);
    assert.equal(c.raw("n1").status().progress.get("n2")?.inflight, 0);
  });

  it("detects an AppendEntries lost while pipelining and resends it", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    c.propose("n1", "a");
    let dropped = 0;
    c.dropIf = (m) => {
      if (m.kind === "AppendEntries" && m.to === "n2" && m.entries.length > 0 && dropped === 0) {
        dropped++;
        return true;
      }
      return false;
    };
    const before = c.sent.length;
    c.propose("n1", "b");
    c.tickAll(3);
    assert.equal(dropped, 1);
    assert.deepEqual(c.appliedData("n2"), ["a", "b"]);
    const rejected = c.sent
      .slice(before)
      .some((m) => m.kind === "AppendEntriesResponse" && m.from === "n2" && !m.success);
    assert.ok(rejected, "n2 noticed the gap at the next append and rejected it");
  });

  it("refuses proposals as values: not leader, and too many uncommitted bytes", () => {
    const c = new Cluster(["n1", "n2", "n3"], { maxUncommittedEntriesBytes: 100 });
    c.elect("n1");
    const notLeader = c.raw("n2").propose(new Uint8Array(1));
    assert.equal(notLeader.ok, false);
    assert.ok(!notLeader.ok && notLeader.error.kind === "not-leader");
    assert.ok(
      !notLeader.ok && notLeader.error.kind === "not-leader" && notLeader.error.leader === "n1",
    );
    c.isolate("n1");
    assert.ok(c.raw("n1").propose(new Uint8Array(60)).ok);
    const full = c.raw("n1").propose(new Uint8Array(60));
    assert.ok(!full.ok && full.error.kind === "uncommitted-bytes-exceeded");
    assert.match(!full.ok ? full.error.message : "", /limit 100/);
    c.heal();
    c.tickAll(3);
    assert.ok(c.raw("n1").propose(new Uint8Array(60)).ok, "accepted again once committed");
  });
});

describe("raft with a follower that lost acknowledged entries (outside Raft's fault model)", () => {
  it("the leader notices the lost match and repairs the follower instead of waiting forever", () => {
    const c = new Cluster(["n1", "n2", "n3"]);
    c.elect("n1");
    for (let k = 0; k < 6; k++) c.propose("n1", `e${k}`);
    const match = c.raw("n1").status().progress.get("n3")!.match;
    // n3's disk lies: the last three entries it acknowledged are gone after a restart.
    const old = c.get("n3").storage;
    const kept = old.entries(1, old.lastIndex() - 2, Number.POSITIVE_INFINITY);
    const hs = old.initialState().hardState;
    const storage = createMemoryStorage({
      hardState: { ...hs, commit: Math.min(hs.commit, kept.length) },
      snapshot: old.snapshot(),
      entries: kept,
    });
    c.start("n3", storage);
    assert.equal(c.raw("n3").status().lastIndex, match - 3);
    c.tickAll(6);
    assert.deepEqual(c.appliedData("n3"), c.appliedData("n1"));
    assert.equal(c.raw("n1").status().progress.get("n3")?.match, c.raw("n1").status().lastIndex);
  });
});
