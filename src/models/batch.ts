// One engine step's batch (which tokens, at which positions and KV slots, for which sequences)
// and the scratch workspace a forward pass writes into.

import { Tensor } from '../tensor/tensor.ts';

/** One sequence's part of a step: rows [row, row + n) of the batch, at positions startPos... */
export interface SeqSlice {
  row: number;
  n: number;
  startPos: number;
  /** Block ids of the sequence, enough to cover startPos + n tokens. */
  blockTable: Int32Array;
}

/**
 * One attention call of a step (the same for every layer): a sequence's prefill chunk, or a run of
 * consecutive decode tokens (one row per sequence) with their block tables packed for one call.
 */
export interface AttentionRun {
  row: number;
  n: number;
  startPos: number;
  blockTable: Int32Array;
  /** A run of decode tokens: tables [n, maxBlocks] (row-major, zero-padded), lens[b] = tokens in sequence b's cache. */
  decode?: { tables: Int32Array; maxBlocks: number; lens: Int32Array };
}

/**
 * One forward step over several sequences (prefill chunks and decode tokens mixed). Built by the
 * engine (src/engine/batch.ts), which also plans its attention calls.
 */
export interface Batch {
  tokens: Int32Array; //     [T]
  positions: Int32Array; //  [T]
  slots: Int32Array; //      [T] KV slot of each token (block * blockSize + offset)
  seqs: SeqSlice[];
  /** The attention calls of the step, covering `seqs` in order. */
  runs: AttentionRun[];
  /** Rows whose logits are wanted (usually the last row of each sequence). */
  logitRows: Int32Array;
}

/** Scratch activations, grown on demand and reused across steps (no allocation per step). */
export class Workspace {
  private bufs = new Map<string, Tensor>();
  // The last view handed out per key: decode asks for the same [1, cols] views every step.
  private views = new Map<string, Tensor>();
  /** A [rows, cols] f32 scratch tensor named `key` (its first rows of a larger buffer). */
  get(key: string, rows: number, cols: number): Tensor {
    const v = this.views.get(key);
    if (v && v.shape[0] === rows && v.shape[1] === cols) return v;
    let t = this.bufs.get(key);
    if (!t || t.shape[0]! < rows || t.shape[1] !== cols) {
      const cap = Math.max(rows, t && t.shape[1] === cols ? t.shape[0]! * 2 : rows);
      t = Tensor.zeros([cap, cols]);
      this.bufs.set(key, t);
    }
    const view = rows === t.shape[0] ? t : t.narrow(0, rows);
    this.views.set(key, view);
    return view;
  }
  clear(): void {
    this.bufs.clear();
    this.views.clear();
  }
}
