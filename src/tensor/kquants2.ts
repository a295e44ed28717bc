// The low-bit GGUF super-block types Q2_K, Q3_K and IQ4_XS, as llama.cpp defines them
// (ggml-common.h block_q2_K / block_q3_K / block_iq4_xs, ggml-quants.c reference code). All three
// multiply Q8_K activations (kquants.ts), as llama.cpp's ggml_vec_dot_*_q8_K do. One super-block
// holds QK_K = 256 weights:
//
//   Q2_K (84 bytes)    scales[16], qs[64], f16 d, f16 dmin. Sixteen groups of 16 weights; byte
//                      scales[g] holds the group's 4-bit scale (low nibble) and 4-bit min (high
//                      nibble). Weight = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4),
//                      q in 0..3. Element e = 128h + 32j + l (h < 2, j < 4, l < 32) is bits
//                      2j..2j+1 of qs[32h + l], group e / 16.
//
//   Q3_K (110 bytes)   hmask[32], qs[64], scales[12], f16 d. Weight = d * (s[g] - 32) * (q - 4),
//                      q = (low 2 bits, as in Q2_K's qs) | (bit e / 32 of hmask[e % 32]) << 2, so
//                      a clear hmask bit means q - 4 is -4..-1. The sixteen 6-bit scales s[g]:
//                      low 4 bits in the nibbles of bytes 0-7 (g < 8: low nibble of byte g;
//                      g >= 8: high nibble of byte g - 8), high 2 bits in bytes 8-11 (bits
//                      2(g / 4)..+1 of byte 8 + g % 4).
//
//   IQ4_XS (136 bytes) f16 d, u16 scales_h, scales_l[4], qs[128]. Eight sub-blocks of 32, each
//                      laid out as one IQ4_NL block (qs[16 ib + j]: low nibble element j, high
//                      nibble element j + 16) with a 6-bit scale ls: low 4 bits the nibble
//                      ib % 2 of scales_l[ib / 2], high 2 bits bits 2ib..2ib+1 of scales_h.
//                      Weight = d * (ls - 32) * kvalues_iq4nl[q].
//
// A row times a Q8_K row is, per super-block, an exact integer combination:
//   Q2_K:   d_w d_x sum_g sc[g] dot(q_g, x_g)  -  dmin d_x sum_g m[g] bsum(x_g)
//   Q3_K:   d_w d_x sum_g (s[g] - 32) dot(q_g - 4, x_g)
//   IQ4_XS: d_w d_x sum_ib (ls[ib] - 32) dot(kvalues[q_ib], x_ib)
// The reference backend forms those integers exactly and accumulates in f64.
//
// Decoding follows the reference C in f32 (Math.fround at each step): llama.cpp's
// dequantize_row_q2_K / q3_K / iq4_xs bit for bit (test/kquants2.test.ts checks this against
// bytes llama.cpp itself decoded). The quantizers are llama.cpp's: quantize_row_q2_K_ref
// (make_qkx2_quants judged by absolute error), quantize_row_q3_K_ref (make_q3_quants with its
// coordinate-descent refinement) and quantize_iq4_xs without an importance matrix
// (quantize_row_iq4_nl_impl over 256 with sub-blocks of 32, weights x^2, 7 scale tries each side),
// transcribed with f32 rounding at every step: the same bytes.

import { f16BitsToF32, f32ToF16Bits } from './f16.ts';
import { f16at, makeQkx2Quants, nearestInt, QK_K, type Q8KRow } from './kquants.ts';
import { bestIndex, KVALUES_IQ4NL } from './legacyq.ts';

export const Q2_K_BLOCK_BYTES = 84;
export const Q3_K_BLOCK_BYTES = 110;
export const IQ4_XS_BLOCK_BYTES = 136;

const f = Math.fround;
const GROUP_MAX_EPS = f(1e-15);

