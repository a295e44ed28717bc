// native().sgemm against a float64 triple loop, on awkward sizes, padded leading dimensions and
// subarray views, all four transpose combinations, alpha/beta variants (beta = 0 over a
// NaN-filled C), K = 0, on every instruction set this CPU has (the active one, AVX2, and the
// portable fallback), with one and with an odd number of pool threads; and its argument checks.
//
// Error bound: |C - ref| <= 1e-5 * (|alpha| sum_k |a_ik b_kj| + |beta c_ij|) + 1e-30 (f32
// accumulation against f64). Elements of C's buffer outside the M x N block (row padding,
// the parts of the buffer before and after the view) must keep their values.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Array, f32ToF16Array } from '../src/tensor/dtype.ts';
import { native, type NativeCore } from '../src/tensor/native.ts';
import { rng } from './helpers/random.ts';

// The binding's signature (src/tensor/native.ts does not declare it yet).
type Sgemm = (
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
) => void;
const core = native() as NativeCore & { sgemm: Sgemm };
const info = core.info();


/** A view of `n` random floats `offset` elements into a larger buffer, so byteOffset != 0. */
function randView(n: number, offset: number, seed: number): Float32Array {
  const r = rng(seed);
  const buf = new Float32Array(n + offset + 5);
  for (let i = 0; i < buf.length; i++) buf[i] = r();
  return buf.subarray(offset, offset + n);
}

interface Case {
  M: number; N: number; K: number;
  transA: boolean; transB: boolean;
  alpha: number; beta: number;
  pad: number;  // extra elements per stored row of A, B and C
  nanC?: boolean;  // fill C with NaN (only meaningful with beta = 0)
}

function runCase(c: Case, seed: number): void {
  const { M, N, K, transA, transB, alpha, beta, pad } = c;
  // stored shapes: A [M, K] or [K, M]; B [K, N] or [N, K]
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const lda = aCols + pad, ldb = bCols + pad, ldc = N + pad;
  const span = (rows: number, ld: number, cols: number) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
  const A = randView(span(aRows, lda, aCols), 3, seed);
  const B = randView(span(bRows, ldb, bCols), 1, seed + 1);
  const C = randView(span(M, ldc, N) + 4, 2, seed + 2).subarray(0, span(M, ldc, N));
  const whole = new Float32Array(C.buffer, 0, C.buffer.byteLength / 4);
  if (c.nanC) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) C[i * ldc + j] = NaN;
  const before = Float32Array.from(whole);
  const c0 = Float32Array.from(C);
  const a = (i: number, k: number) => (transA ? A[k * lda + i]! : A[i * lda + k]!);
  const b = (k: number, j: number) => (transB ? B[j * ldb + k]! : B[k * ldb + j]!);

  core.sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

  const base = C.byteOffset / 4;
  const inBlock = new Uint8Array(whole.length);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const p = a(i, k) * b(k, j);
        s += p;
        mag += Math.abs(p);
      }
      const prev = beta === 0 ? 0 : beta * c0[i * ldc + j]!;
      const want = alpha * s + prev;
      const got = C[i * ldc + j]!;
      const tol = 1e-5 * (Math.abs(alpha) * mag + Math.abs(prev)) + 1e-30;
      if (!(Math.abs(got - want) <= tol))
        assert.fail(`${JSON.stringify(c)} on ${core.info().isa}: C[${i}, ${j}] = ${got}, want ${want} (tolerance ${tol})`);
      inBlock[base + i * ldc + j] = 1;
    }
  }
  for (let e = 0; e < whole.length; e++)
    if (!inBlock[e] && !Object.is(whole[e], before[e])) assert.fail(`${JSON.stringify(c)}: element ${e - base} of C's buffer outside the block changed`);
}

