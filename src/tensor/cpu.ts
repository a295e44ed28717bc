// The `cpu` backend: the native C++ core (AVX-512 / AVX2 / portable, chosen at run time)
// behind the Backend interface. Argument checks are the same as the ref backend's.

import type { AttentionOptions, Backend, Conv2dOptions, GeluApprox, PoolRole, RopeOptions } from './backend.ts';
import {
  checkArgmax,
  checkAttention,
  checkConv2d,
  checkGroupNorm,
  checkUpsample2x,
  checkCombineRows,
  checkRows,
  checkSoftCap,
  checkTopkRoute,
  checkAttentionDecode,
  checkAttentionPrefill,
  checkBinary,
  checkEmbedding,
  checkGated,
  checkKvWrite,
  checkMatmul,
  checkMatmulMulti,
  checkNorm,
  checkRope,
  checkUnary,
} from './check.ts';
import { bytesFor, DTYPE_CODE } from './dtype.ts';
import { native, type NativeCore } from './native.ts';
import type { Tensor } from './tensor.ts';

const SOFTMAX = 0, SILU = 1, GELU_TANH = 2, GELU_ERF = 3;

/** The process's ISA as last read (setIsa clears it); only decides where prepacking pays. */
let activeIsa: string | null = null;

/**
 * Which q4_k matrices get prepacked (see CpuBackend.prepacked): `mapped` (default) those still in
 * a file mapping, whose pages are then given back so the weights stay resident once; `all` every
 * one (tests: memory-held matrices then live twice); `off` none. SLIPSTREAM_PREPACK overrides.
 */
