// The ops the diffusion networks (clip-text.ts, vae.ts, unet.ts) are written against, like
// src/models/ops.ts for the LLM families: each network is defined once, generic in the
// activation handle T and the weight handle W, so the autograd tape can implement the same
// interface for training (issue 22) and training and inference cannot disagree.
//
// Layouts. Images are NHWC, [B, H, W, C]; token sequences [B, T, C] (the Backend's reasons for
// channels last are in src/tensor/backend.ts). A transformer block inside the UNet reads an
// image [B, H, W, C] as tokens [B, H * W, C] with `reshape`, no copy. Convolution weights are
// [C_out, kh, kw, C_in] (permuted at load, load.ts); linear weights [out, in] as in the files.
//
// Ownership: ops return new values and keep their inputs, except those marked "consumed", which
// may reuse their first input's memory (so it must not be read afterwards).

import type { Backend, Conv2dOptions } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';

export type DiffAct = 'silu' | 'gelu' | 'gelu_tanh' | 'quick_gelu';

export interface DiffOps<T, W> {
  /** The shape of an activation. */
  shape(x: T): readonly number[];
  /** A constant activation from host values (timestep embeddings, time ids). */
  constant(values: Float32Array, shape: readonly number[]): T;

  /** table[ids[i]] rows: [ids.length, D], shaped `shape` ([..., D]). */
  embedding(table: W, ids: Int32Array, shape: readonly number[]): T;
  /** x[..., in] . w[out, in]^T (+ b) -> [..., out]. */
  linear(x: T, w: W, b?: W): T;
  /** x[B, H, W, Ci] conv w[Co, kh, kw, Ci] (+ b) -> [B, OH, OW, Co]. */
  conv2d(x: T, w: W, b: W | undefined, opts: Conv2dOptions): T;
  /** GroupNorm over x[B, ..., C] (then SiLU when `silu`). */
  groupNorm(x: T, w: W, b: W, groups: number, eps: number, silu: boolean): T;
  /** LayerNorm over the last dim. */
  layerNorm(x: T, w: W, b: W, eps: number): T;

  /** a + b, same shape (a consumed). */
  add(a: T, b: T): T;
  /** x[B, ..., C] + v[B, C] broadcast over the middle dims (x consumed): a time embedding. */
  addPerBatch(x: T, v: T): T;
  /** x * s (consumed). */
  scale(x: T, s: number): T;
  /** act(x) (consumed). quick_gelu is x * sigmoid(1.702 x) (CLIP); gelu is the erf form. */
  act(x: T, a: DiffAct): T;
  /** diffusers' GEGLU: x[..., 2F] = [h, gate] -> h * gelu(gate) [..., F] (erf GELU). */
  geglu(x: T): T;

  /**
   * Multi-head attention: q [B, Tq, H * D], k and v [B, Tk, H * D] -> [B, Tq, H * D], scores
   * scaled by `scale`; `causal` for the text encoder.
   */
  attention(q: T, k: T, v: T, heads: number, scale: number, causal: boolean): T;

  /**
   * Nearest 2x upsampling of [B, H, W, C]; with `size`, nearest resizing to [B, size[0],
   * size[1], C] as PyTorch's F.interpolate(size=..., mode="nearest") picks source pixels
   * (diffusers' UNet sizes its upsamplers to the skips when the latents are not a multiple of
   * 2^(levels - 1)).
   */
  upsample2x(x: T, size?: readonly [number, number]): T;
  /** Concatenation along the last dim (channels): [..., Ca] ++ [..., Cb]. */
  concat(a: T, b: T): T;
  /** Pieces along the last dim. */
  split(x: T, sizes: readonly number[]): T[];
  /** The same elements, row-major, in another shape. */
  reshape(x: T, shape: readonly number[]): T;
  /** Rows of x seen as [N, C]: [rows.length, C]. */
  gatherRows(x: T, rows: Int32Array): T;
}

/**
 * The source index of each of `out` output positions resized from `inp` by PyTorch's nearest
 * interpolation (aten's nearest_idx): identity for equal sizes, i >> 1 for twice the size, else
 * min(floor(i * s), inp - 1) with s = inp / out and the product both in float32.
 */
export function nearestSources(inp: number, out: number): Int32Array {
  const idx = new Int32Array(out);
  const s = Math.fround(inp / out);
  for (let i = 0; i < out; i++) idx[i] = out === inp ? i : out === 2 * inp ? i >> 1 : Math.min(Math.floor(Math.fround(i * s)), inp - 1);
  return idx;
}

// ---- inference on a Backend -------------------------------------------------------------------

/**
 * DiffOps on a Backend: every output is a fresh f32 tensor (a UNet keeps many values alive at
 * once, its skip connections; the GC reclaims the rest), consumed inputs are reused in place.
 */
