// The ref backend against values computed by hand or in closed form.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttentionOptions, RopeOptions } from '../src/tensor/backend.ts';
import { f16BitsToF32, f32ToF16Bits, Q8_0_BLOCK_BYTES } from '../src/tensor/dtype.ts';
import { erf, refBackend as ref } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';

// ---- helpers ----------------------------------------------------------------------------------

const T = (values: ArrayLike<number>, shape: number[]) => Tensor.from(values, shape);
const zeros = (shape: number[]) => Tensor.zeros(shape);

/** |a - e| <= tol * max(1, |e|) elementwise. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) assert.fail(`${what}[${i}]: got ${a}, expected ${e} (tol ${tol})`);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const randn = (n: number, r: () => number) => Float32Array.from({ length: n }, r);

// ---- matmul -----------------------------------------------------------------------------------

describe('matmul', () => {
  it('computes x . w^T on a tiny example', () => {
    const x = T([1, 2, 3, 4, 5, 6], [2, 3]);
    const w = T([1, 0, -1, 2, 1, 0], [2, 3]);
    const out = zeros([2, 2]);
    ref.matmul(x, w, out);
    assert.deepEqual([...out.toF32()], [-2, 4, -2, 13]);
  });

  it('decodes f16, bf16 and q8_0 weights', () => {
    const x = T(Array.from({ length: 32 }, (_, i) => i % 3), [1, 32]);
    const wv = Array.from({ length: 64 }, (_, i) => (i % 5) - 2); // small integers: exact in every dtype
    for (const dt of ['f16', 'bf16'] as const) {
      const out = zeros([1, 2]);
      ref.matmul(x, Tensor.from(wv, [2, 32], dt), out);
      const want = [0, 1].map((n) => wv.slice(n * 32, n * 32 + 32).reduce((s, w, k) => s + w * (k % 3), 0));
      assert.deepEqual([...out.toF32()], want, dt);
    }
    // q8_0 by hand: two rows, d = 0.5 and d = -0.25, q[k] = k - 16
    const bytes = new Uint8Array(2 * Q8_0_BLOCK_BYTES);
    const dv = new DataView(bytes.buffer);
    dv.setUint16(0, f32ToF16Bits(0.5), true);
    dv.setUint16(Q8_0_BLOCK_BYTES, f32ToF16Bits(-0.25), true);
    for (let k = 0; k < 32; k++) {
      dv.setInt8(2 + k, k - 16);
      dv.setInt8(Q8_0_BLOCK_BYTES + 2 + k, k - 16);
    }
    // q8_0 weights quantize x to q8_0 blocks first: with max |x| = 127 the block scale is
    // exactly 1 and the integers survive unchanged
    const xq = (k: number) => (k === 31 ? 127 : k % 3);
    const x8 = T(Array.from({ length: 32 }, (_, k) => xq(k)), [1, 32]);
    const out = zeros([1, 2]);
    ref.matmul(x8, new Tensor('q8_0', [2, 32], bytes), out);
    let s = 0;
    for (let k = 0; k < 32; k++) s += xq(k) * (k - 16);
    assert.deepEqual([...out.toF32()], [0.5 * s, -0.25 * s]);
  });

  it('reads x and writes out through row strides, leaving the gaps alone', () => {
    // x: columns 1..3 of a [2, 5] buffer; out: column 0..1 of a [2, 4] buffer
    const xbuf = T([9, 1, 2, 3, 9, 9, 4, 5, 6, 9], [2, 5]);
    const x = xbuf.view([2, 3], [5, 1], 1);
    const obuf = T(new Array(8).fill(7), [2, 4]);
    const out = obuf.view([2, 2], [4, 1]);
    ref.matmul(x, T([1, 0, -1, 2, 1, 0], [2, 3]), out);
    assert.deepEqual([...obuf.toF32()], [-2, 4, 7, 7, -2, 13, 7, 7]);
  });

  it('accumulates in float64 and is row invariant (64 x 4097 . 16 x 4097)', () => {
    const r = rng(1);
    const M = 64, K = 4097, N = 16;
    const xv = randn(M * K, r);
    const wv = randn(N * K, r);
    const out = zeros([M, N]);
    ref.matmul(T(xv, [M, K]), T(wv, [N, K]), out);
    const o = out.toF32();
    for (const m of [0, 17, 63]) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += xv[m * K + k]! * wv[n * K + k]!;
        assert.equal(o[m * N + n], Math.fround(acc));
      }
      // one row alone gives bit-identical results
      const one = zeros([1, N]);
      ref.matmul(T(xv.subarray(m * K, (m + 1) * K), [1, K]), T(wv, [N, K]), one);
      assert.deepEqual([...one.toF32()], [...o.subarray(m * N, (m + 1) * N)]);
    }
  });
});

// ---- elementwise ------------------------------------------------------------------------------

describe('add / mul / scale', () => {
  it('add: same shape and a broadcast row', () => {
    const a = T([1, 2, 3, 4, 5, 6], [2, 3]);
    const out = zeros([2, 3]);
    ref.add(a, T([10, 20, 30, 40, 50, 60], [2, 3]), out);
    assert.deepEqual([...out.toF32()], [11, 22, 33, 44, 55, 66]);
    ref.add(a, T([10, 20, 30], [3]), out);
    assert.deepEqual([...out.toF32()], [11, 22, 33, 14, 25, 36]);
  });

  it('mul with a broadcast row, in place (out aliases a)', () => {
    const a = T([1, 2, 3, 4, 5, 6], [2, 3]);
    ref.mul(a, T([2, 0, -1], [1, 3]), a);
    assert.deepEqual([...a.toF32()], [2, 0, -3, 8, 0, -6]);
  });

  it('scale, on a 3-D tensor', () => {
    const out = zeros([2, 1, 2]);
    ref.scale(T([1, -2, 3, 0.5], [2, 1, 2]), 0.5, out);
    assert.deepEqual([...out.toF32()], [0.5, -1, 1.5, 0.25]);
  });
});

// ---- norms ------------------------------------------------------------------------------------

describe('rmsNorm / layerNorm', () => {
  it('rmsNorm: x / sqrt(mean(x^2) + eps) * w', () => {
    const out = zeros([2, 2]);
    ref.rmsNorm(T([3, 4, 1, 1], [2, 2]), T([1, 2], [2]), 0, out);
    const r = Math.sqrt(12.5);
    close(out.toF32(), [3 / r, 8 / r, 1, 2]);
    const out2 = zeros([1, 4]);
    ref.rmsNorm(T([1, 1, 1, 1], [1, 4]), T([1, 1, 1, 1], [4]), 0.25, out2);
    close(out2.toF32(), new Array(4).fill(1 / Math.sqrt(1.25)));
  });

  it('layerNorm: (x - mean) / sqrt(var + eps) * w + b, population variance', () => {
    const x = T([1, 2, 3, 4], [1, 4]);
    const w = T([1, 2, 1, 1], [4]);
    const b = T([0, 0, 1, -1], [4]);
    const s = Math.sqrt(1.25 + 0.01); // mean 2.5, var = (2.25 + 0.25 + 0.25 + 2.25) / 4
    const out = zeros([1, 4]);
    ref.layerNorm(x, w, b, 0.01, out);
    close(out.toF32(), [-1.5 / s, (2 * -0.5) / s, 0.5 / s + 1, 1.5 / s - 1]);
    ref.layerNorm(x, w, null, 0.01, out);
    close(out.toF32(), [-1.5 / s, (2 * -0.5) / s, 0.5 / s, 1.5 / s]);
  });

  it('in place (out aliases x)', () => {
    const x = T([3, 4], [1, 2]);
    ref.rmsNorm(x, T([1, 1], [2]), 0, x);
    close(x.toF32(), [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]);
  });
});

// ---- rope -------------------------------------------------------------------------------------

describe('rope', () => {
  const base: RopeOptions = { layout: 'interleaved', theta: 10000 };

  it('position 0 is the identity in both layouts', () => {
    for (const layout of ['interleaved', 'half'] as const) {
      const v = [1, 2, 3, 4, 5, 6, 7, 8];
      const x = T(v, [1, 2, 4]);
      ref.rope(x, Int32Array.of(0), { ...base, layout });
      assert.deepEqual([...x.toF32()], v);
    }
  });

  // Dh = 4, theta = 100: inv_freq = [1, 100^(-1/2) = 0.1]; at position 2 the angles are 2 and 0.2.
  const rot = (a: number, b: number, t: number) => [a * Math.cos(t) - b * Math.sin(t), a * Math.sin(t) + b * Math.cos(t)];

  it('interleaved rotates pairs (2i, 2i+1)', () => {
    const x = T([1, 2, 3, 4], [1, 1, 4]);
    ref.rope(x, Int32Array.of(2), { layout: 'interleaved', theta: 100 });
    close(x.toF32(), [...rot(1, 2, 2), ...rot(3, 4, 0.2)]);
  });

  it('half rotates pairs (i, i + d/2)', () => {
    const x = T([1, 2, 3, 4], [1, 1, 4]);
    ref.rope(x, Int32Array.of(2), { layout: 'half', theta: 100 });
    const [a0, b0] = rot(1, 3, 2);
    const [a1, b1] = rot(2, 4, 0.2);
    close(x.toF32(), [a0!, a1!, b0!, b1!]);
  });

  it('rotaryDim < Dh rotates the leading dims only (inv_freq uses rotaryDim)', () => {
    for (const layout of ['interleaved', 'half'] as const) {
      const x = T([1, 2, 3, 4, 5, 6], [1, 1, 6]);
      ref.rope(x, Int32Array.of(3), { layout, theta: 100, rotaryDim: 2 });
      close(x.toF32(), [...rot(1, 2, 3), 3, 4, 5, 6], 1e-6, layout);
    }
  });

  it('per token and per head, through a strided view', () => {
    // q of a fused [T, 3 heads, 2] buffer: heads 0..1 are rotated, head 2 must stay untouched
    const buf = T([1, 0, 0, 1, 9, 9, 1, 0, 0, 1, 9, 9], [2, 3, 2]);
    const q = buf.view([2, 2, 2], [6, 2, 1]);
    ref.rope(q, Int32Array.of(1, 5), { layout: 'interleaved', theta: 10000 });
    close(buf.toF32(), [...rot(1, 0, 1), ...rot(0, 1, 1), 9, 9, ...rot(1, 0, 5), ...rot(0, 1, 5), 9, 9]);
  });

  it('linear scaling divides the position by factor', () => {
    const a = T([1, 2, 3, 4], [1, 1, 4]);
    const b = T([1, 2, 3, 4], [1, 1, 4]);
    ref.rope(a, Int32Array.of(6), { layout: 'half', theta: 100, scaling: { type: 'linear', factor: 4 } });
    ref.rope(b, Int32Array.of(6), { layout: 'half', theta: 100 });
    const [a0, b0] = rot(1, 3, 1.5);
    const [a1, b1] = rot(2, 4, 0.15);
    close(a.toF32(), [a0!, a1!, b0!, b1!]);
    assert.notDeepEqual([...a.toF32()], [...b.toF32()]);
  });

  it('longrope: short factors below the original context, long ones from it on, cos and sin times the attention factor', () => {
    const s = { type: 'longrope' as const, shortFactor: [1, 2], longFactor: [3, 5], originalMaxPosition: 10, attnFactor: 1.25 };
    const opts: RopeOptions = { layout: 'half', theta: 100, scaling: s };
    for (const [pos, f] of [[9, s.shortFactor], [10, s.longFactor]] as const) {
      const x = T([1, 1, 0, 0], [1, 1, 4]); // pairs (x0, x2), (x1, x3) = (1, 0)
      ref.rope(x, Int32Array.of(pos), opts);
      const inv = [1 / f[0]!, Math.pow(100, -0.5) / f[1]!];
      close(x.toF32(), [1.25 * Math.cos(pos * inv[0]!), 1.25 * Math.cos(pos * inv[1]!), 1.25 * Math.sin(pos * inv[0]!), 1.25 * Math.sin(pos * inv[1]!)]);
    }
  });

  it('llama3 scaling keeps high frequencies, divides low ones by factor, smooths the middle', () => {
    // Llama 3.1 parameters, rotaryDim 128: pair i has inv = theta^(-2i/128)
    const D = 128;
    const s = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 };
    const opts: RopeOptions = { layout: 'interleaved', theta: 500000, scaling: s };
    const pos = 3000;
    const x = T(Array.from({ length: D }, (_, d) => (d % 2 === 0 ? 1 : 0)), [1, 1, D]); // every pair (1, 0)
    ref.rope(x, Int32Array.of(pos), opts);
    const xv = x.toF32();
    let high = 0, low = 0, mid = 0;
    for (let i = 0; i < D / 2; i++) {
      const inv = Math.pow(500000, (-2 * i) / D);
      const wavelen = (2 * Math.PI) / inv;
      let want: number;
      if (wavelen < 8192 / 4) {
        want = inv; // high frequency: unchanged
        high++;
      } else if (wavelen > 8192 / 1) {
        want = inv / 8; // low frequency: divided by factor
        low++;
      } else {
        const smooth = (8192 / wavelen - 1) / (4 - 1);
        want = ((1 - smooth) * inv) / 8 + smooth * inv;
        assert.ok(want > inv / 8 && want < inv);
        mid++;
      }
      close([xv[2 * i]!, xv[2 * i + 1]!], [Math.cos(pos * want), Math.sin(pos * want)], 1e-6, `pair ${i}`);
    }
    assert.ok(high > 0 && low > 0 && mid > 0, `bands ${high}/${mid}/${low}`);
    // the highest frequency (i = 0, inv = 1) matches unscaled rope exactly
    const y = T(Array.from({ length: D }, (_, d) => (d % 2 === 0 ? 1 : 0)), [1, 1, D]);
    ref.rope(y, Int32Array.of(pos), { layout: 'interleaved', theta: 500000 });
    assert.deepEqual([xv[0], xv[1]], [...y.toF32().subarray(0, 2)]);
  });
});

// ---- softmax and activations ----------------------------------------------------------------

describe('softmax', () => {
  it('matches exp(x) / sum exp(x) and sums to 1', () => {
    const out = zeros([2, 3]);
    ref.softmax(T([1, 2, 3, 1000, 1001, 1002], [2, 3]), out);
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0]! + e[1]! + e[2]!;
    const want = e.map((v) => v / z);
    close(out.toF32(), [...want, ...want]); // large values do not overflow
    const o = out.toF32();
    close([o[0]! + o[1]! + o[2]!, o[3]! + o[4]! + o[5]!], [1, 1]);
  });

  it('in place, with -inf entries getting 0', () => {
    const x = T([0, -Infinity, 0, Math.log(2)], [1, 4]);
    ref.softmax(x, x);
    close(x.toF32(), [0.25, 0, 0.25, 0.5]);
  });
});

describe('activations', () => {
  it('erf at known points (double precision)', () => {
    assert.equal(erf(0), 0);
    close([erf(0.5)], [0.5204998778130465], 1e-15);
    close([erf(0.1), erf(1), erf(2), erf(3), erf(-0.3)], [0.1124629160182849, 0.8427007929497149, 0.9953222650189527, 0.9999779095030014, -0.3286267594591274], 1e-15);
    assert.equal(erf(-0.5), -erf(0.5));
    assert.equal(erf(10), 1);
    assert.equal(erf(-Infinity), -1);
    assert.ok(Number.isNaN(erf(NaN)));
  });

  it('silu = x * sigmoid(x)', () => {
    const out = zeros([1, 4]);
    ref.silu(T([0, 1, -1, -100], [1, 4]), out);
    close(out.toF32(), [0, 0.7310585786300049, -0.2689414213699951, -100 / (1 + Math.exp(100))]);
  });

  it('gelu erf and tanh', () => {
    const out = zeros([1, 3]);
    ref.gelu(T([0, 1, -2], [1, 3]), out, 'erf');
    close(out.toF32(), [0, 0.8413447460685429, -0.04550026389635842]);
    ref.gelu(T([0, 1, -2], [1, 3]), out, 'tanh');
    close(out.toF32(), [0, 0.8411919906082768, -0.04540230591222494]);
  });

  it('swiglu = silu(gate) * up, geglu = gelu(gate) * up', () => {
    const gate = T([1, -1], [1, 2]);
    const up = T([2, 3], [1, 2]);
    const out = zeros([1, 2]);
    ref.swiglu(gate, up, out);
    close(out.toF32(), [2 * 0.7310585786300049, 3 * -0.2689414213699951]);
    ref.geglu(gate, up, out, 'erf');
    close(out.toF32(), [2 * 0.8413447460685429, 3 * (1 - 0.8413447460685429) * -1]);
  });
});

// ---- embedding and KV cache -----------------------------------------------------------------

describe('embedding', () => {
  it('gathers decoded rows of a table of any dtype', () => {
    const vals = Array.from({ length: 4 * 32 }, (_, i) => ((i % 7) - 3) * 0.5); // exact in every dtype
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const out = zeros([3, 32]);
      ref.embedding(Tensor.from(vals, [4, 32], dt), Int32Array.of(2, 0, 2), out);
      assert.deepEqual([...out.toF32()], [...vals.slice(64, 96), ...vals.slice(0, 32), ...vals.slice(64, 96)], dt);
    }
    const q = Tensor.from(vals, [4, 32], 'q8_0');
    const out = zeros([1, 32]);
    ref.embedding(q, Int32Array.of(3), out);
    assert.deepEqual([...out.toF32()], [...q.toF32().subarray(96, 128)]);
    close(out.toF32(), vals.slice(96, 128), 0.01);
  });
});

describe('kvWrite', () => {
  it('writes v[t, h, :] to cache[slot / bs][h][slot % bs][:] in an f16 value pool', () => {
    // pool [3 blocks, 2 kv heads, block 4, head_dim 2]
    const cache = Tensor.zeros([3, 2, 4, 2], 'f16');
    const k = T([0.1, 1, 2, 3, -4, 5, 6, 65520], [2, 2, 2]);
    ref.kvWrite(k, cache, Int32Array.of(9, 3), 'v'); // token 0 -> block 2 offset 1; token 1 -> block 0 offset 3
    const bits = new Uint16Array(cache.data.buffer);
    const at = (b: number, h: number, o: number, d: number) => bits[((b * 2 + h) * 4 + o) * 2 + d]!;
    assert.equal(at(2, 0, 1, 0), 0x2e66); // 0.1 rounded to f16
    assert.equal(at(2, 0, 1, 1), 0x3c00);
    assert.equal(f16BitsToF32(at(2, 1, 1, 0)), 2);
    assert.equal(f16BitsToF32(at(2, 1, 1, 1)), 3);
    assert.equal(f16BitsToF32(at(0, 0, 3, 0)), -4);
    assert.equal(f16BitsToF32(at(0, 0, 3, 1)), 5);
    assert.equal(f16BitsToF32(at(0, 1, 3, 0)), 6);
    assert.equal(at(0, 1, 3, 1), 0x7c00); // overflow -> inf
    let nonzero = 0;
    for (const b of bits) if (b) nonzero++;
    assert.equal(nonzero, 8); // nothing else touched
  });

  it('writes k[t, h, d] to cache[slot / bs][h][d][slot % bs] in a key pool (dimension-major blocks)', () => {
    // pool [3 blocks, 2 kv heads, head_dim 2, block 4]
    const cache = Tensor.zeros([3, 2, 2, 4]);
    const k = T([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    ref.kvWrite(k, cache, Int32Array.of(9, 3), 'k'); // token 0 -> block 2 offset 1; token 1 -> block 0 offset 3
    const c = cache.toF32();
    const at = (b: number, h: number, d: number, o: number) => c[((b * 2 + h) * 2 + d) * 4 + o]!;
    assert.deepEqual([at(2, 0, 0, 1), at(2, 0, 1, 1), at(2, 1, 0, 1), at(2, 1, 1, 1)], [1, 2, 3, 4]);
    assert.deepEqual([at(0, 0, 0, 3), at(0, 0, 1, 3), at(0, 1, 0, 3), at(0, 1, 1, 3)], [5, 6, 7, 8]);
    assert.equal([...c].filter((x) => x !== 0).length, 8); // nothing else touched
  });

  it('writes an f32 pool from a strided view of k', () => {
    const cache = Tensor.zeros([2, 1, 2, 2]);
    const kv = T([1, 2, 9, 9, 3, 4, 9, 9], [2, 2, 2]); // [T, 2 (k|v), D]: k is head 0
    ref.kvWrite(kv.view([2, 1, 2], [4, 2, 1]), cache, Int32Array.of(1, 2), 'v');
    assert.deepEqual([...cache.toF32()], [0, 0, 1, 2, 3, 4, 0, 0]);
  });
});

// ---- attention --------------------------------------------------------------------------------

/** A paged cache holding k/v[n, Hkv, D] at positions 0..n-1 of one sequence, blocks in `table` order. */
function fillCache(kv: { k: Float32Array; v: Float32Array }, n: number, Hkv: number, D: number, bs: number, table: number[], nBlocks: number, dtype: 'f32' | 'f16' = 'f32') {
  const kCache = Tensor.zeros([nBlocks, Hkv, D, bs], dtype);
  const vCache = Tensor.zeros([nBlocks, Hkv, bs, D], dtype);
  const slots = Int32Array.from({ length: n }, (_, p) => table[Math.floor(p / bs)]! * bs + (p % bs));
  ref.kvWrite(T(kv.k, [n, Hkv, D]), kCache, slots, 'k');
  ref.kvWrite(T(kv.v, [n, Hkv, D]), vCache, slots, 'v');
  return { kCache, vCache, table: Int32Array.from(table) };
}