function checkSizes(fn: string, blockBytes: number, byteLength: number, n: number, out?: Float32Array): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK_K !== 0) throw new Error(`${fn}: length ${n} is not a multiple of ${QK_K}`);
  if (byteLength < (n / QK_K) * blockBytes) throw new Error(`${fn}: ${byteLength} bytes is too short for ${n} elements`);
  if (out && out.length < n) throw new Error(`${fn}: out has ${out.length} elements, need ${n}`);
}

/** The 2-bit code of element e (0..255) from the 64 qs bytes at `qs` (Q2_K, and Q3_K's low bits). */
function low2(src: Uint8Array, qs: number, e: number): number {
  return (src[qs + 32 * (e >> 7) + (e & 31)]! >> (2 * ((e >> 5) & 3))) & 3;
}

/** Q3_K's 6-bit scale of group g (0..15) from the 12 bytes at p, minus 32 (-32..31). */
export function q3Scale(src: Uint8Array, p: number, g: number): number {
  const lo = g < 8 ? src[p + g]! & 15 : src[p + g - 8]! >> 4;
  const hi = (src[p + 8 + (g & 3)]! >> (2 * (g >> 2))) & 3;
  return (lo | (hi << 4)) - 32;
}

/** IQ4_XS's 6-bit scale of sub-block ib (0..7), minus 32 (-32..31). */
export function iq4xsScale(src: Uint8Array, o: number, ib: number): number {
  const sh = src[o + 2]! | (src[o + 3]! << 8);
  return (((src[o + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4)) - 32;
}

/** Q3_K code minus 4 (-4..3) of element e of the block at o. */
function q3Value(src: Uint8Array, o: number, e: number): number {
  return low2(src, o + 32, e) - ((src[o + (e & 31)]! >> (e >> 5)) & 1 ? 0 : 4);
}

/** Decodes `n` elements of Q2_K (n a multiple of 256) into `out` (or a new array). */
export function dequantizeQ2_K(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ2_K', Q2_K_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q2_K_BLOCK_BYTES) {
    const d = f16at(src, o + 80), dmin = f16at(src, o + 82);
    for (let g = 0; g < 16; g++) {
      const sc = src[o + g]!;
      const dl = f(d * (sc & 15)), ml = f(dmin * (sc >> 4));
      for (let i = 16 * g; i < 16 * g + 16; i++) y[b + i] = f(f(dl * low2(src, o + 16, i)) - ml);
    }
  }
  return y;
}

/** Decodes `n` elements of Q3_K (n a multiple of 256) into `out` (or a new array). */
export function dequantizeQ3_K(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ3_K', Q3_K_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q3_K_BLOCK_BYTES) {
    const d = f16at(src, o + 108);
    for (let g = 0; g < 16; g++) {
      const dl = f(d * q3Scale(src, o + 96, g));
      for (let i = 16 * g; i < 16 * g + 16; i++) y[b + i] = f(dl * q3Value(src, o, i));
    }
  }
  return y;
}

/** Decodes `n` elements of IQ4_XS (n a multiple of 256) into `out` (or a new array). */
export function dequantizeIQ4_XS(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeIQ4_XS', IQ4_XS_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += QK_K, o += IQ4_XS_BLOCK_BYTES) {
    const d = f16at(src, o);
    for (let ib = 0; ib < 8; ib++) {
      const dl = f(d * iq4xsScale(src, o, ib));
      const qs = o + 8 + 16 * ib, e = b + 32 * ib;
      for (let j = 0; j < 16; j++) {
        y[e + j] = f(dl * KVALUES_IQ4NL[src[qs + j]! & 15]!);
        y[e + j + 16] = f(dl * KVALUES_IQ4NL[src[qs + j]! >> 4]!);
      }
    }
  }
  return y;
}

// ---- dot products with Q8_K activations (ggml_vec_dot_q2_K_q8_K, q3_K_q8_K, iq4_xs_q8_K) ----------

