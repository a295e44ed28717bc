// The reference training kernels: plain TypeScript, float64 accumulation, slow on purpose.
//
// This is the oracle the native training kernels are tested against and the written-down math
// of every forward and backward op. Every function is generic over the element type
// (`F = Float32Array | Float64Array`) so the finite-difference gradient checks can run in
// float64 end to end; with f32 buffers each result is computed in float64 and rounded once,
// when it is stored. The `RefTrainKernels` class is the `TrainKernels` face of the same
// functions.
//
// Semantics shared with the inference ref backend (src/tensor/ref.ts) are reused, not
// re-derived: `erf` and `ropeInvFreq` come from there, and the GELU / RoPE formulas are
// written in the same order so forward results agree bit for bit.

import type { RopeOptions } from './backend.ts';
import { convTaps, directConv2d, erf, ropeInvFreq } from './ref.ts';
import type { AttnTrainOptions, ConvShape, Gelu, PointAct, TrainKernels } from './train-kernels.ts';

/** Any float buffer the reference kernels accept. */
export type F = Float32Array | Float64Array;

// ---- argument checks ------------------------------------------------------------------------

/** Misuse of a kernel (wrong sizes, bad ids): the message names the op and the buffer. */
export class TrainKernelError extends Error {
  constructor(op: string, msg: string) {
    super(`${op}: ${msg}`);
    this.name = 'TrainKernelError';
  }
}

// Typed arrays read out of range as undefined -> NaN, silently: check every length up front.
function need(op: string, name: string, a: ArrayLike<number>, n: number): void {
  if (a.length < n) throw new TrainKernelError(op, `${name} has ${a.length} elements, needs at least ${n}`);
}

function same(op: string, names: string, ...arrs: ArrayLike<number>[]): void {
  const n = arrs[0]!.length;
  for (const a of arrs) {
    if (a.length !== n) throw new TrainKernelError(op, `${names} must all have the same length, got ${arrs.map((x) => x.length).join(', ')}`);
  }
}

// ---- scalar math (as in src/tensor/ref.ts) ---------------------------------------------------

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function silu(x: number): number {
  return x * sigmoid(x);
}

/** d silu / dx = s (1 + x (1 - s)), s = sigmoid(x). */
function siluGrad(x: number): number {
  const s = sigmoid(x);
  return s * (1 + x * (1 - s));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function geluScalar(x: number, approx: Gelu): number {
  if (approx === 'tanh') return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
  return 0.5 * x * (1 + erf(x * Math.SQRT1_2));
}

/** d gelu / dx for either approximation. */
export function geluGradScalar(x: number, approx: Gelu): number {
  if (approx === 'tanh') {
    const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
  }
  // 0.5 (1 + erf(x / sqrt 2)) + x * phi(x), phi the standard normal density
  return 0.5 * (1 + erf(x * Math.SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

function checkGelu(op: string, approx: Gelu): void {
  if (approx !== 'tanh' && approx !== 'erf') throw new TrainKernelError(op, `unknown GELU approximation '${String(approx)}'`);
}

// ---- BLAS-like ------------------------------------------------------------------------------

/**
 * C[M, N] = alpha * op(A) . op(B) + beta * C (row-major; see TrainKernels.gemm). beta = 0
 * never reads C, so NaN there is ignored.
 */
export function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: F, lda: number, B: F, ldb: number, beta: number, C: F, ldc: number,
): void {
  const op = 'gemm';
  // stored shapes: A is [M, K] or [K, M]; B is [K, N] or [N, K]
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  if (lda < aCols) throw new TrainKernelError(op, `lda ${lda} < ${aCols} columns of A`);
  if (ldb < bCols) throw new TrainKernelError(op, `ldb ${ldb} < ${bCols} columns of B`);
  if (ldc < N) throw new TrainKernelError(op, `ldc ${ldc} < N ${N}`);
  if (aRows > 0 && aCols > 0) need(op, 'A', A, (aRows - 1) * lda + aCols);
  if (bRows > 0 && bCols > 0) need(op, 'B', B, (bRows - 1) * ldb + bCols);
  if (M > 0 && N > 0) need(op, 'C', C, (M - 1) * ldc + N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[k * lda + m]! : A[m * lda + k]!;
        const b = transB ? B[n * ldb + k]! : B[k * ldb + n]!;
        acc += a * b;
      }
      const ci = m * ldc + n;
      C[ci] = beta === 0 ? alpha * acc : alpha * acc + beta * C[ci]!;
    }
  }
}

/** y += a * x. */
export function axpy(a: number, x: F, y: F): void {
  same('axpy', 'x, y', x, y);
  for (let i = 0; i < x.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** Sum of x^2 in float64. */
export function sumSquares(x: F): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}

/** x *= s. */
export function scaleInPlace(x: F, s: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * s;
}

// ---- norms ----------------------------------------------------------------------------------

export function rmsNorm(x: F, w: F, rows: number, cols: number, eps: number, out: F, rstd: F): void {
  const op = 'rmsNorm';
  need(op, 'x', x, rows * cols);
  need(op, 'w', w, cols);
  need(op, 'out', out, rows * cols);
  need(op, 'rstd', rstd, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let i = 0; i < cols; i++) ss += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = inv;
    for (let i = 0; i < cols; i++) out[o + i] = x[o + i]! * inv * w[i]!;
  }
}

/**
 * y_i = x_i r w_i with r = (mean(x^2) + eps)^(-1/2), dr/dx_j = -r^3 x_j / n, so
 *   dx_j = r w_j dy_j - (r^3 / n) x_j sum_i dy_i w_i x_i;   dw_i += dy_i x_i r.
 */
export function rmsNormBackward(x: F, w: F, rstd: F, dy: F, rows: number, cols: number, dx: F, dw: F): void {
  const op = 'rmsNormBackward';
  for (const [n, a, len] of [['x', x, rows * cols], ['w', w, cols], ['rstd', rstd, rows], ['dy', dy, rows * cols], ['dx', dx, rows * cols], ['dw', dw, cols]] as const) {
    need(op, n, a, len);
  }
  const dwAcc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const inv = rstd[r]!;
    let dot = 0;
    for (let i = 0; i < cols; i++) dot += dy[o + i]! * w[i]! * x[o + i]!;
    const c = (inv * inv * inv * dot) / cols;
    for (let i = 0; i < cols; i++) {
      dx[o + i] = inv * w[i]! * dy[o + i]! - c * x[o + i]!;
      dwAcc[i] += dy[o + i]! * x[o + i]! * inv;
    }
  }
  for (let i = 0; i < cols; i++) dw[i] = dw[i]! + dwAcc[i]!;
}

