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
import { after, before, describe, it } from 'node:test';
import { CpuTrainKernels, trainCore } from '../src/tensor/train-cpu.ts';
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

// ---- native vs reference ------------------------------------------------------------------------

const core = trainCore();
const cpu = new CpuTrainKernels();
const available = core.info().available;
const initialIsa = core.info().isa;

function randf(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}
const f64 = (a: Float32Array) => Float64Array.from(a);
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

// |got - want| <= tol * max(max|want|, 1) everywhere. The native kernels accumulate in f32
// (sgemm's K-blocked sums, chunked row sums added in double): 1e-5 of the scale holds for sums
// of up to ~5000 terms of mixed sign (measured <= 2e-6 on these cases).
const TOL = 1e-5;
function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const scale = Math.max(maxAbs(want), 1);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * scale)) assert.fail(`${what}: [${i}] got ${got[i]}, want ${want[i]} (max|want| ${scale})`);
  }
}

const NATIVE_CONVS: Array<{ name: string; x: [number, number, number, number]; Co: number; K: number; stride: number; pad: number; padEnd?: number }> = [
  ...CONVS,
  { name: '3x3 same, 9x11, Ci=17, Co=19', x: [3, 9, 11, 17], Co: 19, K: 3, stride: 1, pad: 1 },
  { name: '1x1, 33 channels', x: [2, 5, 7, 33], Co: 9, K: 1, stride: 1, pad: 0 },
  { name: '3x3 stride 2 (0, 1), 9x8', x: [2, 9, 8, 5], Co: 7, K: 3, stride: 2, pad: 0, padEnd: 1 },
  // K = 9 * 600 = 5400: im2col blocks of 776 rows, so blocks straddle the two images
  { name: '3x3 same, Ci=600: several im2col blocks', x: [2, 24, 24, 600], Co: 3, K: 3, stride: 1, pad: 1 },
];

