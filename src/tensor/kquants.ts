// GGUF k-quant weights (Q4_K, Q5_K, Q6_K) and the Q8_K activations they are multiplied with, as
// llama.cpp defines them (ggml-common.h block structs, ggml-quants.c reference code). The
// layouts, one super-block of QK_K = 256 weights each:
//
//   Q4_K (144 bytes)  f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs for 8 sub-blocks
//                     of 32, 128 bytes of nibbles. Weight = d * sc[s] * q - dmin * m[s],
//                     q in 0..15. Nibble chunk c (32 bytes) holds sub-block 2c in its low
//                     nibbles and 2c+1 in its high nibbles. Scale packing: see scaleMinK4.
//
//   Q5_K (176 bytes)  Q4_K with a fifth bit per weight: f16 d, f16 dmin, the same 12 scale
//                     bytes, qh[32], then the 128 nibble bytes. q = nibble | bit << 4 (0..31);
//                     in nibble chunk c, low nibble l takes bit 2c of qh[l], high nibble l
//                     bit 2c + 1.
//
//   Q6_K (210 bytes)  ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16
//                     weights), f16 d. Weight = d * sc[g] * (q - 32), q in 0..63. Each half
//                     h of 128 weights uses ql[64h..], qh[32h..], scales[8h..]: for l < 32
//                       w[l]      low nibble of ql[l],      qh[l] bits 0-1
//                       w[l + 32] low nibble of ql[l + 32], qh[l] bits 2-3
//                       w[l + 64] high nibble of ql[l],     qh[l] bits 4-5
//                       w[l + 96] high nibble of ql[l + 32], qh[l] bits 6-7
//                     and weight i of the half has scale scales[8h + i / 16].
//
//   Q8_K (activations, never stored by us): per 256 values an f32 d, int8 q[256] and the
//                     sums of q over each 16 (bsums[16]). d = max / -127 where max is the value
//                     of largest magnitude, q = nearest_int(x * (-127 / max)) (ties to even),
//                     capped at 127.
//
// A Q4_K/Q6_K row times a Q8_K row is, per super-block, an exact integer combination
// (llama.cpp's ggml_vec_dot_q4_K_q8_K / q6_K_q8_K):
//   Q4_K, Q5_K: d_w * d_x * sum_s sc[s] * dot(q_s, x_s)  -  dmin * d_x * sum_s m[s] * (bsum of x_s)
//   Q6_K: d_w * d_x * sum_g sc[g] * dot(q_g - 32, x_g)
// The reference backend forms those integers exactly and accumulates in f64.
//
// Decoding follows the reference C in f32 (Math.fround at each step), so values match
// llama.cpp's dequantize_row_q4_K / q6_K bit for bit. The quantizers are llama.cpp's
// reference ones (quantize_row_q4_K_ref / q5_K_ref with make_qkx2_quants, quantize_row_q6_K_ref with
// make_qx_quants), transcribed with f32 rounding at every step.

import { f16BitsToF32, f32ToF16Bits } from './f16.ts';

export const QK_K = 256;
export const Q4_K_BLOCK_BYTES = 144;
export const Q5_K_BLOCK_BYTES = 176;
export const Q6_K_BLOCK_BYTES = 210;

const f = Math.fround;

/** llama.cpp's nearest_int: round half to even (the float magic-number trick). */
export function nearestInt(x: number): number {
  let r = Math.round(x);
  if (r - x === 0.5 && r % 2 !== 0) r -= 1;
  return r;
}

function checkSizes(fn: string, blockBytes: number, byteLength: number, n: number, out?: Float32Array): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK_K !== 0) throw new Error(`${fn}: length ${n} is not a multiple of ${QK_K}`);
  if (byteLength < (n / QK_K) * blockBytes) throw new Error(`${fn}: ${byteLength} bytes is too short for ${n} elements`);
  if (out && out.length < n) throw new Error(`${fn}: out has ${out.length} elements, need ${n}`);
}