/** Dense causal attention of one query (Hq heads) at position `pos`, straight from the formula. */
function denseAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, pos: number, Hq: number, Hkv: number, D: number, o: AttentionOptions): number[] {
  const out: number[] = [];
  for (let h = 0; h < Hq; h++) {
    const hk = Math.floor(h / (Hq / Hkv));
    const js: number[] = [];
    for (let j = 0; j <= pos; j++) if (!o.window || pos - j < o.window) js.push(j);
    const s = js.map((j) => {
      let d = 0;
      for (let i = 0; i < D; i++) d += q[h * D + i]! * k[(j * Hkv + hk) * D + i]!;
      d *= o.scale;
      return o.softCap ? o.softCap * Math.tanh(d / o.softCap) : d;
    });
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let i = 0; i < D; i++) out.push(js.reduce((acc, j, n) => acc + (e[n]! / z) * v[(j * Hkv + hk) * D + i]!, 0));
  }
  return out;
}

describe('attention', () => {
  const D = 4;
  const seq = (n: number, H: number, f: (p: number, h: number, d: number) => number) => Float32Array.from({ length: n * H * D }, (_, i) => f(Math.floor(i / (H * D)), Math.floor(i / D) % H, i % D));

  it('one visible key returns its value', () => {
    const k = seq(1, 1, () => 0.3);
    const v = seq(1, 1, (_, __, d) => d + 1);
    const { kCache, vCache, table } = fillCache({ k, v }, 1, 1, D, 2, [1], 2);
    const out = zeros([1, 1, D]);
    ref.attentionPrefill(T([5, -3, 2, 1], [1, 1, D]), kCache, vCache, table, 0, out, { scale: 0.5 });
    close(out.toF32(), [1, 2, 3, 4]);
  });

  it('uniform scores give the mean of the visible values (causal, through a shuffled block table)', () => {
    const n = 5;
    const v = seq(n, 1, (p, _, d) => p * 10 + d);
    const { kCache, vCache, table } = fillCache({ k: seq(n, 1, (p) => p), v }, n, 1, D, 2, [2, 0, 3], 4);
    const out = zeros([n, 1, D]);
    ref.attentionPrefill(zeros([n, 1, D]), kCache, vCache, table, 0, out, { scale: 1 }); // q = 0: all scores 0
    const o = out.toF32();
    for (let t = 0; t < n; t++) close(o.subarray(t * D, t * D + D), [0, 1, 2, 3].map((d) => (t / 2) * 10 + d), 1e-6, `token ${t}`);
  });

  it('sliding window hides keys with p - j >= window', () => {
    const n = 6;
    const v = seq(n, 1, (p) => p);
    const { kCache, vCache, table } = fillCache({ k: seq(n, 1, () => 1), v }, n, 1, D, 4, [1, 0], 2);
    const out = zeros([2, 1, D]);
    // chunk of tokens 4, 5 with window 2: token 4 sees {3, 4}, token 5 sees {4, 5}
    ref.attentionPrefill(zeros([2, 1, D]), kCache, vCache, table, 4, out, { scale: 1, window: 2 });
    close(out.toF32(), [3.5, 3.5, 3.5, 3.5, 4.5, 4.5, 4.5, 4.5]);
    // window 1: only the token itself
    ref.attentionPrefill(zeros([2, 1, D]), kCache, vCache, table, 4, out, { scale: 1, window: 1 });
    close(out.toF32(), [4, 4, 4, 4, 5, 5, 5, 5]);
  });

  it('softCap bounds the scores: cap * tanh(s / cap)', () => {
    // key 0 scores 100 against key 1's 0; uncapped, all weight goes to key 0
    const k = Float32Array.of(10, 0, 0, 0, 0, 0, 0, 0);
    const v = Float32Array.of(1, 1, 1, 1, 0, 0, 0, 0);
    const { kCache, vCache, table } = fillCache({ k, v }, 2, 1, D, 2, [0], 1);
    const q = T([10, 0, 0, 0], [1, 1, D]);
    const out = zeros([1, 1, D]);
    ref.attentionPrefill(q, kCache, vCache, table, 1, out, { scale: 1 });
    close(out.toF32(), [1, 1, 1, 1]);
    ref.attentionPrefill(q, kCache, vCache, table, 1, out, { scale: 1, softCap: 2 });
    const s0 = 2 * Math.tanh(50); // ~2
    const w0 = Math.exp(s0) / (Math.exp(s0) + 1);
    close(out.toF32(), [w0, w0, w0, w0]);
    assert.ok(w0 < Math.exp(2) / (Math.exp(2) + 1) + 1e-12);
  });

  it('GQA: query head h reads kv head floor(h / (Hq / Hkv))', () => {
    const Hq = 6, Hkv = 2;
    const v = seq(1, Hkv, (_, h, d) => 100 * (h + 1) + d);
    const { kCache, vCache, table } = fillCache({ k: seq(1, Hkv, () => 1), v }, 1, Hkv, D, 1, [0], 1);
    const out = zeros([1, Hq, D]);
    ref.attentionPrefill(T(seq(1, Hq, () => 1), [1, Hq, D]), kCache, vCache, table, 0, out, { scale: 1 });
    const o = out.toF32();
    for (let h = 0; h < Hq; h++) close(o.subarray(h * D, h * D + D), [0, 1, 2, 3].map((d) => (h < 3 ? 100 : 200) + d), 1e-6, `head ${h}`);
  });

  it('prefill matches dense attention on random data (GQA, f16 cache, window, softCap)', () => {
    const r = rng(7);
    const n = 11, Hq = 4, Hkv = 2, bs = 4;
    const k = randn(n * Hkv * D, r);
    const v = randn(n * Hkv * D, r);
    const { kCache, vCache, table } = fillCache({ k, v }, n, Hkv, D, bs, [3, 1, 0], 4, 'f16');
    const kr = kCache.toF32(); // what the cache holds, f16-rounded, in pool layout
    const vr = vCache.toF32();
    const k16 = new Float32Array(k.length);
    const v16 = new Float32Array(v.length);
    for (let p = 0; p < n; p++) {
      for (let h = 0; h < Hkv; h++) {
        const blk = (table[Math.floor(p / bs)]! * Hkv + h) * bs * D; // one block of one head
        const src = blk + (p % bs) * D;
        v16.set(vr.subarray(src, src + D), (p * Hkv + h) * D);
        for (let d = 0; d < D; d++) k16[(p * Hkv + h) * D + d] = kr[blk + d * bs + (p % bs)]!; // keys: [D][bs]
      }
    }
    close(k16, k, 1e-3, 'f16 k');
    const q = randn(3 * Hq * D, r);
    for (const opts of [{ scale: 0.5 }, { scale: 0.5, window: 3 }, { scale: 3, softCap: 1.5 }] as AttentionOptions[]) {
      const out = zeros([3, Hq, D]);
      ref.attentionPrefill(T(q, [3, Hq, D]), kCache, vCache, table, n - 3, out, opts);
      const o = out.toF32();
      for (let t = 0; t < 3; t++) {
        close(o.subarray(t * Hq * D, (t + 1) * Hq * D), denseAttention(q.subarray(t * Hq * D), k16, v16, n - 3 + t, Hq, Hkv, D, opts), 1e-6, JSON.stringify(opts));
      }
    }
  });

  it('decode equals prefill for the last token, per sequence in a batch', () => {
    const r = rng(3);
    const Hq = 4, Hkv = 2, bs = 2, maxBlocks = 4;
    const lens = [5, 2];
    const tables = [[4, 1, 6], [0]];
    const kCache = Tensor.zeros([8, Hkv, D, bs]);
    const vCache = Tensor.zeros([8, Hkv, bs, D]);
    const qs: Float32Array[] = [];
    const prefillLast: Float32Array[] = [];
    for (let b = 0; b < 2; b++) {
      const n = lens[b]!;
      const slots = Int32Array.from({ length: n }, (_, p) => tables[b]![Math.floor(p / bs)]! * bs + (p % bs));
      ref.kvWrite(T(randn(n * Hkv * D, r), [n, Hkv, D]), kCache, slots, 'k');
      ref.kvWrite(T(randn(n * Hkv * D, r), [n, Hkv, D]), vCache, slots, 'v');
      const q = randn(n * Hq * D, r);
      const out = zeros([n, Hq, D]);
      ref.attentionPrefill(T(q, [n, Hq, D]), kCache, vCache, Int32Array.from(tables[b]!), 0, out, { scale: 0.7 });
      qs.push(q.slice((n - 1) * Hq * D));
      prefillLast.push(out.toF32().slice((n - 1) * Hq * D));
    }
    const bt = new Int32Array(2 * maxBlocks).fill(-1);
    tables.forEach((t, b) => bt.set(t, b * maxBlocks));
    const out = zeros([2, Hq, D]);
    ref.attentionDecode(T([...qs[0]!, ...qs[1]!], [2, Hq, D]), kCache, vCache, bt, maxBlocks, Int32Array.from(lens), out, { scale: 0.7 });
    const o = out.toF32();
    assert.deepEqual([...o.subarray(0, Hq * D)], [...prefillLast[0]!]);
    assert.deepEqual([...o.subarray(Hq * D)], [...prefillLast[1]!]);
  });
});

