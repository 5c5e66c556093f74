/**
 * Heap per component of the ingest series store, measured (V8 heap after a
 * full GC, divided by the component count) rather than estimated:
 * - "fresh": every component has sent one report (what a just-started
 *   leader holds);
 * - "full": every window is full: an hour of 10 s history buckets and the
 *   raw window at 1 Hz (what a leader holds after an hour at the default
 *   limits).
 * Each component reports the bench's 30 samples plus heartbeat.interval_ms
 * (31 series), with the production limits.
 *
 *   node --expose-gc --import tsx bench/ingest/memory.ts [components] [fresh|full]
 *
 * Answers one IPC message (or prints JSON): {type:"memory", ...}.
 */
import { createRng } from "../../common/rng.ts";
import {
  createComponentSeries,
  defaultAgentIngestLimits,
} from "../../coordinator/src/ingest/index.ts";
import { sampleSet } from "./samples.ts";

const components = Number(process.argv[2] ?? 1000);
const fill = process.argv[3] === "full" ? "full" : "fresh";
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write("run with node --expose-gc\n");
  process.exit(2);
}
const limits = defaultAgentIngestLimits;
const rng = createRng(3);
const set = [
  { name: "bench.sent_ms", value: 1, unit: "ms", labels: {} },
  ...sampleSet(rng).map((s) => ({ ...s, labels: s.labels ?? {} })),
  { name: "heartbeat.interval_ms", value: 250, unit: "ms", labels: {} },
];
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
};
const T0 = 1_700_000_000_000;
const before = heap();
const account = { bytes: 0 };
const stores = [];
for (let c = 0; c < components; c++) {
  stores.push(createComponentSeries(`c${c}`, limits, account));
}
// One report per history bucket for the hour before the raw window, then
// one per second for the raw window.
const rawS = limits.rawSamplesPerSeries;
const bucketS = limits.historyBucketMs / 1000;
const times: number[] = [];
if (fill === "full") {
  for (let b = 0; b < limits.historyBucketsPerSeries + 1; b++) times.push(T0 + b * bucketS * 1000);
  const t1 = times[times.length - 1]! + 1000;
  for (let i = 0; i < rawS; i++) times.push(t1 + i * 1000);
} else {
  times.push(T0);
}
let seq = 0;
for (const t of times) {
  seq++;
  const samples = set.map((s) => ({ ...s, value: s.value + seq }));
  for (const st of stores) st.addReport(t, samples, "i", seq);
}
const after = heap();
const out = {
  type: "memory",
  fill,
  components,
  series: stores[0]?.seriesCount ?? 0,
  heapBytesPerComponent: Math.round((after - before) / components),
  accountedBytesPerComponent: Math.round(account.bytes / components),
};
if (process.send) process.send(out, () => process.exit(0));
else console.log(JSON.stringify(out));