export class BackendDiffOps implements DiffOps<Tensor, Tensor> {
  constructor(readonly be: Backend) {}

  shape(x: Tensor): readonly number[] {
    return x.shape;
  }

  constant(values: Float32Array, shape: readonly number[]): Tensor {
    return Tensor.fromF32(values.slice(), shape);
  }

  embedding(table: Tensor, ids: Int32Array, shape: readonly number[]): Tensor {
    const out = Tensor.zeros(shape);
    this.be.embedding(table, ids, out.reshape([ids.length, table.shape[1]!]));
    return out;
  }

  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    // A linear layer over rows is a 1x1 convolution of a [1, rows, 1, in] image: the cpu
    // backend runs that on its packed, blocked sgemm (f32 weights; about twice the LLM matmul's
    // rate at these row counts, which are thousands of pixels rather than a few tokens) or its
    // f32-accumulating matmul (f16, bf16), with the bias added in the same call.
    const [N, K] = w.shape as [number, number];
    const rows = x.numel / K;
    const out = Tensor.zeros([...x.shape.slice(0, -1), N]);
    this.be.conv2d(x.reshape([1, rows, 1, K]), w.reshape([N, 1, 1, K]), b ?? null, out.reshape([1, rows, 1, N]), { stride: 1, pad: 0 });
    return out;
  }

  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: Conv2dOptions): Tensor {
    const [B, H, W] = x.shape as [number, number, number, number];
    const [Co, KH, KW] = w.shape as [number, number, number, number];
    const pe = opts.padEnd ?? opts.pad;
    const OH = Math.floor((H + opts.pad + pe - KH) / opts.stride) + 1, OW = Math.floor((W + opts.pad + pe - KW) / opts.stride) + 1;
    const out = Tensor.zeros([B, OH, OW, Co]);
    this.be.conv2d(x, w, b ?? null, out, opts);
    return out;
  }

  groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number, silu: boolean): Tensor {
    const out = Tensor.zeros(x.shape);
    this.be.groupNorm(x, w, b, groups, eps, silu, out);
    return out;
  }

  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
    const out = Tensor.zeros(x.shape);
    this.be.layerNorm(mat(x), w, b, eps, mat(out));
    return out;
  }

  add(a: Tensor, b: Tensor): Tensor {
    if (a.numel !== b.numel) throw new Error(`add: ${a} and ${b} differ in shape`);
    this.be.add(mat(a), mat(b).reshape(mat(a).shape), mat(a));
    return a;
  }

  addPerBatch(x: Tensor, v: Tensor): Tensor {
    const B = x.shape[0]!, C = x.shape[x.ndim - 1]!;
    const rows = x.numel / (B * C);
    for (let n = 0; n < B; n++) {
      const xb = x.reshape([B * rows, C]).narrow(n * rows, rows);
      this.be.add(xb, v.reshape([B, C]).narrow(n, 1).reshape([C]), xb);
    }
    return x;
  }

  scale(x: Tensor, s: number): Tensor {
    this.be.scale(mat(x), s, mat(x));
    return x;
  }

  act(x: Tensor, a: DiffAct): Tensor {
    const m = mat(x);
    if (a === 'silu') this.be.silu(m, m);
    else if (a === 'gelu' || a === 'gelu_tanh') this.be.gelu(m, m, a === 'gelu' ? 'erf' : 'tanh');
    else {
      // x * sigmoid(1.702 x) = silu(1.702 x) / 1.702
      this.be.scale(m, 1.702, m);
      this.be.silu(m, m);
      this.be.scale(m, 1 / 1.702, m);
    }
    return x;
  }

  geglu(x: Tensor): Tensor {
    const C2 = x.shape[x.ndim - 1]!, F = C2 / 2;
    const rows = x.numel / C2;
    const m = mat(x);
    const out = Tensor.zeros([...x.shape.slice(0, -1), F]);
    this.be.geglu(m.view([rows, F], [C2, 1], F), m.view([rows, F], [C2, 1], 0), mat(out), 'erf');
    return out;
  }

  attention(q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number, causal: boolean): Tensor {
    const [B, Tq, C] = q.shape as [number, number, number];
    const Tk = k.shape[1]!, D = C / heads;
    const hv = (t: Tensor, T: number) => t.view([B, heads, T, D], [T * C, D, C, 1]);
    const out = Tensor.zeros([B, Tq, C]);
    this.be.attention(hv(q, Tq), hv(k, Tk), hv(v, Tk), hv(out, Tq), scale, causal);
    return out;
  }

  upsample2x(x: Tensor, size?: readonly [number, number]): Tensor {
    const [B, H, W, C] = x.shape as [number, number, number, number];
    if (size && (size[0] !== 2 * H || size[1] !== 2 * W)) {
      const [OH, OW] = size;
      const out = Tensor.zeros([B, OH, OW, C]);
      const src = x.toF32(), dst = out.f32();
      const sy = nearestSources(H, OH), sx = nearestSources(W, OW);
      for (let n = 0; n < B; n++)
        for (let y = 0; y < OH; y++)
          for (let xx = 0; xx < OW; xx++) {
            const s = ((n * H + sy[y]!) * W + sx[xx]!) * C;
            dst.set(src.subarray(s, s + C), ((n * OH + y) * OW + xx) * C);
          }
      return out;
    }
    const out = Tensor.zeros([B, 2 * H, 2 * W, C]);
    this.be.upsample2x(x, out);
    return out;
  }

  concat(a: Tensor, b: Tensor): Tensor {
    const Ca = a.shape[a.ndim - 1]!, Cb = b.shape[b.ndim - 1]!;
    const rows = a.numel / Ca;
    if (b.numel / Cb !== rows) throw new Error(`concat: ${a} and ${b} differ in their leading dims`);
    const out = Tensor.zeros([...a.shape.slice(0, -1), Ca + Cb]);
    const m = mat(out);
    this.be.scale(mat(a), 1, m.view([rows, Ca], [Ca + Cb, 1], 0));
    this.be.scale(mat(b), 1, m.view([rows, Cb], [Ca + Cb, 1], Ca));
    return out;
  }

  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const C = x.shape[x.ndim - 1]!, rows = x.numel / C;
    if (sizes.reduce((s, n) => s + n, 0) !== C) throw new Error(`split: sizes ${sizes} do not add up to ${C}`);
    let off = 0;
    return sizes.map((n) => {
      const out = Tensor.zeros([...x.shape.slice(0, -1), n]);
      this.be.scale(mat(x).view([rows, n], [C, 1], off), 1, mat(out));
      off += n;
      return out;
    });
  }

  reshape(x: Tensor, shape: readonly number[]): Tensor {
    return x.reshape(shape);
  }

  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    const C = x.shape[x.ndim - 1]!;
    const out = Tensor.zeros([rows.length, C]);
    this.be.gatherRows(mat(x), rows, out);
    return out;
  }
}

