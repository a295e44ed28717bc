// TapeDiffOps: the DiffOps of ops.ts on the autograd tape, so training runs the very networks
// inference runs (unet.ts, vae.ts, clip-text.ts), as TapeOps does for the LLM families
// (src/train/tape-ops.ts).
//
// Differences from BackendDiffOps are the tape's: no op consumes its input in place (a value the
// network no longer reads may still be read by a recorded backward: a ResNet's input is both the
// skip and the GroupNorm's saved input), activations live in the tape's arena, and every linear
// layer (the attention projections, the feed-forward, the time and text embeddings, the linear
// proj_in / proj_out of SDXL-style transformers) goes through the trainer's `project` hook (LoRA).
// Convolutions, the 1x1 convolution proj_in / proj_out of SD 1.x included, are convolutions.
//
// Weights are DiffWeights: Vars in the inference layout (conv weights [Co, kh, kw, Ci], linear
// weights [out, in]) under their diffusers / transformers names. A frozen weight is a Var with
// requiresGrad false: its weight-gradient GEMMs are never run.

import { type Tape, Var, add, attention, embedding, gated, gatherRows, gelu, layerNorm, linear, splitCols } from '../tensor/autograd.ts';
import { addPerBatch, concatLast, constant, conv2d, groupNorm, mha, pointAct, scale, upsample2x, view } from '../tensor/autograd-image.ts';
import type { Conv2dOptions } from '../tensor/backend.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { DiffAct, DiffOps, Params } from './ops.ts';

/** One parameter: its diffusers / transformers name and its values (inference layout). */
export interface DiffWeight {
  name: string;
  v: Var;
}

/**
 * A linear layer x . w^T (+ b): the trainer's hook (LoRA adapters). x is always 2-D [rows, in]
 * (TapeDiffOps flattens the leading dims and restores them on the result), w.v is [out, in], and
 * the result must be [rows, out].
 */
export type DiffProjection = (t: Tape, x: Var, w: DiffWeight, b: DiffWeight | undefined) => Var;

/** The plain linear layer. */
export const plainProjection: DiffProjection = (t, x, w, b) => linear(t, x, w.v, b ? b.v : null);

export class TapeDiffOps implements DiffOps<Var, DiffWeight> {
  constructor(
    readonly t: Tape,
    private readonly project: DiffProjection = plainProjection,
  ) {}

  shape(x: Var): readonly number[] {
    return x.shape;
  }

  constant(values: Float32Array, shape: readonly number[]): Var {
    return constant(this.t, values, shape);
  }

  embedding(table: DiffWeight, ids: Int32Array, shape: readonly number[]): Var {
    return view(this.t, embedding(this.t, table.v, ids), shape);
  }

  linear(x: Var, w: DiffWeight, b?: DiffWeight): Var {
    const [N, K] = w.v.shape as [number, number];
    const last = x.shape[x.shape.length - 1]!;
    if (w.v.shape.length !== 2 || last !== K) throw new Error(`linear ${w.name}: x [${x.shape}] does not fit the weight [${w.v.shape}]`);
    const y = this.project(this.t, view(this.t, x, [x.size / K, K]), w, b);
    return view(this.t, y, [...x.shape.slice(0, -1), N]);
  }

  conv2d(x: Var, w: DiffWeight, b: DiffWeight | undefined, opts: Conv2dOptions): Var {
    return conv2d(this.t, x, w.v, b ? b.v : null, opts);
  }

  groupNorm(x: Var, w: DiffWeight, b: DiffWeight, groups: number, eps: number, silu: boolean): Var {
    return groupNorm(this.t, x, w.v, b.v, groups, eps, silu);
  }

  layerNorm(x: Var, w: DiffWeight, b: DiffWeight, eps: number): Var {
    return layerNorm(this.t, x, w.v, b.v, eps);
  }

  add(a: Var, b: Var): Var {
    if (a.size !== b.size) throw new Error(`add: [${a.shape}] and [${b.shape}] differ in shape`);
    return add(this.t, a, b);
  }

  addPerBatch(x: Var, v: Var): Var {
    return addPerBatch(this.t, x, v);
  }

