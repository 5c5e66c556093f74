/**
 * Hand-written decoder for the hot path of the agent stream: AgentMessage
 * with a Report (samples and heartbeats), decoded straight from the bytes
 * into what ingest stores, instead of protobuf-es's generic reflective
 * decoder (~36 µs and ~150 objects for a 30-sample report; this: a few µs,
 * one object per sample).
 *
 * How the bytes get here without changing the wire protocol or the listener:
 * connect-node decodes every request message with the method's input
 * descriptor. `agentServiceFrames` is AgentService with the Connect method's
 * input replaced by `AgentMessageFrame`, a server-side view that declares
 * none of AgentMessage's field numbers: protobuf-es then keeps fields 1–3 as
 * ordered unknown fields (raw bytes, no decoding), and `decodeAgentFrame`
 * decodes them here. Same method path, same wire bytes; reflection still
 * serves agent.proto (it reads the service's file, which is unchanged). For
 * the JSON codecs the frame declares the real fields under JSON names only
 * (field numbers no agent sends), so a JSON stream decodes as before.
 *
 * Contract, checked by test/unit/ingest/wire.test.ts against protobuf-es on
 * random and edge-case inputs:
 * - Input protobuf-es decodes as a well-formed AgentMessage (every nested
 *   message ends exactly where its length says, every known field has its
 *   type's wire type, map entries hold only key and value) gives the same
 *   values as `fromBinary(AgentMessageSchema)` — merges of repeated message
 *   fields, oneof last-wins, defaults, unknown fields skipped, strict UTF-8.
 * - Everything else is rejected (throws), including two inputs protobuf-es
 *   accepts while the protobuf encoding spec does not: a nested message whose
 *   last field runs past its length (protobuf-es reads on into the parent),
 *   and a known field with another wire type (protobuf-es reads it as its
 *   declared type anyway, i.e. garbage). Reports stay all-or-nothing.
 * - Hello and DirectiveResult (once per stream, rarely) are decoded by
 *   protobuf-es from their exact byte span.
 * - One corner of the frame: a binary message carrying one of the JSON-only
 *   field numbers (536870001–536870003, which AgentMessage does not have)
 *   has that field parsed as its message type (and refused by connect-node
 *   if it does not parse) instead of skipped; the body is still taken from
 *   fields 1–3 only.
 *
 * Samples are interned: the bytes of a sample without its 8 value bytes
 * (name, unit, labels) are looked up in a bounded table, so a fleet's few
 * hundred distinct series cost no UTF-8 decoding, no label objects and no
 * strings per report; name, unit and labels objects are shared (labels
 * frozen).
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescService,
  fromBinary,
  mergeFromBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  AgentService,
  type DirectiveResult,
  DirectiveResultSchema,
  file_understudy_agent_v1_agent,
  type Hello,
  HelloSchema,
  type Report,
} from "../../../proto/gen/understudy/agent/v1/agent_pb.ts";
import { NO_LABELS } from "./series-store.ts";

/** A sample as ingest stores it (wire MetricSample, or derived from probes/arrivals). */
export interface IngestSample {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** RoleProbe as decoded (same fields and values as the protobuf-es message). */
export interface IngestProbe {
  kind: number;
  target: string;
  ok: boolean;
  latencyMs: number;
  values: Record<string, number>;
  error: string;
}

/**
 * Report as ingest handles it, from either decoder. 64-bit fields are
 * numbers, exact below 2^53; larger (or, for the timestamp, negative beyond
 * -2^53) values are kept exact in the `*Big` field for the error message
 * (validation rejects them).
 */
export interface IngestReport {
  sequence: number;
  sequenceBig: bigint | undefined;
  timestampUnixMs: number;
  timestampBig: bigint | undefined;
  /** Owned by ingest: derived samples are appended after the wire samples. */
  samples: IngestSample[];
  probes: IngestProbe[];
  heartbeatOnly: boolean;
  replayed: boolean;
}

export type DecodedBody =
  | { readonly case: "report"; readonly value: IngestReport }
  | { readonly case: "hello"; readonly value: Hello }
  | { readonly case: "directiveResult"; readonly value: DirectiveResult }
  | { readonly case: undefined; readonly value?: undefined };

/** A malformed AgentMessage (the stream ends with INVALID_ARGUMENT). */
export class WireError extends Error {}

const FRAME_FILE = "understudy/agent/v1/ingest_frame.proto";
const FRAME_TYPE = "understudy.agent.v1.ingest.AgentMessageFrame";
/** Field numbers of the JSON-only view (no agent sends these). */
const JSON_FIELD_BASE = 536_870_000;

const frameRegistry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: FRAME_FILE,
    package: "understudy.agent.v1.ingest",
    dependency: ["understudy/agent/v1/agent.proto"],
    syntax: "proto3",
    messageType: [
      {
        name: "AgentMessageFrame",
        field: [
          ["hello", ".understudy.agent.v1.Hello"],
          ["report", ".understudy.agent.v1.Report"],
          ["directive_result", ".understudy.agent.v1.DirectiveResult"],
        ].map(([name, typeName], i) => ({
          name,
          number: JSON_FIELD_BASE + i + 1,
          label: 1, // LABEL_OPTIONAL
          type: 11, // TYPE_MESSAGE
          typeName,
          oneofIndex: 0,
        })),
        oneofDecl: [{ name: "json_body" }],
      },
    ],
  }),
  (name) =>
    name === "understudy/agent/v1/agent.proto" ? file_understudy_agent_v1_agent : undefined,
);

