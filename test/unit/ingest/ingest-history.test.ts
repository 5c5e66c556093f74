/**
 * History across a coordinator restart (or a node becoming leader again):
 * what one ingest wrote, the next one loads at start, and its watermarks make
 * agents resume after what is already held.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock } from "../../../common/clock.ts";
import { helloFor } from "./agent-conn.ts";
import { report, sample, startHarness, T0, until } from "./harness.ts";

describe("ingest: history persistence and reload", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "understudy-ingest-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("persists downsampled buckets; a new ingest loads them and resumes agents after them", async () => {
    const clock = createManualClock(T0);
    const limits = { historyBucketMs: 1000, rawSamplesPerSeries: 8 };
    const a = await startHarness({ historyDir: dir, clock, limits });
    const c = a.conn();
    c.hello(helloFor("pkg-1"));
    assert.equal((await c.next()).body.case, "welcome");
    for (let s = 1; s <= 30; s++) {
      c.report(
        report(s, clock.nowMs(), [sample("cpu.load", s), sample("mem.used_bytes", 1000 + s)]),
      );
      await until(() => a.ingest.stats().reports === s, `report ${s}`);
      clock.advance(1000);
    }
    a.ingest.maintain();
    await a.ingest.flushHistory();
    await a.close();
    const st = a.ingest.stats().history!;
    assert.equal(st.recordsWritten, 30, "29 closed by the next report, the last one at close");
    assert.ok((await readdir(dir)).length >= 1);

    clock.advance(5000);
    const b = await startHarness({ historyDir: dir, clock, limits });
    try {
      assert.deepEqual(b.ingest.stats().historyLoaded, { files: 1, records: 30, badLines: 0 });
      const store = b.ingest.component("pkg-1")!;
      const q = store.query(
        { names: ["cpu.load"], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 1000 },
        clock.nowMs(),
      );
      assert.deepEqual(
        q.series[0]!.points.map((p) => p.value),
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
      assert.equal(q.heldFromMs, T0);
      const d = b.conn();
      d.hello(helloFor("pkg-1"));
      const w = await d.next();
      assert.equal(w.body.case === "welcome" && w.body.value.resumeAfterSequence, 30n);
      // A replay of what is already held is dropped as duplicate.
      d.report(report(29, T0 + 28_000, undefined, { replayed: true }));
      d.report(report(31, clock.nowMs()));
      await until(() => b.ingest.stats().reports === 1, "report 31");
      assert.equal(b.ingest.stats().duplicateReports, 1);
    } finally {
      await b.close();
    }
  });
});
