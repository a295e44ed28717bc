// Random checkpoints of any family, in the Hugging Face layout (config.json, tokenizer.json,
// tokenizer_config.json, model.safetensors) or straight to GGUF. No weights can be downloaded
// here, so the tests and the generation benchmark run on models made by these functions.
//
// The weights are scaled so logits spread over several units: greedy decoding then has clear
// winners, and two correct implementations agree token for token instead of flipping on
// rounding noise between near-equal logits.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GGML_TYPE, writeGguf, type GgufWriteTensor } from '../formats/gguf.ts';
import { meta, type GgufMetadata } from '../formats/gguf-types.ts';
import { tokenizerFromGguf } from '../formats/gguf-tokenizer.ts';
import { ggufToHfName, isGemmaArch, shapeToGgufDims } from '../formats/layout.ts';
import { configToGgufMetadata, configToHf, hfConfigJson, type Arch, type ModelConfig, type RopeScalingConfig } from '../formats/model-config.ts';
import { writeSafetensors, type StWriteInput } from '../formats/safetensors.ts';
import type { DType } from '../tensor/dtype.ts';
import { convertTensor } from '../tensor/convert.ts';
import { FILE_TYPE, ggufTensorDType } from './quant-mix.ts';
import { Tensor } from '../tensor/tensor.ts';

export interface RandomModelSpec {
  arch: Arch;
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number;
  headDim?: number;
  ffnDim: number;
  maxPosition?: number;
  nExperts?: number;
  slidingWindow?: number;
  /** Output projection tied to the embedding (default: the family's usual choice). */
  tie?: boolean;
  /** RoPE base and scaling (default: the family's usual base, no scaling). */
  ropeTheta?: number;
  ropeScaling?: RopeScalingConfig;
  /** Rotary dims of each head (Phi-4-mini: 3/4 of it; default: all). */
  rotaryDim?: number;
}

const WORDS = (
  'the of and to in is was he for it with as his on be at by had are but from or have an they which one you were her all she there would their we him been has ' +
  'when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our ' +
  'over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little ' +
  'state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off ' +
  'come since against go came right used take three'
).split(' ');

/** A SentencePiece-style ("llama") vocabulary of exactly `size` tokens, as GGUF tokenizer metadata. */
export function randomVocabMetadata(size: number): GgufMetadata {
  if (size < 300) throw new Error(`randomVocabMetadata: need at least 300 tokens, got ${size}`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const seen = new Set(tokens);
  const pieces: string[] = [];
  const push = (p: string) => {
    if (!seen.has(p) && tokens.length + pieces.length < size) {
      seen.add(p);
      pieces.push(p);
    }
  };
  for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'"-:;()') push(c);
  push('▁');
  for (const w of WORDS) push('▁' + w);
  // Then all two- and three-letter pieces (with and without the word-start mark) until full.
  const L = 'etaoinshrdlcumwfgypbvkjxqz';
  outer: for (const a of L) {
    for (const b of L) {
      push(a + b);
      push('▁' + a + b);
      if (tokens.length + pieces.length >= size) break outer;
    }
  }
  for (let i = 0; tokens.length + pieces.length < size; i++) push(`▁${L[i % 26]}${L[Math.floor(i / 26) % 26]}${L[Math.floor(i / 676) % 26]}${i}`);
  const scores = tokens.map(() => 0);
  pieces.forEach((p, i) => {
    tokens.push(p);
    types.push(1);
    // Longer pieces score higher so they win merges; ties broken by list order.
    scores.push(-i / size + p.length);
  });
  const md: GgufMetadata = new Map();
  md.set('tokenizer.ggml.model', meta.str('llama'));
  md.set('tokenizer.ggml.tokens', meta.arr('string', tokens));
  md.set('tokenizer.ggml.scores', meta.arr('f32', scores));
  md.set('tokenizer.ggml.token_type', meta.arr('i32', types));
  md.set('tokenizer.ggml.unknown_token_id', meta.u32(0));
  md.set('tokenizer.ggml.bos_token_id', meta.u32(1));
  md.set('tokenizer.ggml.eos_token_id', meta.u32(2));
  md.set('tokenizer.ggml.add_bos_token', meta.bool(true));
  md.set('tokenizer.ggml.add_eos_token', meta.bool(false));
  return md;
}

