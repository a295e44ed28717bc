// GGUF's simple (legacy) quant weights Q4_0, Q4_1, Q5_0 and Q5_1, blocks of 32 weights, as
// llama.cpp defines them (ggml-common.h, ggml-quants.c). In block element order j = 0..31,
// byte l (0..15) of the nibbles holds element l in its low nibble and element l + 16 in its
// high nibble:
//
//   Q4_0 (18 bytes)  f16 d, qs[16]. Weight = d * (q - 8), q = nibble (0..15).
//   Q4_1 (20 bytes)  f16 d, f16 m, qs[16]. Weight = d * q + m.
//   Q5_0 (22 bytes)  f16 d, qh[4] (a little-endian uint32: bit j is element j's fifth bit),
//                    qs[16]. Weight = d * (q - 16), q = nibble | bit << 4 (0..31).
//   Q5_1 (24 bytes)  f16 d, f16 m, qh[4], qs[16]. Weight = d * q + m.
//   IQ4_NL (18 bytes) f16 d, qs[16]. Weight = d * kvalues_iq4nl[q], the 16 non-linear levels
//                    -127 .. 113 below.
//
// Activations, as llama.cpp: Q4_0, Q5_0 and IQ4_NL dot with Q8_0 blocks (f16 d = amax / 127, int8
// q = round(x / d), ties away from zero); Q4_1 and Q5_1 with Q8_1 blocks, the same d and q plus
// s = f16(d * sum q) (d before its f16 rounding). Per block the dot product is
//   _0: d_w d_x sum_j (q_j - off) x_j                 (ggml_vec_dot_q4_0_q8_0 / q5_0_q8_0)
//   IQ4_NL: d_w d_x sum_j kvalues[q_j] x_j           (ggml_vec_dot_iq4_nl_q8_0)
//   _1: d_w d_x sum_j q_j x_j + m_w s_x               (ggml_vec_dot_q4_1_q8_1 / q5_1_q8_1)
// with the integer sums exact; the reference backend accumulates the blocks in f64.
//
// Decoders follow dequantize_row_q4_0 etc. in f32 (Math.fround at each step); the quantizers
// are quantize_row_q4_0_ref etc. (round to nearest, no importance weights) and, for IQ4_NL,
// quantize_row_iq4_nl_ref (quantize_row_iq4_nl_impl with weights x^2 and 7 scale tries each side).

import { f16BitsToF32, f32ToF16Bits } from './f16.ts';

export type LegacyQuant = 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl';
export const QK_LEGACY = 32;
export const LEGACY_BLOCK_BYTES: Record<LegacyQuant, number> = { q4_0: 18, q4_1: 20, q5_0: 22, q5_1: 24, iq4_nl: 18 };
/** kvalues_iq4nl: IQ4_NL's 16 levels. */
export const KVALUES_IQ4NL: readonly number[] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/** The signed level of code q for the types without a min (Q4_0, Q5_0, IQ4_NL); q itself for Q4_1 / Q5_1. */
function level(t: LegacyQuant, q: number): number {
  return t === 'q4_0' ? q - 8 : t === 'q5_0' ? q - 16 : t === 'iq4_nl' ? KVALUES_IQ4NL[q]! : q;
}

const f = Math.fround;
const f16at = (src: Uint8Array, o: number): number => f16BitsToF32(src[o]! | (src[o + 1]! << 8));
const u32at = (src: Uint8Array, o: number): number => (src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24)) >>> 0;

/** Whether the type has a min (_1: weight = d q + m) rather than an offset (_0: d (q - off)). */
export function hasMin(t: LegacyQuant): boolean {
  return t === 'q4_1' || t === 'q5_1';
}

/** The 32 codes (unsigned, 0..15 or 0..31) of the block at `o`, in element order. */
export function legacyCodes(t: LegacyQuant, src: Uint8Array, o: number, q: Uint8Array): void {
  const five = t === 'q5_0' || t === 'q5_1';
  const qs = o + (t === 'q4_0' || t === 'iq4_nl' ? 2 : t === 'q4_1' ? 4 : t === 'q5_0' ? 6 : 8);
  const qh = five ? u32at(src, o + (t === 'q5_0' ? 2 : 4)) : 0;
  for (let l = 0; l < 16; l++) {
    const b = src[qs + l]!;
    q[l] = (b & 15) | (((qh >>> l) & 1) << 4);
    q[l + 16] = (b >> 4) | (((qh >>> (l + 16)) & 1) << 4);
  }
}

function checkSizes(fn: string, bb: number, byteLength: number, n: number, out?: Float32Array): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK_LEGACY !== 0) throw new Error(`${fn}: length ${n} is not a multiple of ${QK_LEGACY}`);
  if (byteLength < (n / QK_LEGACY) * bb) throw new Error(`${fn}: ${byteLength} bytes is too short for ${n} elements`);
  if (out && out.length < n) throw new Error(`${fn}: out has ${out.length} elements, need ${n}`);
}

