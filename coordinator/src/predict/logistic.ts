/**
 * Logistic regression, written for two uses:
 * - the online model: one SGD step per labelled example as labels arrive;
 * - small dense fits (Platt scaling, the model stack) by Newton's method.
 * Inputs to the online model are standardised first (see Standardizer), so a
 * single learning rate suits every feature.
 */
import type { Rng } from "../../../common/rng.ts";

export interface Standardizer {
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

/** Standardised inputs are clipped to ±this, so one wild feature cannot dominate a logit. */
export const STANDARDIZED_CLIP = 8;

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

export function logit(p: number): number {
  const q = Math.min(Math.max(p, 1e-12), 1 - 1e-12);
  return Math.log(q / (1 - q));
}

/** Column means and standard deviations (scale 1 for constant columns). */
export function fitStandardizer(X: Float32Array, rows: number, dim: number): Standardizer {
  const mean = new Float64Array(dim);
  const scale = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) mean[j]! += X[r * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j] = rows > 0 ? mean[j]! / rows : 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) {
      const d = X[r * dim + j]! - mean[j]!;
      scale[j]! += d * d;
    }
  }
  for (let j = 0; j < dim; j++) {
    const sd = rows > 1 ? Math.sqrt(scale[j]! / rows) : 0;
    scale[j] = sd > 1e-12 ? sd : 1;
  }
  return { mean, scale };
}

export function standardize(
  s: Standardizer,
  x: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  for (let j = 0; j < out.length; j++) {
    const v = (x[j]! - s.mean[j]!) / s.scale[j]!;
    out[j] = v > STANDARDIZED_CLIP ? STANDARDIZED_CLIP : Math.max(v, -STANDARDIZED_CLIP);
  }
  return out;
}

export interface LogisticModel {
  weights: Float64Array;
  bias: number;
}

export function logisticLogit(m: LogisticModel, z: ArrayLike<number>): number {
  let s = m.bias;
  const w = m.weights;
  for (let j = 0; j < w.length; j++) s += w[j]! * z[j]!;
  return s;
}

/**
 * One stochastic gradient step on the weighted log loss with L2 on weights
 * (not the bias). Mutates `m`. `z` must already be standardised.
 */
export function sgdStep(
  m: LogisticModel,
  z: ArrayLike<number>,
  y: 0 | 1,
  weight: number,
  learningRate: number,
  l2: number,
): void {
  const g = (sigmoid(logisticLogit(m, z)) - y) * weight;
  const w = m.weights;
  for (let j = 0; j < w.length; j++) w[j] = w[j]! - learningRate * (g * z[j]! + l2 * w[j]!);
  m.bias -= learningRate * g;
}

export interface LogisticTrainOptions {
  epochs?: number;
  learningRate?: number;
  l2?: number;
  /** Weight of positive rows relative to negatives. Default: balances the classes. */
  positiveWeight?: number;
}

/**
 * Batch training by shuffled SGD with a decaying step; rows must already be
 * standardised. Deterministic for a given Rng.
 */
export function trainLogistic(
  Z: Float32Array,
  y: Uint8Array,
  rows: number,
  dim: number,
  rng: Rng,
  opts: LogisticTrainOptions = {},
): LogisticModel {
  const epochs = opts.epochs ?? 8;
  const lr0 = opts.learningRate ?? 0.05;
  const l2 = opts.l2 ?? 1e-4;
  let pos = 0;
  for (let r = 0; r < rows; r++) pos += y[r]!;
  const posWeight = opts.positiveWeight ?? (pos > 0 ? (rows - pos) / pos : 1);
  const m: LogisticModel = { weights: new Float64Array(dim), bias: 0 };
  const order = new Int32Array(rows);
  for (let r = 0; r < rows; r++) order[r] = r;
  const z = new Float64Array(dim);
  let step = 0;
  const total = epochs * rows;
  for (let e = 0; e < epochs; e++) {
    for (let i = rows - 1; i > 0; i--) {
      const k = rng.int(0, i);
      const t = order[i]!;
      order[i] = order[k]!;
      order[k] = t;
    }
    for (let i = 0; i < rows; i++) {
      const r = order[i]!;
      for (let j = 0; j < dim; j++) z[j] = Z[r * dim + j]!;
      const lr = lr0 / (1 + (10 * step) / total);
      const yr = y[r] === 1 ? 1 : 0;
      // Balanced weights, normalised so an average row weighs about 1.
      const w = yr === 1 ? (2 * posWeight) / (1 + posWeight) : 2 / (1 + posWeight);
      sgdStep(m, z, yr, w, lr, l2);
      step++;
    }
  }
  return m;
}

