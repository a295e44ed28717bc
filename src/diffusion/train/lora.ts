// LoRA adapters for diffusion training: for each adapted linear weight W [out, in] a pair
// A [r, in] (down) and B [out, r] (up), applied through TapeDiffOps' projection hook as
//
//   y = x Wᵀ (+ b) + (alpha / r) · (x Aᵀ) Bᵀ
//
// A starts as PEFT's kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), B at zero, so
// the adapted network starts as the base one. Targets: the UNet's attention projections (to_q,
// to_k, to_v, to_out.0 of attn1 and attn2: what diffusers' train_text_to_image_lora adapts) and,
// with the text encoder, its self_attn q/k/v/out_proj (train_dreambooth_lora's text encoder
// targets).
//
// Files (the inverse of src/formats/sd-lora-keys.ts, read back by src/diffusion/lora.ts):
//   peft   unet.<module>.lora_A.weight / lora_B.weight (text_encoder.<module>... for the encoder),
//          no alpha tensor: the scale alpha / r is folded into B, so every reader (diffusers,
//          which takes alpha = r for PEFT files without alphas) computes the same weight.
//   kohya  lora_unet_<module with _>.lora_down.weight / lora_up.weight / alpha (lora_te_ for the
//          SD 1/2 text encoder, lora_te1_ / lora_te2_ for SDXL's two).

import { writeSafetensors } from '../../formats/safetensors.ts';
import { kohyaFlatten, type LoraComponent } from '../../formats/sd-lora-keys.ts';
import { add, linear, Var } from '../../tensor/autograd.ts';
import { scale } from '../../tensor/autograd-image.ts';
import { TrainError } from '../../train/errors.ts';
import type { TrainRng } from '../../train/rng.ts';
import type { DiffProjection } from '../tape-ops.ts';

export interface LoraOptions {
  rank: number;
  alpha: number;
}

/** The UNet's attention projections (diffusers' target_modules to_k, to_q, to_v, to_out.0). */
export const UNET_LORA_RE = /\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.weight$/;
/** The CLIP text encoder's attention projections (q_proj, k_proj, v_proj, out_proj). */
export const TEXT_LORA_RE = /\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.weight$/;

export interface LoraAdapter {
  component: LoraComponent;
  /** The adapted weight (down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight). */
  weight: string;
  /** [r, in] */
  down: Var;
  /** [out, r] */
  up: Var;
}

/** The adapters of one run, by component and weight name. */
export class LoraSet {
  readonly adapters = new Map<string, LoraAdapter>();
  readonly scale: number;

  constructor(readonly opts: LoraOptions) {
    if (!Number.isInteger(opts.rank) || opts.rank < 1) throw new TrainError(`--lora-rank must be an integer >= 1, got ${opts.rank}`);
    if (!Number.isFinite(opts.alpha) || opts.alpha <= 0) throw new TrainError(`--lora-alpha must be a number > 0, got ${opts.alpha}`);
    this.scale = opts.alpha / opts.rank;
  }

  /** Adds an adapter for each weight `targets` matches; `shapes` are [out, in]. Returns how many. */
  add(component: LoraComponent, shapes: Map<string, readonly number[]>, targets: RegExp, rng: TrainRng): number {
    let n = 0;
    const r = this.opts.rank;
    for (const [name, shape] of [...shapes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!targets.test(name)) continue;
      if (shape.length !== 2) throw new TrainError(`LoRA target ${component}.${name} is not a linear weight (shape [${shape}])`);
      const [out, inp] = shape as [number, number];
      const down = new Float32Array(r * inp);
      const bound = 1 / Math.sqrt(inp);
      for (let i = 0; i < down.length; i++) down[i] = (2 * rng.uniform() - 1) * bound;
      this.adapters.set(key(component, name), { component, weight: name, down: Var.param(down, [r, inp]), up: Var.param(new Float32Array(out * r), [out, r]) });
      n++;
    }
    if (n === 0) throw new TrainError(`no LoRA target in ${component} (looked for ${targets.source})`);
    return n;
  }