/** Dot product of the Q2_K row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotQ2_K_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  let acc = 0;
  for (let b = 0; b < n / QK_K; b++, o += Q2_K_BLOCK_BYTES) {
    const xb = xo / QK_K + b, dx = x.d[xb]!;
    let S = 0, M = 0;
    for (let g = 0; g < 16; g++) {
      const sc = src[o + g]!;
      let dot = 0;
      for (let i = 16 * g; i < 16 * g + 16; i++) dot += low2(src, o + 16, i) * x.q[xb * QK_K + i]!;
      S += (sc & 15) * dot;
      M += (sc >> 4) * x.bsums[xb * 16 + g]!;
    }
    acc += f16at(src, o + 80) * dx * S - f16at(src, o + 82) * dx * M;
  }
  return acc;
}

/** Dot product of the Q3_K row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotQ3_K_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  let acc = 0;
  for (let b = 0; b < n / QK_K; b++, o += Q3_K_BLOCK_BYTES) {
    const xb = xo / QK_K + b;
    let S = 0;
    for (let g = 0; g < 16; g++) {
      let dot = 0;
      for (let i = 16 * g; i < 16 * g + 16; i++) dot += q3Value(src, o, i) * x.q[xb * QK_K + i]!;
      S += q3Scale(src, o + 96, g) * dot;
    }
    acc += f16at(src, o + 108) * x.d[xb]! * S;
  }
  return acc;
}

/** Dot product of the IQ4_XS row at `src[o..]` (n elements) with a Q8_K row (from element `xo`). */
export function dotIQ4_XS_Q8_K(src: Uint8Array, o: number, x: Q8KRow, xo: number, n: number): number {
  let acc = 0;
  for (let b = 0; b < n / QK_K; b++, o += IQ4_XS_BLOCK_BYTES) {
    const xb = xo / QK_K + b;
    let S = 0;
    for (let ib = 0; ib < 8; ib++) {
      const qs = o + 8 + 16 * ib, xe = xb * QK_K + 32 * ib;
      let dot = 0;
      for (let j = 0; j < 16; j++) dot += KVALUES_IQ4NL[src[qs + j]! & 15]! * x.q[xe + j]! + KVALUES_IQ4NL[src[qs + j]! >> 4]! * x.q[xe + j + 16]!;
      S += iq4xsScale(src, o, ib) * dot;
    }
    acc += f16at(src, o) * x.d[xb]! * S;
  }
  return acc;
}

// ---- quantizers (llama.cpp's reference ones) ----------------------------------------------------

function putF16(out: Uint8Array, at: number, v: number): number {
  const h = f32ToF16Bits(v);
  out[at] = h & 255;
  out[at + 1] = h >> 8;
  return f16BitsToF32(h);
}

/** Packs 256 codes of 2 bits (Q2_K, Q3_K's low bits) into 64 bytes at `at`. */
function pack2(L: Uint8Array, out: Uint8Array, at: number): void {
  for (let h = 0; h < 2; h++)
    for (let l = 0; l < 32; l++) {
      const j = 128 * h + l;
      out[at + 32 * h + l] = (L[j]! & 3) | ((L[j + 32]! & 3) << 2) | ((L[j + 64]! & 3) << 4) | ((L[j + 96]! & 3) << 6);
    }
}