export const agentMessageFrameSchema: DescMessage = (() => {
  const d = frameRegistry.getMessage(FRAME_TYPE);
  if (d === undefined) throw new Error(`${FRAME_TYPE} missing from its registry`);
  return d;
})();

/** What connect-node hands the handler with `agentServiceFrames`. */
export interface AgentMessageFrame {
  readonly $typeName: typeof FRAME_TYPE;
  readonly $unknown?: readonly { no: number; wireType: number; data: Uint8Array }[];
  /** Set only by the JSON codecs. */
  readonly jsonBody:
    | { case: "hello"; value: Hello }
    | { case: "report"; value: Report }
    | { case: "directiveResult"; value: DirectiveResult }
    | { case: undefined; value?: undefined };
}

export function isAgentMessageFrame(m: { $typeName: string }): m is AgentMessageFrame {
  return m.$typeName === FRAME_TYPE;
}

/**
 * AgentService whose Connect method takes frames: serve this descriptor with
 * the same implementation (it accepts both AgentMessage and frames).
 */
export const agentServiceFrames: DescService = (() => {
  const connect = AgentService.method.connect;
  const method = { ...connect, input: agentMessageFrameSchema };
  return {
    ...AgentService,
    methods: [method],
    method: { connect: method },
  } as unknown as DescService;
})();

// --- reader -----------------------------------------------------------------
// A port of protobuf-es's BinaryReader (wire/binary-encoding.js, varint.js)
// with the same bounds and varint semantics, without per-call allocations.

const WT_VARINT = 0;
const WT_BIT64 = 1;
const WT_LEN = 2;
const WT_START_GROUP = 3;
const WT_END_GROUP = 4;
const WT_BIT32 = 5;

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/** Results of the last varint64 read (lo, hi as int32 like protobuf-es). */
let vLo = 0;
let vHi = 0;
/** Results of the last tag read. */
let tagNo = 0;
let tagWt = 0;

