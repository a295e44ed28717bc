// Llama 2 / Llama 3 / 3.1, Mistral and Qwen2: one decoder.
//   x = embed(tokens)
//   for each layer:  x += attn(rmsnorm(x))        (Qwen2: q/k/v biases; Mistral: sliding window)
//                    x += ffn(rmsnorm(x))         (SwiGLU; Mixtral: a mixture of experts, mixtral.ts)
//   logits = output(rmsnorm(x))
// Everything that differs between these families is in ModelConfig (RoPE theta and scaling,
// window, biases present or not), so the forward pass is the same few lines.

import type { Tensor } from '../tensor/tensor.ts';
import { attention, embed, gatedMlp, logits, rmsNorm } from './blocks.ts';
import type { ForwardContext, Weights } from './model.ts';
import { moe } from './mixtral.ts';

export function llamaForward(c: ForwardContext, w: Weights): Tensor {
  const T = c.batch.tokens.length;
  const D = c.cfg.dim;
  const x = embed(c, w); //                                    [T, D] residual stream
  const h = c.ws.get('h', T, D); //                            [T, D] normed input of a block
  const o = c.ws.get('o', T, D); //                            [T, D] block output
  for (let l = 0; l < w.layers.length; l++) {
    const L = w.layers[l]!;
    attention(c, l, rmsNorm(c, x, L.attnNorm, h), L, o);
    c.be.add(x, o, x);
    rmsNorm(c, x, L.ffnNorm, h);
    if (L.experts) moe(c, h, L, o);
    else gatedMlp(c, h, L.wGate!, L.wUp!, L.wDown!, o);
    c.be.add(x, o, x);
  }
  return logits(c, x, w, 'rms');
}
