// The training kernels' contract. Two implementations, as for inference: `ref`
// (src/tensor/train-ref.ts, plain TypeScript with float64 accumulation, the oracle that the
// finite-difference gradient checks run on) and `cpu` (src/tensor/train-cpu.ts, the native
// core). Every buffer is a contiguous row-major f32 array (a subarray view is fine); shapes are
// passed explicitly. Kernels never allocate their outputs: the caller owns every buffer.
//
// Backward kernels follow one rule: parameter gradients (dw, db, dtable) ACCUMULATE (+=), so
// several uses of a weight in one step add up; activation gradients (dx, dq, dg ...) are
// OVERWRITTEN.

import type { RopeOptions } from './backend.ts';

export type Gelu = 'tanh' | 'erf';

export interface AttnTrainOptions {
  /** Multiplier on q.k. */
  scale: number;
  /** Gemma-2 logit soft-cap s -> cap * tanh(s / cap); 0: none. */
  softCap: number;
  /** Sliding window: query at position p sees keys j with p - window < j <= p; 0: none. */
  window: number;
}

export interface TrainKernels extends ImageTrainKernels {
  readonly name: string;

  /**
   * C[M, N] = alpha * op(A) . op(B) + beta * C, row-major.
   *   transA false: A is [M, K] with rows lda apart;  true: A is stored [K, M] (rows lda apart).
   *   transB false: B is [K, N] with rows ldb apart;  true: B is stored [N, K] (rows ldb apart).
   * beta = 0 overwrites C without reading it (NaN/garbage in C is ignored).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
  ): void;

  /** y += a * x (same length). */
  axpy(a: number, x: Float32Array, y: Float32Array): void;
  /** Sum of x[i]^2 (accumulated in float64 on ref, f64 or pairwise f32 on cpu). */
  sumSquares(x: Float32Array): number;
  /** x *= s in place. */
  scaleInPlace(x: Float32Array, s: number): void;

  /** out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w; saves rstd[r] = 1 / sqrt(mean + eps). */
  rmsNorm(x: Float32Array, w: Float32Array, rows: number, cols: number, eps: number, out: Float32Array, rstd: Float32Array): void;
  /** dx (overwritten), dw += (accumulated), from the saved rstd. */
  rmsNormBackward(
    x: Float32Array, w: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number,
    dx: Float32Array, dw: Float32Array,
  ): void;

  /** out[r] = (x[r] - mean) * rstd * w + b (b may be null); saves mean[r], rstd[r]. */
  layerNorm(
    x: Float32Array, w: Float32Array, b: Float32Array | null, rows: number, cols: number, eps: number,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void;
  /** dx overwritten; dw += ; db += (db null when there is no bias). */
  layerNormBackward(
    x: Float32Array, w: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number,
    dx: Float32Array, dw: Float32Array, db: Float32Array | null,
  ): void;

  /** out = silu(g) * u, elementwise. */
  swiglu(g: Float32Array, u: Float32Array, out: Float32Array): void;
  /** dg, du overwritten. */
  swigluBackward(g: Float32Array, u: Float32Array, dy: Float32Array, dg: Float32Array, du: Float32Array): void;
  /** out = gelu(g) * u. */
  geglu(g: Float32Array, u: Float32Array, out: Float32Array, approx: Gelu): void;
  gegluBackward(g: Float32Array, u: Float32Array, dy: Float32Array, dg: Float32Array, du: Float32Array, approx: Gelu): void;
  /** out = gelu(x). */
  gelu(x: Float32Array, out: Float32Array, approx: Gelu): void;
  /** dx overwritten. */
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, approx: Gelu): void;

  /**
   * Rotary embedding in place on x[rows, H, D] at positions[rows] (the inference backend's
   * semantics and options). inverse = true rotates by the opposite angle: that is the
   * backward (the rotation is orthogonal), applied to the gradient.
   */
  rope(x: Float32Array, rows: number, H: number, D: number, positions: Int32Array, opts: RopeOptions, inverse: boolean): void;

  /**
   * Causal attention over B packed sequences of T tokens. q [B*T, Hq, D]; k, v [B*T, Hkv, D];
   * Hq a multiple of Hkv (query head h uses kv head floor(h / (Hq / Hkv))). seg[B*T] holds a
   * document id per token: query t of sequence b sees key s of the same sequence iff s <= t,
   * seg[b*T+s] === seg[b*T+t], and (window > 0) t - s < window. pos is not needed: the window
   * counts tokens. out [B*T, Hq, D]; lse [B*T, Hq] = log-sum-exp of the (scaled, capped)
   * scores, kept for the backward.
   */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array,
    B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    out: Float32Array, lse: Float32Array,
  ): void;
  /** dq, dk, dv overwritten (dk/dv summed over the query heads that share a kv head). */
  attentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void;

  /**
   * Softmax cross-entropy over logits [rows, V]. targets[r] = -1 ignores row r. Optional
   * final soft-cap (Gemma 2): logits are first mapped z -> cap * tanh(z / cap) (cap 0: none).
   * Returns the SUM over counted rows of -log softmax(z)[target]. Writes
   * dlogits = gradScale * d(loss_r)/d(logits_r) for counted rows and 0 for ignored rows.
   * dlogits may be the logits buffer itself.
   */
  crossEntropy(
    logits: Float32Array, rows: number, V: number, targets: Int32Array, softCap: number, gradScale: number, dlogits: Float32Array,
  ): number;

  /** dtable[ids[r], :] += dy[r, :] for r < ids.length; D columns. */
  embeddingBackward(ids: Int32Array, dy: Float32Array, D: number, dtable: Float32Array): void;

  /**
   * One AdamW step over n = p.length values (step is 1-based, for bias correction):
   *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
   *   p -= lr * ( (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps) + wd * p )
   * g is read as g * gradScale (global-norm clipping and accumulation averaging folded in).
   */
  adamw(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
    step: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, gradScale: number,
  ): void;
}

