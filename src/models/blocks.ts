// Shared transformer blocks, written once against the Ops interface (ops.ts): the family files
// (llama.ts, gemma.ts, gpt2.ts) compose them, and the same code runs a serving step (InferOps)
// and a training step on the autograd tape (TapeOps).
//
// Shapes: n = tokens in the step, D = dim, Hq/Hkv = query/KV heads, Dh = head dim, F = FFN dim,
// E = experts, K = experts per token.

import type { LayerWeights, Weights } from './model.ts';
import { attentionOptions, ropeOptions, type Activation, type Ops } from './ops.ts';

/** Token embeddings times the family's scale (Gemma: sqrt(D)), plus GPT-2's learned positions. */
export function embed<T, W>(o: Ops<T, W>, w: Weights<W>): T {
  const x = o.embed(w.tokEmbd, o.cfg.embedScale); //                     [n, D]
  return w.posEmbd ? o.add(x, o.positionEmbed(w.posEmbd)) : x;
}

/** Self-attention of layer l: projections, (q/k norms,) RoPE, causal attention, output projection -> [n, D]. */
export function attention<T, W>(o: Ops<T, W>, l: number, h: T, L: LayerWeights<W>): T {
  const { nHeads: Hq, nKvHeads: Hkv, headDim: Dh } = o.cfg;
  let q: T, k: T, v: T; //                                              [n, H * Dh]
  if (L.wqkv) {
    // GPT-2: one fused projection [n, 3 * D]; q, k and v are its column pieces
    [q, k, v] = o.splitCols(o.linear('qkv', h, L.wqkv, L.bqkv), [Hq * Dh, Hkv * Dh, Hkv * Dh]) as [T, T, T];
  } else {
    [q, k, v] = o.linears(['q', 'k', 'v'], h, [L.wq!, L.wk!, L.wv!], [L.bq, L.bk, L.bv]) as [T, T, T];
  }
  if (L.qNorm) {
    // Qwen 3 / Gemma 3: RMSNorm over each head of q and k, before RoPE
    q = o.headNorm('q.norm', q, Hq, L.qNorm);
    k = o.headNorm('k.norm', k, Hkv, L.kNorm!);
  }
  const rope = ropeOptions(o.cfg, l);
  if (rope) {
    q = o.rope(q, Hq, rope);
    k = o.rope(k, Hkv, rope);
  }
  const a = o.attend('att', l, q, k, v, attentionOptions(o.cfg, l)); //  [n, Hq * Dh]
  return o.linear('attn.out', a, L.wo, L.bo); //                          [n, D]
}

/** Gated MLP: down(act(gate(h)) * up(h)) -> [n, D] (SwiGLU or GeGLU). */
export function gatedMlp<T, W>(o: Ops<T, W>, h: T, gate: W, up: W, down: W, key = 'ffn'): T {
  const [g, u] = o.linears([`${key}.g`, `${key}.u`], h, [gate, up]) as [T, T]; //  [n, F]
  return o.linear(`${key}.down`, o.glu(g, u, o.cfg.act as Activation), down);
}

/** GPT-2 MLP: down(gelu(up(h) + b)) + b -> [n, D]. */
export function plainMlp<T, W>(o: Ops<T, W>, h: T, L: LayerWeights<W>): T {
  const u = o.linear('ffn.u', h, L.wUp!, L.bUp); //                       [n, F]
  return o.linear('ffn.down', o.act(u, o.cfg.act as Activation), L.wDown!, L.bDown);
}

/**
 * Mixtral's sparse FFN: softmax router, the top K experts of each token with their
 * probabilities renormalised, each expert a SwiGLU MLP over the tokens routed to it (one matmul
 * per expert), each token's outputs summed in its own top-K order (so a token's result does not
 * depend on the other tokens of the step).
 */
export function moe<T, W>(o: Ops<T, W>, h: T, L: LayerWeights<W>): T {
  const K = o.cfg.nExpertsPerToken;
  const { ids, weights } = o.route(o.linear('moe.router', h, L.router!), K); //  ids [n * K], weights [n, K]
  const nk = ids.length;
  let results: T | null = null; //                                        [n * K, D], row t * K + j
  L.experts!.forEach((ex, e) => {
    let m = 0;
    for (let i = 0; i < nk; i++) if (ids[i] === e) m++;
    if (m === 0) return;
    const slots = new Int32Array(m), rows = new Int32Array(m);
    for (let i = 0, j = 0; i < nk; i++) {
      if (ids[i] !== e) continue;
      slots[j] = i;
      rows[j++] = Math.floor(i / K);
    }
    const y = gatedMlp(o, o.gatherRows('moe.in', h, rows), ex.gate, ex.up, ex.down, 'moe'); // [m, D]
    results = o.scatterRows('moe.results', results, y, slots, nk);
  });
  return o.combineRows('moe.out', results!, weights); //                  [n, D]
}

/** Final norm, output projection and (Gemma 2) soft-cap for the rows that need logits: [R, V]. */
export function logits<T, W>(o: Ops<T, W>, x: T, w: Weights<W>, norm: 'rms' | 'layer'): T {
  const r = o.logitRows(x); //                                             [R, D]
  const h = norm === 'rms' ? o.rmsNorm('final', r, w.outNorm) : o.layerNorm('final', r, w.outNorm, w.outNormB);
  const out = o.linear('logits', h, w.output); //                          [R, V]
  return o.cfg.finalSoftCap > 0 ? o.softCap(out, o.cfg.finalSoftCap) : out;
}