  scale(x: Var, s: number): Var {
    return scale(this.t, x, s);
  }

  act(x: Var, a: DiffAct): Var {
    if (a === 'silu' || a === 'quick_gelu') return pointAct(this.t, x, a);
    return gelu(this.t, x, a === 'gelu' ? 'erf' : 'tanh');
  }

  geglu(x: Var): Var {
    const C2 = x.shape[x.shape.length - 1]!, F = C2 / 2;
    const [h, gate] = splitCols(this.t, view(this.t, x, [x.size / C2, C2]), [F, F]) as [Var, Var];
    return view(this.t, gated(this.t, gate, h, 'erf'), [...x.shape.slice(0, -1), F]);
  }

  attention(q: Var, k: Var, v: Var, heads: number, scale_: number, causal: boolean): Var {
    if (!causal) return mha(this.t, q, k, v, heads, scale_);
    // Causal self-attention (CLIP's text encoder): the LLMs' packed causal kernel with one
    // document per sequence (seg all zero) is exactly that, on the same [B*T, H, D] layout.
    const [B, T, C] = q.shape as [number, number, number];
    if (k.shape[1] !== T || v.shape[1] !== T) throw new Error(`attention: causal attention needs as many keys as queries, got q [${q.shape}], k [${k.shape}]`);
    const D = C / heads;
    const y = attention(this.t, q, k, v, new Int32Array(B * T), B, T, heads, heads, D, { scale: scale_, softCap: 0, window: 0 });
    return view(this.t, y, [B, T, C]);
  }

  upsample2x(x: Var, size?: readonly [number, number]): Var {
    if (size && (size[0] !== 2 * x.shape[1]! || size[1] !== 2 * x.shape[2]!)) {
      throw new Error(`training resizes only by 2x: latents of ${x.shape[1]}x${x.shape[2]} at this level would need ${size[0]}x${size[1]}; train at a resolution whose latents are a multiple of 2^(UNet levels - 1)`);
    }
    return upsample2x(this.t, x);
  }

  concat(a: Var, b: Var): Var {
    return concatLast(this.t, a, b);
  }

  split(x: Var, sizes: readonly number[]): Var[] {
    const C = x.shape[x.shape.length - 1]!;
    if (sizes.reduce((s, n) => s + n, 0) !== C) throw new Error(`split: sizes ${sizes} do not add up to ${C}`);
    const lead = x.shape.slice(0, -1);
    return splitCols(this.t, view(this.t, x, [x.size / C, C]), sizes).map((p, i) => view(this.t, p, [...lead, sizes[i]!]));
  }

  reshape(x: Var, shape: readonly number[]): Var {
    return view(this.t, x, shape);
  }

  gatherRows(x: Var, rows: Int32Array): Var {
    const C = x.shape[x.shape.length - 1]!;
    return gatherRows(this.t, view(this.t, x, [x.size / C, C]), rows);
  }
}

/** A component's parameters as DiffWeights, by name. */
export class DiffWeights implements Params<DiffWeight> {
  constructor(
    readonly component: string,
    readonly m: Map<string, DiffWeight>,
  ) {}

  get(name: string): DiffWeight {
    const w = this.m.get(name);
    if (!w) throw new Error(`${this.component}: no parameter "${name}"`);
    return w;
  }

  has(name: string): boolean {
    return this.m.has(name);
  }
}

/**
 * f32 copies of the named tensors as Vars: Var.param (a zeroed, accumulating gradient) where
 * `trainable(name)`, a constant Var (requiresGrad false) otherwise.
 */
export function diffWeightsFromTensors(
  component: string, params: Params<Tensor> | Map<string, Tensor>, names: Iterable<string>, trainable: (name: string) => boolean,
): DiffWeights {
  const m = new Map<string, DiffWeight>();
  for (const name of names) {
    const tns: Tensor | undefined = params.get(name); // Params.get throws naming the tensor; a Map gives undefined
    if (!tns) throw new Error(`${component}: no tensor "${name}"`);
    const data = Float32Array.from(tns.toF32());
    m.set(name, { name, v: trainable(name) ? Var.param(data, tns.shape) : new Var(data, tns.shape, false) });
  }
  return new DiffWeights(component, m);
}
