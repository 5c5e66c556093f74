/**
 * The hand-written AgentMessage decoder (coordinator/src/ingest/wire.ts)
 * against protobuf-es, the fast path checked against the naive one:
 * - valid messages (random, and concatenations, which protobuf merges) decode
 *   to the same values;
 * - random and mutated bytes: where a strict, descriptor-driven walker (below,
 *   independent of both decoders) finds the input well-formed, both decoders
 *   give the same values or both reject; where it is malformed in the report
 *   or the body framing, the hand decoder rejects;
 * - edge cases written out: omitted defaults, non-minimal varints, unknown
 *   fields of every wire type, fields out of order and repeated, map entries
 *   without key or value, invalid UTF-8, 64-bit values past 2^53.
 */
import assert from "node:assert/strict";
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  mergeFromBinary,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  type AgentMessageFrame,
  agentMessageFrameSchema,
  type DecodedBody,
  decodeAgentFrame,
  type IngestReport,
  SAMPLE_IDENTS_MAX,
  wireStats,
} from "../../../coordinator/src/ingest/wire.ts";
import {
  type AgentMessage,
  AgentMessageSchema,
  DirectiveResultSchema,
  HelloSchema,
  ReportSchema,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";

type Outcome = { ok: true; body: unknown } | { ok: false; err: string };

const reportJson = (r: IngestReport) =>
  toJson(
    ReportSchema,
    create(ReportSchema, {
      sequence: r.sequenceBig ?? BigInt(r.sequence),
      timestampUnixMs: r.timestampBig ?? BigInt(r.timestampUnixMs),
      samples: r.samples.map((s) => ({ ...s, labels: { ...s.labels } })),
      probes: r.probes,
      heartbeatOnly: r.heartbeatOnly,
      replayed: r.replayed,
    }),
  );

function normalizeMine(b: DecodedBody): unknown {
  switch (b.case) {
    case "report":
      return { case: "report", v: reportJson(b.value) };
    case "hello":
      return { case: "hello", v: toJson(HelloSchema, b.value) };
    case "directiveResult":
      return { case: "directiveResult", v: toJson(DirectiveResultSchema, b.value) };
    default:
      return { case: undefined };
  }
}

function normalizeTheirs(m: AgentMessage): unknown {
  switch (m.body.case) {
    case "report":
      return { case: "report", v: toJson(ReportSchema, m.body.value) };
    case "hello":
      return { case: "hello", v: toJson(HelloSchema, m.body.value) };
    case "directiveResult":
      return { case: "directiveResult", v: toJson(DirectiveResultSchema, m.body.value) };
    default:
      return { case: undefined };
  }
}

const run = (f: () => unknown): Outcome => {
  try {
    return { ok: true, body: f() };
  } catch (err) {
    return { ok: false, err: String(err) };
  }
};

/** The server's path: connect-node decodes the frame, then the hand decoder. */
const mine = (bytes: Uint8Array): Outcome =>
  run(() =>
    normalizeMine(
      decodeAgentFrame(fromBinary(agentMessageFrameSchema, bytes) as unknown as AgentMessageFrame),
    ),
  );
const theirs = (bytes: Uint8Array): Outcome =>
  run(() => normalizeTheirs(fromBinary(AgentMessageSchema, bytes)));

/**
 * protobuf-es applied to each body field's exact byte span (merging repeated
 * ones): what the hand decoder promises for Hello and DirectiveResult.
 */
const spanwise = (bytes: Uint8Array): Outcome =>
  run(() => {
    const frame = fromBinary(agentMessageFrameSchema, bytes) as unknown as AgentMessageFrame;
    let body: AgentMessage["body"] = { case: undefined };
    for (const f of frame.$unknown ?? []) {
      if (f.no < 1 || f.no > 3) continue;
      if (f.wireType !== 2) throw new Error("wire type");
      const r = new Reader(f.data, 0);
      const len = r.len();
      const span = f.data.subarray(r.pos, r.pos + len);
      if (f.no === 1) {
        body = {
          case: "hello",
          value:
            body.case === "hello"
              ? mergeFromBinary(HelloSchema, body.value, span)
              : fromBinary(HelloSchema, span),
        };
      } else if (f.no === 2) {
        body = {
          case: "report",
          value:
            body.case === "report"
              ? mergeFromBinary(ReportSchema, body.value, span)
              : fromBinary(ReportSchema, span),
        };
      } else {
        body = {
          case: "directiveResult",
          value:
            body.case === "directiveResult"
              ? mergeFromBinary(DirectiveResultSchema, body.value, span)
              : fromBinary(DirectiveResultSchema, span),
        };
      }
    }
    return normalizeTheirs(create(AgentMessageSchema, { body }));
  });

// --- strict walker (the test's own reading of the protobuf encoding spec) -----

class Reader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
  ) {}
  /**
   * A length: a varint of at most 10 bytes whose low 32 bits count (bits
   * above are dropped, as protobuf C++ and protobuf-es both do).
   */
  len(): number {
    let v = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error("eof");
      if (i < 4) v += (b & 0x7f) * 2 ** (7 * i);
      else if (i === 4) v += (b & 0x0f) * 2 ** 28;
      if ((b & 0x80) === 0) return v;
    }
    throw new Error("varint too long");
  }
  /** A varint of up to 10 bytes as a number (exact enough for tags). */
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error("eof");
      v += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return v;
    }
    throw new Error("varint too long");
  }
}

