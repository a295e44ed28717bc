// Autograd functions of the diffusion networks' image ops (UNet, VAE, CLIP text encoder), on the
// tape of autograd.ts and the image kernels of the training contract (train-kernels.ts,
// ImageTrainKernels). The conventions are autograd.ts': forwards run at once, backward closures
// are recorded only when the output needs a gradient, an activation gradient is written by
// Tape.addGrad (first contribution overwrites a fresh buffer, later ones add), parameter
// gradients accumulate into the persistent Var.grad. A null gradient output tells a kernel to skip
// that work: frozen weights cost no dW GEMM, inputs that need no gradient no dX GEMM.
//
// Layouts: images NHWC [B, H, W, C], token sequences [B, T, C], conv weights [Co, kh, kw, Ci].

import type { Conv2dOptions } from './backend.ts';
import { type Tape, Var } from './autograd.ts';
import { convShape, type PointAct } from './train-kernels.ts';

const needs = (...vs: (Var | null | undefined)[]): boolean => vs.some((v) => v?.requiresGrad);

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * x's values in another shape (no copy): the gradient passes through unchanged (shared on
 * first use, as Tape.shareGrad does).
 */
export function view(t: Tape, x: Var, shape: readonly number[]): Var {
  if (numel(shape) !== x.size) throw new Error(`reshape: [${x.shape}] has ${x.size} values, [${shape}] needs ${numel(shape)}`);
  const y = new Var(x.data, shape, x.requiresGrad && t.recording);
  if (y.requiresGrad) t.record(() => y.gradInit && t.shareGrad(x, y.grad!));
  return y;
}

/** A constant (no gradient) in an arena buffer. */
export function constant(t: Tape, values: Float32Array, shape: readonly number[]): Var {
  if (values.length !== numel(shape)) throw new Error(`constant: ${values.length} values for shape [${shape}]`);
  const y = t.act(shape, false);
  y.data.set(values);
  return y;
}

/** x [B, H, W, Ci] conv w [Co, kh, kw, Ci] (+ b [Co]) -> [B, OH, OW, Co]. */
export function conv2d(t: Tape, x: Var, w: Var, b: Var | null, opts: Conv2dOptions): Var {
  const s = convShape(x.shape, w.shape, opts.stride, opts.pad, opts.padEnd ?? opts.pad);
  if (b && b.size !== s.Co) throw new Error(`conv2d: bias has ${b.size} values for ${s.Co} output channels`);
  const y = t.act([s.B, s.OH, s.OW, s.Co], needs(x, w, b));
  t.k.conv2d(x.data, w.data, b ? b.data : null, s, y.data);
  if (y.requiresGrad) {
    t.record(() => {
      const dw = w.requiresGrad ? t.gradAcc(w) : null;
      const db = b?.requiresGrad ? t.gradAcc(b) : null;
      if (x.requiresGrad) t.addGrad(x, (dx) => t.k.conv2dBackward(x.data, w.data, y.grad!, s, dx, dw, db));
      else if (dw || db) t.k.conv2dBackward(x.data, w.data, y.grad!, s, null, dw, db);
    });
  }
  return y;
}

/** GroupNorm over x [B, ..., C] (the middle dims are pixels), then SiLU when `silu`. */
export function groupNorm(t: Tape, x: Var, w: Var, b: Var, groups: number, eps: number, silu: boolean): Var {
  const B = x.shape[0]!, C = x.shape[x.shape.length - 1]!, N = x.size / (B * C);
  if (w.size !== C || b.size !== C) throw new Error(`groupNorm: x [${x.shape}] has ${C} channels, w and b have ${w.size} and ${b.size}`);
  const y = t.act(x.shape, needs(x, w, b));
  const mean = t.arena.get(B * groups), rstd = t.arena.get(B * groups);
  t.k.groupNorm(x.data, w.data, b.data, B, N, C, groups, eps, silu, y.data, mean, rstd);
  if (y.requiresGrad) {
    t.record(() => {
      const dw = w.requiresGrad ? t.gradAcc(w) : null;
      const db = b.requiresGrad ? t.gradAcc(b) : null;
      const run = (dx: Float32Array | null) => t.k.groupNormBackward(x.data, w.data, b.data, mean, rstd, y.grad!, B, N, C, groups, silu, dx, dw, db);
      if (x.requiresGrad) t.addGrad(x, run);
      else if (dw || db) run(null);
    });
  }
  return y;
}

