// The reference training kernels: every backward against central finite differences of its
// forward (in float64 end to end), the forwards against the inference ref backend where the
// op exists there, gemm against a triple loop, and AdamW against a hand computation.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RopeOptions } from '../src/tensor/backend.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import type { AttnTrainOptions, Gelu } from '../src/tensor/train-kernels.ts';
import { type F, RefTrainKernels, TrainKernelError } from '../src/tensor/train-ref.ts';

const K = new RefTrainKernels();

// ---- helpers ----------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

const rand64 = (n: number, r: () => number, scale = 1) => Float64Array.from({ length: n }, () => r() * scale);

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** |a - e| <= tol * max(1, |e|) elementwise. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) assert.fail(`${what}[${i}]: got ${a}, expected ${e} (tol ${tol})`);
  }
}

const FD_TOL = 1e-6;

/**
 * Central differences of `loss` in each x[i] (i in `subset`, or all), against `grad`. The step
 * actually taken ((x+h) - (x-h), after rounding) is the divisor. Error measure: |a - n| /
 * max(|n|, 1e-2), relative for gradients of normal size, absolute 1e-8 near zero (below the
 * difference noise of a loss of order 1). Returns the worst error for the report.
 */
function gradCheck(what: string, x: Float64Array, grad: ArrayLike<number>, loss: () => number, subset?: number[]): number {
  const h = 1e-6;
  const idx = subset ?? Array.from({ length: x.length }, (_, i) => i);
  let worst = 0;
  for (const i of idx) {
    const x0 = x[i]!;
    const xp = x0 + h;
    const xm = x0 - h;
    x[i] = xp;
    const lp = loss();
    x[i] = xm;
    const lm = loss();
    x[i] = x0;
    const num = (lp - lm) / (xp - xm);
    const err = Math.abs(grad[i]! - num) / Math.max(Math.abs(num), 1e-2);
    worst = Math.max(worst, err);
    if (!(err < FD_TOL)) assert.fail(`${what}[${i}]: analytic ${grad[i]}, numeric ${num} (err ${err.toExponential(2)})`);
  }
  assert.ok(idx.length > 0);
  return worst;
}

/** A random subset of [0, n) of size m (all of it when m >= n). */
function subsetOf(n: number, m: number, r: () => number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(((r() + 1) / 2) * (i + 1)) % (i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, Math.min(n, m)).sort((a, b) => a - b);
}

const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

// ---- gemm and vector ops ------------------------------------------------------------------------

describe('gemm', () => {
  /** The stored-matrix element op(X)[i, j] for a row-major buffer with leading dimension ld. */
  const at = (X: ArrayLike<number>, trans: boolean, ld: number, i: number, j: number) => (trans ? X[j * ld + i]! : X[i * ld + j]!);

  it('matches a triple loop for all four transpose combinations, with alpha, beta and padded leading dims', () => {
    const r = rng(1);
    const M = 3, N = 4, Kd = 5;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const [aRows, aCols] = transA ? [Kd, M] : [M, Kd];
        const [bRows, bCols] = transB ? [N, Kd] : [Kd, N];
        const lda = aCols + 2, ldb = bCols + 3, ldc = N + 1;
        const A = rand64(aRows * lda, r);
        const B = rand64(bRows * ldb, r);
        const C0 = rand64(M * ldc, r);
        const alpha = 0.7, beta = -0.3;
        const C = C0.slice();
        K.gemm(transA, transB, M, N, Kd, alpha, A, lda, B, ldb, beta, C, ldc);
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < Kd; k++) s += at(A, transA, lda, m, k) * at(B, transB, ldb, k, n);
            const want = alpha * s + beta * C0[m * ldc + n]!;
            assert.ok(Math.abs(C[m * ldc + n]! - want) < 1e-14, `transA ${transA} transB ${transB} C[${m},${n}]`);
          }
          // the padding column of C is untouched
          assert.equal(C[m * ldc + N], C0[m * ldc + N]);
        }
      }
    }
  });

  it('beta = 0 overwrites C without reading it (NaN ignored); f32 buffers round once', () => {
    const r = rng(2);
    const A = f32(rand64(6, r));
    const B = f32(rand64(6, r));
    const C = new Float32Array(4).fill(NaN);
    K.gemm(false, true, 2, 2, 3, 2, A, 3, B, 3, 0, C, 2);
    for (let m = 0; m < 2; m++) {
      for (let n = 0; n < 2; n++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += A[m * 3 + k]! * B[n * 3 + k]!;
        assert.equal(C[m * 2 + n], Math.fround(2 * s));
      }
    }
  });

  it('rejects a leading dimension smaller than the row', () => {
    assert.throws(() => K.gemm(false, false, 2, 2, 3, 1, new Float32Array(6), 2, new Float32Array(6), 2, 0, new Float32Array(4), 2), TrainKernelError);
  });
});

