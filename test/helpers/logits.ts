// The inference model's logits at every position of one prompt (one prefill, all rows kept).
import { Sequence } from '../../src/engine/generate.ts';
import type { LoadedModel } from '../../src/models/load.ts';
import type { Batch } from '../../src/models/model.ts';

/** [tokens.length, vocab] logits of `tokens` run as one sequence from position 0. */
export function inferenceLogits(lm: LoadedModel, tokens: readonly number[]): Float32Array {
  const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 4 });
  const batch: Batch = {
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => i),
    slots: Int32Array.from(tokens, (_, i) => i),
    seqs: [{ row: 0, n: tokens.length, startPos: 0, blockTable: seq.table }],
    logitRows: Int32Array.from(tokens, (_, i) => i),
  };
  return lm.model.forward(batch, seq.kv).f32().slice();
}
