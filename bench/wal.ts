/**
 * Durable-log throughput: entries/s and fsyncs/s with real files and real
 * fdatasync, for increasing numbers of saves in flight. The baseline is one
 * save at a time (one fsync per entry), measured in the same run; the ratio
 * column is what group commit buys on this disk.
 *
 *   npx tsx bench/wal.ts [--seconds 2]
 *
 * Prints a table and writes bench/results/wal.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../common/log.ts";
import { openDurableLog } from "../coordinator/src/storage/index.ts";

const secondsArg = process.argv.indexOf("--seconds");
const caseSeconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;
const entriesPerCaseMax = 2_000_000;

interface Case {
  name: string;
  inFlight: number;
  entryBytes: number;
}

interface Result extends Case {
  entries: number;
  seconds: number;
  entriesPerSec: number;
  fsyncsPerSec: number;
  entriesPerFsync: number;
  mibPerSec: number;
  vsBaseline: number;
}

const cases: Case[] = [
  { name: "baseline: 1 in flight", inFlight: 1, entryBytes: 128 },
  { name: "8 in flight", inFlight: 8, entryBytes: 128 },
  { name: "64 in flight", inFlight: 64, entryBytes: 128 },
  { name: "512 in flight", inFlight: 512, entryBytes: 128 },
  { name: "64 in flight, 4 KiB entries", inFlight: 64, entryBytes: 4096 },
];

async function runCase(c: Case): Promise<Omit<Result, "vsBaseline">> {
  const dir = await mkdtemp(join(tmpdir(), "understudy-bench-wal-"));
  try {
    const { log } = await openDurableLog(dir, { logger: silentLogger });
    const data = new Uint8Array(c.entryBytes).fill(7);
    const deadline = performance.now() + caseSeconds * 1000;
    const started = performance.now();
    let next = 1;
    let done = 0;
    // `inFlight` independent writers, each issuing its next save when the last resolves.
    const writer = async () => {
      while (performance.now() < deadline && next <= entriesPerCaseMax) {
        const index = next++;
        await log.save({ entries: [{ index, term: 1, type: "normal", data }] });
        done++;
      }
    };
    await Promise.all(Array.from({ length: c.inFlight }, writer));
    const seconds = (performance.now() - started) / 1000;
    const s = log.stats();
    await log.close();
    return {
      ...c,
      entries: done,
      seconds,
      entriesPerSec: done / seconds,
      fsyncsPerSec: s.walFsyncs / seconds,
      entriesPerFsync: done / Math.max(1, s.walFsyncs),
      mibPerSec: s.walBytesWritten / seconds / (1024 * 1024),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const raw = [];
for (const c of cases) raw.push(await runCase(c));
const baseline = raw[0]!.entriesPerSec;
const results: Result[] = raw.map((r) => ({ ...r, vsBaseline: r.entriesPerSec / baseline }));

const fmt = (n: number, d = 0) => n.toFixed(d).padStart(10);
console.log(`durable log, ${caseSeconds}s per case, data dir in ${tmpdir()}`);
console.log(
  `${"case".padEnd(30)}${"entries/s".padStart(10)}${"fsyncs/s".padStart(10)}${"ent/fsync".padStart(10)}${"MiB/s".padStart(10)}${"x base".padStart(10)}`,
);
for (const r of results) {
  console.log(
    `${r.name.padEnd(30)}${fmt(r.entriesPerSec)}${fmt(r.fsyncsPerSec)}${fmt(r.entriesPerFsync, 1)}${fmt(r.mibPerSec, 1)}${fmt(r.vsBaseline, 1)}`,
  );
}

await mkdir(join(import.meta.dirname, "results"), { recursive: true });
await writeFile(
  join(import.meta.dirname, "results", "wal.json"),
  `${JSON.stringify({ bench: "wal", caseSeconds, node: process.version, results }, null, 2)}\n`,
);
