/**
 * npm run bench:predict — cost of scoring a 10,000-component fleet at 1 Hz.
 *
 * Per tick, for every component: `observe` (append one tick of ~25 samples to
 * the component's windows: the baseline, what any ingest must pay anyway) and
 * `predict` (features, the three models, stack, alarm, top features). Samples
 * come from the seeded trace generator (realistic values; generation is not
 * timed). Windows are filled first (130 ticks), then `measureTicks` ticks are
 * timed. Prints a table and writes bench/results/predict.json.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createRng } from "../common/rng.ts";
import { DEFAULT_EVAL_CONFIG, trainingRows } from "../coordinator/src/predict/eval-run.ts";
import { createPredictor, type Prediction } from "../coordinator/src/predict/predictor.ts";
import { createTrace } from "../coordinator/src/predict/trace.ts";
import { concatRows, trainBaseModels } from "../coordinator/src/predict/train.ts";

const COMPONENTS = Number(process.env.BENCH_COMPONENTS ?? 10_000);
const WARMUP_TICKS = 130;
const MEASURE_TICKS = Number(process.env.BENCH_TICKS ?? 10);

// A model of production size (80 trees of depth 3), trained on two short traces.
const cfg = { ...DEFAULT_EVAL_CONFIG, trace: { components: 5, durationMs: 2 * 3_600_000 } };
const base = trainBaseModels(
  concatRows([trainingRows(1, cfg), trainingRows(2, cfg)]),
  createRng(1),
  {
    horizonMs: 30_000,
    gbt: DEFAULT_EVAL_CONFIG.gbt,
  },
);
const model = { ...base, stack: { bias: -4, stability: 2, logistic: 0.5, trees: 0.8 } };

const trace = createTrace(424242, { components: COMPONENTS, durationMs: 6 * 3_600_000 });
const predictor = createPredictor({ model, componentsMax: COMPONENTS });
const comps = trace.components;
const up = new Uint8Array(comps.length);

function generate(t: number): number {
  let n = 0;
  for (let i = 0; i < comps.length; i++) {
    up[i] = comps[i]!.step(t) ? 1 : 0;
    n += up[i]!;
  }
  return n;
}

function observeAll(t: number): void {
  for (let i = 0; i < comps.length; i++) {
    if (up[i] === 1) predictor.observe(comps[i]!.id, comps[i]!.role, comps[i]!.samples, t);
  }
}

let alarms = 0;
const last: (Prediction | undefined)[] = new Array(comps.length);
function predictAll(t: number): void {
  for (let i = 0; i < comps.length; i++) {
    if (up[i] !== 1) continue;
    const p = predictor.predict(comps[i]!.id, t);
    last[i] = p;
    if (p.alarm) alarms++;
  }
}

let explained = 0;
function explainAll(): void {
  for (let i = 0; i < comps.length; i++) {
    if (up[i] === 1) explained += last[i]!.topFeatures.length;
  }
}

// A forced GC makes the heap-per-component estimate meaningful; enable it even without --expose-gc.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as (() => void) | undefined;
gc?.();
const heapBefore = process.memoryUsage().heapUsed;
let t = 0;
for (let k = 0; k < WARMUP_TICKS; k++, t += 1000) {
  generate(t);
  observeAll(t);
  if (k >= WARMUP_TICKS - 10) predictAll(t);
}
gc?.();
const heapAfter = process.memoryUsage().heapUsed;

// CPU time of this (single-threaded) process is the primary measure: on a shared
// machine wall time also counts the time other processes held the core.
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
let observeCpu = 0;
let predictCpu = 0;
let explainCpu = 0;
let observeWallNs = 0;
let predictWallNs = 0;
let componentTicks = 0;
for (let k = 0; k < MEASURE_TICKS; k++, t += 1000) {
  componentTicks += generate(t);
  const a = cpuUs();
  const aw = process.hrtime.bigint();
  observeAll(t);
  const b = cpuUs();
  const bw = process.hrtime.bigint();
  predictAll(t);
  const c = cpuUs();
  const cw = process.hrtime.bigint();
  explainAll();
  const d = cpuUs();
  observeCpu += b - a;
  predictCpu += c - b;
  explainCpu += d - c;
  observeWallNs += Number(bw - aw);
  predictWallNs += Number(cw - bw);
}

const observeUs = observeCpu / componentTicks;
const predictUs = predictCpu / componentTicks;
const explainUs = explainCpu / componentTicks;
const wallTotalUs = (observeWallNs + predictWallNs) / 1000 / componentTicks;
const totalUs = observeUs + predictUs;
const tickMs = (totalUs * COMPONENTS) / 1000;
const samplesPerComponent = comps[0]!.samples.length;
const result = {
  components: COMPONENTS,
  measuredTicks: MEASURE_TICKS,
  samplesPerComponentTick: samplesPerComponent,
  trees: model.gbt.trees.length,
  features: model.featureNames.length,
  baseline: { name: "observe (append samples to windows)", usPerComponentTick: observeUs },
  predict: {
    name: "predict (features + three models + stack + alarm)",
    usPerComponentTick: predictUs,
  },
  explain: {
    name: "reading topFeatures of every prediction (computed lazily, on first read)",
    usPerComponentTick: explainUs,
  },
  total: { usPerComponentTick: totalUs, ratioToBaseline: totalUs / observeUs },
  measure: "CPU time (process.cpuUsage) per component-tick",
  wallUsPerComponentTick: wallTotalUs,
  fleetTickMs: tickMs,
  coreShareAt1Hz: tickMs / 1000,
  heapBytesPerComponent: gc ? Math.round((heapAfter - heapBefore) / COMPONENTS) : null,
  alarmsDuringMeasurement: alarms,
  topFeaturesReturned: explained,
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
};

const rows: [string, string, string][] = [
  ["observe (baseline)", observeUs.toFixed(2), "1.00"],
  ["predict", predictUs.toFixed(2), (predictUs / observeUs).toFixed(2)],
  ["observe + predict", totalUs.toFixed(2), (totalUs / observeUs).toFixed(2)],
  ["explain (if read)", explainUs.toFixed(2), (explainUs / observeUs).toFixed(2)],
];
console.log(
  `predict bench: ${COMPONENTS} components, ${samplesPerComponent} samples each, ${MEASURE_TICKS} ticks`,
);
console.log(
  `${"step".padEnd(20)}  ${"CPU µs/component/tick".padStart(22)}  ${"× baseline".padStart(10)}`,
);
for (const [name, us, ratio] of rows)
  console.log(`${name.padEnd(20)}  ${us.padStart(22)}  ${ratio.padStart(10)}`);
console.log(
  `(wall clock, including time other processes held the core: ${wallTotalUs.toFixed(2)} µs/component/tick)`,
);
console.log(
  `fleet tick: ${tickMs.toFixed(0)} ms per second of data (${(result.coreShareAt1Hz * 100).toFixed(0)}% of one core)` +
    (result.heapBytesPerComponent === null
      ? ""
      : `; heap ≈ ${(result.heapBytesPerComponent / 1024).toFixed(1)} KiB per component`),
);
writeFileSync(
  new URL("./results/predict.json", import.meta.url),
  `${JSON.stringify(result, null, 2)}\n`,
);