/** Tiny shapes of every family for tests and reference fixtures (seconds to build and run). */
export const TINY_SPECS: Readonly<Record<Arch, RandomModelSpec>> = {
  llama: { arch: 'llama', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 },
  mistral: { arch: 'mistral', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 1, ffnDim: 96, maxPosition: 256, slidingWindow: 8 },
  mixtral: { arch: 'mixtral', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 64, maxPosition: 256, nExperts: 4 },
  gemma: { arch: 'gemma', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 2, nKvHeads: 1, headDim: 32, ffnDim: 128, maxPosition: 256 },
  gemma2: { arch: 'gemma2', vocabSize: 320, dim: 64, nLayers: 3, nHeads: 4, nKvHeads: 2, headDim: 16, ffnDim: 128, maxPosition: 256, slidingWindow: 6 },
  gemma3: { arch: 'gemma3', vocabSize: 320, dim: 64, nLayers: 6, nHeads: 4, nKvHeads: 2, headDim: 32, ffnDim: 128, maxPosition: 256, slidingWindow: 6 },
  qwen2: { arch: 'qwen2', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 },
  qwen3: { arch: 'qwen3', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32, ffnDim: 96, maxPosition: 256 },
  qwen3moe: { arch: 'qwen3moe', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, ffnDim: 48, maxPosition: 256, nExperts: 4 },
  phi3: { arch: 'phi3', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 },
  gpt2: { arch: 'gpt2', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, ffnDim: 256, maxPosition: 64 },
};

export function specToConfig(s: RandomModelSpec): ModelConfig {
  const headDim = s.headDim ?? s.dim / s.nHeads;
  const gemma = isGemmaArch(s.arch);
  const qwen = s.arch === 'qwen2' || s.arch === 'qwen3' || s.arch === 'qwen3moe';
  const moe = s.arch === 'mixtral' || s.arch === 'qwen3moe';
  const c: ModelConfig = {
    arch: s.arch,
    vocabSize: s.vocabSize,
    dim: s.dim,
    nLayers: s.nLayers,
    nHeads: s.nHeads,
    nKvHeads: s.arch === 'gpt2' ? s.nHeads : (s.nKvHeads ?? s.nHeads),
    headDim,
    ffnDim: s.ffnDim,
    maxPosition: s.maxPosition ?? 2048,
    normEps: s.arch === 'gpt2' ? 1e-5 : 1e-6,
    rope: s.arch === 'gpt2' ? null : { theta: s.ropeTheta ?? (qwen || s.arch === 'gemma3' ? 1e6 : 10000), layout: 'half', dim: s.rotaryDim ?? headDim, scaling: s.ropeScaling },
    act: s.arch === 'gpt2' || gemma ? 'gelu_tanh' : 'silu',
    tieEmbeddings: s.arch === 'gpt2' || gemma || (s.tie ?? qwen),
    slidingWindow: s.slidingWindow ?? (s.arch === 'gemma2' ? 4096 : s.arch === 'gemma3' ? 512 : 0),
    slidingLayers: s.arch === 'gemma2' ? 'even' : s.arch === 'gemma3' ? 'period' : 'all',
    attnScale: 1 / Math.sqrt(headDim),
    attnSoftCap: s.arch === 'gemma2' ? 50 : 0,
    finalSoftCap: s.arch === 'gemma2' ? 30 : 0,
    embedScale: gemma ? Math.sqrt(s.dim) : 1,
    nExperts: moe ? (s.nExperts ?? 4) : 0,
    nExpertsPerToken: moe ? 2 : 0,
    bosId: 1,
    eosIds: [2],
  };
  if (s.arch === 'qwen3' || s.arch === 'qwen3moe' || s.arch === 'gemma3') c.qkNorm = true;
  if (s.arch === 'gemma3') {
    c.slidingPeriod = 6;
    c.ropeLocalTheta = 10000;
  }
  return c;
}

/** Seeded normal samples (mulberry32 + Box-Muller): the same seed gives the same model anywhere. */
class Normal {
  private state: number;
  private rng = {
    next: (): number => {
      let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    },
  };
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  fill(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = 1 - this.rng.next(), v = this.rng.next();
      const r = Math.sqrt(-2 * Math.log(u)) * std;
      out[i] = mean + r * Math.cos(2 * Math.PI * v);
      if (i + 1 < n) out[i + 1] = mean + r * Math.sin(2 * Math.PI * v);
    }
    return out;
  }
}