/** quantize_row_q2_K_ref (n a multiple of 256). */
export function quantizeQ2_K(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_K !== 0) throw new Error(`quantizeQ2_K: length ${n} is not a multiple of ${QK_K}`);
  const out = new Uint8Array((n / QK_K) * Q2_K_BLOCK_BYTES);
  const L = new Uint8Array(QK_K), Laux = new Uint8Array(16), xs = new Float32Array(16), w = new Float32Array(16);
  const scales = new Float32Array(16), mins = new Float32Array(16);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q2_K_BLOCK_BYTES) {
    let maxScale = 0, maxMin = 0;
    for (let g = 0; g < 16; g++) {
      for (let l = 0; l < 16; l++) {
        xs[l] = src[b + 16 * g + l]!;
        w[l] = Math.abs(xs[l]!);
      }
      const [sc, mn] = makeQkx2Quants(16, 3, xs, w, L.subarray(16 * g, 16 * g + 16), Laux, -0.5, f(0.1), 15, true);
      scales[g] = sc;
      mins[g] = mn;
      if (scales[g]! > maxScale) maxScale = scales[g]!;
      if (mins[g]! > maxMin) maxMin = mins[g]!;
    }
    if (maxScale > 0) {
      const iscale = f(15 / maxScale);
      for (let g = 0; g < 16; g++) out[o + g] = nearestInt(f(iscale * scales[g]!)) & 255;
    }
    const dd = putF16(out, o + 80, maxScale > 0 ? f(maxScale / 15) : 0);
    if (maxMin > 0) {
      const iscale = f(15 / maxMin);
      for (let g = 0; g < 16; g++) out[o + g] |= (nearestInt(f(iscale * mins[g]!)) << 4) & 255;
    }
    const dm = putF16(out, o + 82, maxMin > 0 ? f(maxMin / 15) : 0);
    for (let g = 0; g < 16; g++) {
      const d = f(dd * (out[o + g]! & 15));
      if (!d) continue;
      const m = f(dm * (out[o + g]! >> 4));
      for (let i = 0; i < 16; i++) L[16 * g + i] = Math.max(0, Math.min(3, nearestInt(f(f(src[b + 16 * g + i]! + m) / d))));
    }
    pack2(L, out, o + 16);
  }
  return out;
}

/**
 * make_q3_quants with do_rmse: symmetric levels -nmax..nmax-1 (stored + nmax), weights x^2, the
 * rounding refined one coordinate at a time (up to 5 sweeps) while the weighted fit improves.
 */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, L: Uint8Array): number {
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
  const iscale = f(-nmax / max);
  const Ls = new Int8Array(n);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[i]!))));
    Ls[i] = l;
    const w = f(x[i]! * x[i]!);
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = f(x[i]! * x[i]!);
      let slx = f(sumlx - f(f(w * x[i]!) * Ls[i]!));
      if (slx > 0) {
        let sl2 = f(suml2 - f(f(w * Ls[i]!) * Ls[i]!));
        const nl = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(f(x[i]! * sl2) / slx))));
        if (nl !== Ls[i]) {
          slx = f(slx + f(f(w * x[i]!) * nl));
          sl2 = f(sl2 + f(f(w * nl) * nl));
          if (sl2 > 0 && f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            Ls[i] = nl;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (let i = 0; i < n; i++) L[i] = Ls[i]! + nmax;
  return f(sumlx / suml2);
}

/** quantize_row_q3_K_ref (n a multiple of 256). */
export function quantizeQ3_K(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_K !== 0) throw new Error(`quantizeQ3_K: length ${n} is not a multiple of ${QK_K}`);
  const out = new Uint8Array((n / QK_K) * Q3_K_BLOCK_BYTES);
  const L = new Uint8Array(QK_K), xs = new Float32Array(16), scales = new Float32Array(16);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q3_K_BLOCK_BYTES) {
    let maxScale = 0, amax = 0;
    for (let g = 0; g < 16; g++) {
      for (let l = 0; l < 16; l++) xs[l] = src[b + 16 * g + l]!;
      scales[g] = makeQ3Quants(16, 4, xs, L.subarray(16 * g, 16 * g + 16));
      const a = Math.abs(scales[g]!);
      if (a > amax) {
        amax = a;
        maxScale = scales[g]!;
      }
    }
    const sp = o + 96;
    let dd = 0;
    if (maxScale) {
      const iscale = f(-32 / maxScale);
      for (let g = 0; g < 16; g++) {
        const l = Math.max(-32, Math.min(31, nearestInt(f(iscale * scales[g]!)))) + 32;
        if (g < 8) out[sp + g] = l & 15;
        else out[sp + g - 8] |= (l & 15) << 4;
        out[sp + 8 + (g & 3)] |= (l >> 4) << (2 * (g >> 2));
      }
      dd = putF16(out, o + 108, f(1 / iscale));
    }
    for (let g = 0; g < 16; g++) {
      const d = f(dd * q3Scale(out, sp, g));
      if (!d) continue;
      for (let i = 0; i < 16; i++) L[16 * g + i] = Math.max(-4, Math.min(3, nearestInt(f(src[b + 16 * g + i]! / d)))) + 4;
    }
    for (let j = 0; j < QK_K; j++) {
      if (L[j]! > 3) {
        out[o + (j & 31)] |= 1 << (j >> 5);
        L[j] = L[j]! - 4;
      }
    }
    pack2(L, out, o + 32);
  }
  return out;
}

