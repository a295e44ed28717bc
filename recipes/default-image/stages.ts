// The default image model's recipe, its data stages: what `slipstream train-image` trains on and
// the configs it starts from. Nothing is downloaded; every stage is deterministic.
//
//   tokenizer  out/model/tokenizer: a subset of CLIP's own BPE vocabulary (assets/clip): the 512
//              byte symbols, the merges CLIP applies to the words of the scene grammar, and the
//              start/end tokens. A caption tokenizes exactly as CLIP's tokenizer splits it (the
//              same pieces; ids renumbered), an out-of-grammar word falls back to bytes, and the
//              text encoder's embedding table is ~600 rows instead of 49,408.
//   configs    out/model/{model_index.json, text_encoder, unet, vae, scheduler}: a diffusers
//              pipeline folder without weights, the shapes training starts from (a latent model:
//              64x64 pictures, 16x16x4 latents).
//   dataset    out/data: an imagefolder (images/NNNNNN.png + metadata.jsonl with file_name/text),
//              the scenes of scenes.ts from the training split only.
//
// Each stage writes to a temporary name and renames at the end, so an interrupted stage leaves
// nothing that a later run would mistake for a finished one.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { bytesToUnicode } from '../../src/diffusion/clip-tokenizer.ts';
import { encodePng } from '../../src/formats/image.ts';
import { caption, COLOR_NAMES, examples, RELATIONS, SHAPES } from './scenes.ts';

export const RECIPE_DIR = dirname(fileURLToPath(import.meta.url));
export const OUT_DIR = join(RECIPE_DIR, 'out');
export const MODEL_DIR = join(OUT_DIR, 'model');
export const DATA_DIR = join(OUT_DIR, 'data');
export const IMAGE_SIZE = 64;
/** Tokens per prompt (with start and end): the longest caption of the grammar is 14. */
export const MAX_TOKENS = 32;
export const DATA_SEED = 1;
const CLIP_ASSETS = join(RECIPE_DIR, '..', '..', 'assets', 'clip');

type Log = (msg: string) => void;

/** Every word the scene grammar (scenes.ts) can produce, and the words parseCaption accepts. */
export function sceneWords(): string[] {
  const words = new Set<string>(['a', 'an', 'one', 'two', 'three', 'on', 'background']);
  for (const c of COLOR_NAMES) words.add(c);
  for (const s of SHAPES) words.add(s).add(s + 's');
  for (const r of RELATIONS) for (const w of r.split(' ')) words.add(w);
  return [...words].sort();
}

export interface SubsetTokenizer {
  vocab: Record<string, number>;
  merges: string[];
}

/**
 * The part of CLIP's vocabulary the given words need: the byte symbols (alone and as word ends),
 * every merge CLIP's BPE applies to these words, in CLIP's rank order, and the special tokens
 * (<|endoftext|> last, as in CLIP, so transformers' legacy "largest id is EOS" rule still holds).
 */
export function clipSubset(words: readonly string[], clipVocab: Record<string, number>, clipMerges: readonly string[]): SubsetTokenizer {
  const ranks = new Map<string, number>();
  clipMerges.forEach((m, i) => ranks.set(m, i));
  const used = new Set<number>();
  const bytes = bytesToUnicode();
  for (const word of words) {
    const chars = Array.from(Buffer.from(word, 'utf8')).map((b) => bytes[b]!);
    let parts = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      used.add(bestRank);
      const [a, b] = [parts[best]!, parts[best + 1]!];
      const next: string[] = [];
      for (let i = 0; i < parts.length;) {
        if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) { next.push(a + b); i += 2; } else next.push(parts[i++]!);
      }
      parts = next;
    }
    for (const p of parts) if (clipVocab[p] === undefined) throw new Error(`CLIP's vocabulary lacks ${JSON.stringify(p)} (from "${word}")`);
  }
  const merges = [...used].sort((x, y) => x - y).map((r) => clipMerges[r]!);
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const s of bytes) vocab[s] = id++;
  for (const s of bytes) vocab[s + '</w>'] = id++;
  for (const m of merges) {
    const tok = m.replace(' ', '');
    if (vocab[tok] === undefined) vocab[tok] = id++;
  }
  vocab['<|startoftext|>'] = id++;
  vocab['<|endoftext|>'] = id++;
  return { vocab, merges };
}

function readClipAssets(): { vocab: Record<string, number>; merges: string[] } {
  const vocab = JSON.parse(gunzipSync(readFileSync(join(CLIP_ASSETS, 'vocab.json.gz'))).toString('utf8')) as Record<string, number>;
  const lines = gunzipSync(readFileSync(join(CLIP_ASSETS, 'merges.txt.gz'))).toString('utf8').split('\n');
  const merges = lines.filter((l, i) => l !== '' && !(i === 0 && l.startsWith('#version')));
  return { vocab, merges };
}

function replaceDir(dir: string, fill: (tmp: string) => void): void {
  const tmp = dir + '.tmp';
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  fill(tmp);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameSync(tmp, dir);
}

const json = (path: string, v: unknown) => writeFileSync(path, JSON.stringify(v, null, 2) + '\n');

