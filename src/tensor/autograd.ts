// Reverse-mode autograd: a tape of backward closures over the training kernels.
//
// A Var is a flat f32 buffer with a shape. Ops run their forward kernel at once and, when an
// input needs a gradient, push a closure that runs the backward kernels. `backward()` runs the
// tape in reverse. Gradients ACCUMULATE into `grad`: the first contribution to an activation's
// gradient overwrites a fresh buffer (no zero fill), later ones are added (a residual stream
// gets one from the block and one from the skip). Parameter gradients are persistent buffers
// that accumulate across micro-batches and are zeroed by the optimiser.
//
// Buffers come from an Arena: the same model runs the same shapes every step, so after the
// first step no activation or gradient buffer is allocated again (a 100 MB logits buffer
// allocated per step would cost more in page faults than the GEMM that fills it).

import type { RopeOptions } from './backend.ts';
import type { AttnTrainOptions, Gelu, TrainKernels } from './train-kernels.ts';

export class Var {
  /** The gradient; valid when gradInit is true. */
  grad: Float32Array | null = null;
  gradInit = false;
  constructor(
    public data: Float32Array,
    readonly shape: readonly number[],
    readonly requiresGrad: boolean,
  ) {}

  get size(): number {
    return this.data.length;
  }

  /** A trainable parameter: persistent zeroed gradient, accumulated into. */
  static param(data: Float32Array, shape: readonly number[]): Var {
    const v = new Var(data, shape, true);
    v.grad = new Float32Array(data.length);
    v.gradInit = true;
    return v;
  }
}

/** Reuses buffers by size from one step to the next. */
export class Arena {
  private free = new Map<number, Float32Array[]>();
  private used: Float32Array[] = [];
  bytes = 0;

  get(n: number): Float32Array {
    const list = this.free.get(n);
    const a = list && list.length > 0 ? list.pop()! : this.fresh(n);
    this.used.push(a);
    return a;
  }

  private fresh(n: number): Float32Array {
    this.bytes += n * 4;
    return new Float32Array(n);
  }

  /** Every buffer handed out since the last reset becomes free again. */
  reset(): void {
    for (const a of this.used) {
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      list.push(a);
    }
    this.used = [];
  }
}

export class Tape {
  private back: Array<() => void> = [];
  readonly arena = new Arena();
  /** When false, ops do not record (evaluation). */
  recording = true;

  constructor(readonly k: TrainKernels) {}

  /** A new activation (uninitialised data). */
  act(shape: readonly number[], requiresGrad: boolean): Var {
    let n = 1;
    for (const d of shape) n *= d;
    return new Var(this.arena.get(n), shape, requiresGrad && this.recording);
  }

  record(fn: () => void): void {
    if (this.recording) this.back.push(fn);
  }

  /** Runs the recorded backward closures in reverse order and clears the tape. */
  backward(): void {
    for (let i = this.back.length - 1; i >= 0; i--) this.back[i]!();
    this.back = [];
  }

  /** Frees every activation of the step (call after backward / evaluation). */
  reset(): void {
    this.back = [];
    this.arena.reset();
  }

  /**
   * Adds a gradient contribution to v: `write(dst)` fills dst (overwrite semantics). The
   * first contribution goes straight into a fresh buffer; later ones through a temporary.
   */
  addGrad(v: Var, write: (dst: Float32Array) => void): void {
    if (!v.requiresGrad) return;
    if (!v.gradInit) {
      v.grad = this.arena.get(v.size);
      write(v.grad);
      v.gradInit = true;
    } else {
      const tmp = this.arena.get(v.size);
      write(tmp);
      this.k.axpy(1, tmp, v.grad!);
    }
  }

