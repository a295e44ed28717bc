// One model configuration for every family, read from a Hugging Face config.json or from GGUF
// metadata (and written back to GGUF metadata by `convert`). The fields say what the forward
// pass computes; the family files in src/models/ read them.

import { FormatError } from './errors.ts';
import { metaNumber } from './gguf-meta.ts';
import { meta, type GgufMetadata } from './gguf-types.ts';

export type Arch = 'llama' | 'mistral' | 'mixtral' | 'gemma' | 'gemma2' | 'gemma3' | 'qwen2' | 'qwen3' | 'qwen3moe' | 'phi3' | 'gpt2';

export type RopeScalingConfig =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPosition: number }
  // Phi-3 LongRoPE: see RopeScaling in src/tensor/backend.ts (GGUF: rope_factors_short / _long tensors)
  | { type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPosition: number; attnFactor: number };

/** LongRoPE's default attention factor: sqrt(1 + ln(scale) / ln(original context)), 1 when not extended (HF, llama.cpp's converter). */
export function longRopeAttnFactor(maxPosition: number, originalMaxPosition: number): number {
  const scale = maxPosition / originalMaxPosition;
  return scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(originalMaxPosition));
}

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  dim: number; //                  d_model
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  /** Context length the model was trained for. */
  maxPosition: number;
  normEps: number;
  /** Rotary embedding (absent for GPT-2's learned positions). */
  rope: { theta: number; layout: 'interleaved' | 'half'; dim: number; scaling?: RopeScalingConfig } | null;
  /** Activation of the MLP: gated (SwiGLU / GeGLU) or plain (GPT-2). */
  act: 'silu' | 'gelu_tanh' | 'gelu_erf';
  tieEmbeddings: boolean;
  /** Mistral / Qwen2 / Gemma-2 sliding window, in tokens (0: none). */
  slidingWindow: number;
  /**
   * Which layers use the sliding window: every one, the even ones (Gemma 2), or all but every
   * slidingPeriod-th (Gemma 3: layers 5, 11, ... attend globally, the rest through the window).
   */
  slidingLayers: 'all' | 'even' | 'period';
  /** Gemma 3's sliding_window_pattern (6): with slidingLayers 'period'. */
  slidingPeriod?: number;
  /** Gemma 3: the RoPE base of the windowed (local) layers, unscaled; rope.theta and rope.scaling are the global layers'. */
  ropeLocalTheta?: number;
  /** Qwen 3 / Gemma 3: an RMSNorm over each query and key head (weights [headDim]) before RoPE. */
  qkNorm?: boolean;
  /** Multiplier on q.k; default 1/sqrt(headDim). */
  attnScale: number;
  attnSoftCap: number; //          Gemma 2: 50
  finalSoftCap: number; //         Gemma 2: 30
  /** Multiplier applied to token embeddings (Gemma: sqrt(dim)). */
  embedScale: number;
  nExperts: number; //             Mixtral: 8 (0: dense)
  nExpertsPerToken: number; //     Mixtral: 2
  // (MoE experts are ffnDim wide: Qwen3-MoE's moe_intermediate_size; routing always renormalises
  // the top-k probabilities, i.e. Qwen3-MoE's norm_topk_prob = true, as llama.cpp does.)
  bosId: number | null;
  eosIds: number[];
}

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new FormatError(file, `missing "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FormatError(file, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = num(cfg, key, file, fallback);
  if (!Number.isInteger(v) || v <= 0) throw new FormatError(file, `"${key}" must be a positive integer, got ${v}`);
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

const HF_ARCHS: Record<string, Arch> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  MixtralForCausalLM: 'mixtral',
  GemmaForCausalLM: 'gemma',
  Gemma2ForCausalLM: 'gemma2',
  Gemma3ForCausalLM: 'gemma3',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  Qwen3MoeForCausalLM: 'qwen3moe',
  Phi3ForCausalLM: 'phi3',
  GPT2LMHeadModel: 'gpt2',
};

const HF_ACT: Record<string, ModelConfig['act']> = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu_erf',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
};

function hfAct(cfg: Json, key: string, file: string, fallback: string): ModelConfig['act'] {
  const name = typeof cfg[key] === 'string' ? (cfg[key] as string) : fallback;
  const act = HF_ACT[name];
  if (!act) throw new FormatError(file, `unsupported activation "${name}" in "${key}" (supported: ${Object.keys(HF_ACT).join(', ')})`);
  return act;
}

function hfRopeScaling(cfg: Json, file: string): RopeScalingConfig | undefined {
  const rs = cfg.rope_scaling as Json | null | undefined;
  if (!rs) return undefined;
  const type = (rs.rope_type ?? rs.type) as string | undefined;
  if (type === 'default') return undefined;
  if (type === 'linear') return { type: 'linear', factor: num(rs, 'factor', file) };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: num(rs, 'factor', file),
      lowFreqFactor: num(rs, 'low_freq_factor', file),
      highFreqFactor: num(rs, 'high_freq_factor', file),
      originalMaxPosition: posInt(rs, 'original_max_position_embeddings', file),
    };
  }
  if (type === 'longrope' || type === 'su') {
    const list = (k: string): number[] => {
      const v = rs[k];
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && x > 0)) throw new FormatError(file, `rope_scaling "${k}" must be a list of positive numbers`);
      return v as number[];
    };
    // Phi-3 keeps original_max_position_embeddings at the top level of config.json
    const orig = posInt(rs.original_max_position_embeddings !== undefined ? rs : cfg, 'original_max_position_embeddings', file);
    const maxPos = posInt(cfg, 'max_position_embeddings', file);
    const factor = typeof rs.factor === 'number' ? rs.factor : maxPos / orig;
    const attn = typeof rs.attention_factor === 'number' ? rs.attention_factor : longRopeAttnFactor(factor * orig, orig);
    return { type: 'longrope', shortFactor: list('short_factor'), longFactor: list('long_factor'), originalMaxPosition: orig, attnFactor: attn };
  }
  throw new FormatError(file, `unsupported rope_scaling type "${type}" (supported: linear, llama3, longrope)`);
}

// transformers' Gemma3TextConfig defaults: the multimodal Gemma 3 checkpoints (4B, 12B, 27B)
// write only the text_config fields that differ from them.
const GEMMA3_TEXT_DEFAULTS: Json = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 131072,
  rms_norm_eps: 1e-6, rope_theta: 1e6, rope_local_base_freq: 10000, query_pre_attn_scalar: 256, sliding_window: 4096,
  sliding_window_pattern: 6,
};

/** config.json (+ generation_config.json for EOS ids) to a ModelConfig. */
export function configFromHf(cfg: Json, file: string, generation?: Json): ModelConfig {
  if (Array.isArray(cfg.architectures) && cfg.architectures[0] === 'Gemma3ForConditionalGeneration') {
    // The vision-language Gemma 3: its language model is Gemma3ForCausalLM (the vision tower is not loaded)
    const text = cfg.text_config;
    if (!text || typeof text !== 'object') throw new FormatError(file, 'Gemma3ForConditionalGeneration without a "text_config"');
    const top = Object.fromEntries(['bos_token_id', 'eos_token_id'].filter((k) => cfg[k] !== undefined).map((k) => [k, cfg[k]]));
    cfg = { ...GEMMA3_TEXT_DEFAULTS, ...top, ...(text as Json), architectures: ['Gemma3ForCausalLM'] };
  }
  const archName = Array.isArray(cfg.architectures) ? String(cfg.architectures[0]) : String(cfg.model_type ?? '');
  const arch = HF_ARCHS[archName];
  if (!arch) {
    throw new FormatError(file, `unsupported architecture "${archName}" (supported: ${Object.keys(HF_ARCHS).join(', ')})`);
  }
  const eos = [...new Set([...ids(generation?.eos_token_id), ...ids(cfg.eos_token_id)])];
  const bos = typeof generation?.bos_token_id === 'number' ? generation.bos_token_id : typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null;

  if (arch === 'gpt2') {
    const dim = posInt(cfg, 'n_embd', file);
    const nHeads = posInt(cfg, 'n_head', file);
    return {
      arch, vocabSize: posInt(cfg, 'vocab_size', file), dim, nLayers: posInt(cfg, 'n_layer', file), nHeads, nKvHeads: nHeads,
      headDim: dim / nHeads, ffnDim: posInt(cfg, 'n_inner', file, 4 * dim), maxPosition: posInt(cfg, 'n_positions', file),
      normEps: num(cfg, 'layer_norm_epsilon', file, 1e-5), rope: null, act: hfAct(cfg, 'activation_function', file, 'gelu_new'),
      tieEmbeddings: true, slidingWindow: 0, slidingLayers: 'all', attnScale: 1 / Math.sqrt(dim / nHeads), attnSoftCap: 0,
      finalSoftCap: 0, embedScale: 1, nExperts: 0, nExpertsPerToken: 0, bosId: bos, eosIds: eos,
    };
  }

  const dim = posInt(cfg, 'hidden_size', file);
  const nHeads = posInt(cfg, 'num_attention_heads', file);
  const nKvHeads = posInt(cfg, 'num_key_value_heads', file, nHeads);
  const headDim = posInt(cfg, 'head_dim', file, dim / nHeads);
  if (nHeads % nKvHeads !== 0) throw new FormatError(file, `num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  const isGemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
  const qwen = arch === 'qwen2' || arch === 'qwen3' || arch === 'qwen3moe';
  const sliding = qwen ? (cfg.use_sliding_window ? num(cfg, 'sliding_window', file, 0) : 0) : num(cfg, 'sliding_window', file, 0);
  const moe = arch === 'mixtral' || arch === 'qwen3moe';
  if (arch === 'qwen3moe') {
    // llama.cpp's qwen3moe graph always renormalises the top-k weights and has no dense layers.
    if (cfg.norm_topk_prob !== true) throw new FormatError(file, `Qwen3-MoE with "norm_topk_prob": ${JSON.stringify(cfg.norm_topk_prob ?? false)} is not supported (only true, as the released models)`);
    if (num(cfg, 'decoder_sparse_step', file, 1) !== 1 || (Array.isArray(cfg.mlp_only_layers) && cfg.mlp_only_layers.length > 0)) {
      throw new FormatError(file, 'Qwen3-MoE with dense layers ("decoder_sparse_step" != 1 or "mlp_only_layers") is not supported');
    }
  }
  const nLayers = posInt(cfg, 'num_hidden_layers', file);
  const rope = hfRopeParams(cfg, arch);
  const out: ModelConfig = {
    arch,
    vocabSize: posInt(cfg, 'vocab_size', file),
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: arch === 'qwen3moe' ? posInt(cfg, 'moe_intermediate_size', file) : posInt(cfg, 'intermediate_size', file),
    maxPosition: posInt(cfg, 'max_position_embeddings', file, 4096),
    normEps: num(cfg, 'rms_norm_eps', file, 1e-6),
    rope: {
      theta: num(rope.params, 'rope_theta', file, arch === 'gemma3' ? 1e6 : 10000),
      // Hugging Face checkpoints rotate pairs (i, i + d/2); GGUF llama permutes q/k to (2i, 2i+1).
      layout: 'half',
      // Phi-4-mini rotates the first 3/4 of each head
      dim: arch === 'phi3' ? rotaryDim(cfg, headDim, file) : headDim,
      scaling: hfRopeScaling({ ...cfg, rope_scaling: rope.scaling }, file),
    },
    act: isGemma ? hfAct(cfg, cfg.hidden_activation ? 'hidden_activation' : 'hidden_act', file, 'gelu_pytorch_tanh') : hfAct(cfg, 'hidden_act', file, 'silu'),
    tieEmbeddings: isGemma ? true : Boolean(cfg.tie_word_embeddings ?? false),
    slidingWindow: sliding,
    slidingLayers: arch === 'gemma2' ? 'even' : arch === 'gemma3' ? 'period' : 'all',
    attnScale: arch === 'gemma2' || arch === 'gemma3' ? 1 / Math.sqrt(num(cfg, 'query_pre_attn_scalar', file, headDim)) : 1 / Math.sqrt(headDim),
    attnSoftCap: arch === 'gemma2' ? num(cfg, 'attn_logit_softcapping', file, 0) : 0,
    finalSoftCap: arch === 'gemma2' ? num(cfg, 'final_logit_softcapping', file, 0) : 0,
    embedScale: isGemma ? Math.sqrt(dim) : 1,
    nExperts: moe ? posInt(cfg, arch === 'mixtral' ? 'num_local_experts' : 'num_experts', file) : 0,
    nExpertsPerToken: moe ? posInt(cfg, 'num_experts_per_tok', file) : 0,
    bosId: bos,
    eosIds: eos,
  };
  if (arch === 'qwen3' || arch === 'qwen3moe' || arch === 'gemma3') out.qkNorm = true;
  const sc = out.rope!.scaling;
  if (sc?.type === 'longrope' && (sc.shortFactor.length !== out.rope!.dim / 2 || sc.longFactor.length !== out.rope!.dim / 2)) {
    throw new FormatError(file, `rope_scaling has ${sc.shortFactor.length} short and ${sc.longFactor.length} long factors; ${out.rope!.dim / 2} rotary pairs need one each`);
  }
  if (arch === 'gemma3') {
    out.slidingPeriod = gemma3Period(cfg, nLayers, file);
    out.ropeLocalTheta = rope.local !== undefined ? num(rope.local, 'rope_theta', file, 10000) : num(cfg, 'rope_local_base_freq', file, 10000);
  }
  return out;
}