export const f16at = (src: Uint8Array, o: number): number => f16BitsToF32(src[o]! | (src[o + 1]! << 8));

/**
 * The 6-bit (scale, min) of sub-block `s` (0..7) from the 12 packed bytes at `p` (ggml's
 * get_scale_min_k4). For s < 4: sc = b[s] & 63, m = b[s+4] & 63. For s >= 4 the low 4 bits
 * are in b[s+4] (scale low nibble, min high nibble) and the high 2 bits in the top bits of
 * b[s-4] (scale) and b[s] (min).
 */
export function scaleMinK4(src: Uint8Array, p: number, s: number): [number, number] {
  if (s < 4) return [src[p + s]! & 63, src[p + s + 4]! & 63];
  return [(src[p + s + 4]! & 15) | ((src[p + s - 4]! >> 6) << 4), (src[p + s + 4]! >> 4) | ((src[p + s]! >> 6) << 4)];
}

/** Decodes `n` elements of Q4_K (n a multiple of 256) into `out` (or a new array). */
export function dequantizeQ4_K(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ4_K', Q4_K_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q4_K_BLOCK_BYTES) {
    const d = f16at(src, o);
    const dmin = f16at(src, o + 2);
    for (let c = 0; c < 4; c++) {
      const [sc1, m1] = scaleMinK4(src, o + 4, 2 * c);
      const [sc2, m2] = scaleMinK4(src, o + 4, 2 * c + 1);
      const d1 = f(d * sc1), o1 = f(dmin * m1);
      const d2 = f(d * sc2), o2 = f(dmin * m2);
      const q = o + 16 + 32 * c;
      const e = b + 64 * c;
      for (let l = 0; l < 32; l++) {
        y[e + l] = f(d1 * (src[q + l]! & 15)) - o1;
        y[e + 32 + l] = f(d2 * (src[q + l]! >> 4)) - o2;
      }
    }
  }
  return y;
}

/** Decodes `n` elements of Q5_K (n a multiple of 256) into `out` (or a new array). */
export function dequantizeQ5_K(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ5_K', Q5_K_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q5_K_BLOCK_BYTES) {
    const d = f16at(src, o);
    const dmin = f16at(src, o + 2);
    for (let c = 0; c < 4; c++) {
      const [sc1, m1] = scaleMinK4(src, o + 4, 2 * c);
      const [sc2, m2] = scaleMinK4(src, o + 4, 2 * c + 1);
      const d1 = f(d * sc1), o1 = f(dmin * m1);
      const d2 = f(d * sc2), o2 = f(dmin * m2);
      const q = o + 48 + 32 * c, qh = o + 16;
      const e = b + 64 * c;
      for (let l = 0; l < 32; l++) {
        y[e + l] = f(d1 * ((src[q + l]! & 15) | (((src[qh + l]! >> (2 * c)) & 1) << 4))) - o1;
        y[e + 32 + l] = f(d2 * ((src[q + l]! >> 4) | (((src[qh + l]! >> (2 * c + 1)) & 1) << 4))) - o2;
      }
    }
  }
  return y;
}

/** The 256 unsigned 6-bit values (0..63) of the Q6_K block at `o`, in element order. */
function q6Values(src: Uint8Array, o: number, q: Uint8Array): void {
  for (let h = 0; h < 2; h++) {
    const ql = o + 64 * h, qh = o + 128 + 32 * h, e = 128 * h;
    for (let l = 0; l < 32; l++) {
      const hb = src[qh + l]!;
      q[e + l] = (src[ql + l]! & 15) | ((hb & 3) << 4);
      q[e + l + 32] = (src[ql + l + 32]! & 15) | (((hb >> 2) & 3) << 4);
      q[e + l + 64] = (src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4);
      q[e + l + 96] = (src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4);
    }
  }
}

const q6tmp = new Uint8Array(QK_K);

