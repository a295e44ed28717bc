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