export type PrepackMode = 'mapped' | 'all' | 'off';
function prepackModeFromEnv(): PrepackMode {
  const v = process.env.SLIPSTREAM_PREPACK;
  if (v === undefined || v === '') return 'mapped';
  if (v === 'mapped' || v === 'all' || v === 'off') return v;
  throw new Error(`SLIPSTREAM_PREPACK must be mapped, all or off, got '${v}'`);
}
const SWIGLU = 0, GEGLU_TANH = 1, GEGLU_ERF = 2;
const SCALING_CODE = { linear: 1, llama3: 2, longrope: 3 } as const;

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private readonly n: NativeCore;

  /** Prepacked forms of q4_k matrices, by tensor (null: runs from its own bytes). */
  private readonly packs = new WeakMap<Tensor, Uint8Array | null>();
  prepackMode: PrepackMode = prepackModeFromEnv();

  constructor() {
    this.n = native();
  }

  /**
   * The prepacked form of a q4_k matrix for the 256-bit k-quant tiles (AVX2 and AVX-512 builds; native/src/kquants.inc, "Prepacked
   * Q4_K": 8 rows interleaved, about twice the matrix-vector speed of the stored layout in cache,
   * the same bits), made the first time the matrix is multiplied and kept as long as the tensor
   * lives; its file pages are given back then, so a mapped model stays resident once (1184 / 1152
   * of its q4_k bytes). Null where it does not apply:
   * other dtypes or ISAs, fewer than 16 rows, views with padded rows, matrices held in memory
   * (unless prepackMode is 'all').
   */
  prepacked(w: Tensor): Uint8Array | null {
    if (w.dtype !== 'q4_k') return null;
    if ((activeIsa ??= this.n.info().isa) !== 'avx2' && activeIsa !== 'avx512') return null;
    let p = this.packs.get(w);
    if (p !== undefined) return p;
    p = null;
    const [N, K] = w.shape as [number, number];
    if (this.prepackMode !== 'off' && w.shape.length === 2 && N >= 16 && w.strides[0] === K) {
      const src = w.data.subarray(0, bytesFor(w.dtype, N * K));
      if (this.prepackMode === 'all' || this.n.mappedBytes(src) > 0) {
        const code = DTYPE_CODE[w.dtype];
        const bytes = this.n.kqPrepackedBytes(code, N, K);
        p = new Uint8Array(this.n.allocResident(bytes, false, true));
        this.n.kqPrepack(src, code, N, K, p);
        this.n.dropPages(src);
      }
    }
    this.packs.set(w, p);
    return p;
  }

  /** Backend.prepareWeight: prepacks w now where that applies (see prepacked). */
  prepareWeight(w: Tensor): boolean {
    return this.prepacked(w) !== null;
  }

  /** Instruction set in use: 'avx512', 'avx2' or 'portable'. */
  get isa(): string {
    return this.n.info().isa;
  }
  get threads(): number {
    return this.n.info().threads;
  }
  /** Switch instruction set (process-wide), e.g. to test the portable fallback. */
  setIsa(name: 'avx512' | 'avx2' | 'portable'): void {
    activeIsa = null;
    this.n.setIsa(name);
  }
  availableIsas(): string[] {
    return this.n.info().available;
  }
  setThreads(n: number): void {
    this.n.setThreads(n);
  }
  /** The f32 FMA peak of the active ISA on the pool's threads, GFLOP/s (a short run of the native peak loop). */
  fmaPeakGflops(): number {
    this.n.benchFma(200_000); // warm up
    const t0 = performance.now();
    const flops = this.n.benchFma(2_000_000);
    return flops / ((performance.now() - t0) / 1e3) / 1e9;
  }

  matmul(x: Tensor, w: Tensor, out: Tensor): void {
    const { M, N, K, ldx, ldo } = checkMatmul(x, w, out);
    this.n.matmul(x.data, ldx, w.data, DTYPE_CODE[w.dtype], out.data, ldo, M, N, K, this.prepacked(w));
  }

  matmulMulti(x: Tensor, ws: readonly Tensor[], outs: readonly Tensor[]): void {
    checkMatmulMulti(x, ws, outs);
    const dims = ws.map((w, i) => checkMatmul(x, w, outs[i]!));
    if (ws.some((w) => w.dtype !== ws[0]!.dtype)) {
      ws.forEach((w, i) => this.matmul(x, w, outs[i]!));
      return;
    }
    const d0 = dims[0]!;
    this.n.matmulMulti(
      x.data, d0.ldx, ws.map((w) => w.data), DTYPE_CODE[ws[0]!.dtype], outs.map((o) => o.data), dims.map((d) => d.ldo), d0.M, dims.map((d) => d.N), d0.K,
      ws.map((w) => this.prepacked(w)),
    );
  }

  add(a: Tensor, b: Tensor, out: Tensor): void {
    const { am, bm, om, bcast } = checkBinary('add', a, b, out);
    this.n.binary(0, a.data, am.rowStride, b.data, bm.rowStride, bcast ? 1 : 0, out.data, om.rowStride, am.rows, am.cols);
  }

  mul(a: Tensor, b: Tensor, out: Tensor): void {
    const { am, bm, om, bcast } = checkBinary('mul', a, b, out);
    this.n.binary(1, a.data, am.rowStride, b.data, bm.rowStride, bcast ? 1 : 0, out.data, om.rowStride, am.rows, am.cols);
  }

  scale(a: Tensor, s: number, out: Tensor): void {
    const { xm, om } = checkUnary('scale', a, out);
    this.n.scale(a.data, xm.rowStride, s, out.data, om.rowStride, xm.rows, xm.cols);
  }

  rmsNorm(x: Tensor, w: Tensor, eps: number, out: Tensor): void {
    const { xm, om } = checkNorm('rmsNorm', x, w, null, eps, out);
    this.n.norm(x.data, xm.rowStride, w.data, null, eps, out.data, om.rowStride, xm.rows, xm.cols, false);
  }

  layerNorm(x: Tensor, w: Tensor, b: Tensor | null, eps: number, out: Tensor): void {
    const { xm, om } = checkNorm('layerNorm', x, w, b, eps, out);
    this.n.norm(x.data, xm.rowStride, w.data, b ? b.data : null, eps, out.data, om.rowStride, xm.rows, xm.cols, true);
  }

  rope(x: Tensor, positions: Int32Array, opts: RopeOptions): void {
    const h = checkRope(x, positions, opts);
    const s = opts.scaling;
    const lr = s?.type === 'longrope' ? s : null;
    this.n.rope(
      x.data, h.T, h.H, h.D, h.sT, h.sH, positions, h.rotaryDim, opts.layout === 'half' ? 1 : 0, opts.theta,
      s ? SCALING_CODE[s.type] : 0, lr ? lr.attnFactor : s && s.type !== 'longrope' ? s.factor : 1,
      s?.type === 'llama3' ? s.lowFreqFactor : 0, s?.type === 'llama3' ? s.highFreqFactor : 0,
      s?.type === 'llama3' || s?.type === 'longrope' ? s.originalMaxPosition : 0,
      ...(lr ? [Float32Array.from(lr.shortFactor), Float32Array.from(lr.longFactor)] as const : []),
    );
  }

  softmax(x: Tensor, out: Tensor): void {
    const { xm, om } = checkUnary('softmax', x, out);
    this.n.unary(SOFTMAX, x.data, xm.rowStride, out.data, om.rowStride, xm.rows, xm.cols);
  }

  silu(x: Tensor, out: Tensor): void {
    const { xm, om } = checkUnary('silu', x, out);
    this.n.unary(SILU, x.data, xm.rowStride, out.data, om.rowStride, xm.rows, xm.cols);
  }

  gelu(x: Tensor, out: Tensor, approx: GeluApprox): void {
    const { xm, om } = checkUnary('gelu', x, out);
    this.n.unary(approx === 'erf' ? GELU_ERF : GELU_TANH, x.data, xm.rowStride, out.data, om.rowStride, xm.rows, xm.cols);
  }

  swiglu(gate: Tensor, up: Tensor, out: Tensor): void {
    const { gm, um, om } = checkGated('swiglu', gate, up, out);
    this.n.gated(SWIGLU, gate.data, gm.rowStride, up.data, um.rowStride, out.data, om.rowStride, gm.rows, gm.cols);
  }

  geglu(gate: Tensor, up: Tensor, out: Tensor, approx: GeluApprox): void {
    const { gm, um, om } = checkGated('geglu', gate, up, out);
    this.n.gated(approx === 'erf' ? GEGLU_ERF : GEGLU_TANH, gate.data, gm.rowStride, up.data, um.rowStride, out.data, om.rowStride, gm.rows, gm.cols);
  }

  embedding(table: Tensor, ids: Int32Array, out: Tensor): void {
    const { V, D, ldo } = checkEmbedding(table, ids, out);
    this.n.embedding(table.data, DTYPE_CODE[table.dtype], V, D, ids, out.data, ldo);
  }

  kvWrite(x: Tensor, cache: Tensor, slots: Int32Array, role: PoolRole): void {
    const { h, p } = checkKvWrite(x, cache, slots, role);
    this.n.kvWrite(x.data, h.T, h.H, h.D, h.sT, h.sH, cache.data, DTYPE_CODE[cache.dtype], p.nBlocks, p.blockSize, slots, role === 'k');
  }

  attentionPrefill(q: Tensor, kCache: Tensor, vCache: Tensor, blockTable: Int32Array, startPos: number, out: Tensor, opts: AttentionOptions): void {
    const { qh, oh, p } = checkAttentionPrefill(q, kCache, vCache, blockTable, startPos, out, opts);
    const positions = new Int32Array(qh.T);
    for (let t = 0; t < qh.T; t++) positions[t] = startPos + t;
    this.n.attention(
      q.data, qh.sT, qh.sH, qh.H, kCache.data, vCache.data, DTYPE_CODE[kCache.dtype], p.nBlocks, p.Hkv, p.blockSize, p.D,
      out.data, oh.sT, oh.sH, blockTable, 0, positions, opts.scale, opts.softCap ?? 0, opts.window ?? 0,
    );
  }

  attentionDecode(
    q: Tensor, kCache: Tensor, vCache: Tensor, blockTables: Int32Array, maxBlocks: number, seqLens: Int32Array, out: Tensor, opts: AttentionOptions,
  ): void {
    const { qh, oh, p } = checkAttentionDecode(q, kCache, vCache, blockTables, maxBlocks, seqLens, out, opts);
    const positions = new Int32Array(qh.T);
    for (let b = 0; b < qh.T; b++) positions[b] = seqLens[b]! - 1;
    this.n.attention(
      q.data, qh.sT, qh.sH, qh.H, kCache.data, vCache.data, DTYPE_CODE[kCache.dtype], p.nBlocks, p.Hkv, p.blockSize, p.D,
      out.data, oh.sT, oh.sH, blockTables, maxBlocks, positions, opts.scale, opts.softCap ?? 0, opts.window ?? 0,
    );
  }

  argmax(x: Tensor): Int32Array {
    const m = checkArgmax(x);
    const out = new Int32Array(m.rows);
    this.n.argmax(x.data, m.rowStride, m.rows, m.cols, out);
    return out;
  }

  // The ops below are host-side row moves and O(T * E) routing, a few microseconds a step; they
  // run in TypeScript over the f32 buffers (a device backend runs them where the tensors live).

  gatherRows(x: Tensor, rows: Int32Array, out: Tensor): void {
    const { xm, om } = checkRows('gatherRows', x, rows, out);
    const xs = f32(x), o = f32(out);
    for (let j = 0; j < rows.length; j++) o.set(xs.subarray(rows[j]! * xm.rowStride, rows[j]! * xm.rowStride + xm.cols), j * om.rowStride);
  }

  scatterRows(x: Tensor, rows: Int32Array, out: Tensor): void {
    const { xm, om } = checkRows('scatterRows', x, rows, out);
    const xs = f32(x), o = f32(out);
    for (let j = 0; j < rows.length; j++) o.set(xs.subarray(j * xm.rowStride, j * xm.rowStride + xm.cols), rows[j]! * om.rowStride);
  }

  softCap(x: Tensor, cap: number, out: Tensor): void {
    const { xm, om } = checkSoftCap(x, cap, out);
    const xs = f32(x), o = f32(out);
    const inv = 1 / cap;
    for (let r = 0; r < xm.rows; r++) {
      const a = r * xm.rowStride, b = r * om.rowStride;
      for (let c = 0; c < xm.cols; c++) o[b + c] = cap * Math.tanh(xs[a + c]! * inv);
    }
  }

  topkRoute(logits: Tensor, k: number, ids: Int32Array, weights: Tensor): void {
    const { lm, wm } = checkTopkRoute(logits, k, ids, weights);
    const ls = f32(logits), w = f32(weights);
    const E = lm.cols;
    const p = new Float32Array(E);
    for (let t = 0; t < lm.rows; t++) {
      const row = ls.subarray(t * lm.rowStride, t * lm.rowStride + E);
      let mx = -Infinity;
      for (let e = 0; e < E; e++) if (row[e]! > mx) mx = row[e]!;
      for (let e = 0; e < E; e++) p[e] = Math.exp(row[e]! - mx);
      let sum = 0;
      for (let j = 0; j < k; j++) {
        let best = -1;
        for (let e = 0; e < E; e++) if (p[e]! >= 0 && (best < 0 || p[e]! > p[best]!)) best = e;
        ids[t * k + j] = best;
        sum += p[best]!;
        w[t * wm.rowStride + j] = p[best]!;
        p[best] = -1; // taken
      }
      for (let j = 0; j < k; j++) w[t * wm.rowStride + j]! /= sum;
    }
  }

  combineRows(x: Tensor, w: Tensor, out: Tensor): void {
    const { xm, wm, om } = checkCombineRows(x, w, out);
    const xs = f32(x), ws = f32(w), o = f32(out);
    const K = wm.cols, D = om.cols;
    for (let t = 0; t < om.rows; t++) {
      const dst = o.subarray(t * om.rowStride, t * om.rowStride + D);
      for (let c = 0; c < D; c++) {
        let acc = 0;
        for (let j = 0; j < K; j++) acc += ws[t * wm.rowStride + j]! * xs[(t * K + j) * xm.rowStride + c]!;
        dst[c] = acc;
      }
    }
  }

  // ---- image ops (NHWC) ---------------------------------------------------------------------
  //
  // Convolution is the native one (native/src/train_image.cc, shared with training): a 1x1
  // convolution is one sgemm over the [B * H * W, C] rows; a larger kernel gathers im2col rows
  // ([pixels, kh * kw * C], whole runs of kw * C floats per kernel row, zero where the window
  // leaves the image) in threaded blocks of 16 MiB and runs one sgemm per block. f16 / bf16
  // weights stay in half precision: sgemm widens them as it packs its panels (half the memory,
  // the f32 speed). Attention is two sgemm calls per (batch, head) with the native row softmax
  // between them (scores of at most 16 MiB at a time). Group norm is native
  // (native/src/image_ops.cc) followed by the vectorised SiLU; upsampling is a copy, in
  // TypeScript.

  private scratch = new Float32Array(0);
  private buf(n: number): Float32Array {
    if (this.scratch.length < n) this.scratch = new Float32Array(n);
    return this.scratch.subarray(0, n);
  }

  conv2d(x: Tensor, w: Tensor, b: Tensor | null, out: Tensor, opts: Conv2dOptions): void {
    const { B, H, W, C, Co, KH, KW, stride, pad } = checkConv2d(x, w, b, out, opts);
    const wtype = w.dtype === 'f16' ? 1 : w.dtype === 'bf16' ? 2 : 0;
    this.n.trainConv2d(f32(x), wtype ? w.data : f32(w), b ? f32(b) : null, f32(out), B, H, W, C, Co, KH, KW, stride, pad, opts.padEnd ?? pad, wtype);
  }

  groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number, silu: boolean, out: Tensor): void {
    const { B, N, C } = checkGroupNorm(x, w, b, groups, eps, out);
    this.n.groupNorm(f32(x), f32(w), f32(b), f32(out), B, N, C, groups, eps);
    if (silu) this.n.unary(SILU, out.data, C, out.data, C, B * N, C); // the vectorised SiLU
  }

  upsample2x(x: Tensor, out: Tensor): void {
    const { B, H, W, C } = checkUpsample2x(x, out);
    const xs = f32(x), o = f32(out);
    const row = 2 * W * C;
    for (let n = 0; n < B; n++) {
      for (let y = 0; y < H; y++) {
        const d = ((n * 2 * H + 2 * y) * 2 * W) * C;
        for (let xx = 0; xx < W; xx++) {
          const s = xs.subarray(((n * H + y) * W + xx) * C, ((n * H + y) * W + xx + 1) * C);
          o.set(s, d + 2 * xx * C);
          o.set(s, d + (2 * xx + 1) * C);
        }
        o.copyWithin(d + row, d, d + row);
      }
    }
  }

  attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: number, causal = false): void {
    const g = checkAttention(q, k, v, out, scale, causal);
    const qs = f32(q), ks = f32(k), vs = f32(v), o = f32(out);
    const { B, H, T: Tq, D } = g.q;
    const Tk = g.k.T;
    const chunk = Math.max(1, Math.min(Tq, Math.floor((4 << 20) / Tk))); // query rows per score block (<= 16 MiB)
    for (let n = 0; n < B; n++) {
      for (let h = 0; h < H; h++) {
        const kh = ks.subarray(n * g.k.sB + h * g.k.sH), vh = vs.subarray(n * g.v.sB + h * g.v.sH);
        for (let t0 = 0; t0 < Tq; t0 += chunk) {
          const m = Math.min(chunk, Tq - t0);
          const sc = this.buf(m * Tk);
          this.n.sgemm(false, true, m, Tk, D, scale, qs.subarray(n * g.q.sB + h * g.q.sH + t0 * g.q.sT), g.q.sT, kh, g.k.sT, 0, sc, Tk);
          if (causal) {
            for (let r = 0; r < m; r++) sc.fill(-Infinity, r * Tk + t0 + r + Tk - Tq + 1, (r + 1) * Tk);
          }
          this.n.unary(SOFTMAX, sc, Tk, sc, Tk, m, Tk);
          this.n.sgemm(false, false, m, D, Tk, 1, sc, Tk, vh, g.v.sT, 0, o.subarray(n * g.o.sB + h * g.o.sH + t0 * g.o.sT), g.o.sT);
        }
      }
    }
  }
}

const f32 = (t: Tensor): Float32Array => t.f32();

let shared: CpuBackend | null = null;
export function cpuBackend(): CpuBackend {
  return (shared ??= new CpuBackend());
}
