// The cpu training kernels (native core) against the reference kernels (f64 oracle), on every
// instruction set the machine has, with awkward sizes (1, 7, 33, 257: vector tails, one row,
// more rows than tasks). The oracle runs on float64 copies of the same f32 inputs, so each
// bound below is the cpu kernel's own f32 error.
//
// Error bounds (|cpu - ref| <= atol * max|ref| + rtol * |ref|, per array):
//   axpy, scaleInPlace, adamw m/v:               rtol 1e-6 (one or two f32 roundings)
//   sumSquares:                                  rtol 1e-6 (f32 blocks of 8 vectors, f64 across)
//   norms fwd/bwd, activations fwd/bwd, rope:    atol 2e-6, rtol 1e-5 (the polynomial exp is
//                                                within 2 ulp; row sums add cols terms in f32)
//   attention out/lse/dq/dk/dv:                  atol 2e-6 (measured <= 6e-7 on D = 5..64, T <= 150;
//                                                dq/dk of max(max|ref|, 1): they cancel)
//   crossEntropy loss:                           rtol 1e-6; dlogits atol 1e-6 of gradScale
//   adamw p:                                     atol 1e-6 of max|p|
//   embeddingBackward:                           exact (each element adds the same f32 values in row order)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import type { RopeOptions } from '../src/tensor/backend.ts';
import { CpuTrainKernels, trainCore } from '../src/tensor/train-cpu.ts';
import type { AttnTrainOptions, Gelu } from '../src/tensor/train-kernels.ts';
import { RefTrainKernels } from '../src/tensor/train-ref.ts';

const core = trainCore();
const cpu = new CpuTrainKernels();
const ref = new RefTrainKernels();

// ---- data ---------------------------------------------------------------------------------------

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
let rand = rng(1);
/** n uniform values in [-scale, scale). */
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

/**
 * |got - want| <= atol * scale + rtol * |want| everywhere (so got is finite). scale defaults to
 * max|want|; results that cancel (a difference of larger terms) pass the terms' size instead.
 */
function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol = 0, scale = maxAbs(want)): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!(Math.abs(g - w) <= atol * scale + rtol * Math.abs(w))) {
      assert.fail(`${what}: [${i}] got ${g}, want ${w} (|diff| ${Math.abs(g - w).toExponential(3)}, max|want| ${scale.toExponential(3)})`);
    }
  }
}

function closeNum(what: string, got: number, want: number, rtol: number, atol = 0): void {
  assert.ok(Math.abs(got - want) <= rtol * Math.abs(want) + atol, `${what}: got ${got}, want ${want}`);
}

/** max over r, c of |rstd[r] w[c] dy[r, c]|: the size of the leading term of a norm's dx. */
function termScale(rstd: Float32Array, w: Float32Array, dy: Float32Array, rows: number, cols: number): number {
  let m = 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(rstd[r]! * w[c]! * dy[r * cols + c]!));
  return m;
}

const ROWS = [1, 7, 33];
const COLS = [1, 7, 33, 257];
const LENS = [1, 7, 33, 257, 4099];

// ---- attention cases ----------------------------------------------------------------------------

interface AttnCase {
  name: string;
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  opts: AttnTrainOptions;
  /** document id of position t */
  seg: (t: number) => number;
  qScale?: number;
}

const oneDoc = () => 0;
const docs = (t: number) => (t < 12 ? 0 : t < 32 ? 1 : 2);
// document 0 comes back after document 1: its keys are visible across the gap
const holes = (t: number) => (t < 8 ? 0 : t < 14 ? 1 : t < 24 ? 0 : 2);

function attnCases(): AttnCase[] {
  const cs: AttnCase[] = [];
  for (const D of [5, 64]) {
    const base = { B: 2, T: 37, Hq: 6, Hkv: 2, D };
    const scale = 1 / Math.sqrt(D);
    cs.push({ name: `causal D=${D}`, ...base, opts: { scale, softCap: 0, window: 0 }, seg: oneDoc });
    cs.push({ name: `segments D=${D}`, ...base, opts: { scale, softCap: 0, window: 0 }, seg: docs });
    cs.push({ name: `returning segment ids D=${D}`, ...base, opts: { scale, softCap: 0, window: 0 }, seg: holes });
    cs.push({ name: `window 9 + segments D=${D}`, ...base, opts: { scale, softCap: 0, window: 9 }, seg: docs });
    cs.push({ name: `soft-cap 2.5 D=${D}`, ...base, opts: { scale, softCap: 2.5, window: 0 }, seg: docs, qScale: 4 });
  }
  // long enough (T > 64) that the backward splits into key-block and query-block tasks when
  // (sequence, kv head) pairs are fewer than twice the threads
  cs.push({ name: 'split backward T=150', B: 1, T: 150, Hq: 2, Hkv: 1, D: 16, opts: { scale: 0.25, softCap: 0, window: 0 }, seg: oneDoc });
  cs.push({ name: 'split backward T=150, window 40 + holes', B: 1, T: 150, Hq: 3, Hkv: 1, D: 24, opts: { scale: 0.2, softCap: 0, window: 40 }, seg: (t) => [0, 1, 0, 2][Math.floor(t / 37)]! });
  return cs;
}

