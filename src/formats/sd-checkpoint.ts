// Stable Diffusion single-file checkpoints: the original LDM / SGM layout (CompVis
// stable-diffusion, Stability's stablediffusion and generative-models) that most people download
// as one .safetensors, mapped onto the diffusers / transformers names src/diffusion/ loads.
//
//   model.diffusion_model.*                       UNet (openaimodel.UNetModel)
//   first_stage_model.*                           VAE (AutoencoderKL: encoder / decoder / quant_conv)
//   cond_stage_model.transformer.*                SD 1.x text encoder: transformers' CLIPTextModel, as is
//   cond_stage_model.model.*                      SD 2.x text encoder: OpenCLIP ViT-H's text tower
//   conditioner.embedders.0.transformer.*         SDXL text encoder 1 (CLIP ViT-L)
//   conditioner.embedders.1.model.*               SDXL text encoder 2 (OpenCLIP ViT-bigG, with text_projection)
//
// The mapping is the one diffusers 0.27.2 applies (convert_ldm_unet_checkpoint,
// convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint), written
// as a per-key function so that tensors stay in the file (memory-mapped, f16/bf16 as stored):
//
//   UNet   input_blocks.0.0 -> conv_in; time_embed.{0,2} -> time_embedding.linear_{1,2};
//          label_emb.0.{0,2} -> add_embedding.linear_{1,2} (SDXL); out.{0,2} -> conv_norm_out / conv_out
//          input_blocks.i (i ≥ 1): block b = (i-1) div (L+1), slot s = (i-1) mod (L+1)
//            .0 (resnet) -> down_blocks.b.resnets.s   .1 (transformer) -> down_blocks.b.attentions.s
//            .0.op (the block's last slot) -> down_blocks.b.downsamplers.0.conv
//          middle_block.{0,1,2} -> mid_block.resnets.0 / attentions.0 / resnets.1
//          output_blocks.i: b = i div (L+1), s = i mod (L+1); .0 -> up_blocks.b.resnets.s,
//            .1 -> attentions.s, .{1,2}.conv -> up_blocks.b.upsamplers.0.conv
//          resnets: in_layers.{0,2} -> norm1/conv1, out_layers.{0,3} -> norm2/conv2,
//            emb_layers.1 -> time_emb_proj, skip_connection -> conv_shortcut
//          (L = layers_per_block; transformer internals keep their names)
//   VAE    {en,de}coder.norm_out -> conv_norm_out; encoder.down.i.block.j -> down_blocks.i.resnets.j;
//          encoder.down.i.downsample -> down_blocks.i.downsamplers.0;
//          decoder.up.(n-1-i).block.j -> up_blocks.i.resnets.j (LDM counts up blocks from the
//          bottom); decoder.up.(n-1-i).upsample -> up_blocks.i.upsamplers.0; mid.block_{1,2} ->
//          mid_block.resnets.{0,1}; mid.attn_1.{norm,q,k,v,proj_out} -> mid_block.attentions.0.
//          {group_norm,to_q,to_k,to_v,to_out.0} (1x1 conv weights [C, C, 1, 1] viewed as [C, C]);
//          nin_shortcut -> conv_shortcut
//   OpenCLIP token_embedding -> text_model.embeddings.token_embedding, positional_embedding ->
//          ...position_embedding.weight, ln_final -> final_layer_norm, transformer.resblocks.N.
//          {ln_1,ln_2,mlp.c_fc,mlp.c_proj,attn.out_proj} -> encoder.layers.N.{layer_norm1,
//          layer_norm2,mlp.fc1,mlp.fc2,self_attn.out_proj}; attn.in_proj_{weight,bias} [3D, ...] ->
//          self_attn.{q,k,v}_proj (row slices: views, no copy); text_projection [D, P] ->
//          text_projection.weight [P, D] (a transpose: the one copy)
//
// Which model: SDXL base has conditioner.embedders.1.model.*, SD 2.x has cross-attention keys of
// width 1024 (diffusers' test: input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight), anything
// else with a UNet is SD 1.x. The prediction type cannot be seen from the weights: diffusers 0.27.2
// (from_single_file) takes SD 2.x as v-prediction at 768 px (the 2.0/2.1 768-v models) unless
// told otherwise (prediction_type="epsilon" for the 512 px "base" models), and SD 1.x / SDXL as ε.
// Only the standard architectures get built-in configs (the values of their diffusers repos'
// config.json files); anything else (a different width, depth, inpainting's 9 input channels, the
// SDXL refiner) needs the configs of a diffusers folder, as from_single_file(config=...).

