// Shared transformer blocks. Each takes the step context and writes into scratch buffers; the
// family files (llama.ts, mixtral.ts, gemma.ts, gpt2.ts) compose them.
//
// Shapes: T = tokens in the step, D = dim, Hq/Hkv = query/KV heads, Dh = head dim, F = FFN dim.

import type { Tensor } from '../tensor/tensor.ts';
import type { ForwardContext, LayerWeights, Weights } from './model.ts';

/** out[T, N] = x[T, K] . w[N, K]^T (+ b[N]). */
export function linear(c: ForwardContext, x: Tensor, w: Tensor, b: Tensor | undefined, out: Tensor): Tensor {
  c.be.matmul(x, w, out);
  if (b) c.be.add(out, b, out);
  return out;
}

/** Token embeddings (times Gemma's sqrt(D)) plus GPT-2's learned positions, into x[T, D]. */
export function embed(c: ForwardContext, w: Weights): Tensor {
  const { be, cfg, batch } = c;
  const T = batch.tokens.length;
  const x = c.ws.get('x', T, cfg.dim); //                          [T, D]
  be.embedding(w.tokEmbd, batch.tokens, x);
  if (cfg.embedScale !== 1) be.scale(x, cfg.embedScale, x);
  if (w.posEmbd) {
    const p = c.ws.get('pos', T, cfg.dim); //                      [T, D]
    be.embedding(w.posEmbd, batch.positions, p);
    be.add(x, p, x);
  }
  return x;
}

export function rmsNorm(c: ForwardContext, x: Tensor, w: Tensor, out: Tensor): Tensor {
  c.be.rmsNorm(x, w, c.cfg.normEps, out);
  return out;
}

/**
 * Self-attention of layer `l` over the paged KV cache: projections, RoPE, cache write, causal
 * attention per sequence (decode tokens batched into one call), output projection into out[T, D].
 */
export function attention(c: ForwardContext, l: number, h: Tensor, L: LayerWeights, out: Tensor): Tensor {
  const { be, cfg, batch, ws, kv } = c;
  const T = batch.tokens.length;
  const { nHeads: Hq, nKvHeads: Hkv, headDim: Dh } = cfg;
  let q: Tensor, k: Tensor, v: Tensor; //                          [T, H, Dh] views
  if (L.wqkv) {
    // GPT-2: one fused projection [T, 3 * D]; q, k and v are column views of it.
    const qkv = linear(c, h, L.wqkv, L.bqkv, ws.get('qkv', T, 3 * Hq * Dh));
    const ld = 3 * Hq * Dh;
    q = qkv.view([T, Hq, Dh], [ld, Dh, 1], 0);
    k = qkv.view([T, Hkv, Dh], [ld, Dh, 1], Hq * Dh);
    v = qkv.view([T, Hkv, Dh], [ld, Dh, 1], 2 * Hq * Dh);
  } else {
    // q, k and v share h: one job (h quantized once for q8_0 weights)
    const qo = ws.get('q', T, Hq * Dh), ko = ws.get('k', T, Hkv * Dh), vo = ws.get('v', T, Hkv * Dh);
    be.matmulMulti(h, [L.wq!, L.wk!, L.wv!], [qo, ko, vo]);
    if (L.bq) be.add(qo, L.bq, qo);
    if (L.bk) be.add(ko, L.bk, ko);
    if (L.bv) be.add(vo, L.bv, vo);
    q = qo.reshape([T, Hq, Dh]);
    k = ko.reshape([T, Hkv, Dh]);
    v = vo.reshape([T, Hkv, Dh]);
  }
  if (cfg.rope) {
    const ropeOpts = { layout: cfg.rope.layout, theta: cfg.rope.theta, rotaryDim: cfg.rope.dim, scaling: cfg.rope.scaling };
    be.rope(q, batch.positions, ropeOpts);
    be.rope(k, batch.positions, ropeOpts);
  }
  be.kvWrite(k, kv.k[l]!, batch.slots, 'k');
  be.kvWrite(v, kv.v[l]!, batch.slots, 'v');

  const att = ws.get('att', T, Hq * Dh).reshape([T, Hq, Dh]); //    [T, Hq, Dh]
  const window = cfg.slidingWindow > 0 && (cfg.slidingLayers === 'all' || l % 2 === 0) ? cfg.slidingWindow : 0;
  const opts = { scale: cfg.attnScale, softCap: cfg.attnSoftCap, window };
  for (const r of batch.runs) {
    if (r.decode) be.attentionDecode(q.narrow(r.row, r.n), kv.k[l]!, kv.v[l]!, r.decode.tables, r.decode.maxBlocks, r.decode.lens, att.narrow(r.row, r.n), opts);
    else be.attentionPrefill(q.narrow(r.row, r.n), kv.k[l]!, kv.v[l]!, r.blockTable, r.startPos, att.narrow(r.row, r.n), opts);
  }
  return linear(c, att.reshape([T, Hq * Dh]), L.wo, L.bo, out);
}