describe('axpy, sumSquares, scaleInPlace', () => {
  it('compute y += a x, sum x^2 and x *= s', () => {
    const x = Float32Array.of(1, -2, 3);
    const y = Float32Array.of(0.5, 0.5, 0.5);
    K.axpy(2, x, y);
    assert.deepEqual([...y], [2.5, -3.5, 6.5]);
    assert.equal(K.sumSquares(x), 14);
    // float64 accumulation: 1e8 + 1 + ... would lose the ones in f32
    assert.equal(K.sumSquares(Float32Array.of(1e4, 1, 1, 1, 1)), 1e8 + 4);
    K.scaleInPlace(x, -0.5);
    assert.deepEqual([...x], [-0.5, 1, -1.5]);
  });
});

// ---- norms --------------------------------------------------------------------------------------

describe('rmsNorm', () => {
  it('backward matches finite differences (dx, dw)', (t) => {
    const r = rng(3);
    const rows = 3, cols = 6, eps = 1e-5;
    const x = rand64(rows * cols, r, 2);
    const w = rand64(cols, r, 1.5);
    const R = rand64(rows * cols, r);
    const loss = () => {
      const out = new Float64Array(rows * cols);
      K.rmsNorm(x, w, rows, cols, eps, out, new Float64Array(rows));
      return dot(out, R);
    };
    const out = new Float64Array(rows * cols);
    const rstd = new Float64Array(rows);
    K.rmsNorm(x, w, rows, cols, eps, out, rstd);
    const dx = new Float64Array(rows * cols);
    const dw = new Float64Array(cols);
    K.rmsNormBackward(x, w, rstd, R, rows, cols, dx, dw);
    const e = Math.max(gradCheck('dx', x, dx, loss), gradCheck('dw', w, dw, loss));
    t.diagnostic(`max FD error ${e.toExponential(2)}`);
  });

  it('forward matches RefBackend.rmsNorm bit for bit', () => {
    const r = rng(4);
    const rows = 4, cols = 7;
    const x = f32(rand64(rows * cols, r, 3));
    const w = f32(rand64(cols, r));
    const want = Tensor.zeros([rows, cols]);
    refBackend.rmsNorm(Tensor.fromF32(x, [rows, cols]), Tensor.fromF32(w, [cols]), 1e-6, want);
    const out = new Float32Array(rows * cols);
    const rstd = new Float32Array(rows);
    K.rmsNorm(x, w, rows, cols, 1e-6, out, rstd);
    assert.deepEqual(bits(out), bits(want.toF32()));
  });
});