for (const isa of available) {
  describe(`image train kernels (cpu, ${isa}) vs ref`, () => {
    before(() => core.setIsa(isa as 'avx512' | 'avx2' | 'portable'));
    after(() => core.setIsa(initialIsa as 'avx512'));

    for (const c of NATIVE_CONVS) {
      it(`conv2d ${c.name}: forward and backward`, () => {
        const s = convShape(c.x, [c.Co, c.K, c.K, c.x[3]], c.stride, c.pad, c.padEnd ?? c.pad);
        const x = randf(s.B * s.H * s.W * s.Ci), w = randf(s.Co * s.KH * s.KW * s.Ci), b = randf(s.Co), dy = randf(s.B * s.OH * s.OW * s.Co);
        const out = new Float32Array(dy.length), rOut = new Float64Array(dy.length);
        cpu.conv2d(x, w, b, s, out);
        ref.conv2d(f64(x), f64(w), f64(b), s, rOut);
        close('out', out, rOut);
        const dx = randf(x.length), dw0 = randf(w.length), db0 = randf(b.length); // dx garbage: overwritten
        const dw = dw0.slice(), db = db0.slice();
        const rdx = new Float64Array(x.length), rdw = f64(dw0), rdb = f64(db0);
        cpu.conv2dBackward(x, w, dy, s, dx, dw, db);
        ref.conv2dBackward(f64(x), f64(w), f64(dy), s, rdx, rdw, rdb);
        close('dx', dx, rdx);
        close('dw', dw, rdw);
        close('db', db, rdb);
        // null outputs are skipped: dw alone, dx alone
        const dw2 = dw0.slice(), dx2 = new Float32Array(x.length);
        cpu.conv2dBackward(x, w, dy, s, null, dw2, null);
        close('dw alone', dw2, rdw);
        cpu.conv2dBackward(x, w, dy, s, dx2, null, null);
        close('dx alone', dx2, rdx);
      });
    }

    for (const [B, N, C, G] of [[2, 7, 6, 3], [3, 37, 40, 8], [1, 1000, 40, 4], [2, 9, 64, 32]] as const) {
      for (const silu of [false, true]) {
        it(`groupNorm${silu ? ' + SiLU' : ''} B=${B} N=${N} C=${C} G=${G}`, () => {
          const x = randf(B * N * C, 3), w = randf(C), b = randf(C), dy = randf(B * N * C);
          for (let i = 0; i < x.length; i++) x[i]! += 0.5; // a mean away from 0
          const out = new Float32Array(x.length), mean = new Float32Array(B * G), rstd = new Float32Array(B * G);
          const rOut = new Float64Array(x.length), rMean = new Float64Array(B * G), rRstd = new Float64Array(B * G);
          cpu.groupNorm(x, w, b, B, N, C, G, 1e-5, silu, out, mean, rstd);
          ref.groupNorm(f64(x), f64(w), f64(b), B, N, C, G, 1e-5, silu, rOut, rMean, rRstd);
          close('out', out, rOut);
          close('mean', mean, rMean);
          close('rstd', rstd, rRstd);
          const dx = randf(x.length), dw = randf(C), db = randf(C);
          const rdx = new Float64Array(x.length), rdw = f64(dw), rdb = f64(db);
          cpu.groupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu, dx, dw, db);
          ref.groupNormBackward(f64(x), f64(w), f64(b), f64(mean), f64(rstd), f64(dy), B, N, C, G, silu, rdx, rdw, rdb);
          close('dx', dx, rdx);
          close('dw', dw, rdw);
          close('db', db, rdb);
          const dx2 = new Float32Array(x.length);
          cpu.groupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu, dx2, null, null);
          close('dx alone', dx2, rdx);
        });
      }
    }

    it('upsample2x forward and backward, 2x3x5x13', () => {
      const B = 2, H = 3, W = 5, C = 13;
      const x = randf(B * H * W * C), dy = randf(4 * x.length);
      const out = new Float32Array(4 * x.length), rOut = new Float64Array(4 * x.length);
      cpu.upsample2x(x, B, H, W, C, out);
      ref.upsample2x(f64(x), B, H, W, C, rOut);
      close('out', out, rOut, 0);
      const dx = new Float32Array(x.length), rdx = new Float64Array(x.length);
      cpu.upsample2xBackward(dy, B, H, W, C, dx);
      ref.upsample2xBackward(f64(dy), B, H, W, C, rdx);
      close('dx', dx, rdx, 1e-6); // four f32 adds
    });

    // The backward runs one tile task per (item, head) when there are at least two per thread
    // (B H >= 4 on 2 threads, so the first three cases here) and the sgemm path otherwise (the last
    // four); 750 x 2900 also splits the sgemm path into two query blocks.
    const MHA = [[2, 7, 5, 3, 5], [2, 100, 77, 3, 12], [3, 50, 130, 4, 40], [1, 33, 77, 2, 40], [2, 64, 64, 1, 17], [1, 1, 9, 1, 3], [1, 750, 2900, 2, 8]] as const;
    for (const [B, Tq, Tk, H, D] of MHA) {
      it(`mha B=${B} Tq=${Tq} Tk=${Tk} H=${H} D=${D}`, () => {
        const scale = 1 / Math.sqrt(D);
        const q = randf(B * Tq * H * D, 2), k = randf(B * Tk * H * D, 2), v = randf(B * Tk * H * D), dout = randf(B * Tq * H * D);
        const out = new Float32Array(q.length), lse = new Float32Array(B * Tq * H);
        const rOut = new Float64Array(q.length), rLse = new Float64Array(B * Tq * H);
        cpu.mha(q, k, v, B, Tq, Tk, H, D, scale, out, lse);
        ref.mha(f64(q), f64(k), f64(v), B, Tq, Tk, H, D, scale, rOut, rLse);
        close('out', out, rOut);
        close('lse', lse, rLse);
        const dq = randf(q.length), dk = randf(k.length), dv = randf(v.length);
        const rdq = new Float64Array(q.length), rdk = new Float64Array(k.length), rdv = new Float64Array(v.length);
        cpu.mhaBackward(q, k, v, out, lse, dout, B, Tq, Tk, H, D, scale, dq, dk, dv);
        ref.mhaBackward(f64(q), f64(k), f64(v), rOut, rLse, f64(dout), B, Tq, Tk, H, D, scale, rdq, rdk, rdv);
        close('dq', dq, rdq);
        close('dk', dk, rdk);
        close('dv', dv, rdv);
      });
    }

    it('silu and quick_gelu forward and backward, tails', () => {
      for (const a of ['silu', 'quick_gelu'] as PointAct[]) {
        for (const n of [1, 7, 33, 4099]) {
          const x = randf(n, 6), dy = randf(n);
          const out = new Float32Array(n), rOut = new Float64Array(n), dx = new Float32Array(n), rdx = new Float64Array(n);
          cpu.act(a, x, out);
          ref.act(a, f64(x), rOut);
          close(`${a} n=${n}`, out, rOut);
          cpu.actBackward(a, x, dy, dx);
          ref.actBackward(a, f64(x), f64(dy), rdx);
          close(`${a}' n=${n}`, dx, rdx);
        }
      }
    });

    it('addRows, into a new buffer and in place', () => {
      for (const [G, R, C] of [[1, 1, 1], [2, 37, 300], [3, 513, 7]] as const) {
        const x = randf(G * R * C), v = randf(G * C), out = randf(G * R * C), rOut = new Float64Array(G * R * C);
        cpu.addRows(x, v, G, R, C, out);
        ref.addRows(f64(x), f64(v), G, R, C, rOut);
        assert.deepEqual(out, Float32Array.from(rOut), `addRows ${G}x${R}x${C}`); // one f32 add per element: exact
        cpu.addRows(x, v, G, R, C, x);
        assert.deepEqual(x, out, 'in place');
      }
      const buf = new Float32Array(16);
      assert.throws(() => cpu.addRows(buf.subarray(0, 8), new Float32Array(2), 1, 4, 2, buf.subarray(1, 9)), /addRows: out overlaps x/);
    });

    it('sumRows', () => {
      for (const [G, R, C] of [[1, 1, 1], [2, 37, 300], [3, 4096, 7]] as const) {
        const x = randf(G * R * C), out = randf(G * C), rOut = new Float64Array(G * C);
        cpu.sumRows(x, G, R, C, out);
        ref.sumRows(f64(x), G, R, C, rOut);
        close(`sumRows ${G}x${R}x${C}`, out, rOut);
      }
    });

    it('bad buffers are named by the native layer', () => {
      const s = convShape([1, 4, 4, 3], [2, 3, 3, 3], 1, 1);
      assert.throws(() => cpu.conv2d(new Float32Array(10), new Float32Array(54), null, s, new Float32Array(32)), /conv2d: .*x/);
      assert.throws(() => cpu.groupNorm(new Float32Array(6), new Float32Array(6), new Float32Array(6), 1, 1, 6, 4, 1e-5, false, new Float32Array(6), new Float32Array(4), new Float32Array(4)), /6 channels do not split into 4 groups/);
      assert.throws(() => cpu.mha(new Float32Array(4), new Float32Array(0), new Float32Array(0), 1, 1, 0, 1, 4, 1, new Float32Array(4), new Float32Array(1)), /no keys/);
    });
  });
}