/** Nearest 2x upsampling of x [B, H, W, C]. */
export function upsample2x(t: Tape, x: Var): Var {
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const y = t.act([B, 2 * H, 2 * W, C], needs(x));
  t.k.upsample2x(x.data, B, H, W, C, y.data);
  if (y.requiresGrad) t.record(() => t.addGrad(x, (dx) => t.k.upsample2xBackward(y.grad!, B, H, W, C, dx)));
  return y;
}

/**
 * Non-causal multi-head attention: q [B, Tq, H * D], k and v [B, Tk, H * D] -> [B, Tq, H * D].
 * Saves the log-sum-exp; the backward recomputes the probabilities.
 */
export function mha(t: Tape, q: Var, k: Var, v: Var, heads: number, scale: number): Var {
  const [B, Tq, C] = q.shape as [number, number, number];
  const Tk = k.shape[1]!, D = C / heads;
  if (!Number.isInteger(D)) throw new Error(`attention: ${C} channels do not split into ${heads} heads`);
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[2] !== C || v.shape[2] !== C || v.shape[1] !== Tk) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together`);
  }
  const y = t.act([B, Tq, C], needs(q, k, v));
  const lse = t.arena.get(B * Tq * heads);
  t.k.mha(q.data, k.data, v.data, B, Tq, Tk, heads, D, scale, y.data, lse);
  if (y.requiresGrad) {
    t.record(() =>
      t.addGrads([q, k, v], ([dq, dk, dv]) => t.k.mhaBackward(q.data, k.data, v.data, y.data, lse, y.grad!, B, Tq, Tk, heads, D, scale, dq!, dk!, dv!)),
    );
  }
  return y;
}

/** silu or quick_gelu, elementwise (a new activation: the input may be saved by another op). */
export function pointAct(t: Tape, x: Var, a: PointAct): Var {
  const y = t.act(x.shape, needs(x));
  t.k.act(a, x.data, y.data);
  if (y.requiresGrad) t.record(() => t.addGrad(x, (dx) => t.k.actBackward(a, x.data, y.grad!, dx)));
  return y;
}

/** x [B, ..., C] + v [B, C] broadcast over the middle dims; dv = the sum of dy over them. */
export function addPerBatch(t: Tape, x: Var, v: Var): Var {
  const B = x.shape[0]!, C = x.shape[x.shape.length - 1]!, R = x.size / (B * C);
  if (v.size !== B * C) throw new Error(`addPerBatch: v [${v.shape}] must be [${B}, ${C}] for x [${x.shape}]`);
  const y = t.act(x.shape, needs(x, v));
  t.k.addRows(x.data, v.data, B, R, C, y.data);
  if (y.requiresGrad) {
    t.record(() => {
      t.shareGrad(x, y.grad!);
      t.addGrad(v, (dv) => t.k.sumRows(y.grad!, B, R, C, dv));
    });
  }
  return y;
}

/** x * s. */
export function scale(t: Tape, x: Var, s: number): Var {
  const y = t.act(x.shape, needs(x));
  y.data.set(x.data);
  t.k.scaleInPlace(y.data, s);
  if (y.requiresGrad) {
    t.record(() =>
      t.addGrad(x, (dx) => {
        dx.set(y.grad!);
        t.k.scaleInPlace(dx, s);
      }),
    );
  }
  return y;
}

/** [..., Ca] ++ [..., Cb] along the last dim. */
export function concatLast(t: Tape, a: Var, b: Var): Var {
  const Ca = a.shape[a.shape.length - 1]!, Cb = b.shape[b.shape.length - 1]!, rows = a.size / Ca, C = Ca + Cb;
  if (b.size / Cb !== rows) throw new Error(`concat: [${a.shape}] and [${b.shape}] differ in their leading dims`);
  const y = t.act([...a.shape.slice(0, -1), C], needs(a, b));
  for (let r = 0; r < rows; r++) {
    y.data.set(a.data.subarray(r * Ca, (r + 1) * Ca), r * C);
    y.data.set(b.data.subarray(r * Cb, (r + 1) * Cb), r * C + Ca);
  }
  if (y.requiresGrad) {
    t.record(() => {
      const dy = y.grad!;
      t.addGrad(a, (da) => {
        for (let r = 0; r < rows; r++) da.set(dy.subarray(r * C, r * C + Ca), r * Ca);
      });
      t.addGrad(b, (db) => {
        for (let r = 0; r < rows; r++) db.set(dy.subarray(r * C + Ca, (r + 1) * C), r * Cb);
      });
    });
  }
  return y;
}
