/**
 * Gradient-boosted decision trees for binary classification (log loss),
 * Newton boosting with histogram splits, as in XGBoost/LightGBM but small.
 *
 * `trainGbt` is pure and deterministic for a given Rng; the coordinator runs it
 * off the event loop through gbt-worker.ts. Trees are stored as flat typed
 * arrays so a model serialises compactly and predicts without allocation.
 * Every node keeps the value it would have as a leaf, which gives per-feature
 * contributions along the decision path (Saabas attribution) for explanations.
 */
import type { Rng } from "../../../common/rng.ts";
import { logit, sigmoid } from "./logistic.ts";

export interface GbtTree {
  /** Split feature per node; -1 marks a leaf. */
  readonly feature: Int32Array;
  /** Go left when x[feature] <= threshold. */
  readonly threshold: Float64Array;
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** The node's output (learning rate applied) had the tree stopped there. */
  readonly value: Float64Array;
}

export interface GbtModel {
  readonly baseMargin: number;
  readonly trees: readonly GbtTree[];
}

export interface GbtParams {
  trees?: number;
  maxDepth?: number;
  learningRate?: number;
  /** L2 on leaf values. */
  lambda?: number;
  /** A child needs at least this much Hessian (≈ rows × p(1-p)). */
  minChildHessian?: number;
  /** Histogram bins per feature, at most 255. */
  bins?: number;
  /** Fraction of rows each tree sees. */
  subsample?: number;
  minGain?: number;
}

export interface GbtData {
  /** rows × dim, row-major. */
  readonly X: Float32Array;
  readonly y: Uint8Array;
  readonly weight?: Float32Array;
  readonly rows: number;
  readonly dim: number;
}

export function gbtMargin(m: GbtModel, x: ArrayLike<number>): number {
  let s = m.baseMargin;
  for (const t of m.trees) {
    let n = 0;
    while (t.feature[n]! >= 0) n = x[t.feature[n]!]! <= t.threshold[n]! ? t.left[n]! : t.right[n]!;
    s += t.value[n]!;
  }
  return s;
}

/**
 * Adds each feature's contribution to the margin into `out` (not cleared) and
 * returns the margin. margin = baseMargin + Σ root values + Σ out[j].
 */
export function gbtContributions(m: GbtModel, x: ArrayLike<number>, out: Float64Array): number {
  let s = m.baseMargin;
  for (const t of m.trees) {
    let n = 0;
    while (t.feature[n]! >= 0) {
      const f = t.feature[n]!;
      const next = x[f]! <= t.threshold[n]! ? t.left[n]! : t.right[n]!;
      out[f]! += t.value[next]! - t.value[n]!;
      n = next;
    }
    s += t.value[n]!;
  }
  return s;
}

/** Midpoints between distinct quantiles of a column: x <= cuts[b] is bin <= b. */
function cutPoints(
  X: Float32Array,
  rows: number,
  dim: number,
  j: number,
  bins: number,
): Float64Array {
  const stride = Math.max(1, Math.floor(rows / 50_000));
  const sample: number[] = [];
  for (let r = 0; r < rows; r += stride) sample.push(X[r * dim + j]!);
  sample.sort((a, b) => a - b);
  const cuts: number[] = [];
  for (let q = 1; q < bins; q++) {
    const v = sample[Math.floor((q * sample.length) / bins)];
    if (v === undefined) break;
    // next distinct value above v
    let k = Math.floor((q * sample.length) / bins);
    while (k < sample.length && sample[k]! <= v) k++;
    if (k >= sample.length) break;
    const cut = (v + sample[k]!) / 2;
    if (cuts.length === 0 || cut > cuts[cuts.length - 1]!) cuts.push(cut);
  }
  return Float64Array.from(cuts);
}

