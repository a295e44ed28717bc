// Training from nothing: random weights for a pipeline described only by its config.json files.
//
// A from-scratch run starts from a "config folder": a diffusers folder whose unet/,
// text_encoder/ and vae/ hold config.json (weights optional), plus tokenizer/, scheduler/ and
// model_index.json. Each component without a weights file gets random weights, drawn as PyTorch
// initialises the modules diffusers and transformers build (nn.Linear / nn.Conv2d:
// kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fan_in)) for weights and biases alike; norms 1 and 0;
// CLIP's embeddings N(0, 0.02) as CLIPPreTrainedModel._init_weights), and the result is written
// to <run>/init/ as an ordinary diffusers folder, which the rest of the trainer loads like any
// model (so a from-scratch run is a full fine-tune of that folder).
//
// What a recipe training a whole pipeline from scratch needs (the default image model):
//   1. a VAE: its weights in the config folder (trained by a reconstruction + KL stage; not
//      done by this trainer yet), since the latents of a random VAE carry no picture;
//   2. the UNet and the text encoder trained together (--train-text-encoder), with the text
//      encoder's captions tokenised by the folder's tokenizer (a small vocabulary suffices).

import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { TrainError } from '../../train/errors.ts';
import { TrainRng } from '../../train/rng.ts';
import { clipTextConfig, type ClipTextConfig } from '../clip-text.ts';
import { componentWeightsFile } from '../load.ts';
import { unetConfig, unetParamShapes } from '../unet.ts';
import { vaeConfig, type VaeConfig } from '../vae.ts';

/** Every parameter of transformers' CLIPTextModel(WithProjection) and its shape. */
export function clipTextParamShapes(cfg: ClipTextConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const D = cfg.hiddenSize, F = cfg.intermediateSize, pre = 'text_model.';
  m.set(`${pre}embeddings.token_embedding.weight`, [cfg.vocabSize, D]);
  m.set(`${pre}embeddings.position_embedding.weight`, [cfg.maxPositions, D]);
  for (let l = 0; l < cfg.layers; l++) {
    const L = `${pre}encoder.layers.${l}.`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      m.set(`${L}self_attn.${p}.weight`, [D, D]);
      m.set(`${L}self_attn.${p}.bias`, [D]);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      m.set(`${L}${n}.weight`, [D]);
      m.set(`${L}${n}.bias`, [D]);
    }
    m.set(`${L}mlp.fc1.weight`, [F, D]);
    m.set(`${L}mlp.fc1.bias`, [F]);
    m.set(`${L}mlp.fc2.weight`, [D, F]);
    m.set(`${L}mlp.fc2.bias`, [D]);
  }
  m.set(`${pre}final_layer_norm.weight`, [D]);
  m.set(`${pre}final_layer_norm.bias`, [D]);
  if (cfg.projectionDim !== null) m.set('text_projection.weight', [cfg.projectionDim, D]);
  return m;
}

/** Every parameter of diffusers' AutoencoderKL (DownEncoderBlock2D / UpDecoderBlock2D) and its shape. */
export function vaeParamShapes(cfg: VaeConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const conv = (pre: string, o: number, i: number, k: number) => {
    m.set(`${pre}.weight`, [o, i, k, k]);
    m.set(`${pre}.bias`, [o]);
  };
  const norm = (pre: string, c: number) => {
    m.set(`${pre}.weight`, [c]);
    m.set(`${pre}.bias`, [c]);
  };
  const resnet = (pre: string, i: number, o: number) => {
    norm(`${pre}.norm1`, i);
    conv(`${pre}.conv1`, o, i, 3);
    norm(`${pre}.norm2`, o);
    conv(`${pre}.conv2`, o, o, 3);
    if (i !== o) conv(`${pre}.conv_shortcut`, o, i, 1);
  };
  const mid = (side: string, C: number) => {
    resnet(`${side}.mid_block.resnets.0`, C, C);
    if (cfg.midBlockAttention) {
      const a = `${side}.mid_block.attentions.0`;
      norm(`${a}.group_norm`, C);
      for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
        m.set(`${a}.${p}.weight`, [C, C]);
        m.set(`${a}.${p}.bias`, [C]);
      }
    }
    resnet(`${side}.mid_block.resnets.1`, C, C);
  };
  const boc = cfg.blockOutChannels, n = boc.length, L = cfg.latentChannels;
  conv('encoder.conv_in', boc[0]!, cfg.inChannels, 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? boc[Math.max(0, i - 1)]! : boc[i]!, boc[i]!);
    if (i < n - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, boc[i]!, boc[i]!, 3);
  }
  mid('encoder', boc[n - 1]!);
  norm('encoder.conv_norm_out', boc[n - 1]!);
  conv('encoder.conv_out', 2 * L, boc[n - 1]!, 3);
  if (cfg.useQuantConv) conv('quant_conv', 2 * L, 2 * L, 1);
  if (cfg.usePostQuantConv) conv('post_quant_conv', L, L, 1);
  const rb = [...boc].reverse();
  conv('decoder.conv_in', rb[0]!, L, 3);
  mid('decoder', rb[0]!);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? rb[Math.max(0, i - 1)]! : rb[i]!, rb[i]!);
    if (i < n - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, rb[i]!, rb[i]!, 3);
  }
  norm('decoder.conv_norm_out', rb[n - 1]!);
  conv('decoder.conv_out', cfg.outChannels, rb[n - 1]!, 3);
  return m;
}