import { FormatError } from './errors.ts';
import { Tensor } from '../tensor/tensor.ts';
import { bytesFor } from '../tensor/dtype.ts';
import type { Checkpoint, StTensorInfo } from './safetensors.ts';

export type SdFamily = 'sd1' | 'sd2' | 'sdxl';
export type SdComponent = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';

/** How a stored tensor becomes the diffusers one. */
export type SdOp =
  | { kind: 'as-is' }
  /** A 1x1 conv weight [C_out, C_in, 1, 1] as a linear [C_out, C_in] (same bytes). */
  | { kind: 'conv1x1-to-linear' }
  /** Part `part` of 3 along dim 0 (OpenCLIP's fused in_proj): a view. */
  | { kind: 'split3'; part: 0 | 1 | 2 }
  /** [D, P] -> [P, D] (OpenCLIP's text_projection, used as x @ P; transformers stores a Linear). */
  | { kind: 'transpose' };

export interface SdMapped {
  component: SdComponent;
  name: string;
  op: SdOp;
}

export interface SdLayout {
  /** UNet layers_per_block (2 in SD 1/2/XL). */
  unetLayersPerBlock: number;
  /** Number of VAE blocks (len(block_out_channels), 4 in SD 1/2/XL): LDM numbers decoder.up bottom-up. */
  vaeBlocks: number;
}

export const STANDARD_LAYOUT: SdLayout = { unetLayersPerBlock: 2, vaeBlocks: 4 };

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';
const CLIP_PREFIXES: ReadonlyArray<[string, SdComponent]> = [
  ['cond_stage_model.transformer.', 'text_encoder'],
  ['conditioner.embedders.0.transformer.', 'text_encoder'],
];
const OPENCLIP_PREFIXES: ReadonlyArray<[string, SdComponent]> = [
  ['cond_stage_model.model.', 'text_encoder'],
  ['conditioner.embedders.1.model.', 'text_encoder_2'],
];

const AS_IS: SdOp = { kind: 'as-is' };

function unetResnet(rest: string): string {
  return rest
    .replace(/^in_layers\.0\./, 'norm1.')
    .replace(/^in_layers\.2\./, 'conv1.')
    .replace(/^out_layers\.0\./, 'norm2.')
    .replace(/^out_layers\.3\./, 'conv2.')
    .replace(/^emb_layers\.1\./, 'time_emb_proj.')
    .replace(/^skip_connection\./, 'conv_shortcut.');
}

