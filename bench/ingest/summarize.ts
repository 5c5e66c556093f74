/**
 * Reads the diagnostics bench:ingest can write, in a terminal:
 * - `cpu FILE.cpuprofile [topN]` (from `npm run bench:ingest -- --cpu-prof-dir DIR`):
 *   self time by area (package or source folder) and by function;
 * - `heap FILE.heapsnapshot [topN] [agents]` (a V8 heap snapshot, e.g. from
 *   the bench server's "heapsnapshot" IPC message): self size and count by
 *   constructor, with bytes per agent when the agent count is given.
 *
 *   node --import tsx bench/ingest/summarize.ts cpu|heap FILE [topN] [agents]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function areaOf(url: string, fn: string): string {
  if (url === "") return fn === "(garbage collector)" ? "gc" : fn.startsWith("(") ? fn : "native";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith("node:"))
    return url.split("/")[0]!.replace(/^node:internal.*/, "node:internal");
  const m = /\/(coordinator\/src\/[a-z-]+|common|bench|proto\/gen|test)\//.exec(url);
  return m ? m[1]! : url;
}

function summarize(p: Profile, top = 30): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const cf = n.callFrame;
    const file = cf.url.replace(/^.*\/(node_modules\/)?/, "");
    const key = `${cf.functionName || "(anonymous)"} ${file}:${cf.lineNumber + 1}:${cf.columnNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const area = areaOf(cf.url, cf.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const lines = [`total sampled ${(total / 1e6).toFixed(2)} s`, "", "self time by area:"];
  for (const [k, v] of [...byArea].sort((a, b) => b[1] - a[1])) lines.push(`${pct(v)}  ${k}`);
  lines.push("", `top ${top} functions by self time:`);
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`${pct(v)}  ${k}`);
  }
  return lines.join("\n");
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string | string[])[] } };
  nodes: number[];
  strings: string[];
}

function summarizeHeap(s: Snapshot, top = 40, divisor = 0): string {
  const f = s.snapshot.meta.node_fields;
  const stride = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const types = s.snapshot.meta.node_types[iType] as string[];
  const agg = new Map<string, { n: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += stride) {
    const type = types[s.nodes[i + iType]!]!;
    const name = s.strings[s.nodes[i + iName]!]!;
    const size = s.nodes[i + iSize]!;
    total += size;
    const key =
      type === "object" || type === "closure" || type === "native"
        ? `${type}:${name.slice(0, 60)}`
        : type === "array" || type === "hidden"
          ? `${type}:${name.slice(0, 40)}`
          : type;
    const e = agg.get(key) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += size;
    agg.set(key, e);
  }
  const lines = [`total self size ${(total / 1048576).toFixed(1)} MB`];
  for (const [k, v] of [...agg].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
    const per = divisor > 0 ? `  ${(v.bytes / divisor).toFixed(0).padStart(7)} B/agent` : "";
    lines.push(
      `${(v.bytes / 1048576).toFixed(2).padStart(8)} MB ${String(v.n).padStart(9)}x${per}  ${k}`,
    );
  }
  return lines.join("\n");
}

const [what, file, top, agents] = process.argv.slice(2);
if ((what !== "cpu" && what !== "heap") || !file) {
  process.stderr.write("usage: summarize.ts cpu|heap FILE [topN] [agents]\n");
  process.exit(2);
}
const data = JSON.parse(readFileSync(file, "utf8"));
console.log(
  what === "cpu"
    ? summarize(data as Profile, Number(top ?? 30))
    : summarizeHeap(data as Snapshot, Number(top ?? 40), Number(agents ?? 0)),
);
