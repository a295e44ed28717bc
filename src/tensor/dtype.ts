// Element types and their bit-exact conversions.
//
// q8_0 is GGUF's layout: blocks of 32 weights, each block = one f16 scale `d` followed by
// 32 int8 values `q`; the weight is d * q. A row of K weights (K a multiple of 32) takes
// K / 32 * 34 bytes.
//
// q4_k, q5_k and q6_k are GGUF's Q4_K, Q5_K and Q6_K super-blocks of 256 weights (144, 176 and 210 bytes; the
// layouts are in kquants.ts). They are weight-only types: matmul multiplies them with
// activations quantized to Q8_K, as llama.cpp does. q2_k, q3_k and iq4_xs are GGUF's Q2_K, Q3_K and
// IQ4_XS super-blocks (84, 110 and 136 bytes; layouts in kquants2.ts), likewise with Q8_K
// activations.
//
// q4_0, q4_1, q5_0, q5_1 and iq4_nl are GGUF's Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL blocks of 32
// weights (18, 20, 22, 24 and 18 bytes; layouts in legacyq.ts), weight-only types too: matmul
// multiplies Q4_0 / Q5_0 / IQ4_NL with Q8_0 activations and Q4_1 / Q5_1 with Q8_1 activations, as
// llama.cpp does.

import {
  dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K, Q4_K_BLOCK_BYTES, Q5_K_BLOCK_BYTES, Q6_K_BLOCK_BYTES, QK_K, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K,
} from './kquants.ts';
import {
  dequantizeIQ4_XS, dequantizeQ2_K, dequantizeQ3_K, IQ4_XS_BLOCK_BYTES, Q2_K_BLOCK_BYTES, Q3_K_BLOCK_BYTES, quantizeIQ4_XS, quantizeQ2_K, quantizeQ3_K,
} from './kquants2.ts';
import { dequantizeLegacy, LEGACY_BLOCK_BYTES, QK_LEGACY, quantizeLegacy, type LegacyQuant } from './legacyq.ts';

export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_k' | 'q6_k' | 'q5_k' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl' | 'q2_k' | 'q3_k' | 'iq4_xs';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_k', 'q6_k', 'q5_k', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k', 'iq4_xs'];

/** Numeric codes shared with the native core (native/src/kernels.h: enum ss_dtype). */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_k: 4, q6_k: 5, q5_k: 6, q4_0: 7, q4_1: 8, q5_0: 9, q5_1: 10, iq4_nl: 11, q2_k: 12, q3_k: 13, iq4_xs: 14 };

export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 34;

/** Elements per block (1 for plain number types): rows and strides are whole blocks. */
export function blockSize(dtype: DType): number {
  return dtype === 'q8_0' ? Q8_0_BLOCK : isKQuant(dtype) ? QK_K : isLegacyQuant(dtype) ? QK_LEGACY : 1;
}

/** GGUF's simple weight types (blocks of 32; matmul with Q8_0 / Q8_1 activations; not usable as activations or caches). */
export function isLegacyQuant(dtype: DType): dtype is LegacyQuant {
  return dtype === 'q4_0' || dtype === 'q4_1' || dtype === 'q5_0' || dtype === 'q5_1' || dtype === 'iq4_nl';
}

export type KQuant = 'q4_k' | 'q5_k' | 'q6_k' | 'q2_k' | 'q3_k' | 'iq4_xs';

/** The super-block weight types of 256 (matmul with Q8_K activations; not usable as activations or caches). */
export function isKQuant(dtype: DType): dtype is KQuant {
  return dtype === 'q4_k' || dtype === 'q5_k' || dtype === 'q6_k' || dtype === 'q2_k' || dtype === 'q3_k' || dtype === 'iq4_xs';
}

const KQUANT_BLOCK_BYTES: Record<KQuant, number> = {
  q4_k: Q4_K_BLOCK_BYTES, q5_k: Q5_K_BLOCK_BYTES, q6_k: Q6_K_BLOCK_BYTES, q2_k: Q2_K_BLOCK_BYTES, q3_k: Q3_K_BLOCK_BYTES, iq4_xs: IQ4_XS_BLOCK_BYTES,
};

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

/** Bytes taken by `n` consecutive elements (n must be a multiple of 32 for q8_0). */
export function bytesFor(dtype: DType, n: number): number {
  switch (dtype) {
    case 'f32':
      return n * 4;
    case 'f16':
    case 'bf16':
      return n * 2;
    case 'q8_0':
      if (n % Q8_0_BLOCK !== 0) throw new Error(`q8_0: element count ${n} is not a multiple of ${Q8_0_BLOCK}`);
      return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
    case 'q4_k':
    case 'q5_k':
    case 'q6_k':
    case 'q2_k':
    case 'q3_k':
    case 'iq4_xs':
      if (n % QK_K !== 0) throw new Error(`${dtype}: element count ${n} is not a multiple of ${QK_K}`);
      return (n / QK_K) * KQUANT_BLOCK_BYTES[dtype];
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
    case 'iq4_nl':
      if (n % QK_LEGACY !== 0) throw new Error(`${dtype}: element count ${n} is not a multiple of ${QK_LEGACY}`);
      return (n / QK_LEGACY) * LEGACY_BLOCK_BYTES[dtype];
  }
}

