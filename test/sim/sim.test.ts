import assert from "node:assert/strict";
import type { TestingBugs } from "../../coordinator/src/raft/index.ts";
import { main } from "./cli.ts";
import { runRange } from "./run.ts";
import { runSimulation } from "./sim.ts";

/** The first seed in from..to whose run violates a checker, with the violation. */
function firstFailing(from: number, to: number, testingBugs: TestingBugs) {
  for (let seed = from; seed <= to; seed++) {
    const r = runSimulation({ seed, testingBugs });
    if (r.violation) return { seed, violation: r.violation };
  }
  return undefined;
}

describe("deterministic cluster simulation", function () {
  this.timeout(120_000);

  it("runs 100 seeds (3 and 5 nodes, faults, membership changes) without a violation", () => {
    const results = runRange(0, 99, {});
    const failures = results
      .filter((r) => r.violation)
      .map((r) => `seed ${r.seed}: ${r.violation?.kind}: ${r.violation?.message}`);
    assert.deepEqual(failures, []);
    const total = (key: "acked" | "crashes" | "snapshotsInstalled" | "confChanges" | "reads") =>
      results.reduce((sum, r) => sum + r.stats[key], 0);
    // The faults really happened and the cluster really worked through them.
    assert.ok(total("acked") > 10_000, `acknowledged writes: ${total("acked")}`);
    assert.ok(total("crashes") > 100, `crashes: ${total("crashes")}`);
    assert.ok(total("snapshotsInstalled") > 50, `snapshots: ${total("snapshotsInstalled")}`);
    assert.ok(total("confChanges") > 50, `membership changes: ${total("confChanges")}`);
    assert.ok(total("reads") > 1000, `reads: ${total("reads")}`);
    assert.ok(results.every((r) => r.stats.recoveryTicks >= 0 && r.stats.recoveryTicks <= 200));
  });

  it("replays a seed exactly", () => {
    const run = () => {
      const lines: string[] = [];
      const r = runSimulation({ seed: 7, trace: (l) => lines.push(l) });
      return { stats: r.stats, lines };
    };
    assert.deepEqual(run(), run());
  });

  it("catches a candidate that counts stale votes (test-only hook) within a few seeds", () => {
    const found = firstFailing(0, 19, { countStaleVotes: true });
    assert.ok(found, "no seed in 0..19 caught the stale-vote bug");
    assert.equal(found.violation.kind, "election-safety");
    assert.match(found.violation.message, /both leaders of term/);
  });

  it("catches a voter that skips the log up-to-date check (test-only hook)", () => {
    const found = firstFailing(0, 9, { skipVoteLogCheck: true });
    assert.ok(found, "no seed in 0..9 caught the missing log check");
    assert.ok(
      ["leader-completeness", "state-machine-safety", "log-matching"].includes(
        found.violation.kind,
      ),
      found.violation.kind,
    );
  });

  it("the CLI exits 1 on a violation and prints the replay command", async () => {
    let out = "";
    const code = await main(
      ["--seeds", "0..5", "--testing-bug", "countStaleVotes", "--workers", "1"],
      (text) => {
        out += text;
      },
    );
    assert.equal(code, 1);
    assert.match(out, /violations [1-6]/);
    assert.match(
      out,
      /replay: npm run sim -- --seeds (\d+)\.\.\1 --testing-bug countStaleVotes --verbose/,
    );
  });

  it("the CLI exits 0 with a summary on clean seeds, and 2 on bad arguments", async () => {
    let out = "";
    const code = await main(
      ["--seeds", "3..4", "--nodes", "5", "--json", "--workers", "1"],
      (t) => {
        out += t;
      },
    );
    assert.equal(code, 0);
    const summary = JSON.parse(out) as { seeds: number; failures: unknown[]; replay: null };
    assert.equal(summary.seeds, 2);
    assert.deepEqual(summary.failures, []);
    let err = "";
    const quiet = (t: string) => {
      err += t;
    };
    assert.equal(await main(["--seeds", "9..3"], quiet, quiet), 2);
    assert.match(err, /--seeds 9\.\.3: the range is empty/);
    assert.equal(await main(["--nodes", "4"], quiet, quiet), 2);
    assert.match(err, /--nodes must be 3 or 5, got 4/);
  });
});
