/**
 * The predictor's model: everything a coordinator needs to predict exactly as
 * the leader does. It is committed through Raft as bytes, so serialisation is
 * deterministic (same model, same bytes, on every platform) and versioned.
 *
 * Byte format (little-endian), version 1:
 *   "USPM"  magic                      u16 format version (1)
 *   u16 feature-set version            u32 dim (feature count)
 *   f64 horizonMs                      f64 trainedAtMs
 *   dim × (u16 length, UTF-8 name)     feature names, in vector order
 *   dim × f64 mean, dim × f64 scale    standardiser
 *   dim × f64 weights, f64 bias        logistic regression
 *   f64 positiveWeight                 class weight for online updates
 *   f64 × 4 stack                      bias, stability, logistic, trees
 *   f64 default threshold, u16 n, n × (u16 length, UTF-8 role, f64 threshold), roles sorted
 *   f64 gbt base margin, u32 trees, per tree: u16 nodes, per node
 *       (i32 feature, f64 threshold, i32 left, i32 right, f64 value)
 *   u32 CRC-32 of all preceding bytes
 */
import type { GbtModel, GbtTree } from "./gbt.ts";
import type { LogisticModel, Standardizer } from "./logistic.ts";

export const MODEL_FORMAT_VERSION = 1;
const MAGIC = [0x55, 0x53, 0x50, 0x4d]; // "USPM"
const MODEL_BYTES_MAX = 64 * 1024 * 1024;

/** How the three model outputs combine into a log-odds (Platt-style, fitted on held-out data). */
export interface StackWeights {
  readonly bias: number;
  /** Multiplies (100 - stability) / 100. */
  readonly stability: number;
  readonly logistic: number;
  readonly trees: number;
}

export interface Thresholds {
  readonly default: number;
  /** Per-role alarm thresholds on the probability. */
  readonly byRole: Readonly<Record<string, number>>;
}

export interface PredictorModel {
  readonly featureSetVersion: number;
  readonly featureNames: readonly string[];
  readonly horizonMs: number;
  /** When the model was produced (an input, recorded for operators). */
  readonly trainedAtMs: number;
  readonly standardizer: Standardizer;
  readonly logistic: LogisticModel;
  /** Weight of a positive example in online logistic updates (class balance). */
  readonly positiveWeight: number;
  readonly gbt: GbtModel;
  readonly stack: StackWeights;
  readonly thresholds: Thresholds;
}