export function layerNorm(x: F, w: F, b: F | null, rows: number, cols: number, eps: number, out: F, mean: F, rstd: F): void {
  const op = 'layerNorm';
  need(op, 'x', x, rows * cols);
  need(op, 'w', w, cols);
  if (b) need(op, 'b', b, cols);
  need(op, 'out', out, rows * cols);
  need(op, 'mean', mean, rows);
  need(op, 'rstd', rstd, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let sum = 0;
    for (let i = 0; i < cols; i++) sum += x[o + i]!;
    const mu = sum / cols;
    let sq = 0;
    for (let i = 0; i < cols; i++) sq += (x[o + i]! - mu) * (x[o + i]! - mu);
    const inv = 1 / Math.sqrt(sq / cols + eps); // population variance
    mean[r] = mu;
    rstd[r] = inv;
    for (let i = 0; i < cols; i++) out[o + i] = (x[o + i]! - mu) * inv * w[i]! + (b ? b[i]! : 0);
  }
}

/**
 * With xhat = (x - mean) r and g = dy w:
 *   dx = r (g - mean(g) - xhat mean(g xhat));   dw += dy xhat;   db += dy.
 */
export function layerNormBackward(
  x: F, w: F, mean: F, rstd: F, dy: F, rows: number, cols: number, dx: F, dw: F, db: F | null,
): void {
  const op = 'layerNormBackward';
  for (const [n, a, len] of [['x', x, rows * cols], ['w', w, cols], ['mean', mean, rows], ['rstd', rstd, rows], ['dy', dy, rows * cols], ['dx', dx, rows * cols], ['dw', dw, cols]] as const) {
    need(op, n, a, len);
  }
  if (db) need(op, 'db', db, cols);
  const dwAcc = new Float64Array(cols);
  const dbAcc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mu = mean[r]!;
    const inv = rstd[r]!;
    let sg = 0;
    let sgx = 0;
    for (let i = 0; i < cols; i++) {
      const xhat = (x[o + i]! - mu) * inv;
      const g = dy[o + i]! * w[i]!;
      sg += g;
      sgx += g * xhat;
      dwAcc[i] += dy[o + i]! * xhat;
      dbAcc[i] += dy[o + i]!;
    }
    sg /= cols;
    sgx /= cols;
    for (let i = 0; i < cols; i++) {
      const xhat = (x[o + i]! - mu) * inv;
      dx[o + i] = inv * (dy[o + i]! * w[i]! - sg - xhat * sgx);
    }
  }
  for (let i = 0; i < cols; i++) dw[i] = dw[i]! + dwAcc[i]!;
  if (db) for (let i = 0; i < cols; i++) db[i] = db[i]! + dbAcc[i]!;
}

// ---- gated activations ----------------------------------------------------------------------

export function swiglu(g: F, u: F, out: F): void {
  same('swiglu', 'g, u, out', g, u, out);
  for (let i = 0; i < g.length; i++) out[i] = silu(g[i]!) * u[i]!;
}

export function swigluBackward(g: F, u: F, dy: F, dg: F, du: F): void {
  same('swigluBackward', 'g, u, dy, dg, du', g, u, dy, dg, du);
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    const d = dy[i]!;
    const ui = u[i]!; // read every input before writing, so dg may alias g and du may alias u
    dg[i] = d * ui * siluGrad(gi);
    du[i] = d * silu(gi);
  }
}

export function geglu(g: F, u: F, out: F, approx: Gelu): void {
  checkGelu('geglu', approx);
  same('geglu', 'g, u, out', g, u, out);
  for (let i = 0; i < g.length; i++) out[i] = geluScalar(g[i]!, approx) * u[i]!;
}

export function gegluBackward(g: F, u: F, dy: F, dg: F, du: F, approx: Gelu): void {
  checkGelu('gegluBackward', approx);
  same('gegluBackward', 'g, u, dy, dg, du', g, u, dy, dg, du);
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    const d = dy[i]!;
    const ui = u[i]!;
    dg[i] = d * ui * geluGradScalar(gi, approx);
    du[i] = d * geluScalar(gi, approx);
  }
}

export function gelu(x: F, out: F, approx: Gelu): void {
  checkGelu('gelu', approx);
  same('gelu', 'x, out', x, out);
  for (let i = 0; i < x.length; i++) out[i] = geluScalar(x[i]!, approx);
}

export function geluBackward(x: F, dy: F, dx: F, approx: Gelu): void {
  checkGelu('geluBackward', approx);
  same('geluBackward', 'x, dy, dx', x, dy, dx);
  for (let i = 0; i < x.length; i++) dx[i] = dy[i]! * geluGradScalar(x[i]!, approx);
}

// ---- rope -----------------------------------------------------------------------------------