/**
 * Where a config keeps its RoPE settings: transformers 4 has rope_theta and rope_scaling at the top
 * level (Gemma 3: rope_local_base_freq for the local layers); transformers 5 writes one
 * "rope_parameters" object with rope_theta and the scaling fields (Gemma 3: one per layer type,
 * "full_attention" and "sliding_attention").
 */
function hfRopeParams(cfg: Json, arch: Arch): { params: Json; scaling: unknown; local?: Json } {
  const rp = cfg.rope_parameters;
  if (!rp || typeof rp !== 'object') return { params: cfg, scaling: cfg.rope_scaling };
  const p = rp as Json;
  if (arch === 'gemma3' && p.full_attention && typeof p.full_attention === 'object') {
    const full = p.full_attention as Json;
    return { params: full, scaling: full, local: (p.sliding_attention as Json | undefined) ?? undefined };
  }
  return { params: p, scaling: p };
}

/** Phi-3's rotary dims: partial_rotary_factor of the head (an even count). */
function rotaryDim(cfg: Json, headDim: number, file: string): number {
  const f = num(cfg, 'partial_rotary_factor', file, 1);
  const d = Math.round(headDim * f);
  if (!(f > 0 && f <= 1) || d % 2 !== 0) throw new FormatError(file, `"partial_rotary_factor" ${f} of head_dim ${headDim} does not give an even number of rotary dims`);
  return d;
}