  /**
   * Gradient contributions to several vars from one kernel call (overwrite semantics):
   * `write(dsts)` fills dsts[i] for vs[i]. A var's first contribution is written straight into
   * its fresh gradient buffer; later ones go through a temporary that is then added.
   */
  addGrads(vs: readonly Var[], write: (dsts: Float32Array[]) => void): void {
    const dsts = vs.map((v) => (v.requiresGrad && !v.gradInit ? this.gradOut(v) : this.arena.get(v.size)));
    const accumulate = vs.map((v, i) => v.requiresGrad && v.grad !== dsts[i]);
    write(dsts);
    vs.forEach((v, i) => {
      if (accumulate[i]) this.k.axpy(1, dsts[i]!, v.grad!);
    });
  }

  /**
   * Passes the gradient g on to v unchanged: v's first contribution shares the buffer (no
   * copy). Safe because every backward closure that reads a shared buffer runs before any that
   * adds into it (those were recorded earlier).
   */
  shareGrad(v: Var, g: Float32Array): void {
    if (!v.requiresGrad) return;
    if (!v.gradInit) {
      v.grad = g;
      v.gradInit = true;
    } else this.k.axpy(1, g, v.grad!);
  }

  /** The gradient buffer of v for a kernel with beta semantics: fresh (unfilled) on first use. */
  gradOut(v: Var): Float32Array {
    if (!v.gradInit) {
      v.grad = this.arena.get(v.size);
      v.gradInit = true;
    }
    return v.grad!;
  }

  /** The gradient of v for an accumulate-style kernel (beta / +=): zero-filled on first use. */
  gradAcc(v: Var): Float32Array {
    if (!v.gradInit) {
      v.grad = this.arena.get(v.size);
      v.grad.fill(0);
      v.gradInit = true;
    }
    return v.grad!;
  }
}

const needs = (...vs: (Var | null | undefined)[]): boolean => vs.some((v) => v?.requiresGrad);

/**
 * y[n, out] = x[n, in] . W (+ b[out]), W stored [out, in] (outIn: nn.Linear) or [in, out]
 * (GPT-2's Conv1D); the transposes go to the GEMM.
 */
function affine(t: Tape, x: Var, w: Var, b: Var | null, outIn: boolean, op: string): Var {
  const n = x.shape[0]!, K = x.shape[1]!, N = outIn ? w.shape[0]! : w.shape[1]!;
  if ((outIn ? w.shape[1] : w.shape[0]) !== K) throw new Error(`${op}: x is [${x.shape}] but w is [${w.shape}]`);
  const ldw = outIn ? K : N;
  const y = t.act([n, N], needs(x, w, b));
  t.k.gemm(false, outIn, n, N, K, 1, x.data, K, w.data, ldw, 0, y.data, N);
  if (b) t.k.addRows(y.data, b.data, 1, n, N, y.data); // the same adds as an axpy per row, in one call
  if (y.requiresGrad) {
    t.record(() => {
      const dy = y.grad!;
      // dx[n, in] (+)= dy[n, out] . W^T
      if (x.requiresGrad) t.k.gemm(false, !outIn, n, K, N, 1, dy, N, w.data, ldw, x.gradInit ? 1 : 0, t.gradOut(x), K);
      if (w.requiresGrad) {
        if (outIn) t.k.gemm(true, false, N, K, n, 1, dy, N, x.data, K, 1, t.gradAcc(w), K); // dw[out, in] += dy^T . x
        else t.k.gemm(true, false, K, N, n, 1, x.data, K, dy, N, 1, t.gradAcc(w), N); //     dw[in, out] += x^T . dy
      }
      if (b?.requiresGrad) {
        // db += the column sums of dy (one threaded call rather than one axpy per row)
        const sums = t.arena.get(N);
        t.k.sumRows(dy, 1, n, N, sums);
        t.k.axpy(1, sums, t.gradAcc(b));
      }
    });
  }
  return y;
}

/** y[n, out] = x[n, in] . w[out, in]^T (+ b[out]). */
export function linear(t: Tape, x: Var, w: Var, b: Var | null = null): Var {
  return affine(t, x, w, b, true, 'linear');
}