/** The tokenizer folder (vocab.json, merges.txt and transformers' two config files). */
export function writeTokenizer(dir: string): SubsetTokenizer {
  const clip = readClipAssets();
  const sub = clipSubset(sceneWords(), clip.vocab, clip.merges);
  mkdirSync(dir, { recursive: true });
  json(join(dir, 'vocab.json'), sub.vocab);
  writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n' + sub.merges.join('\n') + '\n');
  const special = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: '<|endoftext|>' };
  json(join(dir, 'special_tokens_map.json'), special);
  json(join(dir, 'tokenizer_config.json'), { ...special, model_max_length: MAX_TOKENS, do_lower_case: true, tokenizer_class: 'CLIPTokenizer', clean_up_tokenization_spaces: true });
  return sub;
}

/** The model's shapes. Sizes are the recipe's choice: f16 weights well under 25 MB. */
export function modelConfigs(vocabSize: number): Record<string, Record<string, unknown>> {
  const width = 128;
  return {
    model_index: {
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: '0.27.2',
      feature_extractor: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: ['diffusers', 'DDIMScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    },
    text_encoder: {
      architectures: ['CLIPTextModel'],
      model_type: 'clip_text_model',
      vocab_size: vocabSize,
      hidden_size: width,
      intermediate_size: 4 * width,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      max_position_embeddings: MAX_TOKENS,
      hidden_act: 'quick_gelu',
      layer_norm_eps: 1e-5,
      bos_token_id: vocabSize - 2,
      eos_token_id: vocabSize - 1,
      pad_token_id: vocabSize - 1,
      projection_dim: width,
      torch_dtype: 'float32',
    },
    vae: {
      _class_name: 'AutoencoderKL',
      _diffusers_version: '0.27.2',
      act_fn: 'silu',
      block_out_channels: [16, 32, 32],
      down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
      up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
      in_channels: 3,
      out_channels: 3,
      latent_channels: 4,
      layers_per_block: 1,
      norm_num_groups: 8,
      sample_size: IMAGE_SIZE,
      scaling_factor: 1,
      force_upcast: false,
    },
    unet: {
      _class_name: 'UNet2DConditionModel',
      _diffusers_version: '0.27.2',
      sample_size: IMAGE_SIZE / 4,
      in_channels: 4,
      out_channels: 4,
      block_out_channels: [64, 128, 128],
      down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
      up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
      layers_per_block: 1,
      attention_head_dim: 4,
      cross_attention_dim: width,
      norm_num_groups: 16,
      norm_eps: 1e-5,
      flip_sin_to_cos: true,
      freq_shift: 0,
      act_fn: 'silu',
    },
    scheduler: {
      _class_name: 'DDIMScheduler',
      _diffusers_version: '0.27.2',
      num_train_timesteps: 1000,
      beta_start: 0.00085,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      prediction_type: 'epsilon',
      timestep_spacing: 'leading',
      steps_offset: 1,
      clip_sample: false,
      set_alpha_to_one: false,
    },
  };
}

/** Stage: out/model without weights (tokenizer + configs). */
export function buildModelSkeleton(dir: string = MODEL_DIR, log: Log = console.log): void {
  replaceDir(dir, (tmp) => {
    const sub = writeTokenizer(join(tmp, 'tokenizer'));
    const cfgs = modelConfigs(Object.keys(sub.vocab).length);
    json(join(tmp, 'model_index.json'), cfgs.model_index);
    for (const c of ['text_encoder', 'unet', 'vae'] as const) {
      mkdirSync(join(tmp, c));
      json(join(tmp, c, 'config.json'), cfgs[c]);
    }
    mkdirSync(join(tmp, 'scheduler'));
    json(join(tmp, 'scheduler', 'scheduler_config.json'), cfgs.scheduler);
    log(`model skeleton: ${Object.keys(sub.vocab).length}-token CLIP subset tokenizer, configs -> ${dir}`);
  });
}

/** Stage: `n` training-split scenes as an imagefolder. */
export function buildDataset(n: number, dir: string = DATA_DIR, seed = DATA_SEED, log: Log = console.log): void {
  const t0 = Date.now();
  replaceDir(dir, (tmp) => {
    mkdirSync(join(tmp, 'images'));
    const lines: string[] = [];
    const chunk = 1000;
    for (let start = 0; start < n; start += chunk) {
      for (const [j, e] of examples(seed, 'train', start, Math.min(chunk, n - start), IMAGE_SIZE).entries()) {
        const name = `images/${String(start + j).padStart(6, '0')}.png`;
        writeFileSync(join(tmp, name), encodePng({ width: IMAGE_SIZE, height: IMAGE_SIZE, data: e.pixels }));
        lines.push(JSON.stringify({ file_name: name, text: e.caption }));
      }
    }
    writeFileSync(join(tmp, 'metadata.jsonl'), lines.join('\n') + '\n');
  });
  log(`dataset: ${n} scenes -> ${dir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Whether a stage's output is already there. */
export const built = {
  skeleton: (dir: string = MODEL_DIR) => existsSync(join(dir, 'model_index.json')),
  dataset: (dir: string = DATA_DIR) => existsSync(join(dir, 'metadata.jsonl')),
};

export { caption };
