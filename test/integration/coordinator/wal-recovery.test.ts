/**
 * What a coordinator does with a damaged WAL, on real processes:
 * - damage in the middle of a segment (a valid record follows it) is
 *   corruption: the node refuses to start, exit code 1, stderr names the file
 *   and byte offset; `--check-data` says CORRUPT and exits 1; the other two
 *   nodes keep a quorum;
 * - a torn tail (the last segment cut short, as by a crash mid-write) is
 *   truncated at start: the node logs it, rejoins and catches up.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { raftOnly, runCli, sharedCluster } from "../../support/cluster.ts";

function lastSegment(dataDir: string): string {
  const wal = join(dataDir, "wal");
  const segs = readdirSync(wal)
    .filter((f) => /^\d{16}\.wal$/.test(f))
    .sort();
  assert.ok(segs.length > 0, `no WAL segments in ${wal}`);
  return join(wal, segs.at(-1)!);
}

describe("coordinator: WAL corruption vs torn tail (3 real processes)", function () {
  this.timeout(60_000);
  // One cluster for both cases: the first repairs its damage before it ends.
  const shared = sharedCluster({ name: "wal", config: raftOnly });

  it("damage mid-segment: the node refuses to start naming file and offset; the rest go on", async () => {
    const cluster = shared();
    const leader = await cluster.waitForLeader(10_000);
    await cluster.createStreams("s", 15);
    await cluster.waitForConverged(10_000);
    const victim = cluster.ids().find((id) => id !== leader)!;
    const node = cluster.node(victim);
    await cluster.kill(victim, "SIGTERM");

    const seg = lastSegment(node.dataDir);
    const bytes = readFileSync(seg);
    const flipAt = Math.floor(bytes.length / 2);
    bytes[flipAt] = bytes[flipAt]! ^ 0xff;
    writeFileSync(seg, bytes);

    const run = await runCli(["coordinator", "--config", node.configFile]);
    assert.equal(run.signal, null, run.stderr);
    assert.equal(run.code, 1, `exit code 1 (refusing), stderr: ${run.stderr}`);
    const m = /refusing to start: storage corruption in (\S+) at byte offset (\d+): (.*)/.exec(
      run.stderr,
    );
    assert.ok(m, `stderr names file and offset: ${run.stderr}`);
    assert.equal(m[1], seg);
    const offset = Number(m[2]);
    assert.ok(
      offset <= flipAt && offset > flipAt - 4096,
      `reported offset ${offset} is the start of the record holding byte ${flipAt}`,
    );
    assert.match(m[3]!, /not a torn tail/);
    assert.doesNotMatch(run.stdout, /"event":"listening"/, "it never listened");

    const check = await runCli(["coordinator", "--config", node.configFile, "--check-data"]);
    assert.equal(
      check.code,
      1,
      `--check-data exits 1 on corruption: ${check.stdout}${check.stderr}`,
    );
    assert.match(check.stdout, /: CORRUPT\n/);
    assert.ok(check.stdout.includes(seg), check.stdout);

    // The segment is still damaged (nothing was "repaired" behind the operator's back).
    assert.equal(readFileSync(seg)[flipAt], bytes[flipAt]);
    // Two of three nodes are a quorum: writes go on.
    await cluster.createStreams("after", 5);

    // Repaired (the byte put back), the node starts and catches up.
    bytes[flipAt] = bytes[flipAt]! ^ 0xff;
    writeFileSync(seg, bytes);
    await cluster.restart(victim);
    await cluster.waitForConverged(15_000, { ids: cluster.ids() });
  });

  it("torn tail: the node truncates it, starts, rejoins and catches up", async () => {
    const cluster = shared();
    const leader = await cluster.waitForLeader(10_000);
    await cluster.createStreams("t", 15);
    await cluster.waitForConverged(10_000);
    const victim = cluster.ids().find((id) => id !== leader)!;
    const node = cluster.node(victim);
    await cluster.kill(victim, "SIGKILL");

    const seg = lastSegment(node.dataDir);
    const size = statSync(seg).size;
    truncateSync(seg, size - 3);

    const check = await runCli(["coordinator", "--config", node.configFile, "--check-data"]);
    assert.equal(check.code, 0, `a torn tail is recoverable: ${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /: OK\n/);
    assert.match(check.stdout, /torn tail: .* \(\d+ bytes would be truncated\)/);

    await cluster.createStreams("while-down", 10);
    await cluster.restart(victim);
    assert.match(
      readFileSync(node.stderrFile, "utf8"),
      /torn tail in the last WAL segment \(a write interrupted by a crash\); truncating it/,
    );
    await cluster.createStreams("t-after", 5);
    await cluster.waitForConverged(15_000, { ids: cluster.ids() });
    const ids = await cluster.listStreamIds(victim);
    assert.equal(
      ids.filter((id) => id.startsWith("t-") || id.startsWith("while-down-")).length,
      30,
      "15 before, 10 while it was down, 5 after",
    );
  });
});