const codes = new Uint8Array(QK_LEGACY);

/** Decodes `n` elements (a multiple of 32) of a legacy quant type into `out` (or a new array). */
export function dequantizeLegacy(t: LegacyQuant, src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  const bb = LEGACY_BLOCK_BYTES[t];
  checkSizes(`dequantize ${t}`, bb, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_LEGACY, o += bb) {
    const d = f16at(src, o);
    legacyCodes(t, src, o, codes);
    if (hasMin(t)) {
      const m = f16at(src, o + 2);
      for (let j = 0; j < QK_LEGACY; j++) y[b + j] = f(f(codes[j]! * d) + m);
    } else {
      for (let j = 0; j < QK_LEGACY; j++) y[b + j] = f(level(t, codes[j]!) * d);
    }
  }
  return y;
}

// ---- Q8_0 / Q8_1 activations ----------------------------------------------------------------

export interface Q8Row {
  /** int8 values, one per element */
  q: Int8Array;
  /** the f16-rounded scale of each 32, as f32 */
  d: Float32Array;
  /** Q8_1 only: f16(d * sum q) of each 32 (d before rounding), as f32 */
  s: Float32Array;
}

/** quantize_row_q8_0_ref / quantize_row_q8_1_ref of x[off .. off + n) (n a multiple of 32). */
export function quantizeQ8Act(x: ArrayLike<number>, n: number, off = 0): Q8Row {
  if (n % QK_LEGACY !== 0) throw new Error(`quantizeQ8Act: length ${n} is not a multiple of ${QK_LEGACY}`);
  const nb = n / QK_LEGACY;
  const q = new Int8Array(n), d = new Float32Array(nb), s = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < QK_LEGACY; j++) amax = Math.max(amax, Math.abs(f(x[off + b * QK_LEGACY + j]!)));
    const db = f(amax / 127);
    const id = db ? f(1 / db) : 0;
    let sum = 0;
    for (let j = 0; j < QK_LEGACY; j++) {
      const v = f(f(x[off + b * QK_LEGACY + j]!) * id);
      const r = Math.sign(v) * Math.round(Math.abs(v)); // roundf: ties away from zero
      q[b * QK_LEGACY + j] = r;
      sum += r;
    }
    d[b] = f16BitsToF32(f32ToF16Bits(db));
    s[b] = f16BitsToF32(f32ToF16Bits(f(sum * db)));
  }
  return { q, d, s };
}

/**
 * Dot product of the row at `src[o..]` (n elements of type t) with a Q8_0 (t = q4_0, q5_0) or
 * Q8_1 (q4_1, q5_1) row from element `xo`: each block's integer sum exact, scaled, summed in f64.
 */
export function dotLegacy(t: LegacyQuant, src: Uint8Array, o: number, x: Q8Row, xo: number, n: number): number {
  const bb = LEGACY_BLOCK_BYTES[t];
  let acc = 0;
  for (let b = 0; b < n / QK_LEGACY; b++, o += bb) {
    const xb = xo / QK_LEGACY + b;
    legacyCodes(t, src, o, codes);
    let S = 0;
    for (let j = 0; j < QK_LEGACY; j++) S += level(t, codes[j]!) * x.q[xb * QK_LEGACY + j]!;
    acc += f16at(src, o) * x.d[xb]! * S;
    if (hasMin(t)) acc += f16at(src, o + 2) * x.s[xb]!;
  }
  return acc;
}

// ---- quantizers (llama.cpp's reference ones) ----------------------------------------------------