function binOf(cuts: Float64Array, x: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Split {
  gain: number;
  feature: number;
  bin: number;
}

export function trainGbt(data: GbtData, rng: Rng, params: GbtParams = {}): GbtModel {
  const nTrees = params.trees ?? 80;
  const maxDepth = params.maxDepth ?? 3;
  const lr = params.learningRate ?? 0.15;
  const lambda = params.lambda ?? 1;
  const minChildH = params.minChildHessian ?? 1;
  const nBins = Math.min(255, params.bins ?? 64);
  const subsample = params.subsample ?? 0.7;
  const minGain = params.minGain ?? 1e-6;
  const { X, y, rows, dim } = data;
  if (rows === 0) throw new RangeError("trainGbt needs at least one row");
  const wt = data.weight;

  const cuts: Float64Array[] = [];
  for (let j = 0; j < dim; j++) cuts.push(cutPoints(X, rows, dim, j, nBins));
  const B = new Uint8Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) B[r * dim + j] = binOf(cuts[j]!, X[r * dim + j]!);
  }

  let sw = 0;
  let sy = 0;
  for (let r = 0; r < rows; r++) {
    const w = wt ? wt[r]! : 1;
    sw += w;
    sy += w * y[r]!;
  }
  const baseMargin = logit(Math.min(Math.max(sy / sw, 1e-6), 1 - 1e-6));
  const margin = new Float64Array(rows).fill(baseMargin);
  const g = new Float64Array(rows);
  const h = new Float64Array(rows);
  const idx = new Int32Array(rows);
  const histSize = dim * nBins * 2;
  const histPool: Float64Array[] = [];
  for (let d = 0; d <= maxDepth + 1; d++) histPool.push(new Float64Array(histSize));
  const scratch = new Float64Array(histSize);
  const trees: GbtTree[] = [];

  for (let t = 0; t < nTrees; t++) {
    for (let r = 0; r < rows; r++) {
      const p = sigmoid(margin[r]!);
      const w = wt ? wt[r]! : 1;
      g[r] = (p - y[r]!) * w;
      h[r] = Math.max(p * (1 - p), 1e-12) * w;
    }
    let n = 0;
    for (let r = 0; r < rows; r++) if (subsample >= 1 || rng.next() < subsample) idx[n++] = r;
    if (n === 0) continue;

    const feature: number[] = [];
    const threshold: number[] = [];
    const splitBin: number[] = [];
    const left: number[] = [];
    const right: number[] = [];
    const value: number[] = [];

    const buildHist = (hist: Float64Array, start: number, end: number) => {
      hist.fill(0);
      for (let i = start; i < end; i++) {
        const r = idx[i]!;
        const gr = g[r]!;
        const hr = h[r]!;
        const base = r * dim;
        for (let j = 0; j < dim; j++) {
          const k = (j * nBins + B[base + j]!) * 2;
          hist[k]! += gr;
          hist[k + 1]! += hr;
        }
      }
    };

    const bestSplit = (hist: Float64Array, G: number, H: number): Split => {
      const best: Split = { gain: minGain, feature: -1, bin: -1 };
      const parent = (G * G) / (H + lambda);
      for (let j = 0; j < dim; j++) {
        const nc = cuts[j]!.length;
        let gl = 0;
        let hl = 0;
        for (let b = 0; b < nc; b++) {
          const k = (j * nBins + b) * 2;
          gl += hist[k]!;
          hl += hist[k + 1]!;
          const hr = H - hl;
          if (hl < minChildH || hr < minChildH) continue;
          const gr = G - gl;
          const gain = (gl * gl) / (hl + lambda) + (gr * gr) / (hr + lambda) - parent;
          if (gain > best.gain) {
            best.gain = gain;
            best.feature = j;
            best.bin = b;
          }
        }
      }
      return best;
    };

    const build = (start: number, end: number, depth: number, hist: Float64Array): number => {
      let G = 0;
      let H = 0;
      for (let i = start; i < end; i++) {
        G += g[idx[i]!]!;
        H += h[idx[i]!]!;
      }
      const node = feature.length;
      feature.push(-1);
      threshold.push(0);
      splitBin.push(0);
      left.push(-1);
      right.push(-1);
      value.push((-lr * G) / (H + lambda));
      if (depth >= maxDepth || H < 2 * minChildH) return node;
      const s = bestSplit(hist, G, H);
      if (s.feature < 0) return node;
      // partition idx[start, end) so rows going left come first
      let mid = start;
      for (let i = start; i < end; i++) {
        const r = idx[i]!;
        if (B[r * dim + s.feature]! <= s.bin) {
          idx[i] = idx[mid]!;
          idx[mid] = r;
          mid++;
        }
      }
      feature[node] = s.feature;
      threshold[node] = cuts[s.feature]![s.bin]!;
      splitBin[node] = s.bin;
      // Histogram subtraction: scan the smaller child, derive the larger one.
      const small = histPool[depth + 1]!;
      const leftSmaller = mid - start <= end - mid;
      if (leftSmaller) buildHist(small, start, mid);
      else buildHist(small, mid, end);
      const large = scratch;
      for (let k = 0; k < histSize; k++) large[k] = hist[k]! - small[k]!;
      // `large` is scratch: copy it into this depth's own buffer before recursing.
      const largeOwned = Float64Array.from(large);
      const leftHist = leftSmaller ? small : largeOwned;
      const rightHist = leftSmaller ? largeOwned : small;
      // Recurse on the child whose histogram lives in the shared pool first.
      if (leftSmaller) {
        left[node] = build(start, mid, depth + 1, leftHist);
        right[node] = build(mid, end, depth + 1, rightHist);
      } else {
        right[node] = build(mid, end, depth + 1, rightHist);
        left[node] = build(start, mid, depth + 1, leftHist);
      }
      return node;
    };

    const rootHist = histPool[0]!;
    buildHist(rootHist, 0, n);
    build(0, n, 0, rootHist);

    // update margins on all rows using bins (same decisions as thresholds)
    for (let r = 0; r < rows; r++) {
      let k = 0;
      while (feature[k]! >= 0) k = B[r * dim + feature[k]!]! <= splitBin[k]! ? left[k]! : right[k]!;
      margin[r]! += value[k]!;
    }
    trees.push({
      feature: Int32Array.from(feature),
      threshold: Float64Array.from(threshold),
      left: Int32Array.from(left),
      right: Int32Array.from(right),
      value: Float64Array.from(value),
    });
  }
  return { baseMargin, trees };
}
