// GGUF k-quant weights executed as stored (Q4_K, Q5_K, Q6_K): the block decoders against hand-worked
// bit patterns, the Q8_K activation quantizer, llama.cpp's reference quantizers, and the native
// GEMV/GEMM kernels against the ref backend (exact integer block dot products, f64
// accumulation) on random weight bytes of awkward sizes, on every instruction set this CPU has,
// with batch invariance: a row's result is the same bits whatever number of rows is in the call.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor, DTYPE_CODE, f32ToF16Bits } from '../src/tensor/dtype.ts';
import {
  dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K, nearestInt, Q4_K_BLOCK_BYTES, Q5_K_BLOCK_BYTES, Q6_K_BLOCK_BYTES, quantizeQ4_K, quantizeQ5_K,
  quantizeQ6_K, quantizeQ8_K,
} from '../src/tensor/kquants.ts';
import { native } from '../src/tensor/native.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { mmapFile } from '../src/tensor/runtime.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { rng } from './helpers/random.ts';
import { assertBatchInvariant, randX, withIsa } from './helpers/quant-matmul.ts';

const cpu = cpuBackend();

describe('k-quant decoding: hand-made blocks', () => {
  it('Q6_K: d * sc[g] * (q - 32), 4 bits from ql and 2 from qh, halves of 128', () => {
    const blk = new Uint8Array(Q6_K_BLOCK_BYTES);
    // ql: byte l = (l * 5 + 1) & 255; qh: byte l = (l * 37 + 11) & 255; scales g -> g - 8 (int8)
    for (let l = 0; l < 128; l++) blk[l] = (l * 5 + 1) & 255;
    for (let l = 0; l < 64; l++) blk[128 + l] = (l * 37 + 11) & 255;
    for (let g = 0; g < 16; g++) blk[192 + g] = (g - 8) & 255;
    blk[208] = 0x00; // d = 0.25 (f16 0x3400)
    blk[209] = 0x34;
    const y = dequantizeQ6_K(blk, 256);
    // worked by hand:
    //  e=0:   half 0, l=0: ql[0]=1 low 1, qh[0]=11 (0b1011) bits 0-1 = 3 -> q=49; sc[0]=-8:  0.25*-8*17 = -34
    //  e=40:  half 0, w[l+32] l=8: ql[40]=201 (0xc9) low 9, qh[8]=51 (0b110011) bits 2-3 = 0 -> q=9;
    //         scale g = 40/16 = 2 -> -6: 0.25*-6*(9-32) = 34.5
    //  e=77:  half 0, w[l+64] l=13: ql[13]=66 (0x42) high 4, qh[13]=236 (0b11101100) bits 4-5 = 2 -> q=36;
    //         g = 4 -> -4: 0.25*-4*4 = -4
    //  e=255: half 1, w[l+96] l=31: ql[64+63]=ql[127]=124 (0x7c) high 7, qh[32+31]=qh[63]=(63*37+11)&255=38
    //         (0b00100110) bits 6-7 = 0 -> q=7; g = 15 -> 7: 0.25*7*-25 = -43.75
    assert.equal(y[0], -34);
    assert.equal(y[40], 34.5);
    assert.equal(y[77], -4);
    assert.equal(y[255], -43.75);
    for (let e = 0; e < 256; e++) {
      const h = e >> 7, r = e & 127, part = r >> 5, l = r & 31;
      const ql = blk[64 * h + l + (part & 1) * 32]!;
      const lo = part < 2 ? ql & 15 : ql >> 4;
      const hi = (blk[128 + 32 * h + l]! >> (2 * part)) & 3;
      const sc = ((blk[192 + (e >> 4)]! << 24) >> 24);
      assert.equal(y[e], 0.25 * sc * ((lo | (hi << 4)) - 32), `element ${e}`);
    }
    assert.throws(() => dequantizeQ6_K(blk, 512), /210 bytes is too short for 512 elements/);
  });

  it('Q5_K: Q4_K\'s scales and mins, nibbles at byte 48, the fifth bit from qh (bit 2c / 2c + 1 of qh[l])', () => {
    const blk = new Uint8Array(Q5_K_BLOCK_BYTES);
    // d = 0.5, dmin = 0.25; scales / mins: s < 4: sc = s + 1, m = s; s >= 4: sc = 5 + (s - 4), m = 2
    blk[0] = 0x00; blk[1] = 0x38; blk[2] = 0x00; blk[3] = 0x34;
    for (let s = 0; s < 4; s++) {
      blk[4 + s] = s + 1; // sc[s], no high bits for sc[s + 4]
      blk[8 + s] = s; // m[s]
      blk[12 + s] = (5 + s) | (2 << 4); // sc[s + 4] low 4 bits | m[s + 4] low 4 bits
    }
    for (let l = 0; l < 32; l++) blk[16 + l] = (l * 29 + 3) & 255; // qh
    for (let l = 0; l < 128; l++) blk[48 + l] = (l * 11 + 7) & 255; // nibbles
    const y = dequantizeQ5_K(blk, 256);
    // worked by hand:
    //  e=0:   chunk 0, low nibble of qs[0]=7 -> 7, qh[0]=3 bit 0 = 1 -> q=23; sub 0 (sc 1, m 0): 0.5*1*23 = 11.5
    //  e=33:  chunk 0, high nibble of qs[1]=18 (0x12) -> 1, qh[1]=32 (0b100000) bit 1 = 0 -> q=1; sub 1 (sc 2, m 1): 1 - 0.25 = 0.75
    //  e=200: chunk 3, r=8 low nibble of qs[104]=(104*11+7)&255=127 (0x7f) -> 15, qh[8]=235 (0b11101011) bit 6 = 1 -> q=31;
    //         sub 6 (sc 7, m 2): 0.5*7*31 - 0.5 = 108
    assert.equal(y[0], 11.5);
    assert.equal(y[33], 0.75);
    assert.equal(y[200], 108);
    for (let e = 0; e < 256; e++) {
      const c = e >> 6, r = e & 63, l = r & 31, hi = r >= 32, s = 2 * c + (hi ? 1 : 0);
      const nib = hi ? blk[48 + 32 * c + l]! >> 4 : blk[48 + 32 * c + l]! & 15;
      const q = nib | (((blk[16 + l]! >> s) & 1) << 4);
      const sc = s < 4 ? s + 1 : 5 + (s - 4), m = s < 4 ? s : 2;
      assert.equal(y[e], 0.5 * sc * q - 0.25 * m, `element ${e}`);
    }
  });

  it('native decoding (embedding rows) gives the TypeScript decoder\'s bits for q4_k, q5_k and q6_k, on every ISA', () => {
    const r = rng(5);
    for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
      const V = 7, D = 512;
      const table = randomKQuant(dtype, V, D, r);
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
      // and the whole-tensor conversion out of a k-quant
      const f32 = new Uint8Array(V * D * 4);
      native().convert(table.data, DTYPE_CODE[dtype], f32, DTYPE_CODE.f32, V * D);
      assert.deepEqual(new Float32Array(f32.buffer), table.toF32());
    }
  });
});