/**
 * Rotary embedding in place on x[rows, H, D], exactly as RefBackend.rope (same inverse
 * frequencies, same linear position division, same pair layouts). inverse = true rotates
 * each pair by the negated angle: R^T, the adjoint, which is the backward.
 */
export function rope(x: F, rows: number, H: number, D: number, positions: Int32Array, opts: RopeOptions, inverse: boolean): void {
  const op = 'rope';
  need(op, 'x', x, rows * H * D);
  need(op, 'positions', positions, rows);
  const rotaryDim = opts.rotaryDim ?? D;
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim > D || rotaryDim % 2 !== 0) {
    throw new TrainKernelError(op, `rotaryDim ${rotaryDim} must be even and in (0, ${D}]`);
  }
  if (opts.layout !== 'interleaved' && opts.layout !== 'half') throw new TrainKernelError(op, `unknown layout '${String(opts.layout)}'`);
  const inv = ropeInvFreq(rotaryDim, opts);
  const s = opts.scaling;
  const lr = s?.type === 'longrope' ? s : null; // longrope: long factors from originalMaxPosition on, cos/sin * attnFactor
  const invLong = lr ? ropeInvFreq(rotaryDim, opts, true) : inv;
  const m = lr ? lr.attnFactor : 1;
  const half = rotaryDim / 2;
  const posDiv = s?.type === 'linear' ? s.factor : 1; // linear: position / factor
  const sign = inverse ? -1 : 1;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < rows; t++) {
    const pos = positions[t]! / posDiv;
    const f = lr && pos >= lr.originalMaxPosition ? invLong : inv;
    for (let i = 0; i < half; i++) {
      const angle = pos * f[i]!;
      cos[i] = m * Math.cos(angle);
      sin[i] = sign * m * Math.sin(angle); // sin(-a) = -sin(a) exactly, so forward matches ref.ts bitwise
    }
    for (let h = 0; h < H; h++) {
      const base = (t * H + h) * D;
      for (let i = 0; i < half; i++) {
        const ia = opts.layout === 'interleaved' ? base + 2 * i : base + i;
        const ib = opts.layout === 'interleaved' ? ia + 1 : ia + half;
        const a = x[ia]!;
        const b = x[ib]!;
        x[ia] = a * cos[i]! - b * sin[i]!;
        x[ib] = a * sin[i]! + b * cos[i]!;
      }
    }
  }
}

// ---- attention ------------------------------------------------------------------------------

function checkAttn(
  op: string, q: F, k: F, v: F, seg: Int32Array, B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
): void {
  if (!(Hkv > 0) || Hq % Hkv !== 0) throw new TrainKernelError(op, `Hq ${Hq} must be a multiple of Hkv ${Hkv}`);
  if (!(opts.softCap >= 0)) throw new TrainKernelError(op, `softCap must be >= 0, got ${opts.softCap}`);
  if (!(opts.window >= 0)) throw new TrainKernelError(op, `window must be >= 0, got ${opts.window}`);
  need(op, 'q', q, B * T * Hq * D);
  need(op, 'k', k, B * T * Hkv * D);
  need(op, 'v', v, B * T * Hkv * D);
  need(op, 'seg', seg, B * T);
}

/** First key index (within the sequence) that query t may see, before the segment test. */
function firstKey(t: number, window: number): number {
  return window > 0 ? Math.max(0, t - window + 1) : 0; // t - s < window
}

/**
 * Scaled, capped scores of query row (b, t, h) against every key of its sequence, written to
 * `scores[s]`; keys it may not see get -Infinity.
 */
function scoreRow(
  q: F, k: F, seg: Int32Array, b: number, t: number, h: number, T: number, Hq: number, Hkv: number, D: number,
  opts: AttnTrainOptions, scores: Float64Array,
): void {
  const hk = Math.floor(h / (Hq / Hkv));
  const qo = ((b * T + t) * Hq + h) * D;
  const first = firstKey(t, opts.window);
  const doc = seg[b * T + t]!;
  for (let s = 0; s < T; s++) {
    if (s < first || s > t || seg[b * T + s] !== doc) {
      scores[s] = -Infinity;
      continue;
    }
    const ko = ((b * T + s) * Hkv + hk) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
    let sc = opts.scale * dot;
    if (opts.softCap > 0) sc = opts.softCap * Math.tanh(sc / opts.softCap);
    scores[s] = sc;
  }
}

export function attention(
  q: F, k: F, v: F, seg: Int32Array, B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
  out: F, lse: F,
): void {
  const op = 'attention';
  checkAttn(op, q, k, v, seg, B, T, Hq, Hkv, D, opts);
  need(op, 'out', out, B * T * Hq * D);
  need(op, 'lse', lse, B * T * Hq);
  const scores = new Float64Array(T);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < Hq; h++) {
        scoreRow(q, k, seg, b, t, h, T, Hq, Hkv, D, opts, scores);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) if (scores[s]! > max) max = scores[s]!;
        // the query always sees itself, so max is finite
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += Math.exp(scores[s]! - max);
        const l = max + Math.log(sum);
        const hk = Math.floor(h / (Hq / Hkv));
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          if (scores[s] === -Infinity) continue;
          const p = Math.exp(scores[s]! - l);
          const vo = ((b * T + s) * Hkv + hk) * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vo + d]!;
        }
        const row = (b * T + t) * Hq + h;
        for (let d = 0; d < D; d++) out[row * D + d] = acc[d]!;
        lse[row] = l;
      }
    }
  }
}