class Reader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  len = 0;

  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.pos = 0;
    this.len = buf.length;
  }

  assertBounds(): void {
    if (this.pos > this.len) throw new RangeError("premature EOF");
  }

  uint32(): number {
    const buf = this.buf;
    let b = buf[this.pos++]!;
    let result = b & 0x7f;
    if ((b & 0x80) === 0) {
      this.assertBounds();
      return result;
    }
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 7;
    if ((b & 0x80) === 0) {
      this.assertBounds();
      return result;
    }
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 14;
    if ((b & 0x80) === 0) {
      this.assertBounds();
      return result;
    }
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 21;
    if ((b & 0x80) === 0) {
      this.assertBounds();
      return result;
    }
    b = buf[this.pos++]!;
    result |= (b & 0x0f) << 28;
    for (let readBytes = 5; (b & 0x80) !== 0 && readBytes < 10; readBytes++) b = buf[this.pos++]!;
    if ((b & 0x80) !== 0) throw new Error("invalid varint");
    this.assertBounds();
    return result >>> 0;
  }

  /** Sets vLo/vHi. */
  varint64(): void {
    const buf = this.buf;
    let lowBits = 0;
    let highBits = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const b = buf[this.pos++]!;
      lowBits |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        this.assertBounds();
        vLo = lowBits;
        vHi = highBits;
        return;
      }
    }
    const middleByte = buf[this.pos++]!;
    lowBits |= (middleByte & 0x0f) << 28;
    highBits = (middleByte & 0x70) >> 4;
    if ((middleByte & 0x80) === 0) {
      this.assertBounds();
      vLo = lowBits;
      vHi = highBits;
      return;
    }
    for (let shift = 3; shift <= 31; shift += 7) {
      const b = buf[this.pos++]!;
      highBits |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        this.assertBounds();
        vLo = lowBits;
        vHi = highBits;
        return;
      }
    }
    throw new Error("invalid varint");
  }

  /** Returns the field number; sets tagNo/tagWt. */
  tag(): number {
    const start = this.pos;
    const tag = this.uint32();
    const bytesRead = this.pos - start;
    if (bytesRead > 5 || (bytesRead === 5 && this.buf[this.pos - 1]! > 0x0f)) {
      throw new Error("illegal tag: varint overflows uint32");
    }
    tagNo = tag >>> 3;
    tagWt = tag & 7;
    if (tagNo <= 0 || tagWt > 5) {
      throw new Error(`illegal tag: field no ${tagNo} wire type ${tagWt}`);
    }
    return tagNo;
  }

  skip(wireType: number, fieldNo: number, recursionLimit: number): void {
    switch (wireType) {
      case WT_VARINT: {
        // Stricter than protobuf-es, which skips varints of any length: the
        // encoding allows at most 10 bytes.
        const start = this.pos;
        while (this.buf[this.pos++]! & 0x80) {
          if (this.pos - start >= 10)
            throw new WireError("unknown varint field longer than 10 bytes");
        }
        break;
      }
      case WT_BIT64:
        this.pos += 8;
        break;
      case WT_BIT32:
        this.pos += 4;
        break;
      case WT_LEN: {
        const len = this.uint32();
        this.pos += len;
        break;
      }
      case WT_START_GROUP:
        if (recursionLimit <= 0) throw new Error("maximum recursion depth reached");
        for (;;) {
          const fn = this.tag();
          const wt = tagWt;
          if (wt === WT_END_GROUP) {
            if (fn !== fieldNo) throw new Error("invalid end group tag");
            break;
          }
          this.skip(wt, fn, recursionLimit - 1);
        }
        break;
      default:
        throw new Error(`cant skip wire type ${wireType}`);
    }
    this.assertBounds();
  }

  double(): number {
    const p = this.pos;
    if (p + 8 > this.len) throw new RangeError("premature EOF");
    const buf = this.buf;
    for (let i = 0; i < 8; i++) f64Bytes[i] = buf[p + i]!;
    this.pos = p + 8;
    return f64[0]!;
  }

  bool(): boolean {
    this.varint64();
    return vLo !== 0 || vHi !== 0;
  }

  /** Start of a length-delimited payload; returns its end (not bounds-checked, like protobuf-es). */
  lenEnd(): number {
    const len = this.uint32();
    return this.pos + len;
  }

  string(): string {
    const len = this.uint32();
    const start = this.pos;
    this.pos += len;
    this.assertBounds();
    return utf8Strict.decode(this.buf.subarray(start, start + len));
  }
}