describe('Q8_K activations (quantize_row_q8_K_ref)', () => {
  it('d = max / -127 with the signed value of largest magnitude; ties to even; sums of 16', () => {
    const x = new Float32Array(256);
    x[0] = -127; // max = -127: iscale = 1, d = 1, values read back as they are
    [2.5, 3.5, -2.5, 0.5, -0.5, 126.5, 1.25].forEach((v, i) => (x[1 + i] = v));
    const q = quantizeQ8_K(x);
    assert.equal(q.d[0], 1);
    assert.deepEqual([...q.q.subarray(0, 8)], [-127, 2, 4, -2, 0, 0, 126, 1]);
    assert.equal(q.bsums[0], -127 + 2 + 4 - 2 + 126 + 1);
    // max positive: iscale = -127 / max flips the sign (q of max is -127, d negative)
    const y = new Float32Array(256).fill(0.5);
    y[9] = 2;
    const p = quantizeQ8_K(y);
    assert.equal(p.q[9], -127);
    assert.equal(p.q[0], nearestInt(Math.fround(Math.fround(-127 / 2) * 0.5)));
    assert.ok(p.d[0]! < 0);
    assert.equal(quantizeQ8_K(new Float32Array(256)).d[0], 0);
    assert.equal(nearestInt(-1.5), -2);
    assert.equal(nearestInt(-2.5), -2);
    assert.equal(nearestInt(0.49999997), 0);
  });
});

