// ggml tensor types: ids, names, block geometry, and the 4-bit formats we can load.
//
// Every ggml type stores its elements in blocks along the innermost dimension (ne0): a block
// of `blockSize` elements takes `blockBytes` bytes. The reader needs this for every type, even
// those we cannot execute, to size tensors and validate their offsets. Ids are ggml.h's
// `enum ggml_type` (4 and 5 were Q4_2/Q4_3, removed; 31-33 and 36-38 were repacked variants
// that never appear in files).
//
// Q4_0, Q4_1, Q5_0, Q5_1 and the k-quants run as stored (src/tensor/legacyq.ts and kquants.ts have
// their layouts, decoders and quantizers); the Q4_0 helpers here are the original ones, kept for
// the reader's tests (the same bytes and values as legacyq.ts's). The layouts of Q4_0 and Q4_K:
//
//   Q4_0  block of 32: f16 d, then 16 bytes of nibbles. Byte j holds element j in its low
//         nibble and element j+16 in its high nibble; value = (q - 8) * d.
//
//   Q4_K  super-block of 256: f16 d, f16 dmin, 12 bytes of packed 6-bit (scale, min) pairs for
//         8 sub-blocks of 32, then 128 bytes of nibbles. Sub-block s has value
//         d * sc[s] * q - dmin * m[s]. The nibbles come in 4 chunks of 32 bytes: chunk c holds
//         sub-block 2c in the low nibbles and sub-block 2c+1 in the high nibbles.
//         Packing of the 12 bytes (ggml's get_scale_min_k4), for s < 4:
//           sc[s] = b[s] & 63            m[s] = b[s+4] & 63
//         and for s >= 4 the low 4 bits sit in b[s+4] and the high 2 bits in the top bits
//         of the bytes used by s-4:
//           sc[s] = (b[s+4] & 15) | (b[s-4] >> 6) << 4
//           m[s]  = (b[s+4] >> 4) | (b[s]   >> 6) << 4
//
// The arithmetic follows ggml's reference C in f32 (Math.fround at each step), so decoded
// values match llama.cpp's dequantize_row_* bit for bit.

import { f16BitsToF32, f32ToF16Bits } from '../tensor/dtype.ts';

export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block (1 for plain number types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
}

/** ggml type ids, as in ggml.h's enum ggml_type. */
export const GGML_TYPE = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9,
  Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, Q8_K: 15,
  IQ2_XXS: 16, IQ2_XS: 17, IQ3_XXS: 18, IQ1_S: 19, IQ4_NL: 20, IQ3_S: 21, IQ2_S: 22, IQ4_XS: 23,
  I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, IQ1_M: 29, BF16: 30,
  TQ1_0: 34, TQ2_0: 35, MXFP4: 39,
} as const;

export type GgmlTypeName = keyof typeof GGML_TYPE;

// [name, elements per block, bytes per block]. Sizes are those of ggml-common.h's block
// structs (QK_K = 256): e.g. Q6_K = 128 low bits + 64 high bits + 16 scales + f16 d = 210.
const GEOMETRY: Record<GgmlTypeName, [number, number]> = {
  F32: [1, 4], F16: [1, 2], BF16: [1, 2], F64: [1, 8],
  I8: [1, 1], I16: [1, 2], I32: [1, 4], I64: [1, 8],
  Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24], Q8_0: [32, 34], Q8_1: [32, 36],
  Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210], Q8_K: [256, 292],
  IQ2_XXS: [256, 66], IQ2_XS: [256, 74], IQ3_XXS: [256, 98], IQ1_S: [256, 50], IQ4_NL: [32, 18],
  IQ3_S: [256, 110], IQ2_S: [256, 82], IQ4_XS: [256, 136], IQ1_M: [256, 56],
  TQ1_0: [256, 54], TQ2_0: [256, 66], MXFP4: [32, 17],
};