/** A UNet key without "model.diffusion_model." -> its diffusers name, or null when it is not a UNet weight. */
export function mapUnetKey(k: string, layersPerBlock: number): string | null {
  const L1 = layersPerBlock + 1;
  const simple: Record<string, string> = {
    'time_embed.0.': 'time_embedding.linear_1.',
    'time_embed.2.': 'time_embedding.linear_2.',
    'label_emb.0.0.': 'add_embedding.linear_1.',
    'label_emb.0.2.': 'add_embedding.linear_2.',
    'input_blocks.0.0.': 'conv_in.',
    'out.0.': 'conv_norm_out.',
    'out.2.': 'conv_out.',
  };
  for (const [from, to] of Object.entries(simple)) if (k.startsWith(from)) return to + k.slice(from.length);
  let m = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k);
  if (m) {
    const i = Number(m[1]), j = Number(m[2]), rest = m[3]!;
    if (i < 1) return null;
    const b = Math.floor((i - 1) / L1), s = (i - 1) % L1;
    if (j === 0 && rest.startsWith('op.')) return `down_blocks.${b}.downsamplers.0.conv.${rest.slice(3)}`;
    if (j === 0) return `down_blocks.${b}.resnets.${s}.${unetResnet(rest)}`;
    if (j === 1) return `down_blocks.${b}.attentions.${s}.${rest}`;
    return null;
  }
  m = /^middle_block\.(\d)\.(.+)$/.exec(k);
  if (m) {
    const rest = m[2]!;
    if (m[1] === '0') return `mid_block.resnets.0.${unetResnet(rest)}`;
    if (m[1] === '1') return `mid_block.attentions.0.${rest}`;
    if (m[1] === '2') return `mid_block.resnets.1.${unetResnet(rest)}`;
    return null;
  }
  m = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k);
  if (m) {
    const i = Number(m[1]), j = Number(m[2]), rest = m[3]!;
    const b = Math.floor(i / L1), s = i % L1;
    if (j >= 1 && rest.startsWith('conv.')) return `up_blocks.${b}.upsamplers.0.conv.${rest.slice(5)}`;
    if (j === 0) return `up_blocks.${b}.resnets.${s}.${unetResnet(rest)}`;
    if (j === 1) return `up_blocks.${b}.attentions.${s}.${rest}`;
    return null;
  }
  return null;
}

/** A VAE key without "first_stage_model." -> its diffusers name and op, or null. */
export function mapVaeKey(k: string, vaeBlocks: number): SdMapped | null {
  const vae = (name: string, op: SdOp = AS_IS): SdMapped => ({ component: 'vae', name, op });
  if (/^(quant_conv|post_quant_conv)\./.test(k)) return vae(k);
  const m = /^(encoder|decoder)\.(.+)$/.exec(k);
  if (!m) return null;
  const side = m[1]!, rest = m[2]!;
  const resnet = (r: string) => r.replace(/^nin_shortcut\./, 'conv_shortcut.');
  if (/^(conv_in|conv_out)\./.test(rest)) return vae(`${side}.${rest}`);
  if (rest.startsWith('norm_out.')) return vae(`${side}.conv_norm_out.${rest.slice(9)}`);
  let mm = /^mid\.block_([12])\.(.+)$/.exec(rest);
  if (mm) return vae(`${side}.mid_block.resnets.${Number(mm[1]) - 1}.${resnet(mm[2]!)}`);
  mm = /^mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(rest);
  if (mm) {
    const to = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' }[mm[1] as 'norm'];
    return vae(`${side}.mid_block.attentions.0.${to}.${mm[2]}`, mm[1] !== 'norm' && mm[2] === 'weight' ? { kind: 'conv1x1-to-linear' } : AS_IS);
  }
  if (side === 'encoder') {
    mm = /^down\.(\d+)\.block\.(\d+)\.(.+)$/.exec(rest);
    if (mm) return vae(`encoder.down_blocks.${mm[1]}.resnets.${mm[2]}.${resnet(mm[3]!)}`);
    mm = /^down\.(\d+)\.downsample\.conv\.(.+)$/.exec(rest);
    if (mm) return vae(`encoder.down_blocks.${mm[1]}.downsamplers.0.conv.${mm[2]}`);
  } else {
    mm = /^up\.(\d+)\.block\.(\d+)\.(.+)$/.exec(rest);
    if (mm) return vae(`decoder.up_blocks.${vaeBlocks - 1 - Number(mm[1])}.resnets.${mm[2]}.${resnet(mm[3]!)}`);
    mm = /^up\.(\d+)\.upsample\.conv\.(.+)$/.exec(rest);
    if (mm) return vae(`decoder.up_blocks.${vaeBlocks - 1 - Number(mm[1])}.upsamplers.0.conv.${mm[2]}`);
  }
  return null;
}