/** A contiguous tensor as a matrix [rows, last dim]. */
function mat(x: Tensor): Tensor {
  const C = x.shape[x.ndim - 1]!;
  return x.ndim === 2 ? x : x.reshape([x.numel / C, C]);
}

// ---- shared pieces ------------------------------------------------------------------------------

/**
 * diffusers' get_timestep_embedding: for each timestep t and i < dim / 2,
 * f_i = exp(-ln(10000) * i / (dim / 2 - freqShift)); [sin(t f), cos(t f)], or [cos, sin] when
 * flipSinToCos; a zero column when dim is odd. Computed in f32 as torch does: [n, dim].
 */
export function timestepEmbedding(timesteps: readonly number[], dim: number, flipSinToCos: boolean, freqShift: number): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(timesteps.length * dim);
  const freq = new Float32Array(half);
  for (let i = 0; i < half; i++) freq[i] = Math.exp(Math.fround(Math.fround(-Math.log(10000) * i) / (half - freqShift)));
  timesteps.forEach((t, n) => {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(Math.fround(t) * freq[i]!);
      const s = Math.sin(a), c = Math.cos(a);
      out[n * dim + i] = flipSinToCos ? c : s;
      out[n * dim + half + i] = flipSinToCos ? s : c;
    }
  });
  return out;
}

/** A network's parameters by their names in the diffusers / transformers files. */
export interface Params<W> {
  /** The parameter, or an error naming the component and the missing tensor. */
  get(name: string): W;
  has(name: string): boolean;
}

// ---- NCHW <-> NHWC (diffusers' tensors and the torch-compatible generator are NCHW) ---------

/** An NCHW array [B, C, H, W] as an NHWC tensor [B, H, W, C]. */
export function fromNchw(data: Float32Array, shape: readonly [number, number, number, number]): Tensor {
  const [B, C, H, W] = shape;
  const out = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[(b * H * W + p) * C + c] = data[(b * C + c) * H * W + p]!;
  return Tensor.fromF32(out, [B, H, W, C]);
}

/** An NHWC tensor [B, H, W, C] as NCHW values [B, C, H, W]. */
export function toNchw(t: Tensor): Float32Array {
  const [B, H, W, C] = t.shape as [number, number, number, number];
  const x = t.toF32(), out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[(b * C + c) * H * W + p] = x[(b * H * W + p) * C + c]!;
  return out;
}
