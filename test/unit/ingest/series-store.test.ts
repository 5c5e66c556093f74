/** Metric windows and downsampled history of one component: bounds, bucket closing, queries. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  componentBytesMax,
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

  it("memory grows with what is held, never past componentBytesMax, and is given back on release", () => {
    const big: SeriesStoreLimits = {
      rawSamplesPerSeries: 120,
      historyBucketMs: 10_000,
      historyBucketsPerSeries: 360,
      seriesPerComponentMax: 4,
    };
    const account = { bytes: 0 };
    const c = createComponentSeries("c1", big, account);
    c.addReport(T, [s("a", 1), s("b", 2)], "i", 1);
    const small = c.bytes;
    assert.equal(account.bytes, small);
    assert.ok(small < 2500, `two fresh series take ${small} bytes`);
    // Two hours at 1 Hz: full raw windows and full history rings.
    for (let i = 1; i < 7200; i++) {
      c.addReport(T + i * 1000, [s("a", i), s("b", i), s("c", i), s("d", i)], "i", i + 1);
    }
    const full = c.bytes;
    assert.equal(account.bytes, full);
    assert.ok(full <= componentBytesMax(big), `${full} > bound ${componentBytesMax(big)}`);
    // The data itself: 4 series × (120 raw samples × 16 B + 360 buckets × 8 B); the rest is
    // a bounded overhead per series and component.
    const data = 4 * (120 * 16 + 360 * 8);
    assert.ok(full >= data && full < data * 1.1 + 3000, `full = ${full}, data = ${data}`);
    c.release();
    assert.equal(account.bytes, 0);
  });

  it("history is a ring over bucket time: silence leaves empty buckets, a long silence starts afresh", () => {
    const c = createComponentSeries("c1", {
      ...limits,
      historyBucketsPerSeries: 4,
      rawSamplesPerSeries: 2,
    });
    const q = () =>
      c.query({ names: [], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 100 }, T);
    c.addReport(T, [s("a", 1)], "i", 1);
    c.addReport(T + 10_000, [s("a", 2)], "i", 2);
    // Silent for 20 s, then two more buckets; the raw window (2 samples) covers the newest two.
    c.addReport(T + 40_000, [s("a", 5)], "i", 3);
    c.addReport(T + 50_000, [s("a", 6)], "i", 4);
    c.addReport(T + 60_000, [s("a", 7)], "i", 5);
    // Ring of 4 bucket intervals ending at 50 s: 20, 30 (empty), 40, 50; 10 s fell out.
    assert.deepEqual(
      q().series[0]!.points.map((p) => [(p.tMs - T) / 1000, p.value]),
      [
        [40, 5],
        [50, 6],
        [60, 7],
      ],
    );
    assert.equal(q().heldFromMs, T + 40_000);
    c.addReport(T + 500_000, [s("a", 9)], "i", 6);
    c.addReport(T + 510_000, [s("a", 10)], "i", 7);
    assert.deepEqual(
      q().series[0]!.points.map((p) => [(p.tMs - T) / 1000, p.value]),
      [
        [500, 9],
        [510, 10],
      ],
    );
  });

  it("bucket means are Float32: within a relative 6e-8 of the exact mean", () => {
    const c = createComponentSeries("c1", {
      ...limits,
      rawSamplesPerSeries: 2,
      historyBucketsPerSeries: 20,
    });
    const vals = [0.1, 0.2, 123_456_789_012.345, 1e-9];
    for (let i = 0; i < vals.length; i++) {
      c.addReport(T + i * 10_000, [s("a", vals[i]!)], "i", i + 1);
    }
    c.addReport(T + 100_000, [s("a", 0)], "i", 9);
    c.addReport(T + 110_000, [s("a", 0)], "i", 10);
    const pts = c.query({ names: [], fromMs: 0, toMs: T + 40_000, maxPoints: 100 }, T).series[0]!
      .points;
    assert.equal(pts.length, vals.length);
    for (let i = 0; i < vals.length; i++) {
      assert.ok(
        Math.abs(pts[i]!.value - vals[i]!) <= Math.abs(vals[i]!) * 6e-8,
        `${pts[i]!.value}`,
      );
    }
  });

  it("matches a naive model (all samples kept, then bounded) on random report sequences", () => {
    const lim: SeriesStoreLimits = {
      rawSamplesPerSeries: 5,
      historyBucketMs: 1000,
      historyBucketsPerSeries: 6,
      seriesPerComponentMax: 3,
    };
    const names = ["a", "b", "c", "d"];
    const steps = fc.array(
      fc.record({
        dtMs: fc.oneof(
          fc.integer({ min: 0, max: 1500 }),
          fc.integer({ min: -800, max: 0 }),
          fc.integer({ min: 0, max: 9000 }),
        ),
        present: fc.subarray(names, { minLength: 1 }),
        value: fc.integer({ min: -1000, max: 1000 }),
      }),
      { maxLength: 80 },
    );
    fc.assert(
      fc.property(steps, (ops) => {
        const c = createComponentSeries("c1", lim);
        // Naive model: every accepted sample and every closed bucket, bounded at query time.
        const raw = new Map<string, [number, number][]>();
        const hist = new Map<string, Map<number, [number, number]>>();
        const open = new Map<string, [number, number]>();
        const known: string[] = [];
        let openB = Number.NaN;
        let t = T;
        const closeOpen = () => {
          for (const [n, [sum, count]] of open) {
            const h = hist.get(n) ?? new Map();
            const newest = Math.max(-Infinity, ...h.keys());
            if (openB > newest) h.set(openB, [sum, count]);
            hist.set(n, h);
          }
          open.clear();
        };
        for (const op of ops) {
          t += op.dtMs;
          const b = Math.floor(t / lim.historyBucketMs);
          const samples = op.present.map((n) => s(n, op.value));
          c.addReport(t, samples, "i", 1);
          let toHistory = true;
          if (Number.isNaN(openB) || b > openB) {
            closeOpen();
            openB = b;
          } else if (b < openB) toHistory = false;
          for (const n of op.present) {
            if (!known.includes(n)) {
              if (known.length >= lim.seriesPerComponentMax) continue;
              known.push(n);
            }
            const r = raw.get(n) ?? [];
            if (r.length === 0 || t >= r[r.length - 1]![0]) r.push([t, op.value]);
            raw.set(n, r);
            if (toHistory) {
              const o = open.get(n) ?? [0, 0];
              open.set(n, [o[0] + op.value, o[1] + 1]);
            }
          }
        }
        const got = c.query(
          { names: [], fromMs: 0, toMs: Number.POSITIVE_INFINITY, maxPoints: 10_000 },
          t,
        );
        const want = [...known].sort().map((n) => {
          const r = (raw.get(n) ?? []).slice(-lim.rawSamplesPerSeries);
          const rawStart = r.length > 0 ? r[0]![0] : Number.POSITIVE_INFINITY;
          const h = hist.get(n) ?? new Map<number, [number, number]>();
          const newest = Math.max(-Infinity, ...h.keys());
          const pts: { tMs: number; value: number }[] = [];
          for (const [bn, [sum, count]] of [...h].sort((x, y) => x[0] - y[0])) {
            if (bn <= newest - lim.historyBucketsPerSeries) continue;
            const start = bn * lim.historyBucketMs;
            if (start + lim.historyBucketMs > rawStart) break;
            pts.push({ tMs: start, value: Math.fround(sum / count) });
          }
          for (const [tt, v] of r) pts.push({ tMs: tt, value: v });
          return { name: n, points: pts };
        });
        assert.deepStrictEqual(
          got.series.map((x) => ({ name: x.name, points: x.points })),
          want,
        );
      }),
      { numRuns: 400 },
    );
  });
});