/** An OpenCLIP text-tower key (prefix removed) -> transformers' CLIPTextModel(WithProjection) names. */
export function mapOpenClipKey(k: string, component: SdComponent): SdMapped[] | null {
  const one = (name: string, op: SdOp = AS_IS): SdMapped[] => [{ component, name, op }];
  if (k === 'token_embedding.weight') return one('text_model.embeddings.token_embedding.weight');
  if (k === 'positional_embedding') return one('text_model.embeddings.position_embedding.weight');
  if (k === 'ln_final.weight' || k === 'ln_final.bias') return one(`text_model.final_layer_norm.${k.slice(9)}`);
  if (k === 'text_projection') return component === 'text_encoder_2' ? one('text_projection.weight', { kind: 'transpose' }) : null;
  const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(k);
  if (!m) return null;
  const p = `text_model.encoder.layers.${m[1]}.`, rest = m[2]!;
  const mm = /^attn\.in_proj_(weight|bias)$/.exec(rest);
  if (mm) return (['q', 'k', 'v'] as const).map((x, part) => ({ component, name: `${p}self_attn.${x}_proj.${mm[1]}`, op: { kind: 'split3', part: part as 0 | 1 | 2 } }));
  const renames: Array<[string, string]> = [
    ['ln_1.', 'layer_norm1.'],
    ['ln_2.', 'layer_norm2.'],
    ['mlp.c_fc.', 'mlp.fc1.'],
    ['mlp.c_proj.', 'mlp.fc2.'],
    ['attn.out_proj.', 'self_attn.out_proj.'],
  ];
  for (const [from, to] of renames) if (rest.startsWith(from)) return one(p + to + rest.slice(from.length));
  return null;
}

/**
 * One key of a single-file checkpoint -> the diffusers tensors it gives (several for a fused
 * in_proj), or null for keys no pipeline component uses (EMA copies, schedules, logit_scale,
 * position_ids buffers).
 */
export function mapSdKey(key: string, layout: SdLayout = STANDARD_LAYOUT): SdMapped[] | null {
  if (key.startsWith(UNET_PREFIX)) {
    const n = mapUnetKey(key.slice(UNET_PREFIX.length), layout.unetLayersPerBlock);
    return n ? [{ component: 'unet', name: n, op: AS_IS }] : null;
  }
  if (key.startsWith(VAE_PREFIX)) {
    const m = mapVaeKey(key.slice(VAE_PREFIX.length), layout.vaeBlocks);
    return m ? [m] : null;
  }
  for (const [prefix, component] of CLIP_PREFIXES) {
    if (!key.startsWith(prefix)) continue;
    let rest = key.slice(prefix.length);
    if (rest.endsWith('position_ids')) return null;
    // Checkpoints saved with transformers < 4.x lack the text_model. level.
    if (!rest.startsWith('text_model.')) rest = `text_model.${rest}`;
    return [{ component, name: rest, op: AS_IS }];
  }
  for (const [prefix, component] of OPENCLIP_PREFIXES) {
    if (key.startsWith(prefix)) return mapOpenClipKey(key.slice(prefix.length), component);
  }
  return null;
}

// ---- recognising the model ----------------------------------------------------------------

export class SdCheckpointError extends FormatError {}

/** How people name the families in messages. */
export const SD_FAMILY_LABEL: Readonly<Record<SdFamily, string>> = { sd1: 'SD 1.x', sd2: 'SD 2.x', sdxl: 'SDXL' };

const V2_KEY = 'model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight';

/**
 * Which Stable Diffusion a checkpoint holds, by diffusers' rules; throws naming the file and the
 * missing part when it is not a (complete) SD 1 / SD 2 / SDXL base checkpoint.
 */