export class ModelFormatError extends Error {
  override readonly name = "ModelFormatError";
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

class Writer {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number) {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number) {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number) {
    this.ensure(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number) {
    this.ensure(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number) {
    this.ensure(8);
    // Canonical NaN, so equal models give equal bytes.
    this.view.setFloat64(this.length, Number.isNaN(v) ? Number.NaN : v, true);
    this.length += 8;
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    if (b.length > 0xffff)
      throw new ModelFormatError(`string too long to serialise: ${s.slice(0, 40)}...`);
    this.u16(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

class Reader {
  private pos = 0;
  private readonly view: DataView;
  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private need(n: number, what: string) {
    if (this.pos + n > this.b.length) {
      throw new ModelFormatError(
        `model bytes end early at offset ${this.pos} while reading ${what}`,
      );
    }
  }
  get offset() {
    return this.pos;
  }
  u8(what: string) {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  u16(what: string) {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string) {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(what: string) {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what: string) {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  str(what: string) {
    const n = this.u16(what);
    this.need(n, what);
    const s = new TextDecoder("utf-8", { fatal: true }).decode(
      this.b.subarray(this.pos, this.pos + n),
    );
    this.pos += n;
    return s;
  }
}

export function serializeModel(model: PredictorModel): Uint8Array {
  const dim = model.featureNames.length;
  const check = (len: number, what: string) => {
    if (len !== dim) throw new ModelFormatError(`${what} has ${len} entries, expected ${dim}`);
  };
  check(model.standardizer.mean.length, "standardizer.mean");
  check(model.standardizer.scale.length, "standardizer.scale");
  check(model.logistic.weights.length, "logistic.weights");
  const w = new Writer();
  for (const b of MAGIC) w.u8(b);
  w.u16(MODEL_FORMAT_VERSION);
  w.u16(model.featureSetVersion);
  w.u32(dim);
  w.f64(model.horizonMs);
  w.f64(model.trainedAtMs);
  for (const n of model.featureNames) w.str(n);
  for (const v of model.standardizer.mean) w.f64(v);
  for (const v of model.standardizer.scale) w.f64(v);
  for (const v of model.logistic.weights) w.f64(v);
  w.f64(model.logistic.bias);
  w.f64(model.positiveWeight);
  w.f64(model.stack.bias);
  w.f64(model.stack.stability);
  w.f64(model.stack.logistic);
  w.f64(model.stack.trees);
  w.f64(model.thresholds.default);
  const roles = Object.keys(model.thresholds.byRole).sort();
  w.u16(roles.length);
  for (const r of roles) {
    w.str(r);
    w.f64(model.thresholds.byRole[r]!);
  }
  w.f64(model.gbt.baseMargin);
  w.u32(model.gbt.trees.length);
  for (const t of model.gbt.trees) {
    const n = t.feature.length;
    if (n > 0xffff) throw new ModelFormatError(`tree with ${n} nodes is too large to serialise`);
    w.u16(n);
    for (let i = 0; i < n; i++) {
      w.i32(t.feature[i]!);
      w.f64(t.threshold[i]!);
      w.i32(t.left[i]!);
      w.i32(t.right[i]!);
      w.f64(t.value[i]!);
    }
  }
  const body = w.bytes();
  const out = new Uint8Array(body.length + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, crc32(body), true);
  return out;
}

/** Parses and validates model bytes; throws ModelFormatError saying what is wrong. */
export function deserializeModel(bytes: Uint8Array): PredictorModel {
  if (bytes.length < 12)
    throw new ModelFormatError(`model bytes too short (${bytes.length} bytes)`);
  if (bytes.length > MODEL_BYTES_MAX) {
    throw new ModelFormatError(`model bytes too large (${bytes.length} > ${MODEL_BYTES_MAX})`);
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) throw new ModelFormatError("not a predictor model (bad magic)");
  }
  const body = bytes.subarray(0, bytes.length - 4);
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(
    bytes.length - 4,
    true,
  );
  const r = new Reader(body);
  for (let i = 0; i < 4; i++) r.u8("magic");
  const version = r.u16("format version");
  if (version !== MODEL_FORMAT_VERSION) {
    throw new ModelFormatError(
      `model format version ${version} is not supported (this build reads ${MODEL_FORMAT_VERSION})`,
    );
  }
  if (crc32(body) !== stored)
    throw new ModelFormatError("model bytes are corrupt (CRC-32 mismatch)");
  const featureSetVersion = r.u16("feature set version");
  const dim = r.u32("dim");
  if (dim > 4096) throw new ModelFormatError(`implausible feature count ${dim}`);
  const horizonMs = r.f64("horizonMs");
  const trainedAtMs = r.f64("trainedAtMs");
  const featureNames: string[] = [];
  for (let i = 0; i < dim; i++) featureNames.push(r.str("feature name"));
  const vec = (what: string) => {
    const v = new Float64Array(dim);
    for (let i = 0; i < dim; i++) v[i] = r.f64(what);
    return v;
  };
  const mean = vec("standardizer mean");
  const scale = vec("standardizer scale");
  const weights = vec("logistic weights");
  const bias = r.f64("logistic bias");
  const positiveWeight = r.f64("positive weight");
  const stack: StackWeights = {
    bias: r.f64("stack"),
    stability: r.f64("stack"),
    logistic: r.f64("stack"),
    trees: r.f64("stack"),
  };
  const def = r.f64("default threshold");
  const nRoles = r.u16("role count");
  const byRole: Record<string, number> = {};
  for (let i = 0; i < nRoles; i++) {
    const role = r.str("role");
    byRole[role] = r.f64("role threshold");
  }
  const baseMargin = r.f64("gbt base margin");
  const nTrees = r.u32("tree count");
  if (nTrees > 100_000) throw new ModelFormatError(`implausible tree count ${nTrees}`);
  const trees: GbtTree[] = [];
  for (let t = 0; t < nTrees; t++) {
    const n = r.u16("node count");
    if (n === 0) throw new ModelFormatError(`tree ${t} has no nodes`);
    const tree: GbtTree = {
      feature: new Int32Array(n),
      threshold: new Float64Array(n),
      left: new Int32Array(n),
      right: new Int32Array(n),
      value: new Float64Array(n),
    };
    for (let i = 0; i < n; i++) {
      tree.feature[i] = r.i32("node feature");
      tree.threshold[i] = r.f64("node threshold");
      tree.left[i] = r.i32("node left");
      tree.right[i] = r.i32("node right");
      tree.value[i] = r.f64("node value");
      const f = tree.feature[i]!;
      if (f >= dim || f < -1)
        throw new ModelFormatError(`tree ${t} node ${i} uses feature ${f} of ${dim}`);
      // Children must come after their parent: no cycles, every walk ends at a leaf.
      if (
        f >= 0 &&
        !(tree.left[i]! > i && tree.left[i]! < n && tree.right[i]! > i && tree.right[i]! < n)
      ) {
        throw new ModelFormatError(`tree ${t} node ${i} has children out of range`);
      }
    }
    trees.push(tree);
  }
  if (r.offset !== body.length) {
    throw new ModelFormatError(`${body.length - r.offset} unexpected trailing bytes in model`);
  }
  const gbt: GbtModel = { baseMargin, trees };
  return {
    featureSetVersion,
    featureNames,
    horizonMs,
    trainedAtMs,
    standardizer: { mean, scale },
    logistic: { weights, bias },
    positiveWeight,
    gbt,
    stack,
    thresholds: { default: def, byRole },
  };
}