  get(component: LoraComponent, weight: string): LoraAdapter | undefined {
    return this.adapters.get(key(component, weight));
  }

  /** The trainable tensors by checkpoint name: <component>.<module>.lora_A.weight / lora_B.weight. */
  params(): Map<string, Var> {
    const m = new Map<string, Var>();
    for (const a of this.adapters.values()) {
      const mod = `${a.component}.${a.weight.slice(0, -'.weight'.length)}`;
      m.set(`${mod}.lora_A.weight`, a.down);
      m.set(`${mod}.lora_B.weight`, a.up);
    }
    return m;
  }

  /** The projection hook of one component: plain linear for weights without an adapter. */
  hook(component: LoraComponent): DiffProjection {
    // TapeDiffOps hands the hook rows x [n, in]
    return (t, x, w, b) => {
      const a = this.get(component, w.name);
      const y = linear(t, x, w.v, b?.v ?? null);
      return a ? add(t, y, scale(t, linear(t, linear(t, x, a.down), a.up), this.scale)) : y;
    };
  }

  /** W + (alpha / r) · B A for every adapter, [out, in] f32: the merged weights (for tests and full exports). */
  merged(component: LoraComponent, base: (weight: string) => Float32Array): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const a of this.adapters.values()) {
      if (a.component !== component) continue;
      const [N, r] = a.up.shape as [number, number], K = a.down.shape[1]!;
      const w = base(a.weight).slice();
      for (let i = 0; i < N; i++) {
        for (let k = 0; k < K; k++) {
          let s = 0;
          for (let j = 0; j < r; j++) s += a.up.data[i * r + j]! * a.down.data[j * K + k]!;
          w[i * K + k] = Math.fround(w[i * K + k]! + this.scale * s);
        }
      }
      out.set(a.weight, w);
    }
    return out;
  }

  /**
   * Writes the adapters as a LoRA .safetensors in PEFT or kohya naming. `sdxl`: the text encoder
   * prefixes of SDXL's kohya files (lora_te1_ / lora_te2_).
   */
  write(file: string, naming: 'peft' | 'kohya', sdxl = false): void {
    const entries: { name: string; dtype: 'F32'; shape: readonly number[]; data: Uint8Array }[] = [];
    const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const sorted = [...this.adapters.values()].sort((a, b) => (key(a.component, a.weight) < key(b.component, b.weight) ? -1 : 1));
    for (const a of sorted) {
      const mod = a.weight.slice(0, -'.weight'.length);
      if (naming === 'peft') {
        const up = a.up.data.map((v) => Math.fround(v * this.scale));
        entries.push({ name: `${a.component}.${mod}.lora_A.weight`, dtype: 'F32', shape: a.down.shape, data: bytes(a.down.data.slice()) });
        entries.push({ name: `${a.component}.${mod}.lora_B.weight`, dtype: 'F32', shape: a.up.shape, data: bytes(up) });
      } else {
        const pre = a.component === 'unet' ? 'lora_unet' : a.component === 'text_encoder_2' ? 'lora_te2' : sdxl ? 'lora_te1' : 'lora_te';
        const base = `${pre}_${kohyaFlatten(mod)}`;
        entries.push({ name: `${base}.lora_down.weight`, dtype: 'F32', shape: a.down.shape, data: bytes(a.down.data.slice()) });
        entries.push({ name: `${base}.lora_up.weight`, dtype: 'F32', shape: a.up.shape, data: bytes(a.up.data.slice()) });
        entries.push({ name: `${base}.alpha`, dtype: 'F32', shape: [], data: bytes(Float32Array.of(this.opts.alpha)) });
      }
    }
    writeSafetensors(file, entries, { format: 'pt' });
  }
}

const key = (component: LoraComponent, weight: string) => `${component}\0${weight}`;