/** GPT-2's Conv1D: y[n, out] = x[n, in] . w[in, out] + b[out] (weights stored input-major). */
export function conv1d(t: Tape, x: Var, w: Var, b: Var): Var {
  return affine(t, x, w, b, false, 'conv1d');
}

/** Splits the columns of x[n, sum(sizes)] into contiguous pieces [n, sizes[i]]. */
export function splitCols(t: Tape, x: Var, sizes: readonly number[]): Var[] {
  const n = x.shape[0]!, C = x.shape[1]!;
  if (sizes.reduce((a, b) => a + b, 0) !== C) throw new Error(`splitCols: sizes ${sizes} do not add up to ${C} columns`);
  let off = 0;
  const parts = sizes.map((w) => {
    const p = t.act([n, w], needs(x));
    for (let r = 0; r < n; r++) p.data.set(x.data.subarray(r * C + off, r * C + off + w), r * w);
    off += w;
    return p;
  });
  if (x.requiresGrad) {
    // recorded before the pieces' consumers, so it runs after all of them
    t.record(() =>
      t.addGrad(x, (dx) => {
        let o = 0;
        parts.forEach((p, i) => {
          const w = sizes[i]!;
          for (let r = 0; r < n; r++) {
            const dst = dx.subarray(r * C + o, r * C + o + w);
            if (p.gradInit) dst.set(p.grad!.subarray(r * w, (r + 1) * w));
            else dst.fill(0);
          }
          o += w;
        });
      }),
    );
  }
  return parts;
}

/** x[n, D] = table[ids[n], :] * scale. */
export function embedding(t: Tape, table: Var, ids: Int32Array, scale = 1): Var {
  const D = table.shape[1]!, V = table.shape[0]!;
  const x = t.act([ids.length, D], needs(table));
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r]!;
    if (id < 0 || id >= V) throw new Error(`embedding: token id ${id} at row ${r} is outside the vocabulary [0, ${V})`);
    x.data.set(table.data.subarray(id * D, (id + 1) * D), r * D);
  }
  if (scale !== 1) t.k.scaleInPlace(x.data, scale);
  if (x.requiresGrad) {
    t.record(() => {
      let dy = x.grad!;
      if (scale !== 1) {
        // x.grad may be a buffer shared with other vars (Tape.shareGrad): scale a copy
        const scaled = t.arena.get(dy.length);
        scaled.set(dy);
        t.k.scaleInPlace(scaled, scale);
        dy = scaled;
      }
      t.k.embeddingBackward(ids, dy, D, t.gradAcc(table));
    });
  }
  return x;
}

export function add(t: Tape, a: Var, b: Var): Var {
  const y = t.act(a.shape, needs(a, b));
  y.data.set(a.data);
  return sum(t, a, b, y);
}

/**
 * a + b written into b's buffer: for a block output that nothing else reads (the residual
 * stream x + f(x)), so no new activation is needed.
 */
export function addInto(t: Tape, a: Var, b: Var): Var {
  return sum(t, a, b, new Var(b.data, b.shape, a.requiresGrad || b.requiresGrad));
}

/** y (holding a or b already) += the other; both inputs get y's gradient unchanged. */
function sum(t: Tape, a: Var, b: Var, y: Var): Var {
  t.k.axpy(1, y.data === b.data ? a.data : b.data, y.data);
  if (y.requiresGrad) {
    t.record(() => {
      t.shareGrad(a, y.grad!);
      t.shareGrad(b, y.grad!);
    });
  }
  return y;
}

/**
 * RMSNorm over rows of x[n, D]. plusOne: Gemma's weights w are stored as (w - 1), the forward
 * uses (1 + w).
 */
