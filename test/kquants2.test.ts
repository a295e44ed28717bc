// Q2_K, Q3_K and IQ4_XS executed as stored: the decoders against llama.cpp's own decoding of random
// block bytes, the quantizers against llama.cpp's bytes and RMSE on the same tensor (both from
// llama.cpp's libggml-base.so: test/fixtures/ggml-quants.json, made by
// scripts/oracle/ggml_quants.py), a hand-worked block of each, and the native GEMV/GEMM kernels
// against the ref backend (exact integer super-block dots, f64 accumulation) on random weight
// bytes of awkward sizes, on every instruction set this CPU has, with batch invariance.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor, DTYPE_CODE, f32ToF16Bits } from '../src/tensor/dtype.ts';
import {
  dequantizeIQ4_XS, dequantizeQ2_K, dequantizeQ3_K, IQ4_XS_BLOCK_BYTES, Q2_K_BLOCK_BYTES, Q3_K_BLOCK_BYTES, quantizeIQ4_XS, quantizeQ2_K, quantizeQ3_K,
} from '../src/tensor/kquants2.ts';
import { native } from '../src/tensor/native.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { rng } from './helpers/random.ts';
import { assertBatchInvariant, randX, withIsa } from './helpers/quant-matmul.ts';

const cpu = cpuBackend();
const TYPES = ['q2_k', 'q3_k', 'iq4_xs'] as const;
type T = (typeof TYPES)[number];
const DEQ = { q2_k: dequantizeQ2_K, q3_k: dequantizeQ3_K, iq4_xs: dequantizeIQ4_XS };
const QUANT = { q2_k: quantizeQ2_K, q3_k: quantizeQ3_K, iq4_xs: quantizeIQ4_XS };
const BB = { q2_k: Q2_K_BLOCK_BYTES, q3_k: Q3_K_BLOCK_BYTES, iq4_xs: IQ4_XS_BLOCK_BYTES };

interface Fixture {
  blockBytes: number;
  decode: { bytes: string; f32: string };
  quantize: { src: string; bytes: string; rmse: number };
}
const fixtures = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'ggml-quants.json'), 'utf8')) as Record<T, Fixture>;
const u8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const f32 = (s: string): Float32Array => {
  const b = u8(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const rmse = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s / a.length);
};

describe('Q2_K / Q3_K / IQ4_XS decoding', () => {
  for (const t of TYPES) {
    it(`${t}: random block bytes decode to llama.cpp's dequantize_row bits (TypeScript, and native on every ISA)`, () => {
      const fx = fixtures[t];
      assert.equal(fx.blockBytes, BB[t]);
      const raw = u8(fx.decode.bytes), want = f32(fx.decode.f32);
      assert.deepEqual(DEQ[t](raw, want.length), want);
      const table = new Tensor(t, [want.length / 512, 512], raw);
      const ids = Int32Array.from({ length: want.length / 512 }, (_, i) => i).reverse();
      for (const isa of cpu.availableIsas()) {
        withIsa(cpu, isa, () => {
          const out = Tensor.zeros([ids.length, 512]);
          cpu.embedding(table, ids, out);
          for (let r = 0; r < ids.length; r++) assert.deepEqual(out.toF32().subarray(r * 512, r * 512 + 512), want.subarray(ids[r]! * 512, ids[r]! * 512 + 512), `${t} ${isa} row ${r}`);
        });
      }
      const viaConvert = new Float32Array(want.length);
      native().convert(raw, DTYPE_CODE[t], viaConvert, DTYPE_CODE.f32, want.length);
      assert.deepEqual(viaConvert, want);
    });
  }

  it('hand-worked elements: Q2_K scale/min nibbles, Q3_K hmask and packed 6-bit scales, IQ4_XS split scales', () => {
    // Q2_K: d = 0.5, dmin = 0.25; group 5 byte 0x37: scale 7, min 3. Element 80 = 128*0 + 32*2 + 16:
    // qs[16] bits 4-5. qs[16] = 0b00100000 -> 2. 0.5 * 7 * 2 - 0.25 * 3 = 6.25
    const q2 = new Uint8Array(Q2_K_BLOCK_BYTES);
    q2[5] = 0x37;
    q2[16 + 16] = 0b00100000;
    q2[80] = 0x00; q2[81] = 0x38; q2[82] = 0x00; q2[83] = 0x34;
    const y2 = dequantizeQ2_K(q2, 256);
    assert.equal(y2[80], 6.25);
    assert.equal(y2[81], -0.75); // q = 0: only the min
    assert.equal(y2[0], 0); // group 0: scale 0, min 0
    // Q3_K: d = 0.5; group 9 (elements 144..159) has scale bits: low nibble = high nibble of byte 1,
    // high 2 bits = bits 4-5 of byte 8 + 1 (g % 4 = 1, g / 4 = 2). Scale 0b10_0101 = 37 -> 5.
    // Element 150 = 128 + 22 (h = 1, j = 0, l = 22): low bits = qs[32 + 22] bits 0-1, high bit =
    // hmask[22] bit 4. qs = 3, hmask bit set -> q = 7 - 4 = 3: 0.5 * 5 * 3 = 7.5; element 151 with
    // low bits 1 and hmask bit clear -> 1 - 4 = -3: -7.5
    const q3 = new Uint8Array(Q3_K_BLOCK_BYTES);
    q3[96 + 1] = 0x5 << 4;
    q3[96 + 8 + 1] = 0b10 << 4;
    q3[32 + 32 + 22] = 3;
    q3[22] = 1 << 4;
    q3[32 + 32 + 23] = 1;
    q3[108] = 0x00; q3[109] = 0x38;
    const y3 = dequantizeQ3_K(q3, 256);
    assert.equal(y3[150], 7.5);
    assert.equal(y3[151], -7.5);
    assert.equal(y3[0], 0.5 * -32 * -4); // scale bits 0 -> -32, code 0 with hmask clear -> -4
    // IQ4_XS: d = 0.25; sub-block 3: low 4 bits = high nibble of scales_l[1] = 0xA, high 2 bits =
    // bits 6-7 of scales_h = 0b11 -> 0b11_1010 = 58 -> 26. Element 96 + 17: high nibble of
    // qs[16 * 3 + 1] = 0xF -> 113: 0.25 * 26 * 113 = 734.5
    const iq = new Uint8Array(IQ4_XS_BLOCK_BYTES);
    iq[0] = 0x00; iq[1] = 0x34;
    iq[2] = 0b11000000;
    iq[4 + 1] = 0xa0;
    iq[8 + 48 + 1] = 0xf0;
    const yi = dequantizeIQ4_XS(iq, 256);
    assert.equal(yi[96 + 17], 734.5);
    assert.equal(yi[96 + 1], 0.25 * 26 * -127);
    assert.throws(() => dequantizeIQ4_XS(iq, 512), /136 bytes is too short for 512 elements/);
  });
});