/** quantize_iq4_xs without importance: quantize_row_iq4_nl_impl(256, 32, weights x^2, ntry 7) per super-block. */
export function quantizeIQ4_XS(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_K !== 0) throw new Error(`quantizeIQ4_XS: length ${n} is not a multiple of ${QK_K}`);
  const out = new Uint8Array((n / QK_K) * IQ4_XS_BLOCK_BYTES);
  const xb = new Float32Array(32), w = new Float32Array(32), L = new Uint8Array(QK_K), scales = new Float32Array(8);
  const v0 = KVALUES_IQ4NL[0]!;
  for (let b = 0, o = 0; b < n; b += QK_K, o += IQ4_XS_BLOCK_BYTES) {
    let maxScale = 0, amaxScale = 0;
    for (let ib = 0; ib < 8; ib++) {
      let amax = 0, max = 0;
      for (let j = 0; j < 32; j++) {
        xb[j] = src[b + 32 * ib + j]!;
        w[j] = f(xb[j]! * xb[j]!);
        const ax = Math.abs(xb[j]!);
        if (ax > amax) {
          amax = ax;
          max = xb[j]!;
        }
      }
      if (amax < GROUP_MAX_EPS) {
        scales[ib] = 0;
        continue;
      }
      let d = f(-max / v0);
      let id = f(1 / d);
      let sumqx = 0, sumq2 = 0;
      for (let j = 0; j < 32; j++) {
        const q = KVALUES_IQ4NL[bestIndex(f(id * xb[j]!))]!;
        sumqx = f(sumqx + f(f(w[j]! * q) * xb[j]!));
        sumq2 = f(sumq2 + f(f(w[j]! * q) * q));
      }
      d = f(sumqx / sumq2);
      let best = f(d * sumqx);
      for (let itry = -7; itry <= 7; itry++) {
        id = f((itry + v0) / max);
        sumqx = sumq2 = 0;
        for (let j = 0; j < 32; j++) {
          const q = KVALUES_IQ4NL[bestIndex(f(id * xb[j]!))]!;
          sumqx = f(sumqx + f(f(w[j]! * q) * xb[j]!));
          sumq2 = f(sumq2 + f(f(w[j]! * q) * q));
        }
        if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
          d = f(sumqx / sumq2);
          best = f(d * sumqx);
        }
      }
      scales[ib] = d;
      if (Math.abs(d) > amaxScale) {
        amaxScale = Math.abs(d);
        maxScale = d;
      }
    }
    // the super-block scale is stored in f16; the sub-block levels are chosen with its f32 value
    const d = f(-maxScale / 32);
    putF16(out, o, d);
    const id = d ? f(1 / d) : 0;
    let sh = 0;
    for (let ib = 0; ib < 8; ib++) {
      let l = Math.max(-32, Math.min(31, nearestInt(f(id * scales[ib]!))));
      const dl = f(d * l), idl = dl ? f(1 / dl) : 0;
      for (let j = 0; j < 32; j++) L[32 * ib + j] = bestIndex(f(idl * src[b + 32 * ib + j]!));
      l += 32;
      out[o + 4 + (ib >> 1)] |= (l & 15) << (4 * (ib & 1));
      sh |= (l >> 4) << (2 * ib);
    }
    out[o + 2] = sh & 255;
    out[o + 3] = sh >> 8;
    for (let i = 0; i < 8; i++) for (let j = 0; j < 16; j++) out[o + 8 + 16 * i + j] = L[32 * i + j]! | (L[32 * i + 16 + j]! << 4);
  }
  return out;
}