const BAD = new Error("malformed");

function expectedWireType(f: DescField): number {
  if (f.fieldKind === "message" || f.fieldKind === "map") return 2;
  if (f.fieldKind === "list") return f.listKind === "message" ? 2 : -1;
  if (f.fieldKind === "enum") return 0;
  switch (f.scalar) {
    case 1: // double
    case 6: // fixed64
    case 16: // sfixed64
      return 1;
    case 2: // float
    case 7: // fixed32
    case 15: // sfixed32
      return 5;
    case 9: // string
    case 12: // bytes
      return 2;
    default:
      return 0;
  }
}

function skipUnknown(r: Reader, wt: number, no: number, depth: number): void {
  switch (wt) {
    case 0:
      r.varint();
      return;
    case 1:
      r.pos += 8;
      break;
    case 5:
      r.pos += 4;
      break;
    case 2: {
      const n = r.len();
      r.pos += n;
      break;
    }
    case 3:
      if (depth > 90) throw BAD;
      for (;;) {
        const t = r.varint();
        if (t >= 2 ** 32 || t >>> 3 === 0 || (t & 7) > 5) throw BAD;
        if ((t & 7) === 4) {
          if (t >>> 3 !== no) throw BAD;
          return;
        }
        skipUnknown(r, t & 7, t >>> 3, depth + 1);
      }
    default:
      throw BAD;
  }
  if (r.pos > r.buf.length) throw BAD;
}

/** Throws BAD unless the message at [pos, end) is well-formed for `desc`. */
function walk(desc: DescMessage, r: Reader, end: number, depth: number): void {
  while (r.pos < end) {
    const t = r.varint();
    if (t >= 2 ** 32) throw BAD;
    const no = t >>> 3;
    const wt = t & 7;
    if (no === 0 || wt > 5) throw BAD;
    const f = desc.fields.find((x) => x.number === no);
    if (f === undefined) {
      skipUnknown(r, wt, no, depth);
      continue;
    }
    if (wt !== expectedWireType(f)) throw BAD;
    if (wt === 0) r.varint();
    else if (wt === 1) r.pos += 8;
    else if (wt === 5) r.pos += 4;
    else {
      const len = r.len();
      const subEnd = r.pos + len;
      if (subEnd > r.buf.length) throw BAD;
      if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) {
        walk(f.message!, r, subEnd, depth + 1);
      } else if (f.fieldKind === "map") {
        while (r.pos < subEnd) {
          const et = r.varint();
          const eno = et >>> 3;
          const ewt = et & 7;
          const strVal = f.mapKind === "scalar" && f.scalar === 9;
          if (eno === 1 && ewt === 2) {
            const n = r.len();
            r.pos += n;
          } else if (eno === 2 && !strVal && ewt === 1) r.pos += 8;
          else if (eno === 2 && strVal && ewt === 2) {
            const n = r.len();
            r.pos += n;
          } else throw BAD;
        }
        if (r.pos !== subEnd) throw BAD;
      } else {
        r.pos = subEnd;
      }
    }
    if (r.pos > r.buf.length) throw BAD;
  }
  if (r.pos !== end) throw BAD;
}

