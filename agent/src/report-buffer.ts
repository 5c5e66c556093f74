/**
 * The agent's replay window: the most recent encoded reports, bounded in
 * bytes, with the coordinator's acknowledged watermark.
 *
 * Contracts:
 * - Sequences are issued here: 1, 2, 3, ... per instance id, strictly
 *   increasing with no gaps, so the ring always holds a contiguous range
 *   [oldestSeq, lastSeq] and a lookup by sequence is O(1).
 * - The ring keeps reports after they are acked: an Ack means the current
 *   leader has them, but a future leader starts empty and is sent the window
 *   again (Welcome.resume_after_sequence tells where it stands).
 * - When full, the oldest reports are evicted. An evicted report the leader
 *   had not acked is lost for good and is counted in `droppedUnacked`.
 * - Accounting counts each report's encoded bytes plus `recordOverheadBytes`,
 *   so a flood of tiny heartbeats cannot exceed the memory bound either.
 *
 * Pure (no I/O): persistence is a `ReportJournal` observing every change.
 */

/** Approximate per-report bookkeeping cost (object, array slot) charged against bytesMax. */
export const recordOverheadBytes = 64;

export interface BufferedReport {
  readonly seq: number;
  /** The encoded wire message (AgentMessage with the report set), sent as is. */
  readonly bytes: Uint8Array;
}

export interface ReportBufferStats {
  reports: number;
  bytes: number;
  bytesMax: number;
  /** Oldest sequence still held (0 when empty). */
  oldestSeq: number;
  /** Highest sequence issued (0 when none). */
  lastSeq: number;
  /** Highest sequence any coordinator acknowledged (0 when none). */
  ackedSeq: number;
  /** Reports evicted before any coordinator acknowledged them (data lost). */
  droppedUnacked: number;
}

/** Receives every change, in order, so it can make the buffer durable. */
export interface ReportJournal {
  appended(report: BufferedReport): void;
  acked(seq: number): void;
  /** Sequences up to `seq` were skipped (see `advanceTo`). */
  advanced(seq: number): void;
}

export interface ReportBufferState {
  lastSeq: number;
  ackedSeq: number;
  droppedUnacked: number;
  reports: BufferedReport[];
}

export interface ReportBuffer {
  /** Issues the next sequence, encodes the report with it and keeps it; returns the sequence. */
  append(encode: (seq: number) => Uint8Array): number;
  /** Records a coordinator watermark (older or equal watermarks are ignored). */
  ack(seq: number): void;
  /**
   * The coordinator holds sequences up to `seq` that this buffer never issued
   * (a journal tail lost in a power cut): continue numbering after them. Held
   * reports are all at or below `seq` and are dropped.
   */
  advanceTo(seq: number): void;
  /** Up to `limit` held reports with sequence > `afterSeq`, oldest first. */
  after(afterSeq: number, limit: number): BufferedReport[];
  /** Sequence of the oldest held report (0 when empty). */
  readonly oldestSeq: number;
  readonly lastSeq: number;
  readonly ackedSeq: number;
  stats(): ReportBufferStats;
  /** Current contents, oldest first (for journal compaction). */
  snapshot(): ReportBufferState;
  /** Attaches the journal that observes later changes. */
  setJournal(journal: ReportJournal | undefined): void;
}

export interface ReportBufferOptions {
  bytesMax: number;
  /** Recovered state (from a journal); its reports must be contiguous and end at lastSeq. */
  initial?: ReportBufferState;
}

export function createReportBuffer(opts: ReportBufferOptions): ReportBuffer {
  const bytesMax = opts.bytesMax;
  if (!(bytesMax >= 1024)) throw new RangeError(`bytesMax must be >= 1024, got ${bytesMax}`);
  // Ring storage: live entries are items[head..]; the dead prefix is spliced
  // off once it outgrows the live part, keeping eviction amortised O(1).
  let items: BufferedReport[] = [];
  let head = 0;
  let bytes = 0;
  let lastSeq = 0;
  let ackedSeq = 0;
  let droppedUnacked = 0;
  let journal: ReportJournal | undefined;

  const cost = (r: BufferedReport) => r.bytes.length + recordOverheadBytes;
  const length = () => items.length - head;

  const evictOldest = () => {
    const r = items[head]!;
    items[head] = undefined as unknown as BufferedReport;
    head++;
    bytes -= cost(r);
    if (r.seq > ackedSeq) droppedUnacked++;
    if (head > 1024 && head * 2 > items.length) {
      items = items.slice(head);
      head = 0;
    }
  };

  if (opts.initial) {
    const init = opts.initial;
    lastSeq = init.lastSeq;
    ackedSeq = Math.min(init.ackedSeq, init.lastSeq);
    droppedUnacked = init.droppedUnacked;
    let expected = init.lastSeq - init.reports.length + 1;
    for (const r of init.reports) {
      if (r.seq !== expected) {
        throw new RangeError(
          `recovered reports must be contiguous: expected ${expected}, got ${r.seq}`,
        );
      }
      expected++;
      items.push(r);
      bytes += cost(r);
    }
    while (bytes > bytesMax && length() > 0) evictOldest();
  }

  const buffer: ReportBuffer = {
    append(encode) {
      const seq = lastSeq + 1;
      const r: BufferedReport = { seq, bytes: encode(seq) };
      if (cost(r) > bytesMax) {
        throw new RangeError(`a ${r.bytes.length}-byte report can never fit bytesMax ${bytesMax}`);
      }
      lastSeq = seq;
      items.push(r);
      bytes += cost(r);
      while (bytes > bytesMax) evictOldest();
      journal?.appended(r);
      return seq;
    },
    ack(seq) {
      // A watermark above what was issued comes from a confused or foreign
      // coordinator; clamping keeps `ackedSeq <= lastSeq` always true.
      const w = Math.min(seq, lastSeq);
      if (w <= ackedSeq) return;
      ackedSeq = w;
      journal?.acked(w);
    },
    advanceTo(seq) {
      if (seq <= lastSeq) return;
      items = [];
      head = 0;
      bytes = 0;
      lastSeq = seq;
      ackedSeq = seq;
      journal?.advanced(seq);
    },
    after(afterSeq, limit) {
      const n = length();
      if (n === 0 || limit <= 0) return [];
      const oldest = items[head]!.seq;
      const from = Math.max(afterSeq + 1, oldest);
      const start = head + (from - oldest);
      return items.slice(start, Math.min(items.length, start + limit));
    },
    get oldestSeq() {
      return length() > 0 ? items[head]!.seq : 0;
    },
    get lastSeq() {
      return lastSeq;
    },
    get ackedSeq() {
      return ackedSeq;
    },
    stats: () => ({
      reports: length(),
      bytes,
      bytesMax,
      oldestSeq: buffer.oldestSeq,
      lastSeq,
      ackedSeq,
      droppedUnacked,
    }),
    snapshot: () => ({ lastSeq, ackedSeq, droppedUnacked, reports: items.slice(head) }),
    setJournal(j) {
      journal = j;
    },
  };
  return buffer;
}