/**
 * Recomputes p_s = exp(c_s - lse) from the saved lse. With dP_s = dout . v_s and
 * delta = sum_s p_s dP_s: dc_s = p_s (dP_s - delta), through the cap dscore = dc (1 - (c/cap)^2),
 * then dq += dscore scale k_s, dk_s += dscore scale q, dv_s += p_s dout.
 *
 * delta is summed from the recomputed p rather than taken as dout . out: mathematically the
 * same, but it avoids the rounding of an f32 `out`. `out` is accepted for the contract
 * (native kernels use dout . out) and only its size is checked.
 */
export function attentionBackward(
  q: F, k: F, v: F, seg: Int32Array, out: F, lse: F, dout: F,
  B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
  dq: F, dk: F, dv: F,
): void {
  const op = 'attentionBackward';
  checkAttn(op, q, k, v, seg, B, T, Hq, Hkv, D, opts);
  need(op, 'out', out, B * T * Hq * D);
  need(op, 'lse', lse, B * T * Hq);
  need(op, 'dout', dout, B * T * Hq * D);
  need(op, 'dq', dq, B * T * Hq * D);
  need(op, 'dk', dk, B * T * Hkv * D);
  need(op, 'dv', dv, B * T * Hkv * D);
  // float64 accumulators, stored once at the end (dq/dk/dv are overwritten, not accumulated)
  const dqA = new Float64Array(B * T * Hq * D);
  const dkA = new Float64Array(B * T * Hkv * D);
  const dvA = new Float64Array(B * T * Hkv * D);
  const scores = new Float64Array(T);
  const p = new Float64Array(T);
  const dP = new Float64Array(T);
  const cap = opts.softCap;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < Hq; h++) {
        scoreRow(q, k, seg, b, t, h, T, Hq, Hkv, D, opts, scores);
        const hk = Math.floor(h / (Hq / Hkv));
        const row = (b * T + t) * Hq + h;
        const l = lse[row]!;
        let delta = 0;
        for (let s = 0; s <= t; s++) {
          if (scores[s] === -Infinity) {
            p[s] = 0;
            dP[s] = 0;
            continue;
          }
          p[s] = Math.exp(scores[s]! - l);
          const vo = ((b * T + s) * Hkv + hk) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dout[row * D + d]! * v[vo + d]!;
          dP[s] = dot;
          delta += p[s]! * dot;
        }
        for (let s = 0; s <= t; s++) {
          if (scores[s] === -Infinity) continue;
          const kvo = ((b * T + s) * Hkv + hk) * D;
          let ds = p[s]! * (dP[s]! - delta);
          if (cap > 0) {
            const c = scores[s]! / cap;
            ds *= 1 - c * c;
          }
          ds *= opts.scale;
          for (let d = 0; d < D; d++) {
            dqA[row * D + d] += ds * k[kvo + d]!;
            dkA[kvo + d] += ds * q[row * D + d]!;
            dvA[kvo + d] += p[s]! * dout[row * D + d]!;
          }
        }
      }
    }
  }
  for (let i = 0; i < dqA.length; i++) dq[i] = dqA[i]!;
  for (let i = 0; i < dkA.length; i++) dk[i] = dkA[i]!;
  for (let i = 0; i < dvA.length; i++) dv[i] = dvA[i]!;
}

// ---- loss -----------------------------------------------------------------------------------

/**
 * Sum over counted rows of -log softmax(z)[target], z = cap tanh(logits / cap) (or the logits).
 * dlogits = gradScale (softmax(z) - onehot) dz/dlogits, 0 on ignored rows. Each row is copied
 * to float64 scratch first, so dlogits may alias logits.
 */
export function crossEntropy(logits: F, rows: number, V: number, targets: Int32Array, softCap: number, gradScale: number, dlogits: F): number {
  const op = 'crossEntropy';
  need(op, 'logits', logits, rows * V);
  need(op, 'targets', targets, rows);
  need(op, 'dlogits', dlogits, rows * V);
  if (!(softCap >= 0)) throw new TrainKernelError(op, `softCap must be >= 0, got ${softCap}`);
  const z = new Float64Array(V);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const tgt = targets[r]!;
    if (tgt === -1) {
      for (let i = 0; i < V; i++) dlogits[o + i] = 0;
      continue;
    }
    if (tgt < 0 || tgt >= V) throw new TrainKernelError(op, `target ${tgt} at row ${r} is outside [0, ${V}) and not -1`);
    let max = -Infinity;
    for (let i = 0; i < V; i++) {
      const l = logits[o + i]!;
      z[i] = softCap > 0 ? softCap * Math.tanh(l / softCap) : l;
      if (z[i]! > max) max = z[i]!;
    }
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(z[i]! - max);
    const lse = max + Math.log(sum);
    loss += lse - z[tgt]!;
    for (let i = 0; i < V; i++) {
      let g = Math.exp(z[i]! - lse) - (i === tgt ? 1 : 0);
      if (softCap > 0) {
        const c = z[i]! / softCap;
        g *= 1 - c * c;
      }
      dlogits[o + i] = gradScale * g;
    }
  }
  return loss;
}

// ---- embedding ------------------------------------------------------------------------------

/** dtable[ids[r], :] += dy[r, :]; repeated ids add up. */
export function embeddingBackward(ids: Int32Array, dy: F, D: number, dtable: F): void {
  const op = 'embeddingBackward';
  need(op, 'dy', dy, ids.length * D);
  const V = D > 0 ? Math.floor(dtable.length / D) : 0;
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r]!;
    if (!(id >= 0 && id < V)) throw new TrainKernelError(op, `id ${id} at row ${r} is outside [0, ${V})`);
    const o = id * D;
    for (let c = 0; c < D; c++) dtable[o + c] = dtable[o + c]! + dy[r * D + c]!;
  }
}

// ---- optimizer ------------------------------------------------------------------------------