/** Every known ggml type by id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  (Object.keys(GGML_TYPE) as GgmlTypeName[]).map((name) => {
    const [blockSize, blockBytes] = GEOMETRY[name];
    const id = GGML_TYPE[name];
    return [id, Object.freeze({ id, name, blockSize, blockBytes })] as const;
  }),
);

/** id -> name ("Q4_K"); unknown ids are absent. */
export const GGML_TYPE_NAME: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries([...GGML_TYPES.values()].map((t) => [t.id, t.name])),
);

/** The name of a type id, or "unknown type <id>". */
export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAME[type] ?? `unknown type ${type}`;
}

/**
 * Bytes of a tensor of `type` with GGUF dims (dims[0] = ne0, innermost). Throws a plain Error
 * (callers wrap it with the file name) for unknown types, bad dims, a ne0 that is not a whole
 * number of blocks, or a size beyond 2^53.
 */
export function ggmlNbytes(type: number, dims: readonly number[]): number {
  const t = GGML_TYPES.get(type);
  if (!t) throw new Error(`unknown ggml type id ${type}`);
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`dimension ${d} is not an integer >= 0`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new Error(`dims [${dims.join(', ')}] have more than 2^53 elements`);
  }
  const ne0 = dims.length ? dims[0]! : 1;
  if (ne0 % t.blockSize !== 0) throw new Error(`${t.name} needs ne0 (dims[0]) to be a multiple of ${t.blockSize}, got ${ne0}`);
  const bytes = (n / t.blockSize) * t.blockBytes;
  if (!Number.isSafeInteger(bytes)) throw new Error(`dims [${dims.join(', ')}] of ${t.name} take more than 2^53 bytes`);
  return bytes;
}

// ---- Q4_0 ------------------------------------------------------------------------------

export const Q4_0_BLOCK = 32;
export const Q4_0_BLOCK_BYTES = 18;

function checkSizes(fn: string, block: number, blockBytes: number, byteLength: number, n: number, out?: Float32Array): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % block !== 0) throw new Error(`${fn}: length ${n} is not a multiple of ${block}`);
  if (byteLength < (n / block) * blockBytes) throw new Error(`${fn}: ${byteLength} bytes is too short for ${n} elements`);
  if (out && out.length < n) throw new Error(`${fn}: out has ${out.length} elements, need ${n}`);
}

/** Decodes `n` elements of Q4_0 (n a multiple of 32) into `out` (or a new array). */
export function dequantizeQ4_0(src: Uint8Array, n: number, out?: Float32Array): Float32Array {
  checkSizes('dequantizeQ4_0', Q4_0_BLOCK, Q4_0_BLOCK_BYTES, src.byteLength, n, out);
  const y = out ?? new Float32Array(n);
  for (let b = 0, o = 0; b < n; b += Q4_0_BLOCK, o += Q4_0_BLOCK_BYTES) {
    const d = f16BitsToF32(src[o]! | (src[o + 1]! << 8));
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j]!;
      y[b + j] = ((q & 15) - 8) * d;
      y[b + j + 16] = ((q >> 4) - 8) * d;
    }
  }
  return y;
}

/**
 * Round-to-nearest Q4_0, as ggml's reference quantizer: d = -(the value of largest magnitude)/8,
 * so that value maps exactly to q = 0; the other end clamps at q = 15. The error of an element
 * is at most |d|/2, except for values near +amax (on the clamped side), which may be off by |d|.
 */
export function quantizeQ4_0(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % Q4_0_BLOCK !== 0) throw new Error(`quantizeQ4_0: length ${n} is not a multiple of ${Q4_0_BLOCK}`);
  const out = new Uint8Array((n / Q4_0_BLOCK) * Q4_0_BLOCK_BYTES);
  for (let b = 0, o = 0; b < n; b += Q4_0_BLOCK, o += Q4_0_BLOCK_BYTES) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < Q4_0_BLOCK; j++) {
      const v = src[b + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const h = f32ToF16Bits(d);
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      // trunc(x + 8.5) is round-to-nearest of x + 8 (x*id >= -8 keeps it non-negative)
      const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(src[b + j]! * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(src[b + j + 16]! * id) + 8.5)));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