/**
 * Gemma 3's local/global layer pattern: "sliding_window_pattern" N (every N-th layer global), or
 * newer transformers' "layer_types" list, which must follow such a period (llama.cpp's gemma3
 * graph knows no other).
 */
function gemma3Period(cfg: Json, nLayers: number, file: string): number {
  const types = cfg.layer_types;
  if (!Array.isArray(types)) return posInt(cfg, 'sliding_window_pattern', file, 6);
  const firstGlobal = types.indexOf('full_attention');
  const period = firstGlobal < 0 ? nLayers + 1 : firstGlobal + 1;
  const ok = types.length === nLayers && types.every((t, l) => t === ((l + 1) % period === 0 ? 'full_attention' : 'sliding_attention'));
  if (!ok) throw new FormatError(file, `"layer_types" must repeat (period - 1) sliding layers and one full-attention layer; got ${JSON.stringify(types)}`);
  return period;
}

// ---------------------------------------------------------------------------------------------
// GGUF metadata (llama.cpp's keys: <arch>.embedding_length etc.)

/** llama.cpp's architecture names: Mistral and Mixtral are "llama" there. */
export function ggufArchName(arch: Arch): string {
  return arch === 'mistral' || arch === 'mixtral' ? 'llama' : arch;
}

type MetaGet = (key: string) => unknown;