/** quantize_row_q4_0_ref / q4_1_ref / q5_0_ref / q5_1_ref (n a multiple of 32). */
export function quantizeLegacy(t: LegacyQuant, src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_LEGACY !== 0) throw new Error(`quantize ${t}: length ${n} is not a multiple of ${QK_LEGACY}`);
  if (t === 'iq4_nl') return quantizeIQ4_NL(src);
  const bb = LEGACY_BLOCK_BYTES[t];
  const five = t === 'q5_0' || t === 'q5_1';
  const nmax = five ? 31 : 15;
  const out = new Uint8Array((n / QK_LEGACY) * bb);
  const L = new Uint8Array(QK_LEGACY);
  for (let b = 0, o = 0; b < n; b += QK_LEGACY, o += bb) {
    let d: number, id: number;
    if (hasMin(t)) {
      let min = Infinity, max = -Infinity;
      for (let j = 0; j < QK_LEGACY; j++) {
        const v = f(src[b + j]!);
        if (v < min) min = v;
        if (v > max) max = v;
      }
      d = f(f(max - min) / nmax);
      id = d ? f(1 / d) : 0;
      const mh = f32ToF16Bits(min);
      out[o + 2] = mh & 255;
      out[o + 3] = mh >> 8;
      // (x - min) / d + 0.5 truncated (non-negative); Q4_1 caps at 15, Q5_1 as llama.cpp does not
      for (let j = 0; j < QK_LEGACY; j++) {
        const l = Math.trunc(f(f(f(f(src[b + j]!) - min) * id) + 0.5));
        L[j] = five ? l & 255 : Math.min(15, l);
      }
    } else {
      let amax = 0, max = 0;
      for (let j = 0; j < QK_LEGACY; j++) {
        const v = f(src[b + j]!);
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      d = f(max / (five ? -16 : -8));
      id = d ? f(1 / d) : 0;
      const half = five ? 16.5 : 8.5;
      for (let j = 0; j < QK_LEGACY; j++) L[j] = Math.min(nmax, Math.trunc(f(f(f(src[b + j]!) * id) + half)));
    }
    const dh = f32ToF16Bits(d);
    out[o] = dh & 255;
    out[o + 1] = dh >> 8;
    const qs = o + (t === 'q4_0' ? 2 : t === 'q4_1' ? 4 : t === 'q5_0' ? 6 : 8);
    let qh = 0;
    for (let l = 0; l < 16; l++) {
      out[qs + l] = (L[l]! & 15) | ((L[l + 16]! & 15) << 4);
      qh |= ((L[l]! >> 4) & 1) << l;
      qh |= ((L[l + 16]! >> 4) & 1) << (l + 16);
    }
    if (five) {
      const p = o + (t === 'q5_0' ? 2 : 4);
      out[p] = qh & 255;
      out[p + 1] = (qh >>> 8) & 255;
      out[p + 2] = (qh >>> 16) & 255;
      out[p + 3] = (qh >>> 24) & 255;
    }
  }
  return out;
}

/** best_index_int8: the index of the level nearest to x (ties to the upper one), levels ascending. */
export function bestIndex(x: number): number {
  const v = KVALUES_IQ4NL;
  if (x <= v[0]!) return 0;
  if (x >= v[15]!) return 15;
  let ml = 0, mu = 15;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (x < v[mav]!) mu = mav;
    else ml = mav;
  }
  return f(x - v[mu - 1]!) < f(v[mu]! - x) ? mu - 1 : mu;
}

const GROUP_MAX_EPS = f(1e-15);

/** quantize_row_iq4_nl_ref: quantize_row_iq4_nl_impl per block of 32, weights x^2, ntry 7. */
function quantizeIQ4_NL(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  const out = new Uint8Array((n / QK_LEGACY) * 18);
  const x = new Float32Array(32), w = new Float32Array(32), L = new Uint8Array(32);
  const v0 = KVALUES_IQ4NL[0]!;
  for (let b = 0, o = 0; b < n; b += QK_LEGACY, o += 18) {
    for (let j = 0; j < 32; j++) x[j] = src[b + j]!;
    let scale = 0;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      w[j] = f(x[j]! * x[j]!);
      const ax = Math.abs(x[j]!);
      if (ax > amax) {
        amax = ax;
        max = x[j]!;
      }
    }
    if (!(amax < GROUP_MAX_EPS)) {
      let d = f(-max / v0);
      let id = f(1 / d);
      let sumqx = 0, sumq2 = 0;
      for (let j = 0; j < 32; j++) {
        const q = KVALUES_IQ4NL[bestIndex(f(id * x[j]!))]!;
        sumqx = f(sumqx + f(f(w[j]! * q) * x[j]!));
        sumq2 = f(sumq2 + f(f(w[j]! * q) * q));
      }
      d = f(sumqx / sumq2);
      let best = f(d * sumqx);
      for (let itry = -7; itry <= 7; itry++) {
        id = f((itry + v0) / max);
        sumqx = sumq2 = 0;
        for (let j = 0; j < 32; j++) {
          const q = KVALUES_IQ4NL[bestIndex(f(id * x[j]!))]!;
          sumqx = f(sumqx + f(f(w[j]! * q) * x[j]!));
          sumq2 = f(sumq2 + f(f(w[j]! * q) * q));
        }
        if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
          d = f(sumqx / sumq2);
          best = f(d * sumqx);
        }
      }
      scale = d;
    }
    const dh = f32ToF16Bits(scale);
    out[o] = dh & 255;
    out[o + 1] = dh >> 8;
    const id = scale ? f(1 / scale) : 0;
    for (let j = 0; j < 32; j++) L[j] = bestIndex(f(id * x[j]!));
    for (let j = 0; j < 16; j++) out[o + 2 + j] = L[j]! | (L[j + 16]! << 4);
  }
  return out;
}
