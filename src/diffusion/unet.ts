// UNet2DConditionModel (diffusers 0.27), the SD 1.x / 2.x / XL denoiser, NHWC.
//   emb = linear_2(silu(linear_1(timestep_embedding(t))))            time_embedding, [B, 4 * C0]
//         (+ add_embedding(cat(text_embeds, timestep_embedding(time_ids))) for SDXL's text_time)
//   x = conv_in(sample); skips = [x]
//   down blocks: (resnet(x, emb) [-> transformer(x, context)]) x layers_per_block, each pushed
//                to skips; a stride-2 conv (pushed too) except in the last block
//   mid: resnet, transformer, resnet
//   up blocks:   (resnet(cat(x, skips.pop()), emb) [-> transformer]) x (layers_per_block + 1);
//                nearest 2x + conv except in the last block
//   out = conv_out(silu(group_norm(x)))
// resnet(x, emb) = skip(x) + conv2(silu(gn2(conv1(silu(gn1(x))) + time_emb_proj(silu(emb)))))
// transformer(x, ctx) = x + proj_out(blocks(proj_in(gn(x)))), proj_in/out 1x1 convs or (SD 2,
//   XL: use_linear_projection) linears over the pixels as tokens; each block:
//   h += attn1(ln1(h)); h += attn2(ln2(h), ctx); h += ff(ln3(h)) with ff = net.2(geglu(net.0.proj(h)))
// Heads: diffusers' attention_head_dim is the number of heads for these models (its own naming
// quirk: num_attention_heads = num_attention_heads or attention_head_dim), head dim C / heads.
// upcast_attention (SD 2.1) changes nothing here: attention already runs in f32.

import { timestepEmbedding, type DiffOps, type Params } from './ops.ts';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  /** heads per down block (the up blocks use them reversed; the mid block the last). */
  heads: number[];
  /** transformer depth per down block (likewise reversed for the up blocks). */
  transformerLayers: number[];
  crossAttentionDim: number;
  useLinearProjection: boolean;
  groups: number;
  eps: number;
  flipSinToCos: boolean;
  freqShift: number;
  /** SDXL's micro-conditioning. */
  addTextTime: { timeEmbedDim: number; inputDim: number } | null;
  sampleSize: number;
}

