/**
 * Downsampled metric history on the leader's disk, so models can train on
 * it and a node that becomes leader (or restarts) starts with recent history
 * instead of nothing.
 *
 * Layout: `<dir>/history-<startUnixMs, 15 digits>.jsonl`, one file per UTC day
 * or per `fileBytesMax`, whichever comes first; names sort by age. Each line
 * is one HistoryRecord (one component, one bucket):
 *
 *   {"v":1,"c":"<component>","i":"<instance>","q":<seqHigh>,"t":<bucketStartMs>,
 *    "s":[["<name>","<unit>",{<labels>},min,max,sum,count,last], ...]}
 *
 * Contracts:
 * - Append-only. A writer never appends to a file it did not create (a file
 *   left by a crash may end in a torn line); the reader skips lines that do
 *   not parse and counts them.
 * - Rotation fsyncs the finished file and the directory. Between rotations
 *   data reaches the file every flush (page cache), so a machine crash loses
 *   at most the unsynced tail; agents replay what the leader has not seen.
 * - Total bytes are bounded: after a rotation the oldest files are deleted
 *   until the rest fit in `totalBytesMax`.
 * - Memory is bounded: records wait in a buffer of at most `pendingBytesMax`;
 *   beyond it records are dropped and counted (slow disk), never queued.
 * - File I/O is asynchronous (libuv pool), so fsync never blocks the event
 *   loop the failure detector runs on.
 */
import { mkdir, open, readdir, readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../../../common/clock.ts";
import { errorMessage } from "../../../common/errors.ts";
import type { Logger } from "../../../common/log.ts";
import type { HistoryRecord, HistorySeriesRecord } from "./series-store.ts";

const FILE_PATTERN = /^history-(\d{15})\.jsonl$/;
const DAY_MS = 86_400_000;

export interface HistoryFileLimits {
  /** Rotate when the current file reaches this size. */
  fileBytesMax: number;
  /** Bound on all history files together. */
  totalBytesMax: number;
  /** Bound on serialized records waiting for the next flush. */
  pendingBytesMax: number;
}

export const defaultHistoryFileLimits: Readonly<HistoryFileLimits> = {
  fileBytesMax: 32 * 1024 * 1024,
  totalBytesMax: 512 * 1024 * 1024,
  pendingBytesMax: 8 * 1024 * 1024,
};

export interface HistoryWriterStats {
  files: number;
  bytes: number;
  recordsWritten: number;
  recordsDropped: number;
  rotations: number;
  filesDeleted: number;
  writeErrors: number;
}

export interface HistoryWriter {
  /** Serializes a record into the pending buffer (dropped and counted when full). */
  append(rec: HistoryRecord): void;
  /** Writes the pending buffer, rotating first when due. Serialized; never rejects. */
  flush(): Promise<void>;
  /** Flushes, fsyncs and closes the current file. */
  close(): Promise<void>;
  stats(): HistoryWriterStats;
}

export function fileNameFor(startMs: number): string {
  return `history-${String(Math.max(0, Math.floor(startMs))).padStart(15, "0")}.jsonl`;
}

interface FileInfo {
  name: string;
  startMs: number;
  bytes: number;
}

async function listFiles(dir: string): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for (const name of await readdir(dir)) {
    const m = FILE_PATTERN.exec(name);
    if (!m) continue;
    const st = await stat(join(dir, name));
    out.push({ name, startMs: Number(m[1]), bytes: st.size });
  }
  out.sort((a, b) => a.startMs - b.startMs);
  return out;
}

export function encodeRecord(rec: HistoryRecord): string {
  const s = rec.series.map((x) => [x.name, x.unit, x.labels, x.min, x.max, x.sum, x.count, x.last]);
  return `${JSON.stringify({ v: 1, c: rec.componentId, i: rec.instanceId, q: rec.sequenceHigh, t: rec.startMs, s })}\n`;
}

/** Parses one line; undefined when it is not a well-formed v1 record. */
export function decodeRecord(line: string): HistoryRecord | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof o !== "object" || o === null) return undefined;
  const r = o as Record<string, unknown>;
  if (r.v !== 1 || typeof r.c !== "string" || typeof r.i !== "string") return undefined;
  if (typeof r.q !== "number" || typeof r.t !== "number" || !Array.isArray(r.s)) return undefined;
  const series: HistorySeriesRecord[] = [];
  for (const e of r.s as unknown[]) {
    if (!Array.isArray(e) || e.length !== 8) return undefined;
    const [name, unit, labels, min, max, sum, count, last] = e as unknown[];
    if (typeof name !== "string" || typeof unit !== "string") return undefined;
    if (typeof labels !== "object" || labels === null || Array.isArray(labels)) return undefined;
    for (const v of Object.values(labels)) if (typeof v !== "string") return undefined;
    const nums = [min, max, sum, count, last];
    if (!nums.every((n) => typeof n === "number" && Number.isFinite(n))) return undefined;
    series.push({
      name,
      unit,
      labels: labels as Record<string, string>,
      min: min as number,
      max: max as number,
      sum: sum as number,
      count: count as number,
      last: last as number,
    });
  }
  return { componentId: r.c, instanceId: r.i, sequenceHigh: r.q, startMs: r.t, series };
}