describe('layerNorm', () => {
  for (const withBias of [true, false]) {
    it(`backward matches finite differences (dx, dw${withBias ? ', db' : ''})`, (t) => {
      const r = rng(withBias ? 5 : 6);
      const rows = 3, cols = 5, eps = 1e-5;
      const x = rand64(rows * cols, r, 2);
      const w = rand64(cols, r, 1.5);
      const b = withBias ? rand64(cols, r) : null;
      const R = rand64(rows * cols, r);
      const fwd = () => {
        const out = new Float64Array(rows * cols);
        const mean = new Float64Array(rows);
        const rstd = new Float64Array(rows);
        K.layerNorm(x, w, b, rows, cols, eps, out, mean, rstd);
        return { out, mean, rstd };
      };
      const loss = () => dot(fwd().out, R);
      const { mean, rstd } = fwd();
      const dx = new Float64Array(rows * cols);
      const dw = new Float64Array(cols);
      const db = withBias ? new Float64Array(cols) : null;
      K.layerNormBackward(x, w, mean, rstd, R, rows, cols, dx, dw, db);
      let e = Math.max(gradCheck('dx', x, dx, loss), gradCheck('dw', w, dw, loss));
      if (b && db) e = Math.max(e, gradCheck('db', b, db, loss));
      t.diagnostic(`max FD error ${e.toExponential(2)}`);
    });
  }

  it('forward matches RefBackend.layerNorm bit for bit (with and without bias); saves mean and population rstd', () => {
    const r = rng(7);
    const rows = 3, cols = 9, eps = 1e-5;
    const x = f32(rand64(rows * cols, r, 4));
    const w = f32(rand64(cols, r));
    const b = f32(rand64(cols, r));
    for (const bias of [b, null]) {
      const want = Tensor.zeros([rows, cols]);
      refBackend.layerNorm(Tensor.fromF32(x, [rows, cols]), Tensor.fromF32(w, [cols]), bias ? Tensor.fromF32(bias, [cols]) : null, eps, want);
      const out = new Float32Array(rows * cols);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      K.layerNorm(x, w, bias, rows, cols, eps, out, mean, rstd);
      assert.deepEqual(bits(out), bits(want.toF32()));
      for (let rr = 0; rr < rows; rr++) {
        const row = [...x.subarray(rr * cols, rr * cols + cols)];
        const mu = row.reduce((s, v) => s + v, 0) / cols;
        const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / cols;
        assert.equal(mean[rr], Math.fround(mu));
        assert.equal(rstd[rr], Math.fround(1 / Math.sqrt(variance + eps)));
      }
    }
  });
});

// ---- activations --------------------------------------------------------------------------------

describe('activations', () => {
  const n = 40;
  // inputs spread over [-5, 5], where every GELU / SiLU regime shows up
  const input = (r: () => number) => rand64(n, r, 5);

  it('swiglu backward matches finite differences (dg, du)', (t) => {
    const r = rng(8);
    const g = input(r), u = rand64(n, r, 2), R = rand64(n, r);
    const loss = () => {
      const out = new Float64Array(n);
      K.swiglu(g, u, out);
      return dot(out, R);
    };
    const dg = new Float64Array(n), du = new Float64Array(n);
    K.swigluBackward(g, u, R, dg, du);
    const e = Math.max(gradCheck('dg', g, dg, loss), gradCheck('du', u, du, loss));
    t.diagnostic(`max FD error ${e.toExponential(2)}`);
  });

  for (const approx of ['tanh', 'erf'] as Gelu[]) {
    it(`geglu (${approx}) backward matches finite differences (dg, du)`, (t) => {
      const r = rng(approx === 'tanh' ? 9 : 10);
      const g = input(r), u = rand64(n, r, 2), R = rand64(n, r);
      const loss = () => {
        const out = new Float64Array(n);
        K.geglu(g, u, out, approx);
        return dot(out, R);
      };
      const dg = new Float64Array(n), du = new Float64Array(n);
      K.gegluBackward(g, u, R, dg, du, approx);
      const e = Math.max(gradCheck('dg', g, dg, loss), gradCheck('du', u, du, loss));
      t.diagnostic(`max FD error ${e.toExponential(2)}`);
    });

    it(`gelu (${approx}) backward matches finite differences`, (t) => {
      const r = rng(approx === 'tanh' ? 11 : 12);
      const x = input(r), R = rand64(n, r);
      const loss = () => {
        const out = new Float64Array(n);
        K.gelu(x, out, approx);
        return dot(out, R);
      };
      const dx = new Float64Array(n);
      K.geluBackward(x, R, dx, approx);
      t.diagnostic(`max FD error ${gradCheck('dx', x, dx, loss).toExponential(2)}`);
    });
  }

  it('swiglu, geglu and gelu forwards match RefBackend bit for bit', () => {
    const r = rng(13);
    const rows = 4, cols = 10;
    const g = f32(input(r).subarray(0, rows * cols));
    const u = f32(rand64(rows * cols, r, 2));
    const gt = Tensor.fromF32(g, [rows, cols]);
    const ut = Tensor.fromF32(u, [rows, cols]);
    const want = Tensor.zeros([rows, cols]);
    const out = new Float32Array(rows * cols);
    refBackend.swiglu(gt, ut, want);
    K.swiglu(g, u, out);
    assert.deepEqual(bits(out), bits(want.toF32()), 'swiglu');
    for (const approx of ['tanh', 'erf'] as Gelu[]) {
      refBackend.geglu(gt, ut, want, approx);
      K.geglu(g, u, out, approx);
      assert.deepEqual(bits(out), bits(want.toF32()), `geglu ${approx}`);
      refBackend.gelu(gt, want, approx);
      K.gelu(g, out, approx);
      assert.deepEqual(bits(out), bits(want.toF32()), `gelu ${approx}`);
    }
  });
});

