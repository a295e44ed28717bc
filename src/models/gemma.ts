// Gemma and Gemma 2.
//   x = embed(tokens) * sqrt(dim)
//   Gemma:    x += attn(norm(x));  x += geglu(norm(x))
//   Gemma 2:  x += postnorm(attn(norm(x)));  x += postnorm(geglu(norm(x)))   (four norms a layer)
//             attention logits soft-capped (50), every other layer (0, 2, ...) a 4096-token
//             sliding window, queries scaled by query_pre_attn_scalar^-1/2
//   logits = output(norm(x))  (tied to the embedding);  Gemma 2: 30 * tanh(logits / 30)
// RMSNorm weights already hold Gemma's (1 + w) (src/formats/layout.ts).

import type { Tensor } from '../tensor/tensor.ts';
import { attention, embed, gatedMlp, logits, rmsNorm } from './blocks.ts';
import type { ForwardContext, Weights } from './model.ts';

export function gemmaForward(c: ForwardContext, w: Weights): Tensor {
  const T = c.batch.tokens.length;
  const D = c.cfg.dim;
  const x = embed(c, w); //                                    [T, D]
  const h = c.ws.get('h', T, D); //                            [T, D]
  const o = c.ws.get('o', T, D); //                            [T, D]
  for (let l = 0; l < w.layers.length; l++) {
    const L = w.layers[l]!;
    attention(c, l, rmsNorm(c, x, L.attnNorm, h), L, o);
    if (L.postAttnNorm) rmsNorm(c, o, L.postAttnNorm, o);
    c.be.add(x, o, x);
    gatedMlp(c, rmsNorm(c, x, L.ffnNorm, h), L.wGate!, L.wUp!, L.wDown!, o);
    if (L.postFfnNorm) rmsNorm(c, o, L.postFfnNorm, o);
    c.be.add(x, o, x);
  }
  return logits(c, x, w, 'rms');
}