/** "ok", or where the first malformation is: in the report/framing or only in hello/result. */
function classify(bytes: Uint8Array): "ok" | "bad-report" | "bad-other" | "bad-frame" {
  const r = new Reader(bytes, 0);
  let other = false;
  try {
    while (r.pos < bytes.length) {
      const t = r.varint();
      if (t >= 2 ** 32) return "bad-frame";
      const no = t >>> 3;
      const wt = t & 7;
      if (no === 0 || wt > 5) return "bad-frame";
      if (no < 1 || no > 3) {
        skipUnknown(r, wt, no, 1);
        continue;
      }
      if (wt !== 2) return "bad-report";
      const len = r.len();
      const end = r.pos + len;
      if (end > bytes.length) return "bad-frame";
      const desc = no === 1 ? HelloSchema : no === 2 ? ReportSchema : DirectiveResultSchema;
      try {
        walk(desc, r, end, 2);
      } catch {
        if (no === 2) return "bad-report";
        other = true;
      }
      r.pos = end;
    }
  } catch {
    return "bad-frame";
  }
  return other ? "bad-other" : "ok";
}

function checkAgainstProtobufEs(bytes: Uint8Array): void {
  const m = mine(bytes);
  const cls = classify(bytes);
  const show = () => Buffer.from(bytes).toString("hex");
  if (cls === "ok") {
    const t = theirs(bytes);
    assert.equal(m.ok, t.ok, `accept/reject differs for ${show()}: mine ${JSON.stringify(m)}`);
    if (m.ok && t.ok) assert.deepStrictEqual(m.body, t.body, show());
  } else if (cls === "bad-report") {
    assert.equal(m.ok, false, `malformed report accepted: ${show()}`);
  } else if (cls === "bad-other") {
    assert.deepStrictEqual(m, spanwise(bytes), show());
  } else {
    // Framing protobuf-es itself cannot read: connect-node refuses it before the handler.
    assert.equal(m.ok, false, show());
  }
}

// --- generators -------------------------------------------------------------------

const NAMES = ["cpu.load", "mem.used_bytes", "fs.used_ratio", "net.rx_errors_per_s", "x", ""];
const UNITS = ["ratio", "bytes", "", "count_per_second"];
const strings = fc.oneof(
  fc.constantFrom(...NAMES),
  fc.string({ maxLength: 12 }),
  fc.constantFrom("\uFEFFbom", "é€😀", "a\u0000b"),
);
const doubles = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 1, Number.NaN, Number.POSITIVE_INFINITY, 5e-324, 1e308),
);
const labelMaps = fc.oneof(
  fc.constant({}),
  fc.dictionary(fc.constantFrom("mount", "iface", "target", "", "k"), strings, { maxKeys: 3 }),
);
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.constantFrom(0n, 1n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, (1n << 64n) - 1n),
);
const i64 = fc.oneof(
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  fc.constantFrom(
    -1n,
    0n,
    1_700_000_000_000n,
    -(1n << 53n),
    -(1n << 53n) - 1n,
    1n << 53n,
    (1n << 53n) + 1n,
  ),
);
const samples = fc.record({
  name: strings,
  value: doubles,
  unit: fc.constantFrom(...UNITS),
  labels: labelMaps,
});
const probes = fc.record({
  kind: fc.integer({ min: -3, max: 7 }),
  target: strings,
  ok: fc.boolean(),
  latencyMs: doubles,
  values: fc.dictionary(fc.constantFrom("http_status", "lag_ms", ""), doubles, { maxKeys: 2 }),
  error: strings,
});
const reports = fc.record({
  sequence: u64,
  timestampUnixMs: i64,
  samples: fc.array(samples, { maxLength: 6 }),
  probes: fc.array(probes, { maxLength: 2 }),
  heartbeatOnly: fc.boolean(),
  replayed: fc.boolean(),
});
const bodies: fc.Arbitrary<MessageInitShape<typeof AgentMessageSchema>> = fc.oneof(
  { weight: 6, arbitrary: reports.map((value) => ({ body: { case: "report" as const, value } })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ componentId: strings, host: strings, samplingIntervalMs: fc.nat() })
      .map((value) => ({ body: { case: "hello" as const, value } })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ directiveId: strings, ok: fc.boolean(), message: strings })
      .map((value) => ({ body: { case: "directiveResult" as const, value } })),
  },
  { weight: 1, arbitrary: fc.constant({}) },
);
const encode = (m: MessageInitShape<typeof AgentMessageSchema>) =>
  toBinary(AgentMessageSchema, create(AgentMessageSchema, m));
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
/** One to three messages back to back: protobuf merges them (the oneof's last case wins). */
const validBytes = fc
  .array(bodies, { minLength: 1, maxLength: 3 })
  .map((ms) => concat(ms.map(encode)));

