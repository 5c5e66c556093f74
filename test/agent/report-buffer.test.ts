import assert from "node:assert/strict";
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  type AgentSample,
  cpuCoreMetric,
  createReportBuffer,
  defaultBufferBytesMax,
  type MetricName,
  openReportStore,
  type ProbeResult,
} from "../../agent/src/index.ts";
import { recordOverheadBytes } from "../../agent/src/report-buffer.ts";
import { journalFileName } from "../../agent/src/report-journal.ts";
import { encodeReport } from "../../agent/src/wire.ts";
import { silentLogger } from "../../common/log.ts";

const payload = (seq: number, size = 100) => {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setFloat64(0, seq);
  return b;
};
const seqOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getFloat64(0);

describe("agent report buffer", () => {
  it("issues contiguous sequences and replays in order after a watermark", () => {
    const b = createReportBuffer({ bytesMax: 64 * 1024 });
    for (let i = 1; i <= 10; i++)
      assert.equal(
        b.append((seq) => payload(seq)),
        i,
      );
    assert.deepEqual(
      b.after(4, 100).map((r) => r.seq),
      [5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(
      b.after(0, 3).map((r) => r.seq),
      [1, 2, 3],
    );
    assert.deepEqual(b.after(10, 5), []);
    for (const r of b.after(0, 100)) assert.equal(seqOf(r.bytes), r.seq);
  });

  it("stays within bytesMax, evicting the oldest and counting unacked losses", () => {
    const size = 1000;
    const perReport = size + recordOverheadBytes;
    const b = createReportBuffer({ bytesMax: perReport * 10 });
    for (let i = 0; i < 10; i++) b.append((seq) => payload(seq, size));
    b.ack(4);
    for (let i = 0; i < 8; i++) b.append((seq) => payload(seq, size));
    const s = b.stats();
    assert.ok(s.bytes <= s.bytesMax, `${s.bytes} > ${s.bytesMax}`);
    assert.equal(s.reports, 10);
    assert.equal(s.oldestSeq, 9);
    assert.equal(s.lastSeq, 18);
    // 1..8 evicted; 1..4 were acked, 5..8 were not.
    assert.equal(s.droppedUnacked, 4);
    assert.deepEqual(
      b.after(0, 100).map((r) => r.seq),
      [9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
    );
  });

  it("keeps acked reports for a future leader, ignores stale and clamps foreign watermarks", () => {
    const b = createReportBuffer({ bytesMax: 64 * 1024 });
    for (let i = 0; i < 5; i++) b.append((seq) => payload(seq));
    b.ack(3);
    b.ack(2);
    assert.equal(b.ackedSeq, 3);
    b.ack(99);
    assert.equal(b.ackedSeq, 5, "a watermark above lastSeq is clamped");
    assert.equal(b.after(0, 10).length, 5, "acked reports stay in the replay window");
  });

  it("holds the bound and the order for any append/ack interleaving (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 8, max: 3000 }), fc.constant(-1)), { maxLength: 300 }),
        (ops) => {
          const bytesMax = 20_000;
          const b = createReportBuffer({ bytesMax });
          let issued = 0;
          for (const op of ops) {
            if (op === -1) b.ack(Math.floor(issued / 2));
            else {
              issued++;
              b.append((seq) => payload(seq, op));
            }
            const s = b.stats();
            assert.ok(s.bytes <= bytesMax);
            const held = b.after(0, 1_000_000).map((r) => r.seq);
            assert.deepEqual(
              held,
              Array.from({ length: held.length }, (_, i) => s.oldestSeq + i),
            );
            if (held.length > 0) assert.equal(held.at(-1), issued);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("default bufferBytesMax holds at least 10 minutes of typical 1 Hz reports plus heartbeats", () => {
    // A typical report: host metrics of a 16-core machine, two filesystems, a watched process,
    // packager status and two HTTP probes.
    const names: MetricName[] = [
      "cpu.load",
      "mem.used_bytes",
      "mem.available_bytes",
      "mem.swap_used_bytes",
      "disk.read_bytes_per_s",
      "disk.write_bytes_per_s",
      "disk.io_wait",
      "net.rx_bytes_per_s",
      "net.tx_bytes_per_s",
      "net.rx_errors_per_s",
      "net.rx_dropped_per_s",
      "proc.up",
      "proc.cpu",
      "proc.rss_bytes",
      "proc.fds",
      "proc.restarts",
      "packager.ingest_latency_ms",
      "packager.error_rate",
      "packager.cache_hit_ratio",
    ];
    const samples: AgentSample[] = names.map((name) => ({ name, value: Math.random() * 1e9 }));
    for (let i = 0; i < 16; i++) samples.push({ name: cpuCoreMetric(i), value: Math.random() });
    for (const mount of ["/", "/var/lib/understudy"]) {
      samples.push({ name: "fs.used_ratio", value: 0.4, labels: { mount } });
      samples.push({ name: "fs.free_bytes", value: 1e11, labels: { mount } });
    }
    const probes: ProbeResult[] = [
      {
        kind: "packager_status",
        target: "http://127.0.0.1:8080/status",
        ok: true,
        latencyMs: 1.2,
        values: {
          ingest_latency_p50_ms: 120,
          error_ratio: 0,
          cache_hit_ratio: 0.97,
          http_status: 200,
        },
        error: "",
      },
      {
        kind: "http",
        target: "http://127.0.0.1:8080/healthz",
        ok: true,
        latencyMs: 0.8,
        values: { http_status: 200 },
        error: "",
      },
      {
        kind: "coordinator_rtt",
        target: "c1",
        ok: true,
        latencyMs: 0.5,
        values: { loss_ratio: 0 },
        error: "",
      },
    ];
    const report = encodeReport(123_456, Date.now(), { samples, probes });
    const heartbeat = encodeReport(123_457, Date.now(), undefined);
    // 1 report + 3 heartbeats (250 ms) per second.
    const perSecond = report.length + 3 * heartbeat.length + 4 * recordOverheadBytes;
    const seconds = defaultBufferBytesMax / perSecond;
    assert.ok(
      seconds >= 600,
      `default buffer holds only ${seconds.toFixed(0)} s (${perSecond} B/s)`,
    );
  });
});

describe("agent report journal (data dir)", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "understudy-agent-journal-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (bytesMax = 64 * 1024) =>
    openReportStore({
      dir,
      bytesMax,
      newInstanceId: () => `inst-${Math.random()}`,
      logger: silentLogger,
      fsyncIntervalMs: 10,
    });

  it("a restart keeps the instance id, the reports, the watermark and the next sequence", async () => {
    const a = await open();
    for (let i = 0; i < 20; i++) a.buffer.append((seq) => payload(seq));
    a.buffer.ack(7);
    await a.close();

    const b = await open();
    assert.equal(b.instanceId, a.instanceId);
    assert.equal(b.buffer.lastSeq, 20);
    assert.equal(b.buffer.ackedSeq, 7);
    assert.deepEqual(
      b.buffer.after(7, 100).map((r) => [r.seq, seqOf(r.bytes)]),
      Array.from({ length: 13 }, (_, i) => [8 + i, 8 + i]),
    );
    assert.equal(
      b.buffer.append((seq) => payload(seq)),
      21,
    );
    await b.close();
  });

  it("loses nothing written when the process dies without close (no flush)", async () => {
    const a = await open();
    for (let i = 0; i < 5; i++) a.buffer.append((seq) => payload(seq));
    // Let the queued writes reach the kernel, but do not close: like a crash.
    await new Promise((r) => setTimeout(r, 50));
    const b = await open();
    assert.equal(b.buffer.lastSeq, 5);
    assert.equal(b.buffer.after(0, 10).length, 5);
    await b.close();
    await a.close();
  });

  it("leaves the event loop free while a sync is pending", async () => {
    const a = await openReportStore({
      dir,
      bytesMax: 64 * 1024,
      newInstanceId: () => "i",
      logger: silentLogger,
      fsyncIntervalMs: 1000,
    });
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) a.buffer.append((seq) => payload(seq));
    await new Promise((r) => setTimeout(r, 50));
    const late = performance.now() - t0 - 50;
    assert.ok(late < 200, `a 50 ms timer fired ${late.toFixed(0)} ms late`);
    await a.close();
  });

  it("cuts a torn tail at the last whole record", async () => {
    const a = await open();
    for (let i = 0; i < 5; i++) a.buffer.append((seq) => payload(seq));
    await a.close();
    const file = join(dir, journalFileName);
    const size = statSync(file).size;
    // A crash in the middle of the 6th record: header and half a body.
    const full = readFileSync(file);
    appendFileSync(file, full.subarray(full.length - 60, full.length - 10));
    const b = await open();
    assert.equal(b.recovered.tornBytes, 50);
    assert.equal(b.buffer.lastSeq, 5);
    assert.equal(statSync(file).size, size);
    await b.close();

    // Corrupt the last record's body: its CRC no longer matches, so it is cut too.
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(file, bytes);
    const c = await open();
    assert.equal(c.buffer.lastSeq, 4);
    await c.close();
  });

  it("compacts the file so it stays near the buffer bound", async () => {
    const bytesMax = 16 * 1024;
    const a = await open(bytesMax);
    for (let i = 0; i < 2000; i++) {
      a.buffer.append((seq) => payload(seq));
      a.buffer.ack(i);
    }
    await a.flush();
    const size = statSync(join(dir, journalFileName)).size;
    assert.ok(size <= 2 * bytesMax + 64 * 1024 + 4096, `journal is ${size} bytes`);
    await a.close();
    const b = await open(bytesMax);
    assert.equal(b.buffer.lastSeq, 2000);
    assert.equal(b.buffer.ackedSeq, 1999);
    const held = b.buffer.after(0, 10_000).map((r) => r.seq);
    assert.equal(held.at(-1), 2000);
    assert.equal(held.length, a.buffer.after(0, 10_000).length);
    await b.close();
  });

  it("advanceTo skips sequences a leader already holds, and survives a restart", async () => {
    const a = await open();
    for (let i = 0; i < 3; i++) a.buffer.append((seq) => payload(seq));
    a.buffer.advanceTo(50);
    assert.equal(
      a.buffer.append((seq) => payload(seq)),
      51,
    );
    await a.close();
    const b = await open();
    assert.equal(b.buffer.lastSeq, 51);
    assert.deepEqual(
      b.buffer.after(0, 10).map((r) => r.seq),
      [51],
    );
    await b.close();
  });

  it("starts a fresh instance on an empty or unreadable journal", async () => {
    writeFileSync(join(dir, journalFileName), Buffer.from("garbage that is not a journal"));
    const a = await open();
    assert.equal(a.buffer.lastSeq, 0);
    a.buffer.append((seq) => payload(seq));
    await a.close();
    truncateSync(join(dir, journalFileName), 0);
    const b = await open();
    assert.notEqual(b.instanceId, a.instanceId);
    await b.close();
  });
});