// ---- rope ---------------------------------------------------------------------------------------

describe('rope', () => {
  const rows = 5, H = 2, D = 8;
  const positions = Int32Array.of(0, 3, 17, 250, 4099);
  const llama3 = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 } as const;
  const cases: [string, RopeOptions][] = [];
  for (const layout of ['interleaved', 'half'] as const) {
    cases.push([`${layout}`, { layout, theta: 10000 }]);
    cases.push([`${layout} rotaryDim 4`, { layout, theta: 10000, rotaryDim: 4 }]);
    cases.push([`${layout} linear x4`, { layout, theta: 500, scaling: { type: 'linear', factor: 4 } }]);
    // theta 10000, d 8: wavelengths 6.3, 63, 628, 6283 against 16 / 64: all three llama3 regimes
    cases.push([`${layout} llama3`, { layout, theta: 10000, scaling: llama3 }]);
    cases.push([`${layout} rotaryDim 6 llama3`, { layout, theta: 10000, rotaryDim: 6, scaling: llama3 }]);
  }

  for (const [name, opts] of cases) {
    it(`${name}: inverse is the exact adjoint and undoes the forward; backward matches finite differences`, (t) => {
      const r = rng(name.length * 31 + (opts.rotaryDim ?? 0));
      const x = rand64(rows * H * D, r);
      const y = rand64(rows * H * D, r);
      const Rx = x.slice();
      K.rope(Rx, rows, H, D, positions, opts, false);
      const RTy = y.slice();
      K.rope(RTy, rows, H, D, positions, opts, true);
      // <R x, y> = <x, R^T y>
      const lhs = dot(Rx, y), rhs = dot(x, RTy);
      assert.ok(Math.abs(lhs - rhs) < 1e-13 * (1 + Math.abs(lhs)), `adjoint: ${lhs} vs ${rhs}`);
      // R^T R x = x
      const back = Rx.slice();
      K.rope(back, rows, H, D, positions, opts, true);
      close(back, x, 1e-14, 'inverse(rope(x))');
      // dims past rotaryDim pass through
      const rd = opts.rotaryDim ?? D;
      for (let i = 0; i < x.length; i++) if (i % D >= rd) assert.equal(Rx[i], x[i]);
      // L = sum(rope(x) R): dL/dx = rope(R, inverse)
      const R = rand64(rows * H * D, r);
      const grad = R.slice();
      K.rope(grad, rows, H, D, positions, opts, true);
      const loss = () => {
        const o = x.slice();
        K.rope(o, rows, H, D, positions, opts, false);
        return dot(o, R);
      };
      t.diagnostic(`max FD error ${gradCheck('dx', x, grad, loss).toExponential(2)}`);
    });

    it(`${name}: forward matches RefBackend.rope bit for bit`, () => {
      const r = rng(name.length);
      const x = f32(rand64(rows * H * D, r, 3));
      const t = Tensor.fromF32(x.slice(), [rows, H, D]);
      refBackend.rope(t, positions, opts);
      K.rope(x, rows, H, D, positions, opts, false);
      assert.deepEqual(bits(x), bits(t.toF32()));
    });
  }

  it('rotates a known pair by the known angle (half layout, inverse = opposite angle)', () => {
    // D = 2, theta irrelevant (i = 0 has frequency 1): position 1 rotates by 1 radian
    const x = Float64Array.of(1, 0);
    K.rope(x, 1, 1, 2, Int32Array.of(1), { layout: 'half', theta: 10000 }, false);
    close(x, [Math.cos(1), Math.sin(1)], 1e-15);
    const y = Float64Array.of(1, 0);
    K.rope(y, 1, 1, 2, Int32Array.of(1), { layout: 'half', theta: 10000 }, true);
    close(y, [Math.cos(1), -Math.sin(1)], 1e-15);
  });
});

