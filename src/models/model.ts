// What every model family shares: the weights' shape, one engine step's batch, the scratch
// buffers, and the Model object the engine and the CLI call.
//
// Internal tensor names are llama.cpp's (token_embd, blk.N.attn_q, ...); src/formats/layout.ts
// maps Hugging Face names onto them. Linear weights are [out, in] in any dtype; norm weights and
// biases are f32; norm weights are what the forward multiplies by (Gemma's 1 + w already added).

import type { ModelConfig } from '../formats/model-config.ts';
import type { Backend } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { KvPool } from './kv.ts';

export interface Expert {
  gate: Tensor; //   [ffn, dim]
  up: Tensor; //     [ffn, dim]
  down: Tensor; //   [dim, ffn]
}

export interface LayerWeights {
  attnNorm: Tensor; //                 [dim]
  attnNormB?: Tensor; //               [dim]            (GPT-2)
  wq?: Tensor; //                      [nHeads * headDim, dim]
  wk?: Tensor; //                      [nKvHeads * headDim, dim]
  wv?: Tensor; //                      [nKvHeads * headDim, dim]
  bq?: Tensor; bk?: Tensor; bv?: Tensor; //                (Qwen2)
  wqkv?: Tensor; //                    [3 * dim, dim]   (GPT-2: fused)
  bqkv?: Tensor; //                    [3 * dim]
  wo: Tensor; //                       [dim, nHeads * headDim]
  bo?: Tensor; //                      [dim]
  postAttnNorm?: Tensor; //            [dim]            (Gemma 2)
  ffnNorm: Tensor; //                  [dim]
  ffnNormB?: Tensor; //                [dim]            (GPT-2)
  wGate?: Tensor; //                   [ffn, dim]       (gated MLPs)
  wUp?: Tensor; //                     [ffn, dim]
  bUp?: Tensor; //                     [ffn]            (GPT-2)
  wDown?: Tensor; //                   [dim, ffn]
  bDown?: Tensor; //                   [dim]            (GPT-2)
  postFfnNorm?: Tensor; //             [dim]            (Gemma 2)
  router?: Tensor; //                  [nExperts, dim]  (Mixtral)
  experts?: Expert[];
}

export interface Weights {
  tokEmbd: Tensor; //                  [vocab, dim]
  posEmbd?: Tensor; //                 [maxPosition, dim]  (GPT-2)
  layers: LayerWeights[];
  outNorm: Tensor; //                  [dim]
  outNormB?: Tensor; //                [dim]            (GPT-2)
  output: Tensor; //                   [vocab, dim]     (tied: the same tensor as tokEmbd)
}

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

export interface ForwardContext {
  be: Backend;
  cfg: ModelConfig;
  ws: Workspace;
  kv: KvPool;
  batch: Batch;
}

export type ForwardFn = (c: ForwardContext, w: Weights) => Tensor;

/** A loaded model: its config, weights and the forward pass of its family. */
export class Model {
  readonly cfg: ModelConfig;
  readonly weights: Weights;
  readonly be: Backend;
  readonly ws = new Workspace();
  private readonly fwd: ForwardFn;

  constructor(cfg: ModelConfig, weights: Weights, be: Backend, fwd: ForwardFn) {
    this.cfg = cfg;
    this.weights = weights;
    this.be = be;
    this.fwd = fwd;
  }

  /** Runs one step; returns logits [logitRows.length, vocab] (a view into scratch memory: copy it to keep it). */
  forward(batch: Batch, kv: KvPool): Tensor {
    validateBatch(batch, this.cfg, kv);
    return this.fwd({ be: this.be, cfg: this.cfg, ws: this.ws, kv, batch }, this.weights);
  }
}

function validateBatch(b: Batch, cfg: ModelConfig, kv: KvPool): void {
  const T = b.tokens.length;
  if (T === 0) throw new Error('forward: empty batch');
  if (b.positions.length !== T || b.slots.length !== T) throw new Error(`forward: ${T} tokens but ${b.positions.length} positions and ${b.slots.length} slots`);
  for (let i = 0; i < T; i++) {
    const t = b.tokens[i]!;
    if (t < 0 || t >= cfg.vocabSize) throw new Error(`forward: token id ${t} at row ${i} is outside the vocabulary [0, ${cfg.vocabSize})`);
  }
  let rows = 0;
  for (const s of b.seqs) {
    if (s.row !== rows) throw new Error(`forward: sequences must cover the batch rows in order (expected row ${rows}, got ${s.row})`);
    if (s.n <= 0) throw new Error('forward: a sequence slice with no tokens');
    if (s.blockTable.length * kv.blockSize < s.startPos + s.n) {
      throw new Error(`forward: block table of ${s.blockTable.length} blocks cannot hold ${s.startPos + s.n} tokens`);
    }
    rows += s.n;
  }
  if (rows !== T) throw new Error(`forward: sequences cover ${rows} rows of ${T}`);
  validateRuns(b);
  for (const r of b.logitRows) if (r < 0 || r >= T) throw new Error(`forward: logit row ${r} outside [0, ${T})`);
}

/** The attention runs take the sequences in order: a prefill run is one sequence, a decode run consecutive one-token ones. */
function validateRuns(b: Batch): void {
  let i = 0;
  for (const r of b.runs) {
    const s = b.seqs[i];
    if (!s || r.row !== s.row) throw new Error(`forward: attention runs must cover the sequences in order (run at row ${r.row}, sequence ${i} at row ${s?.row})`);
    if (r.decode) {
      const d = r.decode;
      if (d.lens.length !== r.n || d.tables.length !== r.n * d.maxBlocks) throw new Error(`forward: a decode run of ${r.n} rows has ${d.lens.length} lengths and ${d.tables.length} table entries`);
      for (let j = 0; j < r.n; j++) {
        const q = b.seqs[i + j];
        if (!q || q.n !== 1 || q.row !== r.row + j || d.lens[j] !== q.startPos + 1) throw new Error(`forward: the decode run at row ${r.row} does not match sequence ${i + j}`);
      }
      i += r.n;
    } else {
      if (r.n !== s.n || r.startPos !== s.startPos || r.blockTable !== s.blockTable) throw new Error(`forward: the attention run at row ${r.row} does not match sequence ${i}`);
      i++;
    }
  }
  if (i !== b.seqs.length) throw new Error(`forward: attention runs cover ${i} of ${b.seqs.length} sequences`);
}
