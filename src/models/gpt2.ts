// GPT-2.
//   x = wte[tokens] + wpe[positions]
//   for each layer:  x += attn(layernorm(x))     (fused qkv projection with bias, no RoPE)
//                    x += mlp(layernorm(x))      (gelu_new = tanh GELU, biases)
//   logits = wte . layernorm(x)
// Conv1D weights ([in, out] in Hugging Face files) are transposed at load (src/formats/layout.ts).

import type { Tensor } from '../tensor/tensor.ts';
import { attention, embed, logits, plainMlp } from './blocks.ts';
import type { ForwardContext, Weights } from './model.ts';

export function gpt2Forward(c: ForwardContext, w: Weights): Tensor {
  const { be, cfg, ws } = c;
  const T = c.batch.tokens.length;
  const x = embed(c, w); //                                    [T, D]
  const h = ws.get('h', T, cfg.dim); //                        [T, D]
  const o = ws.get('o', T, cfg.dim); //                        [T, D]
  for (let l = 0; l < w.layers.length; l++) {
    const L = w.layers[l]!;
    be.layerNorm(x, L.attnNorm, L.attnNormB ?? null, cfg.normEps, h);
    attention(c, l, h, L, o);
    be.add(x, o, x);
    be.layerNorm(x, L.ffnNorm, L.ffnNormB ?? null, cfg.normEps, h);
    plainMlp(c, h, L, o);
    be.add(x, o, x);
  }
  return logits(c, x, w, 'layer');
}