// ---- attention ----------------------------------------------------------------------------------

describe('attention', () => {
  const B = 2, T = 5, Hq = 4, Hkv = 2, D = 3;
  // a document boundary mid-sequence in both; the ids repeat across sequences, which must not
  // let them see each other
  const seg = Int32Array.of(0, 0, 1, 1, 1, 0, 0, 0, 7, 7);
  const configs: [string, AttnTrainOptions][] = [
    ['plain', { scale: 0.6, softCap: 0, window: 0 }],
    ['window 2, softCap 5', { scale: 2, softCap: 5, window: 2 }],
  ];

  function inputs(seed: number) {
    const r = rng(seed);
    return {
      q: rand64(B * T * Hq * D, r, 1.5),
      k: rand64(B * T * Hkv * D, r, 1.5),
      v: rand64(B * T * Hkv * D, r),
      R: rand64(B * T * Hq * D, r),
    };
  }

  for (const [name, opts] of configs) {
    it(`${name}: backward matches finite differences (dq, dk, dv)`, (t) => {
      const { q, k, v, R } = inputs(name.length);
      const fwd = () => {
        const out = new Float64Array(B * T * Hq * D);
        const lse = new Float64Array(B * T * Hq);
        K.attention(q, k, v, seg, B, T, Hq, Hkv, D, opts, out, lse);
        return { out, lse };
      };
      const loss = () => dot(fwd().out, R);
      const { out, lse } = fwd();
      // NaN-filled: the backward must overwrite every element
      const dq = new Float64Array(q.length).fill(NaN);
      const dk = new Float64Array(k.length).fill(NaN);
      const dv = new Float64Array(v.length).fill(NaN);
      K.attentionBackward(q, k, v, seg, out, lse, R, B, T, Hq, Hkv, D, opts, dq, dk, dv);
      const e = Math.max(gradCheck('dq', q, dq, loss), gradCheck('dk', k, dk, loss), gradCheck('dv', v, dv, loss));
      t.diagnostic(`max FD error ${e.toExponential(2)}`);
    });

    it(`${name}: each document matches RefBackend.attentionPrefill run on it alone; lse is the log-sum-exp`, () => {
      const { q, k, v } = inputs(name.length + 100);
      const out = new Float32Array(B * T * Hq * D);
      const lse = new Float32Array(B * T * Hq);
      K.attention(f32(q), f32(k), f32(v), seg, B, T, Hq, Hkv, D, opts, out, lse);
      let docs = 0;
      for (let b = 0; b < B; b++) {
        for (let start = 0; start < T; ) {
          let end = start + 1;
          while (end < T && seg[b * T + end] === seg[b * T + start]) end++;
          const n = end - start;
          const row0 = b * T + start;
          // the document alone, as a one-block paged cache: keys [1, Hkv, D, n], values [1, Hkv, n, D]
          const kc = new Float32Array(Hkv * n * D);
          const vc = new Float32Array(Hkv * n * D);
          for (let p = 0; p < n; p++) {
            for (let h = 0; h < Hkv; h++) {
              for (let d = 0; d < D; d++) {
                kc[(h * D + d) * n + p] = k[((row0 + p) * Hkv + h) * D + d]!;
                vc[(h * n + p) * D + d] = v[((row0 + p) * Hkv + h) * D + d]!;
              }
            }
          }
          const want = Tensor.zeros([n, Hq, D]);
          refBackend.attentionPrefill(
            Tensor.from(q.subarray(row0 * Hq * D, (row0 + n) * Hq * D), [n, Hq, D]),
            Tensor.fromF32(kc, [1, Hkv, D, n]),
            Tensor.fromF32(vc, [1, Hkv, n, D]),
            Int32Array.of(0),
            0,
            want,
            opts,
          );
          close(out.subarray(row0 * Hq * D, (row0 + n) * Hq * D), want.toF32(), 2e-6, `b ${b} doc at ${start}`);
          // lse straight from the definition, over the keys the rule admits
          for (let p = 0; p < n; p++) {
            for (let h = 0; h < Hq; h++) {
              const hk = Math.floor(h / (Hq / Hkv));
              let sum = 0;
              for (let s = 0; s <= p; s++) {
                if (opts.window > 0 && p - s >= opts.window) continue;
                let sc = 0;
                for (let d = 0; d < D; d++) sc += Math.fround(q[((row0 + p) * Hq + h) * D + d]!) * kc[(hk * D + d) * n + s]!;
                sc *= opts.scale;
                if (opts.softCap > 0) sc = opts.softCap * Math.tanh(sc / opts.softCap);
                sum += Math.exp(sc);
              }
              close([lse[(row0 + p) * Hq + h]!], [Math.log(sum)], 1e-6, `lse b ${b} t ${start + p} h ${h}`);
            }
          }
          docs++;
          start = end;
        }
      }
      assert.equal(docs, 4);
    });
  }

  it('a token whose window and segment leave only itself returns its own value', () => {
    // window 1: every query sees only its own key, whatever the scores
    const r = rng(21);
    const q = rand64(B * T * Hq * D, r, 3), k = rand64(B * T * Hkv * D, r, 3), v = rand64(B * T * Hkv * D, r);
    const out = new Float64Array(q.length);
    const lse = new Float64Array(B * T * Hq);
    K.attention(q, k, v, seg, B, T, Hq, Hkv, D, { scale: 1, softCap: 0, window: 1 }, out, lse);
    for (let row = 0; row < B * T; row++) {
      for (let h = 0; h < Hq; h++) {
        const hk = Math.floor(h / (Hq / Hkv));
        close(out.subarray((row * Hq + h) * D, (row * Hq + h + 1) * D), v.subarray((row * Hkv + hk) * D, (row * Hkv + hk + 1) * D), 1e-15);
      }
    }
  });

  it('rejects Hq not a multiple of Hkv', () => {
    const z = new Float32Array(64);
    assert.throws(
      () => K.attention(z, z, z, new Int32Array(2), 1, 2, 3, 2, 2, { scale: 1, softCap: 0, window: 0 }, z, z),
      /Hq 3 must be a multiple of Hkv 2/,
    );
  });
});