// ---- Q4_K / Q6_K -----------------------------------------------------------------------
// Layouts, decoders and llama.cpp's quantizers live with the dtypes (src/tensor/kquants.ts): the
// k-quants run as stored. quantizeQ4_K below is a simpler, bounded-error quantizer kept for tests.

export { dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K, Q4_K_BLOCK_BYTES, Q5_K_BLOCK_BYTES, Q6_K_BLOCK_BYTES, QK_K } from '../tensor/kquants.ts';
import { QK_K, Q4_K_BLOCK_BYTES } from '../tensor/kquants.ts';

/** f16 bits of the smallest half >= v (v >= 0, finite): scales rounded up keep ranges covered. */
function f16Ceil(v: number): number {
  let h = f32ToF16Bits(v);
  if (f16BitsToF32(h) < v && h < 0x7bff) h += 1; // next half up (positive halves order like their bits)
  return h;
}

/**
 * A simple Q4_K quantizer (not ggml's iterative search): per sub-block of 32, the range
 * [min(0, lo), hi] is covered by 16 levels. The mins are quantized first (rounded up, so the
 * lowest value stays reachable), then each scale is rounded up so 15 steps reach hi. Every
 * element is then rounded to the nearest level, so its error is at most half of its
 * sub-block's step d * sc (plus f32 rounding).
 */
export function quantizeQ4_K(src: ArrayLike<number>): Uint8Array {
  const n = src.length;
  if (n % QK_K !== 0) throw new Error(`quantizeQ4_K: length ${n} is not a multiple of ${QK_K}`);
  const out = new Uint8Array((n / QK_K) * Q4_K_BLOCK_BYTES);
  const f = Math.fround;
  const offs = new Float64Array(8); // -min per sub-block (>= 0)
  const his = new Float64Array(8);
  const m = new Uint8Array(8);
  const sc = new Uint8Array(8);
  const spans = new Float64Array(8);
  for (let b = 0, o = 0; b < n; b += QK_K, o += Q4_K_BLOCK_BYTES) {
    let maxOff = 0;
    for (let s = 0; s < 8; s++) {
      let lo = 0; // Q4_K's offset can only shift values down: min is clamped to <= 0
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        const v = src[b + 32 * s + l]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      offs[s] = -lo;
      his[s] = hi;
      maxOff = Math.max(maxOff, -lo);
    }
    const dminH = f16Ceil(maxOff / 63);
    const dmin = f16BitsToF32(dminH);
    let maxSpan = 0;
    for (let s = 0; s < 8; s++) {
      m[s] = dmin ? Math.min(63, Math.ceil(offs[s]! / dmin)) : 0;
      // step needed so that -dmin*m + 15*step reaches hi
      spans[s] = Math.max(0, (his[s]! + f(dmin * m[s]!)) / 15);
      maxSpan = Math.max(maxSpan, spans[s]!);
    }
    const dH = f16Ceil(maxSpan / 63);
    const d = f16BitsToF32(dH);
    for (let s = 0; s < 8; s++) sc[s] = d ? Math.min(63, Math.ceil(spans[s]! / d)) : 0;

    out[o] = dH & 0xff;
    out[o + 1] = dH >> 8;
    out[o + 2] = dminH & 0xff;
    out[o + 3] = dminH >> 8;
    for (let s = 0; s < 4; s++) {
      out[o + 4 + s] = sc[s]! | ((sc[s + 4]! >> 4) << 6);
      out[o + 8 + s] = m[s]! | ((m[s + 4]! >> 4) << 6);
      out[o + 12 + s] = (sc[s + 4]! & 15) | ((m[s + 4]! & 15) << 4);
    }
    for (let s = 0; s < 8; s++) {
      const step = f(d * sc[s]!);
      const off = f(dmin * m[s]!);
      const inv = step ? 1 / step : 0;
      const q0 = o + 16 + 32 * (s >> 1);
      const shift = (s & 1) * 4;
      for (let l = 0; l < 32; l++) {
        const q = Math.max(0, Math.min(15, Math.round((src[b + 32 * s + l]! + off) * inv)));
        out[q0 + l] |= q << shift;
      }
    }
  }
  return out;
}
