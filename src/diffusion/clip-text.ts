// CLIP's text transformer (transformers' CLIPTextModel / CLIPTextModelWithProjection), as the
// Stable Diffusion pipelines use it.
//   x = token_embedding[ids] + position_embedding[0..T)
//   for each layer:  x += out_proj(causal_attn(layer_norm1(x)))      (q, k, v with biases)
//                    x += fc2(act(fc1(layer_norm2(x))))               (quick_gelu or erf gelu)
//   last_hidden_state = final_layer_norm(x)
//   pooled = last_hidden_state at each row's EOS token; text_embeds = text_projection(pooled)
// What a pipeline takes from it (promptEmbeds below):
//   SD 1.x: last_hidden_state; with clip_skip = s: final_layer_norm(hidden_states[-(s + 1)]);
//   SD 2.x: the same (its text_encoder config already has 23 of OpenCLIP's 24 layers);
//   SDXL: hidden_states[-2] (no final norm) of both encoders, concatenated by the pipeline, and
//         text_encoder_2's text_embeds as the pooled conditioning.

import type { DiffAct, DiffOps, Params } from './ops.ts';

export interface ClipTextConfig {
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  maxPositions: number;
  vocabSize: number;
  act: DiffAct;
  eps: number;
  eosTokenId: number;
  /** CLIPTextModelWithProjection's output size; null for CLIPTextModel. */
  projectionDim: number | null;
}

const num = (j: Record<string, unknown>, k: string, def?: number): number => {
  const v = j[k] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`text encoder config.json: "${k}" must be a number, got ${JSON.stringify(j[k])}`);
  return v;
};

/** From a text_encoder/config.json (transformers' CLIPTextConfig). */
export function clipTextConfig(j: Record<string, unknown>): ClipTextConfig {
  const act = j.hidden_act ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new Error(`text encoder config.json: hidden_act "${String(act)}" is not supported (quick_gelu or gelu)`);
  const arch = Array.isArray(j.architectures) ? String(j.architectures[0]) : 'CLIPTextModel';
  return {
    hiddenSize: num(j, 'hidden_size'),
    intermediateSize: num(j, 'intermediate_size'),
    layers: num(j, 'num_hidden_layers'),
    heads: num(j, 'num_attention_heads'),
    maxPositions: num(j, 'max_position_embeddings', 77),
    vocabSize: num(j, 'vocab_size'),
    act,
    eps: num(j, 'layer_norm_eps', 1e-5),
    eosTokenId: num(j, 'eos_token_id', 2),
    projectionDim: arch === 'CLIPTextModelWithProjection' ? num(j, 'projection_dim') : null,
  };
}

export interface ClipTextOutput<T> {
  /** hidden_states: [0] the embeddings, [l] the output of layer l: each [B, T, D]. */
  hiddenStates: T[];
  /** final_layer_norm(hidden_states[-1]): [B, T, D]. */
  lastHiddenState: T;
  /** lastHiddenState at each row's EOS token: [B, D]. */
  pooled: T;
  /** text_projection(pooled) (with projection): [B, projection_dim]. */
  textEmbeds: T | null;
}

/**
 * The EOS position of each row, as transformers picks it: with the legacy eos_token_id 2 the
 * largest id (the first one, on ties; <|endoftext|> is the largest id of CLIP's vocabulary),
 * otherwise the first eos_token_id (0 when there is none).
 */
export function eosPositions(ids: Int32Array, B: number, T: number, eosTokenId: number): Int32Array {
  const pos = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const row = ids.subarray(b * T, (b + 1) * T);
    let best = 0;
    if (eosTokenId === 2) {
      for (let t = 1; t < T; t++) if (row[t]! > row[best]!) best = t;
    } else {
      const i = row.indexOf(eosTokenId);
      best = i < 0 ? 0 : i;
    }
    pos[b] = best;
  }
  return pos;
}