/**
 * One AdamW step (decoupled weight decay), exactly the TrainKernels.adamw formula; m, v and p
 * are computed in float64 and each rounded once when stored. The decay term uses p before
 * the step.
 */
export function adamw(
  p: F, g: F, m: F, v: F, step: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, gradScale: number,
): void {
  const op = 'adamw';
  same(op, 'p, g, m, v', p, g, m, v);
  if (!Number.isInteger(step) || step < 1) throw new TrainKernelError(op, `step must be an integer >= 1 (1-based), got ${step}`);
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * gradScale;
    const mi = beta1 * m[i]! + (1 - beta1) * gi;
    const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i]!;
    p[i] = pi - lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + wd * pi);
  }
}

// ---- image ops (the diffusion networks) ---------------------------------------------------------

function checkConv(op: string, s: ConvShape): void {
  for (const k of ['B', 'H', 'W', 'Ci', 'Co', 'KH', 'KW', 'pad', 'padEnd', 'OH', 'OW'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 0) throw new TrainKernelError(op, `${k} must be an integer >= 0, got ${s[k]}`);
  }
  if (!Number.isInteger(s.stride) || s.stride < 1) throw new TrainKernelError(op, `stride must be an integer >= 1, got ${s.stride}`);
  const OH = Math.floor((s.H + s.pad + s.padEnd - s.KH) / s.stride) + 1, OW = Math.floor((s.W + s.pad + s.padEnd - s.KW) / s.stride) + 1;
  if (OH !== s.OH || OW !== s.OW) throw new TrainKernelError(op, `OH x OW is ${s.OH}x${s.OW}, the shape gives ${OH}x${OW}`);
}

/** Direct convolution in float64 (no im2col: this is the written-down sum). */
export function conv2d(x: F, w: F, b: F | null, s: ConvShape, out: F): void {
  const op = 'conv2d';
  checkConv(op, s);
  const { B, H, W, Ci, Co, KH, KW, OH, OW } = s;
  need(op, 'x', x, B * H * W * Ci);
  need(op, 'w', w, Co * KH * KW * Ci);
  if (b) need(op, 'b', b, Co);
  need(op, 'out', out, B * OH * OW * Co);
  directConv2d(x, w, b, s, out);
}

/**
 * The adjoint sums of the same taps: dx[n, iy, ix, c] = sum dy[n, oy, ox, co] w[co, ky, kx, c],
 * dw[co, ky, kx, c] += sum dy[n, oy, ox, co] x[n, iy, ix, c], db[co] += sum dy[n, oy, ox, co],
 * over every (n, oy, ox, ky, kx) whose tap iy = oy stride - pad + ky, ix = ... is inside x.
 */
export function conv2dBackward(x: F, w: F, dy: F, s: ConvShape, dx: F | null, dw: F | null, db: F | null): void {
  const op = 'conv2dBackward';
  checkConv(op, s);
  const { B, H, W, Ci, Co, KH, KW, OH, OW } = s;
  need(op, 'x', x, B * H * W * Ci);
  need(op, 'w', w, Co * KH * KW * Ci);
  need(op, 'dy', dy, B * OH * OW * Co);
  if (dx) need(op, 'dx', dx, B * H * W * Ci);
  if (dw) need(op, 'dw', dw, Co * KH * KW * Ci);
  if (db) need(op, 'db', db, Co);
  const K = KH * KW * Ci;
  const dxA = dx ? new Float64Array(B * H * W * Ci) : null;
  const dwA = dw ? new Float64Array(Co * K) : null;
  const dbA = new Float64Array(Co);
  for (let n = 0; n < B; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const yo = ((n * OH + oy) * OW + ox) * Co;
        for (let co = 0; co < Co; co++) {
          const g = dy[yo + co]!;
          dbA[co] += g;
          convTaps(s, n, oy, ox, (xi, wo) => {
            const wi = co * K + wo;
            if (dxA) for (let c = 0; c < Ci; c++) dxA[xi + c] += g * w[wi + c]!;
            if (dwA) for (let c = 0; c < Ci; c++) dwA[wi + c] += g * x[xi + c]!;
          });
        }
      }
    }
  }
  if (dx) for (let i = 0; i < dxA!.length; i++) dx[i] = dxA![i]!;
  if (dw) for (let i = 0; i < dwA!.length; i++) dw[i] = dw[i]! + dwA![i]!;
  if (db) for (let i = 0; i < Co; i++) db[i] = db[i]! + dbA[i]!;
}