/** Decodes `n` elements of Q6_K (n a multiple of 256) into `out` (or a new array). */
export function dequantizeQ6_K(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ6_K', Q6_K_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q6_K_BLOCK_BYTES) {
    const d = f16at(src, o + 208);
    q6Values(src, o, q6tmp);
    for (let i = 0; i < QK_K; i++) {
      const sc = (src[o + 192 + (i >> 4)]! << 24) >> 24; // int8
      y[b + i] = f(f(d * sc) * (q6tmp[i]! - 32));
    }
  }
  return y;
}

// ---- Q8_K activations --------------------------------------------------------------------------

export interface Q8KRow {
  /** int8 values, one per element */
  q: Int8Array;
  /** f32 scale per 256 */
  d: Float32Array;
  /** sum of q over each 16 */
  bsums: Int16Array;
}

/** quantize_row_q8_K_ref: n a multiple of 256. */
export function quantizeQ8_K(x: ArrayLike<number>, n = x.length, off = 0): Q8KRow {
  if (n % QK_K !== 0) throw new Error(`quantizeQ8_K: length ${n} is not a multiple of ${QK_K}`);
  const q = new Int8Array(n), d = new Float32Array(n / QK_K), bsums = new Int16Array(n / 16);
  for (let b = 0; b < n / QK_K; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < QK_K; j++) {
      const v = f(x[off + b * QK_K + j]!);
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    if (!amax) continue; // d = 0, q = 0
    const iscale = f(-127 / max);
    for (let j = 0; j < QK_K; j++) q[b * QK_K + j] = Math.min(127, nearestInt(f(iscale * f(x[off + b * QK_K + j]!))));
    for (let g = 0; g < 16; g++) {
      let s = 0;
      for (let i = 0; i < 16; i++) s += q[b * QK_K + 16 * g + i]!;
      bsums[b * 16 + g] = s;
    }
    d[b] = f(1 / iscale);
  }
  return { q, d, bsums };
}

/**
 * Q4_K and Q5_K share their block structure: f16 d and dmin, 12 bytes of 6-bit (scale, min)
 * pairs, then (Q5_K only) 32 bytes holding each weight's fifth bit, then the 128 nibble bytes.
 * Sub-block s contributes d·sc[s]·(q · x) − dmin·m[s]·(the sums of x over it); each
 * super-block's integers exactly, scaled and summed in f64.
 */
function dotScaleMinK(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number, fifthBit: boolean): number {
  const blockBytes = fifthBit ? Q5_K_BLOCK_BYTES : Q4_K_BLOCK_BYTES, nibbles = fifthBit ? 48 : 16;
  let acc = 0;
  for (let b = 0; b < n / QK_K; b++, o += blockBytes) {
    const xb = xo / QK_K + b;
    const d = f16at(src, o), dmin = f16at(src, o + 2), dx = x.d[xb]!;
    let S = 0, M = 0;
    for (let s = 0; s < 8; s++) {
      const [sc, m] = scaleMinK4(src, o + 4, s);
      const qo = o + nibbles + 32 * (s >> 1), sh = (s & 1) * 4, xe = xb * QK_K + 32 * s;
      let dot = 0;
      for (let l = 0; l < 32; l++) {
        const q = ((src[qo + l]! >> sh) & 15) | (fifthBit ? ((src[o + 16 + l]! >> s) & 1) << 4 : 0);
        dot += q * x.q[xe + l]!;
      }
      S += sc * dot;
      M += m * (x.bsums[xb * 16 + 2 * s]! + x.bsums[xb * 16 + 2 * s + 1]!);
    }
    acc += d * dx * S - dmin * dx * M;
  }
  return acc;
}

