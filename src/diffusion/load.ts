// Loading a diffusers pipeline folder:
//   model_index.json
//   text_encoder/   config.json  model[.fp16].safetensors             (transformers)
//   text_encoder_2/ config.json  model[.fp16].safetensors             (SDXL)
//   unet/           config.json  diffusion_pytorch_model[.fp16].safetensors
//   vae/            config.json  diffusion_pytorch_model[.fp16].safetensors
// (a sharded *.safetensors.index.json works in place of each single file).
//
// Weights stay as the file has them, memory-mapped: linear weights are used in place (f32, f16
// or bf16; the matmuls accumulate in f32). Two conversions happen once, here: convolution
// weights are permuted from PyTorch's [C_out, C_in, kh, kw] to the NHWC kernels'
// [C_out, kh, kw, C_in] (a copy in the file's dtype), and 1-D parameters (biases, norm weights,
// a few KiB) are widened to f32, which the elementwise kernels take.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensorsCheckpoint, type Checkpoint } from '../formats/safetensors.ts';
import { bytesFor } from '../tensor/dtype.ts';
import { toF32Tensor } from '../tensor/convert.ts';
import { nativeAvailable } from '../tensor/native.ts';
import { dropPages } from '../tensor/runtime.ts';
import { Tensor } from '../tensor/tensor.ts';
import { clipTextConfig, type ClipTextConfig } from './clip-text.ts';
import type { ClipTokenizer } from './clip-tokenizer.ts';
import type { Params } from './ops.ts';
import { unetConfig, type UNetConfig } from './unet.ts';
import { vaeConfig, type VaeConfig } from './vae.ts';

export class DiffusionLoadError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'DiffusionLoadError';
  }
}

/**
 * [C_out, C_in, kh, kw] -> [C_out, kh, kw, C_in], in the tensor's own dtype (f32, f16, bf16).
 * Whole elements at a time through typed views (an SD 1.5 UNet's convolutions are 0.4 G
 * elements: a byte loop took 9.5 s of a picture, this about 1 s).
 */
export function convWeightToNhwc(t: Tensor): Tensor {
  const [Co, Ci, KH, KW] = t.shape as [number, number, number, number];
  const es = bytesFor(t.dtype, 1);
  const KK = KH * KW;
  const dst = new Uint8Array(t.numel * es);
  const view = (b: Uint8Array) => (es === 4 ? new Uint32Array(b.buffer, b.byteOffset, t.numel) : es === 2 ? new Uint16Array(b.buffer, b.byteOffset, t.numel) : b);
  const src = view(t.data.byteOffset % es === 0 ? t.data : t.data.slice(0, t.numel * es)), d = view(dst);
  for (let co = 0; co < Co; co++) {
    const base = co * Ci * KK;
    for (let k = 0; k < KK; k++) {
      let o = base + k * Ci, i = base + k;
      for (let ci = 0; ci < Ci; ci++, i += KK) d[o++] = src[i]!;
    }
  }
  return new Tensor(t.dtype, [Co, KH, KW, Ci], dst);
}

/** One component's parameters, converted on first use and kept. */
export class ComponentParams implements Params<Tensor> {
  private readonly cache = new Map<string, Tensor>();
  constructor(
    readonly component: string,
    readonly ckpt: Checkpoint,
  ) {}

  has(name: string): boolean {
    return this.ckpt.has(name);
  }

  get(name: string): Tensor {
    let t = this.cache.get(name);
    if (t) return t;
    if (!this.ckpt.has(name)) throw new DiffusionLoadError(`${this.component}: no tensor "${name}" in ${this.ckpt.files.join(', ')}`);
    const stored = this.ckpt.tensor(name);
    t = stored;
    if (t.ndim === 4) t = convWeightToNhwc(t);
    else if (t.ndim === 1) t = toF32Tensor(t);
    else if (t.data.byteOffset % 4 !== 0) t = new Tensor(t.dtype, t.shape, t.data.slice()); // an aligned copy for the kernels
    // A converted copy replaces the file's bytes for good: give their pages back (a mapped file
    // would otherwise stay resident twice; read again, they fault in from the file).
    if (t !== stored && nativeAvailable()) dropPages(stored.data);
    this.cache.set(name, t);
    return t;
  }

  /** Puts a weight in place of the file's (a LoRA merge, lora.ts), already in the layout get() returns. */
  replace(name: string, t: Tensor): void {
    if (!this.ckpt.has(name)) throw new DiffusionLoadError(`${this.component}: no tensor "${name}" to replace`);
    this.cache.set(name, t);
  }
}