// ---- argmax -----------------------------------------------------------------------------------

describe('argmax', () => {
  it('returns the first maximum of each row', () => {
    const x = T([1, 3, 3, 2, 5, 5, 5, 5, -4, -2, -3, -2], [3, 4]);
    assert.deepEqual([...ref.argmax(x)], [1, 0, 1]);
    assert.ok(ref.argmax(x) instanceof Int32Array);
  });

  it('reads through row strides', () => {
    const buf = T([0, 9, 1, 0, 7, 2], [2, 3]);
    assert.deepEqual([...ref.argmax(buf.view([2, 2], [3, 1], 1))], [0, 0]);
    assert.deepEqual([...ref.argmax(buf.view([2, 2], [3, 1]))], [1, 1]);
  });
});

// ---- byte buffers that are not 4-byte aligned (e.g. tensors sliced out of a file) --------------

describe('unaligned data', () => {
  /** The same tensor, its bytes copied to an odd byte offset of a larger buffer. */
  function unaligned(t: Tensor): Tensor {
    const buf = new Uint8Array(t.data.byteLength + 3);
    buf.set(t.data, 1);
    return new Tensor(t.dtype, t.shape, buf.subarray(1, 1 + t.data.byteLength), t.strides);
  }

  it('matmul, add in place, softmax and argmax read and write through unaligned bytes', () => {
    const x = unaligned(T([1, 2, 3, 4, 5, 6], [2, 3]));
    const out = unaligned(zeros([2, 2]));
    ref.matmul(x, unaligned(T([1, 0, -1, 2, 1, 0], [2, 3])), out);
    assert.deepEqual([...out.toF32()], [-2, 4, -2, 13]);
    ref.add(out, T([1, 1], [2]), out);
    assert.deepEqual([...out.toF32()], [-1, 5, -1, 14]);
    ref.softmax(out, out);
    close([...out.toF32()].slice(0, 2), [Math.exp(-6) / (1 + Math.exp(-6)), 1 / (1 + Math.exp(-6))]);
    assert.deepEqual([...ref.argmax(x)], [2, 2]);
  });

  it('kvWrite and attention with unaligned caches', () => {
    for (const dt of ['f32', 'f16'] as const) {
      const kCache = unaligned(Tensor.zeros([2, 1, 4, 2], dt));
      const vCache = unaligned(Tensor.zeros([2, 1, 2, 4], dt));
      ref.kvWrite(T([1, 1, 1, 1], [1, 1, 4]), kCache, Int32Array.of(3), 'k');
      ref.kvWrite(T([1, 2, 3, 4], [1, 1, 4]), vCache, Int32Array.of(3), 'v');
      const out = unaligned(zeros([1, 1, 4]));
      // sequence of 2 tokens in block 1: position 0 (offset 0) is zero, position 1 is slot 3
      ref.attentionDecode(T([1, 0, 0, 0], [1, 1, 4]), kCache, vCache, Int32Array.of(1, 0), 2, Int32Array.of(2), out, { scale: 1 });
      const w = Math.E / (1 + Math.E);
      close(out.toF32(), [w, 2 * w, 3 * w, 4 * w], 1e-6, dt);
    }
  });
});