/** Dot product of the Q4_K row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotQ4_K_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  return dotScaleMinK(src, o, x, xo, n, false);
}

/** Dot product of the Q5_K row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotQ5_K_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  return dotScaleMinK(src, o, x, xo, n, true);
}

/** Dot product of the Q6_K row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotQ6_K_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  let acc = 0;
  for (let b = 0; b < n / QK_K; b++, o += Q6_K_BLOCK_BYTES) {
    const xb = xo / QK_K + b;
    q6Values(src, o, q6tmp);
    let S = 0;
    for (let g = 0; g < 16; g++) {
      const sc = (src[o + 192 + g]! << 24) >> 24;
      let dot = 0;
      for (let i = 0; i < 16; i++) dot += (q6tmp[16 * g + i]! - 32) * x.q[xb * QK_K + 16 * g + i]!;
      S += sc * dot;
    }
    acc += f16at(src, o + 208) * x.d[xb]! * S;
  }
  return acc;
}

// ---- quantizers (llama.cpp's reference ones) ----------------------------------------------------

/**
 * make_qkx2_quants: levels 0..nmax with a scale and a min (<= 0) for n values, weighted least
 * squares over nstep+1 candidate scales, each judged by its weighted squared error (or, with
 * `useMad`, its weighted absolute error: Q2_K). Writes L, returns [scale, -min].
 */
export function makeQkx2Quants(n: number, nmax: number, x: Float32Array, w: Float32Array, L: Uint8Array, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number, useMad = false): [number, number] {
  const err = (diff: number): number => (useMad ? Math.abs(diff) : f(diff * diff));
  let min = x[0]!, max = x[0]!;
  let sumW = w[0]!;
  let sumX = f(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    sumW = f(sumW + w[i]!);
    sumX = f(sumX + f(w[i]! * x[i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(f(iscale * f(x[i]! - min)));
    L[i] = Math.max(0, Math.min(nmax, l));
    const diff = f(f(f(scale * L[i]!) + min) - x[i]!);
    bestError = f(bestError + f(w[i]! * err(diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[i]! - min)))));
      Laux[i] = l;
      const wl = f(w[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let cur = 0;
      for (let i = 0; i < n; i++) {
        const diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[i]!);
        cur = f(cur + f(w[i]! * err(diff)));
      }
      if (cur < bestError) {
        L.set(Laux.subarray(0, n));
        bestError = cur;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** quantize_row_q4_K_ref (n a multiple of 256). */
export function quantizeQ4_K(src: ArrayLike<number>): Uint8Array {
  return quantizeWithMins(src, 4);
}

/** quantize_row_q5_K_ref (n a multiple of 256). */
export function quantizeQ5_K(src: ArrayLike<number>): Uint8Array {
  return quantizeWithMins(src, 5);
}

/** Q4_K (bits 4: levels 0..15, make_qkx2_quants(rmin -1, 20 steps)) or Q5_K (0..31, rmin -0.5, 15 steps). */
function quantizeWithMins(src: ArrayLike<number>, bits: 4 | 5): Uint8Array {
  const n = src.length;
  const name = bits === 4 ? 'quantizeQ4_K' : 'quantizeQ5_K';
  if (n % QK_K !== 0) throw new Error(`${name}: length ${n} is not a multiple of ${QK_K}`);
  const BB = bits === 4 ? Q4_K_BLOCK_BYTES : Q5_K_BLOCK_BYTES, nmax = bits === 4 ? 15 : 31, qs = bits === 4 ? 16 : 48;
  const out = new Uint8Array((n / QK_K) * BB);
  const L = new Uint8Array(QK_K), Laux = new Uint8Array(32), xs = new Float32Array(32), w = new Float32Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  for (let b = 0, o = 0; b < n; b += QK_K, o += BB) {
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) {
        xs[l] = src[b + 32 * j + l]!;
        sumX2 = f(sumX2 + f(xs[l]! * xs[l]!));
      }
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = f(avX + Math.abs(xs[l]!));
      const Lj = L.subarray(32 * j, 32 * j + 32);
      const [sc, mn] = bits === 4 ? makeQkx2Quants(32, 15, xs, w, Lj, Laux, -1, f(0.1), 20) : makeQkx2Quants(32, 31, xs, w, Lj, Laux, -0.5, f(0.1), 15);
      scales[j] = sc;
      mins[j] = mn;
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 255);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 255);
      if (j < 4) {
        out[o + 4 + j] = ls;
        out[o + 4 + j + 4] = lm;
      } else {
        out[o + 4 + j + 4] = (ls & 15) | ((lm & 15) << 4);
        out[o + 4 + j - 4] |= (ls >> 4) << 6;
        out[o + 4 + j] |= (lm >> 4) << 6;
      }
    }
    const dH = f32ToF16Bits(f(maxScale / 63)), dminH = f32ToF16Bits(f(maxMin / 63));
    out[o] = dH & 255;
    out[o + 1] = dH >> 8;
    out[o + 2] = dminH & 255;
    out[o + 3] = dminH >> 8;
    const dd = f16BitsToF32(dH), dm = f16BitsToF32(dminH);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(out, o + 4, j);
      const d = f(dd * sc);
      if (!d) continue;
      const dmj = f(dm * m);
      for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(nmax, nearestInt(f(f(src[b + 32 * j + i]! + dmj) / d))));
    }
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        const l1 = L[64 * j + l]!, l2 = L[64 * j + l + 32]!;
        out[o + qs + 32 * j + l] = (l1 & 15) | ((l2 & 15) << 4);
        if (bits === 5) out[o + 16 + l] |= ((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1));
      }
    }
  }
  return out;
}

