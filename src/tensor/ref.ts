// The reference backend: plain TypeScript, float64 accumulation, slow on purpose.
//
// This file is the oracle every native kernel is tested against, and the written-down math
// of every op. Each op first runs the shared argument check from check.ts (so a bad call
// fails with the same message on every backend), then computes in float64 and rounds to
// f32 exactly once, when it stores a result.
//
// Activations are f32 tensors that may be row-strided views: we read and write them
// through a Float32Array over the tensor's byte span and the element strides the checks
// return. Weights of any dtype are decoded a row at a time with dtype.ts's `decode`.

import type { AttentionOptions, Backend, Conv2dOptions, GeluApprox, PoolRole, RopeOptions } from './backend.ts';
import {
  checkArgmax,
  checkAttention,
  checkConv2d,
  checkGroupNorm,
  checkUpsample2x,
  checkCombineRows,
  checkRows,
  checkSoftCap,
  checkTopkRoute,
  checkAttentionDecode,
  checkAttentionPrefill,
  checkBinary,
  checkEmbedding,
  checkGated,
  checkKvWrite,
  checkMatmul,
  checkMatmulMulti,
  checkNorm,
  checkRope,
  checkUnary,
  type Heads,
  type Mat,
  type Pool,
} from './check.ts';
import { bytesFor, decode, isKQuant, dequantizeQ8_0, f16BitsToF32, f32ToF16Bits, quantizeQ8_0 } from './dtype.ts';
import { dotLegacy, quantizeQ8Act } from './legacyq.ts';
import { dotQ4_K_Q8_K, dotQ5_K_Q8_K, dotQ6_K_Q8_K, quantizeQ8_K } from './kquants.ts';
import { dotIQ4_XS_Q8_K, dotQ2_K_Q8_K, dotQ3_K_Q8_K } from './kquants2.ts';
import type { Tensor } from './tensor.ts';
import type { ConvShape } from './train-kernels.ts';

// ---- element access -----------------------------------------------------------------------

/** The f32 elements of a tensor's span: a view when the bytes are 4-byte aligned, else a copy. */
function readF32(t: Tensor): Float32Array {
  const n = t.byteSpan() / 4;
  if (t.data.byteOffset % 4 === 0) return new Float32Array(t.data.buffer, t.data.byteOffset, n);
  return new Float32Array(t.data.slice(0, n * 4).buffer);
}

/**
 * Run `fn` on a writable Float32Array over `t`'s span. Unaligned bytes are handled by
 * working on an aligned copy and copying it back.
 */
function writeF32(t: Tensor, fn: (o: Float32Array) => void): void {
  const n = t.byteSpan() / 4;
  if (t.data.byteOffset % 4 === 0) return fn(new Float32Array(t.data.buffer, t.data.byteOffset, n));
  const tmp = new Uint8Array(t.data.subarray(0, n * 4)); // copy: keeps the bytes between strided rows
  fn(new Float32Array(tmp.buffer));
  t.data.set(tmp);
}

/** Element reader for a KV pool (f32 or f16), indexed in elements of the contiguous pool. */
function poolReader(cache: Tensor): (i: number) => number {
  const n = cache.numel;
  if (cache.dtype === 'q8_0') {
    // rows of q8_0 blocks: element i is in block i / 32, value d * q (exact in float64)
    const b = cache.data;
    const i8 = new Int8Array(b.buffer, b.byteOffset, b.byteLength);
    return (i) => {
      const o = (i >> 5) * 34;
      return f16BitsToF32(b[o]! | (b[o + 1]! << 8)) * i8[o + 2 + (i & 31)]!;
    };
  }
  if (cache.dtype === 'f32') {
    const a = readF32(cache);
    return (i) => a[i]!;
  }
  const bytes = cache.data;
  const h =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : new Uint16Array(bytes.slice(0, n * 2).buffer);
  return (i) => f16BitsToF32(h[i]!);
}

/** Element index of (block, head, token offset, dim 0) in a contiguous key or value pool. */
function poolIndex(p: Pool, role: PoolRole, block: number, head: number, off: number): number {
  return role === 'k' && p.keyMajor ? (block * p.Hkv + head) * p.D * p.blockSize + off : ((block * p.Hkv + head) * p.blockSize + off) * p.D;
}