// Shapes: every size class of the brief on each axis somewhere, tiles with edges in both
// directions, depth crossing the K blocks (512 on AVX-512, 256 elsewhere), and columns
// crossing the N blocks (3072 / 2048). Products from 64^3 up run on the pool's threads.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 33], [7, 1, 65], [33, 65, 7], [65, 33, 257], [257, 65, 33], [7, 257, 1],
  [33, 1, 257], [1, 257, 7], [257, 257, 65], [100, 70, 1100], [3, 3100, 5], [13, 2100, 3],
  // few rows, many columns: the threads split the B panels instead of the rows
  [7, 2000, 40], [13, 3100, 10],
  // packed B of more than one pool job's worth (16 MiB) along K
  [2, 2050, 2100],
];
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
const ISAS = ['avx512', 'avx2', 'portable'].filter((i) => info.available.includes(i)) as ('avx512' | 'avx2' | 'portable')[];

after(() => {
  core.setIsa(info.isa as 'avx512' | 'avx2' | 'portable');
  core.setThreads(info.threads);
});

for (const isa of ISAS) {
  describe(`sgemm on ${isa}${isa === info.isa ? ' (active)' : ''}`, () => {
    it('matches a float64 triple loop: awkward sizes, padded rows, all transposes, beta = 0 over NaN', () => {
      core.setIsa(isa);
      let seed = 1;
      for (const [M, N, K] of SHAPES)
        for (const [transA, transB] of TRANS)
          for (const pad of [0, 3]) runCase({ M, N, K, transA, transB, alpha: 1, beta: 0, pad, nanC: true }, seed++);
    });

    it('alpha and beta variants', () => {
      core.setIsa(isa);
      let seed = 100;
      const ab: [number, number][] = [[0.5, 1], [-2, 0.25], [1, -1], [3, 0], [0, 2], [0, 0]];
      for (const [alpha, beta] of ab)
        for (const [M, N, K] of [[33, 65, 7], [65, 33, 600], [7, 257, 1]] as [number, number, number][])
          for (const [transA, transB] of TRANS) runCase({ M, N, K, transA, transB, alpha, beta, pad: 2, nanC: beta === 0 }, seed++);
    });

    it('K = 0 leaves C = beta * C (zeros over NaN when beta = 0), M or N = 0 touches nothing', () => {
      core.setIsa(isa);
      for (const [transA, transB] of TRANS) {
        runCase({ M: 5, N: 9, K: 0, transA, transB, alpha: 1, beta: 0, pad: 1, nanC: true }, 7);
        runCase({ M: 300, N: 300, K: 0, transA, transB, alpha: 2, beta: 3, pad: 0 }, 8);
        runCase({ M: 0, N: 9, K: 4, transA, transB, alpha: 1, beta: 0, pad: 1 }, 9);
        runCase({ M: 6, N: 0, K: 4, transA, transB, alpha: 1, beta: 0, pad: 1 }, 10);
      }
    });

    it('the same results with 1 and with 3 pool threads', () => {
      core.setIsa(isa);
      try {
        for (const threads of [1, 3]) {
          core.setThreads(threads);
          let seed = 200;
          for (const [M, N, K] of [[257, 65, 33], [7, 2000, 40], [100, 70, 1100], [5, 300, 40]] as [number, number, number][])
            for (const [transA, transB] of TRANS) runCase({ M, N, K, transA, transB, alpha: 1.5, beta: 0.5, pad: 1 }, seed++);
        }
      } finally {
        core.setThreads(info.threads);
      }
    });
  });
}