export function configFromGguf(md: GgufMetadata, file: string): ModelConfig {
  const get: MetaGet = (k) => md.get(k)?.value;
  const archName = String(get('general.architecture') ?? '');
  const A = (k: string) => `${archName}.${k}`;
  const need = (k: string): number => metaNumber(md, k);
  const opt = (k: string, fallback: number): number => metaNumber(md, k, fallback);
  const supported = ['llama', 'gemma', 'gemma2', 'gemma3', 'qwen2', 'qwen3', 'qwen3moe', 'phi3', 'gpt2'];
  if (!supported.includes(archName)) throw new FormatError(file, `unsupported architecture "${archName}" (supported: ${supported.join(', ')})`);

  const dim = need(A('embedding_length'));
  const nHeads = need(A('attention.head_count'));
  const nKvHeads = opt(A('attention.head_count_kv'), nHeads);
  const headDim = opt(A('attention.key_length'), dim / nHeads);
  const nExperts = opt(A('expert_count'), 0);
  const tokens = get('tokenizer.ggml.tokens');
  const vocabSize = opt(A('vocab_size'), Array.isArray(tokens) ? tokens.length : 0);
  if (!vocabSize) throw new FormatError(file, `cannot tell the vocabulary size (no ${A('vocab_size')} and no tokenizer.ggml.tokens)`);
  const eos = get('tokenizer.ggml.eos_token_id');
  const bos = get('tokenizer.ggml.bos_token_id');
  const window = opt(A('attention.sliding_window'), 0);
  // llama.cpp files Mistral and Mixtral under "llama"; a sliding window tells Mistral apart.
  const arch: Arch = archName === 'llama' ? (nExperts > 0 ? 'mixtral' : window > 0 ? 'mistral' : 'llama') : (archName as Arch);
  const isGemma = arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
  const scaling = get(A('rope.scaling.type'));
  let ropeScaling: RopeScalingConfig | undefined;
  if (scaling === 'linear') ropeScaling = { type: 'linear', factor: need(A('rope.scaling.factor')) };
  else if (scaling !== undefined && scaling !== 'none') throw new FormatError(file, `unsupported ${A('rope.scaling.type')} "${String(scaling)}"`);
  // Llama 3.1 scaling travels as a rope_freqs tensor in GGUF; the loader turns it back into
  // the llama3 parameters (see ropeFreqsToScaling in layout.ts).

  const cfg: ModelConfig = {
    arch,
    vocabSize,
    dim,
    nLayers: need(A('block_count')),
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: arch === 'qwen3moe' ? need(A('expert_feed_forward_length')) : need(A('feed_forward_length')),
    maxPosition: opt(A('context_length'), 2048),
    normEps: arch === 'gpt2' ? opt(A('attention.layer_norm_epsilon'), 1e-5) : opt(A('attention.layer_norm_rms_epsilon'), 1e-6),
    rope: arch === 'gpt2' ? null : {
      theta: opt(A('rope.freq_base'), 10000),
      // llama.cpp: "llama" rotates interleaved pairs (its converter permutes HF's q/k); gemma
      // and qwen2 use the NeoX (half-split) layout unpermuted.
      layout: archName === 'llama' ? 'interleaved' : 'half',
      dim: opt(A('rope.dimension_count'), headDim),
      scaling: ropeScaling,
    },
    act: isGemma || arch === 'gpt2' ? 'gelu_tanh' : 'silu',
    tieEmbeddings: false, // decided by the loader: no output.weight means tied
    slidingWindow: window,
    slidingLayers: arch === 'gemma2' ? 'even' : arch === 'gemma3' ? 'period' : 'all',
    // llama.cpp's Gemma 3 27B (62 layers) scales queries by (dim / heads)^-1/2, as its query_pre_attn_scalar says.
    attnScale: arch === 'gemma3' && need(A('block_count')) === 62 ? 1 / Math.sqrt(dim / nHeads) : 1 / Math.sqrt(headDim),
    attnSoftCap: opt(A('attn_logit_softcapping'), 0),
    finalSoftCap: opt(A('final_logit_softcapping'), 0),
    embedScale: isGemma ? Math.sqrt(dim) : 1,
    nExperts,
    nExpertsPerToken: nExperts > 0 ? need(A('expert_used_count')) : 0,
    bosId: typeof bos === 'number' ? bos : null,
    eosIds: typeof eos === 'number' ? [eos] : [],
  };
  if (arch === 'qwen3' || arch === 'qwen3moe' || arch === 'gemma3') cfg.qkNorm = true;
  if (arch === 'gemma3') {
    // llama.cpp fixes Gemma 3's pattern (6) and local RoPE base (10000); we write them only when they differ.
    cfg.slidingPeriod = opt(A('attention.sliding_window_pattern'), 6);
    cfg.ropeLocalTheta = opt(A('rope.freq_base_swa'), 10000);
  }
  // Gemma 2's query scale: llama.cpp stores head_dim-based scaling implicitly (query_pre_attn_scalar
  // = head_dim for the released models); key_length covers it.
  return cfg;
}