// ---- image ops (the diffusion networks, issue 22) ------------------------------------------------

/** Pointwise activations with a backward of their own (GELU has gelu/geluBackward above). */
export type PointAct = 'silu' | 'quick_gelu';

/**
 * A 2-D convolution's shape, NHWC: x [B, H, W, Ci], w [Co, KH, KW, Ci] (the inference layout,
 * src/tensor/backend.ts), b [Co], out [B, OH, OW, Co]. `pad` pads the top and left, `padEnd`
 * the bottom and right (the VAE encoder's downsampling pads (0, 1, 0, 1)).
 */
export interface ConvShape {
  B: number; H: number; W: number; Ci: number;
  Co: number; KH: number; KW: number;
  stride: number; pad: number; padEnd: number;
  OH: number; OW: number;
}

/** The ConvShape of x [B, H, W, Ci] convolved with w [Co, KH, KW, Ci]; errors name what is wrong. */
export function convShape(x: readonly number[], w: readonly number[], stride: number, pad: number, padEnd = pad): ConvShape {
  if (x.length !== 4) throw new Error(`conv2d: x must be [B, H, W, Ci], got [${x}]`);
  if (w.length !== 4) throw new Error(`conv2d: w must be [Co, KH, KW, Ci], got [${w}]`);
  const [B, H, W, Ci] = x as [number, number, number, number];
  const [Co, KH, KW, wCi] = w as [number, number, number, number];
  if (wCi !== Ci) throw new Error(`conv2d: x has ${Ci} channels but w [${w}] expects ${wCi}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`conv2d: stride must be an integer >= 1, got ${stride}`);
  if (!Number.isInteger(pad) || pad < 0 || !Number.isInteger(padEnd) || padEnd < 0) throw new Error(`conv2d: pad ${pad} / padEnd ${padEnd} must be integers >= 0`);
  const OH = Math.floor((H + pad + padEnd - KH) / stride) + 1, OW = Math.floor((W + pad + padEnd - KW) / stride) + 1;
  if (!(OH >= 1 && OW >= 1)) throw new Error(`conv2d: a ${KH}x${KW} kernel does not fit the padded ${H}x${W} input`);
  return { B, H, W, Ci, Co, KH, KW, stride, pad, padEnd, OH, OW };
}

/**
 * The training kernels of the diffusion networks (UNet, VAE, CLIP). Same rules as above:
 * parameter gradients (dw, db) ACCUMULATE, activation gradients OVERWRITE; a null gradient
 * output skips that work entirely (frozen weights, inputs that need no gradient).
 */
export interface ImageTrainKernels {
  /** out = conv(x, w) + b (b may be null). */
  conv2d(x: Float32Array, w: Float32Array, b: Float32Array | null, s: ConvShape, out: Float32Array): void;
  /** dx overwritten; dw += ; db += sum of dy over pixels. */
  conv2dBackward(
    x: Float32Array, w: Float32Array, dy: Float32Array, s: ConvShape,
    dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void;

  /**
   * GroupNorm over x [B, N, C] (N pixels): G groups of C / G channels, each normalised over its
   * channels and the N pixels of one batch item (population variance), times w[c] plus b[c],
   * then SiLU when `silu`. Saves mean, rstd [B, G].
   */
  groupNorm(
    x: Float32Array, w: Float32Array, b: Float32Array, B: number, N: number, C: number, G: number, eps: number, silu: boolean,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void;
  /** dx overwritten; dw += ; db += (any may be null). The SiLU input is recomputed from x. */
  groupNormBackward(
    x: Float32Array, w: Float32Array, b: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
    B: number, N: number, C: number, G: number, silu: boolean,
    dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void;

  /** Nearest 2x: x [B, H, W, C] -> out [B, 2H, 2W, C]. */
  upsample2x(x: Float32Array, B: number, H: number, W: number, C: number, out: Float32Array): void;
  /** dx [B, H, W, C] (overwritten) = the sum of each 2x2 block of dy [B, 2H, 2W, C]. */
  upsample2xBackward(dy: Float32Array, B: number, H: number, W: number, C: number, dx: Float32Array): void;

  /**
   * Non-causal multi-head attention, q [B, Tq, H, D], k and v [B, Tk, H, D] -> out [B, Tq, H, D];
   * lse [B, Tq, H] = the log-sum-exp of the scaled scores, for the backward.
   */
  mha(
    q: Float32Array, k: Float32Array, v: Float32Array, B: number, Tq: number, Tk: number, H: number, D: number, scale: number,
    out: Float32Array, lse: Float32Array,
  ): void;
  /** dq, dk, dv overwritten; the probabilities are recomputed from lse (never stored). */
  mhaBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    B: number, Tq: number, Tk: number, H: number, D: number, scale: number,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void;

  /** out = act(x): silu x sigmoid(x); quick_gelu x sigmoid(1.702 x) (CLIP). */
  act(a: PointAct, x: Float32Array, out: Float32Array): void;
  /** dx overwritten. */
  actBackward(a: PointAct, x: Float32Array, dy: Float32Array, dx: Float32Array): void;

  /** out[g, r, c] = x[g, r, c] + v[g, c] (out may be x): a bias, a per-batch-item time embedding. */
  addRows(x: Float32Array, v: Float32Array, G: number, R: number, C: number, out: Float32Array): void;
  /** out[g, c] = sum over r < R of x[g, r, c] (overwritten): bias and per-batch-item gradients. */
  sumRows(x: Float32Array, G: number, R: number, C: number, out: Float32Array): void;
}