interface RandTensor {
  name: string; //     internal (GGUF) name
  shape: number[];
  expert?: number;
  make: () => Float32Array;
}

/** The model's tensors under internal names, in internal layout ([out, in]; norms as applied). */
function randomTensors(c: ModelConfig, seed: number): RandTensor[] {
  const { dim: D, nHeads: Hq, nKvHeads: Hkv, headDim: Dh, ffnDim: F, vocabSize: V } = c;
  const out: RandTensor[] = [];
  let k = 0;
  const t = (name: string, shape: number[], std: number, mean = 0, expert?: number) => {
    const s = seed * 1000 + k++;
    const n = shape.reduce((a, b) => a * b, 1);
    out.push({ name, shape, expert, make: () => new Normal(s).fill(n, std, mean) });
  };
  const lin = (name: string, rows: number, cols: number, expert?: number) => t(name, [rows, cols], 1 / Math.sqrt(cols), 0, expert);
  // Gemma multiplies embeddings by sqrt(D): keep its table small so the residual stream is O(1).
  t('token_embd.weight', [V, D], c.embedScale !== 1 ? 1 / Math.sqrt(D) : 1);
  if (c.arch === 'gpt2') t('position_embd.weight', [c.maxPosition, D], 0.3);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    t(p + 'attn_norm.weight', [D], 0.1, 1);
    if (c.arch === 'gpt2') {
      t(p + 'attn_norm.bias', [D], 0.1);
      lin(p + 'attn_qkv.weight', 3 * D, D);
      t(p + 'attn_qkv.bias', [3 * D], 0.1);
      lin(p + 'attn_output.weight', D, D);
      t(p + 'attn_output.bias', [D], 0.1);
      t(p + 'ffn_norm.weight', [D], 0.1, 1);
      t(p + 'ffn_norm.bias', [D], 0.1);
      lin(p + 'ffn_up.weight', F, D);
      t(p + 'ffn_up.bias', [F], 0.1);
      lin(p + 'ffn_down.weight', D, F);
      t(p + 'ffn_down.bias', [D], 0.1);
      continue;
    }
    if (c.arch === 'phi3') {
      lin(p + 'attn_qkv.weight', (Hq + 2 * Hkv) * Dh, D);
      lin(p + 'attn_output.weight', D, Hq * Dh);
      t(p + 'ffn_norm.weight', [D], 0.1, 1);
      lin(p + 'ffn_up.weight', 2 * F, D); //  gate rows, then up rows
      lin(p + 'ffn_down.weight', D, F);
      continue;
    }
    lin(p + 'attn_q.weight', Hq * Dh, D);
    lin(p + 'attn_k.weight', Hkv * Dh, D);
    lin(p + 'attn_v.weight', Hkv * Dh, D);
    if (c.arch === 'qwen2') {
      t(p + 'attn_q.bias', [Hq * Dh], 0.1);
      t(p + 'attn_k.bias', [Hkv * Dh], 0.1);
      t(p + 'attn_v.bias', [Hkv * Dh], 0.1);
    }
    if (c.qkNorm) {
      t(p + 'attn_q_norm.weight', [Dh], 0.1, 1);
      t(p + 'attn_k_norm.weight', [Dh], 0.1, 1);
    }
    lin(p + 'attn_output.weight', D, Hq * Dh);
    const post = c.arch === 'gemma2' || c.arch === 'gemma3';
    if (post) t(p + 'post_attention_norm.weight', [D], 0.1, 1);
    t(p + 'ffn_norm.weight', [D], 0.1, 1);
    if (post) t(p + 'post_ffw_norm.weight', [D], 0.1, 1);
    if (c.nExperts > 0) {
      t(p + 'ffn_gate_inp.weight', [c.nExperts, D], 1);
      for (let e = 0; e < c.nExperts; e++) {
        lin(p + 'ffn_gate_exps.weight', F, D, e);
        lin(p + 'ffn_up_exps.weight', F, D, e);
        lin(p + 'ffn_down_exps.weight', D, F, e);
      }
    } else {
      lin(p + 'ffn_gate.weight', F, D);
      lin(p + 'ffn_up.weight', F, D);
      lin(p + 'ffn_down.weight', D, F);
    }
  }
  t('output_norm.weight', [D], 0.1, 1);
  if (c.arch === 'gpt2') t('output_norm.bias', [D], 0.1);
  if (!c.tieEmbeddings) t('output.weight', [V, D], 1);
  return out;
}