export function detectSdFamily(ckpt: Checkpoint): SdFamily {
  const names = ckpt.names();
  const has = (prefix: string) => names.some((n) => n.startsWith(prefix));
  const file = ckpt.path;
  if (!has(UNET_PREFIX)) {
    const sample = names.slice(0, 3).map((n) => `"${n}"`).join(', ');
    const component = names.some((n) => /^(down_blocks|encoder\.down_blocks|text_model)\./.test(n)) ? ' (it looks like one component of a diffusers folder: pass the folder with model_index.json)' : '';
    throw new SdCheckpointError(file, `not a Stable Diffusion checkpoint: no UNet weights (model.diffusion_model.*)${names.length ? `; its tensors are named like ${sample}` : '; it holds no tensors'}${component}`);
  }
  if (!has(VAE_PREFIX)) throw new SdCheckpointError(file, 'has no VAE weights (first_stage_model.*); a Stable Diffusion single-file checkpoint carries UNet, VAE and text encoder');
  if (has('conditioner.embedders.0.model.') && !has('conditioner.embedders.1.')) {
    throw new SdCheckpointError(file, 'looks like the SDXL refiner (one OpenCLIP text encoder); only text-to-image base models are supported');
  }
  if (has('conditioner.embedders.1.model.')) {
    if (!has('conditioner.embedders.0.transformer.')) throw new SdCheckpointError(file, 'SDXL checkpoint without its first text encoder (conditioner.embedders.0.transformer.*)');
    return 'sdxl';
  }
  if (has('cond_stage_model.model.')) return 'sd2';
  if (ckpt.has(V2_KEY) && ckpt.info(V2_KEY).shape.at(-1) === 1024) return 'sd2';
  if (has('cond_stage_model.transformer.')) return 'sd1';
  throw new SdCheckpointError(file, 'has no text encoder weights (cond_stage_model.* or conditioner.embedders.*)');
}

// ---- a component's view of the file -----------------------------------------------------------

function applyOp(src: Tensor, op: SdOp, key: string, file: string): Tensor {
  switch (op.kind) {
    case 'as-is':
      return src;
    case 'conv1x1-to-linear': {
      if (src.ndim === 2) return src; // some VAEs store the attention as linears already
      const [co, ci, kh, kw] = src.shape as number[];
      if (src.ndim !== 4 || kh !== 1 || kw !== 1) throw new SdCheckpointError(file, `"${key}" should be a 1x1 conv weight, has shape [${src.shape.join(', ')}]`);
      return new Tensor(src.dtype, [co!, ci!], src.data);
    }
    case 'split3': {
      const rows = src.shape[0]!;
      if (rows % 3) throw new SdCheckpointError(file, `"${key}" has ${rows} rows, not 3 equal parts (q, k, v)`);
      const per = src.numel / 3, es = bytesFor(src.dtype, 1);
      const shape = [rows / 3, ...src.shape.slice(1)];
      return new Tensor(src.dtype, shape, src.data.subarray(op.part * per * es, (op.part + 1) * per * es));
    }
    case 'transpose': {
      if (src.ndim !== 2) throw new SdCheckpointError(file, `"${key}" should be 2-D, has shape [${src.shape.join(', ')}]`);
      const [r, c] = src.shape as [number, number];
      const es = bytesFor(src.dtype, 1), dst = new Uint8Array(src.numel * es), s = src.data;
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) for (let b = 0; b < es; b++) dst[(j * r + i) * es + b] = s[(i * c + j) * es + b]!;
      return new Tensor(src.dtype, [c, r], dst);
    }
  }
}

/** One pipeline component of a single-file checkpoint, under its diffusers names. */
export class SdComponentCheckpoint implements Checkpoint {
  readonly path: string;
  readonly files: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly map = new Map<string, { key: string; op: SdOp }>();