// sgemmHalf: B in f16 / bf16, widened as its panels are packed. It must equal sgemm on the
// widened B bit for bit (the same panels reach the same microkernel), for both layouts of B,
// edge panels, threads, and values down to f16 subnormals.
for (const isa of ISAS) {
  describe(`sgemmHalf on ${isa}${isa === info.isa ? ' (active)' : ''}`, () => {
    it('equals sgemm on the widened B, bit for bit: f16 and bf16, awkward sizes, both B layouts, 1 and 3 threads', () => {
      core.setIsa(isa);
      try {
        let seed = 500;
        for (const threads of [1, 3]) {
          core.setThreads(threads);
          for (const [M, N, K] of [[1, 7, 33], [33, 65, 7], [65, 33, 257], [257, 65, 33], [7, 257, 1], [100, 70, 1100], [7, 2000, 40], [13, 17, 600]] as [number, number, number][])
            for (const transB of [true, false])
              for (const btype of [1, 2] as const) {
                const r = rng(seed++);
                const pad = 3;
                const [bRows, bCols] = transB ? [N, K] : [K, N];
                const lda = K + 1, ldb = bCols + pad, ldc = N + 2;
                const A = Float32Array.from({ length: (M - 1) * lda + K }, () => r());
                // magnitudes from 1e-7 to 100: f16 subnormals and large values both occur
                const raw = Float32Array.from({ length: (bRows - 1) * ldb + bCols }, () => r() * 10 ** (r() * 4.5 - 2.5));
                const bits = btype === 1 ? f32ToF16Array(raw) : f32ToBf16Array(raw);
                const wide = Float32Array.from(bits, (h) => (btype === 1 ? f16BitsToF32(h) : bf16BitsToF32(h)));
                const want = new Float32Array(M * ldc).fill(0.25), got = new Float32Array(M * ldc).fill(0.25);
                core.sgemm(false, transB, M, N, K, 1.5, A, lda, wide, ldb, 0.5, want, ldc);
                // B given as the bytes of a view 2 bytes into a buffer (as a mapped tensor is)
                const view = new Uint8Array(bits.byteLength + 2);
                view.set(new Uint8Array(bits.buffer), 2);
                core.sgemmHalf(false, transB, M, N, K, 1.5, A, lda, view.subarray(2), btype, ldb, 0.5, got, ldc);
                for (let i = 0; i < want.length; i++)
                  if (!Object.is(got[i], want[i])) assert.fail(`${isa} M ${M} N ${N} K ${K} transB ${transB} btype ${btype} threads ${threads}: C[${i}] = ${got[i]}, sgemm gave ${want[i]}`);
              }
        }
      } finally {
        core.setThreads(info.threads);
      }
    });
  });
}

describe('sgemmHalf argument checks', () => {
  const f = (n: number) => new Float32Array(n);
  const ok = () => [false, true, 4, 5, 6, 1, f(24), 6, new Uint16Array(30), 1, 6, 0, f(20), 5] as unknown[];
  const call = (args: unknown[]) => (core.sgemmHalf as (...a: unknown[]) => void)(...args);
  it('accepts a valid call and names what is wrong in the others', () => {
    call(ok());
    const bad: [number, unknown, RegExp][] = [
      [9, 3, /sgemmHalf: btype must be 1 \(f16\) or 2 \(bf16\), got 3/],
      [8, new Uint16Array(29), /sgemmHalf: B has 29 elements, needs 30/],
      [8, new Uint8Array(61).subarray(1), /sgemmHalf: B must be 2-byte aligned/],
    ];
    for (const [i, v, re] of bad) {
      const args = ok();
      args[i] = v;
      assert.throws(() => call(args), re);
    }
    assert.throws(() => call(ok().slice(0, 13)), /sgemmHalf: expects 14 arguments/);
    const buf = new ArrayBuffer(400);
    const o = ok();
    o[8] = new Uint16Array(buf, 0, 30);
    o[12] = new Float32Array(buf, 40, 20);
    assert.throws(() => call(o), /sgemmHalf: C overlaps B/);
  });
});