function attnInputs(c: AttnCase) {
  const { B, T, Hq, Hkv, D } = c;
  const q = randf(B * T * Hq * D, c.qScale ?? 1), k = randf(B * T * Hkv * D), v = randf(B * T * Hkv * D), dout = randf(B * T * Hq * D);
  const seg = new Int32Array(B * T).map((_, i) => c.seg(i % T) + 10 * Math.floor(i / T));
  return { q, k, v, dout, seg };
}

function checkAttention(c: AttnCase): void {
  const { B, T, Hq, Hkv, D, opts } = c;
  const { q, k, v, dout, seg } = attnInputs(c);
  const out = new Float32Array(B * T * Hq * D), lse = new Float32Array(B * T * Hq);
  cpu.attention(q, k, v, seg, B, T, Hq, Hkv, D, opts, out, lse);
  const rOut = new Float64Array(out.length), rLse = new Float64Array(lse.length);
  ref.attention(f64(q), f64(k), f64(v), seg, B, T, Hq, Hkv, D, opts, rOut, rLse);
  close(`${c.name}: out`, out, rOut, 2e-6);
  close(`${c.name}: lse`, lse, rLse, 2e-6);
  // backward from the cpu forward's out and lse (both implementations get the same ones)
  const dq = new Float32Array(q.length).fill(NaN), dk = new Float32Array(k.length).fill(NaN), dv = new Float32Array(v.length).fill(NaN);
  cpu.attentionBackward(q, k, v, seg, out, lse, dout, B, T, Hq, Hkv, D, opts, dq, dk, dv);
  const rdq = new Float64Array(q.length), rdk = new Float64Array(k.length), rdv = new Float64Array(v.length);
  ref.attentionBackward(f64(q), f64(k), f64(v), seg, f64(out), f64(lse), f64(dout), B, T, Hq, Hkv, D, opts, rdq, rdk, rdv);
  // dq, dk: p (dP - delta) cancels (exactly 0 for a row that sees one key): the inputs are
  // O(1), so the bound is relative to max(max|want|, 1)
  close(`${c.name}: dq`, dq, rdq, 2e-6, 0, Math.max(maxAbs(rdq), 1));
  close(`${c.name}: dk`, dk, rdk, 2e-6, 0, Math.max(maxAbs(rdk), 1));
  close(`${c.name}: dv`, dv, rdv, 2e-6);
}

// ---- the suite, once per instruction set -----------------------------------------------------

const available = core.info().available;
const initialIsa = core.info().isa;

