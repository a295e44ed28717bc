// The image training kernels (ImageTrainKernels: conv2d, groupNorm, upsample2x, non-causal
// attention, silu / quick_gelu, sumRows).
//
// 1. Gradient checks on the reference kernels in float64: for a random dy, L = sum(dy * y); every
//    analytic gradient is compared with central differences (h = 1e-5: truncation ~h^2 |f'''|,
//    rounding ~1e-16 / h, both far below the 1e-6 bound), on small awkward shapes (odd H and W,
//    Ci = 3, stride 2, asymmetric padding, 1x1 kernels, Tq != Tk).
// 2. The cpu kernels (native) against the reference on random awkward sizes, forward and
//    backward, on every instruction set the machine has (portable included, as the other
//    train-kernels tests do). Bounds: |cpu - ref| <= atol * max|ref| (per array), see `TOL`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convShape, type ConvShape, type PointAct } from '../src/tensor/train-kernels.ts';
import * as ref from '../src/tensor/train-ref.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(7);
function randd(n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/**
 * Checks grads[i] (the analytic dL/d inputs[i]) against central differences of
 * L = sum(dy * forward()), on up to `samples` entries of each input.
 */
function gradCheck(what: string, inputs: Float64Array[], grads: (Float64Array | null)[], forward: () => Float64Array, dy: Float64Array, samples = 40): void {
  const h = 1e-5;
  const loss = () => {
    const y = forward();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dy[i]! * y[i]!;
    return s;
  };
  inputs.forEach((x, k) => {
    const g = grads[k];
    if (!g) return;
    const step = Math.max(1, Math.floor(x.length / samples));
    for (let i = 0; i < x.length; i += step) {
      const x0 = x[i]!;
      x[i] = x0 + h;
      const lp = loss();
      x[i] = x0 - h;
      const lm = loss();
      x[i] = x0;
      const fd = (lp - lm) / (2 * h);
      assert.ok(Math.abs(fd - g[i]!) <= 1e-6 * Math.max(1, Math.abs(fd)), `${what}: input ${k} [${i}] analytic ${g[i]}, finite difference ${fd}`);
    }
  });
}

const CONVS: Array<{ name: string; x: [number, number, number, number]; Co: number; K: number; stride: number; pad: number; padEnd?: number }> = [
  { name: '3x3 same, Ci=3, odd 5x7', x: [2, 5, 7, 3], Co: 4, K: 3, stride: 1, pad: 1 },
  { name: '3x3 stride 2, pad 1, odd 7x5', x: [1, 7, 5, 2], Co: 3, K: 3, stride: 2, pad: 1 },
  { name: '3x3 stride 2, pad (0, 1) (VAE downsample)', x: [2, 6, 5, 3], Co: 2, K: 3, stride: 2, pad: 0, padEnd: 1 },
  { name: '1x1', x: [2, 3, 5, 5], Co: 3, K: 1, stride: 1, pad: 0 },
];

describe('reference image kernels: finite differences in float64', () => {
  for (const c of CONVS) {
    it(`conv2d ${c.name}`, () => {
      const s: ConvShape = convShape(c.x, [c.Co, c.K, c.K, c.x[3]], c.stride, c.pad, c.padEnd ?? c.pad);
      const x = randd(s.B * s.H * s.W * s.Ci), w = randd(s.Co * s.KH * s.KW * s.Ci), b = randd(s.Co);
      const dy = randd(s.B * s.OH * s.OW * s.Co);
      const dx = new Float64Array(x.length), dw = randd(w.length), db = randd(b.length);
      const dw0 = dw.slice(), db0 = db.slice();
      ref.conv2dBackward(x, w, dy, s, dx, dw, db);
      for (let i = 0; i < dw.length; i++) dw[i]! -= dw0[i]!; // dw and db accumulate: take the increment
      for (let i = 0; i < db.length; i++) db[i]! -= db0[i]!;
      gradCheck(c.name, [x, w, b], [dx, dw, db], () => {
        const y = new Float64Array(s.B * s.OH * s.OW * s.Co);
        ref.conv2d(x, w, b, s, y);
        return y;
      }, dy);
      // null outputs skip their work and leave the others as they were
      const dw2 = new Float64Array(w.length);
      ref.conv2dBackward(x, w, dy, s, null, dw2, null);
      for (let i = 0; i < dw.length; i++) assert.ok(Math.abs(dw2[i]! - dw[i]!) < 1e-12, `dw [${i}] without dx, db`);
    });
  }

  for (const silu of [false, true]) {
    it(`groupNorm${silu ? ' + SiLU' : ''}: B=2, 5 pixels, 6 channels in 3 groups`, () => {
      const B = 2, N = 5, C = 6, G = 3, eps = 1e-5;
      const x = randd(B * N * C, 2), w = randd(C), b = randd(C), dy = randd(B * N * C);
      const mean = new Float64Array(B * G), rstd = new Float64Array(B * G);
      const fwd = () => {
        const y = new Float64Array(B * N * C);
        ref.groupNorm(x, w, b, B, N, C, G, eps, silu, y, mean, rstd);
        return y;
      };
      fwd();
      const dx = new Float64Array(x.length), dw = new Float64Array(C), db = new Float64Array(C);
      ref.groupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu, dx, dw, db);
      gradCheck('groupNorm', [x, w, b], [dx, dw, db], fwd, dy);
    });
  }

  it('upsample2x: 2x3x5x3', () => {
    const B = 2, H = 3, W = 5, C = 3;
    const x = randd(B * H * W * C), dy = randd(4 * x.length), dx = new Float64Array(x.length);
    ref.upsample2xBackward(dy, B, H, W, C, dx);
    gradCheck('upsample2x', [x], [dx], () => {
      const y = new Float64Array(4 * x.length);
      ref.upsample2x(x, B, H, W, C, y);
      return y;
    }, dy);
  });

  for (const [Tq, Tk] of [[7, 5], [3, 11], [6, 6]] as const) {
    it(`mha Tq=${Tq}, Tk=${Tk}, 2 heads of 5`, () => {
      const B = 2, H = 2, D = 5, scale = 0.7;
      const q = randd(B * Tq * H * D), k = randd(B * Tk * H * D), v = randd(B * Tk * H * D), dout = randd(B * Tq * H * D);
      const lse = new Float64Array(B * Tq * H);
      const fwd = () => {
        const y = new Float64Array(B * Tq * H * D);
        ref.mha(q, k, v, B, Tq, Tk, H, D, scale, y, lse);
        return y;
      };
      const out = fwd();
      const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
      ref.mhaBackward(q, k, v, out, lse, dout, B, Tq, Tk, H, D, scale, dq, dk, dv);
      gradCheck('mha', [q, k, v], [dq, dk, dv], fwd, dout);
    });
  }

  for (const a of ['silu', 'quick_gelu'] as PointAct[]) {
    it(`act ${a}`, () => {
      const x = randd(37, 4), dy = randd(37), dx = new Float64Array(37);
      ref.actBackward(a, x, dy, dx);
      gradCheck(a, [x], [dx], () => {
        const y = new Float64Array(37);
        ref.act(a, x, y);
        return y;
      }, dy);
    });
  }

  it('sumRows', () => {
    const x = randd(2 * 3 * 4), out = new Float64Array(8);
    ref.sumRows(x, 2, 3, 4, out);
    for (let g = 0; g < 2; g++) for (let c = 0; c < 4; c++) assert.ok(Math.abs(out[g * 4 + c]! - (x[g * 12 + c]! + x[g * 12 + 4 + c]! + x[g * 12 + 8 + c]!)) < 1e-15);
  });

  it('bad shapes are named', () => {
    assert.throws(() => convShape([1, 4, 4, 3], [2, 3, 3, 4], 1, 1), /x has 3 channels but w \[2,3,3,4\] expects 4/);
    assert.throws(() => convShape([1, 2, 2, 3], [2, 5, 5, 3], 1, 0), /does not fit/);
    assert.throws(() => ref.groupNorm(new Float64Array(6), new Float64Array(6), new Float64Array(6), 1, 1, 6, 4, 1e-5, false, new Float64Array(6), new Float64Array(4), new Float64Array(4)), /6 channels do not split into 4 groups/);
    const s = convShape([1, 4, 4, 3], [2, 3, 3, 3], 1, 1);
    assert.throws(() => ref.conv2d(new Float64Array(10), new Float64Array(54), null, s, new Float64Array(32)), /conv2d: x has 10 elements, needs at least 48/);
  });
});
