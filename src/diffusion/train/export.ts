// Writing trained diffusion weights back to files the inference side (and diffusers) read:
//
//   a diffusers folder   model_index.json, scheduler/, tokenizer(_2)/ copied from the source;
//                        unet/ vae/ text_encoder(_2)/ with config.json and the weights, the
//                        convolutions permuted back from the kernels' [C_out, kh, kw, C_in] to
//                        PyTorch's [C_out, C_in, kh, kw] (the inverse of load.ts convWeightToNhwc)
//   a single file        the original LDM layout (SD 1.x: model.diffusion_model.*,
//                        first_stage_model.*, cond_stage_model.transformer.*): the inverse of
//                        src/formats/sd-checkpoint.ts' mapping, checked key by key against it
//
// Weights arrive as f32 in the inference layout (what ComponentParams.get returns, and what the
// trainer holds); written as F32, or F16 / BF16 on request.

import { copyFileSync, cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { mapSdKey, type SdLayout } from '../../formats/sd-checkpoint.ts';
import { encode } from '../../tensor/dtype.ts';
import { TrainError } from '../../train/errors.ts';
import type { ComponentParams } from '../load.ts';
import type { UNetConfig } from '../unet.ts';

/** One tensor in the inference layout (convolutions [C_out, kh, kw, C_in]). */
export interface HostTensor {
  shape: readonly number[];
  data: Float32Array;
}

export type ComponentWeights = Map<string, HostTensor>;
export type ExportDtype = 'F32' | 'F16' | 'BF16';

/** [C_out, kh, kw, C_in] -> [C_out, C_in, kh, kw]. */
export function convWeightToNchw(t: HostTensor): HostTensor {
  const [Co, KH, KW, Ci] = t.shape as [number, number, number, number];
  const KK = KH * KW, out = new Float32Array(t.data.length);
  for (let co = 0; co < Co; co++) for (let k = 0; k < KK; k++) for (let ci = 0; ci < Ci; ci++) out[(co * Ci + ci) * KK + k] = t.data[(co * KK + k) * Ci + ci]!;
  return { shape: [Co, Ci, KH, KW], data: out };
}

/** A tensor in the files' layout (PyTorch's). */
const torchLayout = (t: HostTensor): HostTensor => (t.shape.length === 4 ? convWeightToNchw(t) : t);

function entry(name: string, t: HostTensor, dtype: ExportDtype) {
  const data = dtype === 'F32' ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) : encode(dtype === 'F16' ? 'f16' : 'bf16', t.data);
  return { name, dtype, shape: t.shape, data };
}

export interface DiffusersExport {
  /** The folder the configs, tokenizers and scheduler come from (a diffusers folder or a from-scratch config folder). */
  source: string;
  /** Component folder -> config.json contents (written as given). */
  configs: Record<string, Record<string, unknown>>;
  /** Component folder -> weights (inference layout). */
  weights: Record<string, ComponentWeights>;
  dtype?: ExportDtype;
}

const WEIGHT_FILE: Record<string, string> = { unet: 'diffusion_pytorch_model', vae: 'diffusion_pytorch_model', text_encoder: 'model', text_encoder_2: 'model' };

/** Writes a diffusers pipeline folder. */
export function writeDiffusersFolder(out: string, e: DiffusersExport): void {
  mkdirSync(out, { recursive: true });
  const dtype = e.dtype ?? 'F32';
  for (const f of ['model_index.json']) {
    if (!existsSync(join(e.source, f))) throw new TrainError(`${e.source}: no ${f} to copy into the exported folder`);
    copyFileSync(join(e.source, f), join(out, f));
  }
  for (const sub of ['scheduler', 'tokenizer', 'tokenizer_2']) {
    if (existsSync(join(e.source, sub))) cpSync(join(e.source, sub), join(out, sub), { recursive: true });
  }
  for (const [sub, w] of Object.entries(e.weights)) {
    const base = WEIGHT_FILE[sub];
    if (!base) throw new TrainError(`export: unknown component "${sub}"`);
    const dir = join(out, sub);
    mkdirSync(dir, { recursive: true });
    const cfg = e.configs[sub];
    if (!cfg) throw new TrainError(`export: no config for ${sub}`);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    writeSafetensors(join(dir, `${base}.safetensors`), [...w].map(([n, t]) => entry(n, torchLayout(t), dtype)), { format: 'pt' });
  }
}