export interface HistoryWriterOptions {
  dir: string;
  clock: Clock;
  log: Logger;
  limits?: Partial<HistoryFileLimits>;
}

export async function createHistoryWriter(opts: HistoryWriterOptions): Promise<HistoryWriter> {
  const limits = { ...defaultHistoryFileLimits, ...opts.limits };
  if (!(limits.fileBytesMax >= 4096 && limits.totalBytesMax >= limits.fileBytesMax)) {
    throw new RangeError(
      `history limits: need fileBytesMax >= 4096 and totalBytesMax >= fileBytesMax, got ${limits.fileBytesMax}/${limits.totalBytesMax}`,
    );
  }
  const { dir, clock, log } = opts;
  await mkdir(dir, { recursive: true });
  const files = await listFiles(dir);
  type Handle = Awaited<ReturnType<typeof open>>;
  let current: { fh: Handle; info: FileInfo } | undefined;
  let pending: string[] = [];
  let pendingBytes = 0;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  const st = {
    recordsWritten: 0,
    recordsDropped: 0,
    rotations: 0,
    filesDeleted: 0,
    writeErrors: 0,
  };

  const syncDir = async () => {
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  };

  const finishCurrent = async () => {
    if (current === undefined) return;
    const c = current;
    current = undefined;
    await c.fh.sync();
    await c.fh.close();
  };

  const openNew = async () => {
    let start = Math.floor(clock.nowMs());
    const last = files[files.length - 1];
    // Names must stay unique and increasing even if the wall clock stepped back.
    if (last !== undefined && start <= last.startMs) start = last.startMs + 1;
    const info: FileInfo = { name: fileNameFor(start), startMs: start, bytes: 0 };
    const fh = await open(join(dir, info.name), "wx");
    files.push(info);
    current = { fh, info };
    await syncDir();
  };

  const enforceTotal = async () => {
    let total = files.reduce((a, f) => a + f.bytes, 0);
    while (total > limits.totalBytesMax && files.length > 1) {
      const victim = files[0]!;
      if (current !== undefined && victim === current.info) break;
      files.shift();
      total -= victim.bytes;
      await unlink(join(dir, victim.name)).catch((err: unknown) => {
        log.warn("history file delete failed", { file: victim.name, err: errorMessage(err) });
      });
      st.filesDeleted++;
    }
  };

  const rotate = async () => {
    await finishCurrent();
    await openNew();
    st.rotations++;
    await enforceTotal();
  };

  const writeOnce = async () => {
    if (pending.length === 0) return;
    const dayOf = (ms: number) => Math.floor(ms / DAY_MS);
    if (
      current === undefined ||
      current.info.bytes >= limits.fileBytesMax ||
      dayOf(current.info.startMs) !== dayOf(clock.nowMs())
    ) {
      if (current === undefined) {
        await openNew();
        await enforceTotal();
      } else {
        await rotate();
      }
    }
    const lines = pending;
    const n = lines.length;
    pending = [];
    pendingBytes = 0;
    const buf = Buffer.from(lines.join(""), "utf8");
    const c = current!;
    await c.fh.write(buf, 0, buf.length, null);
    c.info.bytes += buf.length;
    st.recordsWritten += n;
  };

  const flush = () => {
    chain = chain.then(writeOnce).catch((err: unknown) => {
      st.writeErrors++;
      log.error("history write failed", { dir, err: errorMessage(err) });
    });
    return chain;
  };

  return {
    append(rec) {
      if (closed) return;
      const line = encodeRecord(rec);
      if (pendingBytes + line.length > limits.pendingBytesMax) {
        st.recordsDropped++;
        return;
      }
      pending.push(line);
      pendingBytes += line.length;
    },
    flush,
    async close() {
      if (closed) return chain;
      await flush();
      closed = true;
      chain = chain.then(finishCurrent).catch((err: unknown) => {
        st.writeErrors++;
        log.error("history close failed", { dir, err: errorMessage(err) });
      });
      return chain;
    },
    stats() {
      return {
        files: files.length,
        bytes: files.reduce((a, f) => a + f.bytes, 0),
        ...st,
      };
    },
  };
}

export interface HistoryReadStats {
  files: number;
  records: number;
  /** Lines that did not parse (torn tail after a crash, or foreign content). */
  badLines: number;
}

/**
 * Records of every history file in `dir`, oldest file first, skipping files
 * that only hold buckets before `fromMs`. A missing directory yields nothing.
 */
export async function* readHistory(
  dir: string,
  fromMs = 0,
  stats: HistoryReadStats = { files: 0, records: 0, badLines: 0 },
): AsyncGenerator<HistoryRecord> {
  let files: FileInfo[];
  try {
    files = await listFiles(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  for (let i = 0; i < files.length; i++) {
    // Buckets in file i were closed before file i+1 was created.
    const next = files[i + 1];
    if (next !== undefined && next.startMs <= fromMs) continue;
    const text = await readFile(join(dir, files[i]!.name), "utf8");
    stats.files++;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf("\n", start);
      if (end < 0) end = text.length;
      const line = text.slice(start, end);
      start = end + 1;
      if (line.length === 0) continue;
      const rec = decodeRecord(line);
      if (rec === undefined) {
        stats.badLines++;
        continue;
      }
      if (rec.startMs < fromMs) continue;
      stats.records++;
      yield rec;
    }
  }
}