const TWO_POW_32 = 4294967296;
const SAFE_HI = 0x200000; // 2^21: hi * 2^32 + lo stays below 2^53

function uint64Number(): number {
  const hi = vHi >>> 0;
  return hi < SAFE_HI ? hi * TWO_POW_32 + (vLo >>> 0) : Number.NaN;
}

function uint64Big(): bigint {
  return BigInt.asUintN(64, (BigInt(vHi >>> 0) << 32n) | BigInt(vLo >>> 0));
}

function int64Number(): number {
  return vHi < SAFE_HI && vHi >= -SAFE_HI ? vHi * TWO_POW_32 + (vLo >>> 0) : Number.NaN;
}

function int64Big(): bigint {
  return BigInt.asIntN(64, (BigInt(vHi) << 32n) | BigInt(vLo >>> 0));
}

const expectWireType = (r: Reader, want: number, field: string): void => {
  if (tagWt !== want) {
    throw new WireError(
      `${field} (field ${tagNo}) has wire type ${tagWt}, expected ${want} at byte ${r.pos}`,
    );
  }
};

const expectEnd = (r: Reader, end: number, what: string): void => {
  if (r.pos !== end) {
    throw new WireError(`${what} runs ${r.pos - end} bytes past its length`);
  }
};

// --- sample interning ---------------------------------------------------------

/** Decoded identity of a sample's bytes without its value. */
class SampleIdent {
  next: SampleIdent | undefined = undefined;
  constructor(
    readonly hash: number,
    /** Key bytes: the sample's bytes without the 8 value bytes at valueOffset (if >= 0). */
    readonly key: Uint8Array,
    /** Offset of the value's 8 bytes in the sample, or -1 (value is constValue). */
    readonly valueOffset: number,
    readonly constValue: number,
    readonly name: string,
    readonly unit: string,
    readonly labels: Readonly<Record<string, string>>,
  ) {}
}

const IDENT_BUCKETS = 4096;
/** Entries kept before the table is cleared and refilled (bounds memory under label churn). */
export const SAMPLE_IDENTS_MAX = 16_384;
/** Samples whose key is longer are never interned (decoded every time). */
const IDENT_KEY_BYTES_MAX = 512;
const identTable: (SampleIdent | undefined)[] = new Array(IDENT_BUCKETS).fill(undefined);
let identCount = 0;
export const wireStats = { identHits: 0, identMisses: 0, identClears: 0 };

function hashRange(h: number, buf: Uint8Array, from: number, to: number): number {
  let x = h;
  for (let i = from; i < to; i++) {
    x ^= buf[i]!;
    x = Math.imul(x, 0x01000193);
  }
  return x;
}

function keyEquals(
  key: Uint8Array,
  buf: Uint8Array,
  from: number,
  to: number,
  k0: number,
): boolean {
  for (let i = from; i < to; i++) if (key[k0 + i - from] !== buf[i]) return false;
  return true;
}

/** Layout of the sample at [start, end): where its value sits if it is right after the name. */
function valueOffsetOf(buf: Uint8Array, start: number, end: number): number {
  // Canonical encoders (protobuf-es, grpc, Go) write name (1), value (2), unit
  // (3), labels (4) in order; a zero value is omitted.
  let p = start;
  if (buf[p] === 0x0a) {
    const l = buf[p + 1]!;
    if (l >= 0x80) return -1;
    p += 2 + l;
  }
  return buf[p] === 0x11 && p + 9 <= end ? p + 1 - start : -1;
}

