/** Child-process entry for run.ts: runs every `step`-th seed from `first` to `last`. */
import type { RunOptions } from "./run.ts";
import { runSimulation, type SimResult } from "./sim.ts";

process.once("message", (m) => {
  const { first, last, step, opts } = m as {
    first: number;
    last: number;
    step: number;
    opts: RunOptions;
  };
  const results: SimResult[] = [];
  for (let seed = first; seed <= last; seed += step) results.push(runSimulation({ ...opts, seed }));
  process.send?.(results, () => process.disconnect());
});
