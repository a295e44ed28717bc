// The row ops a forward pass needs besides the math kernels (gatherRows, scatterRows, softCap,
// topkRoute, combineRows): the cpu backend against the ref backend on awkward sizes and strided
// views, each against values computed here by hand, and bad arguments named in the error.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../src/tensor/backend.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { rng } from './helpers/random.ts';

const backends: [string, Backend][] = [['ref', refBackend], ['cpu', cpuBackend()]];

function rand(rows: number, cols: number, seed: number, scale = 1): Tensor {
  const r = rng(seed);
  return Tensor.fromF32(Float32Array.from({ length: rows * cols }, () => r() * scale), [rows, cols]);
}

/** A [rows, cols] view into rows `pad` elements wider. */
function strided(rows: number, cols: number, pad: number, seed: number): Tensor {
  return rand(rows, cols + pad, seed).view([rows, cols], [cols + pad, 1]);
}

const rowsOf = (t: Tensor): number[][] => {
  const v = t.toF32(), c = t.shape[1]!;
  return Array.from({ length: t.shape[0]! }, (_, r) => Array.from(v.subarray(r * c, r * c + c)));
};

describe('row ops', () => {
  for (const [name, be] of backends) {
    it(`${name}: gatherRows / scatterRows move whole rows, strided views included`, () => {
      const x = strided(13, 37, 5, 1);
      const rows = Int32Array.from([12, 0, 5, 5, 7]);
      const g = Tensor.zeros([5, 37]);
      be.gatherRows(x, rows, g);
      const xr = rowsOf(x);
      assert.deepEqual(rowsOf(g), [...rows].map((r) => xr[r]));

      const out = strided(9, 37, 3, 2);
      const before = rowsOf(out);
      const slots = Int32Array.from([8, 1, 4]);
      const y = rand(3, 37, 3);
      be.scatterRows(y, slots, out);
      const want = before.slice();
      slots.forEach((s, j) => (want[s] = rowsOf(y)[j]!));
      assert.deepEqual(rowsOf(out), want);
    });

    it(`${name}: softCap is cap * tanh(x / cap), in place too`, () => {
      const x = rand(7, 33, 4, 80);
      const want = x.toF32().map((v) => 30 * Math.tanh(v / 30));
      be.softCap(x, 30, x);
      const got = x.toF32();
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * 30, `element ${i}`);
    });

    it(`${name}: topkRoute picks the k most probable experts, lower index on ties, weights renormalised`, () => {
      const logits = Tensor.fromF32(Float32Array.from([0.5, 2, 2, -1, 1, /* row 2 */ 3, 3, 3, 3, 3]), [2, 5]);
      const ids = new Int32Array(4);
      const w = Tensor.zeros([2, 2]);
      be.topkRoute(logits, 2, ids, w);
      assert.deepEqual([...ids], [1, 2, 0, 1]);
      const wv = w.toF32();
      for (const v of wv) assert.ok(Math.abs(v - 0.5) < 1e-6);

      // random rows: the chosen experts by hand, and the weights p_j / sum over the chosen p
      const E = 11, T = 19, K = 3;
      const lg = strided(T, E, 2, 5);
      const id2 = new Int32Array(T * K);
      const w2 = Tensor.zeros([T, K]);
      be.topkRoute(lg, K, id2, w2);
      const rows = rowsOf(lg), wr = rowsOf(w2);
      rows.forEach((row, t) => {
        const order = row.map((_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, K);
        assert.deepEqual([...id2.subarray(t * K, t * K + K)], order, `row ${t}`);
        const p = order.map((e) => Math.exp(row[e]!));
        const s = p.reduce((a, b) => a + b, 0);
        p.forEach((v, j) => assert.ok(Math.abs(wr[t]![j]! - v / s) < 1e-6, `row ${t} weight ${j}`));
      });
    });

    it(`${name}: combineRows sums each row's k weighted rows`, () => {
      const T = 6, K = 2, D = 41;
      const x = strided(T * K, D, 7, 6);
      const w = rand(T, K, 7);
      const out = Tensor.zeros([T, D]);
      be.combineRows(x, w, out);
      const xr = rowsOf(x), wr = rowsOf(w), o = rowsOf(out);
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < D; c++) {
          const want = wr[t]![0]! * xr[t * K]![c]! + wr[t]![1]! * xr[t * K + 1]![c]!;
          assert.ok(Math.abs(o[t]![c]! - want) <= 1e-6, `[${t}, ${c}]`);
        }
      }
    });

    it(`${name}: bad arguments name the op and what is wrong`, () => {
      const x = rand(4, 8, 8);
      assert.throws(() => be.gatherRows(x, Int32Array.of(0, 4), Tensor.zeros([2, 8])), /gatherRows: row index 4 at 1 is outside x's \[0, 4\)/);
      assert.throws(() => be.gatherRows(x, Int32Array.of(0), Tensor.zeros([2, 8])), /gatherRows: 1 row indices for 2 rows/);
      assert.throws(() => be.scatterRows(x, Int32Array.of(0, 1, 2, 9), Tensor.zeros([5, 8])), /scatterRows: row index 9 at 3 is outside out's \[0, 5\)/);
      assert.throws(() => be.scatterRows(x, Int32Array.of(0, 1, 2, 3), Tensor.zeros([5, 7])), /scatterRows: .* differ in width/);
      assert.throws(() => be.softCap(x, 0, x), /softCap: cap must be a finite number > 0, got 0/);
      assert.throws(() => be.topkRoute(x, 9, new Int32Array(36), Tensor.zeros([4, 9])), /topkRoute: k must be an integer in \[1, 8\], got 9/);
      assert.throws(() => be.topkRoute(x, 2, new Int32Array(7), Tensor.zeros([4, 2])), /topkRoute: ids holds 7 entries, expected 4 \* 2/);
      assert.throws(() => be.combineRows(x, Tensor.zeros([3, 2]), Tensor.zeros([3, 8])), /combineRows: .* must be \[T \* K, D\], \[T, K\] and \[T, D\]/);
    });
  }

  it('cpu equals ref on the same inputs', () => {
    const [, r] = backends[0]!, [, c] = backends[1]!;
    const lg = rand(33, 8, 9, 3);
    const ids = [new Int32Array(66), new Int32Array(66)];
    const ws = [Tensor.zeros([33, 2]), Tensor.zeros([33, 2])];
    r.topkRoute(lg, 2, ids[0]!, ws[0]!);
    c.topkRoute(lg, 2, ids[1]!, ws[1]!);
    assert.deepEqual(ids[0], ids[1]);
    const a = ws[0]!.toF32(), b = ws[1]!.toF32();
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-6);
  });
});