function lookupIdent(
  buf: Uint8Array,
  start: number,
  end: number,
  vo: number,
): SampleIdent | undefined {
  let h = 0x811c9dc5 ^ (vo + 1);
  let keyLen: number;
  if (vo >= 0) {
    h = hashRange(h, buf, start, start + vo);
    h = hashRange(h, buf, start + vo + 8, end);
    keyLen = end - start - 8;
  } else {
    h = hashRange(h, buf, start, end);
    keyLen = end - start;
  }
  for (let e = identTable[h & (IDENT_BUCKETS - 1)]; e !== undefined; e = e.next) {
    if (e.hash !== h || e.valueOffset !== vo || e.key.length !== keyLen) continue;
    if (vo >= 0) {
      if (!keyEquals(e.key, buf, start, start + vo, 0)) continue;
      if (!keyEquals(e.key, buf, start + vo + 8, end, vo)) continue;
    } else if (!keyEquals(e.key, buf, start, end, 0)) continue;
    return e;
  }
  return undefined;
}

function insertIdent(
  buf: Uint8Array,
  start: number,
  end: number,
  vo: number,
  constValue: number,
  s: IngestSample,
): void {
  const keyLen = vo >= 0 ? end - start - 8 : end - start;
  if (keyLen > IDENT_KEY_BYTES_MAX) return;
  if (identCount >= SAMPLE_IDENTS_MAX) {
    identTable.fill(undefined);
    identCount = 0;
    wireStats.identClears++;
  }
  const key = new Uint8Array(keyLen);
  let h = 0x811c9dc5 ^ (vo + 1);
  if (vo >= 0) {
    key.set(buf.subarray(start, start + vo), 0);
    key.set(buf.subarray(start + vo + 8, end), vo);
    h = hashRange(h, buf, start, start + vo);
    h = hashRange(h, buf, start + vo + 8, end);
  } else {
    key.set(buf.subarray(start, end), 0);
    h = hashRange(h, buf, start, end);
  }
  const labels = hasOwnKeys(s.labels) ? Object.freeze(s.labels) : NO_LABELS;
  const e = new SampleIdent(h, key, vo, constValue, s.name, s.unit, labels);
  const b = h & (IDENT_BUCKETS - 1);
  e.next = identTable[b];
  identTable[b] = e;
  identCount++;
}

function hasOwnKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

// --- messages -------------------------------------------------------------------

/** Recursion budget left for skipping groups at a nesting depth (protobuf-es: 100 − depth). */
const budget = (depth: number) => 100 - depth;

/** Position of the value field that set the last decoded sample's value (-1: none). */
let lastValuePos = -1;

/** Key and value of the last map entry read (defaults when absent, like protobuf-es). */
let entryKey = "";
let entryText = "";
let entryNumber = 0;

/**
 * One map entry (map<string, string> or map<string, double>). Stricter than
 * protobuf-es, which does not skip fields other than key (1) and value (2)
 * but reads on from their payload as if it were the next tag.
 */
function readMapEntry(r: Reader, field: string, doubleValue: boolean): void {
  const end = r.lenEnd();
  entryKey = "";
  entryText = "";
  entryNumber = 0;
  while (r.pos < end) {
    const no = r.tag();
    if (no === 1) {
      expectWireType(r, WT_LEN, `${field} key`);
      entryKey = r.string();
    } else if (no === 2 && doubleValue) {
      expectWireType(r, WT_BIT64, `${field} value`);
      entryNumber = r.double();
    } else if (no === 2) {
      expectWireType(r, WT_LEN, `${field} value`);
      entryText = r.string();
    } else {
      throw new WireError(`${field} entry has field ${no} (only 1 and 2)`);
    }
  }
  expectEnd(r, end, `${field} entry`);
}

/** General MetricSample decode of [r.pos, end) (strict). */
function decodeSample(r: Reader, end: number): IngestSample {
  let name = "";
  let value = 0;
  let unit = "";
  let labels: Record<string, string> | undefined;
  lastValuePos = -1;
  while (r.pos < end) {
    switch (r.tag()) {
      case 1:
        expectWireType(r, WT_LEN, "MetricSample.name");
        name = r.string();
        break;
      case 2:
        expectWireType(r, WT_BIT64, "MetricSample.value");
        lastValuePos = r.pos;
        value = r.double();
        break;
      case 3:
        expectWireType(r, WT_LEN, "MetricSample.unit");
        unit = r.string();
        break;
      case 4:
        expectWireType(r, WT_LEN, "MetricSample.labels");
        readMapEntry(r, "MetricSample.labels", false);
        labels ??= {};
        labels[entryKey] = entryText;
        break;
      default:
        r.skip(tagWt, tagNo, budget(3));
    }
  }
  expectEnd(r, end, "MetricSample");
  return { name, value, unit, labels: labels ?? NO_LABELS };
}