/** From a unet/config.json; settings these models do not use are refused with their name. */
export function unetConfig(j: Record<string, unknown>): UNetConfig {
  const num = (k: string, def?: number): number => {
    const v = j[k] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`"${k}" must be a number, got ${JSON.stringify(j[k])}`);
    return v;
  };
  const list = (k: string, n: number, def?: unknown): number[] => {
    const v = j[k] ?? def;
    if (typeof v === 'number' && Number.isInteger(v)) return new Array<number>(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x))) return v as number[];
    throw new Error(`"${k}" must be an integer or a list of ${n}, got ${JSON.stringify(v)}`);
  };
  const blocks = j.block_out_channels ?? [320, 640, 1280, 1280];
  if (!Array.isArray(blocks) || !blocks.every((x) => Number.isInteger(x))) throw new Error('"block_out_channels" must be a list of integers');
  const n = blocks.length;
  const types = <B extends string>(k: string, allowed: readonly B[]): B[] => {
    const v = j[k];
    if (!Array.isArray(v) || v.length !== n || v.some((t) => !allowed.includes(t as B))) {
      throw new Error(`"${k}" must be ${n} of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v as B[];
  };
  const refuse = (k: string, ok: (v: unknown) => boolean) => {
    if (!ok(j[k])) throw new Error(`"${k}": ${JSON.stringify(j[k])} is not supported`);
  };
  const nullish = (v: unknown) => v === undefined || v === null;
  refuse('mid_block_type', (v) => nullish(v) || v === 'UNetMidBlock2DCrossAttn');
  refuse('act_fn', (v) => nullish(v) || v === 'silu');
  refuse('time_embedding_type', (v) => nullish(v) || v === 'positional');
  refuse('resnet_time_scale_shift', (v) => nullish(v) || v === 'default');
  refuse('class_embed_type', nullish);
  refuse('encoder_hid_dim', nullish);
  refuse('time_cond_proj_dim', nullish);
  refuse('center_input_sample', (v) => !v);
  refuse('dual_cross_attention', (v) => !v);
  refuse('only_cross_attention', (v) => !v || (Array.isArray(v) && v.every((x) => !x)));
  refuse('reverse_transformer_layers_per_block', nullish);
  refuse('conv_in_kernel', (v) => nullish(v) || v === 3);
  refuse('conv_out_kernel', (v) => nullish(v) || v === 3);
  refuse('downsample_padding', (v) => nullish(v) || v === 1);
  refuse('mid_block_scale_factor', (v) => nullish(v) || v === 1);
  refuse('layers_per_block', (v) => nullish(v) || Number.isInteger(v));
  refuse('cross_attention_dim', (v) => nullish(v) || Number.isInteger(v));
  const aet = j.addition_embed_type;
  if (!nullish(aet) && aet !== 'text_time') throw new Error(`"addition_embed_type": ${JSON.stringify(aet)} is not supported (text_time)`);
  return {
    inChannels: num('in_channels', 4),
    outChannels: num('out_channels', 4),
    blockOutChannels: blocks as number[],
    layersPerBlock: num('layers_per_block', 2),
    downBlockTypes: types('down_block_types', ['CrossAttnDownBlock2D', 'DownBlock2D'] as const),
    upBlockTypes: types('up_block_types', ['CrossAttnUpBlock2D', 'UpBlock2D'] as const),
    heads: list(nullish(j.num_attention_heads) ? 'attention_head_dim' : 'num_attention_heads', n, 8),
    transformerLayers: list('transformer_layers_per_block', n, 1),
    crossAttentionDim: num('cross_attention_dim', 1280),
    useLinearProjection: j.use_linear_projection === true,
    groups: num('norm_num_groups', 32),
    eps: num('norm_eps', 1e-5),
    flipSinToCos: j.flip_sin_to_cos !== false,
    freqShift: num('freq_shift', 0),
    addTextTime: aet === 'text_time' ? { timeEmbedDim: num('addition_time_embed_dim'), inputDim: num('projection_class_embeddings_input_dim') } : null,
    sampleSize: num('sample_size', 64),
  };
}

export interface UNetInputs<T> {
  /** Noisy latents [B, h, w, in_channels] (NHWC). */
  sample: T;
  /** One timestep per batch item (or one for all). */
  timesteps: readonly number[];
  /** The prompt embeddings [B, T, cross_attention_dim]. */
  context: T;
  /** SDXL: pooled text embeddings [B, P] and micro-conditioning time ids [B, 6]. */
  textEmbeds?: T;
  /** [B * 6] host values: original size, crop top-left, target size per item. */
  timeIds?: readonly number[];
}

const SAME = { stride: 1, pad: 1 };
const ONE = { stride: 1, pad: 0 };

/** The predicted noise (or v) [B, h, w, out_channels]. */
export function unetForward<T, W>(o: DiffOps<T, W>, cfg: UNetConfig, p: Params<W>, inp: UNetInputs<T>): T {
  const w = (n: string) => p.get(n);
  const [B, h, wd] = o.shape(inp.sample) as [number, number, number, number];
  const nb = cfg.blockOutChannels.length;
  // Latents that are not a multiple of 2^(levels - 1) (any picture size that is a multiple of 8
  // can give them): the downsamplers round up, and each upsampler then resizes to its skip's
  // size instead of doubling (diffusers' forward_upsample_size).
  const f = 2 ** (nb - 1);
  const sized = h % f !== 0 || wd % f !== 0;
  const ctxShape = o.shape(inp.context);
  if (o.shape(inp.sample).length !== 4 || o.shape(inp.sample)[3] !== cfg.inChannels) {
    throw new Error(`unet: sample [${o.shape(inp.sample)}] must be [B, h, w, ${cfg.inChannels}] (NHWC)`);
  }
  if (ctxShape.length !== 3 || ctxShape[0] !== B || ctxShape[2] !== cfg.crossAttentionDim) {
    throw new Error(`unet: context [${ctxShape}] must be [${B}, T, ${cfg.crossAttentionDim}] (cross_attention_dim)`);
  }
  const ts = inp.timesteps.length === 1 ? new Array<number>(B).fill(inp.timesteps[0]!) : inp.timesteps;
  if (ts.length !== B) throw new Error(`unet: ${inp.timesteps.length} timesteps for a batch of ${B}`);

  // time embedding [B, 4 * C0], and its SiLU, which every resnet projects
  const C0 = cfg.blockOutChannels[0]!;
  const tproj = o.constant(timestepEmbedding(ts, C0, cfg.flipSinToCos, cfg.freqShift), [B, C0]);
  let emb = embedMlp(o, p, 'time_embedding.', tproj);
  if (cfg.addTextTime) {
    if (!inp.textEmbeds || !inp.timeIds) throw new Error('unet: this UNet (addition_embed_type text_time) needs textEmbeds and timeIds');
    const D = cfg.addTextTime.timeEmbedDim;
    const te0 = o.shape(inp.textEmbeds);
    if (te0.length !== 2 || te0[0] !== B || te0[1]! + (inp.timeIds.length / B) * D !== cfg.addTextTime.inputDim) {
      throw new Error(`unet: text embeds [${te0}] and ${inp.timeIds.length / B} time ids per item do not make projection_class_embeddings_input_dim ${cfg.addTextTime.inputDim}`);
    }
    const n = inp.timeIds.length / B;
    if (!Number.isInteger(n)) throw new Error(`unet: ${inp.timeIds.length} time ids for a batch of ${B}`);
    const te = o.constant(timestepEmbedding(inp.timeIds, D, cfg.flipSinToCos, cfg.freqShift), [B, n * D]);
    emb = o.add(emb, embedMlp(o, p, 'add_embedding.', o.concat(inp.textEmbeds, te)));
  }
  const embAct = o.act(emb, 'silu'); //                                            [B, 4 * C0]

  let x = o.conv2d(inp.sample, w('conv_in.weight'), w('conv_in.bias'), SAME);
  const skips: T[] = [x];
  for (let i = 0; i < nb; i++) {
    const pre = `down_blocks.${i}.`;
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      x = resnet(o, cfg, p, `${pre}resnets.${j}.`, x, embAct);
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') x = transformer(o, cfg, p, `${pre}attentions.${j}.`, x, inp.context, cfg.heads[i]!, cfg.transformerLayers[i]!);
      skips.push(x);
    }
    if (i < nb - 1) {
      x = o.conv2d(x, w(`${pre}downsamplers.0.conv.weight`), w(`${pre}downsamplers.0.conv.bias`), { stride: 2, pad: 1 });
      skips.push(x);
    }
  }

  x = resnet(o, cfg, p, 'mid_block.resnets.0.', x, embAct);
  x = transformer(o, cfg, p, 'mid_block.attentions.0.', x, inp.context, cfg.heads[nb - 1]!, cfg.transformerLayers[nb - 1]!);
  x = resnet(o, cfg, p, 'mid_block.resnets.1.', x, embAct);

  for (let i = 0; i < nb; i++) {
    const pre = `up_blocks.${i}.`, r = nb - 1 - i; // the down block this one mirrors
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      x = resnet(o, cfg, p, `${pre}resnets.${j}.`, o.concat(x, skips.pop()!), embAct);
      if (cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D') x = transformer(o, cfg, p, `${pre}attentions.${j}.`, x, inp.context, cfg.heads[r]!, cfg.transformerLayers[r]!);
    }
    if (i < nb - 1) {
      const to = sized ? (o.shape(skips.at(-1)!).slice(1, 3) as [number, number]) : undefined;
      x = o.conv2d(o.upsample2x(x, to), w(`${pre}upsamplers.0.conv.weight`), w(`${pre}upsamplers.0.conv.bias`), SAME);
    }
  }

  const hN = o.groupNorm(x, w('conv_norm_out.weight'), w('conv_norm_out.bias'), cfg.groups, cfg.eps, true);
  return o.conv2d(hN, w('conv_out.weight'), w('conv_out.bias'), SAME);
}

/** TimestepEmbedding: linear_2(silu(linear_1(x))). */
function embedMlp<T, W>(o: DiffOps<T, W>, p: Params<W>, pre: string, x: T): T {
  return o.linear(o.act(o.linear(x, p.get(`${pre}linear_1.weight`), p.get(`${pre}linear_1.bias`)), 'silu'), p.get(`${pre}linear_2.weight`), p.get(`${pre}linear_2.bias`));
}

function resnet<T, W>(o: DiffOps<T, W>, cfg: UNetConfig, p: Params<W>, pre: string, x: T, embAct: T): T {
  const w = (n: string) => p.get(pre + n);
  let h = o.conv2d(o.groupNorm(x, w('norm1.weight'), w('norm1.bias'), cfg.groups, cfg.eps, true), w('conv1.weight'), w('conv1.bias'), SAME);
  h = o.addPerBatch(h, o.linear(embAct, w('time_emb_proj.weight'), w('time_emb_proj.bias')));
  h = o.conv2d(o.groupNorm(h, w('norm2.weight'), w('norm2.bias'), cfg.groups, cfg.eps, true), w('conv2.weight'), w('conv2.bias'), SAME);
  const skip = p.has(pre + 'conv_shortcut.weight') ? o.conv2d(x, w('conv_shortcut.weight'), w('conv_shortcut.bias'), ONE) : x;
  return o.add(h, skip);
}

/** Transformer2DModel over an image x [B, H, W, C] with cross-attention to ctx [B, T, Dc]. */
function transformer<T, W>(o: DiffOps<T, W>, cfg: UNetConfig, p: Params<W>, pre: string, x: T, ctx: T, heads: number, depth: number): T {
  const w = (n: string) => p.get(pre + n);
  const [B, H, Wd, C] = o.shape(x) as [number, number, number, number];
  const n = o.groupNorm(x, w('norm.weight'), w('norm.bias'), cfg.groups, 1e-6, false);
  let h: T; //                                                                       [B, H * W, C]
  if (cfg.useLinearProjection) h = o.linear(o.reshape(n, [B, H * Wd, C]), w('proj_in.weight'), w('proj_in.bias'));
  else h = o.reshape(o.conv2d(n, w('proj_in.weight'), w('proj_in.bias'), ONE), [B, H * Wd, C]);
  for (let d = 0; d < depth; d++) {
    const bp = `transformer_blocks.${d}.`;
    const ln = (k: string) => o.layerNorm(h, w(`${bp}${k}.weight`), w(`${bp}${k}.bias`), 1e-5);
    h = o.add(attn(o, p, `${pre}${bp}attn1.`, ln('norm1'), null, heads), h);
    h = o.add(attn(o, p, `${pre}${bp}attn2.`, ln('norm2'), ctx, heads), h);
    const ff = o.linear(o.geglu(o.linear(ln('norm3'), w(`${bp}ff.net.0.proj.weight`), w(`${bp}ff.net.0.proj.bias`))), w(`${bp}ff.net.2.weight`), w(`${bp}ff.net.2.bias`));
    h = o.add(ff, h);
  }
  let out: T;
  if (cfg.useLinearProjection) out = o.reshape(o.linear(h, w('proj_out.weight'), w('proj_out.bias')), [B, H, Wd, C]);
  else out = o.conv2d(o.reshape(h, [B, H, Wd, C]), w('proj_out.weight'), w('proj_out.bias'), ONE);
  return o.add(out, x);
}

/** diffusers' Attention: to_q/k/v without bias, to_out.0 with; self-attention when ctx is null. */
function attn<T, W>(o: DiffOps<T, W>, p: Params<W>, pre: string, h: T, ctx: T | null, heads: number): T {
  const w = (n: string) => p.get(pre + n);
  const src = ctx ?? h;
  const q = o.linear(h, w('to_q.weight')), k = o.linear(src, w('to_k.weight')), v = o.linear(src, w('to_v.weight'));
  const C = o.shape(q)[2]!;
  const a = o.attention(q, k, v, heads, 1 / Math.sqrt(C / heads), false);
  return o.linear(a, w('to_out.0.weight'), w('to_out.0.bias'));
}

/**
 * Every parameter of a UNet with this config and its shape as diffusers stores it (PyTorch
 * layout: convolutions [C_out, C_in, kh, kw]). The benchmark builds random weights from it; the
 * tests check it against the fixtures' files.
 */
export function unetParamShapes(cfg: UNetConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const boc = cfg.blockOutChannels, n = boc.length, C0 = boc[0]!, T = 4 * C0;
  const lin = (pre: string, out: number, inp: number, bias = true) => {
    m.set(`${pre}.weight`, [out, inp]);
    if (bias) m.set(`${pre}.bias`, [out]);
  };
  const conv = (pre: string, out: number, inp: number, k: number) => {
    m.set(`${pre}.weight`, [out, inp, k, k]);
    m.set(`${pre}.bias`, [out]);
  };
  const norm = (pre: string, c: number) => {
    m.set(`${pre}.weight`, [c]);
    m.set(`${pre}.bias`, [c]);
  };
  const resnet = (pre: string, cin: number, cout: number) => {
    norm(`${pre}.norm1`, cin);
    conv(`${pre}.conv1`, cout, cin, 3);
    lin(`${pre}.time_emb_proj`, cout, T);
    norm(`${pre}.norm2`, cout);
    conv(`${pre}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${pre}.conv_shortcut`, cout, cin, 1);
  };
  const transformer = (pre: string, C: number, depth: number) => {
    norm(`${pre}.norm`, C);
    const proj = (k: string) => (cfg.useLinearProjection ? lin(`${pre}.${k}`, C, C) : conv(`${pre}.${k}`, C, C, 1));
    proj('proj_in');
    for (let d = 0; d < depth; d++) {
      const b = `${pre}.transformer_blocks.${d}`;
      for (const k of ['norm1', 'norm2', 'norm3']) norm(`${b}.${k}`, C);
      for (const [a, ctx] of [['attn1', C], ['attn2', cfg.crossAttentionDim]] as const) {
        lin(`${b}.${a}.to_q`, C, C, false);
        lin(`${b}.${a}.to_k`, C, ctx, false);
        lin(`${b}.${a}.to_v`, C, ctx, false);
        lin(`${b}.${a}.to_out.0`, C, C);
      }
      lin(`${b}.ff.net.0.proj`, 8 * C, C);
      lin(`${b}.ff.net.2`, C, 4 * C);
    }
    proj('proj_out');
  };
  lin('time_embedding.linear_1', T, C0);
  lin('time_embedding.linear_2', T, T);
  if (cfg.addTextTime) {
    lin('add_embedding.linear_1', T, cfg.addTextTime.inputDim);
    lin('add_embedding.linear_2', T, T);
  }
  conv('conv_in', C0, cfg.inChannels, 3);
  for (let i = 0; i < n; i++) {
    const out = boc[i]!;
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? boc[Math.max(0, i - 1)]! : out, out);
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') transformer(`down_blocks.${i}.attentions.${j}`, out, cfg.transformerLayers[i]!);
    }
    if (i < n - 1) conv(`down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  }
  resnet('mid_block.resnets.0', boc[n - 1]!, boc[n - 1]!);
  transformer('mid_block.attentions.0', boc[n - 1]!, cfg.transformerLayers[n - 1]!);
  resnet('mid_block.resnets.1', boc[n - 1]!, boc[n - 1]!);
  const rb = [...boc].reverse();
  for (let i = 0; i < n; i++) {
    const prev = rb[Math.max(0, i - 1)]!, out = rb[i]!, inp = rb[Math.min(i + 1, n - 1)]!;
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      resnet(`up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : out) + (j === cfg.layersPerBlock ? inp : out), out);
      if (cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D') transformer(`up_blocks.${i}.attentions.${j}`, out, cfg.transformerLayers[n - 1 - i]!);
    }
    if (i < n - 1) conv(`up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  }
  norm('conv_norm_out', C0);
  conv('conv_out', cfg.outChannels, C0, 3);
  return m;
}

/**
 * The FLOPs of one forward (2 per multiply-add: convolutions, linears, attention's two
 * products) for a batch of B latents h x w and a context of Tc tokens.
 */
export function unetFlops(cfg: UNetConfig, B: number, h: number, w: number, Tc: number): number {
  // walk the same structure as unetParamShapes, with the pixel count at each level
  let f = 0;
  const boc = cfg.blockOutChannels, n = boc.length;
  const conv = (px: number, cout: number, cin: number, k: number) => (f += 2 * B * px * cout * cin * k * k);
  const resnet = (px: number, cin: number, cout: number) => {
    conv(px, cout, cin, 3);
    conv(px, cout, cout, 3);
    if (cin !== cout) conv(px, cout, cin, 1);
  };
  const transformer = (px: number, C: number, depth: number) => {
    f += 2 * 2 * B * px * C * C; // proj_in, proj_out
    for (let d = 0; d < depth; d++) {
      f += 2 * B * px * C * C * 4; // attn1 q k v out
      f += 2 * B * 2 * px * px * C; // attn1 scores and values
      f += 2 * B * (px * C * C * 2 + Tc * cfg.crossAttentionDim * C * 2); // attn2 q, out; k, v of the context
      f += 2 * B * 2 * px * Tc * C; // attn2 scores and values
      f += 2 * B * px * C * 12 * C; // GEGLU ff: C -> 8C, 4C -> C
    }
  };
  let px = h * w;
  conv(px, boc[0]!, cfg.inChannels, 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(px, j === 0 ? boc[Math.max(0, i - 1)]! : boc[i]!, boc[i]!);
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') transformer(px, boc[i]!, cfg.transformerLayers[i]!);
    }
    if (i < n - 1) {
      px /= 4;
      conv(px, boc[i]!, boc[i]!, 3);
    }
  }
  resnet(px, boc[n - 1]!, boc[n - 1]!);
  transformer(px, boc[n - 1]!, cfg.transformerLayers[n - 1]!);
  resnet(px, boc[n - 1]!, boc[n - 1]!);
  const rb = [...boc].reverse();
  for (let i = 0; i < n; i++) {
    const prev = rb[Math.max(0, i - 1)]!, out = rb[i]!, inp = rb[Math.min(i + 1, n - 1)]!;
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      resnet(px, (j === 0 ? prev : out) + (j === cfg.layersPerBlock ? inp : out), out);
      if (cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D') transformer(px, out, cfg.transformerLayers[n - 1 - i]!);
    }
    if (i < n - 1) {
      px *= 4;
      conv(px, out, out, 3);
    }
  }
  conv(px, cfg.outChannels, boc[0]!, 3);
  return f;
}
