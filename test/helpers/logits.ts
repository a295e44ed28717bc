// The inference model's logits at every position of one prompt (one prefill, all rows kept).
import { makeBatch } from '../../src/engine/batch.ts';
import { Sequence } from '../../src/engine/generate.ts';
import type { LoadedModel } from '../../src/models/load.ts';

/** [tokens.length, vocab] logits of `tokens` run as one sequence from position 0. */
export function inferenceLogits(lm: LoadedModel, tokens: readonly number[]): Float32Array {
  const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 4 });
  const batch = makeBatch([{ tokens, startPos: 0, blockTable: seq.table, logits: 'all' }], seq.kv.blockSize);
  return lm.model.forward(batch, seq.kv).f32().slice();
}

/** The last position's logits of one prefill of `prompt` (what generation samples first). */
export function firstLogits(lm: LoadedModel, prompt: readonly number[]): Float32Array {
  const seq = new Sequence(lm.model, { maxContext: 256 });
  return Float32Array.from(seq.prefill(prompt));
}

/** log softmax in f64, for comparing log-probabilities with a peer's logits. */
export function logSoftmax(v: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < v.length; i++) mx = Math.max(mx, v[i]!);
  let s = 0;
  for (let i = 0; i < v.length; i++) s += Math.exp(v[i]! - mx);
  const ls = Math.log(s);
  return Float64Array.from(v, (x) => x - mx - ls);
}