function decodeProbe(r: Reader, end: number): IngestProbe {
  const p: IngestProbe = { kind: 0, target: "", ok: false, latencyMs: 0, values: {}, error: "" };
  while (r.pos < end) {
    switch (r.tag()) {
      case 1:
        expectWireType(r, WT_VARINT, "RoleProbe.kind");
        p.kind = r.uint32() | 0;
        break;
      case 2:
        expectWireType(r, WT_LEN, "RoleProbe.target");
        p.target = r.string();
        break;
      case 3:
        expectWireType(r, WT_VARINT, "RoleProbe.ok");
        p.ok = r.bool();
        break;
      case 4:
        expectWireType(r, WT_BIT64, "RoleProbe.latency_ms");
        p.latencyMs = r.double();
        break;
      case 5:
        expectWireType(r, WT_LEN, "RoleProbe.values");
        readMapEntry(r, "RoleProbe.values", true);
        p.values[entryKey] = entryNumber;
        break;
      case 6:
        expectWireType(r, WT_LEN, "RoleProbe.error");
        p.error = r.string();
        break;
      default:
        r.skip(tagWt, tagNo, budget(3));
    }
  }
  expectEnd(r, end, "RoleProbe");
  return p;
}

/** Shared by reports without probes (most); replaced by a fresh array on the first probe. */
const NO_PROBES = Object.freeze([]) as unknown as IngestProbe[];

export function emptyIngestReport(): IngestReport {
  return {
    sequence: 0,
    sequenceBig: undefined,
    timestampUnixMs: 0,
    timestampBig: undefined,
    samples: [],
    probes: NO_PROBES,
    heartbeatOnly: false,
    replayed: false,
  };
}

/** Decodes a Report's fields at [r.pos, end) into `out` (merging, like protobuf-es). */
function decodeReportInto(r: Reader, end: number, out: IngestReport): void {
  const buf = r.buf;
  while (r.pos < end) {
    switch (r.tag()) {
      case 1:
        expectWireType(r, WT_VARINT, "Report.sequence");
        r.varint64();
        out.sequence = uint64Number();
        out.sequenceBig = Number.isNaN(out.sequence) ? uint64Big() : undefined;
        break;
      case 2:
        expectWireType(r, WT_VARINT, "Report.timestamp_unix_ms");
        r.varint64();
        out.timestampUnixMs = int64Number();
        out.timestampBig = Number.isNaN(out.timestampUnixMs) ? int64Big() : undefined;
        break;
      case 3: {
        expectWireType(r, WT_LEN, "Report.samples");
        const sEnd = r.lenEnd();
        const start = r.pos;
        if (sEnd <= r.len) {
          const vo = valueOffsetOf(buf, start, sEnd);
          const e = lookupIdent(buf, start, sEnd, vo);
          if (e !== undefined) {
            wireStats.identHits++;
            let value = e.constValue;
            if (vo >= 0 && e.valueOffset >= 0) {
              r.pos = start + vo;
              value = r.double();
            }
            r.pos = sEnd;
            out.samples.push({ name: e.name, value, unit: e.unit, labels: e.labels });
            break;
          }
          wireStats.identMisses++;
          const s = decodeSample(r, sEnd);
          // The value comes from the bytes at vo only when the last value
          // field was there; otherwise it is fixed by the key bytes.
          const fromVo = vo >= 0 && lastValuePos === start + vo;
          insertIdent(buf, start, sEnd, fromVo ? vo : -1, fromVo ? 0 : s.value, s);
          out.samples.push(s);
          break;
        }
        out.samples.push(decodeSample(r, sEnd));
        break;
      }
      case 4: {
        expectWireType(r, WT_LEN, "Report.probes");
        const pEnd = r.lenEnd();
        if (out.probes === NO_PROBES) out.probes = [];
        out.probes.push(decodeProbe(r, pEnd));
        break;
      }
      case 5:
        expectWireType(r, WT_VARINT, "Report.heartbeat_only");
        out.heartbeatOnly = r.bool();
        break;
      case 6:
        expectWireType(r, WT_VARINT, "Report.replayed");
        out.replayed = r.bool();
        break;
      default:
        r.skip(tagWt, tagNo, budget(2));
    }
  }
  expectEnd(r, end, "Report");
}