export function rmsNorm(t: Tape, x: Var, w: Var, eps: number, plusOne = false): Var {
  const D = w.size, n = x.size / D;
  const y = t.act(x.shape, needs(x, w));
  const rstd = t.arena.get(n);
  let weff = w.data;
  if (plusOne) {
    weff = t.arena.get(D);
    for (let i = 0; i < D; i++) weff[i] = 1 + w.data[i]!;
  }
  t.k.rmsNorm(x.data, weff, n, D, eps, y.data, rstd);
  if (y.requiresGrad) {
    t.record(() => {
      const dw = w.requiresGrad ? t.gradAcc(w) : t.arena.get(D);
      if (x.requiresGrad) t.addGrad(x, (dx) => t.k.rmsNormBackward(x.data, weff, rstd, y.grad!, n, D, dx, dw));
      else t.k.rmsNormBackward(x.data, weff, rstd, y.grad!, n, D, t.arena.get(x.size), dw);
    });
  }
  return y;
}

export function layerNorm(t: Tape, x: Var, w: Var, b: Var | null, eps: number): Var {
  const D = w.size, n = x.size / D;
  const y = t.act(x.shape, needs(x, w, b));
  const mean = t.arena.get(n), rstd = t.arena.get(n);
  t.k.layerNorm(x.data, w.data, b ? b.data : null, n, D, eps, y.data, mean, rstd);
  if (y.requiresGrad) {
    t.record(() => {
      const dw = w.requiresGrad ? t.gradAcc(w) : t.arena.get(D);
      const db = b ? (b.requiresGrad ? t.gradAcc(b) : t.arena.get(D)) : null;
      const run = (dx: Float32Array) => t.k.layerNormBackward(x.data, w.data, mean, rstd, y.grad!, n, D, dx, dw, db);
      if (x.requiresGrad) t.addGrad(x, run);
      else run(t.arena.get(x.size));
    });
  }
  return y;
}

/** silu(g) * u or gelu(g) * u. */
export function gated(t: Tape, g: Var, u: Var, act: 'silu' | Gelu): Var {
  const y = t.act(g.shape, needs(g, u));
  if (act === 'silu') t.k.swiglu(g.data, u.data, y.data);
  else t.k.geglu(g.data, u.data, y.data, act);
  if (y.requiresGrad) {
    t.record(() => {
      t.addGrads([g, u], ([dg, du]) => {
        if (act === 'silu') t.k.swigluBackward(g.data, u.data, y.grad!, dg!, du!);
        else t.k.gegluBackward(g.data, u.data, y.grad!, dg!, du!, act);
      });
    });
  }
  return y;
}

export function gelu(t: Tape, x: Var, approx: Gelu): Var {
  const y = t.act(x.shape, needs(x));
  t.k.gelu(x.data, y.data, approx);
  if (y.requiresGrad) t.record(() => t.addGrad(x, (dx) => t.k.geluBackward(x.data, y.grad!, dx, approx)));
  return y;
}

/** Rotary embedding of x[n, H, D] at positions[n] (a rotated copy). */
export function rope(t: Tape, x: Var, H: number, D: number, positions: Int32Array, opts: RopeOptions): Var {
  const n = positions.length;
  const y = t.act(x.shape, needs(x));
  y.data.set(x.data);
  t.k.rope(y.data, n, H, D, positions, opts, false);
  if (y.requiresGrad) {
    t.record(() =>
      t.addGrad(x, (dx) => {
        dx.set(y.grad!);
        t.k.rope(dx, n, H, D, positions, opts, true);
      }),
    );
  }
  return y;
}