/**
 * Weighted logistic regression on a few dense inputs by Newton's method with a
 * small ridge; used for Platt scaling and for stacking model outputs.
 * X is rows x k; returns k weights and a bias.
 */
export function fitSmallLogistic(
  X: Float64Array,
  y: Uint8Array,
  weights: Float64Array | undefined,
  rows: number,
  k: number,
  ridge = 1e-3,
  iterations = 30,
): LogisticModel {
  const d = k + 1; // last coefficient is the bias
  const beta = new Float64Array(d);
  const grad = new Float64Array(d);
  const hess = new Float64Array(d * d);
  const xi = new Float64Array(d);
  for (let it = 0; it < iterations; it++) {
    grad.fill(0);
    hess.fill(0);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < k; j++) xi[j] = X[r * k + j]!;
      xi[k] = 1;
      let s = 0;
      for (let j = 0; j < d; j++) s += beta[j]! * xi[j]!;
      const p = sigmoid(s);
      const w = weights ? weights[r]! : 1;
      const g = (p - y[r]!) * w;
      const h = Math.max(p * (1 - p), 1e-9) * w;
      for (let a = 0; a < d; a++) {
        grad[a]! += g * xi[a]!;
        for (let b = 0; b < d; b++) hess[a * d + b]! += h * xi[a]! * xi[b]!;
      }
    }
    for (let a = 0; a < k; a++) {
      grad[a]! += ridge * beta[a]!;
      hess[a * d + a]! += ridge;
    }
    hess[d * d - 1]! += 1e-9;
    const step = solve(hess, grad, d);
    let maxStep = 0;
    for (let a = 0; a < d; a++) {
      beta[a]! -= step[a]!;
      maxStep = Math.max(maxStep, Math.abs(step[a]!));
    }
    if (maxStep < 1e-9) break;
  }
  return { weights: beta.slice(0, k), bias: beta[k]! };
}

/** Solves A x = b (A is d x d, symmetric positive definite here) by Gaussian elimination with pivoting. */
function solve(A: Float64Array, b: Float64Array, d: number): Float64Array {
  const m = Float64Array.from(A);
  const x = Float64Array.from(b);
  for (let c = 0; c < d; c++) {
    let piv = c;
    for (let r = c + 1; r < d; r++)
      if (Math.abs(m[r * d + c]!) > Math.abs(m[piv * d + c]!)) piv = r;
    if (piv !== c) {
      for (let j = 0; j < d; j++) {
        const t = m[c * d + j]!;
        m[c * d + j] = m[piv * d + j]!;
        m[piv * d + j] = t;
      }
      const t = x[c]!;
      x[c] = x[piv]!;
      x[piv] = t;
    }
    const diag = m[c * d + c]!;
    if (Math.abs(diag) < 1e-300) continue;
    for (let r = c + 1; r < d; r++) {
      const f = m[r * d + c]! / diag;
      if (f === 0) continue;
      for (let j = c; j < d; j++) m[r * d + j]! -= f * m[c * d + j]!;
      x[r]! -= f * x[c]!;
    }
  }
  for (let c = d - 1; c >= 0; c--) {
    let s = x[c]!;
    for (let j = c + 1; j < d; j++) s -= m[c * d + j]! * x[j]!;
    const diag = m[c * d + c]!;
    x[c] = Math.abs(diag) < 1e-300 ? 0 : s / diag;
  }
  return x;
}