/** Distance between consecutive head dims of one token in a key or value pool. */
function dimStride(p: Pool, role: PoolRole): number {
  return role === 'k' && p.keyMajor ? p.blockSize : 1;
}

// ---- scalar math ----------------------------------------------------------------------------

// W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
// (1969) 631-638; coefficients as in Netlib SPECFUN calerf.f. Relative error < 4e-16 in double
// (checked against SciPy on [-7, 7]).
const ERF_A = [3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947, 0.185777706184603153];
const ERF_B = [23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062];
const ERF_C = [
  0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131, 881.95222124176909, 1712.04761263407058,
  2051.07837782607147, 1230.33935479799725, 2.15311535474403846e-8,
];
const ERF_D = [
  15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019, 3290.79923573345963, 4362.61909014324716,
  3439.36767414372164, 1230.33935480374942,
];
const ERF_P = [0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766, 6.58749161529837803e-4, 0.0163153871373020978];
const ERF_Q = [2.56852019228982242, 1.87295284992346047, 0.527905102951428412, 0.0605183413124413191, 0.00233520497626869185];
const ONE_OVER_SQRT_PI = 0.56418958354775628695;

/** erfc(y) for y > 0.46875 (Cody's second and third intervals). */
function erfcTail(y: number): number {
  let r: number;
  if (y <= 4) {
    let num = ERF_C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + ERF_C[i]!) * y;
      den = (den + ERF_D[i]!) * y;
    }
    r = (num + ERF_C[7]!) / (den + ERF_D[7]!);
  } else {
    if (y >= 26.543) return 0; // erfc underflows
    const z = 1 / (y * y);
    let num = ERF_P[5]! * z;
    let den = z;
    for (let i = 0; i < 4; i++) {
      num = (num + ERF_P[i]!) * z;
      den = (den + ERF_Q[i]!) * z;
    }
    r = (z * (num + ERF_P[4]!)) / (den + ERF_Q[4]!);
    r = (ONE_OVER_SQRT_PI - r) / y;
  }
  // exp(-y^2) computed as exp(-ys^2) * exp(-(y-ys)(y+ys)) with ys = y rounded down to 1/16,
  // which avoids the cancellation error of squaring y directly.
  const ys = Math.trunc(y * 16) / 16;
  const del = (y - ys) * (y + ys);
  return Math.exp(-ys * ys) * Math.exp(-del) * r;
}

/**
 * The taps of one output pixel (n, oy, ox) of a convolution: for every filter position (ky, kx)
 * whose input pixel iy = oy stride - pad + ky, ix = ox stride - pad + kx lies inside x (the rest is
 * zero padding), in (ky, kx) order, tap(xi, wo): xi the input pixel's offset in x [B, H, W, Ci], wo
 * the position's offset in one filter [KH, KW, Ci]. The forward sum below and the training
 * reference's adjoint sums (train-ref.ts conv2dBackward) walk the same taps through it.
 */
export function convTaps(s: ConvShape, n: number, oy: number, ox: number, tap: (xi: number, wo: number) => void): void {
  const { H, W, Ci, KH, KW, stride, pad } = s;
  for (let ky = 0; ky < KH; ky++) {
    const iy = oy * stride - pad + ky;
    if (iy < 0 || iy >= H) continue;
    for (let kx = 0; kx < KW; kx++) {
      const ix = ox * stride - pad + kx;
      if (ix < 0 || ix >= W) continue;
      tap(((n * H + iy) * W + ix) * Ci, (ky * KW + kx) * Ci);
    }
  }
}

/**
 * The convolution written down as its sum, in float64: x [B, H, W, Ci], w [Co, KH, KW, Ci],
 * b [Co] -> out [B, OH, OW, Co] (taps outside x are zero padding). The ref backend's conv2d and
 * the training reference's (train-ref.ts) both run it.
 */
export function directConv2d(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, s: ConvShape, out: Float32Array | Float64Array): void {
  const { B, Ci, Co, KH, KW, OH, OW } = s;
  const K = KH * KW * Ci;
  for (let n = 0; n < B; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const dst = ((n * OH + oy) * OW + ox) * Co;
        for (let co = 0; co < Co; co++) {
          let acc = b ? b[co]! : 0;
          convTaps(s, n, oy, ox, (xi, wo) => {
            const wi = co * K + wo;
            for (let c = 0; c < Ci; c++) acc += x[xi + c]! * w[wi + c]!;
          });
          out[dst + co] = acc;
        }
      }
    }
  }
}