export interface Component<C> {
  /** The component folder. */
  dir: string;
  config: C;
  params: ComponentParams;
}

function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DiffusionLoadError(`${what}: cannot read ${path} (${(e as Error).message})`);
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not a JSON object');
    return j as Record<string, unknown>;
  } catch (e) {
    throw new DiffusionLoadError(`${what}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The weights file of a component folder: `<base>[.variant].safetensors` or its
 * `.safetensors.index.json`. Without a variant the plain name wins, and a folder that only has
 * the fp16 variant (as some repositories ship) loads that.
 */
export function componentWeightsFile(dir: string, base: string, variant?: string): string {
  const names = (v?: string) => {
    const stem = v ? `${base}.${v}` : base;
    return [`${stem}.safetensors`, `${stem}.safetensors.index.json`];
  };
  const tries = variant ? names(variant) : [...names(), ...names('fp16')];
  for (const n of tries) if (existsSync(join(dir, n))) return join(dir, n);
  throw new DiffusionLoadError(`${dir}: no weights file (looked for ${tries.join(', ')})`);
}

function openComponent<C>(root: string, sub: string, base: string, parse: (j: Record<string, unknown>) => C, variant?: string): Component<C> {
  const dir = join(root, sub);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new DiffusionLoadError(`${root}: the pipeline has no "${sub}" folder`);
  const config = (() => {
    const j = readJson(join(dir, 'config.json'), sub);
    try {
      return parse(j);
    } catch (e) {
      throw new DiffusionLoadError(`${sub}/config.json: ${(e as Error).message}`);
    }
  })();
  return { dir, config, params: new ComponentParams(sub, openSafetensorsCheckpoint(componentWeightsFile(dir, base, variant))) };
}

export const openTextEncoder = (root: string, sub = 'text_encoder', variant?: string): Component<ClipTextConfig> =>
  openComponent(root, sub, 'model', clipTextConfig, variant);
export const openUNet = (root: string, variant?: string): Component<UNetConfig> => openComponent(root, 'unet', 'diffusion_pytorch_model', unetConfig, variant);
export const openVae = (root: string, variant?: string): Component<VaeConfig> => openComponent(root, 'vae', 'diffusion_pytorch_model', vaeConfig, variant);

export interface StableDiffusion {
  root: string;
  /** model_index.json's _class_name (StableDiffusionPipeline, StableDiffusionXLPipeline, ...). */
  pipeline: string;
  textEncoder: Component<ClipTextConfig>;
  /** SDXL's CLIPTextModelWithProjection. */
  textEncoder2: Component<ClipTextConfig> | null;
  unet: Component<UNetConfig>;
  vae: Component<VaeConfig>;
  /** What a diffusers folder keeps beside the weights, when the pipeline came from elsewhere (a single-file checkpoint). */
  assets?: PipelineAssets;
}

export interface PipelineAssets {
  tokenizer: ClipTokenizer;
  tokenizer2: ClipTokenizer | null;
  /** scheduler_config.json's contents. */
  schedulerConfig: Record<string, unknown>;
  forceZerosForEmptyPrompt: boolean;
}

/**
 * Opens a diffusers Stable Diffusion folder (SD 1.x, 2.x, XL). `variant` 'fp16' picks the
 * *.fp16.safetensors files. Components model_index.json lists are required; a missing folder,
 * config or weights file is an error naming it.
 */
export function loadStableDiffusion(root: string, opts: { variant?: string } = {}): StableDiffusion {
  const index = readJson(join(root, 'model_index.json'), 'pipeline');
  const pipeline = typeof index._class_name === 'string' ? index._class_name : 'StableDiffusionPipeline';
  const listed = (k: string) => Array.isArray(index[k]) && (index[k] as unknown[])[0] !== null;
  for (const k of ['text_encoder', 'unet', 'vae']) {
    if (!listed(k)) throw new DiffusionLoadError(`${join(root, 'model_index.json')}: no "${k}" component`);
  }
  return {
    root,
    pipeline,
    textEncoder: openTextEncoder(root, 'text_encoder', opts.variant),
    textEncoder2: listed('text_encoder_2') ? openTextEncoder(root, 'text_encoder_2', opts.variant) : null,
    unet: openUNet(root, opts.variant),
    vae: openVae(root, opts.variant),
  };
}