for (const isa of available) {
  describe(`train kernels (cpu, ${isa}) vs ref`, () => {
    before(() => {
      core.setIsa(isa as 'avx512' | 'avx2' | 'portable');
      rand = rng(isa.length * 7919);
    });
    after(() => core.setIsa(initialIsa as 'avx512'));

    it('axpy, scaleInPlace, sumSquares', () => {
      for (const n of LENS) {
        const x = randf(n), y = randf(n);
        const ry = f64(y);
        cpu.axpy(-0.37, x, y);
        ref.axpy(-0.37, f64(x), ry);
        close(`axpy n=${n}`, y, ry, 1e-6, 1e-6); // y + a x may cancel
        const s = randf(n, 3);
        const rs = f64(s);
        cpu.scaleInPlace(s, 1.7);
        ref.scaleInPlace(rs, 1.7);
        close(`scale n=${n}`, s, rs, 0, 1e-6);
        closeNum(`sumSquares n=${n}`, cpu.sumSquares(s), ref.sumSquares(f64(s)), 1e-6);
      }
      // a long vector: many chunks and blocks, summed in f64 across them
      const big = randf(1_000_003, 2);
      closeNum('sumSquares n=1e6', cpu.sumSquares(big), ref.sumSquares(f64(big)), 1e-6);
      assert.equal(cpu.sumSquares(new Float32Array(0)), 0);
    });

    it('rmsNorm and its backward (dx overwritten, dw accumulated)', () => {
      for (const rows of ROWS) {
        for (const cols of COLS) {
          const x = randf(rows * cols, 2), w = randf(cols), dy = randf(rows * cols), eps = 1e-5;
          const out = new Float32Array(rows * cols), rstd = new Float32Array(rows);
          const rOut = new Float64Array(rows * cols), rRstd = new Float64Array(rows);
          cpu.rmsNorm(x, w, rows, cols, eps, out, rstd);
          ref.rmsNorm(f64(x), f64(w), rows, cols, eps, rOut, rRstd);
          const tag = `rmsNorm ${rows}x${cols}`;
          close(`${tag} out`, out, rOut, 2e-6, 1e-5);
          close(`${tag} rstd`, rstd, rRstd, 0, 1e-5);
          const dx = new Float32Array(rows * cols).fill(NaN), dw = randf(cols);
          const rdx = new Float64Array(rows * cols), rdw = f64(dw);
          cpu.rmsNormBackward(x, w, rstd, dy, rows, cols, dx, dw);
          ref.rmsNormBackward(f64(x), f64(w), f64(rstd), f64(dy), rows, cols, rdx, rdw);
          // dx = r w dy - (a correction as large): the size of r w dy is the scale
          close(`${tag} dx`, dx, rdx, 2e-6, 1e-5, termScale(rstd, w, dy, rows, cols));
          close(`${tag} dw`, dw, rdw, 2e-6, 1e-5);
        }
      }
    });

    it('layerNorm and its backward, with and without bias', () => {
      for (const rows of ROWS) {
        for (const cols of COLS) {
          for (const bias of [true, false]) {
            const x = randf(rows * cols, 2).map((v) => v + 0.5), w = randf(cols), b = bias ? randf(cols) : null, dy = randf(rows * cols);
            const eps = 1e-5, n = rows * cols;
            const out = new Float32Array(n), mean = new Float32Array(rows), rstd = new Float32Array(rows);
            const rOut = new Float64Array(n), rMean = new Float64Array(rows), rRstd = new Float64Array(rows);
            cpu.layerNorm(x, w, b, rows, cols, eps, out, mean, rstd);
            ref.layerNorm(f64(x), f64(w), b ? f64(b) : null, rows, cols, eps, rOut, rMean, rRstd);
            const tag = `layerNorm ${rows}x${cols}${bias ? ' +b' : ''}`;
            close(`${tag} out`, out, rOut, 2e-6, 1e-5);
            close(`${tag} mean`, mean, rMean, 2e-6, 1e-5);
            // one column: variance 0, rstd = 1/sqrt(eps), where f32 rounding of the mean shows most
            close(`${tag} rstd`, rstd, rRstd, 0, cols === 1 ? 1e-3 : 1e-5);
            const dx = new Float32Array(n).fill(NaN), dw = randf(cols), db = bias ? randf(cols) : null;
            const rdx = new Float64Array(n), rdw = f64(dw), rdb = db ? f64(db) : null;
            cpu.layerNormBackward(x, w, mean, rstd, dy, rows, cols, dx, dw, db);
            ref.layerNormBackward(f64(x), f64(w), f64(mean), f64(rstd), f64(dy), rows, cols, rdx, rdw, rdb);
            close(`${tag} dx`, dx, rdx, 2e-6, 1e-5, termScale(rstd, w, dy, rows, cols));
            close(`${tag} dw`, dw, rdw, 2e-6, 1e-5);
            if (db) close(`${tag} db`, db, rdb!, 2e-6, 1e-5);
          }
        }
      }
    });

    it('swiglu, geglu and gelu (tanh and erf) and their backwards', () => {
      for (const n of LENS) {
        // wide inputs, with the saturated tails exercised
        const g = randf(n, 6), u = randf(n), dy = randf(n);
        if (n > 4) g.set([0, -30, 30, -90], 0);
        const tag = `n=${n}`;
        // gelu(x) = x - x / (exp(2u) + 1) (the inference formula) cancels for x << 0: errors are
        // relative to the inputs' size, not to the tiny result
        const sG = maxAbs(g), sU = maxAbs(u), sDy = maxAbs(dy);
        const out = new Float32Array(n), rOut = new Float64Array(n);
        cpu.swiglu(g, u, out);
        ref.swiglu(f64(g), f64(u), rOut);
        close(`swiglu ${tag}`, out, rOut, 2e-6, 1e-5, sG * sU);
        const dg = new Float32Array(n), du = new Float32Array(n), rdg = new Float64Array(n), rdu = new Float64Array(n);
        cpu.swigluBackward(g, u, dy, dg, du);
        ref.swigluBackward(f64(g), f64(u), f64(dy), rdg, rdu);
        close(`swigluBackward dg ${tag}`, dg, rdg, 2e-6, 1e-5, sDy * sU);
        close(`swigluBackward du ${tag}`, du, rdu, 2e-6, 1e-5, sDy * sG);
        for (const approx of ['tanh', 'erf'] as Gelu[]) {
          cpu.geglu(g, u, out, approx);
          ref.geglu(f64(g), f64(u), rOut, approx);
          close(`geglu ${approx} ${tag}`, out, rOut, 2e-6, 1e-5, sG * sU);
          cpu.gegluBackward(g, u, dy, dg, du, approx);
          ref.gegluBackward(f64(g), f64(u), f64(dy), rdg, rdu, approx);
          close(`gegluBackward ${approx} dg ${tag}`, dg, rdg, 2e-6, 1e-5, sDy * sU);
          close(`gegluBackward ${approx} du ${tag}`, du, rdu, 2e-6, 1e-5, sDy * sG);
          cpu.gelu(g, out, approx);
          ref.gelu(f64(g), rOut, approx);
          close(`gelu ${approx} ${tag}`, out, rOut, 2e-6, 1e-5, sG);
          cpu.geluBackward(g, dy, dg, approx);
          ref.geluBackward(f64(g), f64(dy), rdg, approx);
          close(`geluBackward ${approx} ${tag}`, dg, rdg, 2e-6, 1e-5, sDy);
        }
      }
    });

    it('rope and its inverse (layouts, partial rotary dims, scalings)', () => {
      const optsList: RopeOptions[] = [
        { layout: 'interleaved', theta: 10000 },
        { layout: 'half', theta: 10000 },
        { layout: 'half', theta: 500000, rotaryDim: 6, scaling: { type: 'linear', factor: 4 } },
        { layout: 'interleaved', theta: 500000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 } },
        // positions below 100 the short factors, from 100 on the long ones; cos/sin scaled by 1.2
        { layout: 'half', theta: 10000, rotaryDim: 8, scaling: { type: 'longrope', shortFactor: [1, 1.5, 2, 3], longFactor: [1, 4, 9, 20], originalMaxPosition: 100, attnFactor: 1.2 } },
      ];
      for (const opts of optsList) {
        for (const D of [8, 10]) {
          const rows = 33, H = 3;
          // positions past the row count (angles per row) and repeating ones (a table per position)
          const positions = Int32Array.from({ length: rows }, (_, i) => (D === 8 ? (i * 37) % 3000 : i % 5));
          const x0 = randf(rows * H * D);
          for (const inverse of [false, true]) {
            const x = x0.slice(), rx = f64(x0);
            cpu.rope(x, rows, H, D, positions, opts, inverse);
            ref.rope(rx, rows, H, D, positions, opts, inverse);
            close(`rope ${opts.layout} D=${D} rd=${opts.rotaryDim ?? D} ${opts.scaling?.type ?? ''} inverse=${inverse}`, x, rx, 2e-6, 1e-5);
          }
          // the inverse undoes the forward (the rotation is orthogonal; longrope's is scaled by the attention factor m, so m^2)
          const x = x0.slice();
          cpu.rope(x, rows, H, D, positions, opts, false);
          cpu.rope(x, rows, H, D, positions, opts, true);
          const m2 = opts.scaling?.type === 'longrope' ? opts.scaling.attnFactor ** 2 : 1;
          close(`rope round trip ${opts.layout} D=${D}`, x, x0.map((v, i) => (i % D < (opts.rotaryDim ?? D) ? v * m2 : v)), 1e-6);
        }
      }
    });

    it('attention forward (lse) and backward: GQA, segments, window, soft-cap, head dims 5 and 64', () => {
      const threads = core.info().threads;
      try {
        // one thread: (b, kv head) tasks for the B=2 cases, key/query-block split for B=1, T=150;
        // all threads: the split wherever pairs are fewer than twice the threads
        for (const n of threads > 1 ? [1, threads] : [1]) {
          core.setThreads(n);
          for (const c of attnCases()) checkAttention(c);
        }
      } finally {
        core.setThreads(threads);
      }
    });

    it('degenerate shapes: one token, window 1, an empty head dim, nothing at all', () => {
      for (const [B, T, Hq, Hkv, D, window] of [[3, 1, 2, 1, 8, 0], [2, 20, 4, 2, 16, 1], [2, 5, 2, 2, 0, 0]]) {
        checkAttention({ name: `B${B} T${T} D${D} window ${window}`, B, T, Hq, Hkv, D, opts: { scale: 0.3, softCap: 0, window }, seg: oneDoc });
      }
      const e = new Float32Array(0);
      cpu.attention(e, e, e, new Int32Array(0), 0, 16, 2, 1, 8, { scale: 1, softCap: 0, window: 0 }, e, e);
      cpu.attentionBackward(e, e, e, new Int32Array(0), e, e, e, 0, 16, 2, 1, 8, { scale: 1, softCap: 0, window: 0 }, e, e, e);
      cpu.rmsNorm(e, new Float32Array(4), 0, 4, 1e-5, e, e);
      const dw = Float32Array.of(1, 2, 3, 4);
      cpu.rmsNormBackward(e, dw, e, e, 0, 4, e, dw);
      assert.deepEqual(dw, Float32Array.of(1, 2, 3, 4));
      assert.equal(cpu.crossEntropy(e, 0, 10, new Int32Array(0), 0, 1, e), 0);
      cpu.embeddingBackward(new Int32Array(0), e, 4, new Float32Array(8));
      cpu.adamw(e, e, e, e, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 1);
    });

    it('crossEntropy: soft-cap, ignored rows, gradScale, dlogits aliasing logits, a 50k vocabulary', () => {
      const cases: [number, number][] = [];
      for (const rows of ROWS) for (const V of COLS) cases.push([rows, V]);
      cases.push([2, 50257]);
      for (const [rows, V] of cases) {
        for (const cap of [0, 30]) {
          for (const alias of [false, true]) {
            const logits = randf(rows * V, cap ? 60 : 8);
            let zmax = 0; // (before the aliased call overwrites the logits)
            for (const z of logits) zmax = Math.max(zmax, Math.abs(z));
            const targets = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? -1 : Math.floor(rand() * V)));
            const gs = 0.37;
            const rd = new Float64Array(rows * V);
            const want = ref.crossEntropy(f64(logits), rows, V, targets, cap, gs, rd);
            const d = alias ? logits : new Float32Array(rows * V).fill(NaN);
            const got = cpu.crossEntropy(logits, rows, V, targets, cap, gs, d);
            const tag = `crossEntropy ${rows}x${V} cap=${cap}${alias ? ' aliased' : ''}`;
            // the soft-cap's tanh is within 3e-7 of tanh: |dz| <= cap 3e-7 per logit, twice per row;
            // and a row's loss, logsumexp(z) - z_t, is a difference of f32 values as large as
            // max |z|: absolute rounding of ~1e-7 max |z| however small the loss (a 1x7 row whose
            // loss is 0.0146 differed by 5.3e-8 on AVX-512's exp)
            const counted = targets.filter((t) => t >= 0).length;
            closeNum(`${tag} loss`, got, want, 1e-6, counted * (cap || zmax) * 1e-6);
            close(`${tag} dlogits`, d, rd, 1e-6, 1e-5, gs);
          }
        }
      }
    });

    it('embeddingBackward: repeated ids add up, exactly', () => {
      for (const D of COLS) {
        const vocab = 11;
        const ids = Int32Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 3 : Math.floor(rand() * vocab)));
        const dy = randf(ids.length * D), table = randf(vocab * D), rtable = table.slice();
        cpu.embeddingBackward(ids, dy, D, table);
        ref.embeddingBackward(ids, dy, D, rtable);
        assert.deepEqual(table, rtable, `embeddingBackward D=${D}`);
      }
    });

    it('adamw: bias correction, weight decay, gradScale', () => {
      for (const n of LENS) {
        for (const step of [1, 10]) {
          const p = randf(n), g = randf(n, 0.1), m = randf(n, 0.01), v = randf(n, 0.01).map(Math.abs);
          const rp = f64(p), rm = f64(m), rv = f64(v);
          cpu.adamw(p, g, m, v, step, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.7);
          ref.adamw(rp, f64(g), rm, rv, step, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.7);
          const tag = `adamw n=${n} step=${step}`;
          close(`${tag} m`, m, rm, 1e-6, 1e-6); // b1 m + (1 - b1) g may cancel
          close(`${tag} v`, v, rv, 0, 1e-5);
          close(`${tag} p`, p, rp, 1e-6);
        }
      }
    });

    // Elementwise ops run flat here and per row there, and the scalar tail of a row rounds
    // differently from the vector body: with whole vectors per row both take the vector path.
    it('forward ops equal the inference ops of the same ISA, bit for bit', () => {
      const rows = 7, cols = 64;
      const x = randf(rows * cols, 4), w = randf(cols), u = randf(rows * cols);
      const a = new Float32Array(rows * cols), b = new Float32Array(rows * cols);
      cpu.rmsNorm(x, w, rows, cols, 1e-6, a, new Float32Array(rows));
      core.norm(x, cols, w, null, 1e-6, b, cols, rows, cols, false);
      assert.deepEqual(a, b, 'rmsNorm');
      const bias = randf(cols);
      cpu.layerNorm(x, w, bias, rows, cols, 1e-6, a, new Float32Array(rows), new Float32Array(rows));
      core.norm(x, cols, w, bias, 1e-6, b, cols, rows, cols, true);
      assert.deepEqual(a, b, 'layerNorm');
      const backend = cpuBackend();
      const T2 = (d: Float32Array) => Tensor.from(d, [rows, cols]);
      const ob = Tensor.zeros([rows, cols]);
      cpu.swiglu(x, u, a);
      backend.swiglu(T2(x), T2(u), ob);
      assert.deepEqual(a, ob.f32(), 'swiglu');
      // (erf: the inference op calls libm's erff, the training kernels a vectorized approximation)
      cpu.geglu(x, u, a, 'tanh');
      backend.geglu(T2(x), T2(u), ob, 'tanh');
      assert.deepEqual(a, ob.f32(), 'geglu tanh');
      cpu.gelu(x, a, 'tanh');
      backend.gelu(T2(x), ob, 'tanh');
      assert.deepEqual(a, ob.f32(), 'gelu tanh');
      const H = 3, D = 16, opts: RopeOptions = { layout: 'half', theta: 10000, scaling: { type: 'linear', factor: 2 } };
      // distinct positions (angles per row) and repeated ones (a table per position)
      for (const positions of [Int32Array.from({ length: rows }, (_, i) => i * 13), Int32Array.from({ length: rows }, (_, i) => i % 3)]) {
        for (const layout of ['half', 'interleaved'] as const) {
          const r = randf(rows * H * D), r2 = Tensor.from(r, [rows, H, D]);
          cpu.rope(r, rows, H, D, positions, { ...opts, layout }, false);
          backend.rope(r2, positions, { ...opts, layout });
          assert.deepEqual(r, r2.f32(), `rope ${layout} positions ${positions.join(',')}`);
        }
      }
    });
  });
}