/** The error function in double precision (W. J. Cody's rational approximations). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const y = Math.abs(x);
  if (y <= 0.46875) {
    const z = y > 1.11e-16 ? y * y : 0;
    let num = ERF_A[4]! * z;
    let den = z;
    for (let i = 0; i < 3; i++) {
      num = (num + ERF_A[i]!) * z;
      den = (den + ERF_B[i]!) * z;
    }
    return (x * (num + ERF_A[3]!)) / (den + ERF_B[3]!);
  }
  const r = 0.5 - erfcTail(y) + 0.5;
  return x < 0 ? -r : r;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function silu(x: number): number {
  return x * sigmoid(x);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function gelu(x: number, approx: GeluApprox): number {
  if (approx === 'tanh') return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + erf(x * Math.SQRT1_2));
}

/**
 * Inverse frequencies of each rotated pair, after any context-extension scaling (longrope: the
 * short factors' or, with `long`, the long factors').
 */
export function ropeInvFreq(rotaryDim: number, opts: RopeOptions, long = false): Float64Array {
  const half = rotaryDim / 2;
  const inv = new Float64Array(half);
  const s = opts.scaling;
  for (let i = 0; i < half; i++) {
    let f = Math.pow(opts.theta, (-2 * i) / rotaryDim);
    // the factors as float32, as GGUF stores them and HF's torch tensor holds them
    if (s?.type === 'longrope') f /= Math.fround((long ? s.longFactor : s.shortFactor)[i]!);
    if (s?.type === 'llama3') {
      // HF transformers _compute_llama3_parameters: keep high frequencies, divide low ones by
      // `factor`, interpolate smoothly in between.
      const lowWavelen = s.originalMaxPosition / s.lowFreqFactor;
      const highWavelen = s.originalMaxPosition / s.highFreqFactor;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) {
        // high frequency: unchanged
      } else if (wavelen > lowWavelen) {
        f = f / s.factor;
      } else {
        const smooth = (s.originalMaxPosition / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
    inv[i] = f;
  }
  return inv;
}

// ---- attention core -------------------------------------------------------------------------

interface AttnGeom {
  q: Float32Array;
  qh: Heads;
  o: Float32Array;
  oh: Heads;
  p: Pool;
  k: (i: number) => number;
  v: (i: number) => number;
  opts: AttentionOptions;
  /** float64 scratch: scores [p+1], accumulator [D] */
  scores: Float64Array;
  acc: Float64Array;
}

/**
 * out[row, h, :] = softmax_j(score(q[row, h], k_j)) . v_j over the keys j visible from a
 * query at position `pos`, with the sequence's block table at table[tableOff ...].
 */
function attendRow(g: AttnGeom, row: number, pos: number, table: Int32Array, tableOff: number): void {
  const { qh, oh, p, opts } = g;
  const D = qh.D;
  const group = qh.H / p.Hkv;
  const window = opts.window ?? 0;
  const cap = opts.softCap ?? 0;
  const first = window > 0 ? Math.max(0, pos - window + 1) : 0; // p - j < window
  for (let h = 0; h < qh.H; h++) {
    const hk = Math.floor(h / group);
    const qo = row * qh.sT + h * qh.sH;
    let max = -Infinity;
    for (let j = first; j <= pos; j++) {
      const base = poolIndex(p, 'k', table[tableOff + Math.floor(j / p.blockSize)]!, hk, j % p.blockSize);
      let dot = 0;
      const ks = dimStride(p, 'k');
      for (let d = 0; d < D; d++) dot += g.q[qo + d]! * g.k(base + d * ks);
      let s = opts.scale * dot;
      if (cap > 0) s = cap * Math.tanh(s / cap);
      g.scores[j - first] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let j = first; j <= pos; j++) {
      const e = Math.exp(g.scores[j - first]! - max);
      g.scores[j - first] = e;
      sum += e;
    }
    g.acc.fill(0);
    for (let j = first; j <= pos; j++) {
      const w = g.scores[j - first]! / sum;
      const base = poolIndex(p, 'v', table[tableOff + Math.floor(j / p.blockSize)]!, hk, j % p.blockSize);
      for (let d = 0; d < D; d++) g.acc[d] += w * g.v(base + d);
    }
    const oo = row * oh.sT + h * oh.sH;
    for (let d = 0; d < D; d++) g.o[oo + d] = g.acc[d]!;
  }
}

// ---- the backend ----------------------------------------------------------------------------

type Unary = (x: number) => number;

export class RefBackend implements Backend {
  readonly name = 'ref';

  matmulMulti(x: Tensor, ws: readonly Tensor[], outs: readonly Tensor[]): void {
    checkMatmulMulti(x, ws, outs);
    ws.forEach((w, i) => this.matmul(x, w, outs[i]!));
  }

  matmul(x: Tensor, w: Tensor, out: Tensor): void {
    const { M, N, K, ldx, ldo } = checkMatmul(x, w, out);
    let xs = readF32(x);
    if (w.dtype === 'q8_0') {
      // q8_0 weights multiply activations quantized to q8_0 blocks (llama.cpp's scheme):
      // each x row is rounded through quantizeQ8_0, then the products are exact in f64.
      const q = new Float32Array(M * ldx);
      for (let m = 0; m < M; m++) q.set(dequantizeQ8_0(quantizeQ8_0(xs.subarray(m * ldx, m * ldx + K)), K), m * ldx);
      xs = q;
    }
    if (isKQuant(w.dtype)) {
      // k-quant and IQ4_XS weights multiply activations quantized to Q8_K (llama.cpp's scheme): each
      // super-block's dot product is an exact integer combination, scaled in f64 (kquants.ts, kquants2.ts).
      const xq = Array.from({ length: M }, (_, m) => quantizeQ8_K(xs, K, m * ldx));
      const dot = { q4_k: dotQ4_K_Q8_K, q5_k: dotQ5_K_Q8_K, q6_k: dotQ6_K_Q8_K, q2_k: dotQ2_K_Q8_K, q3_k: dotQ3_K_Q8_K, iq4_xs: dotIQ4_XS_Q8_K }[w.dtype];
      const rowBytes = bytesFor(w.dtype, K);
      writeF32(out, (o) => {
        for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) o[m * ldo + n] = dot(w.data, n * rowBytes, xq[m]!, 0, K);
      });
      return;
    }
    if (w.dtype === 'q4_0' || w.dtype === 'q4_1' || w.dtype === 'q5_0' || w.dtype === 'q5_1' || w.dtype === 'iq4_nl') {
      // Q4_0 / Q5_0 / IQ4_NL multiply Q8_0 activations, Q4_1 / Q5_1 Q8_1 activations (llama.cpp's scheme):
      // each block's integer dot exact, scaled and summed in f64 (legacyq.ts).
      const t = w.dtype;
      const xq = Array.from({ length: M }, (_, m) => quantizeQ8Act(xs, K, m * ldx));
      const rowBytes = bytesFor(t, K);
      writeF32(out, (o) => {
        for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) o[m * ldo + n] = dotLegacy(t, w.data, n * rowBytes, xq[m]!, 0, K);
      });
      return;
    }
    writeF32(out, (o) => {
      for (let n = 0; n < N; n++) {
        const wr = decode(w.dtype, w.data, K, bytesFor(w.dtype, n * K)); // row n of w
        for (let m = 0; m < M; m++) {
          const xo = m * ldx;
          let acc = 0;
          for (let k = 0; k < K; k++) acc += xs[xo + k]! * wr[k]!;
          o[m * ldo + n] = acc;
        }
      }
    });
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    this.binary('add', a, b, out, (u, v) => u + v);
  }

  mul(a: Tensor, b: Tensor, out: Tensor): void {
    this.binary('mul', a, b, out, (u, v) => u * v);
  }

  scale(a: Tensor, s: number, out: Tensor): void {
    this.unary('scale', a, out, (v) => v * s);
  }

  rmsNorm(x: Tensor, w: Tensor, eps: number, out: Tensor): void {
    const { xm, om } = checkNorm('rmsNorm', x, w, null, eps, out);
    const ws = readF32(w);
    this.rows(x, xm, out, om, (row, dst) => {
      const n = row.length;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += row[i]! * row[i]!;
      const inv = 1 / Math.sqrt(ss / n + eps);
      for (let i = 0; i < n; i++) dst[i] = row[i]! * inv * ws[i]!;
    });
  }

  layerNorm(x: Tensor, w: Tensor, b: Tensor | null, eps: number, out: Tensor): void {
    const { xm, om } = checkNorm('layerNorm', x, w, b, eps, out);
    const ws = readF32(w);
    const bs = b ? readF32(b) : null;
    this.rows(x, xm, out, om, (row, dst) => {
      const n = row.length;
      let sum = 0;
      for (let i = 0; i < n; i++) sum += row[i]!;
      const mean = sum / n;
      let sq = 0;
      for (let i = 0; i < n; i++) sq += (row[i]! - mean) * (row[i]! - mean);
      const inv = 1 / Math.sqrt(sq / n + eps); // population variance
      for (let i = 0; i < n; i++) dst[i] = (row[i]! - mean) * inv * ws[i]! + (bs ? bs[i]! : 0);
    });
  }

  rope(x: Tensor, positions: Int32Array, opts: RopeOptions): void {
    const { T, H, sT, sH, rotaryDim } = checkRope(x, positions, opts);
    const inv = ropeInvFreq(rotaryDim, opts);
    const s = opts.scaling;
    const lr = s?.type === 'longrope' ? s : null; // longrope: long factors from originalMaxPosition on, cos/sin * attnFactor
    const invLong = lr ? ropeInvFreq(rotaryDim, opts, true) : inv;
    const m = lr ? lr.attnFactor : 1;
    const half = rotaryDim / 2;
    const posDiv = s?.type === 'linear' ? s.factor : 1; // linear: position / factor
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    writeF32(x, (xs) => {
      for (let t = 0; t < T; t++) {
        const pos = positions[t]! / posDiv;
        const f = lr && pos >= lr.originalMaxPosition ? invLong : inv;
        for (let i = 0; i < half; i++) {
          const angle = pos * f[i]!;
          cos[i] = m * Math.cos(angle);
          sin[i] = m * Math.sin(angle);
        }
        for (let h = 0; h < H; h++) {
          const base = t * sT + h * sH;
          for (let i = 0; i < half; i++) {
            // the pair (a, b) rotated by the angle: interleaved (2i, 2i+1) or half (i, i + rd/2)
            const ia = opts.layout === 'interleaved' ? base + 2 * i : base + i;
            const ib = opts.layout === 'interleaved' ? ia + 1 : ia + half;
            const a = xs[ia]!;
            const b = xs[ib]!;
            xs[ia] = a * cos[i]! - b * sin[i]!;
            xs[ib] = a * sin[i]! + b * cos[i]!;
          }
        }
      }
    });
  }

  softmax(x: Tensor, out: Tensor): void {
    const { xm, om } = checkUnary('softmax', x, out);
    this.rows(x, xm, out, om, (row, dst) => {
      let max = -Infinity;
      for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
      let sum = 0;
      for (let i = 0; i < row.length; i++) {
        const e = Math.exp(row[i]! - max);
        row[i] = e;
        sum += e;
      }
      for (let i = 0; i < row.length; i++) dst[i] = row[i]! / sum;
    });
  }

  silu(x: Tensor, out: Tensor): void {
    this.unary('silu', x, out, silu);
  }

  gelu(x: Tensor, out: Tensor, approx: GeluApprox): void {
    this.unary('gelu', x, out, (v) => gelu(v, approx));
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    this.gated('swiglu', gate, up, out, silu);
  }

  geglu(gate: Tensor, up: Tensor, out: Tensor, approx: GeluApprox): void {
    this.gated('geglu', gate, up, out, (v) => gelu(v, approx));
  }

  embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
    const { D, ldo } = checkEmbedding(table, ids, out);
    writeF32(out, (o) => {
      for (let t = 0; t < ids.length; t++) {
        o.set(decode(table.dtype, table.data, D, bytesFor(table.dtype, ids[t]! * D)), t * ldo);
      }
    });
  }

  kvWrite(k: Tensor, cache: Tensor, slots: Int32Array, role: PoolRole): void {
    const { h, p } = checkKvWrite(k, cache, slots, role);
    const ks = readF32(k);
    if (cache.dtype === 'q8_0') {
      // each token's head_dim row quantized as ggml's quantize_row_q8_0 (keys and values alike)
      for (let t = 0; t < h.T; t++) {
        const s = slots[t]!;
        for (let hh = 0; hh < h.H; hh++) {
          const src = t * h.sT + hh * h.sH;
          const dst = poolIndex(p, role, Math.floor(s / p.blockSize), hh, s % p.blockSize);
          cache.data.set(quantizeQ8_0(ks.subarray(src, src + h.D)), bytesFor('q8_0', dst));
        }
      }
      return;
    }
    const ds = dimStride(p, role);
    const n = cache.numel;
    // Writers for the pool's element type (contiguous, so an aligned view or a DataView).
    let put: (i: number, v: number) => void;
    if (cache.dtype === 'f32' && cache.data.byteOffset % 4 === 0) {
      const c = new Float32Array(cache.data.buffer, cache.data.byteOffset, n);
      put = (i, v) => (c[i] = v);
    } else {
      const dv = new DataView(cache.data.buffer, cache.data.byteOffset, bytesFor(cache.dtype, n));
      put = cache.dtype === 'f32' ? (i, v) => dv.setFloat32(i * 4, v, true) : (i, v) => dv.setUint16(i * 2, f32ToF16Bits(v), true);
    }
    for (let t = 0; t < h.T; t++) {
      const s = slots[t]!;
      const block = Math.floor(s / p.blockSize);
      const off = s % p.blockSize;
      for (let hh = 0; hh < h.H; hh++) {
        const src = t * h.sT + hh * h.sH;
        const dst = poolIndex(p, role, block, hh, off);
        for (let d = 0; d < h.D; d++) put(dst + d * ds, ks[src + d]!);
      }
    }
  }

  attentionPrefill(
    q: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    blockTable: Int32Array,
    startPos: number,
    out: Tensor,
    opts: AttentionOptions,
  ): void {
    const { qh, oh, p } = checkAttentionPrefill(q, kCache, vCache, blockTable, startPos, out, opts);
    const qs = readF32(q);
    writeF32(out, (o) => {
      const g = this.attnGeom(qs, qh, o, oh, p, kCache, vCache, opts, startPos + qh.T);
      for (let t = 0; t < qh.T; t++) attendRow(g, t, startPos + t, blockTable, 0);
    });
  }

  attentionDecode(
    q: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    blockTables: Int32Array,
    maxBlocks: number,
    seqLens: Int32Array,
    out: Tensor,
    opts: AttentionOptions,
  ): void {
    const { qh, oh, p } = checkAttentionDecode(q, kCache, vCache, blockTables, maxBlocks, seqLens, out, opts);
    const qs = readF32(q);
    let longest = 0;
    for (let b = 0; b < seqLens.length; b++) longest = Math.max(longest, seqLens[b]!);
    writeF32(out, (o) => {
      const g = this.attnGeom(qs, qh, o, oh, p, kCache, vCache, opts, longest);
      for (let b = 0; b < qh.T; b++) attendRow(g, b, seqLens[b]! - 1, blockTables, b * maxBlocks);
    });
  }

  argmax(x: Tensor): Int32Array {
    const m = checkArgmax(x);
    const xs = readF32(x);
    const res = new Int32Array(m.rows);
    for (let r = 0; r < m.rows; r++) {
      const o = r * m.rowStride;
      let best = 0;
      for (let c = 1; c < m.cols; c++) if (xs[o + c]! > xs[o + best]!) best = c;
      res[r] = best;
    }
    return res;
  }

  gatherRows(x: Tensor, rows: Int32Array, out: Tensor): void {
    const { xm, om } = checkRows('gatherRows', x, rows, out);
    const xs = readF32(x);
    writeF32(out, (o) => {
      for (let j = 0; j < rows.length; j++) {
        for (let c = 0; c < xm.cols; c++) o[j * om.rowStride + c] = xs[rows[j]! * xm.rowStride + c]!;
      }
    });
  }

  scatterRows(x: Tensor, rows: Int32Array, out: Tensor): void {
    const { xm, om } = checkRows('scatterRows', x, rows, out);
    const xs = readF32(x);
    writeF32(out, (o) => {
      for (let j = 0; j < rows.length; j++) {
        for (let c = 0; c < xm.cols; c++) o[rows[j]! * om.rowStride + c] = xs[j * xm.rowStride + c]!;
      }
    });
  }

  softCap(x: Tensor, cap: number, out: Tensor): void {
    const { xm, om } = checkSoftCap(x, cap, out);
    const xs = readF32(x);
    writeF32(out, (o) => {
      for (let r = 0; r < xm.rows; r++) {
        for (let c = 0; c < xm.cols; c++) o[r * om.rowStride + c] = cap * Math.tanh(xs[r * xm.rowStride + c]! / cap);
      }
    });
  }

  topkRoute(logits: Tensor, k: number, ids: Int32Array, weights: Tensor): void {
    const { lm, wm } = checkTopkRoute(logits, k, ids, weights);
    const ls = readF32(logits);
    const E = lm.cols;
    writeF32(weights, (w) => {
      const p = new Float64Array(E);
      for (let t = 0; t < lm.rows; t++) {
        let mx = -Infinity;
        for (let e = 0; e < E; e++) mx = Math.max(mx, ls[t * lm.rowStride + e]!);
        for (let e = 0; e < E; e++) p[e] = Math.exp(ls[t * lm.rowStride + e]! - mx);
        // selection: the largest remaining p, the lower index on ties
        const taken = new Uint8Array(E);
        let sum = 0;
        for (let j = 0; j < k; j++) {
          let best = -1;
          for (let e = 0; e < E; e++) if (!taken[e] && (best < 0 || p[e]! > p[best]!)) best = e;
          taken[best] = 1;
          ids[t * k + j] = best;
          sum += p[best]!;
        }
        for (let j = 0; j < k; j++) w[t * wm.rowStride + j] = p[ids[t * k + j]!]! / sum;
      }
    });
  }

  combineRows(x: Tensor, w: Tensor, out: Tensor): void {
    const { xm, wm, om } = checkCombineRows(x, w, out);
    const xs = readF32(x), ws = readF32(w);
    const K = wm.cols;
    writeF32(out, (o) => {
      for (let t = 0; t < om.rows; t++) {
        for (let c = 0; c < om.cols; c++) {
          let acc = 0;
          for (let j = 0; j < K; j++) acc += ws[t * wm.rowStride + j]! * xs[(t * K + j) * xm.rowStride + c]!;
          o[t * om.rowStride + c] = acc;
        }
      }
    });
  }

  // ---- image ops (NHWC) -----------------------------------------------------------------------

  conv2d(x: Tensor, w: Tensor, b: Tensor | null, out: Tensor, opts: Conv2dOptions): void {
    const { B, H, W, C, OH, OW, Co, KH, KW, stride, pad } = checkConv2d(x, w, b, out, opts);
    const xs = readF32(x);
    const ws = decode(w.dtype, w.data, w.numel); //                       [Co, KH, KW, C]
    const bs = b ? readF32(b) : null;
    writeF32(out, (o) => directConv2d(xs, ws, bs, { B, H, W, Ci: C, Co, KH, KW, stride, pad, padEnd: pad, OH, OW }, o));
  }

  groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number, silu: boolean, out: Tensor): void {
    const { B, N, C } = checkGroupNorm(x, w, b, groups, eps, out);
    const xs = readF32(x).slice(); // out may alias x
    const ws = readF32(w), bs = readF32(b);
    const cpg = C / groups;
    writeF32(out, (o) => {
      for (let n = 0; n < B; n++) {
        const base = n * N * C;
        for (let g = 0; g < groups; g++) {
          let sum = 0;
          for (let p = 0; p < N; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) sum += xs[base + p * C + c]!;
          const mean = sum / (N * cpg);
          let sq = 0;
          for (let p = 0; p < N; p++) for (let c = g * cpg; c < (g + 1) * cpg; c++) sq += (xs[base + p * C + c]! - mean) ** 2;
          const inv = 1 / Math.sqrt(sq / (N * cpg) + eps);
          for (let p = 0; p < N; p++) {
            for (let c = g * cpg; c < (g + 1) * cpg; c++) {
              const y = (xs[base + p * C + c]! - mean) * inv * ws[c]! + bs[c]!;
              o[base + p * C + c] = silu ? y / (1 + Math.exp(-y)) : y;
            }
          }
        }
      }
    });
  }

  upsample2x(x: Tensor, out: Tensor): void {
    const { B, H, W, C } = checkUpsample2x(x, out);
    const xs = readF32(x);
    writeF32(out, (o) => {
      for (let n = 0; n < B; n++) {
        for (let y = 0; y < 2 * H; y++) {
          for (let xx = 0; xx < 2 * W; xx++) {
            const src = ((n * H + (y >> 1)) * W + (xx >> 1)) * C;
            o.set(xs.subarray(src, src + C), ((n * 2 * H + y) * 2 * W + xx) * C);
          }
        }
      }
    });
  }

  attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: number, causal = false): void {
    const g = checkAttention(q, k, v, out, scale, causal);
    const qs = readF32(q), ks = readF32(k), vs = readF32(v);
    const { B, H, T: Tq, D } = g.q;
    const Tk = g.k.T;
    const s = new Float64Array(Tk), acc = new Float64Array(D);
    writeF32(out, (o) => {
      for (let n = 0; n < B; n++) {
        for (let h = 0; h < H; h++) {
          for (let t = 0; t < Tq; t++) {
            const qi = n * g.q.sB + h * g.q.sH + t * g.q.sT;
            let mx = -Infinity;
            const seen = causal ? t + Tk - Tq + 1 : Tk;
            s.fill(-Infinity);
            for (let j = 0; j < seen; j++) {
              const ki = n * g.k.sB + h * g.k.sH + j * g.k.sT;
              let dot = 0;
              for (let d = 0; d < D; d++) dot += qs[qi + d]! * ks[ki + d]!;
              s[j] = dot * scale;
              if (s[j]! > mx) mx = s[j]!;
            }
            let sum = 0;
            for (let j = 0; j < seen; j++) sum += s[j] = Math.exp(s[j]! - mx);
            acc.fill(0);
            for (let j = 0; j < seen; j++) {
              const vi = n * g.v.sB + h * g.v.sH + j * g.v.sT, p = s[j]! / sum;
              for (let d = 0; d < D; d++) acc[d]! += p * vs[vi + d]!;
            }
            const oi = n * g.o.sB + h * g.o.sH + t * g.o.sT;
            for (let d = 0; d < D; d++) o[oi + d] = acc[d]!;
          }
        }
      }
    });
  }

  // ---- shared loops -------------------------------------------------------------------------

  private attnGeom(q: Float32Array, qh: Heads, o: Float32Array, oh: Heads, p: Pool, kCache: Tensor, vCache: Tensor, opts: AttentionOptions, maxKeys: number): AttnGeom {
    return { q, qh, o, oh, p, k: poolReader(kCache), v: poolReader(vCache), opts, scores: new Float64Array(maxKeys), acc: new Float64Array(qh.D) };
  }

  /**
   * Per-row loop for row-wise ops: each input row is copied into a float64 scratch row
   * first, so `fn` may overwrite it and out may alias x.
   */
  private rows(x: Tensor, xm: Mat, out: Tensor, om: Mat, fn: (row: Float64Array, dst: Float64Array) => void): void {
    const xs = readF32(x);
    const row = new Float64Array(xm.cols);
    const dst = new Float64Array(xm.cols);
    writeF32(out, (o) => {
      for (let r = 0; r < xm.rows; r++) {
        for (let c = 0; c < xm.cols; c++) row[c] = xs[r * xm.rowStride + c]!;
        fn(row, dst);
        o.set(dst, r * om.rowStride);
      }
    });
  }

  private unary(op: string, x: Tensor, out: Tensor, f: Unary): void {
    const { xm, om } = checkUnary(op, x, out);
    const xs = readF32(x);
    writeF32(out, (o) => {
      for (let r = 0; r < xm.rows; r++) {
        for (let c = 0; c < xm.cols; c++) o[r * om.rowStride + c] = f(xs[r * xm.rowStride + c]!);
      }
    });
  }

  private binary(op: string, a: Tensor, b: Tensor, out: Tensor, f: (u: number, v: number) => number): void {
    const { am, bm, om, bcast } = checkBinary(op, a, b, out);
    const as = readF32(a);
    const bs = readF32(b);
    writeF32(out, (o) => {
      for (let r = 0; r < am.rows; r++) {
        const br = bcast ? 0 : r * bm.rowStride;
        for (let c = 0; c < am.cols; c++) o[r * om.rowStride + c] = f(as[r * am.rowStride + c]!, bs[br + c]!);
      }
    });
  }

  private gated(op: string, gate: Tensor, up: Tensor, out: Tensor, act: Unary): void {
    const { gm, um, om } = checkGated(op, gate, up, out);
    const gs = readF32(gate);
    const us = readF32(up);
    writeF32(out, (o) => {
      for (let r = 0; r < gm.rows; r++) {
        for (let c = 0; c < gm.cols; c++) o[r * om.rowStride + c] = act(gs[r * gm.rowStride + c]!) * us[r * um.rowStride + c]!;
      }
    });
  }
}

export const refBackend = new RefBackend();