function checkGroups(op: string, B: number, N: number, C: number, G: number): void {
  if (!(Number.isInteger(G) && G >= 1 && C % G === 0)) throw new TrainKernelError(op, `${C} channels do not split into ${G} groups`);
  for (const [k, v] of [['B', B], ['N', N], ['C', C]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new TrainKernelError(op, `${k} must be an integer >= 0, got ${v}`);
  }
}

export function groupNorm(x: F, w: F, b: F, B: number, N: number, C: number, G: number, eps: number, silu_: boolean, out: F, mean: F, rstd: F): void {
  const op = 'groupNorm';
  checkGroups(op, B, N, C, G);
  for (const [n, a, len] of [['x', x, B * N * C], ['w', w, C], ['b', b, C], ['out', out, B * N * C], ['mean', mean, B * G], ['rstd', rstd, B * G]] as const) {
    need(op, n, a, len);
  }
  const cpg = C / G;
  for (let n = 0; n < B; n++) {
    const base = n * N * C;
    for (let g = 0; g < G; g++) {
      let sum = 0;
      for (let p = 0; p < N; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) sum += x[base + p * C + c]!;
      const mu = sum / (N * cpg);
      let sq = 0;
      for (let p = 0; p < N; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) sq += (x[base + p * C + c]! - mu) ** 2;
      const inv = 1 / Math.sqrt(sq / (N * cpg) + eps);
      mean[n * G + g] = mu;
      rstd[n * G + g] = inv;
      for (let p = 0; p < N; p++) {
        for (let c = g * cpg; c < (g + 1) * cpg; c++) {
          const y = (x[base + p * C + c]! - mu) * inv * w[c]! + b[c]!;
          out[base + p * C + c] = silu_ ? silu(y) : y;
        }
      }
    }
  }
}

/**
 * With xhat = (x - mean) rstd, y = xhat w + b and e = dy (silu'(y) when fused): per (item, group)
 * of M = N C/G values, g = e w: dx = rstd (g - mean(g) - xhat mean(g xhat)); dw += e xhat; db += e.
 */
export function groupNormBackward(
  x: F, w: F, b: F, mean: F, rstd: F, dy: F, B: number, N: number, C: number, G: number, silu_: boolean,
  dx: F | null, dw: F | null, db: F | null,
): void {
  const op = 'groupNormBackward';
  checkGroups(op, B, N, C, G);
  for (const [n, a, len] of [['x', x, B * N * C], ['w', w, C], ['b', b, C], ['mean', mean, B * G], ['rstd', rstd, B * G], ['dy', dy, B * N * C]] as const) {
    need(op, n, a, len);
  }
  if (dx) need(op, 'dx', dx, B * N * C);
  if (dw) need(op, 'dw', dw, C);
  if (db) need(op, 'db', db, C);
  const cpg = C / G, M = N * cpg;
  const dwA = new Float64Array(C), dbA = new Float64Array(C);
  const e = new Float64Array(M), xh = new Float64Array(M);
  for (let n = 0; n < B; n++) {
    const base = n * N * C;
    for (let g = 0; g < G; g++) {
      const mu = mean[n * G + g]!, inv = rstd[n * G + g]!;
      let sg = 0, sgx = 0, i = 0;
      for (let p = 0; p < N; p++) {
        for (let c = g * cpg; c < (g + 1) * cpg; c++, i++) {
          const o = base + p * C + c;
          const xhat = (x[o]! - mu) * inv;
          const ei = silu_ ? dy[o]! * siluGrad(xhat * w[c]! + b[c]!) : dy[o]!;
          e[i] = ei;
          xh[i] = xhat;
          sg += ei * w[c]!;
          sgx += ei * w[c]! * xhat;
          dwA[c] += ei * xhat;
          dbA[c] += ei;
        }
      }
      if (!dx) continue;
      sg /= M;
      sgx /= M;
      i = 0;
      for (let p = 0; p < N; p++) {
        for (let c = g * cpg; c < (g + 1) * cpg; c++, i++) dx[base + p * C + c] = inv * (e[i]! * w[c]! - sg - xh[i]! * sgx);
      }
    }
  }
  if (dw) for (let c = 0; c < C; c++) dw[c] = dw[c]! + dwA[c]!;
  if (db) for (let c = 0; c < C; c++) db[c] = db[c]! + dbA[c]!;
}

export function upsample2x(x: F, B: number, H: number, W: number, C: number, out: F): void {
  need('upsample2x', 'x', x, B * H * W * C);
  need('upsample2x', 'out', out, B * 4 * H * W * C);
  for (let n = 0; n < B; n++) {
    for (let y = 0; y < 2 * H; y++) {
      for (let xx = 0; xx < 2 * W; xx++) {
        const src = ((n * H + (y >> 1)) * W + (xx >> 1)) * C, dst = ((n * 2 * H + y) * 2 * W + xx) * C;
        for (let c = 0; c < C; c++) out[dst + c] = x[src + c]!;
      }
    }
  }
}

export function upsample2xBackward(dy: F, B: number, H: number, W: number, C: number, dx: F): void {
  need('upsample2xBackward', 'dy', dy, B * 4 * H * W * C);
  need('upsample2xBackward', 'dx', dx, B * H * W * C);
  for (let n = 0; n < B; n++) {
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        const dst = ((n * H + y) * W + xx) * C;
        const r0 = ((n * 2 * H + 2 * y) * 2 * W + 2 * xx) * C, r1 = r0 + 2 * W * C;
        // top-left, top-right, bottom-left, bottom-right: the order the native kernel adds in
        for (let c = 0; c < C; c++) dx[dst + c] = dy[r0 + c]! + dy[r0 + C + c]! + dy[r1 + c]! + dy[r1 + C + c]!;
      }
    }
  }
}

function checkMha(op: string, q: F, k: F, v: F, B: number, Tq: number, Tk: number, H: number, D: number): void {
  for (const [n, val] of [['B', B], ['Tq', Tq], ['Tk', Tk], ['H', H], ['D', D]] as const) {
    if (!Number.isInteger(val) || val < 0) throw new TrainKernelError(op, `${n} must be an integer >= 0, got ${val}`);
  }
  if (Tk === 0 && Tq > 0) throw new TrainKernelError(op, 'no keys to attend to (Tk = 0)');
  need(op, 'q', q, B * Tq * H * D);
  need(op, 'k', k, B * Tk * H * D);
  need(op, 'v', v, B * Tk * H * D);
}

/** Scaled scores of query (b, t, h) against every key of item b. */
function mhaScores(q: F, k: F, b: number, t: number, h: number, Tq: number, Tk: number, H: number, D: number, scale: number, s: Float64Array): void {
  const qo = ((b * Tq + t) * H + h) * D;
  for (let j = 0; j < Tk; j++) {
    const ko = ((b * Tk + j) * H + h) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
    s[j] = scale * dot;
  }
}