/** Gated MLP: down(act(gate(h)) * up(h)) into out[T, D] (SwiGLU or GeGLU). */
export function gatedMlp(c: ForwardContext, h: Tensor, wGate: Tensor, wUp: Tensor, wDown: Tensor, out: Tensor, key = 'ffn'): Tensor {
  const T = h.shape[0]!;
  const F = wGate.shape[0]!;
  const g = c.ws.get(`${key}.g`, T, F); //                                  [T, F]
  const u = c.ws.get(`${key}.u`, T, F); //                                  [T, F]
  c.be.matmulMulti(h, [wGate, wUp], [g, u]);
  if (c.cfg.act === 'silu') c.be.swiglu(g, u, g);
  else c.be.geglu(g, u, g, c.cfg.act === 'gelu_erf' ? 'erf' : 'tanh');
  return linear(c, g, wDown, undefined, out);
}

/** GPT-2 MLP: down(gelu(up(h) + b) ) + b into out[T, D]. */
export function plainMlp(c: ForwardContext, h: Tensor, L: LayerWeights, out: Tensor): Tensor {
  const T = h.shape[0]!;
  const u = linear(c, h, L.wUp!, L.bUp, c.ws.get('ffn.u', T, L.wUp!.shape[0]!)); // [T, F]
  if (c.cfg.act === 'silu') c.be.silu(u, u);
  else c.be.gelu(u, u, c.cfg.act === 'gelu_erf' ? 'erf' : 'tanh');
  return linear(c, u, L.wDown!, L.bDown, out);
}

/**
 * Final norm and output projection for the rows that need logits: logits[R, V], then Gemma 2's
 * final soft-cap. Only those rows are normed and projected (one row per sequence, not per token).
 */
export function logits(c: ForwardContext, x: Tensor, w: Weights, norm: 'rms' | 'layer'): Tensor {
  const { be, cfg, batch, ws } = c;
  const R = batch.logitRows.length;
  const D = cfg.dim;
  const sel = ws.get('sel', R, D); //                                [R, D]
  const xs = x.f32(), ss = sel.f32();
  for (let r = 0; r < R; r++) {
    const row = batch.logitRows[r]!;
    ss.set(xs.subarray(row * D, row * D + D), r * D);
  }
  if (norm === 'rms') be.rmsNorm(sel, w.outNorm, cfg.normEps, sel);
  else be.layerNorm(sel, w.outNorm, w.outNormB ?? null, cfg.normEps, sel);
  const out = ws.get('logits', R, cfg.vocabSize); //                 [R, V]
  be.matmul(sel, w.output, out);
  if (cfg.finalSoftCap > 0) {
    const o = out.f32();
    const cap = cfg.finalSoftCap;
    for (let i = 0; i < R * cfg.vocabSize; i++) o[i] = cap * Math.tanh(o[i]! / cap);
  }
  return out;
}
