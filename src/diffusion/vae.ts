// AutoencoderKL (diffusers), NHWC.
//   encode: conv_in -> down blocks (resnets; a stride-2 conv padded only after, except in the
//           last block) -> mid (resnet, single-head attention, resnet) -> norm + SiLU -> conv_out
//           -> quant_conv: moments [B, h, w, 2 * latent] = [mean, logvar]
//   decode: post_quant_conv -> conv_in -> mid -> up blocks (resnets; nearest 2x + conv, except
//           in the last block) -> norm + SiLU -> conv_out: image [B, H, W, out_channels]
// Resnets here have no time embedding; every norm is a GroupNorm with eps 1e-6. A pipeline
// decodes latents / scaling_factor and encodes to latent_dist.sample() * scaling_factor.

import { Tensor } from '../tensor/tensor.ts';
import type { DiffOps, Params } from './ops.ts';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  groups: number;
  scalingFactor: number;
  /** SD3-style shift (absent in SD 1/2/XL): latents = (z - shift) * scale. */
  shiftFactor: number;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAttention: boolean;
}

export function vaeConfig(j: Record<string, unknown>): VaeConfig {
  const nums = (k: string, def?: number[]) => {
    const v = j[k] ?? def;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new Error(`"${k}" must be a list of integers`);
    return v as number[];
  };
  const int = (k: string, def: number) => {
    const v = j[k] ?? def;
    if (typeof v !== 'number') throw new Error(`"${k}" must be a number`);
    return v;
  };
  const blocks = nums('block_out_channels', [64]);
  for (const [k, want] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const v = j[k] ?? blocks.map(() => want);
    if (!Array.isArray(v) || v.length !== blocks.length || v.some((t) => t !== want)) throw new Error(`"${k}" must be ${blocks.length} x ${want}, got ${JSON.stringify(v)}`);
  }
  if ((j.act_fn ?? 'silu') !== 'silu') throw new Error(`act_fn ${JSON.stringify(j.act_fn)} is not supported (silu)`);
  return {
    inChannels: int('in_channels', 3),
    outChannels: int('out_channels', 3),
    blockOutChannels: blocks,
    layersPerBlock: int('layers_per_block', 1),
    latentChannels: int('latent_channels', 4),
    groups: int('norm_num_groups', 32),
    scalingFactor: int('scaling_factor', 0.18215),
    shiftFactor: typeof j.shift_factor === 'number' ? j.shift_factor : 0,
    useQuantConv: j.use_quant_conv !== false,
    usePostQuantConv: j.use_post_quant_conv !== false,
    midBlockAttention: j.mid_block_add_attention !== false,
  };
}

const EPS = 1e-6;
const SAME = { stride: 1, pad: 1 };
const ONE = { stride: 1, pad: 0 };

function resnet<T, W>(o: DiffOps<T, W>, p: Params<W>, pre: string, x: T, groups: number): T {
  const w = (n: string) => p.get(pre + n);
  let h = o.conv2d(o.groupNorm(x, w('norm1.weight'), w('norm1.bias'), groups, EPS, true), w('conv1.weight'), w('conv1.bias'), SAME);
  h = o.conv2d(o.groupNorm(h, w('norm2.weight'), w('norm2.bias'), groups, EPS, true), w('conv2.weight'), w('conv2.bias'), SAME);
  const skip = p.has(pre + 'conv_shortcut.weight') ? o.conv2d(x, w('conv_shortcut.weight'), w('conv_shortcut.bias'), ONE) : x;
  return o.add(h, skip);
}

/** Single-head self-attention over the pixels, with its own group norm and a residual. */
function attention<T, W>(o: DiffOps<T, W>, p: Params<W>, pre: string, x: T, groups: number): T {
  const w = (n: string) => p.get(pre + n);
  const [B, H, Wd, C] = o.shape(x) as [number, number, number, number];
  const h = o.reshape(o.groupNorm(x, w('group_norm.weight'), w('group_norm.bias'), groups, EPS, false), [B, H * Wd, C]);
  const q = o.linear(h, w('to_q.weight'), w('to_q.bias')), k = o.linear(h, w('to_k.weight'), w('to_k.bias')), v = o.linear(h, w('to_v.weight'), w('to_v.bias'));
  const a = o.linear(o.attention(q, k, v, 1, 1 / Math.sqrt(C), false), w('to_out.0.weight'), w('to_out.0.bias'));
  return o.add(o.reshape(a, [B, H, Wd, C]), x);
}