  constructor(
    readonly source: Checkpoint,
    readonly component: SdComponent,
    layout: SdLayout,
  ) {
    this.path = source.path;
    this.files = source.files;
    this.metadata = source.metadata;
    for (const key of source.names()) {
      for (const m of mapSdKey(key, layout) ?? []) if (m.component === component) this.map.set(m.name, { key, op: m.op });
    }
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** The stored tensor's entry, renamed (shape as the diffusers tensor has it). */
  info(name: string): StTensorInfo {
    const t = this.tensor(name);
    const src = this.source.info(this.map.get(name)!.key);
    return { ...src, name, shape: t.shape, data: t.data };
  }

  tensor(name: string): Tensor {
    const e = this.map.get(name);
    if (!e) throw new SdCheckpointError(this.path, `no ${this.component} tensor "${name}" in this checkpoint`);
    return applyOp(this.source.tensor(e.key), e.op, e.key, this.path);
  }

  /** The stored key a diffusers name comes from. */
  sourceKey(name: string): string | undefined {
    return this.map.get(name)?.key;
  }
}

// ---- the standard architectures ---------------------------------------------------------------

/** What from_single_file (diffusers 0.27.2) assumes when the checkpoint does not say. */
export interface SdStandardOptions {
  /** 'epsilon' | 'v_prediction'; default by family (SD 2.x: v_prediction). */
  predictionType?: string;
}

const UNET_COMMON = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  center_input_sample: false,
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
};
const VAE_COMMON = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
};
const CLIP_L = {
  architectures: ['CLIPTextModel'],
  model_type: 'clip_text_model',
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  vocab_size: 49408,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 768,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
};
const TOKENIZER_CONFIG = {
  bos_token: '<|startoftext|>',
  eos_token: '<|endoftext|>',
  unk_token: '<|endoftext|>',
  pad_token: '<|endoftext|>',
  model_max_length: 77,
  do_lower_case: true,
};
/** OpenCLIP's tokenizer pads with "!" (id 0): the tokenizer of SD 2.x and SDXL's second encoder. */
const TOKENIZER_CONFIG_OPENCLIP = { ...TOKENIZER_CONFIG, pad_token: '!' };

/** diffusers' SCHEDULER_DEFAULT_CONFIG with the SD 1/2 LDM yaml's betas (create_scheduler_from_ldm). */
const SCHEDULER_DEFAULT = {
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  interpolation_type: 'linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  sample_max_value: 1.0,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
};

export interface SdStandardConfigs {
  modelIndex: Record<string, unknown>;
  unet: Record<string, unknown>;
  vae: Record<string, unknown>;
  textEncoder: Record<string, unknown>;
  textEncoder2: Record<string, unknown> | null;
  tokenizerConfig: Record<string, unknown>;
  tokenizer2Config: Record<string, unknown> | null;
  scheduler: Record<string, unknown>;
}

/**
 * The configs of the standard architectures: the values of runwayml/stable-diffusion-v1-5,
 * stabilityai/stable-diffusion-2-1 (768-v) and stabilityai/stable-diffusion-xl-base-1.0's
 * config.json files, with the scheduler from_single_file builds (DDIM for SD 1/2, Euler for SDXL).
 */
