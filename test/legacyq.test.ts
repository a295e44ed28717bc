// GGUF's simple quant weights executed as stored (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL): the block decoders
// against hand-worked bit patterns, the Q8_0 / Q8_1 activation quantizer, llama.cpp's reference
// quantizers (native = TypeScript bytes), and the native GEMV/GEMM kernels against the ref backend
// (exact integer block dot products, f64 accumulation) on random weight bytes of awkward sizes, on
// every instruction set this CPU has, with batch invariance and matmulMulti = matmul.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dequantizeQ4_0, quantizeQ4_0 } from '../src/formats/ggml-quants.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor, DTYPE_CODE, f16BitsToF32, f32ToF16Bits } from '../src/tensor/dtype.ts';
import { dequantizeLegacy, LEGACY_BLOCK_BYTES, quantizeLegacy, quantizeQ8Act, type LegacyQuant } from '../src/tensor/legacyq.ts';
import { native } from '../src/tensor/native.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { rng } from './helpers/random.ts';
import { assertBatchInvariant, randX, withIsa } from './helpers/quant-matmul.ts';

const cpu = cpuBackend();
const TYPES = ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'] as const;

/** One block: f16 d, (f16 m), (qh), qs[l] = (7 l + 3) & 255. */
function handBlock(t: LegacyQuant, d: number, m: number, qh: number): Uint8Array {
  const blk = new Uint8Array(LEGACY_BLOCK_BYTES[t]);
  const put16 = (at: number, v: number) => {
    const h = f32ToF16Bits(v);
    blk[at] = h & 255;
    blk[at + 1] = h >> 8;
  };
  put16(0, d);
  let p = 2;
  if (t === 'q4_1' || t === 'q5_1') put16((p += 2) - 2, m);
  if (t === 'q5_0' || t === 'q5_1') {
    for (let i = 0; i < 4; i++) blk[p + i] = (qh >>> (8 * i)) & 255;
    p += 4;
  }
  for (let l = 0; l < 16; l++) blk[p + l] = (7 * l + 3) & 255;
  return blk;
}

describe('legacy quant decoding: hand-made blocks', () => {
  // qs[0] = 3 (element 0: 3, element 16: 0), qs[5] = 0x26 (element 5: 6, element 21: 2),
  // qs[15] = 0x6c (element 15: 12, element 31: 6); qh = 0x80000021: fifth bits of elements 0, 5, 31
  it('Q4_0: d (q - 8)', () => {
    const y = dequantizeLegacy('q4_0', handBlock('q4_0', 0.5, 0, 0), 32);
    assert.deepEqual([y[0], y[16], y[5], y[21], y[15], y[31]], [-2.5, -4, -1, -3, 2, -1]);
  });
  it('Q4_1: d q + m', () => {
    const y = dequantizeLegacy('q4_1', handBlock('q4_1', 0.25, -1, 0), 32);
    assert.deepEqual([y[0], y[16], y[5], y[21], y[15], y[31]], [-0.25, -1, 0.5, -0.5, 2, 0.5]);
  });
  it('Q5_0: d (q - 16), bit j of qh is element j\'s fifth bit', () => {
    const y = dequantizeLegacy('q5_0', handBlock('q5_0', 0.5, 0, 0x80000021), 32);
    assert.deepEqual([y[0], y[16], y[5], y[21], y[15], y[31]], [1.5, -8, 3, -7, -2, 3]);
  });
  it('IQ4_NL: d kvalues_iq4nl[q]', () => {
    const y = dequantizeLegacy('iq4_nl', handBlock('iq4_nl', 0.5, 0, 0), 32);
    assert.deepEqual([y[0], y[16], y[5], y[21], y[15], y[31]], [-32.5, -63.5, -11, -41.5, 26.5, -11]);
  });
  it('Q5_1: d q + m with the fifth bits', () => {
    const y = dequantizeLegacy('q5_1', handBlock('q5_1', 0.25, -1, 0x80000021), 32);
    assert.deepEqual([y[0], y[16], y[5], y[21], y[15], y[31]], [3.75, -1, 4.5, -0.5, 2, 4.5]);
  });

  it('native decoding (embedding rows, convert) gives the TypeScript decoder\'s bits, on every ISA', () => {
    const r = rng(5);
    for (const dtype of TYPES) {
      const V = 7, D = 96;
      const table = randomLegacy(dtype, V, D, r);
      const ids = Int32Array.from([6, 0, 3, 3]);
      for (const isa of cpu.availableIsas()) {
        withIsa(cpu, isa, () => {
          const out = Tensor.zeros([ids.length, D]);
          cpu.embedding(table, ids, out);
          const want = Tensor.zeros([ids.length, D]);
          refBackend.embedding(table, ids, want);
          assert.deepEqual(out.toF32(), want.toF32(), `${dtype} ${isa}`);
        });
      }
      const f32 = new Uint8Array(V * D * 4);
      native().convert(table.data, DTYPE_CODE[dtype], f32, DTYPE_CODE.f32, V * D);
      assert.deepEqual(new Float32Array(f32.buffer), table.toF32());
    }
  });
});

