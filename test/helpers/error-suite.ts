// Bad input must raise an Error whose message names the op and the shapes involved, never
// give a silent wrong answer and never touch the output. Shared by every backend:
//
//   errorSuite(refBackend);   // test/errors.test.ts
//   errorSuite(cpuBackend);

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../../src/tensor/backend.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

const T = (values: ArrayLike<number>, shape: number[]) => Tensor.from(values, shape);
const zeros = (shape: number[], dtype: 'f32' | 'f16' | 'bf16' | 'q8_0' = 'f32') => Tensor.zeros(shape, dtype);
const ones = (shape: number[]) => T(new Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape);

/** `fn` throws an Error whose message matches `re`. */
function raises(fn: () => unknown, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) assert.fail(`expected an error matching ${re}, but the call returned`);
  assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`);
  assert.match(err.message, re);
}

/** Bytes of a tensor, to check that a failed call left them alone. */
const snapshot = (t: Tensor) => Uint8Array.from(t.data);

export function errorSuite(backend: Backend): void {
  const b = backend;

  describe(`${b.name}: bad input raises errors naming the op and the shapes`, () => {
    it('Tensor: buffer too short for its shape, bad strides', () => {
      raises(() => new Tensor('f32', [2, 3], new Uint8Array(20)), /Tensor: f32 \[2, 3\] .*needs 24 bytes, buffer has 20/);
      raises(() => new Tensor('f16', [4, 8], new Uint8Array(63)), /Tensor: f16 \[4, 8\] .*needs 64 bytes/);
      raises(() => new Tensor('q8_0', [2, 32], new Uint8Array(67)), /Tensor: q8_0 \[2, 32\] .*needs 68 bytes/);
      raises(() => new Tensor('f32', [2, 3], new Uint8Array(24), [1, 2]), /Tensor: last dimension must be contiguous/);
      raises(() => new Tensor('f32', [2, 3], new Uint8Array(24), [-3, 1]), /Tensor: strides \[-3, 1\] must be integers >= 0/);
      raises(() => new Tensor('q8_0', [2, 48], new Uint8Array(1000)), /Tensor: q8_0 last dimension 48/);
      raises(() => T([1, 2, 3], [2, 2]), /Tensor\.from: 3 values for shape \[2, 2\]/);
      raises(() => zeros([4, 4]).view([2, 2], [4, 1], -1), /Tensor\.view: offset -1/);
    });

    it('matmul', () => {
      const x = zeros([3, 5]);
      raises(() => b.matmul(x, zeros([4, 6]), zeros([3, 4])), /matmul: .*\[3, 5\].*\[4, 6\]/);
      raises(() => b.matmul(x, zeros([4, 5]), zeros([3, 3])), /matmul: out f32\[3, 3\] must be \[3, 4\]/);
      raises(() => b.matmul(x, zeros([4, 5]), zeros([2, 4])), /matmul: out f32\[2, 4\]/);
      raises(() => b.matmul(zeros([3, 5], 'f16'), zeros([4, 5]), zeros([3, 4])), /matmul: x f16\[3, 5\] must be f32/);
      raises(() => b.matmul(x, zeros([4, 5]), zeros([3, 4], 'bf16')), /matmul: out bf16\[3, 4\] must be f32/);
      raises(() => b.matmul(x, zeros([2, 4, 5]), zeros([3, 4])), /matmul: weight w f32\[2, 4, 5\] must be 2-D/);
      raises(() => b.matmul(x, zeros([8, 5]).view([4, 5], [10, 1]), zeros([3, 4])), /matmul: weight w f32\[4, 5\] must be contiguous/);
      raises(() => b.matmul(zeros([2, 64]), zeros([4, 32], 'q8_0'), zeros([2, 4])), /matmul: .*\[2, 64\].*q8_0\[4, 32\]/);
    });

    it('add / mul / scale', () => {
      const a = zeros([2, 3]);
      raises(() => b.add(a, zeros([2, 4]), zeros([2, 3])), /add: a f32\[2, 3\] and b f32\[2, 4\] differ in shape/);
      raises(() => b.add(a, zeros([4]), zeros([2, 3])), /add: b f32\[4\] cannot broadcast over a f32\[2, 3\]/);
      raises(() => b.add(a, zeros([3, 3]), zeros([2, 3])), /add: .*\[2, 3\].*\[3, 3\]/);
      raises(() => b.mul(a, zeros([3]), zeros([3, 2])), /mul: a f32\[2, 3\] and out f32\[3, 2\] differ in shape/);
      raises(() => b.mul(a, zeros([3], 'f16'), a), /mul: b f16\[3\] must be f32/);
      raises(() => b.scale(a, 2, zeros([2, 3], 'f16')), /scale: out f16\[2, 3\] must be f32/);
      raises(() => b.scale(a, 2, zeros([6])), /scale: x f32\[2, 3\] and out f32\[6\] differ in shape/);
    });

    it('rmsNorm / layerNorm', () => {
      const x = zeros([2, 3]);
      raises(() => b.rmsNorm(x, zeros([4]), 1e-5, zeros([2, 3])), /rmsNorm: w f32\[4\] must be a contiguous vector of 3/);
      raises(() => b.rmsNorm(x, zeros([3]), 1e-5, zeros([3, 3])), /rmsNorm: x f32\[2, 3\] and out f32\[3, 3\] differ in shape/);
      raises(() => b.rmsNorm(x, zeros([3], 'bf16'), 1e-5, zeros([2, 3])), /rmsNorm: w bf16\[3\] must be f32/);
      raises(() => b.rmsNorm(x, zeros([3]), -1, zeros([2, 3])), /rmsNorm: eps must be a finite number >= 0, got -1/);
      raises(() => b.rmsNorm(x, zeros([3]), NaN, zeros([2, 3])), /rmsNorm: eps .* got NaN/);
      raises(() => b.layerNorm(x, zeros([3]), zeros([2]), 1e-5, zeros([2, 3])), /layerNorm: b f32\[2\] must be a contiguous vector of 3/);
      raises(() => b.layerNorm(zeros([2, 3], 'f16'), zeros([3]), null, 1e-5, zeros([2, 3])), /layerNorm: x f16\[2, 3\] must be f32/);
    });

    it('rope', () => {
      const x = zeros([3, 2, 4]);
      const o = { layout: 'half', theta: 10000 } as const;
      raises(() => b.rope(x, Int32Array.of(0, 1), o), /rope: 2 positions for x f32\[3, 2, 4\]/);
      raises(() => b.rope(zeros([3, 8]), Int32Array.of(0, 1, 2), o), /rope: x f32\[3, 8\] must be 3-D/);
      raises(() => b.rope(zeros([3, 2, 4], 'f16'), Int32Array.of(0, 1, 2), o), /rope: x f16\[3, 2, 4\] must be f32/);
      raises(() => b.rope(x, Int32Array.of(0, -1, 2), o), /rope: position -1 at index 1 is negative/);
      raises(() => b.rope(x, Int32Array.of(0, 1, 2), { ...o, rotaryDim: 3 }), /rope: rotaryDim 3 must be even and in \(0, 4\]/);
      raises(() => b.rope(x, Int32Array.of(0, 1, 2), { ...o, rotaryDim: 6 }), /rope: rotaryDim 6/);
      raises(() => b.rope(x, Int32Array.of(0, 1, 2), { ...o, theta: 0 }), /rope: theta must be > 0/);
      raises(() => b.rope(x, Int32Array.of(0, 1, 2), { ...o, layout: 'neox' as 'half' }), /rope: unknown layout 'neox'/);
      raises(() => b.rope(x, Int32Array.of(0, 1, 2), { ...o, scaling: { type: 'linear', factor: 0 } }), /rope: scaling factor must be > 0/);
      raises(
        () => b.rope(x, Int32Array.of(0, 1, 2), { ...o, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPosition: 8192 } }),
        /rope: llama3 scaling needs highFreqFactor > lowFreqFactor/,
      );
      const before = snapshot(x);
      raises(() => b.rope(x, Int32Array.of(0, 1, -5), o), /rope: position -5/);
      assert.deepEqual(snapshot(x), before, 'rope must not touch x on error');
    });

    it('softmax / silu / gelu / swiglu / geglu', () => {
      raises(() => b.softmax(zeros([2, 3], 'f16'), zeros([2, 3])), /softmax: x f16\[2, 3\] must be f32/);
      raises(() => b.softmax(zeros([2, 3]), zeros([2, 4])), /softmax: x f32\[2, 3\] and out f32\[2, 4\] differ in shape/);
      raises(() => b.silu(zeros([2, 3]), zeros([3, 2])), /silu: x f32\[2, 3\] and out f32\[3, 2\]/);
      raises(() => b.gelu(zeros([4]), zeros([5]), 'erf'), /gelu: x f32\[4\] and out f32\[5\]/);
      raises(() => b.swiglu(zeros([2, 8]), zeros([2, 4]), zeros([2, 8])), /swiglu: gate f32\[2, 8\] and up f32\[2, 4\] differ in shape/);
      raises(() => b.swiglu(zeros([2, 8]), zeros([2, 8]), zeros([1, 8])), /swiglu: gate f32\[2, 8\] and out f32\[1, 8\]/);
      raises(() => b.geglu(zeros([2, 8]), zeros([2, 8], 'bf16'), zeros([2, 8]), 'tanh'), /geglu: up bf16\[2, 8\] must be f32/);
    });

    it('embedding', () => {
      const table = zeros([10, 4], 'f16');
      const out = ones([3, 4]);
      const before = snapshot(out);
      raises(() => b.embedding(table, Int32Array.of(1, 10, 2), out), /embedding: token id 10 at index 1 is out of range \[0, 10\)/);
      raises(() => b.embedding(table, Int32Array.of(1, 2, -1), out), /embedding: token id -1 at index 2/);
      assert.deepEqual(snapshot(out), before, 'embedding must not write out on error');
      raises(() => b.embedding(table, Int32Array.of(1, 2), out), /embedding: out f32\[3, 4\] must be \[2, 4\]/);
      raises(() => b.embedding(table, Int32Array.of(1, 2, 3), zeros([3, 5])), /embedding: out f32\[3, 5\] must be \[3, 4\]/);
      raises(() => b.embedding(zeros([10, 4, 2]), Int32Array.of(0), zeros([1, 8])), /embedding: table f32\[10, 4, 2\] must be a contiguous \[vocab, dim\] matrix/);
    });

    it('kvWrite', () => {
      const cache = zeros([4, 2, 8, 4], 'f16'); // value pool: 4 blocks x 8 slots, 2 kv heads, head_dim 4
      const k = ones([2, 2, 4]);
      const before = snapshot(cache);
      raises(() => b.kvWrite(k, cache, Int32Array.of(3, 32), 'v'), /kvWrite: slot 32 at index 1 is out of range \[0, 32\)/);
      raises(() => b.kvWrite(k, cache, Int32Array.of(-1, 0), 'v'), /kvWrite: slot -1 at index 0/);
      assert.deepEqual(snapshot(cache), before, 'kvWrite must not write the cache on error');
      raises(() => b.kvWrite(k, cache, Int32Array.of(3), 'v'), /kvWrite: 1 slots for v f32\[2, 2, 4\]/);
      raises(() => b.kvWrite(ones([2, 3, 4]), cache, Int32Array.of(0, 1), 'v'), /kvWrite: v f32\[2, 3, 4\] does not fit v cache f16\[4, 2, 8, 4\]/);
      raises(() => b.kvWrite(ones([2, 2, 8]), cache, Int32Array.of(0, 1), 'v'), /kvWrite: v f32\[2, 2, 8\] does not fit v cache f16\[4, 2, 8, 4\]/);
      // the same tensor read as a key pool [4 blocks, 2 heads, head_dim 8, 4 slots]
      raises(() => b.kvWrite(k, cache, Int32Array.of(0, 1), 'k'), /kvWrite: k f32\[2, 2, 4\] does not fit k cache f16\[4, 2, 8, 4\]/);
      raises(() => b.kvWrite(k, cache, Int32Array.of(0, 1), 'x' as 'k'), /kvWrite: role must be 'k' or 'v', got x/);
      raises(() => b.kvWrite(k, zeros([4, 2, 8, 4], 'bf16'), Int32Array.of(0, 1), 'v'), /kvWrite: cache bf16\[4, 2, 8, 4\] must be f32 or f16/);
      raises(() => b.kvWrite(k, zeros([4, 16, 4]), Int32Array.of(0, 1), 'v'), /kvWrite: cache f32\[4, 16, 4\] must be a contiguous \[n_blocks, n_kv_heads, block_size, head_dim\] value pool/);
      raises(() => b.kvWrite(k, zeros([4, 16, 4]), Int32Array.of(0, 1), 'k'), /kvWrite: cache f32\[4, 16, 4\] must be a contiguous \[n_blocks, n_kv_heads, head_dim, block_size\] key pool/);
      raises(() => b.kvWrite(zeros([2, 2, 4], 'f16'), cache, Int32Array.of(0, 1), 'v'), /kvWrite: v f16\[2, 2, 4\] must be f32/);
    });

    it('attentionPrefill', () => {
      const kc = zeros([4, 2, 8, 4]); // 4 blocks of 4 tokens, 2 kv heads, head_dim 8 (keys dimension-major)
      const vc = zeros([4, 2, 4, 8]);
      const q = ones([3, 4, 8]);
      const out = ones([3, 4, 8]);
      const o = { scale: 0.35 };
      const before = snapshot(out);
      // positions 2..4 need ceil(5 / 4) = 2 table entries
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0), 2, out, o), /attentionPrefill: sequence of 5 tokens needs 2 block-table entries, table has 1/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 4), 2, out, o), /attentionPrefill: .*block 4 at table index 1 is out of range \[0, 4\)/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(-1, 0), 2, out, o), /attentionPrefill: .*block -1 at table index 0/);
      assert.deepEqual(snapshot(out), before, 'attentionPrefill must not write out on error');
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 1), -1, out, o), /attentionPrefill: startPos must be an integer >= 0, got -1/);
      raises(() => b.attentionPrefill(ones([3, 4, 16]), kc, vc, Int32Array.of(0, 1), 0, ones([3, 4, 16]), o), /attentionPrefill: q f32\[3, 4, 16\] head_dim differs from kCache f32\[4, 2, 8, 4\]/);
      raises(() => b.attentionPrefill(ones([3, 3, 8]), kc, vc, Int32Array.of(0, 1), 0, ones([3, 3, 8]), o), /attentionPrefill: 3 query heads is not a multiple of 2 kv heads/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 1), 0, ones([2, 4, 8]), o), /attentionPrefill: out f32\[2, 4, 8\] must match q f32\[3, 4, 8\]/);
      raises(() => b.attentionPrefill(q, kc, zeros([4, 2, 4, 8], 'f16'), Int32Array.of(0, 1), 0, out, o), /attentionPrefill: kCache f32\[4, 2, 8, 4\] and vCache f16\[4, 2, 4, 8\] do not match/);
      raises(() => b.attentionPrefill(q, kc, zeros([4, 2, 2, 8]), Int32Array.of(0, 1), 0, out, o), /attentionPrefill: kCache f32\[4, 2, 8, 4\] and vCache f32\[4, 2, 2, 8\] do not match/);
      // a value-layout key pool of another block size is caught too
      raises(() => b.attentionPrefill(q, zeros([4, 2, 4, 8]), vc, Int32Array.of(0, 1), 0, out, o), /attentionPrefill: q f32\[3, 4, 8\] head_dim differs from kCache f32\[4, 2, 4, 8\]|do not match/);
      raises(() => b.attentionPrefill(ones([24]), kc, vc, Int32Array.of(0, 1), 0, out, o), /attentionPrefill: q f32\[24\] must be 3-D/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 1), 0, out, { scale: NaN }), /attentionPrefill: scale must be finite/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 1), 0, out, { scale: 1, softCap: -1 }), /attentionPrefill: softCap must be >= 0/);
      raises(() => b.attentionPrefill(q, kc, vc, Int32Array.of(0, 1), 0, out, { scale: 1, window: 1.5 }), /attentionPrefill: window must be an integer >= 0/);
    });

    it('attentionDecode', () => {
      const kc = zeros([4, 2, 8, 4]);
      const vc = zeros([4, 2, 4, 8]);
      const q = ones([2, 4, 8]);
      const out = ones([2, 4, 8]);
      const o = { scale: 0.35 };
      const tables = Int32Array.of(0, 1, 2, 3); // 2 sequences x maxBlocks 2
      const before = snapshot(out);
      raises(() => b.attentionDecode(q, kc, vc, tables, 2, Int32Array.of(3, 0), out, o), /attentionDecode: sequence 1 length 0 must be in \[1, 8\]/);
      raises(() => b.attentionDecode(q, kc, vc, tables, 2, Int32Array.of(9, 1), out, o), /attentionDecode: sequence 0 length 9 must be in \[1, 8\]/);
      raises(() => b.attentionDecode(q, kc, vc, Int32Array.of(0, 1, 7, 3), 2, Int32Array.of(3, 5), out, o), /attentionDecode: sequence 1: block 7 at table index 2 is out of range \[0, 4\)/);
      assert.deepEqual(snapshot(out), before, 'attentionDecode must not write out on error');
      raises(() => b.attentionDecode(q, kc, vc, tables, 2, Int32Array.of(3), out, o), /attentionDecode: 1 sequence lengths for 2 queries/);
      raises(() => b.attentionDecode(q, kc, vc, Int32Array.of(0, 1, 2), 2, Int32Array.of(3, 3), out, o), /attentionDecode: blockTables has 3 entries, need 2 x 2/);
      raises(() => b.attentionDecode(q, kc, vc, tables, 0, Int32Array.of(3, 3), out, o), /attentionDecode: maxBlocks must be an integer > 0, got 0/);
      raises(() => b.attentionDecode(q, kc, vc, tables, 2, Int32Array.of(3, 3), ones([2, 4, 4]), o), /attentionDecode: out f32\[2, 4, 4\] must match q f32\[2, 4, 8\]/);
      raises(() => b.attentionDecode(ones([2, 4, 8]), zeros([4, 2, 8, 4], 'bf16'), vc, tables, 2, Int32Array.of(3, 3), out, o), /attentionDecode: kCache bf16\[4, 2, 8, 4\] must be f32 or f16/);
    });

    it('argmax', () => {
      raises(() => b.argmax(zeros([2, 3], 'f16')), /argmax: x f16\[2, 3\] must be f32/);
      raises(() => b.argmax(zeros([2, 0])), /argmax: x f32\[2, 0\] has empty rows/);
      raises(() => b.argmax(zeros([2, 3, 4]).view([2, 2, 3], [12, 4, 1])), /argmax: x f32\[2, 2, 3\] with strides \[12, 4, 1\]: leading dimensions must collapse into rows/);
    });
  });
}