/** The text transformer over ids [B, T] (row-major). */
export function clipTextForward<T, W>(o: DiffOps<T, W>, cfg: ClipTextConfig, p: Params<W>, ids: Int32Array, B: number): ClipTextOutput<T> {
  const T = ids.length / B, D = cfg.hiddenSize, H = cfg.heads;
  if (!Number.isInteger(T) || T < 1) throw new Error(`clip text: ${ids.length} ids do not make ${B} rows`);
  if (T > cfg.maxPositions) throw new Error(`clip text: ${T} tokens per row, more than max_position_embeddings ${cfg.maxPositions}`);
  for (const id of ids) if (id < 0 || id >= cfg.vocabSize) throw new Error(`clip text: token id ${id} is outside the vocabulary of ${cfg.vocabSize}`);
  const positions = new Int32Array(B * T).map((_, i) => i % T);
  const pre = 'text_model.';
  let x = o.add(o.embedding(p.get(`${pre}embeddings.token_embedding.weight`), ids, [B, T, D]), o.embedding(p.get(`${pre}embeddings.position_embedding.weight`), positions, [B, T, D]));
  const hiddenStates = [x];
  for (let l = 0; l < cfg.layers; l++) {
    const L = `${pre}encoder.layers.${l}.`;
    const w = (n: string) => p.get(L + n);
    const h = o.layerNorm(x, w('layer_norm1.weight'), w('layer_norm1.bias'), cfg.eps); //  [B, T, D]
    const q = o.linear(h, w('self_attn.q_proj.weight'), w('self_attn.q_proj.bias'));
    const k = o.linear(h, w('self_attn.k_proj.weight'), w('self_attn.k_proj.bias'));
    const v = o.linear(h, w('self_attn.v_proj.weight'), w('self_attn.v_proj.bias'));
    const a = o.attention(q, k, v, H, 1 / Math.sqrt(D / H), true); //                       [B, T, D]
    x = o.add(o.linear(a, w('self_attn.out_proj.weight'), w('self_attn.out_proj.bias')), x);
    const m = o.act(o.linear(o.layerNorm(x, w('layer_norm2.weight'), w('layer_norm2.bias'), cfg.eps), w('mlp.fc1.weight'), w('mlp.fc1.bias')), cfg.act);
    x = o.add(o.linear(m, w('mlp.fc2.weight'), w('mlp.fc2.bias')), x);
    hiddenStates.push(x);
  }
  const lastHiddenState = finalNorm(o, cfg, p, x);
  const eos = eosPositions(ids, B, T, cfg.eosTokenId).map((t, b) => b * T + t);
  const pooled = o.gatherRows(lastHiddenState, eos); //                                    [B, D]
  const textEmbeds = cfg.projectionDim !== null ? o.linear(pooled, p.get('text_projection.weight')) : null;
  return { hiddenStates, lastHiddenState, pooled, textEmbeds };
}

/** final_layer_norm (for a pipeline's clip_skip). */
export function finalNorm<T, W>(o: DiffOps<T, W>, cfg: ClipTextConfig, p: Params<W>, x: T): T {
  return o.layerNorm(x, p.get('text_model.final_layer_norm.weight'), p.get('text_model.final_layer_norm.bias'), cfg.eps);
}

/**
 * The prompt embeddings a pipeline conditions on. 'sd': diffusers' StableDiffusionPipeline
 * (last_hidden_state, or final_layer_norm(hidden_states[-(clipSkip + 1)]) with clipSkip);
 * 'sdxl': StableDiffusionXLPipeline (hidden_states[-(clipSkip + 2)], no final norm).
 */
export function promptEmbeds<T, W>(o: DiffOps<T, W>, cfg: ClipTextConfig, p: Params<W>, out: ClipTextOutput<T>, kind: 'sd' | 'sdxl', clipSkip = 0): T {
  const hs = out.hiddenStates;
  if (kind === 'sdxl') return hs[hs.length - 2 - clipSkip]!;
  return clipSkip === 0 ? out.lastHiddenState : finalNorm(o, cfg, p, hs[hs.length - 1 - clipSkip]!);
}