describe('sgemm argument checks', () => {
  const f = (n: number) => new Float32Array(n);
  // a valid call: M = 4, N = 5, K = 6, no transposes
  const ok = () => [false, false, 4, 5, 6, 1, f(24), 6, f(30), 5, 0, f(20), 5] as Parameters<Sgemm>;
  const call = (args: unknown[]) => (core.sgemm as (...a: unknown[]) => void)(...args);

  it('accepts the valid call the cases below break', () => {
    call(ok());
  });

  it('a buffer shorter than the elements touched throws a RangeError naming sgemm and the buffer', () => {
    const cases: [number, Float32Array, RegExp][] = [
      [6, f(23), /^sgemm: A has 23 elements, needs 24/],
      [8, f(29), /^sgemm: B has 29 elements, needs 30/],
      [11, f(19), /^sgemm: C has 19 elements, needs 20/],
    ];
    for (const [i, buf, re] of cases) {
      const args: unknown[] = ok();
      args[i] = buf;
      assert.throws(() => call(args), (e: Error) => e instanceof RangeError && re.test(e.message));
    }
    // transposed: A stored [K, M] = [6, 4] with lda 4 needs 24; B stored [N, K] = [5, 6] needs 30
    const t: unknown[] = ok();
    t[0] = true; t[7] = 4; t[6] = f(23);
    assert.throws(() => call(t), /sgemm: A has 23 elements, needs 24/);
    const u: unknown[] = ok();
    u[1] = true; u[9] = 6; u[8] = f(29);
    assert.throws(() => call(u), /sgemm: B has 29 elements, needs 30/);
    // padded rows: C with ldc 7 needs 3 * 7 + 5 = 26
    const v: unknown[] = ok();
    v[12] = 7; v[11] = f(25);
    assert.throws(() => call(v), /sgemm: C has 25 elements, needs 26/);
  });

  it('a subarray view is checked by its own length, not its buffer', () => {
    const args: unknown[] = ok();
    args[6] = f(100).subarray(80); // 20 elements of a 100-element buffer
    assert.throws(() => call(args), /sgemm: A has 20 elements, needs 24/);
  });

  it('leading dimensions shorter than a row throw', () => {
    const args: unknown[] = ok();
    args[7] = 5;
    assert.throws(() => call(args), (e: Error) => e instanceof RangeError && /^sgemm: lda \(5\) is less than the 6 elements/.test(e.message));
    const c: unknown[] = ok();
    c[12] = 4;
    assert.throws(() => call(c), /sgemm: ldc \(4\) is less than the 5 elements/);
  });

  it('wrong types, negative or fractional sizes and a wrong argument count throw', () => {
    const bad: [number, unknown, RegExp, ErrorConstructor][] = [
      [0, 1, /^sgemm: transA must be a boolean/, TypeError],
      [1, 'no', /^sgemm: transB must be a boolean/, TypeError],
      [2, -1, /^sgemm: M must be a non-negative integer/, RangeError],
      [4, 2.5, /^sgemm: K must be a non-negative integer/, RangeError],
      [5, '1', /^sgemm: alpha must be a number/, TypeError],
      [6, new Float64Array(24), /^sgemm: A must be a Float32Array/, TypeError],
      [8, [1, 2, 3], /^sgemm: B must be a Float32Array/, TypeError],
      [11, null, /^sgemm: C must be a Float32Array/, TypeError],
    ];
    for (const [i, v, re, type] of bad) {
      const args: unknown[] = ok();
      args[i] = v;
      assert.throws(() => call(args), (e: Error) => e instanceof type && re.test(e.message), `argument ${i} = ${String(v)}`);
    }
    assert.throws(() => call(ok().slice(0, 12)), /sgemm: expects 13 arguments/);
  });

  it('C overlapping A or B throws', () => {
    const buf = f(100);
    const args: unknown[] = ok();
    args[6] = buf.subarray(0, 24);
    args[11] = buf.subarray(20, 40);
    assert.throws(() => call(args), /sgemm: C overlaps A/);
    const b: unknown[] = ok();
    b[8] = buf.subarray(50, 80);
    b[11] = buf.subarray(75, 95);
    assert.throws(() => call(b), /sgemm: C overlaps B/);
  });
});
