// GPT-2.
//   x = wte[tokens] + wpe[positions]
//   for each layer:  x += attn(layernorm(x))     (fused qkv projection with bias, no RoPE)
//                    x += mlp(layernorm(x))      (gelu_new = tanh GELU, biases)
//   logits = wte . layernorm(x)
// Conv1D weights ([in, out] in Hugging Face files) are transposed at load (src/formats/layout.ts).

import { attention, embed, logits, plainMlp } from './blocks.ts';
import type { Weights } from './model.ts';
import type { Ops } from './ops.ts';

export function gpt2Forward<T, W>(o: Ops<T, W>, w: Weights<W>): T {
  let x = embed(o, w); //                                              [n, D]
  w.layers.forEach((L, l) => {
    x = o.add(x, attention(o, l, o.layerNorm('h', x, L.attnNorm, L.attnNormB), L));
    x = o.add(x, plainMlp(o, o.layerNorm('h', x, L.ffnNorm, L.ffnNormB), L));
  });
  return logits(o, x, w, 'layer');
}