const mutations = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("flip" as const), at: fc.nat(), v: fc.nat(255) }),
    fc.record({ op: fc.constant("insert" as const), at: fc.nat(), v: fc.nat(255) }),
    fc.record({ op: fc.constant("delete" as const), at: fc.nat() }),
    fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  ),
  { minLength: 1, maxLength: 3 },
);
function mutate(
  bytes: Uint8Array,
  ops: { op: "flip" | "insert" | "delete" | "truncate"; at: number; v?: number }[],
) {
  let b = [...bytes];
  for (const o of ops) {
    const at = b.length === 0 ? 0 : o.at % (b.length + 1);
    if (o.op === "flip" && at < b.length) b[at] = o.v!;
    else if (o.op === "insert") b.splice(at, 0, o.v!);
    else if (o.op === "delete") b.splice(at, 1);
    else if (o.op === "truncate") b = b.slice(0, at);
  }
  return new Uint8Array(b);
}

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const varintHex = (v: number) => {
  const out: number[] = [];
  let n = v;
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out).toString("hex");
};
/** AgentMessage{report: <payload hex>}. */
const rep = (payload: string) => {
  const p = hex(payload);
  const len: number[] = [];
  let n = p.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return concat([new Uint8Array([0x12, ...len]), p]);
};

describe("ingest: hand-written AgentMessage decoder", () => {
  it("decodes random valid messages (and merged concatenations) exactly like protobuf-es", () => {
    fc.assert(
      fc.property(validBytes, (bytes) => {
        const m = mine(bytes);
        const t = theirs(bytes);
        // Invalid UTF-8 cannot come out of toBinary; both must accept.
        assert.ok(t.ok, JSON.stringify(t));
        assert.deepStrictEqual(m, t);
      }),
      { numRuns: 3000 },
    );
  });

  it("on mutated and random bytes: same as protobuf-es where well-formed, rejected where not", () => {
    fc.assert(
      fc.property(validBytes, mutations, (bytes, ops) =>
        checkAgainstProtobufEs(mutate(bytes, ops)),
      ),
      { numRuns: 6000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (tail) =>
        checkAgainstProtobufEs(concat([new Uint8Array([0x12, tail.length]), tail])),
      ),
      { numRuns: 3000 },
    );
  });

  it("edge cases: defaults, non-minimal varints, unknown fields, order, repeats, map entries", () => {
    // Builders: t(no, wt) a tag, ld(no, ...parts) a length-delimited field.
    const t = (no: number, wt: number) => varintHex((no << 3) | wt);
    const ld = (no: number, ...parts: string[]) => {
      const body = parts.join("").replace(/\s+/g, "");
      return `${t(no, 2)}${varintHex(body.length / 2)}${body}`;
    };
    const name = (n: string) => ld(1, Buffer.from(n).toString("hex"));
    const dbl = (no: number, v: number) => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(v);
      return `${t(no, 1)}${b.toString("hex")}`;
    };
    const entry = (no: number, ...parts: string[]) => ld(no, ...parts);
    const str = (no: number, v: string) => ld(no, Buffer.from(v).toString("hex"));
    const cases: [string, Uint8Array][] = [
      ["empty message", new Uint8Array(0)],
      ["empty report", rep("")],
      ["heartbeat", rep("0801 10e807 2801")],
      ["zero value omitted", rep(ld(3, name("cpu.load"), str(3, "ratio")))],
      ["value before name", rep(ld(3, dbl(2, 2), name("cpu.load")))],
      ["value twice (last wins)", rep(ld(3, name("x"), dbl(2, 1), dbl(2, 2)))],
      ["name twice", rep(ld(3, name("a"), name("b"), str(3, "")))],
      ["non-minimal length and tag", rep("1a8400 8a00 0178 ")],
      ["non-minimal sequence", rep("08 ff80808000")],
      [
        "unknown varint, i64, len, i32 fields",
        rep("38 05 41 0102030405060708 4a 02 aabb 55 01020304"),
      ],
      ["unknown group", rep("3b 0801 3c 0807")],
      ["unknown fields inside a sample", rep(ld(3, name("x"), "38 07", ld(8, "6162")))],
      ["map entry without key", rep(ld(3, name("x"), entry(4, str(2, "ab"))))],
      ["map entry without value", rep(ld(3, name("x"), entry(4, str(1, "ab"))))],
      ["empty map entry", rep(ld(3, name("x"), entry(4)))],
      [
        "map entry key twice",
        rep(ld(3, name("x"), entry(4, str(1, "ab"), str(1, "cd"), str(2, "")))),
      ],
      ["map entry value before key", rep(ld(3, name("x"), entry(4, str(2, "v"), str(1, "k"))))],
      ["map entry with field 3", rep(ld(3, name("x"), entry(4, str(1, "a"), "1801")))],
      [
        "map key repeated across entries",
        rep(
          ld(3, name("x"), entry(4, str(1, "a"), str(2, "1")), entry(4, str(1, "a"), str(2, "2"))),
        ),
      ],
      ["__proto__ label key", rep(ld(3, name("x"), entry(4, str(1, "__proto__"), str(2, ""))))],
      ["sequence 2^64-1", rep("08 ffffffffffffffffff01")],
      ["sequence 2^53", rep("08 80808080808080 10")],
      ["sequence 2^53+1", rep("08 81808080808080 10")],
      ["negative timestamp", rep("10 ffffffffffffffffff01")],
      ["11-byte varint", rep("08 ffffffffffffffffffff01")],
      ["invalid UTF-8 name", rep(ld(3, ld(1, "ff")))],
      ["BOM in a name", rep(ld(3, ld(1, "efbbbf78"), dbl(2, 1)))],
      ["truncated double", rep(ld(3, name("x"), "11 0000"))],
      ["sample overruns its length", rep("1a03 0a05 78787878 78")],
      ["sequence with wire type 2", rep("0a01 05")],
      ["samples with wire type 0", rep("18 05")],
      ["report field with wire type 0", new Uint8Array([0x10, 0x05])],
      ["report field with wire type 1", hex("11 0000000000000000")],
      [
        "report repeated (merged)",
        concat([rep(`0801 ${ld(3, name("x"))}`), rep(`1002 ${ld(3, name("y"))}`)]),
      ],
      ["report, hello, report", concat([rep("0801"), hex("0a00"), rep("0802")])],
      ["hello, report, empty hello", concat([hex(ld(1, str(1, "c1"))), rep("0801"), hex("0a00")])],
      ["directive result merged", hex(`${ld(3, str(1, "d1"))}${ld(3, "1801")}`)],
      ["unknown top-level fields", concat([hex("20 01 2a 00 3d 01020304"), rep("0801")])],
      ["end group without start", hex("0c")],
      ["field number 0", hex("02 00")],
      [
        "probe with values",
        rep(ld(4, "0801", str(2, "t"), "1801", dbl(4, 1), entry(5, str(1, "k"), dbl(2, 0)))),
      ],
      ["probe kind negative", rep(ld(4, "08 ffffffffffffffffff01"))],
      ["probe values entry with a string value", rep(ld(4, entry(5, str(1, "k"), str(2, "abcd"))))],
    ];
    for (const [what, bytes] of cases) {
      try {
        // Twice: the second decode of a sample comes from the intern table.
        checkAgainstProtobufEs(bytes);
        checkAgainstProtobufEs(bytes);
      } catch (err) {
        throw new Error(`${what}: ${String(err)}`);
      }
    }
    // Same key bytes, another first value: a later value field still wins.
    for (const first of [1, 3]) {
      const b = rep(ld(3, name("z"), dbl(2, first), dbl(2, 2)));
      assert.equal(classify(b), "ok");
      checkAgainstProtobufEs(b);
      checkAgainstProtobufEs(b);
    }
    // Outcomes that matter beyond "same as protobuf-es".
    assert.equal(mine(rep(ld(3, name("x"), "11 0000"))).ok, false, "truncated double");
    assert.equal(mine(rep("0a01 05")).ok, false, "wrong wire type");
    assert.equal(
      mine(rep(ld(3, name("x"), entry(4, str(1, "a"), "1801")))).ok,
      false,
      "entry field 3",
    );
    assert.equal(mine(rep("1a03 0a05 78787878 78")).ok, false, "sample overrun");
    for (const [what, b] of cases) {
      const c = classify(b);
      if (
        what.startsWith("map entry with field 3") ||
        what.includes("wire type") ||
        what.includes("overrun")
      ) {
        assert.notEqual(c, "ok", what);
      }
    }
  });

  it("interned samples keep their own values, zero values and labels, and the table stays bounded", () => {
    const msg = (value: number, mount: string) =>
      encode({
        body: {
          case: "report",
          value: {
            sequence: 1n,
            samples: [
              { name: "fs.free_bytes", value, unit: "bytes", labels: { mount } },
              { name: "cpu.load", value: 0, unit: "ratio" },
            ],
          },
        },
      });
    const decode = (b: Uint8Array) => {
      const d = decodeAgentFrame(
        fromBinary(agentMessageFrameSchema, b) as unknown as AgentMessageFrame,
      );
      assert.equal(d.case, "report");
      return d.value as IngestReport;
    };
    const a = decode(msg(1.5, "/"));
    const hits = wireStats.identHits;
    const b = decode(msg(-2.25, "/"));
    const c = decode(msg(7, "/data"));
    assert.ok(wireStats.identHits >= hits + 3, "second decode hits the table");
    assert.deepStrictEqual(
      [a, b, c].map((r) => r.samples.map((s) => [s.name, s.value, s.unit, { ...s.labels }])),
      [
        [
          ["fs.free_bytes", 1.5, "bytes", { mount: "/" }],
          ["cpu.load", 0, "ratio", {}],
        ],
        [
          ["fs.free_bytes", -2.25, "bytes", { mount: "/" }],
          ["cpu.load", 0, "ratio", {}],
        ],
        [
          ["fs.free_bytes", 7, "bytes", { mount: "/data" }],
          ["cpu.load", 0, "ratio", {}],
        ],
      ],
    );
    // Shared labels objects are frozen: a consumer cannot change another report's labels.
    assert.equal(a.samples[0]!.labels, b.samples[0]!.labels);
    assert.ok(Object.isFrozen(a.samples[0]!.labels));
    const clears = wireStats.identClears;
    for (let i = 0; i <= SAMPLE_IDENTS_MAX; i++) decode(msg(i, `/m${i}`));
    assert.ok(wireStats.identClears > clears, "the table is cleared when full");
    assert.equal(decode(msg(3, "/")).samples[0]!.value, 3);
  });
});
