/** History files on a real temp directory: format, rotation, total bound, torn tails, reload. */
import assert from "node:assert/strict";
import { appendFile, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock } from "../../../common/clock.ts";
import { silentLogger } from "../../../common/log.ts";
import {
  createHistoryWriter,
  type HistoryReadStats,
  type HistoryRecord,
  readHistory,
} from "../../../coordinator/src/ingest/index.ts";
import { T0 } from "./harness.ts";

const rec = (componentId: string, startMs: number, seq: number, n = 3): HistoryRecord => ({
  componentId,
  instanceId: "inst-1",
  sequenceHigh: seq,
  startMs,
  series: Array.from({ length: n }, (_, i) => ({
    name: `m.s${i}`,
    unit: "ratio",
    labels: (i === 0 ? { mount: "/data" } : {}) as Record<string, string>,
    min: i,
    max: i + 1,
    sum: 2 * i + 1,
    count: 2,
    last: i + 1,
  })),
});

async function readAll(dir: string, fromMs = 0, stats?: HistoryReadStats) {
  const out: HistoryRecord[] = [];
  for await (const r of readHistory(dir, fromMs, stats)) out.push(r);
  return out;
}

describe("ingest: history files", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-history-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips records through append, flush and read", async () => {
    const clock = createManualClock(T0);
    const w = await createHistoryWriter({ dir, clock, log: silentLogger });
    w.append(rec("pkg-1", T0, 10));
    w.append(rec("pkg-2", T0, 4));
    await w.flush();
    await w.close();
    const got = await readAll(dir);
    assert.deepEqual(got, [rec("pkg-1", T0, 10), rec("pkg-2", T0, 4)]);
    assert.equal(w.stats().recordsWritten, 2);
  });

  it("rotates by size, fsyncs the finished file and keeps total bytes bounded", async () => {
    const clock = createManualClock(T0);
    const w = await createHistoryWriter({
      dir,
      clock,
      log: silentLogger,
      limits: { fileBytesMax: 4096, totalBytesMax: 16_384 },
    });
    for (let i = 0; i < 200; i++) {
      w.append(rec("pkg-1", T0 + i * 10_000, i + 1));
      clock.advance(10_000);
      await w.flush();
    }
    await w.close();
    const files = (await readdir(dir)).sort();
    let total = 0;
    for (const f of files) total += (await stat(join(dir, f))).size;
    assert.ok(files.length >= 3, `rotated into ${files.length} files`);
    assert.ok(total <= 16_384 + 4096, `total ${total} bytes`);
    assert.ok(w.stats().filesDeleted > 0);
    assert.ok(w.stats().rotations > 0);
    const got = await readAll(dir);
    // The newest records survive, contiguous up to the last one.
    assert.equal(got[got.length - 1]!.sequenceHigh, 200);
    for (let i = 1; i < got.length; i++)
      assert.equal(got[i]!.sequenceHigh, got[i - 1]!.sequenceHigh + 1);
  });

  it("rotates at a UTC day boundary", async () => {
    const midnight = Math.ceil(T0 / 86_400_000) * 86_400_000;
    const clock = createManualClock(midnight - 1000);
    const w = await createHistoryWriter({ dir, clock, log: silentLogger });
    w.append(rec("pkg-1", midnight - 10_000, 1));
    await w.flush();
    clock.advance(2000);
    w.append(rec("pkg-1", midnight, 2));
    await w.flush();
    await w.close();
    assert.equal((await readdir(dir)).length, 2);
    assert.equal(w.stats().rotations, 1);
  });

  it("never appends to an old file, skips a torn tail and foreign lines, and counts them", async () => {
    const clock = createManualClock(T0);
    const w1 = await createHistoryWriter({ dir, clock, log: silentLogger });
    w1.append(rec("pkg-1", T0, 1));
    await w1.close();
    const [first] = await readdir(dir);
    await appendFile(join(dir, first!), '{"v":1,"c":"pkg-1","i":"inst-1","q":2,"t":17000000');
    const w2 = await createHistoryWriter({ dir, clock, log: silentLogger });
    w2.append(rec("pkg-1", T0 + 10_000, 3));
    await w2.close();
    assert.equal((await readdir(dir)).length, 2);
    const stats: HistoryReadStats = { files: 0, records: 0, badLines: 0 };
    const got = await readAll(dir, 0, stats);
    assert.deepEqual(
      got.map((r) => r.sequenceHigh),
      [1, 3],
    );
    assert.equal(stats.badLines, 1);
  });

  it("drops records beyond the pending bound instead of queueing them", async () => {
    const clock = createManualClock(T0);
    const w = await createHistoryWriter({
      dir,
      clock,
      log: silentLogger,
      limits: { pendingBytesMax: 1000 },
    });
    for (let i = 0; i < 20; i++) w.append(rec("pkg-1", T0 + i * 10_000, i + 1));
    assert.ok(w.stats().recordsDropped > 0);
    await w.close();
    assert.equal((await readAll(dir)).length, 20 - w.stats().recordsDropped);
  });

  it("reading skips files that only hold buckets before fromMs; a missing dir yields nothing", async () => {
    const clock = createManualClock(T0);
    const w = await createHistoryWriter({
      dir,
      clock,
      log: silentLogger,
      limits: { fileBytesMax: 4096 },
    });
    for (let i = 0; i < 60; i++) {
      w.append(rec("pkg-1", T0 + i * 10_000, i + 1));
      clock.advance(10_000);
      await w.flush();
    }
    await w.close();
    const stats: HistoryReadStats = { files: 0, records: 0, badLines: 0 };
    const got = await readAll(dir, T0 + 550_000, stats);
    assert.deepEqual(
      got.map((r) => r.sequenceHigh),
      [56, 57, 58, 59, 60],
    );
    assert.ok(stats.files < (await readdir(dir)).length, "older files not read");
    assert.deepEqual(await readAll(join(dir, "missing")), []);
  });
});