describe('llama.cpp reference quantizers', () => {
  const r = rng(21);
  const src = Float32Array.from({ length: 256 * 16 }, (_, i) => r() * (i % 512 < 256 ? 1 : 0.02) + (i % 1024 < 512 ? 0 : 0.3 * r()));
  const rmse = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
    return Math.sqrt(s / a.length);
  };
  const rms = Math.sqrt(src.reduce((a, v) => a + v * v, 0) / src.length);

  it('Q4_K (make_qkx2_quants) and Q6_K (make_qx_quants) round-trip with the expected relative RMSE', () => {
    const e4 = rmse(dequantizeQ4_K(quantizeQ4_K(src), src.length), src) / rms;
    const e5 = rmse(dequantizeQ5_K(quantizeQ5_K(src), src.length), src) / rms;
    const e6 = rmse(dequantizeQ6_K(quantizeQ6_K(src), src.length), src) / rms;
    assert.ok(e5 < e4 * 0.7 && e6 < e5, `q4_k ${e4} > q5_k ${e5} > q6_k ${e6}`);
    // 4-bit and 6-bit uniform-ish levels: about 1/(15 sqrt 12) and 1/(63 sqrt 12) of a sub-block's range
    assert.ok(e4 < 0.08, `q4_k relative RMSE ${e4}`);
    assert.ok(e6 < 0.02, `q6_k relative RMSE ${e6}`);
    assert.ok(e6 < e4 / 3, `q6_k (${e6}) well below q4_k (${e4})`);
  });

  it('the native quantizers (convert) write the TypeScript quantizers\' bytes', () => {
    const r2 = rng(33);
    // mixed scales, constant runs, an all-positive and an all-zero block, a lone outlier
    const x = Float32Array.from({ length: 256 * 12 }, (_, i) =>
      i < 256 ? 0 : i < 512 ? 3 + r2() : i < 768 ? 1.5 : i === 900 ? -50 : r2() * (1 + ((i >> 5) % 5)) * 10 ** (((i >> 8) % 3) - 1));
    for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
      const want = dtype === 'q4_k' ? quantizeQ4_K(x) : dtype === 'q5_k' ? quantizeQ5_K(x) : quantizeQ6_K(x);
      // the AVX2 kernel table runs 8 make_qkx2_quants searches in lanes: the same bytes as the scalar one
      for (const isa of cpu.availableIsas()) {
        withIsa(cpu, isa, () => {
          const got = new Uint8Array(want.byteLength);
          native().convert(x, DTYPE_CODE.f32, got, DTYPE_CODE[dtype], x.length);
          assert.deepEqual(got, want, `${dtype} ${isa}`);
        });
      }
    }
  });

  it('all-zero blocks stay zero', () => {
    const z = new Float32Array(512);
    assert.ok(dequantizeQ4_K(quantizeQ4_K(z), 512).every((v) => v === 0));
    assert.ok(dequantizeQ5_K(quantizeQ5_K(z), 512).every((v) => v === 0));
    assert.ok(dequantizeQ6_K(quantizeQ6_K(z), 512).every((v) => v === 0));
  });
});

/** Random block bytes (every code, scale and min bit pattern) with moderate f16 d / dmin. */
function randomKQuant(dtype: 'q4_k' | 'q5_k' | 'q6_k', N: number, K: number, r: () => number): Tensor {
  const bytes = new Uint8Array(bytesFor(dtype, N * K));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor((r() + 1) * 128) & 255;
  const bb = dtype === 'q4_k' ? Q4_K_BLOCK_BYTES : dtype === 'q5_k' ? Q5_K_BLOCK_BYTES : Q6_K_BLOCK_BYTES;
  for (let o = 0; o < bytes.length; o += bb) {
    const put = (at: number, v: number) => {
      const h = f32ToF16Bits(v);
      bytes[at] = h & 255;
      bytes[at + 1] = h >> 8;
    };
    if (dtype !== 'q6_k') {
      put(o, (r() + 1) * 0.004);
      put(o + 2, (r() + 1) * 0.002);
    } else put(o + 208, r() * 0.002);
  }
  return new Tensor(dtype, [N, K], bytes);
}