describe('Q8_0 / Q8_1 activations', () => {
  it('d = amax / 127 (f16), q = round(x / d) ties away from zero, s = f16(d_f32 * sum q)', () => {
    const x = new Float32Array(64);
    x[0] = 127;
    x[1] = -63.5; // ties away: -64
    x[2] = 0.5; // 1
    x[3] = 2.5; // 3
    const a = quantizeQ8Act(x, 64);
    assert.deepEqual(Array.from(a.q.subarray(0, 5)), [127, -64, 1, 3, 0]);
    assert.equal(a.d[0], 1);
    assert.equal(a.s[0], 67);
    assert.equal(a.d[1], 0);
    assert.equal(a.s[1], 0);
    const y = Float32Array.from({ length: 32 }, (_, i) => (i - 15.3) * 0.0123);
    const b = quantizeQ8Act(y, 32);
    const d = Math.fround(Math.max(...Array.from(y, Math.abs)) / 127);
    let sum = 0;
    for (const q of b.q) sum += q;
    assert.equal(b.s[0], f16BitsToF32(f32ToF16Bits(Math.fround(sum * d))));
  });
});

describe('llama.cpp reference quantizers (quantize_row_q4_0_ref etc.)', () => {
  it('round-trip within half a step (q4_0 / q5_0: the clamped end within a step); iq4_nl (least-squares scale, ends may clamp) by relative RMSE', () => {
    const r = rng(11);
    const x = Float32Array.from({ length: 32 * 20 }, () => r() * 3);
    for (const t of TYPES) {
      const q = quantizeLegacy(t, x);
      const y = dequantizeLegacy(t, q, x.length);
      if (t === 'iq4_nl') {
        let se = 0, sx = 0;
        for (let i = 0; i < x.length; i++) se += (y[i]! - x[i]!) ** 2, sx += x[i]! ** 2;
        const rel = Math.sqrt(se / sx);
        assert.ok(rel < 0.12, `iq4_nl relative RMSE ${rel}`);
        continue;
      }
      for (let b = 0; b < 20; b++) {
        const bb = b * LEGACY_BLOCK_BYTES[t];
        const d = Math.abs(f16BitsToF32(q[bb]! | (q[bb + 1]! << 8)));
        for (let j = 0; j < 32; j++) {
          const e = Math.abs(y[b * 32 + j]! - x[b * 32 + j]!);
          assert.ok(e <= d * 1.01 + 1e-3, `${t} block ${b} element ${j}: error ${e}, step ${d}`);
        }
      }
    }
  });

  it('the native quantizers (convert) write the TypeScript quantizers\' bytes', () => {
    const r2 = rng(33);
    const x = Float32Array.from({ length: 32 * 40 }, (_, i) =>
      i < 32 ? 0 : i < 64 ? 3 + r2() : i < 96 ? 1.5 : i === 200 ? -50 : r2() * (1 + ((i >> 5) % 5)) * 10 ** (((i >> 5) % 3) - 1));
    for (const dtype of TYPES) {
      const want = quantizeLegacy(dtype, x);
      const got = new Uint8Array(want.byteLength);
      native().convert(x, DTYPE_CODE.f32, got, DTYPE_CODE[dtype], x.length);
      assert.deepEqual(got, want, dtype);
      assert.ok(dequantizeLegacy(dtype, want, 32).every((v) => v === 0), `${dtype}: an all-zero block stays zero`);
    }
    // the reader's original Q4_0 helpers agree
    assert.deepEqual(quantizeQ4_0(x), quantizeLegacy('q4_0', x));
    assert.deepEqual(dequantizeQ4_0(quantizeQ4_0(x), x.length), dequantizeLegacy('q4_0', quantizeQ4_0(x), x.length));
  });
});

