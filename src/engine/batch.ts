// Building one step's Batch: the packed token rows, their positions and KV slots, and the plan of
// the step's attention calls (the same for every layer, so planned once here, not per layer in
// the model). Everything that runs Model.forward builds its batch with makeBatch.

import type { AttentionRun, Batch, SeqSlice } from '../models/model.ts';

/** One sequence's part of a step. */
export interface BatchPart {
  /** The tokens computed this step, at positions startPos, startPos + 1, ... */
  tokens: ArrayLike<number>;
  startPos: number;
  /** Block ids of the sequence, enough to cover startPos + tokens.length. */
  blockTable: Int32Array;
  /** Rows whose logits the step returns: the last (default), all, or none. */
  logits?: 'last' | 'all' | 'none';
}

/**
 * Packs the parts into one batch, in the order given. Keep one-token (decode) parts consecutive:
 * each run of them becomes one attention call.
 */
export function makeBatch(parts: readonly BatchPart[], blockSize: number): Batch {
  let T = 0;
  for (const p of parts) T += p.tokens.length;
  const tokens = new Int32Array(T);
  const positions = new Int32Array(T);
  const slots = new Int32Array(T);
  const seqs: SeqSlice[] = [];
  const logitRows: number[] = [];
  let row = 0;
  for (const part of parts) {
    const { startPos, blockTable } = part;
    const n = part.tokens.length;
    for (let j = 0; j < n; j++) {
      const p = startPos + j;
      tokens[row + j] = part.tokens[j]!;
      positions[row + j] = p;
      slots[row + j] = blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
    }
    seqs.push({ row, n, startPos, blockTable });
    const want = part.logits ?? 'last';
    if (want === 'all') for (let j = 0; j < n; j++) logitRows.push(row + j);
    else if (want === 'last' && n > 0) logitRows.push(row + n - 1);
    row += n;
  }
  // A step of prompt chunks only still asks for one row (the model wants at least one).
  if (logitRows.length === 0 && T > 0) logitRows.push(T - 1);
  return { tokens, positions, slots, seqs, runs: planAttentionRuns(seqs), logitRows: Int32Array.from(logitRows) };
}

/**
 * The attention calls of a step: one prefill call per sequence of several tokens; each run of
 * consecutive one-token sequences is one decode call with their block tables packed.
 */
export function planAttentionRuns(seqs: readonly SeqSlice[]): AttentionRun[] {
  const runs: AttentionRun[] = [];
  for (let i = 0; i < seqs.length; ) {
    const s = seqs[i]!;
    if (s.n !== 1) {
      runs.push({ row: s.row, n: s.n, startPos: s.startPos, blockTable: s.blockTable });
      i++;
      continue;
    }
    let j = i;
    let maxBlocks = 0;
    while (j < seqs.length && seqs[j]!.n === 1) maxBlocks = Math.max(maxBlocks, seqs[j++]!.blockTable.length);
    const B = j - i;
    const tables = new Int32Array(B * maxBlocks);
    const lens = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const sb = seqs[i + b]!;
      tables.set(sb.blockTable, b * maxBlocks);
      lens[b] = sb.startPos + 1;
    }
    runs.push({ row: s.row, n: B, startPos: s.startPos, blockTable: s.blockTable, decode: { tables, maxBlocks, lens } });
    i = j;
  }
  return runs;
}