describe('train kernels (cpu): determinism and errors', () => {
  it('results do not depend on the thread count (fixed chunks, fixed reduction order)', () => {
    const threads = core.info().threads;
    const run = () => {
      rand = rng(99);
      const rows = 300, cols = 257;
      const x = randf(rows * cols), w = randf(cols), dy = randf(rows * cols), rstd = randf(rows).map((v) => 1 + Math.abs(v));
      const dx = new Float32Array(rows * cols), dw = new Float32Array(cols), db = new Float32Array(cols), mean = randf(rows);
      cpu.rmsNormBackward(x, w, rstd, dy, rows, cols, dx, dw);
      cpu.layerNormBackward(x, w, mean, rstd, dy, rows, cols, dx, dw, db);
      const big = randf(300_001);
      const ss = cpu.sumSquares(big);
      const V = 1000, logits = randf(64 * V, 5), targets = Int32Array.from({ length: 64 }, (_, i) => (i * 37) % V);
      const loss = cpu.crossEntropy(logits, 64, V, targets, 0, 1, logits);
      // B=2, Hkv=1, T=150: (b, kv head) tasks on one thread, the key/query-block split on more
      const c: AttnCase = { name: 'det', B: 2, T: 150, Hq: 2, Hkv: 1, D: 32, opts: { scale: 0.2, softCap: 0, window: 0 }, seg: docs };
      const { q, k, v, dout, seg } = attnInputs(c);
      const out = new Float32Array(q.length), lse = new Float32Array(2 * 150 * 2);
      cpu.attention(q, k, v, seg, 2, 150, 2, 1, 32, c.opts, out, lse);
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      cpu.attentionBackward(q, k, v, seg, out, lse, dout, 2, 150, 2, 1, 32, c.opts, dq, dk, dv);
      return { dx, dw, db, ss, loss, logits, out, lse, dq, dk, dv };
    };
    try {
      core.setThreads(1);
      const one = run();
      core.setThreads(Math.max(3, threads));
      const many = run();
      assert.deepEqual(one, many);
    } finally {
      core.setThreads(threads);
    }
  });

  it('SLIPSTREAM_NO_SIMD=1 runs the portable training kernels', () => {
    // a small attention + swiglu whose bits differ between the portable and the vector kernels
    const script = `
      import { CpuTrainKernels, trainCore } from './src/tensor/train-cpu.ts';
      const k = new CpuTrainKernels();
      const f = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s));
      const q = f(2 * 40 * 2 * 16, 0.37), kk = f(2 * 40 * 16, 0.11), v = f(2 * 40 * 16, 0.23);
      const out = new Float32Array(q.length), lse = new Float32Array(2 * 40 * 2), g = new Float32Array(64);
      k.attention(q, kk, v, new Int32Array(80), 2, 40, 2, 1, 16, { scale: 0.3, softCap: 0, window: 0 }, out, lse);
      k.swiglu(f(64, 0.7), f(64, 0.3), g);
      console.log(JSON.stringify({ isa: trainCore().info().isa, bits: [...new Uint32Array(out.buffer), ...new Uint32Array(g.buffer)] }));
    `;
    const run = (env: Record<string, string>) =>
      JSON.parse(
        execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
          cwd: join(import.meta.dirname, '..'),
          env: { ...process.env, SLIPSTREAM_NO_SIMD: '', SLIPSTREAM_ISA: '', ...env },
          encoding: 'utf8',
        }).trim().split('\n').pop()!,
      ) as { isa: string; bits: number[] };
    const portable = run({ SLIPSTREAM_NO_SIMD: '1' });
    assert.equal(portable.isa, 'portable');
    assert.deepEqual(run({ SLIPSTREAM_ISA: 'portable' }).bits, portable.bits);
    const best = run({});
    assert.equal(best.isa, available[0]);
    if (best.isa !== 'portable') {
      assert.notDeepEqual(best.bits, portable.bits, 'the vector kernels should round differently (else this test shows nothing)');
    }
  });

  it('gemm (the native sgemm) against ref', () => {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const [M, N, K] of [[1, 1, 1], [7, 33, 5], [33, 7, 257], [65, 130, 67]]) {
        const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        const A = randf((ta ? K : M) * lda), B = randf((tb ? N : K) * ldb), C = randf(M * ldc);
        const rC = f64(C);
        cpu.gemm(ta, tb, M, N, K, 0.5, A, lda, B, ldb, 0.25, C, ldc);
        ref.gemm(ta, tb, M, N, K, 0.5, f64(A), lda, f64(B), ldb, 0.25, rC, ldc);
        close(`gemm ${ta} ${tb} ${M}x${N}x${K}`, C, rC, 1e-6 * Math.sqrt(K), 1e-5);
      }
    }
  });

  it('a buffer too short, a bad id or a bad option throws an error naming the op', () => {
    const f = (n: number) => new Float32Array(n);
    const opts = { scale: 1, softCap: 0, window: 0 };
    const seg = new Int32Array(8);
    const cases: [RegExp, () => unknown][] = [
      [/^axpy: x, y must all have the same length/, () => cpu.axpy(1, f(3), f(4))],
      [/^axpy: y has 3 elements, needs 4/, () => core.trainAxpy(1, f(4), f(3), 4)],
      [/^rmsNorm: rstd has 1 elements, needs 2/, () => cpu.rmsNorm(f(8), f(4), 2, 4, 1e-5, f(8), f(1))],
      [/^rmsNormBackward: dw has 3 elements, needs 4/, () => cpu.rmsNormBackward(f(8), f(4), f(2), f(8), 2, 4, f(8), f(3))],
      [/^layerNorm: b has 2 elements, needs 4/, () => cpu.layerNorm(f(8), f(4), f(2), 2, 4, 1e-5, f(8), f(2), f(2))],
      [/^layerNormBackward: db has 3 elements, needs 4/, () => cpu.layerNormBackward(f(8), f(4), f(2), f(2), f(8), 2, 4, f(8), f(4), f(3))],
      [/^swiglu: g, u, out must all have the same length/, () => cpu.swiglu(f(4), f(4), f(3))],
      [/^gegluBackward: g has 3 elements, needs 4/, () => core.trainGluBackward(1, f(3), f(4), f(4), f(4), f(4), 4)],
      [/^gelu: unknown GELU approximation 'fast'/, () => cpu.gelu(f(4), f(4), 'fast' as Gelu)],
      [/^geluBackward: x, dy, dx must all have the same length/, () => cpu.geluBackward(f(4), f(4), f(5), 'tanh')],
      [/^rope: positions has 1 elements, needs 2/, () => cpu.rope(f(16), 2, 2, 4, new Int32Array(1), { layout: 'half', theta: 1e4 }, false)],
      [/^rope: x has 15 elements, needs 16/, () => cpu.rope(f(15), 2, 2, 4, new Int32Array(2), { layout: 'half', theta: 1e4 }, true)],
      [/^rope: rotaryDim 3 must be even/, () => cpu.rope(f(16), 2, 2, 4, new Int32Array(2), { layout: 'half', theta: 1e4, rotaryDim: 3 }, false)],
      [/^rope: position -1 at index 1 is negative/, () => cpu.rope(f(16), 2, 2, 4, Int32Array.of(0, -1), { layout: 'half', theta: 1e4 }, false)],
      [/^attention: lse has 15 elements, needs 16/, () => cpu.attention(f(64), f(32), f(32), seg, 2, 4, 2, 1, 4, opts, f(64), f(15))],
      [/^attention: k has 31 elements, needs 32/, () => cpu.attention(f(64), f(31), f(32), seg, 2, 4, 2, 1, 4, opts, f(64), f(16))],
      [/^attention: seg has 7 elements, needs 8/, () => cpu.attention(f(64), f(32), f(32), new Int32Array(7), 2, 4, 2, 1, 4, opts, f(64), f(16))],
      [/^attention: Hq must be a positive multiple of Hkv/, () => cpu.attention(f(64), f(32), f(32), seg, 2, 4, 3, 2, 4, opts, f(64), f(16))],
      [/^attentionBackward: dk has 31 elements, needs 32/, () =>
        cpu.attentionBackward(f(64), f(32), f(32), seg, f(64), f(16), f(64), 2, 4, 2, 1, 4, opts, f(64), f(31), f(32))],
      [/^attentionBackward: dout has 63 elements, needs 64/, () =>
        cpu.attentionBackward(f(64), f(32), f(32), seg, f(64), f(16), f(63), 2, 4, 2, 1, 4, opts, f(64), f(32), f(32))],
      [/^attentionBackward: q must be a Float32Array/, () =>
        core.trainAttentionBackward(new Float64Array(64) as unknown as Float32Array, f(32), f(32), seg, f(64), f(16), f(64), 2, 4, 2, 1, 4, 1, 0, 0, f(64), f(32), f(32))],
      [/^crossEntropy: dlogits has 11 elements, needs 12/, () => cpu.crossEntropy(f(12), 3, 4, new Int32Array(3), 0, 1, f(11))],
      [/^crossEntropy: target 4 of row 1 is out of range \[0, 4\)/, () => cpu.crossEntropy(f(12), 3, 4, Int32Array.of(0, 4, -1), 0, 1, f(12))],
      [/^crossEntropy: target -2 of row 0/, () => cpu.crossEntropy(f(12), 3, 4, Int32Array.of(-2, 0, 0), 0, 1, f(12))],
      [/^embeddingBackward: token id 5 at index 2 is out of range \[0, 5\)/, () => cpu.embeddingBackward(Int32Array.of(0, 1, 5), f(6), 2, f(10))],
      [/^embeddingBackward: dy has 5 elements, needs 6/, () => cpu.embeddingBackward(Int32Array.of(0, 1, 4), f(5), 2, f(10))],
      [/^adamw: p, g, m, v must all have the same length/, () => cpu.adamw(f(4), f(4), f(3), f(4), 1, 1e-3, 0.9, 0.99, 1e-8, 0, 1)],
      [/^adamw: step must be an integer >= 1/, () => cpu.adamw(f(4), f(4), f(4), f(4), 0, 1e-3, 0.9, 0.99, 1e-8, 0, 1)],
      [/^adamw: v has 3 elements, needs 4/, () => core.trainAdamw(f(4), f(4), f(4), f(3), 4, 1, 1e-3, 0.9, 0.99, 1e-8, 0, 1)],
      [/^sumSquares: x has 2 elements, needs 3/, () => core.trainSumSquares(f(2), 3)],
      [/^rmsNorm: sizes too large/, () => core.trainRmsNorm(f(4), f(4), 2 ** 40, 2 ** 40, 1e-5, f(4), f(4))],
    ];
    for (const [re, fn] of cases) assert.throws(fn, (e: Error) => re.test(e.message), `expected ${re}`);
  });
});