const reader = new Reader();

/**
 * Decodes the Report payload of an AgentMessage (the bytes inside its
 * length prefix), merging into `into` when given. Throws on malformed input.
 */
export function decodeReport(payload: Uint8Array, into?: IngestReport): IngestReport {
  const out = into ?? emptyIngestReport();
  reader.reset(payload);
  decodeReportInto(reader, payload.length, out);
  return out;
}

/** The payload of a length-delimited unknown field (its data includes the length prefix). */
function payloadOf(data: Uint8Array): Uint8Array {
  reader.reset(data);
  const end = reader.lenEnd();
  return data.subarray(reader.pos, end);
}

const BODY_FIELDS = [
  "",
  "AgentMessage.hello",
  "AgentMessage.report",
  "AgentMessage.directive_result",
];

/**
 * The body of a binary frame, with AgentMessage's semantics: the last of
 * hello/report/directive_result wins, and repeated occurrences of the same
 * one merge. Throws on malformed input.
 */
export function decodeAgentFrame(frame: AgentMessageFrame): DecodedBody {
  let body: DecodedBody = { case: undefined };
  const fields = frame.$unknown;
  if (fields === undefined) return body;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.no < 1 || f.no > 3) {
      // Unknown fields protobuf-es skipped leniently get the strict skip.
      if (f.wireType === WT_VARINT && f.data.length > 10) {
        throw new WireError(`field ${f.no}: varint longer than 10 bytes`);
      }
      if (f.wireType === WT_START_GROUP) {
        reader.reset(f.data);
        reader.skip(WT_START_GROUP, f.no, budget(1));
      }
      continue;
    }
    if (f.wireType !== WT_LEN) {
      throw new WireError(
        `${BODY_FIELDS[f.no]} (field ${f.no}) has wire type ${f.wireType}, expected ${WT_LEN}`,
      );
    }
    const payload = payloadOf(f.data);
    if (f.no === 2) {
      body = {
        case: "report",
        value: decodeReport(payload, body.case === "report" ? body.value : undefined),
      };
    } else if (f.no === 1) {
      body = {
        case: "hello",
        value:
          body.case === "hello"
            ? mergeFromBinary(HelloSchema, body.value, payload)
            : fromBinary(HelloSchema, payload),
      };
    } else {
      body = {
        case: "directiveResult",
        value:
          body.case === "directiveResult"
            ? mergeFromBinary(DirectiveResultSchema, body.value, payload)
            : fromBinary(DirectiveResultSchema, payload),
      };
    }
  }
  return body;
}

/** A protobuf-es Report (classic registration, JSON codecs) as ingest handles it. */
export function fromProtoReport(r: Report): IngestReport {
  const big = 1n << 53n;
  const seqSafe = r.sequence < big;
  const tsSafe = r.timestampUnixMs < big && r.timestampUnixMs > -big;
  return {
    sequence: seqSafe ? Number(r.sequence) : Number.NaN,
    sequenceBig: seqSafe ? undefined : r.sequence,
    timestampUnixMs: tsSafe ? Number(r.timestampUnixMs) : Number.NaN,
    timestampBig: tsSafe ? undefined : r.timestampUnixMs,
    samples: r.samples.slice(),
    probes: r.probes,
    heartbeatOnly: r.heartbeatOnly,
    replayed: r.replayed,
  };
}