// ---- f16 (in f16.ts, which kquants.ts also uses) -------------------------------------

export { f16BitsToF32, f32ToF16Bits } from './f16.ts';
import { f16BitsToF32, f32ToF16Bits } from './f16.ts';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

// ---- bf16 ------------------------------------------------------------------------------

/** f32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0]!;
}

// ---- whole-array conversions -------------------------------------------------------------

export function f32ToF16Array(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}

export function f32ToBf16Array(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]!);
  return out;
}

/** Quantize to q8_0 as llama.cpp does: d = amax / 127, q = round(x / d) (ties away from zero). */
export function quantizeQ8_0(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % Q8_0_BLOCK !== 0) throw new Error(`quantizeQ8_0: length ${n} is not a multiple of ${Q8_0_BLOCK}`);
  const out = new Uint8Array((n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < n / Q8_0_BLOCK; b++) {
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK; i++) amax = Math.max(amax, Math.abs(src[b * Q8_0_BLOCK + i]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    dv.setUint16(o, f32ToF16Bits(d), true);
    for (let i = 0; i < Q8_0_BLOCK; i++) {
      const x = Math.fround(src[b * Q8_0_BLOCK + i]! * id);
      const q = Math.sign(x) * Math.round(Math.abs(x)); // roundf: ties away from zero
      dv.setInt8(o + 2 + i, Math.max(-127, Math.min(127, q)));
    }
  }
  return out;
}

export function dequantizeQ8_0(src: Uint8Array, n: number): Float32Array {
  if (n % Q8_0_BLOCK !== 0) throw new Error(`dequantizeQ8_0: length ${n} is not a multiple of ${Q8_0_BLOCK}`);
  if (src.byteLength < (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES) throw new Error(`dequantizeQ8_0: ${src.byteLength} bytes is too short for ${n} elements`);
  const out = new Float32Array(n);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0; b < n / Q8_0_BLOCK; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(dv.getUint16(o, true));
    for (let i = 0; i < Q8_0_BLOCK; i++) out[b * Q8_0_BLOCK + i] = d * dv.getInt8(o + 2 + i);
  }
  return out;
}

/** Encode f32 values into the byte layout of `dtype`. */
export function encode(dtype: DType, src: ArrayLike<number>): Uint8Array {
  switch (dtype) {
    case 'f32': {
      const a = Float32Array.from(src);
      return new Uint8Array(a.buffer);
    }
    case 'f16':
      return new Uint8Array(f32ToF16Array(src).buffer);
    case 'bf16':
      return new Uint8Array(f32ToBf16Array(src).buffer);
    case 'q8_0':
      return quantizeQ8_0(src);
    case 'q4_k':
      return quantizeQ4_K(src);
    case 'q5_k':
      return quantizeQ5_K(src);
    case 'q6_k':
      return quantizeQ6_K(src);
    case 'q2_k':
      return quantizeQ2_K(src);
    case 'q3_k':
      return quantizeQ3_K(src);
    case 'iq4_xs':
      return quantizeIQ4_XS(src);
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
    case 'iq4_nl':
      return quantizeLegacy(dtype, src);
  }
}

/** Decode `n` consecutive elements of `dtype` starting at byte `byteOffset` of `bytes`. */
export function decode(dtype: DType, bytes: Uint8Array, n: number, byteOffset = 0): Float32Array {
  const need = bytesFor(dtype, n);
  if (byteOffset + need > bytes.byteLength) throw new Error(`decode ${dtype}: need ${need} bytes at offset ${byteOffset}, have ${bytes.byteLength}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + byteOffset, need);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'f32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'f16':
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    case 'bf16':
      for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    case 'q8_0':
      return dequantizeQ8_0(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n);
    case 'q4_k':
      return dequantizeQ4_K(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'q5_k':
      return dequantizeQ5_K(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'q6_k':
      return dequantizeQ6_K(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'q2_k':
      return dequantizeQ2_K(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'q3_k':
      return dequantizeQ3_K(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'iq4_xs':
      return dequantizeIQ4_XS(new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
    case 'iq4_nl':
      return dequantizeLegacy(dtype, new Uint8Array(bytes.buffer, bytes.byteOffset + byteOffset, need), n, out);
  }
}