/** Causal packed attention: q [B*T, Hq, D], k/v [B*T, Hkv, D] -> [B*T, Hq, D]. */
export function attention(
  t: Tape, q: Var, k: Var, v: Var, seg: Int32Array, B: number, T: number, Hq: number, Hkv: number, D: number, opts: AttnTrainOptions,
): Var {
  const y = t.act([B * T, Hq * D], needs(q, k, v));
  const lse = t.arena.get(B * T * Hq);
  t.k.attention(q.data, k.data, v.data, seg, B, T, Hq, Hkv, D, opts, y.data, lse);
  if (y.requiresGrad) {
    t.record(() => {
      t.addGrads([q, k, v], ([dq, dk, dv]) =>
        t.k.attentionBackward(q.data, k.data, v.data, seg, y.data, lse, y.grad!, B, T, Hq, Hkv, D, opts, dq!, dk!, dv!),
      );
    });
  }
  return y;
}

/**
 * Softmax cross-entropy of logits [n, V] against targets (-1: ignored). Returns the summed
 * loss; the gradient (times gradScale, e.g. 1 / tokens in the optimiser step) is computed in
 * the same pass into the logits buffer, which nothing reads afterwards.
 */
export function crossEntropy(t: Tape, logits: Var, targets: Int32Array, softCap: number, gradScale: number): number {
  const n = logits.shape[0]!, V = logits.shape[1]!;
  if (!logits.requiresGrad) {
    const scratch = t.arena.get(logits.size);
    return t.k.crossEntropy(logits.data, n, V, targets, softCap, 0, scratch);
  }
  const loss = t.k.crossEntropy(logits.data, n, V, targets, softCap, gradScale, logits.data);
  t.record(() => {
    logits.grad = logits.data;
    logits.gradInit = true;
  });
  return loss;
}

/** cap * tanh(x / cap); the backward recomputes tanh from x (the logits buffer may be overwritten by the loss). */
export function softCap(t: Tape, x: Var, cap: number): Var {
  const y = t.act(x.shape, needs(x));
  const inv = 1 / cap;
  for (let i = 0; i < x.size; i++) y.data[i] = cap * Math.tanh(x.data[i]! * inv);
  if (y.requiresGrad) {
    t.record(() =>
      t.addGrad(x, (dx) => {
        const dy = y.grad!;
        for (let i = 0; i < dx.length; i++) {
          const th = Math.tanh(x.data[i]! * inv);
          dx[i] = dy[i]! * (1 - th * th);
        }
      }),
    );
  }
  return y;
}

/** Rows rows[j] of x, as a new [m, D] activation; the backward adds them back. */
export function gatherRows(t: Tape, x: Var, rows: Int32Array): Var {
  const D = x.shape[1]!;
  const y = t.act([rows.length, D], needs(x));
  rows.forEach((r, j) => y.data.set(x.data.subarray(r * D, (r + 1) * D), j * D));
  if (y.requiresGrad) {
    // an output nobody used (CLIP's pooled row when only the hidden states feed the loss) has no gradient
    t.record(() => {
      if (!y.gradInit) return;
      t.addGrad(x, (dx) => {
        dx.fill(0);
        rows.forEach((r, j) => t.k.axpy(1, y.grad!.subarray(j * D, (j + 1) * D), dx.subarray(r * D, (r + 1) * D)));
      });
    });
  }
  return y;
}

/**
 * Writes y's rows into rows `slots` of `into` (a new [nRows, D] activation when null, whose rows
 * must all be written before it is read). The backward hands y its rows of the gradient.
 */
export function scatterRows(t: Tape, into: Var | null, y: Var, slots: Int32Array, nRows: number): Var {
  const D = y.shape[1]!;
  const buf = into ?? t.act([nRows, D], t.recording);
  slots.forEach((s, j) => buf.data.set(y.data.subarray(j * D, (j + 1) * D), s * D));
  if (y.requiresGrad) {
    t.record(() => {
      if (!buf.gradInit) return; // nothing downstream needed a gradient
      t.addGrad(y, (dy) => slots.forEach((s, j) => dy.set(buf.grad!.subarray(s * D, (s + 1) * D), j * D)));
    });
  }
  return buf;
}