/** Random weights for `shapes` (PyTorch layout), in name order, drawn from rng (see the top of the file). */
export function randomInit(shapes: Map<string, number[]>, rng: TrainRng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const names = [...shapes.keys()].sort();
  for (const name of names) {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const isNorm = /(norm[^.]*|layer_norm\d|group_norm)\.(weight|bias)$/.test(name);
    if (isNorm) a.fill(name.endsWith('.weight') ? 1 : 0);
    else if (/embeddings\.(token|position)_embedding\.weight$/.test(name)) rng.fillNormal(a, 0.02);
    else {
      // a bias takes the fan-in of its weight
      const wShape = name.endsWith('.bias') ? shapes.get(name.slice(0, -5) + '.weight') : shape;
      const fanIn = wShape && wShape.length >= 2 ? wShape.slice(1).reduce((x, y) => x * y, 1) : n;
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) a[i] = (2 * rng.uniform() - 1) * bound;
    }
    out.set(name, a);
  }
  return out;
}

function readConfig(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TrainError(`--from-scratch: cannot read ${path} (${(e as Error).message})`);
  }
}

const hasWeights = (dir: string, base: string): boolean => {
  try {
    componentWeightsFile(dir, base);
    return true;
  } catch {
    return false;
  }
};

/**
 * Writes <out>/init: the config folder with random weights for each component that has none.
 * Returns that folder and which components were initialised. Done once: a resumed run finds
 * the folder complete (model_index.json is written last) and leaves it alone.
 */
export function scratchFolder(configDir: string, out: string, seed: number): { dir: string; random: string[] } {
  const dir = join(out, 'init');
  const random: string[] = [];
  const comps: Array<[string, string, (j: Record<string, unknown>) => Map<string, number[]>]> = [
    ['unet', 'diffusion_pytorch_model', (j) => unetParamShapes(unetConfig(j))],
    ['text_encoder', 'model', (j) => clipTextParamShapes(clipTextConfig(j))],
    ['text_encoder_2', 'model', (j) => clipTextParamShapes(clipTextConfig(j))],
    ['vae', 'diffusion_pytorch_model', (j) => vaeParamShapes(vaeConfig(j))],
  ];
  if (!existsSync(join(configDir, 'model_index.json'))) throw new TrainError(`--from-scratch ${configDir}: no model_index.json (a config folder is a diffusers folder whose components hold config.json)`);
  for (const [sub, base] of comps) {
    if (existsSync(join(configDir, sub)) && !hasWeights(join(configDir, sub), base)) random.push(sub);
  }
  if (existsSync(join(dir, 'model_index.json'))) return { dir, random };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const sub of ['scheduler', 'tokenizer', 'tokenizer_2']) if (existsSync(join(configDir, sub))) cpSync(join(configDir, sub), join(tmp, sub), { recursive: true });
  comps.forEach(([sub, base, shapesOf], ci) => {
    const src = join(configDir, sub);
    if (!existsSync(src)) return;
    if (!random.includes(sub)) {
      cpSync(src, join(tmp, sub), { recursive: true });
      return;
    }
    const cfgPath = join(src, 'config.json');
    let shapes: Map<string, number[]>;
    try {
      shapes = shapesOf(readConfig(cfgPath));
    } catch (e) {
      throw new TrainError(`${cfgPath}: ${(e as Error).message}`);
    }
    // one generator per component, so adding a component does not change the others' weights
    const w = randomInit(shapes, new TrainRng(seed * 7919 + ci + 1));
    mkdirSync(join(tmp, sub), { recursive: true });
    cpSync(cfgPath, join(tmp, sub, 'config.json'));
    writeSafetensors(join(tmp, sub, `${base}.safetensors`), [...w].map(([name, a]) => ({ name, dtype: 'F32' as const, shape: shapes.get(name)!, data: new Uint8Array(a.buffer) })), { format: 'pt' });
  });
  writeFileSync(join(tmp, 'model_index.json'), readFileSync(join(configDir, 'model_index.json')));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, random };
}
