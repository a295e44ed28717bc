// What every model family shares: the weights' shape (batch.ts: one engine step's batch and the scratch
// buffers), and the Model object the engine and the CLI call.
//
// Internal tensor names are llama.cpp's (token_embd, blk.N.attn_q, ...); src/formats/layout.ts
// maps Hugging Face names onto them. Linear weights are [out, in] in any dtype; norm weights and
// biases are f32; norm weights are what the forward multiplies by (Gemma's 1 + w already added).

import type { ModelConfig } from '../formats/model-config.ts';
import type { Backend } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { KvPool } from './kv.ts';
import { Workspace, type Batch } from './batch.ts';
import { InferOps } from './infer.ts';
import type { Ops } from './ops.ts';

// Weight structs are generic in the weight handle W: a Tensor for inference, a TrainWeight
// (src/train/tape-ops.ts) on the autograd tape. One struct, built by buildWeights (weights.ts) from
// internal names, serves both.

export interface Expert<W = Tensor> {
  gate: W; //   [ffn, dim]
  up: W; //     [ffn, dim]
  down: W; //   [dim, ffn]
}

export interface LayerWeights<W = Tensor> {
  attnNorm: W; //                 [dim]
  attnNormB?: W; //               [dim]            (GPT-2)
  wq?: W; //                      [nHeads * headDim, dim]
  wk?: W; //                      [nKvHeads * headDim, dim]
  wv?: W; //                      [nKvHeads * headDim, dim]
  bq?: W; bk?: W; bv?: W; //                       (Qwen2)
  wqkv?: W; //                    [3 * dim, dim]   (GPT-2: fused)
  bqkv?: W; //                    [3 * dim]
  wo: W; //                       [dim, nHeads * headDim]
  bo?: W; //                      [dim]
  qNorm?: W; //                   [headDim]        (Qwen 3, Gemma 3: per-head q/k RMSNorm)
  kNorm?: W; //                   [headDim]
  postAttnNorm?: W; //            [dim]            (Gemma 2)
  ffnNorm: W; //                  [dim]
  ffnNormB?: W; //                [dim]            (GPT-2)
  wGate?: W; //                   [ffn, dim]       (gated MLPs)
  wUp?: W; //                     [ffn, dim]
  bUp?: W; //                     [ffn]            (GPT-2)
  wDown?: W; //                   [dim, ffn]
  bDown?: W; //                   [dim]            (GPT-2)
  postFfnNorm?: W; //             [dim]            (Gemma 2)
  router?: W; //                  [nExperts, dim]  (Mixtral, Qwen3-MoE)
  experts?: Expert<W>[];
}

export interface Weights<W = Tensor> {
  tokEmbd: W; //                  [vocab, dim]
  posEmbd?: W; //                 [maxPosition, dim]  (GPT-2)
  layers: LayerWeights<W>[];
  outNorm: W; //                  [dim]
  outNormB?: W; //                [dim]            (GPT-2)
  output: W; //                   [vocab, dim]     (tied: the same handle as tokEmbd)
}

export { Workspace, type AttentionRun, type Batch, type SeqSlice } from './batch.ts';

/** A family's forward pass, written once against Ops (inference and training alike). */
export type ForwardFn = <T, W>(o: Ops<T, W>, w: Weights<W>) => T;

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
    return this.fwd(new InferOps(this.be, this.cfg, this.ws, kv, batch), this.weights);
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
