// TapeOps: the Ops of src/models/ops.ts on the autograd tape, so a training step runs the very
// forward pass the serving engine runs (src/models/llama.ts, gemma.ts, gpt2.ts). Differences
// are the tape's, not the family's: attention is causal within each packed document (no KV
// cache), every row gets logits, activations are saved for the backward pass, and projections
// go through the trainer's hook (LoRA adapters, frozen q8_0 weights).
//
// Weights are TrainWeights: the trainer keeps them under their Hugging Face names and in HF
// layout (so checkpoints and PEFT adapters are written as they are), and marks the two tensors
// whose HF layout differs from the internal one (formats/layout.ts hfLayoutChange): GPT-2's
// Conv1D weights stored [in, out], Gemma's norms stored as w - 1.

import type { ModelConfig } from '../formats/model-config.ts';
import { geluApprox, type Activation, type Ops } from '../models/ops.ts';
import type { AttentionOptions, RopeOptions } from '../tensor/backend.ts';
import type { Tensor } from '../tensor/tensor.ts';
import {
  type Tape, Var, addInto, attention, combineRows, conv1d, embedding, gated, gatherRows, gelu, layerNorm, rmsNorm, rope,
  scatterRows, softCap, splitCols, topkRoute,
} from '../tensor/autograd.ts';
import { TrainError } from './errors.ts';

/** One packed batch: B sequences of T tokens (see data.ts). */
export interface TrainBatch {
  B: number;
  T: number;
  tokens: Int32Array; //     [B*T]
  targets: Int32Array; //    [B*T], -1 = no loss
  seg: Int32Array; //        [B*T] document ids (attention stays inside one)
  positions: Int32Array; //  [B*T]
}

/** A weight as the trainer holds it. */
export interface TrainWeight {
  /** Its Hugging Face name. */
  name: string;
  /** The f32 values (trainable or frozen); absent when the weight is frozen in q8_0. */
  v?: Var;
  /** A frozen base weight kept in q8_0 (QLoRA). */
  q?: Tensor;
  /** Shape in the internal layout ([out, in] for every linear weight). */
  shape: readonly number[];
  /** Stored [in, out] (GPT-2 Conv1D). */
  inOut?: boolean;
  /** Stored as w - 1, applied as 1 + w (Gemma's norms). */
  plusOne?: boolean;
}

/** x . W^T (+ b) for a projection: the trainer's hook (LoRA, q8_0 bases). */
export type Projection = (t: Tape, x: Var, w: TrainWeight, b: Var | null) => Var;

export class TapeOps implements Ops<Var, TrainWeight> {
  constructor(
    readonly t: Tape,
    readonly cfg: ModelConfig,
    readonly batch: TrainBatch,
    private readonly project: Projection,
  ) {}

  private val(w: TrainWeight): Var {
    if (!w.v) throw new Error(`${w.name}: a q8_0 weight can only be a projection`);
    return w.v;
  }

  embed(table: TrainWeight, scale: number): Var {
    return embedding(this.t, this.val(table), this.batch.tokens, scale);
  }

  positionEmbed(table: TrainWeight): Var {
    const max = table.shape[0]!;
    for (const p of this.batch.positions) {
      if (p >= max) throw new TrainError(`position ${p} is past the model's ${max} learned positions (lower seqLen)`);
    }
    return embedding(this.t, this.val(table), this.batch.positions);
  }

  linear(_key: string, x: Var, w: TrainWeight, b?: TrainWeight): Var {
    const bias = b ? this.val(b) : null;
    if (w.inOut) {
      if (!bias) throw new Error(`${w.name}: Conv1D weights come with a bias`);
      return conv1d(this.t, x, this.val(w), bias);
    }
    return this.project(this.t, x, w, bias);
  }

  linears(keys: readonly string[], x: Var, ws: readonly TrainWeight[], bs?: readonly (TrainWeight | undefined)[]): Var[] {
    return ws.map((w, i) => this.linear(keys[i]!, x, w, bs?.[i]));
  }

  rmsNorm(_key: string, x: Var, w: TrainWeight): Var {
    return rmsNorm(this.t, x, this.val(w), this.cfg.normEps, w.plusOne);
  }

  headNorm(_key: string, x: Var, _nHeads: number, w: TrainWeight): Var {
    // rmsNorm normalises runs of w.size (= head_dim) values: each head of each row
    return rmsNorm(this.t, x, this.val(w), this.cfg.normEps, w.plusOne);
  }

  layerNorm(_key: string, x: Var, w: TrainWeight, b?: TrainWeight): Var {
    return layerNorm(this.t, x, this.val(w), b ? this.val(b) : null, this.cfg.normEps);
  }

  add(a: Var, b: Var): Var {
    return addInto(this.t, a, b);
  }

  glu(gate: Var, up: Var, act: Activation): Var {
    return gated(this.t, gate, up, act === 'silu' ? 'silu' : geluApprox(act));
  }

  act(x: Var, act: Activation): Var {
    if (act === 'silu') throw new TrainError('training a plain SiLU MLP is not supported (GPT-2 uses GELU)');
    return gelu(this.t, x, geluApprox(act));
  }

  splitCols(x: Var, sizes: readonly number[]): Var[] {
    return splitCols(this.t, x, sizes);
  }

  rope(x: Var, nHeads: number, opts: RopeOptions): Var {
    return rope(this.t, x, nHeads, this.cfg.headDim, this.batch.positions, opts);
  }

  attend(_key: string, _layer: number, q: Var, k: Var, v: Var, opts: AttentionOptions): Var {
    const { B, T, seg } = this.batch;
    const { nHeads, nKvHeads, headDim } = this.cfg;
    return attention(this.t, q, k, v, seg, B, T, nHeads, nKvHeads, headDim, { scale: opts.scale, softCap: opts.softCap ?? 0, window: opts.window ?? 0 });
  }

  logitRows(x: Var): Var {
    return x;
  }

  softCap(x: Var, cap: number): Var {
    return softCap(this.t, x, cap);
  }

  route(logits: Var, k: number): { ids: Int32Array; weights: Var } {
    return topkRoute(this.t, logits, k);
  }

  gatherRows(_key: string, x: Var, rows: Int32Array): Var {
    return gatherRows(this.t, x, rows);
  }

  scatterRows(_key: string, into: Var | null, y: Var, slots: Int32Array, nRows: number): Var {
    return scatterRows(this.t, into, y, slots, nRows);
  }

  combineRows(_key: string, x: Var, w: Var): Var {
    return combineRows(this.t, x, w);
  }
}