/** Phi-3's LongRoPE from GGUF: the rope_factors_short / rope_factors_long tensors and two metadata keys. */
export function longRopeFromGguf(md: GgufMetadata, cfg: ModelConfig, short: Float32Array, long: Float32Array): RopeScalingConfig {
  const a = ggufArchName(cfg.arch);
  const orig = metaNumber(md, `${a}.rope.scaling.original_context_length`);
  return {
    type: 'longrope', shortFactor: [...short], longFactor: [...long], originalMaxPosition: orig,
    attnFactor: metaNumber(md, `${a}.rope.scaling.attn_factor`, longRopeAttnFactor(cfg.maxPosition, orig)),
  };
}

/** The general.* and <arch>.* metadata llama.cpp reads (tokenizer.* comes from the tokenizer). */
export function configToGgufMetadata(c: ModelConfig, name: string, fileType: number): GgufMetadata {
  const a = ggufArchName(c.arch);
  const md: GgufMetadata = new Map();
  md.set('general.architecture', meta.str(a));
  md.set('general.name', meta.str(name));
  md.set('general.file_type', meta.u32(fileType));
  md.set(`${a}.context_length`, meta.u32(c.maxPosition));
  md.set(`${a}.embedding_length`, meta.u32(c.dim));
  md.set(`${a}.block_count`, meta.u32(c.nLayers));
  md.set(`${a}.feed_forward_length`, meta.u32(c.ffnDim));
  if (c.arch === 'qwen3moe') md.set(`${a}.expert_feed_forward_length`, meta.u32(c.ffnDim));
  md.set(`${a}.attention.head_count`, meta.u32(c.nHeads));
  if (c.arch === 'gpt2') {
    md.set(`${a}.attention.layer_norm_epsilon`, meta.f32(c.normEps));
  } else {
    md.set(`${a}.attention.head_count_kv`, meta.u32(c.nKvHeads));
    md.set(`${a}.attention.layer_norm_rms_epsilon`, meta.f32(c.normEps));
    md.set(`${a}.rope.freq_base`, meta.f32(c.rope!.theta));
    md.set(`${a}.rope.dimension_count`, meta.u32(c.rope!.dim));
    if (c.headDim !== c.dim / c.nHeads) {
      md.set(`${a}.attention.key_length`, meta.u32(c.headDim));
      md.set(`${a}.attention.value_length`, meta.u32(c.headDim));
    }
    if (c.rope!.scaling?.type === 'linear') {
      md.set(`${a}.rope.scaling.type`, meta.str('linear'));
      md.set(`${a}.rope.scaling.factor`, meta.f32(c.rope!.scaling.factor));
    }
    if (c.rope!.scaling?.type === 'longrope') {
      // the factors themselves travel as the rope_factors_short / rope_factors_long tensors
      md.set(`${a}.rope.scaling.attn_factor`, meta.f32(c.rope!.scaling.attnFactor));
      md.set(`${a}.rope.scaling.original_context_length`, meta.u32(c.rope!.scaling.originalMaxPosition));
    }
  }
  // (llama.cpp's "llama" graph ignores the window; Slipstream reads it back.)
  if (c.slidingWindow > 0) md.set(`${a}.attention.sliding_window`, meta.u32(c.slidingWindow));
  if (c.arch === 'gemma3') {
    if ((c.slidingPeriod ?? 6) !== 6) md.set(`${a}.attention.sliding_window_pattern`, meta.u32(c.slidingPeriod!));
    if ((c.ropeLocalTheta ?? 10000) !== 10000) md.set(`${a}.rope.freq_base_swa`, meta.f32(c.ropeLocalTheta!));
  }
  if (c.attnSoftCap) md.set(`${a}.attn_logit_softcapping`, meta.f32(c.attnSoftCap));
  if (c.finalSoftCap) md.set(`${a}.final_logit_softcapping`, meta.f32(c.finalSoftCap));
  if (c.nExperts > 0) {
    md.set(`${a}.expert_count`, meta.u32(c.nExperts));
    md.set(`${a}.expert_used_count`, meta.u32(c.nExpertsPerToken));
  }
  md.set(`${a}.vocab_size`, meta.u32(c.vocabSize));
  return md;
}