export function standardConfigs(family: SdFamily, opts: SdStandardOptions = {}): SdStandardConfigs {
  const prediction = opts.predictionType ?? (family === 'sd2' ? 'v_prediction' : 'epsilon');
  if (prediction !== 'epsilon' && prediction !== 'v_prediction') throw new Error(`prediction type must be epsilon or v_prediction, got "${prediction}"`);
  const ddim = { ...SCHEDULER_DEFAULT, _class_name: 'DDIMScheduler', clip_sample: false, prediction_type: prediction };
  if (family === 'sd1') {
    return {
      modelIndex: { _class_name: 'StableDiffusionPipeline' },
      unet: {
        ...UNET_COMMON,
        attention_head_dim: 8,
        block_out_channels: [320, 640, 1280, 1280],
        cross_attention_dim: 768,
        down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
        sample_size: 64,
      },
      vae: { ...VAE_COMMON, sample_size: 512, scaling_factor: 0.18215 },
      textEncoder: CLIP_L,
      textEncoder2: null,
      tokenizerConfig: TOKENIZER_CONFIG,
      tokenizer2Config: null,
      scheduler: ddim,
    };
  }
  if (family === 'sd2') {
    // 768-v is the default (diffusers: v-prediction at 768 unless the step count says "base");
    // an ε model is taken for the 512 px base.
    const px = prediction === 'v_prediction' ? 768 : 512;
    return {
      modelIndex: { _class_name: 'StableDiffusionPipeline' },
      unet: {
        ...UNET_COMMON,
        attention_head_dim: [5, 10, 20, 20],
        block_out_channels: [320, 640, 1280, 1280],
        cross_attention_dim: 1024,
        down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
        use_linear_projection: true,
        upcast_attention: px === 768,
        sample_size: px / 8,
      },
      vae: { ...VAE_COMMON, sample_size: px, scaling_factor: 0.18215 },
      textEncoder: { ...CLIP_L, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 23, num_attention_heads: 16, hidden_act: 'gelu', projection_dim: 512 },
      textEncoder2: null,
      tokenizerConfig: TOKENIZER_CONFIG_OPENCLIP,
      tokenizer2Config: null,
      scheduler: ddim,
    };
  }
  return {
    modelIndex: { _class_name: 'StableDiffusionXLPipeline', force_zeros_for_empty_prompt: true },
    unet: {
      ...UNET_COMMON,
      addition_embed_type: 'text_time',
      addition_time_embed_dim: 256,
      attention_head_dim: [5, 10, 20],
      block_out_channels: [320, 640, 1280],
      cross_attention_dim: 2048,
      down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
      up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
      projection_class_embeddings_input_dim: 2816,
      transformer_layers_per_block: [1, 2, 10],
      use_linear_projection: true,
      sample_size: 128,
    },
    vae: { ...VAE_COMMON, sample_size: 1024, scaling_factor: 0.13025 },
    textEncoder: CLIP_L,
    textEncoder2: {
      ...CLIP_L,
      architectures: ['CLIPTextModelWithProjection'],
      hidden_size: 1280,
      intermediate_size: 5120,
      num_hidden_layers: 32,
      num_attention_heads: 20,
      hidden_act: 'gelu',
      projection_dim: 1280,
    },
    tokenizerConfig: TOKENIZER_CONFIG,
    tokenizer2Config: TOKENIZER_CONFIG_OPENCLIP,
    scheduler: { ...SCHEDULER_DEFAULT, _class_name: 'EulerDiscreteScheduler', prediction_type: prediction, use_karras_sigmas: false },
  };
}

/**
 * Checks that a checkpoint's shapes are those of the standard architecture (so a merged or
 * fine-tuned model of another shape gets a message pointing at --config, not a crash mid-run).
 */
export function checkStandardShapes(ckpt: Checkpoint, family: SdFamily): void {
  const want: Array<[string, number, number]> = [
    [`${UNET_PREFIX}input_blocks.0.0.weight`, 0, family === 'sdxl' ? 320 : 320],
    [`${UNET_PREFIX}input_blocks.0.0.weight`, 1, 4],
    [`${UNET_PREFIX}out.2.weight`, 0, 4],
    [`${VAE_PREFIX}encoder.conv_in.weight`, 0, 128],
  ];
  const ctx = family === 'sd1' ? 768 : family === 'sd2' ? 1024 : 2048;
  const k = family === 'sdxl' ? `${UNET_PREFIX}input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight` : V2_KEY;
  want.push([k, 1, ctx]);
  for (const [key, dim, n] of want) {
    if (!ckpt.has(key)) throw new SdCheckpointError(ckpt.path, `is missing "${key}" of a standard ${SD_FAMILY_LABEL[family]} checkpoint (pass --config <diffusers folder> for other architectures)`);
    const got = ckpt.info(key).shape[dim];
    if (got !== n) {
      const why = key.endsWith('input_blocks.0.0.weight') && dim === 1 ? ` (${got} input channels: an inpainting or other special UNet)` : '';
      throw new SdCheckpointError(ckpt.path, `"${key}" has ${got} at dim ${dim}, the standard ${SD_FAMILY_LABEL[family]} architecture has ${n}${why}; pass --config <diffusers folder> with this model's configs`);
    }
  }
}