// ---- cross-entropy ------------------------------------------------------------------------------

describe('crossEntropy', () => {
  const rows = 5, V = 7;
  const targets = Int32Array.of(3, -1, 0, 6, -1);

  for (const softCap of [0, 3]) {
    it(`softCap ${softCap}: value is -log softmax summed over counted rows; dlogits matches finite differences`, (t) => {
      const r = rng(30 + softCap);
      const logits = rand64(rows * V, r, 4);
      const gradScale = 0.37;
      const dl = new Float64Array(rows * V).fill(NaN);
      const loss = K.crossEntropy(logits, rows, V, targets, softCap, gradScale, dl);
      // direct: -log(exp(z_t) / sum exp(z)), no max shift (the logits are small)
      let want = 0;
      for (let rr = 0; rr < rows; rr++) {
        if (targets[rr] === -1) continue;
        const z = [...logits.subarray(rr * V, rr * V + V)].map((l) => (softCap ? softCap * Math.tanh(l / softCap) : l));
        want += -Math.log(Math.exp(z[targets[rr]!]!) / z.reduce((s, zi) => s + Math.exp(zi), 0));
      }
      assert.ok(Math.abs(loss - want) < 1e-13, `loss ${loss} vs ${want}`);
      // ignored rows: zero gradient
      for (const rr of [1, 4]) assert.deepEqual([...dl.subarray(rr * V, rr * V + V)], new Array(V).fill(0));
      const grad = dl.map((g) => g / gradScale);
      const lossOnly = () => K.crossEntropy(logits, rows, V, targets, softCap, 1, new Float64Array(rows * V));
      t.diagnostic(`max FD error ${gradCheck('dlogits', logits, grad, lossOnly).toExponential(2)}`);
    });
  }

  it('dlogits may be the logits buffer itself', () => {
    const r = rng(33);
    const logits = f32(rand64(rows * V, r, 4));
    const sep = new Float32Array(rows * V);
    const l1 = K.crossEntropy(logits, rows, V, targets, 3, 0.5, sep);
    const l2 = K.crossEntropy(logits, rows, V, targets, 3, 0.5, logits);
    assert.equal(l1, l2);
    assert.deepEqual(bits(logits), bits(sep));
  });

  it('rejects a target outside the vocabulary', () => {
    assert.throws(() => K.crossEntropy(new Float32Array(4), 2, 2, Int32Array.of(0, 2), 0, 1, new Float32Array(4)), /target 2 at row 1/);
  });
});