// ---- the single-file (LDM) layout ---------------------------------------------------------------

function resnetToLdm(rest: string): string {
  return rest
    .replace(/^norm1\./, 'in_layers.0.')
    .replace(/^conv1\./, 'in_layers.2.')
    .replace(/^norm2\./, 'out_layers.0.')
    .replace(/^conv2\./, 'out_layers.3.')
    .replace(/^time_emb_proj\./, 'emb_layers.1.')
    .replace(/^conv_shortcut\./, 'skip_connection.');
}

/** A diffusers UNet name -> its key under model.diffusion_model. (inverse of mapUnetKey). */
export function unetKeyToLdm(name: string, cfg: Pick<UNetConfig, 'layersPerBlock' | 'upBlockTypes'>): string {
  const L1 = cfg.layersPerBlock + 1;
  const simple: Array<[string, string]> = [
    ['time_embedding.linear_1.', 'time_embed.0.'],
    ['time_embedding.linear_2.', 'time_embed.2.'],
    ['add_embedding.linear_1.', 'label_emb.0.0.'],
    ['add_embedding.linear_2.', 'label_emb.0.2.'],
    ['conv_in.', 'input_blocks.0.0.'],
    ['conv_norm_out.', 'out.0.'],
    ['conv_out.', 'out.2.'],
  ];
  for (const [from, to] of simple) if (name.startsWith(from)) return to + name.slice(from.length);
  let m: RegExpExecArray | null;
  if ((m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name))) {
    const i = Number(m[1]) * L1 + Number(m[3]) + 1;
    return m[2] === 'resnets' ? `input_blocks.${i}.0.${resnetToLdm(m[4]!)}` : `input_blocks.${i}.1.${m[4]}`;
  }
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(name))) return `input_blocks.${(Number(m[1]) + 1) * L1}.0.op.${m[2]}`;
  if ((m = /^mid_block\.(resnets|attentions)\.(\d)\.(.+)$/.exec(name))) {
    if (m[1] === 'attentions') return `middle_block.1.${m[3]}`;
    return `middle_block.${m[2] === '0' ? 0 : 2}.${resnetToLdm(m[3]!)}`;
  }
  if ((m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name))) {
    const i = Number(m[1]) * L1 + Number(m[3]);
    return m[2] === 'resnets' ? `output_blocks.${i}.0.${resnetToLdm(m[4]!)}` : `output_blocks.${i}.1.${m[4]}`;
  }
  if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(name))) {
    const b = Number(m[1]);
    const j = cfg.upBlockTypes[b] === 'CrossAttnUpBlock2D' ? 2 : 1;
    return `output_blocks.${b * L1 + cfg.layersPerBlock}.${j}.conv.${m[2]}`;
  }
  throw new TrainError(`single-file export: no LDM name for UNet tensor ${name}`);
}

