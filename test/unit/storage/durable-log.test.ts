import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFile, readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError } from "../../../common/errors.ts";
import { silentLogger } from "../../../common/log.ts";
import type { Snapshot } from "../../../coordinator/src/raft/log-types.ts";
import {
  type DurableLog,
  type DurableLogOptions,
  formatInspection,
  inspectDurableLog,
  type OpenedDurableLog,
  openDurableLog,
  StorageCorruptionError,
  StorageFailedError,
} from "../../../coordinator/src/storage/index.ts";
import { scanSegment } from "../../../coordinator/src/storage/wal-format.ts";
import { captureLogger, entries, entry, makeTempDir, removeDir, text } from "./helpers.ts";

const seg = (dir: string, seq: number) => join(dir, "wal", `${String(seq).padStart(16, "0")}.wal`);

function snapshotAt(index: number, term: number, data = `state@${index}`): Snapshot {
  return {
    metadata: {
      index,
      term,
      conf: { voters: ["c1", "c2", "c3"], learners: [], votersOutgoing: [] },
    },
    data: new TextEncoder().encode(data),
  };
}

async function rejectsWithCode(p: Promise<unknown>, code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${err}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("storage/durable-log", () => {
  let dir: string;
  const open: DurableLog[] = [];

  async function openLog(opts: DurableLogOptions = {}): Promise<OpenedDurableLog> {
    const o = await openDurableLog(dir, { logger: silentLogger, ...opts });
    open.push(o.log);
    return o;
  }

  async function reopen(opts: DurableLogOptions = {}): Promise<OpenedDurableLog> {
    for (const l of open.splice(0)) await l.close();
    return openLog(opts);
  }

  async function closeAll(): Promise<void> {
    for (const l of open.splice(0)) await l.close();
  }

  beforeEach(async () => {
    dir = await makeTempDir();
  });

  afterEach(async () => {
    await closeAll();
    await removeDir(dir);
  });

  it("starts empty, then recovers hard state and entries after a restart", async () => {
    const { recovered, log } = await openLog();
    assert.deepEqual(recovered.hardState, { term: 0, vote: "", commit: 0 });
    assert.equal(recovered.snapshot.metadata.index, 0);
    assert.deepEqual(recovered.entries, []);

    await log.save({ hardState: { term: 1, vote: "c1", commit: 0 } });
    await log.save({ entries: entries(1, 3) });
    await log.save({ entries: [entry(4)], hardState: { term: 1, vote: "c1", commit: 3 } });

    const again = await reopen();
    assert.deepEqual(again.recovered.hardState, { term: 1, vote: "c1", commit: 3 });
    assert.deepEqual(again.recovered.entries, entries(1, 4));
    assert.equal(text(again.recovered.entries[3]!.data), "e4@1");

    // The reopened log keeps appending to the same history.
    await again.log.save({ entries: [entry(5, 2)], hardState: { term: 2, vote: "", commit: 5 } });
    const third = await reopen();
    assert.deepEqual(third.recovered.entries, [...entries(1, 4), entry(5, 2)]);
    assert.deepEqual(third.recovered.hardState, { term: 2, vote: "", commit: 5 });
  });

  it("a later entry at index i replaces everything from i on, also across segments", async () => {
    const { log } = await openLog({ segmentBytesMax: 100 });
    for (let i = 1; i <= 10; i++) await log.save({ entries: [entry(i, 1)] });
    await log.save({ hardState: { term: 1, vote: "", commit: 4 } });
    assert.ok(log.stats().lastSegment > 2, "the test needs several segments");
    await log.save({ entries: entries(6, 7, 2, "new") });
    const { recovered } = await reopen({ segmentBytesMax: 100 });
    assert.deepEqual(recovered.entries, [...entries(1, 5, 1), ...entries(6, 7, 2, "new")]);
  });

  it("rejects saves that break Raft's persistence rules and stores nothing for them", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 5), hardState: { term: 3, vote: "c2", commit: 3 } });

    const cases: [string, () => Promise<void>, RegExp][] = [
      [
        "gap",
        () => log.save({ entries: [entry(7)] }),
        /entries\[0\]\.index: 7 leaves a gap after the last index 5/,
      ],
      [
        "overwrite committed",
        () => log.save({ entries: [entry(3, 4)] }),
        /would overwrite a committed entry \(commit index is 3\)/,
      ],
      [
        "not contiguous",
        () => log.save({ entries: [entry(6), entry(8)] }),
        /entries\[1\]\.index: 8 does not follow 6/,
      ],
      [
        "term goes back",
        () => log.save({ entries: [entry(6, 2), entry(7, 1)] }),
        /entries\[1\]\.term: 1 is below the term 2/,
      ],
      [
        "hard state term back",
        () => log.save({ hardState: { term: 2, vote: "", commit: 3 } }),
        /hardState\.term: 2 is below the persisted term 3/,
      ],
      [
        "second vote",
        () => log.save({ hardState: { term: 3, vote: "c3", commit: 3 } }),
        /cannot change the vote from "c2" to "c3" within term 3/,
      ],
      [
        "commit back",
        () => log.save({ hardState: { term: 3, vote: "c2", commit: 2 } }),
        /hardState\.commit: 2 is below the persisted commit 3/,
      ],
      [
        "commit past log",
        () => log.save({ hardState: { term: 3, vote: "c2", commit: 9 } }),
        /hardState\.commit: 9 is beyond the last log index 5/,
      ],
      [
        "snapshot uncommitted",
        () => log.saveSnapshot(snapshotAt(4, 3)),
        /4 is beyond the commit index 3: a snapshot may only cover committed entries/,
      ],
      [
        "install below commit",
        () => log.save({ snapshot: snapshotAt(2, 3) }),
        /2 is below the commit index 3: installing it would discard committed entries/,
      ],
      [
        "data type",
        () =>
          log.save({
            entries: [{ index: 6, term: 1, type: "normal", data: "x" as unknown as Uint8Array }],
          }),
        /entries\[0\]\.data: must be a Uint8Array/,
      ],
    ];
    for (const [name, call, pattern] of cases) {
      await rejectsWithCode(call(), Code.InvalidArgument, pattern).catch((err: unknown) => {
        throw new Error(`case "${name}": ${String(err)}`);
      });
    }

    // A new term may change the vote; the valid save after the rejected ones lands normally.
    await log.save({ entries: [entry(6, 4)], hardState: { term: 4, vote: "c3", commit: 5 } });
    const { recovered } = await reopen();
    assert.deepEqual(recovered.entries, [...entries(1, 5), entry(6, 4)]);
    assert.deepEqual(recovered.hardState, { term: 4, vote: "c3", commit: 5 });
    assert.equal(recovered.snapshot.metadata.index, 0);
  });

  it("truncates a torn tail (a record cut mid-write), logs it, and keeps appending", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 3), hardState: { term: 1, vote: "", commit: 3 } });
    await log.save({ entries: [entry(4)] });
    await closeAll();
    const path = seg(dir, 1);
    const full = (await stat(path)).size;
    await truncate(path, full - 3); // entry 4's record loses its last bytes

    const logger = captureLogger();
    const { recovered, log: log2 } = await openLog({ logger });
    assert.deepEqual(recovered.entries, entries(1, 3));
    const torn = logger.lines.find((l) => l.level === "warn" && /torn tail/.test(l.msg));
    assert.ok(torn, "the truncation is logged");
    assert.equal(torn.fields.file, path);
    assert.ok(Number(torn.fields.offset) > 0);
    assert.equal(
      (await stat(path)).size,
      torn.fields.offset,
      "the torn bytes are gone from the file",
    );

    await log2.save({ entries: [entry(4, 1, "again")] });
    const { recovered: r3 } = await reopen();
    assert.deepEqual(r3.entries, [...entries(1, 3), entry(4, 1, "again")]);
  });

  it("treats zero fill and partial garbage after the last record as a torn tail", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 2), hardState: { term: 1, vote: "", commit: 2 } });
    await closeAll();
    const path = seg(dir, 1);
    const size = (await stat(path)).size;

    await appendFile(path, new Uint8Array(8192)); // e.g. a filesystem that extended the file before the data landed
    let o = await reopen();
    assert.deepEqual(o.recovered.entries, entries(1, 2));
    assert.equal((await stat(path)).size, size);

    // A frame header claiming more bytes than exist (a record whose tail never hit the disk).
    await closeAll();
    await appendFile(path, new Uint8Array([0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 1, 2, 3]));
    o = await reopen();
    assert.deepEqual(o.recovered.entries, entries(1, 2));
    await o.log.save({ entries: [entry(3)] });
    o = await reopen();
    assert.deepEqual(o.recovered.entries, entries(1, 3));
  });

  it("refuses to start on a bad record in the middle of the last segment, naming file and offset", async () => {
    const { log } = await openLog();
    for (let i = 1; i <= 5; i++)
      await log.save({ entries: [entry(i)], hardState: { term: 1, vote: "", commit: i } });
    await closeAll();
    const path = seg(dir, 1);
    const before = await readFile(path);
    const second = scanSegment(before).records.find(
      (r) => r.kind === "entry" && r.entry.index === 2,
    )!;
    const damaged = Buffer.from(before);
    damaged[second.offset + 12]! ^= 0x04; // inside entry 2's payload
    await writeFile(path, damaged);

    const logger = captureLogger();
    await assert.rejects(openDurableLog(dir, { logger }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.equal(err.file, path);
      assert.equal(err.offset, second.offset);
      assert.ok(err.message.includes(`${path} at byte offset ${second.offset}`), err.message);
      assert.match(err.message, /checksum mismatch/);
      assert.match(err.message, /followed by a valid record/);
      assert.match(err.message, /refuses to start/);
      return true;
    });
    assert.ok(logger.lines.some((l) => l.level === "error"));
    assert.deepEqual(await readFile(path), damaged, "a refused open changes nothing on disk");
    // The lock was released: after repair (here: restoring the bytes) the node starts.
    await writeFile(path, before);
    const { recovered } = await openLog();
    assert.deepEqual(recovered.entries, entries(1, 5));
  });

  it("refuses damage in a segment that is not the last, even at its very end", async () => {
    const { log } = await openLog({ segmentBytesMax: 200 });
    for (let i = 1; i <= 12; i++)
      await log.save({ entries: [entry(i)], hardState: { term: 1, vote: "", commit: i } });
    assert.ok(log.stats().lastSegment >= 3);
    await closeAll();
    const path = seg(dir, 1);
    const size = (await stat(path)).size;
    await truncate(path, size - 2);
    await assert.rejects(openDurableLog(dir, { logger: silentLogger }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.equal(err.file, path);
      assert.match(err.message, /not the last segment/);
      return true;
    });
  });

  it("refuses a bad segment header and a missing segment", async () => {
    const { log } = await openLog({ segmentBytesMax: 200 });
    for (let i = 1; i <= 12; i++)
      await log.save({ entries: [entry(i)], hardState: { term: 1, vote: "", commit: i } });
    const last = log.stats().lastSegment;
    await closeAll();

    const header = await readFile(seg(dir, last));
    const bad = Buffer.from(header);
    bad[2] = 0x58;
    await writeFile(seg(dir, last), bad);
    await assert.rejects(openDurableLog(dir, { logger: silentLogger }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.match(
        err.message,
        new RegExp(`${seg(dir, last)} at byte offset 0: bad segment header: bad magic`),
      );
      return true;
    });
    await writeFile(seg(dir, last), header);

    const missing = seg(dir, 2);
    const kept = await readFile(missing);
    await writeFile(`${missing}.elsewhere`, kept);
    await truncate(missing, 0);
    await assert.rejects(
      openDurableLog(dir, { logger: silentLogger }),
      /bad segment header: file is 0 bytes/,
    );
    await import("node:fs/promises").then((fs) => fs.unlink(missing));
    await assert.rejects(openDurableLog(dir, { logger: silentLogger }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.equal(err.file, missing);
      assert.match(
        err.message,
        /segment is missing: the WAL jumps from 0000000000000001\.wal to 0000000000000003\.wal/,
      );
      return true;
    });
  });

  it("snapshot, compact and restart: old segments go, the snapshot and later entries come back", async () => {
    const opts = { segmentBytesMax: 256 };
    const { log } = await openLog(opts);
    for (let i = 1; i <= 40; i++)
      await log.save({ entries: [entry(i)], hardState: { term: 1, vote: "c1", commit: i } });
    const segmentsBefore = log.stats().lastSegment;
    assert.ok(segmentsBefore >= 6, `needs many segments, got ${segmentsBefore}`);

    // Without a snapshot nothing that holds entries may go.
    const none = await log.compact(40);
    assert.equal(none.compactedThrough, 0);
    assert.equal(none.segmentsDeleted, 0);

    await log.saveSnapshot(snapshotAt(30, 1));
    const c = await log.compact(1_000);
    assert.equal(c.compactedThrough, 30, "compaction is bounded by the newest snapshot");
    assert.ok(c.segmentsDeleted > 0);
    const walFiles = await readdir(join(dir, "wal"));
    assert.equal(
      walFiles.length,
      segmentsBefore - c.segmentsDeleted + (log.stats().lastSegment - segmentsBefore),
    );
    assert.equal(walFiles.sort()[0], `${String(log.stats().firstSegment).padStart(16, "0")}.wal`);

    await log.save({ entries: [entry(41)], hardState: { term: 1, vote: "c1", commit: 41 } });
    const { recovered } = await reopen(opts);
    assert.equal(recovered.snapshot.metadata.index, 30);
    assert.equal(text(recovered.snapshot.data), "state@30");
    assert.deepEqual(recovered.snapshot.metadata.conf.voters, ["c1", "c2", "c3"]);
    assert.deepEqual(recovered.entries, entries(31, 41));
    assert.deepEqual(recovered.hardState, { term: 1, vote: "c1", commit: 41 });
  });

  it("keeps the newest snapshotsRetained snapshot files", async () => {
    const { log } = await openLog({ snapshotsRetained: 2 });
    await log.save({ entries: entries(1, 30), hardState: { term: 2, vote: "", commit: 30 } });
    for (const i of [10, 20, 30]) await log.saveSnapshot(snapshotAt(i, 2));
    assert.deepEqual((await readdir(join(dir, "snap"))).sort(), [
      "0000000000000002-0000000000000020.snap",
      "0000000000000002-0000000000000030.snap",
    ]);
    assert.equal(log.stats().snapshotsWritten, 3);
  });

  it("falls back to an older snapshot when the newest is damaged and the WAL still covers it", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 30), hardState: { term: 2, vote: "", commit: 30 } });
    await log.saveSnapshot(snapshotAt(10, 2));
    await log.saveSnapshot(snapshotAt(20, 2));
    await closeAll();
    const newest = join(dir, "snap", "0000000000000002-0000000000000020.snap");
    const bytes = await readFile(newest);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(newest, bytes);

    const logger = captureLogger();
    const { recovered } = await openLog({ logger });
    assert.equal(recovered.snapshot.metadata.index, 10);
    assert.deepEqual(recovered.entries, entries(11, 30));
    assert.ok(logger.lines.some((l) => l.level === "error" && l.fields.file === newest));
  });

  it("refuses a damaged snapshot the WAL points at when no older one covers the log", async () => {
    const opts = { segmentBytesMax: 256, snapshotsRetained: 1 };
    const { log } = await openLog(opts);
    for (let i = 1; i <= 30; i++)
      await log.save({ entries: [entry(i)], hardState: { term: 1, vote: "", commit: i } });
    await log.saveSnapshot(snapshotAt(25, 1));
    assert.ok((await log.compact(25)).segmentsDeleted > 0);
    await closeAll();
    const path = join(dir, "snap", "0000000000000001-0000000000000025.snap");
    const bytes = await readFile(path);
    bytes[40]! ^= 0x01;
    await writeFile(path, bytes);
    await assert.rejects(openDurableLog(dir, { logger: silentLogger, ...opts }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.equal(err.file, path);
      assert.match(
        err.message,
        new RegExp(
          `${path} at byte offset 32: the snapshot the WAL points at \\(term 1, index 25\\) cannot be used \\(body checksum mismatch`,
        ),
      );
      assert.match(err.message, /refuses to start/);
      return true;
    });
    await import("node:fs/promises").then((fs) => fs.unlink(path));
    await assert.rejects(
      openDurableLog(dir, { logger: silentLogger, ...opts }),
      /the snapshot file is missing/,
    );
  });

  it("an installed snapshot replaces the log; entries after it follow", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 10, 1), hardState: { term: 1, vote: "", commit: 4 } });
    await log.save({ snapshot: snapshotAt(20, 3), hardState: { term: 3, vote: "", commit: 20 } });
    await log.save({ entries: entries(21, 22, 3) });
    await rejectsWithCode(
      log.save({ entries: [entry(20, 3)] }),
      Code.InvalidArgument,
      /covered by the snapshot at index 20/,
    );
    const { recovered } = await reopen();
    assert.equal(recovered.snapshot.metadata.index, 20);
    assert.equal(recovered.snapshot.metadata.term, 3);
    assert.deepEqual(recovered.entries, entries(21, 22, 3));
    assert.deepEqual(recovered.hardState, { term: 3, vote: "", commit: 20 });
  });

  it("an install whose index is inside the old log voids the stale suffix too", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 10, 1), hardState: { term: 1, vote: "", commit: 2 } });
    await log.save({ snapshot: snapshotAt(5, 4), hardState: { term: 4, vote: "", commit: 5 } });
    const { recovered } = await reopen();
    assert.equal(recovered.snapshot.metadata.index, 5);
    assert.deepEqual(
      recovered.entries,
      [],
      "entries 6..10 of term 1 must not come back after a term-4 snapshot",
    );
  });

  it("deletes a snapshot file whose WAL record never became durable, and leftover temp files", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 5), hardState: { term: 1, vote: "", commit: 5 } });
    await closeAll();
    const { encodeSnapshotFile } = await import(
      "../../../coordinator/src/storage/snapshot-file.ts"
    );
    const orphan = join(dir, "snap", "0000000000000001-0000000000000005.snap");
    await writeFile(orphan, encodeSnapshotFile(snapshotAt(5, 1)));
    await writeFile(join(dir, "wal", "0000000000000002.wal.tmp"), new Uint8Array(10));
    const { recovered } = await openLog();
    assert.equal(recovered.snapshot.metadata.index, 0);
    assert.deepEqual(await readdir(join(dir, "snap")), []);
    assert.deepEqual(await readdir(join(dir, "wal")), ["0000000000000001.wal"]);
  });

  it("group commit: concurrent saves share fsyncs and resolve in call order", async () => {
    const { log } = await openLog();
    const n = 500;
    const order: number[] = [];
    const saves = [];
    for (let i = 1; i <= n; i++) {
      saves.push(
        log
          .save({ entries: [entry(i)], hardState: { term: 1, vote: "", commit: i - 1 } })
          .then(() => order.push(i)),
      );
    }
    await Promise.all(saves);
    assert.deepEqual(
      order,
      Array.from({ length: n }, (_, k) => k + 1),
    );
    const s = log.stats();
    assert.ok(
      s.walFsyncs <= 5,
      `expected a handful of fsyncs for ${n} concurrent saves, got ${s.walFsyncs}`,
    );
    assert.equal(s.walFsyncs, s.groupCommits);
    assert.equal(s.entriesWritten, n);
    const { recovered } = await reopen();
    assert.deepEqual(recovered.entries, entries(1, n));
  });

  it("group commit honours groupCommitSavesMax and groupCommitBytesMax", async () => {
    const byCount = await openLog({ groupCommitSavesMax: 10 });
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => byCount.log.save({ entries: [entry(k + 1)] })),
    );
    const countSyncs = byCount.log.stats().walFsyncs;
    assert.ok(countSyncs >= 10 && countSyncs <= 12, `10 saves per batch: ${countSyncs} fsyncs`);
    await closeAll();
    await removeDir(dir);
    dir = await makeTempDir();

    // Each save is one ~1.5 KiB entry; 4 KiB batches hold at most 2 of them.
    const big = new Uint8Array(1500);
    const byBytes = await openLog({ groupCommitBytesMax: 4096 });
    await Promise.all(
      Array.from({ length: 30 }, (_, k) =>
        byBytes.log.save({ entries: [{ index: k + 1, term: 1, type: "normal", data: big }] }),
      ),
    );
    const bytesSyncs = byBytes.log.stats().walFsyncs;
    assert.ok(
      bytesSyncs >= 15 && bytesSyncs <= 17,
      `2 saves per 4 KiB batch: ${bytesSyncs} fsyncs`,
    );
  });

  it("a save resolves only after its fsync has returned", async () => {
    // Gated fsyncs are released in `finally`, so a failing assertion cannot hang close() in afterEach.
    const gates: (() => void)[] = [];
    let syncsStarted = 0;
    const { log } = await openLog({
      hooks: {
        beforeWalFsync: () => {
          syncsStarted++;
          return new Promise<void>((r) => gates.push(r));
        },
      },
    });
    try {
      let resolved = false;
      const p = log.save({ hardState: { term: 5, vote: "c2", commit: 0 } }).then(() => {
        resolved = true;
      });
      for (let i = 0; i < 50 && syncsStarted === 0; i++) await new Promise((r) => setTimeout(r, 1));
      assert.equal(syncsStarted, 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(resolved, false, "the vote must not be acknowledged before fsync");
      gates.shift()!();
      await p;
      assert.equal(resolved, true);
    } finally {
      for (const g of gates.splice(0)) g();
    }
  });

  it("an fsync failure fails the pending saves and every later one; disk keeps what was synced", async () => {
    let failNext = false;
    const { log } = await openLog({
      hooks: {
        beforeWalFsync: () => {
          if (failNext) throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
        },
      },
    });
    await log.save({ entries: entries(1, 2), hardState: { term: 1, vote: "", commit: 2 } });
    failNext = true;
    const a = log.save({ entries: [entry(3)] });
    const b = log.save({ entries: [entry(4)] });
    await assert.rejects(a, StorageFailedError);
    await assert.rejects(b, StorageFailedError);
    failNext = false;
    await assert.rejects(log.save({ entries: [entry(3)] }), /accepts no more writes/);
    await assert.rejects(log.compact(0), StorageFailedError);
    const { recovered } = await reopen();
    assert.ok(recovered.entries.length >= 2);
    assert.deepEqual(recovered.entries.slice(0, 2), entries(1, 2));
  });

  it("bounds the queue: a save beyond queueBytesMax is rejected and stores nothing", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { log } = await openLog({ queueBytesMax: 1000, hooks: { beforeWalFsync: () => gate } });
    const data = new Uint8Array(400);
    const first = log.save({ entries: [{ index: 1, term: 1, type: "normal", data }] }); // in flight, not queued
    const second = log.save({ entries: [{ index: 2, term: 1, type: "normal", data }] });
    const third = log.save({ entries: [{ index: 3, term: 1, type: "normal", data }] });
    await rejectsWithCode(
      log.save({ entries: [{ index: 4, term: 1, type: "normal", data }] }),
      Code.ResourceExhausted,
      /queueBytesMax 1000/,
    );
    release();
    await Promise.all([first, second, third]);
    await log.save({ entries: [entry(4)] }); // index 4 was never taken
    const { recovered } = await reopen();
    assert.deepEqual(
      recovered.entries.map((e) => e.index),
      [1, 2, 3, 4],
    );
  });

  it("one process per data directory: a second open fails, a dead owner's lock is taken over", async () => {
    const { log } = await openLog();
    await rejectsWithCode(
      openDurableLog(dir, { logger: silentLogger }),
      Code.FailedPrecondition,
      /already open in this process/,
    );
    await log.close();
    await assert.rejects(log.save({}), /durable log is closed/);

    const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
    await writeFile(join(dir, "LOCK"), `${gone.stdout.toString()}\n`);
    const { log: l2 } = await openLog();
    assert.equal((await readFile(join(dir, "LOCK"), "utf8")).trim(), String(process.pid));
    await l2.close();

    // A live process (this test's parent) holds it: refuse.
    await writeFile(join(dir, "LOCK"), `${process.ppid}\n`);
    await rejectsWithCode(
      openDurableLog(dir, { logger: silentLogger }),
      Code.FailedPrecondition,
      new RegExp(`in use by process ${process.ppid}`),
    );
  });

  it("refuses a WAL that no longer holds entries its hard state says are committed", async () => {
    const opts = { segmentBytesMax: 200 };
    const { log } = await openLog(opts);
    for (let i = 1; i <= 12; i++) await log.save({ entries: [entry(i)] });
    const entrySegments = log.stats().lastSegment;
    while (log.stats().lastSegment === entrySegments) {
      await log.save({ hardState: { term: 1, vote: "", commit: 12 } });
    }
    const last = log.stats().lastSegment;
    await closeAll();
    // Someone deletes old segments by hand, without a snapshot covering them.
    const fs = await import("node:fs/promises");
    for (let s = 1; s < last; s++) await fs.unlink(seg(dir, s));
    await assert.rejects(openDurableLog(dir, { logger: silentLogger, ...opts }), (err: unknown) => {
      assert.ok(err instanceof StorageCorruptionError);
      assert.equal(err.file, seg(dir, last));
      assert.match(
        err.message,
        /entries up to 12 are committed but the log ends at 0: committed entries are missing/,
      );
      return true;
    });
  });

  it("inspectDurableLog reports segments, snapshots, a torn tail and corruption without changing files", async () => {
    const { log } = await openLog();
    await log.save({ entries: entries(1, 6), hardState: { term: 2, vote: "c1", commit: 6 } });
    await log.saveSnapshot(snapshotAt(4, 2));
    await closeAll();
    const path = seg(dir, 1);
    await appendFile(path, new Uint8Array([5, 0, 0, 0, 1, 2]));
    const size = (await stat(path)).size;

    const report = await inspectDurableLog(dir);
    assert.equal(report.ok, true);
    assert.equal(report.segments.length, 1);
    assert.equal(report.segments[0]!.entryRecords, 6);
    assert.equal(report.snapshots.length, 1);
    assert.deepEqual(report.recovered, {
      term: 2,
      vote: "c1",
      commit: 6,
      snapshotIndex: 4,
      snapshotTerm: 2,
      firstIndex: 5,
      lastIndex: 6,
      entries: 2,
    });
    assert.equal(report.tornTail?.bytesDropped, 6);
    assert.equal((await stat(path)).size, size, "inspection does not truncate");
    const textReport = formatInspection(report);
    assert.match(textReport, /OK/);
    assert.match(textReport, /torn tail/);

    const bytes = await readFile(path);
    bytes[60]! ^= 0x01;
    await writeFile(path, bytes);
    const broken = await inspectDurableLog(dir);
    assert.equal(broken.ok, false);
    assert.equal(broken.corruption?.file, path);
    assert.match(formatInspection(broken), /CORRUPT/);
  });
});
