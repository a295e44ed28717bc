// Llama 2 / 3 / 3.1 / 3.2, SmolLM2, Mistral (Nemo), Mixtral, Qwen2, Qwen3, Qwen3-MoE and Phi-3: one decoder.
//   x = embed(tokens)
//   for each layer:  x += attn(rmsnorm(x))        (Qwen2: q/k/v biases; Qwen3: q/k head norms;
//                                                  Mistral: sliding window; Phi-3: fused qkv, partial RoPE)
//                    x += ffn(rmsnorm(x))         (SwiGLU; Mixtral, Qwen3-MoE: a mixture of experts, moe())
//   logits = output(rmsnorm(x))
// Everything that differs between these families is in ModelConfig (RoPE theta and scaling,
// window, biases present or not, experts), so the forward pass is the same few lines.

import { attention, embed, gatedMlp, logits, moe } from './blocks.ts';
import type { Weights } from './model.ts';
import type { Ops } from './ops.ts';

export function llamaForward<T, W>(o: Ops<T, W>, w: Weights<W>): T {
  let x = embed(o, w); //                                              [n, D] residual stream
  w.layers.forEach((L, l) => {
    x = o.add(x, attention(o, l, o.rmsNorm('h', x, L.attnNorm), L));
    const h = o.rmsNorm('h', x, L.ffnNorm); //                          [n, D]
    x = o.add(x, L.experts ? moe(o, h, L) : gatedMlp(o, h, L.wGate!, L.wUp!, L.wDown!));
  });
  return logits(o, x, w, 'rms');
}