// ---- embedding ----------------------------------------------------------------------------------

describe('embeddingBackward', () => {
  it('accumulates into dtable, repeated ids adding up; matches finite differences of the gather', (t) => {
    const r = rng(40);
    const V = 5, D = 3;
    const ids = Int32Array.of(2, 0, 2, 4, 2);
    const table = rand64(V * D, r);
    const R = rand64(ids.length * D, r);
    const loss = () => {
      let s = 0;
      for (let i = 0; i < ids.length; i++) for (let c = 0; c < D; c++) s += table[ids[i]! * D + c]! * R[i * D + c]!;
      return s;
    };
    const dtable = new Float64Array(V * D).fill(0.25); // existing gradient: added to, not replaced
    K.embeddingBackward(ids, R, D, dtable);
    for (let c = 0; c < D; c++) {
      assert.equal(dtable[2 * D + c], 0.25 + R[0 * D + c]! + R[2 * D + c]! + R[4 * D + c]!);
      assert.equal(dtable[1 * D + c], 0.25); // unused row untouched
    }
    const grad = dtable.map((g) => g - 0.25);
    t.diagnostic(`max FD error ${gradCheck('dtable', table, grad, loss).toExponential(2)}`);
  });

  it('rejects an id outside the table', () => {
    assert.throws(() => K.embeddingBackward(Int32Array.of(3), new Float32Array(2), 2, new Float32Array(6)), /id 3 at row 0/);
  });
});

// ---- accumulate semantics -----------------------------------------------------------------------

describe('accumulate semantics: parameter gradients +=, activation gradients overwritten', () => {
  it('rmsNorm, layerNorm, gated activations and gelu', () => {
    const r = rng(50);
    const rows = 2, cols = 4, n = rows * cols;
    const x = f32(rand64(n, r, 2)), w = f32(rand64(cols, r)), dy = f32(rand64(n, r));
    // existing parameter gradient; parameter gradients in float64 so `pre + fresh` is one exact rounding
    const pre = rand64(cols, r);

    // rmsNorm: fresh (dw from 0, dx from 0) vs (dw pre-filled, dx NaN)
    const rstd = new Float32Array(rows);
    K.rmsNorm(x, w, rows, cols, 1e-5, new Float32Array(n), rstd);
    const dx0 = new Float32Array(n), dw0 = new Float64Array(cols);
    K.rmsNormBackward(x, w, rstd, dy, rows, cols, dx0, dw0);
    const dx1 = new Float32Array(n).fill(NaN), dw1 = pre.slice();
    K.rmsNormBackward(x, w, rstd, dy, rows, cols, dx1, dw1);
    assert.deepEqual(bits(dx1), bits(dx0));
    for (let i = 0; i < cols; i++) assert.equal(dw1[i], pre[i]! + dw0[i]!);
    // and twice is two uses of the weight (a float64 dw, so the sum is exact)
    const once = new Float64Array(cols), twice = new Float64Array(cols);
    K.rmsNormBackward(x, w, rstd, dy, rows, cols, dx1, once);
    K.rmsNormBackward(x, w, rstd, dy, rows, cols, dx1, twice);
    K.rmsNormBackward(x, w, rstd, dy, rows, cols, dx1, twice);
    for (let i = 0; i < cols; i++) assert.equal(twice[i], 2 * once[i]!);

    // layerNorm with bias
    const b = f32(rand64(cols, r));
    const mean = new Float32Array(rows), lrstd = new Float32Array(rows);
    K.layerNorm(x, w, b, rows, cols, 1e-5, new Float32Array(n), mean, lrstd);
    const ldx0 = new Float32Array(n), ldw0 = new Float64Array(cols), ldb0 = new Float64Array(cols);
    K.layerNormBackward(x, w, mean, lrstd, dy, rows, cols, ldx0, ldw0, ldb0);
    const ldx1 = new Float32Array(n).fill(NaN), ldw1 = pre.slice(), ldb1 = pre.slice();
    K.layerNormBackward(x, w, mean, lrstd, dy, rows, cols, ldx1, ldw1, ldb1);
    assert.deepEqual(bits(ldx1), bits(ldx0));
    for (let i = 0; i < cols; i++) {
      assert.equal(ldw1[i], pre[i]! + ldw0[i]!);
      assert.equal(ldb1[i], pre[i]! + ldb0[i]!);
    }

    // activation gradients: NaN-filled outputs come back finite
    const u = f32(rand64(n, r));
    const dg = new Float32Array(n).fill(NaN), du = new Float32Array(n).fill(NaN);
    const finite = (a: F, what: string) => assert.ok(a.every(Number.isFinite), what);
    K.swigluBackward(x, u, dy, dg, du);
    finite(dg, 'swiglu dg');
    finite(du, 'swiglu du');
    dg.fill(NaN);
    du.fill(NaN);
    K.gegluBackward(x, u, dy, dg, du, 'erf');
    finite(dg, 'geglu dg');
    finite(du, 'geglu du');
    dg.fill(NaN);
    K.geluBackward(x, dy, dg, 'tanh');
    finite(dg, 'gelu dx');
  });
});