describe('Q2_K / Q3_K / IQ4_XS quantizers (llama.cpp\'s, without an importance matrix)', () => {
  for (const t of TYPES) {
    it(`${t}: the same bytes as llama.cpp on the same tensor (TypeScript and native), so the same RMSE`, () => {
      const fx = fixtures[t];
      const src = f32(fx.quantize.src), want = u8(fx.quantize.bytes);
      const ours = QUANT[t](src);
      assert.deepEqual(ours, want);
      for (const isa of cpu.availableIsas()) {
        withIsa(cpu, isa, () => {
          const nat = new Uint8Array(want.length);
          native().convert(src, DTYPE_CODE.f32, nat, DTYPE_CODE[t], src.length);
          assert.deepEqual(nat, want, `${t} native on ${isa}`);
        });
      }
      const e = rmse(DEQ[t](ours, src.length), src);
      assert.ok(e <= fx.quantize.rmse, `${t} RMSE ${e} vs llama.cpp ${fx.quantize.rmse}`);
      console.log(`# ${t} RMSE on the fixture tensor: ours ${e.toPrecision(6)}, llama.cpp ${fx.quantize.rmse.toPrecision(6)}`);
    });
  }

  it('error falls with bits: q2_k > q3_k > iq4_xs on gaussian weights; all-zero blocks stay zero', () => {
    const r = rng(4);
    const src = Float32Array.from({ length: 256 * 16 }, () => r() * 0.02);
    const e = TYPES.map((t) => rmse(DEQ[t](QUANT[t](src), src.length), src) / 0.02);
    assert.ok(e[0]! > e[1]! && e[1]! > e[2]!, `relative RMSE ${e}`);
    for (const t of TYPES) assert.ok(DEQ[t](QUANT[t](new Float32Array(512)), 512).every((v) => v === 0), t);
  });
});

/** Random block bytes (every code and scale bit pattern) with moderate f16 d (and Q2_K dmin). */
function randomBlocks(t: T, N: number, K: number, r: () => number): Tensor {
  const bytes = new Uint8Array(bytesFor(t, N * K));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor((r() + 1) * 128) & 255;
  const put = (at: number, v: number) => {
    const h = f32ToF16Bits(v);
    bytes[at] = h & 255;
    bytes[at + 1] = h >> 8;
  };
  for (let o = 0; o < bytes.length; o += BB[t]) {
    if (t === 'q2_k') {
      put(o + 80, (r() + 1) * 0.004);
      put(o + 82, (r() + 1) * 0.002);
    } else put(t === 'q3_k' ? o + 108 : o, r() * 0.002);
  }
  return new Tensor(t, [N, K], bytes);
}

/** Per output, sum_k |x_k| (|w_k| + |min_k|): the size of the terms the f32 kernel adds. */
function magnitudes(x: Tensor, w: Tensor): Float64Array {
  const [M, K] = x.shape as [number, number];
  const N = w.shape[0]!;
  const xv = x.toF32(), wv = w.toF32();
  let off: Float32Array = new Float32Array(N * K);
  if (w.dtype === 'q2_k') {
    const z = Uint8Array.from(w.data);
    for (let o = 0; o < z.length; o += Q2_K_BLOCK_BYTES) z.fill(0, o + 16, o + 80);
    off = dequantizeQ2_K(z, N * K);
  }
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.abs(xv[m * K + k]!) * (Math.abs(wv[n * K + k]!) + Math.abs(off[n * K + k]!));
      mag[m * N + n] = s;
    }
  return mag;
}

