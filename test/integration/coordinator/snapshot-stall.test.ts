/**
 * The Raft driver keeps processing Readies while a snapshot is written.
 *
 * Before, the snapshot file write, its fsyncs and the WAL compaction ran
 * inside the Ready loop: for their whole duration a leader sent nothing, not
 * even heartbeats, and on a 3-node cluster under load (bench:raft, 256 writes
 * in flight) the followers elected a new leader at every 10,000th write. Here
 * a single-voter driver over a real WAL whose snapshot writes take 1.5 s must
 * still confirm a linearizable read and commit a write meanwhile. (With the
 * real log a write queues behind the snapshot file's fsync; reads, heartbeats
 * and commit-only Readies never wait for it.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../../../common/clock.ts";
import { silentLogger } from "../../../common/log.ts";
import { createRng } from "../../../common/rng.ts";
import { createFsm, encodeCommand } from "../../../coordinator/src/fsm/fsm.ts";
import { bootstrapState } from "../../../coordinator/src/raft/index.ts";
import { createRaftDriver, type RaftDriver } from "../../../coordinator/src/runtime/raft-driver.ts";
import { type DurableLog, openDurableLog } from "../../../coordinator/src/storage/index.ts";
import { sleep, streamSpec, until } from "../../support/cluster.ts";

const snapshotWriteMs = 1500;

describe("raft-driver: snapshot writes do not stop the Ready loop", function () {
  this.timeout(30_000);
  let dir: string;
  let durable: DurableLog;
  let driver: RaftDriver | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-snapstall-"));
  });
  afterEach(async () => {
    await driver?.stop();
    await durable?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("confirms reads and commits writes while a slow snapshot is being saved", async () => {
    const opened = await openDurableLog(dir, { logger: silentLogger });
    const real = opened.log;
    let snapshotsStarted = 0;
    let snapshotsDone = 0;
    // The real log, with every snapshot write taking snapshotWriteMs longer.
    durable = {
      save: (req) => real.save(req),
      saveSnapshot: async (snap) => {
        snapshotsStarted++;
        await sleep(snapshotWriteMs);
        await real.saveSnapshot(snap);
        snapshotsDone++;
      },
      compact: (i) => real.compact(i),
      stats: () => real.stats(),
      close: () => real.close(),
    };
    const recovered = bootstrapState(["c1"]);
    await durable.save({ hardState: recovered.hardState, entries: recovered.entries });
    const fsm = createFsm();
    driver = createRaftDriver({
      nodeId: "c1",
      tickMs: 10,
      electionTicks: 5,
      heartbeatTicks: 1,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsgBytes: 1 << 20,
      maxInflightMsgs: 256,
      maxUncommittedEntriesBytes: 1 << 26,
      snapshotEntries: 10,
      rpcTimeoutMs: 1000,
      durable,
      recovered,
      fsm,
      rng: createRng(7),
      clock: systemClock,
      log: silentLogger,
      addressOf: () => undefined,
    });
    driver.start();
    const d = driver;
    await until(() => d.leader().role === "leader", 5000, "the single voter leads");
    const write = (i: number) =>
      d.propose(
        encodeCommand(
          { op: { case: "createStream", value: { spec: streamSpec(`s-${i}`) } } },
          { requestId: `r-${i}`, proposerNodeId: "c1", proposedUnixMs: 1, proposerTerm: 1 },
        ),
        5000,
      );

    for (let i = 0; i < 12; i++) await write(i);
    await until(() => snapshotsStarted === 1, 2000, "a snapshot started after 10 entries");
    assert.equal(snapshotsDone, 0);

    const t0 = performance.now();
    await d.readBarrier(5000);
    const c = await write(100);
    const took = performance.now() - t0;
    assert.equal(c.result.ok, true);
    assert.equal(snapshotsDone, 0, "the snapshot is still being written");
    assert.ok(
      took < snapshotWriteMs / 2,
      `read + write took ${Math.round(took)} ms during a ${snapshotWriteMs} ms snapshot write`,
    );

    await until(() => snapshotsDone === 1, 5000, "the snapshot finished");
    assert.ok(real.stats().snapshotIndex >= 10, "the snapshot is durable");
  });
});
