// The ops a model family's forward pass is written against. Each family is defined once
// (llama.ts, gemma.ts, gpt2.ts, with the shared blocks of blocks.ts) and runs on two
// implementations of this interface:
//   - InferOps (infer.ts): one serving step on a Backend, into reused scratch buffers, with
//     attention over the paged KV cache (several sequences, prefill chunks and decode tokens);
//   - TapeOps (src/train/tape-ops.ts): the autograd tape, with attention masked to each packed
//     training document, activations saved for the backward pass, LoRA and frozen q8_0 weights.
// So training and serving cannot disagree on a family's decisions (norm placement, sliding
// window per layer, RoPE options, activation, MoE routing): they are written here and in the
// family files, once.
//
// T is the activation handle (a Tensor, or an autograd Var), W the weight handle (a Tensor, or
// a TrainWeight). Activations are matrices [rows, cols]: rows are the step's tokens.
//
// Ownership: an op may reuse its inputs' memory (inference writes in place and reuses scratch
// buffers across layers), so a value passed to an op must not be read after the op unless the
// op says it keeps it. `key` names the scratch buffer an output lands in (inference reuses it in
// every layer; the tape ignores it): two values alive at once need different keys.
//
// The diffusion models (UNet, VAE, text encoders) extend this interface with their own ops
// (convolution, group norm, cross-attention, up/down-sampling) on the same two implementations.

import type { ModelConfig } from '../formats/model-config.ts';
import type { AttentionOptions, GeluApprox, RopeOptions } from '../tensor/backend.ts';

export type Activation = 'silu' | 'gelu_tanh' | 'gelu_erf';

export interface Ops<T, W> {
  readonly cfg: ModelConfig;

  /** Token embeddings of the step's tokens times `scale`: [n, D]. */
  embed(table: W, scale: number): T;
  /** Learned position embeddings of the step's positions (GPT-2): [n, D]. */
  positionEmbed(table: W): T;

  /** x[n, in] . w[out, in]^T (+ b[out]) -> [n, out]. Keeps x. */
  linear(key: string, x: T, w: W, b?: W): T;
  /** Several projections of one input (q/k/v, gate/up): the values of separate linear calls. Keeps x. */
  linears(keys: readonly string[], x: T, ws: readonly W[], bs?: readonly (W | undefined)[]): T[];

  /** RMSNorm per row with weight w [cols]. Keeps x. */
  rmsNorm(key: string, x: T, w: W): T;
  /** RMSNorm of each of the nHeads heads of x[n, nHeads * Dh] with weight w [Dh] (Qwen 3 / Gemma 3 q/k norms; x consumed). */
  headNorm(key: string, x: T, nHeads: number, w: W): T;
  /** LayerNorm per row with weight w and bias b. Keeps x. */
  layerNorm(key: string, x: T, w: W, b?: W): T;

  /** a + b (a is the residual stream: consumed). */
  add(a: T, b: T): T;
  /** act(gate) * up (gate consumed). */
  glu(gate: T, up: T, act: Activation): T;
  /** act(x) (consumed). */
  act(x: T, act: Activation): T;
  /** Column pieces [n, sizes[i]] of x (views where the implementation allows). */
  splitCols(x: T, sizes: readonly number[]): T[];

  /** RoPE on x[n, nHeads * headDim] at the step's positions (consumed). */
  rope(x: T, nHeads: number, opts: RopeOptions): T;
  /**
   * Causal self-attention of layer `layer` for q[n, Hq * Dh], k/v[n, Hkv * Dh] (consumed; the
   * KV cache keeps k and v), over each sequence's earlier tokens: [n, Hq * Dh].
   */
  attend(key: string, layer: number, q: T, k: T, v: T, opts: AttentionOptions): T;

  /** The rows that need logits: each sequence's last (serving), every row (training). Keeps x. */
  logitRows(x: T): T;
  /** cap * tanh(x / cap) (consumed). */
  softCap(x: T, cap: number): T;

  /**
   * Mixture-of-experts routing of logits[n, E] (consumed): the k largest softmax probabilities
   * of each row renormalised. ids[t * k + j] is row t's j-th expert; weights [n, k].
   */
  route(logits: T, k: number): { ids: Int32Array; weights: T };
  /** x[rows[j]] for each j: [rows.length, cols]. Keeps x. */
  gatherRows(key: string, x: T, rows: Int32Array): T;
  /**
   * Writes y's rows to rows `slots` of a [nRows, cols] buffer: `into`, or a new one when null
   * (its rows become defined as they are written). Returns the buffer.
   */
  scatterRows(key: string, into: T | null, y: T, slots: Int32Array, nRows: number): T;
  /** out[t] = sum over j < k of w[t, j] * x[t * k + j], in j order: x [n * k, D], w [n, k] (both consumed). */
  combineRows(key: string, x: T, w: T): T;
}

// ---- family decisions shared by every implementation -------------------------------------------

/** Whether layer l attends through the sliding window: Mistral every layer, Gemma 2 the even ones, Gemma 3 all but every 6th. */
export function isWindowed(cfg: ModelConfig, l: number): boolean {
  if (cfg.slidingWindow <= 0) return false;
  if (cfg.slidingLayers === 'even') return l % 2 === 0;
  if (cfg.slidingLayers === 'period') return (l + 1) % (cfg.slidingPeriod ?? 6) !== 0;
  return true;
}

/** Sliding window of layer l in tokens; 0 = none. */
export function layerWindow(cfg: ModelConfig, l: number): number {
  return isWindowed(cfg, l) ? cfg.slidingWindow : 0;
}

/** RoPE of layer l: Gemma 3's windowed layers have their own base and no scaling. */
export function ropeOptions(cfg: ModelConfig, l: number): RopeOptions | null {
  if (!cfg.rope) return null;
  if (cfg.ropeLocalTheta !== undefined && isWindowed(cfg, l)) return { layout: cfg.rope.layout, theta: cfg.ropeLocalTheta, rotaryDim: cfg.rope.dim };
  return { layout: cfg.rope.layout, theta: cfg.rope.theta, rotaryDim: cfg.rope.dim, scaling: cfg.rope.scaling };
}

export function attentionOptions(cfg: ModelConfig, l: number): AttentionOptions {
  return { scale: cfg.attnScale, softCap: cfg.attnSoftCap, window: layerWindow(cfg, l) };
}

/** The GELU variant of an activation. */
export function geluApprox(act: Activation): GeluApprox {
  return act === 'gelu_erf' ? 'erf' : 'tanh';
}