export function mha(q: F, k: F, v: F, B: number, Tq: number, Tk: number, H: number, D: number, scale: number, out: F, lse: F): void {
  const op = 'mha';
  checkMha(op, q, k, v, B, Tq, Tk, H, D);
  need(op, 'out', out, B * Tq * H * D);
  need(op, 'lse', lse, B * Tq * H);
  const s = new Float64Array(Tk), acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Tq; t++) {
      for (let h = 0; h < H; h++) {
        mhaScores(q, k, b, t, h, Tq, Tk, H, D, scale, s);
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) max = Math.max(max, s[j]!);
        let sum = 0;
        for (let j = 0; j < Tk; j++) sum += Math.exp(s[j]! - max);
        const l = max + Math.log(sum);
        acc.fill(0);
        for (let j = 0; j < Tk; j++) {
          const p = Math.exp(s[j]! - l), vo = ((b * Tk + j) * H + h) * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vo + d]!;
        }
        const row = (b * Tq + t) * H + h;
        for (let d = 0; d < D; d++) out[row * D + d] = acc[d]!;
        lse[row] = l;
      }
    }
  }
}

/**
 * p_j = exp(s_j - lse) recomputed; dP_j = dout . v_j, delta = sum_j p_j dP_j (from p, not
 * dout . out, as attentionBackward does); ds_j = scale p_j (dP_j - delta);
 * dq = sum_j ds_j k_j, dk_j += ds_j q, dv_j += p_j dout.
 */
export function mhaBackward(
  q: F, k: F, v: F, out: F, lse: F, dout: F, B: number, Tq: number, Tk: number, H: number, D: number, scale: number,
  dq: F, dk: F, dv: F,
): void {
  const op = 'mhaBackward';
  checkMha(op, q, k, v, B, Tq, Tk, H, D);
  for (const [n, a, len] of [['out', out, B * Tq * H * D], ['lse', lse, B * Tq * H], ['dout', dout, B * Tq * H * D], ['dq', dq, B * Tq * H * D], ['dk', dk, B * Tk * H * D], ['dv', dv, B * Tk * H * D]] as const) {
    need(op, n, a, len);
  }
  const dqA = new Float64Array(B * Tq * H * D), dkA = new Float64Array(B * Tk * H * D), dvA = new Float64Array(B * Tk * H * D);
  const s = new Float64Array(Tk), p = new Float64Array(Tk), dP = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Tq; t++) {
      for (let h = 0; h < H; h++) {
        mhaScores(q, k, b, t, h, Tq, Tk, H, D, scale, s);
        const row = (b * Tq + t) * H + h, l = lse[row]!;
        let delta = 0;
        for (let j = 0; j < Tk; j++) {
          p[j] = Math.exp(s[j]! - l);
          const vo = ((b * Tk + j) * H + h) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dout[row * D + d]! * v[vo + d]!;
          dP[j] = dot;
          delta += p[j]! * dot;
        }
        for (let j = 0; j < Tk; j++) {
          const kvo = ((b * Tk + j) * H + h) * D;
          const ds = scale * p[j]! * (dP[j]! - delta);
          for (let d = 0; d < D; d++) {
            dqA[row * D + d] += ds * k[kvo + d]!;
            dkA[kvo + d] += ds * q[row * D + d]!;
            dvA[kvo + d] += p[j]! * dout[row * D + d]!;
          }
        }
      }
    }
  }
  for (let i = 0; i < dqA.length; i++) dq[i] = dqA[i]!;
  for (let i = 0; i < dkA.length; i++) dk[i] = dkA[i]!;
  for (let i = 0; i < dvA.length; i++) dv[i] = dvA[i]!;
}

const QUICK_GELU = 1.702;

function checkAct(op: string, a: PointAct): void {
  if (a !== 'silu' && a !== 'quick_gelu') throw new TrainKernelError(op, `unknown activation '${String(a)}'`);
}

/** silu(x) = x sigmoid(x); quick_gelu(x) = x sigmoid(1.702 x). */
export function act(a: PointAct, x: F, out: F): void {
  checkAct('act', a);
  same('act', 'x, out', x, out);
  const c = a === 'silu' ? 1 : QUICK_GELU;
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * sigmoid(c * x[i]!);
}

/** d/dx x sigmoid(c x) = s + c x s (1 - s), s = sigmoid(c x). */
export function actBackward(a: PointAct, x: F, dy: F, dx: F): void {
  checkAct('actBackward', a);
  same('actBackward', 'x, dy, dx', x, dy, dx);
  const c = a === 'silu' ? 1 : QUICK_GELU;
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(c * x[i]!);
    dx[i] = dy[i]! * (s + c * x[i]! * s * (1 - s));
  }
}

export function addRows(x: F, v: F, G: number, R: number, C: number, out: F): void {
  need('addRows', 'x', x, G * R * C);
  need('addRows', 'v', v, G * C);
  need('addRows', 'out', out, G * R * C);
  for (let g = 0; g < G; g++) {
    for (let r = 0; r < R; r++) {
      const o = (g * R + r) * C;
      for (let c = 0; c < C; c++) out[o + c] = x[o + c]! + v[g * C + c]!;
    }
  }
}

export function sumRows(x: F, G: number, R: number, C: number, out: F): void {
  need('sumRows', 'x', x, G * R * C);
  need('sumRows', 'out', out, G * C);
  const acc = new Float64Array(C);
  for (let g = 0; g < G; g++) {
    acc.fill(0);
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) acc[c] += x[(g * R + r) * C + c]!;
    for (let c = 0; c < C; c++) out[g * C + c] = acc[c]!;
  }
}

// ---- the TrainKernels face ------------------------------------------------------------------

/**
 * The reference implementation of TrainKernels. Its methods accept float64 buffers too (a
 * wider type than the interface asks), which the gradient checks rely on.
 */
