import assert from "node:assert/strict";
import fc from "fast-check";
import { ByteReader, ByteWriter, DecodeError } from "../../../coordinator/src/storage/binary.ts";
import { crc32c, crc32cUpdate } from "../../../coordinator/src/storage/index.ts";
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
} from "../../../coordinator/src/storage/snapshot-file.ts";
import {
  checkFrame,
  checkSegmentHeader,
  encodeSegmentHeader,
  findValidRecordAfter,
  RecordWriter,
  SEGMENT_HEADER_BYTES,
  scanSegment,
} from "../../../coordinator/src/storage/wal-format.ts";
import { entry } from "./helpers.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

/** Bitwise CRC-32C, the definition the table version must match. */
function naiveCrc32c(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe("storage/format", () => {
  it("crc32c matches the published check values", () => {
    assert.equal(crc32c(ascii("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("crc32c (slicing-by-8) agrees with the bitwise definition, also when chained over ranges", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (bytes, cut) => {
        const k = Math.min(cut, bytes.length);
        const whole = crc32c(bytes);
        assert.equal(whole, naiveCrc32c(bytes));
        assert.equal(crc32cUpdate(crc32c(bytes, 0, k), bytes, k), whole);
      }),
    );
  });

  it("varints round-trip every safe integer size and reject overlong input", () => {
    fc.assert(
      fc.property(fc.array(fc.maxSafeNat()), (ns) => {
        const w = new ByteWriter(1);
        for (const n of ns) w.varint(n);
        const r = new ByteReader(w.finish());
        for (const n of ns) assert.equal(r.varint(), n);
        assert.equal(r.remaining, 0);
      }),
    );
    assert.throws(() => new ByteWriter().varint(-1), RangeError);
    assert.throws(() => new ByteReader(new Uint8Array(9).fill(0x80)).varint(), DecodeError);
    assert.throws(() => new ByteReader(new Uint8Array([0x80])).varint(), /unexpected end/);
  });

  it("segment headers carry magic, version and sequence, and reject any change", () => {
    const h = encodeSegmentHeader(7);
    assert.equal(h.length, SEGMENT_HEADER_BYTES);
    assert.equal(checkSegmentHeader(h, 7), undefined);
    assert.match(checkSegmentHeader(h, 8)!, /names segment 7 but the file name says 8/);
    assert.match(checkSegmentHeader(h.subarray(0, 10), 7)!, /shorter than/);
    const badMagic = h.slice();
    badMagic[0] = 0x41;
    assert.match(checkSegmentHeader(badMagic, 7)!, /bad magic/);
    const badCrc = h.slice();
    badCrc[20] = 1;
    assert.match(checkSegmentHeader(badCrc, 7)!, /header checksum mismatch/);
  });

  it("records round-trip and each damaged byte is detected", () => {
    const w = new RecordWriter();
    w.snapshot({ index: 5, term: 2, resetsLog: true });
    w.entry(entry(6, 2));
    w.entry({ index: 7, term: 3, type: "conf-change", data: new Uint8Array([1, 2, 3]) });
    w.hardState({ term: 3, vote: "c2", commit: 7 });
    const body = w.finish();
    const seg = new Uint8Array(SEGMENT_HEADER_BYTES + body.length);
    seg.set(encodeSegmentHeader(1));
    seg.set(body, SEGMENT_HEADER_BYTES);

    const scan = scanSegment(seg);
    assert.equal(scan.bad, undefined);
    assert.equal(scan.validEnd, seg.length);
    assert.deepEqual(
      scan.records.map((r) => r.kind),
      ["snapshot", "entry", "entry", "hard-state"],
    );
    const [snap, e6, e7, hs] = scan.records;
    assert.deepEqual(snap!.kind === "snapshot" && snap.marker, {
      index: 5,
      term: 2,
      resetsLog: true,
    });
    assert.deepEqual(e6!.kind === "entry" && e6.entry, entry(6, 2));
    assert.deepEqual(e7!.kind === "entry" && e7.entry, {
      index: 7,
      term: 3,
      type: "conf-change",
      data: new Uint8Array([1, 2, 3]),
    });
    assert.deepEqual(hs!.kind === "hard-state" && hs.hardState, { term: 3, vote: "c2", commit: 7 });

    for (let i = SEGMENT_HEADER_BYTES; i < seg.length; i++) {
      const damaged = seg.slice();
      damaged[i]! ^= 0x01;
      const s = scanSegment(damaged);
      assert.ok(s.bad, `flipping byte ${i} went unnoticed`);
    }
  });

  it("zero fill is never a valid frame, and a valid record after damage is found", () => {
    const zeros = new Uint8Array(4096);
    assert.equal(checkFrame(zeros, 0).ok, false);
    assert.equal(findValidRecordAfter(zeros, 0), undefined);
    const w = new RecordWriter();
    w.hardState({ term: 1, vote: "", commit: 0 });
    const rec = w.finish();
    const buf = new Uint8Array(100 + rec.length);
    buf.set(rec, 77);
    assert.equal(findValidRecordAfter(buf, 1), 77);
  });

  it("snapshot files verify their content, name and size", () => {
    const snap = {
      metadata: {
        index: 42,
        term: 3,
        conf: { voters: ["c1", "c2", "c3"], learners: ["c4"], votersOutgoing: [] },
      },
      data: ascii("fsm state"),
    };
    const file = encodeSnapshotFile(snap);
    const ok = decodeSnapshotFile(file, { term: 3, index: 42 });
    assert.ok(ok.ok);
    assert.deepEqual(ok.snapshot, snap);

    const wrongName = decodeSnapshotFile(file, { term: 3, index: 43 });
    assert.ok(!wrongName.ok && /should hold term 3 index 43/.test(wrongName.reason));
    const truncated = decodeSnapshotFile(file.subarray(0, file.length - 1), { term: 3, index: 42 });
    assert.ok(!truncated.ok && /body bytes/.test(truncated.reason));
    const flipped = file.slice();
    flipped[file.length - 2]! ^= 0x10;
    const bad = decodeSnapshotFile(flipped, { term: 3, index: 42 });
    assert.ok(!bad.ok && /body checksum mismatch/.test(bad.reason));
  });
});