function midBlock<T, W>(o: DiffOps<T, W>, cfg: VaeConfig, p: Params<W>, pre: string, x: T): T {
  x = resnet(o, p, `${pre}mid_block.resnets.0.`, x, cfg.groups);
  if (cfg.midBlockAttention) x = attention(o, p, `${pre}mid_block.attentions.0.`, x, cfg.groups);
  return resnet(o, p, `${pre}mid_block.resnets.1.`, x, cfg.groups);
}

/** image [B, H, W, in_channels] (in [-1, 1]) -> moments [B, H / f, W / f, 2 * latent_channels]. */
export function vaeEncode<T, W>(o: DiffOps<T, W>, cfg: VaeConfig, p: Params<W>, image: T): T {
  const n = cfg.blockOutChannels.length;
  const [, H, Wd] = o.shape(image) as [number, number, number, number];
  const f = 2 ** (n - 1);
  if (H % f || Wd % f) throw new Error(`vae encode: image ${H}x${Wd} is not a multiple of ${f}`);
  let x = o.conv2d(image, p.get('encoder.conv_in.weight'), p.get('encoder.conv_in.bias'), SAME);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) x = resnet(o, p, `encoder.down_blocks.${i}.resnets.${j}.`, x, cfg.groups);
    if (i < n - 1) x = o.conv2d(x, p.get(`encoder.down_blocks.${i}.downsamplers.0.conv.weight`), p.get(`encoder.down_blocks.${i}.downsamplers.0.conv.bias`), { stride: 2, pad: 0, padEnd: 1 });
  }
  x = midBlock(o, cfg, p, 'encoder.', x);
  x = o.conv2d(o.groupNorm(x, p.get('encoder.conv_norm_out.weight'), p.get('encoder.conv_norm_out.bias'), cfg.groups, EPS, true), p.get('encoder.conv_out.weight'), p.get('encoder.conv_out.bias'), SAME);
  return cfg.useQuantConv ? o.conv2d(x, p.get('quant_conv.weight'), p.get('quant_conv.bias'), ONE) : x;
}

/** latents z [B, h, w, latent_channels] (already divided by scaling_factor) -> image [B, H, W, out_channels]. */
export function vaeDecode<T, W>(o: DiffOps<T, W>, cfg: VaeConfig, p: Params<W>, z: T): T {
  const n = cfg.blockOutChannels.length;
  let x = cfg.usePostQuantConv ? o.conv2d(z, p.get('post_quant_conv.weight'), p.get('post_quant_conv.bias'), ONE) : z;
  x = o.conv2d(x, p.get('decoder.conv_in.weight'), p.get('decoder.conv_in.bias'), SAME);
  x = midBlock(o, cfg, p, 'decoder.', x);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) x = resnet(o, p, `decoder.up_blocks.${i}.resnets.${j}.`, x, cfg.groups);
    if (i < n - 1) x = o.conv2d(o.upsample2x(x), p.get(`decoder.up_blocks.${i}.upsamplers.0.conv.weight`), p.get(`decoder.up_blocks.${i}.upsamplers.0.conv.bias`), SAME);
  }
  const h = o.groupNorm(x, p.get('decoder.conv_norm_out.weight'), p.get('decoder.conv_norm_out.bias'), cfg.groups, EPS, true);
  return o.conv2d(h, p.get('decoder.conv_out.weight'), p.get('decoder.conv_out.bias'), SAME);
}

/**
 * The latent distribution of encoder moments (DiagonalGaussianDistribution): mean, logvar
 * clamped to [-30, 20], std = exp(logvar / 2), and sample = mean + std * noise when noise
 * (standard normal, [B, h, w, latent], e.g. from the torch-compatible generator) is given.
 */
export function latentDist(moments: Tensor, noise?: Tensor): { mean: Tensor; std: Tensor; sample: Tensor | null } {
  const C2 = moments.shape[moments.ndim - 1]!, C = C2 / 2;
  const m = moments.toF32(), rows = m.length / C2;
  const shape = [...moments.shape.slice(0, -1), C];
  const mean = new Float32Array(rows * C), std = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < C; c++) {
      mean[r * C + c] = m[r * C2 + c]!;
      std[r * C + c] = Math.exp(0.5 * Math.min(20, Math.max(-30, m[r * C2 + C + c]!)));
    }
  }
  let sample: Tensor | null = null;
  if (noise) {
    const e = noise.toF32();
    if (e.length !== mean.length) throw new Error(`latentDist: noise ${noise} does not match the latents [${shape}]`);
    sample = Tensor.fromF32(mean.map((mu, i) => mu + std[i]! * e[i]!), shape);
  }
  return { mean: Tensor.fromF32(mean, shape), std: Tensor.fromF32(std, shape), sample };
}