export class RefTrainKernels implements TrainKernels {
  readonly name = 'ref';

  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: F, lda: number, B: F, ldb: number, beta: number, C: F, ldc: number,
  ): void {
    gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  axpy(a: number, x: F, y: F): void {
    axpy(a, x, y);
  }

  sumSquares(x: F): number {
    return sumSquares(x);
  }

  scaleInPlace(x: F, s: number): void {
    scaleInPlace(x, s);
  }

  rmsNorm(x: F, w: F, rows: number, cols: number, eps: number, out: F, rstd: F): void {
    rmsNorm(x, w, rows, cols, eps, out, rstd);
  }

  rmsNormBackward(x: F, w: F, rstd: F, dy: F, rows: number, cols: number, dx: F, dw: F): void {
    rmsNormBackward(x, w, rstd, dy, rows, cols, dx, dw);
  }

  layerNorm(x: F, w: F, b: F | null, rows: number, cols: number, eps: number, out: F, mean: F, rstd: F): void {
    layerNorm(x, w, b, rows, cols, eps, out, mean, rstd);
  }

  layerNormBackward(x: F, w: F, mean: F, rstd: F, dy: F, rows: number, cols: number, dx: F, dw: F, db: F | null): void {
    layerNormBackward(x, w, mean, rstd, dy, rows, cols, dx, dw, db);
  }

  swiglu(g: F, u: F, out: F): void {
    swiglu(g, u, out);
  }

  swigluBackward(g: F, u: F, dy: F, dg: F, du: F): void {
    swigluBackward(g, u, dy, dg, du);
  }

  geglu(g: F, u: F, out: F, approx: Gelu): void {
    geglu(g, u, out, approx);
  }

  gegluBackward(g: F, u: F, dy: F, dg: F, du: F, approx: Gelu): void {
    gegluBackward(g, u, dy, dg, du, approx);
  }

  gelu(x: F, out: F, approx: Gelu): void {
    gelu(x, out, approx);
  }

  geluBackward(x: F, dy: F, dx: F, approx: Gelu): void {
    geluBackward(x, dy, dx, approx);
  }

  rope(x: F, rows: number, H: number, D: number, positions: Int32Array, opts: RopeOptions, inverse: boolean): void {
    rope(x, rows, H, D, positions, opts, inverse);
  }

  attention(
    q: F, k: F, v: F, seg: Int32Array, B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    out: F, lse: F,
  ): void {
    attention(q, k, v, seg, B, T, Hq, Hkv, D, opts, out, lse);
  }

  attentionBackward(
    q: F, k: F, v: F, seg: Int32Array, out: F, lse: F, dout: F,
    B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    dq: F, dk: F, dv: F,
  ): void {
    attentionBackward(q, k, v, seg, out, lse, dout, B, T, Hq, Hkv, D, opts, dq, dk, dv);
  }

  crossEntropy(logits: F, rows: number, V: number, targets: Int32Array, softCap: number, gradScale: number, dlogits: F): number {
    return crossEntropy(logits, rows, V, targets, softCap, gradScale, dlogits);
  }

  embeddingBackward(ids: Int32Array, dy: F, D: number, dtable: F): void {
    embeddingBackward(ids, dy, D, dtable);
  }

  adamw(p: F, g: F, m: F, v: F, step: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, gradScale: number): void {
    adamw(p, g, m, v, step, lr, beta1, beta2, eps, wd, gradScale);
  }

  conv2d(x: F, w: F, b: F | null, s: ConvShape, out: F): void {
    conv2d(x, w, b, s, out);
  }

  conv2dBackward(x: F, w: F, dy: F, s: ConvShape, dx: F | null, dw: F | null, db: F | null): void {
    conv2dBackward(x, w, dy, s, dx, dw, db);
  }

  groupNorm(x: F, w: F, b: F, B: number, N: number, C: number, G: number, eps: number, silu_: boolean, out: F, mean: F, rstd: F): void {
    groupNorm(x, w, b, B, N, C, G, eps, silu_, out, mean, rstd);
  }

  groupNormBackward(
    x: F, w: F, b: F, mean: F, rstd: F, dy: F, B: number, N: number, C: number, G: number, silu_: boolean,
    dx: F | null, dw: F | null, db: F | null,
  ): void {
    groupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu_, dx, dw, db);
  }

  upsample2x(x: F, B: number, H: number, W: number, C: number, out: F): void {
    upsample2x(x, B, H, W, C, out);
  }

  upsample2xBackward(dy: F, B: number, H: number, W: number, C: number, dx: F): void {
    upsample2xBackward(dy, B, H, W, C, dx);
  }

  mha(q: F, k: F, v: F, B: number, Tq: number, Tk: number, H: number, D: number, scale: number, out: F, lse: F): void {
    mha(q, k, v, B, Tq, Tk, H, D, scale, out, lse);
  }

  mhaBackward(
    q: F, k: F, v: F, out: F, lse: F, dout: F, B: number, Tq: number, Tk: number, H: number, D: number, scale: number, dq: F, dk: F, dv: F,
  ): void {
    mhaBackward(q, k, v, out, lse, dout, B, Tq, Tk, H, D, scale, dq, dk, dv);
  }

  act(a: PointAct, x: F, out: F): void {
    act(a, x, out);
  }

  actBackward(a: PointAct, x: F, dy: F, dx: F): void {
    actBackward(a, x, dy, dx);
  }

  addRows(x: F, v: F, G: number, R: number, C: number, out: F): void {
    addRows(x, v, G, R, C, out);
  }

  sumRows(x: F, G: number, R: number, C: number, out: F): void {
    sumRows(x, G, R, C, out);
  }
}

export const refTrainKernels = new RefTrainKernels();