/** Random block bytes (every code and qh bit pattern) with moderate f16 d and m. */
function randomLegacy(dtype: LegacyQuant, N: number, K: number, r: () => number): Tensor {
  const bytes = new Uint8Array(bytesFor(dtype, N * K));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor((r() + 1) * 128) & 255;
  const bb = LEGACY_BLOCK_BYTES[dtype];
  for (let o = 0; o < bytes.length; o += bb) {
    const put = (at: number, v: number) => {
      const h = f32ToF16Bits(v);
      bytes[at] = h & 255;
      bytes[at + 1] = h >> 8;
    };
    put(o, (r() + 1) * 0.004);
    if (dtype === 'q4_1' || dtype === 'q5_1') put(o + 2, r() * 0.03);
  }
  return new Tensor(dtype, [N, K], bytes);
}



/** Per output, sum_k |x_k| (|w_k| + |m_k| + 16 |d_k|): the size of the terms the f32 kernel adds. */
function magnitudes(x: Tensor, w: Tensor): Float64Array {
  const [M, K] = x.shape as [number, number];
  const N = w.shape[0]!;
  const xv = x.toF32(), wv = w.toF32();
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.abs(xv[m * K + k]!) * (Math.abs(wv[n * K + k]!) + 0.2);
      mag[m * N + n] = s;
    }
  return mag;
}

for (const isa of cpu.availableIsas()) {
  describe(`legacy quant matmul (${isa}) against ref`, () => {
    for (const dtype of TYPES) {
      it(`${dtype}: GEMV and GEMM, awkward sizes, = ref within f32 rounding`, () => {
        withIsa(cpu, isa, () => {
          const r = rng(3 + TYPES.indexOf(dtype));
          for (const [M, N, K] of [[1, 1, 32], [1, 17, 96], [2, 5, 2048], [3, 7, 32], [5, 33, 160], [17, 9, 96], [70, 13, 256]] as const) {
            const w = randomLegacy(dtype, N, K, r);
            const x = randX(M, K, M * 100 + N);
            const oc = Tensor.zeros([M, N]), or = Tensor.zeros([M, N]);
            cpu.matmul(x, w, oc);
            refBackend.matmul(x, w, or);
            const a = oc.toF32(), b = or.toF32(), mag = magnitudes(x, w);
            for (let i = 0; i < a.length; i++) {
              const tol = 1e-6 * mag[i]! + 1e-9;
              if (!(Math.abs(a[i]! - b[i]!) <= tol)) assert.fail(`${dtype} ${isa} [${M}x${K}].[${N}x${K}]^T element ${i}: cpu ${a[i]} vs ref ${b[i]} (bound ${tol})`);
            }
          }
        });
      });

      it(`${dtype}: batch invariance (a row's bits do not depend on T) and matmulMulti = matmul`, () => {
        withIsa(cpu, isa, () => {
          const r = rng(8 + TYPES.indexOf(dtype));
          const K = 2048, N = 11;
          const w = randomLegacy(dtype, N, K, r), w2 = randomLegacy(dtype, 5, K, r);
          const x = randX(17, K, 77);
          assertBatchInvariant(cpu, x, w, w2, `${dtype} ${isa}`);
        });
      });
    }
  });
}

describe('legacy quant errors', () => {
  it('K must be a multiple of 32', () => {
    assert.throws(() => new Tensor('q4_0', [2, 40], new Uint8Array(1000)), /q4_0 last dimension 40 is not a multiple of 32/);
    assert.throws(() => native().matmul(new Float32Array(40), 40, new Uint8Array(1000), DTYPE_CODE.q5_1, new Float32Array(2), 2, 1, 2, 40), /multiple of 32/);
    assert.throws(() => native().convert(new Float32Array(40), DTYPE_CODE.f32, new Uint8Array(100), DTYPE_CODE.q4_1, 40), /multiple of 32/);
  });
});