/**
 * Top-k routing of logits[n, E]: p = softmax(row), the k largest p (ties: the lower index)
 * renormalised. The choice is a constant of the backward; the gradient reaches the logits through
 * the renormalised weights and the softmax.
 */
export function topkRoute(t: Tape, logits: Var, k: number): { ids: Int32Array; weights: Var } {
  const n = logits.shape[0]!, E = logits.shape[1]!;
  const probs = new Float64Array(n * E);
  const ids = new Int32Array(n * k);
  const sums = new Float64Array(n);
  const w = t.act([n, k], needs(logits));
  for (let r = 0; r < n; r++) {
    const row = logits.data.subarray(r * E, (r + 1) * E);
    let mx = -Infinity, z = 0;
    for (const v of row) mx = Math.max(mx, v);
    for (let e = 0; e < E; e++) z += (probs[r * E + e] = Math.exp(row[e]! - mx));
    for (let e = 0; e < E; e++) probs[r * E + e]! /= z;
    const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => probs[r * E + b]! - probs[r * E + a]! || a - b);
    let s = 0;
    for (let j = 0; j < k; j++) s += probs[r * E + order[j]!]!;
    sums[r] = s;
    for (let j = 0; j < k; j++) {
      ids[r * k + j] = order[j]!;
      w.data[r * k + j] = probs[r * E + order[j]!]! / s;
    }
  }
  if (w.requiresGrad) {
    t.record(() =>
      t.addGrad(logits, (dl) => {
        const dw = w.grad!;
        const dp = new Float64Array(E);
        for (let r = 0; r < n; r++) {
          // w_j = p_j / S over the chosen experts; then p = softmax(logits)
          dp.fill(0);
          let wdw = 0;
          for (let j = 0; j < k; j++) wdw += w.data[r * k + j]! * dw[r * k + j]!;
          for (let j = 0; j < k; j++) dp[ids[r * k + j]!] = (dw[r * k + j]! - wdw) / sums[r]!;
          let pdp = 0;
          for (let e = 0; e < E; e++) pdp += probs[r * E + e]! * dp[e]!;
          for (let e = 0; e < E; e++) dl[r * E + e] = probs[r * E + e]! * (dp[e]! - pdp);
        }
      }),
    );
  }
  return { ids, weights: w };
}

/** out[r] = sum over j < k of w[r, j] * x[r * k + j], in j order: x [n * k, D], w [n, k]. */
export function combineRows(t: Tape, x: Var, w: Var): Var {
  const n = w.shape[0]!, k = w.shape[1]!, D = x.shape[1]!;
  const out = t.act([n, D], needs(x, w));
  out.data.fill(0);
  for (let r = 0; r < n; r++) {
    const dst = out.data.subarray(r * D, (r + 1) * D);
    for (let j = 0; j < k; j++) t.k.axpy(w.data[r * k + j]!, x.data.subarray((r * k + j) * D, (r * k + j + 1) * D), dst);
  }
  if (out.requiresGrad) {
    t.record(() => {
      const dout = out.grad!;
      t.addGrad(x, (dx) => {
        for (let r = 0; r < n; r++) {
          const src = dout.subarray(r * D, (r + 1) * D);
          for (let j = 0; j < k; j++) {
            const d = dx.subarray((r * k + j) * D, (r * k + j + 1) * D), wj = w.data[r * k + j]!;
            for (let c = 0; c < D; c++) d[c] = wj * src[c]!;
          }
        }
      });
      t.addGrad(w, (dw) => {
        for (let r = 0; r < n; r++) {
          const src = dout.subarray(r * D, (r + 1) * D);
          for (let j = 0; j < k; j++) {
            const xr = x.data.subarray((r * k + j) * D, (r * k + j + 1) * D);
            let dot = 0;
            for (let c = 0; c < D; c++) dot += src[c]! * xr[c]!;
            dw[r * k + j] = dot;
          }
        }
      });
    });
  }
  return out;
}