/** Per output, sum_k |x_k| (|w_k| + |offset_k|): the size of the terms the f32 kernel adds. */
function magnitudes(x: Tensor, w: Tensor): Float64Array {
  const [M, K] = x.shape as [number, number];
  const N = w.shape[0]!;
  const xv = x.toF32(), wv = w.toF32();
  let off: Float32Array = new Float32Array(N * K);
  if (w.dtype === 'q4_k' || w.dtype === 'q5_k') {
    const z = Uint8Array.from(w.data);
    const bb = w.dtype === 'q4_k' ? Q4_K_BLOCK_BYTES : Q5_K_BLOCK_BYTES;
    for (let o = 0; o < z.length; o += bb) z.fill(0, o + 16, o + bb);
    off = (w.dtype === 'q4_k' ? dequantizeQ4_K : dequantizeQ5_K)(z, N * K);
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
  describe(`k-quant matmul (${isa}) against ref`, () => {
    for (const dtype of ['q4_k', 'q5_k', 'q6_k'] as const) {
      it(`${dtype}: GEMV and GEMM, awkward sizes, = ref within f32 rounding`, () => {
        withIsa(cpu, isa, () => {
          const r = rng(dtype === 'q4_k' ? 3 : dtype === 'q5_k' ? 5 : 4);
          for (const [M, N, K] of [[1, 1, 256], [1, 17, 768], [2, 5, 512], [3, 7, 256], [5, 33, 1280], [17, 9, 512], [70, 13, 768]] as const) {
            const w = randomKQuant(dtype, N, K, r);
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
          const r = rng(dtype === 'q4_k' ? 8 : dtype === 'q5_k' ? 10 : 9);
          const K = 768, N = 11;
          const w = randomKQuant(dtype, N, K, r), w2 = randomKQuant(dtype, 5, K, r);
          const x = randX(17, K, 77);
          assertBatchInvariant(cpu, x, w, w2, `${dtype} ${isa}`);
        });
      });
    }
  });
}

// Prepacked Q4_K (native/src/kquants.inc): the 256-bit tiles (compiled into the AVX2 and the
// AVX-512 builds) over matrices interleaved once. Same bits as the stored layout for every row
// count, tail rows (N % 8) from the stored bytes.
for (const pisa of cpu.availableIsas().filter((i) => i === 'avx2' || i === 'avx512') as ('avx2' | 'avx512')[]) {
  describe(`prepacked q4_k (${pisa})`, () => {
    const fresh = (w: Tensor) => new Tensor(w.dtype, w.shape, w.data); // no prepacked form cached yet
    const run = (mode: 'all' | 'off', x: Tensor, w: Tensor) => {
      const before = cpu.prepackMode;
      cpu.prepackMode = mode;
      try {
        const out = Tensor.zeros([x.shape[0]!, w.shape[0]!]);
        cpu.matmul(x, w, out);
        assert.equal(cpu.prepacked(w) !== null, mode === 'all' && w.shape[0]! >= 16, `prepacked form of [${w.shape}] in mode ${mode}`);
        return out.toF32();
      } finally {
        cpu.prepackMode = before;
      }
    };

    it('the same bits as the stored layout, = ref within f32 rounding, awkward sizes', () => {
      withIsa(cpu, pisa, () => {
        const r = rng(21);
        for (const [M, N, K] of [[1, 16, 256], [1, 61, 768], [2, 23, 512], [3, 40, 256], [5, 17, 1280], [17, 33, 512], [70, 130, 768]] as const) {
          const w = randomKQuant('q4_k', N, K, r);
          const x = randX(M, K, M * 10 + N);
          const packed = run('all', x, fresh(w)), stored = run('off', x, fresh(w));
          assert.deepEqual(packed, stored, `[${M}x${K}].[${N}x${K}]^T prepacked vs stored`);
          const or = Tensor.zeros([M, N]);
          refBackend.matmul(x, w, or);
          const b = or.toF32(), mag = magnitudes(x, w);
          for (let i = 0; i < packed.length; i++) {
            if (!(Math.abs(packed[i]! - b[i]!) <= 1e-6 * mag[i]! + 1e-9)) assert.fail(`[${M}x${K}].[${N}x${K}]^T element ${i}: cpu ${packed[i]} vs ref ${b[i]}`);
          }
        }
      });
    });

    it('batch invariance and matmulMulti with prepacked and stored matrices together', () => {
      withIsa(cpu, pisa, () => {
        const before = cpu.prepackMode;
        cpu.prepackMode = 'all';
        try {
          const r = rng(22);
          const w = randomKQuant('q4_k', 37, 768, r), w2 = randomKQuant('q4_k', 5, 768, r);
          assertBatchInvariant(cpu, randX(17, 768, 78), w, w2, 'prepacked q4_k');
          assert.ok(cpu.prepacked(w) && !cpu.prepacked(w2), 'the 37-row matrix is prepacked, the 5-row one is not');
        } finally {
          cpu.prepackMode = before;
        }
      });
    });

    it('by default only matrices in a file mapping are prepacked (the same bits as one in memory)', () => {
      withIsa(cpu, pisa, () => {
        const dir = mkdtempSync(join(tmpdir(), 'ss-prepack-'));
        try {
          const w = randomKQuant('q4_k', 64, 2048, rng(23));
          writeFileSync(join(dir, 'w.bin'), w.data);
          const mapped = new Tensor('q4_k', [64, 2048], new Uint8Array(mmapFile(join(dir, 'w.bin'))));
          assert.equal(cpu.prepackMode, 'mapped');
          const x = randX(3, 2048, 5);
          const a = Tensor.zeros([3, 64]), b = Tensor.zeros([3, 64]);
          cpu.matmul(x, mapped, a);
          cpu.matmul(x, w, b);
          assert.equal(native().mappedBytes(w.data), 0, 'memory is not a mapping');
          assert.ok(native().mappedBytes(mapped.data) > 0, 'the file view is');
          assert.ok(cpu.prepacked(mapped), 'a mapped q4_k matrix is prepacked');
          assert.equal(cpu.prepacked(w), null, 'a q4_k matrix in memory runs from its own bytes');
          assert.deepEqual(a.toF32(), b.toF32());
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    it('bad prepacked arguments get clear errors', () => {
      const n = native();
      const w = randomKQuant('q4_k', 16, 256, rng(24));
      const bytes = n.kqPrepackedBytes(DTYPE_CODE.q4_k, 16, 256);
      assert.equal(bytes, 2 * 1184);
      const dst = new Uint8Array(n.allocResident(bytes + 64, false));
      assert.throws(() => n.kqPrepack(w.data, DTYPE_CODE.q4_k, 16, 256, dst.subarray(1, bytes + 1)), /32-byte aligned/);
      assert.throws(() => n.kqPrepack(w.data, DTYPE_CODE.q4_k, 16, 256, dst.subarray(0, bytes - 1)), /dst/);
      assert.throws(() => n.kqPrepack(w.data, DTYPE_CODE.q4_k, 16, 100, dst), /multiple of 256/);
      n.kqPrepack(w.data, DTYPE_CODE.q4_k, 16, 256, dst);
      const x = new Float32Array(256), out = new Float32Array(16);
      assert.throws(() => n.matmul(x, 256, new Uint8Array(bytesFor('q6_k', 16 * 256)), DTYPE_CODE.q6_k, out, 16, 1, 16, 256, dst), /q4_k only/);
      assert.throws(() => n.kqPrepack(new Uint8Array(bytesFor('q6_k', 16 * 256)), DTYPE_CODE.q6_k, 16, 256, dst), /only q4_k/);
      assert.equal(n.kqPrepackedBytes(DTYPE_CODE.q4_k, 17, 512), 2 * 2 * 1184);
      assert.throws(() => n.matmul(x, 256, w.data, DTYPE_CODE.q4_k, out, 16, 1, 16, 256, dst.subarray(0, 100)), /prepacked/);
    });
  });
}

describe('k-quant errors', () => {
  it('a k-quant weight needs K a multiple of 256; k-quants are not activations', () => {
    assert.throws(() => new Tensor('q4_k', [2, 100], new Uint8Array(1000)), /q4_k last dimension 100 is not a multiple of 256/);
    assert.throws(() => native().matmul(new Float32Array(128), 128, new Uint8Array(1000), DTYPE_CODE.q6_k, new Float32Array(2), 2, 1, 2, 128), /multiple of 256/);
    assert.throws(() => native().convert(new Float32Array(128), DTYPE_CODE.f32, new Uint8Array(144), DTYPE_CODE.q4_k, 128), /multiple of 256/);
  });
});