/** A diffusers VAE name -> its key under first_stage_model., and whether it becomes a 1x1 conv. */
export function vaeKeyToLdm(name: string, vaeBlocks: number): { key: string; conv1x1: boolean } {
  const plain = (key: string) => ({ key, conv1x1: false });
  if (/^(quant_conv|post_quant_conv)\./.test(name)) return plain(name);
  const m = /^(encoder|decoder)\.(.+)$/.exec(name);
  if (!m) throw new TrainError(`single-file export: no LDM name for VAE tensor ${name}`);
  const side = m[1]!, rest = m[2]!;
  const res = (r: string) => r.replace(/^conv_shortcut\./, 'nin_shortcut.');
  if (/^(conv_in|conv_out)\./.test(rest)) return plain(name);
  if (rest.startsWith('conv_norm_out.')) return plain(`${side}.norm_out.${rest.slice('conv_norm_out.'.length)}`);
  let mm: RegExpExecArray | null;
  if ((mm = /^mid_block\.resnets\.(\d)\.(.+)$/.exec(rest))) return plain(`${side}.mid.block_${Number(mm[1]) + 1}.${res(mm[2]!)}`);
  if ((mm = /^mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(rest))) {
    const to = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' }[mm[1] as 'group_norm'];
    return { key: `${side}.mid.attn_1.${to}.${mm[2]}`, conv1x1: mm[1] !== 'group_norm' && mm[2] === 'weight' };
  }
  if ((mm = /^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(rest)) && side === 'encoder') return plain(`encoder.down.${mm[1]}.block.${mm[2]}.${res(mm[3]!)}`);
  if ((mm = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(rest)) && side === 'encoder') return plain(`encoder.down.${mm[1]}.downsample.conv.${mm[2]}`);
  if ((mm = /^up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(rest)) && side === 'decoder') return plain(`decoder.up.${vaeBlocks - 1 - Number(mm[1])}.block.${mm[2]}.${res(mm[3]!)}`);
  if ((mm = /^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(rest)) && side === 'decoder') return plain(`decoder.up.${vaeBlocks - 1 - Number(mm[1])}.upsample.conv.${mm[2]}`);
  throw new TrainError(`single-file export: no LDM name for VAE tensor ${name}`);
}

export interface SingleFileExport {
  unet: ComponentWeights;
  unetConfig: Pick<UNetConfig, 'layersPerBlock' | 'upBlockTypes'>;
  vae: ComponentWeights;
  vaeBlocks: number;
  textEncoder: ComponentWeights;
  dtype?: ExportDtype;
}

/**
 * Writes an SD 1.x-layout single-file checkpoint (one CLIP text encoder). Every key written is
 * mapped back by mapSdKey and must give the tensor it came from: the two mappings cannot drift.
 */
export function writeSingleFile(file: string, e: SingleFileExport): void {
  const dtype = e.dtype ?? 'F32';
  const layout: SdLayout = { unetLayersPerBlock: e.unetConfig.layersPerBlock, vaeBlocks: e.vaeBlocks };
  const entries: ReturnType<typeof entry>[] = [];
  const check = (key: string, component: string, name: string) => {
    const back = mapSdKey(key, layout);
    if (!back || back.length !== 1 || back[0]!.component !== component || back[0]!.name !== name) {
      throw new TrainError(`single-file export: ${component} tensor ${name} would be written as ${key}, which reads back as ${JSON.stringify(back)}`);
    }
  };
  for (const [name, t] of e.unet) {
    const key = `model.diffusion_model.${unetKeyToLdm(name, e.unetConfig)}`;
    check(key, 'unet', name);
    entries.push(entry(key, torchLayout(t), dtype));
  }
  for (const [name, t] of e.vae) {
    const { key: k, conv1x1 } = vaeKeyToLdm(name, e.vaeBlocks);
    const key = `first_stage_model.${k}`;
    check(key, 'vae', name);
    const tt = torchLayout(t);
    entries.push(entry(key, conv1x1 ? { shape: [...tt.shape, 1, 1], data: tt.data } : tt, dtype));
  }
  for (const [name, t] of e.textEncoder) {
    if (name.endsWith('position_ids')) continue;
    const key = `cond_stage_model.transformer.${name}`;
    check(key, 'text_encoder', name);
    entries.push(entry(key, t, dtype));
  }
  writeSafetensors(file, entries, { format: 'pt' });
}

/**
 * Every tensor of a loaded component as f32 in the inference layout, with `trained` (by name)
 * in place of the file's values.
 */
export function componentWeights(params: ComponentParams, trained?: ReadonlyMap<string, HostTensor>): ComponentWeights {
  const out: ComponentWeights = new Map();
  for (const name of params.ckpt.names()) {
    if (name.endsWith('position_ids')) continue;
    const t = trained?.get(name);
    if (t) out.set(name, t);
    else {
      const p = params.get(name);
      out.set(name, { shape: [...p.shape], data: p.toF32() });
    }
  }
  return out;
}