// ---- AdamW --------------------------------------------------------------------------------------

describe('adamw', () => {
  it('two steps match a hand computation (bias correction, decoupled decay, gradScale)', () => {
    const lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01, gs = 2;
    const p = Float64Array.of(1, -0.5);
    const m = new Float64Array(2);
    const v = new Float64Array(2);

    // step 1, g = (0.5, 0.25) -> scaled (1, 0.5)
    K.adamw(p, Float64Array.of(0.5, 0.25), m, v, 1, lr, b1, b2, eps, wd, gs);
    // m = 0.1 g, v = 0.001 g^2; bias corrections 0.1 and 0.001 give mhat = g, vhat = g^2, so
    // the step is lr (g / (|g| + eps) + wd p0)
    close(m, [0.1, 0.05], 1e-15, 'm1');
    close(v, [0.001, 0.00025], 1e-15, 'v1');
    const p1 = [1 - 0.1 * (1 / (1 + 1e-8) + 0.01 * 1), -0.5 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01 * -0.5)];
    close(p, p1, 1e-15, 'p1');

    // step 2, g = (-0.25, 0.5) -> scaled (-0.5, 1)
    K.adamw(p, Float64Array.of(-0.25, 0.5), m, v, 2, lr, b1, b2, eps, wd, gs);
    // m = 0.9 m1 + 0.1 g; v = 0.999 v1 + 0.001 g^2; corrections 1 - 0.81 = 0.19, 1 - 0.998001 = 0.001999
    const m2 = [0.09 - 0.05, 0.045 + 0.1];
    const v2 = [0.000999 + 0.00025, 0.00024975 + 0.001];
    close(m, m2, 1e-15, 'm2');
    close(v, v2, 1e-15, 'v2');
    const p2 = [0, 1].map((i) => p1[i]! - 0.1 * (m2[i]! / 0.19 / (Math.sqrt(v2[i]! / 0.001999) + 1e-8) + 0.01 * p1[i]!));
    close(p, p2, 1e-14, 'p2');
    // the numbers themselves, for the record: p2[0] = 0.899000001 - 0.1 (0.2105263 / 0.7904541 + 0.00899)
    assert.ok(Math.abs(p[0]! - (0.899000001 - 0.1 * (0.04 / 0.19 / Math.sqrt(0.001249 / 0.001999) + 0.00899000001))) < 1e-9);
  });

  it('f32 buffers agree with the float64 run to f32 rounding', () => {
    const r = rng(60);
    const n = 16;
    const p64 = rand64(n, r), g64 = rand64(n, r);
    const p32 = f32(p64), m32 = new Float32Array(n), v32 = new Float32Array(n);
    const pp = Float64Array.from(p32), mm = new Float64Array(n), vv = new Float64Array(n);
    for (let step = 1; step <= 3; step++) {
      K.adamw(p32, f32(g64), m32, v32, step, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.5);
      K.adamw(pp, Float64Array.from(f32(g64)), mm, vv, step, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.5);
    }
    close(p32, pp, 1e-6, 'p');
  });

  it('rejects step 0 (steps are 1-based)', () => {
    const z = new Float32Array(1);
    assert.throws(() => K.adamw(z, z, z, z, 0, 1, 0.9, 0.999, 1e-8, 0, 1), /1-based/);
  });
});