// config.json fields that transformers types as float. JSON has one number type, but transformers 5
// validates configs strictly and rejects 30 where it wants 30.0 (Gemma 2's final_logit_softcapping).
const HF_FLOAT_KEYS = new Set([
  'rms_norm_eps', 'layer_norm_epsilon', 'layer_norm_eps', 'rope_theta', 'attn_logit_softcapping', 'final_logit_softcapping',
  'factor', 'low_freq_factor', 'high_freq_factor', 'initializer_range', 'rope_local_base_freq', 'attention_factor',
]);

/** config.json text for a Hugging Face config object, float fields written with a decimal point. */
export function hfConfigJson(cfg: Record<string, unknown>): string {
  const mark = '\u0000float:';
  const text = JSON.stringify(cfg, (k, v: unknown) => (HF_FLOAT_KEYS.has(k) && Number.isSafeInteger(v) ? mark + String(v) : v), 2);
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}

/** A Hugging Face config.json for a ModelConfig (for exporting GGUF to a Hugging Face directory). */
export function configToHf(c: ModelConfig): Record<string, unknown> {
  const eos = c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds.length ? c.eosIds : undefined;
  if (c.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: c.vocabSize, n_embd: c.dim, n_layer: c.nLayers,
      n_head: c.nHeads, n_inner: c.ffnDim, n_positions: c.maxPosition, n_ctx: c.maxPosition, layer_norm_epsilon: c.normEps,
      activation_function: c.act === 'gelu_erf' ? 'gelu' : 'gelu_new', bos_token_id: c.bosId ?? undefined, eos_token_id: eos,
      tie_word_embeddings: true, torch_dtype: 'float32',
    };
  }
  const names: Record<Exclude<Arch, 'gpt2'>, [string, string]> = {
    llama: ['LlamaForCausalLM', 'llama'], mistral: ['MistralForCausalLM', 'mistral'], mixtral: ['MixtralForCausalLM', 'mixtral'],
    gemma: ['GemmaForCausalLM', 'gemma'], gemma2: ['Gemma2ForCausalLM', 'gemma2'], gemma3: ['Gemma3ForCausalLM', 'gemma3_text'],
    qwen2: ['Qwen2ForCausalLM', 'qwen2'], qwen3: ['Qwen3ForCausalLM', 'qwen3'], qwen3moe: ['Qwen3MoeForCausalLM', 'qwen3_moe'],
    phi3: ['Phi3ForCausalLM', 'phi3'],
  };
  const [archName, modelType] = names[c.arch];
  const r = c.rope!;
  const out: Record<string, unknown> = {
    architectures: [archName], model_type: modelType, vocab_size: c.vocabSize, hidden_size: c.dim, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, head_dim: c.headDim, intermediate_size: c.ffnDim,
    max_position_embeddings: c.maxPosition, rms_norm_eps: c.normEps, rope_theta: r.theta,
    tie_word_embeddings: c.tieEmbeddings, bos_token_id: c.bosId ?? undefined, eos_token_id: eos, torch_dtype: 'float32',
  };
  const act = c.act === 'silu' ? 'silu' : c.act === 'gelu_tanh' ? 'gelu_pytorch_tanh' : 'gelu';
  if (c.arch === 'gemma' || c.arch === 'gemma2' || c.arch === 'gemma3') out.hidden_activation = act;
  out.hidden_act = act;
  if (r.scaling?.type === 'linear') out.rope_scaling = { rope_type: 'linear', factor: r.scaling.factor };
  if (r.scaling?.type === 'longrope') {
    const s = r.scaling;
    out.rope_scaling = { rope_type: 'longrope', short_factor: s.shortFactor, long_factor: s.longFactor };
    out.original_max_position_embeddings = s.originalMaxPosition;
    if (Math.abs(s.attnFactor - longRopeAttnFactor(c.maxPosition, s.originalMaxPosition)) > 1e-6) (out.rope_scaling as Record<string, unknown>).attention_factor = s.attnFactor;
  }
  if (r.scaling?.type === 'llama3') {
    out.rope_scaling = {
      rope_type: 'llama3', factor: r.scaling.factor, low_freq_factor: r.scaling.lowFreqFactor,
      high_freq_factor: r.scaling.highFreqFactor, original_max_position_embeddings: r.scaling.originalMaxPosition,
    };
  }
  if (c.slidingWindow) out.sliding_window = c.slidingWindow;
  if (c.arch === 'qwen2' || c.arch === 'qwen3' || c.arch === 'qwen3moe') out.use_sliding_window = c.slidingWindow > 0;
  if (c.arch === 'gemma3') {
    out.query_pre_attn_scalar = Math.round(1 / (c.attnScale * c.attnScale));
    out.sliding_window_pattern = c.slidingPeriod ?? 6;
    out.rope_local_base_freq = c.ropeLocalTheta ?? 10000;
    out.attn_logit_softcapping = null;
    out.final_logit_softcapping = null;
  }
  if (c.arch === 'phi3' && r.dim !== c.headDim) out.partial_rotary_factor = r.dim / c.headDim;
  if (c.arch === 'qwen3moe') {
    out.num_experts = c.nExperts;
    out.num_experts_per_tok = c.nExpertsPerToken;
    out.moe_intermediate_size = c.ffnDim;
    out.norm_topk_prob = true;
    out.decoder_sparse_step = 1;
    out.mlp_only_layers = [];
  }
  if (c.arch === 'gemma2') {
    out.query_pre_attn_scalar = Math.round(1 / (c.attnScale * c.attnScale));
    out.attn_logit_softcapping = c.attnSoftCap || null;
    out.final_logit_softcapping = c.finalSoftCap || null;
  }
  if (c.arch === 'mixtral') {
    out.num_local_experts = c.nExperts;
    out.num_experts_per_tok = c.nExpertsPerToken;
  }
  return out;
}