for (const isa of cpu.availableIsas()) {
  describe(`Q2_K / Q3_K / IQ4_XS matmul (${isa}) against ref`, () => {
    for (const t of TYPES) {
      it(`${t}: GEMV and GEMM, awkward sizes, = ref within f32 rounding`, () => {
        withIsa(cpu, isa, () => {
          const r = rng(TYPES.indexOf(t) + 40);
          for (const [M, N, K] of [[1, 1, 256], [1, 17, 768], [2, 5, 512], [3, 7, 256], [5, 33, 1280], [17, 9, 512], [70, 13, 768]] as const) {
            const w = randomBlocks(t, N, K, r);
            const x = randX(M, K, M * 100 + N);
            const oc = Tensor.zeros([M, N]), or = Tensor.zeros([M, N]);
            cpu.matmul(x, w, oc);
            refBackend.matmul(x, w, or);
            const a = oc.toF32(), b = or.toF32(), mag = magnitudes(x, w);
            for (let i = 0; i < a.length; i++) {
              const tol = 1e-6 * mag[i]! + 1e-9;
              if (!(Math.abs(a[i]! - b[i]!) <= tol)) assert.fail(`${t} ${isa} [${M}x${K}].[${N}x${K}]^T element ${i}: cpu ${a[i]} vs ref ${b[i]} (bound ${tol})`);
            }
          }
        });
      });

      it(`${t}: the ref dot product equals the f64 dot of the decoded weights with the Q8_K-rounded activations`, () => {
        // ties the integer formula to the decoder: sum_k w_k x_k with w from dequantize and x = d_x q_x
        const r = rng(TYPES.indexOf(t) + 60);
        const w = randomBlocks(t, 3, 512, r), x = randX(2, 512, 5);
        const out = Tensor.zeros([2, 3]);
        refBackend.matmul(x, w, out);
        const wv = w.toF32(), xv = x.toF32();
        for (let m = 0; m < 2; m++) {
          const xr = xv.subarray(m * 512, m * 512 + 512);
          // Q8_K round trip of the row (per 256: d = max / -127)
          const xq = new Float64Array(512);
          for (let b = 0; b < 2; b++) {
            let amax = 0, max = 0;
            for (let j = 0; j < 256; j++) if (Math.abs(xr[256 * b + j]!) > amax) (amax = Math.abs(xr[256 * b + j]!)), (max = xr[256 * b + j]!);
            if (!amax) continue;
            const is = Math.fround(-127 / max), d = Math.fround(1 / is);
            for (let j = 0; j < 256; j++) {
              const v = Math.fround(is * xr[256 * b + j]!);
              let q = Math.round(v);
              if (q - v === 0.5 && q % 2 !== 0) q -= 1;
              xq[256 * b + j] = d * Math.min(127, q);
            }
          }
          for (let n = 0; n < 3; n++) {
            let s = 0, mag = 0;
            for (let k = 0; k < 512; k++) {
              s += wv[n * 512 + k]! * xq[k]!;
              mag += Math.abs(wv[n * 512 + k]! * xq[k]!);
            }
            assert.ok(Math.abs(out.toF32()[m * 3 + n]! - s) <= 1e-6 * mag + 1e-9, `${t} m=${m} n=${n}: ${out.toF32()[m * 3 + n]} vs ${s}`);
          }
        }
      });

      it(`${t}: batch invariance (a row's bits do not depend on T) and matmulMulti = matmul`, () => {
        withIsa(cpu, isa, () => {
          const r = rng(TYPES.indexOf(t) + 50);
          const K = 768, N = 11;
          const w = randomBlocks(t, N, K, r), w2 = randomBlocks(t, 5, K, r);
          assertBatchInvariant(cpu, randX(17, K, 77), w, w2, `${t} ${isa}`);
        });
      });
    }
  });
}

describe('Q2_K / Q3_K / IQ4_XS errors', () => {
  it('K must be a multiple of 256; short buffers are refused', () => {
    assert.throws(() => new Tensor('q3_k', [2, 100], new Uint8Array(1000)), /q3_k last dimension 100 is not a multiple of 256/);
    assert.throws(() => native().matmul(new Float32Array(128), 128, new Uint8Array(1000), DTYPE_CODE.iq4_xs, new Float32Array(2), 2, 1, 2, 128), /multiple of 256/);
    assert.throws(() => native().convert(new Float32Array(128), DTYPE_CODE.f32, new Uint8Array(84), DTYPE_CODE.q2_k, 128), /multiple of 256/);
    assert.throws(() => quantizeQ2_K(new Float32Array(100)), /quantizeQ2_K: length 100 is not a multiple of 256/);
  });
});