/** Writes a random model directory in the Hugging Face layout; returns its config. */
export function writeRandomHfModel(dir: string, spec: RandomModelSpec, seed = 1): ModelConfig {
  const c = specToConfig(spec);
  mkdirSync(dir, { recursive: true });
  const tok = tokenizerFromGguf(randomVocabMetadata(c.vocabSize), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...(tok.config as object), model_max_length: c.maxPosition }, null, 2));
  writeFileSync(join(dir, 'config.json'), hfConfigJson(configToHf(c)));
  const entries: StWriteInput[] = [];
  for (const r of randomTensors(c, seed)) {
    let v = r.make();
    let shape = r.shape;
    // Back to Hugging Face's storage conventions.
    if (isGemmaArch(c.arch) && r.name.endsWith('norm.weight')) v = v.map((x) => x - 1);
    if (c.arch === 'gpt2' && shape.length === 2 && /attn_qkv|attn_output|ffn_up|ffn_down/.test(r.name)) {
      const [rows, cols] = shape as [number, number];
      const tr = new Float32Array(v.length);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) tr[j * rows + i] = v[i * cols + j]!;
      v = tr;
      shape = [cols, rows];
    }
    const name = ggufToHfName(c.arch, r.name, r.expert);
    if (name) entries.push({ name, dtype: 'F32', shape, data: new Uint8Array(v.buffer) });
  }
  writeSafetensors(join(dir, 'model.safetensors'), entries);
  return c;
}

/**
 * Writes a random Llama-family GGUF directly (no safetensors step): for benchmark models too big
 * to round-trip through f32 files (the 1.1B TinyLlama and 8B Llama-3 shapes), and for models whose
 * embedding / LM head is in a simple quant type. With a simple type every weight matrix is in
 * `type` (the LM head too); with a k-quant mix (q4_k_m, q5_k_m, q6_k) each tensor gets the type
 * llama.cpp's rules give it (quant-mix.ts: Q6_K output, some attn_v / ffn_down in Q6_K, ...).
 */
export function writeRandomGguf(path: string, spec: RandomModelSpec, type: 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl' | 'q4_k_m' | 'q5_k_m' | 'q6_k', seed = 1, onTensor?: (done: number, total: number) => void): ModelConfig {
  const c = specToConfig(spec);
  if (c.arch !== 'llama') throw new Error('writeRandomGguf: only the llama architecture');
  c.rope!.layout = 'interleaved';
  const mixed = type === 'q4_k_m' || type === 'q5_k_m' || type === 'q6_k';
  const md = configToGgufMetadata(c, `random-${spec.arch}`, FILE_TYPE[type]);
  for (const [k, v] of randomVocabMetadata(c.vocabSize)) md.set(k, v);
  const GT: Record<DType, number> = { f32: GGML_TYPE.F32, f16: GGML_TYPE.F16, bf16: GGML_TYPE.BF16, q8_0: GGML_TYPE.Q8_0, q4_k: GGML_TYPE.Q4_K, q5_k: GGML_TYPE.Q5_K, q6_k: GGML_TYPE.Q6_K, q4_0: GGML_TYPE.Q4_0, q4_1: GGML_TYPE.Q4_1, q5_0: GGML_TYPE.Q5_0, q5_1: GGML_TYPE.Q5_1, iq4_nl: GGML_TYPE.IQ4_NL, q2_k: GGML_TYPE.Q2_K, q3_k: GGML_TYPE.Q3_K, iq4_xs: GGML_TYPE.IQ4_XS };
  const all = randomTensors(c, seed);
  const mix = { nLayers: c.nLayers, tiedEmbeddings: c.tieEmbeddings, nGqa: c.nHeads / c.nKvHeads };
  const tensors: GgufWriteTensor[] = all.map((r, i) => {
    const dt: DType = r.shape.length === 1 ? 'f32' : mixed ? ggufTensorDType(r.name, r.shape, type, mix) : type;
    return {
      name: r.name,
      type: GT[dt],
      dims: shapeToGgufDims(r.shape),
      data: () => {
        const out = dt === 'f32' ? new Uint8Array(r.make().buffer) : convertTensor(Tensor.fromF32(r.make(), r.shape), dt).data;
        onTensor?.(i + 1, all.length);
        return out;
      },
    };
  });
  writeGguf(path, md, tensors);
  return c;
}

