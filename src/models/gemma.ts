// Gemma, Gemma 2 and Gemma 3.
//   x = embed(tokens) * sqrt(dim)
//   Gemma:    x += attn(norm(x));  x += geglu(norm(x))
//   Gemma 2:  x += postnorm(attn(norm(x)));  x += postnorm(geglu(norm(x)))   (four norms a layer)
//             attention logits soft-capped (50), every other layer (0, 2, ...) a 4096-token
//             sliding window, queries scaled by query_pre_attn_scalar^-1/2
//   Gemma 3:  Gemma 2's four norms, plus an RMSNorm over each q and k head before RoPE; five
//             windowed layers to one global (sliding_window_pattern 6), the windowed ones with
//             their own RoPE base (10000) and no scaling; no soft-caps
//   logits = output(norm(x))  (tied to the embedding);  Gemma 2: 30 * tanh(logits / 30)
// RMSNorm weights are what the forward multiplies by: Gemma's (1 + w) (src/formats/layout.ts).

import { attention, embed, gatedMlp, logits } from './blocks.ts';
import type { Weights } from './model.ts';
import type { Ops } from './ops.ts';

export function gemmaForward<T, W>(o: Ops<T, W>, w: Weights<W>): T {
  let x = embed(o, w); //                                              [n, D]
  w.layers.forEach((L, l) => {
    let a = attention(o, l, o.rmsNorm('h', x, L.attnNorm), L); //       [n, D]
    if (L.postAttnNorm) a = o.rmsNorm('attn.post', a, L.postAttnNorm);
    x = o.add(x, a);
    let f = gatedMlp(o, o.rmsNorm('h', x, L.ffnNorm), L.wGate!, L.wUp!, L.wDown!);
    if (L.postFfnNorm) f = o.rmsNorm('ffn.post', f, L.postFfnNorm);
    x = o.add(x, f);
  });
  return logits(o, x, w, 'rms');
}
