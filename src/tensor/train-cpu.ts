// The `cpu` training kernels: the native core's training ops (native/src/train_*.cc), threaded
// over its pool, on the instruction set it has chosen (setIsa / SLIPSTREAM_NO_SIMD apply).
// Semantics are TrainKernels' (src/tensor/train-kernels.ts); RefTrainKernels is the oracle.
//
// Checks: lengths that the contract ties together (elementwise ops, rope options, GELU
// approximation, step) are checked here with the reference kernels' errors; the native layer
// checks every buffer against the elements the call touches and every id it follows, so a
// direct call cannot read or write out of bounds. Errors name the op.

import type { RopeOptions } from './backend.ts';
import { native, type NativeCore, type TA } from './native.ts';
import type { AttnTrainOptions, ConvShape, Gelu, PointAct, TrainKernels } from './train-kernels.ts';
import { TrainKernelError } from './train-ref.ts';

/** The native training functions (train_addon.cc) and the f32 GEMM the core exports. */
export interface TrainCore extends NativeCore {
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: TA, lda: number, B: TA, ldb: number, beta: number, C: TA, ldc: number,
  ): void;
  trainAxpy(a: number, x: Float32Array, y: Float32Array, n: number): void;
  trainSumSquares(x: Float32Array, n: number): number;
  trainScale(x: Float32Array, n: number, s: number): void;
  trainRmsNorm(x: Float32Array, w: Float32Array, rows: number, cols: number, eps: number, out: Float32Array, rstd: Float32Array): void;
  trainRmsNormBackward(
    x: Float32Array, w: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number, dx: Float32Array, dw: Float32Array,
  ): void;
  trainLayerNorm(
    x: Float32Array, w: Float32Array, b: Float32Array | null, rows: number, cols: number, eps: number,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void;
  trainLayerNormBackward(
    x: Float32Array, w: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number,
    dx: Float32Array, dw: Float32Array, db: Float32Array | null,
  ): void;
  /** op: 0 swiglu, 1 geglu (tanh), 2 geglu (erf) */
  trainGlu(op: number, g: Float32Array, u: Float32Array, out: Float32Array, n: number): void;
  trainGluBackward(op: number, g: Float32Array, u: Float32Array, dy: Float32Array, dg: Float32Array, du: Float32Array, n: number): void;
  trainGelu(erf: boolean, x: Float32Array, out: Float32Array, n: number): void;
  trainGeluBackward(erf: boolean, x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  trainRope(
    x: Float32Array, rows: number, H: number, D: number, positions: Int32Array, rotaryDim: number, halfLayout: number, theta: number,
    scaling: number, factor: number, low: number, high: number, origMax: number, inverse: boolean,
    shortFactors?: Float32Array, longFactors?: Float32Array,
  ): void;
  trainAttention(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array, B: number, T: number, Hq: number, Hkv: number, D: number,
    scale: number, softCap: number, window: number, out: Float32Array, lse: Float32Array,
  ): void;
  trainAttentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    B: number, T: number, Hq: number, Hkv: number, D: number, scale: number, softCap: number, window: number,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void;
  trainCrossEntropy(
    logits: Float32Array, rows: number, V: number, targets: Int32Array, softCap: number, gradScale: number, dlogits: Float32Array,
  ): number;
  trainEmbeddingBackward(ids: Int32Array, n: number, dy: Float32Array, D: number, dtable: Float32Array): void;
  trainAdamw(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number,
    step: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, gradScale: number,
  ): void;
  // image ops (train_image_addon.cc); conv shapes as B, H, W, Ci, Co, KH, KW, stride, pad, padEnd
  // (trainConv2d and trainConv2dBackward are NativeCore's: inference convolves with them too)
  trainGroupNorm(
    x: Float32Array, w: Float32Array, b: Float32Array, B: number, N: number, C: number, G: number, eps: number, silu: boolean,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void;
  trainGroupNormBackward(
    x: Float32Array, w: Float32Array, b: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array, B: number, N: number, C: number,
    G: number, silu: boolean, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void;
  trainUpsample2x(backward: boolean, src: Float32Array, B: number, H: number, W: number, C: number, dst: Float32Array): void;
  trainMha(
    q: Float32Array, k: Float32Array, v: Float32Array, B: number, Tq: number, Tk: number, H: number, D: number, scale: number,
    out: Float32Array, lse: Float32Array,
  ): void;
  trainMhaBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, lse: Float32Array, dout: Float32Array, B: number, Tq: number, Tk: number, H: number,
    D: number, scale: number, dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void;
  /** a: 0 silu, 1 quick_gelu */
  trainAct(a: number, x: Float32Array, out: Float32Array, n: number): void;
  trainActBackward(a: number, x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  trainSumRows(x: Float32Array, G: number, R: number, C: number, out: Float32Array): void;
  trainAddRows(x: Float32Array, v: Float32Array, G: number, R: number, C: number, out: Float32Array): void;
}

export function trainCore(): TrainCore {
  return native() as TrainCore;
}

function same(op: string, names: string, ...arrs: ArrayLike<number>[]): number {
  const n = arrs[0]!.length;
  for (const a of arrs) {
    if (a.length !== n) throw new TrainKernelError(op, `${names} must all have the same length, got ${arrs.map((x) => x.length).join(', ')}`);
  }
  return n;
}

function geluCode(op: string, approx: Gelu): boolean {
  if (approx !== 'tanh' && approx !== 'erf') throw new TrainKernelError(op, `unknown GELU approximation '${String(approx)}'`);
  return approx === 'erf';
}

function checkAttnOpts(op: string, opts: AttnTrainOptions): void {
  if (!Number.isInteger(opts.window) || opts.window < 0) throw new TrainKernelError(op, `window must be an integer >= 0, got ${opts.window}`);
  if (!(opts.softCap >= 0)) throw new TrainKernelError(op, `softCap must be >= 0, got ${opts.softCap}`);
}

export class CpuTrainKernels implements TrainKernels {
  readonly name = 'cpu';
  private readonly n: TrainCore;

  constructor() {
    this.n = trainCore();
  }

  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
  ): void {
    if (typeof this.n.sgemm !== 'function') throw new TrainKernelError('gemm', 'this build of the native core has no sgemm; rebuild it with `npm run build:native`');
    this.n.sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  axpy(a: number, x: Float32Array, y: Float32Array): void {
    this.n.trainAxpy(a, x, y, same('axpy', 'x, y', x, y));
  }

  sumSquares(x: Float32Array): number {
    return this.n.trainSumSquares(x, x.length);
  }

  scaleInPlace(x: Float32Array, s: number): void {
    this.n.trainScale(x, x.length, s);
  }

  rmsNorm(x: Float32Array, w: Float32Array, rows: number, cols: number, eps: number, out: Float32Array, rstd: Float32Array): void {
    this.n.trainRmsNorm(x, w, rows, cols, eps, out, rstd);
  }

  rmsNormBackward(
    x: Float32Array, w: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number, dx: Float32Array, dw: Float32Array,
  ): void {
    this.n.trainRmsNormBackward(x, w, rstd, dy, rows, cols, dx, dw);
  }

  layerNorm(
    x: Float32Array, w: Float32Array, b: Float32Array | null, rows: number, cols: number, eps: number,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void {
    this.n.trainLayerNorm(x, w, b, rows, cols, eps, out, mean, rstd);
  }

  layerNormBackward(
    x: Float32Array, w: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array, rows: number, cols: number,
    dx: Float32Array, dw: Float32Array, db: Float32Array | null,
  ): void {
    this.n.trainLayerNormBackward(x, w, mean, rstd, dy, rows, cols, dx, dw, db);
  }

  swiglu(g: Float32Array, u: Float32Array, out: Float32Array): void {
    this.n.trainGlu(0, g, u, out, same('swiglu', 'g, u, out', g, u, out));
  }

  swigluBackward(g: Float32Array, u: Float32Array, dy: Float32Array, dg: Float32Array, du: Float32Array): void {
    this.n.trainGluBackward(0, g, u, dy, dg, du, same('swigluBackward', 'g, u, dy, dg, du', g, u, dy, dg, du));
  }

  geglu(g: Float32Array, u: Float32Array, out: Float32Array, approx: Gelu): void {
    const erf = geluCode('geglu', approx);
    this.n.trainGlu(erf ? 2 : 1, g, u, out, same('geglu', 'g, u, out', g, u, out));
  }

  gegluBackward(g: Float32Array, u: Float32Array, dy: Float32Array, dg: Float32Array, du: Float32Array, approx: Gelu): void {
    const erf = geluCode('gegluBackward', approx);
    this.n.trainGluBackward(erf ? 2 : 1, g, u, dy, dg, du, same('gegluBackward', 'g, u, dy, dg, du', g, u, dy, dg, du));
  }

  gelu(x: Float32Array, out: Float32Array, approx: Gelu): void {
    const erf = geluCode('gelu', approx);
    this.n.trainGelu(erf, x, out, same('gelu', 'x, out', x, out));
  }

  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, approx: Gelu): void {
    const erf = geluCode('geluBackward', approx);
    this.n.trainGeluBackward(erf, x, dy, dx, same('geluBackward', 'x, dy, dx', x, dy, dx));
  }

  rope(x: Float32Array, rows: number, H: number, D: number, positions: Int32Array, opts: RopeOptions, inverse: boolean): void {
    const op = 'rope';
    const rd = opts.rotaryDim ?? D;
    if (!Number.isInteger(rd) || rd <= 0 || rd > D || rd % 2 !== 0) throw new TrainKernelError(op, `rotaryDim ${rd} must be even and in (0, ${D}]`);
    if (opts.layout !== 'interleaved' && opts.layout !== 'half') throw new TrainKernelError(op, `unknown layout '${String(opts.layout)}'`);
    const s = opts.scaling;
    const l3 = s?.type === 'llama3' ? s : null;
    const lr = s?.type === 'longrope' ? s : null;
    if (lr && (lr.shortFactor.length !== rd / 2 || lr.longFactor.length !== rd / 2)) throw new TrainKernelError(op, `longrope needs ${rd / 2} short and long factors`);
    this.n.trainRope(
      x, rows, H, D, positions, rd, opts.layout === 'half' ? 1 : 0, opts.theta, s ? (s.type === 'linear' ? 1 : s.type === 'llama3' ? 2 : 3) : 0,
      lr ? lr.attnFactor : s && s.type !== 'longrope' ? s.factor : 1, l3 ? l3.lowFreqFactor : 0, l3 ? l3.highFreqFactor : 0, l3 ? l3.originalMaxPosition : lr ? lr.originalMaxPosition : 0, inverse,
      ...(lr ? [Float32Array.from(lr.shortFactor), Float32Array.from(lr.longFactor)] as const : []),
    );
  }

  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array,
    B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    out: Float32Array, lse: Float32Array,
  ): void {
    checkAttnOpts('attention', opts);
    this.n.trainAttention(q, k, v, seg, B, T, Hq, Hkv, D, opts.scale, opts.softCap, opts.window, out, lse);
  }

  attentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, seg: Int32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void {
    checkAttnOpts('attentionBackward', opts);
    this.n.trainAttentionBackward(q, k, v, seg, out, lse, dout, B, T, Hq, Hkv, D, opts.scale, opts.softCap, opts.window, dq, dk, dv);
  }

  crossEntropy(
    logits: Float32Array, rows: number, V: number, targets: Int32Array, softCap: number, gradScale: number, dlogits: Float32Array,
  ): number {
    return this.n.trainCrossEntropy(logits, rows, V, targets, softCap, gradScale, dlogits);
  }

  embeddingBackward(ids: Int32Array, dy: Float32Array, D: number, dtable: Float32Array): void {
    this.n.trainEmbeddingBackward(ids, ids.length, dy, D, dtable);
  }

  adamw(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
    step: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, gradScale: number,
  ): void {
    const op = 'adamw';
    const n = same(op, 'p, g, m, v', p, g, m, v);
    if (!Number.isInteger(step) || step < 1) throw new TrainKernelError(op, `step must be an integer >= 1 (1-based), got ${step}`);
    this.n.trainAdamw(p, g, m, v, n, step, lr, beta1, beta2, eps, wd, gradScale);
  }

  // ---- image ops (native/src/train_image.cc) ----

  conv2d(x: Float32Array, w: Float32Array, b: Float32Array | null, s: ConvShape, out: Float32Array): void {
    this.n.trainConv2d(x, w, b, out, s.B, s.H, s.W, s.Ci, s.Co, s.KH, s.KW, s.stride, s.pad, s.padEnd);
  }

  conv2dBackward(x: Float32Array, w: Float32Array, dy: Float32Array, s: ConvShape, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null): void {
    this.n.trainConv2dBackward(x, w, dy, dx, dw, db, s.B, s.H, s.W, s.Ci, s.Co, s.KH, s.KW, s.stride, s.pad, s.padEnd);
  }

  groupNorm(
    x: Float32Array, w: Float32Array, b: Float32Array, B: number, N: number, C: number, G: number, eps: number, silu: boolean,
    out: Float32Array, mean: Float32Array, rstd: Float32Array,
  ): void {
    this.n.trainGroupNorm(x, w, b, B, N, C, G, eps, silu, out, mean, rstd);
  }

  groupNormBackward(
    x: Float32Array, w: Float32Array, b: Float32Array, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
    B: number, N: number, C: number, G: number, silu: boolean, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
  ): void {
    this.n.trainGroupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu, dx, dw, db);
  }

  upsample2x(x: Float32Array, B: number, H: number, W: number, C: number, out: Float32Array): void {
    this.n.trainUpsample2x(false, x, B, H, W, C, out);
  }

  upsample2xBackward(dy: Float32Array, B: number, H: number, W: number, C: number, dx: Float32Array): void {
    this.n.trainUpsample2x(true, dy, B, H, W, C, dx);
  }

  mha(
    q: Float32Array, k: Float32Array, v: Float32Array, B: number, Tq: number, Tk: number, H: number, D: number, scale: number,
    out: Float32Array, lse: Float32Array,
  ): void {
    this.n.trainMha(q, k, v, B, Tq, Tk, H, D, scale, out, lse);
  }

  mhaBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    B: number, Tq: number, Tk: number, H: number, D: number, scale: number, dq: Float32Array, dk: Float32Array, dv: Float32Array,
  ): void {
    if (out.length < B * Tq * H * D) throw new TrainKernelError('mhaBackward', `out has ${out.length} elements, needs at least ${B * Tq * H * D}`);
    this.n.trainMhaBackward(q, k, v, lse, dout, B, Tq, Tk, H, D, scale, dq, dk, dv);
  }

  act(a: PointAct, x: Float32Array, out: Float32Array): void {
    this.n.trainAct(actCode('act', a), x, out, same('act', 'x, out', x, out));
  }

  actBackward(a: PointAct, x: Float32Array, dy: Float32Array, dx: Float32Array): void {
    this.n.trainActBackward(actCode('actBackward', a), x, dy, dx, same('actBackward', 'x, dy, dx', x, dy, dx));
  }

  addRows(x: Float32Array, v: Float32Array, G: number, R: number, C: number, out: Float32Array): void {
    this.n.trainAddRows(x, v, G, R, C, out);
  }

  sumRows(x: Float32Array, G: number, R: number, C: number, out: Float32Array): void {
    this.n.trainSumRows(x, G, R, C, out);
  }
}

function actCode(op: string, a: PointAct): number {
  if (a !== 'silu' && a !== 'quick_gelu') throw new TrainKernelError(op, `unknown activation '${String(a)}'`);
  return a === 'silu' ? 0 : 1;
}

let shared: CpuTrainKernels | null = null;

/** The process-wide cpu training kernels (loads the native core on first use). */
export function cpuTrainKernels(): CpuTrainKernels {
  return (shared ??= new CpuTrainKernels());
}
