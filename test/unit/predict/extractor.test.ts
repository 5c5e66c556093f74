import assert from "node:assert/strict";
import {
  createFeatureExtractor,
  FEATURE_INDEX as F,
  FEATURE_COUNT,
  FEATURE_MISSING,
  FEATURE_NAMES,
  TTE_CAP_S,
} from "../../../coordinator/src/predict/extractor.ts";
import type { MetricSample } from "../../../coordinator/src/predict/window.ts";
import { close } from "./assert-close.ts";

const CAP = Math.log(TTE_CAP_S);

/** Feeds samples produced by `gen(second)` for seconds [from, to] and returns the features at `to`. */
function run(gen: (s: number) => Record<string, number>, to: number, from = 0, opts = {}) {
  const ex = createFeatureExtractor(opts);
  for (let s = from; s <= to; s++) {
    const samples: MetricSample[] = Object.entries(gen(s)).map(([name, value]) => ({
      name,
      value,
    }));
    ex.observe("c", "encoder", samples, s * 1000);
  }
  const x = new Float64Array(FEATURE_COUNT);
  const ready = ex.extract("c", to * 1000, x);
  return { x, ready, ex };
}

describe("predict/extractor", () => {
  it("names every feature once and has a neutral value for each", () => {
    assert.equal(new Set(FEATURE_NAMES).size, FEATURE_COUNT);
    assert.equal(FEATURE_MISSING.length, FEATURE_COUNT);
  });

  it("gives the neutral vector for a component with no known metrics", () => {
    const { x, ready } = run(() => ({ "some.unknown": 1 }), 20);
    assert.equal(ready, true);
    for (let j = 0; j < FEATURE_COUNT; j++) {
      if (j === F.uptime) continue;
      assert.equal(x[j], FEATURE_MISSING[j], FEATURE_NAMES[j]);
    }
    close(x[F.uptime]!, Math.log1p(20));
  });

  it("memory: time to exhaustion by trend, slope as a fraction of total, available ratio", () => {
    // available falls 10 B/s from 1000, used rises to keep total 2000
    const { x } = run(
      (s) => ({ "mem.available_bytes": 1000 - 10 * s, "mem.used_bytes": 1000 + 10 * s }),
      19,
    );
    close(x[F.memTte]!, Math.log(81)); // 810 B left at 10 B/s
    close(x[F.memSlope]!, -10 / 2000);
    // EWMA(avail) + EWMA(used) = 2000 exactly, so the ratio is EWMA(avail) / 2000
    let e = 1000;
    for (let s = 1; s <= 19; s++) e += (1 - Math.exp(-0.1)) * (1000 - 10 * s - e);
    close(x[F.memAvailRatio]!, e / 2000);
    close(x[F.minTte]!, Math.log(81));
  });

  it("disk: free-bytes time to exhaustion and used-ratio slope", () => {
    const { x } = run(
      (s) => ({ "fs.free_bytes": 5000 - 100 * s, "fs.used_ratio": 0.5 + 0.001 * s }),
      29,
    );
    close(x[F.fsTte]!, Math.log(21)); // 2100 left at 100/s
    close(x[F.fsSlope]!, 0.001);
    close(x[F.fsUsed]!, 0.529);
  });

  it("heartbeat: jitter (std over 30 s), max over 10 s, time to the detector timeout", () => {
    const { x } = run((s) => ({ "heartbeat.interval_ms": s % 2 === 0 ? 900 : 1100 }), 59);
    close(x[F.hbJitter]!, 100);
    assert.equal(x[F.hbMax], 1100);
    const r = run((s) => ({ "heartbeat.interval_ms": 1000 + 20 * s }), 40);
    close(r.x[F.hbSlope]!, 20);
    close(r.x[F.hbTte]!, Math.log((3000 - 1800) / 20)); // 60 s to 3000 ms
  });

  it("thermal: EWMA level, slope and time to the critical temperature", () => {
    const { x } = run((s) => ({ "cpu.temp_c": 50 + 0.5 * s }), 59);
    close(x[F.tempSlope]!, 0.5);
    close(x[F.tempTte]!, Math.log((100 - 79.5) / 0.5)); // 41 s
    const c = run(() => ({ "cpu.temp_c": 60, "cpu.freq_ratio": 0.8 }), 30);
    close(c.x[F.tempLevel]!, 60);
    close(c.x[F.freqRatio]!, 0.8);
    assert.equal(c.x[F.tempTte], CAP);
  });

  it("packager latency is modelled in log space", () => {
    const { x } = run((s) => ({ "packager.ingest_latency_ms": 100 * Math.exp(0.02 * s) }), 59);
    close(x[F.latSlope]!, 0.02);
    const level = Math.log(100) + 0.02 * 59;
    close(x[F.latTte]!, Math.log((Math.log(5000) - level) / 0.02));
    const c = run(() => ({ "packager.ingest_latency_ms": 100 }), 30);
    close(c.x[F.latLog]!, Math.log(100));
  });

  it("encoder: fps ratio to its own baseline, time to the fps floor, dropped-frame rate", () => {
    const steady = run(
      (s) => ({ "encoder.fps": 30, "encoder.dropped_frames": 3 * s, "encoder.speed": 1 }),
      30,
    );
    close(steady.x[F.fpsRatio]!, 1);
    close(steady.x[F.droppedRate]!, 3);
    close(steady.x[F.speedEwma]!, 1);
    assert.equal(steady.x[F.fpsTte], CAP);
  });

  it("network: loss EWMA and trend, drops combine errors and drops", () => {
    const { x } = run(
      (s) => ({
        "probe.loss_ratio": 0.001 * s,
        "net.rx_errors_per_s": 2,
        "net.rx_dropped_per_s": 3,
      }),
      59,
    );
    close(x[F.lossSlope]!, 0.001);
    close(x[F.lossTte]!, Math.log((0.3 - 0.059) / 0.001));
    close(x[F.dropsLog]!, Math.log1p(5));
  });

  it("restart age: seconds since proc.restarts last changed", () => {
    const { x } = run((s) => ({ "proc.restarts": s < 10 ? 0 : 1 }), 30);
    close(x[F.restartAge]!, Math.log(20));
  });

  it("z-score against the component's own baseline after warm-up", () => {
    const ex = createFeatureExtractor({ baselineWarmupMs: 60_000 });
    const x = new Float64Array(FEATURE_COUNT);
    for (let s = 0; s <= 120; s++)
      ex.observe("c", "edge", [{ name: "cpu.load", value: s % 2 === 0 ? 0.2 : 0.4 }], s * 1000);
    ex.extract("c", 120_000, x);
    assert.ok(Math.abs(x[F.cpuLoadZ]!) < 2, `steady z ${x[F.cpuLoadZ]}`);
    for (let s = 121; s <= 150; s++)
      ex.observe("c", "edge", [{ name: "cpu.load", value: 0.95 }], s * 1000);
    ex.extract("c", 150_000, x);
    assert.ok(x[F.cpuLoadZ]! > 4, `z after a jump ${x[F.cpuLoadZ]}`);
    // before warm-up z is 0
    const early = run((s) => ({ "cpu.load": s < 20 ? 0.1 : 0.9 }), 30);
    assert.equal(early.x[F.cpuLoadZ], 0);
  });

  it("a gap longer than maxGapMs starts a new segment: windows cleared, not ready", () => {
    const ex = createFeatureExtractor();
    const x = new Float64Array(FEATURE_COUNT);
    for (let s = 0; s < 30; s++)
      ex.observe("c", "edge", [{ name: "fs.free_bytes", value: 1000 - s }], s * 1000);
    assert.equal(ex.extract("c", 29_000, x), true);
    ex.observe("c", "edge", [{ name: "fs.free_bytes", value: 5000 }], 60_000);
    assert.equal(ex.extract("c", 60_000, x), false);
    assert.equal(x[F.fsTte], CAP, "old trend forgotten");
    assert.equal(x[F.uptime], 0);
  });

  it("ignores stale ticks, unknown names and non-finite values; bounds components", () => {
    const ex = createFeatureExtractor({ componentsMax: 1 });
    assert.equal(ex.observe("a", "edge", [{ name: "cpu.load", value: 0.5 }], 5000), 1);
    assert.equal(ex.observe("a", "edge", [{ name: "cpu.load", value: 0.5 }], 4000), 0);
    assert.equal(
      ex.observe(
        "a",
        "edge",
        [
          { name: "nope", value: 1 },
          { name: "cpu.load", value: Number.NaN },
        ],
        6000,
      ),
      0,
    );
    assert.throws(() => ex.observe("b", "edge", [], 0), /componentsMax/);
    ex.forget("a");
    assert.equal(ex.observe("b", "edge", [], 0), 0);
    assert.throws(() => ex.extract("zzz", 0, new Float64Array(FEATURE_COUNT)), /unknown component/);
  });
});
