/** Metric windows and downsampled history of one component: bounds, bucket closing, queries. */
import assert from "node:assert/strict";
import {
  createComponentSeries,
  type HistoryRecord,
  type SeriesStoreLimits,
  seriesKey,
} from "../../../coordinator/src/ingest/index.ts";

const limits: SeriesStoreLimits = {
  rawSamplesPerSeries: 8,
  historyBucketMs: 10_000,
  historyBucketsPerSeries: 5,
  seriesPerComponentMax: 3,
};

const T = 1_700_000_000_000; // a bucket boundary (divisible by 10 000)

const s = (name: string, value: number, labels: Record<string, string> = {}) => ({
  name,
  value,
  unit: "ratio",
  labels,
});

describe("ingest: series store", () => {
  it("series keys are stable whatever the label order", () => {
    assert.equal(seriesKey("cpu.load", {}), "cpu.load");
    assert.equal(
      seriesKey("fs.used_ratio", { mount: "/", dev: "sda" }),
      seriesKey("fs.used_ratio", { dev: "sda", mount: "/" }),
    );
    assert.equal(seriesKey("x", { a: 'q"' }), 'x{a="q\\""}');
  });

  it("keeps raw windows bounded at native rate", () => {
    const c = createComponentSeries("c1", limits);
    for (let i = 0; i < 20; i++) c.addReport(T + i * 250, [s("cpu.load", i)], "i", i + 1);
    const cpu = c.series()[0]!;
    assert.equal(cpu.raw.size, 8);
    assert.equal(cpu.raw.timeAt(0), T + 12 * 250);
    assert.equal(cpu.raw.lastValue(), 19);
  });

  it("closes a bucket per component when a later one starts: min/max/sum/count/last and the sequence", () => {
    const c = createComponentSeries("c1", limits);
    assert.equal(c.addReport(T + 1000, [s("cpu.load", 0.2), s("mem", 5)], "i1", 1), undefined);
    assert.equal(c.addReport(T + 5000, [s("cpu.load", 0.6)], "i1", 2), undefined);
    assert.equal(c.addReport(T + 9000, [s("cpu.load", 0.4)], "i1", 3), undefined);
    const rec = c.addReport(T + 10_000, [s("cpu.load", 0.9)], "i1", 4);
    assert.ok(rec);
    assert.equal(rec.componentId, "c1");
    assert.equal(rec.startMs, T);
    assert.equal(rec.instanceId, "i1");
    assert.equal(rec.sequenceHigh, 3);
    const cpu = rec.series.find((x) => x.name === "cpu.load")!;
    assert.deepEqual(
      { min: cpu.min, max: cpu.max, count: cpu.count, last: cpu.last },
      { min: 0.2, max: 0.6, count: 3, last: 0.4 },
    );
    assert.ok(Math.abs(cpu.sum - 1.2) < 1e-12);
    assert.equal(rec.series.find((x) => x.name === "mem")!.count, 1);
    assert.equal(c.openBucketMs, T + 10_000);
  });

  it("bounds series per component and history per series", () => {
    const c = createComponentSeries("c1", limits);
    for (let b = 0; b < 12; b++) {
      c.addReport(T + b * 10_000, [s("a", b), s("b", b), s("c", b), s("d", b)], "i", b + 1);
    }
    assert.equal(c.seriesCount, 3);
    assert.equal(c.droppedSamples, 12);
    const q = c.query(
      { names: ["a"], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 1000 },
      T,
    );
    // 11 buckets closed, the newest 5 (60..100 s) kept; the raw window holds
    // the newest 8 samples (40..110 s) and, being finer, wins where both exist.
    assert.equal(q.heldFromMs, T + 40_000);
    assert.deepEqual(
      q.series[0]!.points.map((p) => (p.tMs - T) / 1000),
      [40, 50, 60, 70, 80, 90, 100, 110],
    );
  });

  it("refuses late samples for history and raw, counting them", () => {
    const c = createComponentSeries("c1", limits);
    c.addReport(T + 20_000, [s("a", 1)], "i", 1);
    c.addReport(T + 5000, [s("a", 2)], "i", 2);
    assert.equal(c.lateSamples, 2);
    assert.equal(c.series()[0]!.raw.size, 1);
  });

  it("closes idle buckets one bucket after they end", () => {
    const c = createComponentSeries("c1", limits);
    c.addReport(T + 1000, [s("a", 1)], "i", 1);
    assert.equal(c.closeIdle(T + 9999), undefined);
    const rec = c.closeIdle(T + 10_000);
    assert.equal(rec?.startMs, T);
    assert.equal(c.closeIdle(T + 50_000), undefined, "nothing left open");
  });

  it("answers range queries: history buckets before the raw window, raw after, filtered and downsampled", () => {
    const c = createComponentSeries("c1", {
      ...limits,
      historyBucketsPerSeries: 100,
      rawSamplesPerSeries: 10,
    });
    // 100 s of 1 Hz samples: value = second.
    for (let i = 0; i < 100; i++) {
      c.addReport(T + i * 1000, [s("a", i), s("b", -i, { k: "v" })], "i", i + 1);
    }
    const all = c.query(
      { names: [], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 1000 },
      T + 100_000,
    );
    assert.deepEqual(
      all.series.map((x) => x.name),
      ["a", "b"],
    );
    const a = all.series[0]!.points;
    // Buckets 0..80 s (bucket means 4.5, 14.5, ...), then raw 90..99.
    assert.equal(a.length, 9 + 10);
    assert.deepEqual(a[0], { tMs: T, value: 4.5 });
    assert.deepEqual(a[9], { tMs: T + 90_000, value: 90 });
    const range = c.query(
      { names: ["a"], fromMs: T + 95_000, toMs: T + 98_000, maxPoints: 1000 },
      T + 100_000,
    );
    assert.deepEqual(
      range.series[0]!.points.map((p) => p.value),
      [95, 96, 97],
    );
    const down = c.query(
      { names: ["a"], fromMs: T + 90_000, toMs: T + 100_000, maxPoints: 2 },
      T + 100_000,
    );
    assert.deepEqual(down.series[0]!.points, [
      { tMs: T + 90_000, value: 92 },
      { tMs: T + 95_000, value: 97 },
    ]);
    assert.equal(all.heldFromMs, T);
  });

  it("loads persisted buckets in order and skips out-of-order ones", () => {
    const c = createComponentSeries("c1", limits);
    const rec = (startMs: number, v: number): HistoryRecord => ({
      componentId: "c1",
      instanceId: "i",
      sequenceHigh: 1,
      startMs,
      series: [
        { name: "a", unit: "ratio", labels: {}, min: v, max: v, sum: v * 2, count: 2, last: v },
      ],
    });
    c.loadRecord(rec(T, 1));
    c.loadRecord(rec(T + 10_000, 2));
    c.loadRecord(rec(T + 5000, 9));
    const q = c.query({ names: [], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 10 }, T);
    assert.deepEqual(
      q.series[0]!.points.map((p) => p.value),
      [1, 2],
    );
  });
});