const GROUP_MAX_EPS = f(1e-15);

/** make_qx_quants with rmse_type 1 (weights x^2) and no importance: symmetric levels -nmax..nmax-1 (stored + nmax). */
function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Int8Array): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[i]!))));
    L[i] = l + nmax;
    const w = f(x[i]! * x[i]!);
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[i]!))));
      const w = f(x[i]! * x[i]!);
      sumlx = f(sumlx + f(f(w * x[i]!) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[i]!))));
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** quantize_row_q6_K_ref (n a multiple of 256). */
export function quantizeQ6_K(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_K !== 0) throw new Error(`quantizeQ6_K: length ${n} is not a multiple of ${QK_K}`);
  const out = new Uint8Array((n / QK_K) * Q6_K_BLOCK_BYTES);
  const L = new Int8Array(QK_K), xs = new Float32Array(16), scales = new Float32Array(16);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q6_K_BLOCK_BYTES) {
    let maxScale = 0, maxAbs = 0;
    for (let g = 0; g < 16; g++) {
      for (let i = 0; i < 16; i++) xs[i] = src[b + 16 * g + i]!;
      const s = makeQxQuants(16, 32, xs, L.subarray(16 * g, 16 * g + 16));
      scales[g] = s;
      if (Math.abs(s) > maxAbs) {
        maxAbs = Math.abs(s);
        maxScale = s;
      }
    }
    if (maxAbs < GROUP_MAX_EPS) continue; // all zero (d = 0)
    const iscale = f(-128 / maxScale);
    const dH = f32ToF16Bits(f(1 / iscale));
    out[o + 208] = dH & 255;
    out[o + 209] = dH >> 8;
    const dd = f16BitsToF32(dH);
    for (let g = 0; g < 16; g++) out[o + 192 + g] = Math.min(127, nearestInt(f(iscale * scales[g]!))) & 255;
    for (let g = 0; g < 16; g++) {
      const d = f(dd * ((out[o + 192 + g]! << 24) >> 24));
      if (!d) continue;
      for (let i = 0; i < 16; i++) L[16 * g + i] = Math.max(-32, Math.min(31, nearestInt(f(f(src[b + 16 * g + i]!) / d)))) + 32;
    }
    for (let h = 0; h < 2; h++) {
      const j = 128 * h, ql = o + 64 * h, qh = o + 128 + 32 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = L[j + l]!, q2 = L[j + l + 32]!, q3 = L[j + l + 64]!, q4 = L[j + l + 96]!;
        out[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
        out[ql + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
        out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
  return out;
}
