// Mixtral: Mistral's decoder (llama.ts) with a sparse mixture-of-experts FFN.
//   router logits = h . W_router^T            [T, nExperts]
//   p = softmax(router logits); keep the top k (2) experts per token; renormalise their p
//   ffn(h) = sum over the kept experts e of p_e * down_e(silu(gate_e(h)) * up_e(h))
// Tokens are grouped by expert so each expert runs one matmul over its tokens. Each token's sum
// is taken in its own top-k order, so the result does not depend on the other tokens in the step.

import type { Tensor } from '../tensor/tensor.ts';
import { gatedMlp, linear } from './blocks.ts';
import type { ForwardContext, LayerWeights } from './model.ts';

export function moe(c: ForwardContext, h: Tensor, L: LayerWeights, out: Tensor): Tensor {
  const { cfg, ws } = c;
  const T = h.shape[0]!;
  const D = cfg.dim;
  const E = cfg.nExperts, K = cfg.nExpertsPerToken;
  const experts = L.experts!;
  const r = linear(c, h, L.router!, undefined, ws.get('moe.router', T, E)).f32(); //  [T, E]

  // Top-k per token (ties: the lower expert index first, as torch.topk does in practice).
  const chosen = new Int32Array(T * K);
  const weight = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const row = r.subarray(t * E, t * E + E);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    const p = Array.from(row, (v) => Math.exp(v - mx));
    const order = p.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += p[order[k]!]!;
    for (let k = 0; k < K; k++) {
      chosen[t * K + k] = order[k]!;
      weight[t * K + k] = p[order[k]!]! / sum;
    }
  }

  // Run each expert on its tokens: gather rows, gated MLP, keep each (token, k) result.
  const results = ws.get('moe.results', T * K, D).f32(); //                       [T*K, D]
  const hs = h.f32();
  for (let e = 0; e < E; e++) {
    const picks: number[] = [];
    for (let i = 0; i < T * K; i++) if (chosen[i] === e) picks.push(i);
    if (picks.length === 0) continue;
    const n = picks.length;
    const xin = ws.get('moe.in', n, D); //                                       [n, D]
    const xi = xin.f32();
    for (let j = 0; j < n; j++) {
      const t = Math.floor(picks[j]! / K);
      xi.set(hs.subarray(t * D, t * D + D), j * D);
    }
    const y = gatedMlp(c, xin, experts[e]!.gate, experts[e]!.up, experts[e]!.down, ws.get('moe.out', n, D), 'moe').f32();
    for (let j = 0; j < n; j++) results.set(y.subarray(j * D, j * D + D), picks[j]! * D);
  }

  const o = out.f32();
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += weight[t * K + k]! * results[(t * K + k) * D + d]!;
      o[t * D + d] = acc;
    }
  }
  return out;
}
